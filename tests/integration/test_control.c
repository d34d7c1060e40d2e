/* SPDX-License-Identifier: MIT */
/*
 * test_control.c - the control channel (inverted call) at the protocol level,
 * as /work/protocol.md fixes it: the control node itself, every request type,
 * batching, cancel, a broker killed or restarted, answers no good broker
 * would send, TRANSACT's own checks and timeouts, --require-broker and the
 * built-in policy without a broker.
 *
 * The test process is its own broker: it speaks raw RINGDEV_IOC_CTL_*
 * ioctls (struct broker below), so it can send malformed answers and check
 * exactly what the daemon relays.  Apps are helper processes (struct app):
 * an app's open or ioctl waits for the broker, so it can never run in the
 * process that must answer it.  Handles an app does not open itself are
 * opened by the test before it takes the control node (nothing is relayed
 * then) and handed down by fork.
 *
 * Counters: while a broker holds the control node every open of a CUSE node
 * is relayed to it, so each test keeps one handle from before the broker
 * (keep_stats) and rd_stats reads through it (rd_stats_through).
 */
#include "harness.h"

#include <dirent.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>

RD_SUITE(control, 60);

#define NOBODY 65534
#define BATCH RINGDEV_CTL_BATCH
#define INLINE RINGDEV_CTL_INLINE
#define KILL_LIMIT_MS 1000 /* issue 4: a killed broker's apps return within 1 s */

/* Device-specific commands (nr 0x80..0xff: relayed to the broker). */
struct dev_small {
	uint32_t value;
	uint32_t pad;
	uint8_t bytes[56];
};
struct dev_big {
	uint8_t bytes[8192];            /* beyond RINGDEV_CTL_INLINE: FETCH and STAGE */
};
struct dev_huge {
	uint8_t bytes[16383];           /* the largest _IOC_SIZE: beyond RINGDEV_CTL_BULK too */
};
#define DEV_ECHO _IOWR(RINGDEV_IOC_MAGIC, 0x80, struct dev_small)
#define DEV_BIG _IOWR(RINGDEV_IOC_MAGIC, 0x81, struct dev_big)
#define DEV_POKE _IO(RINGDEV_IOC_MAGIC, 0x82)
#define DEV_HUGE _IOWR(RINGDEV_IOC_MAGIC, 0x83, struct dev_huge)
#define DEV_GET _IOR(RINGDEV_IOC_MAGIC, 0xfe, struct dev_small)
#define DEV_PUT _IOW(RINGDEV_IOC_MAGIC, 0xff, struct dev_small)

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void pause_2ms(void)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = 2 * 1000 * 1000 };

	nanosleep(&ts, NULL);
}

static const char *type_name(uint32_t type)
{
	static const char *const names[] = { "?", "OPEN", "ATTACH", "IOCTL", "READ", "WRITE", "CANCEL",
					     "RELEASE" };

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void catch_sigusr1(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sa.sa_flags = 0; /* no SA_RESTART: the interrupted call returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

/* Wait for a flag a helper sets in shared memory (hang limit only). */
static void wait_flag(atomic_int *flag, int value, const char *what)
{
	uint64_t deadline = now_ms() + RD_PARK_TIMEOUT_MS;

	while (atomic_load(flag) != value && now_ms() < deadline)
		pause_2ms();
	cr_assert_eq(atomic_load(flag), value, "%s (flag %d, expected %d)", what, atomic_load(flag), value);
}

static bool has_arg(const struct rd_daemon *d, const char *arg)
{
	for (int i = 0; i < d->nargs; i++)
		if (strcmp(d->args[i], arg) == 0)
			return true;
	return false;
}

/* An app's open: FUSE MOUNT/pipe (O_CREAT, so a new name reaches the
 * daemon); CUSE the node itself (the broker's answer names the pipe). */
static int app_open(const struct rd_daemon *d, const char *pipe, int flags)
{
	char path[RD_PATH_SIZE + RINGDEV_NAME_SIZE + 2];

	if (d->cuse)
		return open(d->device, flags | O_CLOEXEC);
	snprintf(path, sizeof(path), "%s/%s", d->mount, pipe);
	return open(path, flags | O_CREAT | O_CLOEXEC, 0600);
}

/* ---- the test's broker ------------------------------------------------- */

struct broker {
	int fd;
	unsigned n;                                 /* requests taken, not yet claimed by the test */
	struct ringdev_ctl_request inbox[32];
};

static void broker_open(struct broker *b, const struct rd_daemon *d)
{
	char path[RD_PATH_SIZE + 16];

	rd_ctl_path(d, path, sizeof(path));
	b->n = 0;
	b->fd = rd_ctl_open(d);
	cr_assert_geq(b->fd, 0, "open %s O_RDWR as root: %s", path, rd_errname(errno));
}

static void broker_close(struct broker *b, const struct rd_daemon *d)
{
	cr_assert_eq(close(b->fd), 0, "close the control fd: %s", strerror(errno));
	b->fd = -1;
	rd_wait_broker(d, 0);
}

/* One TRANSACT without answers; what it returns goes to the inbox. */
static unsigned broker_pull(struct broker *b, uint32_t timeout_ms)
{
	struct ringdev_ctl_transact t;
	uint32_t room = (uint32_t)(sizeof(b->inbox) / sizeof(b->inbox[0])) - b->n;
	uint32_t max = room < BATCH ? room : BATCH;

	cr_assert_gt(max, 0, "the test broker's inbox is full (%u requests nobody claimed)", b->n);
	cr_assert_eq(rd_transact(b->fd, NULL, 0, max, timeout_ms, &t), 0, "TRANSACT (max %u, timeout %u): %s",
		     max, timeout_ms, rd_errname(errno));
	cr_assert_leq(t.nrequests, max, "TRANSACT returned %u requests, max_requests was %u", t.nrequests, max);
	cr_assert(t.rejected == 0 && t.failed == 0, "TRANSACT without answers: rejected %u failed %u",
		  t.rejected, t.failed);
	memcpy(b->inbox + b->n, t.requests, t.nrequests * sizeof(t.requests[0]));
	b->n += t.nrequests;
	return t.nrequests;
}

static bool inbox_claim(struct broker *b, uint32_t type, struct ringdev_ctl_request *out)
{
	for (unsigned i = 0; i < b->n; i++) {
		if (b->inbox[i].type != type)
			continue;
		*out = b->inbox[i];
		memmove(b->inbox + i, b->inbox + i + 1, (b->n - i - 1) * sizeof(b->inbox[0]));
		b->n--;
		return true;
	}
	return false;
}

/* The oldest request of `type`, waiting for it up to RD_PARK_TIMEOUT_MS.
 * Requests of other types stay in the inbox. */
static struct ringdev_ctl_request broker_take(struct broker *b, uint32_t type)
{
	uint64_t deadline = now_ms() + RD_PARK_TIMEOUT_MS;
	struct ringdev_ctl_request r;

	for (;;) {
		uint64_t now;

		if (inbox_claim(b, type, &r))
			return r;
		now = now_ms();
		cr_assert_lt(now, deadline, "no %s request within %d ms (%u others waiting, first: %s)",
			     type_name(type), RD_PARK_TIMEOUT_MS, b->n, b->n ? type_name(b->inbox[0].type) : "-");
		broker_pull(b, (uint32_t)(deadline - now));
	}
}

/* Take what is there now (timeout 0) and assert nothing of `type` came. */
static void broker_expect_none(struct broker *b, uint32_t type, const char *what)
{
	struct ringdev_ctl_request r;

	while (broker_pull(b, 0) > 0)
		;
	cr_assert(!inbox_claim(b, type, &r), "%s: got a %s request (id %llu)", what, type_name(type),
		  (unsigned long long)r.id);
}

static struct ringdev_ctl_answer answer_for(const struct ringdev_ctl_request *r, int32_t result)
{
	struct ringdev_ctl_answer a;

	memset(&a, 0, sizeof(a));
	a.id = r->id;
	a.result = result;
	return a;
}

/* Answer with an inline out-payload. */
static struct ringdev_ctl_answer answer_data(const struct ringdev_ctl_request *r, int32_t result,
					     const void *data, uint32_t size)
{
	struct ringdev_ctl_answer a = answer_for(r, result);

	cr_assert_leq(size, INLINE);
	memcpy(a.data, data, size);
	a.size = size;
	return a;
}

/* TRANSACT with these answers, taking nothing: asserts the counts. */
static void broker_send(struct broker *b, const struct ringdev_ctl_answer *a, uint32_t n, uint32_t rejected,
			uint32_t failed, const char *what)
{
	struct ringdev_ctl_transact t;

	cr_assert_eq(rd_transact(b->fd, a, n, 0, 0, &t), 0, "%s: TRANSACT with %u answers: %s", what, n,
		     rd_errname(errno));
	cr_assert_eq(t.nrequests, 0, "%s: max_requests 0 but %u requests returned", what, t.nrequests);
	cr_assert(t.rejected == rejected && t.failed == failed,
		  "%s: expected rejected %u failed %u, got rejected %u failed %u", what, rejected, failed,
		  t.rejected, t.failed);
	cr_assert_eq((uint32_t)__builtin_popcount(t.refused), rejected + failed, "%s: refused 0x%x", what,
		     t.refused);
}

static void broker_send1(struct broker *b, struct ringdev_ctl_answer a, uint32_t rejected, uint32_t failed,
			 const char *what)
{
	broker_send(b, &a, 1, rejected, failed, what);
}

static int bulk_call(int fd, unsigned long cmd, uint64_t id, uint64_t offset, uint32_t size,
		     const void *data, struct ringdev_ctl_bulk *bulk)
{
	memset(bulk, 0, sizeof(*bulk));
	bulk->id = id;
	bulk->offset = offset;
	bulk->size = size;
	if (data)
		memcpy(bulk->data, data, size);
	return ioctl(fd, cmd, bulk) < 0 ? -1 : 0;
}

/* FETCH the whole in-payload of r (inline part checked against it). */
static void fetch_all(struct broker *b, const struct ringdev_ctl_request *r, unsigned char *out, uint32_t chunk)
{
	static struct ringdev_ctl_bulk bulk;
	uint64_t off = 0;

	while (off < r->size) {
		uint32_t want = chunk;
		uint64_t expect = r->size - off;

		if (expect > want)
			expect = want;
		if (expect > RINGDEV_CTL_BULK)
			expect = RINGDEV_CTL_BULK;
		cr_assert_eq(bulk_call(b->fd, RINGDEV_IOC_CTL_FETCH, r->id, off, want, NULL, &bulk), 0,
			     "FETCH id %llu offset %llu size %u: %s", (unsigned long long)r->id,
			     (unsigned long long)off, want, rd_errname(errno));
		cr_assert_eq(bulk.size, expect, "FETCH at %llu of %u wanting %u: expected %llu bytes, got %u",
			     (unsigned long long)off, r->size, want, (unsigned long long)expect, bulk.size);
		memcpy(out + off, bulk.data, bulk.size);
		off += bulk.size;
	}
	cr_assert_eq(memcmp(out, r->data, r->inline_size), 0, "FETCH gives the inline bytes again at 0");
}

/* STAGE size bytes of data for r in chunks. */
static void stage_all(struct broker *b, const struct ringdev_ctl_request *r, const unsigned char *data,
		      uint32_t size, uint32_t chunk)
{
	static struct ringdev_ctl_bulk bulk;

	for (uint32_t off = 0; off < size; off += chunk) {
		uint32_t n = size - off < chunk ? size - off : chunk;

		cr_assert_eq(bulk_call(b->fd, RINGDEV_IOC_CTL_STAGE, r->id, off, n, data + off, &bulk), 0,
			     "STAGE id %llu offset %u size %u: %s", (unsigned long long)r->id, off, n,
			     rd_errname(errno));
	}
}

/* ---- a temporary broker thread: answers OPEN/ATTACH with "allow" ------- */

struct server {
	int fd;
	atomic_int stop;
	uint32_t flags;                 /* answer flags */
	char name[RINGDEV_NAME_SIZE];   /* OPEN answer name */
	int served;
	int err;
};

static void *server_main(void *arg)
{
	struct server *s = arg;
	struct ringdev_ctl_transact t;
	struct ringdev_ctl_answer a[BATCH];
	uint32_t na = 0;

	while (!atomic_load(&s->stop)) {
		if (rd_transact(s->fd, a, na, BATCH, 20, &t) < 0) {
			s->err = errno;
			return NULL;
		}
		na = 0;
		for (uint32_t i = 0; i < t.nrequests; i++) {
			const struct ringdev_ctl_request *r = &t.requests[i];

			if (r->type != RINGDEV_CTL_OPEN && r->type != RINGDEV_CTL_ATTACH)
				continue;
			memset(&a[na], 0, sizeof(a[na]));
			a[na].id = r->id;
			a[na].flags = s->flags;
			if (r->type == RINGDEV_CTL_OPEN)
				memcpy(a[na].name, s->name, sizeof(a[na].name));
			na++;
			s->served++;
		}
	}
	if (na && rd_transact(s->fd, a, na, 0, 0, &t) < 0)
		s->err = errno;
	return NULL;
}

/* Open as app_open does (pipe NULL: the CUSE node O_RDONLY | O_NONBLOCK,
 * answered ""), with a broker thread of the test answering the OPEN (and
 * ATTACH) with answer_flags; the control node is free again afterwards.
 * For handles the test needs while no broker is there. */
static int open_served(struct rd_daemon *d, const char *pipe, int flags, uint32_t answer_flags)
{
	struct server s;
	pthread_t th;
	int fd, err;

	memset(&s, 0, sizeof(s));
	s.flags = answer_flags;
	if (pipe)
		snprintf(s.name, sizeof(s.name), "%s", pipe);
	s.fd = rd_ctl_open(d);
	cr_assert_geq(s.fd, 0, "open the control node: %s", rd_errname(errno));
	cr_assert_eq(pthread_create(&th, NULL, server_main, &s), 0, "pthread_create");
	fd = pipe ? app_open(d, pipe, flags) : open(d->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	err = errno;
	atomic_store(&s.stop, 1);
	pthread_join(th, NULL);
	close(s.fd);
	cr_assert_geq(fd, 0, "open %s with a broker allowing it: %s", pipe ? pipe : d->device, rd_errname(err));
	cr_assert_eq(s.err, 0, "the helper broker's TRANSACT: %s", rd_errname(s.err));
	cr_assert_geq(s.served, 1, "the helper broker answered the open");
	if (!pipe)
		rd_stats_through(d, fd);
	rd_wait_broker(d, 0);
	return fd;
}

/* The handle rd_stats reads through for the rest of the test: opened before
 * any broker (FUSE: the mount root, never relayed; CUSE: the node). */
static int keep_stats(struct rd_daemon *d)
{
	if (d->cuse && has_arg(d, "--require-broker"))
		return open_served(d, NULL, 0, 0);
	return rd_keep_stats(d);
}

/* rd_end (idle, SIGTERM, exit 0), then the counters' handle goes. */
static void end(struct rd_daemon *d, int stats_fd)
{
	rd_end(d);
	close(stats_fd);
}

/* ---- apps ----------------------------------------------------------------- */

enum app_op { APP_NONE, APP_IOCTL, APP_READ, APP_WRITE, APP_ATTACH };

struct app {
	const struct rd_daemon *d;
	int fd;                         /* the handle to use; -1: app_open(pipe, oflags) first */
	char pipe[RINGDEV_NAME_SIZE];
	int oflags;
	uid_t uid;                      /* nonzero: drop to uid/gid `uid` first */
	enum app_op op;
	unsigned long cmd;              /* APP_IOCTL */
	struct ringdev_attach attach;   /* APP_ATTACH */
	bool catch_sigusr1;
	size_t len;                     /* READ/WRITE bytes */
	pid_t pid;
	int setup_err;
	int open_err;                   /* the open's errno, 0 if it worked */
	int info_err;
	struct ringdev_pipe_info info;  /* after the open, and again after APP_ATTACH */
	long ret;
	int err;
	uint64_t start_ms;
	atomic_ullong done_ms;          /* CLOCK_MONOTONIC when the op (or failed open) returned */
	unsigned char buf[];            /* ioctl argument, READ/WRITE data */
};

static struct app *app_new(const struct rd_daemon *d, int fd, size_t buf_size)
{
	struct app *a = rd_shared(sizeof(*a) + buf_size);

	a->d = d;
	a->fd = fd;
	a->ret = -2;
	return a;
}

static int app_main(void *arg)
{
	struct app *a = arg;
	int fd = a->fd;

	if (a->uid && (setgroups(0, NULL) != 0 || setgid(a->uid) != 0 || setuid(a->uid) != 0)) {
		a->setup_err = errno;
		return 1;
	}
	if (a->catch_sigusr1)
		catch_sigusr1();
	a->start_ms = now_ms();
	if (fd < 0) {
		fd = app_open(a->d, a->pipe, a->oflags);
		if (fd < 0) {
			a->open_err = errno;
			atomic_store(&a->done_ms, now_ms());
			return 0;
		}
		a->info_err = ioctl(fd, RINGDEV_IOC_PIPE_INFO, &a->info) < 0 ? errno : 0;
	}
	switch (a->op) {
	case APP_NONE:
		a->ret = 0;
		break;
	case APP_IOCTL:
		a->ret = ioctl(fd, a->cmd, a->buf);
		break;
	case APP_READ:
		a->ret = read(fd, a->buf, a->len);
		break;
	case APP_WRITE:
		a->ret = write(fd, a->buf, a->len);
		break;
	case APP_ATTACH:
		a->ret = ioctl(fd, RINGDEV_IOC_ATTACH, &a->attach);
		break;
	}
	a->err = a->ret < 0 ? errno : 0;
	atomic_store(&a->done_ms, now_ms());
	if (a->op == APP_ATTACH)
		a->info_err = ioctl(fd, RINGDEV_IOC_PIPE_INFO, &a->info) < 0 ? errno : 0;
	if (a->fd < 0)
		close(fd);
	return 0;
}

static void app_start(struct app *a)
{
	atomic_store(&a->done_ms, 0);
	a->ret = -2;
	a->err = 0;
	a->open_err = 0;
	a->pid = rd_spawn(app_main, a, a->fd);
}

static void app_join(struct app *a)
{
	cr_assert_eq(rd_join(a->pid), 0, "app %d: exit code (setup: %s)", (int)a->pid, rd_errname(a->setup_err));
}

/* An app doing one ioctl on fd with a struct dev_small argument. */
static struct app *app_ioctl(const struct rd_daemon *d, int fd, unsigned long cmd, uint32_t value)
{
	struct app *a = app_new(d, fd, sizeof(struct dev_big));
	struct dev_small *s = (struct dev_small *)a->buf;

	a->op = APP_IOCTL;
	a->cmd = cmd;
	s->value = value;
	rd_pattern(s->bytes, sizeof(s->bytes), value, 0);
	return a;
}

/* Is helper `pid` still running after `ms`? (It is not reaped if so.) */
static bool child_alive(pid_t pid, int ms)
{
	int status;

	return !rd_wait_child(pid, ms, &status);
}

static void expect_ret(const struct app *a, long ret, int err, const char *what)
{
	cr_assert(a->ret == ret && a->err == err, "%s: expected %ld (%s), got %ld (%s)", what, ret,
		  rd_errname(err), a->ret, rd_errname(a->err));
}

/* ---- the control node ----------------------------------------------------- */

struct nobody_ctl {
	const struct rd_daemon *d;
	uid_t uid;
	int setup_err;
	int open_err;
	int transact_err;
};

static int nobody_ctl_main(void *arg)
{
	struct nobody_ctl *s = arg;
	struct ringdev_ctl_transact t;
	int fd;

	if (setgroups(0, NULL) != 0 || setgid(s->uid) != 0 || setuid(s->uid) != 0) {
		s->setup_err = errno;
		return 1;
	}
	fd = rd_ctl_open(s->d);
	s->open_err = fd < 0 ? errno : 0;
	if (fd >= 0) {
		s->transact_err = rd_transact(fd, NULL, 0, BATCH, 0, &t) < 0 ? errno : 0;
		close(fd);
	}
	return 0;
}

static int ctl_open_as(const struct rd_daemon *d, uid_t uid, int *transact_err)
{
	struct nobody_ctl *s = rd_shared(sizeof(*s));

	s->d = d;
	s->uid = uid;
	s->transact_err = -1;
	cr_assert_eq(rd_join(rd_spawn(nobody_ctl_main, s, -1)), 0, "uid %d helper: %s", (int)uid,
		     rd_errname(s->setup_err));
	if (transact_err)
		*transact_err = s->transact_err;
	return s->open_err;
}

Test(control, node_is_exclusive_root_only_and_answers_only_its_ioctls)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	char path[RD_PATH_SIZE + 16], buf[16];
	struct ringdev_version v;
	struct ringdev_stats s;
	struct ringdev_pipe_info info;
	struct dev_small small;
	uint64_t x = 0;
	struct stat st;
	int ctl, err;

	rd_ctl_path(d, path, sizeof(path));
	cr_assert_eq(stat(path, &st), 0, "stat %s: %s", path, strerror(errno));
	if (d->cuse)
		cr_assert(S_ISCHR(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_uid == 0,
			  "%s: a char device 0600 owned by root, got mode %o uid %d", path,
			  (unsigned)st.st_mode, (int)st.st_uid);
	cr_assert_eq(rd_stats(d).broker_connected, 0, "no broker yet");

	ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "open %s O_RDWR as root: %s", path, rd_errname(errno));
	cr_assert_eq(rd_stats(d).broker_connected, 1, "stats.broker_connected while the node is open");
	rd_assert_errno(rd_ctl_open(d), EBUSY, "a second open of the control node");

	memset(&v, 0, sizeof(v));
	cr_assert_eq(ioctl(ctl, RINGDEV_IOC_VERSION, &v), 0, "VERSION on the control fd: %s", strerror(errno));
	cr_assert_eq(v.abi_major, RINGDEV_ABI_MAJOR, "VERSION abi_major on the control fd");
	memset(&s, 0, sizeof(s));
	cr_assert_eq(ioctl(ctl, RINGDEV_IOC_STATS, &s), 0, "STATS on the control fd: %s", strerror(errno));
	cr_assert_eq(s.broker_connected, 1, "STATS through the control fd: broker_connected");
	rd_assert_errno(ioctl(ctl, RINGDEV_IOC_PIPE_INFO, &info), ENOTTY, "PIPE_INFO on the control fd");
	rd_assert_errno(ioctl(ctl, _IOR(RINGDEV_IOC_MAGIC, 0x7f, uint64_t), &x), ENOTTY,
			"an unknown ringdev ioctl on the control fd");
	memset(&small, 0, sizeof(small));
	rd_assert_errno(ioctl(ctl, DEV_ECHO, &small), ENOTTY,
			"a device-specific ioctl on the control fd (not relayed)");
	rd_assert_errno(ioctl(ctl, _IOR('x', 1, uint32_t), &x), ENOTTY, "a foreign ioctl on the control fd");
	rd_assert_errno(read(ctl, buf, sizeof(buf)), EINVAL, "read(2) on the control fd");
	rd_assert_errno(write(ctl, "x", 1), EINVAL, "write(2) on the control fd");

	cr_assert_eq(close(ctl), 0, "close: %s", strerror(errno));
	rd_wait_broker(d, 0);
	ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "the control node opens again after close: %s", rd_errname(errno));
	broker_close(&(struct broker){ .fd = ctl }, d);

	rd_assert_errno(open(path, O_RDONLY | O_CLOEXEC), EINVAL, "open the control node O_RDONLY");
	rd_assert_errno(open(path, O_WRONLY | O_CLOEXEC), EINVAL, "open the control node O_WRONLY");
	err = ctl_open_as(d, NOBODY, NULL);
	cr_assert_eq(err, EACCES, "uid %d opening the control node: expected EACCES, got %s", NOBODY,
		     rd_errname(err));
	cr_assert_eq(rd_stats(d).broker_connected, 0, "refused opens connect no broker");
	ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "root still opens it: %s", rd_errname(errno));
	close(ctl);
	rd_wait_broker(d, 0);
	end(d, sfd);
}

