/* SPDX-License-Identifier: MIT */
/*
 * test_loop.c - libringdev-broker's loop (broker/lib/broker.c) against a
 * scripted daemon behind the transport table: answers batched per TRANSACT
 * (and more than a batch split over several), deferred answers from other
 * threads sent at once, payloads fetched and staged in chunks, CANCEL after
 * its request and never before, early cancels, malformed requests, misuse of
 * the answer functions, rdb_allow_builtin and rdb_allow_grant (and a
 * daemon too old for them), stop, N threads, and a broken channel. Also
 * rdb_ctl_path and rdb_open on things that are no control node.
 *
 * The fake daemon hands out what the test pushed (as many per TRANSACT as
 * asked) and records every TRANSACT and every answer; tests wait for what
 * they expect with a limit that only catches hangs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "transport.h"

#define WAIT_MS 5000
#define MAX_CALLS 1024
#define MAX_ANSWERS 1024
#define MAX_QUEUE 64

struct call {
	uint32_t nanswers;
	uint32_t max_requests;
	uint32_t timeout_ms;
};

struct stage_buffer {
	uint64_t id;
	size_t len;
	uint8_t bytes[65536];
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ringdev_ctl_request queue[MAX_QUEUE];
	unsigned queued;
	unsigned taken;                  /* requests handed out so far */
	struct call calls[MAX_CALLS];
	unsigned ncalls;
	struct ringdev_ctl_answer answers[MAX_ANSWERS];
	unsigned nanswers;
	int fail;                        /* TRANSACT returns this when set */
	uint64_t payload_id;             /* FETCH serves `payload` for this id */
	const uint8_t *payload;
	size_t payload_size;
	struct stage_buffer staged;
	unsigned fetches, stages;
	uint64_t refuse_id;              /* TRANSACT reports answers to this id refused */
} fake = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static int fake_transact(void *ctx, struct ringdev_ctl_transact *t)
{
	struct timespec deadline;

	pthread_mutex_lock(&fake.lock);
	if (fake.fail) {
		pthread_mutex_unlock(&fake.lock);
		return fake.fail;
	}
	cr_assert_leq(t->nanswers, RINGDEV_CTL_BATCH);
	cr_assert_leq(t->max_requests, RINGDEV_CTL_BATCH);
	if (fake.ncalls < MAX_CALLS)
		fake.calls[fake.ncalls++] = (struct call){ t->nanswers, t->max_requests, t->timeout_ms };
	for (uint32_t i = 0; i < t->nanswers && fake.nanswers < MAX_ANSWERS; i++)
		fake.answers[fake.nanswers++] = t->answers[i];
	pthread_cond_broadcast(&fake.cond);
	/* Park like the daemon, but at most 20 ms so a stuck test ends. */
	if (fake.queued == 0 && t->max_requests && t->timeout_ms) {
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_nsec += 20 * 1000 * 1000;
		if (deadline.tv_nsec >= 1000000000) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&fake.cond, &fake.lock, &deadline);
	}
	t->nrequests = 0;
	while (t->nrequests < t->max_requests && fake.queued) {
		t->requests[t->nrequests++] = fake.queue[0];
		memmove(fake.queue, fake.queue + 1, --fake.queued * sizeof(fake.queue[0]));
		fake.taken++;
	}
	t->rejected = t->failed = t->refused = 0;
	for (uint32_t i = 0; i < t->nanswers; i++)
		if (fake.refuse_id && t->answers[i].id == fake.refuse_id)
			t->refused |= 1u << i;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

static int fake_fetch(void *ctx, struct ringdev_ctl_bulk *b)
{
	pthread_mutex_lock(&fake.lock);
	fake.fetches++;
	int r = 0;
	if (b->id != fake.payload_id || !fake.payload) {
		r = -ENOENT;
	} else if (b->offset > fake.payload_size) {
		r = -EINVAL;
	} else {
		size_t n = fake.payload_size - b->offset;
		if (n > b->size)
			n = b->size;
		memcpy(b->data, fake.payload + b->offset, n);
		b->size = (uint32_t)n;
	}
	pthread_mutex_unlock(&fake.lock);
	return r;
}

static int fake_stage(void *ctx, const struct ringdev_ctl_bulk *b)
{
	pthread_mutex_lock(&fake.lock);
	fake.stages++;
	cr_assert_leq(b->size, RINGDEV_CTL_BULK);
	cr_assert_leq(b->offset + b->size, sizeof(fake.staged.bytes));
	cr_assert_eq(b->offset, fake.staged.id == b->id ? fake.staged.len : 0, "staged in order from 0");
	fake.staged.id = b->id;
	memcpy(fake.staged.bytes + b->offset, b->data, b->size);
	fake.staged.len = b->offset + b->size;
	pthread_mutex_unlock(&fake.lock);
	return 0;
}

static const struct rdb_transport fake_transport = {
	.transact = fake_transact,
	.fetch = fake_fetch,
	.stage = fake_stage,
};

static void push(const struct ringdev_ctl_request *requests, unsigned n)
{
	pthread_mutex_lock(&fake.lock);
	cr_assert_leq(fake.queued + n, MAX_QUEUE);
	memcpy(fake.queue + fake.queued, requests, n * sizeof(*requests));
	fake.queued += n;
	pthread_cond_broadcast(&fake.cond);
	pthread_mutex_unlock(&fake.lock);
}

