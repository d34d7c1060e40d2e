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
