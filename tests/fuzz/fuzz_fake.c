/* SPDX-License-Identifier: MIT */
/*
 * fuzz_fake.c - see fuzz_fake.h. Two kinds of checks:
 *
 * - on every answer (the hooks): the request is one of ours, of a kind the
 *   answer fits, answered for the first time, with the device lock held;
 *   errnos are 1..511 (what the kernel carries); a read gets at most its
 *   buffer, a write at most what it offered, an ioctl at most its out
 *   buffer; every iovec byte is readable; each TRANSACT's requests pass the
 *   broker library's own check (ctl_request_check) and their ids are never
 *   reused; data offered as held (reply_data_held) lies in the write being
 *   served.
 * - after every step (fuzz_check): the parked counts equal our unanswered
 *   requests, the handle count our handles plus opens in flight, pollers our
 *   live poll handles; as root, LIST_PIPES' allocated bytes, the relayed
 *   requests' charged payloads and parked writes' copies add up to
 *   memory_used and every pipe
 *   conserves bytes (in - out - dropped - flushed == queued); LIST_OPENS
 *   adds up to the same parked total.
 *
 * The timer thread never acts during an input: every deadline the fuzz
 * configuration allows is at least 20 s away, and fuzz_expire() does the
 * timer's work on this thread when the input asks, so runs reproduce.
 */
#include "fuzz_fake.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "access.h"
#include "device_internal.h"
#include "encode.h"
#include "log.h"

struct fuzz_world fz;

const struct cred fuzz_root = { .uid = 0, .gid = 0, .pid = 1 };

#define OWNER_UID 1000u
#define OWNER_GID 1000u
#define ADMIN_GID 50u
#define CTL_GID 60u
#define IDS_TRACKED 65536u

static uint8_t ids_seen[IDS_TRACKED / 8];
static bool trace; /* FUZZ_TRACE=1: say what each request got, to check what a seed does */

static const char *const kind_names[] = { "open", "read", "write", "ioctl" };
static const char *const reply_names[] = { "-", "data", "written", "error", "opened", "ioctl" };

_Noreturn void fuzz_fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "fuzz: invariant violated (step %u): ", fz.steps);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/* ---- requests ---- */

void *fuzz_req_new(enum fuzz_req_kind kind, size_t size, bool interrupted)
{
	if (fz.nreqs >= FUZZ_REQS)
		return NULL;
	struct fuzz_req *r = &fz.reqs[fz.nreqs++];
	*r = (struct fuzz_req){ .kind = kind, .size = size, .interrupted = interrupted };
	fz.unanswered++;
	fz.unanswered_opens += kind == FUZZ_REQ_OPEN;
	return (void *)(uintptr_t)fz.nreqs; /* index + 1: never NULL */
}

struct fuzz_req *fuzz_req_of(void *req)
{
	uintptr_t n = (uintptr_t)req;
	FUZZ_ASSERT(n >= 1 && n <= fz.nreqs, "answer for request %p the harness never made", req);
	return &fz.reqs[n - 1];
}

unsigned fuzz_unanswered(void)
{
	return fz.unanswered;
}

/* Handles the daemon holds for requests in flight: an app's open, and a
 * user's RINGDEV_IOC_CREATE waiting for the broker (on a handle of its own;
 * only a relayed one is still unanswered after the call). */
static unsigned unanswered_opens(void)
{
	unsigned n = fz.unanswered_opens;
	for (unsigned i = 0; i < fz.nreqs; i++)
		n += fz.reqs[i].kind == FUZZ_REQ_IOCTL && fz.reqs[i].cmd == RINGDEV_IOC_CREATE && !fz.reqs[i].answers;
	return n;
}

void *fuzz_req_pick_unanswered(unsigned sel)
{
	unsigned n = fuzz_unanswered();
	if (!n)
		return NULL;
	sel %= n;
	for (unsigned i = 0; i < fz.nreqs; i++)
		if (fz.reqs[i].answers == 0 && sel-- == 0)
			return (void *)(uintptr_t)(i + 1);
	return NULL;
}

/* ---- payloads ---- */

const uint8_t *fuzz_pattern(void)
{
	static uint8_t pattern[FUZZ_PATTERN];
	static bool made;
	if (!made) {
		for (size_t i = 0; i < sizeof(pattern); i++)
			pattern[i] = (uint8_t)(i * 31 + 7 + i / 251);
		made = true;
	}
	return pattern;
}

uint8_t *fuzz_payload(size_t size)
{
	uint8_t *p = malloc(size ? size : 1);
	FUZZ_ASSERT(p && size <= FUZZ_PATTERN, "out of memory");
	memcpy(p, fuzz_pattern(), size);
	return p;
}

