/* SPDX-License-Identifier: MIT */
/*
 * test_faults.c - dying and stopped peers: apps killed or stopped while
 * their reads, writes, opens and brokered ioctls wait; the daemon killed
 * with apps waiting on it. After each, nothing stays parked, memory is back
 * at its baseline, no app hangs, and a new daemon at the same place serves.
 *
 * The apps here are helper processes doing one blocking call; a raw broker
 * (the control node, opened by the test) holds relayed requests without
 * answering, so an open or an ioctl can be made to wait on demand.
 */
#include "harness.h"

#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>

RD_SUITE(faults, 120);

/* A device-specific ioctl: relayed to a broker while one is connected. */
struct fault_arg {
	uint32_t value;
	uint32_t pad;
};
#define FAULT_IOC _IOWR(RINGDEV_IOC_MAGIC, 0x90, struct fault_arg)

enum fault_op { OP_READ, OP_WRITE, OP_OPEN, OP_IOCTL };

struct fault_app {
	struct rd_daemon daemon;
	enum fault_op op;
	int fd;                      /* READ, WRITE, IOCTL: the handle; -1 for OPEN */
	char pipe[RINGDEV_NAME_SIZE];
	long ret;
	int err;
	int done;
};

static int fault_app_main(void *arg)
{
	struct fault_app *a = arg;
	char buf[256];
	struct fault_arg f = { 1, 0 };
	memset(buf, 'w', sizeof(buf));
	switch (a->op) {
	case OP_READ:
		a->ret = read(a->fd, buf, sizeof(buf));
		break;
	case OP_WRITE:
		a->ret = write(a->fd, buf, sizeof(buf));
		break;
	case OP_OPEN:
		a->ret = rd_open(&a->daemon, a->pipe, O_RDONLY, 0);
		break;
	case OP_IOCTL:
		a->ret = ioctl(a->fd, FAULT_IOC, &f);
		break;
	}
	a->err = a->ret < 0 ? errno : 0;
	a->done = 1;
	return 0;
}

static pid_t fault_app_start(struct rd_daemon *d, struct fault_app **out, enum fault_op op, int fd, const char *pipe)
{
	struct fault_app *a = rd_shared(sizeof(*a));
	a->daemon = *d;
	a->op = op;
	a->fd = fd;
	a->ret = -2;
	if (pipe)
		snprintf(a->pipe, sizeof(a->pipe), "%s", pipe);
	*out = a;
	return rd_spawn(fault_app_main, a, fd);
}

/* A pipe whose ring is full (capacity 4 KiB, written full), for a write
 * that waits. */
static int full_pipe(struct rd_daemon *d, const char *name)
{
	static char fill[4096];
	int fd = rd_create(d, name, O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, sizeof(fill));
	rd_write_ok(fd, fill, sizeof(fill));
	return fd;
}

/* What the tests that make four apps wait share: a pipe to read (`r`), a
 * full one to write (`w`), one for the brokered ioctl (`io`), the handle the
 * counters are read through, and the counters before anything waits. */
struct fault_pipes {
	int r, w, io, stats;
	char read_name[16]; /* r's pipe: what the waiting open opens */
	struct ringdev_stats before;
};

static void fault_pipes_make(struct rd_daemon *d, char prefix, struct fault_pipes *fp)
{
	char name[2][16];
	snprintf(fp->read_name, sizeof(fp->read_name), "%cRead", prefix);
	snprintf(name[0], sizeof(name[0]), "%cWrite", prefix);
	snprintf(name[1], sizeof(name[1]), "%cIoctl", prefix);
	fp->r = rd_create(d, fp->read_name, O_RDWR, 0, 0, 0);
	fp->w = full_pipe(d, name[0]);
	fp->io = rd_create(d, name[1], O_RDWR, 0, 0, 0);
	fp->stats = rd_keep_stats(d);
	fp->before = rd_stats(d);
}

