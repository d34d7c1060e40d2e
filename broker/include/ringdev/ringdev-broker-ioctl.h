/* SPDX-License-Identifier: MIT */
/*
 * ringdev-broker-ioctl.h - the device-specific ioctls the reference broker,
 * ringdev-broker(8), implements as examples. An app includes this header and
 * calls them on any ringdev handle (a pipe fd on the FUSE mount, an open of
 * the CUSE node); ringdevd relays them to the broker (ringdev(4),
 * "Device-specific ioctls"). Without a broker they fail with ENOTTY.
 *
 * Same rules as ringdev.h: fixed-width fields, no pointers, the same layout
 * for 32- and 64-bit callers, numbers in the device-specific range.
 */
#ifndef RINGDEV_RINGDEV_BROKER_IOCTL_H
#define RINGDEV_RINGDEV_BROKER_IOCTL_H

#include <stdint.h>

#include <ringdev/ringdev.h>

#define RINGDEV_BROKER_TEXT_SIZE 256u
#define RINGDEV_BROKER_ECHO_MAX 4092u

/* RINGDEV_BROKER_IOC_LOG: the broker logs `text` (NUL-terminated within the
 * array; else EINVAL) with the caller's uid and pid, and returns 0. The
 * seed's CWK_DVC_SEND_STR. */
struct ringdev_broker_log {
	char text[RINGDEV_BROKER_TEXT_SIZE];
};

/* RINGDEV_BROKER_IOC_ECHO: the broker returns the first `len` bytes of
 * `data` with ASCII letters a-z turned into A-Z, the rest unchanged; `len`
 * stays, the bytes after it are zero. The ioctl returns `len`; EINVAL if
 * len > RINGDEV_BROKER_ECHO_MAX. */
struct ringdev_broker_echo {
	uint32_t len;
	uint8_t data[RINGDEV_BROKER_ECHO_MAX];
};

#define RINGDEV_BROKER_IOC_LOG _IOW(RINGDEV_IOC_MAGIC, 0x80, struct ringdev_broker_log)
#define RINGDEV_BROKER_IOC_ECHO _IOWR(RINGDEV_IOC_MAGIC, 0x81, struct ringdev_broker_echo)

#endif /* RINGDEV_RINGDEV_BROKER_IOCTL_H */
