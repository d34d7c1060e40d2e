/* SPDX-License-Identifier: MIT */
/*
 * attach-write-poll.c - a complete ringdev app in C: it reaches the device,
 * attaches a handle to a named pipe (creating it), writes, waits with
 * poll(2) and reads back what it wrote. Only <ringdev/ringdev.h> and the
 * system calls of ringdev(4): there is no library to link.
 *
 *   attach-write-poll [-d DEVICE] [-k stream|message] [-c CAPACITY] PIPE [TEXT...]
 *
 * DEVICE is what the tools take: the CUSE node (/dev/ringdev) or a pipe file
 * on the FUSE mount, whose handle is then moved to PIPE with
 * RINGDEV_IOC_ATTACH (RINGDEV_ATTACH_CREATE, with the kind and capacity);
 * or the mount directory itself, where the pipe is the file DIR/PIPE (open
 * with O_CREAT) and kind and capacity are applied with RINGDEV_IOC_SET_CONFIG.
 * Without -d: $RINGDEV_DEVICE, else /dev/ringdev, else /run/ringdev.
 * Each TEXT (default "hello") is one write: one message on a message pipe.
 *
 * Build: cc attach-write-poll.c -o attach-write-poll   (with ringdev.h installed)
 * Exit: 0 done, 1 a call failed (one line on stderr says which), 2 usage,
 *       3 the data read back was not what was written.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#define PROG "attach-write-poll"
#define POLL_TIMEOUT_MS 5000

static int fail(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s%s%s: %s\n", what, arg ? " " : "", arg ? arg : "", strerror(errno));
	return 1;
}

static int usage(const char *msg)
{
	fprintf(stderr, PROG ": %s (see " PROG " -h)\n", msg);
	return 2;
}

static const char *default_device(void)
{
	const char *env = getenv("RINGDEV_DEVICE");
	if (env && env[0])
		return env;
	return access("/dev/ringdev", F_OK) == 0 ? "/dev/ringdev" : "/run/ringdev";
}

static void print_events(const char *when, short revents)
{
	printf("poll %s:%s%s%s%s\n", when, revents & POLLIN ? " POLLIN" : "",
	       revents & POLLOUT ? " POLLOUT" : "", revents & POLLHUP ? " POLLHUP" : "",
	       revents & POLLERR ? " POLLERR" : "");
}

/* poll(2) until one of `want` is set; 0, or 1 after the error line. */
static int wait_for(int fd, short want, const char *when)
{
	struct pollfd p = { .fd = fd, .events = want };
	int n = poll(&p, 1, POLL_TIMEOUT_MS);
	if (n < 0)
		return fail("poll", NULL);
	if (n == 0) {
		errno = ETIMEDOUT;
		return fail("poll", when);
	}
	print_events(when, p.revents);
	if (p.revents & POLLERR) {
		errno = ENXIO;
		return fail("poll", when);
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *device = NULL;
	uint32_t kind = RINGDEV_KIND_STREAM;
	uint64_t capacity = 0;
	int c;

	while ((c = getopt(argc, argv, "d:k:c:h")) != -1) {
		switch (c) {
		case 'd':
			device = optarg;
			break;
		case 'k':
			if (strcmp(optarg, "stream") == 0)
				kind = RINGDEV_KIND_STREAM;
			else if (strcmp(optarg, "message") == 0)
				kind = RINGDEV_KIND_MESSAGE;
			else
				return usage("-k: stream or message");
			break;
		case 'c': {
			char *end;
			errno = 0;
			capacity = strtoull(optarg, &end, 0);
			if (errno || *end || capacity < RINGDEV_CAPACITY_MIN || capacity > RINGDEV_CAPACITY_MAX)
				return usage("-c: a capacity of 64 bytes to 1 GiB");
			break;
		}
		case 'h':
			printf("usage: " PROG " [-d DEVICE] [-k stream|message] [-c CAPACITY] PIPE [TEXT...]\n"
			       "attach a handle to PIPE (creating it), write each TEXT, poll, read it back\n");
			return 0;
		default:
			return usage("unknown option");
		}
	}
	if (optind >= argc)
		return usage("no PIPE given");
	const char *name = argv[optind++];
	if (strlen(name) > RINGDEV_NAME_MAX)
		return usage("PIPE: at most 63 bytes");
	if (!device)
		device = default_device();

	/* 1. Reach the device. Non-blocking: poll(2) decides when to go on. */
	struct stat st;
	if (stat(device, &st) < 0)
		return fail("device", device);
	int flags = O_RDWR | O_NONBLOCK | O_CLOEXEC;
	int fd;
	if (S_ISDIR(st.st_mode)) {
		char path[4096];
		if (snprintf(path, sizeof(path), "%s/%s", device, name) >= (int)sizeof(path)) {
			errno = ENAMETOOLONG;
			return fail("open", device);
		}
		fd = open(path, flags | O_CREAT, 0600);
		if (fd < 0)
			return fail("open", path);
	} else {
		fd = open(device, flags);
		if (fd < 0)
			return fail("open", device);
	}

	struct ringdev_version v;
	if (ioctl(fd, RINGDEV_IOC_VERSION, &v) < 0)
		return fail("RINGDEV_IOC_VERSION", device);
	if (v.abi_major != RINGDEV_ABI_MAJOR) {
		fprintf(stderr, PROG ": %s: ringdevd speaks ABI %u.%u, this app %d.%d\n", device,
			v.abi_major, v.abi_minor, RINGDEV_ABI_MAJOR, RINGDEV_ABI_MINOR);
		return 1;
	}
	v.daemon_version[sizeof(v.daemon_version) - 1] = '\0';
	printf("device %s: %s, ringdevd %s, ABI %u.%u\n", device,
	       v.frontend == RINGDEV_FRONTEND_CUSE ? "CUSE node" : "FUSE mount", v.daemon_version,
	       v.abi_major, v.abi_minor);

	/* 2. Attach to the pipe, creating it with our settings. */
	if (S_ISDIR(st.st_mode)) {
		struct ringdev_pipe_config cfg = {
			.set = RINGDEV_SET_KIND | (capacity ? RINGDEV_SET_CAPACITY : 0),
			.kind = kind,
			.capacity = capacity,
		};
		if (ioctl(fd, RINGDEV_IOC_SET_CONFIG, &cfg) < 0)
			return fail("RINGDEV_IOC_SET_CONFIG", name);
	} else {
		struct ringdev_attach at = {
			.flags = RINGDEV_ATTACH_CREATE,
			.kind = kind,
			.policy = RINGDEV_POLICY_BLOCK,
			.mode = 0600,
			.capacity = capacity,
		};
		strcpy(at.name, name); /* length checked above */
		if (ioctl(fd, RINGDEV_IOC_ATTACH, &at) < 0)
			return fail("RINGDEV_IOC_ATTACH", name);
	}
	struct ringdev_pipe_info info;
	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info) < 0)
		return fail("RINGDEV_IOC_PIPE_INFO", name);
	printf("attached to pipe %s (%s, capacity %llu)\n", info.name,
	       info.kind == RINGDEV_KIND_MESSAGE ? "message" : "stream",
	       (unsigned long long)info.capacity);

	/* 3. Write each text when poll says there is room, then read it back
	 *    when poll says it is there. */
	static const char *const fallback[] = { "hello" };
	const char *const *texts = optind < argc ? (const char *const *)argv + optind : fallback;
	int ntexts = optind < argc ? argc - optind : 1;
	for (int i = 0; i < ntexts; i++) {
		size_t len = strlen(texts[i]);
		if (wait_for(fd, POLLOUT, "before write"))
			return 1;
		ssize_t w = write(fd, texts[i], len);
		if (w < 0)
			return fail("write", name);
		printf("wrote %zd bytes\n", w);

		if (wait_for(fd, POLLIN, "before read"))
			return 1;
		struct ringdev_nread nr;
		if (ioctl(fd, RINGDEV_IOC_NREAD, &nr) < 0)
			return fail("RINGDEV_IOC_NREAD", name);
		char buf[RINGDEV_MESSAGE_MAX];
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0)
			return fail("read", name);
		printf("read %zd bytes (NREAD said %llu): %.*s\n", r, (unsigned long long)nr.next,
		       (int)r, buf);
		if ((size_t)r != len || memcmp(buf, texts[i], len) != 0) {
			fprintf(stderr, PROG ": %s: read back something else than was written\n", name);
			return 3;
		}
	}

	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info) < 0)
		return fail("RINGDEV_IOC_PIPE_INFO", name);
	printf("pipe %s: %llu bytes queued, %llu writes, %llu reads\n", info.name,
	       (unsigned long long)info.queued_bytes, (unsigned long long)info.writes,
	       (unsigned long long)info.reads);
	if (close(fd) < 0)
		return fail("close", name);
	return 0;
}
