/* SPDX-License-Identifier: MIT */
/*
 * test_semantics.c - every kind x policy with the exact results semantics.md
 * decides: what a read returns, when a write is all-or-nothing, partial,
 * parked, refused (EAGAIN, EFBIG, EMSGSIZE) or overwrites, and the exact drop
 * counts; RINGDEV_IOC_NREAD; the EOF rule; DETACH; SET_CONFIG checks; FIFO
 * order among parked readers and writers.
 *
 * Most pipes here have a 4096-byte ring so that boundaries are small,
 * exact numbers.  Data is a deterministic pattern (rd_pattern) so every read
 * is compared with the bytes that must come out.
 */
#include "harness.h"

#include <poll.h>
#include <sys/ioctl.h>

RD_SUITE(semantics, 60);

#define CAP 4096u

static ssize_t read_now(int fd, void *buf, size_t size)
{
	errno = 0;
	return read(fd, buf, size);
}

static ssize_t write_now(int fd, const void *buf, size_t size)
{
	errno = 0;
	return write(fd, buf, size);
}

static short poll_now(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, 0);

	cr_assert_geq(n, 0, "poll: %s", strerror(errno));
	return n ? p.revents : 0;
}

/* Read exactly `size` bytes from a blocking or non-blocking fd (several
 * stream reads if needed) and compare them with `expect`. */
static void read_expect(int fd, const void *expect, size_t size, const char *what)
{
	unsigned char *got = malloc(size + 1);
	size_t done = 0;

	cr_assert_not_null(got);
	while (done < size) {
		ssize_t n = read(fd, got + done, size - done);

		cr_assert_gt(n, 0, "%s: read after %zu of %zu bytes returned %zd (%s)", what, done,
			     size, n, n < 0 ? strerror(errno) : "EOF");
		done += (size_t)n;
	}
	cr_assert_eq(memcmp(got, expect, size), 0, "%s: the bytes read differ from those written",
		     what);
	free(got);
}

static void message(unsigned char *buf, size_t size, uint64_t index)
{
	rd_pattern(buf, size, 0x4d534700 + index, 0);
}

Test(semantics, stream_block)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "S", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int wn = rd_open_ok(d, "S", O_WRONLY | O_NONBLOCK);
	int rn = rd_open_ok(d, "S", O_RDONLY | O_NONBLOCK);
	static unsigned char src[10000], dst[10000];
	struct ringdev_pipe_info info;
	struct ringdev_nread nr;
	struct rd_io *big;
	int r;

	rd_pattern(src, sizeof(src), 1, 0);
	rd_assert_errno(read_now(rn, dst, 100), EAGAIN, "O_NONBLOCK read on an empty pipe");

	rd_write_ok(w, src, 1000);
	nr = rd_nread(rn);
	cr_assert_eq(nr.next, 1000, "NREAD.next: stream bytes queued");
	cr_assert_eq(nr.queued_bytes, 1000, "NREAD.queued_bytes");
	cr_assert_eq(nr.queued_messages, 0, "NREAD.queued_messages of a stream");
	rd_write_ok(w, src + 1000, CAP - 1000);
	info = rd_pipe_info(rn);
	cr_assert_eq(info.queued_bytes, CAP, "the ring is full");
	cr_assert_eq(info.capacity, CAP, "capacity");
	cr_assert_eq(info.writers, 2, "writers");
	cr_assert_eq(info.readers, 1, "readers");

	rd_assert_errno(write_now(wn, src, 1), EAGAIN, "O_NONBLOCK write to a full pipe");
	rd_read_ok(rn, dst, 100, 100);
	cr_assert_eq(memcmp(dst, src, 100), 0, "first 100 bytes");
	rd_assert_errno(write_now(wn, src, 200), EAGAIN,
			"a 200-byte write with 100 bytes free is all-or-nothing");
	cr_assert_eq(rd_pipe_info(rn).queued_bytes, CAP - 100, "nothing of the refused write queued");
	rd_write_ok(wn, src + CAP, 100);
	rd_assert_errno(write_now(wn, src, sizeof(src)), EAGAIN,
			"O_NONBLOCK write larger than capacity with nothing free");

	/* A stream read returns min(queued, size) at once. */
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, src + 100, CAP), 0, "bytes 100..4196 in order");
	rd_assert_errno(read_now(rn, dst, 1), EAGAIN, "empty again");

	/* Larger than capacity with O_NONBLOCK: the part that fits. */
	cr_assert_eq(write_now(wn, src, sizeof(src)), (ssize_t)CAP,
		     "O_NONBLOCK 10000-byte write into an empty 4096-byte ring writes 4096 (%s)",
		     strerror(errno));
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, src, CAP), 0, "the partial write's bytes");

	info = rd_pipe_info(rn);
	cr_assert_eq(info.bytes_in, 1000 + (CAP - 1000) + 100 + CAP, "bytes_in");
	cr_assert_eq(info.bytes_out, 100 + CAP + CAP, "bytes_out");
	cr_assert_eq(info.queued_bytes, 0, "queued");

	/* Larger than capacity, blocking: writes what fits, parks for the rest,
	 * and returns the full count once a reader made room for all of it. */
	big = rd_io_new(w, RD_IO_WRITE, sizeof(src));
	memcpy(big->buf, src, sizeof(src));
	rd_io_start(big);
	r = rd_open_ok(d, "S", O_RDONLY);
	read_expect(r, src, sizeof(src), "10000 bytes through a 4096-byte ring");
	rd_io_join(big);
	cr_assert_eq(big->ret, (ssize_t)sizeof(src), "blocking large write returns the full count: %zd (%s)",
		     big->ret, rd_errname(big->err));

	close(r);
	close(rn);
	close(wn);
	close(w);
	rd_end(d);
}

