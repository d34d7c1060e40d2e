/* SPDX-License-Identifier: MIT */
/*
 * name.c - pipe name rules. Names are plain ASCII, so case folding is a
 * byte operation and needs no locale.
 */
#include "name.h"

#include <errno.h>
#include <string.h>

#include <ringdev/ringdev.h>

static bool name_byte_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static unsigned char fold(unsigned char c, bool case_sensitive)
{
	if (!case_sensitive && c >= 'A' && c <= 'Z')
		return (unsigned char)(c - 'A' + 'a');
	return c;
}

int name_check(const char *name, size_t len)
{
	if (len == 0)
		return -EINVAL;
	if (len > RINGDEV_NAME_MAX)
		return -ENAMETOOLONG;
	if (name[0] == '.')
		return -EINVAL;
	for (size_t i = 0; i < len; i++)
		if (!name_byte_ok((unsigned char)name[i]))
			return -EINVAL;
	return 0;
}

int name_check_str(const char *name)
{
	/* Look one byte past the limit only, so a huge string costs nothing. */
	size_t len = strnlen(name, RINGDEV_NAME_MAX + 1);
	return name_check(name, len);
}

uint64_t name_hash(const char *name, size_t len, bool case_sensitive)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < len; i++) {
		h ^= fold((unsigned char)name[i], case_sensitive);
		h *= 0x100000001b3ull;
	}
	return h;
}

bool name_equal(const char *a, size_t alen, const char *b, size_t blen, bool case_sensitive)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++)
		if (fold((unsigned char)a[i], case_sensitive) != fold((unsigned char)b[i], case_sensitive))
			return false;
	return true;
}