static struct ringdev_ctl_request request(uint32_t type, uint64_t id)
{
	struct ringdev_ctl_request q;

	memset(&q, 0, sizeof(q));
	q.id = id;
	q.type = type;
	q.handle = 1000 + id;
	return q;
}

static void push_one(uint32_t type, uint64_t id)
{
	struct ringdev_ctl_request q = request(type, id);
	push(&q, 1);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = (long)ms * 1000000 };

	nanosleep(&ts, NULL);
}

static unsigned answers_count(void)
{
	pthread_mutex_lock(&fake.lock);
	unsigned n = fake.nanswers;
	pthread_mutex_unlock(&fake.lock);
	return n;
}

static void wait_answers(unsigned n)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	while (answers_count() < n) {
		cr_assert_lt(now_ms(), deadline, "%u answers after %d ms, expected %u", answers_count(), WAIT_MS, n);
		pause_ms(1);
	}
}

/* Every pushed request was handed out (and one more TRANSACT came after,
 * so the loop thread finished dispatching them). */
static void wait_taken(void)
{
	uint64_t deadline = now_ms() + WAIT_MS;

	for (;;) {
		pthread_mutex_lock(&fake.lock);
		bool done = fake.queued == 0;
		unsigned calls = fake.ncalls;
		pthread_mutex_unlock(&fake.lock);
		if (done) {
			/* One more TRANSACT: the dispatch of the last batch ended. */
			while (now_ms() < deadline) {
				pthread_mutex_lock(&fake.lock);
				bool after = fake.ncalls > calls;
				pthread_mutex_unlock(&fake.lock);
				if (after)
					return;
				pause_ms(1);
			}
		}
		cr_assert_lt(now_ms(), deadline, "requests not taken after %d ms", WAIT_MS);
		pause_ms(1);
	}
}

static const struct ringdev_ctl_answer *answer_for(uint64_t id)
{
	for (unsigned i = 0; i < fake.nanswers; i++)
		if (fake.answers[i].id == id)
			return &fake.answers[i];
	return NULL;
}

/* ---- the broker under test ---- */

typedef void test_handler_fn(struct rdb_request *request);
static test_handler_fn *handler;
static struct rdb_broker *broker;
static pthread_t runner;
static int run_result;
static unsigned run_threads = 1;
static bool running;
static uint32_t daemon_abi_minor = RINGDEV_ABI_MINOR; /* what the fake daemon's VERSION says */

static void on_request(struct rdb_request *request, void *data)
{
	cr_assert_eq(data, &fake);
	handler(request);
}

static void *run_thread(void *arg)
{
	run_result = rdb_run(broker, run_threads);
	return NULL;
}

static void start(test_handler_fn *fn, unsigned threads)
{
	struct ringdev_version version = { .abi_major = RINGDEV_ABI_MAJOR, .abi_minor = daemon_abi_minor };

	handler = fn;
	run_threads = threads;
	cr_assert_eq(rdb_open_transport(&fake_transport, NULL, &version, on_request, &fake, &broker), 0);
	cr_assert_eq(pthread_create(&runner, NULL, run_thread, NULL), 0);
	running = true;
}

static int stop(void)
{
	if (running) {
		rdb_stop(broker);
		pthread_join(runner, NULL);
		running = false;
	}
	return run_result;
}

static void teardown(void)
{
	stop();
	broker = rdb_close(broker);
}

TestSuite(loop, .fini = teardown, .timeout = 30);

/* ---- handlers ---- */

static void allow_all(struct rdb_request *r)
{
	if (rdb_request_info(r)->type == RINGDEV_CTL_OPEN || rdb_request_info(r)->type == RINGDEV_CTL_ATTACH)
		cr_assert_eq(rdb_allow(r), 0);
}

/* Requests kept by the handler, for deferred answers. */
static pthread_mutex_t kept_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rdb_request *kept[64];
static unsigned nkept;
static uint64_t seen[64];
static unsigned nseen;

static void keep(struct rdb_request *r)
{
	pthread_mutex_lock(&kept_lock);
	seen[nseen++] = rdb_request_info(r)->id;
	kept[nkept++] = r;
	pthread_mutex_unlock(&kept_lock);
}

static struct rdb_request *kept_take(uint64_t id)
{
	struct rdb_request *found = NULL;

	pthread_mutex_lock(&kept_lock);
	for (unsigned i = 0; i < nkept && !found; i++) {
		if (rdb_request_info(kept[i])->id == id) {
			found = kept[i];
			kept[i] = kept[--nkept];
		}
	}
	pthread_mutex_unlock(&kept_lock);
	return found;
}

/* ---- tests ---- */

Test(loop, answers_of_one_batch_go_out_in_one_transact)
{
	struct ringdev_ctl_request batch[4];

	for (unsigned i = 0; i < 4; i++)
		batch[i] = request(RINGDEV_CTL_OPEN, 1 + i);
	push(batch, 4);
	start(allow_all, 1);
	wait_answers(4);
	cr_assert_eq(stop(), 0);

	bool together = false;
	for (unsigned i = 0; i < fake.ncalls; i++)
		together |= fake.calls[i].nanswers == 4;
	cr_assert(together, "the 4 answers were not carried by one TRANSACT");
	for (unsigned i = 0; i < 4; i++) {
		const struct ringdev_ctl_answer *a = answer_for(1 + i);
		cr_assert_not_null(a);
		cr_assert_eq(a->result, 0);
	}
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.requests, 4);
	cr_assert_eq(s.answers, 4);
	cr_assert_eq(s.held, 0);
}