/* ---- handles and poll handles ---- */

struct fuzz_handle *fuzz_handle_add(struct open_ctx *ctx, bool ctl, const struct cred *cred, int oflags)
{
	FUZZ_ASSERT(ctx, "a handle that is NULL");
	FUZZ_ASSERT(fz.nhandles < FUZZ_HANDLES, "more handles than the harness holds");
	for (unsigned i = 0; i < fz.nhandles; i++)
		FUZZ_ASSERT(fz.handles[i].ctx != ctx, "the core handed out handle %p twice", (void *)ctx);
	struct fuzz_handle *h = &fz.handles[fz.nhandles++];
	*h = (struct fuzz_handle){ .ctx = ctx, .ctl = ctl, .cred = *cred, .oflags = oflags };
	if (trace)
		fprintf(stderr, "fuzz: step %u: handle %u: %s, uid %u, oflags 0%o\n", fz.steps, fz.nhandles - 1,
			ctl ? "control" : "app", cred->uid, (unsigned)oflags);
	return h;
}

struct fuzz_handle *fuzz_handle_pick(unsigned sel)
{
	return fz.nhandles ? &fz.handles[sel % fz.nhandles] : NULL;
}

struct fuzz_handle *fuzz_broker(void)
{
	for (unsigned i = 0; i < fz.nhandles; i++)
		if (fz.handles[i].ctl)
			return &fz.handles[i];
	return NULL;
}

void fuzz_handle_release(struct fuzz_handle *h)
{
	struct open_ctx *ctx = h->ctx;
	*h = fz.handles[--fz.nhandles];
	device_release(fz.dev, ctx);
}

void *fuzz_poll_new(void)
{
	if (fz.npolls >= FUZZ_POLLS)
		return NULL;
	fz.poll_live[fz.npolls] = true;
	fz.live_polls++;
	return (void *)(uintptr_t)(0x100000u + fz.npolls++);
}

static void poll_end(void *ph, const char *how)
{
	uintptr_t n = (uintptr_t)ph - 0x100000u;
	FUZZ_ASSERT(n < fz.npolls, "%s of poll handle %p the harness never made", how, ph);
	FUZZ_ASSERT(fz.poll_live[n], "%s of poll handle %p that already ended", how, ph);
	fz.poll_live[n] = false;
	fz.live_polls--;
}

/* ---- the answers ---- */

static void lock_held(const char *hook)
{
	if (pthread_mutex_trylock(&fz.dev->lock) == 0) {
		pthread_mutex_unlock(&fz.dev->lock);
		fuzz_fail("%s called without the device lock", hook);
	}
}

static struct fuzz_req *answer(void *req, enum fuzz_reply how)
{
	struct fuzz_req *r = fuzz_req_of(req);
	FUZZ_ASSERT(r->answers == 0, "request %p answered twice (reply %d, then %d)", req, r->reply, how);
	r->answers = 1;
	r->reply = how;
	fz.unanswered--;
	fz.unanswered_opens -= r->kind == FUZZ_REQ_OPEN;
	if (trace)
		fprintf(stderr, "fuzz: step %u: request %lu (%s) answered: %s\n", fz.steps, (unsigned long)(uintptr_t)req,
			kind_names[r->kind], reply_names[how]);
	return r;
}

/* Read every byte, so AddressSanitizer sees a bad pointer (its memcpy
 * interceptor checks the whole range; a byte loop would be slow here). */
static void touch(const void *p, size_t n)
{
	static uint8_t scratch[1u << 16];
	const uint8_t *b = p;
	while (n) {
		size_t k = n < sizeof(scratch) ? n : sizeof(scratch);
		memcpy(scratch, b, k);
		b += k;
		n -= k;
	}
}

static void record_error(void *req, int err)
{
	struct fuzz_req *r = answer(req, FUZZ_ERROR);
	FUZZ_ASSERT(err >= 1 && err <= RINGDEV_ERRNO_MAX, "request %p answered with errno %d", req, err);
	r->err = err;
	if (trace)
		fprintf(stderr, "fuzz:   errno %d (%s)\n", err, strerror(err));
}

/* The requests a TRANSACT hands out: what the broker library accepts,
 * never an id twice. */
