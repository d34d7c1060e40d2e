/* SPDX-License-Identifier: MIT */
/*
 * fuzz_state.c - target "state": the handover decoder (core/state.c,
 * core/handover.c). A new ringdevd image reads the state the old one left
 * in a memfd; the format treats it as untrusted input, and this target
 * holds it to that: any bytes, through sr_open and device_restore into a
 * fresh device, must be refused or accepted without a crash, and either
 * way device_shutdown + device_free must leave nothing behind (every
 * stand-in of a request or poll handle the core was given is answered or
 * destroyed exactly once: LeakSanitizer and the counts below see it).
 *
 * An accepted state must also survive its own round trip: saved again and
 * restored into a third device (sharing the arena, as the next image
 * would), it must be accepted too.
 *
 * Input: a u32 length L (at most ARENA_IMAGE_MAX), L bytes put at the
 * start of the fresh device's ring arena (the old image's ring bytes: a
 * message pipe's are checked), then the state. Without a right checksum
 * only sr_open would run, so the target sets the header's body length and
 * checksum (what the unit tests check of sr_open: tests/unit/
 * test_handover.c); the version and record count stay what the input
 * says.
 *
 * Seeds (corpus/state): states the unit tests' generator writes
 * (tests/unit/test_handover.c, RINGDEV_STATE_SEEDS=DIR).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "arena.h"
#include "device.h"
#include "log.h"
#include "state.h"

#define CHECK(cond, ...)                                                                                              \
	do {                                                                                                          \
		if (!(cond)) {                                                                                        \
			fprintf(stderr, "fuzz-state: " __VA_ARGS__);                                                  \
			fputc('\n', stderr);                                                                          \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

#define ARENA_IMAGE_MAX (64u << 10)

/* Stand-ins the core was given and has not let go of. */
static long live_reqs, live_polls;

struct standin {
	uint64_t wire;
	long *live;
};

static void *standin_new(uint64_t wire, long *live)
{
	struct standin *s = malloc(sizeof(*s));
	if (!s)
		return NULL;
	s->wire = wire;
	s->live = live;
	(*live)++;
	return s;
}

static void standin_end(void *p)
{
	struct standin *s = p;
	CHECK(*s->live > 0, "a stand-in ended twice");
	(*s->live)--;
	free(s);
}

static void fz_data(void *req, const struct iovec *iov, int count)
{
	(void)iov;
	(void)count;
	standin_end(req);
}

static void fz_written(void *req, size_t count)
{
	(void)count;
	standin_end(req);
}

static void fz_error(void *req, int err)
{
	CHECK(err > 0, "reply_error with %d", err);
	standin_end(req);
}

static bool fz_interrupted(void *req)
{
	(void)req;
	return false;
}

static bool fz_open(void *req, struct open_ctx *ctx)
{
	(void)ctx;
	standin_end(req);
	return true;
}

static void fz_ioctl(void *req, int result, const void *out, size_t size)
{
	(void)result;
	(void)out;
	(void)size;
	standin_end(req);
}

static uint64_t fz_wire(void *p)
{
	return ((struct standin *)p)->wire;
}

static void *fz_req_restore(uint64_t wire)
{
	return standin_new(wire, &live_reqs);
}

static void *fz_poll_restore(uint64_t wire)
{
	return standin_new(wire, &live_polls);
}

static const struct device_ops ops = {
	.reply_data = fz_data,
	.reply_data_held = fz_data,
	.reply_written = fz_written,
	.reply_error = fz_error,
	.req_interrupted = fz_interrupted,
	.poll_notify = standin_end,
	.poll_destroy = standin_end,
	.reply_open = fz_open,
	.reply_ioctl = fz_ioctl,
	.req_wire = fz_wire,
	.poll_wire = fz_wire,
	.req_restore = fz_req_restore,
	.poll_restore = fz_poll_restore,
};

