/* SPDX-License-Identifier: MIT */
/*
 * harness.c - starts the real ringdevd for each test, opens pipes on either
 * frontend, reads the daemon's counters and runs helper processes.
 *
 * Each Criterion test runs in its own process; everything here is per test
 * process.  Daemons and helper pids are kept in static tables so the suite's
 * .fini can clean up after a failed test: helpers are SIGKILLed first (a
 * helper parked in the daemon dies through the FUSE interrupt), then every
 * daemon gets SIGTERM, then the helpers are reaped.  Should the test process
 * itself die, PR_SET_PDEATHSIG takes the daemon (SIGTERM: clean unmount) and
 * the helpers (SIGKILL) with it.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <grp.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define RD_MAX_DAEMONS 8
#define RD_MAX_CHILDREN 128

static struct rd_daemon daemons[RD_MAX_DAEMONS];
static pid_t children[RD_MAX_CHILDREN];
static unsigned daemon_counter;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The polling step of every wait: short, so waits end soon after the
 * condition holds; the limits only catch hangs. */
static void poll_pause(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 2 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && *v && strcmp(v, "0") != 0;
}

bool rd_frontend_is_cuse(void)
{
	const char *v = getenv("RINGDEV_TEST_FRONTEND");

	return v && strcmp(v, "cuse") == 0;
}

void rd_suite_init(void)
{
	/* Modes given to O_CREAT are checked exactly: fix the umask. */
	umask(022);
}

static void child_forget(pid_t pid)
{
	for (size_t i = 0; i < RD_MAX_CHILDREN; i++)
		if (children[i] == pid)
			children[i] = 0;
}

void rd_suite_fini(void)
{
	for (size_t i = 0; i < RD_MAX_CHILDREN; i++)
		if (children[i] > 0)
			kill(children[i], SIGKILL);
	for (size_t i = 0; i < RD_MAX_DAEMONS; i++)
		if (daemons[i].in_use)
			rd_stop(&daemons[i]);
	for (size_t i = 0; i < RD_MAX_CHILDREN; i++) {
		int status;

		if (children[i] > 0)
			rd_wait_child(children[i], RD_STOP_TIMEOUT_MS, &status);
	}
	memset(daemons, 0, sizeof(daemons));
}

void rd_log_tail(const struct rd_daemon *d, int lines)
{
	char buf[8192];
	int fd = open(d->log, O_RDONLY | O_CLOEXEC);
	off_t size, start;
	ssize_t n;
	char *p;

	if (fd < 0) {
		fprintf(stderr, "[ringdevd log %s: %s]\n", d->log, strerror(errno));
		return;
	}
	size = lseek(fd, 0, SEEK_END);
	start = size > (off_t)sizeof(buf) - 1 ? size - (off_t)sizeof(buf) + 1 : 0;
	n = pread(fd, buf, sizeof(buf) - 1, start);
	close(fd);
	if (n < 0)
		n = 0;
	buf[n] = '\0';
	p = buf + n;
	if (p > buf && p[-1] == '\n')
		p--;
	while (p > buf && lines > 0) {
		p--;
		if (*p == '\n')
			lines--;
	}
	if (*p == '\n')
		p++;
	fprintf(stderr, "---- last lines of %s ----\n%s%s---- end of log ----\n", d->log, p,
		n > 0 && buf[n - 1] != '\n' ? "\n" : "");
}

bool rd_is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	bool found = false;

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		/* id parent major:minor root mountpoint ... */
		char *save = NULL, *field = strtok_r(line, " ", &save);

		for (int i = 0; field && i < 4; i++)
			field = strtok_r(NULL, " ", &save);
		if (field && strcmp(field, path) == 0)
			found = true;
	}
	fclose(f);
	return found;
}

/* Exit code, or 128+signal: one number a test can compare with 0. */
static int decode_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return -1;
}

bool rd_wait_child(pid_t pid, int timeout_ms, int *status)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	for (;;) {
		pid_t r = waitpid(pid, status, WNOHANG);

		if (r == pid || (r < 0 && errno == ECHILD)) {
			if (r < 0) /* reaped already: nothing more to learn */
				*status = 0;
			child_forget(pid);
			return true;
		}
		if (now_ms() >= deadline)
			return false;
		poll_pause();
	}
}

static bool daemon_has_arg(const struct rd_daemon *d, const char *arg)
{
	for (int i = 0; i < d->nargs; i++)
		if (strcmp(d->args[i], arg) == 0)
			return true;
	return false;
}

