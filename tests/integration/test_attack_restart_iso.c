/* SPDX-License-Identifier: MIT */
/*
 * test_attack_restart_iso.c - defects of the in-place restart (SIGHUP,
 * issue 20) found by the review of isolation between users across
 * restarts (h/atk-iso). Each test failed on the code it was written
 * against.
 *
 * 1. A directory listing of the FUSE mount stays open across restarts (any
 *    user may hold one: opendir needs no right on a pipe). Its fh carries
 *    the generation of the image that opened it; the images after it took
 *    only the generations of restored HANDLES into account when they chose
 *    their own, so after 256 restarts (or one restart and a crash with
 *    --fd-store, where the generation wraps back to 0 at once) the image's
 *    generation equals the listing's, and its next READDIR took the
 *    listing's fh for an address in this image: the root daemon died of
 *    SIGSEGV and the mount with it.
 * 2. With --user, the daemon the drop made is not dumpable: no process of
 *    that user may ptrace it or open its fds through /proc. The image a
 *    SIGHUP execs was dumpable again (exec sets it back), so any process of
 *    the --user account (nobody, shared by many services) could open the
 *    ring arena's memfd through /proc/PID/fd read-write: every user's
 *    queued bytes, to read and to change.
 * 3. RINGDEVD_HANDOVER in the environment of a first start (a leak, or a
 *    forged one) was taken for a handover: the "state" fd was read, found
 *    wanting, and the "old program" fd was executed, whatever it was, as
 *    root. Only a sealed state and an O_PATH program make a handover now.
 */
#include <fcntl.h>
#include <signal.h>
#include <dirent.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

RD_SUITE(attack_restart_iso, 120);

#define USER_A 1001

struct lister {
	const char *mount;
	int sock; /* the test's end is the other one */
};

/* As USER_A: open the mount's root, say so, and list it again each time
 * the test asks; answers '+' for a listing that worked, '-' otherwise. */
static int lister_child(void *arg)
{
	struct lister *l = arg;
	if (rd_become(USER_A, USER_A) < 0)
		return 1;
	int dir = open(l->mount, O_RDONLY | O_DIRECTORY);
	if (dir < 0 || write(l->sock, "o", 1) != 1)
		return 2;
	char cmd;
	while (read(l->sock, &cmd, 1) == 1) {
		char buf[4096];
		lseek(dir, 0, SEEK_SET);
		long n = syscall(SYS_getdents64, dir, buf, sizeof(buf));
		if (write(l->sock, n > 0 ? "+" : "-", 1) != 1)
			return 3;
	}
	return 0;
}

