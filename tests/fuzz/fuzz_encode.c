/* SPDX-License-Identifier: MIT */
/*
 * fuzz_encode.c - target "encode": the broker library's side of the
 * control protocol (broker/lib/encode.c, broker.c), two ways, chosen by the
 * input's first byte:
 *
 * - one request and answers to it: ctl_request_check on any request bytes,
 *   the payload and chunk helpers' arithmetic, then every ctl_answer_*
 *   with chosen arguments; an answer a builder returns 0 for must be one
 *   ringdevd accepts (daemon_accepts: the rules of answer_problem in
 *   cuse_dev/core/relay.c, restated), for its id only.
 * - the real loop (rdb_run on one thread) over a scripted daemon that hands
 *   out requests read from the input (any type, sizes, names, payloads
 *   past the inline space, CANCELs of earlier ids, transport errors) and
 *   serves FETCH in chunks it chooses. The handler answers at once, later
 *   or never. Checked: every payload arrives whole and unchanged, a CANCEL
 *   comes only after its request's handler returned, no request gets two
 *   answers, every answer sent is one the daemon accepts, and a staged
 *   payload is complete and correct before its answer is sent.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include <ringdev/ringdev-broker.h>

#include "encode.h"
#include "fuzz_input.h"
#include "name.h"
#include "transport.h"

#define CHECK(cond, ...)                                                                                              \
	do {                                                                                                          \
		if (!(cond)) {                                                                                        \
			fprintf(stderr, "fuzz-encode: " __VA_ARGS__);                                                 \
			fputc('\n', stderr);                                                                          \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

/* ---- what ringdevd accepts (cuse_dev/core/relay.c, answer_problem) ---- */

static bool settings_ok(const struct ringdev_ctl_answer *a)
{
	if (!(a->flags & RINGDEV_ANSWER_SETTINGS))
		return true;
	return a->kind >= RINGDEV_KIND_STREAM && a->kind <= RINGDEV_KIND_MESSAGE && a->policy >= RINGDEV_POLICY_BLOCK &&
	       a->policy <= RINGDEV_POLICY_FAIL && a->mode <= 0777 &&
	       (a->capacity == 0 || (a->capacity >= RINGDEV_CAPACITY_MIN && a->capacity <= RINGDEV_CAPACITY_MAX));
}

/* `staged`: bytes the broker staged for this request before the answer. */
static bool payload_ok(const struct ringdev_ctl_answer *a, size_t staged)
{
	if (a->size == 0)
		return true;
	if (a->flags & RINGDEV_ANSWER_STAGED)
		return staged >= a->size;
	return a->size <= RINGDEV_CTL_INLINE;
}

static const char *daemon_problem(const struct ringdev_ctl_request *q, const struct ringdev_ctl_answer *a,
				  size_t staged)
{
	bool zero = true;
	for (size_t i = 0; i < sizeof(a->reserved) / sizeof(a->reserved[0]); i++)
		zero &= a->reserved[i] == 0;
	if (a->id != q->id)
		return "wrong id";
	if (a->flags & ~RINGDEV_ANSWER_FLAGS_ALL)
		return "unknown flags";
	if (!zero)
		return "reserved fields set";
	if (a->result < -RINGDEV_ERRNO_MAX)
		return "errno out of range";
	if (a->result < 0)
		return NULL;
	if (a->flags & RINGDEV_ANSWER_BUILTIN) {
		if (q->type != RINGDEV_CTL_OPEN && q->type != RINGDEV_CTL_ATTACH)
			return "BUILTIN for another type";
		if (a->result != 0 || a->flags != RINGDEV_ANSWER_BUILTIN || a->name[0])
			return "BUILTIN with more";
		return NULL;
	}
	switch (q->type) {
	case RINGDEV_CTL_OPEN:
	case RINGDEV_CTL_ATTACH: {
		if (a->result != 0)
			return "OPEN/ATTACH result";
		if (!settings_ok(a))
			return "bad settings";
		const char *nul = memchr(a->name, '\0', sizeof(a->name));
		if (!nul)
			return "name not terminated";
		if (q->type == RINGDEV_CTL_OPEN && nul != a->name && name_check(a->name, (size_t)(nul - a->name)) < 0)
			return "invalid pipe name";
		return NULL;
	}
	case RINGDEV_CTL_READ:
		if ((uint32_t)a->result > q->size)
			return "READ result larger than wanted";
		if (a->size != (uint32_t)a->result)
			return "READ size differs from result";
		return payload_ok(a, staged) ? NULL : "READ payload missing";
	case RINGDEV_CTL_WRITE:
		return (uint32_t)a->result > q->size ? "WRITE result larger than offered" : NULL;
	case RINGDEV_CTL_IOCTL:
		if (a->size > q->out_size)
			return "IOCTL out-payload too large";
		return payload_ok(a, staged) ? NULL : "IOCTL payload missing";
	default:
		return "not answerable";
	}
}

