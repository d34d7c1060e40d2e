/* SPDX-License-Identifier: MIT */
/*
 * ring.c - see ring.h. Every copy is split at the buffer's end at most once.
 */
#include "ring.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ring_alloc(struct ring *r, size_t capacity)
{
	assert(!r->buf && r->used == 0);
	r->buf = malloc(capacity ? capacity : 1);
	if (!r->buf)
		return -ENOMEM;
	r->capacity = capacity;
	r->start = 0;
	return 0;
}

void ring_free_storage(struct ring *r)
{
	free(r->buf);
	r->buf = NULL;
	r->start = 0;
	r->used = 0;
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
	uint8_t *b = malloc(new_capacity ? new_capacity : 1);
	if (!b)
		return -ENOMEM;
	ring_peek(r, 0, b, r->used);
	free(r->buf);
	r->buf = b;
	r->capacity = new_capacity;
	r->start = 0;
	return 0;
}
