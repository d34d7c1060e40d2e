/* SPDX-License-Identifier: MIT */
/*
 * pipe.c - one named pipe: its ring, its policies and its queues of parked
 * readers and writers.
 *
 * Data path: a read that finds data is answered straight from the ring
 * (zero-copy iovecs), a write that fits is copied in; anything else parks.
 * After every change pipe_settle() serves parked writers and readers in
 * FIFO order until neither can make progress, then tells pollers whose
 * readiness changed. Parked writers own a copy of their data because only
 * the request outlives the frontend's callback.
 *
 * Message pipes store each message as a 4-byte length (host order, private
 * to this file) followed by its payload, in the same ring.
 *
 * Everything here runs under the device lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "log.h"

int pipe_new(struct device *dev, const struct pipe_settings *set, const char *name, size_t len, struct pipe **out)
{
	int r = limit_charge(&dev->limits, LIMIT_PIPES, set->uid, 1, name);
	if (r < 0)
		return r;
	struct pipe *p = calloc(1, sizeof(*p));
	if (!p) {
		limit_uncharge(&dev->limits, LIMIT_PIPES, set->uid, 1);
		return -ENOMEM;
	}
	list_init(&p->opens);
	list_init(&p->readq);
	list_init(&p->writeq);
	list_init(&p->pollers);
	list_init(&p->hold_link);
	memcpy(p->name, name, len);
	p->name[len] = '\0';
	p->name_len = len;
	p->kind = set->kind;
	p->policy = set->policy;
	p->mode = set->mode;
	p->uid = set->uid;
	p->gid = set->gid;
	p->ring.capacity = set->capacity;
	p->ring.arena = dev->arena; /* its storage, once allocated, survives a re-exec */
	p->atime = p->mtime = p->ctime = now_realtime();
	if (pipe_table_add(&dev->table, p) < 0) {
		limit_uncharge(&dev->limits, LIMIT_PIPES, set->uid, 1);
		free(p);
		return -ENOMEM;
	}
	dev->count.pipes_created++;
	log_debug("pipe %s created (ino %llu, %s, capacity %llu, owner %u)", p->name, (unsigned long long)p->ino,
		  p->kind == RINGDEV_KIND_MESSAGE ? "message" : "stream", (unsigned long long)p->ring.capacity, p->uid);
	*out = p;
	return 0;
}

int pipe_set_owner(struct device *dev, struct pipe *p, uint32_t uid, uint32_t gid)
{
	if (uid != p->uid) {
		int r = limit_move(&dev->limits, LIMIT_PIPES, p->uid, uid, 1);
		if (r < 0)
			return r;
		r = limit_move(&dev->limits, LIMIT_MEMORY, p->uid, uid, p->allocated);
		if (r < 0) {
			limit_move(&dev->limits, LIMIT_PIPES, uid, p->uid, 1);
			return r;
		}
	}
	if (uid != p->uid || gid != p->gid)
		pipe_void_hold(p);
	p->uid = uid;
	p->gid = gid;
	return 0;
}

void pipe_hold(struct device *dev, struct pipe *p, uint32_t uid, uint64_t deadline_ns)
{
	p->hold_uid = uid;
	p->hold_void = false;
	p->hold_deadline_ns = deadline_ns;
	if (!list_linked(&p->hold_link))
		list_add_tail(&dev->table.held, &p->hold_link);
	timer_kick(dev);
}

void pipe_end_hold(struct pipe *p)
{
	if (p->hold_deadline_ns) {
		p->hold_deadline_ns = 0;
		list_unlink(&p->hold_link);
	}
}

void pipe_void_hold(struct pipe *p)
{
	p->hold_void = true;
}

void pipe_set_mode(struct pipe *p, uint32_t mode)
{
	if (mode != p->mode)
		pipe_void_hold(p);
	p->mode = mode;
}

bool pipe_release_hold(struct device *dev, struct pipe *p)
{
	if (!p->hold_deadline_ns)
		return false;
	p->hold_deadline_ns = 0;
	list_unlink(&p->hold_link);
	return pipe_collect(dev, p);
}

