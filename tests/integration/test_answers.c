/* SPDX-License-Identifier: MIT */
/*
 * test_answers.c - a broker's answer never outranks the daemon's own rules
 * (ringdev(4), "What an answer can change"): who may create on the device,
 * every limit for whoever ends up charged, who owns an existing pipe, the
 * mode bits of an existing pipe, and what a creator's hold is worth.
 * Regression tests for issue 19, part A (items 2 to 10), each run against
 * the FUSE mount and, where the path exists there, the CUSE node.
 *
 * The broker here is a thread of the test answering every request with what
 * the test's decide function says, the way a buggy or generous broker
 * would; unprivileged callers are helper processes that change their
 * effective ids (rd_become).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "harness.h"

RD_SUITE(answers, 60);

#define USER_A 1001
#define USER_B 1002
#define NOBODY 65534

/* ---- the test's broker ---- */

struct tbroker;
/* Fill a (id, result already set to 0) for r; return false to leave r
 * unanswered for now (the test answers it itself later). */
typedef bool (*decide_fn)(struct tbroker *b, const struct ringdev_ctl_request *r, struct ringdev_ctl_answer *a);

struct tbroker {
	int fd;
	pthread_t thread;
	atomic_int stop;
	int err;
	decide_fn decide;
	uint32_t uid;                /* a setting some decide functions use */
	char name[RINGDEV_NAME_SIZE];
	uint32_t flags;
	atomic_uint opens, attaches, nameless_opens;
	/* The last request left unanswered (decide returned false). */
	pthread_mutex_t lock;
	struct ringdev_ctl_request held;
	atomic_int have_held;
};

static void *tbroker_main(void *arg)
{
	struct tbroker *b = arg;
	struct ringdev_ctl_transact t;
	struct ringdev_ctl_answer a[RINGDEV_CTL_BATCH];
	uint32_t na = 0;

	while (!atomic_load(&b->stop)) {
		if (rd_transact(b->fd, a, na, RINGDEV_CTL_BATCH, 20, &t) < 0) {
			b->err = errno;
			return NULL;
		}
		na = 0;
		for (uint32_t i = 0; i < t.nrequests; i++) {
			const struct ringdev_ctl_request *r = &t.requests[i];

			if (r->type == RINGDEV_CTL_OPEN) {
				atomic_fetch_add(&b->opens, 1);
				if (!r->name[0] && !(r->attach_flags & RINGDEV_ATTACH_CREATE))
					atomic_fetch_add(&b->nameless_opens, 1);
			} else if (r->type == RINGDEV_CTL_ATTACH) {
				atomic_fetch_add(&b->attaches, 1);
			} else {
				continue; /* notices */
			}
			memset(&a[na], 0, sizeof(a[na]));
			a[na].id = r->id;
			if (b->decide(b, r, &a[na])) {
				na++;
			} else {
				pthread_mutex_lock(&b->lock);
				b->held = *r;
				pthread_mutex_unlock(&b->lock);
				atomic_store(&b->have_held, 1);
			}
		}
	}
	if (na)
		rd_transact(b->fd, a, na, 0, 0, &t);
	return NULL;
}

static struct tbroker *tbroker_start(struct rd_daemon *d, decide_fn decide)
{
	struct tbroker *b = calloc(1, sizeof(*b));

	cr_assert_not_null(b);
	b->decide = decide;
	pthread_mutex_init(&b->lock, NULL);
	b->fd = rd_ctl_open(d);
	cr_assert_geq(b->fd, 0, "open the control node: %s", rd_errname(errno));
	rd_wait_broker(d, 1);
	cr_assert_eq(pthread_create(&b->thread, NULL, tbroker_main, b), 0);
	return b;
}

static void tbroker_stop(struct rd_daemon *d, struct tbroker *b)
{
	atomic_store(&b->stop, 1);
	pthread_join(b->thread, NULL);
	cr_assert_eq(b->err, 0, "the test broker's TRANSACT: %s", rd_errname(b->err));
	close(b->fd);
	rd_wait_broker(d, 0);
	pthread_mutex_destroy(&b->lock);
	free(b);
}