/* True if process pid waits uninterruptibly inside a FUSE write: on the FUSE
 * mount the kernel takes the pipe inode's lock for a whole direct-I/O write,
 * so a second write to a pipe whose first write is parked waits there, in
 * the kernel, before the daemon sees it. */
static bool blocked_in_fuse_write(pid_t pid)
{
	char path[64], buf[4096];
	const char *state;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	state = strrchr(buf, ')');
	if (!state || state[1] != ' ' || state[2] != 'D')
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stack", (int)pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return strstr(buf, "fuse_file_write_iter") != NULL;
}

/* Wait until the write of helper pid waits behind `ahead` parked writes:
 * parked in the daemon (CUSE, or a daemon that lets writes through) or held
 * by the kernel's inode lock on the FUSE mount. */
static void wait_write_queued(const struct rd_daemon *d, pid_t pid, uint64_t ahead)
{
	struct ringdev_stats s;

	for (int i = 0; i < RD_PARK_TIMEOUT_MS; i++) {
		s = rd_stats(d);
		if (s.parked_writes == ahead + 1)
			return;
		if (!d->cuse && s.parked_writes == ahead && blocked_in_fuse_write(pid))
			return;
		usleep(1000);
	}
	cr_assert_fail("the write of helper %d never queued behind %llu parked write(s)", (int)pid,
		       (unsigned long long)ahead);
}

Test(semantics, stream_block_parked_writers_complete_in_fifo_order)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "S", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int rn = rd_open_ok(d, "S", O_RDONLY | O_NONBLOCK);
	static unsigned char fill[CAP], dst[CAP];
	struct rd_io *a, *b;

	rd_pattern(fill, sizeof(fill), 2, 0);
	rd_write_ok(w, fill, CAP);

	a = rd_io_new(w, RD_IO_WRITE, 100);
	memset(a->buf, 'A', 100);
	rd_io_start(a);
	rd_wait_parked(d, 0, 1);
	cr_assert_eq(rd_pipe_info(rn).parked_writes, 1, "the pipe counts the parked write");
	b = rd_io_new(w, RD_IO_WRITE, 100);
	memset(b->buf, 'B', 100);
	rd_io_start(b);
	wait_write_queued(d, b->pid, 1);

	/* 50 bytes free: A (100 bytes, all-or-nothing) stays parked. */
	rd_read_ok(rn, dst, 50, 50);
	cr_assert_eq(rd_nread(rn).queued_bytes, CAP - 50, "A did not write a part of itself");
	/* Empty the ring: A then B complete, in that order. */
	rd_read_ok(rn, dst, CAP, CAP - 50);
	cr_assert_eq(memcmp(dst, fill + 50, CAP - 50), 0, "the filler comes out first");
	rd_io_join(a);
	rd_io_join(b);
	cr_assert_eq(a->ret, 100, "parked write A: %zd (%s)", a->ret, rd_errname(a->err));
	cr_assert_eq(b->ret, 100, "parked write B: %zd (%s)", b->ret, rd_errname(b->err));
	rd_read_ok(rn, dst, sizeof(dst), 200);
	for (int i = 0; i < 200; i++)
		cr_assert_eq(dst[i], i < 100 ? 'A' : 'B', "byte %d: A's write before B's", i);

	close(rn);
	close(w);
	rd_end(d);
}