/* Ready when the mount root (FUSE) or the node (CUSE) answers VERSION from
 * the expected frontend.  Before the mount exists, DIR/mnt is missing or a
 * plain directory whose file system answers ENOTTY.  With --require-broker
 * every open of a CUSE node waits for a broker, so the probe asks the
 * control node there (free during start-up). */
static int daemon_probe(const struct rd_daemon *d, struct ringdev_version *v)
{
	int fd = d->cuse && daemon_has_arg(d, "--require-broker") ? rd_ctl_open(d)
		 : d->cuse ? open(d->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
			   : open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r;

	if (fd < 0)
		return -errno;
	memset(v, 0, sizeof(*v));
	r = ioctl(fd, RINGDEV_IOC_VERSION, v) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* The node mode the daemon was asked for: --mode, else the default 0666. */
static mode_t expected_node_mode(const struct rd_daemon *d)
{
	const char *value = "0666";

	for (int i = 0; i < d->nargs; i++) {
		if (strcmp(d->args[i], "--mode") == 0 && i + 1 < d->nargs)
			value = d->args[i + 1];
		else if (strncmp(d->args[i], "--mode=", 7) == 0)
			value = d->args[i] + 7;
	}
	return (mode_t)strtoul(value, NULL, 8);
}

/* A CUSE node appears 0600 and the daemon applies its mode a moment later:
 * other users can open it only then. The control node is made by its own
 * INIT, which the daemon may answer after the data node's: ready means both
 * are there (as systemd's READY does). */
static bool node_mode_applied(const struct rd_daemon *d)
{
	struct stat st;
	char ctl[PATH_MAX];

	rd_ctl_path(d, ctl, sizeof(ctl));
	return stat(d->device, &st) == 0 && (st.st_mode & 07777) == expected_node_mode(d) && stat(ctl, &st) == 0;
}

static __attribute__((noreturn)) void daemon_exec(const struct rd_daemon *d, pid_t parent)
{
	const char *bin = getenv("RINGDEVD");
	const char *argv[40];
	int argc = 0, fd;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
	fd = open(d->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd >= 0) {
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
	}
	fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		dup2(fd, STDIN_FILENO);
	close_range(3, ~0u, 0);
	signal(SIGPIPE, SIG_DFL);

	argv[argc++] = bin;
	argv[argc++] = "-f";
	if (d->cuse) {
		argv[argc++] = "--frontend=cuse";
		argv[argc++] = "--name";
		argv[argc++] = d->name;
	} else {
		argv[argc++] = "--frontend=fuse";
		argv[argc++] = "--mount";
		argv[argc++] = d->mount;
	}
	/* More serving threads than this machine kind has cores, so every
	 * test runs the handlers side by side (a test's own --threads, later
	 * on the line, wins). $RINGDEV_TEST_THREADS changes it. */
	const char *threads = getenv("RINGDEV_TEST_THREADS");
	argv[argc++] = "--threads";
	argv[argc++] = threads && *threads ? threads : "3";
	for (int i = 0; i < d->nargs; i++)
		argv[argc++] = d->args[i];
	argv[argc] = NULL;
	execv(bin, (char *const *)argv);
	fprintf(stderr, "harness: exec %s: %s\n", bin, strerror(errno));
	_exit(127);
}

static void daemon_launch(struct rd_daemon *d)
{
	pid_t parent = getpid();
	uint64_t deadline;
	int last_err = 0;

	d->status = -1;
	d->pid = fork();
	cr_assert_neq(d->pid, -1, "fork for ringdevd: %s", strerror(errno));
	if (d->pid == 0)
		daemon_exec(d, parent);
	d->running = true;

	deadline = now_ms() + RD_START_TIMEOUT_MS;
	for (;;) {
		struct ringdev_version v;
		int status;
		pid_t r = waitpid(d->pid, &status, WNOHANG);

		if (r == d->pid) {
			d->running = false;
			d->status = decode_status(status);
			rd_log_tail(d, 20);
			cr_assert_fail("ringdevd exited during start-up with %d (log above)", d->status);
		}
		last_err = daemon_probe(d, &v);
		if (last_err == 0 && d->cuse && !node_mode_applied(d))
			last_err = -EPERM; /* not ready for other users yet */
		if (last_err == 0) {
			cr_assert_eq(v.abi_major, RINGDEV_ABI_MAJOR, "VERSION: abi_major %u, expected %u",
				     v.abi_major, RINGDEV_ABI_MAJOR);
			cr_assert_eq(v.frontend, d->cuse ? RINGDEV_FRONTEND_CUSE : RINGDEV_FRONTEND_FUSE,
				     "VERSION: frontend %u, expected %s", v.frontend,
				     d->cuse ? "CUSE" : "FUSE");
			return;
		}
		if (now_ms() >= deadline)
			break;
		poll_pause();
	}
	rd_kill(d, SIGKILL);
	rd_log_tail(d, 20);
	cr_assert_fail("ringdevd not ready after %d ms (last probe of %s: %s)", RD_START_TIMEOUT_MS,
		       d->cuse ? d->device : d->mount, strerror(-last_err));
}

/* The environment cannot run integration tests: skip, or fail when strict. */
#define env_unusable(...)                                     \
	do {                                                  \
		if (env_true("RINGDEV_TEST_STRICT"))          \
			cr_assert_fail(__VA_ARGS__);          \
		cr_skip_test(__VA_ARGS__);                    \
	} while (0)

static void check_environment(bool cuse)
{
	const char *bin = getenv("RINGDEVD");

	if (!bin || !*bin)
		env_unusable("RINGDEVD is not set (meson passes the path of ringdevd)");
	if (access(bin, X_OK) != 0)
		env_unusable("RINGDEVD=%s is not executable: %s", bin, strerror(errno));
	if (geteuid() != 0)
		env_unusable("integration tests need root (mounts, other uids)");
	if (cuse && access("/dev/cuse", R_OK | W_OK) != 0)
		env_unusable("/dev/cuse: %s (the CUSE suite runs in the VM of tests/vm)",
			     strerror(errno));
	if (!cuse && access("/dev/fuse", R_OK | W_OK) != 0)
		env_unusable("/dev/fuse: %s", strerror(errno));
}

struct rd_daemon *rd_start(const char *const *extra_args)
{
	struct rd_daemon *d = NULL;
	const char *tmp = getenv("TMPDIR");
	char tmpl[RD_PATH_SIZE];
	char real[PATH_MAX];
	bool cuse = rd_frontend_is_cuse();

	check_environment(cuse);
	for (size_t i = 0; i < RD_MAX_DAEMONS && !d; i++)
		if (!daemons[i].in_use)
			d = &daemons[i];
	cr_assert_not_null(d, "more than %d daemons in one test", RD_MAX_DAEMONS);
	memset(d, 0, sizeof(*d));
	d->in_use = true;
	d->cuse = cuse;
	d->status = -1;
	d->stats_fd = -1;

	snprintf(tmpl, sizeof(tmpl), "%s/ringdev-it.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(tmpl), "mkdtemp %s: %s", tmpl, strerror(errno));
	/* Tests drop to other uids (access checks): they must reach the mount. */
	chmod(tmpl, 0755);
	cr_assert_not_null(realpath(tmpl, real), "realpath %s: %s", tmpl, strerror(errno));
	cr_assert_lt(strlen(real) + sizeof("/daemon.log"), sizeof(d->dir), "temp dir path too long: %s",
		     real);
	memcpy(d->dir, real, strlen(real) + 1);
	cr_assert_lt(snprintf(d->mount, sizeof(d->mount), "%s/mnt", d->dir), (int)sizeof(d->mount));
	cr_assert_lt(snprintf(d->log, sizeof(d->log), "%s/daemon.log", d->dir), (int)sizeof(d->log));
	snprintf(d->name, sizeof(d->name), "rdt%d_%u", (int)getpid(), daemon_counter++);
	snprintf(d->device, sizeof(d->device), "/dev/%s", d->name);

	for (int i = 0; extra_args && extra_args[i]; i++) {
		cr_assert_lt(i, 16, "too many extra arguments");
		cr_assert_lt(strlen(extra_args[i]), sizeof(d->args[i]), "argument too long");
		snprintf(d->args[i], sizeof(d->args[i]), "%s", extra_args[i]);
		d->nargs = i + 1;
	}
	daemon_launch(d);
	return d;
}

void rd_restart(struct rd_daemon *d)
{
	cr_assert(!d->running, "rd_restart: the previous daemon still runs");
	cr_assert(d->dir[0], "rd_restart: the daemon's dir is gone");
	d->stats_fd = -1;
	daemon_launch(d);
}

int rd_kill(struct rd_daemon *d, int sig)
{
	int status;

	if (!d->running)
		return d->status;
	kill(d->pid, sig);
	if (!rd_wait_child(d->pid, RD_STOP_TIMEOUT_MS, &status)) {
		fprintf(stderr, "harness: ringdevd %d did not exit within %d ms of signal %d: SIGKILL\n",
			(int)d->pid, RD_STOP_TIMEOUT_MS, sig);
		kill(d->pid, SIGKILL);
		waitpid(d->pid, &status, 0);
	}
	d->running = false;
	d->status = decode_status(status);
	return d->status;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

int rd_stop(struct rd_daemon *d)
{
	if (!d->in_use)
		return d->status;
	if (d->running) {
		rd_kill(d, SIGTERM);
		if (d->status != 0)
			rd_log_tail(d, 20);
	}
	if (!d->dir[0])
		return d->status;
	if (!d->cuse && rd_is_mounted(d->mount)) {
		fprintf(stderr, "harness: %s still mounted after ringdevd ended: detaching\n", d->mount);
		umount2(d->mount, MNT_DETACH);
	}
	if (env_true("RINGDEV_TEST_KEEP"))
		fprintf(stderr, "harness: keeping %s\n", d->dir);
	else
		/* FTW_MOUNT: never descend into a mount that could not be removed. */
		nftw(d->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS | FTW_MOUNT);
	d->dir[0] = '\0';
	return d->status;
}

void rd_end(struct rd_daemon *d)
{
	int status;

	rd_assert_idle(d);
	status = rd_stop(d);
	cr_assert_eq(status, 0, "ringdevd exited with %d on SIGTERM, expected 0 (log above)", status);
}

int rd_start_expect_exit(const struct rd_daemon *d, const char *const *extra_args)
{
	struct rd_daemon other = *d;
	pid_t parent = getpid();
	pid_t pid;
	int status;

	other.nargs = 0;
	for (int i = 0; extra_args && extra_args[i] && i < 16; i++) {
		snprintf(other.args[i], sizeof(other.args[i]), "%s", extra_args[i]);
		other.nargs = i + 1;
	}
	pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0)
		daemon_exec(&other, parent);
	if (!rd_wait_child(pid, RD_START_TIMEOUT_MS, &status)) {
		kill(pid, SIGTERM);
		rd_wait_child(pid, RD_STOP_TIMEOUT_MS, &status);
		cr_assert_fail("a second ringdevd at %s kept running; expected it to refuse to start",
			       d->cuse ? d->device : d->mount);
	}
	return decode_status(status);
}

int rd_attach(int fd, const char *name, uint32_t flags, uint32_t kind, uint32_t policy,
	      uint32_t mode, uint64_t capacity)
{
	struct ringdev_attach a;
	size_t len = strlen(name);

	memset(&a, 0, sizeof(a));
	/* A 64-byte name fills the array without a NUL: the daemon must say
	 * ENAMETOOLONG, so it is passed as it is. */
	memcpy(a.name, name, len < sizeof(a.name) ? len : sizeof(a.name));
	a.flags = flags;
	a.kind = kind;
	a.policy = policy;
	a.mode = mode;
	a.capacity = capacity;
	return ioctl(fd, RINGDEV_IOC_ATTACH, &a) < 0 ? -1 : 0;
}

int rd_set_config(int fd, uint32_t set, uint32_t kind, uint32_t policy, uint32_t mode,
		  uint64_t capacity)
{
	struct ringdev_pipe_config c;

	memset(&c, 0, sizeof(c));
	c.set = set;
	c.kind = kind;
	c.policy = policy;
	c.mode = mode;
	c.capacity = capacity;
	return ioctl(fd, RINGDEV_IOC_SET_CONFIG, &c) < 0 ? -1 : 0;
}

int rd_open(const struct rd_daemon *d, const char *pipe, int flags, mode_t mode)
{
	char path[RD_PATH_SIZE + RINGDEV_NAME_SIZE + 300];
	uint32_t aflags = 0;
	mode_t mask;
	int fd, err;

	if (!d->cuse) {
		snprintf(path, sizeof(path), "%s/%s", d->mount, pipe);
		return open(path, flags, mode);
	}
	fd = open(d->device, flags & ~(O_CREAT | O_EXCL | O_TRUNC));
	if (fd < 0)
		return -1;
	if (flags & O_CREAT)
		aflags |= RINGDEV_ATTACH_CREATE | (flags & O_EXCL ? RINGDEV_ATTACH_EXCL : 0);
	/* The FUSE mount gets the mode after umask from the kernel: same here. */
	mask = umask(0);
	umask(mask);
	if (rd_attach(fd, pipe, aflags, 0, 0, (uint32_t)(mode & ~mask & 07777), 0) < 0) {
		err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int rd_open_create(const struct rd_daemon *d, const char *pipe, int flags, uint32_t kind,
		   uint32_t policy, uint64_t capacity)
{
	uint32_t set = 0;
	int fd, err;

	if (d->cuse) {
		fd = open(d->device, flags & ~(O_CREAT | O_EXCL | O_TRUNC));
		if (fd < 0)
			return -1;
		if (rd_attach(fd, pipe, RINGDEV_ATTACH_CREATE | RINGDEV_ATTACH_EXCL, kind, policy, 0600,
			      capacity) < 0)
			goto fail;
		return fd;
	}
	fd = rd_open(d, pipe, flags | O_CREAT | O_EXCL, 0600);
	if (fd < 0)
		return -1;
	set |= kind ? RINGDEV_SET_KIND : 0;
	set |= policy ? RINGDEV_SET_POLICY : 0;
	set |= capacity ? RINGDEV_SET_CAPACITY : 0;
	if (set && rd_set_config(fd, set, kind, policy, 0, capacity) < 0)
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	errno = err;
	return -1;
}

int rd_create(const struct rd_daemon *d, const char *pipe, int flags, uint32_t kind,
	      uint32_t policy, uint64_t capacity)
{
	int fd = rd_open_create(d, pipe, flags, kind, policy, capacity);

	cr_assert_geq(fd, 0, "create pipe %s (kind %u policy %u capacity %llu): %s", pipe, kind,
		      policy, (unsigned long long)capacity, strerror(errno));
	return fd;
}

int rd_open_ok(const struct rd_daemon *d, const char *pipe, int flags)
{
	int fd = rd_open(d, pipe, flags, 0600);

	cr_assert_geq(fd, 0, "open pipe %s (flags %#x): %s", pipe, (unsigned)flags, strerror(errno));
	return fd;
}

void rd_shell_path(const struct rd_daemon *d, const char *pipe, char *out, size_t size)
{
	if (d->cuse)
		snprintf(out, size, "%s", d->device);
	else
		snprintf(out, size, "%s/%s", d->mount, pipe);
}

int rd_stats_try(const struct rd_daemon *d, struct ringdev_stats *out)
{
	int fd, r;

	if (d->stats_fd >= 0) {
		memset(out, 0, sizeof(*out));
		return ioctl(d->stats_fd, RINGDEV_IOC_STATS, out) < 0 ? -errno : 0;
	}
	fd = d->cuse ? open(d->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
		     : open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(out, 0, sizeof(*out));
	r = ioctl(fd, RINGDEV_IOC_STATS, out) < 0 ? -errno : 0;
	close(fd);
	if (r == 0 && d->cuse && out->opens > 0)
		out->opens--;
	return r;
}

struct ringdev_stats rd_stats(const struct rd_daemon *d)
{
	struct ringdev_stats s;
	int r = rd_stats_try(d, &s);

	cr_assert_eq(r, 0, "RINGDEV_IOC_STATS on %s: %s", d->cuse ? d->device : d->mount,
		     strerror(-r));
	return s;
}

void rd_close(const struct rd_daemon *d, int fd)
{
	uint64_t deadline = now_ms() + RD_IDLE_TIMEOUT_MS;
	uint64_t before = rd_stats(d).opens;
	struct ringdev_stats s;

	cr_assert_eq(close(fd), 0, "close(%d): %s", fd, strerror(errno));
	s = rd_stats(d);
	while (s.opens >= before && now_ms() < deadline) {
		poll_pause();
		s = rd_stats(d);
	}
	cr_assert_lt(s.opens, before, "after close the daemon still counts %llu opens (before: %llu)",
		     (unsigned long long)s.opens, (unsigned long long)before);
}

void rd_assert_idle(const struct rd_daemon *d)
{
	uint64_t deadline = now_ms() + RD_IDLE_TIMEOUT_MS;
	struct ringdev_stats s = rd_stats(d);

	while (s.parked_total != 0 && now_ms() < deadline) {
		poll_pause();
		s = rd_stats(d);
	}
	cr_assert_eq(s.parked_total, 0,
		     "daemon idle: expected parked_total 0, got %llu (reads %llu writes %llu other %llu)",
		     (unsigned long long)s.parked_total, (unsigned long long)s.parked_reads,
		     (unsigned long long)s.parked_writes, (unsigned long long)s.parked_other);
	cr_assert_eq(s.parked_reads + s.parked_writes + s.parked_other, s.parked_total,
		     "parked_total is the sum of parked reads, writes and other");
}

void rd_wait_parked(const struct rd_daemon *d, uint64_t reads, uint64_t writes)
{
	uint64_t deadline = now_ms() + RD_PARK_TIMEOUT_MS;
	struct ringdev_stats s = rd_stats(d);

	while ((s.parked_reads != reads || s.parked_writes != writes) && now_ms() < deadline) {
		poll_pause();
		s = rd_stats(d);
	}
	cr_assert(s.parked_reads == reads && s.parked_writes == writes,
		  "expected %llu parked reads and %llu parked writes, daemon has %llu and %llu",
		  (unsigned long long)reads, (unsigned long long)writes,
		  (unsigned long long)s.parked_reads, (unsigned long long)s.parked_writes);
}

void rd_stats_through(struct rd_daemon *d, int fd)
{
	d->stats_fd = fd;
}

/* Read stats until the uint64_t field at offset `off` is `want` or
 * timeout_ms pass; the last stats read. */
static struct ringdev_stats wait_field(const struct rd_daemon *d, uint64_t timeout_ms, size_t off, uint64_t want)
{
	uint64_t deadline = now_ms() + timeout_ms;
	struct ringdev_stats s = rd_stats(d);
	uint64_t v;

	for (;;) {
		memcpy(&v, (const char *)&s + off, sizeof(v));
		if (v == want || now_ms() >= deadline)
			return s;
		poll_pause();
		s = rd_stats(d);
	}
}

void rd_wait_other(const struct rd_daemon *d, uint64_t n)
{
	struct ringdev_stats s = wait_field(d, RD_PARK_TIMEOUT_MS, offsetof(struct ringdev_stats, parked_other), n);

	cr_assert_eq(s.parked_other, n, "expected %llu parked relayed requests/TRANSACTs, daemon has %llu",
		     (unsigned long long)n, (unsigned long long)s.parked_other);
}

void rd_wait_broker(const struct rd_daemon *d, uint64_t connected)
{
	struct ringdev_stats s =
		wait_field(d, RD_IDLE_TIMEOUT_MS, offsetof(struct ringdev_stats, broker_connected), connected);

	cr_assert_eq(s.broker_connected, connected, "stats.broker_connected: expected %llu, got %llu",
		     (unsigned long long)connected, (unsigned long long)s.broker_connected);
}

void rd_ctl_path(const struct rd_daemon *d, char *out, size_t size)
{
	if (d->cuse)
		snprintf(out, size, "%s-ctl", d->device);
	else
		snprintf(out, size, "%s/.ctl", d->mount);
}

int rd_ctl_open(const struct rd_daemon *d)
{
	char path[RD_PATH_SIZE + 16];

	rd_ctl_path(d, path, sizeof(path));
	return open(path, O_RDWR | O_CLOEXEC);
}

int rd_transact(int fd, const struct ringdev_ctl_answer *answers, uint32_t n, uint32_t max,
		uint32_t timeout_ms, struct ringdev_ctl_transact *out)
{
	memset(out, 0, sizeof(*out));
	if (n > RINGDEV_CTL_BATCH) {
		errno = EINVAL;
		return -1;
	}
	if (n)
		memcpy(out->answers, answers, n * sizeof(*answers));
	out->nanswers = n;
	out->max_requests = max;
	out->timeout_ms = timeout_ms;
	return ioctl(fd, RINGDEV_IOC_CTL_TRANSACT, out) < 0 ? -1 : 0;
}

void rd_wait_opens(const struct rd_daemon *d, uint64_t n)
{
	struct ringdev_stats s = wait_field(d, RD_IDLE_TIMEOUT_MS, offsetof(struct ringdev_stats, opens), n);

	cr_assert_eq(s.opens, n, "expected %llu open handles, daemon counts %llu",
		     (unsigned long long)n, (unsigned long long)s.opens);
}

void rd_wait_pollers(const struct rd_daemon *d, uint64_t n)
{
	uint64_t deadline = now_ms() + RD_PARK_TIMEOUT_MS;
	struct ringdev_stats s = rd_stats(d);

	while (s.pollers < n && now_ms() < deadline) {
		poll_pause();
		s = rd_stats(d);
	}
	cr_assert_geq(s.pollers, n, "expected at least %llu pending pollers, daemon has %llu",
		      (unsigned long long)n, (unsigned long long)s.pollers);
}

struct ringdev_pipe_info rd_pipe_info(int fd)
{
	struct ringdev_pipe_info info;

	memset(&info, 0, sizeof(info));
	cr_assert_eq(ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info), 0, "RINGDEV_IOC_PIPE_INFO: %s",
		     strerror(errno));
	return info;
}

struct ringdev_nread rd_nread(int fd)
{
	struct ringdev_nread n;

	memset(&n, 0, sizeof(n));
	cr_assert_eq(ioctl(fd, RINGDEV_IOC_NREAD, &n), 0, "RINGDEV_IOC_NREAD: %s", strerror(errno));
	return n;
}

pid_t rd_spawn(int (*fn)(void *arg), void *arg, int keep_fd)
{
	pid_t parent = getpid();
	pid_t pid = fork();
	size_t i;

	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (keep_fd > 3)
			close_range(3, (unsigned)keep_fd - 1, 0);
		if (keep_fd >= 3)
			close_range((unsigned)keep_fd + 1, ~0u, 0);
		else
			close_range(3, ~0u, 0);
		_exit(fn(arg));
	}
	for (i = 0; i < RD_MAX_CHILDREN && children[i] > 0; i++)
		;
	if (i < RD_MAX_CHILDREN)
		children[i] = pid;
	return pid;
}

int rd_join(pid_t pid)
{
	return rd_join_within(pid, RD_CHILD_TIMEOUT_MS);
}

int rd_join_within(pid_t pid, int timeout_ms)
{
	int status = 0;

	if (!rd_wait_child(pid, timeout_ms, &status)) {
		kill(pid, SIGKILL);
		cr_assert_fail("helper process %d did not finish within %d ms", (int)pid, timeout_ms);
	}
	cr_assert(WIFEXITED(status), "helper process %d ended by signal %d", (int)pid,
		  WIFSIGNALED(status) ? WTERMSIG(status) : 0);
	return WEXITSTATUS(status);
}

int rd_keep_stats(struct rd_daemon *d)
{
	int fd = d->cuse ? open(d->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
			 : open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "open %s for the counters: %s", d->cuse ? d->device : d->mount, rd_errname(errno));
	rd_stats_through(d, fd);
	return fd;
}

bool rd_daemon_instrumented(void)
{
	return getenv("RINGDEV_VALGRIND_LOGS") || getenv("TSAN_OPTIONS");
}

uint64_t rd_daemon_rss(const struct rd_daemon *d)
{
	char path[64], line[256];
	unsigned long long kb = 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)d->pid);
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f, "%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %llu kB", &kb) == 1)
			break;
	fclose(f);
	cr_assert_gt(kb, 0, "no VmRSS in %s", path);
	return kb * 1024;
}

