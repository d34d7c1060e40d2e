/* SPDX-License-Identifier: MIT */
/*
 * harness.h - the integration-test harness: start the real ringdevd, open
 * pipes on it, read its counters, run helper processes.
 *
 * Only harness.c knows how a daemon is started and how a pipe is opened on
 * each frontend, so every test runs unchanged against the FUSE mount
 * (RINGDEV_TEST_FRONTEND unset or "fuse") and against a CUSE node
 * (RINGDEV_TEST_FRONTEND=cuse, inside the VM of tests/vm).  The daemon binary
 * is $RINGDEVD, passed in by meson.
 *
 * Ownership: daemons live in a static pool owned by the harness (not on the
 * test's stack), so the suite's .fini can stop every daemon and kill every
 * helper process a failed test left behind.  Helper processes are forked
 * from the test process, die with it (PR_SET_PDEATHSIG) and never call
 * Criterion's asserts: they report through their exit code and through
 * shared memory (rd_shared), and the test process asserts.
 *
 * Synchronisation rule: a test never sleeps and hopes.  It waits for a
 * daemon counter (parked reads/writes, pollers) to reach a value, with a
 * limit that only detects hangs.
 */
#ifndef RINGDEV_TEST_HARNESS_H
#define RINGDEV_TEST_HARNESS_H

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <ringdev/ringdev.h>

#define RD_PATH_SIZE 512

/* Limits that only detect hangs (never assertions about speed). */
#define RD_START_TIMEOUT_MS 10000   /* daemon ready */
#define RD_STOP_TIMEOUT_MS 10000    /* daemon exit after SIGTERM */
#define RD_PARK_TIMEOUT_MS 5000     /* a request reaches its parked state */
#define RD_IDLE_TIMEOUT_MS 2000     /* parked_total drains to 0 */
#define RD_CHILD_TIMEOUT_MS 30000   /* a helper process finishes */

struct rd_daemon {
	bool in_use;                /* slot of the harness pool taken */
	bool running;               /* pid is ours and not reaped yet */
	bool cuse;                  /* frontend under test */
	pid_t pid;
	int status;                 /* rd_stop's result once stopped, else -1 */
	char dir[RD_PATH_SIZE];     /* private temp dir (removed by rd_stop) */
	char mount[RD_PATH_SIZE];   /* FUSE: DIR/mnt */
	char device[RD_PATH_SIZE];  /* CUSE: /dev/NAME */
	char name[RINGDEV_NAME_SIZE]; /* CUSE: NAME */
	char log[RD_PATH_SIZE];     /* DIR/daemon.log: the daemon's stdout+stderr */
	char args[16][128];         /* extra arguments, kept for rd_restart */
	int nargs;
	int stats_fd;               /* rd_stats_through: counters read through it; -1: a new handle each time */
};

/* TestSuite hooks: use RD_SUITE(name, timeout) in every test file. */
void rd_suite_init(void);
void rd_suite_fini(void);
#define RD_SUITE(Name, Timeout) \
	TestSuite(Name, .init = rd_suite_init, .fini = rd_suite_fini, .timeout = (Timeout))

/* The frontend under test, from $RINGDEV_TEST_FRONTEND. */
bool rd_frontend_is_cuse(void);

/* Start ringdevd -f on a private mount (FUSE) or node (CUSE) with the extra
 * arguments (NULL-terminated list, or NULL) and wait until it answers
 * RINGDEV_IOC_VERSION (and, on CUSE, the node has its --mode: the daemon
 * sets it just after the kernel created the node 0600).  Skips the test when the environment cannot run it
 * (not root, no /dev/fuse or /dev/cuse, $RINGDEVD unset) unless
 * $RINGDEV_TEST_STRICT=1, where that is a failure.  Fails the test with the
 * tail of the daemon's log when it exits early or is not ready in time. */
struct rd_daemon *rd_start(const char *const *extra_args);
/* Start a new daemon in the same dir/mount/name with the same arguments, after
 * the previous one was stopped or killed (stale-mount tests). */
void rd_restart(struct rd_daemon *d);
/* SIGTERM, wait (SIGKILL after RD_STOP_TIMEOUT_MS), detach a leftover mount,
 * remove the temp dir.  Returns the exit code, 128+signal if killed by a
 * signal, or the earlier result when already stopped.  Safe twice. */
int rd_stop(struct rd_daemon *d);
/* Like rd_stop but keeps the temp dir and mount point (for rd_restart) and
 * sends `sig` (SIGKILL for a crashed daemon); detaches no mount. */
int rd_kill(struct rd_daemon *d, int sig);
/* Run a second ringdevd at the same place (mount dir / name) as d with
 * these extra arguments, expecting it to refuse to start: returns its exit
 * code (fails the test if it is still running after RD_START_TIMEOUT_MS). */
int rd_start_expect_exit(const struct rd_daemon *d, const char *const *extra_args);
/* The end of every test: rd_assert_idle, rd_stop, and the daemon exited 0. */
void rd_end(struct rd_daemon *d);
/* Print the last lines of the daemon's log to stderr. */
void rd_log_tail(const struct rd_daemon *d, int lines);
/* Is something mounted at path (per /proc/self/mountinfo)? */
bool rd_is_mounted(const char *path);

