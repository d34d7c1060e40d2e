/* SPDX-License-Identifier: MIT */
/*
 * pingpong.c - section 2: the round trip of a 64-byte message between two
 * processes, over a socketpair (A) and over two ringdev pipes, one each
 * way (B).
 */
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench.h"

#define MSG 64

/* Seconds for `pings` round trips: ping writes to a_out, reads a_in; pong
 * reads b_in, writes b_out. */
static double pingpong_once(int a_in, int a_out, int b_in, int b_out, uint64_t pings)
{
	struct worker w[2] = {
		{ .run = ping_worker, .in = a_in, .out = a_out, .chunk = MSG, .count = pings },
		{ .run = pong_worker, .in = b_in, .out = b_out, .chunk = MSG, .count = pings },
	};
	return run_workers(w, 2);
}

double pingpong_socketpair_once(uint64_t pings)
{
	int s[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, s) < 0)
		die("socketpair");
	double t = pingpong_once(s[0], s[0], s[1], s[1], pings);
	close(s[0]);
	close(s[1]);
	return t;
}

double pingpong_ringdev_once(struct daemon *d, uint64_t pings)
{
	int ab_r = daemon_open(d, "bench-ab", O_RDONLY), ab_w = daemon_open(d, "bench-ab", O_WRONLY);
	int ba_r = daemon_open(d, "bench-ba", O_RDONLY), ba_w = daemon_open(d, "bench-ba", O_WRONLY);
	double t = pingpong_once(ba_r, ab_w, ab_r, ba_w, pings);
	close(ab_r);
	close(ab_w);
	close(ba_r);
	close(ba_w);
	return t;
}

void section_pingpong(struct daemon *d)
{
	bench_phase = "2 ping-pong";
	uint64_t pings = cfg.sizes.pings;
	struct row *r = row_add(2, "pingpong.64b", "ping-pong 64 B round trip", "us");
	row_reference(r, "socketpair", "ringdev/socketpair time");
	for (int round = 0; round < cfg.rounds; round++) {
		row_ref_sample(r, pingpong_socketpair_once(pings) / (double)pings * 1e6);
		row_val_sample(r, pingpong_ringdev_once(d, pings) / (double)pings * 1e6);
	}
	row_finish(r);
}
