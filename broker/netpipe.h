/* SPDX-License-Identifier: MIT */
/*
 * netpipe.h - network pipes (issue 21): one ringdev pipe shared by every
 * host whose broker points at the same Redis, kept in one Redis stream read
 * through one consumer group, so each message goes to exactly one reader on
 * any host. A small synchronous API over hiredis; the broker's request
 * handling (another step) calls it and does the parking.
 *
 * Keys of pipe NAME (the hash tag keeps them in one slot, so every script
 * below touches one slot):
 *   ringdev:{NAME}:stream  the entries, fields "u" (writer's user name) and
 *                          "d" (the payload); group "ringdev"
 *   ringdev:{NAME}:bytes   payload bytes of the entries in the stream
 *   ringdev:{NAME}:drops   entries the overwrite policy dropped
 *   ringdev:{NAME}:meta    hash: capacity, policy (first opener wins, so
 *                          every host applies the same rule)
 * An entry leaves the stream when it is acknowledged (XACK and XDEL in one
 * script), so the stream holds exactly what is not yet delivered plus what
 * a consumer took and has not acknowledged, and `bytes` counts the same.
 * Every check-and-change is one Lua script, hence one step across hosts.
 *
 * Delivery: np_take hands out an entry (first one a dead consumer left
 * pending longer than min_idle_ms, else the next new one); the caller
 * delivers it and only then calls np_ack. An entry not acknowledged within
 * min_idle_ms may be taken by another consumer: a caller that held an entry
 * that long calls np_keep just before delivering it, and drops it if that
 * says -ESTALE. np_give_back makes an entry at once available to the next
 * np_take of any consumer.
 *
 * Errors: 0 on success, a negative errno otherwise; the reason
 * in words is in np_error(conn) (one line naming the thing and the reason,
 * for the caller's log). Errnos of the connection:
 *   -ECONNREFUSED  nothing listens at HOST:PORT (Redis stopped)
 *   -ETIMEDOUT     no connection within connect_timeout_ms, or no answer to
 *                  a command within command_timeout_ms (host or Redis hung)
 *   -EHOSTUNREACH  no route to HOST, or HOST does not resolve
 *   -ECONNRESET    the connection broke during a command (Redis went away);
 *                  whether the command took effect is unknown
 *   -EACCES        AUTH refused, or Redis asks for AUTH and there are no credentials
 *   -ENOTCONN      an earlier call broke the connection: call np_reconnect
 *   -EPROTO        an answer this module does not understand
 *   -EBUSY         Redis is loading its data (after a restart) or busy in a
 *                  script: try again (the connection stays, except from
 *                  np_connect or np_reconnect, where no connection is made)
 * After -ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH or -ECONNRESET the
 * connection is broken: every call but np_reconnect and np_close returns
 * -ENOTCONN at once, without I/O, until np_reconnect succeeds. A Redis that
 * was stopped shows first as -ECONNRESET (on the open connection), then as
 * -ECONNREFUSED from np_reconnect, within connect_timeout_ms.
 * Bounds: np_connect and np_reconnect take at most connect_timeout_ms for
 * the TCP connect and the setup together (AUTH, SELECT, SCRIPT LOAD), name
 * resolution excepted (getaddrinfo has no timeout: give an address in the
 * URL where DNS may hang); any other call at most command_timeout_ms per
 * read of its answer (+ block_ms for a blocking np_take), which for these
 * small answers is the whole call.
 *
 * SIGPIPE: hiredis writes to its socket with write(2), so a process using
 * this module must ignore SIGPIPE (ringdev-broker does), or a write to a
 * Redis that went away kills it instead of failing with -ECONNRESET.
 *
 * Threads: a connection is not locked; use one connection per thread (the
 * broker is to open one per TRANSACT thread). Different connections share
 * nothing.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The documented bounds (defaults of struct np_options). */
#define NP_CONNECT_TIMEOUT_MS 2000u   /* TCP connect, AUTH, SELECT, script load */
#define NP_COMMAND_TIMEOUT_MS 2000u   /* one command, answer included */
#define NP_MIN_IDLE_MS 30000u         /* a taken entry unacknowledged this long goes to another consumer */
#define NP_BLOCK_MAX_MS 60000u        /* the longest np_take may wait for an entry */

#define NP_HOST_SIZE 256
#define NP_ID_SIZE 48                 /* a stream id "ms-seq" and its NUL */
#define NP_USER_SIZE 64               /* a writer's user name and its NUL */
#define NP_CONSUMER_SIZE 128
#define NP_ERROR_SIZE 256

enum np_policy { NP_POLICY_BLOCK = 0, NP_POLICY_OVERWRITE = 1, NP_POLICY_FAIL = 2 };

/* redis://HOST:PORT[/DB] */
struct np_url {
	char host[NP_HOST_SIZE];          /* name, IPv4, or IPv6 without its brackets */
	uint16_t port;
	uint32_t db;
};

/* Parse `url`. 0, or -EINVAL with the wrong part named in err (if not NULL). */
int np_url_parse(const char *url, struct np_url *out, char *err, size_t err_size);

struct np_options {
	uint32_t connect_timeout_ms;      /* 0: NP_CONNECT_TIMEOUT_MS */
	uint32_t command_timeout_ms;      /* 0: NP_COMMAND_TIMEOUT_MS */
	uint32_t min_idle_ms;             /* 0: NP_MIN_IDLE_MS */
};

