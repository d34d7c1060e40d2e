/* SPDX-License-Identifier: MIT */
/*
 * test_poll.c - poll/epoll/select readiness: POLLIN when data is queued,
 * POLLOUT when a write of min(4096, capacity/2) bytes would not park (always
 * with the overwrite policy), POLLHUP in the EOF state; and wake-ups when
 * readiness changes.
 *
 * A waiter thread blocks in poll/epoll_wait/select with a long limit; the
 * test waits until the daemon counts its pending poll handle (stats.pollers)
 * before changing readiness, so the wake-up comes from the daemon's
 * notification, not from a lucky order.  Each wake-up uses fresh handles.
 */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/select.h>
#include <time.h>

RD_SUITE(poll, 60);

#define CAP 4096u
#define WAIT_LIMIT_MS 10000

enum mechanism { USE_POLL, USE_EPOLL, USE_SELECT };

struct waiter {
	enum mechanism how;
	int fd;
	short events;          /* POLLIN or POLLOUT */
	int epfd;
	int ret;
	int err;
	short revents;
	pthread_t thread;
};

static void *waiter_main(void *arg)
{
	struct waiter *w = arg;

	if (w->how == USE_POLL) {
		struct pollfd p = { .fd = w->fd, .events = w->events };

		w->ret = poll(&p, 1, WAIT_LIMIT_MS);
		w->revents = p.revents;
	} else if (w->how == USE_EPOLL) {
		struct epoll_event ev;

		w->ret = epoll_wait(w->epfd, &ev, 1, WAIT_LIMIT_MS);
		w->revents = w->ret > 0 ? (short)ev.events : 0;
	} else {
		fd_set rd, wr;
		struct timeval tv = { .tv_sec = WAIT_LIMIT_MS / 1000 };

		FD_ZERO(&rd);
		FD_ZERO(&wr);
		FD_SET(w->fd, w->events == POLLIN ? &rd : &wr);
		w->ret = select(w->fd + 1, &rd, &wr, NULL, &tv);
		if (w->ret > 0)
			w->revents = FD_ISSET(w->fd, &rd) ? POLLIN : FD_ISSET(w->fd, &wr) ? POLLOUT : 0;
	}
	w->err = w->ret < 0 ? errno : 0;
	return NULL;
}

/* Start a waiter on fd and wait until the daemon holds its poll handle. */
static void waiter_start(const struct rd_daemon *d, struct waiter *w, enum mechanism how, int fd,
			 short events)
{
	uint64_t pollers = rd_stats(d).pollers;

	memset(w, 0, sizeof(*w));
	w->how = how;
	w->fd = fd;
	w->events = events;
	w->epfd = -1;
	if (how == USE_EPOLL) {
		struct epoll_event ev = { .events = events == POLLIN ? EPOLLIN : EPOLLOUT };

		w->epfd = epoll_create1(EPOLL_CLOEXEC);
		cr_assert_geq(w->epfd, 0, "epoll_create1: %s", strerror(errno));
		ev.data.fd = fd;
		cr_assert_eq(epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev), 0, "EPOLL_CTL_ADD: %s",
			     strerror(errno));
	}
	cr_assert_eq(pthread_create(&w->thread, NULL, waiter_main, w), 0, "pthread_create");
	rd_wait_pollers(d, pollers + 1);
}

static void waiter_join(struct waiter *w, const char *what)
{
	struct timespec limit;

	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += 2 * WAIT_LIMIT_MS / 1000;
	cr_assert_eq(pthread_timedjoin_np(w->thread, NULL, &limit), 0, "%s: the waiter never returned",
		     what);
	if (w->epfd >= 0)
		close(w->epfd);
	cr_assert_gt(w->ret, 0, "%s: expected a wake-up, got %d (%s)", what, w->ret,
		     w->ret == 0 ? "timed out: no notification" : rd_errname(w->err));
}

static short poll_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, 0);

	cr_assert_geq(n, 0, "poll: %s", strerror(errno));
	return n ? p.revents : 0;
}

