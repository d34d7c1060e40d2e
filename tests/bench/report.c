/* SPDX-License-Identifier: MIT */
/*
 * report.c - the rows of a run: their samples and medians, the aligned
 * table on stdout and the JSON file of --json.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "bench.h"

#define MAX_ROWS 64

static struct row rows[MAX_ROWS];
static int nrows;

struct row *row_add(int section, const char *key, const char *what, const char *unit)
{
	if (nrows == MAX_ROWS)
		fail("too many rows in the report");
	struct row *r = &rows[nrows++];
	memset(r, 0, sizeof(*r));
	r->section = section;
	snprintf(r->key, sizeof(r->key), "%s", key);
	snprintf(r->what, sizeof(r->what), "%s", what);
	r->unit = unit;
	r->ratio_is = "";
	r->ref = NAN;
	r->val = NAN;
	r->ratio = NAN;
	return r;
}

void row_reference(struct row *r, const char *reference, const char *ratio_is)
{
	snprintf(r->reference, sizeof(r->reference), "%s", reference);
	r->ratio_is = ratio_is;
}

void row_ref_sample(struct row *r, double v)
{
	if (r->nref < BENCH_MAX_ROUNDS)
		r->ref_samples[r->nref++] = v;
}

void row_val_sample(struct row *r, double v)
{
	if (r->nval < BENCH_MAX_ROUNDS)
		r->val_samples[r->nval++] = v;
}

/* The median of the per-round ratios: each B against the A of its own
 * round, so that a load that drifts over the run (a shared machine) hits
 * both sides of each ratio alike. */
static double paired_ratio(const struct row *r)
{
	double q[BENCH_MAX_ROUNDS];
	int n = 0;
	for (int i = 0; i < r->nval && i < r->nref; i++)
		if (r->ref_samples[i] != 0)
			q[n++] = r->val_samples[i] / r->ref_samples[i];
	return n ? median(q, n) : NAN;
}

void row_finish(struct row *r)
{
	r->ref = r->nref ? median(r->ref_samples, r->nref) : NAN;
	r->val = r->nval ? median(r->val_samples, r->nval) : NAN;
	r->ratio = r->reference[0] ? paired_ratio(r) : NAN;
	row_progress(r);
}

void row_set(struct row *r, double val)
{
	r->val = val;
	row_progress(r);
}

/* Enough digits to read, few enough to align: "-" for none. */
static const char *fmt_num(double v, char *out, size_t size)
{
	double a = fabs(v);
	if (isnan(v))
		snprintf(out, size, "-");
	else if (a >= 1000 || a == 0)
		snprintf(out, size, "%.0f", v);
	else if (a >= 100)
		snprintf(out, size, "%.1f", v);
	else if (a >= 1)
		snprintf(out, size, "%.2f", v);
	else
		snprintf(out, size, "%.3f", v);
	return out;
}

static const char *fmt_ratio(double v, char *out, size_t size)
{
	if (isnan(v))
		snprintf(out, size, "-");
	else
		snprintf(out, size, v < 0.1 ? "%.3fx" : "%.2fx", v);
	return out;
}

void row_progress(const struct row *r)
{
	char a[32], b[32], c[32];
	fprintf(stderr, "ringdev-bench: %d %s: %s %s, %s %s, ratio %s\n", r->section, r->what,
		r->reference[0] ? r->reference : "-", fmt_num(r->ref, a, sizeof(a)), fmt_num(r->val, b, sizeof(b)),
		r->unit, fmt_ratio(r->ratio, c, sizeof(c)));
}

struct widths {
	int what, unit, reference, ref, val, ratio;
};

static int max_int(int a, int b)
{
	return a > b ? a : b;
}

static struct widths measure(void)
{
	struct widths w = { 4, 4, 9, 9, 7, 5 };
	for (int i = 0; i < nrows; i++) {
		char buf[32];
		w.what = max_int(w.what, (int)strlen(rows[i].what));
		w.unit = max_int(w.unit, (int)strlen(rows[i].unit));
		w.reference = max_int(w.reference, (int)strlen(rows[i].reference));
		w.ref = max_int(w.ref, (int)strlen(fmt_num(rows[i].ref, buf, sizeof(buf))));
		w.val = max_int(w.val, (int)strlen(fmt_num(rows[i].val, buf, sizeof(buf))));
		w.ratio = max_int(w.ratio, (int)strlen(fmt_ratio(rows[i].ratio, buf, sizeof(buf))));
	}
	return w;
}

