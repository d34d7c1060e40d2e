/* SPDX-License-Identifier: MIT */
/*
 * namespace.c - the directory the FUSE mount shows: lookups, attributes,
 * chmod/chown, access(2), unlink, listings and MKNOD (how O_CREAT reaches
 * the daemon there). Every answer follows the visibility rule of access.c
 * for the caller, the same rule the admin listings follow.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"

/* How long a pipe made by mknod (the FUSE mount's create) waits for its
 * creator's open before it goes like any unused empty pipe. The open follows
 * at once; this only covers a creator killed in between. */
#define HOLD_NS (10ull * 1000000000u)

struct list_walk {
	struct device *dev;
	const struct cred *cred;
	struct name_list *list;
};
bool device_may_create(struct device *dev, const struct cred *cred)
{
	pthread_mutex_lock(&dev->lock);
	bool r = access_may_create(dev, cred);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_mknod(struct device *dev, const struct cred *cred, const char *name, size_t len, uint32_t mode,
		 struct pipe_attr *out)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	if (p) {
		r = access_may_see(dev, cred, p) ? -EEXIST : -EACCES;
	} else if (!relay_active(dev) && !access_may_create(dev, cred)) {
		r = -EACCES; /* with a broker in charge, it decides at the open */
	} else {
		struct attach_args a = { .name = name, .len = len, .mode = mode & 0777 };
		r = pipe_create(dev, &a, cred->uid, cred->gid, &p);
		if (r == 0) {
			pipe_hold(dev, p, cred->uid, now_ns() + HOLD_NS);
			pipe_attr(p, out);
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* A pipe of the mount's namespace as cred may see it: -ENOENT, or -EACCES
 * when it is hidden (the visibility rule: its name is taken, nothing more
 * is shown, as ATTACH and PIPE_BY_NAME answer too). */
static int visible(struct device *dev, const struct cred *cred, struct pipe *p, struct pipe **out)
{
	*out = p;
	return !p ? -ENOENT : access_may_see(dev, cred, p) ? 0 : -EACCES;
}

int device_lookup(struct device *dev, const struct cred *cred, const char *name, size_t len, struct pipe_attr *out)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p;
	r = visible(dev, cred, pipe_table_find(&dev->table, name, len), &p);
	if (r == 0)
		pipe_attr(p, out);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_getattr(struct device *dev, const struct cred *cred, uint64_t ino, struct pipe_attr *out)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p;
	r = visible(dev, cred, pipe_table_find_ino(&dev->table, ino), &p);
	if (r == 0)
		pipe_attr(p, out);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_setattr(struct device *dev, const struct cred *cred, uint64_t ino, bool set_mode, uint32_t mode,
		   bool set_uid, uint32_t uid, bool set_gid, uint32_t gid, struct pipe_attr *out)
{
	pthread_mutex_lock(&dev->lock);
	struct pipe *p;
	int r = visible(dev, cred, pipe_table_find_ino(&dev->table, ino), &p);
	if (r == 0 && ((set_uid && uid != p->uid) || (set_gid && gid != p->gid)) && !access_may_chown(dev, cred))
		r = -EPERM;
	if (r == 0 && set_mode && !access_may_manage(dev, cred, p))
		r = -EPERM;
	if (r == 0 && (set_uid || set_gid))
		r = pipe_set_owner(dev, p, set_uid ? uid : p->uid, set_gid ? gid : p->gid);
	if (r == 0) {
		if (set_mode)
			p->mode = mode & 0777;
		if (set_mode || set_uid || set_gid)
			p->ctime = now_realtime();
		pipe_attr(p, out);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_access(struct device *dev, const struct cred *cred, uint64_t ino, int mask)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p;
	r = visible(dev, cred, pipe_table_find_ino(&dev->table, ino), &p);
	if (r == 0 && !access_permits(p, cred, (unsigned)mask & 7))
		r = -EACCES;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_unlink(struct device *dev, const struct cred *cred, const char *name, size_t len)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	if (!p)
		r = -ENOENT;
	else if (!access_may_manage(dev, cred, p))
		r = -EPERM;
	else {
		pipe_table_unlink(&dev->table, p);
		pipe_collect(dev, p);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static void list_one(struct hash_node *n, void *data)
{
	struct list_walk *w = data;
	struct pipe *p = container_of(n, struct pipe, name_node);
	if (!access_may_see(w->dev, w->cred, p))
		return;
	struct name_entry *e = &w->list->entries[w->list->count++];
	e->ino = p->ino;
	memcpy(e->name, p->name, p->name_len + 1);
}

int device_list(struct device *dev, const struct cred *cred, struct name_list *out)
{
	pthread_mutex_lock(&dev->lock);
	size_t n = dev->table.by_name.count;
	out->count = 0;
	out->entries = calloc(n ? n : 1, sizeof(*out->entries));
	struct list_walk w = { dev, cred, out };
	if (out->entries)
		hashmap_for_each(&dev->table.by_name, list_one, &w);
	pthread_mutex_unlock(&dev->lock);
	return out->entries ? 0 : -ENOMEM;
}

void name_list_free(struct name_list *list)
{
	free(list->entries);
	list->entries = NULL;
	list->count = 0;
}
