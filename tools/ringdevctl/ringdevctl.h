/* SPDX-License-Identifier: MIT */
/*
 * ringdevctl.h - what the parts of ringdevctl(8) share: the opened device,
 * the snapshots taken from it, and the two output forms (aligned tables for
 * people, JSON for scripts). The error lines are the client module's.
 *
 * The tool keeps no state of its own: every command opens the device, asks
 * with the admin ioctls of ringdev.h and prints. Lists are copied whole into
 * plain arrays first (paged ioctls, start += count until start >= total) so
 * the printers sort and align without going back to the daemon.
 */
#pragma once

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <ringdev/ringdev.h>

#include "client.h"
#include "parse.h" /* kind_name, full_policy_name */


/* The device, opened for the admin ioctls. */
struct ctl {
	struct client_device device;  /* path, fd (-1 until ctl_open), version */
	bool json;                    /* --json */
};

#define CTL_INIT { .device = CLIENT_DEVICE_INIT, .json = false }

/* Opens `device` (-d, or the default device when NULL), checks the ABI and
 * detaches a CUSE handle from its default pipe. 0, or -1 after reporting. */
int ctl_open(struct ctl *ctl, const char *device);
void ctl_close(struct ctl *ctl);

/* "fuse", "cuse" or "unknown". */
const char *ctl_frontend_name(const struct ctl *ctl);

/* Device totals. 0 or -1 after reporting. */
int ctl_stats(struct ctl *ctl, struct ringdev_stats *stats);
/* RINGDEV_IOC_STATS_EXT; all zero where the daemon has none (ABI < 1.2). */
void ctl_stats_ext(struct ctl *ctl, struct ringdev_stats_ext *stats);

/* Every pipe the caller may see, sorted by name; *out is malloc'ed (free
 * it; NULL with *count 0 when there are none). 0 or -1 after reporting. */
int ctl_list_pipes(struct ctl *ctl, struct ringdev_pipe_info **out, size_t *count);

/* Every handle the caller may see, sorted by pipe, then handle. */
int ctl_list_opens(struct ctl *ctl, struct ringdev_open_info **out, size_t *count);

/* One pipe by name into *info. 0, or -errno (not reported: the caller
 * knows what the lookup was for). */
int ctl_pipe_by_name(struct ctl *ctl, const char *name, struct ringdev_pipe_info *info);

/* Names from fixed arrays: bounded, whatever the daemon put there. */
size_t field_length(const char *field, size_t size);
#define FIELD_LEN(array) field_length((array), sizeof(array))


/* The user or group name of an id, or NULL; cached, so top may ask often. */
const char *user_name(uint32_t uid);
const char *group_name(uint32_t gid);

/* The command name of a live process (/proc/PID/comm) into buf, or false.
 * The pid is the one at open, so this is a hint, not proof. */
bool process_name(uint32_t pid, char *buf, size_t size);

/* ---- output: human sizes and aligned tables (table.c) ---- */

/* 0, 512, 64K, 1.5M, 12G: powers of 1024, one decimal below 10. */
void size_format(uint64_t bytes, char *buf, size_t size);

/* Percent of used in capacity, 0 when capacity is 0. */
double fill_percent(uint64_t used, uint64_t capacity);

enum table_align { ALIGN_LEFT, ALIGN_RIGHT };

struct table_column {
	const char *title;
	enum table_align align;
};

/* Rows of strings, printed with every column as wide as its widest cell. */
struct table {
	const struct table_column *columns;
	size_t ncolumns;
	char **cells;                 /* rows * ncolumns, each malloc'ed */
	size_t rows;
	size_t capacity;              /* rows the cells array holds */
};

#define TABLE_INIT(cols) { .columns = (cols), .ncolumns = sizeof(cols) / sizeof((cols)[0]) }

/* Appends one row of ncolumns cells (copied). 0 or -ENOMEM. */
int table_add(struct table *t, const char *const cells[]);
/* Prints the header and rows to out, two spaces between columns; the last
 * left-aligned column is not padded. */
void table_print(const struct table *t, FILE *out);
void table_free(struct table *t);

/* ---- output: JSON (json.c) ---- */

/*
 * A streaming writer: values nest by begin/end calls, commas and indents
 * are its business. Keys are ASCII literals from this program; string
 * values pass through json_string(), which keeps valid UTF-8, escapes what
 * JSON requires and turns any invalid byte into U+FFFD, so the output is
 * valid JSON whatever the daemon or /proc gave.
 */
