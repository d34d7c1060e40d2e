/* SPDX-License-Identifier: MIT */
/*
 * test_access.c - per-pipe owner and mode bits, checked on attach with the
 * caller's credentials: a helper process that dropped to uid/gid 65534
 * (nobody) is refused (EACCES) where the bits say so and let in where they
 * allow it; only the owner or root changes the mode (EPERM), only root
 * changes the owner.
 *
 * The helper reports each errno through shared memory; the test asserts.
 */
#include "harness.h"

#include <grp.h>
#include <sys/stat.h>

RD_SUITE(access, 60);

#define NOBODY 65534

enum {
	PRIV_READ,      /* open a 0600 pipe for reading */
	PRIV_WRITE,     /* ... for writing */
	PUB_READ,       /* open a 0644 pipe for reading */
	PUB_WRITE,      /* ... for writing */
	PUB_SET_MODE,   /* SET_CONFIG mode on it (not the owner) */
	PUB_CHMOD,      /* chmod on the mount (not the owner) */
	PUB_CHOWN,      /* chown on the mount (not root) */
	OWN_CREATE,     /* create a pipe of its own */
	OWN_SET_MODE,   /* SET_CONFIG mode on its own pipe */
	RESULTS
};

struct access_shared {
	struct rd_daemon daemon;
	int err[RESULTS];   /* 0: succeeded, else the errno */
	int setup_err;
};

static int result(int ret)
{
	return ret < 0 ? errno : 0;
}

static int open_result(const struct rd_daemon *d, const char *pipe, int flags)
{
	int fd = rd_open(d, pipe, flags, 0);

	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int nobody_main(void *arg)
{
	struct access_shared *s = arg;
	const struct rd_daemon *d = &s->daemon;
	char path[RD_PATH_SIZE + 16];
	int fd;

	if (setgroups(0, NULL) != 0 || setgid(NOBODY) != 0 || setuid(NOBODY) != 0) {
		s->setup_err = errno;
		return 1;
	}
	s->err[PRIV_READ] = open_result(d, "Priv", O_RDONLY | O_NONBLOCK);
	s->err[PRIV_WRITE] = open_result(d, "Priv", O_WRONLY | O_NONBLOCK);
	s->err[PUB_READ] = open_result(d, "Pub", O_RDONLY | O_NONBLOCK);
	s->err[PUB_WRITE] = open_result(d, "Pub", O_WRONLY | O_NONBLOCK);
	fd = rd_open(d, "Pub", O_RDONLY | O_NONBLOCK, 0);
	s->err[PUB_SET_MODE] = fd < 0 ? -1 : result(rd_set_config(fd, RINGDEV_SET_MODE, 0, 0, 0666, 0));
	if (fd >= 0)
		close(fd);
	if (!d->cuse) {
		snprintf(path, sizeof(path), "%s/Pub", d->mount);
		s->err[PUB_CHMOD] = result(chmod(path, 0666));
		s->err[PUB_CHOWN] = result(chown(path, NOBODY, NOBODY));
	}
	fd = rd_open(d, "Mine", O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600);
	s->err[OWN_CREATE] = fd < 0 ? errno : 0;
	s->err[OWN_SET_MODE] = fd < 0 ? -1 : result(rd_set_config(fd, RINGDEV_SET_MODE, 0, 0, 0640, 0));
	if (fd >= 0)
		close(fd);
	return 0;
}

static void expect(const struct access_shared *s, int which, int err, const char *what)
{
	cr_assert_eq(s->err[which], err, "uid %d, %s: expected %s, got %s", NOBODY, what, rd_errname(err),
		     s->err[which] < 0 ? "(not tried: open failed)" : rd_errname(s->err[which]));
}

Test(access, mode_bits_are_checked_with_the_callers_credentials)
{
	struct rd_daemon *d = rd_start(NULL);
	struct access_shared *s = rd_shared(sizeof(*s));
	int priv = rd_open(d, "Priv", O_RDWR | O_CREAT | O_EXCL, 0600);
	int pub = rd_open(d, "Pub", O_RDWR | O_CREAT | O_EXCL, 0666); /* umask 022: 0644 */
	pid_t pid;

	cr_assert_geq(priv, 0, "create Priv: %s", strerror(errno));
	cr_assert_geq(pub, 0, "create Pub: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(pub).mode & 07777, 0644, "Pub mode: %o", rd_pipe_info(pub).mode);

	s->daemon = *d;
	pid = rd_spawn(nobody_main, s, -1);
	cr_assert_eq(rd_join(pid), 0, "helper setup: %s", rd_errname(s->setup_err));
	expect(s, PRIV_READ, EACCES, "read-open of a 0600 root pipe");
	expect(s, PRIV_WRITE, EACCES, "write-open of a 0600 root pipe");
	expect(s, PUB_READ, 0, "read-open of a 0644 root pipe");
	expect(s, PUB_WRITE, EACCES, "write-open of a 0644 root pipe");
	expect(s, PUB_SET_MODE, EPERM, "SET_CONFIG mode on another's pipe");
	if (!d->cuse) {
		expect(s, PUB_CHMOD, EPERM, "chmod of another's pipe");
		expect(s, PUB_CHOWN, EPERM, "chown by a non-root user");
	}
	expect(s, OWN_CREATE, 0, "creating a pipe (device mode 0666)");
	expect(s, OWN_SET_MODE, 0, "SET_CONFIG mode on its own pipe");

	/* Root opens the bits; now the write-open succeeds. */
	cr_assert_eq(rd_set_config(pub, RINGDEV_SET_MODE, 0, 0, 0666, 0), 0, "root sets mode: %s",
		     strerror(errno));
	cr_assert_eq(rd_pipe_info(pub).mode & 07777, 0666, "Pub mode now: %o", rd_pipe_info(pub).mode);
	memset(s->err, 0, sizeof(s->err));
	pid = rd_spawn(nobody_main, s, -1);
	cr_assert_eq(rd_join(pid), 0, "helper setup: %s", rd_errname(s->setup_err));
	expect(s, PUB_WRITE, 0, "write-open of a 0666 root pipe");
	expect(s, PRIV_READ, EACCES, "read-open of a 0600 root pipe, still");

	close(pub);
	close(priv);
	rd_end(d);
}
