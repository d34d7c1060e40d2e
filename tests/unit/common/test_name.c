/* SPDX-License-Identifier: MIT */
/*
 * test_name.c - pipe name rules and comparison. The alphabet is checked byte
 * by byte against an independent statement of the rule, and the hash against
 * published FNV-1a vectors, so the daemon's lookups and the names it accepts
 * cannot drift apart silently.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "name.h"

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

/* The rule, said once more independently of name.c. */
static bool allowed_byte(int c)
{
	return strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", c) != NULL && c != 0;
}

Test(name, every_byte_outside_the_alphabet_is_rejected_anywhere)
{
	for (int c = 0; c < 256; c++) {
		char mid[3] = { 'a', (char)c, 'b' };
		char end[2] = { 'a', (char)c };
		char start[2] = { (char)c, 'a' };
		int want = allowed_byte(c) ? 0 : -EINVAL;
		cr_assert_eq(name_check(mid, 3), want, "byte %#x in the middle", c);
		cr_assert_eq(name_check(end, 2), want, "byte %#x at the end", c);
		cr_assert_eq(name_check(start, 2), c == '.' ? -EINVAL : want, "byte %#x at the start", c);
	}
}

Test(name, only_a_leading_dot_is_special)
{
	cr_assert_eq(name_check_str("a."), 0);
	cr_assert_eq(name_check_str("a..b"), 0);
	cr_assert_eq(name_check_str("log.1"), 0);
	cr_assert_eq(name_check_str("-x"), 0, "a leading '-' is allowed");
	cr_assert_eq(name_check_str("_x"), 0);
	cr_assert_eq(name_check_str("0"), 0);
	cr_assert_eq(name_check_str("."), -EINVAL);
	cr_assert_eq(name_check_str(".a"), -EINVAL);
}

Test(name, length_counts_bytes_from_1_to_63)
{
	char buf[200];
	memset(buf, 'n', sizeof(buf));
	cr_assert_eq(RINGDEV_NAME_MAX, 63);
	cr_assert_eq(name_check(buf, 1), 0);
	cr_assert_eq(name_check(buf, 63), 0);
	cr_assert_eq(name_check(buf, 64), -ENAMETOOLONG);
	cr_assert_eq(name_check(buf, sizeof(buf)), -ENAMETOOLONG);
	cr_assert_eq(name_check(buf, 0), -EINVAL);
	/* name_check reads len bytes, not up to a NUL. */
	cr_assert_eq(name_check("abc/def", 3), 0);
	cr_assert_eq(name_check("abc/def", 4), -EINVAL);
	/* name_check_str stops at the NUL, however long the string. */
	static char huge[100000];
	memset(huge, 'h', sizeof(huge) - 1);
	cr_assert_eq(name_check_str(huge), -ENAMETOOLONG);
	huge[63] = '\0';
	cr_assert_eq(name_check_str(huge), 0);
	huge[62] = '/';
	cr_assert_eq(name_check_str(huge), -EINVAL);
}

/* Published FNV-1a 64 test vectors; case-insensitive folds first. */
Test(name, hash_is_fnv1a_over_folded_bytes)
{
	cr_assert_eq(name_hash("", 0, true), 0xcbf29ce484222325ull);
	cr_assert_eq(name_hash("a", 1, true), 0xaf63dc4c8601ec8cull);
	cr_assert_eq(name_hash("foobar", 6, true), 0x85944171f73967e8ull);
	cr_assert_eq(name_hash("FOOBAR", 6, false), 0x85944171f73967e8ull);
	cr_assert_eq(name_hash("FoObAr", 6, false), 0x85944171f73967e8ull);
	cr_assert_neq(name_hash("FOOBAR", 6, true), 0x85944171f73967e8ull);
	cr_assert_eq(name_hash("foobar-and-more", 6, true), 0x85944171f73967e8ull, "only len bytes are hashed");
}

Test(name, every_letter_folds_and_nothing_else_does)
{
	const char *upper = "ABCDEFGHIJKLMNOPQRSTUVWXYZ";
	const char *lower = "abcdefghijklmnopqrstuvwxyz";
	for (int i = 0; i < 26; i++) {
		cr_assert(name_equal(&upper[i], 1, &lower[i], 1, false), "%c vs %c", upper[i], lower[i]);
		cr_assert_not(name_equal(&upper[i], 1, &lower[i], 1, true), "%c vs %c", upper[i], lower[i]);
		cr_assert_eq(name_hash(&upper[i], 1, false), name_hash(&lower[i], 1, false));
		cr_assert_neq(name_hash(&upper[i], 1, true), name_hash(&lower[i], 1, true));
	}
	/* Digits and punctuation are themselves under both rules. */
	const char *others = "0123456789._-";
	for (size_t i = 0; others[i]; i++)
		for (size_t j = 0; others[j]; j++)
			cr_assert_eq(name_equal(&others[i], 1, &others[j], 1, false), i == j, "%c vs %c", others[i],
				     others[j]);
	cr_assert(name_equal("Log.2024_A-b", 12, "lOG.2024_a-B", 12, false));
	cr_assert_eq(name_hash("Log.2024_A-b", 12, false), name_hash("lOG.2024_a-B", 12, false));
	cr_assert(name_equal("Log.2024_A-b", 12, "Log.2024_A-b", 12, true));
}

Test(name, equal_compares_exactly_the_given_lengths)
{
	cr_assert_not(name_equal("ab", 2, "abc", 3, false));
	cr_assert_not(name_equal("abc", 3, "ab", 2, true));
	cr_assert(name_equal("abX", 2, "abY", 2, true), "bytes past len are not compared");
	cr_assert(name_equal("", 0, "", 0, false));
	cr_assert_not(name_equal("temp", 4, "tmpe", 4, false));
	cr_assert_not(name_equal("temp1", 5, "temp2", 5, false));
}
