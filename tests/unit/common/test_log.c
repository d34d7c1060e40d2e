/* SPDX-License-Identifier: MIT */
/*
 * test_log.c - the logging module, seen through a capturing sink (what
 * other tests use to check warnings) and through stderr (what a user sees).
 *
 * The module keeps its state in statics; Criterion runs each test in its own
 * process, so every test starts from the defaults (level info, 200 lines a
 * second, stderr). The rate limit works in wall-clock seconds: a test that
 * needs one window starts at the beginning of a second (wait_next_second),
 * so its burst of lines, which takes microseconds, cannot straddle two.
 */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "log.h"

#define MAX_LINES 1200

struct capture {
	size_t count;
	enum log_level level[MAX_LINES];
	char line[MAX_LINES][1100];
};

/* Static: one per test process, and too big for the stack. */
static struct capture cap;

static void capture_sink(enum log_level level, const char *line, void *data)
{
	struct capture *c = data;
	if (c->count < MAX_LINES) {
		c->level[c->count] = level;
		snprintf(c->line[c->count], sizeof(c->line[0]), "%s", line);
	}
	c->count++;
}

static void capture(void)
{
	memset(&cap, 0, sizeof(cap));
	log_set_sink(capture_sink, &cap);
}

static void wait_next_second(void)
{
	time_t t = time(NULL);
	while (time(NULL) == t)
		nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
}

static void assert_line(size_t i, enum log_level level, const char *text)
{
	cr_assert_gt(cap.count, i, "line %zu was not logged (%zu lines)", i, cap.count);
	cr_assert_str_eq(cap.line[i], text, "line %zu", i);
	cr_assert_eq(cap.level[i], level, "line %zu (%s): level %d, expected %d", i, text, cap.level[i], level);
}

Test(log, default_level_is_info)
{
	cr_assert_eq(log_get_level(), LOG_LEVEL_INFO);
	capture();
	log_debug("hidden");
	log_info("i");
	log_warn("w");
	log_error("e");
	cr_assert_eq(cap.count, 3, "debug is off by default");
	assert_line(0, LOG_LEVEL_INFO, "i");
	assert_line(1, LOG_LEVEL_WARN, "w");
	assert_line(2, LOG_LEVEL_ERROR, "e");
}

Test(log, level_filters_everything_below_it)
{
	capture();
	log_set_level(LOG_LEVEL_ERROR);
	cr_assert_eq(log_get_level(), LOG_LEVEL_ERROR);
	log_debug("d");
	log_info("i");
	log_warn("w");
	log_error("e1");
	cr_assert_eq(cap.count, 1);
	assert_line(0, LOG_LEVEL_ERROR, "e1");

	log_set_level(LOG_LEVEL_WARN);
	log_info("i");
	log_warn("w2");
	cr_assert_eq(cap.count, 2);
	assert_line(1, LOG_LEVEL_WARN, "w2");
}

Test(log, sink_gets_the_formatted_line_without_a_newline)
{
	capture();
	log_info("pipe %s: %d bytes, %#x", "temp", 42, 0x10u);
	cr_assert_eq(cap.count, 1);
	assert_line(0, LOG_LEVEL_INFO, "pipe temp: 42 bytes, 0x10");
}

Test(log, debug_level_prefixes_file_and_line)
{
	capture();
	log_set_level(LOG_LEVEL_DEBUG);
	int line = __LINE__ + 1;
	log_debug("looking at %s", "x");
	char want[128];
	snprintf(want, sizeof(want), "test_log.c:%d: looking at x", line);
	assert_line(0, LOG_LEVEL_DEBUG, want);

	/* Only the last path component is kept. */
	log_write(LOG_LEVEL_WARN, "/src/ringdev/cuse_dev/core/pipe.c", 77, "full");
	assert_line(1, LOG_LEVEL_WARN, "pipe.c:77: full");
	log_write(LOG_LEVEL_INFO, "plain.c", 5, "no slash");
	assert_line(2, LOG_LEVEL_INFO, "plain.c:5: no slash");

	/* Below debug, no location. */
	log_set_level(LOG_LEVEL_INFO);
	log_write(LOG_LEVEL_INFO, "/a/b.c", 1, "quiet");
	assert_line(3, LOG_LEVEL_INFO, "quiet");
}