Test(poll, readiness_states)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "P", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int w = rd_open_ok(d, "P", O_WRONLY | O_NONBLOCK);
	int big_r = rd_create(d, "Big", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK,
			      65536);
	int big_w = rd_open_ok(d, "Big", O_WRONLY);
	int ow = rd_create(d, "Over", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_OVERWRITE, CAP);
	static unsigned char buf[65536];

	cr_assert_eq(poll_now(r, POLLIN) & (POLLIN | POLLHUP | POLLERR), 0, "empty, writer attached: quiet");
	cr_assert(poll_now(w, POLLOUT) & POLLOUT, "empty pipe: POLLOUT");

	rd_write_ok(w, buf, 10);
	cr_assert(poll_now(r, POLLIN) & POLLIN, "data queued: POLLIN");
	/* POLLOUT: a write of min(4096, capacity/2) = 2048 bytes would not park. */
	rd_write_ok(w, buf, 2038);
	cr_assert(poll_now(w, POLLOUT) & POLLOUT, "2048 bytes free: POLLOUT");
	rd_write_ok(w, buf, 1);
	cr_assert_eq(poll_now(w, POLLOUT) & POLLOUT, 0, "2047 bytes free: no POLLOUT");
	rd_read_ok(r, buf, sizeof(buf), 2049);
	cr_assert_eq(poll_now(r, POLLIN) & POLLIN, 0, "drained: no POLLIN");
	cr_assert(poll_now(w, POLLOUT) & POLLOUT, "drained: POLLOUT");

	/* Capacity 64 KiB: the threshold is 4096 bytes. */
	rd_write_ok(big_w, buf, 65536 - 4096);
	cr_assert(poll_now(big_w, POLLOUT) & POLLOUT, "4096 free in 64 KiB: POLLOUT");
	rd_write_ok(big_w, buf, 1);
	cr_assert_eq(poll_now(big_w, POLLOUT) & POLLOUT, 0, "4095 free in 64 KiB: no POLLOUT");

	/* Overwrite policy: always writable. */
	rd_write_ok(ow, buf, CAP);
	cr_assert(poll_now(ow, POLLOUT) & POLLOUT, "overwrite policy, full: POLLOUT");

	/* EOF: POLLHUP, and no POLLIN without data. */
	rd_close(d, w);
	cr_assert(poll_now(r, POLLIN) & POLLHUP, "EOF state: POLLHUP");
	cr_assert_eq(poll_now(r, POLLIN) & POLLIN, 0, "EOF state, empty: no POLLIN");

	close(ow);
	close(big_w);
	close(big_r);
	close(r);
	rd_end(d);
}

static void wake_on_data(enum mechanism how, const char *what)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "P", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int w = rd_open_ok(d, "P", O_WRONLY);
	struct waiter waiter;

	cr_assert_eq(poll_now(r, POLLIN) & POLLIN, 0, "empty at first");
	waiter_start(d, &waiter, how, r, POLLIN);
	rd_write_ok(w, "x", 1);
	waiter_join(&waiter, what);
	cr_assert(waiter.revents & POLLIN, "%s: POLLIN after a write (revents %#x)", what,
		  (unsigned)waiter.revents);
	close(w);
	close(r);
	rd_end(d);
}

Test(poll, poll_wakes_when_data_arrives)
{
	wake_on_data(USE_POLL, "poll");
}

Test(poll, epoll_wakes_when_data_arrives)
{
	wake_on_data(USE_EPOLL, "epoll");
}

Test(poll, select_wakes_when_data_arrives)
{
	wake_on_data(USE_SELECT, "select");
}

static void wake_on_room(enum mechanism how, const char *what)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "P", O_WRONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int r = rd_open_ok(d, "P", O_RDONLY | O_NONBLOCK);
	static unsigned char buf[CAP];
	struct waiter waiter;

	rd_write_ok(w, buf, CAP);
	cr_assert_eq(poll_now(w, POLLOUT) & POLLOUT, 0, "full: no POLLOUT");
	waiter_start(d, &waiter, how, w, POLLOUT);
	/* 1000 bytes free is not enough for a 2048-byte write: still quiet. */
	rd_read_ok(r, buf, 1000, 1000);
	cr_assert_eq(poll_now(w, POLLOUT) & POLLOUT, 0, "1000 free: no POLLOUT");
	rd_read_ok(r, buf, 1048, 1048);
	waiter_join(&waiter, what);
	cr_assert(waiter.revents & POLLOUT, "%s: POLLOUT once 2048 bytes are free (revents %#x)", what,
		  (unsigned)waiter.revents);
	close(r);
	close(w);
	rd_end(d);
}

Test(poll, poll_wakes_when_room_appears)
{
	wake_on_room(USE_POLL, "poll");
}

