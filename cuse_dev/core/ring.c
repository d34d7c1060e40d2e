/* SPDX-License-Identifier: MIT */
/*
 * ring.c - see ring.h. Every copy is split at the buffer's end at most once.
 */
#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

/* Storage of `capacity` bytes for r: *buf (and *off in r->arena). */
static int storage_take(const struct ring *r, size_t capacity, uint8_t **buf, uint64_t *off)
{
	if (!r->arena) {
		*buf = malloc(capacity ? capacity : 1);
		*off = 0;
		return *buf ? 0 : -ENOMEM;
	}
	int e = arena_alloc(r->arena, capacity, off);
	if (e < 0)
		return e;
	*buf = arena_ptr(r->arena, *off);
	return 0;
}

static void storage_give(const struct ring *r, uint8_t *buf, uint64_t off, size_t capacity)
{
	if (!r->arena)
		free(buf);
	else if (buf)
		arena_free(r->arena, off, capacity);
}

int ring_alloc(struct ring *r, size_t capacity)
{
	assert(!r->buf && r->used == 0);
	int e = storage_take(r, capacity, &r->buf, &r->off);
	if (e < 0)
		return e;
	r->capacity = capacity;
	r->start = 0;
	return 0;
}

void ring_free_storage(struct ring *r)
{
	storage_give(r, r->buf, r->off, r->capacity);
	r->buf = NULL;
	r->off = 0;
	r->start = 0;
	r->used = 0;
}

int ring_adopt(struct ring *r, struct arena *a, uint64_t off, size_t capacity, size_t start, size_t used)
{
	assert(!r->buf);
	if (capacity ? start >= capacity : start != 0)
		return -EINVAL;
	if (used > capacity)
		return -EINVAL;
	uint64_t len = arena_extent_size(capacity);
	if (len == 0 || off > arena_size(a) || len > arena_size(a) - off)
		return -EINVAL;
	r->arena = a;
	r->off = off;
	r->buf = arena_ptr(a, off);
	r->capacity = capacity;
	r->start = start;
	r->used = used;
	return 0;
}

/* Offset in buf of the byte `offset` bytes after the oldest. */
static size_t ring_pos(const struct ring *r, size_t offset)
{
	size_t p = r->start + offset;
	return p >= r->capacity ? p - r->capacity : p;
}

void ring_write(struct ring *r, const void *src, size_t n)
{
	assert(n <= ring_free(r));
	if (n == 0)
		return;
	size_t tail = ring_pos(r, r->used);
	size_t first = r->capacity - tail;
	if (first > n)
		first = n;
	memcpy(r->buf + tail, src, first);
	memcpy(r->buf, (const uint8_t *)src + first, n - first);
	r->used += n;
}

void ring_peek(const struct ring *r, size_t offset, void *dst, size_t n)
{
	struct iovec iov[2];
	int cnt = ring_peek_iov(r, offset, n, iov);
	uint8_t *d = dst;
	for (int i = 0; i < cnt; i++) {
		memcpy(d, iov[i].iov_base, iov[i].iov_len);
		d += iov[i].iov_len;
	}
}

int ring_peek_iov(const struct ring *r, size_t offset, size_t n, struct iovec iov[2])
{
	assert(offset + n <= r->used);
	if (n == 0)
		return 0;
	size_t pos = ring_pos(r, offset);
	size_t first = r->capacity - pos;
	if (first >= n) {
		iov[0] = (struct iovec){ r->buf + pos, n };
		return 1;
	}
	iov[0] = (struct iovec){ r->buf + pos, first };
	iov[1] = (struct iovec){ r->buf, n - first };
	return 2;
}

void ring_consume(struct ring *r, size_t n)
{
	assert(n <= r->used);
	r->start = ring_pos(r, n);
	r->used -= n;
	if (r->used == 0)
		r->start = 0; /* keeps later writes contiguous */
}

int ring_resize(struct ring *r, size_t new_capacity)
{
	assert(new_capacity >= r->used);
	if (!r->buf) {
		r->capacity = new_capacity;
		return 0;
	}
	uint8_t *b;
	uint64_t off;
	int e = storage_take(r, new_capacity, &b, &off);
	if (e < 0)
		return e;
	ring_peek(r, 0, b, r->used);
	storage_give(r, r->buf, r->off, r->capacity);
	r->buf = b;
	r->off = off;
	r->capacity = new_capacity;
	r->start = 0;
	return 0;
}
