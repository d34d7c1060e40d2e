/* SPDX-License-Identifier: MIT */
/*
 * test_limits.c - limits and bad input: --max-pipes and --max-memory give
 * ENOSPC and are counted; capacity changes live without losing data
 * (including wrapped rings and parked writers); out-of-range capacities,
 * bad names, bad ATTACH arguments and unknown ioctls get their exact errors;
 * and the daemon keeps serving afterwards.
 */
#include "harness.h"

#include <inttypes.h>

#include <grp.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>

RD_SUITE(limits, 60);

static ssize_t write_now(int fd, const void *buf, size_t size)
{
	errno = 0;
	return write(fd, buf, size);
}

/* The daemon still serves: a new pipe carries data. */
static void assert_still_serving(const struct rd_daemon *d, const char *name)
{
	int fd = rd_create(d, name, O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	char buf[8];

	rd_write_ok(fd, "alive", 5);
	rd_read_ok(fd, buf, sizeof(buf), 5);
	cr_assert_eq(memcmp(buf, "alive", 5), 0, "the daemon still serves");
	close(fd);
}

Test(limits, max_pipes)
{
	const char *const args[] = { "--max-pipes", "4", NULL };
	struct rd_daemon *d = rd_start(args);
	struct ringdev_stats st;
	int fds[5], created = 0, fd;
	char name[16];

	for (created = 0; created < 5; created++) {
		snprintf(name, sizeof(name), "p%d", created);
		fds[created] = rd_open(d, name, O_RDONLY | O_CREAT | O_EXCL, 0600);
		if (fds[created] < 0)
			break;
	}
	cr_assert_lt(created, 5, "a fifth pipe was created despite --max-pipes 4");
	cr_assert_eq(errno, ENOSPC, "creating one pipe too many: expected ENOSPC, got %s",
		     rd_errname(errno));
	if (d->cuse)
		/* The node's default pipe may hold one of the four slots. */
		cr_assert_geq(created, 3, "pipes created under --max-pipes 4: %d", created);
	else
		cr_assert_eq(created, 4, "pipes created under --max-pipes 4: %d", created);
	st = rd_stats(d);
	cr_assert_eq(st.pipes_limit, 4, "stats.pipes_limit");
	cr_assert_eq(st.limit_pipes_hits, 1, "stats.limit_pipes_hits: %llu",
		     (unsigned long long)st.limit_pipes_hits);
	if (!d->cuse)
		cr_assert_eq(st.pipes, 4, "stats.pipes: %llu", (unsigned long long)st.pipes);

	/* Opening an existing pipe is no creation. */
	fd = rd_open_ok(d, "p0", O_WRONLY);
	close(fd);
	rd_wait_opens(d, (uint64_t)created);
	/* A freed slot can be used again. */
	rd_close(d, fds[0]);
	fds[0] = rd_open(d, "another", O_RDONLY | O_CREAT | O_EXCL, 0600);
	cr_assert_geq(fds[0], 0, "create after a pipe was removed: %s", strerror(errno));
	for (int i = 0; i < created; i++)
		close(fds[i]);
	rd_wait_opens(d, 0);
	assert_still_serving(d, "after-limit");
	rd_end(d);
}

Test(limits, max_memory)
{
	const char *const args[] = { "--max-memory", "256K", "--ring-size", "64K", NULL };
	struct rd_daemon *d = rd_start(args);
	int fds[5];
	struct ringdev_stats st;
	struct ringdev_pipe_info info;
	char name[8], buf[8];

	for (int i = 0; i < 5; i++) {
		snprintf(name, sizeof(name), "m%d", i);
		fds[i] = rd_create(d, name, O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	}
	cr_assert_eq(rd_pipe_info(fds[0]).allocated_bytes, 0, "no ring memory before the first write");
	cr_assert_eq(rd_stats(d).memory_used, 0, "memory_used before any write");
	for (int i = 0; i < 4; i++)
		rd_write_ok(fds[i], "x", 1);
	st = rd_stats(d);
	cr_assert_eq(st.memory_used, 256 * 1024, "memory_used: %llu", (unsigned long long)st.memory_used);
	cr_assert_eq(st.memory_limit, 256 * 1024, "memory_limit: %llu", (unsigned long long)st.memory_limit);
	info = rd_pipe_info(fds[0]);
	cr_assert_eq(info.allocated_bytes, 65536, "allocated at the first write");
	cr_assert(info.flags & RINGDEV_PIPE_ALLOCATED, "ALLOCATED flag");

	/* The fifth pipe's first write needs 64 KiB more. */
	rd_assert_errno(write_now(fds[4], "x", 1), ENOSPC, "first write beyond --max-memory");
	cr_assert_eq(rd_stats(d).limit_memory_hits, 1, "limit_memory_hits after the refused write");
	cr_assert_eq(rd_pipe_info(fds[4]).allocated_bytes, 0, "nothing allocated for the refused write");

	/* Growth beyond the limit is refused too; the data stays. */
	rd_assert_errno(rd_set_config(fds[0], RINGDEV_SET_CAPACITY, 0, 0, 0, 128 * 1024), ENOSPC,
			"growing a ring beyond --max-memory");
	cr_assert_eq(rd_stats(d).limit_memory_hits, 2, "limit_memory_hits after the refused growth");
	info = rd_pipe_info(fds[0]);
	cr_assert_eq(info.capacity, 65536, "capacity unchanged");
	cr_assert_eq(info.queued_bytes, 1, "data kept");

	/* Shrinking two rings frees 64 KiB: now the fifth pipe can write. */
	cr_assert_eq(rd_set_config(fds[0], RINGDEV_SET_CAPACITY, 0, 0, 0, 32 * 1024), 0, "shrink: %s",
		     strerror(errno));
	cr_assert_eq(rd_stats(d).memory_used, 224 * 1024, "memory_used after shrinking one ring");
	rd_assert_errno(write_now(fds[4], "x", 1), ENOSPC, "still 32 KiB short");
	cr_assert_eq(rd_stats(d).limit_memory_hits, 3, "limit_memory_hits");
	cr_assert_eq(rd_set_config(fds[1], RINGDEV_SET_CAPACITY, 0, 0, 0, 32 * 1024), 0, "shrink: %s",
		     strerror(errno));
	rd_write_ok(fds[4], "y", 1);
	cr_assert_eq(rd_stats(d).memory_used, 256 * 1024, "memory_used back at the limit");

	/* A removed pipe frees its ring. */
	rd_read_ok(fds[0], buf, sizeof(buf), 1);
	rd_close(d, fds[0]);
	cr_assert_eq(rd_stats(d).memory_used, 224 * 1024, "memory_used after a pipe was removed: %llu",
		     (unsigned long long)rd_stats(d).memory_used);
	for (int i = 1; i < 5; i++)
		close(fds[i]);
	rd_end(d);
}

Test(limits, resize_keeps_queued_data)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "R", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 4096);
	static unsigned char a[3000], b[2500], c[4000], e[5000], dst[16384];
	struct ringdev_pipe_info info;

	rd_pattern(a, sizeof(a), 21, 0);
	rd_pattern(b, sizeof(b), 22, 0);
	rd_pattern(c, sizeof(c), 23, 0);
	rd_pattern(e, sizeof(e), 24, 0);

	/* Wrap the ring: 3000 in, 2000 out, 2500 in. */
	rd_write_ok(fd, a, sizeof(a));
	rd_read_ok(fd, dst, 2000, 2000);
	rd_write_ok(fd, b, sizeof(b));
	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_CAPACITY, 0, 0, 0, 8192), 0, "grow to 8192: %s",
		     strerror(errno));
	info = rd_pipe_info(fd);
	cr_assert_eq(info.capacity, 8192, "capacity after growth");
	cr_assert_eq(info.queued_bytes, 3500, "queued after growth");
	rd_write_ok(fd, c, sizeof(c)); /* 7500 of 8192 */
	rd_read_ok(fd, dst, sizeof(dst), 7500);
	cr_assert_eq(memcmp(dst, a + 2000, 1000), 0, "the old ring's first part");
	cr_assert_eq(memcmp(dst + 1000, b, sizeof(b)), 0, "the wrapped part");
	cr_assert_eq(memcmp(dst + 3500, c, sizeof(c)), 0, "written after growth");

	/* Shrink: never below what is queued. */
	rd_write_ok(fd, e, sizeof(e));
	rd_assert_errno(rd_set_config(fd, RINGDEV_SET_CAPACITY, 0, 0, 0, 4096), EBUSY,
			"shrink below the queued bytes");
	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_CAPACITY, 0, 0, 0, 5000), 0,
		     "shrink to exactly the queued bytes: %s", strerror(errno));
	rd_assert_errno(write_now(fd, "z", 1), EAGAIN, "full after shrinking to the queued size");
	rd_read_ok(fd, dst, sizeof(dst), sizeof(e));
	cr_assert_eq(memcmp(dst, e, sizeof(e)), 0, "data intact after shrinking");
	close(fd);
	rd_end(d);
}

