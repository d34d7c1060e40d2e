/* SPDX-License-Identifier: MIT */
/*
 * relay.c - the inverted call: operations the device cannot decide alone
 * wait for a broker, which takes them with TRANSACT and answers by id.
 *
 * A relayed operation is two objects: the app's waiting request (a
 * parked_req of kind RELAY, on the app's handle, found by interrupts like any
 * other) and the relay_req the broker sees (pending in FIFO order until a
 * TRANSACT takes it, then indexed by id until answered). Either side can end
 * first: the app (release, detach: the broker gets a CANCEL notice), the
 * broker (answer, or going away: the app gets ECONNRESET), or time
 * (--broker-timeout while nobody took it: ETIMEDOUT). Broker TRANSACTs that
 * find nothing park too (kind TRANSACT) and are woken by the next request.
 *
 * An interrupt is a request to the broker, not an ending: once a broker took
 * the request it may already have done it (handed a reader's bytes over,
 * given a writer's bytes to a reader), so ending the call with EINTR there
 * and then would lose or duplicate data. The interrupted request stays
 * answerable (CANCELLING), the broker gets a CANCEL, and its answer ends the
 * call: -EINTR for "cancelled, nothing done", or the completed result. Only
 * --cancel-timeout ends it without the broker (EINTR, counted): the kernel
 * waits for an interrupted request uninterruptibly, so something must. A
 * request nobody took yet ends with EINTR at once.
 *
 * Answers are checked before anything is done with them: an unknown, late or
 * duplicate id is counted and ignored; a malformed answer fails only its own
 * request, with EIO for the app. Either way the TRANSACT's `refused` mask
 * tells the broker which of its answers reached no app, so it can keep the
 * data they carried. Payloads (a write's bytes, an ioctl's, a staged answer)
 * are charged to the app's uid like ring memory. Everything runs under the
 * device lock.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "log.h"
#include "name.h"

static const char *const type_names[] = { "?", "OPEN", "ATTACH", "IOCTL", "READ", "WRITE", "CANCEL", "RELEASE" };

static const char *type_name(uint32_t type)
{
	return type < sizeof(type_names) / sizeof(type_names[0]) ? type_names[type] : "?";
}

bool relay_active(const struct device *dev)
{
	return dev->relay.broker || dev->cfg.require_broker;
}

bool relay_is_notice(const struct relay_req *r)
{
	return r->msg.type == RINGDEV_CTL_CANCEL || r->msg.type == RINGDEV_CTL_RELEASE;
}

struct relay_req *relay_find(struct device *dev, uint64_t id)
{
	uint64_t h = hash_u64(id);
	for (struct hash_node *n = hashmap_bucket(&dev->relay.ids, h); n; n = n->next) {
		struct relay_req *r = container_of(n, struct relay_req, id_node);
		if (r->msg.id == id)
			return r;
	}
	return NULL;
}

static struct relay_req *relay_alloc(struct device *dev, uint32_t type)
{
	struct relay_req *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	list_init(&r->queue_link);
	r->msg.id = dev->relay.next_id++;
	r->msg.type = type;
	return r;
}

/* Forget r: off the queue and the index, memory freed and uncharged. */
static void relay_free(struct device *dev, struct relay_req *r)
{
	list_unlink(&r->queue_link);
	if (!relay_is_notice(r))
		hashmap_remove(&dev->relay.ids, &r->id_node);
	if (r->charged)
		limit_uncharge(&dev->limits, LIMIT_MEMORY, r->cred.uid, r->charged);
	free(r->payload);
	free(r->staged);
	free(r->staged_map);
	free(r);
}

/* Charge n payload bytes of r to the app's uid: 0 or -ENOBUFS (counted as a
 * memory limit hit). A payload is memory the app makes the daemon hold, like
 * ring memory; the call fails rather than grow the daemon past the limits. */
static int relay_charge(struct device *dev, struct relay_req *r, uint64_t n)
{
	if (n == 0)
		return 0;
	int e = limit_charge(&dev->limits, LIMIT_MEMORY, r->cred.uid, n, "a brokered call's payload");
	if (e < 0)
		return e == -ENOMEM ? e : -ENOBUFS;
	r->charged += n;
	return 0;
}

/* A request for the broker on behalf of cred (the process making the call)
 * about handle ctx, whose caller req waits for it (kind OPEN or RELAY).
 * NULL with *err (positive) when it cannot wait. */
