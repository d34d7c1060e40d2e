/* SPDX-License-Identifier: MIT */
/*
 * test_netpipe.c - network pipes on Redis Streams (broker/netpipe.c)
 * against a real redis-server each test starts for itself (tests/redis):
 * exactly-once delivery to consumers on several connections, each full
 * policy, the byte count returning to zero, reclaim of what a dead consumer
 * took, nothing acknowledged lost across a crash of an append-only Redis,
 * the documented errno and bound when Redis goes away or hangs or the host
 * is silent, and the reconnect after, the URL and credentials checks, AUTH.
 *
 * Threads in these tests never assert: they count what went wrong in
 * shared state, and the test's own thread asserts.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "netpipe.h"
#include "redis_fixture.h"

/* Short bounds for the tests of the bounds, so they take little time. */
#define TEST_CONNECT_MS 1000u
#define TEST_COMMAND_MS 500u
/* Every other test: bounds a busy machine never reaches (appendfsync
 * always makes each write wait for the disk). */
#define TEST_PATIENT_MS 10000u
/* Slack on a bound for a loaded machine: a hang detector, not a benchmark. */
#define TEST_SLACK_MS 1500u

static void init(void)
{
	/* as in ringdev-broker: a write to a Redis that went away must fail,
	 * not kill (netpipe.h) */
	signal(SIGPIPE, SIG_IGN);
}

static void fini(void)
{
	redis_fixture_cleanup();
}

TestSuite(netpipe, .init = init, .fini = fini, .timeout = 60);

/* In the runner process, around all the tests: the run folder. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	if (redis_fixture_run_begin() < 0)
		fprintf(stderr, "test_netpipe: no run folder for the redis servers: %s\n", strerror(errno));
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	redis_fixture_run_end();
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static struct redis_server *server_start(const char *password)
{
	char err[256] = "";
	int rc = 0;
	struct redis_server *s = redis_server_start(password, &rc, err, sizeof(err));

	if (!s && rc == -ENOENT && !getenv("RINGDEV_TEST_STRICT"))
		cr_skip_test("%s", err);
	cr_assert_not_null(s, "redis-server: %s", err);
	return s;
}

static struct np_conn *conn_open_with(const struct redis_server *s, const char *consumer,
				      const struct np_options *o)
{
	struct np_conn *c = NULL;
	char err[NP_ERROR_SIZE] = "";
	int rc = np_connect(s->url, NULL, consumer, o, &c, err, sizeof(err));

	cr_assert_eq(rc, 0, "np_connect %s: %s (%s)", s->url, strerror(-rc), err);
	return c;
}

static struct np_conn *conn_open(const struct redis_server *s, const char *consumer, uint32_t min_idle_ms)
{
	struct np_options o = {
		.connect_timeout_ms = TEST_PATIENT_MS,
		.command_timeout_ms = TEST_PATIENT_MS,
		.min_idle_ms = min_idle_ms,
	};

	return conn_open_with(s, consumer, &o);
}

/* For the tests of the bounds. */
static struct np_conn *conn_open_short(const struct redis_server *s, const char *consumer)
{
	struct np_options o = { .connect_timeout_ms = TEST_CONNECT_MS, .command_timeout_ms = TEST_COMMAND_MS };

	return conn_open_with(s, consumer, &o);
}

static void pipe_open(struct np_conn *c, const char *name, uint64_t capacity, enum np_policy policy)
{
	struct np_settings set = { .capacity = capacity, .policy = policy };
	int rc = np_open(c, name, &set);

	cr_assert_eq(rc, 0, "np_open %s: %s (%s)", name, strerror(-rc), np_error(c));
}

static void append_ok(struct np_conn *c, const char *name, const char *text)
{
	int rc = np_append(c, name, "alice", text, strlen(text), NULL);

	cr_assert_eq(rc, 0, "append '%s': %s (%s)", text, strerror(-rc), np_error(c));
}

/* Take one entry at once and check its text. */
static void take_expect(struct np_conn *c, const char *name, const char *text, struct np_entry *e)
{
	int rc = np_take(c, name, 0, e);

	cr_assert_eq(rc, 0, "take, expecting '%s': %s (%s)", text, strerror(-rc), np_error(c));
	cr_assert_eq(e->size, strlen(text));
	cr_assert_str_eq((char *)e->data, text);
}

static void take_ack(struct np_conn *c, const char *name, const char *text)
{
	struct np_entry e;

	take_expect(c, name, text, &e);
	cr_assert_eq(np_ack(c, name, e.id), 0, "ack %s: %s", e.id, np_error(c));
	np_entry_clear(&e);
}

static void stat_of(struct np_conn *c, const char *name, struct np_stat *st)
{
	int rc = np_stat(c, name, st);

	cr_assert_eq(rc, 0, "stat %s: %s (%s)", name, strerror(-rc), np_error(c));
}

/* ---- no server needed ---- */

