/* SPDX-License-Identifier: MIT */
/*
 * namespace.c - the directory the FUSE mount shows: lookups, attributes,
 * chmod/chown, access(2), unlink, listings and MKNOD (how O_CREAT reaches
 * the daemon there); and the creations that are not opens (MKNOD,
 * RINGDEV_IOC_CREATE, asked of the broker when one is in charge). Every
 * answer follows the visibility rule of access.c for the caller, the same
 * rule the admin listings follow; every creation admit.c's rule.
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
	size_t cap;                   /* entries allocated; 0 while counting */
};
bool device_may_create(struct device *dev, const struct cred *cred)
{
	pthread_mutex_lock(&dev->lock);
	bool r = access_may_create(dev, cred);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* ---- creations: RINGDEV_IOC_CREATE (relayed or not), MKNOD on the mount ---- */

/* The pipe a creation makes, by admit.c's rule: exclusive, with the
 * settings of the answer (if it gave any) or of the request, owned by the
 * caller unless the answer names another owner. */
static int creation_admit(struct device *dev, const struct cred *cred, const struct attach_args *req_args,
			  const struct ringdev_ctl_answer *a, struct pipe **out)
{
	struct pipe_settings set = pipe_settings_from_args(dev, req_args, cred->uid, cred->gid);
	if (a && (a->flags & RINGDEV_ANSWER_SETTINGS))
		set = answer_settings(a);
	struct admit ad = {
		.cred = cred,
		.name = req_args->name,
		.len = req_args->len,
		.create = true,
		.excl = true,
		.brokered = a && (a->flags & RINGDEV_ANSWER_BROKERED),
		.set = &set,
	};
	return admit_pipe(dev, &ad, out);
}

/* What a relayed creation asked for. */
static struct attach_args creation_args(const struct relay_req *r)
{
	return (struct attach_args){ .name = r->msg.name, .len = strlen(r->msg.name), .kind = r->msg.kind,
				     .policy = r->msg.policy, .mode = r->msg.mode, .capacity = r->msg.capacity };
}

/* The handle made for a creation's request goes with its answer (the
 * broker gets no RELEASE for it: it lived for that one request). */
static void creation_done(struct device *dev, struct open_ctx *ctx)
{
	ctx_free_locked(dev, ctx);
}

static void create_decide(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
			  const struct ringdev_ctl_answer *a)
{
	struct pipe *p = NULL;
	struct attach_args args = creation_args(r);
	int rc = a && a->result < 0 ? a->result : creation_admit(dev, &r->cred, &args, a, &p);
	if (rc < 0) {
		dev->ops->reply_error(w->req, -rc);
	} else {
		p->persistent = true;
		dev->ops->reply_ioctl(w->req, 0, NULL, 0);
	}
	creation_done(dev, w->ctx);
}

static void create_apply(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
			 const struct ringdev_ctl_answer *a)
{
	create_decide(dev, r, w, a);
}

static void create_builtin(struct device *dev, struct relay_req *r, const struct relay_waiter *w)
{
	create_decide(dev, r, w, NULL);
}

const struct relay_kind create_relay_kind = { .apply = create_apply, .builtin = create_builtin };

bool device_create_relayed(struct device *dev, const struct cred *cred, const struct attach_args *a, void *req)
{
	if (!relay_active(dev))
		return false;
	struct open_ctx *ctx = NULL;
	int r = handle_new(dev, cred, O_WRONLY, false, &ctx);
	struct relay_req *rr = r < 0 ? NULL : relay_create(dev, ctx, req, &create_relay_kind, &r);
	if (!rr) {
		dev->ops->reply_error(req, -r);
		if (ctx)
			ctx_free_locked(dev, ctx);
		return true;
	}
	memcpy(rr->msg.name, a->name, a->len);
	rr->msg.name[a->len] = '\0';
	rr->msg.kind = a->kind;
	rr->msg.policy = a->policy;
	rr->msg.mode = a->mode;
	rr->msg.capacity = a->capacity;
	relay_submit(dev, rr);
	return true;
}

/* MKNOD (the FUSE mount's O_CREAT, then OPEN): the pipe is made at once
 * and held for its creator's open. With a broker in charge the creation is
 * the broker's to decide, and it decides at that OPEN (which the kernel
 * sends outside the directory's lock, so a slow broker freezes nobody's
 * lookups): until then the pipe is provisional, reachable by its creator
 * alone and by no name (admit.c links it when the open is allowed), so
 * nobody else ever meets a pipe the broker did not allow. */
int device_mknod(struct device *dev, const struct cred *cred, const char *name, size_t len, uint32_t mode,
		 struct pipe_attr *out)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	struct attach_args a = { .name = name, .len = len, .mode = mode & 0777 };
	if (p) {
		r = access_may_see(dev, cred, p) ? -EEXIST : -EACCES;
	} else if ((r = creation_admit(dev, cred, &a, NULL, &p)) == 0) {
		if (relay_active(dev)) {
			pipe_table_unlink(&dev->table, p);
			p->provisional = true;
		}
		pipe_hold(dev, p, cred->uid, now_ns() + HOLD_NS);
		pipe_attr(p, out);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

/* A provisional pipe (see device_mknod) of this name made by cred. */
static struct pipe *provisional_find(struct device *dev, const struct cred *cred, const char *name, size_t len)
{
	struct list_node *pos;
	list_for_each(pos, &dev->table.held) {
		struct pipe *p = list_entry(pos, struct pipe, hold_link);
		if (p->provisional && p->hold_uid == cred->uid && !p->hold_void &&
		    name_equal(p->name, p->name_len, name, len, dev->table.case_sensitive))
			return p;
	}
	return NULL;
}

int device_create_locked(struct device *dev, const struct cred *cred, const struct attach_args *a, uint32_t uid,
			 uint32_t gid)
{
	int r = attach_args_check(a);
	if (r < 0)
		return r;
	struct cred owner = { .uid = uid, .gid = gid };
	struct ringdev_ctl_answer as_owner = { .flags = RINGDEV_ANSWER_SETTINGS,
					       .kind = a->kind ? a->kind : RINGDEV_KIND_STREAM,
					       .policy = a->policy ? a->policy : RINGDEV_POLICY_BLOCK,
					       .mode = a->mode, .uid = owner.uid, .gid = owner.gid,
					       .capacity = a->capacity };
	struct pipe *p = NULL;
	r = creation_admit(dev, cred, a, &as_owner, &p);
	if (r == 0)
		p->persistent = true;
	return r;
}

/* A pipe of the mount's namespace as cred may see it: -ENOENT, or -EACCES
 * when it is hidden (the visibility rule: its name is taken, nothing more
 * is shown, as ATTACH and PIPE_BY_NAME answer too). */
static int visible(struct device *dev, const struct cred *cred, struct pipe *p, struct pipe **out)
{
	if (p && p->provisional && !(p->hold_uid == cred->uid && !p->hold_void))
		p = NULL; /* its creator's alone until the broker allowed it */
	*out = p;
	return !p ? -ENOENT : access_may_see(dev, cred, p) ? 0 : -EACCES;
}

int device_lookup(struct device *dev, const struct cred *cred, const char *name, size_t len, struct pipe_attr *out)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	if (!p)
		p = provisional_find(dev, cred, name, len);
	r = visible(dev, cred, p, &p);
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
			pipe_set_mode(p, mode & 0777);
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
		p->name_removed = true;
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
	if (!w->list->entries) {
		w->list->count++; /* the counting pass */
		return;
	}
	if (w->list->count == w->cap)
		return; /* cannot happen under the lock; keeps the array safe */
	struct name_entry *e = &w->list->entries[w->list->count++];
	e->ino = p->ino;
	memcpy(e->name, p->name, p->name_len + 1);
}

/* An open of the mount's root is not a handle and is charged nothing: it
 * holds no pipe and no request (the tools open the root only for their
 * ioctls), and it costs the daemon about 100 bytes, less than the kernel's
 * own record of the caller's descriptor, which RLIMIT_NOFILE bounds. What
 * it may come to hold, its listing, is charged when it is taken. (Counted
 * against --max-opens-per-uid, it made a user's Nth pipe open fail now and
 * then: the FUSE mount releases a directory only after close(2) returned,
 * so a tool's open of the root outlived it.) */
void device_dir_open(const struct cred *cred, struct name_list *out)
{
	*out = (struct name_list){ .uid = cred->uid };
}

static void list_drop_locked(struct device *dev, struct name_list *list)
{
	limit_uncharge(&dev->limits, LIMIT_MEMORY, list->uid, list->charged);
	free(list->entries);
	list->entries = NULL;
	list->charged = 0;
	list->count = 0;
}

/* A listing is held for as long as its directory stays open, so it is
 * memory charged to the directory's opener (--max-memory(-per-uid),
 * ENOMEM), and it holds only the pipes the caller may see, never the
 * hidden ones. It replaces an earlier one (a rewound directory). */
int device_list(struct device *dev, const struct cred *cred, struct name_list *list)
{
	pthread_mutex_lock(&dev->lock);
	list_drop_locked(dev, list);
	struct list_walk w = { dev, cred, list, 0 };
	hashmap_for_each(&dev->table.by_name, list_one, &w);
	w.cap = list->count;
	list->count = 0;
	uint64_t bytes = (w.cap ? w.cap : 1) * sizeof(*list->entries);
	int r = limit_charge(&dev->limits, LIMIT_MEMORY, list->uid, bytes, "a listing of the mount");
	if (r < 0) {
		r = r == -ENOSPC ? -ENOMEM : r;
	} else if (!(list->entries = calloc(w.cap ? w.cap : 1, sizeof(*list->entries)))) {
		limit_uncharge(&dev->limits, LIMIT_MEMORY, list->uid, bytes);
		r = -ENOMEM;
	} else {
		list->charged = bytes;
		hashmap_for_each(&dev->table.by_name, list_one, &w);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

void device_list_free(struct device *dev, struct name_list *list)
{
	pthread_mutex_lock(&dev->lock);
	list_drop_locked(dev, list);
	pthread_mutex_unlock(&dev->lock);
}
