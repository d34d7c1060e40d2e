/* SPDX-License-Identifier: MIT */
/*
 * client.c - the part every tool shares (see client.h): the device, the
 * ABI check, the hint table and the error lines.
 *
 * The hints are data, not code: one table of (context, errno, hint) rows
 * and, per context, the more general context asked when it has no row, so
 * "ringdevd is gone" is written once and a tool-specific context only says
 * what differs. A row without text stops the search: ringcat --create
 * gets no "use --create" for ENOENT. A parent always comes before its
 * child in enum client_context, so the search ends.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "client.h"
#include "device_path.h"
#include "parse.h"

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

static const char *program = "ringdev";
static void (*error_hook)(void);

/* ENOTTY after VERSION worked: the daemon predates the request. Names the
 * tool, so it is filled in by client_program_set(). */
static char hint_unknown_request[96] =
	"ringdevd does not know this request (older than this tool?)";

static const char hint_bad_name[] =
	"invalid pipe name (1-63 of [A-Za-z0-9._-], not starting with '.')";
static const char hint_max_memory[] = "the daemon's --max-memory limit is reached";

struct hint {
	enum client_context context;
	int err;
	const char *text;             /* NULL: no hint, and do not look further */
};

static const struct hint hints[] = {
	{ CLIENT_CONTEXT_QUERY, ENOTCONN, "ringdevd is gone" },
	{ CLIENT_CONTEXT_QUERY, ECONNABORTED, "ringdevd is gone" },
	{ CLIENT_CONTEXT_QUERY, ENODEV, "ringdevd is gone" },
	{ CLIENT_CONTEXT_QUERY, ESHUTDOWN, "ringdevd is shutting down" },
	{ CLIENT_CONTEXT_QUERY, ENOTTY, hint_unknown_request },

	{ CLIENT_CONTEXT_DEVICE, ENOENT, "is ringdevd running?" },
	{ CLIENT_CONTEXT_DEVICE, EACCES, "the device's mode does not let you open it" },
	{ CLIENT_CONTEXT_DEVICE, EMFILE, "you hold as many handles as --max-opens-per-uid allows" },
	{ CLIENT_CONTEXT_DEVICE, ENOTTY, "not a ringdev device" },

	{ CLIENT_CONTEXT_LOOKUP, ENOENT, "no such pipe" },
	{ CLIENT_CONTEXT_LOOKUP, EACCES, "the pipe's owner and mode do not let you see it" },
	{ CLIENT_CONTEXT_LOOKUP, EINVAL, hint_bad_name },
	{ CLIENT_CONTEXT_LOOKUP, ENAMETOOLONG, "pipe name longer than 63 bytes" },

	{ CLIENT_CONTEXT_OPEN_CREATE, ENOENT, NULL },
	{ CLIENT_CONTEXT_OPEN_CREATE, EACCES, "the pipe's owner and mode do not allow this" },
	{ CLIENT_CONTEXT_OPEN_CREATE, ENOSPC, "the daemon's --max-pipes limit is reached" },

	{ CLIENT_CONTEXT_OPEN, ENOENT, "no such pipe (use --create)" },

	{ CLIENT_CONTEXT_CREATE, EEXIST, "a pipe of that name exists" },
	{ CLIENT_CONTEXT_CREATE, EPERM,
	  "only root or the --admin-group may create a pipe for another owner" },
	{ CLIENT_CONTEXT_CREATE, EACCES, "the device's mode does not let you create pipes" },
	{ CLIENT_CONTEXT_CREATE, ENOSPC,
	  "a limit is reached (ringdevd --max-pipes or --max-pipes-per-uid)" },
	{ CLIENT_CONTEXT_CREATE, EINVAL, "invalid name or settings" },

	{ CLIENT_CONTEXT_MANAGE, EPERM,
	  "only the pipe's owner, root or the --admin-group may change it" },
	{ CLIENT_CONTEXT_MANAGE, EBUSY, "the pipe holds more than the new capacity" },
	{ CLIENT_CONTEXT_MANAGE, ENOSPC, hint_max_memory },

	{ CLIENT_CONTEXT_OWNER, EPERM, "only root or the --admin-group may change a pipe's owner" },

	{ CLIENT_CONTEXT_PIPE, EPERM, "only the pipe's owner or root may change it" },
	{ CLIENT_CONTEXT_PIPE, EBUSY, "the pipe holds data (kind) or more than the new capacity" },
	{ CLIENT_CONTEXT_PIPE, ENOSPC, hint_max_memory },
	{ CLIENT_CONTEXT_PIPE, EAGAIN,
	  "the pipe is full (policy fail), or the daemon's --max-parked limit is reached" },
	{ CLIENT_CONTEXT_PIPE, EFBIG, "write larger than the pipe's capacity (policy fail)" },
	{ CLIENT_CONTEXT_PIPE, ENXIO, "the handle lost its pipe" },
};

/* Where a context without a row for an errno looks next; OTHER ends. */
static const enum client_context hint_parent[CLIENT_CONTEXT_COUNT] = {
	[CLIENT_CONTEXT_OTHER] = CLIENT_CONTEXT_OTHER,
	[CLIENT_CONTEXT_QUERY] = CLIENT_CONTEXT_OTHER,
	[CLIENT_CONTEXT_DEVICE] = CLIENT_CONTEXT_QUERY,
	[CLIENT_CONTEXT_LOOKUP] = CLIENT_CONTEXT_QUERY,
	[CLIENT_CONTEXT_OPEN_CREATE] = CLIENT_CONTEXT_LOOKUP,
	[CLIENT_CONTEXT_OPEN] = CLIENT_CONTEXT_OPEN_CREATE,
	[CLIENT_CONTEXT_CREATE] = CLIENT_CONTEXT_QUERY,
	[CLIENT_CONTEXT_MANAGE] = CLIENT_CONTEXT_LOOKUP,
	[CLIENT_CONTEXT_OWNER] = CLIENT_CONTEXT_MANAGE,
	[CLIENT_CONTEXT_RESIZE] = CLIENT_CONTEXT_MANAGE,
	[CLIENT_CONTEXT_PIPE] = CLIENT_CONTEXT_QUERY,
};