/* ---- requests from input ---- */

static const char *const pipe_names[] = { "", "a", "user.1000", "bad/name", ".x" };

static void request_read(struct fuzz_input *in, struct ringdev_ctl_request *q)
{
	memset(q, 0, sizeof(*q));
	uint8_t f = fin_u8(in);
	if (f & 0x80) { /* the header as raw bytes */
		fin_bytes(in, q, offsetof(struct ringdev_ctl_request, data));
	} else {
		q->type = fin_pick(in, 9); /* 0 and 8: unknown */
		q->handle = fin_u8(in);
		q->uid = fin_u8(in) & 1 ? 1000 : 0;
		q->oflags = fin_u8(in);
		static const uint32_t sizes[] = { 0, 1, 100, RINGDEV_CTL_INLINE, RINGDEV_CTL_INLINE + 1, RINGDEV_CTL_BULK,
						  RINGDEV_CTL_BULK + RINGDEV_CTL_INLINE + 1, 65536, RDB_PAYLOAD_MAX + 1 };
		unsigned sel = fin_pick(in, 11);
		q->size = sel < 9 ? sizes[sel] : fin_u16(in);
		if (sel == 10 && fin_u8(in) == 0x5a)
			q->size = RDB_PAYLOAD_MAX; /* the largest payload: slow, so rare */
		sel = fin_pick(in, 4);
		q->inline_size = sel == 0 ? fin_u32(in) : q->size < RINGDEV_CTL_INLINE ? q->size : RINGDEV_CTL_INLINE;
		if (q->type != RINGDEV_CTL_IOCTL && q->type != RINGDEV_CTL_WRITE && sel != 0)
			q->inline_size = 0;
		sel = fin_pick(in, 6);
		q->out_size = sel == 0 ? fin_u32(in) : sel == 1 ? _IOC_SIZEMASK : sel == 2 ? RINGDEV_CTL_INLINE + 1 : fin_u8(in);
		q->cmd = _IOC(_IOC_READ | _IOC_WRITE, RINGDEV_IOC_MAGIC, 0x80, q->out_size & _IOC_SIZEMASK);
		snprintf(q->name, sizeof(q->name), "%s", pipe_names[fin_pick(in, 5)]);
		q->kind = fin_pick(in, 3);
		q->policy = fin_pick(in, 4);
		q->ref = fin_u8(in);
		if (f & 1)
			memset(q->name, 'n', sizeof(q->name)); /* unterminated */
	}
}

/* Payload byte i of request id: what FETCH serves and the handler checks. */
static uint8_t in_byte(uint64_t id, size_t i)
{
	return (uint8_t)(id * 7 + i * 13 + (i >> 8));
}

/* Out-payload byte i of request id: what the handler answers and STAGE must carry. */
static uint8_t out_byte(uint64_t id, size_t i)
{
	return (uint8_t)(id * 3 + i * 11 + 5);
}

/* ---- mode 1: one request, each builder ---- */