uint64_t pipe_expire_holds(struct device *dev, uint64_t now)
{
	uint64_t next = UINT64_MAX;
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->table.held) {
		struct pipe *p = list_entry(pos, struct pipe, hold_link);
		if (p->hold_deadline_ns <= now) {
			log_info("pipe %s: its creator never opened it: hold released", p->name);
			pipe_release_hold(dev, p);
		} else if (p->hold_deadline_ns < next) {
			next = p->hold_deadline_ns;
		}
	}
	return next;
}

void pipe_end_waiters(struct device *dev, struct pipe *p, int err)
{
	struct list_node *first;
	while ((first = list_first(&p->readq)))
		parked_end(dev, list_entry(first, struct parked_req, queue_link), err);
	while ((first = list_first(&p->writeq)))
		parked_end(dev, list_entry(first, struct parked_req, queue_link), err);
}

void pipe_destroy(struct device *dev, struct pipe *p)
{
	pipe_end_waiters(dev, p, EIDRM);
	list_unlink(&p->hold_link);
	pipe_table_remove(&dev->table, p);
	limit_uncharge(&dev->limits, LIMIT_MEMORY, p->uid, p->allocated);
	limit_uncharge(&dev->limits, LIMIT_PIPES, p->uid, 1);
	ring_free_storage(&p->ring);
	dev->count.pipes_removed++;
	log_debug("pipe %s removed", p->name);
	free(p);
}

bool pipe_collect(struct device *dev, struct pipe *p)
{
	if (p->handles > 0 || p->hold_deadline_ns)
		return false;
	if (p->linked && (p->persistent || p->ring.used > 0))
		return false;
	pipe_destroy(dev, p);
	return true;
}

static bool is_message(const struct pipe *p)
{
	return p->kind == RINGDEV_KIND_MESSAGE;
}

uint64_t pipe_queued_payload(const struct pipe *p)
{
	return p->ring.used - (is_message(p) ? p->queued_messages * RINGDEV_MESSAGE_HEADER : 0);
}

static uint32_t message_peek_len(const struct pipe *p)
{
	uint32_t len;
	ring_peek(&p->ring, 0, &len, sizeof(len));
	return len;
}

uint64_t pipe_next_read_size(const struct pipe *p)
{
	if (!is_message(p))
		return p->ring.used;
	return p->queued_messages ? message_peek_len(p) : 0;
}

bool pipe_eof(const struct pipe *p)
{
	return p->ring.used == 0 && p->writers == 0 && p->had_writer;
}

/* Ring storage is allocated at the first write, against --max-memory. */
static int pipe_ensure_ring(struct device *dev, struct pipe *p)
{
	if (p->ring.buf)
		return 0;
	size_t cap = p->ring.capacity;
	int r = limit_charge(&dev->limits, LIMIT_MEMORY, p->uid, cap, p->name);
	if (r < 0)
		return r;
	r = ring_alloc(&p->ring, cap);
	if (r < 0) {
		limit_uncharge(&dev->limits, LIMIT_MEMORY, p->uid, cap);
		return r;
	}
	p->allocated = cap;
	return 0;
}

static void count_in(struct device *dev, struct pipe *p, struct open_ctx *ctx, size_t n)
{
	p->bytes_in += n;
	dev->count.bytes_in += n;
	if (ctx)
		ctx->bytes_in += n;
	p->mtime = now_realtime();
}

static void count_out(struct device *dev, struct pipe *p, struct open_ctx *ctx, size_t n)
{
	p->bytes_out += n;
	p->reads++;
	dev->count.bytes_out += n;
	dev->count.reads++;
	ctx->bytes_out += n;
	p->atime = now_realtime();
}

static void count_write_done(struct device *dev, struct pipe *p)
{
	p->writes++;
	dev->count.writes++;
}

static void count_drop(struct device *dev, struct pipe *p, uint64_t bytes, uint64_t messages)
{
	p->dropped_bytes += bytes;
	p->dropped_messages += messages;
	dev->count.dropped_bytes += bytes;
	dev->count.dropped_messages += messages;
}

static void put_message(struct pipe *p, const void *buf, size_t n)
{
	uint32_t len = (uint32_t)n;
	ring_write(&p->ring, &len, sizeof(len));
	ring_write(&p->ring, buf, n);
	p->queued_messages++;
}