static void clobbering_sink(enum log_level level, const char *line, void *data)
{
	errno = ENOSPC; /* as a failed write to a full disk would */
	capture_sink(level, line, data);
}

Test(log, errno_is_left_untouched)
{
	memset(&cap, 0, sizeof(cap));
	log_set_sink(clobbering_sink, &cap);
	errno = EBADF;
	log_error("closing fd %d", 3);
	cr_assert_eq(errno, EBADF, "errno %d after log_error, expected EBADF", errno);
	assert_line(0, LOG_LEVEL_ERROR, "closing fd 3");

	errno = EINTR;
	log_debug("filtered out");
	cr_assert_eq(errno, EINTR);
	log_set_level(LOG_LEVEL_DEBUG);
	errno = EPIPE;
	log_debug("at debug");
	cr_assert_eq(errno, EPIPE);
	cr_assert_eq(cap.count, 2);

	/* A suppressed line leaves errno alone too. */
	log_set_rate_limit(1);
	wait_next_second();
	log_info("a");
	errno = EAGAIN;
	log_info("suppressed");
	cr_assert_eq(errno, EAGAIN);
}

Test(log, line_longer_than_the_buffer_is_truncated)
{
	static char msg[3000];
	memset(msg, 'x', sizeof(msg) - 1);
	capture();
	log_info("%s", msg);
	cr_assert_eq(cap.count, 1);
	cr_assert_eq(strlen(cap.line[0]), 1023, "truncated to the 1024-byte buffer, got %zu", strlen(cap.line[0]));
	cr_assert_eq(strspn(cap.line[0], "x"), 1023);

	log_set_level(LOG_LEVEL_DEBUG);
	log_write(LOG_LEVEL_DEBUG, "f.c", 9, "%s", msg);
	cr_assert_eq(strlen(cap.line[1]), 1023);
	cr_assert_eq(strncmp(cap.line[1], "f.c:9: xxx", 10), 0);
}

struct shared_capture {
	int count;
	char line[1100];
};

static struct shared_capture *shared_cap;
static char long_file[4000];
static ucontext_t caller_context;

static void shared_sink(enum log_level level, const char *line, void *data)
{
	shared_cap->count++;
	snprintf(shared_cap->line, sizeof(shared_cap->line), "%s", line);
}

static void log_long_location(void)
{
	log_write(LOG_LEVEL_DEBUG, long_file, 1, "after the location");
}

/* The file name is caller input too (log_write is public): a location
 * longer than the line buffer must be cut like any other text. A write past
 * the buffer may corrupt the stack silently, so the call runs in a child,
 * on a stack of its own that ends at an inaccessible page: an overrun
 * becomes SIGSEGV, which the test process sees in the exit status. */