/* Open pipe `pipe` like open(2): FUSE: MOUNT/pipe; CUSE: open the node then
 * RINGDEV_IOC_ATTACH (CREATE/EXCL from O_CREAT/O_EXCL, mode after umask).
 * Returns the fd, or -1 with errno set.  Never asserts: usable in children. */
int rd_open(const struct rd_daemon *d, const char *pipe, int flags, mode_t mode);
/* Create a new pipe with this kind/policy/capacity (0 = default) and mode
 * 0600, opened with flags (O_CREAT|O_EXCL added).  -1 with errno on failure. */
int rd_open_create(const struct rd_daemon *d, const char *pipe, int flags, uint32_t kind,
		   uint32_t policy, uint64_t capacity);
/* rd_open_create that asserts success. */
int rd_create(const struct rd_daemon *d, const char *pipe, int flags, uint32_t kind,
	      uint32_t policy, uint64_t capacity);
/* rd_open that asserts success. */
int rd_open_ok(const struct rd_daemon *d, const char *pipe, int flags);
/* A path a shell command can use for `pipe`: MOUNT/pipe on FUSE; on CUSE the
 * node itself (its default pipe, whatever `pipe` says). */
void rd_shell_path(const struct rd_daemon *d, const char *pipe, char *out, size_t size);

/* RINGDEV_IOC_ATTACH on fd.  0 or -1 with errno. */
int rd_attach(int fd, const char *name, uint32_t flags, uint32_t kind, uint32_t policy,
	      uint32_t mode, uint64_t capacity);
/* RINGDEV_IOC_SET_CONFIG on fd.  0 or -1 with errno. */
int rd_set_config(int fd, uint32_t set, uint32_t kind, uint32_t policy, uint32_t mode,
		  uint64_t capacity);

/* close(fd) and wait until the daemon has processed the release (the FUSE
 * mount releases asynchronously; CUSE synchronously).  Only for an fd no
 * helper process shares. */
void rd_close(const struct rd_daemon *d, int fd);

/* Device counters: rd_stats asserts; rd_stats_try returns 0 or -errno.
 * On CUSE the harness reads them through its own handle on the node, which
 * `opens` does not count. */
struct ringdev_stats rd_stats(const struct rd_daemon *d);
int rd_stats_try(const struct rd_daemon *d, struct ringdev_stats *out);
/* Wait up to RD_IDLE_TIMEOUT_MS for parked_total == 0, then assert it. */
void rd_assert_idle(const struct rd_daemon *d);
/* Wait up to RD_PARK_TIMEOUT_MS until the device has exactly `reads` parked
 * reads and `writes` parked writes, else fail the test. */
void rd_wait_parked(const struct rd_daemon *d, uint64_t reads, uint64_t writes);
/* Wait until the daemon counts exactly n open handles (releases done). */
void rd_wait_opens(const struct rd_daemon *d, uint64_t n);
/* Wait until stats.pollers >= n. */
void rd_wait_pollers(const struct rd_daemon *d, uint64_t n);
/* Pipe info / NREAD of the pipe behind fd (assert success). */
struct ringdev_pipe_info rd_pipe_info(int fd);
struct ringdev_nread rd_nread(int fd);

/* The control channel (test_control.c).  The control node: CUSE
 * /dev/NAME-ctl, FUSE MOUNT/.ctl. */
void rd_ctl_path(const struct rd_daemon *d, char *out, size_t size);
/* open(2) it O_RDWR | O_CLOEXEC: the fd, or -1 with errno.  Never asserts. */
int rd_ctl_open(const struct rd_daemon *d);
/* One RINGDEV_IOC_CTL_TRANSACT on the control fd: the n answers (copied in;
 * NULL when n is 0), up to max requests, parking up to timeout_ms.  *out is
 * the whole structure as the daemon returned it.  0, or -1 with errno.
 * Never asserts. */
int rd_transact(int fd, const struct ringdev_ctl_answer *answers, uint32_t n, uint32_t max,
		uint32_t timeout_ms, struct ringdev_ctl_transact *out);
/* While a broker holds the control node every open of a CUSE node is
 * relayed to it (and with --require-broker it waits for one), so a test that
 * is its own broker cannot let rd_stats open a handle each time: from now on
 * rd_stats (and every wait built on it) reads through fd, any fd that answers
 * RINGDEV_IOC_STATS (a handle kept from before, or the control fd); `opens`
 * is then the daemon's figure as it is.  -1: back to a new handle each time.
 * The harness never closes fd. */
void rd_stats_through(struct rd_daemon *d, int fd);
/* Wait until stats.parked_other == n (relayed requests and parked TRANSACTs). */
void rd_wait_other(const struct rd_daemon *d, uint64_t n);
/* Wait until stats.broker_connected is `connected`: on FUSE the release of
 * the control node arrives after close(2) returns, so a reopen right after
 * a close can still find the old broker and get EBUSY. */
void rd_wait_broker(const struct rd_daemon *d, uint64_t connected);