static void transact_seen(struct fuzz_req *r, const void *out, size_t size)
{
	FUZZ_ASSERT(size == sizeof(struct ringdev_ctl_transact), "TRANSACT answered with %zu bytes", size);
	struct ringdev_ctl_transact *t = malloc(sizeof(*t));
	FUZZ_ASSERT(t, "out of memory");
	memcpy(t, out, sizeof(*t));
	FUZZ_ASSERT(t->nrequests <= r->max_requests && t->nrequests <= RINGDEV_CTL_BATCH,
		    "TRANSACT gave %u requests, %u asked", t->nrequests, r->max_requests);
	FUZZ_ASSERT(t->rejected + t->failed <= t->nanswers, "TRANSACT: %u rejected + %u failed of %u answers",
		    t->rejected, t->failed, t->nanswers);
	FUZZ_ASSERT((uint32_t)__builtin_popcount(t->refused) == t->rejected + t->failed &&
			    (t->refused >> t->nanswers) == 0,
		    "TRANSACT: refused 0x%x for %u rejected + %u failed of %u answers", t->refused, t->rejected,
		    t->failed, t->nanswers);
	for (uint32_t i = 0; i < t->nrequests; i++) {
		const struct ringdev_ctl_request *q = &t->requests[i];
		FUZZ_ASSERT(ctl_request_check(q) == 0,
			    "request %llu fails the broker's check: type %u cmd 0x%x size %u out_size %u inline %u "
			    "name %s", (unsigned long long)q->id, q->type, q->cmd, q->size, q->out_size, q->inline_size,
			    memchr(q->name, '\0', sizeof(q->name)) ? "terminated" : "unterminated");
		FUZZ_ASSERT(q->id != 0, "request id 0");
		if (q->id < IDS_TRACKED) {
			FUZZ_ASSERT(!(ids_seen[q->id / 8] & (1u << (q->id % 8))), "request id %llu handed out twice",
				    (unsigned long long)q->id);
			ids_seen[q->id / 8] |= (uint8_t)(1u << (q->id % 8));
		}
		if (trace)
			fprintf(stderr, "fuzz:   took request %llu: type %u handle %llu size %u out %u '%.64s'\n",
				(unsigned long long)q->id, q->type, (unsigned long long)q->handle, q->size, q->out_size,
				q->name);
		if (q->id > fz.last_id)
			fz.last_id = q->id;
		if (!ctl_type_is_notice(q->type))
			fz.taken[fz.ntaken++ % FUZZ_TAKEN].msg = *q;
	}
	free(t);
}

static void record_ioctl(void *req, int result, const void *out, size_t size)
{
	struct fuzz_req *r = answer(req, FUZZ_IOCTL);
	FUZZ_ASSERT(r->kind == FUZZ_REQ_IOCTL, "reply_ioctl for a request of kind %d", r->kind);
	FUZZ_ASSERT(result >= 0, "reply_ioctl with result %d", result);
	FUZZ_ASSERT(size <= r->size, "ioctl 0x%x answered %zu bytes into a %zu-byte buffer", r->cmd, size, r->size);
	FUZZ_ASSERT(!size || out, "ioctl 0x%x answered %zu bytes from NULL", r->cmd, size);
	touch(out, size);
	r->err = result;
	r->count = size;
	if (trace)
		fprintf(stderr, "fuzz:   ioctl 0x%x: result %d, %zu bytes\n", r->cmd, result, size);
	if (r->cmd == RINGDEV_IOC_CTL_TRANSACT)
		transact_seen(r, out, size);
	if (r->cmd == RINGDEV_IOC_CTL_FETCH) {
		struct ringdev_ctl_bulk b;
		FUZZ_ASSERT(size == sizeof(b), "FETCH answered with %zu bytes", size);
		memcpy(&b, out, offsetof(struct ringdev_ctl_bulk, data));
		FUZZ_ASSERT(b.size <= RINGDEV_CTL_BULK, "FETCH gave %u bytes", b.size);
	}
}

static void hook_data(void *req, const struct iovec *iov, int count)
{
	lock_held("reply_data");
	struct fuzz_req *r = answer(req, FUZZ_DATA);
	FUZZ_ASSERT(r->kind == FUZZ_REQ_READ, "reply_data for a request of kind %d", r->kind);
	FUZZ_ASSERT(count >= 0 && count <= 2 && (count == 0 || iov), "reply_data with %d iovecs", count);
	size_t total = 0;
	for (int i = 0; i < count; i++) {
		FUZZ_ASSERT(iov[i].iov_base || !iov[i].iov_len, "reply_data: iovec %d is NULL", i);
		touch(iov[i].iov_base, iov[i].iov_len);
		total += iov[i].iov_len;
	}
	FUZZ_ASSERT(total <= r->size, "a read of %zu bytes answered with %zu", r->size, total);
	r->count = total;
	/* A message from a pipe (not the broker's answer) is one whole write. */
	const struct pipe *p = r->ctx ? r->ctx->pipe : NULL;
	if (p && !p->brokered && p->kind == RINGDEV_KIND_MESSAGE) {
		size_t at = 0;
		for (int i = 0; i < count; i++) {
			FUZZ_ASSERT(memcmp(iov[i].iov_base, fuzz_pattern() + at, iov[i].iov_len) == 0,
				    "a message of %zu bytes read from pipe %s is not what was written", total, p->name);
			at += iov[i].iov_len;
		}
	}
	if (trace)
		fprintf(stderr, "fuzz:   %zu bytes\n", total);
}