Test(limits, resize_message_pipe_and_wake_parked_writer)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "RM", O_WRONLY, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_BLOCK, 4096);
	int rn = rd_open_ok(d, "RM", O_RDONLY | O_NONBLOCK);
	static unsigned char m[3][4096], dst[8192];
	struct rd_io *parked;

	for (int i = 0; i < 3; i++)
		rd_pattern(m[i], sizeof(m[i]), 30 + (uint64_t)i, 0);
	rd_write_ok(w, m[0], 2000);
	rd_write_ok(w, m[1], 2000); /* 4008 of 4096 ring bytes */

	parked = rd_io_new(w, RD_IO_WRITE, 3000);
	memcpy(parked->buf, m[2], 3000);
	rd_io_start(parked);
	rd_wait_parked(d, 0, 1);
	rd_assert_errno(rd_set_config(rn, RINGDEV_SET_CAPACITY, 0, 0, 0, 1024), EBUSY,
			"shrink below the queued messages");
	/* Growth makes room: the parked message goes in. */
	cr_assert_eq(rd_set_config(rn, RINGDEV_SET_CAPACITY, 0, 0, 0, 16384), 0, "grow: %s",
		     strerror(errno));
	rd_io_join(parked);
	cr_assert_eq(parked->ret, 3000, "parked write after growth: %zd (%s)", parked->ret,
		     rd_errname(parked->err));
	for (int i = 0; i < 3; i++) {
		size_t size = i < 2 ? 2000 : 3000;

		rd_read_ok(rn, dst, sizeof(dst), size);
		cr_assert_eq(memcmp(dst, m[i], size), 0, "message %d intact and in order", i);
	}
	close(rn);
	close(w);
	rd_end(d);
}

