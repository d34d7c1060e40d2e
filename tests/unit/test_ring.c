/* SPDX-License-Identifier: MIT */
/* test_ring.c - the byte ring: wrap-around, zero-copy views, resize. */
#include <criterion/criterion.h>
#include <string.h>

#include "ring.h"

static void fill(uint8_t *b, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(seed + i * 7);
}

Test(ring, write_read_roundtrip)
{
	struct ring r = RING_INIT;
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

Test(ring, wraps_at_the_end_of_the_buffer)
{
	struct ring r = RING_INIT;
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

Test(ring, exact_fit_at_the_index_limit)
{
	struct ring r = RING_INIT;
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

Test(ring, resize_keeps_data_across_the_wrap)
{
	struct ring r = RING_INIT;
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

Test(ring, resize_before_allocation_only_records_capacity)
{
	struct ring r = RING_INIT;
	r.capacity = 10;
	cr_assert_eq(ring_resize(&r, 4096), 0);
	cr_assert_null(r.buf);
	cr_assert_eq(r.capacity, 4096);
}
