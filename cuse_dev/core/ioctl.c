/* SPDX-License-Identifier: MIT */
/*
 * ioctl.c - the ringdev ioctls, decoded and checked in one place for both
 * frontends. The kernel has already copied _IOC_SIZE(cmd) bytes in and will
 * copy as many out; we still check the sizes we were handed, that strings
 * are terminated and reserved fields are zero, before touching anything.
 */
#include "config.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"


bool ioctl_all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}
#define all_zero ioctl_all_zero

/* ---- the ranges of pipe settings, for every path that sets them ---- */

bool settings_kind_ok(uint32_t kind)
{
	return kind >= RINGDEV_KIND_STREAM && kind <= RINGDEV_KIND_MESSAGE;
}

bool settings_policy_ok(uint32_t policy)
{
	return policy >= RINGDEV_POLICY_BLOCK && policy <= RINGDEV_POLICY_FAIL;
}

bool settings_mode_ok(uint32_t mode)
{
	return mode <= 0777;
}

bool settings_capacity_ok(uint64_t capacity)
{
	return capacity >= RINGDEV_CAPACITY_MIN && capacity <= RINGDEV_CAPACITY_MAX;
}

/* Attach (and create) arguments: 0 for kind, policy, mode or capacity is
 * the default. */
int attach_args_check(const struct attach_args *a)
{
	if (a->flags & ~RINGDEV_ATTACH_FLAGS_ALL)
		return -EINVAL;
	if ((a->kind && !settings_kind_ok(a->kind)) || (a->policy && !settings_policy_ok(a->policy)) ||
	    !settings_mode_ok(a->mode) || (a->capacity && !settings_capacity_ok(a->capacity)))
		return -EINVAL;
	return name_check(a->name, a->len);
}

int ioctl_decode_attach(const void *in, struct ringdev_attach *a, struct attach_args *args)
{
	memcpy(a, in, sizeof(*a));
	const char *nul = memchr(a->name, '\0', sizeof(a->name));
	if (!nul)
		return -ENAMETOOLONG;
	if (!all_zero(a->reserved, sizeof(a->reserved)))
		return -EINVAL;
	*args = (struct attach_args){
		.name = a->name,
		.len = (size_t)(nul - a->name),
		.flags = a->flags,
		.kind = a->kind,
		.policy = a->policy,
		.mode = a->mode,
		.capacity = a->capacity,
	};
	return attach_args_check(args);
}

/* ATTACH is checked with the caller's credentials, not the opener's: the
 * handle may be an fd someone else passed. */
static int ioctl_attach(struct device *dev, struct open_ctx *ctx, const struct cred *cred, const void *in)
{
	struct ringdev_attach a;
	struct attach_args args;
	int r = ioctl_decode_attach(in, &a, &args);
	return r < 0 ? r : device_attach_locked(dev, ctx, cred, &args);
}

/* A name argument: NUL-terminated inside its array, and valid. */
static int name_arg(const char name[RINGDEV_NAME_SIZE], size_t *len)
{
	const char *nul = memchr(name, '\0', RINGDEV_NAME_SIZE);
	if (!nul)
		return -ENAMETOOLONG;
	*len = (size_t)(nul - name);
	return name_check(name, *len);
}

