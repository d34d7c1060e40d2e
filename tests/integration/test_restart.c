/* SPDX-License-Identifier: MIT */
/*
 * test_restart.c - ringdevd restarts and upgrades in place on SIGHUP (issue
 * 20, ringdevd(8) RESTARTING AND UPGRADING), and no app, broker or queued
 * byte notices.
 *
 * Every test starts the daemon from a copy of $RINGDEVD in a directory of
 * its own, so that it can put another program at that path between
 * restarts (rename(2), as a package manager does) and see, through
 * /proc/PID/exe, which file the daemon runs. A handover is over when the
 * daemon's RINGDEV_IOC_STATS_EXT counts it (the ioctl itself waits while no
 * image serves): the tests wait for that count, never for a time.
 *
 *  - five_restarts_in_a_row_lose_nothing: the main test, a checked
 *    stream, a parked read, a poll, messages, data with no handle, a
 *    persistent pipe with its settings and a broker holding a request and
 *    a parked TRANSACT, across five restarts and five new files.
 *  - a_newer_state_is_refused_and_the_old_program_serves_on: the upgrade
 *    to a daemon writing state version 2 works; the downgrade back to one
 *    that reads only version 1 is refused, and the version-2 program
 *    serves on in the same process.
 *  - a_new_program_that_crashes_leaves_the_guard_serving: a script that
 *    kills itself with SIGSEGV at the path; the guard (our child: the test
 *    is a subreaper) runs the old program and serves, and upgrades again.
 *  - a_program_that_cannot_run_leaves_the_old_one_serving: nothing at the
 *    path; the old image serves on, stops on SIGTERM, restarts later.
 *  - sighup_storms_and_sighup_then_sigterm: 40 SIGHUPs as fast as they go
 *    under a stream; then SIGHUP and SIGTERM at once: exit 0, no mount, no
 *    guard left.
 *  - restart_after_the_privilege_drop: --user 65534: still that user with
 *    no capabilities after each restart.
 *  - restarts_under_load: three checked streams, a restart every ~100 ms.
 *  - the_parent_death_signal_survives_a_restart: the harness's
 *    PR_SET_PDEATHSIG still ends a restarted daemon.
 */
#include "harness.h"

#include <dirent.h>
#include <poll.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

RD_SUITE(restart, 240);

#define RESTART_TIMEOUT_MS 20000 /* a handover is over (hang limit only) */
#define PROGRESS_TIMEOUT_MS 10000
#define RECORD_SIZE 64u

/* A device-specific ioctl the test's broker answers (see test_control.c). */
struct dev_small {
	uint32_t value;
	uint32_t pad;
	uint8_t bytes[56];
};
#define DEV_ECHO _IOWR(RINGDEV_IOC_MAGIC, 0x80, struct dev_small)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- the program file ------------------------------------------------------ */

/* The directory the daemon's program lives in for this test, and its path. */
struct program {
	char dir[RD_PATH_SIZE];
	char path[RD_PATH_SIZE + 16];
	char given[RD_PATH_SIZE];  /* the daemon the test was given */
};

static void copy_file(const char *src, const char *dst)
{
	char buf[65536];
	int in = open(src, O_RDONLY | O_CLOEXEC);
	int out;
	ssize_t n;

	cr_assert_geq(in, 0, "open %s: %s", src, strerror(errno));
	out = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	cr_assert_geq(out, 0, "create %s: %s", dst, strerror(errno));
	while ((n = read(in, buf, sizeof(buf))) > 0)
		cr_assert_eq(rd_write_all(out, buf, (size_t)n), n, "write %s: %s", dst, strerror(errno));
	cr_assert_eq(n, 0, "read %s: %s", src, strerror(errno));
	close(in);
	cr_assert_eq(fchmod(out, 0755), 0, "chmod %s: %s", dst, strerror(errno));
	cr_assert_eq(close(out), 0, "close %s: %s", dst, strerror(errno));
}

/* Put a copy of src (a fresh inode) at the program's path with rename(2),
 * as an upgrade does; the new file's inode. */
static ino_t program_install(const struct program *p, const char *src)
{
	char tmp[RD_PATH_SIZE + 16];
	struct stat st;

	snprintf(tmp, sizeof(tmp), "%s/.new", p->dir);
	copy_file(src, tmp);
	cr_assert_eq(rename(tmp, p->path), 0, "rename %s to %s: %s", tmp, p->path, strerror(errno));
	cr_assert_eq(stat(p->path, &st), 0, "stat %s: %s", p->path, strerror(errno));
	return st.st_ino;
}

