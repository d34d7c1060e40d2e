/* SPDX-License-Identifier: MIT */
/*
 * frontend/common.c - the glue between libfuse requests and the core.
 *
 * Interrupts: every handler that may park registers an interrupt callback
 * *before* taking the device lock. libfuse calls it with the request's own
 * lock held (possibly inline, from fuse_req_interrupt_func), and the callback
 * takes the device lock, so the order is always request lock -> device lock;
 * registering under the device lock would invert it. A request interrupted
 * before it parks is caught by the core's req_interrupted check under the
 * device lock, one interrupted after by the callback: no window is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "clock.h"
#include "frontend.h"
#include "log.h"
#include "restart.h"

/* ---- the outbox: answers sent once the device lock is dropped ----
 *
 * The core answers requests from under its one lock, and an answer is a
 * writev to /dev/fuse: a system call that another serving thread, wanting
 * the lock for the next request, used to wait out (--threads 2, 64 B writes
 * with a reader: 1.4 futex calls and 1.6 context switches per request, and
 * more CPU per request than one thread). While a read, write, ioctl or
 * release runs, this thread queues the answers the core makes instead, and
 * sends them when the core has returned and let go of the lock. An answer
 * queued is one no one else can reach: the core has taken its request off
 * every queue under the lock, and libfuse counts its own references to a
 * request against a racing INTERRUPT.
 *
 * Data: what the core lends only for the call (iovecs into the ring) is
 * copied. Up to 4 KiB goes into the outbox itself. Longer data is copied
 * into a buffer of the thread's own, and only while more than one thread
 * serves: one thread has no one to hand the lock to, and the copy would be
 * all cost. (Lending the ring space instead until the answer is sent was
 * tried: as fast within noise, but the reader's read returns before the
 * loan does, and an app that then writes finds the room it just emptied
 * still taken: EAGAIN from a pipe it has drained.) Data the core holds for
 * the handler (a write handed to a parked reader: reply_data_held) waits
 * where it is, uncopied. Past a full outbox, or OUTBOX_LARGE_MAX bytes, an
 * answer is sent at once. Other callers (the timer thread, opens) are not
 * armed and answer at once. */
#define OUTBOX_SLOTS 32
#define OUTBOX_COPY_MAX 4096
#define OUTBOX_BYTES (16 * 1024)
#define OUTBOX_LARGE_MAX (4u << 20)
#define OUTBOX_LARGE_KEEP (1u << 20) /* kept between handlers, at most */

enum outbox_kind { OUT_DATA, OUT_LARGE, OUT_HELD, OUT_WRITTEN, OUT_ERROR, OUT_IOCTL };

struct outbox_entry {
	enum outbox_kind kind;
	fuse_req_t req;
	int value;     /* OUT_ERROR: the errno; OUT_IOCTL: the result; OUT_HELD: iovecs */
	size_t count;  /* OUT_WRITTEN: bytes taken; OUT_DATA, OUT_IOCTL: bytes at off; OUT_LARGE: in large */
	size_t off;
	struct iovec held[2]; /* OUT_HELD: the data, where the core holds it */
};

struct outbox {
	bool armed;
	unsigned n;
	size_t used;
	char *large;        /* OUT_LARGE data; kept for the next handler, freed at thread end */
	size_t large_size, large_used;
	struct outbox_entry e[OUTBOX_SLOTS];
	char bytes[OUTBOX_BYTES];
};

/* More than one thread serves: long answers are worth copying out. */
static atomic_bool outbox_copies_large;

static _Thread_local struct outbox outbox;

static void outbox_arm(void)
{
	outbox.armed = true;
}

/* A slot with room for size bytes, or NULL: answer at once. */
static struct outbox_entry *outbox_slot(enum outbox_kind kind, void *req, size_t size)
{
	struct outbox *o = &outbox;
	if (!o->armed || o->n == OUTBOX_SLOTS || size > OUTBOX_COPY_MAX || size > OUTBOX_BYTES - o->used)
		return NULL;
	struct outbox_entry *e = &o->e[o->n++];
	*e = (struct outbox_entry){ .kind = kind, .req = req, .count = size, .off = o->used };
	o->used += size;
	return e;
}

static void send_data(fuse_req_t req, const struct iovec *iov, int count)
{
	if (count == 0)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_iov(req, iov, count);
}

