/* SPDX-License-Identifier: MIT */
/*
 * test_isolation.c - one user cannot reach, see or starve another's pipes,
 * by any path: ATTACH on a passed fd, the mount's namespace, the admin
 * ioctls, the per-uid limits. Regression tests for the defects outside
 * testing found (issue 8: 3, 11, 12, 13). Helpers change their effective
 * ids only (the real and saved ids stay root), so one helper can act as
 * user A, then as user B on the fd A opened, as a passed fd would be used.
 */
#include "harness.h"

#include <dirent.h>
#include <grp.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

RD_SUITE(isolation, 60);

#define USER_A 1001
#define NOBODY 65534
#define ADMIN_GID 1234

struct passed_fd {
	struct rd_daemon daemon;
	int setup_err;
	int attach_private_err;     /* B's ATTACH of A's 0600 pipe through A's fd */
	int attach_create_err;      /* B's ATTACH --create through A's fd */
	struct ringdev_pipe_info created;
};

static int passed_fd_main(void *arg)
{
	struct passed_fd *s = arg;
	const struct rd_daemon *d = &s->daemon;
	struct ringdev_pipe_config mode = { .set = RINGDEV_SET_MODE, .mode = 0666 };
	struct ringdev_attach at;

	/* User A: a private pipe with a secret in it, and a handle on a shared one. */
	if (rd_become(USER_A, USER_A) < 0) {
		s->setup_err = errno;
		return 1;
	}
	int priv = rd_open_create(d, "APriv", O_WRONLY, 0, 0, 0);
	if (priv < 0 || write(priv, "secret", 6) != 6) {
		s->setup_err = errno;
		return 2;
	}
	close(priv);
	int shared = rd_open_create(d, "AShared", O_RDWR, 0, 0, 0);
	if (shared < 0 || ioctl(shared, RINGDEV_IOC_SET_CONFIG, &mode) < 0) {
		s->setup_err = errno;
		return 3;
	}
	/* User B holds A's fd now (as after SCM_RIGHTS) and tries to re-attach it. */
	if (rd_become(NOBODY, NOBODY) < 0) {
		s->setup_err = errno;
		return 4;
	}
	memset(&at, 0, sizeof(at));
	snprintf(at.name, sizeof(at.name), "APriv");
	s->attach_private_err = ioctl(shared, RINGDEV_IOC_ATTACH, &at) < 0 ? errno : 0;
	memset(&at, 0, sizeof(at));
	snprintf(at.name, sizeof(at.name), "BMade");
	at.flags = RINGDEV_ATTACH_CREATE;
	s->attach_create_err = ioctl(shared, RINGDEV_IOC_ATTACH, &at) < 0 ? errno : 0;
	if (ioctl(shared, RINGDEV_IOC_PIPE_INFO, &s->created) < 0)
		s->setup_err = errno;
	if (write(shared, "b", 1) != 1) /* keeps BMade after the close, to inspect it */
		s->setup_err = errno;
	close(shared);
	return 0;
}

Test(isolation, attach_on_a_passed_fd_is_checked_with_the_callers_credentials)
{
	struct rd_daemon *d = rd_start(NULL);
	struct passed_fd *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	cr_assert_eq(rd_join(rd_spawn(passed_fd_main, s, -1)), 0, "helper setup: %s", rd_errname(s->setup_err));
	cr_assert_eq(s->attach_private_err, EACCES,
		     "user B re-attaching user A's fd to A's private 0600 pipe: expected EACCES, got %s",
		     rd_errname(s->attach_private_err));
	cr_assert_eq(s->attach_create_err, 0, "B creating a pipe through A's fd: %s", rd_errname(s->attach_create_err));
	cr_assert_str_eq(s->created.name, "BMade");
	cr_assert(s->created.uid == NOBODY && s->created.gid == NOBODY,
		  "a pipe an ATTACH creates belongs to the caller (B), got %u:%u", s->created.uid, s->created.gid);
	int fd = rd_open_ok(d, "APriv", O_RDONLY);
	char buf[16];
	rd_read_ok(fd, buf, sizeof(buf), 6);
	cr_assert_eq(memcmp(buf, "secret", 6), 0, "A's secret is still there, unread");
	rd_close(d, fd);
	rd_end(d);
}