static struct relay_req *relay_new(struct device *dev, uint32_t type, const struct parked_ops *kind,
				   struct open_ctx *ctx, const struct cred *cred, void *req, int *err)
{
	/* An interrupt that came before the request parks (libfuse runs the
	 * interrupt callback at once, in fuse_req_interrupt_func, when the
	 * kernel's INTERRUPT was first) found nothing to end; the kernel sends
	 * no second one, so a request parked now would wait for the broker
	 * with its caller unkillable. It ends here instead. */
	if (dev->ops->req_interrupted(req)) {
		dev->count.interrupts++;
		*err = EINTR;
		return NULL;
	}
	struct relay_req *r = relay_alloc(dev, type);
	if (!r) {
		*err = ENOMEM;
		return NULL;
	}
	if (hashmap_insert(&dev->relay.ids, &r->id_node, hash_u64(r->msg.id)) < 0) {
		free(r);
		*err = ENOMEM;
		return NULL;
	}
	struct parked_req *p = parked_new(dev, kind, req, ctx, err);
	if (!p) {
		hashmap_remove(&dev->relay.ids, &r->id_node);
		free(r);
		return NULL;
	}
	p->u.relay.relay = r;
	r->parked = p;
	r->cred = *cred;
	r->msg.handle = ctx->id;
	r->msg.uid = cred->uid;
	r->msg.gid = cred->gid;
	r->msg.pid = cred->pid;
	r->msg.oflags = (uint32_t)ctx->oflags;
	if (ctx->pipe)
		memcpy(r->msg.name, ctx->pipe->name, ctx->pipe->name_len + 1);
	return r;
}

struct relay_req *relay_open(struct device *dev, struct open_ctx *ctx, void *req, uint64_t hold_ino, int *err)
{
	int e;
	struct relay_req *r = relay_new(dev, RINGDEV_CTL_OPEN, &open_parked, ctx, &ctx->cred, req, &e);
	if (!r) {
		*err = -e;
		return NULL;
	}
	r->parked->u.relay.hold_ino = hold_ino;
	return r;
}

struct relay_req *relay_create(struct device *dev, struct open_ctx *ctx, void *req, const struct relay_kind *kind,
			       int *err)
{
	int e;
	struct relay_req *r = relay_new(dev, RINGDEV_CTL_ATTACH, &open_parked, ctx, &ctx->cred, req, &e);
	if (!r) {
		*err = -e;
		return NULL;
	}
	r->kind = kind;
	r->msg.attach_flags = RINGDEV_ATTACH_CREATE | RINGDEV_ATTACH_EXCL;
	return r;
}

/* Reads and writes of a brokered pipe end when the handle leaves it;
 * ATTACH and IOCTL belong to the handle. */
static bool relayed_on_the_pipe(const struct parked_req *p)
{
	const struct relay_req *r = p->u.relay.relay;
	return r && (r->msg.type == RINGDEV_CTL_READ || r->msg.type == RINGDEV_CTL_WRITE);
}

void relay_parked_release(struct device *dev, struct parked_req *p)
{
	struct relay_req *r = p->u.relay.relay;
	if (r) {
		/* Ended before the broker answered: the broker may need to know. */
		p->u.relay.relay = NULL;
		r->parked = NULL;
		relay_abandon(dev, r);
	}
}

static void relay_cancel_begin(struct device *dev, struct relay_req *r);

/* An interrupt (the only early end with EINTR) of a request a broker took
 * asks the broker and keeps waiting; every other early end is final. */
static void relay_parked_end(struct device *dev, struct parked_req *p, int err)
{
	struct relay_req *r = p->u.relay.relay;
	if (err == EINTR && r && r->state != RELAY_PENDING) {
		if (r->state == RELAY_TAKEN)
			relay_cancel_begin(dev, r);
		return; /* a second interrupt changes nothing */
	}
	dev->ops->reply_error(p->req, err);
	parked_free(dev, p);
}

const struct parked_ops relay_parked = {
	.kind = PARKED_RELAY,
	.charged = true,
	.end = relay_parked_end,
	.release = relay_parked_release,
	.pipe_bound = relayed_on_the_pipe,
};

static void transact_release(struct device *dev, struct parked_req *p)
{
	free(p->u.transact.t);
}

/* An interrupted TRANSACT returns as if its wait had ended: the answers it
 * carried were applied, and its `refused` mask must reach the broker. */
