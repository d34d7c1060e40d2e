/* SPDX-License-Identifier: MIT */
/*
 * device.c - the device object: handles (open contexts), attach/detach,
 * the namespace the FUSE mount shows, and the locked entry points the
 * frontends call. The data path itself is in pipe.c, waiting in request.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "device_internal.h"
#include "log.h"
#include "name.h"

struct device *device_new(const struct device_config *cfg, const struct device_ops *ops)
{
	struct device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	pthread_mutex_init(&dev->lock, NULL);
	dev->cfg = *cfg;
	dev->ops = ops;
	pipe_table_init(&dev->table, cfg->case_sensitive);
	dev->parked = (struct hashmap)HASHMAP_INIT;
	dev->relay_ids = (struct hashmap)HASHMAP_INIT;
	list_init(&dev->opens);
	list_init(&dev->relay_pending);
	list_init(&dev->transacts);
	dev->next_open_id = 1;
	dev->next_relay_id = 1;
	if (timer_start(dev) < 0) {
		pthread_mutex_destroy(&dev->lock);
		free(dev);
		return NULL;
	}
	return dev;
}

static void collect_pipe(struct hash_node *n, void *data)
{
	struct pipe ***cursor = data;
	**cursor = container_of(n, struct pipe, ino_node);
	(*cursor)++;
}

void device_free(struct device *dev)
{
	if (!dev)
		return;
	timer_stop(dev);
	pthread_mutex_lock(&dev->lock);
	relay_destroy(dev);
	pthread_mutex_unlock(&dev->lock);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->opens) {
		struct open_ctx *ctx = list_entry(pos, struct open_ctx, dev_link);
		device_release(dev, ctx);
	}
	size_t n = pipe_table_count(&dev->table);
	struct pipe **all = calloc(n ? n : 1, sizeof(*all));
	if (all) {
		struct pipe **cursor = all;
		hashmap_for_each(&dev->table.by_ino, collect_pipe, &cursor);
		for (size_t i = 0; i < n; i++)
			pipe_destroy(dev, all[i]);
		free(all);
	}
	assert(dev->parked.count == 0);
	hashmap_destroy(&dev->parked);
	if (pipe_table_count(&dev->table) == 0)
		pipe_table_destroy(&dev->table);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

void device_shutdown(struct device *dev)
{
	pthread_mutex_lock(&dev->lock);
	relay_shutdown(dev); /* first: it may drop handles whose open never completed */
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->opens) {
		struct open_ctx *ctx = list_entry(pos, struct open_ctx, dev_link);
		parked_end_ctx(dev, ctx, ESHUTDOWN);
		ctx_poll_drop(dev, ctx);
	}
	pthread_mutex_unlock(&dev->lock);
}

static struct open_ctx *ctx_new_locked(struct device *dev, const struct cred *cred, int oflags)
{
	struct open_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx)
		return NULL;
	list_init(&ctx->pipe_link);
	list_init(&ctx->parked);
	list_init(&ctx->poll_link);
	ctx->cred = *cred;
	ctx->oflags = oflags;
	int acc = oflags & O_ACCMODE;
	ctx->reader = acc == O_RDONLY || acc == O_RDWR;
	ctx->writer = acc == O_WRONLY || acc == O_RDWR;
	ctx->id = dev->next_open_id++;
	list_add_tail(&dev->opens, &ctx->dev_link);
	dev->nopens++;
	return ctx;
}

int device_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out)
{
	pthread_mutex_lock(&dev->lock);
	struct open_ctx *ctx = ctx_new_locked(dev, cred, oflags);
	pthread_mutex_unlock(&dev->lock);
	if (!ctx)
		return -ENOMEM;
	*out = ctx;
	return 0;
}

