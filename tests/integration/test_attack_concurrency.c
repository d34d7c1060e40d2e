/* SPDX-License-Identifier: MIT */
/*
 * test_attack_concurrency.c - defects found by the second concurrency review.
 *
 * 1. An open of a brokered rendezvous pipe interrupted by a signal after the
 *    broker (ringdev-broker(8)) took it fails with EINTR, but the broker
 *    keeps counting that handle as a writer of the pipe: no RELEASE comes
 *    for it and nothing else undoes its ATTACH. Readers of the pipe then
 *    never get end-of-file once every real writer closed, against
 *    ringdev-broker(8) ("It returns 0 (end-of-file) when no write waits and
 *    every handle that was opened for writing on the pipe has closed").
 *    repro/rv_open_eintr_no_eof.c is the stand-alone version.
 *
 * The real broker is $RINGDEV_BROKER (set by meson).
 */

#include "harness.h"

#include <sys/prctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

TestSuite(attack_conc, .init = rd_suite_init, .fini = rd_suite_fini);

static void on_signal(int sig)
{
	(void)sig;
}

static pid_t broker_spawn(const struct rd_daemon *d, const char *policy_text)
{
	char policy[RD_PATH_SIZE + 32], log[RD_PATH_SIZE + 32], ctl[RD_PATH_SIZE + 32];
	const char *bin = getenv("RINGDEV_BROKER");

	cr_assert(bin && *bin, "RINGDEV_BROKER is not set");
	snprintf(policy, sizeof(policy), "%s/broker.policy", d->dir);
	snprintf(log, sizeof(log), "%s/broker.log", d->dir);
	rd_ctl_path(d, ctl, sizeof(ctl));
	FILE *f = fopen(policy, "w");
	cr_assert(f, "policy file: %s", strerror(errno));
	fputs(policy_text, f);
	fclose(f);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		close_range(3, ~0u, 0);
		execl(bin, bin, "-f", "-d", ctl, "--policy", policy, "--threads", "4", (char *)NULL);
		_exit(127);
	}
	rd_wait_broker(d, 1);
	return pid;
}

struct storm_arg {
	char path[RD_PATH_SIZE + 64];
	int *interrupted;       /* shared */
};

/* Opens for writing under a 30 us timer storm until 50 were interrupted
 * (or 5 s passed: a daemon under valgrind opens slowly). */
static int storm_opens_main(void *arg)
{
	struct storm_arg *a = arg;
	struct sigaction sa = { .sa_handler = on_signal }; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	struct itimerval it = { { 0, 30 }, { 0, 30 } };
	struct timespec start, now;
	clock_gettime(CLOCK_MONOTONIC, &start);
	setitimer(ITIMER_REAL, &it, NULL);
	for (int i = 0; i < 20000 && *a->interrupted < 50; i++) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec - start.tv_sec >= 5)
			break;
		int fd = open(a->path, O_WRONLY | O_CREAT, 0666);
		if (fd >= 0) {
			while (close(fd) < 0 && errno == EINTR)
				;
		} else if (errno == EINTR) {
			(*a->interrupted)++;
		} else {
			return 2;
		}
	}
	struct itimerval off = { 0 };
	setitimer(ITIMER_REAL, &off, NULL);
	return 0;
}

static int one_record_writer_main(void *arg)
{
	struct storm_arg *a = arg;
	int fd = open(a->path, O_WRONLY | O_CREAT, 0666);
	if (fd < 0 || write(fd, "12345678", 8) != 8)
		return 3;
	close(fd);
	return 0;
}

/* 0: the record then end-of-file; 10+: the second read did not end (errno). */
static int eof_reader_main(void *arg)
{
	struct storm_arg *a = arg;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGALRM, &sa, NULL);
	int fd = open(a->path, O_RDONLY | O_CREAT, 0666);
	if (fd < 0)
		return 2;
	char buf[8];
	unsigned slow = rd_daemon_instrumented() ? 6 : 1; /* valgrind, TSan */
	alarm(5 * slow);
	if (read(fd, buf, sizeof(buf)) != 8)
		return 4;
	alarm(4 * slow);
	ssize_t n = read(fd, buf, sizeof(buf));
	int e = errno;
	alarm(0);
	close(fd);
	if (n == 0)
		return 0;
	return n < 0 ? 10 + (e == EINTR) : 5;
}

