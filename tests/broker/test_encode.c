/* SPDX-License-Identifier: MIT */
/*
 * test_encode.c - the control protocol's encoding in libringdev-broker
 * (broker/lib/encode.c), no daemon: every answer is compared byte for byte
 * with the struct it must be, so a stray flag or a non-zero reserved byte
 * fails here rather than as an app's EIO; the checks on requests from the
 * daemon; the inline/STAGE and FETCH chunk decisions for large payloads.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "encode.h"

static struct ringdev_ctl_request request_of(uint32_t type, uint64_t id)
{
	struct ringdev_ctl_request q;

	memset(&q, 0, sizeof(q));
	q.id = id;
	q.type = type;
	return q;
}

/* The answer `a` must be exactly `want`, every byte. */
static void assert_answer(const struct ringdev_ctl_answer *a, const struct ringdev_ctl_answer *want)
{
	const uint8_t *x = (const uint8_t *)a, *y = (const uint8_t *)want;

	for (size_t i = 0; i < sizeof(*a); i++)
		cr_assert_eq(x[i], y[i], "answer byte %zu is 0x%02x, expected 0x%02x", i, x[i], y[i]);
}

static struct ringdev_ctl_answer expected(uint64_t id, int32_t result)
{
	struct ringdev_ctl_answer a;

	memset(&a, 0, sizeof(a));
	a.id = id;
	a.result = result;
	return a;
}

Test(encode, deny_carries_minus_errno_and_nothing_else)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_OPEN, 0x1122334455667788ull);
	struct ringdev_ctl_answer a, want = expected(q.id, -EACCES);

	memset(&a, 0xff, sizeof(a));
	cr_assert_eq(ctl_answer_deny(&a, &q, EACCES), 0);
	assert_answer(&a, &want);
	/* Little-endian bytes of the id and of -13 where the ABI puts them. */
	cr_assert_eq(((uint8_t *)&a)[0], 0x88);
	cr_assert_eq(((uint8_t *)&a)[offsetof(struct ringdev_ctl_answer, result)], 0xf3);
}

Test(encode, deny_refuses_errnos_out_of_range_and_notices)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_IOCTL, 7);
	struct ringdev_ctl_request cancel = request_of(RINGDEV_CTL_CANCEL, 8);
	struct ringdev_ctl_answer a;

	cr_assert_eq(ctl_answer_deny(&a, &q, 0), -EINVAL);
	cr_assert_eq(ctl_answer_deny(&a, &q, -5), -EINVAL);
	/* The kernel carries 1 to 511 to an app; 512 and up never leave. */
	cr_assert_eq(ctl_answer_deny(&a, &q, 512), -EINVAL);
	cr_assert_eq(ctl_answer_deny(&a, &q, 600), -EINVAL);
	cr_assert_eq(ctl_answer_deny(&a, &q, 4095), -EINVAL);
	cr_assert_eq(ctl_answer_deny(&a, &q, 511), 0);
	cr_assert_eq(a.result, -511);
	cr_assert_eq(RDB_ERRNO_MAX, 511);
	cr_assert_eq(ctl_answer_deny(&a, &cancel, EIO), -EINVAL);
}

Test(encode, allow_as_asked_is_all_zero_but_the_id)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_ATTACH, 42);
	struct ringdev_ctl_answer a, want = expected(42, 0);

	cr_assert_eq(ctl_answer_allow(&a, &q, NULL, NULL, false), 0);
	assert_answer(&a, &want);
	cr_assert_eq(ctl_answer_allow(&a, &q, "", NULL, false), 0);
	assert_answer(&a, &want);
}

Test(encode, open_mapped_to_a_pipe_brokered)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_OPEN, 9);
	struct ringdev_ctl_answer a, want = expected(9, 0);

	memcpy(want.name, "user.1000", 10);
	want.flags = RINGDEV_ANSWER_BROKERED;
	cr_assert_eq(ctl_answer_allow(&a, &q, "user.1000", NULL, true), 0);
	assert_answer(&a, &want);
}