Test(netpipe, url_parse)
{
	static const struct {
		const char *url;
		const char *says;    /* in the error */
	} bad[] = {
		{ "http://h:1", "scheme" },
		{ "rediss://h:6379", "scheme" },
		{ "redis://h", "port is missing" },
		{ "redis://h:", "port is missing" },
		{ "redis://:6379", "host is missing" },
		{ "redis://h:0", "port 0" },
		{ "redis://h:65536", "port 65536" },
		{ "redis://h:12x", "port 12x" },
		{ "redis://h:6379/", "database ''" },
		{ "redis://h:6379/x", "database 'x'" },
		{ "redis://h:6379/1/2", "database '1/2'" },
		{ "redis://h:6379/99999", "database '99999'" },
		{ "redis://user:pw@h:6379", "credentials" },
		{ "redis://h_x:6379", "host name" },
		{ "redis://[::1:6379", "IPv6" },
		{ "redis://[::g]:6379", "IPv6" },
	};
	struct np_url u;
	char err[NP_ERROR_SIZE], long_url[600];

	snprintf(long_url, sizeof(long_url), "redis://[%0300d]:6379", 0);
	cr_assert_eq(np_url_parse(long_url, &u, err, sizeof(err)), -EINVAL, "a 300-byte IPv6 host accepted");
	cr_assert(strstr(err, "too long"), "'%s'", err);
	snprintf(long_url, sizeof(long_url), "redis://%0300d:6379", 0);
	cr_assert_eq(np_url_parse(long_url, &u, err, sizeof(err)), -EINVAL, "a 300-byte host accepted");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		cr_expect_eq(np_url_parse(bad[i].url, &u, err, sizeof(err)), -EINVAL, "%s accepted", bad[i].url);
		cr_expect(strstr(err, bad[i].says), "%s: error '%s' does not say '%s'", bad[i].url, err, bad[i].says);
	}
	/* a password in the URL is refused and never repeated in the message */
	cr_assert_eq(np_url_parse("redis://user:hunter2@h:6379", &u, err, sizeof(err)), -EINVAL);
	cr_assert_null(strstr(err, "hunter2"), "the message repeats the password: '%s'", err);
	cr_assert(strstr(err, "@h:6379"), "'%s'", err);
	cr_assert_eq(np_url_parse("redis://redis.example.org:6380/3", &u, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(u.host, "redis.example.org");
	cr_assert_eq(u.port, 6380);
	cr_assert_eq(u.db, 3);
	cr_assert_eq(np_url_parse("redis://[::1]:6379", &u, err, sizeof(err)), 0, "%s", err);
	cr_assert_str_eq(u.host, "::1");
	cr_assert_eq(u.db, 0);
	/* a bad URL stops np_connect before any I/O */
	struct np_conn *c = (struct np_conn *)1;
	cr_assert_eq(np_connect("redis://h", NULL, "c1", NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert_null(c);
	cr_assert_eq(np_connect("redis://h:1", NULL, "with space", NULL, &c, err, sizeof(err)), -EINVAL);
}

/* ---- delivery ---- */

#define EO_WRITERS 4
#define EO_READERS 4
#define EO_PER_WRITER 1500
#define EO_TOTAL (EO_WRITERS * EO_PER_WRITER)

struct eo_shared {
	const struct redis_server *server;
	atomic_uint seen[EO_WRITERS][EO_PER_WRITER];   /* deliveries of each message */
	uint64_t id[EO_WRITERS][EO_PER_WRITER][2];     /* its stream id, ms and sequence */
	atomic_uint taken;
	atomic_uint errors;
	atomic_uint out_of_order;
	atomic_uint wrong_user;
	char last_error[NP_ERROR_SIZE * 2];
};

struct eo_thread {
	struct eo_shared *shared;
	int index;
	pthread_t thread;
};

static void eo_fail(struct eo_shared *sh, struct np_conn *c, const char *what, int rc)
{
	if (atomic_fetch_add(&sh->errors, 1) == 0)
		snprintf(sh->last_error, sizeof(sh->last_error), "%s: %s (%s)", what, strerror(-rc),
			 c ? np_error(c) : "");
}

static struct np_conn *eo_connect(struct eo_shared *sh, const char *consumer)
{
	struct np_options o = { .connect_timeout_ms = TEST_PATIENT_MS, .command_timeout_ms = TEST_PATIENT_MS, .min_idle_ms = 60000 };
	struct np_conn *c = NULL;
	char err[NP_ERROR_SIZE];
	int rc = np_connect(sh->server->url, NULL, consumer, &o, &c, err, sizeof(err));

	if (rc < 0) {
		if (atomic_fetch_add(&sh->errors, 1) == 0)
			snprintf(sh->last_error, sizeof(sh->last_error), "connect: %s", err);
	}
	return c;
}

static void *eo_writer(void *arg)
{
	struct eo_thread *t = arg;
	char consumer[32], user[16], msg[64];
	struct np_conn *c;

	snprintf(consumer, sizeof(consumer), "writer-%d", t->index);
	snprintf(user, sizeof(user), "user%d", t->index);
	c = eo_connect(t->shared, consumer);
	for (int seq = 0; c && seq < EO_PER_WRITER; seq++) {
		int n = snprintf(msg, sizeof(msg), "%d %d %*s", t->index, seq, seq % 17, "");
		int rc = np_append(c, "net.jobs", user, msg, (size_t)n, NULL);

		if (rc < 0) {
			eo_fail(t->shared, c, "append", rc);
			break;
		}
	}
	np_close(c);
	return NULL;
}

static void *eo_reader(void *arg)
{
	struct eo_thread *t = arg;
	struct eo_shared *sh = t->shared;
	int last[EO_WRITERS];
	char consumer[32];
	struct np_conn *c;

	for (int w = 0; w < EO_WRITERS; w++)
		last[w] = -1;
	snprintf(consumer, sizeof(consumer), "reader-%d", t->index);
	c = eo_connect(sh, consumer);
	while (c && atomic_load(&sh->taken) < EO_TOTAL && atomic_load(&sh->errors) == 0) {
		struct np_entry e;
		int w, seq, rc = np_take(c, "net.jobs", 100, &e);
		char user[16];

		if (rc == -EAGAIN)
			continue;
		if (rc < 0) {
			eo_fail(sh, c, "take", rc);
			break;
		}
		if (sscanf(e.data, "%d %d", &w, &seq) != 2 || w < 0 || w >= EO_WRITERS || seq < 0 ||
		    seq >= EO_PER_WRITER) {
			eo_fail(sh, c, "a message not written by the test", -EPROTO);
			np_entry_clear(&e);
			break;
		}
		snprintf(user, sizeof(user), "user%d", w);
		if (strcmp(e.user, user) != 0)
			atomic_fetch_add(&sh->wrong_user, 1);
		/* FIFO per writer: this reader sees each writer's messages in order */
		if (seq <= last[w])
			atomic_fetch_add(&sh->out_of_order, 1);
		last[w] = seq;
		/* delivered; only then acknowledged */
		if (atomic_fetch_add(&sh->seen[w][seq], 1) == 0 &&
		    sscanf(e.id, "%" SCNu64 "-%" SCNu64, &sh->id[w][seq][0], &sh->id[w][seq][1]) != 2)
			eo_fail(sh, c, "a stream id not ms-seq", -EPROTO);
		atomic_fetch_add(&sh->taken, 1);
		rc = np_ack(c, "net.jobs", e.id);
		if (rc < 0)
			eo_fail(sh, c, "ack", rc);
		np_entry_clear(&e);
	}
	np_close(c);
	return NULL;
}

Test(netpipe, exactly_once_many_writers_many_readers, .timeout = 60)
{
	struct redis_server *s = server_start(NULL);
	struct eo_shared *sh = calloc(1, sizeof(*sh));
	struct eo_thread writers[EO_WRITERS], readers[EO_READERS];
	struct np_conn *c = conn_open(s, "main", 0);
	struct np_stat st;

	cr_assert_not_null(sh);
	sh->server = s;
	/* room for all of it: this test is about delivery, not the full policy */
	pipe_open(c, "net.jobs", 1u << 20, NP_POLICY_FAIL);
	for (int i = 0; i < EO_READERS; i++) {
		readers[i] = (struct eo_thread){ .shared = sh, .index = i };
		cr_assert_eq(pthread_create(&readers[i].thread, NULL, eo_reader, &readers[i]), 0);
	}
	for (int i = 0; i < EO_WRITERS; i++) {
		writers[i] = (struct eo_thread){ .shared = sh, .index = i };
		cr_assert_eq(pthread_create(&writers[i].thread, NULL, eo_writer, &writers[i]), 0);
	}
	for (int i = 0; i < EO_WRITERS; i++)
		pthread_join(writers[i].thread, NULL);
	for (int i = 0; i < EO_READERS; i++)
		pthread_join(readers[i].thread, NULL);
	cr_assert_eq(atomic_load(&sh->errors), 0, "%u errors, first: %s", atomic_load(&sh->errors), sh->last_error);
	cr_assert_eq(atomic_load(&sh->taken), EO_TOTAL);
	for (int w = 0; w < EO_WRITERS; w++)
		for (int seq = 0; seq < EO_PER_WRITER; seq++)
			cr_assert_eq(atomic_load(&sh->seen[w][seq]), 1, "writer %d message %d delivered %u times", w,
				     seq, atomic_load(&sh->seen[w][seq]));
	cr_assert_eq(atomic_load(&sh->out_of_order), 0, "messages of one writer out of order");
	/* FIFO per writer in the queue itself: stream ids grow with seq */
	for (int w = 0; w < EO_WRITERS; w++)
		for (int seq = 1; seq < EO_PER_WRITER; seq++) {
			const uint64_t *a = sh->id[w][seq - 1], *b = sh->id[w][seq];

			cr_assert(a[0] < b[0] || (a[0] == b[0] && a[1] < b[1]),
				  "writer %d: message %d queued before message %d", w, seq, seq - 1);
		}
	cr_assert_eq(atomic_load(&sh->wrong_user), 0, "entries carrying another writer's user");
	stat_of(c, "net.jobs", &st);
	cr_assert_eq(st.length, 0);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(st.bytes, 0, "%" PRIu64 " bytes left counted", st.bytes);
	np_close(c);
	free(sh);
}

Test(netpipe, blocking_take_waits_for_a_writer)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "reader", 0);
	struct np_entry e;
	uint64_t t0;
	int rc;

	pipe_open(c, "net.wait", 1000, NP_POLICY_FAIL);
	t0 = now_ms();
	rc = np_take(c, "net.wait", 300, &e);
	cr_assert_eq(rc, -EAGAIN, "take on an empty pipe: %s", strerror(-rc));
	cr_assert_geq(now_ms() - t0, 250u, "a 300 ms wait ended after %" PRIu64 " ms", now_ms() - t0);
	cr_assert_eq(np_take(c, "net.wait", NP_BLOCK_MAX_MS + 1, &e), -EINVAL);

	/* a writer on another connection while the reader waits */
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		struct np_conn *w = NULL;

		sleep_ms(200);
		if (np_connect(s->url, NULL, "writer", NULL, &w, NULL, 0) < 0)
			_exit(1);
		_exit(np_append(w, "net.wait", "bob", "late", 4, NULL) == 0 ? 0 : 2);
	}
	rc = np_take(c, "net.wait", 5000, &e);
	cr_assert_eq(rc, 0, "blocking take: %s (%s)", strerror(-rc), np_error(c));
	cr_assert_str_eq(e.data, "late");
	cr_assert_str_eq(e.user, "bob");
	cr_assert_not(e.reclaimed);
	cr_assert_eq(np_ack(c, "net.wait", e.id), 0);
	cr_assert_eq(np_ack(c, "net.wait", e.id), -ENOENT, "a second ack of one entry");
	np_entry_clear(&e);
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	np_close(c);
}