int device_ctl_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	bool member = (dev->cfg.ctl_mode & 0060) && cred->gid == dev->cfg.ctl_gid;
	if ((oflags & O_ACCMODE) != O_RDWR)
		r = -EINVAL;
	else if (cred->uid != 0 && cred->uid != dev->cfg.uid && !member)
		r = -EACCES;
	else if (dev->broker)
		r = -EBUSY;
	else if (!(*out = ctx_new_locked(dev, cred, oflags)))
		r = -ENOMEM;
	else {
		(*out)->ctl = true;
		dev->broker = *out;
		log_info("broker connected (uid %u, pid %u)", cred->uid, cred->pid);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static void ctx_attach_pipe(struct device *dev, struct open_ctx *ctx, struct pipe *p)
{
	list_add_tail(&p->opens, &ctx->pipe_link);
	ctx->pipe = p;
	p->handles++;
	if (ctx->reader)
		p->readers++;
	if (ctx->writer)
		p->writers++;
	pipe_settle(dev, p); /* a new writer ends the EOF state */
}

/* Take ctx off its pipe; its parked requests end with err. A writer that
 * closes counts for the EOF rule; one that only passes through (a CUSE open
 * starts on the default pipe, then ATTACHes elsewhere) leaves no mark unless
 * it wrote there (pipe_write sets the mark). */
static void ctx_detach_pipe(struct device *dev, struct open_ctx *ctx, int err)
{
	struct pipe *p = ctx->pipe;
	if (!p)
		return;
	parked_end_ctx(dev, ctx, err);
	ctx_poll_drop(dev, ctx);
	list_unlink(&ctx->pipe_link);
	ctx->pipe = NULL;
	p->handles--;
	if (ctx->reader)
		p->readers--;
	if (ctx->writer) {
		p->writers--;
		if (err == EBADF)
			p->had_writer = true; /* closed */
	}
	pipe_settle(dev, p); /* the last writer leaving is EOF for parked readers */
	pipe_collect(dev, p);
}

bool device_may_create_locked(struct device *dev, const struct cred *cred)
{
	if (cred->uid == 0)
		return true;
	unsigned bits;
	if (cred->uid == dev->cfg.uid)
		bits = (dev->cfg.mode >> 6) & 7;
	else if (cred->gid == dev->cfg.gid)
		bits = (dev->cfg.mode >> 3) & 7;
	else
		bits = dev->cfg.mode & 7;
	return bits & 2;
}

bool device_may_create(struct device *dev, const struct cred *cred)
{
	pthread_mutex_lock(&dev->lock);
	bool r = device_may_create_locked(dev, cred);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static unsigned ctx_want(const struct open_ctx *ctx)
{
	return (ctx->reader ? 4u : 0u) | (ctx->writer ? 2u : 0u);
}

static int attach_args_check(const struct attach_args *a)
{
	if (a->flags & ~RINGDEV_ATTACH_FLAGS_ALL)
		return -EINVAL;
	if (a->kind > RINGDEV_KIND_MESSAGE || a->policy > RINGDEV_POLICY_FAIL || a->mode > 0777)
		return -EINVAL;
	if (a->capacity && (a->capacity < RINGDEV_CAPACITY_MIN || a->capacity > RINGDEV_CAPACITY_MAX))
		return -EINVAL;
	return name_check(a->name, a->len);
}

bool device_is_admin(const struct device *dev, const struct cred *cred)
{
	return cred->uid == 0 || (dev->cfg.admin_set && cred->gid == dev->cfg.admin_gid);
}

struct uid_count {
	uint32_t uid;
	uint64_t n;
};

static void count_owned(struct hash_node *node, void *data)
{
	struct uid_count *c = data;
	if (container_of(node, struct pipe, ino_node)->uid == c->uid)
		c->n++;
}

/* Within --max-pipes and --max-pipes-per-uid for one more pipe of uid? */
static int pipe_limits(struct device *dev, uint32_t uid, const char *name, size_t len)
{
	if (pipe_table_count(&dev->table) >= dev->cfg.max_pipes) {
		dev->count.limit_pipes_hits++;
		log_info("pipe %.*s: --max-pipes (%llu) reached", (int)len, name, (unsigned long long)dev->cfg.max_pipes);
		return -ENOSPC;
	}
	if (dev->cfg.max_pipes_per_uid) {
		struct uid_count c = { uid, 0 };
		hashmap_for_each(&dev->table.by_ino, count_owned, &c);
		if (c.n >= dev->cfg.max_pipes_per_uid) {
			dev->count.limit_uid_pipes_hits++;
			log_info("pipe %.*s: uid %u owns --max-pipes-per-uid (%llu) pipes", (int)len, name, uid,
				 (unsigned long long)dev->cfg.max_pipes_per_uid);
			return -ENOSPC;
		}
	}
	return 0;
}

/* Make a new pipe from attach arguments, owned by uid:gid, within the limits. */
static int pipe_create(struct device *dev, const struct attach_args *a, uint32_t uid, uint32_t gid, struct pipe **out)
{
	int r = pipe_limits(dev, uid, a->name, a->len);
	if (r < 0)
		return r;
	struct pipe *p = pipe_new(dev, a->name, a->len, a->kind ? a->kind : RINGDEV_KIND_STREAM,
				  a->policy ? a->policy : RINGDEV_POLICY_BLOCK,
				  a->capacity ? a->capacity : dev->cfg.ring_size, a->mode ? a->mode : 0600, uid, gid);
	if (!p)
		return -ENOMEM;
	*out = p;
	return 0;
}

int device_create_locked(struct device *dev, const struct cred *cred, const struct attach_args *a, uint32_t uid,
			 uint32_t gid)
{
	int r = attach_args_check(a);
	if (r < 0)
		return r;
	if (!device_may_create_locked(dev, cred))
		return -EACCES;
	if (pipe_table_find(&dev->table, a->name, a->len))
		return -EEXIST;
	struct pipe *p;
	r = pipe_create(dev, a, uid, gid, &p);
	if (r == 0)
		p->persistent = true;
	return r;
}

int device_create(struct device *dev, const struct cred *cred, const struct attach_args *a)
{
	pthread_mutex_lock(&dev->lock);
	int r = device_create_locked(dev, cred, a, cred->uid, cred->gid);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

void device_remove_locked(struct device *dev, struct pipe *p)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &p->readq)
		parked_end(dev, list_entry(pos, struct parked_req, queue_link), EIDRM);
	list_for_each_safe(pos, tmp, &p->writeq)
		parked_end(dev, list_entry(pos, struct parked_req, queue_link), EIDRM);
	/* Handles stay open, attached to nothing: ENXIO from now on. The pipe
	 * is held (persistent) meanwhile, or the last detach would free it
	 * under this loop. */
	p->persistent = true;
	list_for_each_safe(pos, tmp, &p->opens)
		ctx_detach_pipe(dev, list_entry(pos, struct open_ctx, pipe_link), EIDRM);
	p->persistent = false;
	pipe_table_unlink(&dev->table, p);
	pipe_collect(dev, p);
}

int device_attach_locked(struct device *dev, struct open_ctx *ctx, const struct attach_args *a)
{
	int r = attach_args_check(a);
	if (r < 0)
		return r;
	struct pipe *p = pipe_table_find(&dev->table, a->name, a->len);
	if (p) {
		if ((a->flags & RINGDEV_ATTACH_CREATE) && (a->flags & RINGDEV_ATTACH_EXCL))
			return -EEXIST;
		if (!pipe_permits(p, &ctx->cred, ctx_want(ctx)))
			return -EACCES;
	} else {
		if (!(a->flags & RINGDEV_ATTACH_CREATE))
			return -ENOENT;
		if (!device_may_create_locked(dev, &ctx->cred))
			return -EACCES;
		r = pipe_create(dev, a, ctx->cred.uid, ctx->cred.gid, &p);
		if (r < 0)
			return r;
	}
	if (ctx->pipe == p)
		return 0;
	ctx_detach_pipe(dev, ctx, ENXIO);
	ctx_attach_pipe(dev, ctx, p);
	return 0;
}

int device_attach_as_broker(struct device *dev, struct open_ctx *ctx, const char *name, size_t len, bool create,
			    bool excl, const struct ringdev_ctl_answer *settings, bool brokered)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	if (p && excl)
		return -EEXIST;
	if (!p) {
		if (!create)
			return -ENOENT;
		if (pipe_table_count(&dev->table) >= dev->cfg.max_pipes) {
			dev->count.limit_pipes_hits++;
			return -ENOSPC;
		}
		p = settings ? pipe_new(dev, name, len, settings->kind, settings->policy,
					settings->capacity ? settings->capacity : dev->cfg.ring_size,
					settings->mode ? settings->mode : 0600, settings->uid, settings->gid)
			     : pipe_new(dev, name, len, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, dev->cfg.ring_size, 0600,
					ctx->cred.uid, ctx->cred.gid);
		if (!p)
			return -ENOMEM;
	}
	if (brokered)
		p->brokered = true;
	if (ctx->pipe != p) {
		ctx_detach_pipe(dev, ctx, ENXIO);
		ctx_attach_pipe(dev, ctx, p);
	}
	return 0;
}