Test(log, location_longer_than_the_buffer_is_truncated)
{
	enum { STACK = 64 * 1024, GUARD = 64 * 1024 };
	shared_cap = mmap(NULL, sizeof(*shared_cap), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(shared_cap, MAP_FAILED);
	char *stack = mmap(NULL, STACK + GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert_neq(stack, MAP_FAILED);
	cr_assert_eq(mprotect(stack + STACK, GUARD, PROT_NONE), 0);
	memset(long_file, 'f', sizeof(long_file) - 1);

	fflush(NULL);
	pid_t pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		ucontext_t call;
		log_set_sink(shared_sink, NULL);
		log_set_level(LOG_LEVEL_DEBUG);
		if (getcontext(&call) != 0)
			_exit(2);
		call.uc_stack.ss_sp = stack;
		call.uc_stack.ss_size = STACK;
		call.uc_link = &caller_context;
		makecontext(&call, log_long_location, 0);
		if (swapcontext(&caller_context, &call) != 0)
			_exit(3);
		_exit(0);
	}
	int status;
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert_not(WIFSIGNALED(status), "log_write wrote past its line buffer: killed by signal %d",
		      WTERMSIG(status));
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	cr_assert_eq(shared_cap->count, 1);
	cr_assert_eq(strlen(shared_cap->line), 1023, "got %zu bytes", strlen(shared_cap->line));
	cr_assert_eq(strspn(shared_cap->line, "f"), 1023);
}

Test(log, rate_limit_counts_suppressed_lines_and_reports_them_next_second)
{
	capture();
	log_set_rate_limit(3);
	wait_next_second();
	for (int i = 0; i < 10; i++)
		log_info("burst %d", i);
	cr_assert_eq(cap.count, 3, "3 lines a second, got %zu", cap.count);
	assert_line(0, LOG_LEVEL_INFO, "burst 0");
	assert_line(2, LOG_LEVEL_INFO, "burst 2");

	/* The count is reported, as a warning, before the first line of a
	 * later second. */
	wait_next_second();
	log_info("later");
	cr_assert_eq(cap.count, 5);
	assert_line(3, LOG_LEVEL_WARN, "7 log messages suppressed (rate limit)");
	assert_line(4, LOG_LEVEL_INFO, "later");

	/* Reported once: the next window starts from zero. */
	wait_next_second();
	log_info("quiet again");
	cr_assert_eq(cap.count, 6);
	assert_line(5, LOG_LEVEL_INFO, "quiet again");
}

Test(log, flush_reports_what_the_limit_held_back_at_once)
{
	capture();
	log_set_rate_limit(2);
	wait_next_second();
	for (int i = 0; i < 5; i++)
		log_info("burst %d", i);
	cr_assert_eq(cap.count, 2);
	log_flush();
	cr_assert_eq(cap.count, 3, "the count is said at once, not before a later line");
	assert_line(2, LOG_LEVEL_WARN, "3 log messages suppressed (rate limit)");
	log_flush();
	cr_assert_eq(cap.count, 3, "and said once");
}

Test(log, rate_limit_never_drops_errors)
{
	capture();
	log_set_rate_limit(2);
	wait_next_second();
	for (int i = 0; i < 5; i++)
		log_warn("w%d", i);
	for (int i = 0; i < 3; i++)
		log_error("e%d", i);
	cr_assert_eq(cap.count, 5, "2 warnings and all 3 errors, got %zu lines", cap.count);
	assert_line(0, LOG_LEVEL_WARN, "w0");
	assert_line(1, LOG_LEVEL_WARN, "w1");
	assert_line(2, LOG_LEVEL_ERROR, "e0");
	assert_line(4, LOG_LEVEL_ERROR, "e2");
	wait_next_second();
	log_error("next");
	assert_line(5, LOG_LEVEL_WARN, "3 log messages suppressed (rate limit)");
	assert_line(6, LOG_LEVEL_ERROR, "next");
}

Test(log, lines_below_the_level_do_not_use_up_the_limit)
{
	capture();
	log_set_rate_limit(2);
	wait_next_second();
	for (int i = 0; i < 50; i++)
		log_debug("not shown");
	log_info("a");
	log_info("b");
	cr_assert_eq(cap.count, 2);
	assert_line(1, LOG_LEVEL_INFO, "b");
}

Test(log, default_limit_is_200_lines_a_second)
{
	capture();
	wait_next_second();
	for (int i = 0; i < 500; i++)
		log_info("line %d", i);
	cr_assert_eq(cap.count, 200, "got %zu", cap.count);
	wait_next_second();
	log_info("after");
	assert_line(200, LOG_LEVEL_WARN, "300 log messages suppressed (rate limit)");
}

Test(log, rate_limit_zero_means_no_limit)
{
	capture();
	log_set_rate_limit(0);
	wait_next_second();
	for (int i = 0; i < 1000; i++)
		log_info("line %d", i);
	cr_assert_eq(cap.count, 1000);
	assert_line(999, LOG_LEVEL_INFO, "line 999");
	wait_next_second();
	log_info("after");
	cr_assert_eq(cap.count, 1001, "nothing was suppressed, so nothing is reported");
}

static void *log_from_thread(void *arg)
{
	int id = (int)(intptr_t)arg;
	for (int i = 0; i < 250; i++)
		log_info("thread %d line %d", id, i);
	return NULL;
}

/* The sink is called under the module's lock, so this unsynchronised
 * capture sink sees whole lines and loses none. */
Test(log, lines_from_several_threads_are_kept_whole)
{
	capture();
	log_set_rate_limit(0);
	pthread_t t[4];
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, log_from_thread, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_eq(pthread_join(t[i], NULL), 0);
	cr_assert_eq(cap.count, 1000);
	int next[4] = { 0 };
	for (size_t i = 0; i < cap.count; i++) {
		int id, n;
		char end;
		cr_assert_eq(sscanf(cap.line[i], "thread %d line %d%c", &id, &n, &end), 2, "mangled: %s", cap.line[i]);
		cr_assert(id >= 0 && id < 4);
		cr_assert_eq(n, next[id], "thread %d: line %d came as %d", id, next[id], n);
		next[id]++;
	}
}

Test(log, stderr_sink_prefixes_ident_and_severity, .init = cr_redirect_stderr)
{
	log_set_ident("ringdevd");
	log_error("e %d", 1);
	log_warn("w");
	log_info("i");
	log_debug("d");
	fflush(stderr);
	cr_assert_stderr_eq_str("ringdevd: error: e 1\nringdevd: warning: w\nringdevd: i\n");
}

Test(log, null_sink_restores_stderr, .init = cr_redirect_stderr)
{
	log_set_ident("t");
	capture();
	log_info("to the sink");
	log_set_sink(NULL, NULL);
	log_info("to stderr");
	fflush(stderr);
	cr_assert_eq(cap.count, 1);
	assert_line(0, LOG_LEVEL_INFO, "to the sink");
	cr_assert_stderr_eq_str("t: to stderr\n");
}

/* Whether or not a syslog daemon listens here, logging through syslog
 * neither crashes nor falls back to stderr, and a later sink replaces it. */
Test(log, syslog_sink_does_not_crash_or_write_stderr, .init = cr_redirect_stderr)
{
	log_use_syslog("ringdev-test");
	log_set_level(LOG_LEVEL_DEBUG);
	errno = ENOENT;
	log_error("common-tests: error through syslog");
	cr_assert_eq(errno, ENOENT);
	log_warn("common-tests: warning through syslog");
	log_info("common-tests: info through syslog");
	log_debug("common-tests: debug through syslog");
	log_set_level(LOG_LEVEL_INFO);
	capture();
	log_info("captured");
	fflush(stderr);
	cr_assert_eq(cap.count, 1);
	assert_line(0, LOG_LEVEL_INFO, "captured");
	cr_assert_stderr_eq_str("");
}

/* Under systemd, $JOURNAL_STREAM names stderr's device and inode: each line
 * then carries its syslog priority as "<N>", without ident or severity
 * words. A stale or malformed value (another file, trailing junk) leaves the
 * plain format. */
Test(log, journal_stream_gets_priority_prefixes)
{
	char path[] = "/tmp/rd-journal-XXXXXX";
	int fd = mkstemp(path);
	cr_assert_geq(fd, 0);
	int saved = dup(2);
	cr_assert_eq(dup2(fd, 2), 2);
	struct stat st;
	cr_assert_eq(fstat(2, &st), 0);
	char env[64];
	snprintf(env, sizeof(env), "%llu:%llu", (unsigned long long)st.st_dev, (unsigned long long)st.st_ino);

	setenv("JOURNAL_STREAM", "1:2", 1);
	bool other = log_detect_journal();
	char junk[80];
	snprintf(junk, sizeof(junk), "%sx", env);
	setenv("JOURNAL_STREAM", junk, 1);
	bool trailing = log_detect_journal();
	setenv("JOURNAL_STREAM", env, 1);
	bool match = log_detect_journal();
	log_set_ident("ringdevd");
	log_error("e");
	log_warn("w");
	log_info("i on pipe HELLO");
	unsetenv("JOURNAL_STREAM");
	bool unset = log_detect_journal();
	log_info("plain");
	fflush(stderr);
	cr_assert_eq(dup2(saved, 2), 2);
	close(saved);

	char buf[256] = { 0 };
	cr_assert_geq(pread(fd, buf, sizeof(buf) - 1, 0), 0);
	close(fd);
	unlink(path);
	cr_assert(!other && !trailing && match && !unset, "detection: other %d trailing %d match %d unset %d", other,
		  trailing, match, unset);
	cr_assert_str_eq(buf, "<3>e\n<4>w\n<6>i on pipe HELLO\nringdevd: plain\n");
}