Test(semantics, nonblocking_write_does_not_overtake_a_parked_write)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "S", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int wn = rd_open_ok(d, "S", O_WRONLY | O_NONBLOCK);
	int rn = rd_open_ok(d, "S", O_RDONLY | O_NONBLOCK);
	static unsigned char fill[CAP], dst[CAP];
	struct rd_io *a, *late;
	int status;

	rd_write_ok(w, fill, CAP);
	a = rd_io_new(w, RD_IO_WRITE, 100);
	memset(a->buf, 'A', 100);
	rd_io_start(a);
	rd_wait_parked(d, 0, 1);

	/* 50 bytes free: a 10-byte write would fit, but A is first.  The
	 * write runs in a helper: should it wait where it must not, the test
	 * fails instead of hanging. */
	rd_read_ok(rn, dst, 50, 50);
	late = rd_io_new(wn, RD_IO_WRITE, 10);
	memset(late->buf, 'L', 10);
	rd_io_start(late);
	if (d->cuse) {
		/* CUSE: the daemon sees it and refuses it at once. */
		cr_assert(rd_wait_child(late->pid, RD_PARK_TIMEOUT_MS, &status),
			  "an O_NONBLOCK write behind a parked write did not return");
		cr_assert_eq(late->ret, -1, "O_NONBLOCK write behind a parked one: expected EAGAIN, got %zd",
			     late->ret);
		cr_assert_eq(late->err, EAGAIN, "O_NONBLOCK write behind a parked one: %s",
			     rd_errname(late->err));
	} else {
		/* FUSE mount: the kernel holds the inode lock for A's write, so
		 * this one waits in the kernel (ringdev(4), NOTES) and must
		 * complete after A, never before it. */
		wait_write_queued(d, late->pid, 1);
	}
	cr_assert_eq(rd_stats(d).parked_writes, 1, "A still parked");

	rd_read_ok(rn, dst, CAP, CAP - 50);
	rd_io_join(a);
	cr_assert_eq(a->ret, 100, "parked write A: %zd (%s)", a->ret, rd_errname(a->err));
	if (d->cuse) {
		rd_read_ok(rn, dst, sizeof(dst), 100);
		cr_assert_eq(dst[0], 'A', "A's bytes, and no 'L' before them");
	} else {
		rd_io_join(late);
		cr_assert_eq(late->ret, 10, "the held write completes once A is done: %zd (%s)", late->ret,
			     rd_errname(late->err));
		rd_read_ok(rn, dst, sizeof(dst), 110);
		cr_assert_eq(dst[0], 'A', "A's bytes first");
		cr_assert_eq(dst[100], 'L', "then the held write's");
	}

	close(rn);
	close(wn);
	close(w);
	rd_end(d);
}

