/* SPDX-License-Identifier: MIT */
/*
 * criterion/criterion.h (tests/analysis/tsan) - the part of Criterion's API
 * the unit suites use, for running them under ThreadSanitizer.
 *
 * Why: Criterion 2.4 cannot run inside a TSan process. Its runner (boxfort)
 * maps an "inheritable arena" at random addresses in [0x2000'0000'0000,
 * 0x6000'0000'0000), which TSan reserves almost entirely for its shadow and
 * meta memory (10 refused tries: "Could not initialize inheritable arena:
 * Resource temporarily unavailable"); when a try lands, the runner crashes
 * later. So scripts/analyze.sh compiles the unchanged unit-test sources
 * against this header and tests/analysis/tsan/runner.c instead: each test
 * runs in its own forked process (as with Criterion), suite and test .init
 * before it and .fini after, with its .timeout (scaled for TSan) and its
 * expected .signal.
 *
 * Supported: Test, TestSuite (.init .fini .timeout .signal .exit_code
 * .disabled .description), cr_assert/cr_expect and their _not _eq _neq _lt
 * _leq _gt _geq _null _not_null _str_eq _arr_eq forms, cr_skip_test,
 * cr_redirect_stderr, cr_assert_stderr_eq_str, cr_log_info/warn/error.
 * A message, when given, must start with a string literal (as every one
 * in the tree does); the macros put a space before it, so the format is
 * never empty (-Wformat-zero-length). Anything else fails to compile, on
 * purpose.
 */
#ifndef RINGDEV_TSAN_CRITERION_H
#define RINGDEV_TSAN_CRITERION_H

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

struct shim_opts {
	int unused_;                /* lets { 0, __VA_ARGS__ } take no options */
	void (*init)(void);
	void (*fini)(void);
	double timeout;
	int signal;
	int exit_code;
	bool disabled;
	const char *description;
};

struct shim_test {
	const char *suite;
	const char *name;
	void (*fn)(void);
	struct shim_opts opts;
};

struct shim_suite {
	const char *name;
	struct shim_opts opts;
};

