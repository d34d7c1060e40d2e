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
#include <stdio.h>
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

/* The pipe a FUSE open by inode names: 0 and *out that pipe or, if it went
 * between the kernel's LOOKUP and this OPEN, what an open of its name gets
 * at this moment. That is the pipe that has the name now; else, if the name
 * was removed (unlink, REMOVE), -ENOENT; else the pipe went only because it
 * was unused and empty (its last handle's RELEASE), and this open is served
 * as if it had come just before that release: the pipe is made again as it
 * was (owner, mode, settings; charged to its owner). The app never sees
 * ESTALE, which the kernel would retry only once. *hold_ino: the open
 * follows cred's own MKNOD of this very pipe. With `gone_name` (an open
 * about to wait for the broker) a pipe to be made again is not made yet:
 * *out is NULL and *gone_name its name; the answer's open_target makes it,
 * so an open that never gets an answer leaves nothing behind. */
static int open_target(struct device *dev, const struct cred *cred, uint64_t ino, struct pipe **out,
		       uint64_t *hold_ino, const char **gone_name)
{
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	int r = 0;
	const struct pipe_gone *g = p ? NULL : pipe_table_gone(&dev->table, ino);
	*hold_ino = 0;
	if (g) {
		p = pipe_table_find(&dev->table, g->name, strlen(g->name));
		if (!p && !g->unlinked && gone_name) {
			*out = NULL;
			*gone_name = g->name;
			return 0;
		}
		if (!p && !g->unlinked) {
			struct pipe_settings set = { .kind = g->kind, .policy = g->policy, .mode = g->mode,
						     .uid = g->uid, .gid = g->gid, .capacity = g->capacity };
			bool brokered = g->brokered;
			r = pipe_new(dev, &set, g->name, strlen(g->name), &p); /* g is overwritten now */
			if (r == 0)
				p->brokered = brokered;
		}
	}
	*out = p;
	if (p && admit_hold_valid(p, cred, p->ino))
		*hold_ino = p->ino;
	return r < 0 ? r : p ? 0 : -ENOENT;
}

/* An open that failed after open_target found (or made again) its pipe:
 * a pipe nothing uses any more goes now, as after any last close; then
 * the open fails (which lets a hold go, by inode). */
static void open_fail_on(struct device *dev, struct open_ctx *ctx, void *req, int err, uint64_t hold_ino,
			 struct pipe *p)
{
	if (p)
		pipe_collect(dev, p);
	device_open_fail(dev, ctx, req, err, hold_ino);
}

/* A CUSE open starts on the default pipe; one that refuses this caller
 * (or does not exist and may not be made) starts it detached instead, and
 * ATTACH decides later. */
static int open_default(struct device *dev, struct open_ctx *ctx, const struct admit *a)
{
	int r = admit_attach(dev, ctx, a);
	return r == -EACCES || r == -ENOENT ? 0 : r;
}

void device_open_builtin(struct device *dev, struct open_ctx *ctx, void *req, const struct open_args *args)
{
	int r;
	uint64_t hold_ino = 0;
	struct pipe *p = NULL;
	if (args->default_pipe) {
		struct admit a = { .cred = &ctx->cred, .name = dev->cfg.default_pipe,
				   .len = strlen(dev->cfg.default_pipe), .want = handle_want(ctx) };
		r = open_default(dev, ctx, &a);
	} else {
		r = open_target(dev, &ctx->cred, args->ino, &p, &hold_ino, NULL);
		struct admit a = { .cred = &ctx->cred, .pipe = p, .want = handle_want(ctx), .hold_ino = hold_ino };
		if (r == 0)
			r = admit_attach(dev, ctx, &a);
	}
	if (r < 0)
		open_fail_on(dev, ctx, req, -r, hold_ino, p);
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
		struct pipe *p = NULL;
		struct relay_req *rr = NULL;
		const char *gone_name = NULL;
		r = args->default_pipe ? 0 : open_target(dev, cred, args->ino, &p, &hold_ino, &gone_name);
		if (r == 0) /* else as with no broker: never relayed as a nameless open */
			rr = relay_open(dev, ctx, req, hold_ino, &r);
		if (!rr) {
			open_fail_on(dev, ctx, req, -r, hold_ino, p);
		} else {
			if (p) {
				memcpy(rr->msg.name, p->name, p->name_len + 1);
				rr->msg.mode = p->mode;
			} else if (gone_name) {
				snprintf(rr->msg.name, sizeof(rr->msg.name), "%s", gone_name);
			}
			rr->msg.attach_flags = hold_ino ? RINGDEV_ATTACH_CREATE : 0;
			rr->default_pipe = args->default_pipe;
			/* The inode the kernel named: the answer finds the pipe
			 * (or makes a gone one again) by it. */
			rr->open_ino = p ? p->ino : args->ino;
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

/* A broker's answer to an open: what it can change is admit.c's rule. It
 * may pick the pipe (a name: "mapped", created if missing, and if it
 * exists it must be the caller's unless the answer grants it), give the
 * settings of a pipe it creates, and mark such a pipe brokered. */
static void open_apply(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
		       const struct ringdev_ctl_answer *a)
{
	if (a->result < 0) {
		log_info("broker denied open of handle %llu (uid %u): %s", (unsigned long long)r->msg.handle, r->msg.uid,
			 strerror(-a->result));
		device_open_fail(dev, w->ctx, w->req, -a->result, w->hold_ino);
		return;
	}
	struct pipe_settings set;
	if (a->flags & RINGDEV_ANSWER_SETTINGS)
		set = answer_settings(a);
	struct admit ad = {
		.cred = &r->cred,
		.want = handle_want(w->ctx),
		.grant = a->flags & RINGDEV_ANSWER_GRANT,
		.brokered = a->flags & RINGDEV_ANSWER_BROKERED,
		.set = (a->flags & RINGDEV_ANSWER_SETTINGS) ? &set : NULL,
		.hold_ino = w->hold_ino,
	};
	int rc;
	if (a->name[0]) {
		ad.name = a->name;
		ad.len = strlen(a->name);
		ad.create = true;
		ad.mapped = r->default_pipe ||
			    !name_equal(a->name, ad.len, r->msg.name, strlen(r->msg.name), dev->cfg.case_sensitive);
		rc = admit_attach(dev, w->ctx, &ad);
	} else if (r->default_pipe) {
		ad.name = dev->cfg.default_pipe;
		ad.len = strlen(dev->cfg.default_pipe);
		ad.create = true;
		rc = open_default(dev, w->ctx, &ad);
	} else {
		/* The app's own pipe, as it is now: it may have gone while the
		 * broker decided (open_target then serves it by its name). */
		uint64_t hold_ino;
		rc = open_target(dev, &r->cred, r->open_ino, &ad.pipe, &hold_ino, NULL);
		if (rc == 0)
			rc = admit_attach(dev, w->ctx, &ad);
	}
	if (rc < 0)
		open_fail_on(dev, w->ctx, w->req, -rc, w->hold_ino, ad.pipe);
	else
		device_open_finish(dev, w->ctx, w->req, w->hold_ino);
}

static void open_builtin(struct device *dev, struct relay_req *r, const struct relay_waiter *w)
{
	struct open_args args = { .default_pipe = r->default_pipe, .ino = r->open_ino };
	device_open_builtin(dev, w->ctx, w->req, &args);
}

const struct relay_kind open_relay_kind = { .apply = open_apply, .builtin = open_builtin };