/* ---- the full policies and the byte count ---- */

Test(netpipe, settings_first_opener_wins)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "a", 0);
	struct np_settings set = { .capacity = 200, .policy = NP_POLICY_BLOCK };
	struct np_stat st;

	pipe_open(c, "net.set", 100, NP_POLICY_FAIL);
	cr_assert_eq(np_open(c, "net.set", &set), 0);
	cr_assert_eq(set.capacity, 100);
	cr_assert_eq(set.policy, NP_POLICY_FAIL);
	stat_of(c, "net.set", &st);
	cr_assert_eq(st.settings.capacity, 100);
	set.capacity = 0;
	cr_assert_eq(np_open(c, "net.set2", &set), -EINVAL);
	set.capacity = 10;
	cr_assert_eq(np_open(c, "bad/name", &set), -EINVAL);
	cr_assert_eq(np_stat(c, "net.none", &st), -ENOENT);
	np_close(c);
}

Test(netpipe, policy_fail)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "a", 0);
	struct np_appended a;
	char big[101];

	pipe_open(c, "net.fail", 100, NP_POLICY_FAIL);
	append_ok(c, "net.fail", "0123456789012345678901234567890123456789012345678901234567890123456789"); /* 70 */
	cr_assert_eq(np_append(c, "net.fail", "alice", "012345678901234567890123456789x", 31, &a), -EAGAIN);
	cr_assert_not(a.wait, "fail must not ask the writer to wait");
	cr_assert_eq(a.id[0], '\0');
	append_ok(c, "net.fail", "012345678901234567890123456789"); /* exactly full: 100 */
	memset(big, 'x', sizeof(big));
	cr_assert_eq(np_append(c, "net.fail", "alice", big, sizeof(big), &a), -EMSGSIZE);
	/* a reader takes: room again */
	take_ack(c, "net.fail", "0123456789012345678901234567890123456789012345678901234567890123456789");
	append_ok(c, "net.fail", "012345678901234567890123456789x");
	struct np_stat st;
	stat_of(c, "net.fail", &st);
	cr_assert_eq(st.bytes, 61);
	cr_assert_eq(st.length, 2);
	cr_assert_eq(st.drops, 0);
	np_close(c);
}