/* The request the broker left unanswered, waiting for it. */
static struct ringdev_ctl_request tbroker_held(struct tbroker *b)
{
	for (int i = 0; i < RD_PARK_TIMEOUT_MS && !atomic_load(&b->have_held); i++)
		usleep(1000);
	cr_assert(atomic_load(&b->have_held), "the broker got no request to hold");
	pthread_mutex_lock(&b->lock);
	struct ringdev_ctl_request r = b->held;
	pthread_mutex_unlock(&b->lock);
	atomic_store(&b->have_held, 0);
	return r;
}

static void tbroker_answer(struct tbroker *b, uint64_t id, int32_t result)
{
	struct ringdev_ctl_answer a;
	struct ringdev_ctl_transact t;

	memset(&a, 0, sizeof(a));
	a.id = id;
	a.result = result;
	cr_assert_eq(rd_transact(b->fd, &a, 1, 0, 0, &t), 0, "TRANSACT: %s", rd_errname(errno));
	cr_assert_eq(t.rejected + t.failed, 0, "the answer was taken");
}

static bool decide_builtin(struct tbroker *b, const struct ringdev_ctl_request *r, struct ringdev_ctl_answer *a)
{
	a->flags = RINGDEV_ANSWER_BUILTIN;
	return true;
}

/* Allows everything, adding b->flags (and b->name for OPENs of a new name or
 * the CUSE node) and settings owned by b->uid when SETTINGS is in flags. */
static bool decide_allow(struct tbroker *b, const struct ringdev_ctl_request *r, struct ringdev_ctl_answer *a)
{
	a->flags = b->flags;
	if (r->type == RINGDEV_CTL_OPEN && b->name[0])
		memcpy(a->name, b->name, sizeof(a->name));
	if (b->flags & RINGDEV_ANSWER_SETTINGS) {
		a->kind = RINGDEV_KIND_STREAM;
		a->policy = RINGDEV_POLICY_BLOCK;
		a->mode = 0666;
		a->uid = b->uid;
		a->gid = b->uid;
		a->capacity = 4096;
	}
	return true;
}

/* Denies every caller but root. */
static bool decide_root_only(struct tbroker *b, const struct ringdev_ctl_request *r, struct ringdev_ctl_answer *a)
{
	a->result = r->uid == 0 ? 0 : -EPERM;
	return true;
}

/* Holds the first OPEN of b->name; allows everything else. */
static bool decide_hold_open(struct tbroker *b, const struct ringdev_ctl_request *r, struct ringdev_ctl_answer *a)
{
	static atomic_int held_one;

	if (r->type == RINGDEV_CTL_OPEN && strcmp(r->name, b->name) == 0 && !atomic_exchange(&held_one, 1))
		return false;
	return true;
}

/* ---- helpers that act as another user ---- */

struct as_user {
	struct rd_daemon daemon;
	uid_t uid;
	char pipe[RINGDEV_NAME_SIZE];
	int flags;
	mode_t mode;
	uint32_t attach_flags;
	int err;                      /* 0: it worked */
	uint32_t owner;               /* the pipe the handle is on: its owner */
	char on[RINGDEV_NAME_SIZE];   /* ... and its name */
	char data[64];                /* what a read got */
	atomic_int ready, go;         /* mknod_as_main: it made the pipe; the test says go on */
	int reopen_err;               /* mknod_as_main: its reopen through /proc/self/fd */
};

/* Open s->pipe as s->uid (rd_open: FUSE path, CUSE node + ATTACH) and, if
 * it opened, note where the handle is; reads what is queued when readable. */
static int open_as_main(void *arg)
{
	struct as_user *s = arg;

	if (rd_become(s->uid, s->uid) < 0) {
		s->err = errno;
		return 1;
	}
	int fd = rd_open(&s->daemon, s->pipe, s->flags | O_NONBLOCK, s->mode);
	if (fd < 0) {
		s->err = errno;
		return 0;
	}
	struct ringdev_pipe_info info;
	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info) == 0) {
		s->owner = info.uid;
		memcpy(s->on, info.name, sizeof(s->on));
	}
	if ((s->flags & O_ACCMODE) != O_WRONLY) {
		ssize_t n = read(fd, s->data, sizeof(s->data) - 1);
		if (n < 0 && errno != EAGAIN)
			s->err = errno;
	}
	close(fd);
	return 0;
}

