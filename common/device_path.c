/* SPDX-License-Identifier: MIT */
/*
 * device_path.c - the default device and mount (see device_path.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "device_path.h"

static int copy(char *buf, size_t size, const char *a, const char *b)
{
	int n = snprintf(buf, size, "%s%s", a, b);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int device_path_default_mount(char *buf, size_t size)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	if (geteuid() != 0 && runtime && runtime[0] == '/')
		return copy(buf, size, runtime, "/ringdev");
	return copy(buf, size, "/run/ringdev", "");
}

int device_path_default(char *buf, size_t size)
{
	const char *env = getenv("RINGDEV_DEVICE");
	if (env && env[0])
		return copy(buf, size, env, "");
	if (access("/dev/ringdev", F_OK) == 0)
		return copy(buf, size, "/dev/ringdev", "");
	return device_path_default_mount(buf, size);
}
