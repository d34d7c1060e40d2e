/* SPDX-License-Identifier: MIT */
/*
 * json.c - a small streaming JSON writer for --json.
 *
 * Only what ringdevctl prints: objects, arrays, unsigned integers, a few
 * doubles, booleans, null and strings. The care goes into strings: names
 * from the daemon are checked ASCII, but user names and process names are
 * whatever the system holds, so every string is validated as UTF-8 (no
 * overlong forms, no surrogates, nothing past U+10FFFF) and each byte that
 * is not part of a valid sequence becomes U+FFFD. Control characters, the
 * quote and the backslash are escaped; the output is always valid JSON.
 */
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "ringdevctl.h"

static void json_newline(struct json *j)
{
	if (!j->pretty)
		return;
	fputc('\n', j->out);
	for (unsigned i = 0; i < j->depth; i++)
		fputs("  ", j->out);
}

/* Before a key or a value: the comma and the line break its place needs. */
static void json_separate(struct json *j)
{
	if (j->after_key) {
		j->after_key = false;
		return;
	}
	if (j->depth > 0) {
		if (!j->first)
			fputs(j->pretty ? "," : ", ", j->out);
		json_newline(j);
	}
	j->first = false;
}

void json_key(struct json *j, const char *key)
{
	json_separate(j);
	json_escape(j->out, key, strlen(key));
	fputs(": ", j->out);
	j->after_key = true;
}

static void json_open(struct json *j, char bracket)
{
	json_separate(j);
	fputc(bracket, j->out);
	j->depth++;
	j->first = true;
}

static void json_close(struct json *j, char bracket)
{
	bool empty = j->first;
	j->depth--;
	if (!empty)
		json_newline(j);
	fputc(bracket, j->out);
	j->first = false;
}

void json_object_begin(struct json *j)
{
	json_open(j, '{');
}

void json_object_end(struct json *j)
{
	json_close(j, '}');
}

void json_array_begin(struct json *j)
{
	json_open(j, '[');
}

void json_array_end(struct json *j)
{
	json_close(j, ']');
}

void json_u64(struct json *j, uint64_t v)
{
	json_separate(j);
	fprintf(j->out, "%" PRIu64, v);
}

void json_double(struct json *j, double v)
{
	json_separate(j);
	if (isfinite(v))
		fprintf(j->out, "%.3f", v); /* no setlocale(): the decimal point is '.' */
	else
		fputs("null", j->out);
}

void json_bool(struct json *j, bool v)
{
	json_separate(j);
	fputs(v ? "true" : "false", j->out);
}

void json_null(struct json *j)
{
	json_separate(j);
	fputs("null", j->out);
}

void json_string_len(struct json *j, const char *s, size_t len)
{
	json_separate(j);
	json_escape(j->out, s, len);
}

void json_string(struct json *j, const char *s)
{
	json_string_len(j, s, strlen(s));
}

void json_document_begin(struct json *j, FILE *out, bool pretty)
{
	*j = (struct json){ .out = out, .pretty = pretty, .depth = 0, .first = true };
	json_object_begin(j);
}

void json_document_end(struct json *j)
{
	json_object_end(j);
	fputc('\n', j->out);
}

void json_member_u64(struct json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void json_member_string(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

void json_member_bool(struct json *j, const char *key, bool v)
{
	json_key(j, key);
	json_bool(j, v);
}

void json_member_string_or_null(struct json *j, const char *key, const char *s)
{
	json_key(j, key);
	if (s)
		json_string(j, s);
	else
		json_null(j);
}

static bool utf8_continuation(unsigned char c)
{
	return (c & 0xc0) == 0x80;
}

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid.
 * The second byte's range excludes overlong forms (E0, F0), surrogates
 * (ED) and code points past U+10FFFF (F4). */
static size_t utf8_sequence(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	size_t len;
	unsigned char low = 0x80, high = 0xbf;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0; /* a continuation byte, C0, C1, F5..FF */
	if (c == 0xe0)
		low = 0xa0;
	else if (c == 0xed)
		high = 0x9f;
	else if (c == 0xf0)
		low = 0x90;
	else if (c == 0xf4)
		high = 0x8f;
	if (n < len || s[1] < low || s[1] > high)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (!utf8_continuation(s[i]))
			return 0;
	return len;
}

void json_escape(FILE *out, const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;

	fputc('"', out);
	for (size_t i = 0; i < len;) {
		unsigned char c = s[i];
		size_t seq = utf8_sequence(s + i, len - i);
		if (seq == 0) {
			fputs("\\ufffd", out);
			i++;
			continue;
		}
		if (seq > 1) {
			fwrite(s + i, 1, seq, out);
			i += seq;
			continue;
		}
		switch (c) {
		case '"':
			fputs("\\\"", out);
			break;
		case '\\':
			fputs("\\\\", out);
			break;
		case '\n':
			fputs("\\n", out);
			break;
		case '\r':
			fputs("\\r", out);
			break;
		case '\t':
			fputs("\\t", out);
			break;
		case '\b':
			fputs("\\b", out);
			break;
		case '\f':
			fputs("\\f", out);
			break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(out, "\\u%04x", c);
			else
				fputc(c, out);
		}
		i++;
	}
	fputc('"', out);
}
