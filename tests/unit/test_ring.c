/* SPDX-License-Identifier: MIT */
/* test_ring.c - the byte ring: wrap-around, zero-copy views, resize; each
 * over malloc'd storage (suite ring) and over an arena's extent, as a pipe's
 * ring is (suite ring_arena), and what only an arena's ring does: give its
 * extent back, fail a resize the arena cannot hold, be rebuilt over a
 * reserved extent after a restore (ring_adopt). */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "ring.h"

/* A test body run twice: `arena` is NULL (malloc) or an arena of 1 MiB. */
#define RING_TEST(Name)                                                    \
	static void Name(struct arena *arena);                                 \
	Test(ring, Name) { Name(NULL); }                                   \
	Test(ring_arena, Name) { in_arena(Name); }                         \
	static void Name(struct arena *arena)

static void in_arena(void (*body)(struct arena *))
{
	struct arena *a;
	cr_assert_eq(arena_create(1 << 20, &a), 0);
	body(a);
	cr_assert_eq(arena_in_use(a), 0, "the ring gave its extent back");
	arena_destroy(a);
}

static struct ring ring_in(struct arena *a)
{
	struct ring r = RING_INIT;
	r.arena = a;
	return r;
}

static void fill(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
}

RING_TEST(write_read_roundtrip)
{
	struct ring r = ring_in(arena);
	cr_assert_eq(ring_alloc(&r, 100), 0);
	uint8_t in[60], out[60];
	fill(in, sizeof(in), 1);
	ring_write(&r, in, 60);
	cr_assert_eq(r.used, 60);
	cr_assert_eq(ring_free(&r), 40);
	ring_peek(&r, 0, out, 60);
	cr_assert_arr_eq(in, out, 60);
	ring_consume(&r, 60);
	cr_assert_eq(r.used, 0);
	ring_free_storage(&r);
}

RING_TEST(wraps_at_the_end_of_the_buffer)
{
	struct ring r = ring_in(arena);
	cr_assert_eq(ring_alloc(&r, 10), 0);
	uint8_t a[7], b[8], out[8];
	fill(a, 7, 10);
	fill(b, 8, 50);
	ring_write(&r, a, 7);
	ring_consume(&r, 6); /* start at 6, one byte left */
	ring_consume(&r, 1); /* empty: start resets to 0 */
	cr_assert_eq(r.start, 0);
	ring_write(&r, a, 7);
	ring_consume(&r, 5); /* start 5, used 2 */
	ring_write(&r, b, 8); /* spans 7..9 and 0..4 */
	cr_assert_eq(r.used, 10);
	cr_assert_eq(ring_free(&r), 0);
	struct iovec iov[2];
	cr_assert_eq(ring_peek_iov(&r, 2, 8, iov), 2, "data crossing the end takes two iovecs");
	cr_assert_eq(iov[0].iov_len + iov[1].iov_len, 8);
	ring_peek(&r, 2, out, 8);
	cr_assert_arr_eq(out, b, 8);
	ring_consume(&r, 2);
	ring_peek(&r, 0, out, 8);
	cr_assert_arr_eq(out, b, 8);
	ring_free_storage(&r);
}

RING_TEST(exact_fit_at_the_index_limit)
{
	struct ring r = ring_in(arena);
	cr_assert_eq(ring_alloc(&r, 16), 0);
	uint8_t x[16], out[16];
	fill(x, 16, 3);
	/* Walk start through every position and fill the ring completely. */
	for (size_t s = 0; s < 16; s++) {
		uint8_t pad[16] = { 0 };
		ring_write(&r, pad, s);
		ring_consume(&r, s);
		if (s)
			cr_assert_eq(r.start, 0, "an emptied ring restarts at 0");
		r.start = s; /* force the position under test */
		ring_write(&r, x, 16);
		struct iovec iov[2];
		int cnt = ring_peek_iov(&r, 0, 16, iov);
		cr_assert_eq(cnt, s == 0 ? 1 : 2, "start %zu", s);
		ring_peek(&r, 0, out, 16);
		cr_assert_arr_eq(out, x, 16, "start %zu", s);
		ring_consume(&r, 16);
	}
	ring_free_storage(&r);
}

RING_TEST(resize_keeps_data_across_the_wrap)
{
	struct ring r = ring_in(arena);
	cr_assert_eq(ring_alloc(&r, 10), 0);
	uint8_t a[8], out[8];
	fill(a, 8, 99);
	ring_write(&r, a, 6);
	ring_consume(&r, 6);
	r.start = 6;
	ring_write(&r, a, 8); /* wraps */
	cr_assert_eq(ring_resize(&r, 32), 0);
	cr_assert_eq(r.capacity, 32);
	cr_assert_eq(r.used, 8);
	ring_peek(&r, 0, out, 8);
	cr_assert_arr_eq(out, a, 8);
	cr_assert_eq(ring_resize(&r, 8), 0, "shrinking to exactly what is queued is allowed");
	ring_peek(&r, 0, out, 8);
	cr_assert_arr_eq(out, a, 8);
	cr_assert_eq(ring_free(&r), 0);
	ring_free_storage(&r);
}

RING_TEST(resize_before_allocation_only_records_capacity)
{
	struct ring r = ring_in(arena);
	r.capacity = 10;
	cr_assert_eq(ring_resize(&r, 4096), 0);
	cr_assert_null(r.buf);
	cr_assert_eq(r.capacity, 4096);
}

