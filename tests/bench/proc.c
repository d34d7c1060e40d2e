/* SPDX-License-Identifier: MIT */
/*
 * proc.c - what /proc tells about a process the run started: its CPU time
 * (utime + stime of /proc/PID/stat, all threads) and its memory (Pss of
 * /proc/PID/smaps_rollup, VmRSS of /proc/PID/status).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench.h"

static FILE *open_proc(pid_t pid, const char *file, char *path, size_t size)
{
	snprintf(path, size, "/proc/%d/%s", (int)pid, file);
	FILE *f = fopen(path, "r");
	if (!f)
		die(path);
	return f;
}

double proc_cpu_seconds(pid_t pid)
{
	char path[64], line[1024];
	FILE *f = open_proc(pid, "stat", path, sizeof(path));
	if (!fgets(line, sizeof(line), f)) {
		fclose(f);
		fail("%s: empty", path);
	}
	fclose(f);
	/* The name (field 2) may hold spaces and parentheses: fields are
	 * counted from the last ')'. utime and stime are fields 14 and 15. */
	char *p = strrchr(line, ')');
	unsigned long long utime, stime;
	if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
		fail("%s: cannot parse utime and stime", path);
	long tck = sysconf(_SC_CLK_TCK);
	if (tck <= 0)
		die("sysconf(_SC_CLK_TCK)");
	return (double)(utime + stime) / (double)tck;
}

/* The value of the line "KEY: N kB" of a /proc file, in bytes. */
static uint64_t proc_kb_field(pid_t pid, const char *file, const char *key)
{
	char path[64], line[256];
	size_t len = strlen(key);
	FILE *f = open_proc(pid, file, path, sizeof(path));
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;
		if (strncmp(line, key, len) == 0 && line[len] == ':' && sscanf(line + len + 1, "%llu", &kb) == 1) {
			fclose(f);
			return (uint64_t)kb * 1024;
		}
	}
	fclose(f);
	fail("%s: no %s line", path, key);
}

uint64_t proc_pss_bytes(pid_t pid)
{
	return proc_kb_field(pid, "smaps_rollup", "Pss");
}

uint64_t proc_rss_bytes(pid_t pid)
{
	return proc_kb_field(pid, "status", "VmRSS");
}
