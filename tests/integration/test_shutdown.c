/* SPDX-License-Identifier: MIT */
/*
 * test_shutdown.c - the daemon's end and restart: SIGTERM/SIGINT with parked
 * readers and writers answers them (ESHUTDOWN on the FUSE mount), nothing
 * hangs, the daemon exits 0 and the mount is gone; a daemon killed with
 * SIGKILL leaves a stale mount that the next start cleans up; a second
 * daemon on a live mount and bad command lines are refused with exit codes
 * 1 and 2.
 *
 * These tests end the daemon themselves, so they cannot finish with
 * rd_assert_idle on it; they check instead that every parked caller got its
 * answer.
 */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

RD_SUITE(shutdown, 60);

#define CAP 4096u

/* ESHUTDOWN is the daemon's answer.  On a CUSE node the kernel may answer a
 * request itself once the device is gone (facts.md: ENODEV, ENOTCONN,
 * ECONNABORTED); the FUSE mount must give ESHUTDOWN. */
static void assert_shutdown_error(const struct rd_daemon *d, const struct rd_io *io, const char *what)
{
	cr_assert_eq(io->ret, -1, "%s at shutdown: expected -1, got %zd", what, io->ret);
	if (d->cuse)
		cr_assert(io->err == ESHUTDOWN || io->err == ENODEV || io->err == ENOTCONN ||
				  io->err == ECONNABORTED,
			  "%s at shutdown: expected ESHUTDOWN (or ENODEV/ENOTCONN/ECONNABORTED on CUSE), got %s",
			  what, rd_errname(io->err));
	else
		cr_assert_eq(io->err, ESHUTDOWN, "%s at shutdown: expected ESHUTDOWN, got %s", what,
			     rd_errname(io->err));
}

static void *poll_main(void *arg)
{
	struct pollfd *p = arg;

	p->revents = 0;
	if (poll(p, 1, 10000) <= 0)
		p->events = -1; /* timed out or failed: marks "not woken" */
	return NULL;
}

static void shutdown_with_parked_requests(int sig)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "R", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	int r2 = rd_open_ok(d, "R", O_RDONLY);
	int w = rd_create(d, "W", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int pr = rd_create(d, "P", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	static unsigned char fill[CAP];
	struct rd_io *reader = rd_io_new(r, RD_IO_READ, 100);
	struct rd_io *reader2 = rd_io_new(r2, RD_IO_READ, 100);
	struct rd_io *writer = rd_io_new(w, RD_IO_WRITE, 100);
	struct pollfd pfd = { .fd = pr, .events = POLLIN };
	struct timespec limit;
	pthread_t poller;
	uint64_t pollers = rd_stats(d).pollers;
	int status;

	rd_write_ok(w, fill, CAP);
	rd_io_start(reader);
	rd_io_start(reader2);
	rd_io_start(writer);
	rd_wait_parked(d, 2, 1);
	cr_assert_eq(pthread_create(&poller, NULL, poll_main, &pfd), 0, "pthread_create");
	rd_wait_pollers(d, pollers + 1);

	status = rd_kill(d, sig);
	cr_assert_eq(status, 0, "ringdevd exit code after signal %d: expected 0, got %d", sig, status);
	if (d->cuse)
		cr_assert_neq(access(d->device, F_OK), 0, "%s removed", d->device);
	else
		cr_assert(!rd_is_mounted(d->mount), "the mount %s is removed at shutdown", d->mount);

	rd_io_join(reader);
	rd_io_join(reader2);
	rd_io_join(writer);
	assert_shutdown_error(d, reader, "parked read");
	assert_shutdown_error(d, reader2, "second parked read");
	assert_shutdown_error(d, writer, "parked write");
	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 20;
	cr_assert_eq(pthread_timedjoin_np(poller, NULL, &limit), 0, "the poller returned");
	cr_assert_neq(pfd.events, -1, "a pending poll wakes up at shutdown");

	close(pr);
	close(w);
	close(r2);
	close(r);
	rd_stop(d);
}

Test(shutdown, sigterm_answers_parked_requests_and_unmounts)
{
	shutdown_with_parked_requests(SIGTERM);
}

Test(shutdown, sigint_too)
{
	shutdown_with_parked_requests(SIGINT);
}

Test(shutdown, idle_daemon_exits_0)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Left", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);

	/* A pipe with unread data and a closed handle at exit: no matter. */
	rd_write_ok(fd, "unread", 6);
	rd_close(d, fd);
	rd_end(d);
}

Test(shutdown, restart_after_sigkill_cleans_a_stale_mount)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Before", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	struct stat sb;
	char buf[8];

	rd_kill(d, SIGKILL);
	close(fd);
	if (!d->cuse) {
		cr_assert(rd_is_mounted(d->mount), "a killed daemon leaves its mount behind");
		errno = 0;
		cr_assert(stat(d->mount, &sb) != 0 && errno == ENOTCONN,
			  "the stale mount answers ENOTCONN (got %s)", rd_errname(errno));
	}
	rd_restart(d);
	rd_assert_errno(rd_open(d, "Before", O_RDONLY, 0), ENOENT, "a new daemon starts empty");
	fd = rd_create(d, "After", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	rd_write_ok(fd, "works", 5);
	rd_read_ok(fd, buf, sizeof(buf), 5);
	close(fd);
	rd_end(d);
}