static void drop_oldest_message(struct device *dev, struct pipe *p)
{
	uint32_t len = message_peek_len(p);
	ring_consume(&p->ring, RINGDEV_MESSAGE_HEADER + len);
	p->queued_messages--;
	count_drop(dev, p, len, 1);
}

/* Overwrite policy: make room by dropping the oldest data, then store. */
static void write_overwrite(struct device *dev, struct pipe *p, struct open_ctx *ctx, const uint8_t *buf, size_t n)
{
	if (is_message(p)) {
		while (ring_free(&p->ring) < n + RINGDEV_MESSAGE_HEADER)
			drop_oldest_message(dev, p);
		put_message(p, buf, n);
	} else if (n >= p->ring.capacity) {
		size_t keep = p->ring.capacity;
		count_drop(dev, p, p->ring.used + (n - keep), 0);
		ring_consume(&p->ring, p->ring.used);
		ring_write(&p->ring, buf + (n - keep), keep);
	} else {
		size_t free_now = ring_free(&p->ring);
		if (free_now < n) {
			ring_consume(&p->ring, n - free_now);
			count_drop(dev, p, n - free_now, 0);
		}
		ring_write(&p->ring, buf, n);
	}
	count_in(dev, p, ctx, n);
}

/* Answer a read from the ring. Returns -EMSGSIZE (nothing consumed) when a
 * message does not fit the reader's buffer. */
static int deliver(struct device *dev, struct pipe *p, struct open_ctx *ctx, void *req, size_t size)
{
	struct iovec iov[2];
	size_t n, consumed;
	int cnt;
	if (is_message(p)) {
		n = message_peek_len(p);
		if (n > size)
			return -EMSGSIZE;
		cnt = ring_peek_iov(&p->ring, RINGDEV_MESSAGE_HEADER, n, iov);
		consumed = n + RINGDEV_MESSAGE_HEADER;
	} else {
		n = size < p->ring.used ? size : p->ring.used;
		cnt = ring_peek_iov(&p->ring, 0, n, iov);
		consumed = n;
	}
	dev->ops->reply_data(req, iov, cnt);
	ring_consume(&p->ring, consumed);
	if (is_message(p))
		p->queued_messages--;
	count_out(dev, p, ctx, n);
	return 0;
}

/* A request whose caller was interrupted before it could park ends here
 * (after parking, device_interrupt ends it). */
static bool ended_by_interrupt(struct device *dev, void *req)
{
	if (!dev->ops->req_interrupted(req))
		return false;
	dev->count.interrupts++;
	dev->ops->reply_error(req, EINTR);
	return true;
}

void pipe_read(struct device *dev, struct open_ctx *ctx, void *req, size_t size, int oflags, bool continuation)
{
	struct pipe *p = ctx->pipe;
	if (!ctx->reader) {
		dev->ops->reply_error(req, EBADF);
		return;
	}
	if (size == 0) {
		dev->ops->reply_data(req, NULL, 0);
		return;
	}
	/* A split read never joins two messages into one buffer. */
	if (continuation && is_message(p)) {
		dev->ops->reply_data(req, NULL, 0);
		return;
	}
	if (p->ring.used > 0) {
		if (deliver(dev, p, ctx, req, size) < 0)
			dev->ops->reply_error(req, EMSGSIZE);
		else
			pipe_settle(dev, p);
		return;
	}
	/* Empty. A continuation chunk returns what the first chunk got. */
	if (continuation || pipe_eof(p)) {
		dev->ops->reply_data(req, NULL, 0);
		return;
	}
	if (oflags & O_NONBLOCK) {
		dev->ops->reply_error(req, EAGAIN);
		return;
	}
	if (ended_by_interrupt(dev, req))
		return;
	int err;
	struct parked_req *pk = parked_new(dev, &pipe_parked_read, req, ctx, &err);
	if (!pk) {
		dev->ops->reply_error(req, err);
		return;
	}
	pk->u.read.size = size;
	list_add_tail(&p->readq, &pk->queue_link);
}