void client_program_set(const char *name)
{
	program = name;
	snprintf(hint_unknown_request, sizeof(hint_unknown_request),
		 "ringdevd does not know this request (older than %s?)", name);
}

void client_error_hook_set(void (*hook)(void))
{
	error_hook = hook;
}

const char *client_hint(int err, enum client_context context)
{
	if ((unsigned)context >= CLIENT_CONTEXT_COUNT)
		return NULL;
	while (context != CLIENT_CONTEXT_OTHER) {
		for (size_t i = 0; i < ARRAY_SIZE(hints); i++)
			if (hints[i].context == context && hints[i].err == err)
				return hints[i].text;
		context = hint_parent[context];
	}
	return NULL;
}

/* Before any error line: the hook, then stdout, so the line comes last. */
static void error_begin(void)
{
	if (error_hook)
		error_hook();
	fflush(stdout);
}

void client_error(const char *thing, const char *what, int err, enum client_context context)
{
	const char *hint = client_hint(err, context);
	error_begin();
	fprintf(stderr, "%s: %s: %s%s%s%s%s\n", program, thing, what ? what : "", what ? ": " : "",
		strerror(err), hint ? "; " : "", hint ? hint : "");
}

void client_fail(const char *thing, const char *fmt, ...)
{
	va_list ap;
	error_begin();
	fprintf(stderr, "%s: %s: ", program, thing);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int client_usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", program);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, " (see %s --help)\n", program);
	return CLIENT_EXIT_USAGE;
}

int client_usage_unknown(char **argv, int c)
{
	if (c == ':')
		return client_usage_error("option '%s' needs an argument", argv[optind - 1]);
	if (optopt)
		return client_usage_error("unknown option '-%c'", optopt);
	return client_usage_error("unknown option '%s'", argv[optind - 1]);
}

void client_version_print(void)
{
	printf("%s %s (ringdev ABI %d.%d)\n", program, RINGDEV_VERSION, RINGDEV_ABI_MAJOR,
	       RINGDEV_ABI_MINOR);
}

int client_option_kind(const char *arg, uint32_t *out)
{
	if (parse_kind(arg, out) < 0)
		return client_usage_error("--kind: '%s' is not stream or message", arg);
	return 0;
}

int client_option_policy(const char *arg, uint32_t *out)
{
	if (parse_full_policy(arg, out) < 0)
		return client_usage_error("--policy: '%s' is not block, overwrite or fail", arg);
	return 0;
}

int client_option_capacity(const char *what, const char *arg, uint64_t *out)
{
	if (parse_size(arg, RINGDEV_CAPACITY_MIN, RINGDEV_CAPACITY_MAX, out) < 0)
		return client_usage_error("%s: '%s' is not a size from %u to 1G", what, arg,
					  RINGDEV_CAPACITY_MIN);
	return 0;
}

int client_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* would loop forever */
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int client_device_kind(const char *path, enum client_kind *kind)
{
	struct stat st;
	if (stat(path, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		*kind = CLIENT_KIND_MOUNT;
	else if (S_ISCHR(st.st_mode))
		*kind = CLIENT_KIND_NODE;
	else
		return -ENOTTY;
	return 0;
}

int client_device_find(struct client_device *d, const char *given)
{
	if (given) {
		d->path = given;
		return 0;
	}
	const char *source;
	int r = device_path_default_from(d->path_buf, sizeof(d->path_buf), &source);
	if (r < 0) {
		client_fail(source, "path too long");
		return r;
	}
	d->path = d->path_buf;
	return 0;
}

/* VERSION on `fd` into d->version, and the ABI major. 0, or -errno after
 * reporting. */
static int device_check(struct client_device *d, int fd)
{
	struct ringdev_version version = { 0 };

	if (ioctl(fd, RINGDEV_IOC_VERSION, &version) < 0) {
		int err = errno;
		client_error(d->path, NULL, err, CLIENT_CONTEXT_DEVICE);
		return -err;
	}
	version.daemon_version[sizeof(version.daemon_version) - 1] = '\0';
	if (version.abi_major != RINGDEV_ABI_MAJOR) {
		client_fail(d->path, "ringdevd speaks ABI %u, %s %d", version.abi_major, program,
			    RINGDEV_ABI_MAJOR);
		return -EPROTONOSUPPORT;
	}
	d->version = version;
	return 0;
}

int client_device_open(struct client_device *d, const char *given, int node_flags)
{
	int fd, r;

	d->fd = -1;
	r = client_device_find(d, given);
	if (r < 0)
		return r;
	r = client_device_kind(d->path, &d->kind);
	if (r < 0) {
		client_error(d->path, NULL, -r, CLIENT_CONTEXT_DEVICE);
		return r;
	}
	int flags = d->kind == CLIENT_KIND_MOUNT ? O_RDONLY | O_DIRECTORY : node_flags;
	do
		fd = open(d->path, flags | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0) {
		r = -errno;
		client_error(d->path, NULL, -r, CLIENT_CONTEXT_DEVICE);
		return r;
	}
	r = device_check(d, fd);
	if (r < 0) {
		close(fd);
		return r;
	}
	d->fd = fd;
	return 0;
}

void client_device_close(struct client_device *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
}