void device_open_finish(struct device *dev, struct open_ctx *ctx, void *req, bool create)
{
	struct pipe_attr attr;
	memset(&attr, 0, sizeof(attr));
	if (ctx->pipe)
		pipe_attr(ctx->pipe, &attr);
	if (!dev->ops->reply_open(req, ctx, ctx->pipe ? &attr : NULL, create))
		ctx_free_locked(dev, ctx); /* the opener is gone: no release will come */
}

void device_open_builtin(struct device *dev, struct open_ctx *ctx, void *req, const struct open_args *args)
{
	int r;
	if (args->default_pipe) {
		struct attach_args a = { .name = dev->cfg.default_pipe, .len = strlen(dev->cfg.default_pipe) };
		r = device_attach_locked(dev, ctx, &a);
		if (r == -EACCES || r == -ENOENT)
			r = 0; /* the default pipe refuses this caller: start detached, ATTACH decides */
	} else if (args->ino) {
		struct pipe *p = pipe_table_find_ino(&dev->table, args->ino);
		r = !p ? -ENOENT : !pipe_permits(p, &ctx->cred, ctx_want(ctx)) ? -EACCES : 0;
		if (r == 0 && ctx->pipe != p)
			ctx_attach_pipe(dev, ctx, p);
	} else {
		struct attach_args a = {
			.name = args->name,
			.len = args->len,
			.flags = args->attach_flags,
			.mode = args->mode,
		};
		r = device_attach_locked(dev, ctx, &a);
	}
	if (r < 0) {
		dev->ops->reply_error(req, -r);
		ctx_free_locked(dev, ctx);
		return;
	}
	device_open_finish(dev, ctx, req, args->create);
}

