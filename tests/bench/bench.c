/* SPDX-License-Identifier: MIT */
/*
 * bench.c - how fast ringdev is, as ratios against kernel references
 * measured in the same run: throughput against a kernel pipe, small-message
 * round trips against a socketpair. The machines are shared and noisy, so
 * each figure is the best of several rounds and nothing here asserts a time.
 *
 *   ringdev-bench [RINGDEVD [ECHO_BROKER]]   (default: $RINGDEVD, $RINGDEV_ECHO_BROKER)
 *
 * It starts its own daemon on a temporary FUSE mount. With an echo broker
 * (broker/examples/echo-broker) it also times an ioctl the broker answers
 * (the inverted call) beside one the daemon answers itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#define ROUNDS 3
#define TOTAL (256u << 20)
#define PINGS 2000
#define IOCTLS 2000

/* A device-specific command: relayed to the broker, which echoes it. */
struct bench_echo {
	uint8_t data[64];
};
#define BENCH_IOC_ECHO _IOWR(RINGDEV_IOC_MAGIC, 0x90, struct bench_echo)

static char mount_dir[256];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static __attribute__((noreturn)) void die(const char *what)
{
	fprintf(stderr, "ringdev-bench: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void write_all(int fd, const char *buf, size_t n)
{
	while (n) {
		ssize_t w = write(fd, buf, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			die("write");
		buf += w;
		n -= (size_t)w;
	}
}

static void read_all(int fd, char *buf, size_t n)
{
	while (n) {
		ssize_t r = read(fd, buf, n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		buf += r;
		n -= (size_t)r;
	}
}

/* Seconds to move TOTAL bytes in `chunk`-sized writes from a child to us. */
static double stream(int rfd, int wfd, size_t chunk)
{
	static char buf[1 << 20];
	memset(buf, 'x', sizeof(buf));
	double t0 = now();
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		close(rfd);
		for (size_t done = 0; done < TOTAL; done += chunk)
			write_all(wfd, buf, chunk);
		_exit(0);
	}
	size_t got = 0;
	while (got < TOTAL) {
		ssize_t r = read(rfd, buf, sizeof(buf));
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			die("read");
		got += (size_t)r;
	}
	waitpid(pid, NULL, 0);
	return now() - t0;
}

/* Seconds for PINGS round trips of 64 bytes between us and a child. */
static double pingpong(int a_r, int a_w, int b_r, int b_w)
{
	char msg[64] = { 0 };
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		for (int i = 0; i < PINGS; i++) {
			read_all(b_r, msg, sizeof(msg));
			write_all(b_w, msg, sizeof(msg));
		}
		_exit(0);
	}
	double t0 = now();
	for (int i = 0; i < PINGS; i++) {
		write_all(a_w, msg, sizeof(msg));
		read_all(a_r, msg, sizeof(msg));
	}
	double t = now() - t0;
	waitpid(pid, NULL, 0);
	return t;
}

static int open_pipe(const char *name, int flags, uint64_t capacity)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", mount_dir, name);
	int fd = open(path, flags | O_CREAT, 0600);
	if (fd < 0)
		die(path);
	if (capacity) {
		struct ringdev_pipe_config c = { .set = RINGDEV_SET_CAPACITY, .capacity = capacity };
		if (ioctl(fd, RINGDEV_IOC_SET_CONFIG, &c) < 0)
			die("RINGDEV_IOC_SET_CONFIG");
	}
	return fd;
}

static double best(double a, double b)
{
	return a < b ? a : b;
}

int main(int argc, char **argv)
{
	const char *daemon = argc > 1 ? argv[1] : getenv("RINGDEVD");
	if (!daemon) {
		fprintf(stderr, "usage: ringdev-bench RINGDEVD [ECHO_BROKER] (or set $RINGDEVD)\n");
		return 2;
	}
	char tmpl[] = "/tmp/ringdev-bench.XXXXXX";
	if (!mkdtemp(tmpl))
		die("mkdtemp");
	snprintf(mount_dir, sizeof(mount_dir), "%s/mnt", tmpl);
	pid_t d = fork();
	if (d == 0) {
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		execl(daemon, daemon, "--frontend=fuse", "--mount", mount_dir, "-f", "--max-memory", "1G", (char *)NULL);
		_exit(127);
	}
	int ready = 0;
	for (int i = 0; i < 100 && !ready; i++) {
		int fd = open(mount_dir, O_RDONLY | O_DIRECTORY);
		struct ringdev_version v;
		ready = fd >= 0 && ioctl(fd, RINGDEV_IOC_VERSION, &v) == 0;
		if (fd >= 0)
			close(fd);
		if (!ready)
			usleep(50000);
	}
	if (!ready) {
		fprintf(stderr, "ringdev-bench: %s did not start\n", daemon);
		return 1;
	}

	static const size_t chunks[] = { 4096, 65536 };
	printf("%-34s %12s %12s %8s\n", "what", "kernel", "ringdev", "ratio");
	for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
		double k = 1e9, r = 1e9;
		for (int round = 0; round < ROUNDS; round++) {
			int p[2];
			if (pipe(p) < 0)
				die("pipe");
			k = best(k, stream(p[0], p[1], chunks[c]));
			close(p[0]);
			close(p[1]);
			int rfd = open_pipe("bench", O_RDONLY, 1 << 20);
			int wfd = open_pipe("bench", O_WRONLY, 0);
			r = best(r, stream(rfd, wfd, chunks[c]));
			close(rfd);
			close(wfd);
		}
		printf("stream %3zu KiB writes (MB/s)       %12.0f %12.0f %7.2fx\n", chunks[c] / 1024,
		       TOTAL / k / 1e6, TOTAL / r / 1e6, k / r);
	}
	double k = 1e9, r = 1e9;
	for (int round = 0; round < ROUNDS; round++) {
		int s[2];
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, s) < 0)
			die("socketpair");
		k = best(k, pingpong(s[0], s[0], s[1], s[1]));
		close(s[0]);
		close(s[1]);
		int ab_w = open_pipe("ab", O_WRONLY, 0), ab_r = open_pipe("ab", O_RDONLY, 0);
		int ba_w = open_pipe("ba", O_WRONLY, 0), ba_r = open_pipe("ba", O_RDONLY, 0);
		r = best(r, pingpong(ba_r, ab_w, ab_r, ba_w));
		close(ab_w);
		close(ab_r);
		close(ba_w);
		close(ba_r);
	}
	printf("round trip 64 B (us), vs socketpair %12.1f %12.1f %7.2fx\n", k / PINGS * 1e6, r / PINGS * 1e6, r / k);
	printf("(ratio: throughput as ringdev/kernel, round trip as ringdev/kernel time)\n");

	const char *echo = argc > 2 ? argv[2] : getenv("RINGDEV_ECHO_BROKER");
	if (echo) {
		/* The handle is opened first: with a broker, opens are relayed too. */
		int fd = open_pipe("ioctl", O_RDWR, 0);
		struct ringdev_version v;
		double t0 = now();
		for (int i = 0; i < IOCTLS; i++)
			if (ioctl(fd, RINGDEV_IOC_VERSION, &v) < 0)
				die("RINGDEV_IOC_VERSION");
		double direct = (now() - t0) / IOCTLS;
		char ctl[300];
		snprintf(ctl, sizeof(ctl), "%s/.ctl", mount_dir);
		pid_t b = fork();
		if (b == 0) {
			prctl(PR_SET_PDEATHSIG, SIGTERM);
			execl(echo, echo, ctl, (char *)NULL);
			_exit(127);
		}
		struct ringdev_stats st = { 0 };
		for (int i = 0; i < 200 && !st.broker_connected; i++) {
			usleep(10000);
			if (ioctl(fd, RINGDEV_IOC_STATS, &st) < 0)
				die("RINGDEV_IOC_STATS");
		}
		if (!st.broker_connected) {
			fprintf(stderr, "ringdev-bench: %s did not connect\n", echo);
			return 1;
		}
		struct bench_echo e = { { 1, 2, 3 } };
		t0 = now();
		for (int i = 0; i < IOCTLS; i++)
			if (ioctl(fd, BENCH_IOC_ECHO, &e) < 0)
				die("echo ioctl through the broker");
		double brokered = (now() - t0) / IOCTLS;
		printf("ioctl (us): direct VERSION %.1f, brokered echo %.1f: %.1fx\n", direct * 1e6, brokered * 1e6,
		       brokered / direct);
		kill(b, SIGTERM);
		waitpid(b, NULL, 0);
		close(fd);
	}

	kill(d, SIGTERM);
	int st;
	waitpid(d, &st, 0);
	rmdir(mount_dir);
	rmdir(tmpl);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
}