/* WRITEs are kept until the READ; then all 7 answers are queued at once. */
static void hold_writes_until_read(struct rdb_request *r)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);

	if (q->type == RINGDEV_CTL_WRITE) {
		keep(r);
		return;
	}
	cr_assert_eq(rdb_reply_read(r, NULL, 0), 0);
	for (uint64_t id = 1; id <= 6; id++) {
		struct rdb_request *w = kept_take(id);
		cr_assert_not_null(w);
		cr_assert_eq(rdb_reply_write(w, 0), 0);
	}
}

Test(loop, more_answers_than_a_batch_take_several_transacts)
{
	struct ringdev_ctl_request writes[6];

	for (unsigned i = 0; i < 6; i++)
		writes[i] = request(RINGDEV_CTL_WRITE, 1 + i);
	push(writes, 6);
	start(hold_writes_until_read, 1);
	wait_taken();
	push_one(RINGDEV_CTL_READ, 7);
	wait_answers(7);
	cr_assert_eq(stop(), 0);

	/* 7 answers: 4 with no request taken (more were waiting), then 3. */
	unsigned i = 0;
	while (i < fake.ncalls && fake.calls[i].nanswers == 0)
		i++;
	cr_assert_lt(i + 1, fake.ncalls);
	cr_assert_eq(fake.calls[i].nanswers, 4);
	cr_assert_eq(fake.calls[i].max_requests, 0);
	cr_assert_eq(fake.calls[i].timeout_ms, 0);
	cr_assert_eq(fake.calls[i + 1].nanswers, 3);
	cr_assert_eq(fake.calls[i + 1].max_requests, RINGDEV_CTL_BATCH);
}

Test(loop, a_deferred_answer_from_another_thread_goes_out_at_once)
{
	start(keep, 1);
	push_one(RINGDEV_CTL_WRITE, 5);
	wait_taken();
	struct rdb_request *r = kept_take(5);
	cr_assert_not_null(r);
	cr_assert_eq(rdb_reply_write(r, 0), 0);
	/* Sent by this thread's own TRANSACT, before rdb_reply_write returned. */
	pthread_mutex_lock(&fake.lock);
	const struct ringdev_ctl_answer *a = answer_for(5);
	cr_assert_not_null(a);
	bool flush = false;
	for (unsigned i = 0; i < fake.ncalls; i++)
		flush |= fake.calls[i].nanswers == 1 && fake.calls[i].max_requests == 0;
	pthread_mutex_unlock(&fake.lock);
	cr_assert(flush, "no TRANSACT without requests carried the answer");
}

static uint8_t pattern_byte(size_t i)
{
	return (uint8_t)(i * 31 + (i >> 8));
}

static bool payload_ok;

static void check_payload_and_stage(struct rdb_request *r)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);
	size_t size;
	const uint8_t *p = rdb_request_payload(r, &size);

	if (q->type == RINGDEV_CTL_WRITE) {
		payload_ok = size == 40000;
		for (size_t i = 0; payload_ok && i < size; i++)
			payload_ok = p[i] == pattern_byte(i);
		cr_assert_eq(rdb_reply_write(r, size), 0);
		return;
	}
	static uint8_t out[5000];
	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = pattern_byte(i + 7);
	cr_assert_eq(rdb_reply_ioctl(r, 77, out, sizeof(out)), 0);
}

Test(loop, large_payloads_are_fetched_and_staged)
{
	static uint8_t payload[40000];
	struct ringdev_ctl_request w = request(RINGDEV_CTL_WRITE, 20);
	struct ringdev_ctl_request io = request(RINGDEV_CTL_IOCTL, 21);

	for (size_t i = 0; i < sizeof(payload); i++)
		payload[i] = pattern_byte(i);
	w.size = sizeof(payload);
	w.inline_size = RINGDEV_CTL_INLINE;
	memcpy(w.data, payload, RINGDEV_CTL_INLINE);
	fake.payload_id = 20;
	fake.payload = payload;
	fake.payload_size = sizeof(payload);
	io.out_size = 5000;
	push(&w, 1);
	start(check_payload_and_stage, 1);
	wait_answers(1);
	cr_assert(payload_ok, "the handler did not see the whole payload");
	cr_assert_eq(fake.fetches, 3, "(40000 - 1024) bytes in chunks of %u", RINGDEV_CTL_BULK);
	push(&io, 1);
	wait_answers(2);
	cr_assert_eq(stop(), 0);

	const struct ringdev_ctl_answer *a = answer_for(21);
	cr_assert_not_null(a);
	cr_assert_eq(a->result, 77);
	cr_assert_eq(a->flags, RINGDEV_ANSWER_STAGED);
	cr_assert_eq(a->size, 5000);
	cr_assert_eq(fake.stages, 1);
	cr_assert_eq(fake.staged.id, 21);
	cr_assert_eq(fake.staged.len, 5000);
	for (size_t i = 0; i < 5000; i++)
		cr_assert_eq(fake.staged.bytes[i], pattern_byte(i + 7));
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.fetched_bytes, 40000 - RINGDEV_CTL_INLINE);
	cr_assert_eq(s.staged_bytes, 5000);
}

/* Keeps WRITEs; on a CANCEL drops the request it names. */
static unsigned cancels_seen;

