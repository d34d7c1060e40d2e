/* SPDX-License-Identifier: MIT */
/*
 * test_attack_limits.c - regressions from an outside review of the limits:
 * what an unprivileged user can make the daemon hold beyond every limit, and
 * how one user can starve the others.
 *
 * 1. The payloads of relayed WRITEs (brokered pipes) and device-specific
 *    IOCTLs that a broker holds are copies the daemon keeps on the app's
 *    behalf (ringdev(4) "Memory limits", design "relay payloads ... charged"),
 *    yet they are charged only as parked requests, never as memory: one user
 *    makes the daemon hold max-parked-per-uid MiB.
 * 2. With the default limits one user takes every pipe slot (--max-pipes)
 *    for 64 KiB of memory and leaves; every other user, root included, then
 *    gets ENOSPC creating a pipe, until an admin removes them.
 */
#include "harness.h"

#include <grp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>

RD_SUITE(attack_limits, 90);

#define NOBODY 65534
#define OTHER 65533
#define MIB (1u << 20)

static bool become(uid_t uid)
{
	return setgroups(0, NULL) == 0 && setgid(uid) == 0 && setuid(uid) == 0;
}

/* A broker that makes every pipe brokered and never answers a READ, WRITE
 * or IOCTL: it holds them, with their payloads in the daemon. */
struct holder {
	int fd;
	pthread_t thread;
	atomic_int stop;
	atomic_uint held;
	atomic_ullong held_bytes;
};

static void *holder_main(void *arg)
{
	struct holder *b = arg;
	struct ringdev_ctl_transact t;
	struct ringdev_ctl_answer a[RINGDEV_CTL_BATCH];
	uint32_t na = 0;
	while (!atomic_load(&b->stop)) {
		if (rd_transact(b->fd, a, na, RINGDEV_CTL_BATCH, 20, &t) < 0)
			return NULL;
		na = 0;
		for (uint32_t i = 0; i < t.nrequests; i++) {
			const struct ringdev_ctl_request *r = &t.requests[i];
			if (r->type == RINGDEV_CTL_OPEN || r->type == RINGDEV_CTL_ATTACH) {
				memset(&a[na], 0, sizeof(a[na]));
				a[na].id = r->id;
				a[na].flags = RINGDEV_ANSWER_BROKERED;
				na++;
			} else if (r->type == RINGDEV_CTL_WRITE || r->type == RINGDEV_CTL_IOCTL) {
				atomic_fetch_add(&b->held_bytes, r->size);
				atomic_fetch_add(&b->held, 1);
			}
		}
	}
	return NULL;
}

#define RELAY_WRITERS 24

static unsigned char relay_data[MIB] __attribute__((aligned(4096)));

struct relay_shared {
	struct rd_daemon daemon;
	ssize_t ret[RELAY_WRITERS];
	int err[RELAY_WRITERS];
	atomic_int done[RELAY_WRITERS];
};

struct relay_arg {
	struct relay_shared *s;
	int index;
};

/* nobody: its own pipe file (its own inode: the kernel's write lock does
 * not hold it back), one 1 MiB write the broker will hold. */
static int relay_writer_main(void *arg)
{
	struct relay_shared *s = ((struct relay_arg *)arg)->s;
	int i = ((struct relay_arg *)arg)->index;
	char name[16];
	snprintf(name, sizeof(name), "rv%d", i);
	if (!become(NOBODY))
		return 2;
	int fd = rd_open(&s->daemon, name, O_WRONLY | O_CREAT, 0600);
	if (fd < 0) {
		s->err[i] = errno;
		atomic_store(&s->done[i], 1);
		return 3;
	}
	errno = 0;
	s->ret[i] = write(fd, relay_data, MIB);
	s->err[i] = s->ret[i] < 0 ? errno : 0;
	atomic_store(&s->done[i], 1);
	close(fd);
	return 0;
}

