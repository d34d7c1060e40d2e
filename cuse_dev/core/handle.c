/* SPDX-License-Identifier: MIT */
/*
 * handle.c - handles (open contexts, the NT FILE_OBJECT with its FsContext2):
 * made by an open, attached to one pipe at a time, moved by ATTACH, detached,
 * released. Attaching is where a handle meets the permission rule (access.c)
 * with the caller's credentials, or the broker's authority; leaving a pipe
 * ends what the handle waited for there.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"

#define FH_GEN_SHIFT 56
#define FH_ADDR_MASK ((UINT64_C(1) << FH_GEN_SHIFT) - 1)

void handles_init(struct handles *h)
{
	*h = (struct handles){ .next_id = 1 };
	list_init(&h->list);
}

void handles_deinit(struct handles *h)
{
	assert(list_empty(&h->list) && h->count == 0 && h->pollers == 0);
}

/* A new handle of cred, charged to its uid unless it is the control node's. */
int handle_new(struct device *dev, const struct cred *cred, int oflags, bool ctl, struct open_ctx **out)
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
	ctx->id = dev->handles.next_id++;
	ctx->fh = (uint64_t)dev->fh_gen << FH_GEN_SHIFT | (uint64_t)(uintptr_t)ctx;
	list_add_tail(&dev->handles.list, &ctx->dev_link);
	dev->handles.count++;
	*out = ctx;
	return 0;
}