static void keep_then_drop_on_cancel(struct rdb_request *r)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);

	if (q->type != RINGDEV_CTL_CANCEL) {
		keep(r);
		return;
	}
	cancels_seen++;
	struct rdb_request *target = kept_take(q->ref);
	cr_assert_not_null(target, "a CANCEL for a request the handler does not hold");
	cr_assert(rdb_request_cancelled(target));
	cr_assert_eq(rdb_drop(target), 0);
	cr_assert_eq(rdb_deny(r, EPERM), -EINVAL, "a notice takes no answer");
}

Test(loop, cancel_comes_to_the_handler_and_drop_sends_nothing_before_abi_1_2)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 31);

	daemon_abi_minor = 1;
	cancel.ref = 30;
	start(keep_then_drop_on_cancel, 1);
	push_one(RINGDEV_CTL_WRITE, 30);
	wait_taken();
	push(&cancel, 1);
	wait_taken();
	cr_assert_eq(stop(), 0);
	cr_assert_eq(cancels_seen, 1);
	cr_assert_null(answer_for(30));
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.dropped, 1);
	cr_assert_eq(s.held, 0);
	cr_assert_eq(s.notices, 1);
}

/* An answer to a cancelled request is not sent. */
static void keep_and_mark(struct rdb_request *r)
{
	if (rdb_request_info(r)->type != RINGDEV_CTL_CANCEL)
		keep(r);
}

Test(loop, answering_a_cancelled_request_sends_nothing_before_abi_1_2)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 41);

	daemon_abi_minor = 1;
	cancel.ref = 40;
	start(keep_and_mark, 1);
	push_one(RINGDEV_CTL_WRITE, 40);
	wait_taken();
	push(&cancel, 1);
	wait_taken();
	struct rdb_request *r = kept_take(40);
	cr_assert(rdb_request_cancelled(r));
	cr_assert_eq(rdb_reply_write(r, 0), 0);
	cr_assert_eq(stop(), 0);
	cr_assert_null(answer_for(40));
}

/* The handler of request 50 waits until the test lets it go; meanwhile the
 * CANCEL of 50 reaches the other thread and must wait for it. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cond = PTHREAD_COND_INITIALIZER;
static bool gate_open, in_handler;
static char order[8];
static unsigned norder;

static void slow_handler(struct rdb_request *r)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);

	pthread_mutex_lock(&gate_lock);
	if (q->type == RINGDEV_CTL_CANCEL) {
		order[norder++] = 'C';
		pthread_mutex_unlock(&gate_lock);
		struct rdb_request *target = kept_take(q->ref);
		cr_assert_not_null(target);
		rdb_drop(target);
		return;
	}
	order[norder++] = 'W';
	in_handler = true;
	pthread_cond_broadcast(&gate_cond);
	while (!gate_open)
		pthread_cond_wait(&gate_cond, &gate_lock);
	order[norder++] = 'w';
	pthread_mutex_unlock(&gate_lock);
	keep(r);
}

Test(loop, a_cancel_waits_for_the_handler_of_its_request)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 51);

	daemon_abi_minor = 1;
	cancel.ref = 50;
	start(slow_handler, 2);
	push_one(RINGDEV_CTL_WRITE, 50);
	pthread_mutex_lock(&gate_lock);
	while (!in_handler)
		pthread_cond_wait(&gate_cond, &gate_lock);
	pthread_mutex_unlock(&gate_lock);
	push(&cancel, 1);
	/* The other thread takes the CANCEL and must not deliver it yet. */
	uint64_t deadline = now_ms() + WAIT_MS;
	for (;;) {
		pthread_mutex_lock(&fake.lock);
		bool taken = fake.queued == 0;
		pthread_mutex_unlock(&fake.lock);
		if (taken)
			break;
		cr_assert_lt(now_ms(), deadline);
		pause_ms(1);
	}
	pause_ms(50);
	pthread_mutex_lock(&gate_lock);
	cr_assert_eq(norder, 1, "the CANCEL was delivered while its request's handler ran");
	gate_open = true;
	pthread_cond_broadcast(&gate_cond);
	pthread_mutex_unlock(&gate_lock);
	deadline = now_ms() + WAIT_MS;
	for (;;) {
		pthread_mutex_lock(&gate_lock);
		unsigned n = norder;
		pthread_mutex_unlock(&gate_lock);
		if (n == 3)
			break;
		cr_assert_lt(now_ms(), deadline, "the kept CANCEL never came");
		pause_ms(1);
	}
	cr_assert_eq(stop(), 0);
	cr_assert_eq(memcmp(order, "WwC", 3), 0, "order %.3s", order);
	cr_assert_null(answer_for(50));
}

static unsigned handler_calls;

static void count_calls(struct rdb_request *r)
{
	handler_calls++;
	if (rdb_request_info(r)->type != RINGDEV_CTL_CANCEL && rdb_request_info(r)->type != RINGDEV_CTL_RELEASE)
		rdb_deny(r, EPERM);
}

Test(loop, a_cancel_before_its_request_drops_the_request_before_abi_1_2)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 61);

	daemon_abi_minor = 1;
	cancel.ref = 60;
	start(count_calls, 1);
	push(&cancel, 1);
	wait_taken();
	push_one(RINGDEV_CTL_WRITE, 60);
	wait_taken();
	cr_assert_eq(stop(), 0);
	cr_assert_eq(handler_calls, 0, "neither the stray CANCEL nor its request reach the handler");
	cr_assert_null(answer_for(60));
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.dropped, 1);
	cr_assert_eq(s.requests, 1);
	cr_assert_eq(s.notices, 1);
}