/* At the end of a serving thread, and after a burst. */
static void outbox_free(void)
{
	free(outbox.large);
	outbox.large = NULL;
	outbox.large_size = 0;
}

/* Send what was queued, in order; the caller holds no lock of the core. */
static void outbox_flush(void)
{
	struct outbox *o = &outbox;
	for (unsigned i = 0; i < o->n; i++) {
		struct outbox_entry *e = &o->e[i];
		struct iovec iov = { o->bytes + e->off, e->count };
		switch (e->kind) {
		case OUT_DATA:
			send_data(e->req, &iov, e->count ? 1 : 0);
			break;
		case OUT_LARGE:
			iov.iov_base = o->large + e->off;
			send_data(e->req, &iov, 1);
			break;
		case OUT_HELD:
			send_data(e->req, e->held, e->value);
			break;
		case OUT_WRITTEN:
			fuse_reply_write(e->req, e->count);
			break;
		case OUT_ERROR:
			fuse_reply_err(e->req, e->value);
			break;
		case OUT_IOCTL:
			fuse_reply_ioctl(e->req, e->value, e->count ? iov.iov_base : NULL, e->count);
			break;
		}
	}
	o->n = 0;
	o->used = 0;
	o->large_used = 0;
	o->armed = false;
	if (o->large_size > OUTBOX_LARGE_KEEP)
		outbox_free(); /* a burst: do not keep its memory */
}

/* A slot for size bytes of long data copied into the thread's own buffer,
 * or NULL: answer at once. */
static struct outbox_entry *outbox_slot_large(fuse_req_t req, size_t size)
{
	struct outbox *o = &outbox;
	if (!o->armed || o->n == OUTBOX_SLOTS || !atomic_load_explicit(&outbox_copies_large, memory_order_relaxed) ||
	    size > OUTBOX_LARGE_MAX - o->large_used)
		return NULL;
	if (o->large_used + size > o->large_size) {
		size_t want = o->large_size ? o->large_size * 2 : 256 * 1024;
		while (want < o->large_used + size)
			want *= 2;
		if (want > OUTBOX_LARGE_MAX)
			want = OUTBOX_LARGE_MAX;
		char *b = realloc(o->large, want);
		if (!b)
			return NULL;
		o->large = b;
		o->large_size = want;
	}
	struct outbox_entry *e = &o->e[o->n++];
	*e = (struct outbox_entry){ .kind = OUT_LARGE, .req = req, .count = size, .off = o->large_used };
	o->large_used += size;
	return e;
}

/* Copy the data lent for e (e->count bytes in all) into the outbox. */
static void outbox_copy(const struct outbox_entry *e, const struct iovec *iov, int count)
{
	char *to = (e->kind == OUT_LARGE ? outbox.large : outbox.bytes) + e->off;
	for (int i = 0; i < count; i++) {
		if (iov[i].iov_len)
			memcpy(to, iov[i].iov_base, iov[i].iov_len);
		to += iov[i].iov_len;
	}
}

static void ops_reply_data(void *req, const struct iovec *iov, int count)
{
	if (restart_is_restored(req)) {
		restart_reply_raw(req, 0, iov, count);
		return;
	}
	size_t size = 0;
	for (int i = 0; i < count; i++)
		size += iov[i].iov_len;
	struct outbox_entry *e = outbox_slot(OUT_DATA, req, size);
	if (!e && size > OUTBOX_COPY_MAX)
		e = outbox_slot_large(req, size);
	if (e)
		outbox_copy(e, iov, count);
	else
		send_data(req, iov, count);
}

static void ops_reply_data_held(void *req, const struct iovec *iov, int count)
{
	if (restart_is_restored(req)) {
		restart_reply_raw(req, 0, iov, count);
		return;
	}
	struct outbox_entry *e = count <= 2 ? outbox_slot(OUT_HELD, req, 0) : NULL;
	if (!e) {
		ops_reply_data(req, iov, count);
		return;
	}
	e->value = count;
	for (int i = 0; i < count; i++)
		e->held[i] = iov[i];
}

static void ops_reply_written(void *req, size_t count)
{
	if (restart_is_restored(req)) {
		struct fuse_write_out out = { .size = (uint32_t)count };
		restart_reply_raw(req, 0, &(struct iovec){ &out, sizeof(out) }, 1);
		return;
	}
	struct outbox_entry *e = outbox_slot(OUT_WRITTEN, req, 0);
	if (e)
		e->count = count;
	else
		fuse_reply_write(req, count);
}

