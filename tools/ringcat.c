/* SPDX-License-Identifier: MIT */
/*
 * ringcat.c - ringcat(1): lets shells use ringdev pipes.  -w copies stdin
 * into a pipe, -r copies a pipe to stdout until its EOF.
 *
 * The pipe is reached the way each frontend offers it: on a FUSE mount the
 * pipe is the file DEVICE/NAME (O_CREAT creates it), on a CUSE node the open
 * is moved to the pipe with RINGDEV_IOC_ATTACH.  Either way the tool then asks
 * the pipe for its info and sends RINGDEV_IOC_SET_CONFIG with only the
 * settings that differ from what was asked, so one code path serves new and
 * existing pipes and an unchanged pipe never needs the owner's rights.  The
 * pipe's kind decides how stdin is cut: a message pipe gets one write per
 * input line, a stream pipe gets whatever read(2) returned.  Finding and
 * opening the device, the ABI check and the error lines are the client
 * module's (client.h), shared with ringdevctl(8).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "client.h"
#include "name.h"

/* Big enough for any message (a smaller read buffer gets EMSGSIZE) and for
 * the largest FUSE read request, so one read syscall moves as much as the
 * daemon will give. */
#define COPY_BUFFER_SIZE (4u * RINGDEV_MESSAGE_MAX)

static char copy_buffer[COPY_BUFFER_SIZE];

struct options {
	const char *device;           /* -d, or NULL for the default */
	const char *name;             /* the pipe */
	char direction;               /* 'w', 'r', or 0 when not given */
	bool create;
	uint32_t kind;                /* RINGDEV_KIND_DEFAULT: not given */
	uint32_t policy;              /* RINGDEV_POLICY_DEFAULT: not given */
	uint64_t capacity;            /* 0: not given */
};

enum {
	OPTION_CREATE = 0x100,
	OPTION_KIND,
	OPTION_CAPACITY,
	OPTION_POLICY,
	OPTION_VERSION,
};

static const struct option long_options[] = {
	{ "create", no_argument, NULL, OPTION_CREATE },
	{ "kind", required_argument, NULL, OPTION_KIND },
	{ "capacity", required_argument, NULL, OPTION_CAPACITY },
	{ "policy", required_argument, NULL, OPTION_POLICY },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPTION_VERSION },
	{ NULL, 0, NULL, 0 },
};

static void usage_print(FILE *out)
{
	fprintf(out,
		"Usage: ringcat [-d DEVICE] (-w|-r) [--create] [--kind stream|message]\n"
		"               [--capacity BYTES] [--policy block|overwrite|fail] NAME\n"
		"Copy stdin into the ringdev pipe NAME (-w), or the pipe to stdout (-r).\n"
		"\n"
		"  -d DEVICE          a ringdev CUSE node or FUSE mount directory\n"
		"                     (default: $RINGDEV_DEVICE, /dev/ringdev, /run/ringdev,\n"
		"                     or $XDG_RUNTIME_DIR/ringdev when not root)\n"
		"  -w                 write: copy stdin to the pipe until stdin ends;\n"
		"                     on a message pipe each line is one message\n"
		"  -r                 read: copy the pipe to stdout until the pipe's EOF\n"
		"  --create           create the pipe if it does not exist\n"
		"  --kind KIND        stream or message\n"
		"  --capacity BYTES   ring size, %u to 1G, with K, M or G suffix\n"
		"  --policy POLICY    when full: block, overwrite or fail\n"
		"  -h, --help         show this help and exit\n"
		"  --version          show the version and exit\n"
		"\n"
		"--kind, --capacity and --policy change the pipe when they differ from\n"
		"its settings. Exit status: 0 ok, 1 failed, 2 usage error.\n",
		RINGDEV_CAPACITY_MIN);
}

/* What an errno from opening the pipe means depends on --create. */
static enum client_context open_context(const struct options *o)
{
	return o->create ? CLIENT_CONTEXT_OPEN_CREATE : CLIENT_CONTEXT_OPEN;
}