/* Does uid hold --max-opens-per-uid handles already? (Counted.) */
static bool opens_limited(struct device *dev, uint32_t uid)
{
	if (!dev->cfg.max_opens_per_uid)
		return false;
	uint64_t n = 0;
	struct list_node *pos;
	list_for_each(pos, &dev->opens) {
		struct open_ctx *c = list_entry(pos, struct open_ctx, dev_link);
		n += !c->ctl && c->cred.uid == uid;
	}
	if (n < dev->cfg.max_opens_per_uid)
		return false;
	dev->count.limit_uid_opens_hits++;
	log_info("uid %u holds --max-opens-per-uid (%llu) handles: open refused", uid,
		 (unsigned long long)dev->cfg.max_opens_per_uid);
	return true;
}

void device_open_request(struct device *dev, const struct cred *cred, int oflags, const struct open_args *args,
			 void *req)
{
	pthread_mutex_lock(&dev->lock);
	struct open_ctx *ctx = NULL;
	if (opens_limited(dev, cred->uid))
		dev->ops->reply_error(req, EMFILE);
	else if (!(ctx = ctx_new_locked(dev, cred, oflags)))
		dev->ops->reply_error(req, ENOMEM);
	if (!ctx) {
		/* answered */
	} else if (!relay_active(dev)) {
		device_open_builtin(dev, ctx, req, args);
	} else if (dev->ops->req_interrupted(req)) {
		dev->ops->reply_error(req, EINTR);
		ctx_free_locked(dev, ctx);
	} else {
		struct relay_req *r = relay_new(dev, RINGDEV_CTL_OPEN, ctx, req);
		if (!r) {
			dev->ops->reply_error(req, errno);
			ctx_free_locked(dev, ctx);
		} else {
			const char *name = args->name;
			size_t len = args->len;
			if (args->ino) {
				struct pipe *p = pipe_table_find_ino(&dev->table, args->ino);
				name = p ? p->name : "";
				len = p ? p->name_len : 0;
			}
			if (name && len < sizeof(r->msg.name))
				memcpy(r->msg.name, name, len);
			r->msg.attach_flags = args->attach_flags;
			r->msg.mode = args->mode;
			r->create = args->create;
			r->default_pipe = args->default_pipe;
			ctx->broker_knows = true;
			relay_submit(dev, r);
		}
	}
	pthread_mutex_unlock(&dev->lock);
}