Test(attack_conc, interrupted_opens_of_a_rendezvous_pipe_do_not_keep_readers_from_eof, .timeout = 120)
{
	if (rd_fuse_only("the broker's control node path and the FUSE name"))
		return;
	/* Under memcheck the storm's opens did not end in time (CI: 30 s; a
	 * rehearsal: 90 s), a 30-us timer against a daemon fifty times slower;
	 * natively, under ASan and under TSan they end within the storm's 5 s.
	 * Left for a look (issue 20's note): can an open starve so? */
	if (getenv("RINGDEV_VALGRIND_LOGS"))
		cr_skip_test("under valgrind the 30-us timer storm keeps every open from ending");
	struct rd_daemon *d = rd_start(NULL);
	int stats_fd = rd_keep_stats(d);
	pid_t broker = broker_spawn(d, "allow all *\npipe rv.* brokered mode=0666\n");

	struct storm_arg *a = rd_shared(sizeof(*a));
	a->interrupted = rd_shared(sizeof(int));
	snprintf(a->path, sizeof(a->path), "%s/rv.eof", d->mount);

	/* The helpers' own bounds (the storm's 5 s, the reader's alarms) grow
	 * under valgrind and TSan: the waits here cover them. */
	int limit_ms = (rd_daemon_instrumented() ? 6 : 1) * 10000 + RD_CHILD_TIMEOUT_MS;
	cr_assert_eq(rd_join_within(rd_spawn(storm_opens_main, a, -1), limit_ms), 0, "storm of opens failed");
	cr_assert_gt(*a->interrupted, 0, "no open was interrupted");

	/* Every writer handle is closed; one writer more writes and closes. */
	pid_t w = rd_spawn(one_record_writer_main, a, -1);
	pid_t r = rd_spawn(eof_reader_main, a, -1);
	cr_assert_eq(rd_join_within(w, limit_ms), 0, "the writer failed");
	int rc = rd_join_within(r, limit_ms);
	cr_expect_eq(rc, 0,
		     "after %d interrupted opens and every writer closed, the reader of the rendezvous pipe got no "
		     "end-of-file within 4 s (code %d: 11 = still waiting)", *a->interrupted, rc);

	kill(broker, SIGKILL);
	waitpid(broker, NULL, 0);
	rd_wait_broker(d, 0);
	(void)stats_fd;
	rd_end(d);
}

/*
 * 2. Pipes that lost their name (unlink(2)) and their last handle while
 *    other threads open the same names on the mount and ATTACH to them keep
 *    existing, each with its ring, for seconds after: they count against
 *    --max-pipes and --max-memory, so with at most 3 names and 7 handles in
 *    use, opens and ATTACHes fail with ENOSPC. ringdev(4) LIFETIME: an
 *    unlinked pipe's data is dropped when the last of its handles closes,
 *    and --max-pipes bounds how many pipes exist at once.
 *    repro/w3_lifetime_races.c (MIX=220300) is the stand-alone version.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>

static const char *const churn_names[3] = { "ch.a", "ch.b", "ch.c" };
static char churn_mount[RD_PATH_SIZE];
static atomic_int churn_stop;
static atomic_int churn_enospc;
static int churn_fd[3];

static void *churn_open(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	char p[RD_PATH_SIZE + 64];
	while (!churn_stop) {
		snprintf(p, sizeof(p), "%s/%s", churn_mount, churn_names[rand_r(&seed) % 3]);
		int fd = open(p, O_WRONLY | O_CREAT | O_NONBLOCK, 0666);
		if (fd < 0) {
			if (errno == ENOSPC)
				churn_enospc++;
			continue;
		}
		if (write(fd, "x", 1) < 0) {
			/* ENXIO and the like: not what this test is about */
		}
		close(fd);
	}
	return NULL;
}

static void *churn_unlink(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	char p[RD_PATH_SIZE + 64];
	while (!churn_stop) {
		snprintf(p, sizeof(p), "%s/%s", churn_mount, churn_names[rand_r(&seed) % 3]);
		unlink(p);
	}
	return NULL;
}

static void *churn_attach(void *arg)
{
	unsigned seed = (unsigned)(uintptr_t)arg;
	while (!churn_stop) {
		int fd = churn_fd[rand_r(&seed) % 3];
		if (rand_r(&seed) % 4 == 0) {
			ioctl(fd, RINGDEV_IOC_DETACH);
			continue;
		}
		struct ringdev_attach at = { 0 };
		snprintf(at.name, sizeof(at.name), "%s", churn_names[rand_r(&seed) % 3]);
		at.flags = RINGDEV_ATTACH_CREATE;
		at.mode = 0666;
		if (ioctl(fd, RINGDEV_IOC_ATTACH, &at) < 0 && errno == ENOSPC)
			churn_enospc++;
	}
	return NULL;
}