/* The restarts counter, or UINT64_MAX while nobody answers. */
static uint64_t restarts(const struct rd_daemon *d)
{
	struct ringdev_stats_ext s;
	int fd = d->cuse ? open(d->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
			 : open(d->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return UINT64_MAX;
	int r = ioctl(fd, RINGDEV_IOC_STATS_EXT, &s);
	close(fd);
	return r < 0 ? UINT64_MAX : s.restarts;
}

/* SIGHUP, and wait until the new image answers with one more restart. */
static void restart_in_place(struct rd_daemon *d)
{
	uint64_t before = restarts(d);
	cr_assert_neq(before, UINT64_MAX, "no counters: %s", strerror(errno));
	cr_assert_eq(kill(d->pid, SIGHUP), 0);
	for (int ms = 0; ms < RD_START_TIMEOUT_MS; ms++) {
		uint64_t now = restarts(d);
		if (now != UINT64_MAX && now > before)
			return;
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
	}
	rd_log_tail(d, 20);
	cr_assert_fail("restart %llu did not finish", (unsigned long long)before + 1);
}

static char ask(int sock)
{
	char c = '?';
	cr_assert_eq(write(sock, "l", 1), 1);
	cr_assert_eq(read(sock, &c, 1), 1, "the lister is gone");
	return c;
}

Test(attack_restart_iso, listing_across_256_restarts)
{
	if (rd_fuse_only("directory listings"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sv[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	struct lister l = { .mount = d->mount, .sock = sv[1] };
	pid_t child = rd_spawn(lister_child, &l, sv[1]);
	close(sv[1]);
	char c = 0;
	cr_assert_eq(read(sv[0], &c, 1), 1, "the lister could not open the mount");
	cr_assert_eq(ask(sv[0]), '+');
	/* Every generation once, and the first again. */
	for (int i = 0; i < 256; i++)
		restart_in_place(d);
	cr_expect_eq(ask(sv[0]), '+', "the listing opened 256 restarts ago does not list");
	cr_assert_eq(kill(d->pid, 0), 0, "ringdevd died at the READDIR of a listing from 256 restarts ago");
	close(sv[0]);
	cr_assert_eq(rd_join(child), 0);
	rd_end(d);
}

#define DAEMON_USER 65534 /* nobody */

/* As the daemon's own user: may this process see the daemon's fds? */
static int peek_fds(void *arg)
{
	const char *path = arg;
	if (rd_become(DAEMON_USER, DAEMON_USER) < 0)
		return 2;
	DIR *d = opendir(path);
	if (!d)
		return errno == EACCES || errno == EPERM ? 0 : 3;
	closedir(d);
	return 1;
}

Test(attack_restart_iso, user_drop_survives_sighup)
{
	static const char *const args[] = { "--user", "nobody", NULL };
	struct rd_daemon *d = rd_start(args);
	char fds[64];
	snprintf(fds, sizeof(fds), "/proc/%d/fd", (int)d->pid);
	cr_assert_eq(rd_join(rd_spawn(peek_fds, fds, -1)), 0, "before a restart, nobody sees the fds of the daemon");
	restart_in_place(d);
	cr_expect_eq(rd_join(rd_spawn(peek_fds, fds, -1)), 0,
		     "after a SIGHUP, another process of the --user account sees the daemon's fds (its ring arena)");
	rd_end(d);
}

Test(attack_restart_iso, forged_handover_env)
{
	if (rd_fuse_only("a start on a mount"))
		return;
	const char *bin = getenv("RINGDEVD");
	cr_assert_not_null(bin, "RINGDEVD is not set");
	char dir[] = "/tmp/ringdev-forged.XXXXXX", mnt[sizeof(dir) + 4], junk[sizeof(dir) + 6];
	cr_assert_not_null(mkdtemp(dir));
	snprintf(mnt, sizeof(mnt), "%s/mnt", dir);
	snprintf(junk, sizeof(junk), "%s/state", dir);
	cr_assert_eq(mkdir(mnt, 0755), 0);
	int fd = open(junk, O_CREAT | O_WRONLY | O_TRUNC, 0600);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, "not a state", 11), 11);
	close(fd);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		/* fd 3 a "state", 4 a "report", 5 a "program": /bin/true */
		close_range(3, ~0u, 0);
		if (open(junk, O_RDONLY) != 3 || open("/dev/null", O_WRONLY) != 4 || open("/bin/true", O_RDONLY) != 5)
			_exit(126);
		setenv("RINGDEVD_HANDOVER", "3:4:5:0", 1);
		execl(bin, bin, "-f", "--frontend=fuse", "--mount", mnt, (char *)NULL);
		_exit(127);
	}
	bool mounted = false;
	int status = 0;
	for (int ms = 0; ms < RD_START_TIMEOUT_MS && !mounted; ms += 10) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			pid = -1;
			break;
		}
		mounted = rd_is_mounted(mnt);
		nanosleep(&(struct timespec){ .tv_nsec = 10000000 }, NULL);
	}
	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
	}
	if (rd_is_mounted(mnt))
		umount2(mnt, MNT_DETACH);
	rmdir(mnt);
	unlink(junk);
	rmdir(dir);
	cr_expect(pid > 0, "ringdevd with a forged RINGDEVD_HANDOVER ended at once (status %d): it ran the fd it "
		  "was given as its old program", status);
	cr_expect(mounted, "ringdevd with a forged RINGDEVD_HANDOVER did not serve its mount");
}
