/* SPDX-License-Identifier: MIT */
/*
 * test_shell.c - ordinary shell tools as clients: echo and cat, dd in both
 * directions compared by checksum, and ls of the mount.  On CUSE the same
 * commands go through /dev/NAME (its default pipe); the command strings are
 * built from rd_shell_path.
 */
#include "harness.h"

#include <stdarg.h>

RD_SUITE(shell, 60);

/* FNV-1a of a whole file, and its size. */
static uint64_t file_checksum(const char *path, uint64_t *size)
{
	static unsigned char buf[65536];
	uint64_t h = RD_FNV_INIT;
	int fd = open(path, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	*size = 0;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		h = rd_fnv1a(h, buf, (size_t)n);
		*size += (uint64_t)n;
	}
	cr_assert_eq(n, 0, "read %s: %s", path, strerror(errno));
	close(fd);
	return h;
}

static void read_file(const char *path, char *out, size_t size)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	cr_assert_geq(fd, 0, "open %s: %s", path, strerror(errno));
	n = read(fd, out, size - 1);
	cr_assert_geq(n, 0, "read %s", path);
	out[n] = '\0';
	close(fd);
}

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	cr_assert(n > 0 && (size_t)n < sizeof(cmd), "command fits");
	return rd_sh(cmd);
}

Test(shell, echo_then_cat)
{
	struct rd_daemon *d = rd_start(NULL);
	char path[RD_PATH_SIZE + 16], out[RD_PATH_SIZE + 16], got[64];

	rd_shell_path(d, "HELLO", path, sizeof(path));
	snprintf(out, sizeof(out), "%s/cat.out", d->dir);
	cr_assert_eq(sh("echo hi > '%s'", path), 0, "echo hi > %s", path);
	cr_assert_eq(sh("cat '%s' > '%s'", path, out), 0, "cat %s (ends at EOF)", path);
	read_file(out, got, sizeof(got));
	cr_assert_str_eq(got, "hi\n", "cat prints what echo wrote");
	if (!d->cuse) {
		/* Read and closed: the pipe is gone. */
		rd_wait_opens(d, 0);
		rd_assert_errno(rd_open(d, "HELLO", O_RDONLY, 0), ENOENT, "HELLO after cat");
	}
	rd_end(d);
}

Test(shell, dd_through_a_large_ring_in_sequence)
{
	const char *const args[] = { "--ring-size", "2M", NULL };
	struct rd_daemon *d = rd_start(args);
	char path[RD_PATH_SIZE + 16], src[RD_PATH_SIZE + 16], dst[RD_PATH_SIZE + 16];
	uint64_t src_size, dst_size, src_sum, dst_sum;

	rd_shell_path(d, "X", path, sizeof(path));
	snprintf(src, sizeof(src), "%s/src", d->dir);
	snprintf(dst, sizeof(dst), "%s/dst", d->dir);
	cr_assert_eq(sh("dd if=/dev/urandom of='%s' bs=64k count=16 status=none", src), 0, "make 1 MiB");
	cr_assert_eq(sh("dd if='%s' of='%s' bs=64k status=none", src, path), 0, "dd into %s", path);
	cr_assert_eq(sh("dd if='%s' of='%s' bs=64k status=none", path, dst), 0, "dd out of %s", path);
	src_sum = file_checksum(src, &src_size);
	dst_sum = file_checksum(dst, &dst_size);
	cr_assert_eq(src_size, 1 << 20, "source size");
	cr_assert_eq(dst_size, src_size, "dd read %llu bytes, expected %llu", (unsigned long long)dst_size,
		     (unsigned long long)src_size);
	cr_assert_eq(dst_sum, src_sum, "the bytes dd read are the bytes dd wrote");
	rd_end(d);
}

Test(shell, dd_writer_and_reader_at_once_through_64k)
{
	struct rd_daemon *d = rd_start(NULL);
	char path[RD_PATH_SIZE + 16], src[RD_PATH_SIZE + 16], dst[RD_PATH_SIZE + 16];
	uint64_t src_size, dst_size, src_sum, dst_sum;
	int holder = -1;

	rd_shell_path(d, "X", path, sizeof(path));
	snprintf(src, sizeof(src), "%s/src", d->dir);
	snprintf(dst, sizeof(dst), "%s/dst", d->dir);
	cr_assert_eq(sh("dd if=/dev/urandom of='%s' bs=64k count=64 status=none", src), 0, "make 4 MiB");
	/* The reader may open X before the writer created it: create it now
	 * and keep a handle that never reads (a reader, not a writer, so EOF
	 * still comes when dd's writer closes). */
	if (!d->cuse)
		holder = rd_create(d, "X", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	cr_assert_eq(sh("dd if='%s' of='%s' bs=64k status=none & "
			"dd if='%s' of='%s' bs=64k status=none; r=$?; wait $! || exit 1; exit $r",
			src, path, path, dst),
		     0, "dd writer and dd reader at once");
	src_sum = file_checksum(src, &src_size);
	dst_sum = file_checksum(dst, &dst_size);
	cr_assert_eq(dst_size, src_size, "dd read %llu bytes, expected %llu", (unsigned long long)dst_size,
		     (unsigned long long)src_size);
	cr_assert_eq(dst_sum, src_sum, "the bytes dd read are the bytes dd wrote");
	if (holder >= 0)
		close(holder);
	rd_end(d);
}

Test(shell, ls_lists_the_pipes)
{
	struct rd_daemon *d;
	char out[RD_PATH_SIZE + 16], got[256];

	if (rd_frontend_is_cuse()) {
		cr_log_info("ls: the FUSE mount only; nothing to list on a CUSE node");
		return;
	}
	d = rd_start(NULL);
	snprintf(out, sizeof(out), "%s/ls.out", d->dir);
	cr_assert_eq(sh("echo one > '%s/One' && echo two > '%s/Two' && ls '%s' > '%s'", d->mount, d->mount,
			d->mount, out),
		     0, "echo, echo, ls");
	read_file(out, got, sizeof(got));
	cr_assert_str_eq(got, "One\nTwo\n", "ls lists the two pipes as spelled");
	cr_assert_eq(sh("test \"$(cat '%s/one')\" = one && test \"$(cat '%s/TWO')\" = two", d->mount,
			d->mount),
		     0, "cat reads each pipe back by another spelling");
	rd_end(d);
}