static void ops_reply_error(void *req, int err)
{
	/* The kernel refuses an errno it cannot carry and would leave the
	 * caller waiting forever; the core never passes one (answers are
	 * checked where they enter), and this keeps it so. */
	if (err <= 0 || err > RINGDEV_ERRNO_MAX) {
		log_error("internal error: errno %d cannot reach the app: EIO instead", err);
		err = EIO;
	}
	if (restart_is_restored(req)) {
		restart_reply_raw(req, err, NULL, 0);
		return;
	}
	struct outbox_entry *e = outbox_slot(OUT_ERROR, req, 0);
	if (e)
		e->value = err;
	else
		fuse_reply_err(req, err);
}

static bool ops_req_interrupted(void *req)
{
	/* An earlier image's request: its INTERRUPT comes later, if at all
	 * (one that came before the handover was served there). */
	return restart_is_restored(req) ? false : fuse_req_interrupted(req);
}

static bool ops_reply_open(void *req, struct open_ctx *ctx)
{
	if (restart_is_restored(req)) {
		struct fuse_open_out out = { .fh = device_ctx_fh(ctx), .open_flags = RINGDEV_FOPEN_FLAGS };
		restart_reply_raw(req, 0, &(struct iovec){ &out, sizeof(out) }, 1);
		return true;
	}
	return frontend_reply_open(req, ctx);
}

static void ops_reply_ioctl(void *req, int result, const void *out, size_t size)
{
	if (restart_is_restored(req)) {
		struct fuse_ioctl_out head = { .result = result };
		struct iovec iov[2] = { { &head, sizeof(head) }, { (void *)out, size } };
		restart_reply_raw(req, 0, iov, size ? 2 : 1);
		return;
	}
	struct outbox_entry *e = outbox_slot(OUT_IOCTL, req, size);
	if (!e) {
		fuse_reply_ioctl(req, result, size ? out : NULL, size);
		return;
	}
	e->value = result;
	outbox_copy(e, &(struct iovec){ (void *)out, size }, 1);
}

const struct device_ops frontend_ops = {
	.reply_data = ops_reply_data,
	.reply_data_held = ops_reply_data_held,
	.reply_written = ops_reply_written,
	.reply_error = ops_reply_error,
	.req_interrupted = ops_req_interrupted,
	.reply_open = ops_reply_open,
	.reply_ioctl = ops_reply_ioctl,
	.poll_notify = restart_poll_notify,
	.poll_destroy = restart_poll_destroy,
	.req_wire = restart_req_wire,
	.poll_wire = restart_poll_wire,
	.req_restore = restart_req_restore,
	.poll_restore = restart_poll_restore,
};

struct cred frontend_cred(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	return (struct cred){ .uid = c->uid, .gid = c->gid, .pid = (uint32_t)c->pid };
}

struct open_ctx *frontend_ctx(fuse_req_t req, struct fuse_file_info *fi)
{
	return fi->fh ? device_ctx_from_fh(fuse_req_userdata(req), fi->fh) : NULL;
}

/* A file whose open the daemon never answered with a handle (the kernel
 * skips OPEN once an open was answered ENOSYS, which the core never lets
 * through; this is the guard behind that rule), or whose handle no image
 * knows (one from before a crash). */
static struct open_ctx *handle_or_fail(fuse_req_t req, struct fuse_file_info *fi)
{
	struct open_ctx *ctx = frontend_ctx(req, fi);
	if (ctx)
		return ctx;
	if (!fi->fh)
		log_error("internal error: a request on a file with no handle: EBADF");
	fuse_reply_err(req, EBADF);
	return NULL;
}

static void on_interrupt(fuse_req_t req, void *data)
{
	device_interrupt(data, req);
}

void frontend_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct open_ctx *ctx = handle_or_fail(req, fi);
	if (!ctx)
		return;
	struct device *dev = fuse_req_userdata(req);
	fuse_req_interrupt_func(req, on_interrupt, dev);
	/* Stream files start every read system call at offset 0; a later
	 * offset is the kernel's next chunk of the same call. */
	outbox_arm();
	device_read(dev, ctx, req, size, fi->flags, off > 0);
	outbox_flush();
}

