/* SPDX-License-Identifier: MIT */
/*
 * test_netpipe_hosts.c - network pipes (issue 21) end to end: one real
 * redis-server (tests/redis) and two ringdevd + ringdev-broker pairs on two
 * FUSE mounts standing for two hosts, each broker's policy putting net.* on
 * that Redis. Proves: a message written on host A is read exactly once by
 * one reader on A or B, in order per writer; the fail policy gives EAGAIN
 * when the stream is full and room comes back once a reader's entry is
 * acknowledged, and a read buffer too small gets EMSGSIZE with the message
 * kept; the block policy makes a writer wait until a reader on the other
 * host takes (O_NONBLOCK: EAGAIN); an interrupted read holding nothing gets
 * EINTR; Redis stopped fails reads and writes with EIO within the bound,
 * local pipes unaffected, and once Redis is back the broker reconnects by
 * itself with nothing written before lost. O_NONBLOCK reads get EAGAIN on
 * an empty network pipe; a local pipe beside them works as before; parked
 * counts return to zero. The Redis password comes from --redis-credentials
 * (without it: EIO) and is on no command line; --check validates URLs
 * without connecting.
 *
 * Three hosts (three pairs): three writers on three hosts and a reader on
 * each move 3,000 numbered messages while a helper sends random SIGUSR1
 * (no SA_RESTART: EINTR writes are retried, nothing was written; a read that
 * returns counts): each read exactly once, in order per writer per reader.
 * A broker SIGKILLed mid-stream and started again on its mount: nothing
 * lost (its taken entries come back through reclaim; the test sets
 * RINGDEV_TEST_NP_MIN_IDLE_MS=2000); nothing twice but for what the
 * killed broker delivered in the one Redis round trip between the daemon
 * taking its answer and the acknowledgement (at most 2 here, counted).
 * Overwrite: two hosts' writes over
 * capacity keep the newest in order, and the drops each host logs are one
 * counter, drops + read = written.
 *
 * Every handle is O_CLOEXEC: a redis-server the fixture restarts must not
 * inherit one, or its release never comes.
 *
 * Cleanup by pid whatever fails: the brokers are children that die with
 * the test process (PR_SET_PDEATHSIG) and are killed by the suite's .fini,
 * the daemons are the harness's, the Redis server the fixture's.
 */
#include "harness.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <stdlib.h>
#include <time.h>

#include "redis_fixture.h"

#define MAX_BROKERS 8
static pid_t brokers[MAX_BROKERS];

static void suite_fini(void)
{
	for (int i = 0; i < MAX_BROKERS; i++) {
		int status;
		if (brokers[i] > 0) {
			kill(brokers[i], SIGKILL);
			waitpid(brokers[i], &status, 0);
			brokers[i] = 0;
		}
	}
	rd_suite_fini();
	redis_fixture_cleanup();
}

TestSuite(nethosts, .init = rd_suite_init, .fini = suite_fini, .timeout = 180);

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	if (redis_fixture_run_begin() < 0)
		fprintf(stderr, "test_netpipe_hosts: no run folder for the redis servers: %s\n", strerror(errno));
}

ReportHook(POST_ALL)(struct criterion_global_stats *stats)
{
	redis_fixture_run_end();
}

#define BROKER_READY_MS 10000

struct broker {
	pid_t pid;
	char log[RD_PATH_SIZE + 32];
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static void log_dump(const struct broker *b)
{
	char cmd[RD_PATH_SIZE + 64];

	snprintf(cmd, sizeof(cmd), "tail -n 40 '%s' >&2", b->log);
	fprintf(stderr, "---- %s ----\n", b->log);
	rd_sh(cmd);
}

static struct redis_server *redis_start(void)
{
	char err[256];
	int rc;
	struct redis_server *s = redis_server_start(NULL, &rc, err, sizeof(err));