static int direction_set(struct options *o, char direction)
{
	if (o->direction && o->direction != direction)
		return client_usage_error("give only one of -w and -r");
	o->direction = direction;
	return 0;
}

/* One option. Returns 0, CLIENT_EXIT_USAGE after reporting, or -1 for "exit 0 now". */
static int option_apply(struct options *o, int c, char **argv)
{
	switch (c) {
	case 'd':
		o->device = optarg;
		return 0;
	case 'w':
	case 'r':
		return direction_set(o, (char)c);
	case OPTION_CREATE:
		o->create = true;
		return 0;
	case OPTION_KIND:
		return client_option_kind(optarg, &o->kind);
	case OPTION_POLICY:
		return client_option_policy(optarg, &o->policy);
	case OPTION_CAPACITY:
		return client_option_capacity("--capacity", optarg, &o->capacity);
	case 'h':
		usage_print(stdout);
		return -1;
	case OPTION_VERSION:
		client_version_print();
		return -1;
	default:
		return client_usage_unknown(argv, c);
	}
}

/* Fills `o` from the command line. Returns 0 to go on, else the exit code
 * (0 after --help/--version, CLIENT_EXIT_USAGE after a one-line error). */
static int options_parse(int argc, char **argv, struct options *o)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:wrh", long_options, NULL)) != -1) {
		int r = option_apply(o, c, argv);
		if (r < 0)
			return EXIT_SUCCESS;
		if (r > 0)
			return r;
	}
	if (!o->direction)
		return client_usage_error("give -w (write) or -r (read)");
	if (optind >= argc)
		return client_usage_error("missing pipe NAME");
	if (optind + 1 < argc)
		return client_usage_error("unexpected argument '%s'", argv[optind + 1]);
	o->name = argv[optind];
	return 0;
}

/* FUSE mount: the pipe is the file NAME in the mount's directory `dirfd`;
 * O_CREAT creates it with the usual 0666 & ~umask. The fd, or -1 after
 * reporting. */
static int pipe_open_mount(int dirfd, const struct options *o, int flags)
{
	int fd;
	do
		fd = openat(dirfd, o->name, flags | (o->create ? O_CREAT : 0), 0666);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		client_error(o->name, NULL, errno, open_context(o));
	return fd;
}

static mode_t umask_get(void)
{
	mode_t mask = umask(0);
	umask(mask);
	return mask;
}

/* CUSE node: attaches the handle `fd` to the pipe; a created pipe gets the
 * asked settings at once and mode 0666 & ~umask, as a file would. 0, or -1
 * after reporting. */
static int pipe_attach(int fd, const struct options *o)
{
	struct ringdev_attach attach = {
		.flags = o->create ? RINGDEV_ATTACH_CREATE : 0,
		.kind = o->kind,
		.policy = o->policy,
		.mode = 0666 & ~(uint32_t)umask_get(),
		.capacity = o->capacity,
	};
	memcpy(attach.name, o->name, strlen(o->name)); /* checked: at most 63 bytes */
	if (ioctl(fd, RINGDEV_IOC_ATTACH, &attach) < 0) {
		client_error(o->name, NULL, errno, open_context(o));
		return -1;
	}
	return 0;
}

/* Opens the pipe on whichever kind of device -d (or the default) is: a
 * node is opened for the pipe's direction, since its handle becomes the
 * pipe's. The fd (the caller's), or -1 after reporting. */
static int pipe_open(const struct options *o)
{
	struct client_device device = CLIENT_DEVICE_INIT;
	int flags = (o->direction == 'w' ? O_WRONLY : O_RDONLY) | O_CLOEXEC;
	int fd = -1;

	if (client_device_open(&device, o->device, flags) < 0)
		return -1;
	if (device.kind == CLIENT_KIND_MOUNT) {
		fd = pipe_open_mount(device.fd, o, flags);
	} else if (pipe_attach(device.fd, o) == 0) {
		fd = device.fd;
		device.fd = -1;
	}
	client_device_close(&device);
	return fd;
}