/* Data held until the frontend's handler returns can only be the bytes of
 * the write being served. */
static void hook_data_held(void *req, const struct iovec *iov, int count)
{
	for (int i = 0; i < count; i++) {
		const uint8_t *b = iov[i].iov_base;
		FUZZ_ASSERT(fz.writing && b >= fz.writing && iov[i].iov_len <= fz.writing_size &&
				    (size_t)(b - fz.writing) <= fz.writing_size - iov[i].iov_len,
			    "reply_data_held with %zu bytes outside the write being served", iov[i].iov_len);
	}
	hook_data(req, iov, count);
}

static void hook_written(void *req, size_t count)
{
	lock_held("reply_written");
	struct fuzz_req *r = answer(req, FUZZ_WRITTEN);
	FUZZ_ASSERT(r->kind == FUZZ_REQ_WRITE, "reply_written for a request of kind %d", r->kind);
	FUZZ_ASSERT(count <= r->size, "a write of %zu bytes answered %zu written", r->size, count);
	r->count = count;
	if (trace)
		fprintf(stderr, "fuzz:   %zu bytes written\n", count);
}

static void hook_error(void *req, int err)
{
	lock_held("reply_error");
	record_error(req, err);
}

static bool hook_interrupted(void *req)
{
	lock_held("req_interrupted");
	struct fuzz_req *r = fuzz_req_of(req);
	FUZZ_ASSERT(r->answers == 0, "req_interrupted asked of answered request %p", req);
	return r->interrupted;
}

static void hook_notify(void *ph)
{
	lock_held("poll_notify");
	poll_end(ph, "poll_notify");
}

static void hook_destroy(void *ph)
{
	lock_held("poll_destroy");
	poll_end(ph, "poll_destroy");
}

static bool hook_open(void *req, struct open_ctx *ctx)
{
	lock_held("reply_open");
	struct fuzz_req *r = answer(req, FUZZ_OPENED);
	FUZZ_ASSERT(r->kind == FUZZ_REQ_OPEN, "reply_open for a request of kind %d", r->kind);
	FUZZ_ASSERT(ctx, "reply_open without a handle");
	if (r->opener_gone || fz.nhandles >= FUZZ_HANDLES)
		return false; /* the core drops ctx */
	fuzz_handle_add(ctx, false, &ctx->cred, ctx->oflags);
	return true;
}

static void hook_ioctl(void *req, int result, const void *out, size_t size)
{
	lock_held("reply_ioctl");
	record_ioctl(req, result, out, size);
}

static const struct device_ops fuzz_ops = {
	.reply_data = hook_data,
	.reply_data_held = hook_data_held,
	.reply_written = hook_written,
	.reply_error = hook_error,
	.req_interrupted = hook_interrupted,
	.poll_notify = hook_notify,
	.poll_destroy = hook_destroy,
	.reply_open = hook_open,
	.reply_ioctl = hook_ioctl,
};

/* ---- the world ---- */

static void log_discard(enum log_level level, const char *line, void *data)
{
	touch(line, strlen(line));
}

void fuzz_config(struct fuzz_input *in, struct device_config *cfg)
{
	static const uint64_t rings[] = { 64, 100, 4096, 65536 };
	uint8_t f = fin_u8(in), g = fin_u8(in);
	bool small = f & 0x10;
	*cfg = (struct device_config){
		.ring_size = rings[g & 3],
		.max_pipes = small ? 8 : 64,
		.max_memory = small ? 8192 : 1u << 22,
		.case_sensitive = f & 0x01,
		.mode = (g & 0x04) ? 0755 : (g & 0x08) ? 0700 : 0666,
		.uid = OWNER_UID,
		.gid = OWNER_GID,
		.frontend = (f & 0x04) ? RINGDEV_FRONTEND_CUSE : RINGDEV_FRONTEND_FUSE,
		.ctl_mode = (f & 0x20) ? 0660 : 0600,
		.ctl_gid = CTL_GID,
		.admin_set = f & 0x08,
		.admin_gid = ADMIN_GID,
		.max_pipes_per_uid = small ? 3 : 0,
		.max_opens_per_uid = small ? 6 : 0,
		.max_parked = small ? 8 : 1u << 16,
		.max_memory_per_uid = small ? 4096 : 0,
		.max_parked_per_uid = small ? 4 : 0,
		.require_broker = f & 0x02,
		/* Expires only through fuzz_expire(): never by itself in an input. */
		.broker_timeout_ms = (f & 0x40) ? 30000 : 0,
		.cancel_timeout_ms = 30000,
	};
	if (f & 0x04)
		strcpy(cfg->default_pipe, (g & 0x10) ? "Default" : "default");
}