Test(limits, capacity_out_of_range)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Cap", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	const uint64_t bad[] = { 0, 1, RINGDEV_CAPACITY_MIN - 1, RINGDEV_CAPACITY_MAX + 1, UINT64_MAX };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char what[96];

		snprintf(what, sizeof(what), "SET_CONFIG capacity %llu", (unsigned long long)bad[i]);
		rd_assert_errno(rd_set_config(fd, RINGDEV_SET_CAPACITY, 0, 0, 0, bad[i]), EINVAL, what);
		if (bad[i] == 0)
			continue; /* 0 means "the default" in ATTACH */
		snprintf(what, sizeof(what), "ATTACH create with capacity %llu", (unsigned long long)bad[i]);
		rd_assert_errno(rd_attach(fd, "NewCap", RINGDEV_ATTACH_CREATE, 0, 0, 0600, bad[i]), EINVAL,
				what);
	}
	rd_assert_errno(rd_attach(fd, "NewCap", 0, 0, 0, 0, 0), ENOENT,
			"no pipe was created by the refused ATTACH");
	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_CAPACITY, 0, 0, 0, RINGDEV_CAPACITY_MIN), 0,
		     "capacity 64 is allowed: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(fd).capacity, RINGDEV_CAPACITY_MIN, "capacity 64");
	cr_assert_eq(rd_attach(fd, "MinCap", RINGDEV_ATTACH_CREATE, 0, 0, 0600, RINGDEV_CAPACITY_MIN), 0,
		     "ATTACH create with capacity 64: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(fd).capacity, RINGDEV_CAPACITY_MIN, "created with capacity 64");
	close(fd);
	assert_still_serving(d, "after-capacity");
	rd_end(d);
}

