/* SPDX-License-Identifier: MIT */
/*
 * broker.c - libringdev-broker: the control channel's loop and the requests
 * it hands out (see ringdev-broker.h for the contract, ringdev-broker(3)).
 *
 * Design: loop threads call TRANSACT with the answers queued since their last
 * call and dispatch what comes back. An answer never goes out from inside an
 * answer function on a loop thread: it is encoded (and its large payload
 * staged) at once, then queued, so the answers of everything handled between
 * two TRANSACTs travel together, RINGDEV_CTL_BATCH per call. An answer from
 * any other thread is sent at once by a TRANSACT that takes no requests.
 *
 * One mutex guards the lists and counters; the handler is never called with
 * it held, so a handler may answer (and take its own locks) freely. A request
 * is referenced by the app until answered and by its dispatcher until the
 * handler returned; the last reference frees it. That lets a CANCEL that
 * arrives on another thread while the handler still runs wait for it to
 * return: a broker never sees the CANCEL of a request before the request.
 *
 * Cancelling is a handshake with a daemon of ABI 1.2 or later: a CANCEL asks,
 * the request stays answerable, and whatever ends it (the broker's result,
 * or rdb_drop()'s -EINTR for "nothing done") is sent. A sent answer's request
 * lives until the TRANSACT that carried it returns, so an answer the daemon
 * refused (its `refused` mask) can be handed back with its payload to the
 * refused handler before anything new is dispatched.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ringdev/ringdev-broker.h>

#include "device_path.h"
#include "encode.h"
#include "list.h"
#include "transport.h"

#define THREADS_MAX 64u
#define TIMEOUT_MS_MAX 60000u
/* CANCELs that came before their request was registered (another loop
 * thread took both at once); remembered so the request is dropped. */
#define EARLY_CANCELS 64u

struct rdb_broker {
	const struct rdb_transport *transport;
	void *transport_ctx;
	struct ringdev_version version;
	rdb_handler_fn *handler;
	void *data;
	rdb_refused_fn *refused;        /* set before rdb_run(), or NULL */
	void *refused_data;
	rdb_accepted_fn *accepted;      /* set before rdb_run(), or NULL */
	void *accepted_data;
	unsigned timeout_ms;
	atomic_bool stopping;           /* rdb_stop: lock-free, so signal-safe */

	pthread_mutex_t lock;           /* everything below */
	bool running;
	int error;                      /* first error that broke the channel */
	struct list_node held;          /* handed out, not answered */
	struct list_node queue;         /* answered, waiting for a TRANSACT */
	uint64_t early_cancels[EARLY_CANCELS];
	uint64_t early_cancel_next;
	struct rdb_stats stats;
};

struct rdb_request {
	struct list_node link;          /* on broker->held, then broker->queue */
	struct rdb_broker *broker;
	unsigned refs;                  /* app until answered + dispatcher; under lock */
	bool notice;
	bool dispatching;               /* the handler has not returned yet */
	bool cancelled;
	bool answered;
	struct rdb_request *cancel_notice; /* CANCEL to deliver once the handler returns */
	uint8_t *heap;                  /* the payload when fetched, else NULL */
	uint8_t *answer_payload;        /* a copy of the answer's out-payload, for the refused handler */
	size_t answer_payload_size;
	const uint8_t *payload;
	size_t payload_size;
	struct ringdev_ctl_request msg;
	struct ringdev_ctl_answer answer;
};

/* The broker whose loop runs on this thread: its answers are queued. */
static __thread struct rdb_broker *loop_broker;

/* ---- the ioctl transport ---- */

static int fd_of(void *ctx)
{
	return (int)(intptr_t)ctx;
}

static int ioctl_transact(void *ctx, struct ringdev_ctl_transact *transact)
{
	return ioctl(fd_of(ctx), RINGDEV_IOC_CTL_TRANSACT, transact) < 0 ? -errno : 0;
}