void report_print(void)
{
	struct widths w = measure();
	printf("%-3s %-*s %-*s %-*s %*s %*s %*s  %s\n", "sec", w.what, "what", w.unit, "unit", w.reference,
	       "reference", w.ref, "ref", w.val, "ringdev", w.ratio, "ratio", "ratio is");
	for (int i = 0; i < nrows; i++) {
		const struct row *r = &rows[i];
		char a[32], b[32], c[32];
		if (i > 0 && rows[i - 1].section != r->section)
			putchar('\n');
		printf("%-3d %-*s %-*s %-*s %*s %*s %*s  %s\n", r->section, w.what, r->what, w.unit, r->unit,
		       w.reference, r->reference[0] ? r->reference : "-", w.ref, fmt_num(r->ref, a, sizeof(a)),
		       w.val, fmt_num(r->val, b, sizeof(b)), w.ratio, fmt_ratio(r->ratio, c, sizeof(c)),
		       r->ratio_is[0] ? r->ratio_is : "-");
	}
	printf("\nref, ringdev: medians of %d round(s), reference (A) and ringdev (B) alternating;\n"
	       "ratio: median of the per-round ratios; no time is asserted\n",
	       cfg.rounds);
}

/* ---- JSON ---- */

static void json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			fprintf(f, "\\%c", ch);
		else if (ch < 0x20)
			fprintf(f, "\\u%04x", ch);
		else
			fputc(ch, f);
	}
	fputc('"', f);
}

static void json_number(FILE *f, double v)
{
	if (isnan(v) || isinf(v))
		fputs("null", f);
	else
		fprintf(f, "%.6g", v);
}

static void json_samples(FILE *f, const double *v, int n)
{
	fputc('[', f);
	for (int i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		json_number(f, v[i]);
	}
	fputc(']', f);
}

static void json_row(FILE *f, const struct row *r)
{
	fprintf(f, "    {\"section\": %d, \"key\": ", r->section);
	json_string(f, r->key);
	fputs(", \"what\": ", f);
	json_string(f, r->what);
	fputs(", \"unit\": ", f);
	json_string(f, r->unit);
	fputs(",\n     \"reference\": ", f);
	if (r->reference[0])
		json_string(f, r->reference);
	else
		fputs("null", f);
	fputs(", \"reference_value\": ", f);
	json_number(f, r->ref);
	fputs(", \"ringdev_value\": ", f);
	json_number(f, r->val);
	fputs(", \"ratio\": ", f);
	json_number(f, r->ratio);
	fputs(", \"ratio_is\": ", f);
	if (r->ratio_is[0])
		json_string(f, r->ratio_is);
	else
		fputs("null", f);
	fputs(",\n     \"reference_samples\": ", f);
	json_samples(f, r->ref_samples, r->nref);
	fputs(", \"ringdev_samples\": ", f);
	json_samples(f, r->val_samples, r->nval);
	fputc('}', f);
}

static void json_header(FILE *f)
{
	fprintf(f, "{\n  \"benchmark\": \"ringdev\",\n  \"format\": 1,\n  \"time\": %lld,\n", (long long)time(NULL));
	fprintf(f, "  \"smoke\": %s,\n  \"rounds\": %d,\n  \"ringdevd\": ", cfg.smoke ? "true" : "false", cfg.rounds);
	json_string(f, cfg.ringdevd);
	fputs(",\n  \"daemon_args\": [", f);
	for (int i = 0; i < cfg.ndaemon_args; i++) {
		if (i)
			fputs(", ", f);
		json_string(f, cfg.daemon_args[i]);
	}
	fputs("],\n", f);
}

void report_json(const char *path)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die(path);
	json_header(f);
	fputs("  \"rows\": [\n", f);
	for (int i = 0; i < nrows; i++) {
		json_row(f, &rows[i]);
		fputs(i + 1 < nrows ? ",\n" : "\n", f);
	}
	fputs("  ]\n}\n", f);
	bool bad = ferror(f) != 0;
	if (fclose(f) != 0 || bad)
		die(path);
}