/* Issue 19 B: with ABI 1.2 a CANCEL is a handshake. Dropping the cancelled
 * request answers "cancelled, nothing done" (-EINTR), so the app's call ends
 * now rather than at --cancel-timeout. */
Test(loop, cancel_then_drop_answers_eintr)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 31);

	cancel.ref = 30;
	start(keep_then_drop_on_cancel, 1);
	push_one(RINGDEV_CTL_WRITE, 30);
	wait_taken();
	push(&cancel, 1);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(cancels_seen, 1);
	cr_assert_not_null(answer_for(30));
	cr_assert_eq(answer_for(30)->result, -EINTR);
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.held, 0);
}

/* Issue 19 B: the result of work the broker did before the CANCEL came is
 * sent: the app gets it (a writer is not told EINTR for bytes a reader got). */
Test(loop, answering_a_cancelled_request_sends_the_answer)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 41);

	cancel.ref = 40;
	start(keep_and_mark, 1);
	push_one(RINGDEV_CTL_WRITE, 40);
	wait_taken();
	push(&cancel, 1);
	wait_taken();
	struct rdb_request *r = kept_take(40);
	cr_assert(rdb_request_cancelled(r));
	cr_assert_eq(rdb_reply_write(r, 0), 0);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_not_null(answer_for(40));
	cr_assert_eq(answer_for(40)->result, 0);
}

/* Issue 19 B: a CANCEL taken before its request (two loop threads) still
 * ends the request with an answer, without the handler. */
Test(loop, a_cancel_before_its_request_answers_eintr)
{
	struct ringdev_ctl_request cancel = request(RINGDEV_CTL_CANCEL, 61);

	cancel.ref = 60;
	start(count_calls, 1);
	push(&cancel, 1);
	wait_taken();
	push_one(RINGDEV_CTL_WRITE, 60);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(handler_calls, 0, "neither the stray CANCEL nor its request reach the handler");
	cr_assert_not_null(answer_for(60));
	cr_assert_eq(answer_for(60)->result, -EINTR);
}

/* Issue 19 B: an answer the daemon refused comes back to the refused
 * handler with a copy of its payload (inline or staged), on the loop
 * thread, before the requests of that TRANSACT are dispatched. */
static pthread_mutex_t refused_lock = PTHREAD_MUTEX_INITIALIZER; /* the loop thread writes, the test reads */
static uint8_t refused_bytes[8192];
static size_t refused_size;
static uint64_t refused_id;
static unsigned refused_calls;

static void on_refused(const struct rdb_request *request, const struct ringdev_ctl_answer *a, const void *payload,
		       size_t size, void *data)
{
	cr_assert_eq(data, &fake);
	cr_assert_eq(a->id, rdb_request_info(request)->id);
	cr_assert_leq(size, sizeof(refused_bytes));
	pthread_mutex_lock(&refused_lock);
	refused_calls++;
	refused_id = rdb_request_info(request)->id;
	memcpy(refused_bytes, payload, size);
	refused_size = size;
	pthread_mutex_unlock(&refused_lock);
}

static void read_pattern(struct rdb_request *r)
{
	static uint8_t bytes[5000];
	const struct ringdev_ctl_request *q = rdb_request_info(r);

	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(i % 253);
	if (q->type == RINGDEV_CTL_READ)
		cr_assert_eq(rdb_reply_read(r, bytes, q->size), 0);
}

Test(loop, refused_answers_go_to_the_refused_handler_with_their_payload)
{
	struct ringdev_ctl_request small = request(RINGDEV_CTL_READ, 80);
	struct ringdev_ctl_request big = request(RINGDEV_CTL_READ, 81);

	small.size = 10;
	big.size = 5000;
	handler = read_pattern;
	struct ringdev_version version = { .abi_major = RINGDEV_ABI_MAJOR, .abi_minor = daemon_abi_minor };
	cr_assert_eq(rdb_open_transport(&fake_transport, NULL, &version, on_request, &fake, &broker), 0);
	cr_assert_eq(rdb_set_refused_handler(broker, on_refused, &fake), 0);
	fake.refuse_id = 80;
	cr_assert_eq(pthread_create(&runner, NULL, run_thread, NULL), 0);
	running = true;
	push(&small, 1);
	wait_answers(1);
	pause_ms(30);
	pthread_mutex_lock(&refused_lock);
	unsigned calls = refused_calls;
	uint64_t id = refused_id;
	size_t size = refused_size;
	uint8_t last = refused_bytes[9];
	pthread_mutex_unlock(&refused_lock);
	cr_assert_eq(calls, 1);
	cr_assert_eq(id, 80);
	cr_assert_eq(size, 10);
	cr_assert_eq(last, 9);
	pthread_mutex_lock(&fake.lock);
	fake.refuse_id = 81;
	pthread_mutex_unlock(&fake.lock);
	push(&big, 1);
	wait_answers(2);
	pause_ms(30);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(refused_calls, 2);
	cr_assert_eq(refused_id, 81);
	cr_assert_eq(refused_size, 5000, "a staged answer's payload too");
	for (size_t i = 0; i < 5000; i++)
		cr_assert_eq(refused_bytes[i], (uint8_t)(i % 253), "byte %zu", i);
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.refused, 2);
	cr_assert_eq(s.held, 0);
}