static void transact_end(struct device *dev, struct parked_req *p, int err)
{
	if (err == EINTR) {
		struct ringdev_ctl_transact *t = p->u.transact.t;
		t->nrequests = 0;
		dev->ops->reply_ioctl(p->req, 0, t, sizeof(*t));
	} else {
		dev->ops->reply_error(p->req, err);
	}
	parked_free(dev, p);
}

/* A broker's TRANSACT is never refused for the parked limits: the control
 * channel must always be able to drain what waits. */
const struct parked_ops relay_parked_transact = {
	.kind = PARKED_TRANSACT,
	.end = transact_end,
	.release = transact_release,
};

unsigned relay_poll_mask(const struct device *dev)
{
	return list_empty(&dev->relay.pending) ? 0 : POLLIN | POLLRDNORM;
}

/* Hand pending requests to parked TRANSACTs, as many as they take. */
static void relay_wake(struct device *dev);

void relay_submit(struct device *dev, struct relay_req *r)
{
	if (r->parked && dev->cfg.broker_timeout_ms) {
		r->deadline_ns = now_ns() + (uint64_t)dev->cfg.broker_timeout_ms * 1000000u;
		timer_kick(dev);
	}
	list_add_tail(&dev->relay.pending, &r->queue_link);
	log_debug("relay %llu: %s queued (handle %llu, uid %u)", (unsigned long long)r->msg.id, type_name(r->msg.type),
		  (unsigned long long)r->msg.handle, r->msg.uid);
	relay_wake(dev);
	if (dev->relay.broker && !list_empty(&dev->relay.pending))
		ctx_poll_wake(dev, dev->relay.broker); /* a broker polling the control node */
}

static void relay_notice(struct device *dev, uint32_t type, uint64_t handle, uint64_t ref)
{
	if (!dev->relay.broker)
		return; /* notices are for the broker that saw the request */
	struct relay_req *r = relay_alloc(dev, type);
	if (!r) {
		log_warn("relay: out of memory: %s notice for handle %llu lost", type_name(type),
			 (unsigned long long)handle);
		return;
	}
	r->msg.handle = handle;
	r->msg.ref = ref;
	relay_submit(dev, r);
}

void relay_notice_release(struct device *dev, struct open_ctx *ctx)
{
	if (ctx->broker_knows)
		relay_notice(dev, RINGDEV_CTL_RELEASE, ctx->id, 0);
}

void relay_abandon(struct device *dev, struct relay_req *r)
{
	if (r->state != RELAY_CANCELLING)
		dev->count.relay_cancels++;
	if (r->state == RELAY_TAKEN)
		relay_notice(dev, RINGDEV_CTL_CANCEL, r->msg.handle, r->msg.id);
	log_debug("relay %llu: %s abandoned by the app", (unsigned long long)r->msg.id, type_name(r->msg.type));
	relay_free(dev, r);
}

static uint32_t cancel_timeout_ms(const struct device *dev)
{
	return dev->cfg.cancel_timeout_ms ? dev->cfg.cancel_timeout_ms : DEVICE_CANCEL_TIMEOUT_MS;
}

/* The app interrupted r, which a broker holds: ask the broker (CANCEL) and
 * wait for its answer, --cancel-timeout at most (relay_expire). */
static void relay_cancel_begin(struct device *dev, struct relay_req *r)
{
	dev->count.relay_cancels++;
	r->state = RELAY_CANCELLING;
	r->deadline_ns = now_ns() + (uint64_t)cancel_timeout_ms(dev) * 1000000u;
	log_debug("relay %llu: %s interrupted: CANCEL sent, %u ms for the broker's answer",
		  (unsigned long long)r->msg.id, type_name(r->msg.type), cancel_timeout_ms(dev));
	relay_notice(dev, RINGDEV_CTL_CANCEL, r->msg.handle, r->msg.id);
	timer_kick(dev);
}

/* Unhook the app's waiting request from r, so ending it does not abandon r. */
static struct parked_req *relay_unhook(struct relay_req *r)
{
	struct parked_req *p = r->parked;
	if (p) {
		p->u.relay.relay = NULL;
		r->parked = NULL;
	}
	return p;
}

/* End the app's side with err and forget r (no notice to the broker). */
static void relay_end(struct device *dev, struct relay_req *r, int err)
{
	struct parked_req *p = relay_unhook(r);
	relay_free(dev, r);
	if (p)
		parked_end(dev, p, err);
}