/* ---- the visibility rule ------------------------------------------------ */

struct visibility {
	struct rd_daemon daemon;
	int setup_err;
	bool listed_hidden, listed_seen;
	int stat_hidden_err, stat_seen_err;
	int by_name_hidden_err;
	uint32_t list_total;        /* LIST_PIPES total seen by nobody */
};

static int visibility_main(void *arg)
{
	struct visibility *s = arg;
	const struct rd_daemon *d = &s->daemon;
	char path[RD_PATH_SIZE + 16];
	struct stat st;

	if (rd_become(NOBODY, NOBODY) < 0) {
		s->setup_err = errno;
		return 1;
	}
	if (!d->cuse) {
		DIR *dir = opendir(d->mount);
		if (!dir) {
			s->setup_err = errno;
			return 2;
		}
		struct dirent *e;
		while ((e = readdir(dir))) {
			s->listed_hidden |= strcmp(e->d_name, "Hidden") == 0;
			s->listed_seen |= strcmp(e->d_name, "Seen") == 0;
		}
		closedir(dir);
		snprintf(path, sizeof(path), "%s/Hidden", d->mount);
		s->stat_hidden_err = stat(path, &st) < 0 ? errno : 0;
		snprintf(path, sizeof(path), "%s/Seen", d->mount);
		s->stat_seen_err = stat(path, &st) < 0 ? errno : 0;
	}
	int fd = rd_open(d, "Seen", O_RDONLY, 0);
	if (fd < 0) {
		s->setup_err = errno;
		return 3;
	}
	struct ringdev_pipe_info q;
	memset(&q, 0, sizeof(q));
	snprintf(q.name, sizeof(q.name), "Hidden");
	s->by_name_hidden_err = ioctl(fd, RINGDEV_IOC_PIPE_BY_NAME, &q) < 0 ? errno : 0;
	static struct ringdev_list_pipes l;
	memset(&l, 0, sizeof(l));
	if (ioctl(fd, RINGDEV_IOC_LIST_PIPES, &l) < 0)
		s->setup_err = errno;
	s->list_total = l.total;
	close(fd);
	return 0;
}

Test(isolation, what_a_user_may_not_see_is_neither_listed_nor_found)
{
	struct rd_daemon *d = rd_start(NULL);
	int hidden = rd_create(d, "Hidden", O_RDWR, 0, 0, 0); /* 0600, root's */
	int seen = rd_create(d, "Seen", O_RDWR, 0, 0, 0);
	cr_assert_eq(rd_set_config(seen, RINGDEV_SET_MODE, 0, 0, 0644, 0), 0);
	rd_write_ok(hidden, "0123456789", 10);
	struct visibility *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	cr_assert_eq(rd_join(rd_spawn(visibility_main, s, -1)), 0, "helper: %s", rd_errname(s->setup_err));
	if (!d->cuse) {
		cr_assert(!s->listed_hidden, "ls of the mount lists a pipe nobody may not see");
		cr_assert(s->listed_seen, "ls of the mount lists a pipe nobody may read");
		cr_assert_eq(s->stat_hidden_err, EACCES, "stat of a hidden pipe: expected EACCES, got %s",
			     rd_errname(s->stat_hidden_err));
		cr_assert_eq(s->stat_seen_err, 0, "stat of a visible pipe: %s", rd_errname(s->stat_seen_err));
	}
	cr_assert_eq(s->by_name_hidden_err, EACCES, "PIPE_BY_NAME of a hidden pipe: %s",
		     rd_errname(s->by_name_hidden_err));
	cr_assert_eq(s->list_total, d->cuse ? 2u : 1u, "LIST_PIPES shows nobody %u pipes (Seen%s)", s->list_total,
		     d->cuse ? " and the default pipe" : "");
	rd_close(d, seen);
	rd_close(d, hidden);
	rd_end(d);
}

/* ---- per-uid limits on memory and waiting requests ------------------------ */

