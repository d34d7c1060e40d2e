/* SPDX-License-Identifier: MIT */
/*
 * test_stress.c - 4 writer processes and 4 reader processes move 256 MiB
 * through one pipe with the block policy, and nothing is lost, duplicated,
 * reordered or corrupted.
 *
 * Message run: 4 KiB records carrying (writer, sequence, FNV-1a of the
 * payload) and a payload derived from (writer, sequence).  Every reader
 * checks each record whole, that each writer's sequence rises (FIFO), and
 * tallies (writer, sequence) in shared memory: the union must be every record
 * exactly once.  Stream run: writes of varying sizes; a stream read may cut
 * anywhere, so readers compare the total byte count and an order-independent
 * checksum, the histogram of byte values, with what the writers sent.
 *
 * Only correctness is asserted; the time limits only catch hangs.
 */
#include "harness.h"

#include <stdatomic.h>

RD_SUITE(stress, 300);

#define WRITERS 4
#define READERS 4
#define TOTAL_BYTES (256ull << 20)
#define RECORD_SIZE 4096u
#define RECORDS_PER_WRITER (TOTAL_BYTES / RECORD_SIZE / WRITERS)
#define RUN_LIMIT_MS 240000

struct record_header {
	uint32_t writer;
	uint32_t seq;
	uint64_t checksum;
};

#define PAYLOAD_SIZE (RECORD_SIZE - sizeof(struct record_header))

struct message_shared {
	_Atomic uint8_t seen[WRITERS][RECORDS_PER_WRITER];
	struct {
		uint64_t records;
		int eof;
		int err;
	} reader[READERS];
	int writer_err[WRITERS];
};

struct worker {
	int fd;
	int index;
	void *shared;
};

static uint64_t record_seed(uint32_t writer, uint32_t seq)
{
	return ((uint64_t)writer << 32 | seq) + 0x5eed;
}

static int message_writer_main(void *arg)
{
	struct worker *w = arg;
	struct message_shared *sh = w->shared;
	static unsigned char rec[RECORD_SIZE];
	struct record_header *h = (struct record_header *)rec;

	for (uint32_t seq = 0; seq < RECORDS_PER_WRITER; seq++) {
		rd_pattern(rec + sizeof(*h), PAYLOAD_SIZE, record_seed((uint32_t)w->index, seq), 0);
		h->writer = (uint32_t)w->index;
		h->seq = seq;
		h->checksum = rd_fnv1a(RD_FNV_INIT, rec + sizeof(*h), PAYLOAD_SIZE);
		if (write(w->fd, rec, RECORD_SIZE) != RECORD_SIZE) {
			sh->writer_err[w->index] = errno ? errno : -1;
			return 1;
		}
	}
	return 0;
}

static int message_reader_main(void *arg)
{
	struct worker *w = arg;
	struct message_shared *sh = w->shared;
	static unsigned char buf[65536], expect[PAYLOAD_SIZE];
	const struct record_header *h = (const struct record_header *)buf;
	int64_t last[WRITERS] = { -1, -1, -1, -1 };

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n == 0) {
			sh->reader[w->index].eof = 1;
			return 0;
		}
		if (n < 0) {
			sh->reader[w->index].err = errno;
			return 1;
		}
		if (n != RECORD_SIZE)
			return 2; /* a message is read whole */
		if (h->writer >= WRITERS || h->seq >= RECORDS_PER_WRITER)
			return 3;
		if ((int64_t)h->seq <= last[h->writer])
			return 4; /* one writer's records come out in order */
		if (rd_fnv1a(RD_FNV_INIT, buf + sizeof(*h), PAYLOAD_SIZE) != h->checksum)
			return 5;
		rd_pattern(expect, PAYLOAD_SIZE, record_seed(h->writer, h->seq), 0);
		if (memcmp(expect, buf + sizeof(*h), PAYLOAD_SIZE) != 0)
			return 6;
		last[h->writer] = h->seq;
		atomic_fetch_add(&sh->seen[h->writer][h->seq], 1);
		sh->reader[w->index].records++;
	}
}