Test(attack_conc, pipes_gone_by_unlink_do_not_exhaust_max_pipes_under_churn, .timeout = 40)
{
	if (rd_fuse_only("unlink(2) on the mount"))
		return;
	const char *const args[] = { "--max-pipes", "64", NULL };
	struct rd_daemon *d = rd_start(args);
	snprintf(churn_mount, sizeof(churn_mount), "%s", d->mount);
	churn_stop = 0;
	churn_enospc = 0;
	for (int i = 0; i < 3; i++) {
		churn_fd[i] = rd_open(d, churn_names[i], O_RDWR | O_CREAT | O_NONBLOCK, 0666);
		cr_assert_geq(churn_fd[i], 0, "open %s: %s", churn_names[i], strerror(errno));
	}
	pthread_t t[7];
	int n = 0;
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[n++], NULL, churn_open, (void *)(i + 1));
	for (uintptr_t i = 0; i < 2; i++)
		pthread_create(&t[n++], NULL, churn_unlink, (void *)(i + 11));
	for (uintptr_t i = 0; i < 3; i++)
		pthread_create(&t[n++], NULL, churn_attach, (void *)(i + 21));
	uint64_t most = 0;
	for (int i = 0; i < 30; i++) {
		usleep(100000);
		struct ringdev_stats s = rd_stats(d);
		if (s.pipes > most)
			most = s.pipes;
	}
	churn_stop = 1;
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	for (int i = 0; i < 3; i++)
		close(churn_fd[i]);
	/* At most 3 names and 7 handles were ever in use at once. */
	cr_expect_leq(most, 16, "up to %llu pipes existed at once with 3 names and 7 handles in use",
		      (unsigned long long)most);
	cr_expect_eq(churn_enospc, 0, "%d opens and ATTACHes failed with ENOSPC (--max-pipes 64, 3 names in use)",
		     (int)churn_enospc);
	rd_end(d);
}

/*
 * 3. A brokered WRITE the broker took, then interrupted (CANCEL sent), and
 *    then the broker goes away without answering: the app gets EINTR
 *    ("cancelled, nothing done" in ringdev(4) Cancelling), though the broker
 *    may have handed its bytes to a reader; ringdev(4) "When the broker goes
 *    away" promises ECONNRESET for every request it had taken and not
 *    answered. repro/broker_gone_while_cancelling.c is the stand-alone version.
 */
static struct ringdev_ctl_transact bg_t;

static bool bg_take(int ctl, const struct ringdev_ctl_answer *a, uint32_t type, struct ringdev_ctl_request *out)
{
	for (int tries = 0; tries < 25; tries++) {
		if (rd_transact(ctl, a && tries == 0 ? a : NULL, a && tries == 0 ? 1 : 0, 1, 200, &bg_t) < 0)
			return false;
		for (uint32_t i = 0; i < bg_t.nrequests; i++)
			if (bg_t.requests[i].type == type) {
				*out = bg_t.requests[i];
				return true;
			}
	}
	return false;
}

struct bg_app {
	char path[RD_PATH_SIZE + 64];
	int ret, err;
};

static int bg_app_main(void *arg)
{
	struct bg_app *a = arg;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGUSR1, &sa, NULL);
	int fd = open(a->path, O_WRONLY | O_CREAT, 0666);
	if (fd < 0)
		return 2;
	ssize_t n = write(fd, "12345678", 8);
	a->ret = (int)n;
	a->err = n < 0 ? errno : 0;
	close(fd);
	return 0;
}

Test(attack_conc, a_cancelling_write_ends_with_econnreset_when_the_broker_goes, .timeout = 30)
{
	if (rd_fuse_only("the FUSE mount's OPEN"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	int ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "control node: %s", strerror(errno));
	rd_stats_through(d, sfd);
	struct bg_app *a = rd_shared(sizeof(*a));
	snprintf(a->path, sizeof(a->path), "%s/bg.pipe", d->mount);
	pid_t app = rd_spawn(bg_app_main, a, -1);

	struct ringdev_ctl_request r, w, c;
	cr_assert(bg_take(ctl, NULL, RINGDEV_CTL_OPEN, &r), "no OPEN");
	struct ringdev_ctl_answer ans = { .id = r.id, .result = 0, .flags = RINGDEV_ANSWER_BROKERED };
	cr_assert(bg_take(ctl, &ans, RINGDEV_CTL_WRITE, &w), "no WRITE");
	kill(app, SIGUSR1);
	cr_assert(bg_take(ctl, NULL, RINGDEV_CTL_CANCEL, &c), "no CANCEL");
	cr_assert_eq(c.ref, w.id, "the CANCEL names the WRITE");
	close(ctl); /* the broker goes away, the WRITE unanswered */
	cr_assert_eq(rd_join(app), 0, "the app failed to open");
	cr_expect(a->ret == -1 && a->err == ECONNRESET,
		  "a WRITE the broker took and never answered, interrupted, then its broker gone: expected -1 "
		  "ECONNRESET, got %d %s",
		  a->ret, rd_errname(a->err));
	rd_wait_broker(d, 0);
	rd_end(d);
}
