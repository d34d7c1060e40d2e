/* SPDX-License-Identifier: MIT */
/*
 * parse.h - numbers from command lines, checked (never atoi): whole string
 * consumed, no sign, range-checked. 0 on success, -EINVAL or -ERANGE.
 */
#pragma once

#include <stdint.h>

/* Unsigned integer in [min, max]; decimal, or 0x hex. */
int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* A byte size in [min, max]: decimal with an optional suffix K, M or G
 * (powers of 1024, optional trailing "iB" or "B"), e.g. 65536, 64K, 1MiB. */
int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Permission bits in octal, 0 to 07777, e.g. 0660 or 660. */
int parse_mode(const char *s, uint32_t *out);

/* Pipe kinds ("stream", "message") and full policies ("block", "overwrite",
 * "fail") by the names command lines and policy files use. 0 or -EINVAL. */
int parse_kind(const char *s, uint32_t *out);
int parse_full_policy(const char *s, uint32_t *out);

/* The same names for RINGDEV_KIND_* and RINGDEV_POLICY_*; "unknown" otherwise. */
const char *kind_name(uint32_t kind);
const char *full_policy_name(uint32_t policy);