Test(semantics, stream_overwrite)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "O", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_OVERWRITE, CAP);
	int wn = rd_open_ok(d, "O", O_WRONLY | O_NONBLOCK);
	int rn = rd_open_ok(d, "O", O_RDONLY | O_NONBLOCK);
	static unsigned char a[10000], b[200], c[10], dst[10000];
	struct ringdev_pipe_info info;
	struct ringdev_stats st;

	rd_pattern(a, sizeof(a), 3, 0);
	rd_pattern(b, sizeof(b), 4, 0);
	rd_pattern(c, sizeof(c), 5, 0);

	rd_write_ok(w, a, 4000);
	rd_write_ok(w, b, 200); /* 104 oldest bytes dropped */
	info = rd_pipe_info(rn);
	cr_assert_eq(info.queued_bytes, CAP, "ring full after overwrite");
	cr_assert_eq(info.dropped_bytes, 104, "dropped_bytes: expected 104, got %llu",
		     (unsigned long long)info.dropped_bytes);
	cr_assert(poll_now(w, POLLOUT) & POLLOUT, "overwrite policy: POLLOUT even when full");
	rd_write_ok(wn, c, 10); /* never EAGAIN: 10 more dropped */
	cr_assert_eq(rd_pipe_info(rn).dropped_bytes, 114, "dropped_bytes after 10 more");

	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, a + 114, 4000 - 114), 0, "the newest bytes of the first write");
	cr_assert_eq(memcmp(dst + 4000 - 114, b, 200), 0, "then the second write");
	cr_assert_eq(memcmp(dst + 4000 - 114 + 200, c, 10), 0, "then the third");

	/* Larger than capacity: only its last 4096 bytes stay. */
	rd_write_ok(w, a, sizeof(a));
	info = rd_pipe_info(rn);
	cr_assert_eq(info.dropped_bytes, 114 + sizeof(a) - CAP, "dropped_bytes after a 10000-byte write: %llu",
		     (unsigned long long)info.dropped_bytes);
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, a + sizeof(a) - CAP, CAP), 0, "the last 4096 bytes of the big write");

	/* Queued data and a larger-than-capacity write: all old bytes go. */
	rd_write_ok(w, b, 200);
	rd_write_ok(w, a, 5000);
	info = rd_pipe_info(rn);
	cr_assert_eq(info.dropped_bytes, 114 + (sizeof(a) - CAP) + 200 + (5000 - CAP), "dropped_bytes: %llu",
		     (unsigned long long)info.dropped_bytes);
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, a + 5000 - CAP, CAP), 0, "the last 4096 bytes of the 5000-byte write");

	st = rd_stats(d);
	cr_assert_eq(st.dropped_bytes, info.dropped_bytes, "device dropped_bytes = the pipe's: %llu vs %llu",
		     (unsigned long long)st.dropped_bytes, (unsigned long long)info.dropped_bytes);
	cr_assert_eq(st.parked_writes, 0, "overwrite never parks");

	close(rn);
	close(wn);
	close(w);
	rd_end(d);
}

Test(semantics, stream_fail)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "F", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_FAIL, CAP);
	int rn = rd_open_ok(d, "F", O_RDONLY | O_NONBLOCK);
	static unsigned char src[10000], dst[10000];

	rd_pattern(src, sizeof(src), 6, 0);
	rd_write_ok(w, src, 4000);
	rd_assert_errno(write_now(w, src, 200), EAGAIN, "fail policy: a blocking write that does not fit");
	cr_assert_eq(rd_pipe_info(rn).queued_bytes, 4000, "nothing of it written");
	rd_write_ok(w, src + 4000, 96);
	rd_assert_errno(write_now(w, src, 1), EAGAIN, "fail policy: full");
	rd_assert_errno(write_now(w, src, sizeof(src)), EFBIG, "fail policy: larger than capacity");
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, src, CAP), 0, "data");
	rd_assert_errno(write_now(w, src, CAP + 1), EFBIG, "fail policy: capacity + 1 on an empty pipe");
	rd_write_ok(w, src, CAP);
	cr_assert_eq(rd_stats(d).parked_writes, 0, "fail never parks");
	rd_read_ok(rn, dst, sizeof(dst), CAP);

	close(rn);
	close(w);
	rd_end(d);
}