Test(netpipe, policy_block)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "a", 0);
	struct np_appended a;
	struct np_entry e;

	pipe_open(c, "net.block", 10, NP_POLICY_BLOCK);
	append_ok(c, "net.block", "12345678");
	cr_assert_eq(np_append(c, "net.block", "alice", "abc", 3, &a), -EAGAIN);
	cr_assert(a.wait, "block must ask the writer to wait");
	/* taken is not enough: the entry still counts until it is acknowledged */
	take_expect(c, "net.block", "12345678", &e);
	cr_assert_eq(np_append(c, "net.block", "alice", "abc", 3, &a), -EAGAIN);
	cr_assert(a.wait);
	cr_assert_eq(np_ack(c, "net.block", e.id), 0);
	np_entry_clear(&e);
	cr_assert_eq(np_append(c, "net.block", "alice", "abc", 3, &a), 0, "%s", np_error(c));
	cr_assert_not(a.wait);
	cr_assert_neq(a.id[0], '\0');
	np_close(c);
}

Test(netpipe, policy_overwrite_drops_oldest_undelivered)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "a", 0);
	struct np_conn *other = conn_open(s, "b", 0);
	struct np_appended a;
	struct np_stat st;
	struct np_entry e;

	pipe_open(c, "net.over", 10, NP_POLICY_OVERWRITE);
	append_ok(c, "net.over", "aaa");
	append_ok(c, "net.over", "bbb");
	append_ok(c, "net.over", "ccc");
	/* 9 used, 4 more: "aaa" goes */
	cr_assert_eq(np_append(c, "net.over", "alice", "dddd", 4, &a), 0, "%s", np_error(c));
	cr_assert_eq(a.dropped, 1);
	/* every host sees the drops */
	stat_of(other, "net.over", &st);
	cr_assert_eq(st.drops, 1);
	cr_assert_eq(st.bytes, 10);
	cr_assert_eq(st.length, 3);
	/* "bbb" is taken, not acknowledged: it is never dropped */
	take_expect(c, "net.over", "bbb", &e);
	cr_assert_eq(np_append(c, "net.over", "alice", "eeeeeee", 7, &a), 0, "%s", np_error(c));
	cr_assert_eq(a.dropped, 2, "ccc and dddd go, bbb stays");
	/* everything in the stream taken, none acknowledged: nothing may be
	 * dropped, so the writer waits, and nothing is dropped */
	struct np_entry e2;
	take_expect(other, "net.over", "eeeeeee", &e2);
	cr_assert_eq(np_append(c, "net.over", "alice", "ff", 2, &a), -EAGAIN);
	cr_assert(a.wait);
	cr_assert_eq(a.dropped, 0);
	stat_of(other, "net.over", &st);
	cr_assert_eq(st.drops, 3);
	cr_assert_eq(st.bytes, 10);
	cr_assert_eq(st.pending, 2);
	cr_assert_eq(np_ack(c, "net.over", e.id), 0);
	cr_assert_eq(np_ack(other, "net.over", e2.id), 0);
	np_entry_clear(&e);
	np_entry_clear(&e2);
	/* room again: "ff" goes in without a drop */
	cr_assert_eq(np_append(c, "net.over", "alice", "ff", 2, &a), 0, "%s", np_error(c));
	cr_assert_eq(a.dropped, 0);
	take_ack(other, "net.over", "ff");
	stat_of(other, "net.over", &st);
	cr_assert_eq(st.bytes, 0);
	cr_assert_eq(st.length, 0);
	np_close(other);
	np_close(c);
}