static void check_built(const struct ringdev_ctl_request *q, const struct ringdev_ctl_answer *a, int r,
			const char *builder)
{
	CHECK(a->id == q->id, "%s: answer id %llu for request %llu", builder, (unsigned long long)a->id,
	      (unsigned long long)q->id);
	if (r < 0) {
		CHECK(r == -EINVAL, "%s returned %d", builder, r);
		return;
	}
	/* A STAGED answer: the loop stages all `size` bytes first. */
	const char *problem = daemon_problem(q, a, a->size);
	CHECK(!problem, "%s built an answer ringdevd refuses (type %u): %s", builder, q->type, problem);
}

static void one_request(struct fuzz_input *in)
{
	struct ringdev_ctl_request q;
	request_read(in, &q);
	q.id = fin_u64(in);
	if (ctl_request_check(&q) == 0) {
		size_t payload = ctl_request_payload_size(&q);
		CHECK(payload <= RDB_PAYLOAD_MAX && q.inline_size <= payload && q.inline_size <= RINGDEV_CTL_INLINE,
		      "a request with %zu payload bytes, %u inline passed the check", payload, q.inline_size);
		CHECK(ctl_request_needs_fetch(&q) == (payload > q.inline_size), "needs_fetch is wrong");
		CHECK(memchr(q.name, '\0', sizeof(q.name)), "an unterminated name passed the check");
		CHECK(q.type >= RINGDEV_CTL_OPEN && q.type <= RINGDEV_CTL_RELEASE, "type %u passed the check", q.type);
		size_t done = q.inline_size, calls = 0;
		while (done < payload) {
			size_t n = ctl_bulk_chunk(payload, done);
			CHECK(n > 0 && n <= RINGDEV_CTL_BULK && n <= payload - done, "chunk of %zu at %zu of %zu", n, done,
			      payload);
			done += n;
			CHECK(++calls <= RDB_PAYLOAD_MAX / RINGDEV_CTL_BULK + 2, "too many chunks");
		}
	}
	CHECK(ctl_bulk_chunk(q.size, (size_t)q.size + fin_u8(in)) == 0, "a chunk past the end");

	struct ringdev_ctl_answer a;
	uint8_t out[RINGDEV_CTL_INLINE * 2 + 2];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = out_byte(q.id, i);
	while (!fin_done(in)) {
		memset(&a, 0xa5, sizeof(a)); /* every byte must be set by the builder */
		size_t size = fin_pick(in, 4) ? fin_u16(in) % sizeof(out) : fin_u32(in);
		int v = (int)fin_u32(in), r;
		switch (fin_pick(in, 8)) {
		case 0:
			r = ctl_answer_deny(&a, &q, fin_pick(in, 2) ? v : (int)fin_u16(in) % 520);
			check_built(&q, &a, r, "ctl_answer_deny");
			break;
		case 1: {
			char pipe[RINGDEV_NAME_SIZE + 8];
			size_t len = fin_u8(in) % sizeof(pipe);
			fin_bytes(in, pipe, len);
			pipe[len] = '\0';
			struct rdb_pipe_settings s = { fin_pick(in, 4), fin_pick(in, 5), fin_u16(in) & 01777, fin_u32(in),
						       fin_u32(in), fin_pick(in, 8) ? 0 : fin_u32(in), 0 };
			s.capacity = fin_pick(in, 2) ? 0 : fin_u64(in);
			uint8_t f = fin_u8(in);
			r = ctl_answer_allow(&a, &q, (f & 1) ? pipe : NULL, (f & 2) ? &s : NULL, f & 4);
			check_built(&q, &a, r, "ctl_answer_allow");
			break;
		}
		case 2:
			r = ctl_answer_ioctl(&a, &q, fin_pick(in, 2) ? v : -(int)fin_u16(in) % 520,
					     size <= sizeof(out) ? out : NULL, size);
			check_built(&q, &a, r, "ctl_answer_ioctl");
			if (r == 0 && a.size && !(a.flags & RINGDEV_ANSWER_STAGED))
				CHECK(memcmp(a.data, out, a.size) == 0, "ioctl payload not copied inline");
			break;
		case 3:
			r = ctl_answer_read(&a, &q, size <= sizeof(out) ? out : NULL, size);
			check_built(&q, &a, r, "ctl_answer_read");
			if (r == 0 && a.size && !(a.flags & RINGDEV_ANSWER_STAGED))
				CHECK(memcmp(a.data, out, a.size) == 0, "read payload not copied inline");
			break;
		case 4:
			r = ctl_answer_write(&a, &q, fin_pick(in, 2) ? size : (size_t)fin_u64(in));
			check_built(&q, &a, r, "ctl_answer_write");
			break;
		case 5:
			r = ctl_answer_builtin(&a, &q);
			check_built(&q, &a, r, "ctl_answer_builtin");
			break;
		default:
			CHECK(ctl_payload_needs_stage(size) == (size > RINGDEV_CTL_INLINE), "needs_stage is wrong");
			break;
		}
	}
}

