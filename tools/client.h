/* SPDX-License-Identifier: MIT */
/*
 * client.h - what every ringdev tool does around its own work: find the
 * device (-d, else the default of device_path.h), open it, check that it
 * speaks our ABI, and say in one line what failed, with a hint a user can
 * act on; also the pipe settings options both tools take and the write
 * loop both need.
 *
 * The tools differ in what they ask the device, not in how they reach it or
 * how they fail, so this is the one place for both. What an errno means
 * depends on what was being done (EINVAL from an open is a bad name, from a
 * write something else): the hints are one table keyed by that context, in
 * which each context falls back to a more general one. The program name is
 * set once, by client_program_set(), and every line starts with it.
 *
 * Errors follow the tree's convention: 0 (or an fd) on success, -errno on
 * failure; the functions that report say so, and report before returning.
 */
#pragma once

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ringdev/ringdev.h>

/* Exit status of a usage error (ringcat(1), ringdevctl(8): EXIT STATUS). */
enum { CLIENT_EXIT_USAGE = 2 };

/* What was being done when an errno came back: it picks the hint. */
enum client_context {
	CLIENT_CONTEXT_OTHER,         /* stdin, stdout: strerror says it all */
	CLIENT_CONTEXT_QUERY,         /* any request (STATS, LIST_*): is ringdevd there? */
	CLIENT_CONTEXT_DEVICE,        /* reaching DEVICE itself: open, VERSION */
	CLIENT_CONTEXT_LOOKUP,        /* a pipe by name (PIPE_BY_NAME, a name check) */
	CLIENT_CONTEXT_OPEN_CREATE,   /* opening a pipe with --create: openat on a
	                               * mount, ATTACH on a node */
	CLIENT_CONTEXT_OPEN,          /* the same without: a missing pipe wants --create */
	CLIENT_CONTEXT_CREATE,        /* RINGDEV_IOC_CREATE */
	CLIENT_CONTEXT_MANAGE,        /* REMOVE, CONFIGURE, FLUSH */
	CLIENT_CONTEXT_OWNER,         /* CONFIGURE with RINGDEV_SET_OWNER */
	CLIENT_CONTEXT_RESIZE,        /* CONFIGURE with RINGDEV_SET_CAPACITY */
	CLIENT_CONTEXT_PIPE,          /* configuring, reading, writing an open pipe */
	CLIENT_CONTEXT_COUNT,
};

/* Names the program in every line ("ringcat: ..."). `name` is a string
 * literal or otherwise outlives every report; call it first, once. */
void client_program_set(const char *name);

/* Called before an error line is printed, when set: ringdevctl top leaves
 * the full-screen view first, so the line stays on the normal screen.
 * NULL removes it. */
void client_error_hook_set(void (*hook)(void));

/* The hint added after strerror() for an errno a user can act on, or NULL.
 * A static string. */
const char *client_hint(int err, enum client_context context);

/* The one error line on stderr: "PROGRAM: THING: [WHAT: ]strerror[; hint]".
 * What was printed to stdout so far is flushed first, so it comes before. */
void client_error(const char *thing, const char *what, int err, enum client_context context);

/* A failure that is not an errno: "PROGRAM: THING: MESSAGE". */
__attribute__((format(printf, 2, 3)))
void client_fail(const char *thing, const char *fmt, ...);

/* A usage error, "PROGRAM: MESSAGE (see PROGRAM --help)". Returns
 * CLIENT_EXIT_USAGE, so `return client_usage_error(...)` ends the parse. */
__attribute__((format(printf, 1, 2)))
int client_usage_error(const char *fmt, ...);

/* The usage error for the option getopt_long(3) just rejected (`c` is what
 * it returned, ':' or '?'; the optstring starts with ':'). Returns
 * CLIENT_EXIT_USAGE. */
int client_usage_unknown(char **argv, int c);

/* --version: "PROGRAM VERSION (ringdev ABI MAJOR.MINOR)" on stdout. */
void client_version_print(void);

/* The pipe settings both tools take, with the same words and limits: 0 and
 * *out, or CLIENT_EXIT_USAGE after the usage error. `what` names the
 * capacity's place in the error ("--capacity", "resize"). */
int client_option_kind(const char *arg, uint32_t *out);
int client_option_policy(const char *arg, uint32_t *out);
int client_option_capacity(const char *what, const char *arg, uint64_t *out);

/* Writes all `len` bytes, over short writes and EINTR. 0, or -errno (-EIO
 * for a write that moved nothing). */
int client_write_all(int fd, const void *buf, size_t len);

/* How a device is served. */
enum client_kind {
	CLIENT_KIND_MOUNT,            /* a FUSE mount: a directory of pipes */
	CLIENT_KIND_NODE,             /* a CUSE character node */
};

/* What `path` is, from stat(2): 0 and *kind, -ENOTTY when it is neither a
 * directory nor a character device, else stat's -errno. Reports nothing. */
int client_device_kind(const char *path, enum client_kind *kind);

/* An opened device. `path` points at the -d argument (the caller's) or at
 * path_buf, so the struct is not copied once opened. */
struct client_device {
	const char *path;             /* as given or the default; NULL until found */
	int fd;                       /* -1 when not open */
	enum client_kind kind;
	struct ringdev_version version; /* daemon_version NUL-terminated */
	char path_buf[PATH_MAX];      /* the default device, when none was given */
};

#define CLIENT_DEVICE_INIT { .path = NULL, .fd = -1, .kind = CLIENT_KIND_MOUNT }

/* Sets d->path to `given` (-d) when not NULL, else to the default device
 * (device_path_default()) in d->path_buf. 0, or -ENAMETOOLONG after
 * reporting. */
int client_device_find(struct client_device *d, const char *given);

/*
 * Finds the device (client_device_find), opens it and checks it speaks
 * RINGDEV_ABI_MAJOR. A mount is opened O_RDONLY | O_DIRECTORY, a node with
 * `node_flags` (ringcat reads or writes through it, ringdevctl only asks
 * with O_RDONLY | O_NONBLOCK); O_CLOEXEC is added, EINTR retried. Anything
 * else is -ENOTTY. The fd is d's until client_device_close() or until the
 * caller takes it (fd = d->fd; d->fd = -1). 0, or -errno after reporting
 * (-EPROTONOSUPPORT for another ABI major); on failure d->fd is -1.
 */
int client_device_open(struct client_device *d, const char *given, int node_flags);

/* Closes d->fd if open; safe on CLIENT_DEVICE_INIT and twice. */
void client_device_close(struct client_device *d);
