/* SPDX-License-Identifier: MIT */
/* criterion/redirect.h (tests/analysis/tsan): cr_redirect_stderr and
 * cr_assert_stderr_eq_str live in criterion.h here. */
#include <criterion/criterion.h>
