/* SPDX-License-Identifier: MIT */
/*
 * parse.c - checked number parsing shared by the daemon and the tools.
 */
#include "parse.h"

#include <ringdev/ringdev.h>

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int parse_prefix(const char *s, int base, uint64_t *out, char **end)
{
	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL; /* rejects "", "-1", " 1", "+1" */
	errno = 0;
	unsigned long long v = strtoull(s, end, base);
	if (errno == ERANGE)
		return -ERANGE;
	if (*end == s)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	uint64_t v;
	int base = (s && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) ? 16 : 10;
	int r = parse_prefix(s, base, &v, &end);
	if (r < 0)
		return r;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_size(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	uint64_t v;
	int r = parse_prefix(s, 10, &v, &end);
	if (r < 0)
		return r;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (shift && strcasecmp(end, "iB") == 0)
		end += 2;
	else if (strcasecmp(end, "B") == 0)
		end += 1;
	if (*end != '\0')
		return -EINVAL;
	if (shift && v > (UINT64_MAX >> shift))
		return -ERANGE;
	v <<= shift;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

int parse_mode(const char *s, uint32_t *out)
{
	char *end;
	uint64_t v;
	int r = parse_prefix(s, 8, &v, &end);
	if (r < 0)
		return r;
	if (*end != '\0')
		return -EINVAL;
	if (v > 07777)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

static const char *const kind_names[] = {
	[RINGDEV_KIND_STREAM] = "stream",
	[RINGDEV_KIND_MESSAGE] = "message",
};

static const char *const full_policy_names[] = {
	[RINGDEV_POLICY_BLOCK] = "block",
	[RINGDEV_POLICY_OVERWRITE] = "overwrite",
	[RINGDEV_POLICY_FAIL] = "fail",
};

/* Index of s among names[1..n-1] (0 is "default": not a name). */
static int lookup(const char *const *names, size_t n, const char *s, uint32_t *out)
{
	for (size_t i = 1; i < n; i++) {
		if (names[i] && strcmp(names[i], s) == 0) {
			*out = (uint32_t)i;
			return 0;
		}
	}
	return -EINVAL;
}

int parse_kind(const char *s, uint32_t *out)
{
	return lookup(kind_names, sizeof(kind_names) / sizeof(kind_names[0]), s, out);
}

int parse_full_policy(const char *s, uint32_t *out)
{
	return lookup(full_policy_names, sizeof(full_policy_names) / sizeof(full_policy_names[0]), s, out);
}

const char *kind_name(uint32_t kind)
{
	return kind >= 1 && kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind] : "unknown";
}

const char *full_policy_name(uint32_t policy)
{
	return policy >= 1 && policy < sizeof(full_policy_names) / sizeof(full_policy_names[0])
		       ? full_policy_names[policy]
		       : "unknown";
}
