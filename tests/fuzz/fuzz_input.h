/* SPDX-License-Identifier: MIT */
/*
 * fuzz_input.h - a fuzz input read as a stream of small decisions. Reading
 * past the end yields zeros, so every input is a complete program: a target
 * never rejects an input, it only runs out of it. Multi-byte numbers are
 * little-endian, so seed files can be written by hand (corpus/gen.py).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct fuzz_input {
	const uint8_t *data;
	size_t left;
};

static inline bool fin_done(const struct fuzz_input *in)
{
	return in->left == 0;
}

static inline uint8_t fin_u8(struct fuzz_input *in)
{
	if (!in->left)
		return 0;
	in->left--;
	return *in->data++;
}

static inline uint16_t fin_u16(struct fuzz_input *in)
{
	uint16_t lo = fin_u8(in);
	return (uint16_t)(lo | (uint16_t)fin_u8(in) << 8);
}

static inline uint32_t fin_u32(struct fuzz_input *in)
{
	uint32_t lo = fin_u16(in);
	return lo | (uint32_t)fin_u16(in) << 16;
}

static inline uint64_t fin_u64(struct fuzz_input *in)
{
	uint64_t lo = fin_u32(in);
	return lo | (uint64_t)fin_u32(in) << 32;
}

/* One of n choices (n >= 1). */
static inline unsigned fin_pick(struct fuzz_input *in, unsigned n)
{
	return fin_u8(in) % n;
}

/* Copy up to n bytes into dst and zero the rest; returns the bytes copied. */
static inline size_t fin_bytes(struct fuzz_input *in, void *dst, size_t n)
{
	size_t got = n < in->left ? n : in->left;
	if (got)
		memcpy(dst, in->data, got);
	memset((uint8_t *)dst + got, 0, n - got);
	in->data += got;
	in->left -= got;
	return got;
}
