/* SPDX-License-Identifier: MIT */
/*
 * test_parse.c - strict parsing of numbers, sizes, modes, kinds and full
 * policies. Every rejected input is also checked to leave *out alone, since
 * callers keep their default when parsing fails.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "parse.h"

#include <ringdev/ringdev.h>

#define UNTOUCHED 0x5a5a5a5a5a5a5a5aull

/* parse_u64(s, min, max) fails with err and does not write *out. */
static void assert_u64_fails(const char *s, uint64_t min, uint64_t max, int err)
{
	uint64_t v = UNTOUCHED;
	int r = parse_u64(s, min, max, &v);
	cr_assert_eq(r, err, "parse_u64(\"%s\", %llu, %llu) = %d, expected %d", s ? s : "(null)",
		     (unsigned long long)min, (unsigned long long)max, r, err);
	cr_assert_eq(v, UNTOUCHED, "parse_u64(\"%s\") wrote *out on failure", s ? s : "(null)");
}

static void assert_u64(const char *s, uint64_t want)
{
	uint64_t v = UNTOUCHED;
	int r = parse_u64(s, 0, UINT64_MAX, &v);
	cr_assert_eq(r, 0, "parse_u64(\"%s\") = %d", s, r);
	cr_assert_eq(v, want, "parse_u64(\"%s\") gave %llu, expected %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void assert_size_fails(const char *s, uint64_t min, uint64_t max, int err)
{
	uint64_t v = UNTOUCHED;
	int r = parse_size(s, min, max, &v);
	cr_assert_eq(r, err, "parse_size(\"%s\", %llu, %llu) = %d, expected %d", s, (unsigned long long)min,
		     (unsigned long long)max, r, err);
	cr_assert_eq(v, UNTOUCHED, "parse_size(\"%s\") wrote *out on failure", s);
}

static void assert_size(const char *s, uint64_t want)
{
	uint64_t v = UNTOUCHED;
	int r = parse_size(s, 0, UINT64_MAX, &v);
	cr_assert_eq(r, 0, "parse_size(\"%s\") = %d", s, r);
	cr_assert_eq(v, want, "parse_size(\"%s\") gave %llu, expected %llu", s, (unsigned long long)v,
		     (unsigned long long)want);
}

static void assert_mode_fails(const char *s, int err)
{
	uint32_t m = 0xa5a5a5a5u;
	int r = parse_mode(s, &m);
	cr_assert_eq(r, err, "parse_mode(\"%s\") = %d, expected %d", s, r, err);
	cr_assert_eq(m, 0xa5a5a5a5u, "parse_mode(\"%s\") wrote *out on failure", s);
}

static void assert_mode(const char *s, uint32_t want)
{
	uint32_t m = 0xa5a5a5a5u;
	int r = parse_mode(s, &m);
	cr_assert_eq(r, 0, "parse_mode(\"%s\") = %d", s, r);
	cr_assert_eq(m, want, "parse_mode(\"%s\") gave %#o, expected %#o", s, m, want);
}

Test(parse, sizes_and_numbers)
{
	uint64_t v;
	cr_assert_eq(parse_size("64K", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, 65536);
	cr_assert_eq(parse_size("1MiB", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, 1u << 20);
	cr_assert_eq(parse_size("2g", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, 2ull << 30);
	cr_assert_eq(parse_size("100", 0, UINT64_MAX, &v), 0);
	cr_assert_eq(v, 100);
	cr_assert_eq(parse_size("-1", 0, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(parse_size("1X", 0, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(parse_size("", 0, UINT64_MAX, &v), -EINVAL);
	cr_assert_eq(parse_size("99999999999999999999", 0, UINT64_MAX, &v), -ERANGE);
	cr_assert_eq(parse_size("17179869184G", 0, UINT64_MAX, &v), -ERANGE, "overflow after the shift");
	cr_assert_eq(parse_size("32", 64, 128, &v), -ERANGE);
	cr_assert_eq(parse_u64("0x10", 0, 100, &v), 0);
	cr_assert_eq(v, 16);
	cr_assert_eq(parse_u64("12a", 0, 100, &v), -EINVAL);
	uint32_t m;
	cr_assert_eq(parse_mode("0660", &m), 0);
	cr_assert_eq(m, 0660);
	cr_assert_eq(parse_mode("9", &m), -EINVAL);
	cr_assert_eq(parse_mode("77777", &m), -ERANGE);
}

Test(parse, u64_decimal_and_hex_up_to_the_limit)
{
	assert_u64("0", 0);
	assert_u64("1", 1);
	assert_u64("010", 10); /* decimal: a leading zero is not octal */
	assert_u64("0x0", 0);
	assert_u64("0xff", 255);
	assert_u64("0XaB", 171);
	assert_u64("18446744073709551615", UINT64_MAX);
	assert_u64("0xffffffffffffffff", UINT64_MAX);
	assert_u64_fails("18446744073709551616", 0, UINT64_MAX, -ERANGE);
	assert_u64_fails("99999999999999999999999", 0, UINT64_MAX, -ERANGE);
	assert_u64_fails("0x10000000000000000", 0, UINT64_MAX, -ERANGE);
}

Test(parse, u64_rejects_empty_signs_spaces_and_junk)
{
	const char *bad[] = {
		"", " 1", "\t1", "+1", "-1", "-0", "1 ", "1\n", "12a", "1.0", "1e3", "x10",
		"0x", "0x-1", "0x 1", "0x+1", "0xg", "1K", "0b101",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_u64_fails(bad[i], 0, UINT64_MAX, -EINVAL);
	assert_u64_fails(NULL, 0, UINT64_MAX, -EINVAL);
}

Test(parse, u64_range_is_inclusive)
{
	uint64_t v = 0;
	cr_assert_eq(parse_u64("5", 5, 10, &v), 0);
	cr_assert_eq(v, 5);
	cr_assert_eq(parse_u64("10", 5, 10, &v), 0);
	cr_assert_eq(v, 10);
	cr_assert_eq(parse_u64("0xa", 5, 10, &v), 0);
	cr_assert_eq(v, 10);
	assert_u64_fails("4", 5, 10, -ERANGE);
	assert_u64_fails("11", 5, 10, -ERANGE);
	assert_u64_fails("0", 1, UINT64_MAX, -ERANGE);
	assert_u64_fails("0xb", 5, 10, -ERANGE);
	cr_assert_eq(parse_u64("7", 7, 7, &v), 0);
	cr_assert_eq(v, 7);
}

Test(parse, size_suffixes_are_powers_of_1024)
{
	assert_size("0", 0);
	assert_size("0K", 0);
	assert_size("1", 1);
	assert_size("1B", 1);
	assert_size("1b", 1);
	assert_size("1K", 1024);
	assert_size("1k", 1024);
	assert_size("1KB", 1024);
	assert_size("1kB", 1024);
	assert_size("1KiB", 1024);
	assert_size("1kib", 1024);
	assert_size("3M", 3ull << 20);
	assert_size("3MB", 3ull << 20);
	assert_size("3MiB", 3ull << 20);
	assert_size("1G", 1ull << 30);
	assert_size("16GiB", 16ull << 30);
	assert_size("18446744073709551615", UINT64_MAX);
	assert_size("18446744073709551615B", UINT64_MAX);
	/* The largest values each suffix can carry. */
	assert_size("18014398509481983K", (UINT64_MAX >> 10) << 10);
	assert_size("17592186044415M", (UINT64_MAX >> 20) << 20);
	assert_size("17179869183G", (UINT64_MAX >> 30) << 30);
}

Test(parse, size_overflow_through_the_suffix_is_erange)
{
	assert_size_fails("18014398509481984K", 0, UINT64_MAX, -ERANGE);
	assert_size_fails("17592186044416M", 0, UINT64_MAX, -ERANGE);
	assert_size_fails("17179869184G", 0, UINT64_MAX, -ERANGE);
	assert_size_fails("18446744073709551616", 0, UINT64_MAX, -ERANGE);
}

Test(parse, size_range_applies_after_the_suffix)
{
	uint64_t v = 0;
	assert_size_fails("1K", 0, 1023, -ERANGE);
	assert_size_fails("1K", 1025, UINT64_MAX, -ERANGE);
	cr_assert_eq(parse_size("1K", 1024, 1024, &v), 0);
	cr_assert_eq(v, 1024);
	assert_size_fails("4095", 4096, 1ull << 30, -ERANGE);
	assert_size_fails("2G", 4096, 1ull << 30, -ERANGE);
	cr_assert_eq(parse_size("1G", 4096, 1ull << 30, &v), 0);
	cr_assert_eq(v, 1ull << 30);
}

Test(parse, size_rejects_bad_suffixes_signs_and_junk)
{
	const char *bad[] = {
		"", "K", "KiB", " 1K", "+1K", "-1K", "1K ", "1 K", "1T", "1P", "1X", "1KK", "1iB",
		"1Ki", "1KiBB", "1BB", "1KBB", "1.5M", "0x10", "1e3", "1k\n", "1Kib ", "1MiB/s",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_size_fails(bad[i], 0, UINT64_MAX, -EINVAL);
}

Test(parse, mode_is_octal_up_to_07777)
{
	assert_mode("0", 0);
	assert_mode("0660", 0660);
	assert_mode("660", 0660);
	assert_mode("644", 0644);
	assert_mode("7777", 07777);
	assert_mode("07777", 07777);
	assert_mode("4755", 04755);
	assert_mode("0000", 0);
	assert_mode_fails("10000", -ERANGE);
	assert_mode_fails("010000", -ERANGE);
	assert_mode_fails("77777777777777777777777", -ERANGE);
	const char *bad[] = { "", "8", "9", "08", "0668", " 660", "+660", "-1", "660 ", "0x1ff",
			      "0o660", "rw-rw----", "u+rw" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_mode_fails(bad[i], -EINVAL);
}

Test(parse, kinds_and_policies_by_name)
{
	uint32_t v;
	cr_assert_eq(parse_kind("message", &v), 0);
	cr_assert_eq(v, RINGDEV_KIND_MESSAGE);
	cr_assert_eq(parse_kind("Stream", &v), -EINVAL, "names are exact");
	cr_assert_eq(parse_kind("", &v), -EINVAL);
	cr_assert_eq(parse_full_policy("overwrite", &v), 0);
	cr_assert_eq(v, RINGDEV_POLICY_OVERWRITE);
	cr_assert_eq(parse_full_policy("drop", &v), -EINVAL);
	cr_assert_str_eq(kind_name(RINGDEV_KIND_STREAM), "stream");
	cr_assert_str_eq(full_policy_name(RINGDEV_POLICY_FAIL), "fail");
	cr_assert_str_eq(kind_name(0), "unknown");
	cr_assert_str_eq(full_policy_name(99), "unknown");
}

Test(parse, every_kind_and_policy_name)
{
	uint32_t v = 0;
	cr_assert_eq(parse_kind("stream", &v), 0);
	cr_assert_eq(v, RINGDEV_KIND_STREAM);
	cr_assert_eq(parse_kind("message", &v), 0);
	cr_assert_eq(v, RINGDEV_KIND_MESSAGE);
	cr_assert_eq(parse_full_policy("block", &v), 0);
	cr_assert_eq(v, RINGDEV_POLICY_BLOCK);
	cr_assert_eq(parse_full_policy("overwrite", &v), 0);
	cr_assert_eq(v, RINGDEV_POLICY_OVERWRITE);
	cr_assert_eq(parse_full_policy("fail", &v), 0);
	cr_assert_eq(v, RINGDEV_POLICY_FAIL);
}

Test(parse, kind_and_policy_names_are_exact)
{
	const char *bad_kinds[] = { "", "default", "STREAM", "Message", " stream", "stream ", "streams",
				    "strea", "message\n", "block", "0", "1" };
	for (size_t i = 0; i < sizeof(bad_kinds) / sizeof(bad_kinds[0]); i++) {
		uint32_t v = 77;
		cr_assert_eq(parse_kind(bad_kinds[i], &v), -EINVAL, "kind \"%s\" accepted", bad_kinds[i]);
		cr_assert_eq(v, 77, "parse_kind(\"%s\") wrote *out on failure", bad_kinds[i]);
	}
	const char *bad_policies[] = { "", "default", "Block", "FAIL", " fail", "fail ", "overwrit",
				       "overwrites", "stream", "drop", "1" };
	for (size_t i = 0; i < sizeof(bad_policies) / sizeof(bad_policies[0]); i++) {
		uint32_t v = 77;
		cr_assert_eq(parse_full_policy(bad_policies[i], &v), -EINVAL, "policy \"%s\" accepted",
			     bad_policies[i]);
		cr_assert_eq(v, 77, "parse_full_policy(\"%s\") wrote *out on failure", bad_policies[i]);
	}
}

Test(parse, names_of_every_kind_and_policy_and_the_rest_unknown)
{
	cr_assert_str_eq(kind_name(RINGDEV_KIND_STREAM), "stream");
	cr_assert_str_eq(kind_name(RINGDEV_KIND_MESSAGE), "message");
	cr_assert_str_eq(kind_name(RINGDEV_KIND_DEFAULT), "unknown");
	cr_assert_str_eq(kind_name(3), "unknown");
	cr_assert_str_eq(kind_name(UINT32_MAX), "unknown");
	cr_assert_str_eq(full_policy_name(RINGDEV_POLICY_BLOCK), "block");
	cr_assert_str_eq(full_policy_name(RINGDEV_POLICY_OVERWRITE), "overwrite");
	cr_assert_str_eq(full_policy_name(RINGDEV_POLICY_FAIL), "fail");
	cr_assert_str_eq(full_policy_name(RINGDEV_POLICY_DEFAULT), "unknown");
	cr_assert_str_eq(full_policy_name(4), "unknown");
	cr_assert_str_eq(full_policy_name(UINT32_MAX), "unknown");
}

/* What the tools print, the daemon and policy files parse back. */
Test(parse, names_round_trip)
{
	for (uint32_t k = RINGDEV_KIND_STREAM; k <= RINGDEV_KIND_MESSAGE; k++) {
		uint32_t v = 0;
		cr_assert_eq(parse_kind(kind_name(k), &v), 0);
		cr_assert_eq(v, k);
	}
	for (uint32_t p = RINGDEV_POLICY_BLOCK; p <= RINGDEV_POLICY_FAIL; p++) {
		uint32_t v = 0;
		cr_assert_eq(parse_full_policy(full_policy_name(p), &v), 0);
		cr_assert_eq(v, p);
	}
	uint32_t v = 0;
	cr_assert_eq(parse_kind(kind_name(0), &v), -EINVAL, "\"unknown\" is not a kind");
	cr_assert_eq(parse_full_policy(full_policy_name(0), &v), -EINVAL);
}
