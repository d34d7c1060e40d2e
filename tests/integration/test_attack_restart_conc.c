/* SPDX-License-Identifier: MIT */
/*
 * test_attack_restart_conc.c - attacks on the in-place restart (SIGHUP,
 * issue 20) through concurrency around the handover: a SIGHUP at the very
 * start, SIGHUP storms under mixed load with every byte checked, and the
 * guard taking over when the new image dies in the middle.
 *
 * ringdevd(8) promises that a SIGHUP before the connection is set up is
 * ignored with a warning, that applications notice nothing across a
 * restart, and that the guard becomes the daemon if the new image dies
 * during the handover. These tests hold it to that with real system calls
 * against the built daemon.
 */

#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

#include "harness.h"

RD_SUITE(attack_restart_conc, 120);

static uint64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Has pid an fd on /dev/fuse or /dev/cuse yet? */
static bool holds_kernel_fd(pid_t pid)
{
	char dir[64];
	snprintf(dir, sizeof(dir), "/proc/%d/fd", (int)pid);
	DIR *d = opendir(dir);
	if (!d)
		return false;
	bool found = false;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		char link[384], target[64];
		snprintf(link, sizeof(link), "%s/%s", dir, e->d_name);
		ssize_t n = readlink(link, target, sizeof(target) - 1);
		if (n > 0) {
			target[n] = '\0';
			found = !strcmp(target, "/dev/fuse") || !strcmp(target, "/dev/cuse");
		}
	}
	closedir(d);
	return found;
}

static pid_t spawn_daemon_with(const char *mnt, const char *log, bool ignore_int, const char *threads,
				const char *busy_poll);

/* Start ringdevd on a private FUSE mount ourselves (not rd_start, which
 * returns only once it serves): the test must signal it earlier. */
static pid_t spawn_daemon(const char *mnt, const char *log)
{
	return spawn_daemon_with(mnt, log, false, "2", "50");
}

/* The same, with SIGINT ignored as a shell's background job has it, and
 * these --threads and --busy-poll. */
static pid_t spawn_daemon_with(const char *mnt, const char *log, bool ignore_int, const char *threads,
				const char *busy_poll)
{
	const char *bin = getenv("RINGDEVD");
	cr_assert(bin && *bin, "RINGDEVD is not set");
	pid_t pid = fork();
	cr_assert(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		int fd = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (ignore_int)
			signal(SIGINT, SIG_IGN);
		execl(bin, bin, "-f", "--frontend=fuse", "--mount", mnt, "--threads", threads, "--busy-poll", busy_poll,
		      (char *)NULL);
		_exit(127);
	}
	return pid;
}

/* A SIGHUP that comes while ringdevd is still setting up (it has opened
 * /dev/fuse, the mount is being made, no handler is installed yet) must
 * not kill it: ringdevd(8) says such a SIGHUP is ignored. Before the fix
 * SIGHUP still had its default action there and the daemon died of it
 * (status 128+SIGHUP), taking its mount with it. */
Test(attack_restart_conc, sighup_while_starting_is_not_fatal)
{
	if (rd_fuse_only("a SIGHUP during start-up"))
		return;
	char tmpl[] = "/tmp/rd-hupstart.XXXXXX";
	cr_assert(mkdtemp(tmpl));
	int died = 0;
	const int rounds = 30;
	for (int i = 0; i < rounds; i++) {
		char mnt[256], log[256];
		snprintf(mnt, sizeof(mnt), "%s/mnt%d", tmpl, i);
		snprintf(log, sizeof(log), "%s/log%d", tmpl, i);
		cr_assert(mkdir(mnt, 0755) == 0);
		pid_t pid = spawn_daemon(mnt, log);
		uint64_t t0 = mono_ms();
		while (!holds_kernel_fd(pid) && mono_ms() - t0 < RD_START_TIMEOUT_MS)
			;
		/* Vary the moment a little: from the open of /dev/fuse on. */
		if (i % 5 == 4)
			usleep(200);
		kill(pid, SIGHUP);
		/* It must come up and serve. */
		char pipe[300];
		snprintf(pipe, sizeof(pipe), "%s/p", mnt);
		int fd = -1, status = 0;
		bool gone = false;
		t0 = mono_ms();
		while (fd < 0 && mono_ms() - t0 < RD_START_TIMEOUT_MS) {
			if (waitpid(pid, &status, WNOHANG) == pid) {
				gone = true;
				break;
			}
			if (rd_is_mounted(mnt))
				fd = open(pipe, O_RDWR | O_CREAT | O_NONBLOCK, 0600);
			if (fd < 0)
				usleep(1000);
		}
		if (gone) {
			died++;
			cr_log_error("round %d: ringdevd died (%s %d) after a SIGHUP during start-up", i,
				     WIFSIGNALED(status) ? "signal" : "exit",
				     WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			umount2(mnt, MNT_DETACH);
			continue;
		}
		cr_assert(fd >= 0, "round %d: the mount does not serve: %s", i, strerror(errno));
		cr_assert(write(fd, "ok", 2) == 2);
		char b[4];
		cr_assert(read(fd, b, sizeof(b)) == 2);
		close(fd);
		kill(pid, SIGTERM);
		t0 = mono_ms();
		while (waitpid(pid, &status, WNOHANG) != pid) {
			cr_assert(mono_ms() - t0 < RD_STOP_TIMEOUT_MS, "round %d: ringdevd does not stop", i);
			usleep(1000);
		}
		cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: exit status %#x", i, status);
		if (rd_is_mounted(mnt))
			umount2(mnt, MNT_DETACH);
	}
	cr_assert_eq(died, 0, "%d of %d daemons died of a SIGHUP while starting", died, rounds);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpl);
	rd_sh(cmd);
}