void shim_register_test(struct shim_test *t);
void shim_register_suite(struct shim_suite *s);
/* Report a failed check; abort_test ends the test process (cr_assert). */
void shim_fail(bool abort_test, const char *file, int line, const char *expr, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
__attribute__((noreturn, format(printf, 1, 2))) void shim_skip(const char *fmt, ...);
void shim_log(const char *level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cr_redirect_stderr(void);
bool shim_stderr_equals(const char *want);

#define Test(Suite, Name, ...)                                                            \
	static void shim_fn_##Suite##_##Name(void);                                       \
	static struct shim_test shim_test_##Suite##_##Name = {                            \
		#Suite, #Name, shim_fn_##Suite##_##Name, { 0, __VA_ARGS__ } };            \
	__attribute__((constructor)) static void shim_reg_##Suite##_##Name(void)         \
	{                                                                                 \
		shim_register_test(&shim_test_##Suite##_##Name);                          \
	}                                                                                 \
	static void shim_fn_##Suite##_##Name(void)

#define TestSuite(Name, ...)                                                              \
	static struct shim_suite shim_suite_##Name = { #Name, { 0, __VA_ARGS__ } };       \
	__attribute__((constructor)) static void shim_regsuite_##Name(void)              \
	{                                                                                 \
		shim_register_suite(&shim_suite_##Name);                                  \
	}                                                                                 \
	struct shim_suite_end_##Name

#define shim_check_(Abort, Cond, Expr, ...)                                               \
	do {                                                                              \
		if (!(Cond))                                                              \
			shim_fail((Abort), __FILE__, __LINE__, (Expr), " " __VA_ARGS__);   \
	} while (0)

#define cr_assert(Cond, ...) shim_check_(true, (Cond), #Cond, __VA_ARGS__)
#define cr_expect(Cond, ...) shim_check_(false, (Cond), #Cond, __VA_ARGS__)
#define cr_assert_not(Cond, ...) shim_check_(true, !(Cond), "!(" #Cond ")", __VA_ARGS__)
#define cr_expect_not(Cond, ...) shim_check_(false, !(Cond), "!(" #Cond ")", __VA_ARGS__)
#define shim_op_(Abort, A, Op, B, ...) shim_check_((Abort), ((A) Op (B)), #A " " #Op " " #B, __VA_ARGS__)
#define cr_assert_eq(A, B, ...) shim_op_(true, A, ==, B, __VA_ARGS__)
#define cr_assert_neq(A, B, ...) shim_op_(true, A, !=, B, __VA_ARGS__)
#define cr_assert_lt(A, B, ...) shim_op_(true, A, <, B, __VA_ARGS__)
#define cr_assert_leq(A, B, ...) shim_op_(true, A, <=, B, __VA_ARGS__)
#define cr_assert_gt(A, B, ...) shim_op_(true, A, >, B, __VA_ARGS__)
#define cr_assert_geq(A, B, ...) shim_op_(true, A, >=, B, __VA_ARGS__)
#define cr_expect_eq(A, B, ...) shim_op_(false, A, ==, B, __VA_ARGS__)
#define cr_expect_neq(A, B, ...) shim_op_(false, A, !=, B, __VA_ARGS__)
#define cr_expect_lt(A, B, ...) shim_op_(false, A, <, B, __VA_ARGS__)
#define cr_expect_leq(A, B, ...) shim_op_(false, A, <=, B, __VA_ARGS__)
#define cr_expect_gt(A, B, ...) shim_op_(false, A, >, B, __VA_ARGS__)
#define cr_expect_geq(A, B, ...) shim_op_(false, A, >=, B, __VA_ARGS__)
#define cr_assert_null(P, ...) shim_check_(true, (P) == NULL, #P " == NULL", __VA_ARGS__)
#define cr_assert_not_null(P, ...) shim_check_(true, (P) != NULL, #P " != NULL", __VA_ARGS__)
#define cr_expect_null(P, ...) shim_check_(false, (P) == NULL, #P " == NULL", __VA_ARGS__)
#define cr_expect_not_null(P, ...) shim_check_(false, (P) != NULL, #P " != NULL", __VA_ARGS__)
#define cr_assert_str_eq(A, B, ...) shim_check_(true, strcmp((A), (B)) == 0, #A " == " #B, __VA_ARGS__)
#define cr_expect_str_eq(A, B, ...) shim_check_(false, strcmp((A), (B)) == 0, #A " == " #B, __VA_ARGS__)
#define cr_assert_arr_eq(A, B, Size, ...) \
	shim_check_(true, memcmp((A), (B), (Size)) == 0, #A "[0.." #Size "] == " #B, __VA_ARGS__)
#define cr_expect_arr_eq(A, B, Size, ...) \
	shim_check_(false, memcmp((A), (B), (Size)) == 0, #A "[0.." #Size "] == " #B, __VA_ARGS__)
#define cr_assert_fail(...) shim_fail(true, __FILE__, __LINE__, "cr_assert_fail", " " __VA_ARGS__)
#define cr_expect_fail(...) shim_fail(false, __FILE__, __LINE__, "cr_expect_fail", " " __VA_ARGS__)
#define cr_assert_stderr_eq_str(Want, ...) \
	shim_check_(true, shim_stderr_equals(Want), "stderr == " #Want, __VA_ARGS__)
#define cr_skip_test(...) shim_skip(" " __VA_ARGS__)
#define cr_log_info(...) shim_log("info", " " __VA_ARGS__)
#define cr_log_warn(...) shim_log("warn", " " __VA_ARGS__)
#define cr_log_error(...) shim_log("error", " " __VA_ARGS__)

#endif /* RINGDEV_TSAN_CRITERION_H */
