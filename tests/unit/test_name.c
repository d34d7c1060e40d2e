/* SPDX-License-Identifier: MIT */
/* test_name.c - pipe name rules and comparison; number parsing. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "name.h"
#include "parse.h"

#include <ringdev/ringdev.h>

Test(name, accepts_the_allowed_alphabet)
{
	cr_assert_eq(name_check_str("HELLO"), 0);
	cr_assert_eq(name_check_str("a.b-c_D9"), 0);
	cr_assert_eq(name_check_str("x"), 0);
	char n63[64];
	memset(n63, 'a', 63);
	n63[63] = '\0';
	cr_assert_eq(name_check_str(n63), 0);
}

Test(name, rejects_bad_names)
{
	cr_assert_eq(name_check_str(""), -EINVAL);
	cr_assert_eq(name_check_str(".hidden"), -EINVAL);
	cr_assert_eq(name_check_str(".."), -EINVAL);
	cr_assert_eq(name_check_str("a/b"), -EINVAL);
	cr_assert_eq(name_check_str("a b"), -EINVAL);
	cr_assert_eq(name_check_str("x*y"), -EINVAL);
	cr_assert_eq(name_check_str("caf\xc3\xa9"), -EINVAL);
	cr_assert_eq(name_check("ab\0c", 4), -EINVAL, "an embedded NUL is not a name byte");
	char n64[65];
	memset(n64, 'a', 64);
	n64[64] = '\0';
	cr_assert_eq(name_check_str(n64), -ENAMETOOLONG);
}

Test(name, compares_case_insensitively_by_default)
{
	cr_assert(name_equal("HELLO", 5, "hello", 5, false));
	cr_assert_eq(name_hash("HELLO", 5, false), name_hash("hello", 5, false));
	cr_assert_not(name_equal("HELLO", 5, "hello", 5, true));
	cr_assert_not(name_equal("Temp", 4, "Temp2", 5, false));
	cr_assert_not(name_equal("a-b", 3, "a_b", 3, false));
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
