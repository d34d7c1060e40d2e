/* SPDX-License-Identifier: MIT */
/*
 * test_client.c - the tools' client module (tools/client.c) alone: the hint
 * each context gives, the error and usage lines byte for byte, the pipe
 * settings options, the write loop, and finding and opening a device that
 * is not one. What a real daemon answers is the
 * ringcat and ringdevctl integration tests' part.
 *
 * Criterion runs every test in its own process, so the environment and the
 * program name set here do not leak between tests; stderr can be asserted
 * once per test, so each test checks all its lines in one comparison.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "client.h"

static void setup(void)
{
	client_program_set("prog");
}

TestSuite(client, .init = setup);

struct expected_hint {
	enum client_context context;
	int err;
	const char *hint;             /* NULL: none */
};

/* What each tool printed before the tables became one (ringcat: OPEN,
 * OPEN_CREATE, PIPE and DEVICE; ringdevctl: the rest and DEVICE), so a
 * change to a user-visible hint is a change to this list. */
static const struct expected_hint expected[] = {
	{ CLIENT_CONTEXT_OTHER, ENOENT, NULL },
	{ CLIENT_CONTEXT_OTHER, EPIPE, NULL },
	{ CLIENT_CONTEXT_OTHER, ENOTCONN, NULL },

	{ CLIENT_CONTEXT_QUERY, ENOTCONN, "ringdevd is gone" },
	{ CLIENT_CONTEXT_QUERY, ECONNABORTED, "ringdevd is gone" },
	{ CLIENT_CONTEXT_QUERY, ENODEV, "ringdevd is gone" },
	{ CLIENT_CONTEXT_QUERY, ESHUTDOWN, "ringdevd is shutting down" },
	{ CLIENT_CONTEXT_QUERY, ENOTTY, "ringdevd does not know this request (older than prog?)" },
	{ CLIENT_CONTEXT_QUERY, ENOENT, NULL },

	{ CLIENT_CONTEXT_DEVICE, ENOENT, "is ringdevd running?" },
	{ CLIENT_CONTEXT_DEVICE, EACCES, "the device's mode does not let you open it" },
	{ CLIENT_CONTEXT_DEVICE, EMFILE, "you hold as many handles as --max-opens-per-uid allows" },
	{ CLIENT_CONTEXT_DEVICE, ENOTTY, "not a ringdev device" },
	{ CLIENT_CONTEXT_DEVICE, ENODEV, "ringdevd is gone" },
	{ CLIENT_CONTEXT_DEVICE, EPERM, NULL },

	{ CLIENT_CONTEXT_LOOKUP, ENOENT, "no such pipe" },
	{ CLIENT_CONTEXT_LOOKUP, EACCES, "the pipe's owner and mode do not let you see it" },
	{ CLIENT_CONTEXT_LOOKUP, EINVAL,
	  "invalid pipe name (1-63 of [A-Za-z0-9._-], not starting with '.')" },
	{ CLIENT_CONTEXT_LOOKUP, ENAMETOOLONG, "pipe name longer than 63 bytes" },
	{ CLIENT_CONTEXT_LOOKUP, ESHUTDOWN, "ringdevd is shutting down" },
	{ CLIENT_CONTEXT_LOOKUP, EPERM, NULL },

	{ CLIENT_CONTEXT_OPEN, ENOENT, "no such pipe (use --create)" },
	{ CLIENT_CONTEXT_OPEN, EACCES, "the pipe's owner and mode do not allow this" },
	{ CLIENT_CONTEXT_OPEN, EINVAL,
	  "invalid pipe name (1-63 of [A-Za-z0-9._-], not starting with '.')" },
	{ CLIENT_CONTEXT_OPEN, ENAMETOOLONG, "pipe name longer than 63 bytes" },
	{ CLIENT_CONTEXT_OPEN, ENOSPC, "the daemon's --max-pipes limit is reached" },
	{ CLIENT_CONTEXT_OPEN, ENOTCONN, "ringdevd is gone" },
	{ CLIENT_CONTEXT_OPEN_CREATE, ENOENT, NULL },
	{ CLIENT_CONTEXT_OPEN_CREATE, EACCES, "the pipe's owner and mode do not allow this" },
	{ CLIENT_CONTEXT_OPEN_CREATE, ENOSPC, "the daemon's --max-pipes limit is reached" },

	{ CLIENT_CONTEXT_CREATE, EEXIST, "a pipe of that name exists" },
	{ CLIENT_CONTEXT_CREATE, EPERM,
	  "only root or the --admin-group may create a pipe for another owner" },
	{ CLIENT_CONTEXT_CREATE, EACCES, "the device's mode does not let you create pipes" },
	{ CLIENT_CONTEXT_CREATE, ENOSPC,
	  "a limit is reached (ringdevd --max-pipes or --max-pipes-per-uid)" },
	{ CLIENT_CONTEXT_CREATE, EINVAL, "invalid name or settings" },
	{ CLIENT_CONTEXT_CREATE, ENOENT, NULL },
	{ CLIENT_CONTEXT_CREATE, ENODEV, "ringdevd is gone" },

	{ CLIENT_CONTEXT_MANAGE, EPERM,
	  "only the pipe's owner, root or the --admin-group may change it" },
	{ CLIENT_CONTEXT_MANAGE, EBUSY, "the pipe holds more than the new capacity" },
	{ CLIENT_CONTEXT_MANAGE, ENOSPC, "the daemon's --max-memory limit is reached" },
	{ CLIENT_CONTEXT_MANAGE, ENOENT, "no such pipe" },
	{ CLIENT_CONTEXT_MANAGE, EACCES, "the pipe's owner and mode do not let you see it" },
	{ CLIENT_CONTEXT_OWNER, EPERM, "only root or the --admin-group may change a pipe's owner" },
	{ CLIENT_CONTEXT_OWNER, EBUSY, "the pipe holds more than the new capacity" },
	{ CLIENT_CONTEXT_RESIZE, EPERM,
	  "only the pipe's owner, root or the --admin-group may change it" },
	{ CLIENT_CONTEXT_RESIZE, EBUSY, "the pipe holds more than the new capacity" },

	{ CLIENT_CONTEXT_PIPE, EPERM, "only the pipe's owner or root may change it" },
	{ CLIENT_CONTEXT_PIPE, EBUSY, "the pipe holds data (kind) or more than the new capacity" },
	{ CLIENT_CONTEXT_PIPE, ENOSPC, "the daemon's --max-memory limit is reached" },
	{ CLIENT_CONTEXT_PIPE, EAGAIN,
	  "the pipe is full (policy fail), or the daemon's --max-parked limit is reached" },
	{ CLIENT_CONTEXT_PIPE, EFBIG, "write larger than the pipe's capacity (policy fail)" },
	{ CLIENT_CONTEXT_PIPE, ENXIO, "the handle lost its pipe" },
	{ CLIENT_CONTEXT_PIPE, ESHUTDOWN, "ringdevd is shutting down" },
	{ CLIENT_CONTEXT_PIPE, ENOENT, NULL },
};