struct hog {
	struct rd_daemon daemon;
	uid_t uid;
	const char *pipe;
	uint64_t capacity;
	int setup_err;
	int write_err;
};

static int hog_main(void *arg)
{
	struct hog *s = arg;
	if (rd_become(s->uid, s->uid) < 0) {
		s->setup_err = errno;
		return 1;
	}
	int fd = rd_open_create(&s->daemon, s->pipe, O_WRONLY, 0, 0, s->capacity);
	if (fd < 0) {
		s->setup_err = errno;
		return 2;
	}
	s->write_err = write(fd, "x", 1) == 1 ? 0 : errno;
	close(fd);
	return 0;
}

static int hog_run(struct rd_daemon *d, uid_t uid, const char *pipe, uint64_t capacity)
{
	struct hog *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	s->uid = uid;
	s->pipe = pipe;
	s->capacity = capacity;
	cr_assert_eq(rd_join(rd_spawn(hog_main, s, -1)), 0, "uid %u: %s", (unsigned)uid, rd_errname(s->setup_err));
	return s->write_err;
}

Test(isolation, one_user_cannot_take_the_memory_all_share)
{
	const char *const args[] = { "--max-memory", "1M", "--max-memory-per-uid", "256K", NULL };
	struct rd_daemon *d = rd_start(args);
	struct ringdev_stats before = rd_stats(d);
	cr_assert_eq(hog_run(d, NOBODY, "Hog1", 128 * 1024), 0, "nobody's first 128 KiB ring");
	cr_assert_eq(hog_run(d, NOBODY, "Hog2", 128 * 1024), 0, "nobody's second 128 KiB ring");
	int err = hog_run(d, NOBODY, "Hog3", 128 * 1024);
	cr_assert_eq(err, ENOSPC, "past --max-memory-per-uid: expected ENOSPC, got %s", rd_errname(err));
	cr_assert_eq(hog_run(d, USER_A, "Other", 256 * 1024), 0, "another user still gets memory");
	struct ringdev_stats after = rd_stats(d);
	cr_assert_eq(after.limit_memory_hits, before.limit_memory_hits + 1, "counted in limit_memory_hits");
	cr_assert_eq(after.memory_used, 512 * 1024, "memory in use: %llu", (unsigned long long)after.memory_used);
	rd_end(d);
}

struct waiter {
	struct rd_daemon daemon;
	uid_t uid;
	int setup_err;
	ssize_t ret;
	int err;
};

static int waiter_main(void *arg)
{
	struct waiter *s = arg;
	char c;
	if (s->uid && rd_become(s->uid, s->uid) < 0) {
		s->setup_err = errno;
		return 1;
	}
	int fd = rd_open(&s->daemon, "Queue", O_RDONLY, 0);
	if (fd < 0) {
		s->setup_err = errno;
		return 2;
	}
	s->ret = read(fd, &c, 1);
	s->err = s->ret < 0 ? errno : 0;
	close(fd);
	return 0;
}

static pid_t waiter_start(struct rd_daemon *d, struct waiter **out, uid_t uid)
{
	struct waiter *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	s->uid = uid;
	*out = s;
	return rd_spawn(waiter_main, s, -1);
}

Test(isolation, one_user_cannot_take_every_waiting_slot)
{
	const char *const args[] = { "--max-parked-per-uid", "2", NULL };
	struct rd_daemon *d = rd_start(args);
	int q = rd_create(d, "Queue", O_WRONLY, 0, 0, 0);
	cr_assert_eq(rd_set_config(q, RINGDEV_SET_MODE, 0, 0, 0666, 0), 0);
	struct waiter *w[4];
	pid_t pid[4];
	pid[0] = waiter_start(d, &w[0], NOBODY);
	pid[1] = waiter_start(d, &w[1], NOBODY);
	rd_wait_parked(d, 2, 0);
	pid[2] = waiter_start(d, &w[2], NOBODY);
	cr_assert_eq(rd_join(pid[2]), 0, "third reader: %s", rd_errname(w[2]->setup_err));
	cr_assert(w[2]->ret == -1 && w[2]->err == ENOBUFS,
		  "a blocking read past --max-parked-per-uid: expected ENOBUFS, got %zd (%s)", w[2]->ret,
		  rd_errname(w[2]->err));
	pid[3] = waiter_start(d, &w[3], 0);
	rd_wait_parked(d, 3, 0); /* root's read still waits */
	rd_write_ok(q, "abc", 3);
	for (int i = 0; i < 4; i++) {
		if (i == 2)
			continue;
		cr_assert_eq(rd_join(pid[i]), 0, "reader %d: %s", i, rd_errname(w[i]->setup_err));
		cr_assert(w[i]->ret == 1, "reader %d got %zd (%s)", i, w[i]->ret, rd_errname(w[i]->err));
	}
	cr_assert_geq(rd_stats(d).limit_parked_hits, 1);
	rd_close(d, q);
	rd_end(d);
}

