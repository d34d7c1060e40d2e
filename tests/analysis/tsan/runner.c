/* SPDX-License-Identifier: MIT */
/*
 * runner.c (tests/analysis/tsan) - main() for the unit suites built against
 * the Criterion stand-in of criterion/criterion.h, for ThreadSanitizer runs
 * (why Criterion itself cannot run there: that header).
 *
 * Each test runs in a forked child, as Criterion runs it: suite .init, test
 * .init, the test, test .fini, suite .fini. The child's end decides: exit 0
 * passes (or the expected .exit_code, or death by the expected .signal),
 * exit 77 is a skip, anything else fails, including a TSan report (TSan
 * exits 66 with halt_on_error=1). A test's .timeout (or 60 s) is multiplied
 * by $RINGDEV_TSAN_TIMEOUT_SCALE (default 10: TSan runs 5-15 times slower).
 *
 *   runner [--verbose] [--filter SUBSTRING]
 *
 * --filter runs the tests whose "suite/name" contains SUBSTRING; --verbose
 * also prints a line for each test that passed (failures and skips always).
 * Ends with "NAME: N passed, M failed, K skipped"; exits 1 if any failed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_TESTS 1024
#define MAX_SUITES 128
#define SKIP_CODE 77

static struct shim_test *tests[MAX_TESTS];
static size_t ntests;
static struct shim_suite *suites[MAX_SUITES];
static size_t nsuites;
static int report_fd = -1;      /* the real stderr, kept across cr_redirect_stderr */
static int redirect_fd = -1;    /* the file stderr goes to after cr_redirect_stderr */
static bool expect_failed;      /* a cr_expect failed in this test process */
static bool verbose;            /* --verbose: a line for every test that passed */

void shim_register_test(struct shim_test *t)
{
	if (ntests == MAX_TESTS) {
		fprintf(stderr, "tsan runner: more than %d tests\n", MAX_TESTS);
		abort();
	}
	tests[ntests++] = t;
}

void shim_register_suite(struct shim_suite *s)
{
	if (nsuites == MAX_SUITES) {
		fprintf(stderr, "tsan runner: more than %d suites\n", MAX_SUITES);
		abort();
	}
	suites[nsuites++] = s;
}

static void report(const char *fmt, va_list ap)
{
	char buf[4096];
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = (int)sizeof(buf) - 1;
	if (write(report_fd, buf, (size_t)n) < 0)
		return;
}

static void reportf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void reportf(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	report(fmt, ap);
	va_end(ap);
}

void shim_fail(bool abort_test, const char *file, int line, const char *expr, const char *fmt, ...)
{
	va_list ap;

	/* fmt is " " plus the test's message, if any (criterion.h). */
	reportf("%s:%d: %s failed: %s", file, line, abort_test ? "assertion" : "expectation", expr);
	if (fmt[0] && fmt[1]) {
		reportf(":");
		va_start(ap, fmt);
		report(fmt, ap);
		va_end(ap);
	}
	reportf("\n");
	if (abort_test)
		_exit(1);
	expect_failed = true;
}

void shim_skip(const char *fmt, ...)
{
	va_list ap;

	reportf("skipped:");
	va_start(ap, fmt);
	report(fmt, ap);
	va_end(ap);
	reportf("\n");
	_exit(SKIP_CODE);
}

void shim_log(const char *level, const char *fmt, ...)
{
	va_list ap;

	reportf("[%s]", level);
	va_start(ap, fmt);
	report(fmt, ap);
	va_end(ap);
	reportf("\n");
}

void cr_redirect_stderr(void)
{
	char path[] = "/tmp/ringdev-tsan-stderr.XXXXXX";
	int fd = mkstemp(path);

	if (fd < 0) {
		reportf("cr_redirect_stderr: mkstemp: %s\n", strerror(errno));
		_exit(1);
	}
	unlink(path);
	fflush(stderr);
	if (dup2(fd, STDERR_FILENO) < 0) {
		reportf("cr_redirect_stderr: dup2: %s\n", strerror(errno));
		_exit(1);
	}
	redirect_fd = fd;
}

bool shim_stderr_equals(const char *want)
{
	char got[65536];
	ssize_t n;

	if (redirect_fd < 0) {
		reportf("cr_assert_stderr_eq_str without cr_redirect_stderr\n");
		return false;
	}
	fflush(stderr);
	n = pread(redirect_fd, got, sizeof(got) - 1, 0);
	if (n < 0)
		n = 0;
	got[n] = '\0';
	if (strcmp(got, want) == 0)
		return true;
	reportf("stderr was:\n%s\n---- expected:\n%s\n----\n", got, want);
	return false;
}