/* The same with a file of these contents (a script). */
static ino_t program_install_text(const struct program *p, const char *text)
{
	char tmp[RD_PATH_SIZE + 16];
	struct stat st;
	int fd;

	snprintf(tmp, sizeof(tmp), "%s/.new", p->dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	cr_assert_geq(fd, 0, "create %s: %s", tmp, strerror(errno));
	rd_write_ok(fd, text, strlen(text));
	cr_assert_eq(close(fd), 0);
	cr_assert_eq(rename(tmp, p->path), 0, "rename %s to %s: %s", tmp, p->path, strerror(errno));
	cr_assert_eq(stat(p->path, &st), 0, "stat %s: %s", p->path, strerror(errno));
	return st.st_ino;
}

/* The daemon binary the test was given: $RINGDEVD, or under valgrind's
 * wrapper (scripts/analyze.sh) the program the wrapper runs. */
static const char *given_program(void)
{
	const char *real = getenv("RINGDEVD_REAL");

	return real && *real ? real : getenv("RINGDEVD");
}

/* A private directory with a copy of the daemon; from now on rd_start runs
 * that copy (the environment is this test's own: Criterion forks each). */
static ino_t program_setup(struct program *p)
{
	const char *tmp = getenv("TMPDIR");
	const char *given = given_program();
	ino_t ino;

	cr_assert(given && *given, "RINGDEVD is not set");
	snprintf(p->given, sizeof(p->given), "%s", given);
	snprintf(p->dir, sizeof(p->dir), "%s/ringdev-restart.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(p->dir), "mkdtemp %s: %s", p->dir, strerror(errno));
	/* --user: the daemon execs the file again as that user. */
	chmod(p->dir, 0755);
	snprintf(p->path, sizeof(p->path), "%s/ringdevd", p->dir);
	ino = program_install(p, given);
	setenv(getenv("RINGDEVD_REAL") && *getenv("RINGDEVD_REAL") ? "RINGDEVD_REAL" : "RINGDEVD", p->path, 1);
	return ino;
}

static void program_remove(struct program *p)
{
	unlink(p->path);
	rmdir(p->dir);
}

/* Under valgrind (scripts/analyze.sh) /proc/PID/exe is valgrind's tool,
 * not the program it runs: what file runs is then not checked. */
static bool exe_hidden(void)
{
	const char *v = getenv("RINGDEV_VALGRIND_LOGS");

	return v && *v;
}

/* The inode of the file process pid runs (it may have no name any more). */
static ino_t exe_ino(pid_t pid)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	return st.st_ino;
}

/* ---- handovers ------------------------------------------------------------- */

static struct ringdev_stats_ext stats_ext(int fd)
{
	struct ringdev_stats_ext x;

	memset(&x, 0, sizeof(x));
	cr_assert_eq(ioctl(fd, RINGDEV_IOC_STATS_EXT, &x), 0, "RINGDEV_IOC_STATS_EXT: %s", rd_errname(errno));
	return x;
}

/* The daemon must still be the process the test started. */
static void assert_running(struct rd_daemon *d)
{
	int status;
	pid_t r = waitpid(d->pid, &status, WNOHANG);

	if (r == d->pid) {
		d->running = false;
		d->status = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
		rd_log_tail(d, 30);
		cr_assert_fail("ringdevd %d ended (status %d) during a restart (log above)", (int)d->pid, d->status);
	}
}

/* Wait until the daemon counts `expect` restarts (fails on more, or on a
 * hang). fd: a handle kept for the counters. */
static void wait_restarts(struct rd_daemon *d, int fd, uint64_t expect)
{
	uint64_t deadline = now_ms() + RESTART_TIMEOUT_MS;
	uint64_t got;

	for (;;) {
		assert_running(d);
		got = stats_ext(fd).restarts;
		if (got >= expect || now_ms() >= deadline)
			break;
		pause_ms(2);
	}
	if (got != expect)
		rd_log_tail(d, 30);
	cr_assert_eq(got, expect, "restarts: %llu, expected %llu (log above)", (unsigned long long)got,
		     (unsigned long long)expect);
}

/* SIGHUP, and wait until the handover is counted. */
static void restart(struct rd_daemon *d, int fd, uint64_t expect)
{
	cr_assert_eq(kill(d->pid, SIGHUP), 0, "SIGHUP to ringdevd %d: %s", (int)d->pid, strerror(errno));
	wait_restarts(d, fd, expect);
}

static bool log_has(const struct rd_daemon *d, const char *what)
{
	char buf[65536];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	ssize_t n;
	bool found;

	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	found = strstr(buf, what) != NULL;
	return found;
}

/* ---- a checked stream -------------------------------------------------------- */

/* Sequence-numbered records: the sequence number, then bytes that follow
 * from it, so that a reader can check every byte it gets. */
static void record_make(uint64_t seed, uint64_t seq, uint8_t *out)
{
	memcpy(out, &seq, sizeof(seq));
	rd_pattern(out + sizeof(seq), RECORD_SIZE - sizeof(seq), seed, seq * RECORD_SIZE);
}

struct stream {
	int wfd, rfd;
	uint64_t seed;
	atomic_int stop;               /* the writer closes at the next record */
	_Atomic uint64_t written;      /* bytes */
	_Atomic uint64_t got;          /* bytes read and checked */
	int werr, rerr;
	int eof;
	uint64_t bad_at;               /* 1 + offset of the first wrong byte */
};

static int stream_writer(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[32 * RECORD_SIZE];
	uint64_t seq = 0;

	for (unsigned i = 0; !atomic_load(&s->stop); i++) {
		unsigned n = 1 + (i * 7) % 32;
		for (unsigned k = 0; k < n; k++)
			record_make(s->seed, seq + k, buf + k * RECORD_SIZE);
		if (rd_write_all(s->wfd, buf, n * RECORD_SIZE) < 0) {
			s->werr = errno;
			return 1;
		}
		seq += n;
		atomic_fetch_add(&s->written, (uint64_t)n * RECORD_SIZE);
	}
	close(s->wfd);
	return 0;
}

static int stream_reader(void *arg)
{
	struct stream *s = arg;
	uint8_t buf[8192], rec[RECORD_SIZE];
	uint64_t at = 0, rec_seq = UINT64_MAX;

	for (unsigned i = 0;; i++) {
		size_t want = 1 + (i * 613) % sizeof(buf);
		ssize_t n = read(s->rfd, buf, want);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			s->rerr = errno;
			return 1;
		}
		if (n == 0) {
			s->eof = 1;
			return 0;
		}
		for (ssize_t k = 0; k < n; k++, at++) {
			if (at / RECORD_SIZE != rec_seq) {
				rec_seq = at / RECORD_SIZE;
				record_make(s->seed, rec_seq, rec);
			}
			if (buf[k] != rec[at % RECORD_SIZE]) {
				s->bad_at = at + 1;
				return 1;
			}
		}
		atomic_fetch_add(&s->got, (uint64_t)n);
	}
}