void frontend_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct open_ctx *ctx = handle_or_fail(req, fi);
	if (!ctx)
		return;
	struct device *dev = fuse_req_userdata(req);
	fuse_req_interrupt_func(req, on_interrupt, dev);
	/* As for reads: every write system call starts at offset 0, a later
	 * offset is the kernel's next piece of the same call. */
	outbox_arm();
	device_write_piece(dev, ctx, req, buf, size, fi->flags, off > 0);
	outbox_flush();
}

void frontend_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct open_ctx *ctx = handle_or_fail(req, fi);
	if (!ctx) {
		if (ph)
			fuse_pollhandle_destroy(ph);
		return;
	}
	struct device *dev = fuse_req_userdata(req);
	unsigned mask = device_poll(dev, ctx, restart_poll_wrap(ph));
	fuse_reply_poll(req, mask);
}

void frontend_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	struct open_ctx *ctx = frontend_ctx(req, fi);
	if (!ctx) {
		fuse_reply_err(req, 0);
		return;
	}
	outbox_arm();
	device_release(dev, ctx);
	outbox_flush();
	fuse_reply_err(req, 0);
}

void frontend_ioctl(fuse_req_t req, struct open_ctx *ctx, unsigned int cmd, unsigned flags, const void *in_buf,
		    size_t in_bufsz, size_t out_bufsz)
{
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	/* Broker TRANSACTs and relayed commands may park: interruptible. */
	fuse_req_interrupt_func(req, on_interrupt, dev);
	outbox_arm();
	bool taken = device_ioctl_async(dev, ctx, &cred, req, cmd, in_buf, in_bufsz, out_bufsz);
	outbox_flush();
	if (taken)
		return;
	/* Restricted ioctls carry at most _IOC_SIZE bytes: 14 bits. */
	uint8_t out[1u << 14];
	if (out_bufsz > sizeof(out)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	memset(out, 0, out_bufsz);
	int r = device_ioctl(dev, ctx, &cred, cmd, in_buf, in_bufsz, out, out_bufsz);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_ioctl(req, 0, out_bufsz ? out : NULL, out_bufsz);
}

void frontend_ctl_open(fuse_req_t req, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	struct open_ctx *ctx;
	int r = device_ctl_open(dev, &cred, fi->flags, &ctx);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = device_ctx_fh(ctx);
	fi->direct_io = 1;
	fi->nonseekable = 1;
	if (fuse_reply_open(req, fi) < 0)
		device_release(dev, ctx);
}

bool frontend_reply_open(fuse_req_t req, struct open_ctx *ctx)
{
	struct fuse_open_out arg;
	memset(&arg, 0, sizeof(arg));
	arg.fh = device_ctx_fh(ctx);
	arg.open_flags = RINGDEV_FOPEN_FLAGS;
	return fuse_reply_buf(req, (const char *)&arg, sizeof(arg)) == 0;
}

/* ---- serving: N threads over the sessions' fds ----
 *
 * Thread 0 (the caller of frontend_serve) serves every session (the FUSE
 * mount; the CUSE data and control nodes) and is the only thread that takes
 * the stop signals. Threads 1..N-1 (--threads) serve the data session only:
 * the mount, or /dev/NAME. Each thread waits in its own epoll instance on
 * the session fd with EPOLLEXCLUSIVE, so one request wakes one thread, and
 * then reads requests until none is left (at most SERVE_BATCH in a row, so
 * thread 0 still looks at its signals under a flood). A request is handled
 * start to end by the thread that read it: there is no hand-off between
 * threads. The core's one lock makes the handlers safe side by side; the
 * kernel's reads, copies and replies of one thread overlap the next
 * request's handler in another.
 *
 * --busy-poll: when a thread has found no request left, it may keep
 * looking (a non-blocking read, then sched_yield) for up to that long after
 * its last one before it sleeps; one thread at a time does so. A request
 * that follows within the window skips a sleep and a wake-up, which on a VM
 * whose idle vCPUs halt costs tens of microseconds; an idle daemon never
 * polls.
 *
 * Not fuse_session_loop: it checks fuse_session_exited and then blocks in
 * read(/dev/fuse), so a SIGTERM whose handler runs between the two only
 * marks the session exited and the daemon serves on until the next request
 * arrives (under valgrind, which delivers signals at the next system call,
 * every stop of an idle daemon hung so). Here the stop signals are blocked
 * in thread 0 except inside epoll_pwait, which opens them atomically: a
 * signal is taken only while the loop waits, and the wait then ends with
 * EINTR, so the check of fuse_session_exited always sees it. The fds are
 * non-blocking, so a read never waits with the signals shut (a request
 * another thread took, or the kernel withdrew, gives EAGAIN).
 *
 * The extra threads start only once thread 0 has answered INIT and any
 * --user drop is done (frontend_threads_may_start, from the frontends' INIT
 * callbacks): capabilities are per thread, on CUSE the drop happens in the
 * INIT callbacks, and what INIT sets up is then written before any other
 * thread exists.
 * They get the stop from an eventfd and are joined before the core shuts
 * down. */
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define SERVE_BATCH 16
#define SERVE_THREADS_MAX 64

struct server {
	struct fuse_session **se; /* the extra threads serve se[0] */
	uint64_t poll_ns;  /* --busy-poll, in ns; 0: sleep as soon as nothing is queued */
	atomic_bool polling; /* a thread is polling se[0] now */
	int stop_fd;       /* eventfd: the extra threads end when it is readable */
	unsigned threads;  /* wanted, including thread 0 */
	unsigned started;  /* extra threads running */
	pthread_t tid[SERVE_THREADS_MAX];
	int result;        /* first failure of an extra thread (-errno), or 1: the kernel side is gone */
	pthread_mutex_t lock;
};

static bool threads_may_start;

void frontend_threads_may_start(void)
{
	threads_may_start = true;
}

/* One request of session se, if one is there: 1 handled, 0 none (EAGAIN,
 * EINTR), or <0: the session ended (-ENODEV and 0 reads: the kernel side is
 * gone, reported as 1 by the callers) or failed. */
static int serve_one(struct fuse_session *se, struct fuse_buf *buf)
{
	int r = fuse_session_receive_buf(se, buf);
	if (r == -EINTR || r == -EAGAIN)
		return 0;
	if (r == 0 || r == -ENODEV)
		return -ENODEV;
	if (r < 0)
		return r;
	fuse_session_process_buf(se, buf);
	return 1;
}

/* Serve se until no request is left, at most SERVE_BATCH of them. With
 * poll_ns, this thread is the poller: when none is left it keeps looking
 * for up to poll_ns after the last one before it goes back to sleep. */
static int serve_batch(struct fuse_session *se, struct fuse_buf *buf, uint64_t poll_ns)
{
	uint64_t idle_since = 0;
	for (int i = 0; i < SERVE_BATCH;) {
		int r = serve_one(se, buf);
		if (r < 0)
			return r;
		if (r > 0) {
			i++;
			idle_since = 0;
			continue;
		}
		if (!poll_ns)
			return 0;
		uint64_t t = now_ns();
		if (!idle_since)
			idle_since = t;
		else if (t - idle_since > poll_ns)
			return 0;
		/* An app woken by this thread's reply may be waiting for
		 * this CPU: let it run first (one run of the benchmark: the
		 * streams 1.1x to 2.2x faster than with a plain spin). */
		sched_yield();
	}
	return 0;
}

/* --busy-poll: one thread at a time polls; the others sleep in epoll. */
static uint64_t poll_window(struct server *sv)
{
	if (!sv->poll_ns || atomic_exchange(&sv->polling, true))
		return 0;
	return sv->poll_ns;
}

static int serve_data(struct server *sv, struct fuse_session *se, struct fuse_buf *buf)
{
	uint64_t window = poll_window(sv);
	int r = serve_batch(se, buf, window);
	if (window)
		atomic_store(&sv->polling, false);
	return r;
}

static int epoll_add(int ep, int fd, uint32_t events, uint64_t tag)
{
	struct epoll_event ev = { .events = events, .data.u64 = tag };
	return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

static void *serve_extra(void *arg)
{
	struct server *sv = arg;
	struct fuse_session *se = sv->se[0];
	struct fuse_buf buf;
	memset(&buf, 0, sizeof(buf));
	int result = 0;
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		result = -errno;
	if (result == 0)
		result = epoll_add(ep, fuse_session_fd(se), EPOLLIN | EPOLLEXCLUSIVE, 0);
	if (result == 0)
		result = epoll_add(ep, sv->stop_fd, EPOLLIN, 1);
	while (result == 0 && !fuse_session_exited(se)) {
		struct epoll_event ev[2];
		int k = epoll_wait(ep, ev, 2, -1);
		if (k < 0) {
			if (errno != EINTR)
				result = -errno;
			continue;
		}
		bool stop = false;
		for (int i = 0; i < k; i++)
			stop |= ev[i].data.u64 == 1;
		if (stop)
			break;
		int r = serve_data(sv, se, &buf);
		if (r < 0)
			result = r == -ENODEV ? 1 : r;
	}
	if (result != 0) {
		pthread_mutex_lock(&sv->lock);
		if (sv->result == 0)
			sv->result = result;
		pthread_mutex_unlock(&sv->lock);
		fuse_session_exit(se); /* thread 0 sees it at its next wake-up */
		uint64_t one = 1;
		if (write(sv->stop_fd, &one, sizeof(one)) < 0) {
			/* the counter cannot overflow from a few writes */
		}
	}
	if (ep >= 0)
		close(ep);
	free(buf.mem);
	outbox_free();
	return NULL;
}

/* Start the extra threads, once allowed. Failing to start one is logged and
 * leaves fewer threads serving, not a daemon that stops. */
static void start_extra_threads(struct server *sv)
{
	while (sv->started + 1 < sv->threads) {
		int r = daemon_thread_create(&sv->tid[sv->started], NULL, serve_extra, sv);
		if (r < 0) {
			log_warn("cannot start serving thread %u of %u: %s; serving with %u", sv->started + 2,
				 sv->threads, strerror(-r), sv->started + 1);
			sv->threads = sv->started + 1;
			break;
		}
		sv->started++;
		atomic_store(&outbox_copies_large, true);
	}
	if (sv->threads > 1)
		log_debug("serving with %u threads", sv->threads);
}

static void stop_extra_threads(struct server *sv)
{
	uint64_t one = 1;
	if (sv->started && write(sv->stop_fd, &one, sizeof(one)) < 0)
		log_error("cannot stop the serving threads: %s", strerror(errno));
	for (unsigned i = 0; i < sv->started; i++)
		pthread_join(sv->tid[i], NULL);
	/* Take the word back: a loop that goes on after a failed handover
	 * would find stop_fd ready forever, spin, and (epoll_pwait delivers
	 * signals only when it waits) never take SIGTERM or SIGHUP again. */
	uint64_t word;
	if (sv->started && read(sv->stop_fd, &word, sizeof(word)) < 0) {
		/* nothing written (EAGAIN): nothing to take back */
	}
	sv->started = 0;
	atomic_store(&outbox_copies_large, false);
}

/* SIGHUP: a handover is asked for (restart.c). */
static volatile sig_atomic_t handover_asked;

static void on_sighup(int sig)
{
	(void)sig;
	handover_asked = 1;
}

/* SIGTERM, SIGINT: the loop stops between requests. Not libfuse's handler:
 * it marks the session exited at once, and fuse_session_receive_buf drops a
 * request it reads after that (its caller would wait for ever on the
 * connection the fd store keeps for the next start). */
static volatile sig_atomic_t stop_asked;

static void on_stop(int sig)
{
	(void)sig;
	stop_asked = 1;
}

/* In place of libfuse's handler (none where the signal is ignored: a
 * shell's background job keeps ignoring SIGINT). */
static void catch_stop_signal(int sig)
{
	struct sigaction old, sa = { .sa_handler = on_stop };
	sigemptyset(&sa.sa_mask);
	if (sigaction(sig, NULL, &old) == 0 && old.sa_handler != SIG_IGN)
		sigaction(sig, &sa, NULL);
}

/* epoll_pwait lets a signal in only when it returns no event (the kernel
 * puts the old mask back before returning events): under a load that always
 * has a request ready, a SIGHUP or SIGTERM would wait for ever. One that is
 * pending is taken here: dequeued (the other threads block every signal, so
 * a pending one is this thread's) and given to its handler, as the kernel
 * would. Not with sigsuspend: a signal the daemon ignores (SIGINT from a
 * shell's background job) is pending all the same while blocked, and
 * sigsuspend would wait for ever after dropping it. */
static void take_pending_signals(const sigset_t *watched)
{
	sigset_t pending;
	if (sigpending(&pending) < 0)
		return;
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		int sig = sigs[i];
		if (!sigismember(watched, sig) || !sigismember(&pending, sig))
			continue;
		sigset_t one;
		sigemptyset(&one);
		sigaddset(&one, sig);
		siginfo_t info;
		const struct timespec now = { 0, 0 };
		if (sigtimedwait(&one, &info, &now) != sig)
			continue;
		struct sigaction sa;
		if (sigaction(sig, NULL, &sa) < 0)
			continue;
		if (sa.sa_flags & SA_SIGINFO) {
			sa.sa_sigaction(sig, &info, NULL);
		} else if (sa.sa_handler == SIG_DFL) {
			/* Its default action (the end): as if it had come in. */
			pthread_sigmask(SIG_UNBLOCK, &one, NULL);
			raise(sig);
		} else if (sa.sa_handler != SIG_IGN) {
			sa.sa_handler(sig);
		}
	}
}

static int serve_loop(struct fuse_session **se, int n, struct device *dev, const struct daemon_config *cfg)
{
	unsigned threads = cfg->threads, poll_us = cfg->busy_poll_us;
	sigset_t stop, old_mask, open_mask;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM); /* the signals the loop takes (on_stop, on_sighup) */
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	int r = pthread_sigmask(SIG_BLOCK, &stop, &old_mask);
	if (r != 0)
		return -r;
	open_mask = old_mask;
	sigdelset(&open_mask, SIGTERM);
	sigdelset(&open_mask, SIGINT);
	sigdelset(&open_mask, SIGHUP);

	struct server sv = {
		.se = se,
		.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
		.threads = threads < 1 ? 1 : threads > SERVE_THREADS_MAX ? SERVE_THREADS_MAX : threads,
		.poll_ns = (uint64_t)poll_us * 1000,
		.lock = PTHREAD_MUTEX_INITIALIZER,
	};
	struct fuse_buf bufs[2];
	memset(bufs, 0, sizeof(bufs));
	int result = sv.stop_fd < 0 ? -errno : 0;
	int ep = result == 0 ? epoll_create1(EPOLL_CLOEXEC) : -1;
	if (result == 0 && ep < 0)
		result = -errno;
	for (int i = 0; i < n && result == 0; i++) {
		int fd = fuse_session_fd(se[i]);
		int flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
			result = -errno;
		else
			result = epoll_add(ep, fd, EPOLLIN | (i == 0 ? EPOLLEXCLUSIVE : 0), (uint64_t)i);
	}
	if (result == 0)
		result = epoll_add(ep, sv.stop_fd, EPOLLIN, (uint64_t)n);
	while (!fuse_session_exited(se[0]) && result == 0) {
		if (threads_may_start && sv.started + 1 < sv.threads)
			start_extra_threads(&sv);
		struct epoll_event ev[3];
		int k = 0;
		/* A signal taken before the loop blocked them waits for no event. */
		if (!stop_asked && !handover_asked) {
			k = epoll_pwait(ep, ev, 3, -1, &open_mask);
			if (k > 0)
				take_pending_signals(&stop);
		}
		if (stop_asked) {
			/* The extra threads end after the request each is on;
			 * what comes later stays in the kernel. */
			stop_extra_threads(&sv);
			for (int i = 0; i < n; i++)
				fuse_session_exit(se[i]);
			break;
		}
		if (handover_asked && !fuse_session_exited(se[0])) {
			/* Nothing is being served while the state is taken:
			 * the extra threads are joined, and this one is here.
			 * Returns only if the new image could not start. */
			handover_asked = 0;
			stop_extra_threads(&sv);
			restart_handover(dev, cfg);
			continue;
		}
		if (k < 0) {
			if (errno != EINTR)
				result = -errno;
			continue;
		}
		for (int e = 0; e < k && result == 0; e++) {
			uint64_t i = ev[e].data.u64;
			if (i >= (uint64_t)n)
				continue; /* an extra thread failed: the session is marked exited */
			r = i == 0 ? serve_data(&sv, se[0], &bufs[0]) : serve_batch(se[i], &bufs[i], 0);
			if (r < 0)
				result = r == -ENODEV ? 1 : r; /* 1: the kernel side is gone */
		}
	}
	stop_extra_threads(&sv);
	if (result == 0)
		result = sv.result;
	if (ep >= 0)
		close(ep);
	if (sv.stop_fd >= 0)
		close(sv.stop_fd);
	for (int i = 0; i < n; i++)
		free(bufs[i].mem);
	outbox_free();
	pthread_mutex_destroy(&sv.lock);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	return result > 0 ? 0 : result;
}