void fuzz_world_start(const struct device_config *cfg)
{
	memset(&fz, 0, sizeof(fz));
	memset(ids_seen, 0, sizeof(ids_seen));
	trace = getenv("FUZZ_TRACE") != NULL;
	log_set_level(LOG_LEVEL_DEBUG); /* every log line is formatted: its arguments are read */
	log_set_rate_limit(0);
	log_set_sink(log_discard, NULL);
	fz.cfg = *cfg;
	fz.dev = device_new(cfg, &fuzz_ops);
	FUZZ_ASSERT(fz.dev, "device_new failed");
	if (cfg->default_pipe[0]) {
		struct cred daemon = { .uid = cfg->uid, .gid = cfg->gid };
		struct attach_args def = {
			.name = cfg->default_pipe,
			.len = strlen(cfg->default_pipe),
			.mode = cfg->mode & 0666,
		};
		int r = device_create(fz.dev, &daemon, &def);
		FUZZ_ASSERT(r == 0, "the default pipe: %d", r);
	}
}

void fuzz_world_end(void)
{
	fz.steps++;
	device_shutdown(fz.dev);
	fuzz_check();
	FUZZ_ASSERT(fuzz_unanswered() == 0, "%u requests unanswered after device_shutdown", fuzz_unanswered());
	FUZZ_ASSERT(fz.live_polls == 0, "%u poll handles left after device_shutdown", fz.live_polls);
	device_free(fz.dev);
	fz.dev = NULL;
	fz.nhandles = 0;
}

struct cred fuzz_cred(struct fuzz_input *in)
{
	static const struct cred creds[] = {
		{ 0, 0, 1 },                 /* root */
		{ OWNER_UID, OWNER_GID, 2 }, /* the device's owner */
		{ 1001, OWNER_GID, 3 },      /* in the owner's group */
		{ 1002, 1002, 4 },           /* anybody else */
		{ 1003, ADMIN_GID, 5 },      /* --admin-group, when set */
		{ 65534, 65534, 6 },         /* nobody */
		{ 1004, CTL_GID, 7 },        /* the control node's group */
	};
	unsigned sel = fin_pick(in, 8);
	if (sel < sizeof(creds) / sizeof(creds[0]))
		return creds[sel];
	struct cred c = { .pid = 8 };
	c.uid = fin_u32(in);
	c.gid = fin_u32(in);
	return c;
}

const struct ringdev_ctl_request *fuzz_taken_pick(unsigned sel)
{
	if (!fz.ntaken)
		return NULL;
	unsigned n = fz.ntaken < FUZZ_TAKEN ? fz.ntaken : FUZZ_TAKEN;
	return &fz.taken[(fz.ntaken - 1 - sel % n) % FUZZ_TAKEN].msg;
}

/* ---- ioctls as the frontend makes them ---- */

static void flushed_add(uint64_t ino, uint64_t bytes)
{
	for (unsigned i = 0; i < fz.nflushed; i++) {
		if (fz.flushed[i].ino == ino) {
			fz.flushed[i].bytes += bytes;
			return;
		}
	}
	FUZZ_ASSERT(fz.nflushed < FUZZ_PIPES, "more pipes flushed than the harness counts");
	fz.flushed[fz.nflushed].ino = ino;
	fz.flushed[fz.nflushed++].bytes = bytes;
}

static uint64_t flushed_of(uint64_t ino)
{
	for (unsigned i = 0; i < fz.nflushed; i++)
		if (fz.flushed[i].ino == ino)
			return fz.flushed[i].bytes;
	return 0;
}

static uint64_t flushed_total(void)
{
	struct ringdev_stats s;
	device_stats(fz.dev, &s);
	return s.flushed_bytes;
}

/* The inode of the pipe a FLUSH argument names (0: none), found as root. */
static uint64_t flush_target(const void *in, size_t in_size)
{
	struct ringdev_pipe_info q = { 0 }, info;
	if (!in || in_size < sizeof(struct ringdev_flush))
		return 0;
	memcpy(q.name, in, sizeof(q.name));
	if (device_ioctl(fz.dev, NULL, &fuzz_root, RINGDEV_IOC_PIPE_BY_NAME, &q, sizeof(q), &info, sizeof(info)) < 0)
		return 0;
	return info.ino;
}