/* A stream through pipe `name`: its writer and reader helpers run. */
static struct stream *stream_start(const struct rd_daemon *d, const char *name, uint64_t seed, pid_t pids[2])
{
	struct stream *s = rd_shared(sizeof(*s));

	s->seed = seed;
	s->wfd = rd_create(d, name, O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 16384);
	s->rfd = rd_open_ok(d, name, O_RDONLY);
	pids[0] = rd_spawn(stream_writer, s, s->wfd);
	pids[1] = rd_spawn(stream_reader, s, s->rfd);
	close(s->wfd);
	close(s->rfd);
	return s;
}

/* Wait until the reader has checked more than `from` bytes. */
static uint64_t stream_wait(struct stream *s, uint64_t from)
{
	uint64_t deadline = now_ms() + PROGRESS_TIMEOUT_MS;

	while (atomic_load(&s->got) <= from && now_ms() < deadline && !s->bad_at && !s->rerr && !s->werr)
		pause_ms(1);
	cr_assert(!s->bad_at, "stream %llu: byte %llu is wrong", (unsigned long long)s->seed,
		  (unsigned long long)(s->bad_at - 1));
	cr_assert(!s->rerr && !s->werr, "stream %llu: reader %s, writer %s", (unsigned long long)s->seed,
		  rd_errname(s->rerr), rd_errname(s->werr));
	cr_assert_gt(atomic_load(&s->got), from, "stream %llu: no progress past %llu bytes",
		     (unsigned long long)s->seed, (unsigned long long)from);
	return atomic_load(&s->got);
}

/* Stop the writer; the reader must get every byte, then EOF. */
static void stream_end(struct stream *s, pid_t pids[2])
{
	atomic_store(&s->stop, 1);
	cr_assert_eq(rd_join(pids[0]), 0, "stream %llu: writer failed: %s", (unsigned long long)s->seed,
		     rd_errname(s->werr));
	cr_assert_eq(rd_join(pids[1]), 0, "stream %llu: reader failed: %s, wrong byte at %lld",
		     (unsigned long long)s->seed, rd_errname(s->rerr), (long long)s->bad_at - 1);
	cr_assert(s->eof, "stream %llu: no EOF", (unsigned long long)s->seed);
	cr_assert_eq(atomic_load(&s->got), atomic_load(&s->written), "stream %llu: %llu bytes written, %llu read",
		     (unsigned long long)s->seed, (unsigned long long)atomic_load(&s->written),
		     (unsigned long long)atomic_load(&s->got));
}

/* ---- the test's broker and apps ------------------------------------------------ */

static bool broker_take(int fd, uint32_t type, struct ringdev_ctl_request *out)
{
	uint64_t deadline = now_ms() + RD_PARK_TIMEOUT_MS;
	struct ringdev_ctl_transact t;

	while (now_ms() < deadline) {
		cr_assert_eq(rd_transact(fd, NULL, 0, 1, 100, &t), 0, "TRANSACT: %s", rd_errname(errno));
		if (t.nrequests == 1 && t.requests[0].type == type) {
			*out = t.requests[0];
			return true;
		}
	}
	return false;
}

static void broker_answer(int fd, const struct ringdev_ctl_request *r, int32_t result, const void *data,
			  uint32_t size)
{
	struct ringdev_ctl_answer a;
	struct ringdev_ctl_transact t;

	memset(&a, 0, sizeof(a));
	a.id = r->id;
	a.result = result;
	if (size)
		memcpy(a.data, data, size);
	a.size = size;
	cr_assert_eq(rd_transact(fd, &a, 1, 0, 0, &t), 0, "TRANSACT with an answer: %s", rd_errname(errno));
	cr_assert(t.rejected == 0 && t.failed == 0, "the answer to request %llu: rejected %u failed %u",
		  (unsigned long long)r->id, t.rejected, t.failed);
}

/* An app's DEV_ECHO on a handle it was given. */
struct app {
	int fd;
	struct dev_small arg;
	long ret;
	int err;
};

static int app_main(void *arg)
{
	struct app *a = arg;

	a->ret = ioctl(a->fd, DEV_ECHO, &a->arg);
	a->err = a->ret < 0 ? errno : 0;
	return 0;
}

/* A broker thread of its own: one TRANSACT that parks until a request. */
struct transact_waiter {
	int fd;
	int err;
	struct ringdev_ctl_transact t;
};

static int transact_main(void *arg)
{
	struct transact_waiter *w = arg;

	w->err = rd_transact(w->fd, NULL, 0, 1, 60000, &w->t) < 0 ? errno : 0;
	return 0;
}

/* A poll on an empty pipe, with the time it may wait. */
struct poller {
	int fd;
	int ret;
	int err;
	short revents;
};

static int poller_main(void *arg)
{
	struct poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };

	p->ret = poll(&pfd, 1, 60000);
	p->err = p->ret < 0 ? errno : 0;
	p->revents = pfd.revents;
	return 0;
}

static struct ringdev_pipe_info pipe_by_name(int fd, const char *name)
{
	struct ringdev_pipe_info info;