Test(shutdown, refuses_a_live_mount_and_bad_command_lines)
{
	struct rd_daemon *d = rd_start(NULL);
	const char *const bad_frontend[] = { "--frontend=bogus", NULL };
	const char *const bad_size[] = { "--ring-size", "12Q", NULL };
	const char *const bad_option[] = { "--no-such-option", NULL };
	const char *const bad_numbers[][3] = { { "--threads", "0", NULL },     { "--threads", "65", NULL },
					       { "--threads", "2x", NULL },    { "--busy-poll", "1001", NULL },
					       { "--busy-poll", "-1", NULL }, { "--busy-poll", "5us", NULL } };
	int code;

	code = rd_start_expect_exit(d, NULL);
	cr_assert_eq(code, 1, "a second daemon at the same %s: expected exit 1, got %d",
		     d->cuse ? "name" : "mount", code);
	code = rd_start_expect_exit(d, bad_frontend);
	cr_assert_eq(code, 2, "--frontend=bogus: expected exit 2 (usage), got %d", code);
	code = rd_start_expect_exit(d, bad_size);
	cr_assert_eq(code, 2, "--ring-size 12Q: expected exit 2 (usage), got %d", code);
	code = rd_start_expect_exit(d, bad_option);
	cr_assert_eq(code, 2, "an unknown option: expected exit 2 (usage), got %d", code);
	for (size_t i = 0; i < sizeof(bad_numbers) / sizeof(bad_numbers[0]); i++) {
		code = rd_start_expect_exit(d, bad_numbers[i]);
		cr_assert_eq(code, 2, "%s %s: expected exit 2 (usage), got %d", bad_numbers[i][0], bad_numbers[i][1],
			     code);
	}

	/* The first daemon is unharmed. */
	{
		int fd = rd_create(d, "Still", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
		char buf[8];

		rd_write_ok(fd, "ok", 2);
		rd_read_ok(fd, buf, sizeof(buf), 2);
		close(fd);
	}
	rd_end(d);
}

/* The CPU time (user + system, in clock ticks) the daemon has used. */
static unsigned long long daemon_ticks(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long utime = 0, stime = 0;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	cr_assert_gt(n, 0, "read %s", path);
	buf[n] = '\0';
	const char *p = strrchr(buf, ')'); /* the command may hold spaces */
	cr_assert_not_null(p, "%s: no ')'", path);
	/* After ") ": state(3) ... utime(14) stime(15). */
	cr_assert_eq(sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime), 2,
		     "%s: no utime and stime", path);
	return utime + stime;
}

/* --busy-poll: a thread polls only within USEC of its last request, so a
 * daemon that served a burst and then has nothing to do uses no CPU time,
 * even at the longest window (a window that never ended would burn a CPU:
 * about 100 ticks a second). With --busy-poll 0 it serves as well. */