/* ---- mode 2: the loop over a scripted daemon ---- */

#define LOOP_REQS 256
#define DEFERRED 16

struct sent {
	struct ringdev_ctl_request msg;
	bool well_formed;
	bool handled;        /* its handler returned */
	bool in_handler;
	bool cancelled;      /* a CANCEL was sent for it */
	unsigned answers;
	size_t staged;       /* contiguous bytes staged so far */
};

static struct {
	struct fuzz_input *in;
	struct rdb_broker *broker;
	struct sent reqs[LOOP_REQS];
	unsigned nreqs;
	struct rdb_request *deferred[DEFERRED];
	unsigned ndeferred;
} loop;

static struct sent *sent_of(uint64_t id)
{
	return id >= 1 && id <= loop.nreqs ? &loop.reqs[id - 1] : NULL;
}

static int fake_transact(void *ctx, struct ringdev_ctl_transact *t)
{
	struct fuzz_input *in = loop.in;
	CHECK(t->nanswers <= RINGDEV_CTL_BATCH && t->max_requests <= RINGDEV_CTL_BATCH, "TRANSACT %u answers, %u wanted",
	      t->nanswers, t->max_requests);
	for (uint32_t i = 0; i < t->nanswers; i++) {
		const struct ringdev_ctl_answer *a = &t->answers[i];
		struct sent *s = sent_of(a->id);
		CHECK(s, "an answer for id %llu that was never sent", (unsigned long long)a->id);
		CHECK(++s->answers == 1, "request %llu answered twice", (unsigned long long)a->id);
		CHECK(!ctl_type_is_notice(s->msg.type) || !s->well_formed, "a notice answered");
		if (!s->well_formed) {
			CHECK(a->result == -EIO, "a malformed request answered %d, not EIO", a->result);
			continue;
		}
		const char *problem = daemon_problem(&s->msg, a, s->staged);
		CHECK(!problem, "answer to request %llu (type %u) that ringdevd refuses: %s", (unsigned long long)a->id,
		      s->msg.type, problem);
	}
	t->rejected = t->failed = 0;
	t->nrequests = 0;
	uint8_t f = fin_u8(in);
	if (fin_done(in)) {
		rdb_stop(loop.broker);
		return 0;
	}
	if ((f & 0xf0) == 0xf0) { /* a transport error: EINTR and EAGAIN go on, others end the loop */
		static const int errs[] = { -EINTR, -EAGAIN, -EIO, -ENODEV };
		return errs[f & 3];
	}
	uint32_t n = (f & 7) % (RINGDEV_CTL_BATCH + 1);
	while (t->nrequests < n && t->nrequests < t->max_requests && loop.nreqs < LOOP_REQS) {
		struct ringdev_ctl_request *q = &t->requests[t->nrequests++];
		request_read(in, q);
		q->id = ++loop.nreqs; /* the daemon's ids are unique */
		if (q->type == RINGDEV_CTL_CANCEL && (f & 8) && loop.nreqs > 1)
			q->ref = 1 + fin_u8(in) % (loop.nreqs - 1);
		size_t n_inline = q->inline_size < RINGDEV_CTL_INLINE ? q->inline_size : RINGDEV_CTL_INLINE;
		for (size_t i = 0; i < n_inline; i++)
			q->data[i] = in_byte(q->id, i);
		struct sent *s = &loop.reqs[q->id - 1];
		*s = (struct sent){ .msg = *q, .well_formed = ctl_request_check(q) == 0 };
		if (q->type == RINGDEV_CTL_CANCEL) {
			struct sent *target = sent_of(q->ref);
			if (target)
				target->cancelled = true;
		}
	}
	return 0;
}