	memset(&info, 0, sizeof(info));
	snprintf(info.name, sizeof(info.name), "%s", name);
	cr_assert_eq(ioctl(fd, RINGDEV_IOC_PIPE_BY_NAME, &info), 0, "RINGDEV_IOC_PIPE_BY_NAME %s: %s", name,
		     rd_errname(errno));
	return info;
}

/* ---- the tests ---------------------------------------------------------------- */

Test(restart, five_restarts_in_a_row_lose_nothing)
{
	static const char *const messages[] = { "one", "the second message", "3", "and the fourth" };
	static const char orphan[] = "unread, and no handle has it open";
	struct program prog;
	ino_t ino = program_setup(&prog);
	struct rd_daemon *d = rd_start(NULL);
	pid_t pid = d->pid;
	int sfd = rd_keep_stats(d);
	uint8_t buf[256];

	if (!exe_hidden())
		cr_assert_eq(exe_ino(pid), ino, "the daemon runs the copy it was started from");

	/* A read parked on an empty pipe (a writer is there: no EOF). */
	int empty_w = rd_create(d, "empty", O_WRONLY, 0, 0, 0);
	int empty_r = rd_open_ok(d, "empty", O_RDONLY);
	struct rd_io *io = rd_io_new(empty_r, RD_IO_READ, 100);
	rd_io_start(io);
	rd_wait_parked(d, 1, 0);

	/* A poll waiting on another empty pipe. */
	int polled_w = rd_create(d, "polled", O_WRONLY, 0, 0, 0);
	struct poller *pl = rd_shared(sizeof(*pl));
	pl->fd = rd_open_ok(d, "polled", O_RDONLY);
	pid_t poller = rd_spawn(poller_main, pl, pl->fd);
	rd_wait_pollers(d, 1);

	/* A message pipe with messages queued. */
	int msg_fd = rd_create(d, "msgs", O_RDWR, RINGDEV_KIND_MESSAGE, 0, 0);
	for (size_t i = 0; i < 4; i++)
		rd_write_ok(msg_fd, messages[i], strlen(messages[i]));

	/* A pipe with unread data and no handle. */
	int fd = rd_create(d, "orphan", O_WRONLY, 0, 0, 0);
	rd_write_ok(fd, orphan, sizeof(orphan));
	rd_close(d, fd);

	/* A persistent pipe with settings that are not the defaults. */
	struct ringdev_create c;
	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "kept");
	c.kind = RINGDEV_KIND_MESSAGE;
	c.policy = RINGDEV_POLICY_OVERWRITE;
	c.mode = 0640;
	c.capacity = 12288;
	cr_assert_eq(ioctl(sfd, RINGDEV_IOC_CREATE, &c), 0, "RINGDEV_IOC_CREATE kept: %s", rd_errname(errno));
	struct ringdev_pipe_info kept = pipe_by_name(sfd, "kept");

	/* The stream and the app's handle, opened before the broker is there
	 * (then every open would be the broker's to answer). */
	pid_t spids[2];
	struct stream *s = stream_start(d, "stream", 20, spids);
	int app_fd = rd_create(d, "dev", O_RDWR, 0, 0, 0);

	/* A broker holding an app's ioctl, and a TRANSACT of its parked. */
	int bfd = rd_ctl_open(d);
	cr_assert_geq(bfd, 0, "open the control node: %s", rd_errname(errno));
	struct app *app = rd_shared(sizeof(*app));
	app->fd = app_fd;
	app->arg.value = 0x2020;
	rd_pattern(app->arg.bytes, sizeof(app->arg.bytes), 7, 0);
	pid_t app_pid = rd_spawn(app_main, app, app_fd);
	struct ringdev_ctl_request held;
	cr_assert(broker_take(bfd, RINGDEV_CTL_IOCTL, &held), "the broker got no IOCTL");
	struct transact_waiter *tw = rd_shared(sizeof(*tw));
	tw->fd = bfd;
	pid_t tw_pid = rd_spawn(transact_main, tw, bfd);
	rd_wait_other(d, 2);

	/* Five restarts, each to a new file, each with the stream moving. */
	uint64_t got = stream_wait(s, 0);
	for (uint64_t i = 1; i <= 5; i++) {
		ino = program_install(&prog, prog.given);
		restart(d, sfd, i);
		cr_assert_eq(d->pid, pid);
		if (!exe_hidden())
			cr_assert_eq(exe_ino(pid), ino, "restart %llu: the daemon runs the new file", (unsigned long long)i);
		got = stream_wait(s, got);
	}

	/* Everything waiting still waits. */
	struct ringdev_stats st = rd_stats(d);
	cr_assert_eq(st.pollers, 1, "the poll is still pending after the restarts");
	cr_assert_eq(st.parked_other, 2, "the relayed ioctl and the TRANSACT still wait");
	cr_assert_eq(st.broker_connected, 1, "the broker is still connected");

	/* The broker answers what it held; the app gets the answer. */
	struct dev_small out;
	memset(&out, 0, sizeof(out));
	out.value = ~app->arg.value;
	broker_answer(bfd, &held, 7, &out, sizeof(out));
	cr_assert_eq(rd_join(app_pid), 0);
	cr_assert(app->ret == 7 && app->err == 0, "the held ioctl: %ld (%s), expected 7", app->ret,
		  rd_errname(app->err));
	cr_assert_eq(app->arg.value, out.value, "the held ioctl's out-payload");

	/* The TRANSACT parked before the restarts takes a new request. */
	app->arg.value = 0x2121;
	app_pid = rd_spawn(app_main, app, app_fd);
	cr_assert_eq(rd_join(tw_pid), 0);
	cr_assert_eq(tw->err, 0, "the parked TRANSACT: %s", rd_errname(tw->err));
	cr_assert(tw->t.nrequests == 1 && tw->t.requests[0].type == RINGDEV_CTL_IOCTL,
		  "the parked TRANSACT returned %u requests", tw->t.nrequests);
	broker_answer(bfd, &tw->t.requests[0], 8, NULL, 0);
	cr_assert_eq(rd_join(app_pid), 0);
	cr_assert(app->ret == 8 && app->err == 0, "the second ioctl: %ld (%s), expected 8", app->ret,
		  rd_errname(app->err));
	cr_assert_eq(close(bfd), 0);
	rd_wait_broker(d, 0);

	/* The parked read and the poll wake with what comes now. */
	rd_write_ok(empty_w, "wake", 4);
	rd_io_join(io);
	cr_assert(io->ret == 4 && memcmp(io->buf, "wake", 4) == 0, "the parked read: %zd (%s)", io->ret,
		  rd_errname(io->err));
	rd_write_ok(polled_w, "x", 1);
	cr_assert_eq(rd_join(poller), 0);
	cr_assert(pl->ret == 1 && (pl->revents & POLLIN), "the poll: %d revents %#x (%s)", pl->ret, pl->revents,
		  rd_errname(pl->err));

	/* The messages, whole and in order. */
	for (size_t i = 0; i < 4; i++) {
		rd_read_ok(msg_fd, buf, sizeof(buf), strlen(messages[i]));
		cr_assert_eq(memcmp(buf, messages[i], strlen(messages[i])), 0, "message %zu", i);
	}

	/* The pipe nobody had open, with its data. */
	fd = rd_open_ok(d, "orphan", O_RDONLY | O_NONBLOCK);
	rd_read_ok(fd, buf, sizeof(buf), sizeof(orphan));
	cr_assert_eq(memcmp(buf, orphan, sizeof(orphan)), 0, "the data of the pipe with no handle");
	rd_close(d, fd);

	/* The persistent pipe, settings and all. */
	struct ringdev_pipe_info k = pipe_by_name(sfd, "kept");
	cr_assert(k.kind == RINGDEV_KIND_MESSAGE && k.policy == RINGDEV_POLICY_OVERWRITE && k.mode == 0640 &&
			  k.capacity == 12288 && (k.flags & RINGDEV_PIPE_PERSISTENT) && k.ino == kept.ino,
		  "kept: kind %u policy %u mode %o capacity %llu flags %#x ino %llu", k.kind, k.policy, k.mode,
		  (unsigned long long)k.capacity, k.flags, (unsigned long long)k.ino);

	stream_end(s, spids);
	cr_assert_eq(stats_ext(sfd).restarts, 5);
	cr_assert_eq(d->pid, pid);
	close(empty_w);
	close(empty_r);
	close(polled_w);
	close(pl->fd);
	close(msg_fd);
	close(app_fd);
	rd_end(d);
	close(sfd);
	program_remove(&prog);
}