Test(control, ctl_group_members_may_be_the_broker)
{
	const char *const args[] = { "--ctl-group", "65534", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = keep_stats(d);
	char path[RD_PATH_SIZE + 16];
	uint64_t deadline = now_ms() + RD_START_TIMEOUT_MS;
	struct stat st;
	int err, terr;

	rd_ctl_path(d, path, sizeof(path));
	/* The CUSE node appears 0600 and the daemon sets its group and mode a
	 * moment later, as for the data node. */
	while (d->cuse && now_ms() < deadline &&
	       !(stat(path, &st) == 0 && st.st_gid == 65534 && (st.st_mode & 07777) == 0660))
		pause_2ms();
	if (d->cuse) {
		cr_assert_eq(stat(path, &st), 0, "stat %s", path);
		cr_assert(st.st_gid == 65534 && (st.st_mode & 07777) == 0660,
			  "--ctl-group 65534: expected %s 0660 group 65534, got %o group %d", path,
			  (unsigned)(st.st_mode & 07777), (int)st.st_gid);
	}
	err = ctl_open_as(d, NOBODY, &terr);
	cr_assert_eq(err, 0, "uid/gid %d with --ctl-group %d: open the control node: %s", NOBODY, NOBODY,
		     rd_errname(err));
	cr_assert_eq(terr, 0, "its TRANSACT (timeout 0): %s", rd_errname(terr));
	rd_wait_broker(d, 0);
	err = ctl_open_as(d, NOBODY - 1, NULL);
	cr_assert_eq(err, EACCES, "uid/gid %d (not in --ctl-group): expected EACCES, got %s", NOBODY - 1,
		     rd_errname(err));
	end(d, sfd);
}

/* ---- every request type ---------------------------------------------------- */

Test(control, open_is_relayed_with_the_callers_credentials_and_allowed_or_denied)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	struct broker b;
	struct ringdev_ctl_request r, rel;
	struct app *a;
	char path[RD_PATH_SIZE + 16];
	struct stat st;

	broker_open(&b, d);

	/* root, O_RDWR, allowed as asked */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Opened");
	a->oflags = O_RDWR;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	cr_assert(r.uid == 0 && r.gid == 0, "OPEN by root: uid %u gid %u", r.uid, r.gid);
	cr_assert_eq(r.pid, (uint32_t)a->pid, "OPEN pid: %u, the app is %d", r.pid, (int)a->pid);
	cr_assert_eq(r.oflags & O_ACCMODE, O_RDWR, "OPEN oflags %#x: O_RDWR", r.oflags);
	cr_assert_str_eq(r.name, d->cuse ? "" : "Opened", "OPEN name");
	cr_assert_eq(r.attach_flags, d->cuse ? 0u : RINGDEV_ATTACH_CREATE,
		     "OPEN attach_flags %#x (FUSE O_CREAT of a new name: CREATE)", r.attach_flags);
	cr_assert_neq(r.id, 0, "request ids are nonzero");
	broker_send1(&b, answer_for(&r, 0), 0, 0, "allow the open");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "the allowed open: %s", rd_errname(a->open_err));
	cr_assert_eq(a->info_err, 0, "PIPE_INFO after the open: %s", rd_errname(a->info_err));
	cr_assert_str_eq(a->info.name, d->cuse ? "default" : "Opened",
			 "answer name \"\" attaches as asked (CUSE: the default pipe)");
	rel = broker_take(&b, RINGDEV_CTL_RELEASE);
	cr_assert_eq(rel.handle, r.handle, "RELEASE names the handle of the OPEN (%llu), got %llu",
		     (unsigned long long)r.handle, (unsigned long long)rel.handle);

	/* nobody, O_RDONLY, denied with an errno of the broker's choice */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Denied");
	a->oflags = O_RDONLY;
	a->uid = NOBODY;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	cr_assert(r.uid == NOBODY && r.gid == NOBODY, "OPEN by nobody: uid %u gid %u", r.uid, r.gid);
	cr_assert_eq(r.pid, (uint32_t)a->pid, "OPEN pid");
	cr_assert_eq(r.oflags & O_ACCMODE, O_RDONLY, "OPEN oflags %#x: O_RDONLY", r.oflags);
	broker_send1(&b, answer_for(&r, -EHOSTDOWN), 0, 0, "deny the open");
	app_join(a);
	cr_assert_eq(a->open_err, EHOSTDOWN, "the denied open fails with the broker's errno, got %s",
		     rd_errname(a->open_err));
	if (!d->cuse) {
		snprintf(path, sizeof(path), "%s/Denied", d->mount);
		rd_assert_errno(stat(path, &st), ENOENT, "a denied O_CREAT open creates no pipe");
	}
	/* O_CREAT | O_EXCL on the mount: CREATE | EXCL */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Excl");
	a->oflags = O_WRONLY | (d->cuse ? 0 : O_EXCL);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	cr_assert_eq(r.oflags & O_ACCMODE, O_WRONLY, "OPEN oflags %#x: O_WRONLY", r.oflags);
	/* The kernel made it exclusive already: its lookup found no such name
	 * and it sent MKNOD under the directory lock; the OPEN that follows
	 * creates (the pipe is new) and says so. */
	cr_assert_eq(r.attach_flags, d->cuse ? 0u : RINGDEV_ATTACH_CREATE,
		     "OPEN attach_flags %#x (FUSE O_CREAT | O_EXCL of a new name: CREATE)", r.attach_flags);
	broker_send1(&b, answer_for(&r, 0), 0, 0, "allow the exclusive open");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "the allowed exclusive open: %s", rd_errname(a->open_err));

	cr_assert_geq(rd_stats(d).relayed, 3, "stats.relayed counts the OPENs");
	broker_close(&b, d);
	end(d, sfd);
}