void *fuzz_ioctl(struct open_ctx *ctx, const struct cred *cred, unsigned cmd, const void *in, size_t in_size,
		 size_t out_size, bool interrupted)
{
	void *req = fuzz_req_new(FUZZ_REQ_IOCTL, out_size, interrupted);
	if (!req)
		return NULL;
	struct fuzz_req *r = fuzz_req_of(req);
	r->cmd = cmd;
	if (cmd == RINGDEV_IOC_CTL_TRANSACT && in && in_size >= 8)
		memcpy(&r->max_requests, (const uint8_t *)in + offsetof(struct ringdev_ctl_transact, max_requests),
		       sizeof(r->max_requests));
	if (device_ioctl_async(fz.dev, ctx, cred, req, cmd, in, in_size, out_size))
		return req;
	if (out_size > (1u << 14)) {
		record_error(req, EINVAL); /* what frontend_ioctl answers */
		return req;
	}
	uint8_t *out = malloc(out_size); /* exactly: any overrun is reported */
	FUZZ_ASSERT(out, "out of memory");
	memset(out, 0, out_size);
	bool flush = cmd == RINGDEV_IOC_FLUSH;
	uint64_t ino = flush ? flush_target(in, in_size) : 0, before = flush ? flushed_total() : 0;
	int rc = device_ioctl(fz.dev, ctx, cred, cmd, in, in_size, out, out_size);
	FUZZ_ASSERT(rc <= 0 && rc >= -RINGDEV_ERRNO_MAX, "device_ioctl 0x%x returned %d", cmd, rc);
	if (flush) {
		uint64_t delta = flushed_total() - before;
		FUZZ_ASSERT(!delta || ino, "FLUSH discarded %llu bytes of no pipe its name finds",
			    (unsigned long long)delta);
		if (rc == 0) {
			struct ringdev_flush f;
			memcpy(&f, out, sizeof(f));
			FUZZ_ASSERT(f.bytes == delta, "FLUSH says %llu bytes, the counter moved %llu",
				    (unsigned long long)f.bytes, (unsigned long long)delta);
		}
		if (delta)
			flushed_add(ino, delta);
	}
	if (rc < 0)
		record_error(req, -rc);
	else
		record_ioctl(req, 0, out, out_size);
	free(out);
	return req;
}

void fuzz_expire(uint32_t ms)
{
	pthread_mutex_lock(&fz.dev->lock);
	uint64_t now = now_ns() + (uint64_t)ms * 1000000u;
	relay_expire(fz.dev, now);
	pipe_expire_holds(fz.dev, now);
	pthread_mutex_unlock(&fz.dev->lock);
}

/* ---- the invariants ---- */

/* What relayed requests hold charged to memory (their payloads). */
static uint64_t relay_charged(struct device *dev)
{
	struct list_node *lists[] = { &dev->relay.pending, &dev->relay.taken };
	struct list_node *pos;
	uint64_t n = 0;
	pthread_mutex_lock(&dev->lock);
	for (size_t i = 0; i < 2; i++)
		list_for_each(pos, lists[i])
			n += list_entry(pos, struct relay_req, queue_link)->charged;
	pthread_mutex_unlock(&dev->lock);
	return n;
}

/* Pipes a MKNOD made that wait for the broker to allow their creation and
 * root did not make: their creator's alone (access_may_see). */
static uint64_t provisional_pipes(struct device *dev)
{
	struct list_node *pos;
	uint64_t n = 0;
	pthread_mutex_lock(&dev->lock);
	list_for_each(pos, &dev->table.held) {
		const struct pipe *p = list_entry(pos, struct pipe, hold_link);
		n += p->provisional && !access_may_see(dev, &fuzz_root, p);
	}
	pthread_mutex_unlock(&dev->lock);
	return n;
}

