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
 */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct ring {
	uint8_t *buf;      /* NULL until ring_alloc */
	size_t capacity;
	size_t start;      /* offset of the oldest byte, in [0, capacity) */
	size_t used;       /* bytes queued */
};

#define RING_INIT { NULL, 0, 0, 0 }

static inline size_t ring_free(const struct ring *r)
{
	return r->capacity - r->used;
}

/* Allocate storage for `capacity` bytes (ring must be empty and unallocated). 0 or -ENOMEM. */
int ring_alloc(struct ring *r, size_t capacity);

/* Release the storage; queued data is discarded. */
void ring_free_storage(struct ring *r);

/* Append n bytes; the caller checks n <= ring_free(). */
void ring_write(struct ring *r, const void *src, size_t n);

/* Copy n queued bytes starting `offset` bytes after the oldest, without consuming. */
void ring_peek(const struct ring *r, size_t offset, void *dst, size_t n);

/* Describe n queued bytes from `offset` as up to two iovecs; returns the count (0-2). */
int ring_peek_iov(const struct ring *r, size_t offset, size_t n, struct iovec iov[2]);

/* Drop the n oldest bytes. */
void ring_consume(struct ring *r, size_t n);

/* Change capacity keeping the queued bytes (new_capacity >= used). Works on an
 * unallocated ring too (only records the capacity). 0 or -ENOMEM. */
int ring_resize(struct ring *r, size_t new_capacity);