/* Nothing waits, and neither ring memory nor handles were left behind.
 * A close sends its RELEASE without waiting for it (the control fd's, and
 * that of an open the kernel completed for an app it then killed), and
 * another serving thread may answer the STATS first: the handles are
 * waited for, within the harness's limit. */
static void fault_pipes_check_baseline(struct rd_daemon *d, const struct fault_pipes *fp, const char *who)
{
	rd_wait_opens(d, fp->before.opens);
	struct ringdev_stats after = rd_stats(d);
	cr_assert_eq(after.parked_reads + after.parked_writes + after.parked_other, 0, "%s: nothing parked", who);
	cr_assert_eq(after.memory_used, fp->before.memory_used, "%s: ring memory back at its baseline: %llu, was %llu",
		     who, (unsigned long long)after.memory_used, (unsigned long long)fp->before.memory_used);
	cr_assert_eq(after.opens, fp->before.opens, "%s: no handle left behind: %llu, was %llu", who,
		     (unsigned long long)after.opens, (unsigned long long)fp->before.opens);
}

static void fault_pipes_close(struct rd_daemon *d, struct fault_pipes *fp)
{
	rd_close(d, fp->io);
	rd_close(d, fp->w);
	rd_close(d, fp->r);
	rd_end(d);
	close(fp->stats);
}

/* Four apps that wait: a read on fp->r, a write on the full pipe fp->w,
 * and, held by a broker (the returned control fd) that never answers, an
 * ioctl on fp->io and an open of fp->r's pipe. */
static int start_four_waiting(struct rd_daemon *d, const struct fault_pipes *fp, struct fault_app *a[4], pid_t pid[4])
{
	pid[0] = fault_app_start(d, &a[0], OP_READ, fp->r, NULL);
	pid[1] = fault_app_start(d, &a[1], OP_WRITE, fp->w, NULL);
	rd_wait_parked(d, 1, 1);
	int ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "open the control node: %s", rd_errname(errno));
	pid[2] = fault_app_start(d, &a[2], OP_IOCTL, fp->io, NULL);
	rd_wait_other(d, 1);
	pid[3] = fault_app_start(d, &a[3], OP_OPEN, -1, fp->read_name);
	rd_wait_other(d, 2);
	return ctl;
}

/* Kill every app with SIGKILL while each one waits (a read, a write, an
 * open and an ioctl held by a broker that never answers): each wait ends,
 * nothing stays parked, and the ring memory is what it was before. */
Test(faults, killed_apps_leave_nothing_parked_and_no_memory_behind)
{
	struct rd_daemon *d = rd_start(NULL);
	struct fault_pipes fp;
	fault_pipes_make(d, 'K', &fp);
	struct fault_app *a[4];
	pid_t pid[4];

	int ctl = start_four_waiting(d, &fp, a, pid);
	for (int i = 0; i < 4; i++)
		kill(pid[i], SIGKILL);
	for (int i = 0; i < 4; i++) {
		int status;
		cr_assert(rd_wait_child(pid[i], RD_CHILD_TIMEOUT_MS, &status), "app %d hangs after SIGKILL", i);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "app %d: status %#x", i, status);
	}
	rd_wait_parked(d, 0, 0);
	rd_wait_other(d, 0);
	close(ctl);
	fault_pipes_check_baseline(d, &fp, "after the kills");
	fault_pipes_close(d, &fp);
}

/* A stopped app loses nothing. A stop is a signal: the kernel interrupts
 * the FUSE request, the daemon ends it with EINTR having taken nothing,
 * and FUSE has no way to restart the call, so the read returns EINTR once
 * the process continues (on CUSE and the mount alike; ringdev(4) says so).
 * The data is all there for the next read. */