/* Sends SET_CONFIG for the asked settings that differ from `info`, and
 * updates `info` to match. 0, or -1 after reporting. */
static int pipe_configure(int fd, const struct options *o, struct ringdev_pipe_info *info)
{
	struct ringdev_pipe_config config = { 0 };

	if (o->kind && o->kind != info->kind) {
		config.set |= RINGDEV_SET_KIND;
		config.kind = o->kind;
	}
	if (o->policy && o->policy != info->policy) {
		config.set |= RINGDEV_SET_POLICY;
		config.policy = o->policy;
	}
	if (o->capacity && o->capacity != info->capacity) {
		config.set |= RINGDEV_SET_CAPACITY;
		config.capacity = o->capacity;
	}
	if (!config.set)
		return 0;
	if (ioctl(fd, RINGDEV_IOC_SET_CONFIG, &config) < 0) {
		client_error(o->name, "set config", errno, CLIENT_CONTEXT_PIPE);
		return -1;
	}
	if (config.set & RINGDEV_SET_KIND)
		info->kind = config.kind;
	if (config.set & RINGDEV_SET_POLICY)
		info->policy = config.policy;
	if (config.set & RINGDEV_SET_CAPACITY)
		info->capacity = config.capacity;
	return 0;
}

/* One read(2), retried on EINTR. Bytes read, 0 at EOF, or -errno. */
static ssize_t read_some(int fd, char *buf, size_t len)
{
	ssize_t n;
	do
		n = read(fd, buf, len);
	while (n < 0 && errno == EINTR);
	return n < 0 ? -errno : n;
}

/* -w on a stream pipe: whatever stdin gives goes on at once, so
 * `tail -f | ringcat -w` is live. With the fail policy a write larger than
 * the capacity would get EFBIG, so chunks stay within it. */
static int copy_stream_in(int fd, const struct options *o, const struct ringdev_pipe_info *info)
{
	size_t chunk = sizeof(copy_buffer);
	if (info->policy == RINGDEV_POLICY_FAIL && info->capacity < chunk)
		chunk = (size_t)info->capacity;

	for (;;) {
		ssize_t n = read_some(STDIN_FILENO, copy_buffer, chunk);
		if (n == 0)
			return 0;
		if (n < 0) {
			client_error("stdin", NULL, (int)-n, CLIENT_CONTEXT_OTHER);
			return -1;
		}
		int r = client_write_all(fd, copy_buffer, (size_t)n);
		if (r < 0) {
			client_error(o->name, "write", -r, CLIENT_CONTEXT_PIPE);
			return -1;
		}
	}
}

/* Cuts stdin into lines without stdio, so a line is bounded by the buffer
 * and NUL bytes pass unchanged. `start..end` is unread input. */
struct line_reader {
	char *buf;
	size_t size;
	size_t start;
	size_t end;
	bool eof;
};

/* The next line (with its newline; the last one may lack it) in line and len.
 * Returns 1 for a line, 0 at the end of input, -ENOBUFS for a line longer
 * than `limit`, or -errno from read. */
static int line_next(struct line_reader *lr, size_t limit, const char **line, size_t *len)
{
	for (;;) {
		char *from = lr->buf + lr->start;
		char *nl = memchr(from, '\n', lr->end - lr->start);
		size_t have = nl ? (size_t)(nl - from) + 1 : lr->end - lr->start;
		if (have > limit)
			return -ENOBUFS;
		if (nl || (lr->eof && have > 0)) {
			*line = from;
			*len = have;
			lr->start += have;
			return 1;
		}
		if (lr->eof)
			return 0;
		memmove(lr->buf, from, have);
		lr->start = 0;
		lr->end = have;
		ssize_t n = read_some(STDIN_FILENO, lr->buf + lr->end, lr->size - lr->end);
		if (n < 0)
			return (int)n;
		lr->end += (size_t)n;
		lr->eof = n == 0;
	}
}