Test(ring_arena, storage_is_an_extent_of_the_arena)
{
	struct arena *a;
	cr_assert_eq(arena_create(1 << 20, &a), 0);
	struct ring r = ring_in(a), s = ring_in(a);
	cr_assert_eq(ring_alloc(&r, 100), 0);
	cr_assert_eq(ring_alloc(&s, 5000), 0);
	cr_assert_eq((uint8_t *)r.buf, (uint8_t *)arena_ptr(a, r.off));
	cr_assert_eq((uint8_t *)s.buf, (uint8_t *)arena_ptr(a, s.off));
	cr_assert_eq(arena_in_use(a), 4096 + 8192, "whole pages: %llu", (unsigned long long)arena_in_use(a));
	ring_free_storage(&r);
	cr_assert_null(r.buf);
	cr_assert_eq(arena_in_use(a), 8192);
	cr_assert_eq(ring_resize(&s, 100), 0);
	cr_assert_eq(arena_in_use(a), 4096, "a resize gives the old extent back");
	ring_free_storage(&s);
	cr_assert_eq(arena_in_use(a), 0);
	arena_destroy(a);
}

Test(ring_arena, a_resize_the_arena_cannot_hold_leaves_the_ring_as_it_was)
{
	struct arena *a;
	cr_assert_eq(arena_create(3 * 4096, &a), 0);
	struct ring r = ring_in(a);
	cr_assert_eq(ring_alloc(&r, 2 * 4096), 0);
	uint8_t in[6000], out[6000];
	fill(in, sizeof(in), 5);
	ring_write(&r, in, 3000);
	ring_consume(&r, 2000);
	ring_write(&r, in, sizeof(in)); /* wraps */
	size_t start = r.start, used = r.used;
	uint8_t *buf = r.buf;
	/* The new extent (2 pages) and the old one (2) do not fit 3 pages. */
	cr_assert_eq(ring_resize(&r, 2 * 4096 - 1), -ENOMEM);
	cr_assert_eq(r.buf, buf);
	cr_assert_eq(r.capacity, 2 * 4096);
	cr_assert_eq(r.start, start);
	cr_assert_eq(r.used, used);
	cr_assert_eq(arena_in_use(a), 2 * 4096);
	ring_peek(&r, 1000, out, sizeof(in));
	cr_assert_arr_eq(out, in, sizeof(in));
	ring_free_storage(&r);
	struct ring big = ring_in(a);
	cr_assert_eq(ring_alloc(&big, 4 * 4096), -ENOMEM);
	cr_assert_null(big.buf);
	arena_destroy(a);
}

Test(ring_arena, adopt_checks_the_state_it_is_given)
{
	struct arena *a;
	cr_assert_eq(arena_create(4 * 4096, &a), 0);
	struct ring r = RING_INIT;
	cr_assert_eq(ring_adopt(&r, a, 0, 100, 100, 0), -EINVAL, "start == capacity");
	cr_assert_eq(ring_adopt(&r, a, 0, 100, 1000, 0), -EINVAL, "start past capacity");
	cr_assert_eq(ring_adopt(&r, a, 0, 100, 0, 101), -EINVAL, "used past capacity");
	cr_assert_eq(ring_adopt(&r, a, 0, 0, 1, 0), -EINVAL, "capacity 0: start 0");
	cr_assert_eq(ring_adopt(&r, a, 3 * 4096, 4097, 0, 0), -EINVAL, "past the arena's end");
	cr_assert_eq(ring_adopt(&r, a, UINT64_MAX - 4095, 100, 0, 0), -EINVAL, "offset past the end");
	cr_assert_null(r.buf, "nothing taken by a refusal");
	cr_assert_eq(arena_reserve(a, 4096, 0), 0);
	cr_assert_eq(ring_adopt(&r, a, 4096, 0, 0, 0), 0, "an empty ring of capacity 0");
	ring_free_storage(&r);
	cr_assert_eq(arena_in_use(a), 0);
	arena_destroy(a);
}

/* What a re-exec does: the new image maps the memfd again and rebuilds each
 * ring over its extent from (offset, capacity, start, used). */
Test(ring_arena, a_ring_adopted_through_the_memfd_holds_the_same_bytes)
{
	struct arena *old;
	cr_assert_eq(arena_create(1 << 20, &old), 0);
	struct ring pad = ring_in(old), r = ring_in(old);
	cr_assert_eq(ring_alloc(&pad, 10000), 0);
	cr_assert_eq(ring_alloc(&r, 10000), 0);
	uint8_t in[9000], out[9000];
	fill(in, sizeof(in), 77);
	ring_write(&r, in, 6000);
	ring_consume(&r, 5000);
	ring_write(&r, in, sizeof(in)); /* wraps */
	int fd = dup(arena_fd(old));
	cr_assert_geq(fd, 0);
	struct arena *now;
	cr_assert_eq(arena_adopt(fd, &now), 0);
	cr_assert_eq(arena_reserve(now, r.off, r.capacity), 0);
	struct ring again = RING_INIT;
	cr_assert_eq(ring_adopt(&again, now, r.off, r.capacity, r.start, r.used), 0);
	cr_assert_eq(again.used, 1000 + sizeof(in));
	ring_peek(&again, 1000, out, sizeof(in));
	cr_assert_arr_eq(out, in, sizeof(in));
	ring_free_storage(&again);
	cr_assert_eq(arena_in_use(now), 0);
	arena_destroy(now);
	ring_free_storage(&r);
	ring_free_storage(&pad);
	arena_destroy(old);
}