Test(netpipe, byte_count_returns_to_zero)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "a", 0);
	struct np_conn *d = conn_open(s, "b", 0);
	struct np_stat st;
	char buf[300];
	unsigned seed = 7;

	pipe_open(c, "net.bytes", 4000, NP_POLICY_OVERWRITE);
	memset(buf, 'q', sizeof(buf));
	for (int i = 0; i < 200; i++) {
		size_t n = (size_t)(rand_r(&seed) % (int)sizeof(buf)); /* 0 too: an empty message */
		struct np_appended a;
		struct np_entry e;

		cr_assert_eq(np_append(c, "net.bytes", "alice", buf, n, &a), 0, "%s", np_error(c));
		switch (i % 4) {
		case 0: /* taken and acknowledged */
			cr_assert_eq(np_take(d, "net.bytes", 0, &e), 0, "%s", np_error(d));
			cr_assert_eq(np_ack(d, "net.bytes", e.id), 0);
			np_entry_clear(&e);
			break;
		case 1: /* taken and given back: the next take of anyone gets it */
			cr_assert_eq(np_take(d, "net.bytes", 0, &e), 0, "%s", np_error(d));
			cr_assert_eq(np_give_back(d, "net.bytes", e.id), 0, "%s", np_error(d));
			struct np_entry again;
			cr_assert_eq(np_take(c, "net.bytes", 0, &again), 0, "%s", np_error(c));
			cr_assert_str_eq(again.id, e.id, "a given-back entry is the next one taken");
			cr_assert(again.reclaimed);
			cr_assert_eq(np_keep(d, "net.bytes", e.id), -ESTALE, "the giver holds it no more");
			cr_assert_eq(np_give_back(c, "net.bytes", again.id), 0);
			np_entry_clear(&again);
			np_entry_clear(&e);
			break;
		default: /* left for the end, some overwritten */
			break;
		}
	}
	stat_of(c, "net.bytes", &st);
	cr_assert_leq(st.bytes, 4000);
	cr_assert_gt(st.length, 0);
	for (;;) {
		struct np_entry e;
		int rc = np_take(d, "net.bytes", 0, &e);

		if (rc == -EAGAIN)
			break;
		cr_assert_eq(rc, 0, "%s", np_error(d));
		cr_assert_eq(np_ack(d, "net.bytes", e.id), 0);
		np_entry_clear(&e);
	}
	stat_of(c, "net.bytes", &st);
	cr_assert_eq(st.bytes, 0, "%" PRIu64 " bytes counted in an empty pipe", st.bytes);
	cr_assert_eq(st.length, 0);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(np_delete(c, "net.bytes"), 0);
	cr_assert_eq(np_stat(c, "net.bytes", &st), -ENOENT);
	cr_assert_eq(np_append(c, "net.bytes", "alice", "x", 1, NULL), -ENOENT);
	struct np_entry e;
	cr_assert_eq(np_take(c, "net.bytes", 0, &e), -ENOENT);
	np_close(d);
	np_close(c);
}

/* ---- consumers that die ---- */

#define DIE_TOTAL 1200
#define DIE_READERS 3

struct die_shared {
	const struct redis_server *server;
	atomic_uint seen[DIE_TOTAL];
	atomic_uint delivered;
	atomic_uint deaths;
	atomic_uint give_backs;
	atomic_uint errors;
	char last_error[NP_ERROR_SIZE * 2];
};

struct die_thread {
	struct die_shared *shared;
	int index;
	pthread_t thread;
};

static struct np_conn *die_connect(struct die_shared *sh, int index, int life)
{
	struct np_options o = { .connect_timeout_ms = TEST_PATIENT_MS, .command_timeout_ms = TEST_PATIENT_MS, .min_idle_ms = 150 };
	struct np_conn *c = NULL;
	char consumer[48], err[NP_ERROR_SIZE];

	/* a broker that restarts comes back under a new name (a new pid) */
	snprintf(consumer, sizeof(consumer), "host%d:life%d", index, life);
	if (np_connect(sh->server->url, NULL, consumer, &o, &c, err, sizeof(err)) < 0 &&
	    atomic_fetch_add(&sh->errors, 1) == 0)
		snprintf(sh->last_error, sizeof(sh->last_error), "connect: %s", err);
	return c;
}

/* Takes entries; now and then dies holding one (closes without a word) or
 * gives one back; delivers an entry only after np_keep says it is still
 * its own, then acknowledges it. */
static void *die_reader(void *arg)
{
	struct die_thread *t = arg;
	struct die_shared *sh = t->shared;
	unsigned seed = (unsigned)t->index * 7919u + 1u;
	int life = 0;
	struct np_conn *c = die_connect(sh, t->index, life);

	while (c && atomic_load(&sh->delivered) < DIE_TOTAL && atomic_load(&sh->errors) == 0) {
		struct np_entry e;
		int n, rc = np_take(c, "net.die", 50, &e);
		int dice = rand_r(&seed) % 25;

		if (rc == -EAGAIN)
			continue;
		if (rc < 0 || sscanf(e.data, "%d", &n) != 1 || n < 0 || n >= DIE_TOTAL) {
			if (atomic_fetch_add(&sh->errors, 1) == 0)
				snprintf(sh->last_error, sizeof(sh->last_error), "take: %s (%s)", strerror(-rc),
					 np_error(c));
			if (rc == 0)
				np_entry_clear(&e);
			break;
		}
		if (dice == 0) {
			np_entry_clear(&e);
			c = np_close(c);
			atomic_fetch_add(&sh->deaths, 1);
			c = die_connect(sh, t->index, ++life);
			continue;
		}
		if (dice == 1) {
			rc = np_give_back(c, "net.die", e.id);
			np_entry_clear(&e);
			if (rc == 0)
				atomic_fetch_add(&sh->give_backs, 1);
			continue;
		}
		if (np_keep(c, "net.die", e.id) == 0) {
			atomic_fetch_add(&sh->seen[n], 1);
			atomic_fetch_add(&sh->delivered, 1);
			np_ack(c, "net.die", e.id);
		}
		np_entry_clear(&e);
	}
	np_close(c);
	return NULL;
}

Test(netpipe, exactly_once_when_consumers_die, .timeout = 60)
{
	struct redis_server *s = server_start(NULL);
	struct die_shared *sh = calloc(1, sizeof(*sh));
	struct die_thread readers[DIE_READERS];
	struct np_conn *c = conn_open(s, "writer", 0);
	struct np_stat st;
	char msg[16];

	cr_assert_not_null(sh);
	sh->server = s;
	pipe_open(c, "net.die", 1u << 20, NP_POLICY_FAIL);
	for (int i = 0; i < DIE_TOTAL; i++) {
		int n = snprintf(msg, sizeof(msg), "%d", i);

		cr_assert_eq(np_append(c, "net.die", "alice", msg, (size_t)n, NULL), 0, "%s", np_error(c));
	}
	for (int i = 0; i < DIE_READERS; i++) {
		readers[i] = (struct die_thread){ .shared = sh, .index = i };
		cr_assert_eq(pthread_create(&readers[i].thread, NULL, die_reader, &readers[i]), 0);
	}
	for (int i = 0; i < DIE_READERS; i++)
		pthread_join(readers[i].thread, NULL);
	cr_assert_eq(atomic_load(&sh->errors), 0, "%s", sh->last_error);
	cr_assert_gt(atomic_load(&sh->deaths), 0, "no consumer died: the test proved nothing");
	cr_assert_gt(atomic_load(&sh->give_backs), 0);
	for (int i = 0; i < DIE_TOTAL; i++)
		cr_assert_eq(atomic_load(&sh->seen[i]), 1, "message %d delivered %u times (%u deaths)", i,
			     atomic_load(&sh->seen[i]), atomic_load(&sh->deaths));
	stat_of(c, "net.die", &st);
	cr_assert_eq(st.length, 0);
	cr_assert_eq(st.pending, 0);
	cr_assert_eq(st.bytes, 0);
	np_close(c);
	free(sh);
}

