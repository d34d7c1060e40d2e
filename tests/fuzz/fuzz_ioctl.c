/* SPDX-License-Identifier: MIT */
/*
 * fuzz_ioctl.c - target "ioctl": argument decoding on the data node.
 * device_ioctl_async, then device_ioctl (as frontend_ioctl calls them) with
 * any command number (biased to ringdev's magic 0xE5 and the commands of
 * ringdev.h), any argument bytes and any in/out sizes a kernel can pass (up
 * to FUZZ_IOCTL_SIZE_MAX), on a handle, on the control handle and on the
 * device itself (ctx NULL), as root and as other uids. The world has pipes with data, handles attached and detached, and
 * maybe a broker, so the decoded arguments reach real objects. Buffers are
 * exactly as large as the sizes claim; invariants after every call.
 *
 * Input: two bytes of device configuration, one of set-up, then calls:
 * target, credentials, command, size mode, flags, name, length, bytes.
 */
#include <fcntl.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "fuzz_drive.h"
#include "fuzz_fake.h"

#define STEPS_MAX 256

/* The largest argument either way: what a kernel can copy (_IOC_SIZE is 14
 * bits; the FUSE mount's ioctls are restricted to it, and the CUSE node asks
 * for exactly what the number encodes). device_ioctl_async relays larger
 * sizes unchecked, and the broker library then refuses the request (EIO):
 * see tests/fuzz/crashes/ioctl-relay-out-size-over-16383. Build with
 * -Dc_args=-DFUZZ_IOCTL_SIZE_MAX=65535 to go past the kernel's bound. */
#ifndef FUZZ_IOCTL_SIZE_MAX
#define FUZZ_IOCTL_SIZE_MAX _IOC_SIZEMASK
#endif

static struct open_ctx *open_on(const struct cred *cred, int oflags, const char *name, uint32_t kind)
{
	struct open_ctx *ctx;
	if (device_open(fz.dev, cred, oflags, &ctx) < 0)
		return NULL;
	fuzz_handle_add(ctx, false, cred, oflags);
	if (name) {
		struct attach_args a = { .name = name, .len = strlen(name), .flags = RINGDEV_ATTACH_CREATE,
					 .kind = kind, .mode = 0666 };
		device_attach(fz.dev, ctx, cred, &a);
	}
	return ctx;
}

static void setup(struct fuzz_input *in)
{
	static const struct cred owner = { 1000, 1000, 2 }, other = { 1002, 1002, 4 };
	uint8_t s = fin_u8(in);
	struct open_ctx *a = open_on(&owner, O_RDWR, "a", (s & 2) ? RINGDEV_KIND_MESSAGE : RINGDEV_KIND_STREAM);
	open_on(&other, O_RDONLY, NULL, 0);
	open_on(&fuzz_root, O_WRONLY, "b", RINGDEV_KIND_MESSAGE);
	if (a) {
		void *req = fuzz_req_new(FUZZ_REQ_WRITE, 60, false);
		uint8_t *bytes = fuzz_payload(60);
		device_write(fz.dev, a, req, bytes, 60, O_NONBLOCK);
		free(bytes);
	}
	if (s & 1) {
		struct open_ctx *ctl;
		if (device_ctl_open(fz.dev, &fuzz_root, O_RDWR, &ctl) == 0)
			fuzz_handle_add(ctl, true, &fuzz_root, O_RDWR);
	}
}

static size_t clamp_size(size_t need, size_t less)
{
	return less >= need ? 0 : need - less;
}

static void step(struct fuzz_input *in)
{
	uint8_t t = fin_u8(in);
	if (t == 0xff) {
		drive_write(in);
		return;
	}
	if (t == 0xfe) {
		drive_read(in);
		return;
	}
	struct fuzz_handle *h = fuzz_handle_pick(t >> 2);
	struct open_ctx *ctx = (t & 3) == 3 || !h ? NULL : (t & 3) == 2 && fuzz_broker() ? fuzz_broker()->ctx : h->ctx;
	struct cred cred = fuzz_cred(in);
	unsigned cmd = fuzz_command(in);
	size_t in_size = 0, out_size = 0;
	if (cmd == FIONREAD)
		out_size = sizeof(int);
	else
		device_ioctl_arg_sizes(cmd, &in_size, &out_size);
	switch (fin_pick(in, 8)) {
	case 4:
		in_size = clamp_size(in_size, 1 + fin_u8(in));
		break;
	case 5:
		out_size = clamp_size(out_size, 1 + fin_u8(in));
		break;
	case 6:
		in_size = fin_u16(in) % (FUZZ_IOCTL_SIZE_MAX + 1);
		break;
	case 7:
		out_size = fin_u16(in) % (FUZZ_IOCTL_SIZE_MAX + 1);
		break;
	default:
		break;
	}
	uint8_t f = fin_u8(in);
	char name[RINGDEV_NAME_SIZE];
	size_t name_len = drive_name(in, name);
	size_t len = fin_u16(in);
	uint8_t *arg = malloc(in_size ? in_size : 1); /* exactly in_size: an overread is reported */
	if (!arg)
		abort();
	fin_bytes(in, arg, len < in_size ? len : in_size);
	memset(arg + (len < in_size ? len : in_size), 0, in_size - (len < in_size ? len : in_size));
	/* Every argument with a name has it at offset 0. */
	if ((f & 1) && in_size >= RINGDEV_NAME_SIZE) {
		memcpy(arg, name, RINGDEV_NAME_SIZE);
		if (name_len < RINGDEV_NAME_SIZE)
			arg[name_len] = '\0';
	}
	/* Ids of requests the broker took, where FETCH, STAGE and TRANSACT's
	 * first answer carry them. */
	const struct ringdev_ctl_request *q = fuzz_taken_pick(fin_u8(in));
	size_t id_at = cmd == RINGDEV_IOC_CTL_TRANSACT ? offsetof(struct ringdev_ctl_transact, answers) : 0;
	if ((f & 2) && q && in_size >= id_at + sizeof(q->id))
		memcpy(arg + id_at, &q->id, sizeof(q->id));
	/* A TRANSACT parks 20 s at least: only fuzz_expire ends it. */
	size_t tm_at = offsetof(struct ringdev_ctl_transact, timeout_ms);
	if (cmd == RINGDEV_IOC_CTL_TRANSACT && in_size >= tm_at + sizeof(uint32_t)) {
		uint32_t tm;
		memcpy(&tm, arg + tm_at, sizeof(tm));
		tm = tm ? 20000 + tm % 40000 : 0;
		memcpy(arg + tm_at, &tm, sizeof(tm));
	}
	fuzz_ioctl(ctx, &cred, cmd, in_size ? arg : NULL, in_size, out_size, f & 4);
	free(arg);
	if (f & 8)
		fuzz_expire(fin_u16(in));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_input in = { data, size };
	struct device_config cfg;
	fuzz_config(&in, &cfg);
	fuzz_world_start(&cfg);
	setup(&in);
	fuzz_check();
	while (!fin_done(&in) && fz.steps < STEPS_MAX) {
		step(&in);
		fz.steps++;
		fuzz_check();
	}
	fuzz_world_end();
	return 0;
}