Test(control, open_answer_maps_the_handle_to_another_pipe_with_settings)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	/* FUSE: the apps open an existing pipe, so the kernel sends a plain open.
	 * 0644: nobody may see it (the visibility rule) but not open it for
	 * writing, which an allowed open may still do. */
	int asked = d->cuse ? -1 : rd_create(d, "Asked", O_RDWR, 0, 0, 0);
	if (asked >= 0)
		cr_assert_eq(rd_set_config(asked, RINGDEV_SET_MODE, 0, 0, 0644, 0), 0, "chmod Asked 0644");
	struct ringdev_ctl_answer ans;
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;

	broker_open(&b, d);

	/* mapped, no SETTINGS: a new pipe with defaults, owned by the app */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Asked");
	a->oflags = O_RDWR;
	a->uid = NOBODY;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	cr_assert_str_eq(r.name, d->cuse ? "" : "Asked", "OPEN name");
	ans = answer_for(&r, 0);
	snprintf(ans.name, sizeof(ans.name), "Mapped1");
	broker_send1(&b, ans, 0, 0, "map the open to Mapped1");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "open mapped to Mapped1 (an allowed open skips the mode bits): %s",
		     rd_errname(a->open_err));
	cr_assert_str_eq(a->info.name, "Mapped1", "the handle is attached to the pipe the answer named");
	cr_assert_eq(a->info.kind, RINGDEV_KIND_STREAM, "default kind");
	cr_assert(a->info.uid == NOBODY && a->info.gid == NOBODY, "created for the app: uid %u gid %u",
		  a->info.uid, a->info.gid);

	/* mapped with SETTINGS: kind, policy, capacity, mode and owner from the answer */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Asked");
	a->oflags = O_RDWR;
	a->uid = NOBODY;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	ans = answer_for(&r, 0);
	snprintf(ans.name, sizeof(ans.name), "Mapped2");
	ans.flags = RINGDEV_ANSWER_SETTINGS;
	ans.kind = RINGDEV_KIND_MESSAGE;
	ans.policy = RINGDEV_POLICY_FAIL;
	ans.capacity = 8192;
	ans.mode = 0640;
	ans.uid = 1234;
	ans.gid = 4321;
	broker_send1(&b, ans, 0, 0, "map the open to Mapped2 with SETTINGS");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "open mapped to Mapped2: %s", rd_errname(a->open_err));
	cr_assert_str_eq(a->info.name, "Mapped2", "attached to Mapped2");
	cr_assert_eq(a->info.kind, RINGDEV_KIND_MESSAGE, "SETTINGS kind: got %u", a->info.kind);
	cr_assert_eq(a->info.policy, RINGDEV_POLICY_FAIL, "SETTINGS policy: got %u", a->info.policy);
	cr_assert_eq(a->info.capacity, 8192, "SETTINGS capacity: got %llu", (unsigned long long)a->info.capacity);
	cr_assert_eq(a->info.mode & 07777, 0640, "SETTINGS mode: got %o", a->info.mode);
	cr_assert(a->info.uid == 1234 && a->info.gid == 4321, "SETTINGS owner: got %u:%u", a->info.uid,
		  a->info.gid);

	broker_close(&b, d);
	if (asked >= 0)
		rd_close(d, asked);
	end(d, sfd);
}

Test(control, attach_is_relayed_and_allowed_or_denied)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Start", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r, r2, rel;
	struct ringdev_ctl_answer ans;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	a = app_new(d, fd, 0);
	a->op = APP_ATTACH;
	snprintf(a->attach.name, sizeof(a->attach.name), "Att");
	a->attach.flags = RINGDEV_ATTACH_CREATE;
	a->attach.kind = RINGDEV_KIND_MESSAGE;
	a->attach.policy = RINGDEV_POLICY_OVERWRITE;
	a->attach.mode = 0640;
	a->attach.capacity = 4096;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_ATTACH);
	cr_assert_str_eq(r.name, "Att", "ATTACH name");
	cr_assert_eq(r.attach_flags, RINGDEV_ATTACH_CREATE, "ATTACH attach_flags %#x", r.attach_flags);
	cr_assert(r.kind == RINGDEV_KIND_MESSAGE && r.policy == RINGDEV_POLICY_OVERWRITE && r.mode == 0640 &&
			  r.capacity == 4096,
		  "ATTACH carries what the app gave: kind %u policy %u mode %o capacity %llu", r.kind, r.policy,
		  r.mode, (unsigned long long)r.capacity);
	/* uid/gid/pid: the handle's (bound at open; here the test opened it). */
	cr_assert(r.uid == 0 && r.gid == 0, "ATTACH credentials: uid %u gid %u", r.uid, r.gid);
	cr_assert_eq(r.oflags & O_ACCMODE, O_RDWR, "ATTACH oflags %#x", r.oflags);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_SETTINGS;
	ans.kind = RINGDEV_KIND_STREAM;
	ans.policy = RINGDEV_POLICY_BLOCK;
	ans.capacity = 2048;
	ans.mode = 0600;
	broker_send1(&b, ans, 0, 0, "allow the attach with SETTINGS");
	app_join(a);
	expect_ret(a, 0, 0, "the allowed ATTACH");
	cr_assert_str_eq(a->info.name, "Att", "attached to Att");
	cr_assert(a->info.kind == RINGDEV_KIND_STREAM && a->info.capacity == 2048,
		  "created with the answer's SETTINGS: kind %u capacity %llu", a->info.kind,
		  (unsigned long long)a->info.capacity);

	a = app_new(d, fd, 0);
	a->op = APP_ATTACH;
	snprintf(a->attach.name, sizeof(a->attach.name), "Refused");
	a->attach.flags = RINGDEV_ATTACH_CREATE;
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_ATTACH);
	cr_assert_str_eq(r2.name, "Refused", "ATTACH name");
	cr_assert_eq(r2.handle, r.handle, "the same handle in all its requests");
	broker_send1(&b, answer_for(&r2, -ENOLINK), 0, 0, "deny the attach");
	app_join(a);
	expect_ret(a, -1, ENOLINK, "the denied ATTACH");
	cr_assert_str_eq(a->info.name, "Att", "a denied ATTACH leaves the handle where it was");

	/* BROKERED in an ATTACH answer: reads of that pipe go to the broker. */
	a = app_new(d, fd, 0);
	a->op = APP_ATTACH;
	snprintf(a->attach.name, sizeof(a->attach.name), "AttBr");
	a->attach.flags = RINGDEV_ATTACH_CREATE;
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_ATTACH);
	ans = answer_for(&r2, 0);
	ans.flags = RINGDEV_ANSWER_BROKERED;
	broker_send1(&b, ans, 0, 0, "allow the attach, brokered");
	app_join(a);
	expect_ret(a, 0, 0, "the brokered ATTACH");
	a = app_new(d, fd, 16);
	a->op = APP_READ;
	a->len = 16;
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_READ);
	cr_assert(r2.size == 16 && strcmp(r2.name, "AttBr") == 0, "READ of the brokered pipe: size %u name %s",
		  r2.size, r2.name);
	broker_send1(&b, answer_data(&r2, 3, "abc", 3), 0, 0, "answer the READ");
	app_join(a);
	expect_ret(a, 3, 0, "a read on a pipe an ATTACH answer made brokered");
	cr_assert_eq(memcmp(a->buf, "abc", 3), 0, "the broker's bytes");

	close(fd);
	rel = broker_take(&b, RINGDEV_CTL_RELEASE);
	cr_assert_eq(rel.handle, r.handle, "RELEASE of a handle that had a relayed ATTACH");
	broker_close(&b, d);
	end(d, sfd);
}

Test(control, ioctl_in_and_out_payloads_and_result)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Dev", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r, r2;
	struct dev_small in, out, zero;
	struct broker b;
	struct app *a;

	broker_open(&b, d);

	/* _IOWR: in-payload to the broker, result and a shorter out-payload back */
	a = app_ioctl(d, fd, DEV_ECHO, 0x12345678);
	memcpy(&in, a->buf, sizeof(in));
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	cr_assert_eq(r.cmd, (uint32_t)DEV_ECHO, "IOCTL cmd %#x", r.cmd);
	cr_assert(r.size == sizeof(in) && r.out_size == sizeof(in) && r.inline_size == sizeof(in),
		  "IOCTL sizes: size %u out_size %u inline_size %u, expected %zu each", r.size, r.out_size,
		  r.inline_size, sizeof(in));
	cr_assert_eq(memcmp(r.data, &in, sizeof(in)), 0, "the in-payload is the app's argument");
	cr_assert_str_eq(r.name, "Dev", "IOCTL name: the handle's pipe");
	cr_assert(r.uid == 0 && r.gid == 0, "IOCTL credentials: uid %u gid %u", r.uid, r.gid);
	cr_assert_eq(r.oflags & O_ACCMODE, O_RDWR, "IOCTL oflags");
	memset(&out, 0, sizeof(out));
	out.value = ~in.value;
	for (size_t i = 0; i < 24; i++)
		out.bytes[i] = (uint8_t)~in.bytes[i];
	broker_send1(&b, answer_data(&r, 7, &out, 32), 0, 0, "answer the IOCTL");
	app_join(a);
	expect_ret(a, 7, 0, "the relayed ioctl returns the answer's result");
	cr_assert_eq(memcmp(a->buf, &out, 32), 0, "the out-payload reaches the app");
	memset(&zero, 0, sizeof(zero));
	cr_assert_eq(memcmp(a->buf + 32, &zero, sizeof(zero) - 32), 0, "the rest of the app's buffer is zeroed");

	/* _IOR: nothing in, out_size out */
	a = app_ioctl(d, fd, DEV_GET, 1);
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_IOCTL);
	cr_assert(r2.cmd == (uint32_t)DEV_GET && r2.size == 0 && r2.inline_size == 0 && r2.out_size == sizeof(out),
		  "_IOR: cmd %#x size %u inline %u out_size %u", r2.cmd, r2.size, r2.inline_size, r2.out_size);
	cr_assert_eq(r2.handle, r.handle, "the same handle in all its requests");
	rd_pattern(&out, sizeof(out), 99, 0);
	broker_send1(&b, answer_data(&r2, 0, &out, sizeof(out)), 0, 0, "answer the _IOR");
	app_join(a);
	expect_ret(a, 0, 0, "_IOR ioctl");
	cr_assert_eq(memcmp(a->buf, &out, sizeof(out)), 0, "_IOR out-payload");

	/* _IOW: in only */
	a = app_ioctl(d, fd, DEV_PUT, 2);
	memcpy(&in, a->buf, sizeof(in));
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_IOCTL);
	cr_assert(r2.size == sizeof(in) && r2.out_size == 0 && r2.inline_size == sizeof(in),
		  "_IOW: size %u out_size %u inline %u", r2.size, r2.out_size, r2.inline_size);
	cr_assert_eq(memcmp(r2.data, &in, sizeof(in)), 0, "_IOW in-payload");
	broker_send1(&b, answer_for(&r2, 3), 0, 0, "answer the _IOW");
	app_join(a);
	expect_ret(a, 3, 0, "_IOW ioctl");

	/* _IO: no payload; an errno */
	a = app_ioctl(d, fd, DEV_POKE, 3);
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_IOCTL);
	cr_assert(r2.cmd == (uint32_t)DEV_POKE && r2.size == 0 && r2.out_size == 0, "_IO: cmd %#x size %u out %u",
		  r2.cmd, r2.size, r2.out_size);
	broker_send1(&b, answer_for(&r2, -ENOLINK), 0, 0, "fail the _IO");
	app_join(a);
	expect_ret(a, -1, ENOLINK, "_IO ioctl answered -ENOLINK");

	cr_assert_geq(rd_stats(d).relayed, 4, "stats.relayed");
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