struct json {
	FILE *out;
	bool pretty;                  /* indented; else one line */
	unsigned depth;
	bool first;                   /* no value yet at this depth */
	bool after_key;               /* a key was written, its value is next */
};

/* Every document is one object: begun here, members added, then ended
 * with a newline. */
void json_document_begin(struct json *j, FILE *out, bool pretty);
void json_document_end(struct json *j);
void json_key(struct json *j, const char *key);
void json_object_begin(struct json *j);
void json_object_end(struct json *j);
void json_array_begin(struct json *j);
void json_array_end(struct json *j);
void json_u64(struct json *j, uint64_t v);
void json_double(struct json *j, double v);
void json_bool(struct json *j, bool v);
void json_null(struct json *j);
/* `len` bytes of s (NUL bytes included, escaped). */
void json_string_len(struct json *j, const char *s, size_t len);
void json_string(struct json *j, const char *s);

/* key: value shorthands. */
void json_member_u64(struct json *j, const char *key, uint64_t v);
void json_member_string(struct json *j, const char *key, const char *s);
void json_member_bool(struct json *j, const char *key, bool v);
/* A string, or null when s is NULL. */
void json_member_string_or_null(struct json *j, const char *key, const char *s);

/* Writes `s` (len bytes) as a JSON string literal with quotes to out. */
void json_escape(FILE *out, const char *s, size_t len);

/* ---- the shared printers (show.c) ---- */

/* The members of one pipe / open / the stats, inside an object begun by
 * the caller, with the keys ringdevctl(8) documents. */
void pipe_json_members(struct json *j, const struct ringdev_pipe_info *p);
void open_json_members(struct json *j, const struct ringdev_open_info *o);
void stats_json_members(struct json *j, const struct ringdev_stats *s);

/* The pipe as `info` prints it, under "pipe" (create, resize, chmod,
 * chown --json print the pipe after the change). */
void pipe_json_document(const struct ringdev_pipe_info *p);

/* "read", "write", "read+write", "control" or "none" for an open. */
const char *open_access(const struct ringdev_open_info *o);

/* Ring bytes in use: payload, and a header per message of a message pipe. */
uint64_t pipe_ring_used(const struct ringdev_pipe_info *p);

/* "[#####-----]": `width` cells filled for percent; buf holds width + 3. */
void bar_format(double percent, unsigned width, char *buf, size_t size);

/* ---- the commands: each returns the exit code ---- */

int command_list(struct ctl *ctl);
int command_info(struct ctl *ctl, const char *name);
int command_opens(struct ctl *ctl);
int command_stats(struct ctl *ctl);

/* UID[:GID] or :GID, resolved to numbers while parsing the command line. */
struct owner {
	bool has_uid;
	bool has_gid;
	uint32_t uid;
	uint32_t gid;
};

/* Parses "USER[:GROUP]" (names or numbers) or, with `group_only_ok`,
 * ":GROUP". A user given alone gets no group here. 0, or -EINVAL for bad
 * syntax, -ENOENT for an unknown name (details in *what). */
int owner_parse(const char *s, bool group_only_ok, struct owner *out, const char **what);

/* The login group of a uid, for --owner UID alone. */
bool owner_primary_group(uint32_t uid, uint32_t *gid);

struct create_options {
	uint32_t kind;                /* 0: stream */
	uint32_t policy;              /* 0: block */
	uint32_t mode;                /* with has_mode */
	bool has_mode;
	uint64_t capacity;            /* 0: the daemon's --ring-size */
	struct owner owner;           /* --owner: both ids set, or neither */
};

int command_create(struct ctl *ctl, const char *name, const struct create_options *o);
int command_rm(struct ctl *ctl, const char *name);
int command_resize(struct ctl *ctl, const char *name, uint64_t capacity);
int command_chmod(struct ctl *ctl, const char *name, uint32_t mode);
int command_chown(struct ctl *ctl, const char *name, const struct owner *owner);
int command_flush(struct ctl *ctl, const char *name);

struct top_options {
	double interval;              /* seconds between refreshes */
	uint64_t count;               /* refreshes, 0: until 'q' or a signal */
};

int command_top(struct ctl *ctl, const struct top_options *o);
