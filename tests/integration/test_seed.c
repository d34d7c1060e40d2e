/* SPDX-License-Identifier: MIT */
/*
 * test_seed.c - the seed scenario of the NT driver sample: a writer process
 * and a reader process on HELLO, a second reader opening `hello` shares the
 * same pipe (each byte goes to exactly one reader), and `Temp` is a separate
 * pipe.  Also: a blocking read completed by a later write from another
 * process, and --case-sensitive keeping spellings apart.
 *
 * The writer sends 32-bit sequence numbers.  Writes and reads are multiples
 * of 4 bytes, so a stream read never splits a number, and every reader can
 * check that the numbers it gets rise (FIFO) while the shared tally checks
 * that the union is every number exactly once.
 */
#include "harness.h"

#include <stdatomic.h>

RD_SUITE(seed, 60);

#define SEED_UNITS 40000u /* 160000 bytes: more than the 64 KiB ring, so writers park */

struct seed_shared {
	_Atomic uint8_t seen[SEED_UNITS];
	struct {
		uint64_t units;
		int eof;
		int err;
		uint32_t bad;
	} reader[2];
};

struct seed_reader {
	int fd;
	int index;
	struct seed_shared *shared;
};

static int seed_reader_main(void *arg)
{
	struct seed_reader *r = arg;
	uint32_t buf[1024];
	int64_t last = -1;

	for (;;) {
		ssize_t n = read(r->fd, buf, sizeof(buf));

		if (n == 0) {
			r->shared->reader[r->index].eof = 1;
			return 0;
		}
		if (n < 0) {
			r->shared->reader[r->index].err = errno;
			return 1;
		}
		if (n % 4 != 0)
			return 2;
		for (ssize_t i = 0; i < n / 4; i++) {
			if (buf[i] >= SEED_UNITS || (int64_t)buf[i] <= last) {
				r->shared->reader[r->index].bad = buf[i];
				return 3;
			}
			last = buf[i];
			atomic_fetch_add(&r->shared->seen[buf[i]], 1);
			r->shared->reader[r->index].units++;
		}
	}
}

static int seed_writer_main(void *arg)
{
	int fd = *(int *)arg;
	uint32_t buf[128];
	uint32_t next = 0;

	for (uint32_t round = 0; next < SEED_UNITS; round++) {
		uint32_t count = 1 + (round * 7) % 97;

		if (count > SEED_UNITS - next)
			count = SEED_UNITS - next;
		for (uint32_t i = 0; i < count; i++)
			buf[i] = next + i;
		/* Block policy, write below capacity: all or nothing. */
		if (write(fd, buf, count * 4) != (ssize_t)(count * 4))
			return 1;
		next += count;
	}
	return 0;
}

