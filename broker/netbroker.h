/* SPDX-License-Identifier: MIT */
/*
 * netbroker.h - reads and writes of network pipes in ringdev-broker (issue
 * 21): a pipe whose policy line says network=redis://... is brokered, and its
 * READs and WRITEs come here instead of the rendezvous (rendezvous.h).
 *
 * Design: the library's callbacks must not block, and every netpipe call is
 * a round trip to Redis, so the handler only queues a request (nb_submit)
 * and answers nothing itself. Each network (one URL) has two worker threads,
 * each with its own np connection: a writer (np_append, retrying writes that
 * wait for room) and a reader (np_take with a bounded BLOCK, np_keep, the
 * answer, then np_ack or np_give_back). The two are apart so a reader
 * waiting in XREADGROUP BLOCK never holds a write back.
 *
 * Exactly once: an entry is acknowledged (np_ack) only once the daemon
 * accepted the READ answer that carried it (the library's accepted handler:
 * nb_accepted), and given back (np_give_back) for the next reader, on any
 * host, when it refused it (nb_refused) or no verdict came (the channel
 * broke, the broker stops: NB_VERDICT_MAX_MS at most). What is left: a broker
 * killed between the daemon's acceptance and the np_ack (one Redis round
 * trip) leaves the entry pending, and after NP_MIN_IDLE_MS another reader
 * gets it again; ringdev-broker(8) says so.
 *
 * Locks: one mutex for the queues of every network; no Redis call and no
 * answer is made under it (an answer may call the refused handler, which
 * calls nb_refused).
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <ringdev/ringdev-broker.h>

#include "netpipe.h"

/* How long a READ waits in one XREADGROUP BLOCK: a CANCEL of a waiting READ
 * is answered within it. */
#define NB_TAKE_BLOCK_MS 100u
/* How long a delivered entry waits for the daemon's verdict on its answer
 * (it comes with the TRANSACT that carried the answer: well within this). */
#define NB_VERDICT_MAX_MS 60000u
/* A WRITE that waits for room (policy block) is tried again after this
 * backoff, doubling from the first to the last. */
#define NB_RETRY_FIRST_MS 2u
#define NB_RETRY_LAST_MS 50u

struct netbroker;

struct nb_counts {
	uint64_t networks;            /* networks with worker threads */
	uint64_t reads_held;          /* READs queued or being served */
	uint64_t writes_held;         /* WRITEs queued or being served */
	uint64_t settling;            /* delivered entries not acknowledged yet */
};

/* `credentials` (a file, or NULL) is passed to np_connect; names fold to
 * lower case unless `case_sensitive`. NULL when out of memory. */
struct netbroker *nb_new(const char *credentials, bool case_sensitive);

/* Stop the workers (each finishes the Redis call it is in), end every
 * queued request with ECONNRESET, give back every delivered entry whose
 * verdict did not come. Call it after rdb_run() returned and before
 * rdb_close().
 * Accepts NULL; returns NULL. */
struct netbroker *nb_free(struct netbroker *nb);

/* Take READ or WRITE `request` on the network pipe `url` with `settings`
 * (the capacity and full policy its first opener stores). Starts the
 * network's workers on first use. 0 (the request belongs to the netbroker
 * now), or -ENOMEM / -EAGAIN (no thread): the caller answers it. */
int nb_submit(struct netbroker *nb, const char *url, const struct np_settings *settings,
	      struct rdb_request *request);

/* A CANCEL of request `id`: a READ or WRITE still waiting is dropped (the
 * app gets EINTR); one a worker is serving is answered with its outcome.
 * True if the netbroker holds it. */
bool nb_cancel(struct netbroker *nb, uint64_t id);

/* Handle `handle` closed: its waiting requests are dropped. */
void nb_release(struct netbroker *nb, uint64_t handle);

/* The daemon refused the answer to READ `id`: if it carried an entry, that
 * entry is given back. True if the READ was the netbroker's. */
bool nb_refused(struct netbroker *nb, uint64_t id);
/* The daemon accepted the answer to READ `id`: its entry is acknowledged.
 * True if the READ was the netbroker's. */
bool nb_accepted(struct netbroker *nb, uint64_t id);

void nb_get_counts(struct netbroker *nb, struct nb_counts *out);