Test(faults, a_stopped_reader_gets_eintr_after_sigcont_and_loses_nothing)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Stopped", O_RDWR, 0, 0, 0);
	struct fault_app *a;
	pid_t pid = fault_app_start(d, &a, OP_READ, fd, NULL);
	rd_wait_parked(d, 1, 0);
	cr_assert_eq(kill(pid, SIGSTOP), 0);
	int status;
	cr_assert_eq(waitpid(pid, &status, WUNTRACED), pid);
	cr_assert(WIFSTOPPED(status), "the reader is stopped");
	rd_wait_parked(d, 0, 0);
	rd_write_ok(fd, "late", 4);
	cr_assert_eq(kill(pid, SIGCONT), 0);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert(a->done && a->ret == -1 && a->err == EINTR, "the stopped read: %ld (%s)", a->ret, rd_errname(a->err));
	pid = fault_app_start(d, &a, OP_READ, fd, NULL);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert(a->ret == 4, "the next read gets all 4 bytes: %ld (%s)", a->ret, rd_errname(a->err));
	rd_close(d, fd);
	rd_end(d);
}

/* The daemon killed while apps wait on it: every app gets an error at
 * once (the kernel aborts the connection), none hangs, and a new daemon at
 * the same mount or name serves. */
Test(faults, a_killed_daemon_fails_every_waiting_app_and_a_new_one_serves)
{
	struct rd_daemon *d = rd_start(NULL);
	struct fault_pipes fp;
	fault_pipes_make(d, 'D', &fp);
	struct fault_app *a[4];
	pid_t pid[4];

	int ctl = start_four_waiting(d, &fp, a, pid);
	rd_kill(d, SIGKILL);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(rd_join(pid[i]), 0, "app %d", i);
		cr_assert(a[i]->done && a[i]->ret == -1, "app %d: the wait ended with an error (got %ld)", i, a[i]->ret);
		cr_assert(a[i]->err == ECONNABORTED || a[i]->err == ENOTCONN || a[i]->err == ENODEV,
			  "app %d: the daemon's death gives ECONNABORTED, ENOTCONN or ENODEV, got %s", i,
			  rd_errname(a[i]->err));
	}
	close(ctl);
	close(fp.io);
	close(fp.w);
	close(fp.r);
	close(fp.stats);
	rd_restart(d);
	int fd = rd_create(d, "After", O_RDWR | O_NONBLOCK, 0, 0, 0);
	char buf[8];
	rd_write_ok(fd, "again", 5);
	rd_read_ok(fd, buf, sizeof(buf), 5);
	rd_close(d, fd);
	rd_end(d);
}

/* A broker that answers late: the app waits for it (nothing times out
 * once a broker took the request) and gets the answer. */
Test(faults, a_slow_broker_is_waited_for)
{
	struct rd_daemon *d = rd_start(NULL);
	int io = rd_create(d, "Slow", O_RDWR, 0, 0, 0);
	int ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "open the control node: %s", rd_errname(errno));
	struct fault_app *a;
	pid_t pid = fault_app_start(d, &a, OP_IOCTL, io, NULL);
	struct ringdev_ctl_transact t;
	cr_assert_eq(rd_transact(ctl, NULL, 0, 1, RD_PARK_TIMEOUT_MS, &t), 0, "TRANSACT: %s", rd_errname(errno));
	cr_assert_eq(t.nrequests, 1);
	cr_assert_eq(t.requests[0].type, (uint32_t)RINGDEV_CTL_IOCTL);
	usleep(300 * 1000); /* the broker takes its time */
	cr_assert(!a->done, "the app waits for the broker's answer");
	struct ringdev_ctl_answer ans;
	memset(&ans, 0, sizeof(ans));
	ans.id = t.requests[0].id;
	ans.result = 42;
	cr_assert_eq(rd_transact(ctl, &ans, 1, 0, 0, &t), 0);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert_eq(a->ret, 42, "the late answer reaches the app: %ld (%s)", a->ret, rd_errname(a->err));
	close(ctl);
	rd_close(d, io);
	rd_end(d);
}

/* Kills racing every parked kind: each round starts the four waiting apps
 * (a read, a write on a full pipe, and an ioctl and an open held by a broker
 * that never answers) and kills them a random 0 to 3 ms later, before,
 * while or after each request parks; every few rounds the broker goes too,
 * racing the kills with its own release. Whatever order the kernel's
 * INTERRUPT, RELEASE and the broker's close come in, nothing stays parked,
 * no handle or ring memory is left, and the daemon serves the next round. */
