/* SPDX-License-Identifier: MIT */
/*
 * rendezvous.h - brokered pipes in ringdev-broker: the broker is the other
 * end of the pipe (the OSR data sink and data source linked together), so a
 * write completes only when a reader takes its bytes, with no buffer between.
 *
 * Rules (ringdev-broker(8), "BROKERED PIPES"): READs and WRITEs wait per pipe
 * in FIFO order. A READ takes min(wanted, what is left of the oldest WRITE)
 * bytes from that one WRITE; a WRITE is answered with its full size once all
 * its bytes were taken, by as many READs as that needs. A READ finds
 * end-of-file (0 bytes) when no WRITE waits and the writers the pipe had
 * have all closed; before any writer came, it waits, as on a FIFO.
 *
 * Exactly once: a cancelled READ that got nothing, or WRITE none of whose
 * bytes were taken, is dropped (the app gets EINTR); a cancelled WRITE some
 * of whose bytes readers took is answered with that count, so the writer
 * does not send them again. Bytes a READ answer carried that reached no
 * reader (the daemon refused the answer) come back with rv_unread() and go
 * to the next reader before anything written after them.
 *
 * The module keeps no locks and does no I/O: requests are opaque pointers,
 * and completions go through `struct rv_ops`, so the unit tests drive it
 * directly. The caller serialises calls and must keep a WRITE's bytes valid
 * until write_done or drop is called for it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct rv_ops {
	/* Answer READ `request` with `size` bytes of `data` (0: end-of-file). */
	void (*read_done)(void *ctx, void *request, const void *data, size_t size);
	/* Answer WRITE `request`: `taken` bytes went to readers. */
	void (*write_done)(void *ctx, void *request, size_t taken);
	/* End `request` without an answer (it was cancelled or its handle closed). */
	void (*drop)(void *ctx, void *request);
};

struct rendezvous;

struct rv_counts {
	uint64_t pipes;               /* brokered pipes with state */
	uint64_t handles;             /* handles known on them */
	uint64_t reads_held;
	uint64_t writes_held;
	uint64_t unread_bytes;        /* bytes given back by rv_unread() not read yet */
};

/* NULL when out of memory. */
struct rendezvous *rv_new(const struct rv_ops *ops, void *ctx, bool case_sensitive);
/* Frees the state; held requests are not answered (the caller's channel
 * ends them). Accepts NULL; returns NULL. */
struct rendezvous *rv_free(struct rendezvous *rv);

/* Handle `handle` is now on brokered pipe `pipe`; a writer if opened for
 * writing. Replaces where it was. 0 or -ENOMEM. */
int rv_attach(struct rendezvous *rv, uint64_t handle, const char *pipe, bool writer);
/* The handle closed or moved to a pipe that is not brokered; held requests
 * of the handle are dropped. */
void rv_detach(struct rendezvous *rv, uint64_t handle);

/* A READ of `wanted` bytes / a WRITE of `size` bytes on `pipe` by `handle`,
 * request id `id`. Either is answered now or held; with `nonblock` (the
 * handle has O_NONBLOCK) never held: a write answers what readers took
 * at once, if anything. 0, or -EAGAIN (nonblock, nothing could be done) or
 * -ENOMEM: then nothing was done and the caller answers the request. */
int rv_read(struct rendezvous *rv, uint64_t handle, uint64_t id, const char *pipe, size_t wanted,
	    bool nonblock, void *request);
int rv_write(struct rendezvous *rv, uint64_t handle, uint64_t id, const char *pipe, const void *data,
	     size_t size, bool nonblock, void *request);

/* The request with this id was cancelled: ended if held (dropped, or a
 * WRITE whose bytes were partly taken answered with that count). True if it
 * was held. */
bool rv_cancel(struct rendezvous *rv, uint64_t id);

/* `size` bytes of `pipe` that no reader got (a refused READ answer): copied
 * and put at the head of the pipe's queue, before every waiting WRITE, and
 * handed to waiting READs at once. 0 or -ENOMEM. */
int rv_unread(struct rendezvous *rv, const char *pipe, const void *data, size_t size);

void rv_get_counts(const struct rendezvous *rv, struct rv_counts *out);