/* The accepted handler gets every answer the daemon took, the refused
 * handler every one it refused: each answer exactly one of the two. */
static unsigned accepted_calls;
static uint64_t accepted_id;

static void on_accepted(const struct rdb_request *request, const struct ringdev_ctl_answer *a, void *data)
{
	cr_assert_eq(data, &fake);
	cr_assert_eq(a->id, rdb_request_info(request)->id);
	pthread_mutex_lock(&refused_lock);
	accepted_calls++;
	accepted_id = a->id;
	pthread_mutex_unlock(&refused_lock);
}

Test(loop, every_answer_is_either_accepted_or_refused)
{
	struct ringdev_ctl_request taken = request(RINGDEV_CTL_READ, 90);
	struct ringdev_ctl_request refused = request(RINGDEV_CTL_READ, 91);

	taken.size = refused.size = 10;
	handler = read_pattern;
	struct ringdev_version version = { .abi_major = RINGDEV_ABI_MAJOR, .abi_minor = daemon_abi_minor };
	cr_assert_eq(rdb_open_transport(&fake_transport, NULL, &version, on_request, &fake, &broker), 0);
	cr_assert_eq(rdb_set_refused_handler(broker, on_refused, &fake), 0);
	cr_assert_eq(rdb_set_accepted_handler(broker, on_accepted, &fake), 0);
	fake.refuse_id = 91;
	cr_assert_eq(pthread_create(&runner, NULL, run_thread, NULL), 0);
	running = true;
	push(&taken, 1);
	wait_answers(1);
	cr_assert_eq(rdb_set_accepted_handler(broker, NULL, NULL), -EBUSY, "not while it runs");
	push(&refused, 1);
	wait_answers(2);
	pause_ms(30);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(accepted_calls, 1);
	cr_assert_eq(accepted_id, 90);
	cr_assert_eq(refused_calls, 1);
	cr_assert_eq(refused_id, 91);
}

Test(loop, a_malformed_request_is_answered_eio)
{
	struct ringdev_ctl_request bad = request(99, 70);
	struct ringdev_ctl_request bad_name = request(RINGDEV_CTL_ATTACH, 71);

	memset(bad_name.name, 'x', sizeof(bad_name.name));
	push(&bad, 1);
	push(&bad_name, 1);
	start(count_calls, 1);
	wait_answers(2);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(handler_calls, 0);
	cr_assert_eq(answer_for(70)->result, -EIO);
	cr_assert_eq(answer_for(71)->result, -EIO);
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.malformed, 2);
}

Test(loop, a_request_gone_before_its_payload_was_fetched_is_dropped)
{
	struct ringdev_ctl_request w = request(RINGDEV_CTL_WRITE, 80);

	w.size = 5000;
	w.inline_size = RINGDEV_CTL_INLINE;
	push(&w, 1); /* the fake has no payload for 80: FETCH says ENOENT */
	start(count_calls, 1);
	wait_taken();
	cr_assert_eq(stop(), 0);
	cr_assert_eq(handler_calls, 0);
	cr_assert_null(answer_for(80));
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.dropped, 1);
	cr_assert_eq(s.held, 0);
}

static int misuse_result;

static void misuse(struct rdb_request *r)
{
	misuse_result = rdb_reply_read(r, "x", 1); /* an OPEN is no READ */
}

Test(loop, a_wrong_answer_fails_with_einval_and_the_app_gets_eio)
{
	push_one(RINGDEV_CTL_OPEN, 90);
	start(misuse, 1);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(misuse_result, -EINVAL);
	cr_assert_eq(answer_for(90)->result, -EIO);
}

/* An errno the kernel cannot carry (above RDB_ERRNO_MAX, 511) would leave
 * the app's call unanswerable: the answer function refuses it, and the
 * request, consumed anyway, is answered EIO. Values at the limit go out. */
static int errno_results[4];

static void answer_errnos(struct rdb_request *r)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);

	if (q->id == 101)
		errno_results[0] = rdb_deny(r, 600);
	else if (q->id == 102)
		errno_results[1] = rdb_reply_ioctl(r, -512, NULL, 0);
	else if (q->id == 103)
		errno_results[2] = rdb_deny(r, RDB_ERRNO_MAX);
	else
		errno_results[3] = rdb_reply_ioctl(r, -RDB_ERRNO_MAX, NULL, 0);
}

Test(loop, an_errno_the_kernel_cannot_carry_fails_with_einval_and_the_app_gets_eio)
{
	struct ringdev_ctl_request batch[4] = {
		request(RINGDEV_CTL_OPEN, 101),
		request(RINGDEV_CTL_IOCTL, 102),
		request(RINGDEV_CTL_ATTACH, 103),
		request(RINGDEV_CTL_IOCTL, 104),
	};
	struct rdb_stats s;

	push(batch, 4);
	start(answer_errnos, 1);
	wait_answers(4);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(errno_results[0], -EINVAL, "rdb_deny(600): %d", errno_results[0]);
	cr_assert_eq(errno_results[1], -EINVAL, "rdb_reply_ioctl(-512): %d", errno_results[1]);
	cr_assert_eq(errno_results[2], 0);
	cr_assert_eq(errno_results[3], 0);
	cr_assert_eq(answer_for(101)->result, -EIO);
	cr_assert_eq(answer_for(102)->result, -EIO);
	cr_assert_eq(answer_for(103)->result, -511);
	cr_assert_eq(answer_for(104)->result, -511);
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.held, 0, "a refused answer leaves nothing held");
	cr_assert_eq(s.answers, 4);
}

