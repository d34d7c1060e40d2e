/* SPDX-License-Identifier: MIT */
/*
 * scale.c - section 5: ringdev as it grows.
 *  (a) the ping-pong of section 2 on a daemon holding only its own two
 *      pipes (A) and on one that also holds many idle persistent pipes and
 *      many open handles (B);
 *  (b) the daemon's memory per idle pipe: Pss and VmRSS before and after
 *      creating those pipes;
 *  (c) N writer/reader pairs on N pipes at once (64 KiB calls, 1 MiB
 *      buffers, a fixed number of bytes per pair), pipe(2) (A) and ringdev
 *      (B), and how the aggregate scales from one pair to N;
 *  (d) the daemon's CPU time (utime + stime) per read or write it
 *      completed, over the ping-pong, the 4 KiB stream and the 64 B writes,
 *      the last against the bare libfuse server's CPU per request.
 */
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bench.h"

#define PAIR_CHUNK (64u << 10)
#define PAIR_RING (1u << 20)
#define MAX_PAIRS 8

/* ---- (a) and (b): the crowded daemon ---- */

static void create_idle_pipes(const struct daemon *d, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		struct ringdev_create c;
		memset(&c, 0, sizeof(c));
		snprintf(c.name, sizeof(c.name), "idle-%06llu", (unsigned long long)i);
		if (ioctl(d->root, RINGDEV_IOC_CREATE, &c) < 0)
			die("RINGDEV_IOC_CREATE of an idle pipe");
	}
	struct ringdev_stats st;
	daemon_stats(d, &st);
	if (st.pipes < n)
		fail("the daemon holds %llu pipes, not %llu", (unsigned long long)st.pipes, (unsigned long long)n);
}

static void open_idle_handles(const struct daemon *d, int *fds, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++) {
		char name[RINGDEV_NAME_SIZE];
		snprintf(name, sizeof(name), "idle-%06llu", (unsigned long long)i);
		fds[i] = daemon_open(d, name, O_RDONLY);
	}
}

/* Bytes per pipe that a reading grew by. */
static double per_pipe(uint64_t before, uint64_t after, uint64_t pipes)
{
	return ((double)after - (double)before) / (double)pipes;
}

static void memory_rows(pid_t pid, uint64_t pss0, uint64_t rss0, uint64_t pipes)
{
	char what[96];
	uint64_t pss1 = proc_pss_bytes(pid), rss1 = proc_rss_bytes(pid);
	snprintf(what, sizeof(what), "daemon memory per idle pipe (Pss, %llu pipes)", (unsigned long long)pipes);
	row_set(row_add(5, "scale.memory.pss", what, "bytes"), per_pipe(pss0, pss1, pipes));
	snprintf(what, sizeof(what), "daemon memory per idle pipe (VmRSS, %llu pipes)", (unsigned long long)pipes);
	row_set(row_add(5, "scale.memory.rss", what, "bytes"), per_pipe(rss0, rss1, pipes));
}

static void crowded(struct daemon *d)
{
	uint64_t npipes = cfg.sizes.crowd_pipes, nhandles = cfg.sizes.crowd_handles;
	if (nhandles > npipes)
		fail("%llu handles on %llu pipes", (unsigned long long)nhandles, (unsigned long long)npipes);
	int *fds = calloc(nhandles, sizeof(*fds));
	if (!fds)
		die("calloc");
	char what[96];
	snprintf(what, sizeof(what), "ping-pong 64 B, %llu idle pipes + %llu handles", (unsigned long long)npipes,
		 (unsigned long long)nhandles);
	struct row *r = row_add(5, "scale.pingpong.crowded", what, "us");
	row_reference(r, "no other pipes", "crowded/lone time");

	struct daemon crowd;
	daemon_start(&crowd, "crowd");
	uint64_t pss0 = proc_pss_bytes(crowd.pid), rss0 = proc_rss_bytes(crowd.pid);
	create_idle_pipes(&crowd, npipes);
	memory_rows(crowd.pid, pss0, rss0, npipes);
	open_idle_handles(&crowd, fds, nhandles);
	for (int round = 0; round < cfg.rounds; round++) {
		row_ref_sample(r, pingpong_ringdev_once(d, cfg.sizes.pings) / (double)cfg.sizes.pings * 1e6);
		row_val_sample(r, pingpong_ringdev_once(&crowd, cfg.sizes.pings) / (double)cfg.sizes.pings * 1e6);
	}
	row_finish(r);
	for (uint64_t i = 0; i < nhandles; i++)
		close(fds[i]);
	free(fds);
	daemon_stop(&crowd);
}