Test(client, hints_by_context)
{
	for (size_t i = 0; i < sizeof(expected) / sizeof(expected[0]); i++) {
		const struct expected_hint *e = &expected[i];
		const char *got = client_hint(e->err, e->context);
		if (!e->hint)
			cr_expect_null(got, "context %d, %s: no hint, got '%s'", e->context,
				       strerror(e->err), got);
		else
			cr_expect(got && strcmp(got, e->hint) == 0, "context %d, %s: '%s', got '%s'",
				  e->context, strerror(e->err), e->hint, got ? got : "(none)");
	}
}

/* Every context ends its search (a loop would time the test out) in no
 * hint or a real one, and a value outside the enum gives none. */
Test(client, every_context_ends, .timeout = 10)
{
	for (int c = 0; c < CLIENT_CONTEXT_COUNT; c++)
		for (int err = 0; err < 256; err++) {
			const char *hint = client_hint(err, (enum client_context)c);
			cr_assert(!hint || hint[0], "context %d, errno %d: an empty hint", c, err);
		}
	cr_assert_null(client_hint(ENOENT, CLIENT_CONTEXT_COUNT));
	cr_assert_null(client_hint(ENOENT, (enum client_context)-1));
}

static void hook(void)
{
	fputs("[hook]\n", stderr);
}

Test(client, error_lines, .init = cr_redirect_stderr)
{
	client_program_set("prog");
	client_error("HELLO", NULL, ENOENT, CLIENT_CONTEXT_OPEN);
	client_error("HELLO", "line 3", EFBIG, CLIENT_CONTEXT_PIPE);
	client_error("stdout", NULL, EPIPE, CLIENT_CONTEXT_OTHER);
	client_fail("/dev/ringdev", "ringdevd speaks ABI %u, %s %d", 7u, "prog", 1);
	client_error_hook_set(hook);
	client_error("stdin", "read", EIO, CLIENT_CONTEXT_OTHER);
	client_fail("top", "%s", "gone");
	client_error_hook_set(NULL);
	client_error("X", NULL, ENOTTY, CLIENT_CONTEXT_QUERY);
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"prog: HELLO: No such file or directory; no such pipe (use --create)\n"
		"prog: HELLO: line 3: File too large; write larger than the pipe's capacity (policy fail)\n"
		"prog: stdout: Broken pipe\n"
		"prog: /dev/ringdev: ringdevd speaks ABI 7, prog 1\n"
		"[hook]\n"
		"prog: stdin: read: Input/output error\n"
		"[hook]\n"
		"prog: top: gone\n"
		"prog: X: Inappropriate ioctl for device; ringdevd does not know this request (older than prog?)\n");
}