/* ---- reserved fields, and what --admin-group may do on the mount --------- */

Test(isolation, remove_and_pipe_by_name_reject_reserved_fields)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Res", O_RDWR, 0, 0, 0);
	struct ringdev_name n;
	memset(&n, 0, sizeof(n));
	snprintf(n.name, sizeof(n.name), "Res");
	n.reserved[1] = 1;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_REMOVE, &n), EINVAL, "REMOVE with reserved[1] set");
	struct ringdev_pipe_info q;
	memset(&q, 0, sizeof(q));
	snprintf(q.name, sizeof(q.name), "Res");
	q.reserved[6] = 1;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_PIPE_BY_NAME, &q), EINVAL, "PIPE_BY_NAME with reserved[6] set");
	q.reserved[6] = 0;
	q.reserved0 = 1;
	rd_assert_errno(ioctl(fd, RINGDEV_IOC_PIPE_BY_NAME, &q), EINVAL, "PIPE_BY_NAME with reserved0 set");
	q.reserved0 = 0;
	cr_assert_eq(ioctl(fd, RINGDEV_IOC_PIPE_BY_NAME, &q), 0, "PIPE_BY_NAME: %s", rd_errname(errno));
	rd_close(d, fd);
	rd_end(d);
}

struct admin_ops {
	struct rd_daemon daemon;
	int setup_err;
	int chmod_err, chown_err, unlink_err;
};

static int admin_main(void *arg)
{
	struct admin_ops *s = arg;
	char path[RD_PATH_SIZE + 16];
	if (rd_become(USER_A, ADMIN_GID) < 0) {
		s->setup_err = errno;
		return 1;
	}
	snprintf(path, sizeof(path), "%s/Managed", s->daemon.mount);
	s->chmod_err = chmod(path, 0640) < 0 ? errno : 0;
	s->chown_err = chown(path, NOBODY, NOBODY) < 0 ? errno : 0;
	s->unlink_err = unlink(path) < 0 ? errno : 0;
	return 0;
}

Test(isolation, admin_group_members_manage_pipes_on_the_mount)
{
	const char *const args[] = { "--admin-group", "1234", NULL };
	struct rd_daemon *d = rd_start(args);
	int fd = rd_create(d, "Managed", O_RDWR, 0, 0, 0); /* root's, 0600 */
	if (!d->cuse) {
		struct admin_ops *s = rd_shared(sizeof(*s));
		s->daemon = *d;
		cr_assert_eq(rd_join(rd_spawn(admin_main, s, -1)), 0, "helper: %s", rd_errname(s->setup_err));
		cr_assert_eq(s->chmod_err, 0, "chmod(2) by an --admin-group member: %s", rd_errname(s->chmod_err));
		cr_assert_eq(s->chown_err, 0, "chown(2) by an --admin-group member: %s", rd_errname(s->chown_err));
		cr_assert_eq(s->unlink_err, 0, "unlink(2) by an --admin-group member: %s", rd_errname(s->unlink_err));
		struct ringdev_pipe_info pi = rd_pipe_info(fd);
		cr_assert(pi.uid == NOBODY && (pi.mode & 0777) == 0640, "after chown and chmod: %u %o", pi.uid,
			  pi.mode);
		cr_assert(pi.flags & RINGDEV_PIPE_UNLINKED, "unlinked");
	}
	rd_close(d, fd);
	rd_end(d);
}