Test(limits, bad_names)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "good", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	char n63[64], n64[65], n300[301];
	static const char *const invalid[] = { "", ".x", ".", "..", "a/b", "a b", "x*y", "tab\there",
					       "caf\xc3\xa9", "semi;colon" };

	memset(n63, 'a', 63);
	n63[63] = '\0';
	memset(n64, 'b', 64);
	n64[64] = '\0';
	memset(n300, 'c', 300);
	n300[300] = '\0';

	/* Through ATTACH: every name, the same on both frontends. */
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		char what[96];

		snprintf(what, sizeof(what), "ATTACH create \"%s\"", invalid[i]);
		rd_assert_errno(rd_attach(fd, invalid[i], RINGDEV_ATTACH_CREATE, 0, 0, 0600, 0), EINVAL, what);
	}
	rd_assert_errno(rd_attach(fd, n64, RINGDEV_ATTACH_CREATE, 0, 0, 0600, 0), ENAMETOOLONG,
			"ATTACH create with a 64-byte name");
	cr_assert_eq(rd_attach(fd, n63, RINGDEV_ATTACH_CREATE, 0, 0, 0600, 0), 0,
		     "ATTACH create with a 63-byte name: %s", strerror(errno));
	cr_assert_str_eq(rd_pipe_info(fd).name, n63, "the 63-byte name");

	/* Through open (the path on the FUSE mount, ATTACH on CUSE). */
	rd_assert_errno(rd_open(d, "a b", O_RDWR | O_CREAT, 0600), EINVAL, "create \"a b\"");
	rd_assert_errno(rd_open(d, "x*y", O_RDWR | O_CREAT, 0600), EINVAL, "create \"x*y\"");
	rd_assert_errno(rd_open(d, ".x", O_RDWR | O_CREAT, 0600), EINVAL, "create \".x\"");
	rd_assert_errno(rd_open(d, "x*y", O_RDWR, 0), EINVAL, "open \"x*y\"");
	rd_assert_errno(rd_open(d, n64, O_RDWR | O_CREAT, 0600), ENAMETOOLONG, "create a 64-byte name");
	if (!d->cuse)
		rd_assert_errno(rd_open(d, n300, O_RDWR | O_CREAT, 0600), ENAMETOOLONG,
				"create a 300-byte name");
	{
		int ok = rd_open(d, "Ok-name_1.x", O_RDWR | O_CREAT, 0600);

		cr_assert_geq(ok, 0, "create \"Ok-name_1.x\": %s", strerror(errno));
		close(ok);
	}
	close(fd);
	assert_still_serving(d, "after-names");
	rd_end(d);
}

Test(limits, attach_argument_checks)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "First", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	int other = rd_create(d, "Second", O_WRONLY, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_FAIL, 8192);
	struct ringdev_attach raw;
	struct ringdev_pipe_info info;

	rd_assert_errno(rd_attach(fd, "Missing", 0, 0, 0, 0, 0), ENOENT, "ATTACH to a missing pipe");
	rd_assert_errno(rd_attach(fd, "Second", RINGDEV_ATTACH_CREATE | RINGDEV_ATTACH_EXCL, 0, 0, 0600, 0),
			EEXIST, "ATTACH CREATE|EXCL to an existing pipe");
	rd_assert_errno(rd_attach(fd, "X1", RINGDEV_ATTACH_CREATE | 0x4, 0, 0, 0600, 0), EINVAL,
			"unknown ATTACH flag");
	rd_assert_errno(rd_attach(fd, "X1", RINGDEV_ATTACH_CREATE, 3, 0, 0600, 0), EINVAL, "bad kind");
	rd_assert_errno(rd_attach(fd, "X1", RINGDEV_ATTACH_CREATE, 0, 4, 0600, 0), EINVAL, "bad policy");
	memset(&raw, 0, sizeof(raw));
	memcpy(raw.name, "X1", 2);
	raw.flags = RINGDEV_ATTACH_CREATE;
	raw.reserved[3] = 7;
	errno = 0;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_ATTACH, &raw), EINVAL, "nonzero reserved field");

	/* kind/policy/capacity only apply when ATTACH creates the pipe. */
	cr_assert_eq(rd_attach(fd, "Second", RINGDEV_ATTACH_CREATE, RINGDEV_KIND_STREAM,
			       RINGDEV_POLICY_OVERWRITE, 0600, 65536), 0, "ATTACH to Second: %s",
		     strerror(errno));
	info = rd_pipe_info(fd);
	cr_assert_str_eq(info.name, "Second", "moved to Second");
	cr_assert_eq(info.kind, RINGDEV_KIND_MESSAGE, "existing kind kept");
	cr_assert_eq(info.policy, RINGDEV_POLICY_FAIL, "existing policy kept");
	cr_assert_eq(info.capacity, 8192, "existing capacity kept");
	/* The handle keeps its open mode: still a reader, not a writer. */
	cr_assert_eq(info.readers, 1, "readers of Second");
	cr_assert_eq(info.writers, 1, "writers of Second");
	cr_assert_eq(info.handles, 2, "handles of Second");

	cr_assert_eq(rd_attach(fd, "Third", RINGDEV_ATTACH_CREATE, RINGDEV_KIND_MESSAGE,
			       RINGDEV_POLICY_OVERWRITE, 0640, 8192), 0, "ATTACH create Third: %s",
		     strerror(errno));
	info = rd_pipe_info(fd);
	cr_assert_eq(info.kind, RINGDEV_KIND_MESSAGE, "created kind");
	cr_assert_eq(info.policy, RINGDEV_POLICY_OVERWRITE, "created policy");
	cr_assert_eq(info.capacity, 8192, "created capacity");
	cr_assert_eq(info.mode & 07777, 0640, "created mode: %o", info.mode);
	cr_assert_eq(info.readers, 1, "reader on Third");
	cr_assert_eq(info.writers, 0, "no writer on Third");
	close(other);
	close(fd);
	rd_end(d);
}