Test(restart, a_newer_state_is_refused_and_the_old_program_serves_on)
{
	const char *v2 = getenv("RINGDEVD_STATE_V2");
	struct program prog;

	if (!v2 || !*v2)
		cr_skip_test("RINGDEVD_STATE_V2 is not set (meson passes the path of ringdevd-state-v2)");
	program_setup(&prog);
	struct rd_daemon *d = rd_start(NULL);
	pid_t pid = d->pid;
	int sfd = rd_keep_stats(d);
	static const char data[] = "queued before any restart";
	uint8_t buf[128];

	int w = rd_create(d, "data", O_WRONLY, 0, 0, 0);
	int r = rd_open_ok(d, "data", O_RDONLY | O_NONBLOCK);
	rd_write_ok(w, data, sizeof(data));

	/* Upgrade: the version-2 daemon reads the version-1 state. */
	ino_t v2_ino = program_install(&prog, v2);
	restart(d, sfd, 1);
	if (!exe_hidden())
		cr_assert_eq(exe_ino(pid), v2_ino, "the upgraded daemon runs the version-2 file");
	cr_assert_eq(rd_nread(r).queued_bytes, sizeof(data), "the data went over to the version-2 daemon");

	/* Downgrade: version 1 refuses version 2's state; the version-2
	 * program takes it back (a handover of its own, counted). */
	program_install(&prog, prog.given);
	cr_assert_eq(kill(pid, SIGHUP), 0);
	uint64_t deadline = now_ms() + RESTART_TIMEOUT_MS;
	while (!log_has(d, "handover: refusing the state") && now_ms() < deadline) {
		assert_running(d);
		pause_ms(5);
	}
	cr_assert(log_has(d, "handover: refusing the state"), "no refusal in the log");
	wait_restarts(d, sfd, 2);
	cr_assert_eq(d->pid, pid);
	assert_running(d);
	if (!exe_hidden())
		cr_assert_eq(exe_ino(pid), v2_ino, "after the refusal the daemon runs the version-2 file again");
	rd_read_ok(r, buf, sizeof(buf), sizeof(data));
	cr_assert_eq(memcmp(buf, data, sizeof(data)), 0, "the data is intact");
	rd_write_ok(w, "more", 4);
	rd_read_ok(r, buf, sizeof(buf), 4);

	/* The program taken back upgrades from its path as before. */
	v2_ino = program_install(&prog, v2);
	restart(d, sfd, 3);
	if (!exe_hidden())
		cr_assert_eq(exe_ino(pid), v2_ino, "the next upgrade runs the file now at the path");
	rd_write_ok(w, "again", 5);
	rd_read_ok(r, buf, sizeof(buf), 5);
	close(w);
	close(r);
	rd_end(d);
	close(sfd);
	program_remove(&prog);
}