static int ioctl_fetch(void *ctx, struct ringdev_ctl_bulk *bulk)
{
	return ioctl(fd_of(ctx), RINGDEV_IOC_CTL_FETCH, bulk) < 0 ? -errno : 0;
}

static int ioctl_stage(void *ctx, const struct ringdev_ctl_bulk *bulk)
{
	return ioctl(fd_of(ctx), RINGDEV_IOC_CTL_STAGE, bulk) < 0 ? -errno : 0;
}

static void ioctl_close(void *ctx)
{
	close(fd_of(ctx));
}

static const struct rdb_transport ioctl_transport = {
	.transact = ioctl_transact,
	.fetch = ioctl_fetch,
	.stage = ioctl_stage,
	.close = ioctl_close,
};

/* ---- finding and opening the control node ---- */

static int path_copy(char *path, size_t size, const char *a, const char *b)
{
	int n = snprintf(path, size, "%s%s", a, b);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}


static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);
	return n >= m && strcmp(s + n - m, suffix) == 0;
}

int rdb_ctl_path(const char *device, char *path, size_t size)
{
	char given[PATH_MAX];
	struct stat st;
	int r;

	if (!path || size == 0)
		return -EINVAL;
	path[0] = '\0';
	r = device && device[0] ? path_copy(given, sizeof(given), device, "")
				: device_path_default(given, sizeof(given));
	if (r < 0)
		return r;
	if (path_copy(path, size, given, "") < 0)
		return -ENAMETOOLONG;
	if (stat(given, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return path_copy(path, size, given, ends_with(given, "/") ? ".ctl" : "/.ctl");
	if (S_ISCHR(st.st_mode))
		return ends_with(given, "-ctl") ? 0 : path_copy(path, size, given, "-ctl");
	if (S_ISREG(st.st_mode) && (strcmp(given, ".ctl") == 0 || ends_with(given, "/.ctl")))
		return 0;
	return -ENOTTY;
}

int rdb_open(const char *ctl, rdb_handler_fn *handler, void *data, struct rdb_broker **out)
{
	struct ringdev_version version = { 0 };
	char path[PATH_MAX];
	int fd, r;

	if (!handler || !out)
		return -EINVAL;
	r = rdb_ctl_path(ctl, path, sizeof(path));
	if (r < 0)
		return r;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (ioctl(fd, RINGDEV_IOC_VERSION, &version) < 0)
		r = errno == EINVAL ? -ENOTTY : -errno;
	else if (version.abi_major != RINGDEV_ABI_MAJOR)
		r = -EPROTO;
	if (r == 0)
		r = rdb_open_transport(&ioctl_transport, (void *)(intptr_t)fd, &version, handler, data, out);
	if (r < 0)
		close(fd);
	return r;
}

int rdb_open_transport(const struct rdb_transport *transport, void *ctx,
		       const struct ringdev_version *version, rdb_handler_fn *handler, void *data,
		       struct rdb_broker **out)
{
	struct rdb_broker *b = calloc(1, sizeof(*b));

	if (!b)
		return -ENOMEM;
	b->transport = transport;
	b->transport_ctx = ctx;
	b->version = *version;
	b->handler = handler;
	b->data = data;
	b->timeout_ms = RDB_TIMEOUT_MS_DEFAULT;
	atomic_init(&b->stopping, false);
	pthread_mutex_init(&b->lock, NULL);
	list_init(&b->held);
	list_init(&b->queue);
	*out = b;
	return 0;
}

void rdb_version(const struct rdb_broker *broker, struct ringdev_version *out)
{
	*out = broker->version;
}

int rdb_set_refused_handler(struct rdb_broker *broker, rdb_refused_fn *handler, void *data)
{
	pthread_mutex_lock(&broker->lock);
	bool running = broker->running;
	if (!running) {
		broker->refused = handler;
		broker->refused_data = data;
	}
	pthread_mutex_unlock(&broker->lock);
	return running ? -EBUSY : 0;
}

int rdb_set_accepted_handler(struct rdb_broker *broker, rdb_accepted_fn *handler, void *data)
{
	pthread_mutex_lock(&broker->lock);
	bool running = broker->running;
	if (!running) {
		broker->accepted = handler;
		broker->accepted_data = data;
	}
	pthread_mutex_unlock(&broker->lock);
	return running ? -EBUSY : 0;
}

/* Does the daemon keep a cancelled request answerable (ABI 1.2)? */
static bool cancel_handshake(const struct rdb_broker *b)
{
	return b->version.abi_minor >= RDB_CANCEL_ABI_MINOR;
}

int rdb_set_timeout(struct rdb_broker *broker, unsigned timeout_ms)
{
	if (timeout_ms < 1 || timeout_ms > TIMEOUT_MS_MAX)
		return -EINVAL;
	broker->timeout_ms = timeout_ms;
	return 0;
}

/* ---- requests ---- */

static void request_free(struct rdb_request *r)
{
	if (!r)
		return;
	free(r->cancel_notice);
	free(r->heap);
	free(r->answer_payload);
	free(r);
}

/* Drop one reference; the last frees. Under the lock. */
static void request_unref_locked(struct rdb_request *r)
{
	if (--r->refs == 0) {
		list_unlink(&r->link);
		request_free(r);
	}
}

static struct rdb_request *request_new(struct rdb_broker *b, const struct ringdev_ctl_request *msg)
{
	struct rdb_request *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	list_init(&r->link);
	r->broker = b;
	r->msg = *msg;
	r->notice = ctl_type_is_notice(msg->type);
	r->payload_size = ctl_request_payload_size(msg);
	r->payload = r->payload_size ? r->msg.data : NULL;
	return r;
}

const struct ringdev_ctl_request *rdb_request_info(const struct rdb_request *request)
{
	return &request->msg;
}

const void *rdb_request_payload(const struct rdb_request *request, size_t *size)
{
	*size = request->payload_size;
	return request->payload;
}

bool rdb_request_cancelled(const struct rdb_request *request)
{
	struct rdb_broker *b = request->broker;

	pthread_mutex_lock(&b->lock);
	bool cancelled = request->cancelled;
	pthread_mutex_unlock(&b->lock);
	return cancelled;
}

struct rdb_broker *rdb_request_broker(const struct rdb_request *request)
{
	return request->broker;
}

static struct rdb_request *held_find_locked(struct rdb_broker *b, uint64_t id)
{
	for (struct list_node *n = b->held.next; n != &b->held; n = n->next) {
		struct rdb_request *r = list_entry(n, struct rdb_request, link);
		if (r->msg.id == id)
			return r;
	}
	return NULL;
}

static bool early_cancelled_locked(const struct rdb_broker *b, uint64_t id)
{
	unsigned n = b->early_cancel_next < EARLY_CANCELS ? (unsigned)b->early_cancel_next : EARLY_CANCELS;

	for (unsigned i = 0; i < n; i++)
		if (b->early_cancels[i] == id)
			return true;
	return false;
}

/* ---- sending answers ---- */

/* Move up to RINGDEV_CTL_BATCH queued answers into t, their requests into
 * sent[] (kept until the outcome is known). Under the lock. */
static uint32_t answers_take_locked(struct rdb_broker *b, struct ringdev_ctl_transact *t,
				    struct rdb_request **sent)
{
	uint32_t n = 0;

	while (n < RINGDEV_CTL_BATCH && !list_empty(&b->queue)) {
		struct rdb_request *r = list_entry(list_first(&b->queue), struct rdb_request, link);
		t->answers[n] = r->answer;
		sent[n++] = r;
		list_unlink(&r->link);
	}
	return n;
}

/* One TRANSACT, with the counters it feeds. */
static int transact(struct rdb_broker *b, struct ringdev_ctl_transact *t)
{
	int r = b->transport->transact(b->transport_ctx, t);

	pthread_mutex_lock(&b->lock);
	b->stats.transacts++;
	/* EINTR (a daemon before ABI 1.2) comes after the answers were applied. */
	if (r == 0 || r == -EINTR)
		b->stats.answers += t->nanswers;
	if (r == 0) {
		b->stats.rejected += t->rejected;
		b->stats.failed += t->failed;
	}
	pthread_mutex_unlock(&b->lock);
	return r;
}

/* The TRANSACT that carried sent[] returned `rc`: hand each answer the
 * daemon refused to the refused handler, then each it accepted to the
 * accepted handler (none when the TRANSACT failed: not known), then let
 * the requests go. */
static void answers_settle(struct rdb_broker *b, const struct ringdev_ctl_transact *t, int rc,
			   struct rdb_request **sent, uint32_t n)
{
	uint32_t refused = rc == 0 ? t->refused : 0;

	for (uint32_t i = 0; i < n; i++) {
		struct rdb_request *r = sent[i];
		if (!(refused & (1u << i)))
			continue;
		pthread_mutex_lock(&b->lock);
		b->stats.refused++;
		pthread_mutex_unlock(&b->lock);
		if (b->refused)
			b->refused(r, &r->answer, r->answer_payload, r->answer_payload_size, b->refused_data);
	}
	for (uint32_t i = 0; rc == 0 && b->accepted && i < n; i++)
		if (!(refused & (1u << i)))
			b->accepted(sent[i], &sent[i]->answer, b->accepted_data);
	pthread_mutex_lock(&b->lock);
	for (uint32_t i = 0; i < n; i++)
		request_unref_locked(sent[i]);
	pthread_mutex_unlock(&b->lock);
}

/* Send every queued answer now, by TRANSACTs that take no request.
 * 0, or the first error. */
static int answers_flush(struct rdb_broker *b)
{
	struct ringdev_ctl_transact *t = malloc(sizeof(*t));
	int r = 0;

	struct rdb_request *sent[RINGDEV_CTL_BATCH];
	if (!t)
		return -ENOMEM;
	for (;;) {
		memset(t, 0, sizeof(*t));
		pthread_mutex_lock(&b->lock);
		uint32_t n = answers_take_locked(b, t, sent); /* kept: the daemon rewrites t */
		t->nanswers = n;
		pthread_mutex_unlock(&b->lock);
		if (n == 0)
			break;
		int rc = transact(b, t);
		answers_settle(b, t, rc, sent, n);
		if (rc < 0 && rc != -EINTR && r == 0)
			r = rc;
	}
	free(t);
	return r;
}

/* Stage `size` bytes as the out-payload of request `id`. */
static int payload_stage(struct rdb_broker *b, uint64_t id, const uint8_t *data, size_t size)
{
	/* Zeroed: the kernel copies the whole struct, never heap garbage. */
	struct ringdev_ctl_bulk *bulk = calloc(1, sizeof(*bulk));
	int r = 0;

	if (!bulk)
		return -ENOMEM;
	for (size_t offset = 0; offset < size && r == 0;) {
		size_t n = ctl_bulk_chunk(size, offset);
		memset(bulk, 0, offsetof(struct ringdev_ctl_bulk, data));
		bulk->id = id;
		bulk->offset = offset;
		bulk->size = (uint32_t)n;
		memcpy(bulk->data, data + offset, n);
		r = b->transport->stage(b->transport_ctx, bulk);
		offset += n;
	}
	free(bulk);
	if (r == 0) {
		pthread_mutex_lock(&b->lock);
		b->stats.staged_bytes += size;
		pthread_mutex_unlock(&b->lock);
	}
	return r;
}

/*
 * The tail of every answer function: `rc` is the encoder's result (on -EINVAL
 * r->answer is replaced by EIO), `out`/`size` the payload to stage when the
 * answer says STAGED. Consumes the request.
 */
static int answer_commit(struct rdb_request *r, int rc, const void *out, size_t size)
{
	struct rdb_broker *b = r->broker;
	bool drop = false;
	bool handshake = cancel_handshake(b);

	if (r->notice)
		return -EINVAL; /* the library owns notices */
	if (rc < 0)
		ctl_answer_deny(&r->answer, &r->msg, EIO);
	if (rc == 0 && b->refused && size && r->answer.result >= 0) {
		/* Kept for the refused handler: a refused READ's bytes reached
		 * nobody and are the broker's to give to someone else. */
		r->answer_payload = malloc(size);
		if (r->answer_payload) {
			memcpy(r->answer_payload, out, size);
			r->answer_payload_size = size;
		}
	}
	if (r->answer.flags & RINGDEV_ANSWER_STAGED) {
		int s = payload_stage(b, r->msg.id, out, size);
		if (s == -ENOENT && handshake) {
			/* The daemon ended it (--cancel-timeout, the handle went):
			 * sent all the same, it comes back refused, so the refused
			 * handler gets its payload. */
			rc = -ENOENT;
		} else if (s == -ENOENT) {
			drop = true; /* the daemon has forgotten it: cancelled */
			rc = -ENOENT;
		} else if (s < 0) {
			ctl_answer_deny(&r->answer, &r->msg, EIO);
			rc = s;
		}
	}

	pthread_mutex_lock(&b->lock);
	r->answered = true;
	list_unlink(&r->link);
	if (drop || (r->cancelled && !handshake)) {
		/* Not worth sending: the daemon would ignore it. */
		int result = r->cancelled ? 0 : rc;
		b->stats.dropped++;
		request_unref_locked(r);
		pthread_mutex_unlock(&b->lock);
		return result;
	}
	list_add_tail(&b->queue, &r->link);
	pthread_mutex_unlock(&b->lock);

	if (loop_broker != b) {
		int f = answers_flush(b);
		if (rc == 0)
			rc = f;
	}
	return rc;
}

int rdb_allow(struct rdb_request *request)
{
	return rdb_allow_pipe(request, NULL, NULL, false);
}

int rdb_deny(struct rdb_request *request, int err)
{
	return answer_commit(request, ctl_answer_deny(&request->answer, &request->msg, err), NULL, 0);
}

int rdb_allow_pipe(struct rdb_request *request, const char *pipe,
		   const struct rdb_pipe_settings *settings, bool brokered)
{
	int rc = ctl_answer_allow(&request->answer, &request->msg, pipe, settings, brokered);
	return answer_commit(request, rc, NULL, 0);
}

int rdb_allow_grant(struct rdb_request *request, const char *pipe,
		    const struct rdb_pipe_settings *settings, bool brokered)
{
	int rc = ctl_answer_allow(&request->answer, &request->msg, pipe, settings, brokered);

	/* An older daemon has no owner check to lift and would fail the flag. */
	if (rc == 0 && request->broker->version.abi_minor >= RDB_GRANT_ABI_MINOR)
		request->answer.flags |= RINGDEV_ANSWER_GRANT;
	return answer_commit(request, rc, NULL, 0);
}

int rdb_allow_builtin(struct rdb_request *request)
{
	int rc = ctl_answer_builtin(&request->answer, &request->msg);

	if (rc == 0 && request->broker->version.abi_minor < RDB_BUILTIN_ABI_MINOR) {
		/* An older daemon would find the flag malformed and give the app
		 * EIO; it cannot decide for us, so fail closed. */
		answer_commit(request, ctl_answer_deny(&request->answer, &request->msg, EACCES), NULL, 0);
		return -EPROTONOSUPPORT;
	}
	return answer_commit(request, rc, NULL, 0);
}

int rdb_reply_ioctl(struct rdb_request *request, int result, const void *out, size_t size)
{
	int rc = ctl_answer_ioctl(&request->answer, &request->msg, result, out, size);
	return answer_commit(request, rc, out, size);
}

int rdb_reply_read(struct rdb_request *request, const void *data, size_t size)
{
	int rc = ctl_answer_read(&request->answer, &request->msg, data, size);
	return answer_commit(request, rc, data, size);
}

int rdb_reply_write(struct rdb_request *request, size_t taken)
{
	return answer_commit(request, ctl_answer_write(&request->answer, &request->msg, taken), NULL, 0);
}

int rdb_drop(struct rdb_request *request)
{
	struct rdb_broker *b = request->broker;

	if (request->notice)
		return -EINVAL;
	pthread_mutex_lock(&b->lock);
	bool cancelled = request->cancelled;
	pthread_mutex_unlock(&b->lock);
	if (!cancelled)
		return rdb_deny(request, ECANCELED);
	if (cancel_handshake(b)) {
		/* "Cancelled, nothing done": the app's call ends with EINTR now
		 * rather than at --cancel-timeout. */
		pthread_mutex_lock(&b->lock);
		b->stats.dropped++;
		pthread_mutex_unlock(&b->lock);
		return rdb_deny(request, EINTR);
	}
	return answer_commit(request, 0, NULL, 0);
}

/* An answer for a request that never became an rdb_request (malformed, or
 * out of memory): sent at once. */
static void answer_error_now(struct rdb_broker *b, const struct ringdev_ctl_request *msg, int err)
{
	struct ringdev_ctl_transact *t = calloc(1, sizeof(*t));

	if (!t)
		return; /* nothing left to say it with; the daemon ends it with the broker */
	if (ctl_answer_deny(&t->answers[0], msg, err) == 0) {
		t->nanswers = 1;
		transact(b, t);
	}
	free(t);
}

/* ---- dispatching requests ---- */

/* Read the rest of the in-payload; the inline part is in msg.data. */
static int payload_fetch(struct rdb_broker *b, struct rdb_request *r)
{
	size_t size = r->payload_size, offset = r->msg.inline_size;
	struct ringdev_ctl_bulk *bulk = calloc(1, sizeof(*bulk));
	int rc = 0;

	r->heap = malloc(size);
	if (!bulk || !r->heap) {
		free(bulk);
		return -ENOMEM;
	}
	memcpy(r->heap, r->msg.data, offset);
	while (offset < size && rc == 0) {
		memset(bulk, 0, offsetof(struct ringdev_ctl_bulk, data));
		bulk->id = r->msg.id;
		bulk->offset = offset;
		bulk->size = (uint32_t)ctl_bulk_chunk(size, offset);
		rc = b->transport->fetch(b->transport_ctx, bulk);
		if (rc == 0 && (bulk->size == 0 || bulk->size > size - offset))
			rc = -EPROTO; /* no progress, or more than asked */
		if (rc == 0) {
			memcpy(r->heap + offset, bulk->data, bulk->size);
			offset += bulk->size;
		}
	}
	free(bulk);
	if (rc == 0) {
		r->payload = r->heap;
		pthread_mutex_lock(&b->lock);
		b->stats.fetched_bytes += size - r->msg.inline_size;
		pthread_mutex_unlock(&b->lock);
	}
	return rc;
}

enum cancel_outcome {
	CANCEL_DELIVER,                 /* the app holds the request: tell it now */
	CANCEL_KEPT,                    /* its handler still runs: tell it after */
	CANCEL_IGNORE,                  /* the app does not hold it: say nothing */
};

/* A CANCEL: mark the request it names and say what becomes of the notice. */
static enum cancel_outcome cancel_mark(struct rdb_broker *b, struct rdb_request *notice)
{
	enum cancel_outcome outcome = CANCEL_IGNORE;

	pthread_mutex_lock(&b->lock);
	struct rdb_request *target = held_find_locked(b, notice->msg.ref);
	if (!target) {
		/* Maybe not registered yet by the loop thread that took it. */
		b->early_cancels[b->early_cancel_next++ % EARLY_CANCELS] = notice->msg.ref;
	} else if (!target->cancelled) {
		target->cancelled = true;
		if (target->dispatching) {
			target->cancel_notice = notice;
			outcome = CANCEL_KEPT;
		} else {
			outcome = CANCEL_DELIVER;
		}
	}
	pthread_mutex_unlock(&b->lock);
	return outcome;
}

static void dispatch_notice(struct rdb_broker *b, struct rdb_request *r)
{
	enum cancel_outcome outcome = CANCEL_DELIVER;

	pthread_mutex_lock(&b->lock);
	b->stats.notices++;
	pthread_mutex_unlock(&b->lock);
	if (r->msg.type == RINGDEV_CTL_CANCEL)
		outcome = cancel_mark(b, r);
	if (outcome == CANCEL_KEPT)
		return; /* now owned by its target */
	if (outcome == CANCEL_DELIVER)
		b->handler(r, b->data);
	request_free(r);
}

/* The handler returned: drop the dispatcher's reference and deliver a
 * CANCEL that came meanwhile, if the app still holds the request. */
static void dispatch_done(struct rdb_broker *b, struct rdb_request *r)
{
	pthread_mutex_lock(&b->lock);
	struct rdb_request *notice = r->cancel_notice;
	bool still_held = !r->answered;
	r->cancel_notice = NULL;
	r->dispatching = false;
	request_unref_locked(r);
	pthread_mutex_unlock(&b->lock);
	if (notice && still_held)
		b->handler(notice, b->data);
	request_free(notice);
}

/* A request cancelled before its handler ran: ended without the handler;
 * with `answer` (the daemon still waits for it) as cancelled. */
static void dispatch_drop(struct rdb_broker *b, struct rdb_request *r, bool answer)
{
	if (answer && cancel_handshake(b)) {
		rdb_drop(r);
		return;
	}
	pthread_mutex_lock(&b->lock);
	b->stats.dropped++;
	r->answered = true;
	list_unlink(&r->link);
	request_unref_locked(r); /* the app's reference: it never had it */
	pthread_mutex_unlock(&b->lock);
}

static void dispatch_request(struct rdb_broker *b, struct rdb_request *r)
{
	pthread_mutex_lock(&b->lock);
	b->stats.requests++;
	bool early = early_cancelled_locked(b, r->msg.id);
	if (early && !cancel_handshake(b)) {
		b->stats.dropped++;
		pthread_mutex_unlock(&b->lock);
		request_free(r);
		return;
	}
	r->cancelled = early; /* still answerable: dropped below */
	r->refs = 2; /* the app's, the dispatcher's */
	r->dispatching = true;
	list_add_tail(&b->held, &r->link);
	pthread_mutex_unlock(&b->lock);

	int rc = !early && ctl_request_needs_fetch(&r->msg) ? payload_fetch(b, r) : 0;
	if (rc == -ENOENT) {
		dispatch_drop(b, r, false); /* the daemon ended it meanwhile */
	} else if (rc < 0) {
		rdb_deny(r, EIO);
	} else if (rdb_request_cancelled(r)) {
		dispatch_drop(b, r, true);
	} else {
		b->handler(r, b->data);
	}
	dispatch_done(b, r);
}

static void dispatch(struct rdb_broker *b, const struct ringdev_ctl_request *msg)
{
	if (ctl_request_check(msg) < 0) {
		pthread_mutex_lock(&b->lock);
		b->stats.malformed++;
		pthread_mutex_unlock(&b->lock);
		answer_error_now(b, msg, EIO);
		return;
	}
	struct rdb_request *r = request_new(b, msg);
	if (!r) {
		answer_error_now(b, msg, ENOMEM);
		return;
	}
	if (r->notice)
		dispatch_notice(b, r);
	else
		dispatch_request(b, r);
}

/* ---- the loop ---- */

static bool fatal(int r)
{
	return r < 0 && r != -EINTR && r != -EAGAIN;
}

static void broker_fail(struct rdb_broker *b, int r)
{
	pthread_mutex_lock(&b->lock);
	if (!b->error)
		b->error = r;
	pthread_mutex_unlock(&b->lock);
	atomic_store(&b->stopping, true);
}

/* One loop: TRANSACT with the queued answers, dispatch what came, again. */
static void loop_run(struct rdb_broker *b)
{
	struct ringdev_ctl_transact *t = malloc(sizeof(*t));

	if (!t) {
		broker_fail(b, -ENOMEM);
		return;
	}
	loop_broker = b;
	while (!atomic_load(&b->stopping)) {
		struct rdb_request *sent[RINGDEV_CTL_BATCH];
		memset(t, 0, sizeof(*t));
		pthread_mutex_lock(&b->lock);
		uint32_t n = answers_take_locked(b, t, sent); /* kept: the daemon rewrites t */
		t->nanswers = n;
		bool more = !list_empty(&b->queue);
		pthread_mutex_unlock(&b->lock);
		/* With answers left over, send them before waiting for work. */
		t->max_requests = more ? 0 : RINGDEV_CTL_BATCH;
		t->timeout_ms = more ? 0 : b->timeout_ms;
		int r = transact(b, t);
		/* Refused answers first: a reader's bytes go back to the head of
		 * their queue before the requests of this call are dispatched. */
		answers_settle(b, t, r, sent, n);
		if (fatal(r)) {
			broker_fail(b, r);
			break;
		}
		for (uint32_t i = 0; r == 0 && i < t->nrequests && i < RINGDEV_CTL_BATCH; i++)
			dispatch(b, &t->requests[i]);
	}
	loop_broker = NULL;
	free(t);
}

static void *loop_thread(void *arg)
{
	loop_run(arg);
	return NULL;
}

/* Start n extra loops; signals stay with the caller's threads. Returns how
 * many started; on failure the error is recorded and stop is set. */
static unsigned threads_start(struct rdb_broker *b, pthread_t *threads, unsigned n)
{
	sigset_t all, old;
	unsigned started = 0;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	for (; started < n; started++) {
		int r = pthread_create(&threads[started], NULL, loop_thread, b);
		if (r) {
			broker_fail(b, -r);
			break;
		}
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return started;
}

int rdb_run(struct rdb_broker *broker, unsigned threads)
{
	pthread_t extra[THREADS_MAX];

	if (threads < 1 || threads > THREADS_MAX)
		return -EINVAL;
	pthread_mutex_lock(&broker->lock);
	if (broker->running) {
		pthread_mutex_unlock(&broker->lock);
		return -EBUSY;
	}
	broker->running = true;
	broker->error = 0;
	pthread_mutex_unlock(&broker->lock);

	unsigned started = threads_start(broker, extra, threads - 1);
	loop_run(broker);
	for (unsigned i = 0; i < started; i++)
		pthread_join(extra[i], NULL);
	answers_flush(broker);

	pthread_mutex_lock(&broker->lock);
	int r = broker->error;
	broker->running = false;
	pthread_mutex_unlock(&broker->lock);
	atomic_store(&broker->stopping, false);
	return r;
}

void rdb_stop(struct rdb_broker *broker)
{
	if (broker)
		atomic_store(&broker->stopping, true);
}

/* ---- teardown, counters ---- */

static void list_free_all(struct list_node *head)
{
	while (!list_empty(head)) {
		struct rdb_request *r = list_entry(list_first(head), struct rdb_request, link);
		list_unlink(&r->link);
		request_free(r);
	}
}

struct rdb_broker *rdb_close(struct rdb_broker *broker)
{
	if (!broker)
		return NULL;
	/* Held requests die with the channel: the daemon ends them. */
	list_free_all(&broker->held);
	list_free_all(&broker->queue);
	if (broker->transport->close)
		broker->transport->close(broker->transport_ctx);
	pthread_mutex_destroy(&broker->lock);
	free(broker);
	return NULL;
}

void rdb_get_stats(struct rdb_broker *broker, struct rdb_stats *out)
{
	uint64_t held = 0;

	pthread_mutex_lock(&broker->lock);
	for (struct list_node *n = broker->held.next; n != &broker->held; n = n->next)
		held++;
	*out = broker->stats;
	out->held = held;
	pthread_mutex_unlock(&broker->lock);
}