static void write_complete(struct device *dev, struct pipe *p, void *req, size_t n)
{
	count_write_done(dev, p);
	dev->ops->reply_written(req, n);
}

/* Append one write's bytes: a message with its header, or stream bytes. */
static void put_payload(struct pipe *p, const void *buf, size_t n)
{
	if (is_message(p))
		put_message(p, buf, n);
	else
		ring_write(&p->ring, buf, n);
}

/* A reader waits on an empty ring: answer it straight from the write's
 * buffer, before the writer (the reader is the one the data is for), and
 * skip the copy into the ring and out again. A stream reader takes what
 * fits its buffer, a message reader the whole message or nothing (a message
 * larger than its buffer goes through the ring, where the reader gets
 * EMSGSIZE as always). Returns the bytes handed over. */
static size_t hand_to_reader(struct device *dev, struct pipe *p, const uint8_t *buf, size_t n)
{
	struct list_node *first = list_first(&p->readq);
	if (!first || p->ring.used > 0)
		return 0;
	struct parked_req *rd = list_entry(first, struct parked_req, queue_link);
	size_t size = rd->u.read.size;
	size_t m = is_message(p) ? (n <= size ? n : 0) : (n < size ? n : size);
	if (m == 0)
		return 0;
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = m };
	/* buf is the write's own, valid until the frontend's handler returns */
	dev->ops->reply_data_held(rd->req, &iov, 1);
	count_out(dev, p, rd->ctx, m);
	parked_free(dev, rd);
	return m;
}

/* A write that fits entirely: hand it to a waiting reader or store it,
 * answer it, serve whoever else waits. */
static void store_whole(struct device *dev, struct pipe *p, struct open_ctx *ctx, void *req, const void *buf,
			size_t n)
{
	count_in(dev, p, ctx, n);
	size_t handed = hand_to_reader(dev, p, buf, n);
	if (handed < n)
		put_payload(p, (const uint8_t *)buf + handed, n - handed);
	write_complete(dev, p, req, n);
	pipe_settle(dev, p);
}

/* Park a write that must wait. Only the request outlives the frontend's
 * handler, so the waiting write keeps a copy of its bytes: memory the daemon
 * holds for the writer, charged to the handle's user against the memory
 * limits like a ring (a write of up to 1 MiB per FUSE request, any number of
 * them: on CUSE, or through handles ATTACHed from other pipe files, the
 * kernel's per-inode write lock does not bound them). A write that may go
 * in parts and would pass the limits with all its bytes waits with the part
 * its user may still hold, and returns that count (a short write, as the
 * app's next write goes on from there); one that must go whole, or may hold
 * nothing, fails with ENOBUFS, as one past --max-parked does: it could not
 * wait. */
static void park_write(struct device *dev, struct pipe *p, struct open_ctx *ctx, void *req, const void *buf,
		       size_t size, bool all_or_nothing)
{
	int err;
	uint32_t uid = ctx->cred.uid;
	size_t keep = size;
	if (!all_or_nothing) {
		uint64_t left = limit_available(&dev->limits, LIMIT_MEMORY, uid);
		if (left < keep)
			keep = left ? (size_t)left : 1; /* 1: refused below, and counted */
	}
	int r = limit_charge(&dev->limits, LIMIT_MEMORY, uid, keep, "the data of a write that would wait");
	if (r < 0) {
		dev->ops->reply_error(req, r == -ENOSPC ? ENOBUFS : -r);
		return;
	}
	struct parked_req *pk = parked_new(dev, &pipe_parked_write, req, ctx, &err);
	if (!pk) {
		limit_uncharge(&dev->limits, LIMIT_MEMORY, uid, keep);
		dev->ops->reply_error(req, err);
		return;
	}
	/* From here write_release gives the charge (total) back, with the copy. */
	pk->u.write.total = keep;
	if (!(pk->u.write.data = malloc(keep))) {
		parked_free(dev, pk);
		dev->ops->reply_error(req, ENOMEM);
		return;
	}
	memcpy(pk->u.write.data, buf, keep);
	pk->u.write.all_or_nothing = all_or_nothing;
	list_add_tail(&p->writeq, &pk->queue_link);
	pipe_settle(dev, p); /* a partial write moves what fits now */
}