Test(control, large_ioctl_payloads_move_by_fetch_and_stage)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Big", O_RDWR, 0, 0, 0);
	static unsigned char sent[8192], got[8192], back[8192];
	static struct ringdev_ctl_bulk bulk;
	struct ringdev_ctl_request r;
	struct ringdev_ctl_answer ans;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	a = app_new(d, fd, sizeof(struct dev_big));
	a->op = APP_IOCTL;
	a->cmd = DEV_BIG;
	rd_pattern(sent, sizeof(sent), 1, 0);
	memcpy(a->buf, sent, sizeof(sent));
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	cr_assert(r.cmd == (uint32_t)DEV_BIG && r.size == 8192 && r.out_size == 8192,
		  "IOCTL cmd %#x size %u out_size %u", r.cmd, r.size, r.out_size);
	cr_assert(r.inline_size > 0 && r.inline_size <= INLINE, "inline_size %u (at most %u)", r.inline_size, INLINE);
	cr_assert_eq(memcmp(r.data, sent, r.inline_size), 0, "inline part of the in-payload");

	/* FETCH: in odd chunks, then in one (bounded by the payload, not BULK) */
	fetch_all(&b, &r, got, 3000);
	cr_assert_eq(memcmp(got, sent, sizeof(sent)), 0, "FETCHed in-payload (3000-byte chunks)");
	memset(got, 0, sizeof(got));
	fetch_all(&b, &r, got, RINGDEV_CTL_BULK);
	cr_assert_eq(memcmp(got, sent, sizeof(sent)), 0, "FETCHed in-payload (one call)");
	cr_assert_eq(bulk_call(b.fd, RINGDEV_IOC_CTL_FETCH, r.id, 8192, 100, NULL, &bulk), 0,
		     "FETCH at offset == size: %s", rd_errname(errno));
	cr_assert_eq(bulk.size, 0, "FETCH at the end gives 0 bytes, got %u", bulk.size);
	rd_assert_errno(bulk_call(b.fd, RINGDEV_IOC_CTL_FETCH, r.id, 8193, 100, NULL, &bulk), EINVAL,
			"FETCH past the end");
	rd_assert_errno(bulk_call(b.fd, RINGDEV_IOC_CTL_FETCH, r.id + 1000000, 0, 100, NULL, &bulk), ENOENT,
			"FETCH of an unknown id");

	/* STAGE the out-payload in two pieces, answer STAGED */
	rd_pattern(back, sizeof(back), 2, 0);
	rd_assert_errno(bulk_call(b.fd, RINGDEV_IOC_CTL_STAGE, r.id, 8000, 500, back, &bulk), EINVAL,
			"STAGE beyond out_size");
	rd_assert_errno(bulk_call(b.fd, RINGDEV_IOC_CTL_STAGE, r.id + 1000000, 0, 100, back, &bulk), ENOENT,
			"STAGE for an unknown id");
	stage_all(&b, &r, back, sizeof(back), 5000);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_STAGED;
	ans.size = sizeof(back);
	broker_send1(&b, ans, 0, 0, "answer with the staged out-payload");
	app_join(a);
	expect_ret(a, 0, 0, "the large ioctl");
	cr_assert_eq(memcmp(a->buf, back, sizeof(back)), 0, "the staged out-payload reaches the app");
	rd_assert_errno(bulk_call(b.fd, RINGDEV_IOC_CTL_FETCH, r.id, 0, 100, NULL, &bulk), ENOENT,
			"FETCH of an answered request");
	rd_assert_errno(bulk_call(b.fd, RINGDEV_IOC_CTL_STAGE, r.id, 0, 100, back, &bulk), ENOENT,
			"STAGE for an answered request");

	/* 16383 bytes: one FETCH gives RINGDEV_CTL_BULK at most. */
	{
		static unsigned char hsent[16383], hgot[16383], hback[16383];

		a = app_new(d, fd, sizeof(struct dev_huge));
		a->op = APP_IOCTL;
		a->cmd = DEV_HUGE;
		rd_pattern(hsent, sizeof(hsent), 6, 0);
		memcpy(a->buf, hsent, sizeof(hsent));
		app_start(a);
		r = broker_take(&b, RINGDEV_CTL_IOCTL);
		cr_assert(r.size == sizeof(hsent) && r.out_size == sizeof(hsent), "IOCTL size %u out_size %u", r.size,
			  r.out_size);
		fetch_all(&b, &r, hgot, 2 * RINGDEV_CTL_BULK);
		cr_assert_eq(memcmp(hgot, hsent, sizeof(hsent)), 0, "16383-byte in-payload by FETCH");
		rd_pattern(hback, sizeof(hback), 7, 0);
		stage_all(&b, &r, hback, sizeof(hback), RINGDEV_CTL_BULK);
		ans = answer_for(&r, 1);
		ans.flags = RINGDEV_ANSWER_STAGED;
		ans.size = sizeof(hback);
		broker_send1(&b, ans, 0, 0, "answer with 16383 staged bytes");
		app_join(a);
		expect_ret(a, 1, 0, "the 16383-byte ioctl");
		cr_assert_eq(memcmp(a->buf, hback, sizeof(hback)), 0, "16383 staged bytes reach the app");
	}

	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* A reader/writer app on the brokered pipe "Br", step by step. */
struct brokered_app {
	const struct rd_daemon *d;
	int open_err;
	long ret[5];
	int err[5];
	unsigned char small[128];
	unsigned char eof[16];
	unsigned char out1[300];
	unsigned char out2[40000];
	unsigned char in3[50000];
};

static int brokered_app_main(void *arg)
{
	struct brokered_app *s = arg;
	int fd = app_open(s->d, "Br", O_RDWR);

	if (fd < 0) {
		s->open_err = errno;
		return 0;
	}
	s->ret[0] = read(fd, s->small, 100);
	s->err[0] = s->ret[0] < 0 ? errno : 0;
	s->ret[1] = read(fd, s->eof, sizeof(s->eof));
	s->err[1] = s->ret[1] < 0 ? errno : 0;
	s->ret[2] = write(fd, s->out1, sizeof(s->out1));
	s->err[2] = s->ret[2] < 0 ? errno : 0;
	s->ret[3] = write(fd, s->out2, sizeof(s->out2));
	s->err[3] = s->ret[3] < 0 ? errno : 0;
	s->ret[4] = read(fd, s->in3, sizeof(s->in3));
	s->err[4] = s->ret[4] < 0 ? errno : 0;
	close(fd);
	return 0;
}

Test(control, brokered_pipe_reads_and_writes_go_to_the_broker)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	struct brokered_app *s = rd_shared(sizeof(*s));
	static unsigned char payload[50000], fetched[40000];
	struct ringdev_ctl_request open, r, rel;
	struct ringdev_ctl_answer ans;
	struct broker b;
	pid_t pid;

	s->d = d;
	rd_pattern(s->out1, sizeof(s->out1), 3, 0);
	rd_pattern(s->out2, sizeof(s->out2), 4, 0);
	broker_open(&b, d);
	pid = rd_spawn(brokered_app_main, s, -1);

	open = broker_take(&b, RINGDEV_CTL_OPEN);
	ans = answer_for(&open, 0);
	ans.flags = RINGDEV_ANSWER_BROKERED;
	snprintf(ans.name, sizeof(ans.name), "Br");
	broker_send1(&b, ans, 0, 0, "allow the open, brokered");

	r = broker_take(&b, RINGDEV_CTL_READ);
	cr_assert(r.size == 100 && r.inline_size == 0, "READ: size %u (wanted 100) inline %u", r.size,
		  r.inline_size);
	cr_assert_str_eq(r.name, "Br", "READ name");
	cr_assert_eq(r.handle, open.handle, "READ handle is the OPEN's");
	cr_assert_eq(r.pid, (uint32_t)pid, "READ pid");
	broker_send1(&b, answer_data(&r, 5, "hello", 5), 0, 0, "answer the READ with 5 bytes");

	r = broker_take(&b, RINGDEV_CTL_READ);
	broker_send1(&b, answer_for(&r, 0), 0, 0, "answer the READ with EOF");

	r = broker_take(&b, RINGDEV_CTL_WRITE);
	cr_assert(r.size == 300 && r.inline_size == 300, "WRITE: size %u inline %u (300 written)", r.size,
		  r.inline_size);
	cr_assert_eq(memcmp(r.data, s->out1, 300), 0, "WRITE in-payload");
	cr_assert_eq(r.handle, open.handle, "WRITE handle");
	broker_send1(&b, answer_for(&r, 120), 0, 0, "take 120 of 300 bytes");

	r = broker_take(&b, RINGDEV_CTL_WRITE);
	cr_assert(r.size == sizeof(fetched) && r.inline_size <= INLINE, "large WRITE: size %u inline %u", r.size,
		  r.inline_size);
	fetch_all(&b, &r, fetched, RINGDEV_CTL_BULK);
	cr_assert_eq(memcmp(fetched, s->out2, sizeof(fetched)), 0, "large WRITE payload by FETCH");
	broker_send1(&b, answer_for(&r, (int32_t)sizeof(fetched)), 0, 0, "take all 40000 bytes");

	r = broker_take(&b, RINGDEV_CTL_READ);
	cr_assert_eq(r.size, sizeof(payload), "large READ size");
	rd_pattern(payload, sizeof(payload), 5, 0);
	stage_all(&b, &r, payload, sizeof(payload), RINGDEV_CTL_BULK);
	ans = answer_for(&r, (int32_t)sizeof(payload));
	ans.flags = RINGDEV_ANSWER_STAGED;
	ans.size = sizeof(payload);
	broker_send1(&b, ans, 0, 0, "answer the large READ staged");

	rel = broker_take(&b, RINGDEV_CTL_RELEASE);
	cr_assert_eq(rel.handle, open.handle, "RELEASE when the brokered handle closes");
	cr_assert_eq(rd_join(pid), 0, "app exit");
	cr_assert_eq(s->open_err, 0, "open: %s", rd_errname(s->open_err));
	cr_assert(s->ret[0] == 5 && memcmp(s->small, "hello", 5) == 0, "read 1: %ld (%s)", s->ret[0],
		  rd_errname(s->err[0]));
	cr_assert_eq(s->ret[1], 0, "read 2: EOF from the broker, got %ld (%s)", s->ret[1], rd_errname(s->err[1]));
	cr_assert_eq(s->ret[2], 120, "write 1: the broker's count, got %ld (%s)", s->ret[2], rd_errname(s->err[2]));
	cr_assert_eq(s->ret[3], (long)sizeof(fetched), "write 2: got %ld (%s)", s->ret[3], rd_errname(s->err[3]));
	cr_assert_eq(s->ret[4], (long)sizeof(payload), "read 3: got %ld (%s)", s->ret[4], rd_errname(s->err[4]));
	cr_assert_eq(memcmp(s->in3, payload, sizeof(payload)), 0, "read 3: the staged bytes");
	broker_close(&b, d);
	end(d, sfd);
}

/* ---- batching ------------------------------------------------------------- */

#define NAPPS 8

Test(control, many_requests_are_answered_in_batches)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Batch", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_transact t;
	struct ringdev_ctl_answer ans[BATCH];
	struct app *apps[NAPPS];
	uint64_t relayed = rd_stats(d).relayed, ids[NAPPS];
	unsigned seen = 0;
	struct broker b;

	broker_open(&b, d);
	for (int i = 0; i < NAPPS; i++) {
		apps[i] = app_ioctl(d, fd, DEV_ECHO, (uint32_t)i);
		app_start(apps[i]);
	}
	rd_wait_other(d, NAPPS);

	cr_assert_eq(rd_transact(b.fd, NULL, 0, BATCH, 0, &t), 0, "TRANSACT: %s", rd_errname(errno));
	for (int round = 0; round < 3; round++) {
		struct ringdev_ctl_transact next;
		uint32_t n = t.nrequests;

		cr_assert_eq(n, round < 2 ? BATCH : 0, "round %d: nrequests %u", round, n);
		for (uint32_t i = 0; i < n; i++) {
			const struct ringdev_ctl_request *r = &t.requests[i];
			struct dev_small in, out;

			cr_assert_eq(r->type, RINGDEV_CTL_IOCTL, "request %u: %s", i, type_name(r->type));
			memcpy(&in, r->data, sizeof(in));
			cr_assert_lt(in.value, NAPPS, "in-payload value");
			for (unsigned j = 0; j < seen; j++)
				cr_assert_neq(ids[j], r->id, "each request once");
			ids[seen++] = r->id;
			memset(&out, 0, sizeof(out));
			out.value = in.value * 3;
			rd_pattern(out.bytes, sizeof(out.bytes), 100 + in.value, 0);
			ans[i] = answer_data(r, (int32_t)(1000 + in.value), &out, sizeof(out));
		}
		if (round == 2)
			break;
		/* The answers to this batch and the next batch in one call. */
		cr_assert_eq(rd_transact(b.fd, ans, n, BATCH, 0, &next), 0, "TRANSACT: %s", rd_errname(errno));
		cr_assert(next.rejected == 0 && next.failed == 0, "batch answers: rejected %u failed %u",
			  next.rejected, next.failed);
		t = next;
	}
	cr_assert_eq(seen, NAPPS, "all requests seen");
	for (int i = 0; i < NAPPS; i++) {
		struct dev_small out;

		app_join(apps[i]);
		expect_ret(apps[i], 1000 + i, 0, "each app gets its own answer");
		memcpy(&out, apps[i]->buf, sizeof(out));
		cr_assert_eq(out.value, (uint32_t)i * 3, "app %d out value %u", i, out.value);
		{
			uint8_t expect[sizeof(out.bytes)];

			rd_pattern(expect, sizeof(expect), 100 + (uint64_t)i, 0);
			cr_assert_eq(memcmp(out.bytes, expect, sizeof(expect)), 0, "app %d out bytes", i);
		}
	}
	cr_assert_eq(rd_stats(d).relayed, relayed + NAPPS, "stats.relayed counts %d requests", NAPPS);
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* ---- cancel --------------------------------------------------------------- */

/* Issue 19 B: an interrupt of a request the broker took is a question
 * (CANCEL), not an ending: the app waits for the broker's answer, which is
 * either "cancelled, nothing done" (-EINTR) or the completed result. */
