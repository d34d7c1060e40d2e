/* SPDX-License-Identifier: MIT */
/*
 * device_path.c - the default device and mount (see device_path.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "device_path.h"

/* a + b into buf; *source (when asked) names what the path was made from,
 * so a caller's "path too long" names the variable the user set. */
static int copy(char *buf, size_t size, const char *a, const char *b, const char *what, const char **source)
{
	if (source)
		*source = what;
	int n = snprintf(buf, size, "%s%s", a, b);
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int device_path_default_mount_from(char *buf, size_t size, const char **source)
{
	const char *runtime = getenv("XDG_RUNTIME_DIR");
	if (geteuid() != 0 && runtime && runtime[0] == '/')
		return copy(buf, size, runtime, "/ringdev", "$XDG_RUNTIME_DIR", source);
	return copy(buf, size, "/run/ringdev", "", "/run/ringdev", source);
}

int device_path_default_mount(char *buf, size_t size)
{
	return device_path_default_mount_from(buf, size, NULL);
}

int device_path_default_from(char *buf, size_t size, const char **source)
{
	const char *env = getenv("RINGDEV_DEVICE");
	if (env && env[0])
		return copy(buf, size, env, "", "$RINGDEV_DEVICE", source);
	if (access("/dev/ringdev", F_OK) == 0)
		return copy(buf, size, "/dev/ringdev", "", "/dev/ringdev", source);
	return device_path_default_mount_from(buf, size, source);
}

int device_path_default(char *buf, size_t size)
{
	return device_path_default_from(buf, size, NULL);
}