/* Open every handle first and start the helpers, each keeping only its own
 * handle; the test keeps none, so EOF comes exactly when the last writer is
 * done. */
static void run_workers(const struct rd_daemon *d, const char *pipe, int fd0, void *shared,
			int (*writer)(void *), int (*reader)(void *), pid_t *wpid, pid_t *rpid)
{
	static struct worker workers[WRITERS + READERS];
	int fds[WRITERS + READERS];

	fds[0] = fd0;
	for (int i = 1; i < WRITERS; i++)
		fds[i] = rd_open_ok(d, pipe, O_WRONLY);
	for (int i = 0; i < READERS; i++)
		fds[WRITERS + i] = rd_open_ok(d, pipe, O_RDONLY);
	for (int i = 0; i < READERS; i++) {
		workers[WRITERS + i] = (struct worker){ fds[WRITERS + i], i, shared };
		rpid[i] = rd_spawn(reader, &workers[WRITERS + i], fds[WRITERS + i]);
	}
	for (int i = 0; i < WRITERS; i++) {
		workers[i] = (struct worker){ fds[i], i, shared };
		wpid[i] = rd_spawn(writer, &workers[i], fds[i]);
	}
	for (int i = 0; i < WRITERS + READERS; i++)
		close(fds[i]);
}

Test(stress, message_records_4x4_256mib, .timeout = 300)
{
	struct rd_daemon *d = rd_start(NULL);
	struct message_shared *sh = rd_shared(sizeof(*sh));
	int fd0 = rd_create(d, "STRESS", O_WRONLY, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_BLOCK, 0);
	pid_t wpid[WRITERS], rpid[READERS];
	uint64_t records = 0;
	struct ringdev_stats st;

	run_workers(d, "STRESS", fd0, sh, message_writer_main, message_reader_main, wpid, rpid);
	for (int i = 0; i < WRITERS; i++)
		cr_assert_eq(rd_join_within(wpid[i], RUN_LIMIT_MS), 0, "writer %d failed (%s)", i,
			     rd_errname(sh->writer_err[i]));
	for (int i = 0; i < READERS; i++) {
		int code = rd_join_within(rpid[i], RUN_LIMIT_MS);

		cr_assert_eq(code, 0, "reader %d failed check %d (%s) after %llu records", i, code,
			     rd_errname(sh->reader[i].err), (unsigned long long)sh->reader[i].records);
		cr_assert(sh->reader[i].eof, "reader %d ended with EOF", i);
		records += sh->reader[i].records;
	}
	cr_assert_eq(records, WRITERS * RECORDS_PER_WRITER, "records read: %llu, expected %llu",
		     (unsigned long long)records, (unsigned long long)(WRITERS * RECORDS_PER_WRITER));
	for (int w = 0; w < WRITERS; w++)
		for (uint32_t s = 0; s < RECORDS_PER_WRITER; s++)
			cr_assert_eq(sh->seen[w][s], 1, "record (%d, %u) read %u times, expected once", w, s,
				     (unsigned)sh->seen[w][s]);
	st = rd_stats(d);
	cr_assert_eq(st.bytes_in, TOTAL_BYTES, "stats.bytes_in: %llu", (unsigned long long)st.bytes_in);
	cr_assert_eq(st.bytes_out, TOTAL_BYTES, "stats.bytes_out: %llu", (unsigned long long)st.bytes_out);
	cr_assert_eq(st.dropped_bytes, 0, "block policy drops nothing");
	rd_wait_opens(d, 0);
	rd_end(d);
}

struct stream_shared {
	struct {
		uint64_t bytes;
		uint64_t histogram[256];
		int err;
	} writer[WRITERS], reader[READERS];
	int reader_eof[READERS];
};

