/* SPDX-License-Identifier: MIT */
/*
 * test_device_path.c - the default mount and the default device, under every
 * combination of $RINGDEV_DEVICE and $XDG_RUNTIME_DIR.
 *
 * The default mount depends on the effective uid, and the tests run as root,
 * where it is always /run/ringdev. The user branch is therefore run in a
 * forked child that drops to nobody (65534); the environment is prepared in
 * the test process before the fork, so the child only calls setgid, setuid
 * and the function under test, writes the result to shared memory and exits.
 * It never calls Criterion's asserts; the test process checks the result.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "device_path.h"

#define NOBODY 65534

struct child_result {
	int rc;
	char path[512];
	char source[32]; /* what the path was made from (the _from variants) */
};

/* Exit codes of the child when it could not run the function as nobody. */
enum { CHILD_OK = 0, CHILD_SETGID = 10, CHILD_SETUID = 11, CHILD_STILL_ROOT = 12 };

/* Runs fn(buf, size) (or from(buf, size, &source)) as nobody (or as the
 * current user, if that is not root) with the test process's environment
 * and returns what it gave. */
static struct child_result run_in_child(int (*fn)(char *, size_t),
					int (*from)(char *, size_t, const char **), size_t size)
{
	cr_assert_leq(size, sizeof(((struct child_result *)0)->path));
	struct child_result *shared = mmap(NULL, sizeof(*shared), PROT_READ | PROT_WRITE,
					   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(shared, MAP_FAILED, "mmap: %s", strerror(errno));
	memset(shared, 0, sizeof(*shared));
	shared->rc = 1; /* neither 0 nor a negative errno: "never set" */
	fflush(NULL);
	pid_t pid = fork();
	cr_assert_neq(pid, -1, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (geteuid() == 0) {
			if (setgid(NOBODY) != 0)
				_exit(CHILD_SETGID);
			if (setuid(NOBODY) != 0)
				_exit(CHILD_SETUID);
		}
		if (geteuid() == 0)
			_exit(CHILD_STILL_ROOT);
		if (from) {
			const char *source = NULL;
			shared->rc = from(shared->path, size, &source);
			snprintf(shared->source, sizeof(shared->source), "%s", source ? source : "(unset)");
		} else {
			shared->rc = fn(shared->path, size);
		}
		_exit(CHILD_OK);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == CHILD_OK,
		  "child as uid %d failed: status %#x (10 setgid, 11 setuid, 12 still root)", NOBODY, status);
	struct child_result result = *shared;
	munmap(shared, sizeof(*shared));
	return result;
}

static struct child_result run_as_nobody(int (*fn)(char *, size_t), size_t size)
{
	return run_in_child(fn, NULL, size);
}

static struct child_result run_from_as_nobody(int (*from)(char *, size_t, const char **), size_t size)
{
	return run_in_child(NULL, from, size);
}

static void assert_result(struct child_result r, int rc, const char *path)
{
	cr_assert_eq(r.rc, rc, "rc %d, expected %d", r.rc, rc);
	if (rc == 0)
		cr_assert_str_eq(r.path, path);
}

static bool dev_ringdev_exists(void)
{
	return access("/dev/ringdev", F_OK) == 0;
}

/* The branch the tests' own uid selects. */
Test(device_path, root_always_mounts_at_run_ringdev)
{
	if (geteuid() != 0)
		cr_skip_test("root's branch: these tests run as uid %d", (int)geteuid());
	char buf[256] = "";
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/0", 1), 0);
	cr_assert_eq(device_path_default_mount(buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/run/ringdev", "root ignores $XDG_RUNTIME_DIR");
	cr_assert_eq(unsetenv("XDG_RUNTIME_DIR"), 0);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(device_path_default_mount(buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/run/ringdev");
}

Test(device_path, user_mounts_under_an_absolute_xdg_runtime_dir)
{
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1), 0);
	assert_result(run_as_nobody(device_path_default_mount, 256), 0, "/run/user/65534/ringdev");
}

Test(device_path, user_without_xdg_runtime_dir_mounts_at_run_ringdev)
{
	cr_assert_eq(unsetenv("XDG_RUNTIME_DIR"), 0);
	assert_result(run_as_nobody(device_path_default_mount, 256), 0, "/run/ringdev");
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "", 1), 0);
	assert_result(run_as_nobody(device_path_default_mount, 256), 0, "/run/ringdev");
}

Test(device_path, user_with_a_relative_xdg_runtime_dir_mounts_at_run_ringdev)
{
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "run/user/65534", 1), 0);
	assert_result(run_as_nobody(device_path_default_mount, 256), 0, "/run/ringdev");
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "./xdg", 1), 0);
	assert_result(run_as_nobody(device_path_default_mount, 256), 0, "/run/ringdev");
}

