/* SPDX-License-Identifier: MIT */
/*
 * log.h - the one logging module. Levels, file:line at debug, errno left
 * untouched, and a replaceable sink so tests can capture what was logged.
 * Messages are one line each; a flood is rate-limited per second and the
 * number suppressed is reported, so nothing is dropped silently.
 */
#pragma once

#include <stdarg.h>
#include <stdbool.h>

enum log_level { LOG_LEVEL_ERROR = 0, LOG_LEVEL_WARN, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

typedef void (*log_sink_fn)(enum log_level level, const char *line, void *data);

void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Program name prefixed to each line by the default (stderr) sink. */
void log_set_ident(const char *ident);
/* If stderr is the journal ($JOURNAL_STREAM names its device and inode,
 * as systemd sets it for a service), the stderr sink writes each line with
 * its syslog priority as a "<N>" prefix, which the journal keeps, instead
 * of the ident and severity words. Returns whether it is. */
bool log_detect_journal(void);
/* Replace the sink (NULL restores stderr). */
void log_set_sink(log_sink_fn fn, void *data);
/* Send every line to syslog (the journal, for a service) as `ident`. */
void log_use_syslog(const char *ident);
/* Lines per second after which messages are counted instead of written (0 = no limit). */
void log_set_rate_limit(unsigned per_second);
/* Report now how many lines the rate limit held back (else that is said
 * before the next line of a later second): call before exiting, so a flood
 * that was the last thing logged is still counted. */
void log_flush(void);

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_error(...) log_write(LOG_LEVEL_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_LEVEL_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_write(LOG_LEVEL_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...) log_write(LOG_LEVEL_DEBUG, __FILE__, __LINE__, __VA_ARGS__)
