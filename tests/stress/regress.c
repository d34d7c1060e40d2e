/* SPDX-License-Identifier: MIT */
/*
 * regress.c - daemon defects found while writing the stress suite, each
 * pinned by a test that fails until the daemon is fixed.  They are exact
 * single-call checks, not stress: once fixed, each belongs beside its kind
 * in tests/integration (test_limits.c, test_isolation.c).
 *
 * configure() in cuse_dev/core/ioctl.c says "all checked before any
 * applies", but it applies RINGDEV_SET_OWNER (pipe_set_owner) before
 * pipe_set_capacity, which can still refuse (EBUSY below the bytes queued,
 * ENOSPC past --max-memory).  RINGDEV_IOC_CONFIGURE then fails and the pipe
 * has a new owner anyway: a failed call that changed something, and one
 * that moves the pipe's charges (pipe count, ring memory) to another user.
 */
#include "stress.h"

#include <inttypes.h>
#include <sys/ioctl.h>

RD_SUITE(regress, 60);

#define OTHER_UID 1234

static int configure(int fd, const char *name, uint32_t set, uint32_t uid, uint64_t capacity)
{
	struct ringdev_configure c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.set = set;
	c.uid = uid;
	c.gid = uid;
	c.capacity = capacity;
	return ioctl(fd, RINGDEV_IOC_CONFIGURE, &c) < 0 ? -1 : 0;
}

/* A refused capacity: nothing of the call is applied, the owner neither. */
Test(regress, configure_refused_capacity_changes_no_owner)
{
	const char *const args[] = { "--max-memory", "256K", NULL };
	struct rd_daemon *d = rd_start(args);
	int fd = rd_create(d, "Owned", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 4096);
	static char data[100];
	struct ringdev_pipe_info info;

	rd_write_ok(fd, data, sizeof(data));

	/* EBUSY: a capacity below the 100 bytes queued. */
	rd_assert_errno(configure(fd, "Owned", RINGDEV_SET_OWNER | RINGDEV_SET_CAPACITY, OTHER_UID, 64), EBUSY,
			"CONFIGURE owner + a capacity below what is queued");
	info = rd_pipe_info(fd);
	cr_expect(info.uid == 0 && info.gid == 0 && info.capacity == 4096,
		  "after the refused CONFIGURE (EBUSY) the pipe is unchanged: expected owner 0:0 capacity 4096, "
		  "got owner %u:%u capacity %" PRIu64 " (the owner was applied before the capacity was refused)",
		  info.uid, info.gid, info.capacity);

	/* ENOSPC: growth past --max-memory (256 KiB; this ring holds 4 KiB). */
	cr_assert_eq(configure(fd, "Owned", RINGDEV_SET_OWNER, 0, 0), 0, "owner back to root: %s", rd_errname(errno));
	rd_assert_errno(configure(fd, "Owned", RINGDEV_SET_OWNER | RINGDEV_SET_CAPACITY, OTHER_UID, 1 << 20), ENOSPC,
			"CONFIGURE owner + growth past --max-memory");
	info = rd_pipe_info(fd);
	cr_expect(info.uid == 0 && info.gid == 0 && info.capacity == 4096,
		  "after the refused CONFIGURE (ENOSPC) the pipe is unchanged: expected owner 0:0 capacity 4096, "
		  "got owner %u:%u capacity %" PRIu64 " (the owner was applied before the growth was refused)",
		  info.uid, info.gid, info.capacity);

	rd_read_ok(fd, data, sizeof(data), sizeof(data));
	rd_close(d, fd);
	rd_end(d);
}
