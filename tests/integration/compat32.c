/* SPDX-License-Identifier: MIT */
/*
 * compat32.c - a 32-bit caller of the ringdev ioctls, built freestanding
 * with -m32 (no 32-bit libc needed): its ioctls reach the daemon as compat
 * calls (FUSE_IOCTL_COMPAT). The ABI is meant to be identical for 32- and
 * 64-bit callers; the asserts below check that at compile time in 32-bit
 * mode, and the run checks the daemon answers such a caller correctly.
 *
 *   compat32 PATH   PATH: a CUSE node, or a pipe file on the FUSE mount
 *   compat32        exit 0 at once: the probe of run-integration.sh, which
 *                   asks whether this kernel runs 32-bit programs at all
 * Exit 0 when all is well, else the number of the step that failed.
 */
#include <stddef.h>

/* No i386 <asm/ioctl.h> without 32-bit libc headers; x86's is the generic
 * one, so take it directly and let ringdev.h's <linux/ioctl.h> be a no-op. */
#include <asm-generic/ioctl.h>
#define _LINUX_IOCTL_H
#include <ringdev/ringdev.h>

_Static_assert(sizeof(void *) == 4, "build with -m32");
_Static_assert(sizeof(struct ringdev_version) == 80, "version");
_Static_assert(sizeof(struct ringdev_attach) == 120, "attach");
_Static_assert(offsetof(struct ringdev_attach, capacity) == 80, "attach.capacity");
_Static_assert(sizeof(struct ringdev_pipe_info) == 256, "pipe_info");
_Static_assert(offsetof(struct ringdev_pipe_info, capacity) == 112, "pipe_info.capacity");
_Static_assert(offsetof(struct ringdev_pipe_info, ino) == 192, "pipe_info.ino");
_Static_assert(sizeof(struct ringdev_nread) == 32, "nread");
_Static_assert(sizeof(struct ringdev_pipe_config) == 56, "pipe_config");
_Static_assert(offsetof(struct ringdev_pipe_config, capacity) == 16, "pipe_config.capacity");
_Static_assert(sizeof(struct ringdev_stats) == 256, "stats");
_Static_assert(sizeof(struct ringdev_ctl_request) == 1208, "ctl_request");
_Static_assert(offsetof(struct ringdev_ctl_request, data) == 184, "ctl_request.data");
_Static_assert(sizeof(struct ringdev_ctl_answer) == 1168, "ctl_answer");
_Static_assert(offsetof(struct ringdev_ctl_answer, capacity) == 104, "ctl_answer.capacity");
_Static_assert(sizeof(struct ringdev_ctl_transact) == 9552, "ctl_transact");
_Static_assert(sizeof(struct ringdev_ctl_bulk) == 16288, "ctl_bulk");

#define SYS_exit 1
#define SYS_write 4
#define SYS_open 5
#define SYS_ioctl 54
#define O_RDWR 2
#define O_NONBLOCK 04000
#define FIONREAD 0x541B
#define ENOTTY 25

__asm__(".globl _start\n_start:\n\tmov %esp, %eax\n\tpush %eax\n\tcall compat_main\n");

static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
	return r;
}

static void say(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	sys3(SYS_write, 2, (long)s, n);
}

static __attribute__((noreturn)) void finish(int step, const char *what)
{
	if (step) {
		say("compat32: failed: ");
		say(what);
		say("\n");
	}
	sys3(SYS_exit, step, 0, 0);
	__builtin_unreachable();
}

static void *zero(void *p, unsigned n)
{
	volatile unsigned char *b = p;
	while (n--)
		b[n] = 0;
	return p;
}

__attribute__((used, noreturn)) void compat_main(long *sp);
__attribute__((used, noreturn)) void compat_main(long *sp)
{
	char **argv = (char **)(sp + 1);
	if (sp[0] == 1)
		finish(0, ""); /* the probe: it started, so 32-bit programs run */
	if (sp[0] != 2)
		finish(1, "usage: compat32 [PATH]");
	long fd = sys3(SYS_open, (long)argv[1], O_RDWR | O_NONBLOCK, 0);
	if (fd < 0)
		finish(2, "open");

	struct ringdev_version v;
	zero(&v, sizeof(v));
	if (sys3(SYS_ioctl, fd, (long)RINGDEV_IOC_VERSION, (long)&v) != 0 || v.abi_major != RINGDEV_ABI_MAJOR)
		finish(3, "RINGDEV_IOC_VERSION");

	struct ringdev_attach a;
	zero(&a, sizeof(a));
	const char name[] = "compat32";
	for (unsigned i = 0; i < sizeof(name); i++)
		a.name[i] = name[i];
	a.flags = RINGDEV_ATTACH_CREATE;
	a.kind = RINGDEV_KIND_MESSAGE;
	a.capacity = 8192;
	if (sys3(SYS_ioctl, fd, (long)RINGDEV_IOC_ATTACH, (long)&a) != 0)
		finish(4, "RINGDEV_IOC_ATTACH");
	if (sys3(SYS_write, fd, (long)"hello", 5) != 5)
		finish(5, "write");

	struct ringdev_pipe_info pi;
	zero(&pi, sizeof(pi));
	if (sys3(SYS_ioctl, fd, (long)RINGDEV_IOC_PIPE_INFO, (long)&pi) != 0)
		finish(6, "RINGDEV_IOC_PIPE_INFO");
	if (pi.capacity != 8192 || pi.queued_bytes != 5 || pi.kind != RINGDEV_KIND_MESSAGE || pi.name[0] != 'c')
		finish(7, "RINGDEV_IOC_PIPE_INFO fields");

	struct ringdev_nread nr;
	zero(&nr, sizeof(nr));
	if (sys3(SYS_ioctl, fd, (long)RINGDEV_IOC_NREAD, (long)&nr) != 0 || nr.next != 5 || nr.queued_messages != 1)
		finish(8, "RINGDEV_IOC_NREAD");

	/* An unknown command in our range: a clean ENOTTY. */
	if (sys3(SYS_ioctl, fd, (long)_IOR(RINGDEV_IOC_MAGIC, 0x7f, struct ringdev_nread), (long)&nr) != -ENOTTY)
		finish(9, "unknown ioctl");

	/* FIONREAD: only the CUSE node answers it (the VFS does on FUSE). */
	if (argv[1][0] == '/' && argv[1][1] == 'd' && argv[1][2] == 'e' && argv[1][3] == 'v') {
		int n = -1;
		if (sys3(SYS_ioctl, fd, FIONREAD, (long)&n) != 0 || n != 5)
			finish(10, "FIONREAD");
	}
	finish(0, "");
}