/* Copy r into the broker's request slot and mark it taken. */
static void relay_take(struct device *dev, struct relay_req *r, struct ringdev_ctl_request *out)
{
	list_unlink(&r->queue_link);
	*out = r->msg;
	if (r->payload) {
		size_t n = r->msg.size < RINGDEV_CTL_INLINE ? r->msg.size : RINGDEV_CTL_INLINE;
		memcpy(out->data, r->payload, n);
		out->inline_size = (uint32_t)n;
	}
	if (relay_is_notice(r)) {
		relay_free(dev, r);
		return;
	}
	list_add_tail(&dev->relay.taken, &r->queue_link);
	r->state = RELAY_TAKEN;
	r->deadline_ns = 0;
	dev->count.relayed++;
}

static void transact_fill(struct device *dev, struct ringdev_ctl_transact *t)
{
	struct list_node *first;
	t->nrequests = 0;
	while (t->nrequests < t->max_requests && (first = list_first(&dev->relay.pending)))
		relay_take(dev, list_entry(first, struct relay_req, queue_link), &t->requests[t->nrequests++]);
}

static void relay_wake(struct device *dev)
{
	struct list_node *first;
	while (!list_empty(&dev->relay.pending) && (first = list_first(&dev->relay.transacts))) {
		struct parked_req *p = list_entry(first, struct parked_req, queue_link);
		struct ringdev_ctl_transact *t = p->u.transact.t;
		transact_fill(dev, t);
		dev->ops->reply_ioctl(p->req, 0, t, sizeof(*t));
		parked_free(dev, p);
	}
}

/* ---- answers ---- */

/* Mark bytes [from, to) of r's staged payload as written. */
static void staged_mark(struct relay_req *r, size_t from, size_t to)
{
	uint64_t *map = r->staged_map;
	for (; from < to && (from & 63); from++)
		map[from >> 6] |= 1ull << (from & 63);
	for (; to - from >= 64; from += 64)
		map[from >> 6] = ~0ull;
	for (; from < to; from++)
		map[from >> 6] |= 1ull << (from & 63);
}

/* Were bytes 0..n of r's payload all STAGEd, in whatever order? */
static bool staged_covers(const struct relay_req *r, size_t n)
{
	const uint64_t *map = r->staged_map;
	if (!map || n > r->staged_limit)
		return false;
	size_t i = 0;
	for (; i + 64 <= n; i += 64)
		if (map[i >> 6] != ~0ull)
			return false;
	for (; i < n; i++)
		if (!(map[i >> 6] >> (i & 63) & 1))
			return false;
	return true;
}

/* The out-payload of an answer (READ, IOCTL): staged or inline, NULL if short. */
static const uint8_t *answer_payload(const struct relay_req *r, const struct ringdev_ctl_answer *a)
{
	static const uint8_t empty[1];
	if (a->size == 0)
		return empty; /* nothing to stage: a READ at end of file, an empty out-payload */
	if (a->flags & RINGDEV_ANSWER_STAGED)
		return staged_covers(r, a->size) ? r->staged : NULL;
	return a->size <= RINGDEV_CTL_INLINE ? a->data : NULL;
}

static bool settings_ok(const struct ringdev_ctl_answer *a)
{
	if (!(a->flags & RINGDEV_ANSWER_SETTINGS))
		return true;
	return settings_kind_ok(a->kind) && settings_policy_ok(a->policy) && settings_mode_ok(a->mode) &&
	       (a->capacity == 0 || settings_capacity_ok(a->capacity));
}