Test(attack_limits, relayed_write_payloads_held_by_a_broker_are_charged)
{
	const char *const args[] = { "--max-memory", "4M", "--max-memory-per-uid", "1M",
				     "--max-parked-per-uid", "64", "--threads", "1", NULL };
	struct rd_daemon *d = rd_start(args);
	struct relay_shared *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	/* Counters through a handle opened before the broker (on CUSE a new
	 * open of the node would wait for this broker, which holds it). */
	int sfd = rd_keep_stats(d);
	struct holder *b = calloc(1, sizeof(*b));
	cr_assert_not_null(b);
	b->fd = rd_ctl_open(d);
	cr_assert_geq(b->fd, 0, "open the control node: %s", rd_errname(errno));
	rd_wait_broker(d, 1);
	cr_assert_eq(pthread_create(&b->thread, NULL, holder_main, b), 0);

	uint64_t before = rd_daemon_rss(d);
	static struct relay_arg ra[RELAY_WRITERS];
	pid_t pids[RELAY_WRITERS];
	for (int i = 0; i < RELAY_WRITERS; i++) {
		ra[i] = (struct relay_arg){ s, i };
		pids[i] = rd_spawn(relay_writer_main, &ra[i], -1);
	}
	/* Every write is either held by the broker or has returned. */
	for (int t = 0; t < RD_PARK_TIMEOUT_MS; t += 10) {
		int returned = 0;
		for (int i = 0; i < RELAY_WRITERS; i++)
			returned += atomic_load(&s->done[i]);
		if ((int)atomic_load(&b->held) + returned >= RELAY_WRITERS)
			break;
		usleep(10 * 1000);
	}
	usleep(200 * 1000);
	uint64_t during = rd_daemon_rss(d);
	struct ringdev_stats st = rd_stats(d);
	unsigned held = atomic_load(&b->held);
	unsigned long long held_bytes = atomic_load(&b->held_bytes);
	cr_log_info("broker holds %u writes (%llu KiB); memory_used %llu; daemon grew by %llu KiB", held,
		    held_bytes >> 10, (unsigned long long)st.memory_used,
		    (unsigned long long)((during - before) >> 10));

	/* End it all before asserting: the broker leaves, its writes end. */
	atomic_store(&b->stop, 1);
	pthread_join(b->thread, NULL);
	close(b->fd);
	for (int i = 0; i < RELAY_WRITERS; i++)
		rd_join(pids[i]);
	rd_wait_broker(d, 0);
	free(b);

	cr_expect_leq(st.memory_used, 1 * MIB, "memory_used past nobody's limit: %llu",
		      (unsigned long long)st.memory_used);
	cr_expect_geq(st.memory_used, held_bytes,
		      "the broker holds %llu bytes of nobody's writes, memory_used counts %llu", held_bytes,
		      (unsigned long long)st.memory_used);
	cr_assert(rd_daemon_instrumented() || during < before + 4 * MIB + RD_RSS_SLACK,
		  "a broker holding nobody's writes grew the daemon by %llu KiB with limits of 4 MiB (+%u KiB slack)",
		  (unsigned long long)((during - before) >> 10), RD_RSS_SLACK >> 10);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* nobody: n pipes of 64 bytes, one unread byte in each, then gone. */
static int squat_main(void *arg)
{
	struct rd_daemon *d = arg;
	if (!become(NOBODY))
		return 2;
	for (int i = 0; i < 1100; i++) {
		char name[16];
		snprintf(name, sizeof(name), "sq%d", i);
		int fd = rd_open(d, name, O_RDWR | O_CREAT, 0600);
		if (fd < 0)
			break;
		if (rd_set_config(fd, RINGDEV_SET_CAPACITY, 0, 0, 0, 64) < 0 || write(fd, "x", 1) != 1) {
			close(fd);
			return 3;
		}
		close(fd);
	}
	return 0;
}

static int other_creates_main(void *arg)
{
	struct rd_daemon *d = arg;
	if (!become(OTHER))
		return 2;
	int fd = rd_open(d, "victim", O_RDWR | O_CREAT, 0600);
	if (fd < 0)
		return errno == ENOSPC ? 10 : 11;
	close(fd);
	return 0;
}

Test(attack_limits, one_user_cannot_take_every_pipe_slot_with_the_default_limits)
{
	if (rd_frontend_is_cuse())
		cr_skip_test("FUSE mount: the squatter's pipes are files");
	struct rd_daemon *d = rd_start(NULL);
	struct rd_daemon *shared = rd_shared(sizeof(*shared));
	*shared = *d;
	cr_assert_eq(rd_join(rd_spawn(squat_main, shared, -1)), 0, "nobody could not make its pipes");
	struct ringdev_stats st = rd_stats(d);
	cr_log_info("nobody left %llu pipes holding %llu bytes", (unsigned long long)st.pipes,
		    (unsigned long long)st.memory_used);
	int rc = rd_join(rd_spawn(other_creates_main, shared, -1));
	cr_assert_eq(rc, 0, "another user cannot create a pipe after nobody took %llu slots (%s)",
		     (unsigned long long)st.pipes, rc == 10 ? "ENOSPC" : "other error");
	rd_stop(d);
}