Test(faults, kills_racing_every_parked_kind_leave_nothing_behind)
{
	struct rd_daemon *d = rd_start(NULL);
	struct fault_pipes fp;
	fault_pipes_make(d, 'R', &fp);
	unsigned seed = (unsigned)time(NULL);
	fprintf(stderr, "kills_racing: seed %u\n", seed);
	int ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "open the control node: %s", rd_errname(errno));
	for (int round = 0; round < 20; round++) {
		struct fault_app *a[4];
		pid_t pid[4];
		pid[0] = fault_app_start(d, &a[0], OP_READ, fp.r, NULL);
		pid[1] = fault_app_start(d, &a[1], OP_WRITE, fp.w, NULL);
		pid[2] = fault_app_start(d, &a[2], OP_IOCTL, fp.io, NULL);
		pid[3] = fault_app_start(d, &a[3], OP_OPEN, -1, fp.read_name);
		usleep((useconds_t)(rand_r(&seed) % 3000));
		bool broker_goes = round % 4 == 3;
		for (int i = 0; i < 4; i++) {
			kill(pid[i], SIGKILL);
			if (broker_goes && i == 1) {
				close(ctl);
				ctl = -1;
			}
		}
		for (int i = 0; i < 4; i++) {
			int status;
			cr_assert(rd_wait_child(pid[i], RD_CHILD_TIMEOUT_MS, &status), "round %d: app %d hangs after SIGKILL",
				  round, i);
		}
		rd_wait_parked(d, 0, 0);
		rd_wait_other(d, 0);
		if (ctl < 0) {
			rd_wait_broker(d, 0);
			ctl = rd_ctl_open(d);
			cr_assert_geq(ctl, 0, "round %d: the control node opens again: %s", round, rd_errname(errno));
		}
	}
	close(ctl);
	fault_pipes_check_baseline(d, &fp, "after 20 rounds");
	char buf[8];
	int fd = rd_open(d, fp.read_name, O_RDWR | O_NONBLOCK, 0);
	cr_assert_geq(fd, 0, "the daemon still opens pipes: %s", rd_errname(errno));
	rd_write_ok(fd, "alive", 5);
	rd_read_ok(fd, buf, sizeof(buf), 5);
	rd_close(d, fd);
	fault_pipes_close(d, &fp);
}

/* Every parked kind stopped: SIGSTOP interrupts each wait (the daemon ends
 * the request, and for a relayed one tells the broker), so while the apps
 * are stopped nothing is parked; after SIGCONT each call has ended with
 * EINTR and none took or left anything. */
Test(faults, stopped_apps_of_every_parked_kind_leave_nothing_parked)
{
	struct rd_daemon *d = rd_start(NULL);
	struct fault_pipes fp;
	fault_pipes_make(d, 'S', &fp);
	struct fault_app *a[4];
	pid_t pid[4];

	int ctl = start_four_waiting(d, &fp, a, pid);
	for (int i = 0; i < 4; i++) {
		int status;
		cr_assert_eq(kill(pid[i], SIGSTOP), 0);
		cr_assert_eq(waitpid(pid[i], &status, WUNTRACED), pid[i]);
		cr_assert(WIFSTOPPED(status), "app %d is stopped", i);
	}
	rd_wait_parked(d, 0, 0);
	rd_wait_other(d, 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(kill(pid[i], SIGCONT), 0);
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(rd_join(pid[i]), 0, "app %d", i);
		cr_assert(a[i]->done && a[i]->ret == -1 && a[i]->err == EINTR, "app %d: the stopped call: %ld (%s)", i,
			  a[i]->ret, rd_errname(a[i]->err));
	}
	close(ctl);
	fault_pipes_check_baseline(d, &fp, "after the stops");
	fault_pipes_close(d, &fp);
}