/* Change a pipe's settings (SET_CONFIG, CONFIGURE): all checked before any applies. */
static int configure(struct device *dev, struct pipe *p, const struct cred *cred, uint32_t set, uint32_t kind,
		     uint32_t policy, uint32_t mode, uint64_t capacity, uint32_t uid, uint32_t gid)
{
	if (set & ~(RINGDEV_SET_ALL | RINGDEV_SET_OWNER))
		return -EINVAL;
	if (((set & RINGDEV_SET_KIND) && !settings_kind_ok(kind)) ||
	    ((set & RINGDEV_SET_POLICY) && !settings_policy_ok(policy)) ||
	    ((set & RINGDEV_SET_MODE) && !settings_mode_ok(mode)) ||
	    ((set & RINGDEV_SET_CAPACITY) && !settings_capacity_ok(capacity)))
		return -EINVAL;
	if (!access_may_manage(dev, cred, p) || ((set & RINGDEV_SET_OWNER) && !access_may_chown(dev, cred)))
		return -EPERM;
	if ((set & RINGDEV_SET_KIND) && kind != p->kind && p->ring.used > 0)
		return -EBUSY;
	/* The capacity first: it is the change that can be refused (EBUSY,
	 * the memory limits). Giving the pipe away then fails only for want of
	 * memory for the new owner's entry, with the capacity already set. */
	if (set & RINGDEV_SET_CAPACITY) {
		int r = pipe_set_capacity(dev, p, capacity);
		if (r < 0)
			return r;
	}
	if (set & RINGDEV_SET_OWNER) {
		int r = pipe_set_owner(dev, p, uid, gid);
		if (r < 0)
			return r;
	}
	if (set & RINGDEV_SET_KIND)
		p->kind = kind;
	if (set & RINGDEV_SET_POLICY)
		p->policy = policy;
	if (set & RINGDEV_SET_MODE)
		pipe_set_mode(p, mode);
	p->ctime = now_realtime();
	pipe_settle(dev, p); /* a policy change may release parked writers */
	return 0;
}

static int ioctl_set_config(struct device *dev, struct open_ctx *ctx, const struct cred *cred, const void *in)
{
	struct ringdev_pipe_config c;
	memcpy(&c, in, sizeof(c));
	if ((c.set & ~RINGDEV_SET_ALL) || !all_zero(c.reserved, sizeof(c.reserved)))
		return -EINVAL;
	return configure(dev, ctx->pipe, cred, c.set, c.kind, c.policy, c.mode, c.capacity, 0, 0);
}

static int by_ino(const void *a, const void *b)
{
	uint64_t x = (*(struct pipe *const *)a)->ino, y = (*(struct pipe *const *)b)->ino;
	return x < y ? -1 : x > y;
}

struct pipe_walk {
	struct pipe **all;
	size_t n;
};

static void walk_one(struct hash_node *node, void *data)
{
	struct pipe_walk *w = data;
	w->all[w->n++] = container_of(node, struct pipe, ino_node);
}

/* Pipes in creation order, so that pages follow each other. */
static int ioctl_list_pipes(struct device *dev, const struct cred *cred, const void *in, void *out)
{
	struct ringdev_list_pipes *l = out;
	uint32_t start;
	memcpy(&start, in, sizeof(start));
	memset(l, 0, sizeof(*l));
	struct pipe_walk w = { calloc(pipe_table_count(&dev->table) + 1, sizeof(struct pipe *)), 0 };
	if (!w.all)
		return -ENOMEM;
	hashmap_for_each(&dev->table.by_ino, walk_one, &w);
	qsort(w.all, w.n, sizeof(*w.all), by_ino);
	for (size_t i = 0; i < w.n; i++) {
		if (!access_may_see(dev, cred, w.all[i]))
			continue;
		if (l->total >= start && l->count < RINGDEV_LIST_PIPES_MAX)
			pipe_info(w.all[i], &l->pipes[l->count++]);
		l->total++;
	}
	free(w.all);
	l->start = start;
	return 0;
}

static void open_info(const struct open_ctx *c, struct ringdev_open_info *o)
{
	memset(o, 0, sizeof(*o));
	o->handle = c->id;
	if (c->pipe)
		memcpy(o->pipe, c->pipe->name, c->pipe->name_len + 1);
	o->uid = c->cred.uid;
	o->gid = c->cred.gid;
	o->pid = c->cred.pid;
	o->oflags = (uint32_t)c->oflags;
	o->flags = (c->ctl ? RINGDEV_OPEN_CONTROL : 0) | (c->pipe ? 0 : RINGDEV_OPEN_DETACHED) |
		   (c->reader ? RINGDEV_OPEN_READER : 0) | (c->writer ? RINGDEV_OPEN_WRITER : 0);
	const struct list_node *pos;
	list_for_each(pos, &c->parked) {
		const struct parked_req *p = list_entry(pos, struct parked_req, ctx_link);
		if (p->ops->kind == PARKED_READ)
			o->parked_reads++;
		else if (p->ops->kind == PARKED_WRITE)
			o->parked_writes++;
		else
			o->parked_other++;
	}
	o->bytes_in = c->bytes_in;
	o->bytes_out = c->bytes_out;
}

