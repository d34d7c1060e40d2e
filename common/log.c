/* SPDX-License-Identifier: MIT */
/*
 * log.c - see log.h. A mutex serialises sink calls so lines from several
 * threads never interleave.
 */
#include "log.h"
#include "parse.h"

#include <errno.h>
#include <stdint.h>
#include <pthread.h>
#include <stdio.h>
#include <syslog.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum log_level log_level = LOG_LEVEL_INFO;
static const char *log_ident = "ringdev";
static log_sink_fn log_sink;
static void *log_sink_data;
static unsigned log_limit = 200;
static time_t log_window;
static unsigned log_in_window;
static unsigned long log_suppressed;
static int log_journal; /* stderr is the journal: "<N>" priority prefixes */

void log_set_level(enum log_level level) { log_level = level; }
enum log_level log_get_level(void) { return log_level; }
void log_set_ident(const char *ident) { log_ident = ident; }
void log_set_rate_limit(unsigned per_second) { log_limit = per_second; }

void log_set_sink(log_sink_fn fn, void *data)
{
	pthread_mutex_lock(&log_lock);
	log_sink = fn;
	log_sink_data = data;
	pthread_mutex_unlock(&log_lock);
}

static const int syslog_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

/* "DEV:INO", both decimal, as systemd writes $JOURNAL_STREAM. */
static bool journal_stream_parse(const char *env, uint64_t *dev, uint64_t *ino)
{
	char first[32];
	const char *colon = env ? strchr(env, ':') : NULL;
	if (!colon || (size_t)(colon - env) >= sizeof(first))
		return false;
	memcpy(first, env, (size_t)(colon - env));
	first[colon - env] = '\0';
	return parse_u64(first, 0, UINT64_MAX, dev) == 0 && parse_u64(colon + 1, 0, UINT64_MAX, ino) == 0;
}

bool log_detect_journal(void)
{
	uint64_t dev, ino;
	struct stat st;
	log_journal = journal_stream_parse(getenv("JOURNAL_STREAM"), &dev, &ino) && fstat(2, &st) == 0 &&
		      (uint64_t)st.st_dev == dev && (uint64_t)st.st_ino == ino;
	return log_journal;
}

static void log_emit(enum log_level level, const char *line)
{
	static const char *const names[] = { "error", "warning", "info", "debug" };
	if (log_sink)
		log_sink(level, line, log_sink_data);
	else if (log_journal)
		fprintf(stderr, "<%d>%s\n", syslog_prio[level], line);
	else
		fprintf(stderr, "%s: %s%s%s\n", log_ident, level <= LOG_LEVEL_WARN ? names[level] : "",
			level <= LOG_LEVEL_WARN ? ": " : "", line);
}

/* Say how many lines the rate limit held back, once; under log_lock. */
static void report_suppressed(void)
{
	if (!log_suppressed)
		return;
	char note[96];
	snprintf(note, sizeof(note), "%lu log messages suppressed (rate limit)", log_suppressed);
	log_emit(LOG_LEVEL_WARN, note);
	log_suppressed = 0;
}

void log_flush(void)
{
	pthread_mutex_lock(&log_lock);
	report_suppressed();
	pthread_mutex_unlock(&log_lock);
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	if (level > log_level)
		return;
	int saved = errno;
	char buf[1024];
	int n = 0;
	if (log_level >= LOG_LEVEL_DEBUG) {
		const char *base = strrchr(file, '/');
		n = snprintf(buf, sizeof(buf), "%s:%d: ", base ? base + 1 : file, line);
		if (n < 0)
			n = 0;
		else if ((size_t)n >= sizeof(buf))
			n = sizeof(buf) - 1; /* the location alone fills the line: cut, like a long message */
	}
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - (size_t)n, fmt, ap);
	va_end(ap);

	pthread_mutex_lock(&log_lock);
	time_t now = time(NULL);
	if (now != log_window) {
		report_suppressed();
		log_window = now;
		log_in_window = 0;
		log_suppressed = 0;
	}
	if (log_limit && ++log_in_window > log_limit && level > LOG_LEVEL_ERROR)
		log_suppressed++;
	else
		log_emit(level, buf);
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}

static void syslog_sink(enum log_level level, const char *line, void *data)
{
	syslog(syslog_prio[level], "%s", line);
}

void log_use_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	log_set_sink(syslog_sink, NULL);
}
