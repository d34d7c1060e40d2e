/* SPDX-License-Identifier: MIT */
/*
 * open.c - the open flow: an app's open is decided at once by the built-in
 * policy, or waits for the broker (a parked request of kind open_parked), and
 * ends in exactly one of two ways, device_open_finish or device_open_fail.
 * The second is the one place of the rule "an open that never completed frees
 * its handle" (the kernel sends no release for it). On the FUSE mount an open
 * may follow a MKNOD of its creator (namespace.c): the pipe is held for that
 * open and let go however it ends.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"

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
		/* The inode the kernel looked up is gone: its last handle's
		 * RELEASE (asynchronous on FUSE, maybe served by another
		 * thread) or an unlink came between the LOOKUP and this OPEN.
		 * ESTALE makes the kernel walk the path again (LOOKUP_REVAL),
		 * so the app's open finds the name anew or creates it, instead
		 * of a false ENOENT for an O_CREAT open. */
		if (!p)
			r = -ESTALE;
		else if (!hold_ino && !access_permits(p, &ctx->cred, handle_want(ctx)))
			r = -EACCES;
		else
			r = 0;
		if (r == 0 && ctx->pipe != p)
			handle_attach_pipe(dev, ctx, p);
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
	int r = handle_new(dev, cred, oflags, false, &ctx);
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
const struct parked_ops open_parked = {
	.kind = PARKED_OPEN,
	.charged = true,
	.end = open_parked_end,
	.release = relay_parked_release,
};

/* ---- the OPEN kind of relayed request ---- */

static void open_apply(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
		       const struct ringdev_ctl_answer *a)
{
	if (a->result < 0) {
		log_info("broker denied open of handle %llu (uid %u): %s", (unsigned long long)r->msg.handle, r->msg.uid,
			 strerror(-a->result));
		device_open_fail(dev, w->ctx, w->req, -a->result, w->hold_ino);
		return;
	}
	const char *name = a->name[0] ? a->name : r->default_pipe ? dev->cfg.default_pipe : r->msg.name;
	/* A name the broker chose is created if missing; the app's own name
	 * only if it is being created (mknod) or the broker gave settings. */
	bool create = a->name[0] || (r->msg.attach_flags & RINGDEV_ATTACH_CREATE) || r->default_pipe ||
		      (a->flags & RINGDEV_ANSWER_SETTINGS);
	int rc = device_attach_as_broker(dev, w->ctx, &r->cred, name, strlen(name), create, false,
					 (a->flags & RINGDEV_ANSWER_SETTINGS) ? a : NULL, a->flags & RINGDEV_ANSWER_BROKERED);
	if (rc < 0)
		device_open_fail(dev, w->ctx, w->req, -rc, w->hold_ino);
	else
		device_open_finish(dev, w->ctx, w->req, w->hold_ino);
}

static void open_builtin(struct device *dev, struct relay_req *r, const struct relay_waiter *w)
{
	struct open_args args = { .default_pipe = r->default_pipe, .ino = r->open_ino };
	device_open_builtin(dev, w->ctx, w->req, &args);
}

const struct relay_kind open_relay_kind = { .apply = open_apply, .builtin = open_builtin };
