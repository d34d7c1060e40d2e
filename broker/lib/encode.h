/* SPDX-License-Identifier: MIT */
/*
 * encode.h - the control protocol's rules without any I/O: what a request
 * from the daemon must look like before the library touches it, and answers
 * built field by field. Kept apart from the loop so unit tests check the
 * bytes an answer carries and the inline/staged decision without a daemon.
 *
 * Every ctl_answer_* zeroes the answer, sets its id and returns 0, or
 * -EINVAL when the answer does not fit the request (wrong type, value out of
 * range); the caller then answers EIO instead (ctl_answer_deny).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringdev/ringdev-broker.h>

/* Errno range an answer may carry: what the kernel can give an app (the
 * daemon fails others with EIO). */
#define CTL_ERRNO_MAX RDB_ERRNO_MAX

bool ctl_type_is_notice(uint32_t type);

/* 0 if the daemon's request is well-formed: known type, NUL-terminated name,
 * inline part within the inline space and the payload, payload at most
 * RDB_PAYLOAD_MAX, an ioctl's out_size within what an ioctl number encodes.
 * Else -EPROTO. */
int ctl_request_check(const struct ringdev_ctl_request *request);

/* In-payload bytes (IOCTL, WRITE: size; others none). */
size_t ctl_request_payload_size(const struct ringdev_ctl_request *request);

/* True if part of the in-payload must be fetched with FETCH. */
bool ctl_request_needs_fetch(const struct ringdev_ctl_request *request);

/* True if an out-payload of `size` bytes goes by STAGE, not inline. */
bool ctl_payload_needs_stage(size_t size);

/* Bytes of the FETCH/STAGE call that starts at `offset` of `size` bytes. */
size_t ctl_bulk_chunk(size_t size, size_t offset);

/* Answers. `request` is the one answered; payload bytes are copied inline
 * when they fit, else the answer gets RINGDEV_ANSWER_STAGED and the caller
 * stages `size` bytes before sending it. */
int ctl_answer_deny(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request, int err);
int ctl_answer_allow(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		     const char *pipe, const struct rdb_pipe_settings *settings, bool brokered);
int ctl_answer_ioctl(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		     int result, const void *out, size_t size);
int ctl_answer_read(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		    const void *data, size_t size);
int ctl_answer_write(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		     size_t taken);
/* OPEN, ATTACH: result 0 with only RINGDEV_ANSWER_BUILTIN, the daemon decides
 * as with no broker (ABI 1.1; the caller checks the daemon's version). */
int ctl_answer_builtin(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request);