int device_attach(struct device *dev, struct open_ctx *ctx, const struct attach_args *args)
{
	pthread_mutex_lock(&dev->lock);
	int r = device_attach_locked(dev, ctx, args);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_attach_ino(struct device *dev, struct open_ctx *ctx, uint64_t ino)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	if (!p)
		r = -ENOENT;
	else if (!pipe_permits(p, &ctx->cred, ctx_want(ctx)))
		r = -EACCES;
	else if (ctx->pipe != p) {
		ctx_detach_pipe(dev, ctx, ENXIO);
		ctx_attach_pipe(dev, ctx, p);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_detach_locked(struct device *dev, struct open_ctx *ctx)
{
	ctx_detach_pipe(dev, ctx, ENXIO);
	return 0;
}

int device_detach(struct device *dev, struct open_ctx *ctx)
{
	pthread_mutex_lock(&dev->lock);
	int r = device_detach_locked(dev, ctx);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

void ctx_free_locked(struct device *dev, struct open_ctx *ctx)
{
	if (ctx->ctl)
		relay_ctl_release(dev, ctx);
	ctx_detach_pipe(dev, ctx, EBADF);
	parked_end_ctx(dev, ctx, EBADF);
	ctx_poll_drop(dev, ctx);
	list_unlink(&ctx->dev_link);
	dev->nopens--;
	free(ctx);
}

void device_release(struct device *dev, struct open_ctx *ctx)
{
	pthread_mutex_lock(&dev->lock);
	relay_notice_release(dev, ctx);
	ctx_free_locked(dev, ctx);
	pthread_mutex_unlock(&dev->lock);
}

int device_ctx_attr(struct device *dev, struct open_ctx *ctx, struct pipe_attr *out)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	if (ctx->pipe)
		pipe_attr(ctx->pipe, out);
	else
		r = -ENXIO;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

bool device_ctx_note_once(struct device *dev, struct open_ctx *ctx)
{
	pthread_mutex_lock(&dev->lock);
	bool first = !ctx->noted;
	ctx->noted = true;
	pthread_mutex_unlock(&dev->lock);
	return first;
}

void device_read(struct device *dev, struct open_ctx *ctx, void *req, size_t size, int oflags, bool continuation)
{
	pthread_mutex_lock(&dev->lock);
	if (ctx->ctl)
		dev->ops->reply_error(req, EINVAL);
	else if (!ctx->pipe)
		dev->ops->reply_error(req, ENXIO);
	else if (ctx->pipe->brokered && !continuation)
		relay_io(dev, ctx, req, RINGDEV_CTL_READ, NULL, size);
	else if (ctx->pipe->brokered)
		dev->ops->reply_data(req, NULL, 0); /* one relayed read per system call */
	else
		pipe_read(dev, ctx, req, size, oflags, continuation);
	pthread_mutex_unlock(&dev->lock);
}

void device_write(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size, int oflags)
{
	pthread_mutex_lock(&dev->lock);
	if (ctx->ctl)
		dev->ops->reply_error(req, EINVAL);
	else if (!ctx->pipe)
		dev->ops->reply_error(req, ENXIO);
	else if (ctx->pipe->brokered)
		relay_io(dev, ctx, req, RINGDEV_CTL_WRITE, buf, size);
	else
		pipe_write(dev, ctx, req, buf, size, oflags);
	pthread_mutex_unlock(&dev->lock);
}

void device_interrupt(struct device *dev, void *req)
{
	pthread_mutex_lock(&dev->lock);
	struct parked_req *p = parked_find(dev, req);
	if (p) {
		struct pipe *pipe = p->ctx->pipe;
		dev->count.interrupts++;
		parked_end(dev, p, EINTR);
		if (pipe)
			pipe_settle(dev, pipe); /* a writer that left the head may unblock others */
	}
	pthread_mutex_unlock(&dev->lock);
}

unsigned device_poll(struct device *dev, struct open_ctx *ctx, void *ph)
{
	unsigned mask;
	pthread_mutex_lock(&dev->lock);
	if (ctx->ctl) {
		mask = list_empty(&dev->relay_pending) ? 0 : POLLIN | POLLRDNORM;
		if (ph)
			dev->ops->poll_destroy(ph);
	} else if (!ctx->pipe) {
		mask = POLLERR;
		if (ph)
			dev->ops->poll_destroy(ph);
	} else {
		mask = pipe_poll_mask(ctx->pipe, ctx);
		if (ph) {
			if (ctx->ph)
				dev->ops->poll_destroy(ctx->ph);
			else {
				list_add_tail(&ctx->pipe->pollers, &ctx->poll_link);
				dev->npollers++;
			}
			ctx->ph = ph;
			ctx->poll_mask = mask;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return mask;
}

int device_lookup(struct device *dev, const char *name, size_t len, struct pipe_attr *out)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	if (p)
		pipe_attr(p, out);
	else
		r = -ENOENT;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_getattr(struct device *dev, uint64_t ino, struct pipe_attr *out)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	if (p)
		pipe_attr(p, out);
	else
		r = -ENOENT;
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_setattr(struct device *dev, const struct cred *cred, uint64_t ino, bool set_mode, uint32_t mode,
		   bool set_uid, uint32_t uid, bool set_gid, uint32_t gid, struct pipe_attr *out)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	if (!p)
		r = -ENOENT;
	else if ((set_uid && uid != p->uid) || (set_gid && gid != p->gid))
		r = cred->uid == 0 ? 0 : -EPERM;
	if (r == 0 && set_mode && cred->uid != 0 && cred->uid != p->uid)
		r = -EPERM;
	if (r == 0) {
		if (set_mode)
			p->mode = mode & 0777;
		if (set_uid)
			p->uid = uid;
		if (set_gid)
			p->gid = gid;
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
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	if (!p)
		r = -ENOENT;
	else if (!pipe_permits(p, cred, (unsigned)mask & 7))
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
	else if (cred->uid != 0 && cred->uid != p->uid)
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
	struct name_list *list = data;
	struct pipe *p = container_of(n, struct pipe, name_node);
	struct name_entry *e = &list->entries[list->count++];
	e->ino = p->ino;
	memcpy(e->name, p->name, p->name_len + 1);
}

int device_list(struct device *dev, struct name_list *out)
{
	pthread_mutex_lock(&dev->lock);
	size_t n = dev->table.by_name.count;
	out->count = 0;
	out->entries = calloc(n ? n : 1, sizeof(*out->entries));
	if (out->entries)
		hashmap_for_each(&dev->table.by_name, list_one, out);
	pthread_mutex_unlock(&dev->lock);
	return out->entries ? 0 : -ENOMEM;
}

void name_list_free(struct name_list *list)
{
	free(list->entries);
	list->entries = NULL;
	list->count = 0;
}

void device_stats_locked(struct device *dev, struct ringdev_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->pipes = pipe_table_count(&dev->table);
	s->opens = dev->nopens;
	s->parked_reads = dev->parked_reads;
	s->parked_writes = dev->parked_writes;
	s->parked_other = dev->parked_other;
	s->parked_total = s->parked_reads + s->parked_writes + s->parked_other;
	s->pollers = dev->npollers;
	s->memory_used = dev->memory_used;
	s->memory_limit = dev->cfg.max_memory;
	s->pipes_limit = dev->cfg.max_pipes;
	s->bytes_in = dev->count.bytes_in;
	s->bytes_out = dev->count.bytes_out;
	s->writes = dev->count.writes;
	s->reads = dev->count.reads;
	s->dropped_bytes = dev->count.dropped_bytes;
	s->dropped_messages = dev->count.dropped_messages;
	s->interrupts = dev->count.interrupts;
	s->limit_pipes_hits = dev->count.limit_pipes_hits;
	s->limit_memory_hits = dev->count.limit_memory_hits;
	s->pipes_created = dev->count.pipes_created;
	s->pipes_removed = dev->count.pipes_removed;
	s->broker_connected = dev->broker != NULL;
	s->relayed = dev->count.relayed;
	s->relay_rejected = dev->count.relay_rejected;
	s->relay_failed = dev->count.relay_failed;
	s->relay_timeouts = dev->count.relay_timeouts;
	s->relay_cancels = dev->count.relay_cancels;
	s->relay_broker_gone = dev->count.relay_broker_gone;
	s->limit_uid_pipes_hits = dev->count.limit_uid_pipes_hits;
	s->limit_uid_opens_hits = dev->count.limit_uid_opens_hits;
	s->limit_parked_hits = dev->count.limit_parked_hits;
	s->flushed_bytes = dev->count.flushed_bytes;
}

bool device_ioctl_async(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
			unsigned int cmd, const void *in, size_t in_size, size_t out_size)
{
	pthread_mutex_lock(&dev->lock);
	bool taken = relay_ioctl(dev, ctx, cred, req, cmd, in, in_size, out_size);
	pthread_mutex_unlock(&dev->lock);
	return taken;
}

void device_stats(struct device *dev, struct ringdev_stats *out)
{
	pthread_mutex_lock(&dev->lock);
	device_stats_locked(dev, out);
	pthread_mutex_unlock(&dev->lock);
}
