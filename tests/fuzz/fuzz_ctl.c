/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ctl.c - target "ctl": the control node's decoding. A broker is
 * connected from the start and apps make real requests (opens, ATTACH,
 * device-specific ioctls with payloads past the inline space, reads and
 * writes of brokered pipes), so the ids in TRANSACT answers, FETCH and
 * STAGE can match requests that were queued and taken; the answers
 * themselves are raw input bytes or built from chosen fields. Invariants
 * as everywhere (fuzz_fake.c) after each step.
 *
 * Input: two bytes of device configuration, then steps of one opcode byte
 * and the step's own bytes.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>

#include "fuzz_drive.h"
#include "fuzz_fake.h"

#define STEPS_MAX 300

static void step_transact(struct fuzz_input *in)
{
	drive_transact(in, false);
}

static void step_transact_raw(struct fuzz_input *in)
{
	drive_transact(in, true);
}

/* A broker that went away comes back (the next steps need one). */
static void step_broker(struct fuzz_input *in)
{
	if (!fuzz_broker())
		drive_ctl_open(in);
	else
		drive_broker_close(in);
}

static void (*const steps[])(struct fuzz_input *) = {
	step_transact_raw, step_transact_raw, step_transact, step_transact, drive_fetch,
	drive_stage,       drive_stage,       drive_open_request, drive_attach, drive_device_ioctl,
	drive_read,        drive_write,       drive_interrupt, drive_release, drive_open,
	drive_expire,      step_broker,       drive_poll,
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct device_config cfg;
	fuzz_config(&in, &cfg);
	fuzz_world_start(&cfg);
	struct open_ctx *ctx;
	if (device_ctl_open(fz.dev, &fuzz_root, O_RDWR, &ctx) == 0)
		fuzz_handle_add(ctx, true, &fuzz_root, O_RDWR);
	while (!fin_done(&in) && fz.steps < STEPS_MAX) {
		steps[fin_u8(&in) % NSTEPS](&in);
		fz.steps++;
		fuzz_check();
	}
	fuzz_world_end();
	return 0;
}
