/* SPDX-License-Identifier: MIT */
/* fake_frontend.c - see fake_frontend.h. */
#include "fake_frontend.h"

#include <criterion/criterion.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "device_internal.h"
#include "log.h"

struct fake_reply fake_replies[FAKE_MAX_REQ];
bool fake_interrupted[FAKE_MAX_REQ];
int fake_notifies, fake_destroys;

static struct fake_reply *slot(void *req)
{
	uintptr_t n = (uintptr_t)req;
	cr_assert(n < FAKE_MAX_REQ, "request %lu out of range", (unsigned long)n);
	struct fake_reply *r = &fake_replies[n];
	r->answers++;
	cr_assert_eq(r->answers, 1, "request %lu answered twice", (unsigned long)n);
	return r;
}

static void fk_data(void *req, const struct iovec *iov, int count)
{
	struct fake_reply *r = slot(req);
	r->kind = FAKE_DATA;
	r->count = 0;
	for (int i = 0; i < count; i++) {
		cr_assert(r->count + iov[i].iov_len <= sizeof(r->data));
		memcpy(r->data + r->count, iov[i].iov_base, iov[i].iov_len);
		r->count += iov[i].iov_len;
	}
}

static void fk_data_held(void *req, const struct iovec *iov, int count)
{
	fk_data(req, iov, count);
	fake_replies[(uintptr_t)req].held = true;
}

static void fk_written(void *req, size_t count)
{
	struct fake_reply *r = slot(req);
	r->kind = FAKE_WRITTEN;
	r->count = count;
}

static void fk_error(void *req, int err)
{
	struct fake_reply *r = slot(req);
	r->kind = FAKE_ERROR;
	r->err = err;
}

static bool fk_interrupted(void *req)
{
	return fake_interrupted[(uintptr_t)req];
}

static void fk_notify(void *ph)
{
	fake_notifies++;
}

static void fk_destroy(void *ph)
{
	fake_destroys++;
}

static bool fk_open(void *req, struct open_ctx *ctx)
{
	struct fake_reply *r = slot(req);
	r->kind = FAKE_OPENED;
	r->ctx = ctx;
	return true;
}

static void fk_ioctl(void *req, int result, const void *out, size_t size)
{
	struct fake_reply *r = slot(req);
	r->kind = FAKE_IOCTL;
	r->err = result;
	r->count = size;
	cr_assert(size <= sizeof(r->data));
	if (size)
		memcpy(r->data, out, size);
}

/* Handover: a request's or poll handle's wire id is its number, and the
 * stand-in a restored device gets for it is that number again, so the
 * answers land in the same fake_replies slot. */
static uint64_t fk_wire(void *p)
{
	return (uint64_t)(uintptr_t)p;
}

static void *fk_restore(uint64_t wire)
{
	return (void *)(uintptr_t)wire;
}

const struct device_ops fake_ops = {
	.reply_data = fk_data,
	.reply_data_held = fk_data_held,
	.reply_written = fk_written,
	.reply_error = fk_error,
	.req_interrupted = fk_interrupted,
	.poll_notify = fk_notify,
	.poll_destroy = fk_destroy,
	.reply_open = fk_open,
	.reply_ioctl = fk_ioctl,
	.req_wire = fk_wire,
	.poll_wire = fk_wire,
	.req_restore = fk_restore,
	.poll_restore = fk_restore,
};

void fake_reset(void)
{
	memset(fake_replies, 0, sizeof(fake_replies));
	memset(fake_interrupted, 0, sizeof(fake_interrupted));
	fake_notifies = fake_destroys = 0;
}

struct device *fake_device(uint64_t ring_size, uint64_t max_pipes, uint64_t max_memory)
{
	fake_reset();
	log_set_level(LOG_LEVEL_WARN); /* limit hits log at info: expected here */
	struct device_config cfg = {
		.ring_size = ring_size,
		.max_pipes = max_pipes,
		.max_memory = max_memory,
		.mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE,
		.max_parked = 1 << 20,
	};
	struct device *dev = device_new(&cfg, &fake_ops);
	cr_assert_not_null(dev);
	return dev;
}

struct device *fake_device_limits(uint64_t pipes_per_uid, uint64_t opens_per_uid, uint64_t max_parked,
				  uint32_t admin_gid)
{
	fake_reset();
	log_set_level(LOG_LEVEL_WARN);
	struct device_config cfg = {
		.ring_size = 65536,
		.max_pipes = 64,
		.max_memory = 1 << 20,
		.mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE,
		.default_pipe = "default",
		.max_pipes_per_uid = pipes_per_uid,
		.max_opens_per_uid = opens_per_uid,
		.max_parked = max_parked,
		.admin_set = admin_gid != 0,
		.admin_gid = admin_gid,
	};
	struct device *dev = device_new(&cfg, &fake_ops);
	cr_assert_not_null(dev);
	return dev;
}

struct device *fake_device_broker(bool require_broker, uint32_t broker_timeout_ms)
{
	fake_reset();
	log_set_level(LOG_LEVEL_WARN);
	struct device_config cfg = {
		.ring_size = 65536,
		.max_pipes = 64,
		.max_memory = 1 << 20,
		.mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE,
		.default_pipe = "default",
		.ctl_mode = 0600,
		.max_parked = 1 << 20,
		.require_broker = require_broker,
		.broker_timeout_ms = broker_timeout_ms,
	};
	struct device *dev = device_new(&cfg, &fake_ops);
	cr_assert_not_null(dev);
	return dev;
}

struct cred fake_cred(uint32_t uid)
{
	return (struct cred){ .uid = uid, .gid = uid, .pid = 1 };
}

struct open_ctx *fake_open(struct device *dev, const char *name, int oflags, uint32_t kind, uint32_t policy,
			   uint64_t capacity)
{
	struct cred c = fake_cred(0);
	struct open_ctx *ctx;
	cr_assert_eq(device_open(dev, &c, oflags, &ctx), 0);
	struct attach_args a = {
		.name = name,
		.len = strlen(name),
		.flags = RINGDEV_ATTACH_CREATE,
		.kind = kind,
		.policy = policy,
		.capacity = capacity,
	};
	int r = device_attach(dev, ctx, &c, &a);
	cr_assert_eq(r, 0, "attach %s: %d", name, r);
	return ctx;
}

uint64_t fake_parked(struct device *dev)
{
	struct ringdev_stats s;
	device_stats(dev, &s);
	return s.parked_total;
}

const struct cred *fake_ctx_cred(const struct open_ctx *ctx)
{
	return &ctx->cred;
}
