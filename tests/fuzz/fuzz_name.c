/* SPDX-License-Identifier: MIT */
/*
 * fuzz_name.c - target "name": the pipe-name rules of common/name.c against
 * a restatement of ringdev(4)'s rule (1 to 63 bytes of [A-Za-z0-9._-], not
 * starting with '.'), and name_hash against name_equal: names that are
 * equal under a case rule must hash equal under it, or the pipe table
 * (which compares only within a hash chain) would hold one pipe twice. The
 * table itself is asked too: a name finds the pipe of any name equal to it.
 *
 * Input: one byte of flags, one of length, the first name, then the second
 * (raw, or the first with letters' case flipped and one byte changed).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "device_internal.h"
#include "fuzz_input.h"
#include "name.h"

#define CHECK(cond, ...)                                                                                              \
	do {                                                                                                          \
		if (!(cond)) {                                                                                        \
			fprintf(stderr, "fuzz-name: " __VA_ARGS__);                                                   \
			fputc('\n', stderr);                                                                          \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

static int spec_check(const uint8_t *s, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > RINGDEV_NAME_MAX)
		return -ENAMETOOLONG;
	if (s[0] == '.')
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		uint8_t c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
			  c == '_' || c == '-';
		if (!ok)
			return -EINVAL;
	}
	return 0;
}

static uint8_t spec_fold(uint8_t c)
{
	return c >= 'A' && c <= 'Z' ? (uint8_t)(c + 32) : c;
}

static bool spec_equal(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen, bool cs)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if ((cs ? a[i] : spec_fold(a[i])) != (cs ? b[i] : spec_fold(b[i])))
			return false;
	return true;
}

/* A copy in a buffer of exactly len bytes: reading past it is reported. */
static char *exact(const uint8_t *s, size_t len)
{
	char *p = malloc(len ? len : 1);
	CHECK(p, "out of memory");
	memcpy(p, s, len);
	return p;
}

static void check_one(const uint8_t *s, size_t len)
{
	char *p = exact(s, len);
	int r = name_check(p, len);
	CHECK(r == spec_check(s, len), "name_check(%zu bytes) = %d, the rule says %d", len, r, spec_check(s, len));
	char *z = calloc(1, len + 1);
	CHECK(z, "out of memory");
	memcpy(z, s, len);
	size_t zlen = strnlen(z, len);
	CHECK(name_check_str(z) == spec_check(s, zlen), "name_check_str disagrees with name_check");
	for (int cs = 0; cs < 2; cs++)
		CHECK(name_equal(p, len, p, len, cs), "a name differs from itself");
	free(z);
	free(p);
}

/* Both names in a table: each finds the pipe of the other iff they are equal. */
static void check_table(const char *a, size_t alen, const char *b, size_t blen, bool cs)
{
	if (spec_check((const uint8_t *)a, alen) < 0)
		return;
	struct pipe_table t;
	pipe_table_init(&t, cs);
	struct pipe *pa = calloc(1, sizeof(*pa));
	CHECK(pa, "out of memory");
	memcpy(pa->name, a, alen);
	pa->name_len = alen;
	CHECK(pipe_table_add(&t, pa) == 0, "pipe_table_add failed");
	bool eq = spec_equal((const uint8_t *)a, alen, (const uint8_t *)b, blen, cs);
	struct pipe *found = pipe_table_find(&t, b, blen);
	CHECK(found == (eq ? pa : NULL), "pipe_table_find: %s for names that are %s", found ? "found" : "missed",
	      eq ? "equal" : "different");
	pipe_table_remove(&t, pa);
	pipe_table_deinit(&t);
	free(pa);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	uint8_t flags = fin_u8(&in);
	size_t alen = fin_u8(&in) % 80;
	uint8_t a[80], b[80];
	size_t blen;
	alen = fin_bytes(&in, a, alen);
	if (flags & 1) {
		/* The same name with letters' case flipped, maybe one byte changed. */
		blen = alen;
		for (size_t i = 0; i < alen; i++) {
			uint8_t c = a[i];
			b[i] = ((c | 32) >= 'a' && (c | 32) <= 'z' && (fin_u8(&in) & 1)) ? (uint8_t)(c ^ 32) : c;
		}
		if ((flags & 2) && alen)
			b[fin_u8(&in) % alen] = fin_u8(&in);
	} else {
		blen = fin_bytes(&in, b, in.left < sizeof(b) ? in.left : sizeof(b));
	}
	check_one(a, alen);
	check_one(b, blen);
	char *pa = exact(a, alen), *pb = exact(b, blen);
	for (int cs = 0; cs < 2; cs++) {
		bool eq = name_equal(pa, alen, pb, blen, cs);
		CHECK(eq == spec_equal(a, alen, b, blen, cs), "name_equal (case %s) disagrees with the rule",
		      cs ? "sensitive" : "folded");
		CHECK(eq == name_equal(pb, blen, pa, alen, cs), "name_equal is not symmetric");
		if (eq)
			CHECK(name_hash(pa, alen, cs) == name_hash(pb, blen, cs),
			      "equal names hash differently (case %s)", cs ? "sensitive" : "folded");
		if (cs && eq)
			CHECK(name_equal(pa, alen, pb, blen, false), "equal with case, different without");
		check_table(pa, alen, pb, blen, cs);
	}
	free(pa);
	free(pb);
	return 0;
}