/* ---- (c): pairs ---- */

static double pairs_run(const int *rfd, const int *wfd, int n, uint64_t calls)
{
	struct worker w[2 * MAX_PAIRS];
	for (int i = 0; i < n; i++) {
		w[2 * i] = (struct worker){ .run = stream_writer, .in = -1, .out = wfd[i], .chunk = PAIR_CHUNK,
					    .count = calls };
		w[2 * i + 1] = (struct worker){ .run = stream_reader, .in = rfd[i], .out = -1, .chunk = PAIR_CHUNK,
						.count = calls };
	}
	return run_workers(w, 2 * n);
}

static void close_all(const int *fds, int n)
{
	for (int i = 0; i < n; i++)
		close(fds[i]);
}

/* Aggregate MB/s of n kernel pipe pairs. */
static double pairs_kernel(int n, uint64_t calls)
{
	int rfd[MAX_PAIRS], wfd[MAX_PAIRS];
	for (int i = 0; i < n; i++) {
		int p[2];
		kernel_pipe_1m(p);
		rfd[i] = p[0];
		wfd[i] = p[1];
	}
	double t = pairs_run(rfd, wfd, n, calls);
	close_all(rfd, n);
	close_all(wfd, n);
	return (double)n * (double)calls * PAIR_CHUNK / t / 1e6;
}

/* Aggregate MB/s of n ringdev pipe pairs. */
static double pairs_ringdev(struct daemon *d, int n, uint64_t calls)
{
	int rfd[MAX_PAIRS], wfd[MAX_PAIRS];
	for (int i = 0; i < n; i++) {
		char name[32];
		snprintf(name, sizeof(name), "bench-pair-%d", i);
		rfd[i] = daemon_open(d, name, O_RDONLY);
		wfd[i] = daemon_open(d, name, O_WRONLY);
		pipe_set_capacity(wfd[i], PAIR_RING);
	}
	double t = pairs_run(rfd, wfd, n, calls);
	close_all(rfd, n);
	close_all(wfd, n);
	return (double)n * (double)calls * PAIR_CHUNK / t / 1e6;
}

/* aggregate(n)/aggregate(1) of each round, for pipe(2) and for ringdev. */
static void factor_row(const struct row *one, const struct row *many, int n)
{
	char key[64], what[96];
	snprintf(key, sizeof(key), "scale.factor.%d", n);
	snprintf(what, sizeof(what), "scaling factor, aggregate(%d)/aggregate(1)", n);
	struct row *r = row_add(5, key, what, "x");
	row_reference(r, "pipe(2) factor", "ringdev/pipe factor");
	for (int i = 0; i < one->nref && i < many->nref; i++)
		row_ref_sample(r, many->ref_samples[i] / one->ref_samples[i]);
	for (int i = 0; i < one->nval && i < many->nval; i++)
		row_val_sample(r, many->val_samples[i] / one->val_samples[i]);
	row_finish(r);
}

static const int pair_counts[] = { 1, 2, 4, 8 };
#define NPAIRCOUNTS (sizeof(pair_counts) / sizeof(pair_counts[0]))