Test(limits, unknown_ioctls_get_enotty)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Io", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	uint64_t arg[2] = { 0, 0 };

	rd_assert_errno(ioctl(fd, _IOR(RINGDEV_IOC_MAGIC, 0x7e, uint64_t), arg), ENOTTY,
			"unknown ringdev ioctl");
	rd_assert_errno(ioctl(fd, _IOWR(RINGDEV_IOC_MAGIC, RINGDEV_IOC_DEVICE_NR_FIRST, uint64_t[2]), arg),
			ENOTTY, "device-specific ioctl with no broker");
	rd_assert_errno(ioctl(fd, _IOW('x', 1, uint64_t), arg), ENOTTY, "foreign ioctl");
	if (!d->cuse) {
		int root = open(d->mount, O_RDONLY | O_DIRECTORY);

		cr_assert_geq(root, 0, "open the mount root: %s", strerror(errno));
		rd_assert_errno(ioctl(root, _IOR(RINGDEV_IOC_MAGIC, 0x7e, uint64_t), arg), ENOTTY,
				"unknown ioctl on the mount root");
		close(root);
	}
	assert_still_serving(d, "after-ioctls");
	close(fd);
	rd_end(d);
}

#define OTHER_UID 1234

static int configure_named(int fd, const char *name, uint32_t set, uint32_t uid, uint64_t capacity)
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

/* A refused capacity: nothing of the call is applied, the owner neither
 * (configure() used to give the pipe away before the capacity could still
 * be refused; found by the stress suite). */
Test(limits, a_refused_configure_changes_no_owner)
{
	const char *const args[] = { "--max-memory", "256K", NULL };
	struct rd_daemon *d = rd_start(args);
	int fd = rd_create(d, "Owned", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 4096);
	static char data[100];
	struct ringdev_pipe_info info;

	rd_write_ok(fd, data, sizeof(data));

	/* EBUSY: a capacity below the 100 bytes queued. */
	rd_assert_errno(configure_named(fd, "Owned", RINGDEV_SET_OWNER | RINGDEV_SET_CAPACITY, OTHER_UID, 64), EBUSY,
			"CONFIGURE owner + a capacity below what is queued");
	info = rd_pipe_info(fd);
	cr_assert(info.uid == 0 && info.gid == 0 && info.capacity == 4096,
		  "after the refused CONFIGURE (EBUSY) the pipe is unchanged: expected owner 0:0 capacity 4096, "
		  "got owner %u:%u capacity %" PRIu64 " (the owner was applied before the capacity was refused)",
		  info.uid, info.gid, info.capacity);

	/* ENOSPC: growth past --max-memory (256 KiB; this ring holds 4 KiB). */
	cr_assert_eq(configure_named(fd, "Owned", RINGDEV_SET_OWNER, 0, 0), 0, "owner back to root: %s", rd_errname(errno));
	rd_assert_errno(configure_named(fd, "Owned", RINGDEV_SET_OWNER | RINGDEV_SET_CAPACITY, OTHER_UID, 1 << 20), ENOSPC,
			"CONFIGURE owner + growth past --max-memory");
	info = rd_pipe_info(fd);
	cr_assert(info.uid == 0 && info.gid == 0 && info.capacity == 4096,
		  "after the refused CONFIGURE (ENOSPC) the pipe is unchanged: expected owner 0:0 capacity 4096, "
		  "got owner %u:%u capacity %" PRIu64 " (the owner was applied before the growth was refused)",
		  info.uid, info.gid, info.capacity);

	rd_read_ok(fd, data, sizeof(data), sizeof(data));
	rd_close(d, fd);
	rd_end(d);
}