Test(seed, hello_shared_by_two_readers_temp_separate)
{
	struct rd_daemon *d = rd_start(NULL);
	struct seed_shared *shared = rd_shared(sizeof(*shared));
	struct seed_reader readers[2];
	struct ringdev_pipe_info hello, temp;
	unsigned char tbuf[256];
	pid_t rpid[2], wpid;
	int w, r1, r2, tw, tr;

	w = rd_open(d, "HELLO", O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(w, 0, "create HELLO: %s", strerror(errno));
	r1 = rd_open_ok(d, "HELLO", O_RDONLY);
	r2 = rd_open_ok(d, "hello", O_RDONLY);
	tw = rd_open(d, "Temp", O_WRONLY | O_CREAT | O_EXCL, 0644);
	cr_assert_geq(tw, 0, "create Temp: %s", strerror(errno));
	tr = rd_open_ok(d, "Temp", O_RDONLY | O_NONBLOCK);

	hello = rd_pipe_info(r2);
	cr_assert_str_eq(hello.name, "HELLO", "`hello` opens the pipe spelled HELLO");
	cr_assert_eq(hello.readers, 2, "HELLO readers: expected 2, got %u", hello.readers);
	cr_assert_eq(hello.writers, 1, "HELLO writers: expected 1, got %u", hello.writers);
	cr_assert_eq(hello.handles, 3, "HELLO handles: expected 3, got %u", hello.handles);
	cr_assert_eq(hello.kind, RINGDEV_KIND_STREAM, "a created pipe is a stream");
	cr_assert_eq(hello.policy, RINGDEV_POLICY_BLOCK, "a created pipe has the block policy");
	cr_assert_eq(hello.capacity, 65536, "default capacity is --ring-size 64K");
	cr_assert_eq(rd_pipe_info(r1).ino, hello.ino, "HELLO and hello are one pipe");
	temp = rd_pipe_info(tr);
	cr_assert_str_eq(temp.name, "Temp", "Temp keeps its spelling");
	cr_assert_neq(temp.ino, hello.ino, "Temp is a separate pipe");

	/* Bytes that would break the readers' checks if they crossed over. */
	memset(tbuf, 0xEE, sizeof(tbuf));
	rd_write_ok(tw, tbuf, 100);

	for (int i = 0; i < 2; i++) {
		readers[i] = (struct seed_reader){ .fd = i ? r2 : r1, .index = i, .shared = shared };
		rpid[i] = rd_spawn(seed_reader_main, &readers[i], readers[i].fd);
	}
	wpid = rd_spawn(seed_writer_main, &w, w);
	/* The helpers hold the handles now; EOF comes when the writer exits. */
	close(r1);
	close(r2);
	close(w);

	cr_assert_eq(rd_join(wpid), 0, "writer: every write of a whole block completes");
	for (int i = 0; i < 2; i++) {
		int code = rd_join(rpid[i]);

		cr_assert_eq(code, 0, "reader %d exit %d (err %s, bad unit %u)", i, code,
			     rd_errname(shared->reader[i].err), shared->reader[i].bad);
		cr_assert(shared->reader[i].eof, "reader %d ended with EOF", i);
	}
	cr_assert_eq(shared->reader[0].units + shared->reader[1].units, SEED_UNITS,
		     "the readers got %llu + %llu units, expected %u in all",
		     (unsigned long long)shared->reader[0].units,
		     (unsigned long long)shared->reader[1].units, SEED_UNITS);
	for (uint32_t i = 0; i < SEED_UNITS; i++)
		cr_assert_eq(shared->seen[i], 1, "unit %u was read %u times, expected once", i,
			     (unsigned)shared->seen[i]);

	/* Temp still holds exactly its own 100 bytes. */
	temp = rd_pipe_info(tr);
	cr_assert_eq(temp.queued_bytes, 100, "Temp queued: expected 100, got %llu",
		     (unsigned long long)temp.queued_bytes);
	memset(tbuf, 0, sizeof(tbuf));
	rd_read_ok(tr, tbuf, sizeof(tbuf), 100);
	for (int i = 0; i < 100; i++)
		cr_assert_eq(tbuf[i], 0xEE, "Temp byte %d", i);
	rd_close(d, tw);
	cr_assert_eq(read(tr, tbuf, sizeof(tbuf)), 0, "Temp: EOF after its writer closed");
	rd_close(d, tr);

	/* Both pipes were empty at their last close: gone. */
	rd_wait_opens(d, 0);
	rd_assert_errno(rd_open(d, "HELLO", O_RDONLY, 0), ENOENT, "open HELLO after its last close");
	rd_assert_errno(rd_open(d, "Temp", O_RDONLY, 0), ENOENT, "open Temp after its last close");
	rd_end(d);
}

Test(seed, names_are_case_insensitive)
{
	struct rd_daemon *d = rd_start(NULL);
	int a = rd_open(d, "HELLO", O_RDWR | O_CREAT | O_EXCL, 0644);
	int b, c;

	cr_assert_geq(a, 0, "create HELLO: %s", strerror(errno));
	rd_assert_errno(rd_open(d, "hello", O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST,
			"O_CREAT|O_EXCL of hello while HELLO exists");
	b = rd_open_ok(d, "HeLLo", O_RDONLY);
	c = rd_open(d, "hello", O_WRONLY | O_CREAT, 0644);
	cr_assert_geq(c, 0, "O_CREAT without O_EXCL opens the existing pipe: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(b).ino, rd_pipe_info(a).ino, "HeLLo is HELLO");
	cr_assert_eq(rd_pipe_info(c).ino, rd_pipe_info(a).ino, "hello is HELLO");
	cr_assert_str_eq(rd_pipe_info(c).name, "HELLO", "the name keeps its first spelling");
	cr_assert_eq(rd_pipe_info(a).handles, 3, "three handles on one pipe");
	rd_write_ok(c, "xyz", 3);
	{
		char buf[8];

		rd_read_ok(b, buf, sizeof(buf), 3);
		cr_assert_eq(memcmp(buf, "xyz", 3), 0, "data written to hello is read from HeLLo");
	}
	close(a);
	close(b);
	close(c);
	rd_end(d);
}

Test(seed, blocking_read_completed_by_later_write)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "HELLO", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	struct rd_io *reader = rd_io_new(r, RD_IO_READ, 100);
	struct rd_io *writer;
	int w;

	rd_io_start(reader);
	rd_wait_parked(d, 1, 0);
	cr_assert_eq(rd_pipe_info(r).parked_reads, 1, "the pipe counts the parked read");

	/* The write comes from another process, on its own handle. */
	w = rd_open_ok(d, "HELLO", O_WRONLY);
	writer = rd_io_new(w, RD_IO_WRITE, 11);
	memcpy(writer->buf, "hello world", 11);
	rd_io_start(writer);
	rd_io_join(writer);
	cr_assert_eq(writer->ret, 11, "write: %zd (%s)", writer->ret, rd_errname(writer->err));

	rd_io_join(reader);
	cr_assert_eq(reader->ret, 11, "parked read: expected 11 bytes, got %zd (%s)", reader->ret,
		     rd_errname(reader->err));
	cr_assert_eq(memcmp(reader->buf, "hello world", 11), 0, "parked read got the written bytes");
	close(w);
	close(r);
	rd_end(d);
}

Test(seed, case_sensitive_option_separates_spellings)
{
	const char *const args[] = { "--case-sensitive", NULL };
	struct rd_daemon *d = rd_start(args);
	int upper = rd_open(d, "HELLO", O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0644);
	int lower = rd_open(d, "hello", O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0644);
	char buf[8];

	cr_assert_geq(upper, 0, "create HELLO: %s", strerror(errno));
	cr_assert_geq(lower, 0, "with --case-sensitive, hello is another pipe: %s", strerror(errno));
	cr_assert_neq(rd_pipe_info(upper).ino, rd_pipe_info(lower).ino, "two pipes");
	rd_write_ok(upper, "U", 1);
	rd_assert_errno(read(lower, buf, sizeof(buf)), EAGAIN, "hello does not see HELLO's data");
	rd_read_ok(upper, buf, sizeof(buf), 1);
	rd_assert_errno(rd_open(d, "Hello", O_RDONLY, 0), ENOENT, "a third spelling does not exist");
	close(lower);
	close(upper);
	rd_end(d);
}