static struct as_user *as_user(struct rd_daemon *d, uid_t uid, const char *pipe, int flags, mode_t mode)
{
	struct as_user *s = rd_shared(sizeof(*s));

	s->daemon = *d;
	s->uid = uid;
	snprintf(s->pipe, sizeof(s->pipe), "%s", pipe);
	s->flags = flags;
	s->mode = mode;
	cr_assert_eq(rd_join(rd_spawn(open_as_main, s, -1)), 0, "the helper of uid %u could not act as it", uid);
	return s;
}

/* ATTACH (flags) as uid on the CUSE node or the mount's root... handle:
 * FUSE opens a pipe of its own first (rd_open of `from`). */
static int attach_as_main(void *arg)
{
	struct as_user *s = arg;

	if (rd_become(s->uid, s->uid) < 0) {
		s->err = errno;
		return 1;
	}
	int fd = s->daemon.cuse ? open(s->daemon.device, O_RDWR | O_CLOEXEC)
				: rd_open(&s->daemon, s->on, O_RDWR | O_CREAT, 0600);
	if (fd < 0) {
		s->err = errno;
		return 2;
	}
	if (rd_attach(fd, s->pipe, s->attach_flags, 0, 0, 0600, 0) < 0)
		s->err = errno;
	close(fd);
	return 0;
}

/* ---- the tests ---- */