/* What parked writes' copies of their data are charged (LIMIT_MEMORY). */
static uint64_t write_copies_charged(struct device *dev)
{
	struct list_node *h, *q;
	uint64_t n = 0;
	pthread_mutex_lock(&dev->lock);
	list_for_each(h, &dev->handles.list) {
		struct open_ctx *ctx = list_entry(h, struct open_ctx, dev_link);
		list_for_each(q, &ctx->parked) {
			struct parked_req *p = list_entry(q, struct parked_req, ctx_link);
			if (p->ops == &pipe_parked_write)
				n += p->u.write.total;
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return n;
}

static void check_pipes(const struct ringdev_stats *s)
{
	static struct ringdev_list_pipes l;
	uint64_t allocated = 0, parked_reads = 0, parked_writes = 0, seen = 0;
	uint32_t start = 0, total = 0;
	do {
		static struct ringdev_list_pipes q;
		q.start = start;
		int r = device_ioctl(fz.dev, NULL, &fuzz_root, RINGDEV_IOC_LIST_PIPES, &q, sizeof(q), &l, sizeof(l));
		FUZZ_ASSERT(r == 0, "LIST_PIPES as root: %d", r);
		FUZZ_ASSERT(l.count <= RINGDEV_LIST_PIPES_MAX && l.start == start, "LIST_PIPES page: %u from %u",
			    l.count, l.start);
		FUZZ_ASSERT(start == 0 || l.total == total, "LIST_PIPES total changed between pages");
		total = l.total;
		for (uint32_t i = 0; i < l.count; i++) {
			const struct ringdev_pipe_info *p = &l.pipes[i];
			uint64_t flushed = flushed_of(p->ino);
			FUZZ_ASSERT(p->bytes_in - p->bytes_out - p->dropped_bytes - flushed == p->queued_bytes,
				    "pipe %.64s (ino %llu): in %llu - out %llu - dropped %llu - flushed %llu != queued %llu",
				    p->name, (unsigned long long)p->ino, (unsigned long long)p->bytes_in,
				    (unsigned long long)p->bytes_out, (unsigned long long)p->dropped_bytes,
				    (unsigned long long)flushed, (unsigned long long)p->queued_bytes);
			uint64_t ring = p->queued_bytes + (p->kind == RINGDEV_KIND_MESSAGE ?
							   p->queued_messages * RINGDEV_MESSAGE_HEADER : 0);
			FUZZ_ASSERT(ring <= p->capacity, "pipe %.64s holds %llu ring bytes in %llu", p->name,
				    (unsigned long long)ring, (unsigned long long)p->capacity);
			FUZZ_ASSERT((p->flags & RINGDEV_PIPE_ALLOCATED) ? p->allocated_bytes == p->capacity
								       : p->allocated_bytes == 0,
				    "pipe %.64s: %llu bytes allocated, capacity %llu, flags 0x%x", p->name,
				    (unsigned long long)p->allocated_bytes, (unsigned long long)p->capacity, p->flags);
			FUZZ_ASSERT(p->readers <= p->handles && p->writers <= p->handles,
				    "pipe %.64s: %u readers, %u writers, %u handles", p->name, p->readers, p->writers,
				    p->handles);
			FUZZ_ASSERT(memchr(p->name, '\0', sizeof(p->name)), "LIST_PIPES: a name without its NUL");
			allocated += p->allocated_bytes;
			parked_reads += p->parked_reads;
			parked_writes += p->parked_writes;
		}
		seen += l.count;
		start += l.count;
	} while (start < total && l.count > 0);
	uint64_t provisional = provisional_pipes(fz.dev); /* its creator's alone: listed to nobody, root included */
	FUZZ_ASSERT(seen == total && total + provisional == s->pipes,
		    "LIST_PIPES listed %llu of %u (and %llu wait for the broker); stats say %llu pipes",
		    (unsigned long long)seen, total, (unsigned long long)provisional, (unsigned long long)s->pipes);
	uint64_t payloads = relay_charged(fz.dev), copies = write_copies_charged(fz.dev);
	FUZZ_ASSERT(allocated + payloads + copies == s->memory_used,
		    "pipes hold %llu bytes, relayed payloads %llu, parked writes' copies %llu, memory_used is %llu",
		    (unsigned long long)allocated, (unsigned long long)payloads, (unsigned long long)copies,
		    (unsigned long long)s->memory_used);
	FUZZ_ASSERT(parked_reads == s->parked_reads && parked_writes == s->parked_writes,
		    "pipes' queues hold %llu reads, %llu writes; stats say %llu, %llu", (unsigned long long)parked_reads,
		    (unsigned long long)parked_writes, (unsigned long long)s->parked_reads,
		    (unsigned long long)s->parked_writes);
}

static void check_opens(const struct ringdev_stats *s)
{
	static struct ringdev_list_opens l;
	uint64_t parked = 0, seen = 0;
	uint32_t start = 0, total = 0;
	do {
		static struct ringdev_list_opens q;
		q.start = start;
		int r = device_ioctl(fz.dev, NULL, &fuzz_root, RINGDEV_IOC_LIST_OPENS, &q, sizeof(q), &l, sizeof(l));
		FUZZ_ASSERT(r == 0, "LIST_OPENS as root: %d", r);
		FUZZ_ASSERT(l.count <= RINGDEV_LIST_OPENS_MAX, "LIST_OPENS page of %u", l.count);
		total = l.total;
		for (uint32_t i = 0; i < l.count; i++)
			parked += l.opens[i].parked_reads + l.opens[i].parked_writes + l.opens[i].parked_other;
		seen += l.count;
		start += l.count;
	} while (start < total && l.count > 0);
	FUZZ_ASSERT(seen == total && total == s->opens, "LIST_OPENS listed %llu of %u; stats say %llu opens",
		    (unsigned long long)seen, total, (unsigned long long)s->opens);
	FUZZ_ASSERT(parked == s->parked_total, "handles hold %llu parked requests, stats say %llu",
		    (unsigned long long)parked, (unsigned long long)s->parked_total);
}

void fuzz_check(void)
{
	struct ringdev_stats s;
	device_stats(fz.dev, &s);
	unsigned pending = fuzz_unanswered();
	FUZZ_ASSERT(s.parked_total == s.parked_reads + s.parked_writes + s.parked_other,
		    "parked_total %llu is not the sum of its parts", (unsigned long long)s.parked_total);
	FUZZ_ASSERT(s.parked_total == pending, "%llu requests parked, %u unanswered", (unsigned long long)s.parked_total,
		    pending);
	FUZZ_ASSERT(s.opens == fz.nhandles + unanswered_opens(), "%llu opens; the harness holds %u, %u in flight",
		    (unsigned long long)s.opens, fz.nhandles, unanswered_opens());
	FUZZ_ASSERT(s.pollers == fz.live_polls, "%llu pollers, %u live poll handles", (unsigned long long)s.pollers,
		    fz.live_polls);
	FUZZ_ASSERT(s.broker_connected == (fuzz_broker() != NULL), "broker_connected %llu",
		    (unsigned long long)s.broker_connected);
	check_pipes(&s);
	check_opens(&s);
}

/* ---- command numbers ---- */

#define DEVICE_CMD_IN _IOW(RINGDEV_IOC_MAGIC, 0x80, struct ringdev_name)
#define DEVICE_CMD_INOUT _IOWR(RINGDEV_IOC_MAGIC, 0x81, uint64_t)
#define DEVICE_CMD_BIG _IOWR(RINGDEV_IOC_MAGIC, 0xfe, uint8_t[4096])

const unsigned fuzz_commands[] = {
	RINGDEV_IOC_VERSION,      RINGDEV_IOC_ATTACH,       RINGDEV_IOC_DETACH,     RINGDEV_IOC_PIPE_INFO,
	RINGDEV_IOC_NREAD,        RINGDEV_IOC_SET_CONFIG,   RINGDEV_IOC_STATS,      RINGDEV_IOC_LIST_PIPES,
	RINGDEV_IOC_LIST_OPENS,   RINGDEV_IOC_PIPE_BY_NAME, RINGDEV_IOC_CREATE,     RINGDEV_IOC_REMOVE,
	RINGDEV_IOC_CONFIGURE,    RINGDEV_IOC_FLUSH,        RINGDEV_IOC_CTL_TRANSACT, RINGDEV_IOC_CTL_FETCH,
	RINGDEV_IOC_CTL_STAGE,    FIONREAD,                 DEVICE_CMD_IN,          DEVICE_CMD_INOUT,
	DEVICE_CMD_BIG,           _IO(RINGDEV_IOC_MAGIC, 0x82),
};
const size_t fuzz_ncommands = sizeof(fuzz_commands) / sizeof(fuzz_commands[0]);

unsigned fuzz_command(struct fuzz_input *in)
{
	unsigned sel = fin_pick(in, 8);
	if (sel < 4)
		return fuzz_commands[fin_pick(in, (unsigned)fuzz_ncommands)];
	if (sel == 4) /* a defined number, its direction or size bits changed */
		return fuzz_commands[fin_pick(in, (unsigned)fuzz_ncommands)] ^
		       (fin_u32(in) & (((unsigned)_IOC_DIRMASK << _IOC_DIRSHIFT) | ((unsigned)_IOC_SIZEMASK << _IOC_SIZESHIFT)));
	if (sel < 7) { /* ringdev's magic, any number, direction and size */
		unsigned dir = fin_u8(in) & _IOC_DIRMASK, nr = fin_u8(in), arg = fin_u16(in) & _IOC_SIZEMASK;
		return _IOC(dir, RINGDEV_IOC_MAGIC, nr, arg);
	}
	return fin_u32(in);
}
