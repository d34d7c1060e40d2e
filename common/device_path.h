/* SPDX-License-Identifier: MIT */
/*
 * device_path.h - where a ringdev is when nobody says: the one rule that
 * ringdevd (its default mount), the tools and the broker library (their
 * default device) share, so they can never disagree about it.
 */
#pragma once

#include <stddef.h>

/* The mount ringdevd serves without --mount: $XDG_RUNTIME_DIR/ringdev for a
 * user other than root whose $XDG_RUNTIME_DIR is an absolute path, else
 * /run/ringdev. 0, or -ENAMETOOLONG when it does not fit buf. */
int device_path_default_mount(char *buf, size_t size);

/* The device the tools use without -d: $RINGDEV_DEVICE if set, else
 * /dev/ringdev if it exists, else the default mount. 0 or -ENAMETOOLONG. */
int device_path_default(char *buf, size_t size);

/* The same, and *source names what the path was made from, for a message
 * when it does not fit: "$RINGDEV_DEVICE", "/dev/ringdev",
 * "$XDG_RUNTIME_DIR" or "/run/ringdev" (set on success and failure). */
int device_path_default_from(char *buf, size_t size, const char **source);
int device_path_default_mount_from(char *buf, size_t size, const char **source);