/* ---- the guard: a new program that neither serves nor dies ---- */

static const size_t keep_len = 3000;

static int read_kept(void *arg)
{
	const struct rd_daemon *d = arg;
	int fd = rd_open(d, "keep", O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return 10;
	unsigned char got[4096], want[4096];
	ssize_t n = read(fd, got, sizeof(got));
	rd_pattern(want, keep_len, 20, 0);
	close(fd);
	return n == (ssize_t)keep_len && !memcmp(got, want, keep_len) ? 0 : 11;
}

static pid_t first_child(pid_t pid)
{
	char path[96];
	snprintf(path, sizeof(path), "/proc/%d/task/%d/children", (int)pid, (int)pid);
	FILE *f = fopen(path, "r");
	int c = 0;
	if (f) {
		if (fscanf(f, "%d", &c) != 1)
			c = 0;
		fclose(f);
	}
	return (pid_t)c;
}

/* An upgrade installs a program that hangs at start (a lock, a lookup that
 * never returns): it neither writes its word to the guard nor dies. Before
 * the fix the guard waited for ever: nobody served the mount again, every
 * call on it hung (unkillable but for SIGKILL). Now the guard gives the new
 * program RINGDEVD_GUARD_TIMEOUT_MS (here 1 s), kills it and runs the old
 * program: every byte, handle and waiting read carries over. */
Test(attack_restart_conc, guard_takes_over_from_a_hung_new_program)
{
	/* Under valgrind's wrapper $RINGDEVD is a script that finds its
	 * suppressions beside itself: a copy of it cannot start. */
	if (getenv("RINGDEV_VALGRIND_LOGS"))
		cr_skip_test("the program copy needs the real binary, not valgrind's wrapper");
	prctl(PR_SET_CHILD_SUBREAPER, 1); /* the guard's daemon ends up ours */
	char dir[] = "/tmp/rd-hang.XXXXXX", bin[128], cmd[512];
	cr_assert(mkdtemp(dir));
	snprintf(bin, sizeof(bin), "%s/ringdevd", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", getenv("RINGDEVD"), bin);
	cr_assert_eq(rd_sh(cmd), 0);
	setenv("RINGDEVD", bin, 1);
	setenv("RINGDEVD_GUARD_TIMEOUT_MS", "1000", 1);
	struct rd_daemon *d = rd_start(NULL);

	int w = rd_create(d, "keep", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	unsigned char data[4096];
	rd_pattern(data, keep_len, 20, 0);
	rd_write_ok(w, data, keep_len);
	int r = rd_create(d, "wait", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	struct rd_io *io = rd_io_new(r, RD_IO_READ, 16);
	rd_io_start(io);
	rd_wait_parked(d, 1, 0);

	/* The new program at the daemon's path: one that hangs. */
	snprintf(cmd, sizeof(cmd), "printf '#!/bin/sh\\nexec sleep 600\\n' > %s/new && chmod +x %s/new && mv %s/new %s",
		 dir, dir, dir, bin);
	cr_assert_eq(rd_sh(cmd), 0);
	pid_t old = d->pid;
	cr_assert_eq(kill(old, SIGHUP), 0);
	pid_t guard = 0;
	uint64_t t0 = mono_ms();
	while (!(guard = first_child(old)) && mono_ms() - t0 < RD_START_TIMEOUT_MS)
		usleep(1000);
	cr_assert(guard > 0, "no guard was forked");

	/* Someone must serve again, well within the guard's limit plus a start. */
	pid_t reader = rd_spawn(read_kept, d, -1);
	int status;
	bool ended = rd_wait_child(reader, 10000, &status);
	if (!ended) {
		kill(reader, SIGKILL);
		kill(old, SIGKILL); /* the hung program: let the test end */
		rd_wait_child(reader, 5000, &status);
		rd_log_tail(d, 10);
		kill(guard, SIGTERM);
		cr_assert_fail("nobody serves the mount 10 s after a SIGHUP to a program that hangs");
	}
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the kept bytes: helper status %#x", status);

	/* The read that waited before the SIGHUP is answered by the old program. */
	int w2 = rd_open_ok(d, "wait", O_WRONLY);
	rd_write_ok(w2, "wake", 4);
	rd_io_join(io);
	cr_expect_eq(io->ret, 4, "the parked read: %zd (%s)", io->ret, rd_errname(io->err));
	close(w2);
	close(w);
	close(r);
	struct ringdev_stats s = rd_stats(d);
	cr_expect_eq(s.parked_total, 0);

	/* The guard is the daemon now: stop it (it unmounts), then the harness cleans up. */
	cr_assert_eq(kill(guard, SIGTERM), 0);
	t0 = mono_ms();
	while (waitpid(guard, &status, WNOHANG) != guard) {
		cr_assert(mono_ms() - t0 < RD_STOP_TIMEOUT_MS, "the guard's daemon does not stop");
		usleep(1000);
	}
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the guard's daemon: status %#x", status);
	rd_stop(d);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	rd_sh(cmd);
}

/* ---- SIGHUP storms under load: every byte, every waiting call ---- */

#define STORM_PIPES 3

struct storm {
	const struct rd_daemon *d;
	volatile int stop;
	uint64_t written[STORM_PIPES], read[STORM_PIPES];
	uint64_t eintr, bad;
};

struct storm_arg {
	struct storm *st;
	int p;                      /* the pipe: s<p> */
};

static void storm_usr1(int sig)
{
	(void)sig;
}

static void storm_signals(void)
{
	struct sigaction sa = { .sa_handler = storm_usr1 }; /* no SA_RESTART: calls end with EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

static uint64_t xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* Writes of 1 byte to 300 KiB (more than one FUSE piece, more than the
 * ring), positions checked by the reader. */
static int storm_writer(void *arg)
{
	const struct storm_arg *a = arg;
	struct storm *st = a->st;
	int p = a->p;
	storm_signals();
	char name[16];
	snprintf(name, sizeof(name), "s%d", p);
	int fd = rd_open(st->d, name, O_WRONLY, 0);
	if (fd < 0)
		return 10;
	static unsigned char buf[300 * 1024];
	uint64_t seed = 0x9e3779b97f4a7c15ull + (uint64_t)p, pos = 0;
	while (!st->stop) {
		size_t n = 1 + xorshift(&seed) % ((xorshift(&seed) & 3) ? 5000 : sizeof(buf));
		rd_pattern(buf, n, 100 + (uint64_t)p, pos);
		ssize_t r = write(fd, buf, n);
		if (r < 0 && errno == EINTR) {
			__atomic_add_fetch(&st->eintr, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (r < 0)
			return 11;
		pos += (uint64_t)r;
	}
	st->written[p] = pos;
	close(fd);
	return 0;
}

static int storm_reader(void *arg)
{
	const struct storm_arg *a = arg;
	struct storm *st = a->st;
	int p = a->p;
	storm_signals();
	char name[16];
	snprintf(name, sizeof(name), "s%d", p);
	int fd = rd_open(st->d, name, O_RDONLY, 0);
	if (fd < 0)
		return 10;
	static unsigned char buf[300 * 1024], want[300 * 1024];
	uint64_t seed = 0xabcdef12345ull + (uint64_t)p, pos = 0;
	for (;;) {
		size_t n = 1 + xorshift(&seed) % ((xorshift(&seed) & 3) ? 5000 : sizeof(buf));
		ssize_t r = read(fd, buf, n);
		if (r < 0 && errno == EINTR) {
			__atomic_add_fetch(&st->eintr, 1, __ATOMIC_RELAXED);
			continue;
		}
		if (r < 0)
			return 11;
		if (r == 0)
			break;
		rd_pattern(want, (size_t)r, 100 + (uint64_t)p, pos);
		if (memcmp(buf, want, (size_t)r)) {
			__atomic_add_fetch(&st->bad, 1, __ATOMIC_RELAXED);
			st->read[p] = pos;
			return 12;
		}
		pos += (uint64_t)r;
	}
	st->read[p] = pos;
	close(fd);
	return 0;
}

/* Polls that begin before a SIGHUP and are woken after it. */
static int storm_poller(void *arg)
{
	struct storm *st = arg;
	storm_signals();
	int fd = rd_open(st->d, "poll", O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return 10;
	while (!st->stop) {
		struct pollfd pf = { .fd = fd, .events = POLLIN };
		int k = poll(&pf, 1, 5000);
		if (k < 0 && errno == EINTR)
			continue;
		if (k != 1)
			return 13; /* a write came and the poll was not woken */
		char b[64];
		while (read(fd, b, sizeof(b)) > 0) {
		}
	}
	close(fd);
	return 0;
}

static void sighup_storm(const char *threads)
{
	const char *args[] = { "--threads", threads, NULL };
	struct rd_daemon *d = rd_start(args);
	struct storm *st = rd_shared(sizeof(*st));
	st->d = d;
	int keep[STORM_PIPES + 1];
	for (int p = 0; p < STORM_PIPES; p++) {
		char name[16];
		snprintf(name, sizeof(name), "s%d", p);
		keep[p] = rd_create(d, name, O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 128 * 1024);
	}
	keep[STORM_PIPES] = rd_create(d, "poll", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	pid_t kids[2 * STORM_PIPES + 1];
	struct storm_arg a[STORM_PIPES];
	for (int p = 0; p < STORM_PIPES; p++) {
		a[p] = (struct storm_arg){ st, p };
		kids[2 * p] = rd_spawn(storm_reader, &a[p], -1);
		kids[2 * p + 1] = rd_spawn(storm_writer, &a[p], -1);
	}
	kids[2 * STORM_PIPES] = rd_spawn(storm_poller, st, -1);
	/* Every helper opened its handles: the pipes live on without ours. */
	rd_wait_opens(d, 2 * STORM_PIPES + 1 + STORM_PIPES + 1);
	for (int p = 0; p <= STORM_PIPES; p++)
		if (p < STORM_PIPES)
			rd_close(d, keep[p]);

	uint64_t seed = 42, t0 = mono_ms();
	unsigned hups = 0;
	/* Under valgrind each handover starts a new valgrind: a few suffice. */
	unsigned rounds = getenv("RINGDEV_VALGRIND_LOGS") ? 4 : rd_daemon_instrumented() ? 20 : 120;
	while (hups < rounds && mono_ms() - t0 < 20000) {
		pid_t k = kids[xorshift(&seed) % (2 * STORM_PIPES)];
		switch (hups % 3) {
		case 0:
			kill(k, SIGUSR1);
			kill(d->pid, SIGHUP);
			break;
		case 1:
			kill(d->pid, SIGHUP);
			kill(k, SIGUSR1);
			break;
		default:
			kill(d->pid, SIGHUP);
			usleep((useconds_t)(xorshift(&seed) % 3000));
			kill(k, SIGUSR1);
		}
		if (hups % 4 == 0)
			cr_assert_eq(write(keep[STORM_PIPES], "p", 1), 1);
		hups++;
		usleep(15000);
	}
	st->stop = 1;
	cr_assert_eq(write(keep[STORM_PIPES], "p", 1), 1); /* the poller sees stop */
	for (int i = 0; i <= 2 * STORM_PIPES; i++) {
		int code = rd_join_within(kids[i], 60000);
		cr_expect_eq(code, 0, "helper %d exited %d", i, code);
	}
	for (int p = 0; p < STORM_PIPES; p++)
		cr_expect_eq(st->written[p], st->read[p], "pipe s%d: %llu bytes written, %llu read", p,
			     (unsigned long long)st->written[p], (unsigned long long)st->read[p]);
	cr_expect_eq(st->bad, 0, "bytes read are not the bytes written");
	struct ringdev_stats_ext x;
	cr_assert_eq(ioctl(keep[STORM_PIPES], RINGDEV_IOC_STATS_EXT, &x), 0);
	close(keep[STORM_PIPES]);
	cr_log_info("%u SIGHUPs, %llu restarts, %llu calls interrupted", hups, (unsigned long long)x.restarts,
		    (unsigned long long)st->eintr);
	cr_expect_gt(x.restarts, 0);
	rd_end(d); /* nothing parked, exits 0 */
}

/* One serving thread: the handover is taken between two requests of it. */
Test(attack_restart_conc, sighup_storm_one_thread_keeps_every_byte)
{
	sighup_storm("1");
}

Test(attack_restart_conc, sighup_storm_eight_threads_keeps_every_byte)
{
	/* Eight threads under valgrind with a new valgrind per handover do
	 * not finish in the suite's time; the one-thread storm runs there. */
	if (getenv("RINGDEV_VALGRIND_LOGS"))
		cr_skip_test("eight serving threads under valgrind: the one-thread storm covers it there");
	sighup_storm("8");
}

/* ---- signals under a load that never pauses ---- */

struct busy {
	const struct rd_daemon *d;
	volatile int stop;
};

/* One of many clients that keep a request always waiting for the daemon. */
static int busy_client(void *arg)
{
	struct busy *b = arg;
	int fd = rd_open(b->d, "busy", O_RDONLY | O_NONBLOCK, 0);
	if (fd < 0)
		return 10;
	struct ringdev_stats s;
	while (!b->stop)
		if (ioctl(fd, RINGDEV_IOC_STATS, &s) < 0)
			break; /* the daemon is gone: what the test checks is its exit */
	return 0;
}

/* epoll_pwait delivers the signals it unblocks only when it returns no
 * event. With one serving thread that polls (--busy-poll) and 32 clients
 * that always have a request ready, it always returned events: before the
 * fix a SIGHUP was taken only when the load happened to pause (after 1 to
 * 2 s here, never under ThreadSanitizer's slower daemon) and a SIGTERM not
 * within 10 s, so the harness had to SIGKILL the daemon: an upgrade blocked
 * and a stop that loses every pipe. */
Test(attack_restart_conc, sighup_and_sigterm_are_taken_under_a_load_that_never_pauses)
{
	/* Under valgrind every handover starts a new valgrind (seconds), which
	 * 32 spinning clients then keep from ever settling: the native and
	 * sanitizer runs check the signals. */
	if (getenv("RINGDEV_VALGRIND_LOGS"))
		cr_skip_test("a handover under valgrind takes seconds; the load never lets it settle");
	const char *args[] = { "--threads", "1", "--busy-poll", "1000", NULL };
	struct rd_daemon *d = rd_start(args);
	int keep = rd_create(d, "busy", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	struct busy *b = rd_shared(sizeof(*b));
	b->d = d;
	enum { CLIENTS = 32 };
	pid_t kids[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		kids[i] = rd_spawn(busy_client, b, -1);
	usleep(300000); /* the clients are spinning */
	/* The load here pauses now and then (the clients share two CPUs with
	 * the daemon): without the fix the signals got in after 1 to 10 s.
	 * With it they are taken at the next batch of requests: a few ms.
	 * The limit is far above that, and far below the pauses. In the VM's
	 * emulated CPU (CUSE) a handover alone takes 0.5 to 1.5 s. */
	const uint64_t limit_ms = rd_daemon_instrumented() || d->cuse ? 5000 : 500;

	struct ringdev_stats_ext x;
	cr_assert_eq(ioctl(keep, RINGDEV_IOC_STATS_EXT, &x), 0);
	uint64_t before = x.restarts, t0 = mono_ms();
	cr_assert_eq(kill(d->pid, SIGHUP), 0);
	do {
		cr_assert_eq(ioctl(keep, RINGDEV_IOC_STATS_EXT, &x), 0);
		if (x.restarts > before)
			break;
		usleep(2000);
	} while (mono_ms() - t0 < 10000);
	uint64_t hup_ms = mono_ms() - t0;
	cr_log_info("SIGHUP taken after %llu ms", (unsigned long long)hup_ms);
	cr_expect_gt(x.restarts, before, "no restart 10 s after a SIGHUP to a busy daemon");
	cr_expect_lt(hup_ms, limit_ms, "a SIGHUP to a busy daemon waited %llu ms", (unsigned long long)hup_ms);

	/* SIGTERM while they still spin: a clean exit, not the harness's SIGKILL. */
	close(keep);
	t0 = mono_ms();
	int status = rd_stop(d);
	uint64_t term_ms = mono_ms() - t0;
	cr_log_info("SIGTERM taken after %llu ms", (unsigned long long)term_ms);
	cr_expect_lt(term_ms, limit_ms, "a SIGTERM to a busy daemon waited %llu ms", (unsigned long long)term_ms);
	b->stop = 1;
	for (int i = 0; i < CLIENTS; i++)
		rd_join(kids[i]);
	cr_assert_eq(status, 0, "ringdevd under load: status %d on SIGTERM (137: it had to be killed)", status);
}

struct plain_busy {
	char path[300];
	volatile int stop;
};

static int plain_busy_client(void *arg)
{
	struct plain_busy *b = arg;
	int fd = open(b->path, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return 10;
	struct ringdev_stats s;
	while (!b->stop)
		if (ioctl(fd, RINGDEV_IOC_STATS, &s) < 0)
			break;
	return 0;
}

static int one_stats(void *arg)
{
	struct plain_busy *b = arg;
	int fd = open(b->path, O_RDONLY | O_NONBLOCK);
	struct ringdev_stats s;
	return fd >= 0 && ioctl(fd, RINGDEV_IOC_STATS, &s) == 0 ? 0 : 1;
}

/* The signals the serving thread takes are picked up after a busy
 * epoll_pwait too (the test above). A daemon started as a shell's
 * background job ignores SIGINT, and a SIGINT that comes while the thread
 * serves is pending all the same (blocked signals are never discarded):
 * taking it with sigsuspend, as a first version of that fix did, dropped
 * it and then waited for another signal for ever, the daemon answering
 * nothing. It must serve on. */
Test(attack_restart_conc, an_ignored_sigint_under_load_does_not_stall_the_daemon)
{
	if (rd_fuse_only("a daemon started without the harness"))
		return;
	char dir[] = "/tmp/rd-intign.XXXXXX", mnt[128], log[128], cmd[256];
	cr_assert(mkdtemp(dir));
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	pid_t pid = spawn_daemon_with(mnt, log, true, "1", "1000");
	uint64_t t0 = mono_ms();
	struct plain_busy *b = rd_shared(sizeof(*b));
	snprintf(b->path, sizeof(b->path), "%s/busy", mnt);
	int keep = -1;
	while (keep < 0 && mono_ms() - t0 < RD_START_TIMEOUT_MS) {
		if (rd_is_mounted(mnt))
			keep = open(b->path, O_RDWR | O_CREAT | O_NONBLOCK, 0600);
		if (keep < 0)
			usleep(5000);
	}
	cr_assert(keep >= 0, "the daemon does not serve: %s", strerror(errno));
	enum { CLIENTS = 16 };
	pid_t kids[CLIENTS];
	for (int i = 0; i < CLIENTS; i++)
		kids[i] = rd_spawn(plain_busy_client, b, -1);
	usleep(200000);
	for (int i = 0; i < 5; i++) {
		kill(pid, SIGINT);
		usleep(10000);
	}
	usleep(100000);
	pid_t probe = rd_spawn(one_stats, b, -1);
	int status;
	bool answered = rd_wait_child(probe, 5000, &status);
	b->stop = 1;
	if (!answered)
		kill(probe, SIGKILL);
	kill(pid, SIGTERM);
	t0 = mono_ms();
	int dstatus = 0;
	while (waitpid(pid, &dstatus, WNOHANG) != pid && mono_ms() - t0 < RD_STOP_TIMEOUT_MS)
		usleep(2000);
	if (mono_ms() - t0 >= RD_STOP_TIMEOUT_MS) {
		kill(pid, SIGKILL);
		waitpid(pid, &dstatus, 0);
	}
	for (int i = 0; i < CLIENTS; i++)
		rd_join(kids[i]);
	if (!answered)
		rd_wait_child(probe, 5000, &status);
	close(keep);
	if (rd_is_mounted(mnt))
		umount2(mnt, MNT_DETACH);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	rd_sh(cmd);
	cr_assert(answered, "the daemon answered nothing for 5 s after an ignored SIGINT under load");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the probe's ioctl failed");
	cr_expect(WIFEXITED(dstatus) && WEXITSTATUS(dstatus) == 0, "ringdevd's exit status %#x", dstatus);
}