/* ---- memory a user makes the daemon hold (issue 19, part C) ----
 *
 * Each test drives one path as an unprivileged user against the real
 * daemon and checks that its resident memory grows by no more than the
 * limits allow plus RD_RSS_SLACK, the constant ringdevd(8) documents (the
 * daemon's own bookkeeping per handle and request, allocator slack), and
 * that the calls past the limits fail with the errno ringdev(4) lists. */

#define NOBODY 65534
#define MIB (1u << 20)

static bool become_nobody(void)
{
	return setgroups(0, NULL) == 0 && setgid(NOBODY) == 0 && setuid(NOBODY) == 0;
}

#define PARKERS 40

struct parker_shared {
	struct rd_daemon daemon;
	int err[PARKERS];          /* errno of the write, or 0 */
	ssize_t ret[PARKERS];
	int done[PARKERS];         /* the write returned */
};

/* Page-aligned: the kernel carries 1 MiB in one FUSE request only from
 * an aligned buffer (256 pages). */
static unsigned char parker_data[MIB] __attribute__((aligned(4096)));

/* One writer of nobody's: a pipe file of its own (its own inode, so the
 * kernel's per-inode write lock does not hold it back), ATTACHed to the
 * full pipe, and one 1 MiB write that must wait. */
struct parker_arg {
	struct parker_shared *s;
	int index;
};

static int parker_main(void *arg)
{
	struct parker_shared *s = ((struct parker_arg *)arg)->s;
	int i = ((struct parker_arg *)arg)->index;
	char name[16];
	snprintf(name, sizeof(name), "w%d", i);
	if (!become_nobody())
		return 2;
	int fd = rd_open(&s->daemon, name, O_WRONLY | O_CREAT, 0600);
	if (fd < 0 || rd_attach(fd, "Full", 0, 0, 0, 0, 0) < 0) {
		s->err[i] = errno;
		s->done[i] = 1;
		return 3;
	}
	errno = 0;
	s->ret[i] = write(fd, parker_data, MIB);
	s->err[i] = s->ret[i] < 0 ? errno : 0;
	__atomic_store_n(&s->done[i], 1, __ATOMIC_SEQ_CST);
	close(fd);
	return 0;
}

static int fill_main(void *arg)
{
	struct parker_shared *s = arg;
	if (!become_nobody())
		return 2;
	int fd = rd_open_create(&s->daemon, "Full", O_WRONLY | O_NONBLOCK, RINGDEV_KIND_STREAM,
				RINGDEV_POLICY_BLOCK, 64 * 1024);
	if (fd < 0)
		return 3;
	/* Keep the pipe (persistent) while nobody holds a handle on it. */
	if (rd_write_all(fd, parker_data, 64 * 1024) != 64 * 1024)
		return 4;
	close(fd);
	return 0;
}

static int count_done(const struct parker_shared *s)
{
	int n = 0;
	for (int i = 0; i < PARKERS; i++)
		n += __atomic_load_n(&s->done[i], __ATOMIC_SEQ_CST);
	return n;
}