Test(shutdown, busy_poll_ends_when_requests_stop)
{
	const char *const poll_max[] = { "--busy-poll", "1000", NULL };
	const char *const poll_off[] = { "--busy-poll", "0", NULL };
	const char *const *args[] = { poll_max, poll_off };
	for (size_t k = 0; k < 2; k++) {
		struct rd_daemon *d = rd_start(args[k]);
		int fd = rd_create(d, "Burst", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
		char buf[64];
		memset(buf, 'b', sizeof(buf));
		for (int i = 0; i < 500; i++) {
			rd_write_ok(fd, buf, sizeof(buf));
			rd_read_ok(fd, buf, sizeof(buf), sizeof(buf));
		}
		usleep(100 * 1000); /* far past any window */
		unsigned long long before = daemon_ticks(d->pid);
		usleep(1000 * 1000);
		unsigned long long used = daemon_ticks(d->pid) - before;
		long hz = sysconf(_SC_CLK_TCK);
		cr_assert_leq(used, (unsigned long long)(hz / 20),
			      "--busy-poll %s: an idle daemon used %llu ticks of CPU in 1 s (at most %ld allowed)",
			      args[k][1], used, hz / 20);
		rd_close(d, fd);
		rd_assert_idle(d);
		rd_end(d);
	}
}


/* SIGTERM as soon as the mount is there: the daemon may not have reached
 * its serving loop yet (the --user drop, the ready notice come first), and
 * a stop that came before the loop must not wait for a first request. */
Test(shutdown, sigterm_as_the_mount_appears_ends_the_daemon, .timeout = 180)
{
	if (rd_fuse_only("the mount's appearance marks the moment"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	const char *bin = getenv("RINGDEVD");
	bool drop = geteuid() == 0;
	/* A start under valgrind or TSan takes seconds. */
	const int rounds = rd_daemon_instrumented() ? 4 : 20;

	cr_assert_eq(rd_kill(d, SIGTERM), 0, "the lending daemon exits 0");
	if (drop)
		chmod(d->dir, 0755); /* nobody reaches the mount point */
	for (int round = 0; round < rounds; round++) {
		pid_t pid = fork();
		cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
		if (pid == 0) {
			int fd = open(d->log, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
			/* Every other round drops to nobody: a longer way from
			 * the mount to the loop. */
			if (drop && round % 2)
				execl(bin, bin, "-f", "--frontend=fuse", "--mount", d->mount, "--user", "nobody",
				      (char *)NULL);
			else
				execl(bin, bin, "-f", "--frontend=fuse", "--mount", d->mount, (char *)NULL);
			_exit(127);
		}
		uint64_t until = rd_now_ms() + RD_START_TIMEOUT_MS;
		int status;
		while (!rd_is_mounted(d->mount) && rd_now_ms() < until && !rd_wait_child(pid, 0, &status))
			;
		kill(pid, SIGTERM);
		bool exited = rd_wait_child(pid, RD_STOP_TIMEOUT_MS, &status);
		if (!exited) {
			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
		}
		if (rd_is_mounted(d->mount))
			umount2(d->mount, MNT_DETACH);
		cr_assert(exited, "round %d: ringdevd did not end within %d ms of a SIGTERM as its mount appeared",
			  round, RD_STOP_TIMEOUT_MS);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: it exits 0 (status %#x)", round,
			  status);
	}
	rd_stop(d);
}

/* Without -f the process started forks the daemon and exits once it is set
 * up. A SIGTERM sent to it before then (it still runs: the pid a launcher
 * knows) is held back like every stop signal during start-up, so it must be
 * handed on to the daemon, not end with the process that got it. */
Test(shutdown, sigterm_to_the_starting_process_reaches_the_daemon, .timeout = 180)
{
	if (rd_fuse_only("the mount's appearance marks the moment"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	const char *bin = getenv("RINGDEVD");
	int counted = 0;
	const int rounds = rd_daemon_instrumented() ? 4 : 20;

	cr_assert_eq(rd_kill(d, SIGTERM), 0, "the lending daemon exits 0");
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	for (int round = 0; round < rounds; round++) {
		pid_t first = fork();
		cr_assert_neq(first, -1, "fork: %s", strerror(errno));
		if (first == 0) {
			int fd = open(d->log, O_WRONLY | O_APPEND | O_CLOEXEC);
			if (fd >= 0) {
				dup2(fd, STDOUT_FILENO);
				dup2(fd, STDERR_FILENO);
			}
			execl(bin, bin, "--frontend=fuse", "--mount", d->mount, (char *)NULL);
			_exit(127);
		}
		uint64_t until = rd_now_ms() + RD_START_TIMEOUT_MS;
		siginfo_t si;
		bool alive = true;
		while (!rd_is_mounted(d->mount) && rd_now_ms() < until && alive) {
			si.si_pid = 0;
			alive = waitid(P_PID, (id_t)first, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0;
		}
		/* Only a signal that reached the first process while it ran counts. */
		si.si_pid = 0;
		bool sent = waitid(P_PID, (id_t)first, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == 0 &&
			    kill(first, SIGTERM) == 0;
		counted += sent;
		int status;
		cr_assert(rd_wait_child(first, RD_START_TIMEOUT_MS, &status), "round %d: the first process returns",
			  round);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: the first process exits 0 (%#x)",
			  round, status);
		/* The daemon, our child now (subreaper), ends by itself if the
		 * signal came before the first process exited; else we stop it. */
		if (!sent) {
			pid_t late = rd_find_daemon_child();
			if (late > 0)
				kill(late, SIGTERM);
		}
		until = rd_now_ms() + RD_STOP_TIMEOUT_MS;
		pid_t daemon = 0;
		while (rd_now_ms() < until && (daemon = waitpid(-1, &status, WNOHANG)) == 0)
			usleep(5000);
		if (daemon <= 0) {
			pid_t left = rd_find_daemon_child();
			if (left > 0) {
				kill(left, SIGKILL);
				waitpid(left, NULL, 0);
			}
			if (rd_is_mounted(d->mount))
				umount2(d->mount, MNT_DETACH);
			cr_assert_fail("round %d: the daemon did not end within %d ms of a SIGTERM to the process "
				       "that started it",
				       round, RD_STOP_TIMEOUT_MS);
		}
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "round %d: the daemon exits 0 (%#x)", round,
			  status);
		cr_assert(!rd_is_mounted(d->mount), "round %d: the mount is gone", round);
	}
	cr_log_info("%d of %d signals reached the first process while it ran", counted, rounds);
	rd_stop(d);
}