static void pairs(struct daemon *d)
{
	uint64_t calls = cfg.sizes.pair_bytes / PAIR_CHUNK;
	struct row *agg[NPAIRCOUNTS];
	for (size_t i = 0; i < NPAIRCOUNTS; i++) {
		char key[64], what[96];
		snprintf(key, sizeof(key), "scale.pairs.%d", pair_counts[i]);
		snprintf(what, sizeof(what), "%d pair(s), 64 KiB calls, 1 MiB buffers, aggregate", pair_counts[i]);
		agg[i] = row_add(5, key, what, "MB/s");
		row_reference(agg[i], "pipe(2) pairs", "ringdev/pipe MB/s");
	}
	for (int round = 0; round < cfg.rounds; round++)
		for (size_t i = 0; i < NPAIRCOUNTS; i++) {
			row_ref_sample(agg[i], pairs_kernel(pair_counts[i], calls));
			row_val_sample(agg[i], pairs_ringdev(d, pair_counts[i], calls));
		}
	for (size_t i = 0; i < NPAIRCOUNTS; i++)
		row_finish(agg[i]);
	for (size_t i = 1; i < NPAIRCOUNTS; i++)
		factor_row(agg[0], agg[i], pair_counts[i]);
}

/* ---- (d): CPU per operation ---- */

/* CPU microseconds per operation between two readings. */
static double cpu_us_per_op(double cpu0, double cpu1, uint64_t ops0, uint64_t ops1)
{
	return ops1 > ops0 ? (cpu1 - cpu0) * 1e6 / (double)(ops1 - ops0) : NAN;
}

enum cpu_phase { PHASE_PINGPONG, PHASE_STREAM };

/* One run of the phase on the daemon, measured. */
static double daemon_cpu_once(struct daemon *d, enum cpu_phase phase)
{
	double cpu0 = proc_cpu_seconds(d->pid);
	uint64_t ops0 = daemon_rw_ops(d);
	if (phase == PHASE_PINGPONG)
		pingpong_ringdev_once(d, cfg.sizes.pings);
	else
		stream_ringdev_once(d, "bench-stream", 4u << 10, cfg.sizes.stream_bytes_small >> 12, 0);
	return cpu_us_per_op(cpu0, proc_cpu_seconds(d->pid), ops0, daemon_rw_ops(d));
}

static double bare_cpu_once(struct bare_server *s)
{
	double cpu0 = proc_cpu_seconds(s->pid);
	uint64_t ops0 = *s->requests;
	writes_bare_once(s, cfg.sizes.small_writes);
	return cpu_us_per_op(cpu0, proc_cpu_seconds(s->pid), ops0, *s->requests);
}

static double writes_cpu_once(struct daemon *d)
{
	double cpu0 = proc_cpu_seconds(d->pid);
	uint64_t ops0 = daemon_rw_ops(d);
	writes_ringdev_once(d, cfg.sizes.small_writes);
	return cpu_us_per_op(cpu0, proc_cpu_seconds(d->pid), ops0, daemon_rw_ops(d));
}

static void cpu_per_op(struct daemon *d)
{
	struct row *pp = row_add(5, "scale.cpu.pingpong", "daemon CPU per read/write, 64 B ping-pong", "us/op");
	struct row *st = row_add(5, "scale.cpu.stream4k", "daemon CPU per read/write, 4 KiB stream", "us/op");
	struct row *wr = row_add(5, "scale.cpu.writes", "server CPU per read/write, 64 B writes + reader", "us/op");
	row_reference(wr, "bare libfuse server", "ringdevd/bare CPU per op");
	struct bare_server bare;
	bare_start(&bare);
	for (int round = 0; round < cfg.rounds; round++) {
		row_val_sample(pp, daemon_cpu_once(d, PHASE_PINGPONG));
		row_val_sample(st, daemon_cpu_once(d, PHASE_STREAM));
		row_ref_sample(wr, bare_cpu_once(&bare));
		row_val_sample(wr, writes_cpu_once(d));
	}
	bare_stop(&bare);
	row_finish(pp);
	row_finish(st);
	row_finish(wr);
}

void section_scale(struct daemon *d)
{
	bench_phase = "5a/b crowded daemon";
	crowded(d);
	bench_phase = "5c pairs";
	pairs(d);
	bench_phase = "5d CPU per op";
	cpu_per_op(d);
}