Test(control, interrupted_app_gets_eintr_and_the_broker_a_cancel)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Cancel", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r, c;
	struct ringdev_stats before, after;
	struct broker b;
	struct app *a;
	uint64_t t0;

	broker_open(&b, d);
	before = rd_stats(d);

	/* Taken by the broker, then interrupted. */
	a = app_ioctl(d, fd, DEV_ECHO, 1);
	a->catch_sigusr1 = true;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	rd_wait_other(d, 1);
	kill(a->pid, SIGUSR1);
	c = broker_take(&b, RINGDEV_CTL_CANCEL);
	cr_assert_eq(c.ref, r.id, "CANCEL ref %llu names the interrupted request %llu", (unsigned long long)c.ref,
		     (unsigned long long)r.id);
	cr_assert_neq(c.id, r.id, "the CANCEL has its own id");
	cr_assert(child_alive(a->pid, 100), "the app waits for the broker's answer to the CANCEL");
	t0 = now_ms();
	broker_send1(&b, answer_for(&r, -EINTR), 0, 0, "cancelled, nothing done");
	app_join(a);
	expect_ret(a, -1, EINTR, "an interrupted relayed ioctl the broker cancelled");
	cr_assert_lt(atomic_load(&a->done_ms) - t0, KILL_LIMIT_MS, "EINTR at the answer (took %llu ms)",
		     (unsigned long long)(atomic_load(&a->done_ms) - t0));
	broker_send1(&b, answer_for(&r, 5), 1, 0, "a late answer to the cancelled request");
	broker_send1(&b, answer_for(&c, 0), 1, 0, "an answer to the CANCEL notice");
	after = rd_stats(d);
	cr_assert_eq(after.relay_rejected, before.relay_rejected + 2, "stats.relay_rejected: %llu -> %llu",
		     (unsigned long long)before.relay_rejected, (unsigned long long)after.relay_rejected);
	cr_assert_eq(after.relay_cancels, before.relay_cancels + 1, "stats.relay_cancels");
	cr_assert_eq(after.relay_failed, before.relay_failed, "stats.relay_failed unchanged");

	/* The broker had done the work when the CANCEL came: the app gets the
	 * result, not EINTR. */
	a = app_ioctl(d, fd, DEV_ECHO, 3);
	a->catch_sigusr1 = true;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	rd_wait_other(d, 1);
	kill(a->pid, SIGUSR1);
	c = broker_take(&b, RINGDEV_CTL_CANCEL);
	cr_assert_eq(c.ref, r.id);
	broker_send1(&b, answer_for(&r, 5), 0, 0, "the result of a cancelled request");
	app_join(a);
	expect_ret(a, 5, 0, "the completed result, after the CANCEL");

	/* SIGKILL of an app whose request the broker holds: the kernel waits
	 * for the answer, so it dies once the broker answers the CANCEL. */
	a = app_ioctl(d, fd, DEV_ECHO, 4);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	rd_wait_other(d, 1);
	kill(a->pid, SIGKILL);
	c = broker_take(&b, RINGDEV_CTL_CANCEL);
	cr_assert_eq(c.ref, r.id, "CANCEL for the killed app's request");
	broker_send1(&b, answer_for(&r, -EINTR), 0, 0, "the killed app's request cancelled");
	{
		int status;

		cr_assert(rd_wait_child(a->pid, KILL_LIMIT_MS, &status),
			  "an app killed while the broker holds its ioctl did not die within %d ms", KILL_LIMIT_MS);
		cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "it died of SIGKILL");
	}
	rd_wait_other(d, 0);

	/* Interrupted before any broker took it: it vanishes. */
	a = app_ioctl(d, fd, DEV_ECHO, 2);
	a->catch_sigusr1 = true;
	app_start(a);
	rd_wait_other(d, 1);
	kill(a->pid, SIGUSR1);
	app_join(a);
	expect_ret(a, -1, EINTR, "an interrupted ioctl nobody took yet");
	rd_wait_other(d, 0);
	broker_expect_none(&b, RINGDEV_CTL_IOCTL, "a request interrupted before it was taken");
	broker_expect_none(&b, RINGDEV_CTL_CANCEL, "a request interrupted before it was taken");

	/* The broker still works. */
	a = app_ioctl(d, fd, DEV_ECHO, 3);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r, 33), 0, 0, "answer a new request");
	app_join(a);
	expect_ret(a, 33, 0, "a relayed ioctl after the cancels");
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* ---- the broker goes away ------------------------------------------------- */

/* A broker in a child: allows OPEN/ATTACH (brokered, mapped to "BK"),
 * holds everything else unanswered, counts what it holds. */
struct holder {
	const struct rd_daemon *d;
	atomic_int connected;
	atomic_int held[8];             /* by request type */
	atomic_int transacts;           /* TRANSACT calls that returned */
	uint32_t timeout_ms;            /* of each TRANSACT */
	int err;
};

static int holder_main(void *arg)
{
	struct holder *h = arg;
	struct ringdev_ctl_transact t;
	struct ringdev_ctl_answer a[BATCH];
	uint32_t na = 0;
	int fd = rd_ctl_open(h->d);

	if (fd < 0) {
		h->err = errno;
		return 1;
	}
	atomic_store(&h->connected, 1);
	for (;;) {
		if (rd_transact(fd, a, na, BATCH, h->timeout_ms, &t) < 0) {
			if (errno == EINTR)
				continue;
			h->err = errno;
			return 2;
		}
		atomic_fetch_add(&h->transacts, 1);
		na = 0;
		for (uint32_t i = 0; i < t.nrequests; i++) {
			const struct ringdev_ctl_request *r = &t.requests[i];

			if (r->type == RINGDEV_CTL_OPEN || r->type == RINGDEV_CTL_ATTACH) {
				memset(&a[na], 0, sizeof(a[na]));
				a[na].id = r->id;
				a[na].flags = RINGDEV_ANSWER_BROKERED;
				snprintf(a[na].name, sizeof(a[na].name), "BK");
				na++;
			} else if (r->type < 8) {
				atomic_fetch_add(&h->held[r->type], 1);
			}
		}
	}
}

static void wait_held(struct holder *h, uint32_t type, int n)
{
	uint64_t deadline = now_ms() + RD_PARK_TIMEOUT_MS;

	while (atomic_load(&h->held[type]) < n && now_ms() < deadline && !h->err)
		pause_2ms();
	cr_assert_eq(atomic_load(&h->held[type]), n, "the broker holds %d %s requests, has %d (err %s)", n,
		     type_name(type), atomic_load(&h->held[type]), rd_errname(h->err));
}

/* Issue 19 B: a broker that ignores the CANCEL (as brokers before ABI 1.2
 * may) cannot keep the app: --cancel-timeout ends its call with EINTR,
 * RINGDEV_IOC_STATS_EXT counts it, and the answer that comes after is
 * refused and reported so. */
Test(control, an_unanswered_cancel_ends_at_the_cancel_timeout)
{
	const char *const args[] = { "--cancel-timeout", "300", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Bound", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r, c;
	struct ringdev_stats_ext x;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	a = app_ioctl(d, fd, DEV_ECHO, 1);
	a->catch_sigusr1 = true;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	rd_wait_other(d, 1);
	uint64_t t0 = now_ms();
	kill(a->pid, SIGUSR1);
	c = broker_take(&b, RINGDEV_CTL_CANCEL);
	cr_assert_eq(c.ref, r.id);
	app_join(a);
	uint64_t took = atomic_load(&a->done_ms) - t0;
	expect_ret(a, -1, EINTR, "an interrupted ioctl whose broker ignored the CANCEL");
	cr_assert(took >= 250 && took < 300 + KILL_LIMIT_MS, "ended at the bound (took %llu ms)",
		  (unsigned long long)took);
	cr_assert_eq(ioctl(sfd, RINGDEV_IOC_STATS_EXT, &x), 0, "RINGDEV_IOC_STATS_EXT: %s", rd_errname(errno));
	cr_assert_eq(x.relay_cancel_timeouts, 1, "counted");
	cr_assert_eq(ioctl(b.fd, RINGDEV_IOC_STATS_EXT, &x), 0, "RINGDEV_IOC_STATS_EXT on the control node: %s",
		     rd_errname(errno));
	broker_send1(&b, answer_for(&r, 5), 1, 0, "the answer after the bound");
	rd_wait_other(d, 0);
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

Test(control, killed_broker_ends_held_requests_with_econnreset)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	struct holder *h = rd_shared(sizeof(*h));
	struct app *reader, *writer, *ioctler, *apps[3];
	struct ringdev_ctl_request r;
	struct broker b;
	int fr, fw, fi, status;
	uint64_t t0, gone;
	pid_t pid;

	h->d = d;
	h->timeout_ms = 60000;
	pid = rd_spawn(holder_main, h, -1);
	wait_flag(&h->connected, 1, "the broker child holds the control node");
	/* Handles on the brokered pipe, opened through that broker. */
	fr = app_open(d, "BK", O_RDONLY);
	cr_assert_geq(fr, 0, "open BK for reading: %s", rd_errname(errno));
	fw = app_open(d, "BK", O_WRONLY);
	cr_assert_geq(fw, 0, "open BK for writing: %s", rd_errname(errno));
	fi = app_open(d, "BK", O_RDWR);
	cr_assert_geq(fi, 0, "open BK: %s", rd_errname(errno));
	gone = rd_stats(d).relay_broker_gone;

	reader = app_new(d, fr, 100);
	reader->op = APP_READ;
	reader->len = 100;
	writer = app_new(d, fw, 100);
	writer->op = APP_WRITE;
	writer->len = 100;
	ioctler = app_ioctl(d, fi, DEV_ECHO, 7);
	apps[0] = reader;
	apps[1] = writer;
	apps[2] = ioctler;
	for (int i = 0; i < 3; i++)
		app_start(apps[i]);
	wait_held(h, RINGDEV_CTL_READ, 1);
	wait_held(h, RINGDEV_CTL_WRITE, 1);
	wait_held(h, RINGDEV_CTL_IOCTL, 1);
	rd_wait_other(d, 4); /* the three apps and the broker's parked TRANSACT */

	t0 = now_ms();
	kill(pid, SIGKILL);
	cr_assert(rd_wait_child(pid, KILL_LIMIT_MS, &status), "the killed broker did not die within %d ms",
		  KILL_LIMIT_MS);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the broker died of SIGKILL");
	for (int i = 0; i < 3; i++) {
		static const char *const what[] = { "relayed READ", "relayed WRITE", "relayed IOCTL" };
		uint64_t took;

		app_join(apps[i]);
		took = atomic_load(&apps[i]->done_ms) - t0;
		expect_ret(apps[i], -1, ECONNRESET, what[i]);
		cr_assert_lt(took, KILL_LIMIT_MS, "%s returned %llu ms after the broker was killed", what[i],
			     (unsigned long long)took);
	}
	rd_assert_idle(d);
	cr_assert_eq(rd_stats(d).relay_broker_gone, gone + 3, "stats.relay_broker_gone counts the 3 requests");

	/* A new broker takes the node at once and serves. */
	broker_open(&b, d);
	ioctler = app_ioctl(d, fi, DEV_ECHO, 8);
	app_start(ioctler);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r, 8), 0, 0, "the new broker answers an IOCTL");
	app_join(ioctler);
	expect_ret(ioctler, 8, 0, "a relayed ioctl with the new broker");
	reader = app_new(d, fr, 100);
	reader->op = APP_READ;
	reader->len = 100;
	app_start(reader);
	r = broker_take(&b, RINGDEV_CTL_READ);
	broker_send1(&b, answer_data(&r, 2, "ok", 2), 0, 0, "the new broker answers a READ");
	app_join(reader);
	expect_ret(reader, 2, 0, "a read on the brokered pipe with the new broker");
	close(fr);
	close(fw);
	close(fi);
	broker_close(&b, d);
	end(d, sfd);
}

Test(control, broker_killed_in_a_parked_transact_dies)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	struct holder *h = rd_shared(sizeof(*h));
	struct broker b;
	int status;
	pid_t pid;

	h->d = d;
	h->timeout_ms = 60000;
	pid = rd_spawn(holder_main, h, -1);
	wait_flag(&h->connected, 1, "the broker child holds the control node");
	rd_wait_other(d, 1);
	cr_assert_eq(atomic_load(&h->transacts), 0, "its TRANSACT is parked, not returned");
	kill(pid, SIGKILL);
	cr_assert(rd_wait_child(pid, KILL_LIMIT_MS, &status),
		  "a broker killed while its TRANSACT is parked did not die within %d ms", KILL_LIMIT_MS);
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "it died of SIGKILL");
	rd_wait_broker(d, 0);
	rd_assert_idle(d);
	broker_open(&b, d);
	broker_close(&b, d);
	end(d, sfd);
}

Test(control, broker_restart_serves_again_and_old_ids_are_rejected)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Restart", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r1, r2, r3;
	uint64_t gone = rd_stats(d).relay_broker_gone;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	a = app_ioctl(d, fd, DEV_ECHO, 1);
	app_start(a);
	r1 = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r1, 11), 0, 0, "first broker answers");
	app_join(a);
	expect_ret(a, 11, 0, "first broker");

	/* A request taken and not answered when the broker closes: ECONNRESET. */
	a = app_ioctl(d, fd, DEV_ECHO, 3);
	app_start(a);
	r3 = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_close(&b, d);
	app_join(a);
	expect_ret(a, -1, ECONNRESET, "a request the closed broker held");
	cr_assert_eq(rd_stats(d).relay_broker_gone, gone + 1, "stats.relay_broker_gone");

	broker_open(&b, d);
	a = app_ioctl(d, fd, DEV_ECHO, 2);
	app_start(a);
	r2 = broker_take(&b, RINGDEV_CTL_IOCTL);
	cr_assert(r2.id != r1.id && r2.id != r3.id, "ids are unique for the daemon's life");
	broker_send1(&b, answer_for(&r2, 22), 0, 0, "second broker answers");
	app_join(a);
	expect_ret(a, 22, 0, "second broker");
	broker_send1(&b, answer_for(&r3, 0), 1, 0, "an answer to a request the previous broker took");
	broker_send1(&b, answer_for(&r1, 0), 1, 0, "an answer to a request answered before");
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* ---- bad answers -------------------------------------------------------- */