bool rd_fuse_only(const char *what)
{
	if (!rd_frontend_is_cuse())
		return false;
	cr_log_info("%s: the FUSE mount only; nothing to check on a CUSE node", what);
	return true;
}

int rd_become(uid_t uid, gid_t gid)
{
	const uid_t keep_uid = (uid_t)-1; /* "leave this id as it is" */
	const gid_t keep_gid = (gid_t)-1;

	if (setresuid(keep_uid, 0, keep_uid) != 0 || setgroups(0, NULL) != 0 ||
	    setresgid(keep_gid, gid, keep_gid) != 0 || setresuid(keep_uid, uid, keep_uid) != 0)
		return -1;
	return 0;
}

void *rd_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	cr_assert_neq(p, MAP_FAILED, "mmap %zu shared bytes: %s", size, strerror(errno));
	return p;
}

static int sh_child(void *arg)
{
	execl("/bin/sh", "sh", "-c", (const char *)arg, (char *)NULL);
	return 127;
}

int rd_sh(const char *cmd)
{
	pid_t pid = rd_spawn(sh_child, (void *)cmd, -1);
	int status = 0;

	if (!rd_wait_child(pid, RD_CHILD_TIMEOUT_MS, &status)) {
		kill(pid, SIGKILL);
		cr_assert_fail("shell command did not finish within %d ms: %s", RD_CHILD_TIMEOUT_MS, cmd);
	}
	return decode_status(status);
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

static int io_child(void *arg)
{
	struct rd_io *io = arg;

	if (io->catch_sigusr1) {
		struct sigaction sa;

		memset(&sa, 0, sizeof(sa));
		sa.sa_handler = on_sigusr1;
		sa.sa_flags = 0; /* no SA_RESTART: the interrupted call returns EINTR */
		sigemptyset(&sa.sa_mask);
		sigaction(SIGUSR1, &sa, NULL);
	}
	if (io->op == RD_IO_READ)
		io->ret = read(io->fd, io->buf, io->len);
	else
		io->ret = write(io->fd, io->buf, io->len);
	io->err = io->ret < 0 ? errno : 0;
	return 0;
}

struct rd_io *rd_io_new(int fd, enum rd_io_op op, size_t len)
{
	struct rd_io *io = rd_shared(sizeof(*io) + len);

	io->fd = fd;
	io->op = op;
	io->len = len;
	io->ret = -2;
	return io;
}

void rd_io_start(struct rd_io *io)
{
	io->pid = rd_spawn(io_child, io, io->fd);
}

void rd_io_join(struct rd_io *io)
{
	cr_assert_eq(rd_join(io->pid), 0, "I/O helper exit code");
}

const char *rd_errname(int err)
{
	const char *name = err ? strerrorname_np(err) : "0";

	return name ? name : "unknown errno";
}

uint64_t rd_fnv1a(uint64_t hash, const void *data, size_t size)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < size; i++) {
		hash ^= p[i];
		hash *= 0x100000001b3ull;
	}
	return hash;
}

