/* SPDX-License-Identifier: MIT */
/*
 * test_lifetime.c - when pipes exist: created on first attach, removed when
 * the last handle closes with nothing unread, kept while unread data is left.
 * On the FUSE mount also what the file system shows: readdir lists the pipes
 * (spelling as created), stat shows the queued bytes, chmod/chown/truncate,
 * O_TRUNC, and unlink (open handles keep using the pipe).
 *
 * The file-system views exist only on the FUSE mount; against CUSE those
 * tests log a note and check nothing else.  Closes on the FUSE mount are
 * released asynchronously, so the tests wait for the daemon's open count
 * (rd_close/rd_wait_opens) before they look for a pipe's removal.
 */
#include "harness.h"

#include <dirent.h>
#include <sys/stat.h>

RD_SUITE(lifetime, 60);

static void mount_path(const struct rd_daemon *d, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%s/%s", d->mount, name);
}

Test(lifetime, removed_after_last_close_when_empty)
{
	struct rd_daemon *d = rd_start(NULL);
	struct ringdev_stats st;
	char buf[16];
	int w, r;

	w = rd_create(d, "Gone", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	rd_close(d, w);
	rd_assert_errno(rd_open(d, "Gone", O_RDONLY, 0), ENOENT, "open Gone after its only handle closed");

	/* Data written and read before the last close: removed too. */
	w = rd_create(d, "Gone2", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	r = rd_open_ok(d, "Gone2", O_RDONLY);
	rd_write_ok(w, "data", 4);
	rd_close(d, w);
	rd_read_ok(r, buf, sizeof(buf), 4);
	cr_assert_eq(read(r, buf, sizeof(buf)), 0, "EOF");
	rd_close(d, r);
	rd_assert_errno(rd_open(d, "Gone2", O_RDONLY, 0), ENOENT, "open Gone2 after its last close");

	if (!d->cuse) {
		st = rd_stats(d);
		cr_assert_eq(st.pipes, 0, "stats.pipes: %llu", (unsigned long long)st.pipes);
		cr_assert_eq(st.pipes_created, 2, "stats.pipes_created: %llu",
			     (unsigned long long)st.pipes_created);
		cr_assert_eq(st.pipes_removed, 2, "stats.pipes_removed: %llu",
			     (unsigned long long)st.pipes_removed);
		cr_assert_eq(st.memory_used, 0, "ring memory freed with the pipe");
	}
	rd_end(d);
}

Test(lifetime, kept_while_unread_data_is_left)
{
	struct rd_daemon *d = rd_start(NULL);
	struct ringdev_pipe_info info;
	char buf[16];
	int w, r;

	w = rd_create(d, "Keep", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	rd_write_ok(w, "hello", 5);
	rd_close(d, w);
	if (!d->cuse) {
		char path[RD_PATH_SIZE + 16];
		struct stat sb;

		mount_path(d, "Keep", path, sizeof(path));
		cr_assert_eq(stat(path, &sb), 0, "stat a pipe kept by its data: %s", strerror(errno));
		cr_assert_eq(sb.st_size, 5, "st_size: the queued bytes, got %lld", (long long)sb.st_size);
	}
	r = rd_open_ok(d, "Keep", O_RDONLY | O_NONBLOCK);
	info = rd_pipe_info(r);
	cr_assert_eq(info.queued_bytes, 5, "the unread bytes are kept");
	cr_assert_eq(info.handles, 1, "one handle");
	cr_assert_eq(info.writers, 0, "no writer");
	cr_assert_eq(info.flags & RINGDEV_PIPE_EOF, 0, "not EOF while data is queued");
	cr_assert(info.flags & RINGDEV_PIPE_ALLOCATED, "ring allocated");
	rd_read_ok(r, buf, sizeof(buf), 5);
	cr_assert_eq(memcmp(buf, "hello", 5), 0, "the kept data");
	cr_assert_eq(read(r, buf, sizeof(buf)), 0, "then EOF");
	rd_close(d, r);
	rd_assert_errno(rd_open(d, "Keep", O_RDONLY, 0), ENOENT, "removed once read and closed");
	if (!d->cuse)
		cr_assert_eq(rd_stats(d).memory_used, 0, "ring memory freed");
	rd_end(d);
}

static bool listed(const char *dir, const char *name)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	bool found = false;

	cr_assert_not_null(dp, "opendir %s: %s", dir, strerror(errno));
	while ((e = readdir(dp)))
		if (strcmp(e->d_name, name) == 0)
			found = true;
	closedir(dp);
	return found;
}

Test(lifetime, readdir_lists_pipes_as_spelled)
{
	struct rd_daemon *d;
	static const char *const names[] = { "Alpha", "beta", "MixedCase.1" };
	int fds[3], count = 0;
	DIR *dp;
	struct dirent *e;

	if (rd_fuse_only("readdir"))
		return;
	d = rd_start(NULL);
	for (int i = 0; i < 3; i++)
		fds[i] = rd_create(d, names[i], O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	dp = opendir(d->mount);
	cr_assert_not_null(dp, "opendir: %s", strerror(errno));
	while ((e = readdir(dp))) {
		bool known = false;

		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") || !strcmp(e->d_name, ".ctl"))
			continue;
		for (int i = 0; i < 3; i++)
			known = known || strcmp(e->d_name, names[i]) == 0;
		cr_assert(known, "readdir lists \"%s\", which is no pipe", e->d_name);
		count++;
	}
	closedir(dp);
	cr_assert_eq(count, 3, "readdir lists %d pipes, expected 3", count);
	rd_close(d, fds[2]);
	cr_assert(!listed(d->mount, "MixedCase.1"), "a removed pipe is no longer listed");
	cr_assert(listed(d->mount, "Alpha"), "Alpha still listed");
	rd_close(d, fds[0]);
	rd_close(d, fds[1]);
	rd_end(d);
}

Test(lifetime, stat_chmod_chown_truncate)
{
	struct rd_daemon *d;
	char path[RD_PATH_SIZE + 16];
	struct stat sb;
	unsigned char buf[200] = { 0 };
	int fd, fd2;

	if (rd_fuse_only("stat/chmod/chown/truncate"))
		return;
	d = rd_start(NULL);
	mount_path(d, "St", path, sizeof(path));
	fd = rd_open(d, "St", O_WRONLY | O_CREAT | O_EXCL, 0664); /* umask 022 */
	cr_assert_geq(fd, 0, "create St: %s", strerror(errno));
	cr_assert_eq(stat(path, &sb), 0, "stat: %s", strerror(errno));
	cr_assert(S_ISREG(sb.st_mode), "a pipe is a regular file: %o", sb.st_mode);
	cr_assert_eq(sb.st_mode & 07777, 0644, "mode after umask: %o", sb.st_mode & 07777);
	cr_assert_eq(sb.st_uid, 0, "owner uid");
	cr_assert_eq(sb.st_gid, 0, "owner gid");
	cr_assert_eq(sb.st_size, 0, "empty");
	cr_assert_eq(sb.st_ino, rd_pipe_info(fd).ino, "st_ino is the pipe's ino");

	rd_write_ok(fd, buf, 123);
	cr_assert_eq(stat(path, &sb), 0, "stat: %s", strerror(errno));
	cr_assert_eq(sb.st_size, 123, "st_size follows the queued bytes: %lld", (long long)sb.st_size);

	cr_assert_eq(chmod(path, 0604), 0, "chmod by the owner: %s", strerror(errno));
	cr_assert_eq(stat(path, &sb), 0, "stat");
	cr_assert_eq(sb.st_mode & 07777, 0604, "mode after chmod: %o", sb.st_mode & 07777);
	cr_assert_eq(rd_pipe_info(fd).mode & 07777, 0604, "PIPE_INFO shows the new mode");
	cr_assert_eq(chown(path, 1000, 1000), 0, "chown by root: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(fd).uid, 1000, "new owner uid");
	cr_assert_eq(rd_pipe_info(fd).gid, 1000, "new owner gid");

	/* truncate and O_TRUNC discard nothing. */
	cr_assert_eq(ftruncate(fd, 0), 0, "ftruncate succeeds: %s", strerror(errno));
	cr_assert_eq(truncate(path, 0), 0, "truncate succeeds: %s", strerror(errno));
	fd2 = rd_open(d, "St", O_WRONLY | O_TRUNC, 0);
	cr_assert_geq(fd2, 0, "open with O_TRUNC: %s", strerror(errno));
	cr_assert_eq(rd_pipe_info(fd).queued_bytes, 123, "nothing discarded");
	close(fd2);
	close(fd);
	rd_end(d);
}

Test(lifetime, unlink_keeps_open_handles_working)
{
	struct rd_daemon *d;
	char path[RD_PATH_SIZE + 16], buf[16];
	struct ringdev_pipe_info info;
	uint64_t old_ino;
	int w, r, fresh;

	if (rd_fuse_only("unlink"))
		return;
	d = rd_start(NULL);
	mount_path(d, "Un", path, sizeof(path));
	w = rd_create(d, "Un", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	r = rd_open_ok(d, "Un", O_RDONLY | O_NONBLOCK);
	old_ino = rd_pipe_info(r).ino;
	rd_write_ok(w, "abc", 3);

	cr_assert_eq(unlink(path), 0, "unlink by the owner: %s", strerror(errno));
	rd_assert_errno(rd_open(d, "Un", O_RDONLY, 0), ENOENT, "open after unlink");
	cr_assert(!listed(d->mount, "Un"), "an unlinked pipe is not listed");
	info = rd_pipe_info(r);
	cr_assert(info.flags & RINGDEV_PIPE_UNLINKED, "UNLINKED flag");

	/* The open handles still talk through the unlinked pipe. */
	rd_write_ok(w, "def", 3);
	rd_read_ok(r, buf, sizeof(buf), 6);
	cr_assert_eq(memcmp(buf, "abcdef", 6), 0, "data before and after unlink");

	/* The name is free for a new, separate pipe. */
	fresh = rd_open(d, "Un", O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK, 0600);
	cr_assert_geq(fresh, 0, "create Un again: %s", strerror(errno));
	cr_assert_neq(rd_pipe_info(fresh).ino, old_ino, "a new pipe");
	cr_assert_eq(rd_pipe_info(fresh).queued_bytes, 0, "empty");
	rd_write_ok(w, "old", 3);
	rd_assert_errno(read(fresh, buf, sizeof(buf)), EAGAIN, "the new pipe does not see the old one's data");

	rd_close(d, w);
	rd_close(d, r); /* the old pipe's "old" bytes are dropped now */
	close(fresh);
	rd_wait_opens(d, 0);
	if (!d->cuse)
		cr_assert_eq(rd_stats(d).pipes, 0, "both pipes gone: %llu",
			     (unsigned long long)rd_stats(d).pipes);
	rd_end(d);
}

/* Closing the last handles of an empty pipe and opening its name again at
 * once must always succeed: the FUSE mount releases asynchronously, and
 * with several serving threads the RELEASE that removes the pipe can run
 * between the LOOKUP and the OPEN of the next open(O_CREAT). That OPEN names
 * an inode that is gone; ringdevd answers ESTALE, so the kernel walks the
 * path again and creates the pipe anew (ENOENT here was a bug). */
Test(lifetime, reopen_right_after_last_close_always_opens)
{
	struct rd_daemon *d = rd_start(NULL);
	char c = 'x';
	for (int i = 0; i < 300; i++) {
		int w = rd_open(d, "Again", O_WRONLY | O_CREAT, 0600);
		cr_assert_geq(w, 0, "round %d: open Again for writing: %s", i, strerror(errno));
		int r = rd_open(d, "Again", O_RDONLY | O_CREAT, 0600);
		cr_assert_geq(r, 0, "round %d: open Again for reading: %s", i, strerror(errno));
		rd_write_ok(w, &c, 1);
		rd_read_ok(r, &c, 1, 1);
		close(w); /* raw closes: the next round races their RELEASEs */
		close(r);
	}
	rd_wait_opens(d, 0);
	rd_assert_idle(d);
	rd_end(d);
}