Test(semantics, message_block)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "M", O_WRONLY, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_BLOCK, CAP);
	int wn = rd_open_ok(d, "M", O_WRONLY | O_NONBLOCK);
	int rn = rd_open_ok(d, "M", O_RDONLY | O_NONBLOCK);
	static unsigned char m[12][CAP], dst[CAP + 100];
	struct ringdev_nread nr;
	struct ringdev_pipe_info info;
	struct rd_io *parked;

	for (int i = 0; i < 12; i++)
		message(m[i], CAP, (uint64_t)i);

	rd_write_ok(w, m[0], 100);
	rd_write_ok(w, m[1], 200);
	cr_assert_eq(write_now(w, m[2], 0), 0, "a zero-length write returns 0");
	nr = rd_nread(rn);
	cr_assert_eq(nr.next, 100, "NREAD.next: size of the next message");
	cr_assert_eq(nr.queued_bytes, 300, "NREAD.queued_bytes: payload");
	cr_assert_eq(nr.queued_messages, 2, "NREAD.queued_messages: the empty write sent nothing");

	rd_assert_errno(read_now(rn, dst, 50), EMSGSIZE, "read buffer smaller than the message");
	cr_assert_eq(rd_nread(rn).queued_messages, 2, "the message stays after EMSGSIZE");
	cr_assert_eq(rd_nread(rn).next, 100, "the same message is next");
	rd_read_ok(rn, dst, sizeof(dst), 100);
	cr_assert_eq(memcmp(dst, m[0], 100), 0, "message 0, whole");
	rd_read_ok(rn, dst, sizeof(dst), 200);
	cr_assert_eq(memcmp(dst, m[1], 200), 0, "message 1, whole");
	rd_assert_errno(read_now(rn, dst, sizeof(dst)), EAGAIN, "empty");

	/* Largest message: min(64 KiB, capacity - 4 header bytes). */
	rd_assert_errno(write_now(w, m[3], CAP - 3), EMSGSIZE, "a message longer than capacity - 4");
	rd_write_ok(w, m[3], CAP - 4);
	info = rd_pipe_info(rn);
	cr_assert_eq(info.queued_bytes, CAP - 4, "queued payload");
	cr_assert_eq(info.queued_messages, 1, "one message");
	rd_assert_errno(write_now(wn, m[4], 1), EAGAIN, "full: header bytes count against capacity");
	rd_read_ok(rn, dst, sizeof(dst), CAP - 4);
	cr_assert_eq(memcmp(dst, m[3], CAP - 4), 0, "the largest message");

	/* 10 x (400 + 4) = 4040 ring bytes; 56 left: a 100-byte message does
	 * not fit, a 52-byte one fits exactly. */
	for (int i = 0; i < 10; i++)
		rd_write_ok(w, m[i], 400);
	rd_assert_errno(write_now(wn, m[10], 100), EAGAIN, "104 ring bytes do not fit in 56");
	rd_write_ok(wn, m[10], 52);
	rd_assert_errno(write_now(wn, m[11], 1), EAGAIN, "full");

	/* A parked message write completes once a whole message fits. */
	parked = rd_io_new(w, RD_IO_WRITE, 500);
	memcpy(parked->buf, m[11], 500);
	rd_io_start(parked);
	rd_wait_parked(d, 0, 1);
	rd_read_ok(rn, dst, sizeof(dst), 400);
	cr_assert_eq(memcmp(dst, m[0], 400), 0, "message 0 of 10");
	rd_wait_parked(d, 0, 1); /* 404 + 0 free bytes: 504 needed, still parked */
	rd_read_ok(rn, dst, sizeof(dst), 400);
	cr_assert_eq(memcmp(dst, m[1], 400), 0, "message 1 of 10");
	rd_io_join(parked);
	cr_assert_eq(parked->ret, 500, "parked message write: %zd (%s)", parked->ret,
		     rd_errname(parked->err));
	for (int i = 2; i < 10; i++) {
		rd_read_ok(rn, dst, sizeof(dst), 400);
		cr_assert_eq(memcmp(dst, m[i], 400), 0, "message %d of 10", i);
	}
	rd_read_ok(rn, dst, sizeof(dst), 52);
	cr_assert_eq(memcmp(dst, m[10], 52), 0, "the 52-byte message");
	rd_read_ok(rn, dst, sizeof(dst), 500);
	cr_assert_eq(memcmp(dst, m[11], 500), 0, "the parked message, last");

	close(rn);
	close(wn);
	close(w);
	rd_end(d);
}

Test(semantics, message_max_size_is_64k)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "Big", O_WRONLY, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_BLOCK, 256 * 1024);
	int rn = rd_open_ok(d, "Big", O_RDONLY | O_NONBLOCK);
	const size_t max = RINGDEV_MESSAGE_MAX;
	unsigned char *src = malloc(max + 1), *dst = malloc(max + 16);

	cr_assert(src && dst);
	rd_pattern(src, max + 1, 7, 0);
	rd_assert_errno(write_now(w, src, max + 1), EMSGSIZE, "a message of 64 KiB + 1");
	rd_write_ok(w, src, max);
	cr_assert_eq(rd_nread(rn).next, max, "NREAD.next: 65536");
	rd_assert_errno(read_now(rn, dst, max - 1), EMSGSIZE, "a 65535-byte buffer for it");
	rd_read_ok(rn, dst, max + 16, max);
	cr_assert_eq(memcmp(dst, src, max), 0, "the 64 KiB message");
	free(src);
	free(dst);
	close(rn);
	close(w);
	rd_end(d);
}