	cr_assert_not_null(s, "redis-server: %s", err);
	return s;
}

static bool broker_connected(const struct rd_daemon *d)
{
	struct ringdev_stats s;

	return rd_stats_try(d, &s) == 0 && s.broker_connected == 1;
}

/* ringdev-broker -f on d with this policy; returns once d counts it. */
static void broker_start_with(const struct rd_daemon *d, struct broker *b, const char *policy,
			      const char *credentials)
{
	char policy_path[RD_PATH_SIZE + 32], ctl[RD_PATH_SIZE + 32];
	const char *bin = getenv("RINGDEV_BROKER");
	int status;

	cr_assert(bin && *bin, "RINGDEV_BROKER is not set (meson passes it)");
	memset(b, 0, sizeof(*b));
	snprintf(b->log, sizeof(b->log), "%s/broker.log", d->dir);
	snprintf(policy_path, sizeof(policy_path), "%s/broker.policy", d->dir);
	rd_ctl_path(d, ctl, sizeof(ctl));
	FILE *f = fopen(policy_path, "we");
	cr_assert_not_null(f);
	fputs(policy, f);
	cr_assert_eq(fclose(f), 0);

	pid_t parent = getpid();
	b->pid = fork();
	cr_assert_neq(b->pid, -1);
	if (b->pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(127);
		int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		close_range(3, ~0u, 0);
		if (credentials)
			execl(bin, bin, "-f", "-v", "-d", ctl, "--policy", policy_path, "--redis-credentials",
			      credentials, (char *)NULL);
		else
			execl(bin, bin, "-f", "-v", "-d", ctl, "--policy", policy_path, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < MAX_BROKERS; i++) {
		if (brokers[i] == 0) {
			brokers[i] = b->pid;
			break;
		}
	}
	uint64_t deadline = now_ms() + BROKER_READY_MS;
	while (!broker_connected(d)) {
		if (rd_wait_child(b->pid, 0, &status)) {
			log_dump(b);
			cr_assert_fail("ringdev-broker exited during start-up (status 0x%x)", status);
		}
		cr_assert(now_ms() < deadline, "ringdev-broker not connected in time");
		pause_ms(2);
	}
}

static void broker_start(const struct rd_daemon *d, struct broker *b, const char *policy)
{
	broker_start_with(d, b, policy, NULL);
}

/* SIGTERM; it must exit 0. */
static void broker_stop(struct broker *b)
{
	int status = 0;

	kill(b->pid, SIGTERM);
	bool ended = rd_wait_child(b->pid, 10000, &status);
	if (!ended) {
		kill(b->pid, SIGKILL);
		waitpid(b->pid, &status, 0);
	}
	for (int i = 0; i < MAX_BROKERS; i++)
		if (brokers[i] == b->pid)
			brokers[i] = 0;
	if (!ended || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		log_dump(b);
	cr_assert(ended, "ringdev-broker ignored SIGTERM");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "ringdev-broker ended with status 0x%x", status);
}

static void policy_text(char *out, size_t size, const struct redis_server *s, const char *options)
{
	snprintf(out, size, "allow all *\npipe net.* kind=message network=%s %s\n", s->url, options);
}

/* ---- exactly once across two hosts ---- */

#define MESSAGES 2000
#define READERS 2

struct shared {
	struct rd_daemon *host[READERS];    /* reader i reads on host i */
	uint32_t got[READERS][MESSAGES + 1];
	uint32_t ngot[READERS];
	int error[READERS + 1];
};

/* A helper's failure: the errno for the test process, the exit code. */
static int failed(int *slot, int err, int code)
{
	*slot = err;
	return code;
}

static int writer_main(void *arg)
{
	struct shared *sh = arg;
	int fd = rd_open(sh->host[0], "net.jobs", O_WRONLY | O_CREAT, 0600);
	char msg[64];

	if (fd < 0)
		return failed(&sh->error[READERS], errno, 1);
	for (uint32_t i = 0; i < MESSAGES + READERS; i++) {
		int n = i < MESSAGES ? snprintf(msg, sizeof(msg), "w0 %u", i) : snprintf(msg, sizeof(msg), "END");
		ssize_t w = write(fd, msg, (size_t)n);
		if (w != n)
			return failed(&sh->error[READERS], w < 0 ? errno : EIO, 2);
	}
	close(fd);
	return 0;
}

static int reader_main(struct shared *sh, int who)
{
	int fd = rd_open(sh->host[who], "net.jobs", O_RDONLY | O_CREAT, 0600);
	char msg[64];

	if (fd < 0)
		return failed(&sh->error[who], errno, 1);
	for (;;) {
		ssize_t n = read(fd, msg, sizeof(msg) - 1);
		if (n <= 0)
			return failed(&sh->error[who], n < 0 ? errno : -1, 2);
		msg[n] = '\0';
		if (strcmp(msg, "END") == 0)
			break;
		unsigned seq;
		if (sscanf(msg, "w0 %u", &seq) != 1 || seq >= MESSAGES || sh->ngot[who] >= MESSAGES)
			return failed(&sh->error[who], EBADMSG, 3);
		sh->got[who][sh->ngot[who]++] = seq;
	}
	close(fd);
	return 0;
}

static int reader0(void *arg)
{
	return reader_main(arg, 0);
}

static int reader1(void *arg)
{
	return reader_main(arg, 1);
}

Test(nethosts, two_hosts_read_each_message_exactly_once_in_order)
{
	struct redis_server *redis = redis_start();
	struct rd_daemon *a = rd_start(NULL), *b = rd_start(NULL);
	struct broker ba, bb;
	char policy[512];

	policy_text(policy, sizeof(policy), redis, "");
	broker_start(a, &ba, policy);
	broker_start(b, &bb, policy);

	struct shared *sh = rd_shared(sizeof(*sh));
	sh->host[0] = a;
	sh->host[1] = b;
	uint64_t start = now_ms();
	pid_t r0 = rd_spawn(reader0, sh, -1), r1 = rd_spawn(reader1, sh, -1);
	pid_t w = rd_spawn(writer_main, sh, -1);
	cr_assert_eq(rd_join_within(w, 120000), 0, "writer: %s", strerror(sh->error[READERS]));
	cr_assert_eq(rd_join_within(r0, 120000), 0, "reader on A: %d", sh->error[0]);
	cr_assert_eq(rd_join_within(r1, 120000), 0, "reader on B: %d", sh->error[1]);
	fprintf(stderr, "nethosts: %u messages A->A,B in %llu ms (A read %u, B read %u)\n", MESSAGES,
		(unsigned long long)(now_ms() - start), sh->ngot[0], sh->ngot[1]);

	/* Exactly once, and in the writer's order for each reader. */
	static uint8_t seen[MESSAGES];
	memset(seen, 0, sizeof(seen));
	for (int r = 0; r < READERS; r++) {
		for (uint32_t i = 0; i < sh->ngot[r]; i++) {
			uint32_t seq = sh->got[r][i];
			cr_assert_eq(seen[seq], 0, "message %u read twice", seq);
			seen[seq] = 1;
			if (i)
				cr_assert_gt(seq, sh->got[r][i - 1], "reader %d: %u after %u", r, seq, sh->got[r][i - 1]);
		}
	}
	cr_assert_eq(sh->ngot[0] + sh->ngot[1], MESSAGES, "%u + %u messages read", sh->ngot[0], sh->ngot[1]);

	/* A local pipe beside them works as before. */
	int lw = rd_open_ok(a, "local.x", O_WRONLY | O_CREAT | O_CLOEXEC);
	int lr = rd_open_ok(a, "local.x", O_RDONLY | O_NONBLOCK | O_CREAT | O_CLOEXEC);
	cr_assert_eq(write(lw, "hello", 5), 5);
	char buf[16];
	cr_assert_eq(read(lr, buf, sizeof(buf)), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0);
	cr_assert_eq(read(lr, buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EAGAIN);
	rd_close(a, lw);
	rd_close(a, lr);

	broker_stop(&ba);
	broker_stop(&bb);
	rd_end(a);
	rd_end(b);
	redis_server_destroy(redis);
}

/* ---- three hosts, several writers and readers, random signals ---- */

#define HOSTS 3
#define WRITERS 3
#define PER_WRITER 1000
#define TOTAL (WRITERS * PER_WRITER)
#define MREADERS 3
#define KIDS (WRITERS + MREADERS)

struct multi {
	struct rd_daemon *host[HOSTS];
	char pipe[32];
	int nwriters;                        /* writer i writes on host i */
	uint32_t per_writer;
	bool tolerate;                       /* readers retry errors (a broker is killed) */
	pid_t kid[KIDS];                     /* writers, then readers */
	volatile int ready[KIDS];            /* its SIGUSR1 handler is set, not ended */
	volatile int stop;                   /* the signaller ends */
	uint32_t got[MREADERS][TOTAL];       /* writer << 16 | seq */
	volatile uint32_t ngot[MREADERS];
	uint32_t eintr[KIDS], errors[KIDS], signals;
	int error[KIDS];
};

static void on_usr1(int sig)
{
	(void)sig;
}

static void kid_signals(struct multi *m, int k)
{
	struct sigaction sa = { .sa_handler = on_usr1 }; /* no SA_RESTART */

	sigaction(SIGUSR1, &sa, NULL);
	m->ready[k] = 1;
}

/* Kid k stops: no more signals for it; its error and exit code. */
static int kid_failed(struct multi *m, int k, int err, int code)
{
	m->ready[k] = 0;
	return failed(&m->error[k], err, code);
}

static int multi_writer(struct multi *m, int w)
{
	int fd = rd_open(m->host[w], m->pipe, O_WRONLY | O_CREAT, 0600);
	char msg[64];

	kid_signals(m, w);
	if (fd < 0)
		return kid_failed(m, w, errno, 1);
	for (uint32_t i = 0; i < m->per_writer; i++) {
		int n = snprintf(msg, sizeof(msg), "w%d %u", w, i);
		ssize_t r;
		/* EINTR on a write: nothing was written, write it again. */
		while ((r = write(fd, msg, (size_t)n)) < 0 && errno == EINTR)
			m->eintr[w]++;
		if (r != n)
			return kid_failed(m, w, r < 0 ? errno : EIO, 2);
	}
	m->ready[w] = 0;
	close(fd);
	return 0;
}

static int multi_reader(struct multi *m, int who)
{
	int k = WRITERS + who;
	int fd = rd_open(m->host[who], m->pipe, O_RDONLY | O_CREAT, 0600);
	char msg[64];

	kid_signals(m, k);
	if (fd < 0)
		return kid_failed(m, k, errno, 1);
	for (;;) {
		ssize_t n = read(fd, msg, sizeof(msg) - 1);
		if (n < 0 && errno == EINTR) {
			m->eintr[k]++;
			continue;
		}
		if (n < 0 && m->tolerate && m->errors[k] < 100000) {
			/* Its broker was killed: the read fails until it is back. */
			m->errors[k]++;
			if (m->errors[k] == 1 || m->errors[k] % 100 == 0)
				fprintf(stderr, "nethosts: reader %d: %s\n", who, strerror(errno));
			pause_ms(5);
			continue;
		}
		if (n <= 0)
			return kid_failed(m, k, n < 0 ? errno : -1, 2);
		/* A read that returned a message counts, signal or not. */
		msg[n] = '\0';
		if (strcmp(msg, "END") == 0)
			break;
		int w;
		unsigned seq;
		if (sscanf(msg, "w%d %u", &w, &seq) != 2 || w < 0 || w >= WRITERS || seq >= PER_WRITER ||
		    m->ngot[who] >= TOTAL)
			return kid_failed(m, k, EBADMSG, 3);
		m->got[who][m->ngot[who]] = (uint32_t)w << 16 | seq;
		m->ngot[who]++;
	}
	m->ready[k] = 0;
	close(fd);
	return 0;
}

static int mw0(void *a) { return multi_writer(a, 0); }
static int mw1(void *a) { return multi_writer(a, 1); }
static int mw2(void *a) { return multi_writer(a, 2); }
static int mr0(void *a) { return multi_reader(a, 0); }
static int mr1(void *a) { return multi_reader(a, 1); }
static int mr2(void *a) { return multi_reader(a, 2); }

/* SIGUSR1 to a random writer or reader every 0-3 ms until told to stop. */
static int signaller(void *arg)
{
	struct multi *m = arg;
	unsigned seed = (unsigned)getpid();

	while (!m->stop) {
		int k = (int)(rand_r(&seed) % KIDS);
		if (m->kid[k] > 0 && m->ready[k] && kill(m->kid[k], SIGUSR1) == 0)
			m->signals++;
		pause_ms((unsigned)(rand_r(&seed) % 4));
	}
	return 0;
}

static void multi_start(struct multi *m, pid_t *sig)
{
	int (*writers[WRITERS])(void *) = { mw0, mw1, mw2 };
	int (*readers[MREADERS])(void *) = { mr0, mr1, mr2 };

	for (int r = 0; r < MREADERS; r++)
		m->kid[WRITERS + r] = rd_spawn(readers[r], m, -1);
	for (int w = 0; w < m->nwriters; w++)
		m->kid[w] = rd_spawn(writers[w], m, -1);
	*sig = rd_spawn(signaller, m, -1);
}

/* Writers done: one END per reader (written here, once every message was
 * read or 20 s passed, so no reader stops while messages remain: one a
 * killed broker held comes back only after the reclaim's min-idle), readers
 * and signaller joined. */
static void multi_finish(struct multi *m, pid_t sig)
{
	for (int w = 0; w < m->nwriters; w++)
		cr_assert_eq(rd_join_within(m->kid[w], 60000), 0, "writer %d: %s", w, strerror(m->error[w]));
	uint64_t until = now_ms() + 20000;
	uint32_t expected = (uint32_t)m->nwriters * m->per_writer;
	while (m->ngot[0] + m->ngot[1] + m->ngot[2] < expected && now_ms() < until)
		pause_ms(5);
	int fd = rd_open_ok(m->host[0], m->pipe, O_WRONLY | O_CREAT | O_CLOEXEC);
	for (int r = 0; r < MREADERS; r++)
		cr_assert_eq(write(fd, "END", 3), 3, "END: %s", strerror(errno));
	close(fd);
	for (int r = 0; r < MREADERS; r++)
		cr_assert_eq(rd_join_within(m->kid[WRITERS + r], 60000), 0, "reader %d: %d", r,
			     m->error[WRITERS + r]);
	m->stop = 1;
	cr_assert_eq(rd_join(sig), 0);
}

/* Every message read exactly once; in_order: each reader got each writer's
 * messages in the order written. */
static uint32_t multi_check(const struct multi *m, bool in_order, int killed_reader, uint32_t killed_at)
{
	static uint8_t seen[WRITERS][PER_WRITER];
	static uint32_t index[WRITERS][PER_WRITER];
	uint32_t total = 0, twice = 0;

	memset(seen, 0, sizeof(seen));
	for (int rr = 0; rr < MREADERS; rr++) {
		int r = killed_reader >= 0 ? (killed_reader + rr) % MREADERS : rr; /* the killed host's first */
		int64_t last[WRITERS] = { -1, -1, -1 };
		for (uint32_t i = 0; i < m->ngot[r]; i++) {
			uint32_t w = m->got[r][i] >> 16, seq = m->got[r][i] & 0xffff;
			if (seen[w][seq] && seen[w][seq] - 1 == killed_reader && index[w][seq] <= killed_at) {
				/* KNOWN BUG (see the kill test): delivered by the
				 * killed broker inside its settle time, never acked. */
				if (++twice <= 3)
					fprintf(stderr, "nethosts: w%u %u read by reader %d (#%u) and again by reader %d\n",
						w, seq, killed_reader, index[w][seq], r);
				continue;
			}
			cr_assert_eq(seen[w][seq], 0, "message w%u %u read twice (by reader %d, #%u here, and reader %d)",
				     w, seq, r, i, seen[w][seq] - 1);
			seen[w][seq] = (uint8_t)(r + 1);
			index[w][seq] = i;
			if (in_order)
				cr_assert_gt((int64_t)seq, last[w], "reader %d: w%u %u after %lld", r, w, seq,
					     (long long)last[w]);
			last[w] = seq;
		}
		total += m->ngot[r];
	}
	for (int w = 0; w < m->nwriters; w++)
		for (uint32_t i = 0; i < m->per_writer; i++)
			cr_assert_neq(seen[w][i], 0, "message w%d %u lost", w, i);
	cr_assert_eq(total - twice, (uint32_t)m->nwriters * m->per_writer);
	return twice;
}

Test(nethosts, three_hosts_three_writers_three_readers_under_signals)
{
	struct redis_server *redis = redis_start();
	struct broker b[HOSTS];
	char policy[512];
	struct multi *m = rd_shared(sizeof(*m));

	policy_text(policy, sizeof(policy), redis, "");
	for (int h = 0; h < HOSTS; h++) {
		m->host[h] = rd_start(NULL);
		broker_start(m->host[h], &b[h], policy);
	}
	snprintf(m->pipe, sizeof(m->pipe), "net.multi");
	m->nwriters = WRITERS;
	m->per_writer = PER_WRITER;

	uint64_t start = now_ms();
	pid_t sig;
	multi_start(m, &sig);
	multi_finish(m, sig);
	fprintf(stderr,
		"nethosts: %u messages from 3 writers on 3 hosts in %llu ms, read %u/%u/%u, %u signals, "
		"EINTR writes %u/%u/%u reads %u/%u/%u\n",
		TOTAL, (unsigned long long)(now_ms() - start), m->ngot[0], m->ngot[1], m->ngot[2], m->signals,
		m->eintr[0], m->eintr[1], m->eintr[2], m->eintr[3], m->eintr[4], m->eintr[5]);
	multi_check(m, true, -1, 0);
	cr_assert_gt(m->signals, 0);

	for (int h = 0; h < HOSTS; h++) {
		broker_stop(&b[h]);
		rd_end(m->host[h]);
	}
	redis_server_destroy(redis);
}

/* ---- a broker killed mid-stream ---- */

#define KILL_MIN_IDLE "2000"

static void broker_kill(struct broker *b)
{
	int status;

	kill(b->pid, SIGKILL);
	waitpid(b->pid, &status, 0);
	for (int i = 0; i < MAX_BROKERS; i++)
		if (brokers[i] == b->pid)
			brokers[i] = 0;
	b->pid = 0;
}

Test(nethosts, a_broker_killed_mid_stream_loses_nothing_and_repeats_nothing)
{
	struct redis_server *redis = redis_start();
	struct broker b[HOSTS];
	char policy[512];
	struct multi *m = rd_shared(sizeof(*m));

	/* Entries the killed broker took come back after 2 s, not 30. */
	setenv("RINGDEV_TEST_NP_MIN_IDLE_MS", KILL_MIN_IDLE, 1);
	policy_text(policy, sizeof(policy), redis, "");
	for (int h = 0; h < HOSTS; h++) {
		m->host[h] = rd_start(NULL);
		broker_start(m->host[h], &b[h], policy);
	}
	snprintf(m->pipe, sizeof(m->pipe), "net.killed");
	m->nwriters = 1;                     /* on host 0, whose broker stays */
	m->per_writer = PER_WRITER;
	m->tolerate = true;

	uint64_t start = now_ms();
	pid_t sig;
	multi_start(m, &sig);
	while (m->ngot[0] + m->ngot[1] + m->ngot[2] < PER_WRITER / 3 && now_ms() - start < 20000)
		pause_ms(1);
	uint32_t at = m->ngot[0] + m->ngot[1] + m->ngot[2];
	broker_kill(&b[1]);
	uint32_t at1 = m->ngot[1];                /* reader 1 had read these (+1 in flight) */
	rd_wait_broker(m->host[1], 0);
	broker_start(m->host[1], &b[1], policy);
	multi_finish(m, sig);
	unsetenv("RINGDEV_TEST_NP_MIN_IDLE_MS");
	fprintf(stderr, "nethosts: broker on host 1 killed after %u messages read; %u in %llu ms, read %u/%u/%u, "
			"reader 1 errors %u\n",
		at, PER_WRITER, (unsigned long long)(now_ms() - start), m->ngot[0], m->ngot[1], m->ngot[2],
		m->errors[WRITERS + 1]);
	/* Reclaimed entries come late: no order, nothing lost. An entry is
	 * acknowledged once the daemon took the answer that carried it (the
	 * library's accepted handler); a kill between the two (one Redis
	 * round trip) leaves it pending, and the reclaim gives it to another
	 * reader again: only what the killed host's reader had before the
	 * kill may come twice, and at most the one or two in that window
	 * (before the accepted handler, 104 to 136 of 1,000 every run). */
	uint32_t twice = multi_check(m, false, 1, at1);
	fprintf(stderr, "nethosts: %u messages delivered twice after the broker kill\n", twice);
	cr_assert_leq(twice, 2, "%u messages came twice after the broker kill", twice);

	for (int h = 0; h < HOSTS; h++) {
		broker_stop(&b[h]);
		rd_end(m->host[h]);
	}
	redis_server_destroy(redis);
}

/* ---- overwrite: the drops are the pipe's, counted once for every host ---- */

/* The "drops N" totals this broker logged, in order; returns how many. */
static int drops_logged(const struct broker *b, uint64_t *out, int max)
{
	char cmd[RD_PATH_SIZE + 128];
	int n = 0;

	snprintf(cmd, sizeof(cmd), "grep -o \"'net.over': overwrite dropped [0-9]*, drops [0-9]*\" '%s'", b->log);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	char line[256];
	unsigned long long dropped, total;
	while (n < max && fgets(line, sizeof(line), p))
		if (sscanf(line, "'net.over': overwrite dropped %llu, drops %llu", &dropped, &total) == 2)
			out[n++] = total;
	pclose(p);
	return n;
}

Test(nethosts, overwrite_drops_the_oldest_and_counts_them_once_for_all_hosts)
{
	struct redis_server *redis = redis_start();
	struct rd_daemon *h[HOSTS];
	struct broker b[HOSTS];
	char policy[512], msg[100], buf[256];
	enum { EACH = 20 };

	policy_text(policy, sizeof(policy), redis, "policy=overwrite capacity=1000");
	for (int i = 0; i < HOSTS; i++) {
		h[i] = rd_start(NULL);
		broker_start(h[i], &b[i], policy);
	}
	/* The reader's group exists before the writes; it reads after. */
	int r = rd_open_ok(h[2], "net.over", O_RDONLY | O_NONBLOCK | O_CREAT | O_CLOEXEC);
	int wa = rd_open_ok(h[0], "net.over", O_WRONLY | O_CREAT | O_CLOEXEC);
	int wb = rd_open_ok(h[1], "net.over", O_WRONLY | O_CREAT | O_CLOEXEC);
	for (int i = 0; i < EACH; i++) {
		int n = snprintf(msg, sizeof(msg), "A %02d", i);
		memset(msg + n, '.', sizeof(msg) - (size_t)n);
		cr_assert_eq(write(wa, msg, sizeof(msg)), (ssize_t)sizeof(msg), "overwrite never refuses: %s",
			     strerror(errno));
		msg[0] = 'B';
		cr_assert_eq(write(wb, msg, sizeof(msg)), (ssize_t)sizeof(msg), "%s", strerror(errno));
	}
	/* What is left is the newest, in order. */
	int nread = 0, last_a = -1, last_b = -1;
	ssize_t n;
	while ((n = read(r, buf, sizeof(buf))) > 0) {
		int seq = atoi(buf + 2);
		int *last = buf[0] == 'A' ? &last_a : &last_b;
		cr_assert_eq(n, (ssize_t)sizeof(msg));
		cr_assert_gt(seq, *last, "%c %d after %d", buf[0], seq, *last);
		*last = seq;
		nread++;
	}
	cr_assert_eq(errno, EAGAIN, "%s", strerror(errno));
	cr_assert_eq(last_a, EACH - 1, "the newest of A kept");
	cr_assert_eq(last_b, EACH - 1, "the newest of B kept");

	/* Each host logs the pipe's total (one counter on Redis): together the
	 * totals are 1..drops with none counted twice, and drops + read is
	 * everything written. */
	uint64_t ta[2 * EACH], tb[2 * EACH];
	int na = drops_logged(&b[0], ta, 2 * EACH), nb = drops_logged(&b[1], tb, 2 * EACH);
	cr_assert(na > 0 && nb > 0, "both writing hosts logged drops (%d, %d)", na, nb);
	uint64_t drops = ta[na - 1] > tb[nb - 1] ? ta[na - 1] : tb[nb - 1];
	fprintf(stderr, "nethosts: overwrite: %d written, %d read, %llu dropped (A logged %d, B %d)\n", 2 * EACH,
		nread, (unsigned long long)drops, na, nb);
	cr_assert_eq(drops + (uint64_t)nread, 2 * EACH, "%llu dropped + %d read", (unsigned long long)drops, nread);
	for (int i = 0; i < na; i++)
		for (int j = 0; j < nb; j++)
			cr_assert_neq(ta[i], tb[j], "total %llu seen by both", (unsigned long long)ta[i]);

	rd_close(h[2], r);
	rd_close(h[0], wa);
	rd_close(h[1], wb);
	for (int i = 0; i < HOSTS; i++) {
		broker_stop(&b[i]);
		rd_end(h[i]);
	}
	redis_server_destroy(redis);
}

/* ---- the fail policy, O_NONBLOCK ---- */

Test(nethosts, fail_policy_gives_eagain_when_full_and_room_comes_back)
{
	struct redis_server *redis = redis_start();
	struct rd_daemon *a = rd_start(NULL), *b = rd_start(NULL);
	struct broker ba, bb;
	char policy[512], msg[100], buf[256];

	policy_text(policy, sizeof(policy), redis, "policy=fail capacity=256");
	broker_start(a, &ba, policy);
	broker_start(b, &bb, policy);
	memset(msg, 'x', sizeof(msg));

	int rb = rd_open_ok(b, "net.small", O_RDONLY | O_NONBLOCK | O_CREAT | O_CLOEXEC);
	cr_assert_eq(read(rb, buf, sizeof(buf)), -1, "a read on an empty network pipe");
	cr_assert_eq(errno, EAGAIN, "O_NONBLOCK on an empty network pipe: %s", strerror(errno));

	int wa = rd_open_ok(a, "net.small", O_WRONLY | O_CREAT | O_CLOEXEC);
	cr_assert_eq(write(wa, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(write(wa, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(write(wa, msg, sizeof(msg)), -1, "a third 100-byte message fits in 256 bytes");
	cr_assert_eq(errno, EAGAIN, "fail policy, full: %s", strerror(errno));

	/* A too-small buffer: EMSGSIZE and the message stays. */
	cr_assert_eq(read(rb, buf, 10), -1);
	cr_assert_eq(errno, EMSGSIZE, "%s", strerror(errno));
	cr_assert_eq(read(rb, buf, sizeof(buf)), (ssize_t)sizeof(msg));

	/* Room comes back once that entry is acknowledged (after the settle
	 * time, netbroker.h). */
	uint64_t deadline = now_ms() + 10000;
	ssize_t n;
	while ((n = write(wa, msg, sizeof(msg))) < 0 && errno == EAGAIN && now_ms() < deadline)
		pause_ms(20);
	cr_assert_eq(n, (ssize_t)sizeof(msg), "no room after a read: %s", strerror(errno));

	/* Drain: two messages left. */
	for (int i = 0; i < 2; i++) {
		deadline = now_ms() + 5000;
		while ((n = read(rb, buf, sizeof(buf))) < 0 && errno == EAGAIN && now_ms() < deadline)
			pause_ms(5);
		cr_assert_eq(n, (ssize_t)sizeof(msg), "message %d: %s", i, strerror(errno));
	}
	rd_close(a, wa);
	rd_close(b, rb);
	broker_stop(&ba);
	broker_stop(&bb);
	rd_end(a);
	rd_end(b);
	redis_server_destroy(redis);
}

/* ---- block policy, cancel ---- */

static volatile sig_atomic_t alarms;

static void on_alarm(int sig)
{
	(void)sig;
	alarms++;
}

struct interrupted {
	struct rd_daemon *host;
	int result;                 /* the read's return */
	int err;                    /* its errno */
};

/* A read on an empty network pipe interrupted by a signal after 300 ms. */
static int interrupted_read(void *arg)
{
	struct interrupted *x = arg;
	struct sigaction sa = { .sa_handler = on_alarm }; /* no SA_RESTART */
	char buf[64];
	int fd = rd_open(x->host, "net.idle", O_RDONLY | O_CREAT, 0600);

	if (fd < 0)
		return 1;
	sigaction(SIGALRM, &sa, NULL);
	ualarm(300000, 0);
	x->result = (int)read(fd, buf, sizeof(buf));
	x->err = errno;
	close(fd);
	return 0;
}

Test(nethosts, block_policy_waits_for_room_and_an_interrupted_read_gets_eintr)
{
	struct redis_server *redis = redis_start();
	struct rd_daemon *a = rd_start(NULL), *b = rd_start(NULL);
	struct broker ba, bb;
	char policy[512], msg[100], buf[256];

	policy_text(policy, sizeof(policy), redis, "policy=block capacity=256");
	broker_start(a, &ba, policy);
	broker_start(b, &bb, policy);
	memset(msg, 'y', sizeof(msg));

	/* An interrupted read that holds nothing: EINTR, nothing parked after. */
	struct interrupted *x = rd_shared(sizeof(*x));
	x->host = b;
	cr_assert_eq(rd_join(rd_spawn(interrupted_read, x, -1)), 0);
	cr_assert_eq(x->result, -1, "the read returned %d", x->result);
	cr_assert_eq(x->err, EINTR, "%s", strerror(x->err));
	rd_wait_parked(b, 0, 0); /* the broker's TRANSACT is parked_other */

	/* Full with block: O_NONBLOCK gets EAGAIN, a blocking write waits
	 * until a reader on the other host makes room. */
	int wa = rd_open_ok(a, "net.block", O_WRONLY | O_CREAT | O_CLOEXEC);
	int wn = rd_open_ok(a, "net.block", O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert_eq(write(wa, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(write(wa, msg, sizeof(msg)), (ssize_t)sizeof(msg));
	cr_assert_eq(write(wn, msg, sizeof(msg)), -1);
	cr_assert_eq(errno, EAGAIN, "O_NONBLOCK, block policy, full: %s", strerror(errno));

	struct rd_io *io = rd_io_new(wa, RD_IO_WRITE, sizeof(msg));
	rd_io_start(io);
	/* The third write waits (relayed to the broker: not a parked write of
	 * the daemon's, so this looks at the writer itself). */
	int status;
	cr_assert_not(rd_wait_child(io->pid, 500, &status), "a write to a full block pipe did not wait");
	int rb = rd_open_ok(b, "net.block", O_RDONLY | O_CREAT | O_CLOEXEC);
	cr_assert_eq(read(rb, buf, sizeof(buf)), (ssize_t)sizeof(msg));
	rd_io_join(io); /* ends once the read is acknowledged (the settle time) */
	cr_assert_eq(io->ret, (ssize_t)sizeof(msg), "the waiting write: %zd (%s)", io->ret,
		     strerror(io->err));
	for (int i = 0; i < 2; i++)
		cr_assert_eq(read(rb, buf, sizeof(buf)), (ssize_t)sizeof(msg));
	rd_close(a, wa);
	rd_close(a, wn);
	rd_close(b, rb);
	broker_stop(&ba);
	broker_stop(&bb);
	rd_end(a);
	rd_end(b);
	redis_server_destroy(redis);
}

/* ---- Redis gone ---- */

Test(nethosts, redis_gone_fails_with_eio_and_the_broker_reconnects)
{
	struct redis_server *redis = redis_start();
	struct rd_daemon *a = rd_start(NULL);
	struct broker ba;
	char policy[512], buf[64], err[256];

	policy_text(policy, sizeof(policy), redis, "");
	broker_start(a, &ba, policy);
	int w = rd_open_ok(a, "net.faults", O_WRONLY | O_CREAT | O_CLOEXEC);
	int r = rd_open_ok(a, "net.faults", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	cr_assert_eq(write(w, "one", 3), 3);

	cr_assert_eq(redis_server_stop(redis), 0);
	uint64_t start = now_ms();
	cr_assert_eq(write(w, "two", 3), -1);
	cr_assert_eq(errno, EIO, "a write with Redis gone: %s", strerror(errno));
	cr_assert_lt(now_ms() - start, 4000 + 1500, "the documented bound (2 s per connect or command)");
	cr_assert_eq(read(r, buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EIO, "a read with Redis gone: %s", strerror(errno));

	/* Local pipes do not notice. */
	int lw = rd_open_ok(a, "local.y", O_WRONLY | O_CREAT | O_CLOEXEC);
	cr_assert_eq(write(lw, "ok", 2), 2);
	rd_close(a, lw);

	cr_assert_eq(redis_server_restart(redis, err, sizeof(err)), 0, "%s", err);
	ssize_t n = read(r, buf, sizeof(buf));
	cr_assert_eq(n, 3, "the first read after Redis came back: %zd (%s)", n, strerror(errno));
	cr_assert_eq(memcmp(buf, "one", 3), 0, "what was written before the outage is kept");
	cr_assert_eq(write(w, "three", 5), 5);
	rd_close(a, w);
	rd_close(a, r);
	broker_stop(&ba);
	rd_end(a);
	redis_server_destroy(redis);
}

/* ---- credentials, --check ---- */

Test(nethosts, redis_credentials_come_from_the_file_given)
{
	char err[256], cred[RS_PATH_SIZE + 32], line[128], policy[512], buf[64];
	int rc;
	struct redis_server *redis = redis_server_start("s3cret-pass", &rc, err, sizeof(err));

	cr_assert_not_null(redis, "redis-server: %s", err);
	snprintf(line, sizeof(line), "%s\n", redis->password);
	cr_assert_eq(redis_server_write_file(redis, "credentials", line, 0600, cred, sizeof(cred)), 0);
	policy_text(policy, sizeof(policy), redis, "");

	/* Without the file: no AUTH, every call fails with EIO. */
	struct rd_daemon *a = rd_start(NULL);
	struct broker ba;
	broker_start(a, &ba, policy);
	int w = rd_open_ok(a, "net.auth", O_WRONLY | O_CREAT | O_CLOEXEC);
	cr_assert_eq(write(w, "x", 1), -1);
	cr_assert_eq(errno, EIO, "%s", strerror(errno));
	rd_close(a, w);
	broker_stop(&ba);

	/* With it: served, and the password is on no command line. */
	broker_start_with(a, &ba, policy, cred);
	w = rd_open_ok(a, "net.auth", O_WRONLY | O_CREAT | O_CLOEXEC);
	int r = rd_open_ok(a, "net.auth", O_RDONLY | O_CLOEXEC);
	cr_assert_eq(write(w, "hello", 5), 5);
	cr_assert_eq(read(r, buf, sizeof(buf)), 5);
	char cmdline_path[64], cmdline[4096];
	snprintf(cmdline_path, sizeof(cmdline_path), "/proc/%d/cmdline", (int)ba.pid);
	int fd = open(cmdline_path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd < 0 ? -1 : read(fd, cmdline, sizeof(cmdline) - 1);
	if (fd >= 0)
		close(fd);
	cr_assert_gt(n, 0);
	for (ssize_t i = 0; i < n; i++)
		if (!cmdline[i])
			cmdline[i] = ' ';
	cmdline[n] = '\0';
	cr_assert_null(strstr(cmdline, redis->password), "the password is on the command line: %s", cmdline);
	rd_close(a, w);
	rd_close(a, r);
	broker_stop(&ba);
	rd_end(a);
	redis_server_destroy(redis);
}

/* --check reads network= URLs without connecting (nothing listens at port
 * 1) and names the file and line of a bad one. */
Test(nethosts, check_validates_urls_without_connecting)
{
	const char *bin = getenv("RINGDEV_BROKER");
	char dir[] = "/tmp/nethosts-check.XXXXXX", path[64], cmd[512];

	cr_assert(bin && *bin);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/p", dir);
	FILE *f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("allow all *\npipe net.* kind=message network=redis://127.0.0.1:1\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' --check --policy '%s' >/dev/null 2>&1", bin, path);
	cr_assert_eq(rd_sh(cmd), 0, "a good URL with nothing behind it");

	f = fopen(path, "we");
	cr_assert_not_null(f);
	fputs("allow all *\npipe net.* kind=message network=redis://127.0.0.1\n", f);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "'%s' --check --policy '%s' 2>&1 | grep -q '^ringdev-broker: %s:2: network: URL '",
		 bin, path, path);
	cr_assert_eq(rd_sh(cmd), 0, "the error names file and line");
	snprintf(cmd, sizeof(cmd), "'%s' --check --policy '%s' >/dev/null 2>&1", bin, path);
	cr_assert_eq(rd_sh(cmd), 1, "a bad URL fails --check with 1");
	unlink(path);
	rmdir(dir);
}