/* rdb_allow_builtin: an OPEN or ATTACH goes back to the daemon's own
 * decision as result 0 with only RINGDEV_ANSWER_BUILTIN; any other request
 * is misuse (-EINVAL, the app gets EIO) and a notice stays the library's. */
static int builtin_results[4];
static int builtin_notice_result = 1;

static void answer_builtin(struct rdb_request *r)
{
	const struct ringdev_ctl_request *q = rdb_request_info(r);

	if (q->type == RINGDEV_CTL_RELEASE)
		builtin_notice_result = rdb_allow_builtin(r);
	else
		builtin_results[q->id - 111] = rdb_allow_builtin(r);
}

Test(loop, allow_builtin_hands_an_open_or_attach_back_to_the_daemon)
{
	struct ringdev_ctl_request batch[5] = {
		request(RINGDEV_CTL_OPEN, 111),
		request(RINGDEV_CTL_ATTACH, 112),
		request(RINGDEV_CTL_IOCTL, 113),
		request(RINGDEV_CTL_WRITE, 114),
		request(RINGDEV_CTL_RELEASE, 115),
	};
	struct rdb_stats s;

	snprintf(batch[1].name, sizeof(batch[1].name), "asked");
	push(batch, 5);
	start(answer_builtin, 1);
	wait_answers(4);
	wait_taken();
	cr_assert_eq(stop(), 0);
	cr_assert_eq(builtin_results[0], 0, "OPEN: %d", builtin_results[0]);
	cr_assert_eq(builtin_results[1], 0, "ATTACH: %d", builtin_results[1]);
	cr_assert_eq(builtin_results[2], -EINVAL, "IOCTL: %d", builtin_results[2]);
	cr_assert_eq(builtin_results[3], -EINVAL, "WRITE: %d", builtin_results[3]);
	cr_assert_eq(builtin_notice_result, -EINVAL, "a notice takes no answer");
	for (uint64_t id = 111; id <= 112; id++) {
		const struct ringdev_ctl_answer *a = answer_for(id);
		cr_assert_not_null(a);
		cr_assert_eq(a->result, 0);
		cr_assert_eq(a->flags, RINGDEV_ANSWER_BUILTIN, "flags 0x%x", a->flags);
		cr_assert_eq(a->name[0], '\0', "BUILTIN carries no name");
	}
	for (uint64_t id = 113; id <= 114; id++) {
		const struct ringdev_ctl_answer *a = answer_for(id);
		cr_assert_not_null(a);
		cr_assert_eq(a->result, -EIO, "the misused request is answered EIO");
		cr_assert_eq(a->flags, 0);
	}
	cr_assert_null(answer_for(115));
	cr_assert_eq(fake.nanswers, 4);
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.held, 0);
}

/* A daemon of ABI 1.0 would find RINGDEV_ANSWER_BUILTIN malformed (the app
 * would get EIO) and cannot decide for the broker: fail closed, EACCES. */
static int old_daemon_result = 1;

static void answer_builtin_once(struct rdb_request *r)
{
	old_daemon_result = rdb_allow_builtin(r);
}

Test(loop, allow_builtin_with_a_daemon_older_than_abi_1_1_denies_eacces)
{
	daemon_abi_minor = RDB_BUILTIN_ABI_MINOR - 1;
	push_one(RINGDEV_CTL_OPEN, 120);
	start(answer_builtin_once, 1);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(old_daemon_result, -EPROTONOSUPPORT, "%d", old_daemon_result);
	cr_assert_eq(answer_for(120)->result, -EACCES);
	cr_assert_eq(answer_for(120)->flags, 0, "no BUILTIN to a daemon that does not know it");
}

/* rdb_allow_grant: RINGDEV_ANSWER_GRANT on top of what rdb_allow_pipe
 * sends, to a daemon of ABI 1.2; an older one has no owner check to lift
 * and would find the flag malformed, so it gets the answer without it. */
static void answer_grant(struct rdb_request *r)
{
	rdb_allow_grant(r, "shared.box", NULL, false);
}

Test(loop, allow_grant_sets_the_grant_flag_for_a_daemon_of_abi_1_2)
{
	daemon_abi_minor = RDB_GRANT_ABI_MINOR;
	push_one(RINGDEV_CTL_OPEN, 130);
	start(answer_grant, 1);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(answer_for(130)->result, 0);
	cr_assert_eq(answer_for(130)->flags, RINGDEV_ANSWER_GRANT, "flags 0x%x", answer_for(130)->flags);
	cr_assert_str_eq(answer_for(130)->name, "shared.box");
}

Test(loop, allow_grant_to_a_daemon_older_than_abi_1_2_leaves_the_flag_out)
{
	daemon_abi_minor = RDB_GRANT_ABI_MINOR - 1;
	push_one(RINGDEV_CTL_OPEN, 131);
	start(answer_grant, 1);
	wait_answers(1);
	cr_assert_eq(stop(), 0);
	cr_assert_eq(answer_for(131)->result, 0);
	cr_assert_eq(answer_for(131)->flags, 0, "flags 0x%x", answer_for(131)->flags);
	cr_assert_str_eq(answer_for(131)->name, "shared.box");
}