Test(semantics, message_overwrite)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "MO", O_WRONLY | O_NONBLOCK, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_OVERWRITE,
			  CAP);
	int rn = rd_open_ok(d, "MO", O_RDONLY | O_NONBLOCK);
	static unsigned char m[10][CAP], dst[CAP];
	struct ringdev_pipe_info info;
	struct ringdev_stats st;

	for (int i = 0; i < 10; i++)
		message(m[i], CAP, 100 + (uint64_t)i);

	/* Each message takes 1004 ring bytes: 4 fit; every later one drops
	 * the oldest whole message. */
	for (int i = 0; i < 10; i++)
		rd_write_ok(w, m[i], 1000);
	info = rd_pipe_info(rn);
	cr_assert_eq(info.queued_messages, 4, "4 messages kept, got %llu",
		     (unsigned long long)info.queued_messages);
	cr_assert_eq(info.dropped_messages, 6, "dropped_messages: expected 6, got %llu",
		     (unsigned long long)info.dropped_messages);
	cr_assert_eq(info.dropped_bytes, 6000, "dropped_bytes: expected 6000, got %llu",
		     (unsigned long long)info.dropped_bytes);
	st = rd_stats(d);
	cr_assert_eq(st.dropped_messages, 6, "device dropped_messages");
	cr_assert_eq(st.dropped_bytes, 6000, "device dropped_bytes");
	for (int i = 6; i < 10; i++) {
		rd_read_ok(rn, dst, sizeof(dst), 1000);
		cr_assert_eq(memcmp(dst, m[i], 1000), 0, "message %d survives", i);
	}

	rd_assert_errno(write_now(w, m[0], CAP - 3), EMSGSIZE, "overwrite: too long a message");
	rd_write_ok(w, m[0], 1000);
	rd_write_ok(w, m[1], 1000);
	rd_write_ok(w, m[2], CAP - 4); /* drops both */
	info = rd_pipe_info(rn);
	cr_assert_eq(info.dropped_messages, 8, "dropped_messages: expected 8, got %llu",
		     (unsigned long long)info.dropped_messages);
	cr_assert_eq(info.dropped_bytes, 8000, "dropped_bytes: expected 8000, got %llu",
		     (unsigned long long)info.dropped_bytes);
	rd_read_ok(rn, dst, sizeof(dst), CAP - 4);
	cr_assert_eq(memcmp(dst, m[2], CAP - 4), 0, "the largest message");

	/* 3004 + 104 queued; a 2000-byte message drops only the oldest. */
	rd_write_ok(w, m[3], 3000);
	rd_write_ok(w, m[4], 100);
	rd_write_ok(w, m[5], 2000);
	info = rd_pipe_info(rn);
	cr_assert_eq(info.dropped_messages, 9, "dropped_messages: expected 9, got %llu",
		     (unsigned long long)info.dropped_messages);
	cr_assert_eq(info.dropped_bytes, 11000, "dropped_bytes: expected 11000, got %llu",
		     (unsigned long long)info.dropped_bytes);
	rd_read_ok(rn, dst, sizeof(dst), 100);
	cr_assert_eq(memcmp(dst, m[4], 100), 0, "the 100-byte message");
	rd_read_ok(rn, dst, sizeof(dst), 2000);
	cr_assert_eq(memcmp(dst, m[5], 2000), 0, "the 2000-byte message");
	cr_assert_eq(rd_stats(d).parked_writes, 0, "overwrite never parks");

	close(rn);
	close(w);
	rd_end(d);
}

Test(semantics, message_fail)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "MF", O_WRONLY, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_FAIL, CAP);
	int rn = rd_open_ok(d, "MF", O_RDONLY | O_NONBLOCK);
	static unsigned char m[6][CAP], dst[CAP];

	for (int i = 0; i < 6; i++)
		message(m[i], CAP, 200 + (uint64_t)i);
	for (int i = 0; i < 4; i++)
		rd_write_ok(w, m[i], 1000);
	rd_assert_errno(write_now(w, m[4], 1000), EAGAIN, "fail policy: a message that does not fit");
	cr_assert_eq(rd_pipe_info(rn).queued_messages, 4, "nothing of it queued");
	rd_write_ok(w, m[4], 76); /* 80 ring bytes: exactly what is left */
	rd_assert_errno(write_now(w, m[5], 1), EAGAIN, "full");
	rd_assert_errno(write_now(w, m[5], CAP - 3), EMSGSIZE, "too long a message is EMSGSIZE, not EFBIG");
	for (int i = 0; i < 4; i++) {
		rd_read_ok(rn, dst, sizeof(dst), 1000);
		cr_assert_eq(memcmp(dst, m[i], 1000), 0, "message %d", i);
	}
	rd_read_ok(rn, dst, sizeof(dst), 76);
	cr_assert_eq(memcmp(dst, m[4], 76), 0, "the 76-byte message");
	rd_write_ok(w, m[5], CAP - 4);
	rd_read_ok(rn, dst, sizeof(dst), CAP - 4);
	cr_assert_eq(rd_stats(d).parked_writes, 0, "fail never parks");

	close(rn);
	close(w);
	rd_end(d);
}