static int fake_fetch(void *ctx, struct ringdev_ctl_bulk *b)
{
	struct fuzz_input *in = loop.in;
	struct sent *s = sent_of(b->id);
	CHECK(s && s->well_formed, "FETCH for id %llu never sent well-formed", (unsigned long long)b->id);
	CHECK(b->size <= RINGDEV_CTL_BULK && !b->reserved0 && !b->reserved[0], "FETCH of %u bytes", b->size);
	size_t payload = ctl_request_payload_size(&s->msg);
	uint8_t f = fin_u8(in);
	if ((f & 0x1f) == 0x1f)
		return -ENOENT; /* cancelled meanwhile */
	if ((f & 0x1f) == 0x1e)
		return -EIO;
	if (b->offset > payload)
		return -EINVAL;
	size_t n = payload - b->offset;
	if (n > b->size)
		n = b->size;
	if (f & 0x20)
		n = n / 2;    /* a short chunk (0 is no progress: EPROTO) */
	if ((f & 0xc0) == 0xc0)
		n = n + 1;    /* more than asked: EPROTO */
	if (n > RINGDEV_CTL_BULK)
		n = RINGDEV_CTL_BULK;
	for (size_t i = 0; i < n; i++)
		b->data[i] = in_byte(b->id, b->offset + i);
	b->size = (uint32_t)n;
	return 0;
}

static int fake_stage(void *ctx, const struct ringdev_ctl_bulk *b)
{
	struct sent *s = sent_of(b->id);
	CHECK(s && s->well_formed, "STAGE for id %llu never sent well-formed", (unsigned long long)b->id);
	CHECK(s->answers == 0, "STAGE after the answer of %llu", (unsigned long long)b->id);
	CHECK(b->size <= RINGDEV_CTL_BULK && !b->reserved0 && !b->reserved[0], "STAGE of %u bytes", b->size);
	CHECK(b->offset == s->staged, "STAGE at %llu, %zu staged so far", (unsigned long long)b->offset, s->staged);
	for (size_t i = 0; i < b->size; i++)
		CHECK(b->data[i] == out_byte(b->id, b->offset + i), "STAGE carries wrong bytes");
	uint8_t f = fin_u8(loop.in);
	if ((f & 0x3f) == 0x3f)
		return -ENOENT; /* the daemon forgot it */
	if ((f & 0x3f) == 0x3e)
		return -EIO;
	s->staged += b->size;
	return 0;
}

static const struct rdb_transport fake_transport = {
	.transact = fake_transact,
	.fetch = fake_fetch,
	.stage = fake_stage,
};

static int answer_now(struct rdb_request *r, struct fuzz_input *in)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);
	static uint8_t out[RINGDEV_CTL_BULK * 2 + 10];
	size_t size;
	switch (fin_pick(in, 4)) {
	case 0:
		size = q->type == RINGDEV_CTL_READ ? q->size : q->out_size;
		break;
	case 1:
		size = fin_u16(in);
		break;
	case 2:
		size = RINGDEV_CTL_INLINE + fin_pick(in, 3) - 1;
		break;
	default:
		size = fin_u8(in);
		break;
	}
	if (size > sizeof(out))
		size = sizeof(out);
	for (size_t i = 0; i < size; i++)
		out[i] = out_byte(q->id, i);
	struct rdb_pipe_settings set = { .kind = fin_pick(in, 4), .policy = fin_pick(in, 5), .mode = fin_u16(in) & 01777,
					 .uid = 1000, .gid = 1000 };
	switch (fin_pick(in, 9)) {
	case 0:
		return rdb_allow(r);
	case 1:
		return rdb_allow_pipe(r, pipe_names[fin_pick(in, 5)], (fin_u8(in) & 1) ? &set : NULL, fin_u8(in) & 1);
	case 2:
		return rdb_allow_builtin(r);
	case 3:
		return rdb_deny(r, fin_pick(in, 4) ? 1 + fin_u8(in) : (int)fin_u16(in));
	case 4:
		return rdb_reply_ioctl(r, fin_pick(in, 4) ? fin_u8(in) : (int)fin_u32(in), out, size);
	case 5:
		return rdb_reply_read(r, out, size);
	case 6:
		return rdb_reply_write(r, fin_pick(in, 2) ? q->size : fin_u32(in));
	case 7:
		return rdb_drop(r);
	default:
		return rdb_deny(r, EACCES);
	}
}