/* Why an answer cannot be used, or NULL. */
static const char *answer_problem(const struct relay_req *r, const struct ringdev_ctl_answer *a)
{
	uint32_t type = r->msg.type;
	if (a->flags & ~RINGDEV_ANSWER_FLAGS_ALL)
		return "unknown flags";
	if (!ioctl_all_zero(a->reserved, sizeof(a->reserved)))
		return "reserved fields set";
	if (a->result < -RINGDEV_ERRNO_MAX)
		return "errno out of range 1..511"; /* the kernel refuses to carry it: the app would hang */
	/* ENOSYS is no errno to the kernel but "this file system has no such
	 * operation": on an OPEN it stops sending OPEN for the whole mount or
	 * node, so every later open would skip the daemon and the broker. Only
	 * an ioctl may carry it (the kernel turns it into ENOTTY). */
	if (a->result == -ENOSYS && type != RINGDEV_CTL_IOCTL)
		return "ENOSYS answers only an IOCTL";
	if ((a->flags & RINGDEV_ANSWER_BUILTIN) && (a->result != 0 || a->flags != RINGDEV_ANSWER_BUILTIN))
		return "BUILTIN takes no result, name or other flags"; /* BUILTIN with -errno: which one? */
	if (a->result < 0)
		return NULL; /* an error answer needs nothing else */
	if ((a->flags & RINGDEV_ANSWER_GRANT) && type != RINGDEV_CTL_OPEN && type != RINGDEV_CTL_ATTACH)
		return "GRANT answers only an OPEN or ATTACH";
	if (a->flags & RINGDEV_ANSWER_BUILTIN) {
		if (type != RINGDEV_CTL_OPEN && type != RINGDEV_CTL_ATTACH)
			return "BUILTIN answers only an OPEN or ATTACH";
		if (a->result != 0 || a->flags != RINGDEV_ANSWER_BUILTIN || a->name[0])
			return "BUILTIN takes no result, name or other flags";
		return NULL;
	}
	switch (type) {
	case RINGDEV_CTL_OPEN:
	case RINGDEV_CTL_ATTACH: {
		if (a->result != 0)
			return "OPEN/ATTACH result must be 0 or -errno";
		if (!settings_ok(a))
			return "bad settings";
		const char *nul = memchr(a->name, '\0', sizeof(a->name));
		if (!nul)
			return "name not terminated";
		if (type == RINGDEV_CTL_OPEN && nul != a->name && name_check(a->name, (size_t)(nul - a->name)) < 0)
			return "invalid pipe name";
		return NULL;
	}
	case RINGDEV_CTL_READ:
		if ((uint32_t)a->result > r->msg.size)
			return "READ result larger than wanted";
		if (a->size != (uint32_t)a->result)
			return "READ size differs from result";
		return answer_payload(r, a) ? NULL : "READ payload missing (not inline, not staged)";
	case RINGDEV_CTL_WRITE:
		return (uint32_t)a->result > r->msg.size ? "WRITE result larger than offered" : NULL;
	case RINGDEV_CTL_IOCTL:
		if (a->size > r->msg.out_size)
			return "IOCTL out-payload larger than the command's";
		return answer_payload(r, a) ? NULL : "IOCTL payload missing (not inline, not staged)";
	default:
		return "not answerable";
	}
}

/* What waits for an answer, taken off r: its handle and request. */
static struct relay_waiter relay_take_waiter(struct device *dev, struct relay_req *r)
{
	struct parked_req *p = relay_unhook(r);
	struct relay_waiter w = { p->ctx, p->req, p->u.relay.hold_ino };
	parked_free(dev, p);
	return w;
}

/* READ, WRITE and IOCTL are the relay's own: the answer is a payload or a
 * count for the app. OPEN and ATTACH change the device: their kinds come
 * from the device's modules (open.c, handle.c). */
static void payload_apply(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
			  const struct ringdev_ctl_answer *a)
{
	uint32_t type = r->msg.type;
	if (a->result < 0) {
		dev->ops->reply_error(w->req, -a->result);
	} else if (type == RINGDEV_CTL_IOCTL) {
		uint8_t *out = calloc(1, r->msg.out_size ? r->msg.out_size : 1);
		if (!out) {
			dev->ops->reply_error(w->req, ENOMEM);
		} else {
			memcpy(out, answer_payload(r, a), a->size);
			dev->ops->reply_ioctl(w->req, a->result, out, r->msg.out_size);
			free(out);
		}
	} else if (type == RINGDEV_CTL_READ) {
		struct iovec iov = { (void *)answer_payload(r, a), a->size };
		dev->ops->reply_data(w->req, &iov, a->size ? 1 : 0);
	} else {
		dev->ops->reply_written(w->req, (size_t)a->result);
	}
}

/* With no broker: device-specific ioctls are unknown, brokered reads and
 * writes have nobody at the other end. */
static void payload_builtin(struct device *dev, struct relay_req *r, const struct relay_waiter *w)
{
	dev->ops->reply_error(w->req, r->msg.type == RINGDEV_CTL_IOCTL ? ENOTTY : ENOTCONN);
}

static const struct relay_kind payload_kind = { .apply = payload_apply, .builtin = payload_builtin };