/* The children of this process that run the file with inode ino, but for
 * `not`: the guard that took over (it becomes ours: a subreaper). */
static pid_t find_child_running(ino_t ino, pid_t not)
{
	DIR *dir = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	cr_assert_not_null(dir);
	while ((e = readdir(dir)) && !found) {
		char path[300], line[512];
		pid_t p = (pid_t)atoi(e->d_name);
		int ppid = 0;
		struct stat st;
		FILE *f;

		if (p <= 0 || p == not)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", (int)p);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f)) {
			char *end = strrchr(line, ')');
			if (end)
				sscanf(end + 1, " %*c %d", &ppid);
		}
		fclose(f);
		snprintf(path, sizeof(path), "/proc/%d/exe", (int)p);
		if (ppid == getpid() && stat(path, &st) == 0 && (st.st_ino == ino || exe_hidden()))
			found = p;
	}
	closedir(dir);
	return found;
}

Test(restart, a_new_program_that_crashes_leaves_the_guard_serving)
{
	struct program prog;
	ino_t old;
	static const char data[] = "kept by the guard";
	uint8_t buf[128];
	int status;

	old = program_setup(&prog);
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	struct rd_daemon *d = rd_start(NULL);
	pid_t pid = d->pid;
	int sfd = rd_keep_stats(d);
	int w = rd_create(d, "data", O_WRONLY, 0, 0, 0);
	int r = rd_open_ok(d, "data", O_RDONLY | O_NONBLOCK);
	rd_write_ok(w, data, sizeof(data));

	program_install_text(&prog, "#!/bin/sh\nkill -SEGV $$\n");
	cr_assert_eq(kill(pid, SIGHUP), 0);
	cr_assert(rd_wait_child(pid, RESTART_TIMEOUT_MS, &status), "the crashing program did not end");
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV, "the new program ended with status %#x", status);

	/* The guard, now our child, runs the old program and serves. */
	uint64_t deadline = now_ms() + RESTART_TIMEOUT_MS;
	pid_t guard = 0;
	while (!(guard = find_child_running(old, pid)) && now_ms() < deadline)
		pause_ms(5);
	cr_assert_gt(guard, 0, "no process of the old program took over");
	d->pid = guard;
	struct ringdev_stats_ext x = stats_ext(sfd);
	if (!exe_hidden())
		cr_assert_eq(exe_ino(guard), old);
	rd_read_ok(r, buf, sizeof(buf), sizeof(data));
	cr_assert_eq(memcmp(buf, data, sizeof(data)), 0, "the data is intact");
	rd_write_ok(w, "more", 4);
	rd_read_ok(r, buf, sizeof(buf), 4);
	fprintf(stderr, "restart: the guard %d took over with restarts %llu\n", (int)guard,
		(unsigned long long)x.restarts);

	/* The program at the path works again: the new daemon restarts too. */
	ino_t ino = program_install(&prog, prog.given);
	restart(d, sfd, x.restarts + 1);
	if (!exe_hidden())
		cr_assert_eq(exe_ino(guard), ino);
	rd_write_ok(w, "again", 5);
	rd_read_ok(r, buf, sizeof(buf), 5);
	close(w);
	close(r);
	rd_end(d);
	close(sfd);
	program_remove(&prog);
}

/* No process of ours is left but the ones we know (a guard would be). */
static void assert_no_children(void)
{
	int status;
	pid_t p = waitpid(-1, &status, WNOHANG);

	cr_assert(p <= 0, "an unexpected child %d ended (status %#x)", (int)p, status);
	cr_assert(p == -1 && errno == ECHILD, "a process of ours still runs (a guard?)");
}

Test(restart, sighup_storms_and_sighup_then_sigterm)
{
	struct program prog;

	program_setup(&prog);
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	struct rd_daemon *d = rd_start(NULL);
	pid_t pid = d->pid;
	int sfd = rd_keep_stats(d);
	pid_t spids[2];
	struct stream *s = stream_start(d, "stream", 40, spids);
	uint64_t got = stream_wait(s, 0);

	/* Ten as fast as they go: signals coalesce; at least one handover
	 * (a SIGHUP that came during the first is taken by the new image:
	 * two, on a slow machine). */
	for (int i = 0; i < 10; i++)
		cr_assert_eq(kill(pid, SIGHUP), 0);
	uint64_t deadline = now_ms() + RESTART_TIMEOUT_MS;
	while (stats_ext(sfd).restarts < 1 && now_ms() < deadline) {
		assert_running(d);
		pause_ms(2);
	}
	cr_assert_geq(stats_ext(sfd).restarts, 1, "no restart after ten SIGHUPs");
	got = stream_wait(s, got);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 10; i++) {
			assert_running(d);
			kill(pid, SIGHUP);
		}
		got = stream_wait(s, got);
	}
	uint64_t n = stats_ext(sfd).restarts;
	cr_assert(n >= 1 && n <= 40, "restarts %llu after 40 SIGHUPs", (unsigned long long)n);
	stream_end(s, spids);
	cr_assert_eq(d->pid, pid);
	rd_assert_idle(d);
	/* Under valgrind's wrapper a handover takes seconds, and one from a
	 * coalesced SIGHUP may still be under way: let the count settle, so
	 * that the SIGTERM below does not fall into valgrind's own exec. */
	for (uint64_t seen = 0; exe_hidden() && seen != n;) {
		seen = n;
		pause_ms(4000);
		n = stats_ext(sfd).restarts;
	}
	close(sfd);

	/* SIGHUP, then SIGTERM at once: the daemon ends cleanly, and no guard
	 * is left holding the mount. (Under valgrind's wrapper the SIGTERM
	 * comes while valgrind starts the new image, which does not keep a
	 * pending signal across its own exec: only the native run checks it.) */
	if (!exe_hidden())
		kill(pid, SIGHUP);
	int status = rd_kill(d, SIGTERM);
	cr_assert_eq(status, 0, "ringdevd ended with %d on SIGTERM right after SIGHUP", status);
	if (!d->cuse)
		cr_assert(!rd_is_mounted(d->mount), "the mount is still there");
	assert_no_children();
	rd_stop(d);
	program_remove(&prog);
}

