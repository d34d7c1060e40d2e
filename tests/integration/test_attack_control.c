/* SPDX-License-Identifier: MIT */
/*
 * test_attack_control.c - a hostile broker's answers (review h/attack-ctl2).
 * Both tests fail on the code they were written against.
 */
#include "harness.h"

#include <sys/ioctl.h>
#include <sys/wait.h>

RD_SUITE(attack_control, 60);

static const struct rd_daemon *g_d;

static int app_open_pre(void *arg)
{
	(void)arg;
	int fd = rd_open(g_d, "pre", O_RDWR, 0);
	if (fd >= 0)
		return 0;
	return errno == EIO ? 10 : errno == ENOSYS ? 11 : errno == EACCES ? 12 : 13;
}

/* Take one request of `type`, skipping notices; asserts. */
static struct ringdev_ctl_request take(int c, uint32_t type)
{
	struct ringdev_ctl_transact t;
	for (int i = 0; i < 50; i++) {
		cr_assert_eq(rd_transact(c, NULL, 0, 1, 100, &t), 0);
		if (t.nrequests && t.requests[0].type == type)
			return t.requests[0];
	}
	cr_assert_fail("no request of type %u", type);
	return (struct ringdev_ctl_request){ 0 };
}

/* ringdev(4): BUILTIN needs result 0; with -errno it is malformed (EIO). The
 * daemon instead applies the built-in decision: the broker's deny opens. */
Test(attack_control, builtin_with_errno_is_malformed)
{
	struct rd_daemon *d = rd_start(NULL);
	g_d = d;
	int pre = rd_create(d, "pre", O_RDWR, 0, 0, 0);
	rd_stats_through(d, pre);
	int c = rd_ctl_open(d);
	cr_assert(c >= 0);
	pid_t p = rd_spawn(app_open_pre, NULL, -1);
	struct ringdev_ctl_request q = take(c, RINGDEV_CTL_OPEN);
	struct ringdev_ctl_answer a;
	memset(&a, 0, sizeof(a));
	a.id = q.id;
	a.result = -EACCES;
	a.flags = RINGDEV_ANSWER_BUILTIN;
	struct ringdev_ctl_transact t;
	cr_assert_eq(rd_transact(c, &a, 1, 0, 0, &t), 0);
	int rc = rd_join(p);
	cr_expect_eq(t.failed, 1, "BUILTIN with -EACCES counted failed: %u", t.failed);
	cr_expect_eq(t.refused, 1u);
	cr_expect_eq(rc, 10, "the app gets EIO, not an open (exit %d)", rc);
	close(c);
	rd_wait_broker(d, 0);
	rd_end(d);
}

/* A broker answering an OPEN with -ENOSYS: the FUSE kernel takes ENOSYS from
 * OPEN as "this filesystem needs no open" (fc->no_open): the app's open
 * succeeds, every later open of the mount bypasses ringdevd and its broker,
 * and the first write through such a handle (fh 0) crashes ringdevd. */
Test(attack_control, enosys_open_answer)
{
	if (rd_fuse_only("FUSE no_open"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	g_d = d;
	int pre = rd_create(d, "pre", O_RDWR, 0, 0, 0);
	rd_stats_through(d, pre);
	int c = rd_ctl_open(d);
	cr_assert(c >= 0);
	pid_t p = rd_spawn(app_open_pre, NULL, -1);
	struct ringdev_ctl_request q = take(c, RINGDEV_CTL_OPEN);
	struct ringdev_ctl_answer a;
	memset(&a, 0, sizeof(a));
	a.id = q.id;
	a.result = -ENOSYS;
	struct ringdev_ctl_transact t;
	cr_assert_eq(rd_transact(c, &a, 1, 0, 0, &t), 0);
	int rc = rd_join(p);
	cr_expect(rc == 11 || rc == 10, "the broker's deny holds (exit %d)", rc);
	/* a later open must still reach the daemon (and so the broker) */
	pid_t p2 = rd_spawn(app_open_pre, NULL, -1);
	struct ringdev_ctl_transact t2;
	bool relayed = false;
	for (int i = 0; i < 20 && !relayed; i++) {
		cr_assert_eq(rd_transact(c, NULL, 0, 1, 100, &t2), 0);
		if (t2.nrequests && t2.requests[0].type == RINGDEV_CTL_OPEN) {
			relayed = true;
			memset(&a, 0, sizeof(a));
			a.id = t2.requests[0].id;
			a.result = -EACCES;
			rd_transact(c, &a, 1, 0, 0, &t2);
		}
	}
	int rc2 = rd_join(p2);
	cr_expect(relayed && rc2 == 12, "second open relayed and denied (relayed %d, exit %d)", relayed, rc2);
	/* a write through an open that never reached the daemon */
	char path[RD_PATH_SIZE + 8];
	snprintf(path, sizeof(path), "%s/pre", d->mount);
	int fd = open(path, O_WRONLY);
	if (fd >= 0) {
		(void)!write(fd, "x", 1);
		close(fd);
	}
	struct ringdev_stats s;
	cr_expect_eq(rd_stats_try(d, &s), 0, "the daemon still serves");
	close(c);
	rd_end(d);
}