static const struct shim_opts *suite_opts(const char *name)
{
	static const struct shim_opts none;

	for (size_t i = 0; i < nsuites; i++)
		if (strcmp(suites[i]->name, name) == 0)
			return &suites[i]->opts;
	return &none;
}

static void run_child(const struct shim_test *t, const struct shim_opts *s)
{
	if (s->init)
		s->init();
	if (t->opts.init)
		t->opts.init();
	t->fn();
	if (t->opts.fini)
		t->opts.fini();
	if (s->fini)
		s->fini();
	fflush(stdout);
	fflush(stderr);
	_exit(expect_failed ? 1 : 0);
}

/* 0 passed, 1 failed, 2 skipped. */
static int run_one(const struct shim_test *t, unsigned scale)
{
	const struct shim_opts *s = suite_opts(t->suite);
	double timeout = t->opts.timeout > 0 ? t->opts.timeout : s->timeout > 0 ? s->timeout : 60;
	int want_signal = t->opts.signal ? t->opts.signal : s->signal;
	int want_code = t->opts.exit_code ? t->opts.exit_code : s->exit_code;
	unsigned limit = (unsigned)(timeout * scale) + 1;
	struct timespec start, end;
	int status;
	pid_t pid;

	clock_gettime(CLOCK_MONOTONIC, &start);
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		reportf("[FAIL] %s::%s: fork: %s\n", t->suite, t->name, strerror(errno));
		return 1;
	}
	if (pid == 0) {
		alarm(limit);
		run_child(t, s);
	}
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			reportf("[FAIL] %s::%s: waitpid: %s\n", t->suite, t->name, strerror(errno));
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &end);
	double secs = (double)(end.tv_sec - start.tv_sec) + (double)(end.tv_nsec - start.tv_nsec) / 1e9;

	if (WIFEXITED(status) && WEXITSTATUS(status) == SKIP_CODE && !want_code) {
		reportf("[SKIP] %s::%s\n", t->suite, t->name);
		return 2;
	}
	bool ok = want_signal ? WIFSIGNALED(status) && WTERMSIG(status) == want_signal
			      : WIFEXITED(status) && WEXITSTATUS(status) == want_code;
	if (ok) {
		if (verbose)
			reportf("[PASS] %s::%s (%.2fs)\n", t->suite, t->name, secs);
		return 0;
	}
	if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
		reportf("[FAIL] %s::%s: timed out after %u s\n", t->suite, t->name, limit);
	else if (WIFSIGNALED(status))
		reportf("[FAIL] %s::%s: killed by signal %d (%s)\n", t->suite, t->name, WTERMSIG(status),
			strsignal(WTERMSIG(status)));
	else
		reportf("[FAIL] %s::%s: exit %d%s\n", t->suite, t->name, WEXITSTATUS(status),
			WEXITSTATUS(status) == 66 ? " (a ThreadSanitizer report, above)" : "");
	return 1;
}

int main(int argc, char **argv)
{
	const char *filter = NULL, *name = strrchr(argv[0], '/');
	const char *scale_env = getenv("RINGDEV_TSAN_TIMEOUT_SCALE");
	unsigned scale = 10, counts[3] = { 0, 0, 0 };

	name = name ? name + 1 : argv[0];
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--verbose") == 0) {
			verbose = true;
		} else if (strcmp(argv[i], "--filter") == 0 && i + 1 < argc) {
			filter = argv[++i];
		} else {
			fprintf(stderr, "usage: %s [--verbose] [--filter SUBSTRING]\n", name);
			return 2;
		}
	}
	if (scale_env && *scale_env) {
		char *end;
		unsigned long v = strtoul(scale_env, &end, 10);

		if (*end || v == 0 || v > 1000) {
			fprintf(stderr, "%s: RINGDEV_TSAN_TIMEOUT_SCALE: '%s' is not a number from 1 to 1000\n",
				name, scale_env);
			return 2;
		}
		scale = (unsigned)v;
	}
	report_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	if (report_fd < 0)
		report_fd = STDERR_FILENO;
	for (size_t i = 0; i < ntests; i++) {
		const struct shim_test *t = tests[i];
		char full[512];

		snprintf(full, sizeof(full), "%s/%s", t->suite, t->name);
		if ((filter && !strstr(full, filter)) || t->opts.disabled)
			continue;
		counts[run_one(t, scale)]++;
	}
	printf("%s: %u passed, %u failed, %u skipped\n", name, counts[0], counts[1], counts[2]);
	return counts[1] || counts[0] + counts[2] == 0 ? 1 : 0;
}