Test(device_path, user_mount_that_does_not_fit_is_enametoolong)
{
	char dir[400];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", dir, 1), 0);
	assert_result(run_as_nobody(device_path_default_mount, 256), -ENAMETOOLONG, NULL);

	/* "/x/ringdev" is 10 bytes: it fits 11, not 10. */
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/x", 1), 0);
	assert_result(run_as_nobody(device_path_default_mount, 11), 0, "/x/ringdev");
	assert_result(run_as_nobody(device_path_default_mount, 10), -ENAMETOOLONG, NULL);
}

Test(device_path, mount_that_does_not_fit_is_enametoolong)
{
	cr_assert_eq(unsetenv("XDG_RUNTIME_DIR"), 0);
	char buf[32];
	/* "/run/ringdev" is 12 bytes. */
	cr_assert_eq(device_path_default_mount(buf, 13), 0);
	cr_assert_str_eq(buf, "/run/ringdev");
	cr_assert_eq(device_path_default_mount(buf, 12), -ENAMETOOLONG);
	cr_assert_eq(device_path_default_mount(buf, 1), -ENAMETOOLONG);
	cr_assert_eq(device_path_default_mount(buf, 0), -ENAMETOOLONG);
}

Test(device_path, ringdev_device_wins_when_set)
{
	char buf[256];
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/0", 1), 0);
	cr_assert_eq(setenv("RINGDEV_DEVICE", "/tmp/test-ringdev/mnt", 1), 0);
	cr_assert_eq(device_path_default(buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "/tmp/test-ringdev/mnt");
	/* Taken as given, relative or not: it is the user's explicit choice. */
	cr_assert_eq(setenv("RINGDEV_DEVICE", "rel/dev", 1), 0);
	cr_assert_eq(device_path_default(buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, "rel/dev");
	/* Also for users, and before $XDG_RUNTIME_DIR. */
	cr_assert_eq(setenv("RINGDEV_DEVICE", "/dev/ringdev-other", 1), 0);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1), 0);
	assert_result(run_as_nobody(device_path_default, 256), 0, "/dev/ringdev-other");
}

Test(device_path, empty_or_unset_ringdev_device_falls_back)
{
	char buf[256];
	const char *want = dev_ringdev_exists() ? "/dev/ringdev" : "/run/ringdev";
	cr_assert_eq(unsetenv("XDG_RUNTIME_DIR"), 0);
	cr_assert_eq(unsetenv("RINGDEV_DEVICE"), 0);
	cr_assert_eq(device_path_default(buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, want);
	cr_assert_eq(setenv("RINGDEV_DEVICE", "", 1), 0);
	memset(buf, 0, sizeof(buf));
	cr_assert_eq(device_path_default(buf, sizeof(buf)), 0);
	cr_assert_str_eq(buf, want, "an empty $RINGDEV_DEVICE counts as unset");
}

/* Without $RINGDEV_DEVICE or /dev/ringdev, a user's tools look where that
 * user's ringdevd mounts. */
Test(device_path, user_default_device_is_the_user_mount)
{
	cr_assert_eq(unsetenv("RINGDEV_DEVICE"), 0);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1), 0);
	assert_result(run_as_nobody(device_path_default, 256), 0,
		      dev_ringdev_exists() ? "/dev/ringdev" : "/run/user/65534/ringdev");
}