Test(netpipe, dead_consumer_entries_are_reclaimed)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *dead = conn_open(s, "host-a", 0);
	struct np_conn *live = conn_open(s, "host-b", 300);
	struct np_entry e, held[2];
	uint64_t t0;

	pipe_open(dead, "net.claim", 1000, NP_POLICY_BLOCK);
	append_ok(dead, "net.claim", "one");
	append_ok(dead, "net.claim", "two");
	append_ok(dead, "net.claim", "three");
	t0 = now_ms(); /* before the takes: their idle time is at most now - t0 */
	take_expect(dead, "net.claim", "one", &held[0]);
	take_expect(dead, "net.claim", "two", &held[1]);
	np_close(dead); /* host A's broker dies holding "one" and "two" */
	/* before min_idle: the live consumer gets the new entry, not theirs */
	take_expect(live, "net.claim", "three", &e);
	cr_assert_not(e.reclaimed);
	cr_assert_eq(np_ack(live, "net.claim", e.id), 0);
	np_entry_clear(&e);
	if (now_ms() - t0 < 250)
		cr_assert_eq(np_take(live, "net.claim", 0, &e), -EAGAIN, "reclaimed before min_idle");
	sleep_ms(350);
	take_expect(live, "net.claim", "one", &e);
	cr_assert(e.reclaimed);
	cr_assert_str_eq(e.id, held[0].id);
	cr_assert_eq(np_keep(live, "net.claim", e.id), 0, "%s", np_error(live));
	cr_assert_eq(np_ack(live, "net.claim", e.id), 0);
	np_entry_clear(&e);
	take_expect(live, "net.claim", "two", &e);
	cr_assert(e.reclaimed);
	cr_assert_eq(np_ack(live, "net.claim", e.id), 0);
	np_entry_clear(&e);

	/* host A comes back late and acknowledges what it held: nothing to ack */
	dead = conn_open(s, "host-a", 0);
	cr_assert_eq(np_keep(dead, "net.claim", held[0].id), -ESTALE);
	cr_assert_eq(np_ack(dead, "net.claim", held[0].id), -ENOENT);
	np_entry_clear(&held[0]);
	np_entry_clear(&held[1]);
	struct np_stat st;
	stat_of(live, "net.claim", &st);
	cr_assert_eq(st.length, 0);
	cr_assert_eq(st.bytes, 0);
	np_close(dead);
	np_close(live);
}

/* ---- faults ---- */