static void proc_status(pid_t pid, const char *key, char *out, size_t size)
{
	char path[64], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	out[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, strlen(key)) == 0 && line[strlen(key)] == ':') {
			char *v = line + strlen(key) + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			snprintf(out, size, "%s", v);
			break;
		}
	fclose(f);
	cr_assert(out[0], "%s: no %s", path, key);
}

static void assert_unprivileged(pid_t pid, const char *when)
{
	char v[128];

	proc_status(pid, "Uid", v, sizeof(v));
	cr_assert_str_eq(v, "65534\t65534\t65534\t65534", "%s: Uid %s", when, v);
	proc_status(pid, "Gid", v, sizeof(v));
	cr_assert_str_eq(v, "65534\t65534\t65534\t65534", "%s: Gid %s", when, v);
	proc_status(pid, "CapEff", v, sizeof(v));
	cr_assert_str_eq(v, "0000000000000000", "%s: CapEff %s", when, v);
	proc_status(pid, "CapPrm", v, sizeof(v));
	cr_assert_str_eq(v, "0000000000000000", "%s: CapPrm %s", when, v);
}

Test(restart, restart_after_the_privilege_drop)
{
	static const char *const args[] = { "--user", "65534:65534", NULL };
	struct program prog;
	static const char data[] = "queued while unprivileged";
	uint8_t buf[128];

	/* Each handover forks a guard, which valgrind follows with a log file
	 * of its own, opened as the dropped user in a directory that is
	 * root's: it says so in the daemon's log, which scripts/analyze.sh
	 * counts as an error (its privilege step has a directory for that). */
	if (exe_hidden())
		cr_skip_test("--user under valgrind's wrapper: the guard's log cannot be opened");
	program_setup(&prog);
	struct rd_daemon *d = rd_start(args);
	pid_t pid = d->pid;
	int sfd = rd_keep_stats(d);
	assert_unprivileged(pid, "before the restart");
	int w = rd_create(d, "data", O_WRONLY, 0, 0, 0);
	int r = rd_open_ok(d, "data", O_RDONLY | O_NONBLOCK);
	rd_write_ok(w, data, sizeof(data));

	for (uint64_t i = 1; i <= 2; i++) {
		ino_t ino = program_install(&prog, prog.given);
		restart(d, sfd, i);
		if (!exe_hidden())
			cr_assert_eq(exe_ino(pid), ino);
		assert_unprivileged(pid, "after a restart");
	}
	rd_read_ok(r, buf, sizeof(buf), sizeof(data));
	cr_assert_eq(memcmp(buf, data, sizeof(data)), 0, "the data is intact");
	int w2 = rd_create(d, "new", O_RDWR, 0, 0, 0);
	rd_write_ok(w2, "x", 1);
	rd_read_ok(w2, buf, sizeof(buf), 1);
	close(w2);
	close(w);
	close(r);
	rd_end(d);
	close(sfd);
	program_remove(&prog);
}

Test(restart, restarts_under_load)
{
	enum { PAIRS = 3 };
	struct program prog;

	program_setup(&prog);
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	struct stream *s[PAIRS];
	pid_t pids[PAIRS][2];
	uint64_t got[PAIRS];
	char name[32];

	for (int i = 0; i < PAIRS; i++) {
		snprintf(name, sizeof(name), "load%d", i);
		s[i] = stream_start(d, name, 100 + (uint64_t)i, pids[i]);
		got[i] = stream_wait(s[i], 0);
	}
	/* A SIGHUP every ~100 ms for three seconds; each handover waited for,
	 * so none is lost in a coalesced signal. */
	uint64_t n = 0, end = now_ms() + (rd_daemon_instrumented() ? 10000 : 3000);
	while (now_ms() < end) {
		restart(d, sfd, ++n);
		pause_ms(100);
	}
	for (int i = 0; i < PAIRS; i++)
		got[i] = stream_wait(s[i], got[i]);
	for (int i = 0; i < PAIRS; i++)
		stream_end(s[i], pids[i]);
	/* Under valgrind each new image starts under it too (seconds). */
	cr_assert_geq(n, exe_hidden() ? 1 : 5, "only %llu restarts", (unsigned long long)n);
	rd_end(d);
	close(sfd);
	program_remove(&prog);
}