Test(semantics, eof_rule)
{
	struct rd_daemon *d = rd_start(NULL);
	int rn = rd_create(d, "E", O_RDONLY | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	char buf[64];
	struct rd_io *parked;
	int w, w2, rw, r;

	/* No writer was ever attached: not EOF. */
	rd_assert_errno(read_now(rn, buf, sizeof(buf)), EAGAIN, "empty pipe that never had a writer");
	cr_assert_eq(poll_now(rn, POLLIN) & (POLLIN | POLLHUP), 0, "no POLLIN/POLLHUP before any writer");
	cr_assert_eq(rd_pipe_info(rn).flags & RINGDEV_PIPE_EOF, 0, "no EOF flag");

	w = rd_open_ok(d, "E", O_WRONLY);
	rd_write_ok(w, "abc", 3);
	rd_close(d, w);
	/* Data first, then EOF. */
	rd_read_ok(rn, buf, sizeof(buf), 3);
	cr_assert_eq(memcmp(buf, "abc", 3), 0, "data queued before EOF");
	cr_assert_eq(read_now(rn, buf, sizeof(buf)), 0, "EOF once empty and the writer closed");
	cr_assert(rd_pipe_info(rn).flags & RINGDEV_PIPE_EOF, "EOF flag");
	cr_assert(poll_now(rn, POLLIN) & POLLHUP, "POLLHUP in the EOF state");
	r = rd_open_ok(d, "E", O_RDONLY);
	cr_assert_eq(read_now(r, buf, sizeof(buf)), 0, "a blocking read in the EOF state returns 0 at once");

	/* A new writer ends the EOF state. */
	w2 = rd_open_ok(d, "E", O_WRONLY);
	rd_assert_errno(read_now(rn, buf, sizeof(buf)), EAGAIN, "a new writer ends EOF");
	cr_assert_eq(rd_pipe_info(rn).flags & RINGDEV_PIPE_EOF, 0, "EOF flag cleared");

	/* O_RDWR is a writer too. */
	rw = rd_open_ok(d, "E", O_RDWR);
	cr_assert_eq(rd_pipe_info(rn).writers, 2, "O_WRONLY + O_RDWR writers");
	cr_assert_eq(rd_pipe_info(rn).readers, 3, "O_RDONLY x2 + O_RDWR readers");
	rd_close(d, w2);
	rd_assert_errno(read_now(rn, buf, sizeof(buf)), EAGAIN, "the O_RDWR handle is still a writer");

	/* A parked reader gets 0 when the last writer closes. */
	parked = rd_io_new(r, RD_IO_READ, sizeof(buf));
	rd_io_start(parked);
	rd_wait_parked(d, 1, 0);
	rd_close(d, rw);
	rd_io_join(parked);
	cr_assert_eq(parked->ret, 0, "parked read at the last writer's close: expected 0 (EOF), got %zd (%s)",
		     parked->ret, rd_errname(parked->err));
	cr_assert_eq(read_now(rn, buf, sizeof(buf)), 0, "EOF again");

	close(r);
	close(rn);
	rd_end(d);
}

Test(semantics, readers_share_one_queue_in_fifo_order)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "Q", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	int ra = rd_open_ok(d, "Q", O_RDONLY);
	int rb = rd_open_ok(d, "q", O_RDONLY);
	int rc = rd_open_ok(d, "Q", O_RDONLY);
	struct rd_io *a = rd_io_new(ra, RD_IO_READ, 100);
	struct rd_io *b = rd_io_new(rb, RD_IO_READ, 100);
	struct rd_io *c = rd_io_new(rc, RD_IO_READ, 100);

	rd_io_start(a);
	rd_wait_parked(d, 1, 0);
	rd_io_start(b);
	rd_wait_parked(d, 2, 0);
	rd_io_start(c);
	rd_wait_parked(d, 3, 0);

	rd_write_ok(w, "1", 1);
	rd_io_join(a);
	rd_wait_parked(d, 2, 0);
	rd_write_ok(w, "2", 1);
	rd_io_join(b);
	rd_wait_parked(d, 1, 0);
	rd_write_ok(w, "3", 1);
	rd_io_join(c);
	cr_assert(a->ret == 1 && a->buf[0] == '1', "first parked reader gets the first write");
	cr_assert(b->ret == 1 && b->buf[0] == '2', "second parked reader gets the second write");
	cr_assert(c->ret == 1 && c->buf[0] == '3', "third parked reader gets the third write");

	close(ra);
	close(rb);
	close(rc);
	close(w);
	rd_end(d);
}

