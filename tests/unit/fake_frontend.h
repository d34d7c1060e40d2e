/* SPDX-License-Identifier: MIT */
/*
 * fake_frontend.h - a device_ops that records every answer, so unit tests can
 * drive the core without libfuse. Requests are small integers cast to
 * pointers; each must be answered exactly once (checked).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"

#define FAKE_MAX_REQ 256

enum fake_kind { FAKE_NONE, FAKE_DATA, FAKE_WRITTEN, FAKE_ERROR, FAKE_OPENED, FAKE_IOCTL };

struct fake_reply {
	enum fake_kind kind;
	int answers;            /* must end at 1 */
	int err;                /* error, or an ioctl's result */
	size_t count;           /* written count or data length */
	bool held;              /* data came through reply_data_held */
	struct open_ctx *ctx;   /* an open's handle */
	uint8_t data[131072];   /* copy of the data answered */
};

extern struct fake_reply fake_replies[FAKE_MAX_REQ];
extern bool fake_interrupted[FAKE_MAX_REQ];
extern int fake_notifies, fake_destroys;
extern const struct device_ops fake_ops;

#define REQ(n) ((void *)(uintptr_t)(n))

void fake_reset(void);
struct device *fake_device(uint64_t ring_size, uint64_t max_pipes, uint64_t max_memory);
/* The same with the admin limits (0: none) and an --admin-group gid. */
struct device *fake_device_limits(uint64_t pipes_per_uid, uint64_t opens_per_uid, uint64_t max_parked,
				  uint32_t admin_gid);
/* The same with a broker configuration (require_broker, broker_timeout_ms). */
struct device *fake_device_broker(bool require_broker, uint32_t broker_timeout_ms);
struct cred fake_cred(uint32_t uid);
/* The credentials ctx was opened with (to act as its opener). */
const struct cred *fake_ctx_cred(const struct open_ctx *ctx);
/* Open a handle on `name`, creating it with the given kind/policy/capacity. */
struct open_ctx *fake_open(struct device *dev, const char *name, int oflags, uint32_t kind, uint32_t policy,
			   uint64_t capacity);
/* Stats shortcut. */
uint64_t fake_parked(struct device *dev);