Test(client, usage_errors, .init = cr_redirect_stderr)
{
	client_program_set("prog");
	cr_assert_eq(client_usage_error("give -w (write) or -r (read)"), CLIENT_EXIT_USAGE);
	cr_assert_eq(client_usage_error("--kind: '%s' is not stream or message", "x"), 2);

	char *argv[] = { "prog", "--frob", "-x", "--interval", NULL };
	optind = 2;
	optopt = 0;
	cr_assert_eq(client_usage_unknown(argv, '?'), CLIENT_EXIT_USAGE);
	optind = 3;
	optopt = 'x';
	client_usage_unknown(argv, '?');
	optind = 4;
	client_usage_unknown(argv, ':');
	fflush(stderr);
	cr_assert_stderr_eq_str(
		"prog: give -w (write) or -r (read) (see prog --help)\n"
		"prog: --kind: 'x' is not stream or message (see prog --help)\n"
		"prog: unknown option '--frob' (see prog --help)\n"
		"prog: unknown option '-x' (see prog --help)\n"
		"prog: option '--interval' needs an argument (see prog --help)\n");
}

Test(client, pipe_settings_options, .init = cr_redirect_stderr)
{
	uint32_t kind = 0, policy = 0;
	uint64_t capacity = 0;

	client_program_set("prog");
	cr_expect_eq(client_option_kind("message", &kind), 0);
	cr_expect_eq(kind, RINGDEV_KIND_MESSAGE);
	cr_expect_eq(client_option_policy("overwrite", &policy), 0);
	cr_expect_eq(policy, RINGDEV_POLICY_OVERWRITE);
	cr_expect_eq(client_option_capacity("--capacity", "64K", &capacity), 0);
	cr_expect_eq(capacity, 65536);
	cr_expect_eq(client_option_kind("datagram", &kind), CLIENT_EXIT_USAGE);
	cr_expect_eq(client_option_policy("drop", &policy), CLIENT_EXIT_USAGE);
	cr_expect_eq(client_option_capacity("resize", "10", &capacity), CLIENT_EXIT_USAGE);
	cr_expect_eq(client_option_capacity("--capacity", "2G", &capacity), CLIENT_EXIT_USAGE);
	cr_expect_eq(capacity, 65536, "a refused value leaves the setting");
	fflush(stderr);
	char want[512];
	snprintf(want, sizeof(want),
		 "prog: --kind: 'datagram' is not stream or message (see prog --help)\n"
		 "prog: --policy: 'drop' is not block, overwrite or fail (see prog --help)\n"
		 "prog: resize: '10' is not a size from %u to 1G (see prog --help)\n"
		 "prog: --capacity: '2G' is not a size from %u to 1G (see prog --help)\n",
		 RINGDEV_CAPACITY_MIN, RINGDEV_CAPACITY_MIN);
	cr_assert_stderr_eq_str(want);
}

Test(client, write_all)
{
	static char big[256 * 1024]; /* more than a pipe holds: short writes */
	int fds[2];

	signal(SIGPIPE, SIG_IGN);
	memset(big, 'x', sizeof(big));
	cr_assert_eq(pipe(fds), 0);
	pid_t child = fork();
	cr_assert_geq(child, 0);
	if (child == 0) {
		close(fds[0]);
		_exit(client_write_all(fds[1], big, sizeof(big)) == 0 ? 0 : 1);
	}
	close(fds[1]);
	size_t got = 0;
	ssize_t n;
	char buf[8192];
	while ((n = read(fds[0], buf, sizeof(buf))) > 0)
		got += (size_t)n;
	close(fds[0]);
	int status;
	cr_assert_eq(waitpid(child, &status, 0), child);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	cr_expect_eq(got, sizeof(big));

	cr_assert_eq(pipe(fds), 0);
	close(fds[0]);
	cr_expect_eq(client_write_all(fds[1], "x", 1), -EPIPE);
	cr_expect_eq(client_write_all(fds[1], "", 0), 0, "nothing to write is no write");
	close(fds[1]);
}