int device_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out)
{
	pthread_mutex_lock(&dev->lock);
	int r = handle_new(dev, cred, oflags, false, out);
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
	else if (dev->relay.broker)
		r = -EBUSY;
	else if ((r = handle_new(dev, cred, oflags, true, out)) == 0) {
		dev->relay.broker = *out;
		log_info("broker connected (uid %u, pid %u)", cred->uid, cred->pid);
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

void handle_attach_pipe(struct device *dev, struct open_ctx *ctx, struct pipe *p)
{
	/* A hold is for its creator's first open only (admit.c): once a handle
	 * is on the pipe it is over, and the handle keeps the pipe from now
	 * on (a hold left to its deadline would keep a pipe its handles have
	 * all left, for seconds). */
	pipe_end_hold(p);
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
void handle_detach_pipe(struct device *dev, struct open_ctx *ctx, int err)
{
	struct pipe *p = ctx->pipe;
	if (!p)
		return;
	parked_end_pipe_bound(dev, ctx, err);
	/* A poller of a handle that leaves its pipe but stays open (DETACH,
	 * REMOVE, an ATTACH elsewhere) is woken: it polls again and sees
	 * POLLERR, or the new pipe's state. A released handle has none left. */
	if (err == EBADF)
		ctx_poll_drop(dev, ctx);
	else
		ctx_poll_wake(dev, ctx);
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

unsigned handle_want(const struct open_ctx *ctx)
{
	return (ctx->reader ? 4u : 0u) | (ctx->writer ? 2u : 0u);
}

int device_attach_locked(struct device *dev, struct open_ctx *ctx, const struct cred *cred,
			 const struct attach_args *a)
{
	int r = attach_args_check(a);
	if (r < 0)
		return r;
	struct pipe_settings set = pipe_settings_from_args(dev, a, cred->uid, cred->gid);
	struct admit ad = {
		.cred = cred,
		.name = a->name,
		.len = a->len,
		.want = handle_want(ctx),
		.create = a->flags & RINGDEV_ATTACH_CREATE,
		.excl = (a->flags & RINGDEV_ATTACH_CREATE) && (a->flags & RINGDEV_ATTACH_EXCL),
		.set = &set,
	};
	return admit_attach(dev, ctx, &ad);
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
	pthread_mutex_lock(&dev->lock);
	struct pipe *p = pipe_table_find_ino(&dev->table, ino);
	int r = -ENOENT;
	if (p) {
		struct admit ad = { .cred = &ctx->cred, .name = p->name, .len = p->name_len, .want = handle_want(ctx) };
		r = p->linked ? admit_attach(dev, ctx, &ad) : -ENOENT;
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

int device_detach_locked(struct device *dev, struct open_ctx *ctx)
{
	handle_detach_pipe(dev, ctx, ENXIO);
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
	handle_detach_pipe(dev, ctx, EBADF);
	parked_end_ctx(dev, ctx, EBADF);
	ctx_poll_drop(dev, ctx);
	list_unlink(&ctx->dev_link);
	dev->handles.count--;
	if (!ctx->ctl)
		limit_uncharge(&dev->limits, LIMIT_OPENS, ctx->cred.uid, 1);
	if (ctx->fh_restored)
		hashmap_remove(&dev->fh_restored, &ctx->fh_node);
	free(ctx);
}

/* ---- the kernel's names for handles (fh) ----
 *
 * A handle made by this image is named by its address, with this image's
 * generation in the top byte: the frontend turns it back without a lookup
 * or a lock. A handle an earlier image made keeps the fh the kernel holds
 * (handover.c); those are found through dev->fh_restored, under the lock,
 * for as long as they live. Addresses never reach the top byte (user
 * space ends below 2^56 on every Linux architecture). */

uint64_t device_ctx_fh(const struct open_ctx *ctx)
{
	return ctx->fh;
}

struct open_ctx *device_ctx_from_fh_locked(struct device *dev, uint64_t fh)
{
	for (struct hash_node *n = hashmap_bucket(&dev->fh_restored, hash_u64(fh)); n; n = n->next) {
		struct open_ctx *ctx = container_of(n, struct open_ctx, fh_node);
		if (ctx->fh == fh)
			return ctx;
	}
	return NULL;
}

uint64_t device_fh_name(const struct device *dev, const void *obj)
{
	return (uint64_t)dev->fh_gen << FH_GEN_SHIFT | (uint64_t)(uintptr_t)obj;
}

void *device_fh_object(const struct device *dev, uint64_t fh)
{
	return fh >> FH_GEN_SHIFT == dev->fh_gen ? (void *)(uintptr_t)(fh & FH_ADDR_MASK) : NULL;
}

struct open_ctx *device_ctx_from_fh(struct device *dev, uint64_t fh)
{
	if (fh >> FH_GEN_SHIFT == dev->fh_gen)
		return (struct open_ctx *)(uintptr_t)(fh & FH_ADDR_MASK);
	pthread_mutex_lock(&dev->lock);
	struct open_ctx *ctx = device_ctx_from_fh_locked(dev, fh);
	pthread_mutex_unlock(&dev->lock);
	return ctx;
}

int device_fh_adopt(struct device *dev, struct open_ctx *ctx, uint64_t fh)
{
	ctx->fh = fh;
	if (hashmap_insert(&dev->fh_restored, &ctx->fh_node, hash_u64(fh)) < 0)
		return -ENOMEM;
	ctx->fh_restored = true;
	return 0;
}

struct gen_probe {
	uint32_t gen;
	bool used;
};

static void gen_used(struct hash_node *n, void *data)
{
	struct gen_probe *g = data;
	if (container_of(n, struct open_ctx, fh_node)->fh >> FH_GEN_SHIFT == g->gen)
		g->used = true;
}

static void gen_mark(struct hash_node *n, void *data)
{
	uint8_t *used = data;
	unsigned g = (unsigned)(container_of(n, struct open_ctx, fh_node)->fh >> FH_GEN_SHIFT);
	used[g / 8] |= (uint8_t)(1u << (g % 8));
}

void device_fh_gens(struct device *dev, uint8_t used[32])
{
	memset(used, 0, 32);
	pthread_mutex_lock(&dev->lock);
	used[dev->fh_gen / 8] |= (uint8_t)(1u << (dev->fh_gen % 8));
	hashmap_for_each(&dev->fh_restored, gen_mark, used);
	for (unsigned i = 0; i < sizeof(dev->fh_held); i++)
		used[i] |= dev->fh_held[i];
	pthread_mutex_unlock(&dev->lock);
}

bool device_fh_gen_left(struct device *dev)
{
	uint8_t used[32];
	device_fh_gens(dev, used);
	for (unsigned i = 0; i < sizeof(used); i++)
		if (used[i] != 0xff)
			return true;
	return false;
}

static bool gen_held(const struct device *dev, unsigned g)
{
	return dev->fh_held[g / 8] & (1u << (g % 8));
}

uint64_t device_next_ino(struct device *dev)
{
	pthread_mutex_lock(&dev->lock);
	uint64_t n = dev->table.next_ino;
	pthread_mutex_unlock(&dev->lock);
	return n;
}

void device_ino_floor(struct device *dev, uint64_t floor)
{
	pthread_mutex_lock(&dev->lock);
	if (dev->table.next_ino < floor)
		dev->table.next_ino = floor;
	pthread_mutex_unlock(&dev->lock);
}

/* Both only before the device serves, while it is restored (the restore
 * calls the frontend's records with the lock held): no lock. */
void device_fh_hold(struct device *dev, uint64_t fh)
{
	unsigned g = (unsigned)(fh >> FH_GEN_SHIFT);
	dev->fh_held[g / 8] |= (uint8_t)(1u << (g % 8));
}

void device_fh_hold_gens(struct device *dev, const uint8_t gens[32])
{
	for (unsigned i = 0; i < sizeof(dev->fh_held); i++)
		dev->fh_held[i] |= gens[i];
}

int device_fh_avoid(struct device *dev, const uint8_t used[32])
{
	pthread_mutex_lock(&dev->lock);
	for (unsigned g = 0; g < 256; g++)
		if (!(used[g / 8] & (1u << (g % 8))) && !gen_held(dev, g)) {
			dev->fh_gen = g;
			pthread_mutex_unlock(&dev->lock);
			return 0;
		}
	pthread_mutex_unlock(&dev->lock);
	return -ENOSPC;
}

/* Called under the lock (device_restore). */
int device_fh_next_gen(struct device *dev, uint32_t old)
{
	for (uint32_t i = 1; i <= 256; i++) {
		struct gen_probe g = { .gen = (old + i) & 0xff };
		hashmap_for_each(&dev->fh_restored, gen_used, &g);
		if (!g.used && !gen_held(dev, g.gen)) {
			dev->fh_gen = g.gen;
			return 0;
		}
	}
	return -ENOSPC;
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

/* ---- the ATTACH kind of relayed request ---- */

static void reply_attach(struct device *dev, void *req, int rc)
{
	if (rc < 0)
		dev->ops->reply_error(req, -rc);
	else
		dev->ops->reply_ioctl(req, 0, NULL, 0);
}

/* A broker's answer to an app's ATTACH: it may refuse, or let the app's own
 * request go ahead with the settings of a pipe it creates; the request
 * itself (its name, CREATE, EXCL) and every rule of admit.c stand. */
static void attach_apply(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
			 const struct ringdev_ctl_answer *a)
{
	if (a->result < 0) {
		dev->ops->reply_error(w->req, -a->result);
		return;
	}
	struct pipe_settings set;
	bool with_settings = a->flags & RINGDEV_ANSWER_SETTINGS;
	if (with_settings)
		set = answer_settings(a);
	struct admit ad = {
		.cred = &r->cred,
		.name = r->msg.name,
		.len = strlen(r->msg.name),
		.want = handle_want(w->ctx),
		.create = r->msg.attach_flags & RINGDEV_ATTACH_CREATE,
		.excl = (r->msg.attach_flags & RINGDEV_ATTACH_CREATE) && (r->msg.attach_flags & RINGDEV_ATTACH_EXCL),
		.brokered = a->flags & RINGDEV_ANSWER_BROKERED,
		.set = with_settings ? &set : NULL,
	};
	if (!with_settings) {
		/* No settings from the broker: the app's own, as with no broker. */
		struct attach_args args = { .kind = r->msg.kind, .policy = r->msg.policy, .mode = r->msg.mode,
					    .capacity = r->msg.capacity };
		set = pipe_settings_from_args(dev, &args, r->cred.uid, r->cred.gid);
		ad.set = &set;
	}
	reply_attach(dev, w->req, admit_attach(dev, w->ctx, &ad));
}

static void attach_builtin(struct device *dev, struct relay_req *r, const struct relay_waiter *w)
{
	struct attach_args args = {
		.name = r->msg.name,
		.len = strlen(r->msg.name),
		.flags = r->msg.attach_flags,
		.kind = r->msg.kind,
		.policy = r->msg.policy,
		.mode = r->msg.mode,
		.capacity = r->msg.capacity,
	};
	reply_attach(dev, w->req, device_attach_locked(dev, w->ctx, &r->cred, &args));
}

const struct relay_kind handle_relay_attach = { .apply = attach_apply, .builtin = attach_builtin };