/* Every handle for admins; an ordinary user sees its own. */
static int ioctl_list_opens(struct device *dev, const struct cred *cred, const void *in, void *out)
{
	struct ringdev_list_opens *l = out;
	uint32_t start;
	memcpy(&start, in, sizeof(start));
	memset(l, 0, sizeof(*l));
	bool admin = access_is_admin(dev, cred);
	struct list_node *pos;
	list_for_each(pos, &dev->handles.list) {
		struct open_ctx *c = list_entry(pos, struct open_ctx, dev_link);
		if (!admin && c->cred.uid != cred->uid)
			continue;
		if (l->total >= start && l->count < RINGDEV_LIST_OPENS_MAX)
			open_info(c, &l->opens[l->count++]);
		l->total++;
	}
	l->start = start;
	return 0;
}

/* The linked pipe a name argument names; ENOENT, or its name error. */
static int find_named(struct device *dev, const char name[RINGDEV_NAME_SIZE], struct pipe **out)
{
	size_t len;
	int r = name_arg(name, &len);
	if (r < 0)
		return r;
	*out = pipe_table_find(&dev->table, name, len);
	return *out ? 0 : -ENOENT;
}

static int ioctl_pipe_by_name(struct device *dev, const struct cred *cred, const void *in, void *out)
{
	struct ringdev_pipe_info q;
	memcpy(&q, in, sizeof(q));
	if (q.reserved0 || !all_zero(q.reserved, sizeof(q.reserved)))
		return -EINVAL;
	struct pipe *p;
	int r = find_named(dev, q.name, &p);
	if (r < 0)
		return r;
	if (!access_may_see(dev, cred, p))
		return -EACCES;
	pipe_info(p, out);
	return 0;
}

/* Decode and check a RINGDEV_IOC_CREATE argument (copied to *c; a points
 * into it). */
static int decode_create(struct device *dev, const struct cred *cred, const void *in, struct ringdev_create *c,
			 struct attach_args *a)
{
	memcpy(c, in, sizeof(*c));
	size_t len;
	if ((c->flags & ~RINGDEV_CREATE_FLAGS_ALL) || !all_zero(c->reserved, sizeof(c->reserved)))
		return -EINVAL;
	int r = name_arg(c->name, &len);
	if (r < 0)
		return r;
	if ((c->flags & RINGDEV_CREATE_OWNER) && !access_is_admin(dev, cred))
		return -EPERM;
	*a = (struct attach_args){
		.name = c->name,
		.len = len,
		.kind = c->kind,
		.policy = c->policy,
		.mode = c->mode,
		.capacity = c->capacity,
	};
	return attach_args_check(a);
}

static int ioctl_create(struct device *dev, const struct cred *cred, const void *in)
{
	struct ringdev_create c;
	struct attach_args a;
	int r = decode_create(dev, cred, in, &c, &a);
	if (r < 0)
		return r;
	bool owner = c.flags & RINGDEV_CREATE_OWNER;
	return device_create_locked(dev, cred, &a, owner ? c.uid : cred->uid, owner ? c.gid : cred->gid);
}

static int ioctl_remove(struct device *dev, const struct cred *cred, const void *in)
{
	struct ringdev_name n;
	memcpy(&n, in, sizeof(n));
	if (!all_zero(n.reserved, sizeof(n.reserved)))
		return -EINVAL;
	struct pipe *p;
	int r = find_named(dev, n.name, &p);
	if (r < 0)
		return r;
	if (!access_may_manage(dev, cred, p))
		return -EPERM;
	log_info("pipe %s removed by uid %u", p->name, cred->uid);
	device_remove_locked(dev, p);
	return 0;
}