Test(encode, only_an_open_is_mapped_and_only_to_a_valid_name)
{
	struct ringdev_ctl_request open = request_of(RINGDEV_CTL_OPEN, 1);
	struct ringdev_ctl_request attach = request_of(RINGDEV_CTL_ATTACH, 2);
	struct ringdev_ctl_request read = request_of(RINGDEV_CTL_READ, 3);
	char long_name[70];
	struct ringdev_ctl_answer a;

	memset(long_name, 'a', sizeof(long_name) - 1);
	long_name[sizeof(long_name) - 1] = '\0';
	cr_assert_eq(ctl_answer_allow(&a, &attach, "other", NULL, false), -EINVAL);
	cr_assert_eq(ctl_answer_allow(&a, &open, ".hidden", NULL, false), -EINVAL);
	cr_assert_eq(ctl_answer_allow(&a, &open, "a/b", NULL, false), -EINVAL);
	cr_assert_eq(ctl_answer_allow(&a, &open, long_name, NULL, false), -EINVAL);
	cr_assert_eq(ctl_answer_allow(&a, &read, NULL, NULL, false), -EINVAL);
}

Test(encode, settings_zero_fields_take_the_defaults)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_ATTACH, 5);
	struct rdb_pipe_settings s = { .uid = 1000, .gid = 100 };
	struct ringdev_ctl_answer a, want = expected(5, 0);

	want.flags = RINGDEV_ANSWER_SETTINGS;
	want.kind = RINGDEV_KIND_STREAM;
	want.policy = RINGDEV_POLICY_BLOCK;
	want.mode = 0600;
	want.uid = 1000;
	want.gid = 100;
	cr_assert_eq(ctl_answer_allow(&a, &q, NULL, &s, false), 0);
	assert_answer(&a, &want);
}

Test(encode, settings_given_are_carried)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_OPEN, 6);
	struct rdb_pipe_settings s = {
		.kind = RINGDEV_KIND_MESSAGE, .policy = RINGDEV_POLICY_OVERWRITE, .mode = 0640,
		.uid = 1, .gid = 2, .capacity = 1 << 20,
	};
	struct ringdev_ctl_answer a, want = expected(6, 0);

	memcpy(want.name, "logs", 5);
	want.flags = RINGDEV_ANSWER_SETTINGS | RINGDEV_ANSWER_BROKERED;
	want.kind = RINGDEV_KIND_MESSAGE;
	want.policy = RINGDEV_POLICY_OVERWRITE;
	want.mode = 0640;
	want.uid = 1;
	want.gid = 2;
	want.capacity = 1 << 20;
	cr_assert_eq(ctl_answer_allow(&a, &q, "logs", &s, true), 0);
	assert_answer(&a, &want);
}

Test(encode, settings_out_of_range_are_refused)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_OPEN, 6);
	const struct rdb_pipe_settings bad[] = {
		{ .kind = 3 },
		{ .policy = 4 },
		{ .mode = 01000 },
		{ .capacity = RINGDEV_CAPACITY_MIN - 1 },
		{ .capacity = RINGDEV_CAPACITY_MAX + 1 },
		{ .reserved0 = 1 },
	};
	struct ringdev_ctl_answer a;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(ctl_answer_allow(&a, &q, NULL, &bad[i], false), -EINVAL, "case %zu", i);
}

/* ABI 1.1: "decide as with no broker" is result 0 and the flag alone. */
Test(encode, builtin_is_the_flag_alone_and_only_for_open_and_attach)
{
	static const uint32_t not_access[] = { RINGDEV_CTL_IOCTL, RINGDEV_CTL_READ, RINGDEV_CTL_WRITE,
					       RINGDEV_CTL_CANCEL, RINGDEV_CTL_RELEASE };
	struct ringdev_ctl_answer a;

	for (uint32_t type = RINGDEV_CTL_OPEN; type <= RINGDEV_CTL_ATTACH; type++) {
		struct ringdev_ctl_request q = request_of(type, 40 + type);
		struct ringdev_ctl_answer want = expected(q.id, 0);
		snprintf(q.name, sizeof(q.name), "asked");
		want.flags = RINGDEV_ANSWER_BUILTIN;
		memset(&a, 0xff, sizeof(a));
		cr_assert_eq(ctl_answer_builtin(&a, &q), 0);
		assert_answer(&a, &want);
	}
	for (size_t i = 0; i < sizeof(not_access) / sizeof(not_access[0]); i++) {
		struct ringdev_ctl_request q = request_of(not_access[i], 50 + i);
		cr_assert_eq(ctl_answer_builtin(&a, &q), -EINVAL, "type %u", not_access[i]);
	}
}

