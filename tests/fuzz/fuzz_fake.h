/* SPDX-License-Identifier: MIT */
/*
 * fuzz_fake.h - the fake frontend of the core's fuzz targets: a device_ops
 * that records every answer and checks device.h's contract on the spot, and
 * the bookkeeping the invariants need (requests, handles, poll handles,
 * bytes flushed per pipe). Any violation is abort(): libFuzzer keeps the
 * input. Not tests/unit/fake_frontend.c, which reports through Criterion.
 *
 * One world per input: fuzz_world_start() makes a device, fuzz_world_end()
 * shuts it down, checks that every request got exactly one answer and frees
 * everything, so LeakSanitizer sees a clean slate after each input.
 *
 * Requests are small integers cast to pointers (the core never dereferences
 * them); the handles the harness holds are the ones the core handed out.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringdev/ringdev.h>

#include "device.h"
#include "fuzz_input.h"

#define FUZZ_REQS 1024      /* requests per input */
#define FUZZ_HANDLES 48     /* handles held at once */
#define FUZZ_POLLS 256      /* poll handles per input */
#define FUZZ_TAKEN 64       /* requests a broker took, remembered for answers */
#define FUZZ_PIPES 256      /* pipes per input whose flushes are counted */
#define FUZZ_READ_MAX (256u << 10) /* largest read; the kernel splits larger ones */

enum fuzz_req_kind { FUZZ_REQ_OPEN, FUZZ_REQ_READ, FUZZ_REQ_WRITE, FUZZ_REQ_IOCTL };

enum fuzz_reply { FUZZ_NONE, FUZZ_DATA, FUZZ_WRITTEN, FUZZ_ERROR, FUZZ_OPENED, FUZZ_IOCTL };

struct fuzz_req {
	enum fuzz_req_kind kind;
	unsigned answers;         /* must end at exactly 1 */
	bool interrupted;         /* what req_interrupted says */
	bool opener_gone;         /* OPEN: reply_open says false */
	size_t size;              /* READ: buffer; WRITE: bytes offered; IOCTL: out buffer */
	unsigned cmd;             /* IOCTL */
	uint32_t max_requests;    /* IOCTL TRANSACT: what the call asked for */
	enum fuzz_reply reply;
	int err;                  /* the error, or an ioctl's result */
	size_t count;             /* bytes read, written, or ioctl out bytes */
	struct open_ctx *ctx;     /* READ: the handle read from */
};

struct fuzz_handle {
	struct open_ctx *ctx;
	bool ctl;                 /* the control node's (the broker's) handle */
	struct cred cred;         /* who opened it */
	int oflags;
};

/* A request a broker took with TRANSACT (notices are not kept). */
struct fuzz_taken {
	struct ringdev_ctl_request msg;
};

struct fuzz_world {
	struct device *dev;
	struct device_config cfg;
	struct fuzz_req reqs[FUZZ_REQS];
	unsigned nreqs;
	unsigned unanswered, unanswered_opens; /* kept as requests come and go */
	struct fuzz_handle handles[FUZZ_HANDLES];
	unsigned nhandles;
	bool poll_live[FUZZ_POLLS];
	unsigned npolls, live_polls;
	struct fuzz_taken taken[FUZZ_TAKEN]; /* a ring: the newest FUZZ_TAKEN */
	unsigned ntaken;          /* ever taken */
	uint64_t last_id;         /* highest request id a broker was given */
	struct {
		uint64_t ino, bytes;
	} flushed[FUZZ_PIPES];
	unsigned nflushed;
	unsigned steps;
	const uint8_t *writing;   /* the data of the device_write in progress, or NULL */
	size_t writing_size;
};

extern struct fuzz_world fz;

/* Stop the process with a message: an invariant does not hold. */
_Noreturn void fuzz_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#define FUZZ_ASSERT(cond, ...)                                                                                        \
	do {                                                                                                          \
		if (!(cond))                                                                                          \
			fuzz_fail(__VA_ARGS__);                                                                       \
	} while (0)

/* A device configuration chosen by the input (limits, case rule, frontend,
 * broker settings); never a deadline that could expire during an input. */
void fuzz_config(struct fuzz_input *in, struct device_config *cfg);
/* Make the device (and on CUSE its default pipe, as ringdevd does). */
void fuzz_world_start(const struct device_config *cfg);
/* Shut down, check every request was answered once, free everything. */
void fuzz_world_end(void);

/* Credentials: root, the device owner, others, an --admin-group member,
 * nobody; selector values past those read a uid and gid from the input. */
struct cred fuzz_cred(struct fuzz_input *in);
extern const struct cred fuzz_root;

/* A new request; NULL when the table is full (the caller skips the op). */
void *fuzz_req_new(enum fuzz_req_kind kind, size_t size, bool interrupted);
struct fuzz_req *fuzz_req_of(void *req);
unsigned fuzz_unanswered(void);
/* An unanswered request chosen by sel (NULL if none). */
void *fuzz_req_pick_unanswered(unsigned sel);

/* Handles the harness holds. */
struct fuzz_handle *fuzz_handle_add(struct open_ctx *ctx, bool ctl, const struct cred *cred, int oflags);
struct fuzz_handle *fuzz_handle_pick(unsigned sel); /* NULL if none */
struct fuzz_handle *fuzz_broker(void);              /* the ctl handle or NULL */
/* device_release of a held handle (the broker's too: the broker closes). */
void fuzz_handle_release(struct fuzz_handle *h);

/* What every write carries: byte i of a payload is fuzz_pattern()[i], so
 * a message read from a pipe must be the pattern's first bytes (framing
 * intact). A new buffer of exactly `size` bytes (at most FUZZ_PATTERN). */
#define FUZZ_PATTERN (1u << 17)
const uint8_t *fuzz_pattern(void);
uint8_t *fuzz_payload(size_t size);

/* A poll handle for device_poll; NULL when the table is full. */
void *fuzz_poll_new(void);

/* An ioctl as the frontend makes it: device_ioctl_async, else device_ioctl
 * with an out buffer of exactly out_size bytes, answered through the same
 * hooks; FLUSH is counted for the byte invariant. Returns the request or
 * NULL when the table is full. */
void *fuzz_ioctl(struct open_ctx *ctx, const struct cred *cred, unsigned cmd, const void *in, size_t in_size,
		 size_t out_size, bool interrupted);

/* The timer thread's work, done now and on this thread (deterministic):
 * deadlines up to `ms` milliseconds from now expire. */
void fuzz_expire(uint32_t ms);

/* Every invariant of the device against the harness's books (see
 * fuzz_fake.c); abort() on the first that fails. */
void fuzz_check(void);

/* A request a broker took, chosen by sel, or NULL. */
const struct ringdev_ctl_request *fuzz_taken_pick(unsigned sel);

/* The ioctl commands of ringdev.h, for targets that bias towards them. */
extern const unsigned fuzz_commands[];
extern const size_t fuzz_ncommands;
/* A command number: a defined one, a defined one with its size or direction
 * bits changed, one of ringdev's magic, or any 32-bit number. */
unsigned fuzz_command(struct fuzz_input *in);