int frontend_drop_and_notify(struct device *dev, const struct daemon_config *cfg, const char *what)
{
	/* An image that took over by exec runs as the old one did: already
	 * dropped. One started from the fd store is root again: it drops. */
	if (cfg->run_as.set && !restart_dropped_already()) {
		device_before_fork(dev);
		int r = service_drop_privileges(&cfg->run_as);
		int t = device_after_fork(dev);
		if (r < 0)
			return r;
		if (t < 0) {
			log_error("%s: cannot start the timer thread: %s", what, strerror(-t));
			return t;
		}
	}
	char status[PATH_MAX + 16];
	snprintf(status, sizeof(status), "serving %s", what);
	service_notify_ready(status);
	return 0;
}

/* Into the background, as fuse_daemonize does (a child in a new session,
 * in /, its stdio on /dev/null; the parent exits 0 once the child is set
 * up), with one difference: the stop and restart signals are held back from
 * the start (main.c), so one sent to the parent meanwhile is pending there
 * and would end with it. The parent hands each on to the daemon. 0, or
 * -errno in the parent when it could not fork. */
static int daemonize(void)
{
	int ready[2];
	if (pipe2(ready, O_CLOEXEC) < 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(ready[0]);
		close(ready[1]);
		return -e;
	}
	if (pid > 0) {
		close(ready[1]);
		char c;
		ssize_t got;
		while ((got = read(ready[0], &c, 1)) < 0 && errno == EINTR) {
		}
		sigset_t held;
		sigemptyset(&held);
		sigaddset(&held, SIGTERM);
		sigaddset(&held, SIGINT);
		sigaddset(&held, SIGHUP);
		const struct timespec now = { 0, 0 };
		for (int sig; (sig = sigtimedwait(&held, NULL, &now)) > 0;)
			kill(pid, sig);
		_exit(got == 1 ? 0 : 1);
	}
	close(ready[0]);
	if (setsid() < 0)
		log_warn("setsid: %s", strerror(errno));
	if (chdir("/") < 0)
		log_warn("chdir /: %s", strerror(errno));
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(null, STDERR_FILENO);
		if (null > STDERR_FILENO)
			close(null);
	}
	if (write(ready[1], "k", 1) != 1) {
		/* the parent is gone: it exits 1 (nothing read), we serve on */
	}
	close(ready[1]);
	return 0;
}