/* A fresh directory and a regular file in it; the caller removes both. */
static void temp_paths(char dir[64], char file[80])
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, 64, "%s/client-XXXXXX", tmp && tmp[0] == '/' && strlen(tmp) < 40 ? tmp : "/tmp");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(file, 80, "%s/file", dir);
	int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0);
	close(fd);
}

static void temp_remove(const char *dir, const char *file)
{
	unlink(file);
	rmdir(dir);
}

Test(client, device_kind)
{
	char dir[64], file[80], missing[96];
	enum client_kind kind = CLIENT_KIND_NODE;

	temp_paths(dir, file);
	snprintf(missing, sizeof(missing), "%s/none", dir);
	cr_expect_eq(client_device_kind(dir, &kind), 0);
	cr_expect_eq(kind, CLIENT_KIND_MOUNT, "a directory is a mount");
	cr_expect_eq(client_device_kind("/dev/null", &kind), 0);
	cr_expect_eq(kind, CLIENT_KIND_NODE, "a character device is a node");
	cr_expect_eq(client_device_kind(file, &kind), -ENOTTY, "a regular file is neither");
	cr_expect_eq(client_device_kind(missing, &kind), -ENOENT);
	temp_remove(dir, file);
}

/* A plain directory, a plain file, a character device that is no ringdev
 * and a missing path: each one line, -errno, and no fd left open. */
Test(client, device_open_refuses_what_is_not_a_ringdev, .init = cr_redirect_stderr)
{
	char dir[64], file[80], missing[96], want[1024];
	struct client_device d = CLIENT_DEVICE_INIT;

	client_program_set("prog");
	temp_paths(dir, file);
	snprintf(missing, sizeof(missing), "%s/none", dir);
	cr_expect_eq(client_device_open(&d, dir, O_RDONLY | O_NONBLOCK), -ENOTTY);
	cr_expect_eq(d.fd, -1);
	cr_expect_eq(d.kind, CLIENT_KIND_MOUNT);
	cr_expect_eq(client_device_open(&d, file, O_RDONLY | O_NONBLOCK), -ENOTTY);
	cr_expect_eq(d.fd, -1);
	cr_expect_eq(client_device_open(&d, "/dev/null", O_WRONLY), -ENOTTY);
	cr_expect_eq(d.fd, -1);
	cr_expect_eq(d.kind, CLIENT_KIND_NODE);
	cr_expect_eq(client_device_open(&d, missing, O_RDONLY | O_NONBLOCK), -ENOENT);
	cr_expect_eq(d.fd, -1);
	client_device_close(&d);
	client_device_close(&d);
	temp_remove(dir, file);

	snprintf(want, sizeof(want),
		 "prog: %s: Inappropriate ioctl for device; not a ringdev device\n"
		 "prog: %s: Inappropriate ioctl for device; not a ringdev device\n"
		 "prog: /dev/null: Inappropriate ioctl for device; not a ringdev device\n"
		 "prog: %s: No such file or directory; is ringdevd running?\n",
		 dir, file, missing);
	fflush(stderr);
	cr_assert_stderr_eq_str(want);
}

Test(client, device_find)
{
	struct client_device d = CLIENT_DEVICE_INIT;
	const char *given = "/somewhere/ringdev";

	cr_assert_eq(client_device_find(&d, given), 0);
	cr_assert_eq(d.path, given, "-d is used as given, not copied");
	cr_assert_eq(setenv("RINGDEV_DEVICE", "/from/env", 1), 0);
	cr_assert_eq(client_device_find(&d, NULL), 0);
	cr_assert_eq(d.path, d.path_buf);
	cr_assert_str_eq(d.path, "/from/env");
}

Test(client, device_find_too_long, .init = cr_redirect_stderr)
{
	struct client_device d = CLIENT_DEVICE_INIT;
	static char long_path[PATH_MAX + 16];

	client_program_set("prog");
	memset(long_path, 'a', sizeof(long_path) - 1);
	long_path[0] = '/';
	cr_assert_eq(setenv("RINGDEV_DEVICE", long_path, 1), 0);
	cr_assert_eq(client_device_find(&d, NULL), -ENAMETOOLONG);
	cr_assert_eq(client_device_open(&d, NULL, O_RDONLY), -ENAMETOOLONG);
	cr_assert_eq(d.fd, -1);
	fflush(stderr);
	/* The message names what the user set, not another variable. */
	cr_assert_stderr_eq_str("prog: $RINGDEV_DEVICE: path too long\n"
				"prog: $RINGDEV_DEVICE: path too long\n");
}