Test(control, unknown_and_duplicate_ids_are_rejected)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Ids", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r, rel;
	struct ringdev_ctl_answer two[2];
	struct ringdev_stats before = rd_stats(d), after;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	memset(&r, 0, sizeof(r));
	r.id = UINT64_MAX - 7;
	broker_send1(&b, answer_for(&r, 0), 1, 0, "an unknown id");
	r.id = 0;
	broker_send1(&b, answer_for(&r, 0), 1, 0, "id 0");

	a = app_ioctl(d, fd, DEV_ECHO, 1);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	two[0] = answer_for(&r, 1);
	two[1] = answer_for(&r, 2);
	broker_send(&b, two, 2, 1, 0, "the same id twice in one TRANSACT");
	app_join(a);
	expect_ret(a, 1, 0, "the first of two answers counts");
	broker_send1(&b, answer_for(&r, 3), 1, 0, "the same id again later");

	/* An answer to a notice. */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Ids");
	a->oflags = O_RDONLY;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	broker_send1(&b, answer_for(&r, 0), 0, 0, "allow an open");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "open: %s", rd_errname(a->open_err));
	rel = broker_take(&b, RINGDEV_CTL_RELEASE);
	broker_send1(&b, answer_for(&rel, 0), 1, 0, "an answer to a RELEASE notice");

	after = rd_stats(d);
	cr_assert_eq(after.relay_rejected, before.relay_rejected + 5, "stats.relay_rejected: %llu -> %llu",
		     (unsigned long long)before.relay_rejected, (unsigned long long)after.relay_rejected);
	cr_assert_eq(after.relay_failed, before.relay_failed, "nothing malformed");
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* One malformed IOCTL answer: what to change in an otherwise good answer. */
struct bad_ioctl {
	const char *what;
	unsigned long cmd;
	int32_t result;
	uint32_t flags;
	uint32_t size;
	uint32_t stage;                 /* bytes STAGEd first */
	uint64_t reserved;              /* put in reserved[3] */
};

static const struct bad_ioctl bad_ioctls[] = {
	{ "result -5000", DEV_ECHO, -5000, 0, 0, 0, 0 },
	{ "result -4096", DEV_ECHO, -4096, 0, 0, 0, 0 },
	/* The kernel refuses to carry an errno past 511: the app would wait
	 * forever, unkillable, had the answer been passed on. */
	{ "result -512", DEV_ECHO, -512, 0, 0, 0, 0 },
	{ "result -600", DEV_ECHO, -600, 0, 0, 0, 0 },
	{ "result -999", DEV_ECHO, -999, 0, 0, 0, 0 },
	{ "result -1000", DEV_ECHO, -1000, 0, 0, 0, 0 },
	{ "result INT32_MIN", DEV_ECHO, INT32_MIN, 0, 0, 0, 0 },
	{ "an unknown flag bit 0x1000", DEV_ECHO, 0, 0x1000, 0, 0, 0 },
	{ "GRANT on an IOCTL", DEV_ECHO, 0, RINGDEV_ANSWER_GRANT, 0, 0, 0 },
	{ "BUILTIN on an IOCTL", DEV_ECHO, 0, RINGDEV_ANSWER_BUILTIN, 0, 0, 0 },
	{ "an unknown flag bit 0x80000000", DEV_ECHO, 0, 0x80000000u, 0, 0, 0 },
	{ "nonzero reserved", DEV_ECHO, 0, 0, 0, 0, 1 },
	{ "size 65 > out_size 64", DEV_ECHO, 0, 0, 65, 0, 0 },
	{ "size 1 > out_size 0 (_IOW)", DEV_PUT, 0, 0, 1, 0, 0 },
	{ "size 2000 > INLINE without STAGED", DEV_BIG, 0, 0, 2000, 0, 0 },
	{ "STAGED with nothing staged", DEV_BIG, 0, RINGDEV_ANSWER_STAGED, 2000, 0, 0 },
	{ "STAGED with fewer bytes staged than size", DEV_BIG, 0, RINGDEV_ANSWER_STAGED, 2000, 1000, 0 },
};

Test(control, malformed_ioctl_answers_fail_only_their_request)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Bad", O_RDWR, 0, 0, 0);
	static unsigned char staged[8192];
	struct ringdev_stats before = rd_stats(d), after;
	const size_t n = sizeof(bad_ioctls) / sizeof(bad_ioctls[0]);
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	for (size_t i = 0; i < n; i++) {
		const struct bad_ioctl *c = &bad_ioctls[i];
		struct ringdev_ctl_answer ans;

		a = app_ioctl(d, fd, c->cmd, (uint32_t)i);
		app_start(a);
		r = broker_take(&b, RINGDEV_CTL_IOCTL);
		if (c->stage)
			stage_all(&b, &r, staged, c->stage, c->stage);
		ans = answer_for(&r, c->result);
		ans.flags = c->flags;
		ans.size = c->size;
		ans.reserved[3] = c->reserved;
		broker_send1(&b, ans, 0, 1, c->what);
		app_join(a);
		expect_ret(a, -1, EIO, c->what);
		broker_send1(&b, answer_for(&r, 0), 1, 0, "a good answer after the malformed one");
	}
	after = rd_stats(d);
	cr_assert_eq(after.relay_failed, before.relay_failed + n, "stats.relay_failed: %llu -> %llu",
		     (unsigned long long)before.relay_failed, (unsigned long long)after.relay_failed);

	/* The daemon and the broker go on. */
	a = app_ioctl(d, fd, DEV_ECHO, 99);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r, 99), 0, 0, "a good answer");
	app_join(a);
	expect_ret(a, 99, 0, "after malformed answers");
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

struct bad_rw {
	const char *what;
	enum app_op op;
	size_t len;                     /* bytes the app reads or writes */
	int32_t result;
	uint32_t size;                  /* answer size (inline bytes) */
};

static const struct bad_rw bad_rws[] = {
	{ "READ result 11 > size 10", APP_READ, 10, 11, 11 },
	{ "READ answer size 4 != result 5", APP_READ, 10, 5, 4 },
	{ "READ result 2000, size 2000 inline", APP_READ, 3000, 2000, 2000 },
	{ "READ result -5000", APP_READ, 10, -5000, 0 },
	{ "WRITE result 11 > size 10", APP_WRITE, 10, 11, 0 },
	{ "WRITE result -4096", APP_WRITE, 10, -4096, 0 },
	{ "READ result -600", APP_READ, 10, -600, 0 },
	{ "WRITE result -512", APP_WRITE, 10, -512, 0 },
};

Test(control, malformed_read_and_write_answers_fail_only_their_request)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = open_served(d, "Brw", O_RDWR, RINGDEV_ANSWER_BROKERED);
	struct ringdev_stats before = rd_stats(d), after;
	const size_t n = sizeof(bad_rws) / sizeof(bad_rws[0]);
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	for (size_t i = 0; i < n; i++) {
		const struct bad_rw *c = &bad_rws[i];
		struct ringdev_ctl_answer ans;

		a = app_new(d, fd, c->len);
		a->op = c->op;
		a->len = c->len;
		app_start(a);
		r = broker_take(&b, c->op == APP_READ ? RINGDEV_CTL_READ : RINGDEV_CTL_WRITE);
		cr_assert_eq(r.size, c->len, "%s: request size", c->what);
		ans = answer_for(&r, c->result);
		ans.size = c->size;
		broker_send1(&b, ans, 0, 1, c->what);
		app_join(a);
		expect_ret(a, -1, EIO, c->what);
	}
	after = rd_stats(d);
	cr_assert_eq(after.relay_failed, before.relay_failed + n, "stats.relay_failed");

	a = app_new(d, fd, 10);
	a->op = APP_WRITE;
	a->len = 10;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_WRITE);
	broker_send1(&b, answer_for(&r, 10), 0, 0, "a good WRITE answer");
	app_join(a);
	expect_ret(a, 10, 0, "a write after malformed answers");
	close(fd);
	broker_close(&b, d);
	end(d, sfd);
}

struct bad_open {
	const char *what;
	bool attach;                    /* an ATTACH request, else OPEN */
	int32_t result;
	const char *name;
	uint32_t flags;
	uint32_t kind, policy, mode;
	uint64_t capacity;
};

static const struct bad_open bad_opens[] = {
	{ "OPEN answer name \".bad\"", false, 0, ".bad", 0, 0, 0, 0, 0 },
	{ "OPEN answer name \"a/b\"", false, 0, "a/b", 0, 0, 0, 0, 0 },
	{ "OPEN SETTINGS kind 9", false, 0, "Sk", RINGDEV_ANSWER_SETTINGS, 9, 1, 0600, 4096 },
	{ "OPEN SETTINGS capacity 1", false, 0, "Sc", RINGDEV_ANSWER_SETTINGS, 1, 1, 0600, 1 },
	{ "OPEN SETTINGS capacity beyond the maximum", false, 0, "Sm", RINGDEV_ANSWER_SETTINGS, 1, 1, 0600,
	  RINGDEV_CAPACITY_MAX + 1 },
	{ "OPEN SETTINGS mode 010000", false, 0, "So", RINGDEV_ANSWER_SETTINGS, 1, 1, 010000, 4096 },
	{ "OPEN result -5000", false, -5000, "", 0, 0, 0, 0, 0 },
	{ "OPEN result -600", false, -600, "", 0, 0, 0, 0, 0 },
	{ "ATTACH result -999", true, -999, "", 0, 0, 0, 0, 0 },
	{ "ATTACH SETTINGS policy 9", true, 0, "", RINGDEV_ANSWER_SETTINGS, 1, 9, 0600, 4096 },
	{ "ATTACH unknown flag 0x1000", true, 0, "", 0x1000, 0, 0, 0, 0 },
};

Test(control, malformed_open_and_attach_answers_fail_with_eio)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Here", O_RDWR, 0, 0, 0);
	struct ringdev_stats before = rd_stats(d), after;
	const size_t n = sizeof(bad_opens) / sizeof(bad_opens[0]);
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	for (size_t i = 0; i < n; i++) {
		const struct bad_open *c = &bad_opens[i];
		struct ringdev_ctl_answer ans;

		if (c->attach) {
			a = app_new(d, fd, 0);
			a->op = APP_ATTACH;
			snprintf(a->attach.name, sizeof(a->attach.name), "Att%zu", i);
			a->attach.flags = RINGDEV_ATTACH_CREATE;
		} else {
			a = app_new(d, -1, 0);
			snprintf(a->pipe, sizeof(a->pipe), "Open%zu", i);
			a->oflags = O_RDWR;
		}
		app_start(a);
		r = broker_take(&b, c->attach ? RINGDEV_CTL_ATTACH : RINGDEV_CTL_OPEN);
		ans = answer_for(&r, c->result);
		snprintf(ans.name, sizeof(ans.name), "%s", c->name);
		ans.flags = c->flags;
		ans.kind = c->kind;
		ans.policy = c->policy;
		ans.mode = c->mode;
		ans.capacity = c->capacity;
		broker_send1(&b, ans, 0, 1, c->what);
		app_join(a);
		if (c->attach)
			expect_ret(a, -1, EIO, c->what);
		else
			cr_assert_eq(a->open_err, EIO, "%s: the open fails with EIO, got %s", c->what,
				     rd_errname(a->open_err));
	}
	after = rd_stats(d);
	cr_assert_eq(after.relay_failed, before.relay_failed + n, "stats.relay_failed");
	if (!d->cuse) {
		/* The failed O_CREAT opens left no pipe and no stuck lookup. */
		char cmd[RD_PATH_SIZE + 64], path[RD_PATH_SIZE + 16];
		struct stat st;
		snprintf(cmd, sizeof(cmd), "ls -l '%s' >/dev/null", d->mount);
		cr_assert_eq(rd_sh(cmd), 0, "ls of the mount after the failed opens");
		for (size_t i = 0; i < n; i++) {
			snprintf(path, sizeof(path), "%s/Open%zu", d->mount, i);
			if (!bad_opens[i].attach)
				rd_assert_errno(stat(path, &st), ENOENT, "a failed O_CREAT open leaves no pipe");
		}
	}
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* ---- TRANSACT itself -------------------------------------------------------- */

struct parked_transact {
	int fd;
	struct ringdev_ctl_answer answer;
	uint32_t nanswers;
	uint32_t timeout_ms;
	int ret;
	int err;
	struct ringdev_ctl_transact t;
};

static void *transact_main(void *arg)
{
	struct parked_transact *p = arg;

	p->ret = rd_transact(p->fd, &p->answer, p->nanswers, BATCH, p->timeout_ms, &p->t);
	p->err = p->ret < 0 ? errno : 0;
	return NULL;
}

static void join_within(pthread_t th, int seconds, const char *what)
{
	struct timespec limit;

	clock_gettime(CLOCK_REALTIME, &limit);
	limit.tv_sec += seconds;
	cr_assert_eq(pthread_timedjoin_np(th, NULL, &limit), 0, "%s: the thread did not return", what);
}