Test(poll, epoll_wakes_when_room_appears)
{
	wake_on_room(USE_EPOLL, "epoll");
}

Test(poll, select_wakes_when_room_appears)
{
	wake_on_room(USE_SELECT, "select");
}

Test(poll, poll_wakes_with_pollhup_at_eof)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "P", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int w = rd_open_ok(d, "P", O_WRONLY);
	struct waiter waiter;

	waiter_start(d, &waiter, USE_POLL, r, POLLIN);
	rd_close(d, w);
	waiter_join(&waiter, "poll at the last writer's close");
	cr_assert(waiter.revents & POLLHUP, "POLLHUP when the last writer closes (revents %#x)",
		  (unsigned)waiter.revents);
	close(r);
	rd_end(d);
}

Test(poll, every_handle_waiting_is_woken)
{
	struct rd_daemon *d = rd_start(NULL);
	int r1 = rd_create(d, "P", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_BLOCK, CAP);
	int r2 = rd_open_ok(d, "p", O_RDONLY | O_NONBLOCK);
	int w = rd_open_ok(d, "P", O_WRONLY);
	struct waiter a, b;

	waiter_start(d, &a, USE_POLL, r1, POLLIN);
	waiter_start(d, &b, USE_EPOLL, r2, POLLIN);
	rd_write_ok(w, "m", 1);
	waiter_join(&a, "poll on the first reader");
	waiter_join(&b, "epoll on the second reader");
	cr_assert(a.revents & POLLIN, "first reader: POLLIN");
	cr_assert(b.revents & POLLIN, "second reader: POLLIN");
	close(w);
	close(r2);
	close(r1);
	rd_end(d);
}

/* A poller of a handle that leaves its pipe while it waits is woken: DETACH
 * and REMOVE report POLLERR, an ATTACH elsewhere the new pipe's state
 * (issue 19, item 14: a poll with no timeout used to sleep for ever). */
static void wake_on_leaving(enum mechanism how, const char *what)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "Left", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int full = rd_create(d, "Full", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	struct waiter waiter;
	char msg[128];

	int keep = rd_open_ok(d, "Left", O_WRONLY); /* Left stays while r comes and goes */

	rd_write_ok(full, "y", 1);
	snprintf(msg, sizeof(msg), "%s, DETACH", what);
	waiter_start(d, &waiter, how, r, POLLIN);
	cr_assert_eq(ioctl(r, RINGDEV_IOC_DETACH), 0, "DETACH: %s", rd_errname(errno));
	waiter_join(&waiter, msg);
	cr_assert(waiter.revents & (POLLERR | POLLIN), "%s: revents %#x", msg, (unsigned)waiter.revents);
	cr_assert(poll_now(r, POLLIN) & POLLERR, "%s: a detached handle reports POLLERR", msg);

	snprintf(msg, sizeof(msg), "%s, ATTACH elsewhere", what);
	cr_assert_eq(rd_attach(r, "Left", 0, 0, 0, 0, 0), 0);
	waiter_start(d, &waiter, how, r, POLLIN);
	cr_assert_eq(rd_attach(r, "Full", 0, 0, 0, 0, 0), 0, "ATTACH: %s", rd_errname(errno));
	waiter_join(&waiter, msg);
	cr_assert(waiter.revents & POLLIN, "%s: the new pipe has data (revents %#x)", msg, (unsigned)waiter.revents);

	snprintf(msg, sizeof(msg), "%s, REMOVE", what);
	cr_assert_eq(rd_attach(r, "Left", 0, 0, 0, 0, 0), 0);
	waiter_start(d, &waiter, how, r, POLLIN);
	struct ringdev_name rm = { .name = "Left" };
	cr_assert_eq(ioctl(full, RINGDEV_IOC_REMOVE, &rm), 0, "REMOVE: %s", rd_errname(errno));
	waiter_join(&waiter, msg);
	cr_assert(poll_now(r, POLLIN) & POLLERR, "%s: the handle of a removed pipe reports POLLERR", msg);
	close(keep);
	close(full);
	close(r);
	rd_end(d);
}

Test(poll, poll_wakes_when_its_handle_leaves_the_pipe)
{
	wake_on_leaving(USE_POLL, "poll");
}

Test(poll, epoll_wakes_when_its_handle_leaves_the_pipe)
{
	wake_on_leaving(USE_EPOLL, "epoll");
}