Test(encode, ioctl_payload_up_to_the_inline_space_goes_inline)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_IOCTL, 11);
	static uint8_t out[RINGDEV_CTL_INLINE];
	struct ringdev_ctl_answer a, want = expected(11, 3);

	for (size_t i = 0; i < sizeof(out); i++)
		out[i] = (uint8_t)(i * 7);
	q.out_size = 4096;
	want.size = RINGDEV_CTL_INLINE;
	memcpy(want.data, out, sizeof(out));
	cr_assert_eq(ctl_answer_ioctl(&a, &q, 3, out, sizeof(out)), 0);
	assert_answer(&a, &want);
	cr_assert_not(ctl_payload_needs_stage(RINGDEV_CTL_INLINE));
}

Test(encode, ioctl_payload_beyond_the_inline_space_is_staged)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_IOCTL, 12);
	static uint8_t out[RINGDEV_CTL_INLINE + 1];
	struct ringdev_ctl_answer a, want = expected(12, 0);

	memset(out, 0xab, sizeof(out));
	q.out_size = sizeof(out);
	want.size = sizeof(out);
	want.flags = RINGDEV_ANSWER_STAGED;
	cr_assert_eq(ctl_answer_ioctl(&a, &q, 0, out, sizeof(out)), 0);
	assert_answer(&a, &want); /* nothing copied inline */
	cr_assert(ctl_payload_needs_stage(sizeof(out)));
}

Test(encode, ioctl_checks)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_IOCTL, 13);
	struct ringdev_ctl_request write = request_of(RINGDEV_CTL_WRITE, 14);
	struct ringdev_ctl_answer a, want = expected(13, -ENOTTY);
	uint8_t out[8] = { 0 };

	q.out_size = 4;
	cr_assert_eq(ctl_answer_ioctl(&a, &q, 0, out, 5), -EINVAL);      /* more than out_size */
	cr_assert_eq(ctl_answer_ioctl(&a, &q, 0, NULL, 4), -EINVAL);     /* no bytes */
	cr_assert_eq(ctl_answer_ioctl(&a, &q, -512, NULL, 0), -EINVAL);  /* errno out of range */
	cr_assert_eq(ctl_answer_ioctl(&a, &q, -600, NULL, 0), -EINVAL);
	cr_assert_eq(ctl_answer_ioctl(&a, &q, INT32_MIN, NULL, 0), -EINVAL);
	cr_assert_eq(ctl_answer_ioctl(&a, &q, -511, NULL, 0), 0);
	cr_assert_eq(a.result, -511);
	cr_assert_eq(ctl_answer_ioctl(&a, &write, 0, NULL, 0), -EINVAL); /* not an ioctl */
	cr_assert_eq(ctl_answer_ioctl(&a, &q, -ENOTTY, out, 4), 0);      /* an error has no payload */
	assert_answer(&a, &want);
	cr_assert_eq(ctl_answer_ioctl(&a, &q, 0x7fffffff, NULL, 0), 0);
	cr_assert_eq(a.result, 0x7fffffff);
}