/* The largest message the pipe takes: every message also costs a header. */
static size_t message_limit(const struct ringdev_pipe_info *info)
{
	uint64_t limit = RINGDEV_MESSAGE_MAX;
	if (info->capacity > RINGDEV_MESSAGE_HEADER && info->capacity - RINGDEV_MESSAGE_HEADER < limit)
		limit = info->capacity - RINGDEV_MESSAGE_HEADER;
	return (size_t)limit;
}

/* One message; a message write is all or nothing, so a short count is an
 * error rather than something to continue. 0, or -errno. */
static int message_write(int fd, const char *line, size_t len)
{
	ssize_t n;
	do
		n = write(fd, line, len);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EIO;
}

/* -w on a message pipe: each input line is one message. */
static int copy_lines_in(int fd, const struct options *o, const struct ringdev_pipe_info *info)
{
	struct line_reader lr = { .buf = copy_buffer, .size = sizeof(copy_buffer) };
	size_t limit = message_limit(info);
	char where[64];

	for (unsigned long line_number = 1;; line_number++) {
		const char *line;
		size_t len;
		int r = line_next(&lr, limit, &line, &len);
		if (r == 0)
			return 0;
		snprintf(where, sizeof(where), "line %lu", line_number);
		if (r == -ENOBUFS) {
			client_fail(o->name, "%s: too long for one message (%zu bytes at most, newline included)",
				    where, limit);
			return -1;
		}
		if (r < 0) {
			client_error("stdin", where, -r, CLIENT_CONTEXT_OTHER);
			return -1;
		}
		r = message_write(fd, line, len);
		if (r < 0) {
			client_error(o->name, where, -r, CLIENT_CONTEXT_PIPE);
			return -1;
		}
	}
}

/* -r: one read is one message on a message pipe, so the buffer holds the
 * largest one. Ends at the pipe's EOF (all writers closed, nothing left). */
static int copy_out(int fd, const struct options *o)
{
	for (;;) {
		ssize_t n = read_some(fd, copy_buffer, sizeof(copy_buffer));
		if (n == 0)
			return 0;
		if (n < 0) {
			client_error(o->name, "read", (int)-n, CLIENT_CONTEXT_PIPE);
			return -1;
		}
		int r = client_write_all(STDOUT_FILENO, copy_buffer, (size_t)n);
		if (r < 0) {
			client_error("stdout", NULL, -r, CLIENT_CONTEXT_OTHER);
			return -1;
		}
	}
}

static int pipe_info_get(int fd, const struct options *o, struct ringdev_pipe_info *info)
{
	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, info) < 0) {
		client_error(o->name, "pipe info", errno, CLIENT_CONTEXT_PIPE);
		return -1;
	}
	return 0;
}

/* Opens, configures and copies; the exit code. */
static int ringcat_run(const struct options *o)
{
	struct ringdev_pipe_info info = { 0 };
	int fd = pipe_open(o);
	if (fd < 0)
		return EXIT_FAILURE;

	int r = pipe_info_get(fd, o, &info);
	if (r == 0)
		r = pipe_configure(fd, o, &info);
	if (r == 0 && o->direction == 'r')
		r = copy_out(fd, o);
	else if (r == 0 && info.kind == RINGDEV_KIND_MESSAGE)
		r = copy_lines_in(fd, o, &info);
	else if (r == 0)
		r = copy_stream_in(fd, o, &info);

	if (close(fd) < 0 && errno != EINTR && r == 0) {
		client_error(o->name, "close", errno, CLIENT_CONTEXT_PIPE);
		r = -1;
	}
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

int main(int argc, char **argv)
{
	struct options o = { 0 };

	client_program_set("ringcat");
	int r = options_parse(argc, argv, &o);
	if (r != 0 || !o.name)
		return r;

	/* A bad name is a failed operation, not a usage error: the device
	 * would refuse it the same way. */
	r = name_check_str(o.name);
	if (r < 0) {
		client_error(o.name, NULL, -r, CLIENT_CONTEXT_OPEN);
		return EXIT_FAILURE;
	}

	/* The pipe never raises SIGPIPE; a closed stdout shows up as EPIPE. */
	signal(SIGPIPE, SIG_IGN);

	return ringcat_run(&o);
}
