/* SPDX-License-Identifier: MIT */
/*
 * fuzz_drive.h - the steps the core's fuzz targets are made of, each reading
 * its arguments from the input: what apps do (open, attach, read, write,
 * poll, ioctl, close, get interrupted), what the broker does (open the
 * control node, TRANSACT with answers, FETCH, STAGE, close), what the FUSE
 * mount's namespace calls do (mknod, unlink, setattr, ...), and the timer.
 * Every step goes through fuzz_fake's hooks; the targets only choose the
 * order and call fuzz_check() after each step.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include <ringdev/ringdev.h>

#include "fuzz_input.h"

/* A pipe name: mostly valid ones (some equal but for case), some invalid,
 * some raw bytes. Writes up to RINGDEV_NAME_SIZE bytes, NUL-terminated
 * when it fits; returns the length. */
size_t drive_name(struct fuzz_input *in, char name[RINGDEV_NAME_SIZE]);
/* An inode number: the pipes' range (from 16), the mount's own, or any. */
uint64_t drive_ino(struct fuzz_input *in);

/* Apps. */
void drive_open_request(struct fuzz_input *in);
void drive_open(struct fuzz_input *in);
void drive_attach(struct fuzz_input *in);
void drive_attach_ino(struct fuzz_input *in);
void drive_detach(struct fuzz_input *in);
void drive_read(struct fuzz_input *in);
void drive_write(struct fuzz_input *in);
void drive_poll(struct fuzz_input *in);
void drive_release(struct fuzz_input *in);
void drive_interrupt(struct fuzz_input *in);
/* A device-specific ioctl (relayed while a broker is in charge). */
void drive_device_ioctl(struct fuzz_input *in);
/* One of ringdev's own ioctls with a well-formed argument of chosen fields. */
void drive_admin_ioctl(struct fuzz_input *in);

/* The broker. `raw` answers are mostly input bytes (only the id is chosen
 * among the requests taken); otherwise built field by field. */
void drive_ctl_open(struct fuzz_input *in);
void drive_transact(struct fuzz_input *in, bool raw);
void drive_fetch(struct fuzz_input *in);
void drive_stage(struct fuzz_input *in);
void drive_broker_close(struct fuzz_input *in);

/* The FUSE mount's namespace calls, device_create, listings. */
void drive_namespace(struct fuzz_input *in);

/* The timer's work now (fuzz_expire), and an early device_shutdown. */
void drive_expire(struct fuzz_input *in);
void drive_shutdown(struct fuzz_input *in);