static const struct relay_kind *kind_of(const struct relay_req *r)
{
	if (r->kind)
		return r->kind;
	switch (r->msg.type) {
	case RINGDEV_CTL_OPEN:
		return &open_relay_kind;
	case RINGDEV_CTL_ATTACH:
		return &handle_relay_attach;
	default:
		return &payload_kind;
	}
}

/* Decide r as if there never was a broker (it went away, or answered
 * BUILTIN), and forget it. */
static void relay_builtin(struct device *dev, struct relay_req *r)
{
	struct relay_waiter w = relay_take_waiter(dev, r);
	kind_of(r)->builtin(dev, r, &w);
	relay_free(dev, r);
}

static void apply_answer(struct device *dev, struct relay_req *r, const struct ringdev_ctl_answer *a)
{
	if (a->flags & RINGDEV_ANSWER_BUILTIN) {
		relay_builtin(dev, r); /* the broker defers to the owner and mode bits */
		return;
	}
	struct relay_waiter w = relay_take_waiter(dev, r);
	kind_of(r)->apply(dev, r, &w, a);
	relay_free(dev, r);
}

/* Apply one answer; false if it reached no app (refused). */
static bool relay_apply(struct device *dev, const struct ringdev_ctl_answer *a, uint32_t *rejected,
			uint32_t *failed)
{
	struct relay_req *r = relay_find(dev, a->id);
	if (!r || r->state == RELAY_PENDING) {
		(*rejected)++;
		dev->count.relay_rejected++;
		log_debug("relay: answer to unknown, late or duplicate id %llu refused", (unsigned long long)a->id);
		return false;
	}
	const char *problem = answer_problem(r, a);
	if (problem) {
		(*failed)++;
		dev->count.relay_failed++;
		log_info("relay %llu: malformed %s answer (%s): the app gets EIO", (unsigned long long)a->id,
			 type_name(r->msg.type), problem);
		relay_end(dev, r, EIO);
		return false;
	}
	log_debug("relay %llu: %s answered%s: %d", (unsigned long long)a->id, type_name(r->msg.type),
		  r->state == RELAY_CANCELLING ? " after its CANCEL" : "", a->result);
	apply_answer(dev, r, a);
	return true;
}

/* ---- the control node's commands ---- */

void relay_transact(struct device *dev, struct open_ctx *ctl, void *req, struct ringdev_ctl_transact *t)
{
	t->rejected = t->failed = t->refused = 0;
	for (uint32_t i = 0; i < t->nanswers; i++)
		if (!relay_apply(dev, &t->answers[i], &t->rejected, &t->failed))
			t->refused |= 1u << i;
	transact_fill(dev, t);
	/* An interrupted call returns its outcome all the same, with no request:
	 * the answers were applied and the broker must learn which were refused. */
	if (t->nrequests > 0 || t->timeout_ms == 0 || t->max_requests == 0 || dev->ops->req_interrupted(req)) {
		dev->ops->reply_ioctl(req, 0, t, sizeof(*t));
		free(t);
		return;
	}
	int err;
	struct parked_req *p = parked_new(dev, &relay_parked_transact, req, ctl, &err);
	if (!p) {
		free(t);
		dev->ops->reply_error(req, ENOMEM);
		return;
	}
	p->u.transact.t = t;
	p->u.transact.deadline_ns = now_ns() + (uint64_t)t->timeout_ms * 1000000u;
	list_add_tail(&dev->relay.transacts, &p->queue_link);
	timer_kick(dev);
}

/* A request this broker took and has not answered (cancelling or not). */
static struct relay_req *taken(struct device *dev, uint64_t id)
{
	struct relay_req *r = relay_find(dev, id);
	return r && r->state != RELAY_PENDING ? r : NULL;
}

int relay_fetch(struct device *dev, struct ringdev_ctl_bulk *out)
{
	struct relay_req *r = taken(dev, out->id);
	if (!r || !r->payload)
		return -ENOENT;
	if (out->offset > r->msg.size)
		return -EINVAL;
	size_t n = r->msg.size - out->offset;
	if (n > out->size)
		n = out->size;
	if (n > RINGDEV_CTL_BULK)
		n = RINGDEV_CTL_BULK;
	memcpy(out->data, r->payload + out->offset, n);
	out->size = (uint32_t)n;
	return 0;
}

