/* SPDX-License-Identifier: MIT */
/*
 * table.c - the human output: sizes people read at a glance (64K, 1.5M)
 * and tables whose columns line up whatever the widths of their cells.
 *
 * A table keeps every cell until it is printed, because a column is as wide
 * as its widest cell; tables here have tens of rows, not millions.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ringdevctl.h"

void size_format(uint64_t bytes, char *buf, size_t size)
{
	static const char units[] = "KMGTPE";

	if (bytes < 1024) {
		snprintf(buf, size, "%u", (unsigned)bytes);
		return;
	}
	/* value in units of 1024^(u+1), rounded as printed; a value that
	 * rounds up to 1024 moves to the next unit (1023.96K is 1.0M). */
	double value = (double)bytes / 1024.0;
	unsigned u = 0;
	for (;;) {
		bool decimal = value < 9.95;
		double shown = decimal ? (double)(long long)(value * 10.0 + 0.5) / 10.0 :
					 (double)(long long)(value + 0.5);
		if (shown < 1024.0 || u + 1 >= sizeof(units) - 1) {
			if (decimal)
				snprintf(buf, size, "%.1f%c", shown, units[u]);
			else
				snprintf(buf, size, "%.0f%c", shown, units[u]);
			return;
		}
		value /= 1024.0;
		u++;
	}
}

double fill_percent(uint64_t used, uint64_t capacity)
{
	if (capacity == 0)
		return 0.0;
	return 100.0 * (double)used / (double)capacity;
}

int table_add(struct table *t, const char *const cells[])
{
	if (t->rows == t->capacity) {
		size_t want = t->capacity ? t->capacity * 2 : 16;
		char **bigger = realloc(t->cells, want * t->ncolumns * sizeof(*bigger));
		if (!bigger)
			return -ENOMEM;
		t->cells = bigger;
		t->capacity = want;
	}
	char **row = t->cells + t->rows * t->ncolumns;
	for (size_t c = 0; c < t->ncolumns; c++) {
		row[c] = strdup(cells[c] ? cells[c] : "");
		if (!row[c]) {
			while (c-- > 0)
				free(row[c]);
			return -ENOMEM;
		}
	}
	t->rows++;
	return 0;
}

static void table_line(const struct table *t, const size_t *widths, const char *const *cells,
		       FILE *out)
{
	/* Padding after the last cell would only be trailing blanks. */
	size_t last = t->ncolumns - 1;
	for (size_t c = 0; c < t->ncolumns; c++) {
		int width = (int)widths[c];
		if (c > 0)
			fputs("  ", out);
		if (t->columns[c].align == ALIGN_RIGHT)
			fprintf(out, "%*s", width, cells[c]);
		else if (c == last)
			fputs(cells[c], out);
		else
			fprintf(out, "%-*s", width, cells[c]);
	}
	fputc('\n', out);
}

void table_print(const struct table *t, FILE *out)
{
	size_t *widths = calloc(t->ncolumns, sizeof(*widths));
	const char **titles = calloc(t->ncolumns, sizeof(*titles));
	if (!widths || !titles) {
		free(widths);
		free(titles);
		return;
	}
	for (size_t c = 0; c < t->ncolumns; c++) {
		titles[c] = t->columns[c].title;
		widths[c] = strlen(titles[c]);
	}
	for (size_t r = 0; r < t->rows; r++)
		for (size_t c = 0; c < t->ncolumns; c++) {
			size_t len = strlen(t->cells[r * t->ncolumns + c]);
			if (len > widths[c])
				widths[c] = len;
		}
	table_line(t, widths, titles, out);
	for (size_t r = 0; r < t->rows; r++)
		table_line(t, widths, (const char *const *)(t->cells + r * t->ncolumns), out);
	free(widths);
	free(titles);
}

void table_free(struct table *t)
{
	for (size_t i = 0; i < t->rows * t->ncolumns; i++)
		free(t->cells[i]);
	free(t->cells);
	t->cells = NULL;
	t->rows = 0;
	t->capacity = 0;
}