/* What an answer function may return: its own refusals, or an error of
 * the (scripted) transport it sent with. */
static void answered(int rc)
{
	CHECK(rc == 0 || rc == -EINVAL || rc == -ENOENT || rc == -EPROTONOSUPPORT || rc == -EIO || rc == -ENODEV ||
	      rc == -EAGAIN, "an answer function returned %d", rc);
}

static void handler(struct rdb_request *r, void *data)
{
	struct fuzz_input *in = loop.in;
	const struct ringdev_ctl_request *q = rdb_request_info(r);
	struct sent *s = sent_of(q->id);
	CHECK(s && s->well_formed, "the handler got request %llu, never sent well-formed", (unsigned long long)q->id);
	CHECK(!s->in_handler, "request %llu handled twice at once", (unsigned long long)q->id);
	if (ctl_type_is_notice(q->type)) {
		if (q->type == RINGDEV_CTL_CANCEL) {
			struct sent *target = sent_of(q->ref);
			CHECK(!target || !target->in_handler, "CANCEL of %llu while its handler runs",
			      (unsigned long long)q->ref);
			CHECK(!target || target->handled || !target->well_formed || ctl_type_is_notice(target->msg.type),
			      "CANCEL of %llu before its handler ran", (unsigned long long)q->ref);
		}
		CHECK(rdb_deny(r, EIO) == -EINVAL, "a notice took an answer");
		return;
	}
	CHECK(!s->handled, "request %llu given to the handler twice", (unsigned long long)q->id);
	size_t size;
	const uint8_t *p = rdb_request_payload(r, &size);
	CHECK(size == ctl_request_payload_size(q), "payload of %zu bytes, the request says %zu", size,
	      ctl_request_payload_size(q));
	for (size_t i = 0; i < size; i++)
		CHECK(p[i] == in_byte(q->id, i), "payload byte %zu of request %llu is wrong", i, (unsigned long long)q->id);
	s->in_handler = true;
	uint8_t f = fin_u8(in);
	if ((f & 3) == 3 && loop.ndeferred < DEFERRED)
		loop.deferred[loop.ndeferred++] = r; /* answered later */
	else
		answered(answer_now(r, in));
	if ((f & 4) && loop.ndeferred) /* an older one now */
		answered(answer_now(loop.deferred[--loop.ndeferred], in));
	s->in_handler = false;
	s->handled = true;
}

static void run_loop(struct fuzz_input *in)
{
	struct ringdev_version version = { .abi_major = RINGDEV_ABI_MAJOR, .abi_minor = fin_u8(in) & 1 };
	memset(&loop, 0, sizeof(loop));
	loop.in = in;
	CHECK(rdb_open_transport(&fake_transport, NULL, &version, handler, NULL, &loop.broker) == 0, "open failed");
	int r = rdb_run(loop.broker, 1);
	CHECK(r == 0 || r == -EIO || r == -ENODEV, "rdb_run returned %d", r);
	/* Deferred answers after the loop: sent at once by TRANSACTs of their own. */
	while (loop.ndeferred)
		answered(answer_now(loop.deferred[--loop.ndeferred], in));
	struct rdb_stats st;
	rdb_get_stats(loop.broker, &st);
	CHECK(st.held == 0, "%llu requests held after every answer", (unsigned long long)st.held);
	loop.broker = rdb_close(loop.broker);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	if (fin_u8(&in) & 1)
		run_loop(&in);
	else
		one_request(&in);
	return 0;
}