/* The staged payload's buffer and its map, allocated and charged to the
 * app at the first STAGE. If that fails, the app's call ends with the error
 * (ENOBUFS: over its memory limits) and the broker learns that the request
 * is gone (ENOENT), as if it had been cancelled. */
static int stage_buffer(struct device *dev, struct relay_req *r)
{
	size_t map_size = (r->staged_limit + 63) / 64 * sizeof(uint64_t);
	int e = relay_charge(dev, r, r->staged_limit + map_size);
	if (e == 0) {
		r->staged = malloc(r->staged_limit);
		r->staged_map = calloc(1, map_size);
		if (!r->staged || !r->staged_map)
			e = -ENOMEM;
	}
	if (e < 0) {
		log_info("relay %llu: %s: no room for the staged answer of %zu bytes: the app gets %s",
			 (unsigned long long)r->msg.id, type_name(r->msg.type), r->staged_limit, strerror(-e));
		relay_end(dev, r, -e);
		return -ENOENT;
	}
	return 0;
}

int relay_stage(struct device *dev, const struct ringdev_ctl_bulk *b)
{
	struct relay_req *r = taken(dev, b->id);
	if (!r || !r->staged_limit)
		return -ENOENT;
	if (b->offset > r->staged_limit || b->size > r->staged_limit - b->offset)
		return -EINVAL;
	if (!r->staged) {
		int e = stage_buffer(dev, r);
		if (e < 0)
			return e;
	}
	/* Pieces may come in any order and overlap (several broker threads):
	 * the answer is whole once they cover 0..size. */
	memcpy(r->staged + b->offset, b->data, b->size);
	staged_mark(r, b->offset, b->offset + b->size);
	return 0;
}

/* ---- app operations that go to the broker ---- */

void relay_attach(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
		  const struct ringdev_attach *a)
{
	int err;
	struct relay_req *r = relay_new(dev, RINGDEV_CTL_ATTACH, &relay_parked, ctx, cred, req, &err);
	if (!r) {
		dev->ops->reply_error(req, err);
		return;
	}
	memcpy(r->msg.name, a->name, sizeof(a->name));
	r->msg.attach_flags = a->flags;
	r->msg.kind = a->kind;
	r->msg.policy = a->policy;
	r->msg.mode = a->mode;
	r->msg.capacity = a->capacity;
	ctx->broker_knows = true;
	relay_submit(dev, r);
}

void relay_device_ioctl(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
			unsigned int cmd, const void *in, size_t in_size, size_t out_size)
{
	int err;
	struct relay_req *r = relay_new(dev, RINGDEV_CTL_IOCTL, &relay_parked, ctx, cred, req, &err);
	if (!r) {
		dev->ops->reply_error(req, err);
		return;
	}
	r->msg.cmd = cmd;
	r->msg.out_size = (uint32_t)out_size;
	r->staged_limit = out_size;
	if (in_size) {
		int e = relay_charge(dev, r, in_size);
		if (e < 0) {
			relay_end(dev, r, -e);
			return;
		}
		r->payload = malloc(in_size);
		if (!r->payload) {
			relay_end(dev, r, ENOMEM);
			return;
		}
		memcpy(r->payload, in, in_size);
		r->msg.size = (uint32_t)in_size;
	}
	relay_submit(dev, r);
}

void relay_io(struct device *dev, struct open_ctx *ctx, void *req, uint32_t type, const void *buf, size_t size)
{
	if (!relay_active(dev)) {
		dev->ops->reply_error(req, ENOTCONN);
		return;
	}
	if (size > UINT32_MAX)
		size = UINT32_MAX;
	/* A read or write acts with the authority of the fd, as read(2) does:
	 * it carries the credentials of the handle's opener. */
	int err;
	struct relay_req *r = relay_new(dev, type, &relay_parked, ctx, &ctx->cred, req, &err);
	if (!r) {
		dev->ops->reply_error(req, err);
		return;
	}
	r->msg.size = (uint32_t)size;
	if (type == RINGDEV_CTL_READ) {
		r->staged_limit = size;
	} else {
		int e = relay_charge(dev, r, size);
		if (e < 0) {
			relay_end(dev, r, -e);
			return;
		}
		r->payload = malloc(size ? size : 1);
		if (!r->payload) {
			relay_end(dev, r, ENOMEM);
			return;
		}
		memcpy(r->payload, buf, size);
	}
	relay_submit(dev, r);
}

/* ---- ends ---- */