Test(restart, a_program_that_cannot_run_leaves_the_old_one_serving)
{
	struct program prog;
	static const char data[] = "queued before the failed exec";
	uint8_t buf[128];

	program_setup(&prog);
	struct rd_daemon *d = rd_start(NULL);
	pid_t pid = d->pid;
	int sfd = rd_keep_stats(d);
	int w = rd_create(d, "data", O_WRONLY, 0, 0, 0);
	int r = rd_open_ok(d, "data", O_RDONLY | O_NONBLOCK);
	rd_write_ok(w, data, sizeof(data));

	/* Nothing at the path: the exec fails, the old image serves on. */
	cr_assert_eq(unlink(prog.path), 0);
	cr_assert_eq(kill(pid, SIGHUP), 0);
	uint64_t deadline = now_ms() + RESTART_TIMEOUT_MS;
	while (!log_has(d, "serving on") && now_ms() < deadline) {
		assert_running(d);
		pause_ms(5);
	}
	cr_assert(log_has(d, "serving on"), "no failed exec in the log");
	cr_assert_eq(stats_ext(sfd).restarts, 0);
	rd_read_ok(r, buf, sizeof(buf), sizeof(data));
	cr_assert_eq(memcmp(buf, data, sizeof(data)), 0, "the data is intact");
	rd_write_ok(w, "more", 4);
	rd_read_ok(r, buf, sizeof(buf), 4);

	/* With a program there again, the next SIGHUP restarts. */
	ino_t ino = program_install(&prog, prog.given);
	restart(d, sfd, 1);
	if (!exe_hidden())
		cr_assert_eq(exe_ino(pid), ino);
	rd_write_ok(w, "again", 5);
	rd_read_ok(r, buf, sizeof(buf), 5);
	close(w);
	close(r);
	rd_end(d);
	close(sfd);
	program_remove(&prog);
}

/* The harness starts every daemon with PR_SET_PDEATHSIG (SIGTERM), so that
 * a test that dies takes its daemon along. A restart is an exec in the
 * same process: the setting must survive it. Here the daemon's parent is a
 * helper the test kills after a restart; the daemon must end as on SIGTERM
 * (exit 0, mount gone). The test is a subreaper, so the orphaned daemon
 * becomes its child and its status can be read. */
struct parent {
	char bin[RD_PATH_SIZE + 16];
	char where[RD_PATH_SIZE + 16];
	char log[RD_PATH_SIZE + 16];
	bool cuse;
	_Atomic pid_t daemon;
};

static int parent_main(void *arg)
{
	struct parent *p = arg;
	pid_t me = getpid();
	pid_t d = fork();

	if (d < 0)
		return 1;
	if (d == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != me)
			_exit(127);
		int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (p->cuse)
			execl(p->bin, p->bin, "-f", "--frontend=cuse", "--name", p->where, (char *)NULL);
		else
			execl(p->bin, p->bin, "-f", "--frontend=fuse", "--mount", p->where, (char *)NULL);
		_exit(127);
	}
	atomic_store(&p->daemon, d);
	for (;;)
		pause();
}

Test(restart, the_parent_death_signal_survives_a_restart)
{
	struct program prog;
	struct parent *p = rd_shared(sizeof(*p));
	char dev[RD_PATH_SIZE + 32];
	int status, fd = -1;

	program_setup(&prog);
	cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0, "PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
	snprintf(p->bin, sizeof(p->bin), "%s", prog.path);
	snprintf(p->log, sizeof(p->log), "%s/daemon.log", prog.dir);
	p->cuse = rd_frontend_is_cuse();
	if (p->cuse) {
		snprintf(p->where, sizeof(p->where), "rdtp%d", (int)getpid());
		snprintf(dev, sizeof(dev), "/dev/%s", p->where);
	} else {
		snprintf(p->where, sizeof(p->where), "%s/mnt", prog.dir);
		cr_assert_eq(mkdir(p->where, 0755), 0);
		snprintf(dev, sizeof(dev), "%s", p->where);
	}
	pid_t parent = rd_spawn(parent_main, p, -1);
	uint64_t deadline = now_ms() + RD_START_TIMEOUT_MS;
	struct ringdev_version v;
	while (now_ms() < deadline) {
		fd = open(dev, O_RDONLY | O_NONBLOCK | O_CLOEXEC | (p->cuse ? 0 : O_DIRECTORY));
		if (fd >= 0 && ioctl(fd, RINGDEV_IOC_VERSION, &v) == 0)
			break;
		if (fd >= 0)
			close(fd);
		fd = -1;
		pause_ms(10);
	}
	cr_assert_geq(fd, 0, "the daemon under a helper parent did not start (log %s)", p->log);
	pid_t d = atomic_load(&p->daemon);
	cr_assert_gt(d, 0);

	cr_assert_eq(kill(d, SIGHUP), 0);
	deadline = now_ms() + RESTART_TIMEOUT_MS;
	while (stats_ext(fd).restarts < 1 && now_ms() < deadline)
		pause_ms(2);
	cr_assert_eq(stats_ext(fd).restarts, 1, "the restart did not happen");
	close(fd);

	/* The parent dies: the restarted daemon gets SIGTERM and ends. */
	kill(parent, SIGKILL);
	cr_assert(rd_wait_child(parent, RD_CHILD_TIMEOUT_MS, &status));
	bool ended = rd_wait_child(d, RD_STOP_TIMEOUT_MS, &status);
	if (!ended) {
		kill(d, SIGKILL);
		waitpid(d, &status, 0);
	}
	cr_assert(ended, "the restarted daemon outlived its parent: the parent death signal was lost");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "it ended with status %#x", status);
	if (!p->cuse) {
		cr_assert(!rd_is_mounted(p->where), "the mount is still there");
		rmdir(p->where);
	}
	unlink(p->log);
	program_remove(&prog);
}