Test(control, transact_checks_its_arguments_and_honours_its_timeout)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Tx", O_RDWR, 0, 0, 0);
	static struct ringdev_ctl_transact raw;
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;
	uint64_t t0, took;

	broker_open(&b, d);

	/* Bad arguments: EINVAL. */
	memset(&raw, 0, sizeof(raw));
	raw.nanswers = BATCH + 1;
	rd_assert_errno(ioctl(b.fd, RINGDEV_IOC_CTL_TRANSACT, &raw), EINVAL, "nanswers > RINGDEV_CTL_BATCH");
	memset(&raw, 0, sizeof(raw));
	raw.max_requests = BATCH + 1;
	rd_assert_errno(ioctl(b.fd, RINGDEV_IOC_CTL_TRANSACT, &raw), EINVAL, "max_requests > RINGDEV_CTL_BATCH");
	memset(&raw, 0, sizeof(raw));
	raw.reserved[0] = 1;
	rd_assert_errno(ioctl(b.fd, RINGDEV_IOC_CTL_TRANSACT, &raw), EINVAL, "nonzero reserved");

	/* Nothing pending: timeout 0 returns at once, 200 ms after about that. */
	t0 = now_ms();
	cr_assert_eq(rd_transact(b.fd, NULL, 0, BATCH, 0, &raw), 0, "TRANSACT timeout 0: %s", rd_errname(errno));
	took = now_ms() - t0;
	cr_assert_eq(raw.nrequests, 0, "nothing pending: nrequests 0");
	cr_assert_lt(took, 1000, "timeout 0 returns at once (took %llu ms)", (unsigned long long)took);
	t0 = now_ms();
	cr_assert_eq(rd_transact(b.fd, NULL, 0, BATCH, 200, &raw), 0, "TRANSACT timeout 200: %s", rd_errname(errno));
	took = now_ms() - t0;
	cr_assert_eq(raw.nrequests, 0, "nothing pending after 200 ms: nrequests 0");
	cr_assert_lt(took, RD_PARK_TIMEOUT_MS, "timeout 200 returned (after %llu ms)", (unsigned long long)took);

	/* A call refused with EINVAL does nothing: it neither takes nor answers. */
	a = app_ioctl(d, fd, DEV_ECHO, 1);
	app_start(a);
	rd_wait_other(d, 1);
	memset(&raw, 0, sizeof(raw));
	raw.max_requests = 1;
	raw.reserved0 = 7;
	rd_assert_errno(ioctl(b.fd, RINGDEV_IOC_CTL_TRANSACT, &raw), EINVAL, "nonzero reserved, a request pending");
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	memset(&raw, 0, sizeof(raw));
	raw.answers[0] = answer_for(&r, 9);
	raw.nanswers = 1;
	raw.reserved[1] = 1;
	rd_assert_errno(ioctl(b.fd, RINGDEV_IOC_CTL_TRANSACT, &raw), EINVAL, "an answer with nonzero reserved");
	raw.reserved[1] = 0;
	raw.nanswers = BATCH + 1;
	rd_assert_errno(ioctl(b.fd, RINGDEV_IOC_CTL_TRANSACT, &raw), EINVAL, "an answer with nanswers too big");
	rd_wait_other(d, 1);
	cr_assert_eq(atomic_load(&a->done_ms), 0, "the app still waits: the refused calls answered nothing");
	broker_send1(&b, answer_for(&r, 9), 0, 0, "the answer in a good call");
	app_join(a);
	expect_ret(a, 9, 0, "the app gets the good call's answer");
	rd_assert_idle(d);
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

Test(control, several_threads_transact_and_a_signal_ends_a_parked_one)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Threads", O_RDWR, 0, 0, 0);
	static struct parked_transact p[3];
	struct ringdev_ctl_answer ans[2];
	struct ringdev_ctl_request got[2 * BATCH], r;
	struct app *a[3];
	unsigned ngot = 0;
	pthread_t th[3];
	struct broker b;

	catch_sigusr1();
	broker_open(&b, d);

	/* Two parked TRANSACTs count in parked_other; two requests reach them. */
	for (int i = 0; i < 2; i++) {
		p[i].fd = b.fd;
		p[i].timeout_ms = 3000;
		cr_assert_eq(pthread_create(&th[i], NULL, transact_main, &p[i]), 0, "pthread_create");
	}
	rd_wait_other(d, 2);
	for (int i = 0; i < 2; i++) {
		a[i] = app_ioctl(d, fd, DEV_ECHO, (uint32_t)i);
		app_start(a[i]);
	}
	for (int i = 0; i < 2; i++) {
		join_within(th[i], 20, "a parked TRANSACT");
		cr_assert_eq(p[i].ret, 0, "thread %d TRANSACT: %s", i, rd_errname(p[i].err));
		for (uint32_t j = 0; j < p[i].t.nrequests; j++)
			got[ngot++] = p[i].t.requests[j];
	}
	cr_assert_eq(ngot, 2, "the two requests reached the parked TRANSACTs (got %u)", ngot);
	cr_assert(got[0].type == RINGDEV_CTL_IOCTL && got[1].type == RINGDEV_CTL_IOCTL && got[0].id != got[1].id,
		  "two distinct IOCTL requests, each to one thread");
	for (int i = 0; i < 2; i++) {
		struct dev_small in;

		memcpy(&in, got[i].data, sizeof(in));
		ans[i] = answer_for(&got[i], (int32_t)(50 + in.value));
	}
	broker_send(&b, ans, 2, 0, 0, "answer both");
	for (int i = 0; i < 2; i++) {
		app_join(a[i]);
		expect_ret(a[i], 50 + i, 0, "each app its answer");
	}

	/* A parked TRANSACT carrying an answer: the answer is applied, then a
	 * signal ends the call, which returns 0 with no request (ABI 1.2: not
	 * EINTR, so the broker still learns which answers were refused). */
	a[2] = app_ioctl(d, fd, DEV_ECHO, 2);
	app_start(a[2]);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	p[2].fd = b.fd;
	p[2].answer = answer_for(&r, 77);
	p[2].nanswers = 1;
	p[2].timeout_ms = 30000;
	cr_assert_eq(pthread_create(&th[2], NULL, transact_main, &p[2]), 0, "pthread_create");
	app_join(a[2]);
	expect_ret(a[2], 77, 0, "the answer of the parked TRANSACT was applied");
	rd_wait_other(d, 1);
	pthread_kill(th[2], SIGUSR1);
	join_within(th[2], 5, "a signalled TRANSACT");
	cr_assert(p[2].ret == 0, "a signal ends a parked TRANSACT with 0, got %d (%s)", p[2].ret,
		  rd_errname(p[2].err));
	cr_assert_eq(p[2].t.nrequests, 0);
	rd_wait_other(d, 0);
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* ---- without a broker ------------------------------------------------------- */

Test(control, require_broker_times_out_without_a_broker)
{
	const char *const args[] = { "--require-broker", "--broker-timeout", "300", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = keep_stats(d);
	int fd = open_served(d, "Dev", O_RDWR, 0);
	struct ringdev_stats before = rd_stats(d), after;
	struct app *a;
	uint64_t took;

	cr_assert_eq(before.broker_connected, 0, "no broker");

	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Late");
	a->oflags = O_RDWR;
	app_start(a);
	app_join(a);
	took = atomic_load(&a->done_ms) - a->start_ms;
	cr_assert_eq(a->open_err, ETIMEDOUT, "an open with no broker: expected ETIMEDOUT, got %s",
		     rd_errname(a->open_err));
	cr_assert(took >= 250 && took < RD_PARK_TIMEOUT_MS, "it failed after --broker-timeout 300 (took %llu ms)",
		  (unsigned long long)took);
	cr_assert_eq(rd_stats(d).relay_timeouts, before.relay_timeouts + 1, "stats.relay_timeouts");

	a = app_ioctl(d, fd, DEV_ECHO, 1);
	app_start(a);
	app_join(a);
	took = atomic_load(&a->done_ms) - a->start_ms;
	expect_ret(a, -1, ETIMEDOUT, "a relayed ioctl with no broker");
	cr_assert(took >= 250, "after the timeout (took %llu ms)", (unsigned long long)took);

	a = app_new(d, fd, 0);
	a->op = APP_ATTACH;
	snprintf(a->attach.name, sizeof(a->attach.name), "Elsewhere");
	a->attach.flags = RINGDEV_ATTACH_CREATE;
	app_start(a);
	app_join(a);
	expect_ret(a, -1, ETIMEDOUT, "an ATTACH with no broker");
	after = rd_stats(d);
	cr_assert_eq(after.relay_timeouts, before.relay_timeouts + 3, "stats.relay_timeouts: %llu -> %llu",
		     (unsigned long long)before.relay_timeouts, (unsigned long long)after.relay_timeouts);
	rd_assert_idle(d);
	close(fd);
	end(d, sfd);
}

Test(control, require_broker_keeps_requests_for_the_next_broker)
{
	const char *const args[] = { "--require-broker", "--broker-timeout", "20000", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = keep_stats(d);
	int fd = open_served(d, "Dev", O_RDWR, 0);
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;

	/* Waiting while no broker is there, taken by the one that comes. */
	a = app_ioctl(d, fd, DEV_ECHO, 1);
	app_start(a);
	rd_wait_other(d, 1);
	broker_open(&b, d);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r, 41), 0, 0, "the new broker answers the queued request");
	app_join(a);
	expect_ret(a, 41, 0, "a request queued before the broker came");

	/* Queued, not taken, when the broker leaves: it stays for the next one. */
	a = app_ioctl(d, fd, DEV_ECHO, 2);
	app_start(a);
	rd_wait_other(d, 1);
	broker_close(&b, d);
	rd_wait_other(d, 1);
	cr_assert_eq(atomic_load(&a->done_ms), 0, "a request no broker took survives the broker's close");
	broker_open(&b, d);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r, 42), 0, 0, "the next broker answers it");
	app_join(a);
	expect_ret(a, 42, 0, "a request kept for the next broker");
	broker_close(&b, d);
	close(fd);
	end(d, sfd);
}

struct orphan_app {
	const struct rd_daemon *d;
	atomic_int opened;
	atomic_int go;
	int open_err;
	long ret[3];
	int err[3];
};

static int orphan_app_main(void *arg)
{
	struct orphan_app *s = arg;
	struct dev_small small;
	char buf[16];
	int fd = app_open(s->d, "Bro", O_RDWR);

	if (fd < 0) {
		s->open_err = errno;
		atomic_store(&s->opened, -1);
		return 0;
	}
	atomic_store(&s->opened, 1);
	for (int i = 0; i < 30000 && !atomic_load(&s->go); i++)
		usleep(1000);
	s->ret[0] = read(fd, buf, sizeof(buf));
	s->err[0] = s->ret[0] < 0 ? errno : 0;
	s->ret[1] = write(fd, "0123456789", 10);
	s->err[1] = s->ret[1] < 0 ? errno : 0;
	memset(&small, 0, sizeof(small));
	s->ret[2] = ioctl(fd, DEV_ECHO, &small);
	s->err[2] = s->ret[2] < 0 ? errno : 0;
	close(fd);
	return 0;
}

Test(control, without_a_broker_the_builtin_policy_decides)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Plain", O_RDWR, 0, 0, 0);
	struct orphan_app *s = rd_shared(sizeof(*s));
	struct ringdev_ctl_request r;
	struct ringdev_ctl_answer ans;
	struct dev_small small;
	struct broker b;
	pid_t pid;
	int other;

	memset(&small, 0, sizeof(small));
	rd_assert_errno(ioctl(fd, DEV_ECHO, &small), ENOTTY, "a device-specific ioctl with no broker");
	cr_assert_eq(rd_stats(d).relayed, 0, "nothing relayed without a broker");

	/* A pipe becomes brokered through a broker's answer... */
	s->d = d;
	broker_open(&b, d);
	pid = rd_spawn(orphan_app_main, s, -1);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_BROKERED;
	snprintf(ans.name, sizeof(ans.name), "Bro");
	broker_send1(&b, ans, 0, 0, "allow, brokered");
	wait_flag(&s->opened, 1, "the app opened the brokered pipe");
	/* ...and keeps being one when the broker is gone. */
	broker_close(&b, d);
	atomic_store(&s->go, 1);
	cr_assert_eq(rd_join(pid), 0, "app exit");
	cr_assert(s->ret[0] == -1 && s->err[0] == ENOTCONN, "read on a brokered pipe, no broker: got %ld (%s)",
		  s->ret[0], rd_errname(s->err[0]));
	cr_assert(s->ret[1] == -1 && s->err[1] == ENOTCONN, "write on a brokered pipe, no broker: got %ld (%s)",
		  s->ret[1], rd_errname(s->err[1]));
	cr_assert(s->ret[2] == -1 && s->err[2] == ENOTTY, "device ioctl, no broker: got %ld (%s)", s->ret[2],
		  rd_errname(s->err[2]));

	/* Opens are decided by the mode bits again. */
	other = rd_open(d, "Plain", O_RDONLY | O_NONBLOCK, 0);
	cr_assert_geq(other, 0, "open with no broker (root, mode bits): %s", rd_errname(errno));
	close(other);
	rd_close(d, fd);
	end(d, sfd);
}

Test(control, requests_no_broker_took_get_the_builtin_policy_when_it_leaves)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Q", O_RDWR, 0, 0, 0);
	int bfd = open_served(d, "QB", O_RDWR, RINGDEV_ANSWER_BROKERED);
	uint64_t gone = rd_stats(d).relay_broker_gone, t0;
	struct app *apps[3];
	struct broker b;

	broker_open(&b, d);
	apps[0] = app_ioctl(d, fd, DEV_ECHO, 1);
	apps[1] = app_new(d, -1, 0);
	snprintf(apps[1]->pipe, sizeof(apps[1]->pipe), "Q");
	apps[1]->oflags = O_RDONLY;
	apps[2] = app_new(d, bfd, 10);
	apps[2]->op = APP_READ;
	apps[2]->len = 10;
	for (int i = 0; i < 3; i++)
		app_start(apps[i]);
	rd_wait_other(d, 3); /* queued; the broker takes nothing */
	t0 = now_ms();
	broker_close(&b, d);
	for (int i = 0; i < 3; i++) {
		app_join(apps[i]);
		cr_assert_lt(atomic_load(&apps[i]->done_ms) - t0, KILL_LIMIT_MS,
			     "app %d was decided at once when the broker left (took %llu ms)", i,
			     (unsigned long long)(atomic_load(&apps[i]->done_ms) - t0));
	}
	expect_ret(apps[0], -1, ENOTTY, "a queued device ioctl when the broker leaves");
	cr_assert_eq(apps[1]->open_err, 0, "a queued open when the broker leaves: built-in policy allows it, got %s",
		     rd_errname(apps[1]->open_err));
	cr_assert_str_eq(apps[1]->info.name, d->cuse ? "default" : "Q", "attached as asked");
	expect_ret(apps[2], -1, ENOTCONN, "a queued read on a brokered pipe when the broker leaves");
	cr_assert_eq(rd_stats(d).relay_broker_gone, gone, "requests no broker took are not counted as broker gone");
	close(bfd);
	rd_close(d, fd);
	end(d, sfd);
}

