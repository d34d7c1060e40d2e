/* SPDX-License-Identifier: MIT */
/*
 * daemon.c - ringdevd and brokers for ringdev-bench: each daemon on its own
 * temporary FUSE mount, started with the run's options, ready once its
 * mount root answers RINGDEV_IOC_VERSION; each broker ready once the daemon
 * reports it connected.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define READY_WAIT_MS 10000
#define DAEMON_EXTRA_MAX 16
#define ARGV_MAX (BENCH_MAX_DAEMON_ARGS + DAEMON_EXTRA_MAX + 16)

/* Enough pipes for section 5 and ring memory for every section. */
static const char *const base_args[] = {
	"--frontend=fuse", "-f", "--max-pipes", "20000", "--max-memory", "1G",
};

static void build_daemon_argv(const struct daemon *d, const char *const *extra, char *argv[ARGV_MAX])
{
	int n = 0;
	argv[n++] = (char *)cfg.ringdevd;
	for (size_t i = 0; i < sizeof(base_args) / sizeof(base_args[0]); i++)
		argv[n++] = (char *)base_args[i];
	argv[n++] = (char *)"--mount";
	argv[n++] = (char *)d->mount;
	for (int i = 0; extra && extra[i] && i < DAEMON_EXTRA_MAX; i++)
		argv[n++] = (char *)extra[i];
	for (int i = 0; i < cfg.ndaemon_args; i++)
		argv[n++] = (char *)cfg.daemon_args[i];
	argv[n] = NULL;
}

static bool daemon_answers(struct daemon *d)
{
	int fd = open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct ringdev_version v;
	memset(&v, 0, sizeof(v));
	if (fd >= 0 && ioctl(fd, RINGDEV_IOC_VERSION, &v) == 0) {
		if (v.abi_major != RINGDEV_ABI_MAJOR || v.frontend != RINGDEV_FRONTEND_FUSE)
			fail("%s: ABI %u.%u, frontend %u: not the FUSE frontend of ABI %d", d->mount, v.abi_major,
			     v.abi_minor, v.frontend, RINGDEV_ABI_MAJOR);
		d->root = fd;
		return true;
	}
	if (fd >= 0)
		close(fd);
	return false;
}

void daemon_start(struct daemon *d, const char *tag)
{
	daemon_start_with(d, tag, NULL);
}

void daemon_start_with(struct daemon *d, const char *tag, const char *const *extra)
{
	char *argv[ARGV_MAX];
	memset(d, 0, sizeof(*d));
	d->root = -1;
	bench_mkdir(tag, d->mount, sizeof(d->mount));
	build_daemon_argv(d, extra, argv);
	d->pid = spawn(CHILD_DAEMON, d->mount, SIGTERM); /* SIGTERM: it unmounts */
	if (d->pid == 0)
		exec_or_die(argv);
	for (int ms = 0; ms < READY_WAIT_MS; ms += 10) {
		int status;
		char how[48];
		if (child_exited(d->pid, &status))
			fail("%s ended (%s) before serving %s", cfg.ringdevd, status_text(status, how, sizeof(how)),
			     d->mount);
		if (daemon_answers(d))
			return;
		usleep(10000);
	}
	fail("%s did not serve %s within %d s", cfg.ringdevd, d->mount, READY_WAIT_MS / 1000);
}

void daemon_stop(struct daemon *d)
{
	if (d->root >= 0)
		close(d->root);
	d->root = -1;
	char how[48];
	int status = stop_child(d->pid);
	d->pid = 0;
	if (status != 0)
		fprintf(stderr, "ringdev-bench: ringdevd on %s ended with %s\n", d->mount,
			status_text(status, how, sizeof(how)));
}

int daemon_open(const struct daemon *d, const char *name, int flags)
{
	char path[BENCH_PATH_MAX + RINGDEV_NAME_SIZE];
	snprintf(path, sizeof(path), "%s/%s", d->mount, name);
	int fd = open(path, flags | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		die(path);
	return fd;
}

void pipe_set_capacity(int fd, uint64_t capacity)
{
	struct ringdev_pipe_config c;
	memset(&c, 0, sizeof(c));
	c.set = RINGDEV_SET_CAPACITY;
	c.capacity = capacity;
	if (ioctl(fd, RINGDEV_IOC_SET_CONFIG, &c) < 0)
		die("RINGDEV_IOC_SET_CONFIG capacity");
}

uint64_t pipe_capacity(int fd)
{
	struct ringdev_pipe_info info;
	memset(&info, 0, sizeof(info));
	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info) < 0)
		die("RINGDEV_IOC_PIPE_INFO");
	return info.capacity;
}

void daemon_stats(const struct daemon *d, struct ringdev_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (ioctl(d->root, RINGDEV_IOC_STATS, st) < 0)
		die("RINGDEV_IOC_STATS");
}

uint64_t daemon_rw_ops(const struct daemon *d)
{
	struct ringdev_stats st;
	daemon_stats(d, &st);
	return st.reads + st.writes;
}

/* Wait until the daemon reports a broker connected (or not). */
static void wait_broker(const struct daemon *d, pid_t pid, bool connected, const char *name)
{
	for (int ms = 0; ms < READY_WAIT_MS; ms += 5) {
		struct ringdev_stats st;
		int status;
		char how[48];
		daemon_stats(d, &st);
		if ((st.broker_connected != 0) == connected)
			return;
		if (connected && child_exited(pid, &status))
			fail("%s ended (%s) before connecting", name, status_text(status, how, sizeof(how)));
		usleep(5000);
	}
	fail("%s: the daemon did not see it %s within %d s", name, connected ? "connect" : "go",
	     READY_WAIT_MS / 1000);
}

pid_t broker_start(const struct daemon *d, const char *const *argv)
{
	char ctl[BENCH_PATH_MAX + 8];
	char *args[16];
	int n = 0;
	snprintf(ctl, sizeof(ctl), "%s/.ctl", d->mount);
	while (argv[n] && n < 14) {
		args[n] = (char *)argv[n];
		n++;
	}
	args[n++] = ctl;
	args[n] = NULL;
	pid_t pid = spawn(CHILD_BROKER, NULL, SIGTERM);
	if (pid == 0)
		exec_or_die(args);
	wait_broker(d, pid, true, argv[0]);
	return pid;
}

void broker_stop(const struct daemon *d, pid_t pid)
{
	char how[48];
	int status = stop_child(pid);
	if (status != 0)
		fprintf(stderr, "ringdev-bench: broker pid %d ended with %s\n", (int)pid,
			status_text(status, how, sizeof(how)));
	wait_broker(d, pid, false, "the broker");
}