struct np_conn;

/* Connect to `url` as consumer `consumer` (unique among every host's
 * consumers of a pipe, e.g. "HOST:PID:THREAD"; printable, no spaces), AUTH
 * with the credentials file `credentials` if not NULL, SELECT the db and
 * load the scripts. The credentials file holds "[USER ]PASSWORD" on one
 * line; it must be a regular file owned by the caller (or root) that no
 * group or other may read, write or search (mode 0600 or 0400): else -EACCES.
 * `options` may be NULL. On failure *out is NULL and err (if not NULL) says
 * why. Returns 0, -EINVAL (url, consumer), -EACCES, -ENOMEM or a connection errno. */
int np_connect(const char *url, const char *credentials, const char *consumer,
	       const struct np_options *options, struct np_conn **out, char *err, size_t err_size);
/* Drop the connection and make it again (same URL, credentials read again,
 * scripts loaded again). 0 or an errno as np_connect. The password is
 * never kept: it is read from the file for each AUTH and wiped after. */
int np_reconnect(struct np_conn *conn);
/* Close and free. Accepts NULL; returns NULL. */
struct np_conn *np_close(struct np_conn *conn);
/* Why the last failing call failed (empty if none has). Valid until the
 * next call on conn. */
const char *np_error(const struct np_conn *conn);

struct np_settings {
	uint64_t capacity;                /* bytes of entries in the stream (not delivered + not acked) */
	enum np_policy policy;
};

/* Make pipe `name` (a valid pipe name, already folded to the case rule by
 * the caller) exist: the stream and its group, and its settings if none are
 * stored yet. *settings is in/out: what to store, then what is stored (the
 * first opener's). 0, -EINVAL (name, capacity 0), or an errno. */
int np_open(struct np_conn *conn, const char *name, struct np_settings *settings);

struct np_appended {
	char id[NP_ID_SIZE];              /* the entry's stream id (empty unless appended) */
	uint64_t dropped;                 /* overwrite: entries this append dropped */
	bool wait;                        /* -EAGAIN: park the writer and retry when readers take */
};

/* Append one message (`size` bytes, may be 0) written by `user`, applying
 * the stored capacity and policy in one step: if the stream's bytes plus
 * `size` exceed the capacity,
 *   fail      -EAGAIN, wait false;
 *   block     -EAGAIN, wait true;
 *   overwrite the oldest entries not yet delivered are dropped until the
 *             message fits (counted in the drops key); if dropping every
 *             one of them would not make room (the rest is taken, not acked)
 *             nothing is dropped: -EAGAIN, wait true.
 * -EMSGSIZE if size exceeds the capacity, -ENOENT if the pipe is gone.
 * `out` may be NULL. */
int np_append(struct np_conn *conn, const char *name, const char *user, const void *data,
	      size_t size, struct np_appended *out);

struct np_entry {
	char id[NP_ID_SIZE];
	char user[NP_USER_SIZE];          /* the writer's user name */
	void *data;                       /* malloc'd payload, owned by the entry */
	size_t size;
	bool reclaimed;                   /* taken from a consumer that left it pending */
};

/* Take the next entry for this consumer: an entry another consumer took
 * and left unacknowledged for min_idle_ms, else the next new one; with
 * nothing there, wait up to block_ms (0: do not wait; at most
 * NP_BLOCK_MAX_MS) for one. 0 and *entry filled (free it with
 * np_entry_clear), -EAGAIN if none came, -ENOENT if the pipe is gone,
 * -EINVAL (block_ms), or an errno. The entry stays pending to this
 * consumer until np_ack or np_give_back. */
int np_take(struct np_conn *conn, const char *name, uint32_t block_ms, struct np_entry *entry);
void np_entry_clear(struct np_entry *entry);

/* The entry was delivered: acknowledge and delete it and subtract its
 * bytes, in one step. It is acknowledged even if another consumer has
 * reclaimed it meanwhile (that one's np_keep then says -ESTALE, so it is
 * not delivered twice if that consumer asks before delivering). 0, or
 * -ENOENT if it is not pending any more (acknowledged already, or the pipe
 * was deleted). */
int np_ack(struct np_conn *conn, const char *name, const char *id);
/* Restart the min-idle clock of an entry this consumer holds, so no other
 * takes it now. 0, or -ESTALE if it is no longer pending to this consumer
 * (reclaimed by another, or acknowledged): then do not deliver it. */
int np_keep(struct np_conn *conn, const char *name, const char *id);
/* The entry was not delivered: make it at once available to the next
 * np_take of any consumer. 0, or -ESTALE as np_keep. */
int np_give_back(struct np_conn *conn, const char *name, const char *id);

struct np_stat {
	uint64_t length;                  /* entries waiting for the group: not delivered + pending */
	uint64_t pending;                 /* of those, taken and not acknowledged */
	uint64_t bytes;                   /* payload bytes of the `length` entries */
	uint64_t drops;                   /* entries dropped by the overwrite policy, ever */
	struct np_settings settings;
};

/* 0 and *out, -ENOENT if the pipe does not exist, or an errno. */
int np_stat(struct np_conn *conn, const char *name, struct np_stat *out);
/* Delete every key of the pipe (on every host at once). 0, or an errno. */
int np_delete(struct np_conn *conn, const char *name);
