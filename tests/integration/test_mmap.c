/* SPDX-License-Identifier: MIT */
/*
 * test_mmap.c - what the page cache may do to a pipe: nothing.  A pipe's
 * bytes belong to read(2) callers.  On the FUSE mount the kernel refuses
 * MAP_SHARED of a direct-I/O file (ENODEV) but maps MAP_PRIVATE itself,
 * and the page faults, like readahead(2) and (on kernels whose splice goes
 * through the page cache) splice(2), fetch the file's contents with READs
 * of their own; served, those took the pipe's bytes into pages nobody reads
 * in order (outside testing: a 4 KiB mapping of a pipe holding 10,000 bytes
 * consumed all of them).  The CUSE node has no mmap at all (ENODEV).
 *
 * So on a pipe holding 10,000 bytes: MAP_SHARED fails with ENODEV; a child
 * that maps MAP_PRIVATE and touches the page gets SIGBUS (or the mapping is
 * refused with ENODEV), and the page is not left in the page cache;
 * readahead(2) and splice(2) take nothing that the caller does not get (the
 * daemon's count of queued bytes says so after each); and afterwards all
 * 10,000 bytes are read back intact, with nothing parked.
 */
#include "harness.h"

#include <setjmp.h>
#include <sys/mman.h>

RD_SUITE(mmap, 60);

#define QUEUED 10000u
#define PAGE 4096u

/* What the mapping child saw (its exit code). */
enum map_result {
	MAP_SIGBUS = 0,   /* touching the page raised SIGBUS, nothing cached */
	MAP_REFUSED = 1,  /* mmap(MAP_PRIVATE) failed with ENODEV */
	MAP_READABLE = 2, /* the page could be read: the kernel got the bytes */
	MAP_CACHED = 3,   /* SIGBUS, but the page is in the page cache */
	MAP_OTHER = 4,    /* mmap failed with another errno */
};

static const char *const map_names[] = { "SIGBUS", "refused (ENODEV)", "readable", "SIGBUS but cached",
					 "mmap failed with another errno" };

static sigjmp_buf bus_jump;

static __attribute__((noreturn)) void on_sigbus(int sig)
{
	(void)sig;
	siglongjmp(bus_jump, 1);
}

/* Helper process: map the pipe privately and touch its first byte. */
static int map_private_child(void *arg)
{
	int fd = *(const int *)arg;
	struct sigaction sa = { .sa_handler = on_sigbus };
	unsigned char vec = 0;
	unsigned char *p;

	p = mmap(NULL, PAGE, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED)
		return errno == ENODEV ? MAP_REFUSED : MAP_OTHER;
	sigaction(SIGBUS, &sa, NULL);
	if (sigsetjmp(bus_jump, 1) == 0) {
		volatile unsigned char c = *(volatile unsigned char *)p;

		(void)c;
		return MAP_READABLE;
	}
	/* mincore reports the file's page as resident only if it is in the
	 * page cache, up to date: what the kernel would serve next time. */
	if (mincore(p, PAGE, &vec) == 0 && (vec & 1))
		return MAP_CACHED;
	return MAP_SIGBUS;
}

Test(mmap, mapping_a_pipe_consumes_nothing)
{
	struct rd_daemon *d = rd_start(NULL);
	int fd = rd_create(d, "Mapped", O_RDWR | O_NONBLOCK, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	static unsigned char sent[QUEUED], got[2 * QUEUED];
	size_t received = 0;
	int result, kpipe[2];
	ssize_t n;

	rd_pattern(sent, QUEUED, 10, 0);
	rd_write_ok(fd, sent, QUEUED);

	rd_assert_errno(mmap(NULL, PAGE, PROT_READ, MAP_SHARED, fd, 0), ENODEV, "mmap(MAP_SHARED) of a pipe");

	result = rd_join(rd_spawn(map_private_child, &fd, fd));
	cr_assert(result >= 0 && result <= MAP_OTHER, "the mapping child exited %d", result);
	if (d->cuse)
		cr_assert_eq(result, MAP_REFUSED, "mmap(MAP_PRIVATE) of the CUSE node: expected ENODEV, got %s",
			     map_names[result]);
	else
		cr_assert(result == MAP_SIGBUS || result == MAP_REFUSED,
			  "mmap(MAP_PRIVATE) of a pipe on the mount, page touched: expected SIGBUS with nothing "
			  "cached (or ENODEV), got %s",
			  map_names[result]);

	cr_assert_eq(rd_nread(fd).queued_bytes, QUEUED, "the mapping took nothing from the pipe");

	/* Readahead fills the page cache the same way (an error is fine:
	 * the CUSE node has no page cache to fill). */
	(void)readahead(fd, 0, PAGE);
	cr_assert_eq(rd_nread(fd).queued_bytes, QUEUED, "readahead(2) took nothing from the pipe");

	/* splice either goes through read(2)'s path (the bytes arrive in the
	 * kernel pipe, in order) or through the page cache (refused): either
	 * way no byte may vanish. */
	cr_assert_eq(pipe(kpipe), 0, "pipe: %s", strerror(errno));
	n = splice(fd, NULL, kpipe[1], NULL, PAGE, SPLICE_F_NONBLOCK);
	if (n > 0) {
		cr_assert_eq(read(kpipe[0], got, sizeof(got)), n, "the spliced bytes are in the kernel pipe");
		received = (size_t)n;
	}
	close(kpipe[0]);
	close(kpipe[1]);
	cr_assert_eq(rd_nread(fd).queued_bytes, QUEUED - received,
		     "splice(2) took from the pipe only the %zu bytes it delivered", received);

	n = read(fd, got + received, sizeof(got) - received);
	cr_assert_eq(n, (ssize_t)(QUEUED - received),
		     "after mmap, readahead and splice (%zu bytes spliced) read(2) gets the other %u bytes, got %zd (%s)",
		     received, QUEUED - (unsigned)received, n, n < 0 ? strerror(errno) : "short");
	cr_assert_eq(memcmp(got, sent, QUEUED), 0, "the 10,000 bytes come back intact and in order");
	rd_assert_errno(read(fd, got, sizeof(got)), EAGAIN, "the pipe is empty after that");
	rd_close(d, fd);
	rd_end(d); /* nothing parked */
}