static int ioctl_configure(struct device *dev, const struct cred *cred, const void *in)
{
	struct ringdev_configure c;
	memcpy(&c, in, sizeof(c));
	if (!all_zero(c.reserved, sizeof(c.reserved)))
		return -EINVAL;
	struct pipe *p;
	int r = find_named(dev, c.name, &p);
	if (r < 0)
		return r;
	return configure(dev, p, cred, c.set, c.kind, c.policy, c.mode, c.capacity, c.uid, c.gid);
}

static int ioctl_flush(struct device *dev, const struct cred *cred, const void *in, void *out)
{
	struct ringdev_flush f;
	memcpy(&f, in, sizeof(f));
	if (!all_zero(f.reserved, sizeof(f.reserved)))
		return -EINVAL;
	struct pipe *p;
	int r = find_named(dev, f.name, &p);
	if (r < 0)
		return r;
	if (!access_may_manage(dev, cred, p))
		return -EPERM;
	f.bytes = pipe_queued_payload(p);
	f.messages = p->kind == RINGDEV_KIND_MESSAGE ? p->queued_messages : 0;
	ring_consume(&p->ring, p->ring.used);
	p->queued_messages = 0;
	dev->count.flushed_bytes += f.bytes;
	log_info("pipe %s flushed by uid %u: %llu bytes discarded", p->name, cred->uid, (unsigned long long)f.bytes);
	pipe_settle(dev, p); /* room for parked writers */
	pipe_collect(dev, p); /* a temporary pipe nobody holds goes once empty */
	memcpy(out, &f, sizeof(f));
	return 0;
}

static int ioctl_locked(struct device *dev, struct open_ctx *ctx, const struct cred *cred, unsigned int cmd,
			const void *in, void *out)
{
	switch (cmd) {
	case RINGDEV_IOC_VERSION: {
		struct ringdev_version *v = out;
		memset(v, 0, sizeof(*v));
		v->abi_major = RINGDEV_ABI_MAJOR;
		v->abi_minor = RINGDEV_ABI_MINOR;
		v->frontend = dev->cfg.frontend;
		strncpy(v->daemon_version, RINGDEV_VERSION, sizeof(v->daemon_version) - 1);
		return 0;
	}
	case RINGDEV_IOC_STATS:
		device_stats_locked(dev, out);
		return 0;
	case RINGDEV_IOC_STATS_EXT:
		device_stats_ext_locked(dev, out);
		return 0;
	case RINGDEV_IOC_LIST_PIPES:
		return ioctl_list_pipes(dev, cred, in, out);
	case RINGDEV_IOC_LIST_OPENS:
		return ioctl_list_opens(dev, cred, in, out);
	case RINGDEV_IOC_PIPE_BY_NAME:
		return ioctl_pipe_by_name(dev, cred, in, out);
	case RINGDEV_IOC_CREATE:
		return ioctl_create(dev, cred, in);
	case RINGDEV_IOC_REMOVE:
		return ioctl_remove(dev, cred, in);
	case RINGDEV_IOC_CONFIGURE:
		return ioctl_configure(dev, cred, in);
	case RINGDEV_IOC_FLUSH:
		return ioctl_flush(dev, cred, in, out);
	default:
		break;
	}
	if (!ctx)
		return -ENOTTY; /* the rest act on a handle */
	if (cmd == RINGDEV_IOC_ATTACH)
		return ioctl_attach(dev, ctx, cred, in);
	if (cmd == RINGDEV_IOC_DETACH)
		return device_detach_locked(dev, ctx);
	struct pipe *p = ctx->pipe;
	switch (cmd) {
	case RINGDEV_IOC_PIPE_INFO:
		if (!p)
			return -ENXIO;
		pipe_info(p, out);
		return 0;
	case RINGDEV_IOC_NREAD: {
		if (!p)
			return -ENXIO;
		struct ringdev_nread *n = out;
		memset(n, 0, sizeof(*n));
		n->next = pipe_next_read_size(p);
		n->queued_bytes = pipe_queued_payload(p);
		n->queued_messages = p->kind == RINGDEV_KIND_MESSAGE ? p->queued_messages : 0;
		return 0;
	}
	case RINGDEV_IOC_SET_CONFIG:
		if (!p)
			return -ENXIO;
		return ioctl_set_config(dev, ctx, cred, in);
	default:
		return -ENOTTY;
	}
}