Test(loop, four_threads_serve_and_stop)
{
	struct ringdev_ctl_request batch[8];

	start(allow_all, 4);
	for (unsigned round = 0; round < 5; round++) {
		for (unsigned i = 0; i < 8; i++)
			batch[i] = request(RINGDEV_CTL_OPEN, round * 8 + i + 1);
		push(batch, 8);
	}
	wait_answers(40);
	uint64_t t0 = now_ms();
	cr_assert_eq(stop(), 0);
	cr_assert_lt(now_ms() - t0, 2000, "stop took %llu ms", (unsigned long long)(now_ms() - t0));
	for (uint64_t id = 1; id <= 40; id++)
		cr_assert_not_null(answer_for(id), "no answer for %llu", (unsigned long long)id);
}

Test(loop, stop_before_run_returns_at_once)
{
	struct ringdev_version version = { .abi_major = RINGDEV_ABI_MAJOR };

	cr_assert_eq(rdb_open_transport(&fake_transport, NULL, &version, on_request, &fake, &broker), 0);
	rdb_stop(broker);
	cr_assert_eq(rdb_run(broker, 2), 0);
	rdb_stop(NULL); /* ignored */
}

Test(loop, a_broken_channel_ends_run_with_its_error)
{
	fake.fail = -ENODEV;
	start(allow_all, 3);
	pthread_join(runner, NULL);
	running = false;
	cr_assert_eq(run_result, -ENODEV);
}

Test(loop, run_checks_its_arguments)
{
	struct ringdev_version version = { .abi_major = RINGDEV_ABI_MAJOR };

	cr_assert_eq(rdb_open_transport(&fake_transport, NULL, &version, on_request, &fake, &broker), 0);
	cr_assert_eq(rdb_run(broker, 0), -EINVAL);
	cr_assert_eq(rdb_run(broker, 65), -EINVAL);
	cr_assert_eq(rdb_set_timeout(broker, 0), -EINVAL);
	cr_assert_eq(rdb_set_timeout(broker, 60001), -EINVAL);
	cr_assert_eq(rdb_set_timeout(broker, 100), 0);
	rdb_close(broker);
	broker = NULL;

	start(allow_all, 1);
	/* Wait until the loop runs (it called TRANSACT), not a fixed time: a
	 * second rdb_run before that would serve instead of saying EBUSY. */
	uint64_t deadline = now_ms() + WAIT_MS;
	for (;;) {
		pthread_mutex_lock(&fake.lock);
		unsigned calls = fake.ncalls;
		pthread_mutex_unlock(&fake.lock);
		if (calls > 0)
			break;
		cr_assert_lt(now_ms(), deadline, "the loop made no TRANSACT within %d ms", WAIT_MS);
		pause_ms(1);
	}
	cr_assert_eq(rdb_run(broker, 1), -EBUSY);
}

Test(loop, requests_held_at_close_are_freed)
{
	start(keep, 2);
	push_one(RINGDEV_CTL_WRITE, 100);
	push_one(RINGDEV_CTL_READ, 101);
	wait_taken();
	cr_assert_eq(stop(), 0);
	struct rdb_stats s;
	rdb_get_stats(broker, &s);
	cr_assert_eq(s.held, 2);
	/* teardown closes with both held: the sanitizer run checks for leaks */
}

/* ---- finding the control node ---- */

Test(ctl_path, from_a_mount_a_node_or_the_node_itself)
{
	char dir[] = "/tmp/rdb-test.XXXXXX";
	char path[PATH_MAX], file[PATH_MAX + 16], want[PATH_MAX + 16];

	cr_assert_not_null(mkdtemp(dir));
	cr_assert_eq(rdb_ctl_path(dir, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/.ctl", dir);
	cr_assert_str_eq(path, want);

	snprintf(file, sizeof(file), "%s/.ctl", dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(rdb_ctl_path(file, path, sizeof(path)), 0);
	cr_assert_str_eq(path, file);
	/* A regular file that is no .ctl is no device. */
	snprintf(file, sizeof(file), "%s/other", dir);
	close(open(file, O_CREAT | O_WRONLY, 0600));
	cr_assert_eq(rdb_ctl_path(file, path, sizeof(path)), -ENOTTY);

	cr_assert_eq(rdb_ctl_path("/dev/null", path, sizeof(path)), 0);
	cr_assert_str_eq(path, "/dev/null-ctl");

	snprintf(file, sizeof(file), "%s/missing", dir);
	cr_assert_eq(rdb_ctl_path(file, path, sizeof(path)), -ENOENT);
	cr_assert_str_eq(path, file, "the path looked at is reported");
	cr_assert_eq(rdb_ctl_path(dir, path, 8), -ENAMETOOLONG);

	setenv("RINGDEV_DEVICE", dir, 1);
	cr_assert_eq(rdb_ctl_path(NULL, path, sizeof(path)), 0);
	snprintf(want, sizeof(want), "%s/.ctl", dir);
	cr_assert_str_eq(path, want);

	/* rdb_open on something that answers no VERSION. */
	struct rdb_broker *b = NULL;
	cr_assert_eq(rdb_open(dir, on_request, NULL, &b), -ENOTTY);
	cr_assert_null(b);
	cr_assert_eq(rdb_open("/dev/null", on_request, NULL, &b), -ENOENT);

	snprintf(file, sizeof(file), "%s/.ctl", dir);
	unlink(file);
	snprintf(file, sizeof(file), "%s/other", dir);
	unlink(file);
	rmdir(dir);
}