Test(control, broker_timeout_applies_only_until_a_broker_takes_the_request)
{
	const char *const args[] = { "--broker-timeout", "300", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Slow", O_RDWR, 0, 0, 0);
	uint64_t timeouts = rd_stats(d).relay_timeouts, took;
	struct ringdev_ctl_request r;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	/* A broker that does not TRANSACT: the request is never taken. */
	a = app_ioctl(d, fd, DEV_ECHO, 1);
	app_start(a);
	app_join(a);
	took = atomic_load(&a->done_ms) - a->start_ms;
	expect_ret(a, -1, ETIMEDOUT, "a request no broker took within --broker-timeout");
	cr_assert(took >= 250 && took < RD_PARK_TIMEOUT_MS, "after --broker-timeout 300 (took %llu ms)",
		  (unsigned long long)took);
	cr_assert_eq(rd_stats(d).relay_timeouts, timeouts + 1, "stats.relay_timeouts");
	broker_expect_none(&b, RINGDEV_CTL_IOCTL, "a timed-out request");

	/* Taken: it waits for the answer however long that takes.  (Showing
	 * that something does not happen needs a wait: three timeouts.) */
	a = app_ioctl(d, fd, DEV_ECHO, 2);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	usleep(900 * 1000);
	cr_assert_eq(atomic_load(&a->done_ms), 0, "a taken request does not time out");
	rd_wait_other(d, 1);
	broker_send1(&b, answer_for(&r, 12), 0, 0, "a late but valid answer");
	app_join(a);
	expect_ret(a, 12, 0, "the answer after three timeouts");
	cr_assert_eq(rd_stats(d).relay_timeouts, timeouts + 1, "no second timeout");
	broker_close(&b, d);
	rd_close(d, fd);
	end(d, sfd);
}

/* ---- regressions from outside testing (issue 8) --------------------------- */

/* A handle with a relayed ATTACH and a relayed IOCTL, neither taken, when
 * the broker closes the control node: the built-in policy decides both
 * (the ATTACH moves the handle, the IOCTL gets ENOTTY) and the daemon
 * serves on. It used to walk a saved list of requests while the built-in
 * ATTACH freed the IOCTL on it: SIGSEGV. */
Test(control, broker_gone_with_an_attach_and_an_ioctl_pending_decides_both)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Start", O_RDWR, 0, 0, 0);
	struct broker b;

	/* Two rounds, the ATTACH first and last among three IOCTLs, so that
	 * whatever order the daemon walks them in, an ATTACH comes before an
	 * IOCTL of the same handle at least once. */
	for (int round = 0; round < 2; round++) {
		struct app *att, *io[3];
		uint64_t queued = 0;

		broker_open(&b, d);
		att = app_new(d, fd, 0);
		att->op = APP_ATTACH;
		snprintf(att->attach.name, sizeof(att->attach.name), "Moved%d", round);
		att->attach.flags = RINGDEV_ATTACH_CREATE;
		if (round == 0) {
			app_start(att);
			rd_wait_other(d, ++queued);
		}
		for (int i = 0; i < 3; i++) {
			io[i] = app_ioctl(d, fd, DEV_ECHO, (uint32_t)i);
			app_start(io[i]);
			rd_wait_other(d, ++queued);
		}
		if (round == 1) {
			app_start(att);
			rd_wait_other(d, ++queued);
		}
		broker_close(&b, d);
		app_join(att);
		expect_ret(att, 0, 0, "the ATTACH, decided by the built-in policy");
		cr_assert_str_eq(att->info.name, att->attach.name, "the handle moved");
		for (int i = 0; i < 3; i++) {
			app_join(io[i]);
			expect_ret(io[i], -1, ENOTTY, "an IOCTL, decided by the built-in policy");
		}
		struct ringdev_stats st = rd_stats(d);
		cr_assert_eq(st.broker_connected, 0);
		cr_assert_eq(st.parked_total, 0, "nothing left parked");
	}
	rd_close(d, fd);
	end(d, sfd);
}

struct ctl_poller {
	int fd;
	int ret;
	short revents;
};

static int ctl_poller_main(void *arg)
{
	struct ctl_poller *p = arg;
	struct pollfd pfd = { .fd = p->fd, .events = POLLIN };
	/* No timeout of its own in the product; here a hang limit only. */
	p->ret = poll(&pfd, 1, RD_CHILD_TIMEOUT_MS);
	p->revents = pfd.revents;
	return 0;
}

/* A broker polling the control node wakes when a request is queued. */
Test(control, poll_on_the_control_node_wakes_when_a_request_is_queued)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int fd = rd_create(d, "Pol", O_RDWR, 0, 0, 0);
	struct ctl_poller *p = rd_shared(sizeof(*p));
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	struct pollfd pfd = { .fd = b.fd, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "nothing queued: the control node is not readable");
	p->fd = b.fd;
	pid_t pid = rd_spawn(ctl_poller_main, p, b.fd);
	rd_wait_pollers(d, 1);
	a = app_ioctl(d, fd, DEV_ECHO, 5);
	app_start(a);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert(p->ret == 1 && (p->revents & POLLIN), "poll woke with POLLIN: ret %d revents %#x", p->ret,
		  (unsigned)p->revents);
	struct ringdev_ctl_request r = broker_take(&b, RINGDEV_CTL_IOCTL);
	broker_send1(&b, answer_for(&r, 5), 0, 0, "answer the ioctl");
	app_join(a);
	expect_ret(a, 5, 0, "the polled-for ioctl");
	broker_close(&b, d);
	cr_assert_eq(rd_stats(d).pollers, 0, "the broker's poll handle went with it");
	rd_close(d, fd);
	end(d, sfd);
}

struct lister {
	const char *mount;
	int ls_err, stat_err;
};

static int lister_main(void *arg)
{
	struct lister *l = arg;
	char path[RD_PATH_SIZE + 16];
	struct stat st;
	DIR *dir = opendir(l->mount);
	if (!dir) {
		l->ls_err = errno;
		return 0;
	}
	while (readdir(dir))
		;
	closedir(dir);
	snprintf(path, sizeof(path), "%s/NotThere", l->mount);
	l->stat_err = stat(path, &st) < 0 ? errno : 0;
	return 0;
}

/* While the broker holds one app's O_CREAT open on the mount, everybody
 * else's listing and lookups answer (the kernel held the directory lock
 * for the whole of a FUSE create; now only MKNOD runs under it). */
Test(control, a_relayed_create_does_not_freeze_the_namespace)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Slow");
	a->oflags = O_RDWR;
	app_start(a);
	struct ringdev_ctl_request r = broker_take(&b, RINGDEV_CTL_OPEN);
	if (!d->cuse) {
		struct lister *l = rd_shared(sizeof(*l));
		int status;
		l->mount = d->mount;
		pid_t pid = rd_spawn(lister_main, l, -1);
		bool ended = rd_wait_child(pid, RD_PARK_TIMEOUT_MS, &status);
		if (!ended)
			kill(pid, SIGKILL);
		cr_assert(ended, "ls and stat of the mount wait while the broker holds another app's create");
		cr_assert_eq(l->ls_err, 0, "ls: %s", rd_errname(l->ls_err));
		cr_assert_eq(l->stat_err, ENOENT, "stat of a new name: %s", rd_errname(l->stat_err));
	}
	broker_send1(&b, answer_for(&r, 0), 0, 0, "allow the create");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "the held open: %s", rd_errname(a->open_err));
	broker_close(&b, d);
	end(d, sfd);
}

/* Pipes a broker's answers create count against the same per-uid limits
 * as any other pipe of that user. */
Test(control, pipes_made_by_answers_count_against_the_per_uid_limit)
{
	const char *const args[] = { "--max-pipes-per-uid", "2", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = keep_stats(d);
	int inbox = d->cuse ? -1 : rd_create(d, "Inbox", O_RDWR, 0, 0, 0);
	struct broker b;

	if (inbox >= 0)
		cr_assert_eq(rd_set_config(inbox, RINGDEV_SET_MODE, 0, 0, 0666, 0), 0);
	broker_open(&b, d);
	for (int i = 0; i < 3; i++) {
		struct app *a = app_new(d, -1, 1);
		snprintf(a->pipe, sizeof(a->pipe), "Inbox");
		a->oflags = O_WRONLY;
		a->uid = NOBODY;
		a->op = APP_WRITE; /* one byte keeps the pipe after the close */
		a->len = 1;
		app_start(a);
		struct ringdev_ctl_request r = broker_take(&b, RINGDEV_CTL_OPEN);
		struct ringdev_ctl_answer ans = answer_for(&r, 0);
		snprintf(ans.name, sizeof(ans.name), "N%d", i);
		broker_send1(&b, ans, 0, 0, "map nobody's open to a new pipe");
		app_join(a);
		if (i < 2) {
			cr_assert_eq(a->open_err, 0, "nobody's pipe %d: %s", i, rd_errname(a->open_err));
			expect_ret(a, 1, 0, "the write");
		} else {
			cr_assert_eq(a->open_err, ENOSPC, "a third pipe for nobody: expected ENOSPC, got %s",
				     rd_errname(a->open_err));
		}
	}
	cr_assert_eq(rd_stats(d).limit_uid_pipes_hits, 1);
	broker_close(&b, d);
	if (inbox >= 0)
		rd_close(d, inbox);
	end(d, sfd);
}

/* A READ or IOCTL answered STAGED with 0 bytes: end of file, and an empty
 * out-payload, not EIO. */
Test(control, zero_byte_staged_answers_are_empty_payloads)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int bfd = open_served(d, "Bz", O_RDWR, RINGDEV_ANSWER_BROKERED);
	int fd = rd_create(d, "Iz", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r;
	struct ringdev_ctl_answer ans;
	struct broker b;
	struct app *a;

	broker_open(&b, d);
	a = app_new(d, bfd, 16);
	a->op = APP_READ;
	a->len = 16;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_READ);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_STAGED;
	broker_send1(&b, ans, 0, 0, "READ answered STAGED, 0 bytes");
	app_join(a);
	expect_ret(a, 0, 0, "a zero-byte STAGED READ is end of file");

	a = app_ioctl(d, fd, DEV_ECHO, 3);
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_IOCTL);
	ans = answer_for(&r, 3);
	ans.flags = RINGDEV_ANSWER_STAGED;
	broker_send1(&b, ans, 0, 0, "IOCTL answered STAGED, 0 bytes");
	app_join(a);
	expect_ret(a, 3, 0, "a zero-byte STAGED IOCTL");
	struct dev_small zero;
	memset(&zero, 0, sizeof(zero));
	cr_assert_eq(memcmp(a->buf, &zero, sizeof(zero)), 0, "an empty out-payload: the argument comes back zeroed");
	broker_close(&b, d);
	close(bfd);
	rd_close(d, fd);
	end(d, sfd);
}

/* RINGDEV_ANSWER_BUILTIN: the broker defers an OPEN or ATTACH to the
 * daemon's own decision (owner and mode bits), as with no broker at all. */
Test(control, a_builtin_answer_decides_by_owner_and_mode_bits)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = keep_stats(d);
	int priv = rd_create(d, "Priv", O_RDWR, 0, 0, 0); /* root's, 0600 */
	int pub = rd_create(d, "Pub", O_RDWR, 0, 0, 0);
	struct ringdev_ctl_request r;
	struct ringdev_ctl_answer ans;
	struct broker b;
	struct app *a;

	cr_assert_eq(rd_set_config(pub, RINGDEV_SET_MODE, 0, 0, 0666, 0), 0);
	broker_open(&b, d);
	/* nobody attaching its handle to root's private pipe: EACCES */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Pub");
	a->oflags = O_RDWR;
	a->uid = NOBODY;
	a->op = APP_ATTACH;
	snprintf(a->attach.name, sizeof(a->attach.name), "Priv");
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_BUILTIN;
	broker_send1(&b, ans, 0, 0, "OPEN of Pub: BUILTIN");
	r = broker_take(&b, RINGDEV_CTL_ATTACH);
	cr_assert_eq(r.uid, NOBODY, "ATTACH carries the caller's uid");
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_BUILTIN;
	broker_send1(&b, ans, 0, 0, "ATTACH to Priv: BUILTIN");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "nobody's open of a 0666 pipe, decided by the mode bits: %s",
		     rd_errname(a->open_err));
	expect_ret(a, -1, EACCES, "nobody's ATTACH to a 0600 pipe of root's, decided by the mode bits");
	(void)broker_take(&b, RINGDEV_CTL_RELEASE);
	/* root's open of the private pipe: allowed */
	a = app_new(d, -1, 0);
	snprintf(a->pipe, sizeof(a->pipe), "Priv");
	a->oflags = O_RDONLY;
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_OPEN);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_BUILTIN;
	broker_send1(&b, ans, 0, 0, "OPEN of Priv by root: BUILTIN");
	app_join(a);
	cr_assert_eq(a->open_err, 0, "root's open: %s", rd_errname(a->open_err));
	cr_assert_str_eq(a->info.name, d->cuse ? "default" : "Priv");
	/* BUILTIN with anything else is malformed */
	a = app_new(d, pub, 0);
	a->op = APP_ATTACH;
	snprintf(a->attach.name, sizeof(a->attach.name), "Priv");
	app_start(a);
	r = broker_take(&b, RINGDEV_CTL_ATTACH);
	ans = answer_for(&r, 0);
	ans.flags = RINGDEV_ANSWER_BUILTIN | RINGDEV_ANSWER_BROKERED;
	broker_send1(&b, ans, 0, 1, "BUILTIN with BROKERED");
	app_join(a);
	expect_ret(a, -1, EIO, "a malformed BUILTIN answer");
	broker_close(&b, d);
	rd_close(d, pub);
	rd_close(d, priv);
	end(d, sfd);
}