bool device_ioctl_arg_sizes(unsigned int cmd, size_t *in, size_t *out)
{
	if (_IOC_TYPE(cmd) != RINGDEV_IOC_MAGIC)
		return false;
	*in = (_IOC_DIR(cmd) & _IOC_WRITE) ? _IOC_SIZE(cmd) : 0;
	*out = (_IOC_DIR(cmd) & _IOC_READ) ? _IOC_SIZE(cmd) : 0;
	return true;
}

/* Is cmd one the daemon answers itself (not the control node's, not the
 * device-specific range)? */
static bool own_command(unsigned int cmd)
{
	switch (cmd) {
	case RINGDEV_IOC_VERSION:
	case RINGDEV_IOC_ATTACH:
	case RINGDEV_IOC_DETACH:
	case RINGDEV_IOC_PIPE_INFO:
	case RINGDEV_IOC_NREAD:
	case RINGDEV_IOC_SET_CONFIG:
	case RINGDEV_IOC_STATS:
	case RINGDEV_IOC_STATS_EXT:
	case RINGDEV_IOC_LIST_PIPES:
	case RINGDEV_IOC_LIST_OPENS:
	case RINGDEV_IOC_PIPE_BY_NAME:
	case RINGDEV_IOC_CREATE:
	case RINGDEV_IOC_REMOVE:
	case RINGDEV_IOC_CONFIGURE:
	case RINGDEV_IOC_FLUSH:
		return true;
	default:
		return false;
	}
}

bool device_ioctl_sizes(unsigned int cmd, size_t *in, size_t *out)
{
	return own_command(cmd) && device_ioctl_arg_sizes(cmd, in, out);
}

static bool device_specific(unsigned int cmd)
{
	return _IOC_TYPE(cmd) == RINGDEV_IOC_MAGIC && _IOC_NR(cmd) >= RINGDEV_IOC_DEVICE_NR_FIRST;
}

/* The control node's commands, decoded and checked; true if req was
 * answered or parked here, false for the commands any handle answers. */
static bool ctl_command(struct device *dev, struct open_ctx *ctl, void *req, unsigned int cmd, const void *in,
			size_t in_size, size_t out_size)
{
	size_t need_in, need_out;
	int r;
	if (cmd == RINGDEV_IOC_VERSION || cmd == RINGDEV_IOC_STATS || cmd == RINGDEV_IOC_STATS_EXT)
		return false;
	if (cmd != RINGDEV_IOC_CTL_TRANSACT && cmd != RINGDEV_IOC_CTL_FETCH && cmd != RINGDEV_IOC_CTL_STAGE) {
		dev->ops->reply_error(req, ENOTTY);
		return true;
	}
	device_ioctl_arg_sizes(cmd, &need_in, &need_out);
	if (in_size < need_in || out_size < need_out || !in) {
		dev->ops->reply_error(req, EINVAL);
		return true;
	}
	if (cmd == RINGDEV_IOC_CTL_TRANSACT) {
		struct ringdev_ctl_transact *t = malloc(sizeof(*t));
		if (!t) {
			dev->ops->reply_error(req, ENOMEM);
			return true;
		}
		memcpy(t, in, sizeof(*t));
		if (t->nanswers > RINGDEV_CTL_BATCH || t->max_requests > RINGDEV_CTL_BATCH || t->reserved0 ||
		    !all_zero(t->reserved, sizeof(t->reserved))) {
			free(t);
			dev->ops->reply_error(req, EINVAL);
			return true;
		}
		relay_transact(dev, ctl, req, t); /* owns t now */
		return true;
	}
	struct ringdev_ctl_bulk *b = malloc(sizeof(*b));
	if (!b) {
		dev->ops->reply_error(req, ENOMEM);
		return true;
	}
	memcpy(b, in, sizeof(*b));
	if (b->reserved0 || b->reserved[0] || (cmd == RINGDEV_IOC_CTL_STAGE && b->size > RINGDEV_CTL_BULK))
		r = -EINVAL;
	else if (cmd == RINGDEV_IOC_CTL_FETCH)
		r = relay_fetch(dev, b);
	else
		r = relay_stage(dev, b);
	if (r < 0)
		dev->ops->reply_error(req, -r);
	else if (cmd == RINGDEV_IOC_CTL_FETCH)
		dev->ops->reply_ioctl(req, 0, b, sizeof(*b));
	else
		dev->ops->reply_ioctl(req, 0, NULL, 0);
	free(b);
	return true;
}

