/* SPDX-License-Identifier: MIT */
/*
 * workers.c - the processes of a measured run (writers, readers, ping and
 * pong) and how they are run: all forked first, each says it is ready,
 * then all are released at once; each times itself in shared memory, so
 * neither fork nor exit counts, and the run's time is from the first
 * start to the last end.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"

#define RUN_TIMEOUT_S 300
#define BUF_SIZE (256u << 10)

struct timings {
	double start[MAX_WORKERS];
	double end[MAX_WORKERS];
};

static char buf[BUF_SIZE];

void stream_writer(const struct worker *w)
{
	memset(buf, 'x', w->chunk);
	for (uint64_t i = 0; i < w->count; i++)
		write_all(w->out, buf, w->chunk);
}

/* Reads until `total` bytes came; a read of 0 bytes means "nothing yet"
 * where `zero_ok` (the bare server answers reads at once, data or not). */
static void read_total(int fd, size_t size, uint64_t total, bool zero_ok)
{
	uint64_t got = 0;
	while (got < total) {
		ssize_t r = read(fd, buf, size);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0 && !zero_ok)
			fail("read: unexpected end of file after %llu of %llu bytes", (unsigned long long)got,
			     (unsigned long long)total);
		got += (uint64_t)r;
	}
}

void stream_reader(const struct worker *w)
{
	read_total(w->in, w->chunk, w->count * w->chunk, false);
}

void drain_reader(const struct worker *w)
{
	read_total(w->in, 64u << 10, w->count * w->chunk, true);
}

void ping_worker(const struct worker *w)
{
	memset(buf, 'p', w->chunk);
	for (uint64_t i = 0; i < w->count; i++) {
		write_all(w->out, buf, w->chunk);
		read_all(w->in, buf, w->chunk);
	}
}

void pong_worker(const struct worker *w)
{
	for (uint64_t i = 0; i < w->count; i++) {
		read_all(w->in, buf, w->chunk);
		write_all(w->out, buf, w->chunk);
	}
}

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig)
{
	(void)sig;
	timed_out = 1;
}

/* In the forked worker: say ready, wait for the release, run, time it. */
static __attribute__((noreturn)) void worker_main(const struct worker *w, int i, int ready, int go,
						  struct timings *t)
{
	char c = 'r';
	pid_t parent = getppid();
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0)
		die("prctl(PR_SET_PDEATHSIG)");
	if (getppid() != parent)
		_exit(1);
	write_all(ready, &c, 1);
	if (read(go, &c, 1) != 0)
		fail("the release of the workers");
	t->start[i] = now();
	w->run(w);
	t->end[i] = now();
	_exit(0);
}

/* The workers of the run going on now (0: reaped), for workers_kill. */
static pid_t running[MAX_WORKERS];
static int nrunning;

/* Kill and reap what is left of the run's workers. */
static void kill_workers(pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (int i = 0; i < n; i++)
		if (pids[i] > 0)
			waitpid(pids[i], NULL, 0);
	for (int i = 0; i < n; i++)
		pids[i] = 0;
}

void workers_kill(void)
{
	kill_workers(running, nrunning);
	nrunning = 0;
}

static void wait_workers(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: waitpid ends with EINTR */
	sigaction(SIGALRM, &sa, NULL);
	timed_out = 0;
	alarm(RUN_TIMEOUT_S);
	pid_t *pids = running;
	int n = nrunning;
	for (int left = n; left > 0;) {
		int status;
		char how[48];
		pid_t pid = waitpid(-1, &status, 0);
		if (pid < 0 && errno == EINTR && timed_out) {
			workers_kill();
			fail("the workers did not finish within %d s", RUN_TIMEOUT_S);
		}
		if (pid < 0 && errno == EINTR)
			continue;
		if (pid < 0)
			die("waitpid");
		int i = 0;
		while (i < n && pids[i] != pid)
			i++;
		if (i == n) { /* a daemon, server or broker of the run */
			alarm(0);
			workers_kill();
			fail("pid %d of the run ended (%s) while workers ran", (int)pid,
			     status_text(status, how, sizeof(how)));
		}
		pids[i] = 0;
		left--;
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			alarm(0);
			workers_kill();
			fail("a worker ended (%s)", status_text(status, how, sizeof(how))); /* it said why */
		}
	}
	alarm(0);
	nrunning = 0;
}

double run_workers(const struct worker *w, int n)
{
	static struct timings *t;
	int ready[2], go[2];
	if (n < 1 || n > MAX_WORKERS)
		fail("%d workers: 1 to %d", n, MAX_WORKERS);
	if (!t)
		t = shared_alloc(sizeof(*t));
	if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(go, O_CLOEXEC) < 0)
		die("pipe2 for the release of the workers");
	fflush(NULL);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();
		if (pid < 0)
			die("fork");
		if (pid == 0) {
			close(ready[0]);
			close(go[1]);
			worker_main(&w[i], i, ready[1], go[0], t);
		}
		running[nrunning++] = pid;
	}
	close(ready[1]);
	close(go[0]);
	char c[MAX_WORKERS];
	read_all(ready[0], c, (size_t)n);
	close(ready[0]);
	close(go[1]); /* everyone's read of go ends: all start */
	wait_workers();
	double first = t->start[0], last = t->end[0];
	for (int i = 1; i < n; i++) {
		first = t->start[i] < first ? t->start[i] : first;
		last = t->end[i] > last ? t->end[i] : last;
	}
	return last - first;
}