void pipe_write(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size, int oflags,
		bool continuation)
{
	struct pipe *p = ctx->pipe;
	bool message = is_message(p);
	int r;
	if (!ctx->writer) {
		dev->ops->reply_error(req, EBADF);
		return;
	}
	p->had_writer = true; /* for the EOF rule, see ctx_detach_pipe */
	if (size == 0) {
		dev->ops->reply_written(req, 0);
		return;
	}
	if (message && (size > RINGDEV_MESSAGE_MAX || size + RINGDEV_MESSAGE_HEADER > p->ring.capacity)) {
		dev->ops->reply_error(req, EMSGSIZE);
		return;
	}
	r = pipe_ensure_ring(dev, p);
	if (r < 0) {
		dev->ops->reply_error(req, -r);
		return;
	}
	size_t need = message ? size + RINGDEV_MESSAGE_HEADER : size;
	size_t free_now = ring_free(&p->ring);

	if (p->policy == RINGDEV_POLICY_OVERWRITE) {
		write_overwrite(dev, p, ctx, buf, size);
		write_complete(dev, p, req, size);
		pipe_settle(dev, p);
		return;
	}
	if (p->policy == RINGDEV_POLICY_FAIL) {
		if (!message && size > p->ring.capacity) {
			dev->ops->reply_error(req, EFBIG);
		} else if (need > free_now) {
			dev->ops->reply_error(req, EAGAIN);
		} else {
			store_whole(dev, p, ctx, req, buf, size);
		}
		return;
	}

	/* Block policy. Parked writers keep their order: nothing overtakes them. */
	bool queue_empty = list_empty(&p->writeq);
	if (queue_empty && need <= free_now) {
		store_whole(dev, p, ctx, req, buf, size);
		return;
	}
	/* A later piece of a write(2) the kernel split: the call placed bytes
	 * already, so it is a write larger than one request, and may go in
	 * parts like one larger than the capacity (its first piece was judged
	 * all-or-nothing: the kernel tells no total, see device_write_piece). */
	bool all_or_nothing = message || (size <= p->ring.capacity && !continuation);
	if (oflags & O_NONBLOCK) {
		/* A larger-than-capacity stream write may be partial, as with pipes. */
		if (!all_or_nothing && queue_empty && free_now > 0) {
			ring_write(&p->ring, buf, free_now);
			count_in(dev, p, ctx, free_now);
			write_complete(dev, p, req, free_now);
			pipe_settle(dev, p);
		} else {
			dev->ops->reply_error(req, EAGAIN);
		}
		return;
	}
	if (ended_by_interrupt(dev, req))
		return;
	park_write(dev, p, ctx, req, buf, size, all_or_nothing);
}

/* ---- the parked kinds of this file: readers and writers of a pipe ---- */

static bool on_the_pipe(const struct parked_req *p)
{
	return true; /* a pipe's queue: leaving the pipe ends it */
}

/* A write that already moved bytes answers their count, as a pipe's
 * interrupted write does. */
static void write_end(struct device *dev, struct parked_req *p, int err)
{
	if (p->u.write.done > 0)
		dev->ops->reply_written(p->req, p->u.write.done);
	else
		dev->ops->reply_error(p->req, err);
	parked_free(dev, p);
}

static void write_release(struct device *dev, struct parked_req *p)
{
	free(p->u.write.data);
	limit_uncharge(&dev->limits, LIMIT_MEMORY, p->ctx->cred.uid, p->u.write.total);
}

const struct parked_ops pipe_parked_read = {
	.kind = PARKED_READ,
	.charged = true,
	.pipe_bound = on_the_pipe,
};

const struct parked_ops pipe_parked_write = {
	.kind = PARKED_WRITE,
	.charged = true,
	.end = write_end,
	.release = write_release,
	.pipe_bound = on_the_pipe,
};

