/* SPDX-License-Identifier: MIT */
/*
 * ring.h - a byte ring buffer: the storage of one pipe.
 *
 * State is (start, used) over a buffer of `capacity` bytes rather than two
 * free-running indices, so capacity need not be a power of two and nothing
 * overflows however long the ring lives. Reads are zero-copy: ring_peek_iov
 * describes queued bytes as at most two iovecs pointing into the buffer, which
 * the frontend hands to the kernel before ring_consume releases them.
 * Message framing lives in pipe.c; the ring only knows bytes.
 *
 * A ring's storage is an extent of an arena (arena.h: a memfd that survives
 * the daemon's re-exec, so queued bytes are handed over in place) when
 * r->arena is set, else malloc'd (bare rings: unit tests, fuzzers).
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct arena;

struct ring {
	uint8_t *buf;      /* NULL until ring_alloc */
	size_t capacity;   /* while buf is set, also the size of its storage */
	size_t start;      /* offset of the oldest byte, in [0, capacity) */
	size_t used;       /* bytes queued */
	struct arena *arena; /* storage comes from here (set before ring_alloc); NULL: malloc */
	uint64_t off;      /* buf's extent in arena (arena_ptr(arena, off) == buf) */
};

#define RING_INIT { NULL, 0, 0, 0, NULL, 0 }

static inline size_t ring_free(const struct ring *r)
{
	return r->capacity - r->used;
}

/* Allocate storage for `capacity` bytes (ring must be empty and unallocated),
 * from r->arena if set. 0 or -ENOMEM. */
int ring_alloc(struct ring *r, size_t capacity);

/* Release the storage (an arena's extent goes back to it); queued data is
 * discarded. */
void ring_free_storage(struct ring *r);

/* Rebuild a ring over an extent of a that the caller already reserved
 * (arena_reserve(a, off, capacity)), after a restore: the values come from a
 * state record, so they are checked: start < capacity (start 0 when capacity
 * is 0), used <= capacity, the extent inside the arena. r must be
 * unallocated. 0 or -EINVAL. */
int ring_adopt(struct ring *r, struct arena *a, uint64_t off, size_t capacity, size_t start, size_t used);

/* Append n bytes; the caller checks n <= ring_free(). */
void ring_write(struct ring *r, const void *src, size_t n);

/* Copy n queued bytes starting `offset` bytes after the oldest, without consuming. */
void ring_peek(const struct ring *r, size_t offset, void *dst, size_t n);

/* Describe n queued bytes from `offset` as up to two iovecs; returns the count (0-2). */
int ring_peek_iov(const struct ring *r, size_t offset, size_t n, struct iovec iov[2]);

/* Drop the n oldest bytes. */
void ring_consume(struct ring *r, size_t n);

/* Change capacity keeping the queued bytes (new_capacity >= used). Works on an
 * unallocated ring too (only records the capacity). New storage is taken,
 * the queued bytes copied and the old storage freed: 0, or -ENOMEM with the
 * ring as it was. */
int ring_resize(struct ring *r, size_t new_capacity);