static struct device *new_device(void)
{
	struct device_config cfg = {
		.ring_size = 4096,
		.max_pipes = 64,
		.max_memory = 1 << 20,
		.mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE,
		.ctl_mode = 0600,
		.max_parked = 1 << 20,
		.broker_timeout_ms = 60000,
	};
	struct device *dev = device_new(&cfg, &ops);
	CHECK(dev, "device_new: %s", strerror(errno));
	return dev;
}

static void end_device(struct device *dev)
{
	device_shutdown(dev);
	device_free(dev);
}

/* What sw_finish writes, over the body as it is. */
static void fix_header(uint8_t *b, size_t len)
{
	uint64_t body = len - 32, h = 0xcbf29ce484222325ull;
	for (size_t i = 32; i < len; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	memcpy(b, STATE_MAGIC, 8);
	memcpy(b + 16, &body, 8);
	memcpy(b + 24, &h, 8);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	log_set_level(LOG_LEVEL_DEBUG); /* every log line is formatted: its arguments are read */
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > (1u << 20))
		return 0;
	uint32_t image = 0;
	if (size >= 4)
		memcpy(&image, data, 4);
	data += size < 4 ? size : 4;
	size -= size < 4 ? size : 4;
	if (image > ARENA_IMAGE_MAX || image > size)
		image = 0;
	const uint8_t *arena_image = data;
	data += image;
	size -= image;
	uint8_t *buf = malloc(size ? size : 1);
	CHECK(buf, "out of memory");
	memcpy(buf, data, size);
	/* Length and checksum made right (the unit tests refuse wrong ones);
	 * the version and record count stay what the input says. */
	if (size >= 32)
		fix_header(buf, size);

	struct device *dev = new_device();
	int afd = arena_fd(device_arena(dev));
	CHECK(arena_size(device_arena(dev)) >= ARENA_IMAGE_MAX, "the arena is too small for an image");
	memcpy(arena_ptr(device_arena(dev), 0), arena_image, image);
	struct state_reader r;
	int e = sr_open(&r, buf, size);
	CHECK(e == 0 || (e == -EINVAL && r.problem), "sr_open: %d with no reason", e);
	bool refused = false;
	if (e == 0) {
		e = device_restore(dev, &r, NULL, NULL);
		refused = e != 0;
		CHECK(e == 0 || r.problem, "device_restore: %d with no reason", e);
		if (getenv("FUZZ_STATE_VERBOSE"))
			fprintf(stderr, "fuzz-state: device_restore: %d (%s)\n", e, r.problem ? r.problem : "accepted");
	}
	if (e == 0) {
		/* Round trip: what was accepted is saved and accepted again. */
		struct state_writer w;
		sw_init(&w);
		CHECK(device_save(dev, &w) == 0 && sw_finish(&w) == 0, "device_save of a restored device failed");
		struct arena *a = NULL;
		int fd = dup(arena_fd(device_arena(dev)));
		CHECK(fd >= 0 && arena_adopt(fd, &a) == 0, "arena_adopt");
		struct device *again = new_device();
		CHECK(device_use_arena(again, a) == 0, "device_use_arena");
		struct state_reader r2;
		CHECK(sr_open(&r2, w.buf, w.len) == 0, "sr_open of a saved state: %s", r2.problem);
		int e2 = device_restore(again, &r2, NULL, NULL);
		CHECK(e2 == 0, "a restored state saved again is refused: %s", r2.problem ? r2.problem : "?");
		sw_free(&w);
		/* Only one of them may answer the stand-ins: the copy's are its own. */
		end_device(again);
	}
	end_device(dev);
	/* A refused restore leaves the arena's memfd open, the caller's. */
	if (refused)
		close(afd);
	CHECK(live_reqs == 0 && live_polls == 0, "%ld request and %ld poll stand-ins were never let go of",
	      live_reqs, live_polls);
	free(buf);
	return 0;
}
