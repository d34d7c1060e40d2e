/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ops.c - target "ops": the core driven through the fake frontend in
 * random sequences of everything a frontend and a broker can do (opens,
 * attaches, reads, writes, ioctls, polls, releases, interrupts, TRANSACT
 * answers, the broker closing, mknod, unlink, setattr, the timer), with
 * every invariant of fuzz_fake.c checked after each step and, at the end,
 * device_shutdown: every request answered exactly once, nothing leaked.
 *
 * Input: two bytes of device configuration, then steps of one opcode byte
 * and the step's own bytes (fuzz_drive.c).
 */
#include <stddef.h>
#include <stdint.h>

#include "fuzz_drive.h"
#include "fuzz_fake.h"

#define STEPS_MAX 400

static void step_transact(struct fuzz_input *in)
{
	drive_transact(in, false);
}

static void step_transact_raw(struct fuzz_input *in)
{
	drive_transact(in, true);
}

static void (*const steps[])(struct fuzz_input *) = {
	drive_open_request, drive_open,     drive_attach,       drive_attach_ino, drive_detach,
	drive_read,         drive_write,    drive_poll,         drive_release,    drive_interrupt,
	drive_device_ioctl, drive_admin_ioctl, drive_ctl_open,  step_transact,    step_transact_raw,
	drive_fetch,        drive_stage,    drive_broker_close, drive_namespace,  drive_expire,
	drive_read,         drive_write,    drive_open_request, step_transact,    drive_attach,
};
#define NSTEPS (sizeof(steps) / sizeof(steps[0]))

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct device_config cfg;
	fuzz_config(&in, &cfg);
	fuzz_world_start(&cfg);
	while (!fin_done(&in) && fz.steps < STEPS_MAX) {
		uint8_t op = fin_u8(&in);
		if (op == 0xff)
			drive_shutdown(&in); /* rare: later requests are still served */
		else
			steps[op % NSTEPS](&in);
		fz.steps++;
		fuzz_check();
	}
	fuzz_world_end();
	return 0;
}
