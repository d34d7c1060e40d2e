/* SPDX-License-Identifier: MIT */
/*
 * stream.c - section 1: stream throughput from one writer process to one
 * reader process, both calling with the same chunk size (4, 64 and
 * 128 KiB), through pipe(2) with a 1 MiB buffer (A) and through a ringdev
 * pipe at the daemon's default capacity and at 1 MiB (B).
 */
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

#include "bench.h"

#define BIG_RING (1u << 20)

static void close_pair(int a, int b)
{
	close(a);
	close(b);
}

/* Seconds to move calls * chunk bytes from a writer to a reader. */
static double stream_once(int rfd, int wfd, size_t chunk, uint64_t calls)
{
	struct worker w[2] = {
		{ .run = stream_writer, .in = -1, .out = wfd, .chunk = chunk, .count = calls },
		{ .run = stream_reader, .in = rfd, .out = -1, .chunk = chunk, .count = calls },
	};
	return run_workers(w, 2);
}

void kernel_pipe_1m(int p[2])
{
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe2");
	int size = fcntl(p[1], F_SETPIPE_SZ, BIG_RING);
	if (size < 0)
		die("fcntl(F_SETPIPE_SZ, 1 MiB)");
	if ((unsigned)size < BIG_RING)
		fail("F_SETPIPE_SZ gave %d bytes, not 1 MiB", size);
}

double stream_kernel_once(size_t chunk, uint64_t calls)
{
	int p[2];
	kernel_pipe_1m(p);
	double t = stream_once(p[0], p[1], chunk, calls);
	close_pair(p[0], p[1]);
	return t;
}

double stream_ringdev_once(struct daemon *d, const char *name, size_t chunk, uint64_t calls, uint64_t capacity)
{
	int rfd = daemon_open(d, name, O_RDONLY);
	int wfd = daemon_open(d, name, O_WRONLY);
	if (capacity)
		pipe_set_capacity(wfd, capacity);
	double t = stream_once(rfd, wfd, chunk, calls);
	close_pair(rfd, wfd); /* empty and unused: the pipe goes */
	return t;
}

/* The capacity a pipe gets from the daemon when none is asked for. */
static uint64_t default_capacity(struct daemon *d)
{
	int fd = daemon_open(d, "bench-probe", O_RDONLY);
	uint64_t c = pipe_capacity(fd);
	close(fd);
	return c;
}

static const size_t chunks[] = { 4u << 10, 64u << 10, 128u << 10 };
#define NCHUNKS (sizeof(chunks) / sizeof(chunks[0]))

static double mbps(size_t chunk, uint64_t calls, double seconds)
{
	return (double)chunk * (double)calls / seconds / 1e6;
}

static struct row *stream_row(size_t chunk, uint64_t ring, bool is_default)
{
	char key[64], what[96];
	snprintf(key, sizeof(key), "stream.%zuk.ring%lluk", chunk >> 10, (unsigned long long)(ring >> 10));
	snprintf(what, sizeof(what), "stream %zu KiB calls, ring %llu KiB%s", chunk >> 10,
		 (unsigned long long)(ring >> 10), is_default ? " (default)" : "");
	struct row *r = row_add(1, key, what, "MB/s");
	row_reference(r, "pipe(2), 1 MiB", "ringdev/pipe MB/s");
	return r;
}

void section_stream(struct daemon *d)
{
	bench_phase = "1 stream";
	uint64_t ring = default_capacity(d);
	struct row *small[NCHUNKS], *big[NCHUNKS];
	for (size_t c = 0; c < NCHUNKS; c++) {
		small[c] = stream_row(chunks[c], ring, true);
		big[c] = stream_row(chunks[c], BIG_RING, false);
	}
	for (int round = 0; round < cfg.rounds; round++) {
		for (size_t c = 0; c < NCHUNKS; c++) {
			uint64_t bytes = c == 0 ? cfg.sizes.stream_bytes_small : cfg.sizes.stream_bytes_large;
			uint64_t calls = bytes / chunks[c];
			double k = mbps(chunks[c], calls, stream_kernel_once(chunks[c], calls));
			row_ref_sample(small[c], k);
			row_ref_sample(big[c], k);
			double t = stream_ringdev_once(d, "bench-stream", chunks[c], calls, 0);
			row_val_sample(small[c], mbps(chunks[c], calls, t));
			t = stream_ringdev_once(d, "bench-stream", chunks[c], calls, BIG_RING);
			row_val_sample(big[c], mbps(chunks[c], calls, t));
		}
	}
	for (size_t c = 0; c < NCHUNKS; c++) {
		row_finish(small[c]);
		row_finish(big[c]);
	}
}
