/* SPDX-License-Identifier: MIT */
/*
 * state.h - the record format a ringdevd image hands its state to the next
 * one in (see handover.c for what is in it, frontend/restart.c for how it
 * travels).
 *
 * A state is a header and a sequence of records, each a type, a length and
 * that many bytes, built from fixed-width fields in host byte order (the
 * two images run on the same machine). The reader treats every byte as
 * untrusted: a field read past its record's end, a record past the state's
 * end, a checksum that does not match or a version it does not know makes
 * the whole state refused, with a reason, before anything is built from it.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The version this image writes, and the oldest it reads. A change to any
 * record's layout bumps STATE_VERSION; the reader then keeps decoding the
 * versions from STATE_VERSION_MIN on. Both may be set at build time
 * (-DSTATE_VERSION=...) by the tests that prove the refusal path. */
#ifndef STATE_VERSION
#define STATE_VERSION 1u
#endif
#ifndef STATE_VERSION_MIN
#define STATE_VERSION_MIN 1u
#endif

#define STATE_MAGIC "RINGDEVS"
/* Record types from here on are the frontend's (the core passes them on). */
#define STATE_FRONTEND_RECORDS 1000u
/* The most a state may hold: far more than 16M pipes' records need. */
#define STATE_SIZE_MAX (1ull << 36)

struct state_writer {
	uint8_t *buf;
	size_t len, cap;
	size_t record;         /* offset of the open record's header */
	int err;               /* first failure (-ENOMEM), sticky */
	uint32_t records;
};

void sw_init(struct state_writer *w);
void sw_free(struct state_writer *w);
void sw_begin(struct state_writer *w, uint32_t type);
void sw_end(struct state_writer *w);
void sw_u8(struct state_writer *w, uint8_t v);
void sw_u32(struct state_writer *w, uint32_t v);
void sw_u64(struct state_writer *w, uint64_t v);
void sw_bytes(struct state_writer *w, const void *p, size_t n); /* u64 length, then the bytes */
/* Header and checksum in front of the records: the finished state
 * (w->buf, w->len), or -errno. */
int sw_finish(struct state_writer *w);

struct state_reader {
	const uint8_t *p, *end; /* the records not read yet */
	uint32_t version;
	uint32_t records;       /* how many the header says there are */
	uint32_t seen;          /* how many sr_next gave */
	const char *problem;    /* why the state was refused (first reason) */
};

struct state_record {
	uint32_t type;
	const uint8_t *p, *end; /* the fields not read yet */
	bool bad;               /* a field went past the end */
};

/* Check the header, version and checksum of a state of len bytes:
 * 0, or -EINVAL with r->problem set. */
int sr_open(struct state_reader *r, const void *buf, size_t len);
/* The same for a second pass over a state that sr_open accepted (the
 * same bytes, unchanged: a sealed memfd): the checksum is not summed again. */
int sr_reopen(struct state_reader *r, const void *buf, size_t len);
/* The next record: 1, 0 at the end, -EINVAL (r->problem) if malformed. */
int sr_next(struct state_reader *r, struct state_record *rec);
uint8_t sr_u8(struct state_record *rec);
uint32_t sr_u32(struct state_record *rec);
uint64_t sr_u64(struct state_record *rec);
/* A byte string: its address inside the state and *n, or NULL (rec->bad)
 * if it does not fit in the record or is longer than max. */
const uint8_t *sr_bytes(struct state_record *rec, size_t max, size_t *n);
/* True if every field was read and none went past the end. */
bool sr_done(const struct state_record *rec);