Test(device_path, device_that_does_not_fit_is_enametoolong)
{
	char dev[300];
	memset(dev, 'v', sizeof(dev) - 1);
	dev[0] = '/';
	dev[sizeof(dev) - 1] = '\0';
	char buf[256];
	cr_assert_eq(setenv("RINGDEV_DEVICE", dev, 1), 0);
	cr_assert_eq(device_path_default(buf, sizeof(buf)), -ENAMETOOLONG);
	/* 299 bytes fit 300, not 299. */
	char big[300];
	cr_assert_eq(device_path_default(big, sizeof(big)), 0);
	cr_assert_str_eq(big, dev);
	cr_assert_eq(device_path_default(big, sizeof(big) - 1), -ENAMETOOLONG);
}

/* A path that does not fit names the variable it came from, so the tools'
 * "path too long" points at what the user set (it once said
 * $XDG_RUNTIME_DIR for an over-long $RINGDEV_DEVICE). */
Test(device_path, a_path_that_does_not_fit_names_its_source)
{
	char dev[300];
	memset(dev, 'v', sizeof(dev) - 1);
	dev[0] = '/';
	dev[sizeof(dev) - 1] = '\0';
	char buf[256];
	const char *source = NULL;

	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/0", 1), 0);
	cr_assert_eq(setenv("RINGDEV_DEVICE", dev, 1), 0);
	cr_assert_eq(device_path_default_from(buf, sizeof(buf), &source), -ENAMETOOLONG);
	cr_assert_str_eq(source, "$RINGDEV_DEVICE");
	/* Also for a user with a $XDG_RUNTIME_DIR that would fit. */
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1), 0);
	struct child_result r = run_from_as_nobody(device_path_default_from, 256);
	cr_assert_eq(r.rc, -ENAMETOOLONG);
	cr_assert_str_eq(r.source, "$RINGDEV_DEVICE");

	/* Without $RINGDEV_DEVICE, a user's over-long $XDG_RUNTIME_DIR (unless
	 * /dev/ringdev exists and is taken first). */
	char dir[400];
	memset(dir, 'd', sizeof(dir) - 1);
	dir[0] = '/';
	dir[sizeof(dir) - 1] = '\0';
	cr_assert_eq(unsetenv("RINGDEV_DEVICE"), 0);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", dir, 1), 0);
	r = run_from_as_nobody(device_path_default_mount_from, 256);
	cr_assert_eq(r.rc, -ENAMETOOLONG);
	cr_assert_str_eq(r.source, "$XDG_RUNTIME_DIR");
	r = run_from_as_nobody(device_path_default_from, 256);
	if (dev_ringdev_exists()) {
		cr_assert_eq(r.rc, 0);
		cr_assert_str_eq(r.source, "/dev/ringdev");
	} else {
		cr_assert_eq(r.rc, -ENAMETOOLONG);
		cr_assert_str_eq(r.source, "$XDG_RUNTIME_DIR");
	}

	/* Root's fixed mount, into a buffer too small for it. */
	if (geteuid() == 0) {
		source = NULL;
		cr_assert_eq(device_path_default_mount_from(buf, 5, &source), -ENAMETOOLONG);
		cr_assert_str_eq(source, "/run/ringdev");
	}
}

/* What the path came from is said on success too. */
Test(device_path, the_source_is_named_when_the_path_fits)
{
	char buf[256];
	const char *source = NULL;

	cr_assert_eq(setenv("RINGDEV_DEVICE", "/x/dev", 1), 0);
	cr_assert_eq(device_path_default_from(buf, sizeof(buf), &source), 0);
	cr_assert_str_eq(buf, "/x/dev");
	cr_assert_str_eq(source, "$RINGDEV_DEVICE");
	cr_assert_eq(unsetenv("RINGDEV_DEVICE"), 0);
	cr_assert_eq(setenv("XDG_RUNTIME_DIR", "/run/user/65534", 1), 0);
	struct child_result r = run_from_as_nobody(device_path_default_mount_from, 256);
	cr_assert_eq(r.rc, 0);
	cr_assert_str_eq(r.path, "/run/user/65534/ringdev");
	cr_assert_str_eq(r.source, "$XDG_RUNTIME_DIR");
}