static bool serve_writers(struct device *dev, struct pipe *p)
{
	bool progress = false;
	struct list_node *first;
	while ((first = list_first(&p->writeq))) {
		struct parked_req *w = list_entry(first, struct parked_req, queue_link);
		const uint8_t *data = w->u.write.data + w->u.write.done;
		size_t remaining = w->u.write.total - w->u.write.done;
		bool message = is_message(p);
		if (p->policy == RINGDEV_POLICY_OVERWRITE) { /* policy changed while parked */
			write_overwrite(dev, p, w->ctx, data, remaining);
			write_complete(dev, p, w->req, w->u.write.total);
			parked_free(dev, w);
			progress = true;
			continue;
		}
		if (p->policy == RINGDEV_POLICY_FAIL || (message && remaining + RINGDEV_MESSAGE_HEADER > p->ring.capacity)) {
			parked_end(dev, w, p->policy == RINGDEV_POLICY_FAIL ? EAGAIN : EMSGSIZE);
			progress = true;
			continue;
		}
		size_t free_now = ring_free(&p->ring);
		if (w->u.write.all_or_nothing && !message && remaining > p->ring.capacity)
			w->u.write.all_or_nothing = false; /* shrunk below it: may go in parts now */
		if (w->u.write.all_or_nothing) {
			size_t need = message ? remaining + RINGDEV_MESSAGE_HEADER : remaining;
			if (need > free_now)
				break;
			put_payload(p, data, remaining);
			count_in(dev, p, w->ctx, remaining);
			write_complete(dev, p, w->req, w->u.write.total);
			parked_free(dev, w);
			progress = true;
			continue;
		}
		size_t n = remaining < free_now ? remaining : free_now;
		if (n == 0)
			break;
		ring_write(&p->ring, data, n);
		count_in(dev, p, w->ctx, n);
		w->u.write.done += n;
		progress = true;
		if (w->u.write.done < w->u.write.total)
			break;
		write_complete(dev, p, w->req, w->u.write.total);
		parked_free(dev, w);
	}
	return progress;
}

static bool serve_readers(struct device *dev, struct pipe *p)
{
	bool progress = false;
	struct list_node *first;
	while ((first = list_first(&p->readq))) {
		struct parked_req *rd = list_entry(first, struct parked_req, queue_link);
		if (p->ring.used > 0) {
			if (deliver(dev, p, rd->ctx, rd->req, rd->u.read.size) < 0)
				dev->ops->reply_error(rd->req, EMSGSIZE);
		} else if (pipe_eof(p)) {
			dev->ops->reply_data(rd->req, NULL, 0);
		} else {
			break;
		}
		parked_free(dev, rd);
		progress = true;
	}
	return progress;
}

unsigned pipe_poll_mask(const struct pipe *p, const struct open_ctx *ctx)
{
	unsigned mask = 0;
	if (ctx->reader) {
		if (p->ring.used > 0)
			mask |= POLLIN | POLLRDNORM;
		else if (pipe_eof(p))
			mask |= POLLHUP;
	}
	if (ctx->writer) {
		size_t want = p->ring.capacity / 2 < 4096 ? p->ring.capacity / 2 : 4096;
		if (is_message(p))
			want += RINGDEV_MESSAGE_HEADER;
		if (p->policy == RINGDEV_POLICY_OVERWRITE ||
		    (list_empty(&p->writeq) && ring_free(&p->ring) >= want))
			mask |= POLLOUT | POLLWRNORM;
	}
	return mask;
}

void ctx_poll_keep(struct device *dev, struct open_ctx *ctx, struct list_node *pollers, void *ph, unsigned mask)
{
	if (ctx->ph) {
		dev->ops->poll_destroy(ctx->ph);
	} else {
		if (pollers)
			list_add_tail(pollers, &ctx->poll_link);
		dev->handles.pollers++;
	}
	ctx->ph = ph;
	ctx->poll_mask = mask;
}

/* Forget ctx's poll handle, waking its poller first or not. */
static void ctx_poll_end(struct device *dev, struct open_ctx *ctx, bool wake)
{
	if (!ctx->ph)
		return;
	if (wake)
		dev->ops->poll_notify(ctx->ph); /* one wake-up per poll: the kernel polls again with a new handle */
	else
		dev->ops->poll_destroy(ctx->ph);
	ctx->ph = NULL;
	list_unlink(&ctx->poll_link);
	dev->handles.pollers--;
}

