/* SPDX-License-Identifier: MIT */
/*
 * children.c - the processes and mounts a run makes, and their end on
 * every exit path: a normal stop, a failure (die), a signal to the run.
 *
 * Long-lived children (ringdevd, the bare libfuse server, brokers) are
 * registered with their mount; each gets PR_SET_PDEATHSIG so that it also
 * ends if the run is killed outright. Stopping one is SIGTERM, a bounded
 * wait, SIGKILL if need be, then a lazy unmount of its mount (a no-op
 * after a clean exit) and the removal of the directory.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define MAX_CHILDREN 16
#define MAX_DIRS 16
#define STOP_WAIT_MS 5000

struct child {
	pid_t pid;                    /* 0: free slot */
	enum child_kind kind;
	char mount[BENCH_PATH_MAX];   /* "" for none */
};

static struct child children[MAX_CHILDREN];
static char tmpdir[BENCH_PATH_MAX];
static char dirs[MAX_DIRS][BENCH_PATH_MAX]; /* made under tmpdir, removed at the end */
static int ndirs;

const char *bench_tmpdir(void)
{
	if (!tmpdir[0]) {
		char tmpl[] = "/tmp/ringdev-bench.XXXXXX";
		if (!mkdtemp(tmpl))
			die("mkdtemp");
		snprintf(tmpdir, sizeof(tmpdir), "%s", tmpl);
	}
	return tmpdir;
}

void bench_mkdir(const char *tag, char *path, size_t size)
{
	if (ndirs == MAX_DIRS)
		fail("too many directories");
	snprintf(path, size, "%s/%s", bench_tmpdir(), tag);
	if (mkdir(path, 0755) < 0 && errno != EEXIST)
		die(path);
	snprintf(dirs[ndirs++], BENCH_PATH_MAX, "%s", path);
}

static struct child *find_child(pid_t pid)
{
	for (int i = 0; i < MAX_CHILDREN; i++)
		if (children[i].pid == pid)
			return &children[i];
	return NULL;
}

pid_t spawn(enum child_kind kind, const char *mount, int deathsig)
{
	struct child *c = find_child(0);
	if (!c)
		fail("too many child processes");
	pid_t parent = getpid();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		/* The run's handlers are not the child's (libfuse installs its
		 * own only over the default ones). */
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		signal(SIGHUP, SIG_DFL);
		if (prctl(PR_SET_PDEATHSIG, deathsig) < 0)
			die("prctl(PR_SET_PDEATHSIG)");
		if (getppid() != parent) /* the run died before the prctl */
			_exit(1);
		return 0;
	}
	c->pid = pid;
	c->kind = kind;
	snprintf(c->mount, sizeof(c->mount), "%s", mount ? mount : "");
	return pid;
}

const char *status_text(int status, char *buf, size_t size)
{
	if (WIFEXITED(status))
		snprintf(buf, size, "exit status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, size, "killed by signal %d", WTERMSIG(status));
	else
		snprintf(buf, size, "wait status %d", status);
	return buf;
}

void exec_or_die(char *const argv[])
{
	execv(argv[0], argv);
	die(argv[0]);
}

/* The mount is gone once its server has exited cleanly; a server that was
 * killed leaves a dead mount (ENOTCONN) that a lazy unmount removes. */
static void release_child(struct child *c)
{
	if (c->mount[0] && umount2(c->mount, MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT)
		fprintf(stderr, "ringdev-bench: umount %s: %s\n", c->mount, strerror(errno));
	c->pid = 0;
}

/* waitpid with a deadline: true once reaped. */
static bool wait_bounded(pid_t pid, int *status, int ms)
{
	for (int waited = 0;; waited++) {
		pid_t r = waitpid(pid, status, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD))
			return true;
		if (waited >= ms)
			return false;
		usleep(1000);
	}
}

int stop_child(pid_t pid)
{
	struct child *c = find_child(pid);
	int status = 0;
	if (!c || pid <= 0)
		return 0;
	kill(pid, SIGTERM);
	if (!wait_bounded(pid, &status, STOP_WAIT_MS)) {
		fprintf(stderr, "ringdev-bench: pid %d did not stop on SIGTERM: killed\n", (int)pid);
		kill(pid, SIGKILL);
		waitpid(pid, &status, 0);
	}
	release_child(c);
	return status;
}

bool child_exited(pid_t pid, int *status)
{
	struct child *c = find_child(pid);
	if (!c || pid <= 0)
		return true;
	pid_t r = waitpid(pid, status, WNOHANG);
	if (r == 0)
		return false;
	release_child(c);
	return true;
}

/* Workers first (they would only fail once their daemon goes), then
 * brokers: they hold the daemons' control nodes. */
void stop_all_children(void)
{
	workers_kill();
	static const enum child_kind order[] = { CHILD_BROKER, CHILD_SERVER, CHILD_DAEMON };
	for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (int i = 0; i < MAX_CHILDREN; i++)
			if (children[i].pid && children[i].kind == order[k])
				stop_child(children[i].pid);
	for (int i = ndirs - 1; i >= 0; i--)
		rmdir(dirs[i]);
	ndirs = 0;
	if (tmpdir[0])
		rmdir(tmpdir);
	tmpdir[0] = '\0';
}

static volatile sig_atomic_t exiting;

/* In the run: stop everything and exit 1. What runs here is kill, waitpid,
 * nanosleep, umount2, rmdir and write, which a handler may call (only the
 * line about an unmount that failed uses stdio). A worker just exits: it
 * shares the run's table of children but must not stop them. */
static void on_exit_signal(int sig)
{
	static const char msg[] = "ringdev-bench: stopped by a signal\n";
	if (!bench_is_main())
		_exit(1);
	if (exiting)
		return;
	exiting = 1;
	(void)sig;
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to say: stop all the same */
	}
	stop_all_children();
	_exit(1);
}

void install_exit_handlers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_exit_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}
