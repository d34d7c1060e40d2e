/* SPDX-License-Identifier: MIT */
/*
 * test_attack_restart_limits.c - regressions from an outside review of the
 * in-place restart (SIGHUP) for limits and what accumulates across
 * restarts: what an unprivileged user can pin so that a later restart fails.
 *
 * 1. Handle generations. A handle's fh carries the generation of the image
 *    that opened it (8 bits), and each new image must pick one no live
 *    handle uses. A user who opens one handle after each restart (it sees
 *    them in RINGDEV_IOC_STATS_EXT) and keeps them all pins every
 *    generation by the 256th: that restart is refused by the new image, and
 *    the old program, taking its own state back, refuses it for the same
 *    reason and exits. The mount is gone with every pipe and byte in it. The
 *    old image must see that no generation is left and serve on instead.
 * 2. Directory listings (FUSE) carry a generation too, but the new image's
 *    choice ignored theirs: a user keeps one directory open across 256
 *    restarts, the generations wrap around to the listing's, and its next
 *    READDIR decodes the old image's pointer in the new one: the root
 *    daemon dies of SIGSEGV (or writes a listing into whatever is there).
 */
#include "harness.h"

#include <signal.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>

RD_SUITE(attack_restart_limits, 120);

#define NOBODY 65534
#define ROUNDS 300
#define RESTART_WAIT_MS 3000

static uint64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* The restarts counter, or -errno (ENOTCONN once the daemon is gone). */
static int64_t restarts(const struct rd_daemon *d)
{
	int fd = d->cuse ? open(d->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
			 : open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ringdev_stats_ext x;
	memset(&x, 0, sizeof(x));
	int r = ioctl(fd, RINGDEV_IOC_STATS_EXT, &x) < 0 ? -errno : 0;
	close(fd);
	return r < 0 ? r : (int64_t)x.restarts;
}

/* SIGHUP, then wait for the counter to pass `before`: true if the restart
 * went through, false if it did not within RESTART_WAIT_MS. */
static bool restart_once(const struct rd_daemon *d, int64_t before)
{
	cr_assert_eq(kill(d->pid, SIGHUP), 0, "SIGHUP: %s", strerror(errno));
	uint64_t deadline = now_ms() + RESTART_WAIT_MS;
	while (now_ms() < deadline) {
		int64_t n = restarts(d);
		if (n > before)
			return true;
		nanosleep(&(struct timespec){ .tv_nsec = 2000000 }, NULL);
	}
	return false;
}

Test(attack_restart_limits, handles_pinning_every_generation_do_not_kill_the_daemon)
{
	struct rd_daemon *d = rd_start(NULL);
	static int held[ROUNDS];
	int nheld = 0;

	cr_assert_eq(rd_become(NOBODY, NOBODY), 0, "become nobody: %s", strerror(errno));
	int first = rd_open_create(d, "pinned", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	cr_assert_eq(rd_become(0, 0), 0, "back to root: %s", strerror(errno));
	cr_assert_geq(first, 0, "nobody creates its pipe: %s", strerror(errno));

	int refused_at = -1;
	for (int i = 0; i < ROUNDS && refused_at < 0; i++) {
		/* One handle of this image's generation, kept. */
		cr_assert_eq(rd_become(NOBODY, NOBODY), 0, "become nobody: %s", strerror(errno));
		held[nheld] = rd_open(d, "pinned", O_RDONLY, 0);
		int err = errno;
		cr_assert_eq(rd_become(0, 0), 0, "back to root: %s", strerror(errno));
		cr_assert_geq(held[nheld], 0, "round %d: nobody opens its pipe: %s", i, strerror(err));
		nheld++;
		int64_t before = restarts(d);
		cr_assert_geq(before, 0, "round %d: the daemon serves before the SIGHUP: %s", i,
			      strerror((int)-before));
		if (!restart_once(d, before))
			refused_at = i;
	}
	/* The restart that found no generation left must be refused, not fatal. */
	int64_t n = restarts(d);
	if (n < 0)
		rd_log_tail(d, 6);
	cr_assert_geq(n, 0, "after %d handles pinned %d generations, the daemon still serves (got %s)", nheld,
		      nheld, strerror((int)-n));
	cr_assert_geq(refused_at, 200, "restarts go through until the generations run out (refused at %d)", refused_at);

	/* Nothing was lost: the first handle still moves bytes. */
	rd_write_ok(first, "still here", 10);
	char buf[16];
	rd_read_ok(first, buf, sizeof(buf), 10);
	cr_assert_eq(memcmp(buf, "still here", 10), 0, "the pipe's bytes survive");

	/* Closing the pinning handles frees the generations: restarts work again. */
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	rd_wait_opens(d, 1);
	cr_assert(restart_once(d, restarts(d)), "a restart goes through once the handles are closed");
	rd_write_ok(first, "again", 5);
	rd_read_ok(first, buf, sizeof(buf), 5);
	close(first);
	rd_end(d);
}

Test(attack_restart_limits, listing_open_across_wrapped_generations)
{
	if (rd_fuse_only("directory listings"))
		return;
	/* No handle is open: one would pin its generation, and the count
	 * would not come round to the listing's. */
	struct rd_daemon *d = rd_start(NULL);

	/* An unprivileged user's listing, opened now and not read yet. */
	cr_assert_eq(rd_become(NOBODY, NOBODY), 0, "become nobody: %s", strerror(errno));
	int dir = open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int err = errno;
	cr_assert_eq(rd_become(0, 0), 0, "back to root: %s", strerror(errno));
	cr_assert_geq(dir, 0, "nobody opens the mount: %s", strerror(err));

	/* 256 restarts: the generation comes round to the listing's again. */
	for (int i = 0; i < 256; i++) {
		int64_t before = restarts(d);
		cr_assert_geq(before, 0, "restart %d: the daemon serves: %s", i, strerror((int)-before));
		cr_assert(restart_once(d, before), "restart %d goes through", i);
	}

	char buf[4096];
	long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
	err = errno;
	int64_t after = restarts(d);
	if (after < 0)
		rd_log_tail(d, 6);
	cr_assert_geq(after, 0, "the daemon survives a READDIR of a listing opened 256 restarts ago: %s",
		      strerror((int)-after));
	cr_assert_gt(n, 0, "the listing reads after the restarts (at least . and ..): %s", strerror(err));
	close(dir);
	rd_end(d);
}
