/* SPDX-License-Identifier: MIT */
/*
 * ioctl.c - section 4: ioctls a broker answers (the inverted call). First
 * the round trip of a 64-byte device-specific ioctl that echo-broker
 * echoes (B) against RINGDEV_IOC_NREAD, which the daemon answers itself
 * (A); then brokered ioctls per second with 1, 2 and 4 app threads (one
 * handle each) against ringdev-bench-broker with 1, 2 and 4 threads.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "bench.h"

/* A device-specific command: relayed to the broker, which echoes it. */
struct bench_echo {
	uint8_t data[64];
};
#define BENCH_IOC_ECHO _IOWR(RINGDEV_IOC_MAGIC, 0x90, struct bench_echo)

static const unsigned thread_counts[] = { 1, 2, 4 };
#define NCOUNTS (sizeof(thread_counts) / sizeof(thread_counts[0]))
#define MAX_APP_THREADS 4

static void echo_once(int fd)
{
	struct bench_echo e;
	memset(&e, 0x5a, sizeof(e));
	if (ioctl(fd, BENCH_IOC_ECHO, &e) < 0)
		die("echo ioctl through the broker");
}

/* One echo that must come back unchanged: the broker really answers. */
static void check_echo(int fd)
{
	struct bench_echo e, want;
	memset(&e, 0, sizeof(e));
	for (size_t i = 0; i < sizeof(e.data); i++)
		e.data[i] = (uint8_t)(i * 7 + 1);
	want = e;
	if (ioctl(fd, BENCH_IOC_ECHO, &e) < 0)
		die("echo ioctl through the broker");
	if (memcmp(&e, &want, sizeof(e)) != 0)
		fail("the broker did not echo the ioctl's 64 bytes");
}

static double direct_us(int fd, uint64_t n)
{
	struct ringdev_nread nr;
	double t0 = now();
	for (uint64_t i = 0; i < n; i++)
		if (ioctl(fd, RINGDEV_IOC_NREAD, &nr) < 0)
			die("RINGDEV_IOC_NREAD");
	return (now() - t0) / (double)n * 1e6;
}

static double brokered_us(int fd, uint64_t n)
{
	double t0 = now();
	for (uint64_t i = 0; i < n; i++)
		echo_once(fd);
	return (now() - t0) / (double)n * 1e6;
}

/* 4a: brokered echo against a direct NREAD, rounds alternating. */
static void ioctl_latency(struct daemon *d, int fd)
{
	const char *argv[] = { cfg.echo_broker, NULL };
	pid_t broker = broker_start(d, argv);
	check_echo(fd);
	struct row *r = row_add(4, "ioctl.roundtrip.64b", "ioctl round trip, brokered 64 B echo", "us");
	row_reference(r, "direct NREAD", "brokered/direct time");
	for (int round = 0; round < cfg.rounds; round++) {
		row_ref_sample(r, direct_us(fd, cfg.sizes.ioctls));
		row_val_sample(r, brokered_us(fd, cfg.sizes.ioctls));
	}
	broker_stop(d, broker);
	row_finish(r);
}

struct app_thread {
	pthread_t thread;
	pthread_barrier_t *start;
	int fd;
	uint64_t count;
};

static void *app_main(void *arg)
{
	struct app_thread *a = arg;
	pthread_barrier_wait(a->start);
	for (uint64_t i = 0; i < a->count; i++)
		echo_once(a->fd);
	return NULL;
}

/* Brokered ioctls per second of `n` threads sharing `total` calls. */
static double app_rate(const int *fds, unsigned n, uint64_t total)
{
	struct app_thread t[MAX_APP_THREADS];
	pthread_barrier_t start;
	if (pthread_barrier_init(&start, NULL, n + 1) != 0)
		fail("pthread_barrier_init");
	for (unsigned i = 0; i < n; i++) {
		t[i] = (struct app_thread){ .start = &start, .fd = fds[i], .count = total / n };
		if (pthread_create(&t[i].thread, NULL, app_main, &t[i]) != 0)
			fail("pthread_create");
	}
	pthread_barrier_wait(&start);
	double t0 = now();
	for (unsigned i = 0; i < n; i++)
		pthread_join(t[i].thread, NULL);
	double seconds = now() - t0;
	pthread_barrier_destroy(&start);
	return (double)(total / n * n) / seconds;
}

static struct row *cell_row(unsigned apps, unsigned brokers)
{
	char key[64], what[96];
	snprintf(key, sizeof(key), "ioctl.rate.app%u.broker%u", apps, brokers);
	snprintf(what, sizeof(what), "brokered ioctls, %u app x %u broker threads", apps, brokers);
	struct row *r = row_add(4, key, what, "ioctls/s");
	row_reference(r, "1 app x 1 broker", "this/(1 x 1) ioctls/s");
	return r;
}

/* A row of the 4-thread/1-thread ratio from two cells, round by round. */
static void scaling_row(const char *key, const char *what, const char *reference, const struct row *one,
			const struct row *four)
{
	struct row *r = row_add(4, key, what, "ioctls/s");
	row_reference(r, reference, "4 threads/1 thread ioctls/s");
	for (int i = 0; i < one->nval && i < four->nval; i++) {
		row_ref_sample(r, one->val_samples[i]);
		row_val_sample(r, four->val_samples[i]);
	}
	row_finish(r);
}

/* 4b: the thread table, every cell once per round. */
static void ioctl_threads(struct daemon *d, const int *fds)
{
	struct row *cell[NCOUNTS][NCOUNTS]; /* [broker][app] */
	for (size_t b = 0; b < NCOUNTS; b++)
		for (size_t a = 0; a < NCOUNTS; a++)
			cell[b][a] = cell_row(thread_counts[a], thread_counts[b]);
	for (int round = 0; round < cfg.rounds; round++) {
		for (size_t b = 0; b < NCOUNTS; b++) {
			char threads[16];
			snprintf(threads, sizeof(threads), "%u", thread_counts[b]);
			const char *argv[] = { cfg.bench_broker, "--threads", threads, NULL };
			pid_t broker = broker_start(d, argv);
			check_echo(fds[0]);
			for (size_t a = 0; a < NCOUNTS; a++)
				row_val_sample(cell[b][a], app_rate(fds, thread_counts[a], cfg.sizes.ioctls));
			broker_stop(d, broker);
		}
	}
	const struct row *base = cell[0][0];
	for (size_t b = 0; b < NCOUNTS; b++)
		for (size_t a = 0; a < NCOUNTS; a++) {
			for (int i = 0; i < base->nval; i++)
				row_ref_sample(cell[b][a], base->val_samples[i]);
			row_finish(cell[b][a]);
		}
	scaling_row("ioctl.scale.apps", "4 vs 1 app threads, 4 broker threads", "1 app x 4 broker", cell[2][0],
		    cell[2][2]);
	scaling_row("ioctl.scale.brokers", "4 vs 1 broker threads, 4 app threads", "4 app x 1 broker", cell[0][2],
		    cell[2][2]);
}

void section_ioctl(struct daemon *d)
{
	bench_phase = "4 ioctl";
	int fds[MAX_APP_THREADS];
	/* Handles first: with a broker connected, opens are relayed too. */
	for (int i = 0; i < MAX_APP_THREADS; i++)
		fds[i] = daemon_open(d, "bench-ioctl", O_RDWR);
	ioctl_latency(d, fds[0]);
	bench_phase = "4 ioctl threads";
	ioctl_threads(d, fds);
	for (int i = 0; i < MAX_APP_THREADS; i++)
		close(fds[i]);
}