/* Item 4: BUILTIN is exactly the no-broker decision, --mode included. */
Test(answers, a_builtin_answer_keeps_the_devices_mode)
{
	const char *const args[] = { "--mode", "0644", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = rd_keep_stats(d);
	struct tbroker *b = tbroker_start(d, decide_builtin);

	struct as_user *s = as_user(d, NOBODY, "made.by.nobody", O_WRONLY | O_CREAT, 0666);
	if (d->cuse)
		cr_assert_eq(s->err, EACCES, "nobody's ATTACH --create under --mode 0644: %s", rd_errname(s->err));
	else
		cr_assert_eq(s->err, EACCES, "nobody's O_CREAT under --mode 0644: %s", rd_errname(s->err));
	struct ringdev_pipe_info q;
	memset(&q, 0, sizeof(q));
	strcpy(q.name, "made.by.nobody");
	rd_assert_errno(ioctl(sfd, RINGDEV_IOC_PIPE_BY_NAME, &q), ENOENT, "no pipe was made");
	tbroker_stop(d, b);
	/* The same with no broker at all. */
	s = as_user(d, NOBODY, "made.by.nobody", O_WRONLY | O_CREAT, 0666);
	cr_assert_eq(s->err, EACCES);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* An answer that allows cannot open an existing pipe against its mode bits. */
Test(answers, an_allow_does_not_open_a_pipe_against_its_mode_bits)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	int fd = rd_create(d, "secret", O_WRONLY, 0, 0, 0);

	/* Others may write (so they see it on the mount), not read. */
	cr_assert_eq(rd_set_config(fd, RINGDEV_SET_MODE, 0, 0, 0602, 0), 0);
	rd_write_ok(fd, "root's", 6);
	struct tbroker *b = tbroker_start(d, decide_allow);
	struct as_user *s = as_user(d, USER_B, "secret", O_RDONLY, 0);
	cr_assert_eq(s->err, EACCES, "B's read open of root's 0602 pipe, allowed by the broker: %s (read \"%s\")",
		     rd_errname(s->err), s->data);
	cr_assert_eq(s->data[0], 0, "B read nothing");
	tbroker_stop(d, b);
	close(fd);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* Item 6: an ATTACH without CREATE never creates, settings or not. */
Test(answers, settings_in_an_answer_do_not_make_an_attach_create)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	struct tbroker *b = tbroker_start(d, decide_allow);
	b->flags = RINGDEV_ANSWER_SETTINGS;
	struct as_user *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	s->uid = 0;
	strcpy(s->pipe, "not.there");
	strcpy(s->on, "start");
	cr_assert_eq(rd_join(rd_spawn(attach_as_main, s, -1)), 0);
	cr_assert_eq(s->err, ENOENT, "ATTACH without CREATE, answered with settings: %s", rd_errname(s->err));
	tbroker_stop(d, b);
	struct ringdev_pipe_info q;
	memset(&q, 0, sizeof(q));
	strcpy(q.name, "not.there");
	rd_assert_errno(ioctl(sfd, RINGDEV_IOC_PIPE_BY_NAME, &q), ENOENT, "not.there was not made");
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* Item 7: an answer that names the owner charges that owner, within its
 * per-uid limit: a new pipe (mapped) and one made by MKNOD alike. */
Test(answers, an_answer_naming_the_owner_is_bound_by_that_owners_limit)
{
	const char *const args[] = { "--max-pipes-per-uid", "2", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = rd_keep_stats(d);
	struct tbroker *b = tbroker_start(d, decide_allow);
	int fds[4];
	int ok = 0, refused = 0;

	b->flags = RINGDEV_ANSWER_SETTINGS;
	b->uid = USER_A;
	for (int i = 0; i < 4; i++) {
		char name[32];
		snprintf(name, sizeof(name), "for.a.%d", i);
		if (d->cuse)
			snprintf(b->name, sizeof(b->name), "%s", name); /* the CUSE open is mapped there */
		fds[i] = d->cuse ? open(d->device, O_RDWR | O_CLOEXEC) : rd_open(d, name, O_RDWR | O_CREAT, 0600);
		if (fds[i] >= 0)
			ok++;
		else if (errno == ENOSPC)
			refused++;
		else
			cr_assert_fail("open %d: %s", i, rd_errname(errno));
	}
	cr_assert_eq(ok, 2, "uid %u got %d pipes under --max-pipes-per-uid 2", USER_A, ok);
	cr_assert_eq(refused, 2);
	cr_assert_geq(rd_stats(d).limit_uid_pipes_hits, 2, "counted");
	for (int i = 0; i < 4; i++)
		if (fds[i] >= 0) {
			struct ringdev_pipe_info info = rd_pipe_info(fds[i]);
			cr_assert_eq(info.uid, USER_A);
			close(fds[i]);
		}
	tbroker_stop(d, b);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* As uid: RINGDEV_IOC_CREATE (what `ringdevctl create` does) of s->pipe,
 * mode s->mode, on the CUSE node or the mount's root. */
static int create_as_main(void *arg)
{
	struct as_user *s = arg;

	if (rd_become(s->uid, s->uid) < 0) {
		s->err = errno;
		return 1;
	}
	int fd = s->daemon.cuse ? open(s->daemon.device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
				: open(s->daemon.mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		s->err = errno;
		return 2;
	}
	struct ringdev_create c = { .mode = s->mode };
	snprintf(c.name, sizeof(c.name), "%s", s->pipe);
	if (ioctl(fd, RINGDEV_IOC_CREATE, &c) < 0)
		s->err = errno;
	close(fd);
	return 0;
}

static int create_as(struct rd_daemon *d, uid_t uid, const char *pipe, mode_t mode)
{
	struct as_user *s = rd_shared(sizeof(*s));

	s->daemon = *d;
	s->uid = uid;
	s->mode = mode;
	snprintf(s->pipe, sizeof(s->pipe), "%s", pipe);
	cr_assert_eq(rd_join(rd_spawn(create_as_main, s, -1)), 0);
	return s->err;
}

/* As uid, the open a broker maps: FUSE MOUNT/s->pipe (O_CREAT), CUSE the
 * node itself; writes "secret" if it opened. */
static int mapped_open_main(void *arg)
{
	struct as_user *s = arg;

	if (rd_become(s->uid, s->uid) < 0) {
		s->err = errno;
		return 1;
	}
	char path[RD_PATH_SIZE + RINGDEV_NAME_SIZE + 2];
	snprintf(path, sizeof(path), "%s/%s", s->daemon.mount, s->pipe);
	int fd = s->daemon.cuse ? open(s->daemon.device, O_WRONLY | O_CLOEXEC)
				: open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0) {
		s->err = errno;
		return 0;
	}
	struct ringdev_pipe_info info;
	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info) == 0) {
		s->owner = info.uid;
		memcpy(s->on, info.name, sizeof(s->on));
	}
	if (write(fd, "secret", 6) != 6)
		s->err = errno;
	close(fd);
	return 0;
}

static struct as_user *mapped_open(struct rd_daemon *d, uid_t uid, const char *pipe)
{
	struct as_user *s = rd_shared(sizeof(*s));

	s->daemon = *d;
	s->uid = uid;
	snprintf(s->pipe, sizeof(s->pipe), "%s", pipe);
	cr_assert_eq(rd_join(rd_spawn(mapped_open_main, s, -1)), 0);
	return s;
}

/* Item 2 (the daemon's half): an open is never mapped into a pipe another
 * user owns unless the answer grants it. */
Test(answers, a_mapped_open_never_lands_in_another_users_pipe_without_a_grant)
{
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);

	/* B squats A's name, world-writable and persistent, before any broker. */
	cr_assert_eq(create_as(d, USER_B, "user.1001", 0666), 0, "B's create of user.1001");
	struct tbroker *b = tbroker_start(d, decide_allow);
	strcpy(b->name, "user.1001");
	struct as_user *s = mapped_open(d, USER_A, "inbox");
	cr_assert_eq(s->err, EACCES, "A's open mapped into B's user.1001: %s (landed on %s of uid %u)",
		     rd_errname(s->err), s->on, s->owner);
	/* With the broker's explicit grant it may. */
	b->flags = RINGDEV_ANSWER_GRANT;
	s = mapped_open(d, USER_A, "inbox");
	cr_assert_eq(s->err, 0, "granted: %s", rd_errname(s->err));
	cr_assert_str_eq(s->on, "user.1001");
	cr_assert_eq(s->owner, USER_B);
	b->flags = 0;
	tbroker_stop(d, b);
	/* B's pipe gone, A's mapped open makes A's own. */
	int root = rd_keep_stats(d);
	struct ringdev_name rm = { .name = "user.1001" };
	cr_assert_eq(ioctl(root, RINGDEV_IOC_REMOVE, &rm), 0, "remove: %s", rd_errname(errno));
	rd_stats_through(d, sfd);
	close(root);
	b = tbroker_start(d, decide_allow);
	strcpy(b->name, "user.1001");
	s = mapped_open(d, USER_A, "inbox");
	cr_assert_eq(s->err, 0, "A's own: %s", rd_errname(s->err));
	cr_assert_eq(s->owner, USER_A);
	tbroker_stop(d, b);
	rd_end(d);
	close(sfd);
}

/* As uid: mknod(2) MOUNT/s->pipe (mode s->mode, 0600 if 0) and keep an
 * O_PATH descriptor of it; then, when s->flags says so, wait for the test
 * (s->go) and reopen it through /proc/self/fd for reading. */
static int mknod_as_main(void *arg)
{
	struct as_user *s = arg;
	char path[RD_PATH_SIZE + RINGDEV_NAME_SIZE + 2];

	if (rd_become(s->uid, s->uid) < 0) {
		s->err = errno;
		return 1;
	}
	snprintf(path, sizeof(path), "%s/%s", s->daemon.mount, s->pipe);
	if (mknod(path, S_IFREG | (s->mode ? s->mode : 0600), 0) < 0) {
		s->err = errno;
		return 0;
	}
	int opath = open(path, O_PATH | O_CLOEXEC);
	if (opath < 0 && errno != ENOENT) {
		s->err = errno;
		return 0;
	}
	if (!s->flags)
		return 0;
	atomic_store(&s->ready, 1);
	while (!atomic_load(&s->go))
		usleep(1000);
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", opath);
	int fd = open(fdpath, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0) {
		s->reopen_err = errno;
		return 0;
	}
	ssize_t n = read(fd, s->data, sizeof(s->data) - 1);
	s->reopen_err = n < 0 ? errno : 0;
	close(fd);
	return 0;
}

/* Item 5: with a broker connected, a pipe a user makes by MKNOD is that
 * user's alone until the broker allowed its creation: a broker that denies
 * the user everything leaves nothing that root's O_CREAT could land in. */
Test(answers, a_bare_mknod_leaves_nothing_the_broker_did_not_allow)
{
	if (rd_fuse_only("MKNOD"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	struct tbroker *b = tbroker_start(d, decide_root_only);
	struct as_user *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	s->uid = NOBODY;
	strcpy(s->pipe, "squat");
	pid_t pid = rd_spawn(mknod_as_main, s, -1);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert_eq(s->err, 0, "nobody's bare mknod: %s", rd_errname(s->err));
	char path[RD_PATH_SIZE + 16];
	snprintf(path, sizeof(path), "%s/squat", d->mount);
	struct stat st;
	rd_assert_errno(stat(path, &st), ENOENT, "root's stat of nobody's unconfirmed pipe");
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	cr_assert_geq(fd, 0, "root's O_CREAT: %s", rd_errname(errno));
	struct ringdev_pipe_info info = rd_pipe_info(fd);
	cr_assert_eq(info.uid, 0, "root's write lands in a pipe of root's, not nobody's (uid %u)", info.uid);
	rd_write_ok(fd, "root's", 6);
	close(fd);
	tbroker_stop(d, b);
	rd_end(d);
	close(sfd);
}

/* Item 3: a creator's hold is worth nothing once the pipe's owner or mode
 * changed: root gives the pipe nobody made to A with mode 0600, and
 * nobody's reopen of its O_PATH descriptor within the hold is refused. */
Test(answers, a_hold_is_void_once_the_owner_or_mode_changes)
{
	if (rd_fuse_only("MKNOD"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	struct as_user *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	s->uid = NOBODY;
	s->flags = 1;
	strcpy(s->pipe, "user.1001");
	pid_t pid = rd_spawn(mknod_as_main, s, -1);
	for (int i = 0; i < RD_PARK_TIMEOUT_MS && !atomic_load(&s->ready) && !s->err; i++)
		usleep(1000);
	cr_assert_eq(s->err, 0, "nobody's mknod: %s", rd_errname(s->err));
	cr_assert(atomic_load(&s->ready));
	char path[RD_PATH_SIZE + 16];
	snprintf(path, sizeof(path), "%s/user.1001", d->mount);
	cr_assert_eq(chown(path, USER_A, USER_A), 0, "root's chown: %s", rd_errname(errno));
	cr_assert_eq(chmod(path, 0600), 0, "root's chmod: %s", rd_errname(errno));
	int fd = rd_open(d, "user.1001", O_WRONLY, 0);
	cr_assert_geq(fd, 0);
	rd_write_ok(fd, "for A", 5);
	atomic_store(&s->go, 1);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert_eq(s->reopen_err, EACCES, "nobody's reopen after the chown: %s, read \"%s\"",
		     rd_errname(s->reopen_err), s->data);
	close(fd);
	struct ringdev_name rm = { .name = "user.1001" };
	cr_assert_eq(ioctl(sfd, RINGDEV_IOC_REMOVE, &rm), 0);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* Item 8: an open of an inode that went between the kernel's lookup and
 * the open is never relayed as a nameless open (a broker mapping "" would
 * attach it anywhere): it gets what an open of its name would get now. */
Test(answers, an_open_of_a_vanished_pipe_is_not_relayed_nameless)
{
	if (rd_fuse_only("opens by inode"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	char path[RD_PATH_SIZE + 16];
	snprintf(path, sizeof(path), "%s/vanish", d->mount);
	int w = rd_create(d, "vanish", O_WRONLY, 0, 0, 0);
	int opath = open(path, O_PATH | O_CLOEXEC);
	cr_assert_geq(opath, 0);
	struct ringdev_name rm = { .name = "vanish" };
	cr_assert_eq(ioctl(sfd, RINGDEV_IOC_REMOVE, &rm), 0);
	close(w);
	struct tbroker *b = tbroker_start(d, decide_allow);
	strcpy(b->name, "user.0"); /* a broker that maps every open it gets */
	b->flags = RINGDEV_ANSWER_GRANT;
	char fdpath[64];
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", opath);
	errno = 0;
	int fd = open(fdpath, O_WRONLY | O_CLOEXEC);
	cr_assert_lt(fd, 0, "the reopen of a removed pipe opened something");
	cr_assert(errno == ESTALE || errno == ENOENT, "reopen: %s", rd_errname(errno));
	cr_assert_eq(atomic_load(&b->nameless_opens), 0, "a nameless OPEN reached the broker");
	cr_assert_eq(atomic_load(&b->opens), 0);
	/* Re-created under the same name: the reopen gets the pipe that has
	 * the name now, as an open of the path would. */
	tbroker_stop(d, b);
	int again = rd_create(d, "vanish", O_RDONLY | O_NONBLOCK, 0, 0, 0);
	fd = open(fdpath, O_WRONLY | O_CLOEXEC);
	cr_assert_geq(fd, 0, "the reopen after a re-create: %s", rd_errname(errno));
	rd_write_ok(fd, "new", 3);
	char buf[8];
	rd_read_ok(again, buf, sizeof(buf), 3);
	close(fd);
	close(again);
	close(opath);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* Item 9: an O_CREAT open the broker allows creates the pipe even when its
 * last handle closed (and the pipe went) while the broker was deciding. */
Test(answers, an_allowed_ocreat_open_creates_a_pipe_that_went_meanwhile)
{
	if (rd_fuse_only("O_CREAT on the mount"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	int holder = rd_create(d, "brief", O_RDONLY | O_NONBLOCK, 0, 0, 0);
	struct tbroker *b = tbroker_start(d, decide_hold_open);
	strcpy(b->name, "brief");
	struct as_user *s = rd_shared(sizeof(*s));
	s->daemon = *d;
	s->uid = 0;
	strcpy(s->pipe, "brief");
	s->flags = O_WRONLY | O_CREAT;
	s->mode = 0600;
	pid_t pid = rd_spawn(open_as_main, s, -1);
	struct ringdev_ctl_request r = tbroker_held(b);
	cr_assert_str_eq(r.name, "brief");
	close(holder);
	for (int i = 0; i < RD_PARK_TIMEOUT_MS && rd_stats(d).pipes > 0; i++)
		usleep(1000);
	cr_assert_eq(rd_stats(d).pipes, 0, "the pipe went with its last handle");
	tbroker_answer(b, r.id, 0);
	cr_assert_eq(rd_join(pid), 0);
	cr_assert_eq(s->err, 0, "the allowed O_CREAT open: %s", rd_errname(s->err));
	cr_assert_str_eq(s->on, "brief");
	tbroker_stop(d, b);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

struct race {
	struct rd_daemon daemon;
	atomic_int stop;
	atomic_uint opens, stale, other;
	int other_err;
};

static int recreate_main(void *arg)
{
	struct race *r = arg;
	char path[RD_PATH_SIZE + 16];

	snprintf(path, sizeof(path), "%s/flip", r->daemon.mount);
	while (!atomic_load(&r->stop)) {
		unlink(path);
		int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}

/* Item 10: an open racing an unlink and re-create of its name gets the new
 * pipe or ENOENT, never ESTALE. */
Test(answers, an_open_racing_a_recreate_never_gets_estale, .timeout = 120)
{
	if (rd_fuse_only("opens by path"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	struct race *r = rd_shared(sizeof(*r));
	r->daemon = *d;
	pid_t flipper = rd_spawn(recreate_main, r, -1);
	char path[RD_PATH_SIZE + 16];
	snprintf(path, sizeof(path), "%s/flip", d->mount);
	for (int i = 0; i < 40000; i++) {
		int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
		if (fd >= 0) {
			atomic_fetch_add(&r->opens, 1);
			close(fd);
		} else if (errno == ESTALE) {
			atomic_fetch_add(&r->stale, 1);
		} else if (errno != ENOENT) {
			atomic_fetch_add(&r->other, 1);
			r->other_err = errno;
		}
	}
	atomic_store(&r->stop, 1);
	cr_assert_eq(rd_join(flipper), 0);
	cr_log_info("40000 opens racing re-creates: %u opened", atomic_load(&r->opens));
	cr_assert_eq(atomic_load(&r->stale), 0, "%u opens got ESTALE", atomic_load(&r->stale));
	cr_assert_eq(atomic_load(&r->other), 0, "unexpected errno %s", rd_errname(r->other_err));
	cr_assert_gt(atomic_load(&r->opens), 0, "no open ever met the pipe: the race was not run");
	unlink(path);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

/* The concurrency review: readers of a brokered pipe whose broker holds
 * every READ, in a storm of signals, then killed. An interrupt that came
 * before its READ parked was lost (the kernel sends one), the READ waited
 * for the broker and its reader stayed in D state for good. Every reader
 * must go once killed: a READ the broker took ends at the cancel bound,
 * one it did not at once. */
static bool decide_brokered(struct tbroker *b, const struct ringdev_ctl_request *r, struct ringdev_ctl_answer *a)
{
	a->flags = RINGDEV_ANSWER_BROKERED;
	return true;
}

static void storm_noop(int sig)
{
	(void)sig;
}

static int held_reader_main(void *arg)
{
	const struct rd_daemon *d = arg;
	struct sigaction sa = { .sa_handler = storm_noop }; /* no SA_RESTART */
	char buf[8];

	sigaction(SIGUSR1, &sa, NULL);
	int fd;
	while ((fd = rd_open(d, "rv.held", O_RDONLY | O_CREAT, 0666)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		return 1;
	for (;;)
		if (read(fd, buf, sizeof(buf)) < 0 && errno != EINTR)
			return 2;
}

#define HELD_READERS 4

Test(answers, killed_readers_of_a_held_brokered_read_never_hang, .timeout = 60)
{
	const char *const args[] = { "--cancel-timeout", "300", NULL };
	struct rd_daemon *d = rd_start(args);
	int sfd = rd_keep_stats(d);
	struct tbroker *b = tbroker_start(d, decide_brokered);
	struct rd_daemon *shared = rd_shared(sizeof(*shared));
	pid_t pids[HELD_READERS];

	*shared = *d;
	for (int i = 0; i < HELD_READERS; i++)
		pids[i] = rd_spawn(held_reader_main, shared, -1);
	for (int t = 0; t < RD_PARK_TIMEOUT_MS && rd_stats(d).parked_other < HELD_READERS; t += 10)
		usleep(10000);
	for (int k = 0; k < 10000; k++) { /* 2 s: 200 us apart */
		for (int i = 0; i < HELD_READERS; i++)
			kill(pids[i], SIGUSR1);
		usleep(200);
	}
	for (int i = 0; i < HELD_READERS; i++)
		kill(pids[i], SIGKILL);
	for (int i = 0; i < HELD_READERS; i++) {
		int status;
		cr_assert(rd_wait_child(pids[i], 5000, &status), "reader %d is still there 5 s after SIGKILL", i);
	}
	tbroker_stop(d, b);
	rd_wait_parked(d, 0, 0);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}

struct remade {
	int opath;
	int err;
};

/* As user B: reopen the O_PATH descriptor root left open, for writing. */
static int reopen_as_b_main(void *arg)
{
	struct remade *s = arg;
	char fdpath[64];

	if (rd_become(USER_B, USER_B) < 0) {
		s->err = errno;
		return 1;
	}
	snprintf(fdpath, sizeof(fdpath), "/proc/self/fd/%d", s->opath);
	int fd = open(fdpath, O_WRONLY | O_CLOEXEC);
	s->err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* An open of a pipe that went unused between lookup and open gets the pipe
 * made again as it was; if that open is then refused (here: B on root's
 * 0600 pipe), the pipe made for it goes again at once instead of holding a
 * pipe slot and its owner's charge until something else touches it. */
Test(answers, a_refused_open_leaves_no_pipe_made_again_behind)
{
	if (rd_fuse_only("opens by inode"))
		return;
	struct rd_daemon *d = rd_start(NULL);
	int sfd = rd_keep_stats(d);
	char path[RD_PATH_SIZE + 16];
	snprintf(path, sizeof(path), "%s/remade", d->mount);
	int w = rd_create(d, "remade", O_WRONLY, 0, 0, 0); /* root's, 0600 */
	struct remade *s = rd_shared(sizeof(*s));
	s->opath = open(path, O_PATH);
	cr_assert_geq(s->opath, 0);
	close(w);
	for (int t = 0; t < RD_PARK_TIMEOUT_MS && rd_stats(d).pipes > 0; t += 10)
		usleep(10000);
	cr_assert_eq(rd_stats(d).pipes, 0, "the unused pipe went");
	cr_assert_eq(rd_join(rd_spawn(reopen_as_b_main, s, s->opath)), 0);
	cr_assert_eq(s->err, EACCES, "B's reopen of root's 0600 pipe: %s", rd_errname(s->err));
	cr_assert_eq(rd_stats(d).pipes, 0, "the pipe made again for the refused open is still there");
	close(s->opath);
	rd_assert_idle(d);
	rd_end(d);
	close(sfd);
}