Test(encode, read_result_is_the_byte_count)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_READ, 21);
	struct ringdev_ctl_answer a, want = expected(21, 5);

	q.size = 100;
	want.size = 5;
	memcpy(want.data, "hello", 5);
	cr_assert_eq(ctl_answer_read(&a, &q, "hello", 5), 0);
	assert_answer(&a, &want);

	want = expected(21, 0); /* end-of-file */
	cr_assert_eq(ctl_answer_read(&a, &q, NULL, 0), 0);
	assert_answer(&a, &want);
	cr_assert_eq(ctl_answer_read(&a, &q, "x", 101), -EINVAL); /* more than wanted */
}

Test(encode, large_read_is_staged)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_READ, 22);
	static uint8_t data[50000];
	struct ringdev_ctl_answer a;

	q.size = sizeof(data);
	cr_assert_eq(ctl_answer_read(&a, &q, data, sizeof(data)), 0);
	cr_assert_eq(a.result, (int32_t)sizeof(data));
	cr_assert_eq(a.size, sizeof(data));
	cr_assert_eq(a.flags, RINGDEV_ANSWER_STAGED);
}

Test(encode, write_result_is_what_was_taken)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_WRITE, 31);
	struct ringdev_ctl_answer a, want = expected(31, 7);

	q.size = 10;
	cr_assert_eq(ctl_answer_write(&a, &q, 7), 0);
	assert_answer(&a, &want);
	cr_assert_eq(ctl_answer_write(&a, &q, 11), -EINVAL);
}

Test(encode, request_checks)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_WRITE, 1);

	q.size = 100;
	q.inline_size = 100;
	cr_assert_eq(ctl_request_check(&q), 0);
	q.type = 0;
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
	q.type = RINGDEV_CTL_RELEASE + 1;
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
	q.type = RINGDEV_CTL_WRITE;
	q.inline_size = 101; /* more inline than the payload */
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
	q.size = 5000;
	q.inline_size = RINGDEV_CTL_INLINE + 1;
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
	q.inline_size = RINGDEV_CTL_INLINE;
	cr_assert_eq(ctl_request_check(&q), 0);
	memset(q.name, 'a', sizeof(q.name)); /* no NUL */
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
	memset(q.name, 0, sizeof(q.name));
	q.size = RDB_PAYLOAD_MAX + 1;
	cr_assert_eq(ctl_request_check(&q), -EPROTO);

	q = request_of(RINGDEV_CTL_IOCTL, 2);
	q.out_size = _IOC_SIZEMASK + 1;
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
	q = request_of(RINGDEV_CTL_READ, 3);
	q.size = 1 << 30; /* wanted, not carried: no limit here */
	cr_assert_eq(ctl_request_check(&q), 0);
	q.inline_size = 1; /* a READ carries no payload */
	cr_assert_eq(ctl_request_check(&q), -EPROTO);
}

Test(encode, fetch_decision_and_chunks)
{
	struct ringdev_ctl_request q = request_of(RINGDEV_CTL_WRITE, 1);

	q.size = 40000;
	q.inline_size = RINGDEV_CTL_INLINE;
	cr_assert(ctl_request_needs_fetch(&q));
	cr_assert_eq(ctl_request_payload_size(&q), 40000);
	q.size = 100;
	q.inline_size = 100;
	cr_assert_not(ctl_request_needs_fetch(&q));
	q = request_of(RINGDEV_CTL_READ, 2);
	q.size = 40000;
	cr_assert_not(ctl_request_needs_fetch(&q));
	cr_assert_eq(ctl_request_payload_size(&q), 0);

	/* 40000 bytes from offset 1024: 16256, 16256, the rest 6464. */
	cr_assert_eq(ctl_bulk_chunk(40000, 1024), RINGDEV_CTL_BULK);
	cr_assert_eq(ctl_bulk_chunk(40000, 1024 + RINGDEV_CTL_BULK), RINGDEV_CTL_BULK);
	cr_assert_eq(ctl_bulk_chunk(40000, 1024 + 2 * RINGDEV_CTL_BULK), 40000 - 1024 - 2 * RINGDEV_CTL_BULK);
	cr_assert_eq(ctl_bulk_chunk(40000, 40000), 0);
	cr_assert_eq(ctl_bulk_chunk(40000, 50000), 0);
}