Test(limits, a_user_s_waiting_writes_are_charged_and_bounded)
{
	const char *const args[] = { "--max-memory", "4M", "--max-memory-per-uid", "3M", "--threads", "1", NULL };
	struct rd_daemon *d = rd_start(args);
	struct parker_shared *s = rd_shared(sizeof(*s));
	pid_t pids[PARKERS];
	s->daemon = *d;
	/* CUSE hands the daemon a write in pieces of 128 KiB, the FUSE mount
	 * (from an aligned buffer) in one of 1 MiB: the first piece is what
	 * waits, with its copy. */
	const uint64_t piece = d->cuse ? 128 * 1024 : MIB;
	const int waiting = (int)((3 * MIB - 64 * 1024 + piece - 1) / piece);
	cr_assert_eq(rd_join(rd_spawn(fill_main, s, -1)), 0, "nobody fills its pipe");
	uint64_t before = rd_daemon_rss(d);
	static struct parker_arg pa[PARKERS]; /* private: each child has its copy */
	for (int i = 0; i < PARKERS; i++) {
		pa[i] = (struct parker_arg){ s, i };
		pids[i] = rd_spawn(parker_main, &pa[i], -1);
	}
	/* 64 KiB of ring and the copies of whole pieces fit nobody's 3 MiB
	 * (FUSE: two of 1 MiB), and one more write (larger than the capacity:
	 * it may go in parts) waits with what is left (960 KiB); every other
	 * write is refused at once. */
	for (int t = 0; t < RD_PARK_TIMEOUT_MS && count_done(s) < PARKERS - waiting; t += 10)
		usleep(10 * 1000);
	rd_wait_parked(d, 0, (uint64_t)waiting);
	cr_assert_eq(count_done(s), PARKERS - waiting, "writes that returned: %d of %d", count_done(s), PARKERS);
	uint64_t during = rd_daemon_rss(d);
	cr_log_info("waiting writes: the daemon grew by %llu KiB", (unsigned long long)((during - before) >> 10));
	struct ringdev_stats st = rd_stats(d);
	int refused = 0;
	for (int i = 0; i < PARKERS; i++) {
		if (!s->done[i])
			continue;
		cr_assert_eq(s->ret[i], -1, "writer %d: returned %zd", i, s->ret[i]);
		cr_assert_eq(s->err[i], ENOBUFS, "writer %d: expected ENOBUFS, got %s", i, rd_errname(s->err[i]));
		refused++;
	}
	cr_assert_eq(refused, PARKERS - waiting);
	cr_assert_eq(st.memory_used, 3 * MIB, "memory_used counts the waiting copies: %llu",
		     (unsigned long long)st.memory_used);
	cr_assert(rd_daemon_instrumented() || during < before + 4 * MIB + RD_RSS_SLACK,
		  "the daemon grew by %llu KiB with limits of 4 MiB (+%u KiB slack)",
		  (unsigned long long)((during - before) >> 10), RD_RSS_SLACK >> 10);
	/* Root drains the pipe: the waiting writes complete. */
	int r = rd_open_ok(d, "Full", O_RDONLY | O_NONBLOCK);
	static unsigned char sink[MIB];
	uint64_t drained = 0;
	while (count_done(s) < PARKERS) {
		ssize_t n = read(r, sink, sizeof(sink));
		if (n >= 0) {
			drained += (uint64_t)n;
			continue;
		}
		cr_assert_eq(errno, EAGAIN, "drain: %s", strerror(errno));
		usleep(1000);
	}
	for (int i = 0; i < PARKERS; i++)
		rd_join(pids[i]);
	ssize_t whole = 0, part = 0;
	uint64_t written = 64 * 1024;
	for (int i = 0; i < PARKERS; i++) {
		if (s->ret[i] > 0)
			written += (uint64_t)s->ret[i];
		if (s->ret[i] == (ssize_t)MIB)
			whole++;
		else if (s->ret[i] == (ssize_t)(3 * MIB - 64 * 1024 - 2 * MIB))
			part++;
	}
	if (!d->cuse)
		cr_assert(whole == 2 && part == 1, "the waiting writes returned %zd whole and %zd short (960 KiB)",
			  whole, part);
	ssize_t n;
	while ((n = read(r, sink, sizeof(sink))) > 0)
		drained += (uint64_t)n;
	cr_assert_eq(drained, written, "read %llu bytes of the %llu the writes returned", (unsigned long long)drained,
		     (unsigned long long)written);
	close(r);
	rd_wait_opens(d, 0);
	cr_assert_eq(rd_stats(d).memory_used, 0, "every charge went back");
	rd_end(d);
}

#define DIR_OPENS 1000
#define SEEN_PIPES 20
#define HIDDEN_PIPES 300
#define ENTRY_BYTES 72 /* a listing's entry in the daemon (struct name_entry) */

struct dir_shared {
	struct rd_daemon daemon;
	int opened;
	int listed;
	int first_err;             /* errno of the first refused listing */
	int holding;               /* the helper holds its descriptors */
	int release;               /* the test has measured: let go */
};