bool device_ioctl_async(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
			unsigned int cmd, const void *in, size_t in_size, size_t out_size)
{
	bool taken = false;
	pthread_mutex_lock(&dev->lock);
	if (ctx && ctx->ctl) {
		taken = ctl_command(dev, ctx, req, cmd, in, in_size, out_size);
	} else if (ctx && relay_active(dev) && cmd == RINGDEV_IOC_ATTACH && in_size >= sizeof(struct ringdev_attach)) {
		struct ringdev_attach a;
		struct attach_args args;
		int r = ioctl_decode_attach(in, &a, &args);
		if (r < 0)
			dev->ops->reply_error(req, -r);
		else
			relay_attach(dev, ctx, cred, req, &a);
		taken = true;
	} else if (relay_active(dev) && cmd == RINGDEV_IOC_CREATE && in_size >= sizeof(struct ringdev_create) && in) {
		/* A user's creation is the broker's to decide, like an O_CREAT
		 * open; an admin's (root, --admin-group) is the admin's own. */
		struct ringdev_create c;
		struct attach_args a;
		int r = decode_create(dev, cred, in, &c, &a);
		if (r < 0) {
			dev->ops->reply_error(req, -r);
			taken = true;
		} else if (!access_is_admin(dev, cred)) {
			if (pipe_table_find(&dev->table, a.name, a.len))
				dev->ops->reply_error(req, EEXIST);
			else
				device_create_relayed(dev, cred, &a, req);
			taken = true;
		}
	} else if (ctx && relay_active(dev) && device_specific(cmd)) {
		/* The broker gets exactly the bytes the number encodes: a kernel
		 * passes no other sizes, and nothing else may reach it. */
		size_t need_in, need_out;
		device_ioctl_arg_sizes(cmd, &need_in, &need_out);
		if (in_size != need_in || out_size != need_out || (need_in && !in))
			dev->ops->reply_error(req, EINVAL);
		else
			relay_device_ioctl(dev, ctx, cred, req, cmd, in, in_size, out_size);
		taken = true;
	}
	pthread_mutex_unlock(&dev->lock);
	return taken;
}

int device_ioctl(struct device *dev, struct open_ctx *ctx, const struct cred *cred, unsigned int cmd,
		 const void *in, size_t in_size, void *out, size_t out_size)
{
	size_t need_in, need_out;
	if (!device_ioctl_sizes(cmd, &need_in, &need_out))
		return -ENOTTY; /* device-specific commands go to a broker; none is connected */
	if (in_size < need_in || out_size < need_out || (need_in && !in) || (need_out && !out)) {
		log_debug("ioctl 0x%x: argument of %zu/%zu bytes, need %zu/%zu", cmd, in_size, out_size, need_in,
			  need_out);
		return -EINVAL;
	}
	pthread_mutex_lock(&dev->lock);
	int r = ioctl_locked(dev, ctx, cred, cmd, in, out);
	pthread_mutex_unlock(&dev->lock);
	return r;
}