#define STREAM_PER_WRITER (TOTAL_BYTES / WRITERS)

static int stream_writer_main(void *arg)
{
	struct worker *w = arg;
	struct stream_shared *sh = w->shared;
	static unsigned char buf[65536];
	uint64_t offset = 0, sizes = 0x9e3779b97f4a7c15ull * (uint64_t)(w->index + 1);

	while (offset < STREAM_PER_WRITER) {
		size_t size;

		sizes ^= sizes << 13;
		sizes ^= sizes >> 7;
		sizes ^= sizes << 17;
		size = 1 + (size_t)(sizes % sizeof(buf));
		if (size > STREAM_PER_WRITER - offset)
			size = (size_t)(STREAM_PER_WRITER - offset);
		rd_pattern(buf, size, 0x57000 + (uint64_t)w->index, offset);
		/* At most capacity bytes: all or nothing, the full count. */
		if (write(w->fd, buf, size) != (ssize_t)size) {
			sh->writer[w->index].err = errno ? errno : -1;
			return 1;
		}
		for (size_t i = 0; i < size; i++)
			sh->writer[w->index].histogram[buf[i]]++;
		offset += size;
		sh->writer[w->index].bytes = offset;
	}
	return 0;
}

static int stream_reader_main(void *arg)
{
	struct worker *w = arg;
	struct stream_shared *sh = w->shared;
	static unsigned char buf[65536];

	for (;;) {
		ssize_t n = read(w->fd, buf, sizeof(buf));

		if (n == 0) {
			sh->reader_eof[w->index] = 1;
			return 0;
		}
		if (n < 0) {
			sh->reader[w->index].err = errno;
			return 1;
		}
		for (ssize_t i = 0; i < n; i++)
			sh->reader[w->index].histogram[buf[i]]++;
		sh->reader[w->index].bytes += (uint64_t)n;
	}
}

Test(stress, stream_4x4_256mib, .timeout = 300)
{
	struct rd_daemon *d = rd_start(NULL);
	struct stream_shared *sh = rd_shared(sizeof(*sh));
	int fd0 = rd_create(d, "STREAM", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	pid_t wpid[WRITERS], rpid[READERS];
	uint64_t in = 0, out = 0;

	run_workers(d, "STREAM", fd0, sh, stream_writer_main, stream_reader_main, wpid, rpid);
	for (int i = 0; i < WRITERS; i++)
		cr_assert_eq(rd_join_within(wpid[i], RUN_LIMIT_MS), 0, "writer %d failed (%s)", i,
			     rd_errname(sh->writer[i].err));
	for (int i = 0; i < READERS; i++) {
		cr_assert_eq(rd_join_within(rpid[i], RUN_LIMIT_MS), 0, "reader %d failed (%s)", i,
			     rd_errname(sh->reader[i].err));
		cr_assert(sh->reader_eof[i], "reader %d ended with EOF", i);
	}
	for (int i = 0; i < WRITERS; i++)
		in += sh->writer[i].bytes;
	for (int i = 0; i < READERS; i++)
		out += sh->reader[i].bytes;
	cr_assert_eq(in, TOTAL_BYTES, "bytes written: %llu", (unsigned long long)in);
	cr_assert_eq(out, in, "bytes read: %llu, written %llu", (unsigned long long)out,
		     (unsigned long long)in);
	for (int v = 0; v < 256; v++) {
		uint64_t hin = 0, hout = 0;

		for (int i = 0; i < WRITERS; i++)
			hin += sh->writer[i].histogram[v];
		for (int i = 0; i < READERS; i++)
			hout += sh->reader[i].histogram[v];
		cr_assert_eq(hout, hin, "byte value %d: read %llu times, written %llu", v,
			     (unsigned long long)hout, (unsigned long long)hin);
	}
	rd_wait_opens(d, 0);
	rd_end(d);
}