int frontend_serve(struct fuse_session **se, int n, struct device *dev, const struct daemon_config *cfg,
		   const char *what)
{
	if (fuse_set_signal_handlers(se[0]) < 0) {
		fprintf(stderr, "ringdevd: cannot install signal handlers\n");
		return 1;
	}
	catch_stop_signal(SIGTERM);
	catch_stop_signal(SIGINT);
	struct sigaction hup = { .sa_handler = on_sighup };
	sigemptyset(&hup.sa_mask);
	sigaction(SIGHUP, &hup, NULL);
	if (!cfg->foreground && !restart_resuming()) {
		/* The parent exits: only this thread goes on into the
		 * daemon, the core's are started again there. */
		device_before_fork(dev);
		int e = daemonize();
		if (e < 0) {
			log_error("%s: cannot go into the background: %s", what, strerror(-e));
			fuse_remove_signal_handlers(se[0]);
			return 1;
		}
		log_use_syslog("ringdevd");
		int r = device_after_fork(dev);
		if (r < 0) {
			log_error("%s: cannot start the timer thread: %s", what, strerror(-r));
			fuse_remove_signal_handlers(se[0]);
			return 1;
		}
	}
	/* The mount is there now; CUSE nodes only once the loop answered INIT. */
	if (cfg->dev.frontend == RINGDEV_FRONTEND_FUSE && frontend_drop_and_notify(dev, cfg, what) < 0) {
		device_shutdown(dev);
		fuse_remove_signal_handlers(se[0]);
		return 1;
	}
	if (restart_resuming())
		restart_resume_done(dev);
	int r = serve_loop(se, n, dev, cfg);
	service_notify_stopping();
	restart_reap_guard();
	if (r < 0)
		log_error("%s: session failed: %s", what, strerror(-r));
	else if (restart_stop_into_store(dev, cfg))
		return 0; /* everything waits for the next start: nothing is answered */
	else
		log_info("%s: shutting down", what);
	device_shutdown(dev); /* parked requests: ESHUTDOWN, while the fds still work */
	fuse_remove_signal_handlers(se[0]);
	return r < 0 ? 1 : 0;
}
