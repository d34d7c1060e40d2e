/* SPDX-License-Identifier: MIT */
/*
 * ringdev-broker.h - libringdev-broker: the library for writing a ringdev
 * broker, the process ringdevd relays what it cannot decide alone to (opens,
 * attaches, device-specific ioctls, reads and writes of brokered pipes).
 * ringdev-broker(3) documents it with a complete example.
 *
 * The design choice: the library owns the control channel (the TRANSACT
 * loop, batching, bulk payloads, cancel bookkeeping) and the broker owns
 * decisions. Each request is handed to one callback with its whole payload;
 * the callback answers it at once or keeps it and answers later from any
 * thread (a deferred answer, e.g. a write held until a reader comes). Every
 * answer function consumes its request, whatever it returns, so a request is
 * answered exactly once and never leaks.
 *
 * Errors: 0 on success, a negative errno on failure, as everywhere in ringdev.
 * Thread safety: every function may be called from any thread, except that
 * rdb_close() must come after rdb_run() returned; rdb_stop() is also safe in
 * a signal handler.
 */
#ifndef RINGDEV_RINGDEV_BROKER_H
#define RINGDEV_RINGDEV_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringdev/ringdev.h>

#ifdef __cplusplus
extern "C" {
#endif

/* How long one TRANSACT parks when nothing comes, unless rdb_set_timeout()
 * says otherwise: rdb_stop() is noticed within this time. */
#define RDB_TIMEOUT_MS_DEFAULT 250u

/* Largest in-payload the library fetches for a request (a WRITE on a
 * brokered pipe or an ioctl); a larger request is answered with EIO. */
#define RDB_PAYLOAD_MAX (16u << 20)

/* Largest errno an answer may carry. The kernel's FUSE replies carry
 * errnos 1 to 511 only (it refuses larger ones and the application's call
 * would never end), so the daemon fails an answer outside that range with
 * EIO and the answer functions refuse it first (see "answers" below). */
#define RDB_ERRNO_MAX 511

/* The daemon's abi_minor (rdb_version()) from which it takes
 * rdb_allow_builtin(): RINGDEV_ANSWER_BUILTIN came with ABI 1.1. */
#define RDB_BUILTIN_ABI_MINOR 1

/* The daemon's abi_minor from which it checks who owns the pipe a mapped
 * open lands in, and takes rdb_allow_grant()'s RINGDEV_ANSWER_GRANT (ABI
 * 1.2). */
#define RDB_GRANT_ABI_MINOR 2

/* The daemon's abi_minor from which a CANCEL is a handshake (ABI 1.2): the
 * cancelled request stays answerable, its answer still reaches the app, and
 * TRANSACT reports the answers it refused (see rdb_set_refused_handler). */
#define RDB_CANCEL_ABI_MINOR 2

/* One open control channel. */
struct rdb_broker;

/* One request the daemon relayed, from rdb_run() to its answer. */
struct rdb_request;

/* Called for every request, from the thread of rdb_run() that took it (with
 * several threads, concurrently). An answerable request (OPEN, ATTACH, IOCTL,
 * READ, WRITE) belongs to the callback: answer it now or keep it and answer
 * it later. A notice (CANCEL, RELEASE) is only valid during the call and
 * takes no answer itself. A CANCEL for a request comes only after the
 * callback for that request returned, and only while the broker still holds
 * it; from a daemon of ABI 1.2 on it asks for an answer to the request it
 * names: its result if the work was done, or rdb_drop() if nothing was (see
 * rdb_request_cancelled). The callback must not block: while it runs, its
 * thread takes no requests. */
typedef void rdb_handler_fn(struct rdb_request *request, void *data);

/* Called once for each answer the daemon refused (ABI 1.2 daemons report
 * them; older ones never do): an unknown, late or duplicate id, a malformed
 * answer, or one for a call whose app side had ended (its handle closed,
 * --cancel-timeout passed). Nothing it carried reached an app. `request` is
 * the request answered (rdb_request_info() works; it must not be answered
 * again), `answer` what was sent, and `payload`/`size` a copy of the
 * out-payload the answer carried (READ: the bytes no reader got; IOCTL: the
 * out buffer), NULL and 0 for none. It runs on the thread that sent the
 * answer: a loop thread of rdb_run() after its TRANSACT returned and before
 * it dispatches the requests that came with it, or, for an answer given
 * outside the loop, inside the answer function. Everything is freed when it
 * returns. */
typedef void rdb_refused_fn(const struct rdb_request *request, const struct ringdev_ctl_answer *answer,
			    const void *payload, size_t size, void *data);

/* Called once for each answer the daemon accepted: the TRANSACT that
 * carried it returned and did not report it refused, so what it carried
 * reached the app's call (a READ's bytes are the app's now). With the
 * refused handler it tells the outcome of every answer sent: a broker that
 * hands out data another party keeps until it is delivered (a queue in
 * another service) confirms it here and puts it back there. An answer whose
 * TRANSACT failed (the channel broke) gets neither call: its outcome is not
 * known. Runs where the refused handler does, after it for that batch;
 * `request` as there (rdb_request_info() works; no answer). */
typedef void rdb_accepted_fn(const struct rdb_request *request, const struct ringdev_ctl_answer *answer,
			     void *data);

/*
 * The control node that belongs to `device`, written to `path`:
 * - NULL or "": the default device: $RINGDEV_DEVICE, /dev/ringdev if it
 *   exists, else /run/ringdev (root) or $XDG_RUNTIME_DIR/ringdev;
 * - a FUSE mount directory DIR: DIR/.ctl;
 * - a CUSE data node /dev/NAME: /dev/NAME-ctl;
 * - a control node (a character device whose name ends in "-ctl", or a file
 *   named ".ctl"): itself.
 * On failure `path` holds the device that was looked at, so the caller can
 * name it. -ENOENT etc. from stat(2), -ENOTTY when it is none of the above,
 * -ENAMETOOLONG when the result does not fit.
 */
int rdb_ctl_path(const char *device, char *path, size_t size);

/*
 * Open the control channel: `ctl` as for rdb_ctl_path() (a control node, a
 * data device or mount, or NULL). Checks the daemon's ABI: -EPROTO when its
 * abi_major differs from RINGDEV_ABI_MAJOR, -ENOTTY when it is no ringdev.
 * Other errors are open(2)'s: -EBUSY (another broker holds the control node),
 * -EACCES (not root, not the daemon's user, not in --ctl-group).
 * `handler` gets every request with `data`.
 */
int rdb_open(const char *ctl, rdb_handler_fn *handler, void *data, struct rdb_broker **out);

/* Close the channel and free everything; requests still held are ended by
 * the daemon (their apps get ECONNRESET). Accepts NULL; returns NULL. Call
 * it only after rdb_run() returned. */
struct rdb_broker *rdb_close(struct rdb_broker *broker);

/* The daemon's RINGDEV_IOC_VERSION answer, read by rdb_open(). */
void rdb_version(const struct rdb_broker *broker, struct ringdev_version *out);

/* Set the refused handler (NULL: none) before rdb_run(); -EBUSY while it
 * runs. With one set, the library keeps a copy of each answer's out-payload
 * until the daemon's outcome is known. */
int rdb_set_refused_handler(struct rdb_broker *broker, rdb_refused_fn *handler, void *data);

/* Set the accepted handler (NULL: none) before rdb_run(); -EBUSY while it
 * runs. */
int rdb_set_accepted_handler(struct rdb_broker *broker, rdb_accepted_fn *handler, void *data);

/* How long each TRANSACT parks waiting for a request (1 to 60000 ms;
 * default RDB_TIMEOUT_MS_DEFAULT). Set it before rdb_run(). */
int rdb_set_timeout(struct rdb_broker *broker, unsigned timeout_ms);

/*
 * Serve: `threads` loops (1 to 64; the calling thread is one of them) take
 * requests with TRANSACT, hand them to the handler, and carry the answers
 * given meanwhile on their next TRANSACT, up to RINGDEV_CTL_BATCH at a time.
 * Returns 0 after rdb_stop(), or the -errno that broke the channel (the
 * daemon went away). -EBUSY if it already runs, -EINVAL for a bad count.
 */
int rdb_run(struct rdb_broker *broker, unsigned threads);

/* Make rdb_run() return: its loops notice within the TRANSACT timeout,
 * send the answers still queued and end. A stop that comes before rdb_run()
 * makes it return at once. Async-signal-safe; NULL is ignored. */
void rdb_stop(struct rdb_broker *broker);

/* ---- the request ---- */

/* The request as the daemon sent it: id, type (enum ringdev_ctl_type),
 * caller uid/gid/pid, handle, name, cmd, size, and so on (see ringdev.h).
 * Valid until the request is answered or, for a notice, the callback ends. */
const struct ringdev_ctl_request *rdb_request_info(const struct rdb_request *request);

/* The whole in-payload (IOCTL with _IOC_WRITE, WRITE): `*size` bytes, the
 * part beyond the inline space already fetched. NULL with *size 0 if none. */
const void *rdb_request_payload(const struct rdb_request *request, size_t *size);

/* True once the daemon said the app interrupted this request (a CANCEL
 * came). From ABI 1.2 on the request is still answerable and the app waits
 * for it: answer with the result if the work was done (the app gets it: a
 * READ's bytes, a WRITE's count), or rdb_drop() if nothing was (the app gets
 * EINTR); a daemon ends it with EINTR itself after its --cancel-timeout.
 * Before ABI 1.2 the daemon had already ended it: the answer is not sent. */
bool rdb_request_cancelled(const struct rdb_request *request);

/* The channel the request came from. */
struct rdb_broker *rdb_request_broker(const struct rdb_request *request);

/* ---- answers ----
 * Each consumes the request (it is freed; do not touch it again), whatever it
 * returns. Misuse (an answer of the wrong type, a value out of range such as
 * an errno outside 1..RDB_ERRNO_MAX, a notice) returns -EINVAL and, for an
 * answerable request, answers it with EIO instead, as the daemon would for a
 * malformed answer: nothing is left unanswered. An answer to a cancelled
 * request is sent to a daemon of ABI 1.2 or later (the app still waits for
 * it); to an older one it is not sent and returns 0. Answers given from a
 * thread of rdb_run() ride on its next TRANSACT; from any other thread they
 * are sent at once. */

/* What a pipe the answer creates gets (RINGDEV_ANSWER_SETTINGS). Zero means
 * the default: kind stream, policy block, mode 0600, capacity the daemon's
 * --ring-size. uid and gid are the owner, as given. */
struct rdb_pipe_settings {
	uint32_t kind;                /* enum ringdev_kind */
	uint32_t policy;              /* enum ringdev_policy */
	uint32_t mode;                /* permission bits, 0777 at most */
	uint32_t uid;
	uint32_t gid;
	uint32_t reserved0;
	uint64_t capacity;            /* bytes, or 0 */
};

/* OPEN, ATTACH: let it happen as the app asked. */
int rdb_allow(struct rdb_request *request);

/* OPEN, ATTACH: let ringdevd decide, exactly as it would with no broker
 * (RINGDEV_ANSWER_BUILTIN): the pipe's owner and mode bits for the caller,
 * the device's w bit for creating a pipe, the CUSE default pipe for an open
 * of the node. The app gets what that decides; the broker is not told the
 * outcome. Other types: -EINVAL, answered EIO. A daemon older than ABI 1.1
 * (abi_minor below RDB_BUILTIN_ABI_MINOR) cannot do this and would fail the
 * answer: -EPROTONOSUPPORT, and the request is denied with EACCES instead
 * (fail closed). */
int rdb_allow_builtin(struct rdb_request *request);

/* Any answerable request: fail the app's call with errno `err` (1 to
 * RDB_ERRNO_MAX; else -EINVAL, and the app gets EIO). */
int rdb_deny(struct rdb_request *request, int err);

/* OPEN, ATTACH: allow, with
 * - `pipe` (OPEN only): the pipe this open maps to, created if missing;
 *   NULL or "" for the pipe the app asked for;
 * - `settings`: what the pipe gets if this answer creates it (NULL: the
 *   app's or the daemon's defaults);
 * - `brokered`: reads and writes of the pipe come to the broker. */
int rdb_allow_pipe(struct rdb_request *request, const char *pipe,
		   const struct rdb_pipe_settings *settings, bool brokered);

/* OPEN, ATTACH: as rdb_allow_pipe(), and the pipe reached may belong to
 * another user (RINGDEV_ANSWER_GRANT): without it ringdevd refuses, with
 * EACCES, a mapped open whose pipe exists and is another user's. The pipe's
 * mode bits still apply. A daemon older than ABI 1.2 (abi_minor below
 * RDB_GRANT_ABI_MINOR) makes no such check and gets the answer without the
 * flag, which it would find malformed. */
int rdb_allow_grant(struct rdb_request *request, const char *pipe,
		    const struct rdb_pipe_settings *settings, bool brokered);

/* IOCTL: the ioctl returns `result` (>= 0; or -errno to fail it, errno 1 to
 * RDB_ERRNO_MAX: below -RDB_ERRNO_MAX is -EINVAL, and the app gets EIO) and
 * the app gets `size` bytes of `out` (at most the command's out_size; the
 * rest of its buffer is zeroed). Large payloads are staged before the
 * answer. */
int rdb_reply_ioctl(struct rdb_request *request, int result, const void *out, size_t size);

/* READ on a brokered pipe: the read returns these `size` bytes (at most the
 * size wanted); 0 bytes is end-of-file for the app. */
int rdb_reply_read(struct rdb_request *request, const void *data, size_t size);

/* WRITE on a brokered pipe: the write returns `taken` (at most its size). */
int rdb_reply_write(struct rdb_request *request, size_t taken);

/* End a request without doing it: a cancelled one is answered "cancelled,
 * nothing done" (-EINTR: the app's call ends with EINTR; before ABI 1.2 it
 * is just forgotten); any other is denied with ECANCELED. */
int rdb_drop(struct rdb_request *request);

/* ---- counters ---- */

struct rdb_stats {
	uint64_t transacts;           /* TRANSACT calls */
	uint64_t requests;            /* answerable requests received */
	uint64_t notices;             /* CANCEL and RELEASE received */
	uint64_t answers;             /* answers sent */
	uint64_t rejected;            /* answers the daemon ignored (late, cancelled) */
	uint64_t failed;              /* answers the daemon found malformed */
	uint64_t dropped;             /* requests ended without an answer (cancelled) */
	uint64_t malformed;           /* requests from the daemon that made no sense (answered EIO) */
	uint64_t fetched_bytes;       /* in-payload bytes fetched with FETCH */
	uint64_t staged_bytes;        /* out-payload bytes sent with STAGE */
	uint64_t held;                /* requests handed out and not answered yet (now) */
	uint64_t refused;             /* answers the daemon reported refused (ABI 1.2) */
	uint64_t reserved[4];
};

void rdb_get_stats(struct rdb_broker *broker, struct rdb_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* RINGDEV_RINGDEV_BROKER_H */