Test(semantics, detach_and_attach_again)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "D", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	struct ringdev_pipe_info info;
	struct ringdev_nread nr;
	char buf[16];

	rd_write_ok(fd, "x", 1);
	cr_assert_eq(ioctl(fd, RINGDEV_IOC_DETACH), 0, "DETACH: %s", strerror(errno));
	rd_assert_errno(read_now(fd, buf, sizeof(buf)), ENXIO, "read after DETACH");
	rd_assert_errno(write_now(fd, "y", 1), ENXIO, "write after DETACH");
	errno = 0;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_NREAD, &nr), ENXIO, "NREAD after DETACH");
	errno = 0;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info), ENXIO, "PIPE_INFO after DETACH");
	errno = 0;
	rd_assert_errno(rd_set_config(fd, RINGDEV_SET_POLICY, 0, RINGDEV_POLICY_FAIL, 0, 0), ENXIO,
			"SET_CONFIG after DETACH");
	cr_assert(poll_now(fd, POLLIN | POLLOUT) & POLLERR, "POLLERR on a detached handle");

	/* The unread byte kept the pipe; attach to it again. */
	cr_assert_eq(rd_attach(fd, "D", 0, 0, 0, 0, 0), 0, "ATTACH again: %s", strerror(errno));
	info = rd_pipe_info(fd);
	cr_assert_str_eq(info.name, "D", "attached to D");
	cr_assert_eq(info.queued_bytes, 1, "the byte is still there");
	rd_read_ok(fd, buf, sizeof(buf), 1);
	cr_assert_eq(buf[0], 'x', "the byte");
	close(fd);
	rd_end(d);
}

Test(semantics, set_config_rules)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "C", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	struct ringdev_pipe_config raw;
	struct ringdev_pipe_info info;
	char buf[16];

	rd_write_ok(fd, "0123456789", 10);
	rd_assert_errno(rd_set_config(fd, RINGDEV_SET_KIND, RINGDEV_KIND_MESSAGE, 0, 0, 0), EBUSY,
			"kind change with data queued");
	rd_assert_errno(rd_set_config(fd, 0x100, 0, 0, 0, 0), EINVAL, "unknown set bit");
	memset(&raw, 0, sizeof(raw));
	raw.set = RINGDEV_SET_POLICY;
	raw.policy = RINGDEV_POLICY_FAIL;
	raw.reserved[2] = 1;
	errno = 0;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_SET_CONFIG, &raw), EINVAL, "nonzero reserved field");
	rd_assert_errno(rd_set_config(fd, RINGDEV_SET_POLICY, 0, 9, 0, 0), EINVAL, "bad policy");

	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_POLICY, 0, RINGDEV_POLICY_OVERWRITE, 0, 0), 0,
		     "policy change with data queued: %s", strerror(errno));
	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_MODE, 0, 0, 0640, 0), 0, "mode: %s", strerror(errno));
	info = rd_pipe_info(fd);
	cr_assert_eq(info.policy, RINGDEV_POLICY_OVERWRITE, "policy applied");
	cr_assert_eq(info.mode & 07777, 0640, "mode applied: %o", info.mode);
	cr_assert_eq(info.queued_bytes, 10, "data kept");

	rd_read_ok(fd, buf, sizeof(buf), 10);
	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_KIND, RINGDEV_KIND_MESSAGE, 0, 0, 0), 0,
		     "kind change on an empty pipe: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(fd).kind, RINGDEV_KIND_MESSAGE, "kind applied");
	rd_write_ok(fd, "ab", 2);
	rd_write_ok(fd, "cd", 2);
	rd_read_ok(fd, buf, sizeof(buf), 2);
	cr_assert_eq(memcmp(buf, "ab", 2), 0, "message semantics now");
	rd_read_ok(fd, buf, sizeof(buf), 2);
	close(fd);
	rd_end(d);
}