static void drop_pending_notices(struct device *dev)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->relay.pending) {
		struct relay_req *r = list_entry(pos, struct relay_req, queue_link);
		if (relay_is_notice(r))
			relay_free(dev, r);
	}
}

/* End every request on `queue`, one at a time from its head: ending one
 * (an open that frees its handle, a built-in ATTACH that moves it) may end
 * others, so nothing is remembered from one step to the next. */
static size_t end_queue(struct device *dev, struct list_node *queue, int err)
{
	size_t n = 0;
	struct list_node *first;
	while ((first = list_first(queue))) {
		struct relay_req *r = list_entry(first, struct relay_req, queue_link);
		if (err)
			/* Even a call its app was cancelling: the broker may
			 * have done it before it went, so "nothing done"
			 * (EINTR) would be a guess; the app learns the outcome
			 * is unknown, as for any request the broker held. */
			relay_end(dev, r, err);
		else
			relay_builtin(dev, r);
		n++;
	}
	return n;
}

void relay_ctl_release(struct device *dev, struct open_ctx *ctl)
{
	parked_end_ctx(dev, ctl, EBADF); /* its own TRANSACTs, if any */
	ctx_poll_drop(dev, ctl);
	dev->relay.broker = NULL;
	drop_pending_notices(dev);
	size_t gone = end_queue(dev, &dev->relay.taken, ECONNRESET);
	if (!dev->cfg.require_broker)
		end_queue(dev, &dev->relay.pending, 0); /* nobody took them: the built-in policy decides */
	dev->count.relay_broker_gone += gone;
	log_info("broker gone: %zu request(s) it held ended with ECONNRESET", gone);
}

void relay_shutdown(struct device *dev)
{
	struct list_node *first;
	while ((first = list_first(&dev->relay.transacts)))
		parked_end(dev, list_entry(first, struct parked_req, queue_link), ESHUTDOWN);
	drop_pending_notices(dev);
	end_queue(dev, &dev->relay.taken, ESHUTDOWN);
	end_queue(dev, &dev->relay.pending, ESHUTDOWN);
}

void relay_init(struct relay *r)
{
	*r = (struct relay){ .ids = HASHMAP_INIT, .next_id = 1 };
	list_init(&r->pending);
	list_init(&r->taken);
	list_init(&r->transacts);
}

void relay_deinit(struct relay *r)
{
	assert(!r->broker && list_empty(&r->pending) && list_empty(&r->taken) && list_empty(&r->transacts) &&
	       r->ids.count == 0);
	hashmap_destroy(&r->ids);
}

uint64_t relay_expire(struct device *dev, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->relay.pending) {
		struct relay_req *r = list_entry(pos, struct relay_req, queue_link);
		if (!r->deadline_ns)
			continue;
		if (r->deadline_ns <= now) {
			dev->count.relay_timeouts++;
			log_info("relay %llu: %s not taken by a broker within %u ms", (unsigned long long)r->msg.id,
				 type_name(r->msg.type), dev->cfg.broker_timeout_ms);
			relay_end(dev, r, ETIMEDOUT);
		} else if (r->deadline_ns < next) {
			next = r->deadline_ns;
		}
	}
	list_for_each_safe(pos, tmp, &dev->relay.taken) {
		struct relay_req *r = list_entry(pos, struct relay_req, queue_link);
		if (r->state != RELAY_CANCELLING)
			continue;
		if (r->deadline_ns <= now) {
			dev->count.relay_cancel_timeouts++;
			log_info("relay %llu: %s: the broker did not answer its CANCEL within %u ms: the app gets EINTR",
				 (unsigned long long)r->msg.id, type_name(r->msg.type), cancel_timeout_ms(dev));
			relay_end(dev, r, EINTR);
		} else if (r->deadline_ns < next) {
			next = r->deadline_ns;
		}
	}
	list_for_each_safe(pos, tmp, &dev->relay.transacts) {
		struct parked_req *p = list_entry(pos, struct parked_req, queue_link);
		if (p->u.transact.deadline_ns <= now) {
			struct ringdev_ctl_transact *t = p->u.transact.t;
			t->nrequests = 0;
			dev->ops->reply_ioctl(p->req, 0, t, sizeof(*t));
			parked_free(dev, p);
		} else if (p->u.transact.deadline_ns < next) {
			next = p->u.transact.deadline_ns;
		}
	}
	return next;
}
