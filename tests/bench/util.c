/* SPDX-License-Identifier: MIT */
/*
 * util.c - failing, timing, whole reads and writes, medians and shared
 * memory for ringdev-bench.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

const char *bench_phase = "setup";

/* The process that started the run: only it cleans up. */
static pid_t main_pid;

static void __attribute__((constructor)) remember_main_pid(void)
{
	main_pid = getpid();
}

bool bench_is_main(void)
{
	return getpid() == main_pid;
}

static __attribute__((noreturn)) void end_run(void)
{
	if (!bench_is_main())
		_exit(1);
	stop_all_children();
	exit(1);
}

void die(const char *what)
{
	int err = errno;
	fprintf(stderr, "ringdev-bench: %s: %s: %s\n", bench_phase, what, strerror(err));
	end_run();
}

void fail(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ringdev-bench: %s: ", bench_phase);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	end_run();
}

double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			die("write");
		if (w == 0)
			fail("write: wrote nothing");
		p += w;
		n -= (size_t)w;
	}
}

void read_all(int fd, void *buf, size_t n)
{
	char *p = buf;
	while (n) {
		ssize_t r = read(fd, p, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			die("read");
		if (r == 0)
			fail("read: unexpected end of file");
		p += r;
		n -= (size_t)r;
	}
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double median(const double *v, int n)
{
	double s[BENCH_MAX_ROUNDS];
	if (n <= 0 || n > BENCH_MAX_ROUNDS)
		return NAN;
	memcpy(s, v, (size_t)n * sizeof(*s));
	qsort(s, (size_t)n, sizeof(*s), cmp_double);
	return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

void *shared_alloc(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		die("mmap of shared memory");
	return p;
}