void ctx_poll_wake(struct device *dev, struct open_ctx *ctx)
{
	ctx_poll_end(dev, ctx, true);
}

void ctx_poll_drop(struct device *dev, struct open_ctx *ctx)
{
	ctx_poll_end(dev, ctx, false);
}

static void notify_pollers(struct device *dev, struct pipe *p)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &p->pollers) {
		struct open_ctx *ctx = list_entry(pos, struct open_ctx, poll_link);
		if (pipe_poll_mask(p, ctx) != ctx->poll_mask)
			ctx_poll_wake(dev, ctx);
	}
}

void pipe_settle(struct device *dev, struct pipe *p)
{
	bool progress;
	do {
		progress = serve_writers(dev, p);
		progress |= serve_readers(dev, p);
	} while (progress);
	notify_pollers(dev, p);
}

int pipe_set_capacity(struct device *dev, struct pipe *p, uint64_t capacity)
{
	if (capacity < p->ring.used)
		return -EBUSY;
	if (p->ring.buf) {
		int r = 0;
		if (capacity > p->allocated)
			r = limit_charge(&dev->limits, LIMIT_MEMORY, p->uid, capacity - p->allocated, p->name);
		if (r < 0)
			return r;
		r = ring_resize(&p->ring, capacity);
		if (r < 0) {
			if (capacity > p->allocated)
				limit_uncharge(&dev->limits, LIMIT_MEMORY, p->uid, capacity - p->allocated);
			return r;
		}
		if (capacity < p->allocated)
			limit_uncharge(&dev->limits, LIMIT_MEMORY, p->uid, p->allocated - capacity);
		p->allocated = capacity;
	} else {
		p->ring.capacity = capacity;
	}
	pipe_settle(dev, p);
	return 0;
}

void pipe_attr(const struct pipe *p, struct pipe_attr *out)
{
	*out = (struct pipe_attr){
		.ino = p->ino,
		.mode = p->mode,
		.uid = p->uid,
		.gid = p->gid,
		.size = pipe_queued_payload(p),
		.atime = p->atime,
		.mtime = p->mtime,
		.ctime = p->ctime,
	};
}

void pipe_info(const struct pipe *p, struct ringdev_pipe_info *out)
{
	memset(out, 0, sizeof(*out));
	memcpy(out->name, p->name, p->name_len + 1);
	out->kind = p->kind;
	out->policy = p->policy;
	out->mode = p->mode;
	out->uid = p->uid;
	out->gid = p->gid;
	out->flags = (p->persistent ? RINGDEV_PIPE_PERSISTENT : 0) | (pipe_eof(p) ? RINGDEV_PIPE_EOF : 0) |
		     (p->linked ? 0 : RINGDEV_PIPE_UNLINKED) | (p->ring.buf ? RINGDEV_PIPE_ALLOCATED : 0);
	out->readers = p->readers;
	out->writers = p->writers;
	out->handles = p->handles;
	struct list_node *pos;
	list_for_each(pos, &p->readq)
		out->parked_reads++;
	list_for_each(pos, &p->writeq)
		out->parked_writes++;
	out->capacity = p->ring.capacity;
	out->queued_bytes = pipe_queued_payload(p);
	out->queued_messages = is_message(p) ? p->queued_messages : 0;
	out->allocated_bytes = p->allocated;
	out->bytes_in = p->bytes_in;
	out->bytes_out = p->bytes_out;
	out->writes = p->writes;
	out->reads = p->reads;
	out->dropped_bytes = p->dropped_bytes;
	out->dropped_messages = p->dropped_messages;
	out->ino = p->ino;
}

/* Make a new pipe from attach arguments, owned by uid:gid, within the limits. */
struct pipe_settings pipe_settings_from_args(const struct device *dev, const struct attach_args *a, uint32_t uid,
					     uint32_t gid)
{
	return (struct pipe_settings){
		.kind = a->kind ? a->kind : RINGDEV_KIND_STREAM,
		.policy = a->policy ? a->policy : RINGDEV_POLICY_BLOCK,
		.mode = a->mode ? a->mode : 0600,
		.uid = uid,
		.gid = gid,
		.capacity = a->capacity ? a->capacity : dev->cfg.ring_size,
	};
}