Test(netpipe, append_only_restart_loses_nothing_acknowledged, .timeout = 60)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open(s, "a", 200);
	char err[256], msg[32];
	struct np_stat st;
	uint64_t bytes = 0;
	int taken[300] = { 0 };
	struct np_entry e;
	int rc;

	pipe_open(c, "net.durable", 1u << 20, NP_POLICY_BLOCK);
	for (int i = 0; i < 300; i++) {
		int n = snprintf(msg, sizeof(msg), "m%d", i);

		cr_assert_eq(np_append(c, "net.durable", "alice", msg, (size_t)n, NULL), 0, "%s", np_error(c));
		bytes += (uint64_t)n;
	}
	/* 100 delivered and acknowledged, 20 taken and not */
	for (int i = 0; i < 120; i++) {
		cr_assert_eq(np_take(c, "net.durable", 0, &e), 0, "%s", np_error(c));
		if (i < 100) {
			cr_assert_eq(np_ack(c, "net.durable", e.id), 0);
			bytes -= e.size;
		}
		np_entry_clear(&e);
	}
	/* a crash, not a clean stop: what was acknowledged to a writer is
	 * in the fsynced append-only file */
	cr_assert_eq(redis_server_kill(s), 0);
	rc = np_append(c, "net.durable", "alice", "lost", 4, NULL);
	cr_assert(rc == -ECONNRESET || rc == -ECONNREFUSED, "append to a dead Redis: %s", strerror(-rc));
	cr_assert_eq(np_append(c, "net.durable", "alice", "lost", 4, NULL), -ENOTCONN);
	cr_assert_eq(redis_server_restart(s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(np_reconnect(c), 0, "%s", np_error(c));
	stat_of(c, "net.durable", &st);
	cr_assert_eq(st.length, 200, "entries after the restart: %" PRIu64, st.length);
	cr_assert_eq(st.pending, 20);
	cr_assert_eq(st.bytes, bytes);
	sleep_ms(250); /* the 20 pending ones are now idle long enough to reclaim */
	for (int i = 0; i < 200; i++) {
		int n;

		rc = np_take(c, "net.durable", 0, &e);
		cr_assert_eq(rc, 0, "take %d after the restart: %s (%s)", i, strerror(-rc), np_error(c));
		cr_assert_eq(sscanf(e.data, "m%d", &n), 1);
		cr_assert(n >= 100 && n < 300, "m%d came back after it was acknowledged", n);
		taken[n]++;
		cr_assert_eq(np_ack(c, "net.durable", e.id), 0);
		np_entry_clear(&e);
	}
	for (int i = 100; i < 300; i++)
		cr_assert_eq(taken[i], 1, "m%d delivered %d times", i, taken[i]);
	cr_assert_eq(np_take(c, "net.durable", 0, &e), -EAGAIN);
	stat_of(c, "net.durable", &st);
	cr_assert_eq(st.bytes, 0);
	np_close(c);
}

Test(netpipe, redis_stopped_errno_bound_and_reconnect)
{
	struct redis_server *s = server_start(NULL);
	/* the connect bound is the one under test; commands may be slow */
	struct np_options o = { .connect_timeout_ms = TEST_CONNECT_MS, .command_timeout_ms = TEST_PATIENT_MS };
	struct np_conn *c = conn_open_with(s, "a", &o);
	char err[256];
	uint64_t t0;
	int rc;

	pipe_open(c, "net.down", 1000, NP_POLICY_FAIL);
	append_ok(c, "net.down", "before");
	cr_assert_eq(redis_server_stop(s), 0);

	t0 = now_ms();
	rc = np_append(c, "net.down", "alice", "x", 1, NULL);
	cr_assert_eq(rc, -ECONNRESET, "the connection Redis closed: %s", strerror(-rc));
	cr_assert_eq(np_append(c, "net.down", "alice", "x", 1, NULL), -ENOTCONN);
	cr_assert(strstr(np_error(c), "reconnect"), "'%s'", np_error(c));
	rc = np_reconnect(c);
	cr_assert_eq(rc, -ECONNREFUSED, "reconnect to a stopped Redis: %s (%s)", strerror(-rc), np_error(c));
	cr_assert_leq(now_ms() - t0, TEST_CONNECT_MS + TEST_SLACK_MS);
	cr_assert(strstr(np_error(c), s->url + 8), "error '%s' names the server", np_error(c));

	/* a fresh connect fails the same way */
	struct np_conn *d = NULL;
	cr_assert_eq(np_connect(s->url, NULL, "b", NULL, &d, err, sizeof(err)), -ECONNREFUSED, "%s", err);
	cr_assert_null(d);

	cr_assert_eq(redis_server_restart(s, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(np_reconnect(c), 0, "%s", np_error(c));
	take_ack(c, "net.down", "before");
	append_ok(c, "net.down", "after");
	take_ack(c, "net.down", "after");
	np_close(c);
}

Test(netpipe, redis_hung_times_out_within_the_bound)
{
	struct redis_server *s = server_start(NULL);
	struct np_conn *c = conn_open_short(s, "a");
	struct np_entry e;
	uint64_t t0, took;
	int rc;

	pipe_open(c, "net.hung", 1000, NP_POLICY_FAIL);
	cr_assert_eq(redis_server_pause(s), 0);
	t0 = now_ms();
	rc = np_append(c, "net.hung", "alice", "x", 1, NULL);
	took = now_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "append to a hung Redis: %s (%s)", strerror(-rc), np_error(c));
	cr_assert_geq(took, TEST_COMMAND_MS - 50);
	cr_assert_leq(took, TEST_COMMAND_MS + TEST_SLACK_MS, "%" PRIu64 " ms", took);
	/* a blocking take is bounded by its wait plus the command bound */
	t0 = now_ms();
	cr_assert_eq(np_reconnect(c), -ETIMEDOUT, "connect to a hung Redis: %s", np_error(c));
	took = now_ms() - t0;
	cr_assert_leq(took, TEST_CONNECT_MS + TEST_SLACK_MS, "%" PRIu64 " ms", took);
	cr_assert_eq(redis_server_resume(s), 0);
	cr_assert_eq(np_reconnect(c), 0, "%s", np_error(c));
	cr_assert_eq(redis_server_pause(s), 0);
	t0 = now_ms();
	rc = np_take(c, "net.hung", 300, &e);
	took = now_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "%s", strerror(-rc));
	cr_assert_leq(took, 300 + TEST_COMMAND_MS + TEST_SLACK_MS, "%" PRIu64 " ms", took);
	cr_assert_eq(redis_server_resume(s), 0);
	cr_assert_eq(np_reconnect(c), 0, "%s", np_error(c));
	append_ok(c, "net.hung", "fine");
	np_close(c);
}

/* A host that drops the SYN (down, or a firewall that drops): a listener
 * whose accept queue is full, as Linux drops SYNs to it. */
Test(netpipe, connect_to_a_silent_host_times_out_within_the_bound)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct np_options o = { .connect_timeout_ms = TEST_CONNECT_MS };
	socklen_t len = sizeof(sa);
	struct np_conn *c = NULL;
	char url[64], err[NP_ERROR_SIZE];
	int listener, fill[3];
	uint64_t t0, took;
	int rc;

	listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(listener, 0);
	cr_assert_eq(bind(listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(listen(listener, 0), 0);
	cr_assert_eq(getsockname(listener, (struct sockaddr *)&sa, &len), 0);
	/* fill the accept queue; what comes after it is dropped */
	for (int i = 0; i < 3; i++) {
		fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		cr_assert_geq(fill[i], 0);
		connect(fill[i], (struct sockaddr *)&sa, sizeof(sa));
	}
	sleep_ms(50);
	snprintf(url, sizeof(url), "redis://127.0.0.1:%u", (unsigned)ntohs(sa.sin_port));
	t0 = now_ms();
	rc = np_connect(url, NULL, "a", &o, &c, err, sizeof(err));
	took = now_ms() - t0;
	cr_assert_eq(rc, -ETIMEDOUT, "%s (%s)", strerror(-rc), err);
	cr_assert_geq(took, TEST_CONNECT_MS - 50, "%" PRIu64 " ms", took);
	cr_assert_leq(took, TEST_CONNECT_MS + TEST_SLACK_MS, "%" PRIu64 " ms", took);
	cr_assert(strstr(err, url), "'%s' names the server", err);
	for (int i = 0; i < 3; i++)
		close(fill[i]);
	close(listener);
}

/* ---- credentials ---- */

Test(netpipe, credentials_file_must_be_private)
{
	struct redis_server *s = server_start("s3cret-pw");
	struct np_conn *c = NULL;
	char path[RS_PATH_SIZE + 64], err[NP_ERROR_SIZE];

	cr_assert_eq(redis_server_write_file(s, "creds", "s3cret-pw\n", 0640, path, sizeof(path)), 0);
	cr_assert_eq(np_connect(s->url, path, "a", NULL, &c, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, "0640") && strstr(err, path), "'%s'", err);
	cr_assert_null(c);
	cr_assert_eq(redis_server_write_file(s, "creds", "s3cret-pw\n", 0604, path, sizeof(path)), 0);
	cr_assert_eq(np_connect(s->url, path, "a", NULL, &c, err, sizeof(err)), -EACCES);
	cr_assert(strstr(err, "0604"), "'%s'", err);
	cr_assert_eq(np_connect(s->url, "/nonexistent/creds", "a", NULL, &c, err, sizeof(err)), -ENOENT);
	/* private but someone else's (only root can make one to test) */
	if (geteuid() == 0) {
		cr_assert_eq(redis_server_write_file(s, "creds", "s3cret-pw\n", 0600, path, sizeof(path)), 0);
		cr_assert_eq(chown(path, 4242, 4242), 0);
		cr_assert_eq(np_connect(s->url, path, "a", NULL, &c, err, sizeof(err)), -EACCES);
		cr_assert(strstr(err, "uid 4242"), "'%s'", err);
	}
	cr_assert_eq(redis_server_write_file(s, "creds", "", 0600, path, sizeof(path)), 0);
	cr_assert_eq(np_connect(s->url, path, "a", NULL, &c, err, sizeof(err)), -EINVAL);
	cr_assert(strstr(err, "[USER ]PASSWORD"), "'%s'", err);
	cr_assert_eq(redis_server_write_file(s, "creds", "a\nb\n", 0600, path, sizeof(path)), 0);
	cr_assert_eq(np_connect(s->url, path, "a", NULL, &c, err, sizeof(err)), -EINVAL);
}

Test(netpipe, auth_with_a_password)
{
	struct redis_server *s = server_start("s3cret-pw");
	struct np_conn *c = NULL;
	char path[RS_PATH_SIZE + 64], err[NP_ERROR_SIZE];
	int rc;

	/* no credentials: refused, and said so */
	rc = np_connect(s->url, NULL, "a", NULL, &c, err, sizeof(err));
	cr_assert_eq(rc, -EACCES, "%s (%s)", strerror(-rc), err);
	cr_assert(strstr(err, "password"), "'%s'", err);
	/* a wrong password */
	cr_assert_eq(redis_server_write_file(s, "creds", "wrong\n", 0600, path, sizeof(path)), 0);
	rc = np_connect(s->url, path, "a", NULL, &c, err, sizeof(err));
	cr_assert_eq(rc, -EACCES, "%s (%s)", strerror(-rc), err);
	/* PASSWORD alone, and USER PASSWORD (the default user of Redis 6+) */
	cr_assert_eq(redis_server_write_file(s, "creds", "s3cret-pw\n", 0600, path, sizeof(path)), 0);
	rc = np_connect(s->url, path, "a", NULL, &c, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s (%s)", strerror(-rc), err);
	pipe_open(c, "net.auth", 100, NP_POLICY_FAIL);
	append_ok(c, "net.auth", "hello");
	c = np_close(c);
	cr_assert_eq(redis_server_write_file(s, "creds", "default s3cret-pw", 0400, path, sizeof(path)), 0);
	rc = np_connect(s->url, path, "b", NULL, &c, err, sizeof(err));
	cr_assert_eq(rc, 0, "%s (%s)", strerror(-rc), err);
	take_ack(c, "net.auth", "hello");
	/* a reconnect reads the file again */
	cr_assert_eq(np_reconnect(c), 0, "%s", np_error(c));
	cr_assert_eq(redis_server_write_file(s, "creds", "default nope", 0600, path, sizeof(path)), 0);
	cr_assert_eq(np_reconnect(c), -EACCES);
	np_close(c);
}

/* ---- the database and the script cache ---- */

Test(netpipe, database_of_the_url_and_a_flushed_script_cache)
{
	struct redis_server *s = server_start(NULL);
	struct np_options o = { .connect_timeout_ms = TEST_PATIENT_MS, .command_timeout_ms = TEST_PATIENT_MS };
	struct timeval tv = { .tv_sec = 2 };
	struct np_conn *c = NULL;
	char url[96], err[NP_ERROR_SIZE];
	redisContext *raw;
	redisReply *r;

	snprintf(url, sizeof(url), "%s/5", s->url);
	cr_assert_eq(np_connect(url, NULL, "a", &o, &c, err, sizeof(err)), 0, "%s", err);
	pipe_open(c, "net.db", 100, NP_POLICY_FAIL);
	append_ok(c, "net.db", "one");

	raw = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	cr_assert(raw && !raw->err);
	r = redisCommand(raw, "EXISTS ringdev:{net.db}:stream");
	cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 0, "the pipe is in database 0");
	freeReplyObject(r);
	r = redisCommand(raw, "SELECT 5");
	freeReplyObject(r);
	r = redisCommand(raw, "EXISTS ringdev:{net.db}:stream");
	cr_assert(r && r->type == REDIS_REPLY_INTEGER && r->integer == 1, "the pipe is not in database 5");
	freeReplyObject(r);
	/* Redis forgets its scripts (SCRIPT FLUSH, as after a restart): the
	 * calls go on, by source */
	r = redisCommand(raw, "SCRIPT FLUSH");
	cr_assert(r && r->type == REDIS_REPLY_STATUS);
	freeReplyObject(r);
	redisFree(raw);
	append_ok(c, "net.db", "two");
	take_ack(c, "net.db", "one");
	take_ack(c, "net.db", "two");
	struct np_stat st;
	stat_of(c, "net.db", &st);
	cr_assert_eq(st.bytes, 0);
	np_close(c);
}
