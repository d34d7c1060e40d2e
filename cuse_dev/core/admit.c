/* SPDX-License-Identifier: MIT */
/*
 * admit.c - the one rule for reaching a pipe, whoever decided that the
 * caller may try: an app's open with no broker, an ATTACH, a MKNOD or
 * RINGDEV_IOC_CREATE, and every broker answer to any of them. Each of those
 * paths fills a struct admit and calls admit_pipe; none has a branch of its
 * own that creates, re-owns or opens a pipe.
 *
 * What a broker's answer can change (ringdev(4), "What an answer can
 * change") is written here and nowhere else: it may refuse (the caller never
 * gets here), pick the pipe (`mapped`), give the settings of a pipe this
 * request creates (`set`), mark such a pipe brokered, and vouch for a mapped
 * pipe another user owns (`grant`). It cannot create where the device's mode
 * forbids the caller to, exceed a limit for whoever ends up charged, change
 * an existing pipe's owner, settings or brokering, or open an existing pipe
 * against its mode bits.
 *
 * A pipe made by MKNOD is held for its creator's first open (the kernel lets
 * the creator of a file open it whatever its mode says). That hold is worth
 * exactly one thing, that first open, and only while nothing about the pipe
 * changed: a new owner or mode, or another handle on it, voids it (pipe.c and
 * handle.c call pipe_void_hold; the pipe is still kept until the deadline).
 */
#include <errno.h>
#include <string.h>

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"

bool admit_hold_valid(const struct pipe *p, const struct cred *cred, uint64_t hold_ino)
{
	return hold_ino && p->ino == hold_ino && p->hold_deadline_ns && !p->hold_void && p->hold_uid == cred->uid;
}

/* A new pipe for a: the caller must be allowed to create on this device
 * (whatever a broker said), and its owner (the caller, or the answer's)
 * is charged within every limit (pipe_new). */
static int admit_create(struct device *dev, const struct admit *a, struct pipe **out)
{
	if (!access_may_create(dev, a->cred)) {
		log_debug("pipe %.*s: uid %u may not create pipes on this device", (int)a->len, a->name,
			  a->cred->uid);
		return -EACCES;
	}
	struct pipe_settings set = {
		.kind = RINGDEV_KIND_STREAM,
		.policy = RINGDEV_POLICY_BLOCK,
		.mode = 0600,
		.uid = a->cred->uid,
		.gid = a->cred->gid,
		.capacity = dev->cfg.ring_size,
	};
	if (a->set) {
		set = *a->set;
		if (!set.mode)
			set.mode = 0600;
		if (!set.capacity)
			set.capacity = dev->cfg.ring_size;
	}
	int r = pipe_new(dev, &set, a->name, a->len, out);
	if (r == 0 && a->brokered)
		(*out)->brokered = true;
	return r;
}

/* A pipe made by its creator's MKNOD, reached by that creator's first open
 * (hold valid): it is the pipe this open creates, so an answer's settings
 * apply to it, and the owner they name is charged within its limits. */
static int admit_claim_held(struct device *dev, struct pipe *p, const struct admit *a)
{
	if (a->set) {
		int r = pipe_set_owner(dev, p, a->set->uid, a->set->gid);
		if (r == 0 && a->set->capacity)
			r = pipe_set_capacity(dev, p, a->set->capacity);
		if (r < 0)
			return r;
		p->kind = a->set->kind;
		p->policy = a->set->policy;
		pipe_set_mode(p, a->set->mode ? a->set->mode : p->mode);
	}
	if (a->brokered)
		p->brokered = true;
	return 0;
}

struct pipe_settings answer_settings(const struct ringdev_ctl_answer *a)
{
	return (struct pipe_settings){ .kind = a->kind, .policy = a->policy, .mode = a->mode, .uid = a->uid,
				       .gid = a->gid, .capacity = a->capacity };
}

int admit_pipe(struct device *dev, const struct admit *a, struct pipe **out)
{
	int r;
	struct pipe *p = a->pipe;
	if (!p) {
		r = name_check(a->name, a->len);
		if (r < 0)
			return r;
		p = pipe_table_find(&dev->table, a->name, a->len);
	}
	if (!p) {
		if (!a->create)
			return -ENOENT;
		return admit_create(dev, a, out);
	}
	if (admit_hold_valid(p, a->cred, a->hold_ino)) {
		if (a->excl)
			return -EEXIST;
		if (p->provisional) {
			/* Its creator's open is allowed: the pipe is made now,
			 * unless another creator got the name meanwhile. */
			r = pipe_table_link(&dev->table, p);
			if (r < 0)
				return r;
			p->provisional = false;
		}
		r = admit_claim_held(dev, p, a);
		if (r == 0)
			*out = p;
		return r;
	}
	if (p->provisional)
		return -ENOENT; /* its creator's alone until the broker allowed it */
	if (a->excl)
		return -EEXIST;
	/* Existing pipes keep their owner, settings and brokering whatever an
	 * answer says, and open only as their mode bits allow. */
	if (a->mapped && !a->grant && p->uid != a->cred->uid && a->cred->uid != 0) {
		log_info("pipe %s: the broker mapped uid %u to a pipe of uid %u without a grant: refused", p->name,
			 a->cred->uid, p->uid);
		return -EACCES;
	}
	if (a->brokered && !p->brokered) {
		log_info("pipe %s: the broker answered brokered for an existing local pipe: refused", p->name);
		return -EBUSY;
	}
	if (!access_permits(p, a->cred, a->want))
		return -EACCES;
	*out = p;
	return 0;
}

int admit_attach(struct device *dev, struct open_ctx *ctx, const struct admit *a)
{
	struct pipe *p;
	int r = admit_pipe(dev, a, &p);
	if (r < 0)
		return r;
	if (ctx->pipe != p) {
		handle_detach_pipe(dev, ctx, ENXIO);
		handle_attach_pipe(dev, ctx, p);
	}
	return 0;
}
