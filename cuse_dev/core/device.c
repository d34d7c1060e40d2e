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

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"

/* How long a pipe made by mknod (the FUSE mount's create) waits for its
 * creator's open before it goes like any unused empty pipe. The open follows
 * at once; this only covers a creator killed in between. */
#define HOLD_NS (10ull * 1000000000u)

struct device *device_new(const struct device_config *cfg, const struct device_ops *ops)
{
	struct device *dev = calloc(1, sizeof(*dev));
	if (!dev)
		return NULL;
	pthread_mutex_init(&dev->lock, NULL);
	dev->cfg = *cfg;
	dev->ops = ops;
	pipe_table_init(&dev->table, cfg->case_sensitive);
	struct limits_config lc = {
		.total = { [LIMIT_PIPES] = cfg->max_pipes, [LIMIT_MEMORY] = cfg->max_memory,
			   [LIMIT_PARKED] = cfg->max_parked },
		.per_uid = { [LIMIT_PIPES] = cfg->max_pipes_per_uid, [LIMIT_OPENS] = cfg->max_opens_per_uid,
			     [LIMIT_MEMORY] = cfg->max_memory_per_uid, [LIMIT_PARKED] = cfg->max_parked_per_uid },
	};
	limit_init(&dev->limits, &lc);
	dev->parked = (struct hashmap)HASHMAP_INIT;
	dev->relay_ids = (struct hashmap)HASHMAP_INIT;
	list_init(&dev->opens);
	list_init(&dev->relay_pending);
	list_init(&dev->relay_taken);
	list_init(&dev->held_pipes);
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
	limit_deinit(&dev->limits);
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

/* A new handle of cred, charged to its uid unless it is the control node's. */
static int ctx_new_locked(struct device *dev, const struct cred *cred, int oflags, bool ctl, struct open_ctx **out)
{
	if (!ctl) {
		int r = limit_charge(&dev->limits, LIMIT_OPENS, cred->uid, 1, "open");
		if (r < 0)
			return r;
	}
	struct open_ctx *ctx = calloc(1, sizeof(*ctx));
	if (!ctx) {
		if (!ctl)
			limit_uncharge(&dev->limits, LIMIT_OPENS, cred->uid, 1);
		return -ENOMEM;
	}
	ctx->ctl = ctl;
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
	*out = ctx;
	return 0;
}

int device_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out)
{
	pthread_mutex_lock(&dev->lock);
	int r = ctx_new_locked(dev, cred, oflags, false, out);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_ctl_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out)
{
	int r = 0;
	pthread_mutex_lock(&dev->lock);
	if ((oflags & O_ACCMODE) != O_RDWR)
		r = -EINVAL;
	else if (!access_may_control(dev, cred))
		r = -EACCES;
	else if (dev->broker)
		r = -EBUSY;
	else if ((r = ctx_new_locked(dev, cred, oflags, true, out)) == 0) {
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
	parked_end_pipe_bound(dev, ctx, err);
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

bool device_may_create(struct device *dev, const struct cred *cred)
{
	pthread_mutex_lock(&dev->lock);
	bool r = access_may_create(dev, cred);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static unsigned ctx_want(const struct open_ctx *ctx)
{
	return (ctx->reader ? 4u : 0u) | (ctx->writer ? 2u : 0u);
}

/* Make a new pipe from attach arguments, owned by uid:gid, within the limits. */
static int pipe_create(struct device *dev, const struct attach_args *a, uint32_t uid, uint32_t gid, struct pipe **out)
{
	struct pipe_settings set = {
		.kind = a->kind ? a->kind : RINGDEV_KIND_STREAM,
		.policy = a->policy ? a->policy : RINGDEV_POLICY_BLOCK,
		.mode = a->mode ? a->mode : 0600,
		.uid = uid,
		.gid = gid,
		.capacity = a->capacity ? a->capacity : dev->cfg.ring_size,
	};
	return pipe_new(dev, &set, a->name, a->len, out);
}

int device_create_locked(struct device *dev, const struct cred *cred, const struct attach_args *a, uint32_t uid,
			 uint32_t gid)
{
	int r = attach_args_check(a);
	if (r < 0)
		return r;
	if (!access_may_create(dev, cred))
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

int device_attach_locked(struct device *dev, struct open_ctx *ctx, const struct cred *cred,
			 const struct attach_args *a)
{
	int r = attach_args_check(a);
	if (r < 0)
		return r;
	struct pipe *p = pipe_table_find(&dev->table, a->name, a->len);
	if (p) {
		if ((a->flags & RINGDEV_ATTACH_CREATE) && (a->flags & RINGDEV_ATTACH_EXCL))
			return -EEXIST;
		if (!access_permits(p, cred, ctx_want(ctx)))
			return -EACCES;
	} else {
		if (!(a->flags & RINGDEV_ATTACH_CREATE))
			return -ENOENT;
		if (!access_may_create(dev, cred))
			return -EACCES;
		r = pipe_create(dev, a, cred->uid, cred->gid, &p);
		if (r < 0)
			return r;
	}
	if (ctx->pipe == p)
		return 0;
	ctx_detach_pipe(dev, ctx, ENXIO);
	ctx_attach_pipe(dev, ctx, p);
	return 0;
}

int device_attach_as_broker(struct device *dev, struct open_ctx *ctx, const struct cred *cred, const char *name,
			    size_t len, bool create, bool excl, const struct ringdev_ctl_answer *settings, bool brokered)
{
	int r = name_check(name, len);
	if (r < 0)
		return r;
	struct pipe *p = pipe_table_find(&dev->table, name, len);
	if (p && excl)
		return -EEXIST;
	struct pipe_settings set = {
		.kind = settings ? settings->kind : RINGDEV_KIND_STREAM,
		.policy = settings ? settings->policy : RINGDEV_POLICY_BLOCK,
		.mode = settings && settings->mode ? settings->mode : 0600,
		.uid = settings ? settings->uid : cred->uid,
		.gid = settings ? settings->gid : cred->gid,
		.capacity = settings && settings->capacity ? settings->capacity : dev->cfg.ring_size,
	};
	if (!p) {
		if (!create)
			return -ENOENT;
		r = pipe_new(dev, &set, name, len, &p);
		if (r < 0)
			return r;
	} else if (settings && p->hold_deadline_ns && p->handles == 0 && p->ring.used == 0) {
		/* Made by mknod just before this open: the answer's settings
		 * are those of the pipe being created. */
		r = pipe_set_owner(dev, p, set.uid, set.gid);
		if (r == 0)
			r = pipe_set_capacity(dev, p, set.capacity);
		if (r < 0)
			return r;
		p->kind = set.kind;
		p->policy = set.policy;
		p->mode = set.mode;
	}
	if (brokered)
		p->brokered = true;
	if (ctx->pipe != p) {
		ctx_detach_pipe(dev, ctx, ENXIO);
		ctx_attach_pipe(dev, ctx, p);
	}
	return 0;
}

/* The end of an app's open, whichever way it ends: the pipe its creator
 * made with mknod is no longer held for it. */
static void open_release_hold(struct device *dev, uint64_t hold_ino)
{
	struct pipe *p = hold_ino ? pipe_table_find_ino(&dev->table, hold_ino) : NULL;
	if (p)
		pipe_release_hold(dev, p);
}

void device_open_finish(struct device *dev, struct open_ctx *ctx, void *req, uint64_t hold_ino)
{
	if (!dev->ops->reply_open(req, ctx))
		ctx_free_locked(dev, ctx); /* the opener is gone: no release will come */
	open_release_hold(dev, hold_ino);
}

void device_open_fail(struct device *dev, struct open_ctx *ctx, void *req, int err, uint64_t hold_ino)
{
	dev->ops->reply_error(req, err);
	ctx_free_locked(dev, ctx);
	open_release_hold(dev, hold_ino);
}

/* An app's open waiting for the broker ended unanswered (interrupt,
 * timeout, broker gone, shutdown): the open fails, and its handle goes. */
static void open_parked_end(struct device *dev, struct parked_req *p, int err)
{
	struct open_ctx *ctx = p->ctx;
	void *req = p->req;
	uint64_t hold_ino = p->u.relay.hold_ino;
	parked_free(dev, p);
	device_open_fail(dev, ctx, req, err, hold_ino);
}

const struct parked_ops open_parked = {
	.kind = PARKED_OPEN,
	.charged = true,
	.end = open_parked_end,
	.release = relay_parked_release,
};

/* The pipe a FUSE open by inode names, and whether cred made it by mknod
 * and has not opened it yet (then it opens it whatever the mode bits say,
 * as the kernel lets the creator of a file open it). */
static struct pipe *open_target(struct device *dev, const struct cred *cred, uint64_t ino, uint64_t *hold_ino)
{
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	*hold_ino = p && p->hold_deadline_ns && p->hold_uid == cred->uid ? ino : 0;
	return p;
}

void device_open_builtin(struct device *dev, struct open_ctx *ctx, void *req, const struct open_args *args)
{
	int r;
	uint64_t hold_ino = 0;
	if (args->default_pipe) {
		struct attach_args a = { .name = dev->cfg.default_pipe, .len = strlen(dev->cfg.default_pipe) };
		r = device_attach_locked(dev, ctx, &ctx->cred, &a);
		if (r == -EACCES || r == -ENOENT)
			r = 0; /* the default pipe refuses this caller: start detached, ATTACH decides */
	} else {
		struct pipe *p = open_target(dev, &ctx->cred, args->ino, &hold_ino);
		if (!p)
			r = -ENOENT;
		else if (!hold_ino && !access_permits(p, &ctx->cred, ctx_want(ctx)))
			r = -EACCES;
		else
			r = 0;
		if (r == 0 && ctx->pipe != p)
			ctx_attach_pipe(dev, ctx, p);
	}
	if (r < 0)
		device_open_fail(dev, ctx, req, -r, hold_ino);
	else
		device_open_finish(dev, ctx, req, hold_ino);
}

void device_open_request(struct device *dev, const struct cred *cred, int oflags, const struct open_args *args,
			 void *req)
{
	pthread_mutex_lock(&dev->lock);
	struct open_ctx *ctx = NULL;
	int r = ctx_new_locked(dev, cred, oflags, false, &ctx);
	if (r < 0) {
		dev->ops->reply_error(req, -r);
	} else if (!relay_active(dev)) {
		device_open_builtin(dev, ctx, req, args);
	} else if (dev->ops->req_interrupted(req)) {
		device_open_fail(dev, ctx, req, EINTR, 0);
	} else {
		uint64_t hold_ino = 0;
		struct pipe *p = args->default_pipe ? NULL : open_target(dev, cred, args->ino, &hold_ino);
		struct relay_req *rr = relay_open(dev, ctx, req, hold_ino, &r);
		if (!rr) {
			device_open_fail(dev, ctx, req, -r, hold_ino);
		} else {
			if (p) {
				memcpy(rr->msg.name, p->name, p->name_len + 1);
				rr->msg.mode = p->mode;
			}
			rr->msg.attach_flags = hold_ino ? RINGDEV_ATTACH_CREATE : 0;
			rr->default_pipe = args->default_pipe;
			rr->open_ino = args->ino;
			ctx->broker_knows = true;
			relay_submit(dev, rr);
		}
	}
	pthread_mutex_unlock(&dev->lock);
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

int device_attach(struct device *dev, struct open_ctx *ctx, const struct cred *cred, const struct attach_args *args)
{
	pthread_mutex_lock(&dev->lock);
	int r = device_attach_locked(dev, ctx, cred, args);
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
	else if (!access_permits(p, &ctx->cred, ctx_want(ctx)))
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
	if (!ctx->ctl)
		limit_uncharge(&dev->limits, LIMIT_OPENS, ctx->cred.uid, 1);
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
		mask = relay_poll_mask(dev);
		if (ph)
			ctx_poll_keep(dev, ctx, NULL, ph, mask);
	} else if (!ctx->pipe) {
		mask = POLLERR;
		if (ph)
			dev->ops->poll_destroy(ph);
	} else {
		mask = pipe_poll_mask(ctx->pipe, ctx);
		if (ph)
			ctx_poll_keep(dev, ctx, &ctx->pipe->pollers, ph, mask);
	}
	pthread_mutex_unlock(&dev->lock);
	return mask;
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

struct list_walk {
	struct device *dev;
	const struct cred *cred;
	struct name_list *list;
};

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

void device_stats_locked(struct device *dev, struct ringdev_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->pipes = pipe_table_count(&dev->table);
	s->opens = dev->nopens;
	s->parked_reads = dev->parked_count[PARKED_READ];
	s->parked_writes = dev->parked_count[PARKED_WRITE];
	s->parked_other = dev->parked_count[PARKED_OPEN] + dev->parked_count[PARKED_RELAY] +
			  dev->parked_count[PARKED_TRANSACT];
	s->parked_total = s->parked_reads + s->parked_writes + s->parked_other;
	s->pollers = dev->npollers;
	s->memory_used = limit_used(&dev->limits, LIMIT_MEMORY);
	s->memory_limit = dev->cfg.max_memory;
	s->pipes_limit = dev->cfg.max_pipes;
	s->bytes_in = dev->count.bytes_in;
	s->bytes_out = dev->count.bytes_out;
	s->writes = dev->count.writes;
	s->reads = dev->count.reads;
	s->dropped_bytes = dev->count.dropped_bytes;
	s->dropped_messages = dev->count.dropped_messages;
	s->interrupts = dev->count.interrupts;
	s->limit_pipes_hits = dev->limits.total_hits[LIMIT_PIPES];
	s->limit_memory_hits = dev->limits.total_hits[LIMIT_MEMORY] + dev->limits.uid_hits[LIMIT_MEMORY];
	s->pipes_created = dev->count.pipes_created;
	s->pipes_removed = dev->count.pipes_removed;
	s->broker_connected = dev->broker != NULL;
	s->relayed = dev->count.relayed;
	s->relay_rejected = dev->count.relay_rejected;
	s->relay_failed = dev->count.relay_failed;
	s->relay_timeouts = dev->count.relay_timeouts;
	s->relay_cancels = dev->count.relay_cancels;
	s->relay_broker_gone = dev->count.relay_broker_gone;
	s->limit_uid_pipes_hits = dev->limits.uid_hits[LIMIT_PIPES];
	s->limit_uid_opens_hits = dev->limits.uid_hits[LIMIT_OPENS];
	s->limit_parked_hits = dev->limits.total_hits[LIMIT_PARKED] + dev->limits.uid_hits[LIMIT_PARKED];
	s->flushed_bytes = dev->count.flushed_bytes;
}

void device_stats(struct device *dev, struct ringdev_stats *out)
{
	pthread_mutex_lock(&dev->lock);
	device_stats_locked(dev, out);
	pthread_mutex_unlock(&dev->lock);
}
