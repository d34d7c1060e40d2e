/* SPDX-License-Identifier: MIT */
/*
 * writes.c - section 3: how many 64-byte writes per second one process
 * gets into a file while another process reads it, on a ringdev pipe at
 * the default capacity (B) and on the file of the bare libfuse server (A),
 * so the ratio is what ringdevd costs a write beyond FUSE itself.
 */
#include <fcntl.h>
#include <unistd.h>

#include "bench.h"

#define SMALL 64

/* Seconds for `writes` writes of 64 bytes to wfd while a reader drains rfd. */
static double writes_once(int rfd, int wfd, uint64_t writes)
{
	struct worker w[2] = {
		{ .run = stream_writer, .in = -1, .out = wfd, .chunk = SMALL, .count = writes },
		{ .run = drain_reader, .in = rfd, .out = -1, .chunk = SMALL, .count = writes },
	};
	return run_workers(w, 2);
}

double writes_ringdev_once(struct daemon *d, uint64_t writes)
{
	int rfd = daemon_open(d, "bench-writes", O_RDONLY);
	int wfd = daemon_open(d, "bench-writes", O_WRONLY);
	double t = writes_once(rfd, wfd, writes);
	close(rfd);
	close(wfd);
	return t;
}

double writes_bare_once(struct bare_server *s, uint64_t writes)
{
	int rfd = open(s->file, O_RDONLY | O_CLOEXEC);
	if (rfd < 0)
		die(s->file);
	int wfd = open(s->file, O_WRONLY | O_CLOEXEC);
	if (wfd < 0)
		die(s->file);
	double t = writes_once(rfd, wfd, writes);
	close(rfd);
	close(wfd);
	return t;
}

void section_writes(struct daemon *d)
{
	bench_phase = "3 writes";
	uint64_t n = cfg.sizes.small_writes;
	struct bare_server bare;
	bare_start(&bare);
	struct row *r = row_add(3, "writes.64b", "64 B writes with a reader", "writes/s");
	row_reference(r, "bare libfuse file", "ringdev/bare writes/s");
	for (int round = 0; round < cfg.rounds; round++) {
		row_ref_sample(r, (double)n / writes_bare_once(&bare, n));
		row_val_sample(r, (double)n / writes_ringdev_once(d, n));
	}
	bare_stop(&bare);
	row_finish(r);
}
