/* SPDX-License-Identifier: MIT */
/*
 * state.c - see state.h. The layout of a state:
 *
 *   magic[8] version:u32 records:u32 body_len:u64 checksum:u64 | records...
 *   record: type:u32 len:u32 | len bytes of fields
 *
 * The checksum (64 bits, FNV-like, a word at a time) of the body catches a state that was cut
 * or overwritten; it is no defence against a forger, and none is needed:
 * only a process that already holds the kernel connection can hand one over.
 */
#include "state.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define HEADER_SIZE 32u
#define RECORD_HEADER 8u
#define RECORD_MAX (1u << 31)

/* 64 bits of the body, 8 bytes a step (a gigabit or more a second:
 * the state of 10,000 pipes is checked in about a millisecond). */
static uint64_t body_sum(const uint8_t *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t w;
		memcpy(&w, p + i, 8);
		h = (h ^ w) * 0x100000001b3ull;
		h ^= h >> 29;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h ^ (h >> 32);
}

void sw_init(struct state_writer *w)
{
	*w = (struct state_writer){ 0 };
	w->len = HEADER_SIZE;
	w->record = SIZE_MAX;
}

void sw_free(struct state_writer *w)
{
	free(w->buf);
	w->buf = NULL;
	w->len = w->cap = 0;
}

static void put(struct state_writer *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (w->len + n > w->cap) {
		size_t cap = w->cap ? w->cap : 4096;
		while (cap < w->len + n)
			cap *= 2;
		uint8_t *b = realloc(w->buf, cap);
		if (!b) {
			w->err = -ENOMEM;
			return;
		}
		w->buf = b;
		w->cap = cap;
	}
	memcpy(w->buf + w->len, p, n);
	w->len += n;
}

void sw_begin(struct state_writer *w, uint32_t type)
{
	uint32_t h[2] = { type, 0 };
	w->record = w->len;
	put(w, h, sizeof(h));
}

void sw_end(struct state_writer *w)
{
	if (w->err || w->record == SIZE_MAX)
		return;
	size_t n = w->len - w->record - RECORD_HEADER;
	if (n >= RECORD_MAX) {
		w->err = -EOVERFLOW;
		return;
	}
	uint32_t len = (uint32_t)n;
	memcpy(w->buf + w->record + 4, &len, sizeof(len));
	w->record = SIZE_MAX;
	w->records++;
}

void sw_u8(struct state_writer *w, uint8_t v)
{
	put(w, &v, sizeof(v));
}

void sw_u32(struct state_writer *w, uint32_t v)
{
	put(w, &v, sizeof(v));
}

void sw_u64(struct state_writer *w, uint64_t v)
{
	put(w, &v, sizeof(v));
}

void sw_bytes(struct state_writer *w, const void *p, size_t n)
{
	sw_u64(w, n);
	if (n)
		put(w, p, n);
}

int sw_finish(struct state_writer *w)
{
	if (!w->err && !w->buf) { /* an empty state still has a header */
		w->buf = calloc(1, HEADER_SIZE);
		if (!w->buf)
			w->err = -ENOMEM;
		w->cap = HEADER_SIZE;
	}
	if (w->err)
		return w->err;
	uint32_t version = STATE_VERSION;
	uint64_t body = w->len - HEADER_SIZE;
	uint64_t sum = body_sum(w->buf + HEADER_SIZE, body);
	memcpy(w->buf, STATE_MAGIC, 8);
	memcpy(w->buf + 8, &version, 4);
	memcpy(w->buf + 12, &w->records, 4);
	memcpy(w->buf + 16, &body, 8);
	memcpy(w->buf + 24, &sum, 8);
	return 0;
}

static int refuse(struct state_reader *r, const char *why)
{
	if (!r->problem)
		r->problem = why;
	return -EINVAL;
}

static int open_state(struct state_reader *r, const void *buf, size_t len, bool sum_checked)
{
	*r = (struct state_reader){ 0 };
	const uint8_t *b = buf;
	if (len < HEADER_SIZE || memcmp(b, STATE_MAGIC, 8) != 0)
		return refuse(r, "not a ringdevd state");
	uint64_t body, sum;
	memcpy(&r->version, b + 8, 4);
	memcpy(&r->records, b + 12, 4);
	memcpy(&body, b + 16, 8);
	memcpy(&sum, b + 24, 8);
	if (r->version < STATE_VERSION_MIN || r->version > STATE_VERSION)
		return refuse(r, "a state version this ringdevd does not know");
	if (body != len - HEADER_SIZE)
		return refuse(r, "the state's length does not match its header");
	if (!sum_checked && body_sum(b + HEADER_SIZE, body) != sum)
		return refuse(r, "the state's checksum does not match");
	r->p = b + HEADER_SIZE;
	r->end = b + len;
	return 0;
}

int sr_open(struct state_reader *r, const void *buf, size_t len)
{
	return open_state(r, buf, len, false);
}

int sr_reopen(struct state_reader *r, const void *buf, size_t len)
{
	return open_state(r, buf, len, true);
}

int sr_next(struct state_reader *r, struct state_record *rec)
{
	if (r->problem)
		return -EINVAL;
	if (r->p == r->end)
		return r->seen == r->records ? 0 : refuse(r, "the state's record count does not match its header");
	if ((size_t)(r->end - r->p) < RECORD_HEADER)
		return refuse(r, "a record is cut short");
	uint32_t type, len;
	memcpy(&type, r->p, 4);
	memcpy(&len, r->p + 4, 4);
	if ((size_t)(r->end - r->p) - RECORD_HEADER < len)
		return refuse(r, "a record runs past the end of the state");
	*rec = (struct state_record){ .type = type, .p = r->p + RECORD_HEADER, .end = r->p + RECORD_HEADER + len };
	r->p = rec->end;
	r->seen++;
	return 1;
}

static const uint8_t *take(struct state_record *rec, size_t n)
{
	if (rec->bad || (size_t)(rec->end - rec->p) < n) {
		rec->bad = true;
		return NULL;
	}
	const uint8_t *p = rec->p;
	rec->p += n;
	return p;
}

uint8_t sr_u8(struct state_record *rec)
{
	const uint8_t *p = take(rec, 1);
	return p ? *p : 0;
}

uint32_t sr_u32(struct state_record *rec)
{
	uint32_t v = 0;
	const uint8_t *p = take(rec, sizeof(v));
	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

uint64_t sr_u64(struct state_record *rec)
{
	uint64_t v = 0;
	const uint8_t *p = take(rec, sizeof(v));
	if (p)
		memcpy(&v, p, sizeof(v));
	return v;
}

const uint8_t *sr_bytes(struct state_record *rec, size_t max, size_t *n)
{
	uint64_t len = sr_u64(rec);
	if (rec->bad || len > max || len > (uint64_t)(rec->end - rec->p)) {
		rec->bad = true;
		*n = 0;
		return NULL;
	}
	*n = (size_t)len;
	return take(rec, (size_t)len);
}

bool sr_done(const struct state_record *rec)
{
	return !rec->bad && rec->p == rec->end;
}