static uint64_t splitmix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

void rd_pattern(void *buf, size_t size, uint64_t seed, uint64_t offset)
{
	unsigned char *p = buf;
	uint64_t word = 0, word_index = UINT64_MAX;

	for (size_t i = 0; i < size; i++) {
		uint64_t pos = offset + i;

		if (pos / 8 != word_index) {
			word_index = pos / 8;
			word = splitmix64(seed * 0x2545f4914f6cdd1dull ^ word_index);
		}
		p[i] = (unsigned char)(word >> (8 * (pos % 8)));
	}
}

ssize_t rd_write_all(int fd, const void *buf, size_t size)
{
	const unsigned char *p = buf;
	size_t done = 0;

	while (done < size) {
		ssize_t n = write(fd, p + done, size - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		done += (size_t)n;
	}
	return (ssize_t)done;
}

void rd_write_ok(int fd, const void *buf, size_t size)
{
	ssize_t n = write(fd, buf, size);

	cr_assert_eq(n, (ssize_t)size, "write of %zu bytes: expected %zu, got %zd (%s)", size, size,
		     n, n < 0 ? strerror(errno) : "short");
}

void rd_read_ok(int fd, void *buf, size_t size, size_t expect)
{
	ssize_t n = read(fd, buf, size);

	cr_assert_eq(n, (ssize_t)expect, "read with a %zu-byte buffer: expected %zu bytes, got %zd (%s)",
		     size, expect, n, n < 0 ? strerror(errno) : "count differs");
}

/* The child of this process named ringdevd, or -1.  Under valgrind
 * (tests/analysis/ringdevd-valgrind.sh as $RINGDEVD) the daemon's process
 * is named after the tool, "memcheck-amd64-" (the kernel keeps 15 bytes). */
pid_t rd_find_daemon_child(void)
{
	DIR *proc = opendir("/proc");
	pid_t found = -1;
	struct dirent *e;

	cr_assert_not_null(proc, "/proc: %s", strerror(errno));
	while (found < 0 && (e = readdir(proc))) {
		char path[RD_PATH_SIZE], line[512];
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f)) {
			char *end = strrchr(line, ')'); /* "pid (comm) S ppid ..." */
			int ppid = 0;
			bool named = strstr(line, "(ringdevd)") || strstr(line, "(memcheck-amd64-)");

			if (named && end && sscanf(end + 2, "%*c %d", &ppid) == 1 &&
			    ppid == (int)getpid())
				found = atoi(e->d_name);
		}
		fclose(f);
	}
	closedir(proc);
	return found;
}

uint64_t rd_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}
