/* SPDX-License-Identifier: MIT */
/*
 * name.h - pipe names: the one place that knows what a valid name is and
 * how names compare (case-insensitive unless --case-sensitive).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* 0 if `name` (len bytes, no NUL needed) is a valid pipe name, else
 * -ENAMETOOLONG (over RINGDEV_NAME_MAX) or -EINVAL (empty, leading '.',
 * a byte outside [A-Za-z0-9._-]). */
int name_check(const char *name, size_t len);

/* The same for a NUL-terminated string. */
int name_check_str(const char *name);

/* Hash of a name under the given case rule (FNV-1a over folded bytes). */
uint64_t name_hash(const char *name, size_t len, bool case_sensitive);

/* True if two valid names denote the same pipe under the case rule. */
bool name_equal(const char *a, size_t alen, const char *b, size_t blen, bool case_sensitive);