/* nobody opens the mount's root DIR_OPENS times and starts listing each:
 * every listing it holds is memory the daemon keeps for it. */
static int dir_opener_main(void *arg)
{
	struct dir_shared *s = arg;
	struct rlimit rl = { DIR_OPENS + 64, DIR_OPENS + 64 };
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0 || !become_nobody())
		return 2;
	for (int i = 0; i < DIR_OPENS; i++) {
		int fd = open(s->daemon.mount, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			return 3;
		s->opened++;
		static char dents[4096];
		if (syscall(SYS_getdents64, fd, dents, sizeof(dents)) >= 0)
			s->listed++;
		else if (!s->first_err)
			s->first_err = errno;
	}
	__atomic_store_n(&s->holding, 1, __ATOMIC_SEQ_CST);
	while (!__atomic_load_n(&s->release, __ATOMIC_SEQ_CST))
		usleep(10 * 1000);
	return 0; /* exit closes them */
}

Test(limits, a_user_s_directory_listings_are_charged_and_bounded)
{
	const char *const args[] = { "--max-memory", "4M", "--threads", "1", NULL };
	struct rd_daemon *d = rd_start(args);
	if (d->cuse) {
		cr_log_info("directory listings: the FUSE mount only");
		rd_end(d);
		return;
	}
	/* Kept pipes (persistent, no ring): SEEN_PIPES that nobody may see,
	 * HIDDEN_PIPES it may not. */
	int root = open(d->mount, O_RDONLY | O_DIRECTORY);
	cr_assert_geq(root, 0, "%s: %s", d->mount, strerror(errno));
	for (int i = 0; i < SEEN_PIPES + HIDDEN_PIPES; i++) {
		struct ringdev_create c = { .mode = i < SEEN_PIPES ? 0644 : 0600 };
		snprintf(c.name, sizeof(c.name), "%s-pipe-with-a-long-name-%d", i < SEEN_PIPES ? "seen" : "hidden", i);
		cr_assert_eq(ioctl(root, RINGDEV_IOC_CREATE, &c), 0, "create %s: %s", c.name, strerror(errno));
	}
	close(root);
	struct dir_shared *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	uint64_t before = rd_daemon_rss(d);
	pid_t pid = rd_spawn(dir_opener_main, s, -1);
	for (int t = 0; t < RD_CHILD_TIMEOUT_MS && !__atomic_load_n(&s->holding, __ATOMIC_SEQ_CST); t += 10)
		usleep(10 * 1000);
	cr_assert(s->holding, "the helper never finished (opened %d)", s->opened);
	uint64_t during = rd_daemon_rss(d);
	cr_log_info("directory listings: the daemon grew by %llu KiB", (unsigned long long)((during - before) >> 10));
	struct ringdev_stats st = rd_stats(d);
	__atomic_store_n(&s->release, 1, __ATOMIC_SEQ_CST);
	cr_assert_eq(rd_join(pid), 0, "helper failed (opened %d)", s->opened);
	/* nobody's share of 4 MiB is 1 MiB: that many listings of what it
	 * sees, and no more. Opening the root is not refused. */
	int fit = (1 << 20) / (SEEN_PIPES * ENTRY_BYTES);
	cr_assert_eq(s->opened, DIR_OPENS);
	cr_assert_eq(s->listed, fit, "listings held: %d, expected %d", s->listed, fit);
	cr_assert_eq(s->first_err, ENOMEM, "the next: expected ENOMEM, got %s", rd_errname(s->first_err));
	cr_assert_eq(st.memory_used, (uint64_t)fit * SEEN_PIPES * ENTRY_BYTES,
		     "memory_used counts the listings (sized by what nobody sees): %llu",
		     (unsigned long long)st.memory_used);
	cr_assert(rd_daemon_instrumented() || during < before + 4 * MIB + RD_RSS_SLACK, "the daemon grew by %llu KiB (+%u KiB slack)",
		  (unsigned long long)((during - before) >> 10), RD_RSS_SLACK >> 10);
	for (int t = 0; t < RD_IDLE_TIMEOUT_MS && rd_stats(d).memory_used; t += 10)
		usleep(10 * 1000);
	cr_assert_eq(rd_stats(d).memory_used, 0, "the listings were given back");
	rd_end(d);
}