/* Helper processes.  fn runs in a child whose exit code is fn's result; the
 * child closes every fd >= 3 except keep_fd (-1: keep none), so it holds no
 * handle it does not use (EOF depends on every writer handle closing). */
pid_t rd_spawn(int (*fn)(void *arg), void *arg, int keep_fd);
/* Wait for a helper; fails the test if it did not exit normally within
 * RD_CHILD_TIMEOUT_MS.  Returns its exit code. */
int rd_join(pid_t pid);
/* rd_join with another limit (long runs). */
int rd_join_within(pid_t pid, int timeout_ms);
/* Wait up to timeout_ms: true and *status (raw wait status) if it ended. */
bool rd_wait_child(pid_t pid, int timeout_ms, int *status);
/* The child of this process named ringdevd (a daemon that went into the
 * background, found as its subreaper), or -1. */
pid_t rd_find_daemon_child(void);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t rd_now_ms(void);
/* The handle the counters are read through for the rest of a test (as
 * rd_stats_through), opened before any broker is connected: on CUSE every
 * later open of the node waits for the broker. Asserts. */
int rd_keep_stats(struct rd_daemon *d);
/* True when the daemon under test runs instrumented (valgrind's memcheck:
 * $RINGDEV_VALGRIND_LOGS; ThreadSanitizer: $TSAN_OPTIONS, both set by
 * scripts/analyze.sh): many times slower, and its RSS mostly the tool's.
 * Tests then bound their rounds, and skip RSS checks (the daemon's own
 * counters are checked all the same). */
bool rd_daemon_instrumented(void);
/* What the daemon may hold beyond its limits (ringdev(4), LIMITS: its own
 * bookkeeping per handle and request, allocator slack), for RSS checks. */
#define RD_RSS_SLACK (8u << 20)
/* The daemon's resident memory in bytes (VmRSS). Asserts. */
uint64_t rd_daemon_rss(const struct rd_daemon *d);
/* True (with a log line saying what) on a CUSE node, for checks of what
 * only the FUSE mount has: the test then has nothing to check. */
bool rd_fuse_only(const char *what);
/* Act as uid:gid from now on (effective ids only: FUSE and CUSE see the
 * fsuid; the real and saved ids stay root, so a helper can act as one user,
 * then another, as a passed fd would be used). 0, or -1 with errno. */
int rd_become(uid_t uid, gid_t gid);
/* MAP_SHARED anonymous memory, zeroed, visible to helpers forked later.
 * Unmapped when the test process ends. */
void *rd_shared(size_t size);
/* Run `/bin/sh -c cmd`; returns its exit code (fails the test on a hang). */
int rd_sh(const char *cmd);

/* One read or write done by a helper process, e.g. one that parks. */
enum rd_io_op { RD_IO_READ, RD_IO_WRITE };
struct rd_io {
	int fd;
	enum rd_io_op op;
	size_t len;
	bool catch_sigusr1;         /* install a SIGUSR1 handler without SA_RESTART */
	pid_t pid;
	ssize_t ret;                /* result of read/write */
	int err;                    /* errno when ret < 0 */
	unsigned char buf[];        /* WRITE: data to write; READ: data read */
};
/* Shared rd_io with a buffer of len bytes (zeroed). */
struct rd_io *rd_io_new(int fd, enum rd_io_op op, size_t len);
/* Fork the helper that does the operation (keeps only io->fd). */
void rd_io_start(struct rd_io *io);
/* Join it (asserts the helper exited normally); io->ret/err are valid then. */
void rd_io_join(struct rd_io *io);

/* "EAGAIN" etc. for messages; "0" for no error. */
const char *rd_errname(int err);

/* Checksums and data patterns. */
#define RD_FNV_INIT 0xcbf29ce484222325ull
uint64_t rd_fnv1a(uint64_t hash, const void *data, size_t size);
/* Deterministic pseudo-random bytes for (seed, offset): the same bytes for
 * the same arguments, so a reader can check what a writer sent. */
void rd_pattern(void *buf, size_t size, uint64_t seed, uint64_t offset);
/* Assert-free write/read loops for helpers: full count or -1. */
ssize_t rd_write_all(int fd, const void *buf, size_t size);
/* Write exactly size bytes in one call and assert the result. */
void rd_write_ok(int fd, const void *buf, size_t size);
/* One read(2) that must return exactly `expect` bytes (asserted). */
void rd_read_ok(int fd, void *buf, size_t size, size_t expect);
/* Assert that a call failed with `err`: it must return -1 with errno err.
 * The call is evaluated once. */
#define rd_assert_errno(call, err, what)                                                      \
	do {                                                                                   \
		errno = 0;                                                                     \
		long rd_ret_ = (long)(call);                                                   \
		int rd_errno_ = errno;                                                         \
		cr_assert(rd_ret_ == -1 && rd_errno_ == (err), "%s: expected -1 %s, got %ld (%s)", \
			  (what), rd_errname(err), rd_ret_,                                    \
			  rd_ret_ == -1 ? rd_errname(rd_errno_) : "no error");                 \
	} while (0)

#endif /* RINGDEV_TEST_HARNESS_H */
