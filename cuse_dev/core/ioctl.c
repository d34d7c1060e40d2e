/* SPDX-License-Identifier: MIT */
/*
 * ioctl.c - the ringdev ioctls, decoded and checked in one place for both
 * frontends. The kernel has already copied _IOC_SIZE(cmd) bytes in and will
 * copy as many out; we still check the sizes we were handed, that strings
 * are terminated and reserved fields are zero, before touching anything.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "device_internal.h"
#include "log.h"

#ifndef RINGDEV_VERSION_STRING
#define RINGDEV_VERSION_STRING "0.0.0"
#endif

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i])
			return false;
	return true;
}

static int ioctl_attach(struct device *dev, struct open_ctx *ctx, const void *in)
{
	struct ringdev_attach a;
	memcpy(&a, in, sizeof(a));
	const char *nul = memchr(a.name, '\0', sizeof(a.name));
	if (!nul)
		return -ENAMETOOLONG;
	if (!all_zero(a.reserved, sizeof(a.reserved)))
		return -EINVAL;
	struct attach_args args = {
		.name = a.name,
		.len = (size_t)(nul - a.name),
		.flags = a.flags,
		.kind = a.kind,
		.policy = a.policy,
		.mode = a.mode,
		.capacity = a.capacity,
	};
	return device_attach_locked(dev, ctx, &args);
}

static int ioctl_set_config(struct device *dev, struct open_ctx *ctx, const struct cred *cred, const void *in)
{
	struct ringdev_pipe_config c;
	memcpy(&c, in, sizeof(c));
	struct pipe *p = ctx->pipe;
	if ((c.set & ~RINGDEV_SET_ALL) || !all_zero(c.reserved, sizeof(c.reserved)))
		return -EINVAL;
	if ((c.set & RINGDEV_SET_KIND) && (c.kind < RINGDEV_KIND_STREAM || c.kind > RINGDEV_KIND_MESSAGE))
		return -EINVAL;
	if ((c.set & RINGDEV_SET_POLICY) && (c.policy < RINGDEV_POLICY_BLOCK || c.policy > RINGDEV_POLICY_FAIL))
		return -EINVAL;
	if ((c.set & RINGDEV_SET_MODE) && c.mode > 0777)
		return -EINVAL;
	if ((c.set & RINGDEV_SET_CAPACITY) &&
	    (c.capacity < RINGDEV_CAPACITY_MIN || c.capacity > RINGDEV_CAPACITY_MAX))
		return -EINVAL;
	if (cred->uid != 0 && cred->uid != p->uid)
		return -EPERM;
	if ((c.set & RINGDEV_SET_KIND) && c.kind != p->kind && p->ring.used > 0)
		return -EBUSY;
	if (c.set & RINGDEV_SET_CAPACITY) {
		int r = pipe_set_capacity(dev, p, c.capacity);
		if (r < 0)
			return r;
	}
	if (c.set & RINGDEV_SET_KIND)
		p->kind = c.kind;
	if (c.set & RINGDEV_SET_POLICY)
		p->policy = c.policy;
	if (c.set & RINGDEV_SET_MODE)
		p->mode = c.mode;
	pipe_settle(dev, p); /* a policy change may release parked writers */
	return 0;
}

static int ioctl_locked(struct device *dev, struct open_ctx *ctx, const struct cred *cred, unsigned int cmd,
			const void *in, void *out)
{
	switch (cmd) {
	case RINGDEV_IOC_VERSION: {
		struct ringdev_version *v = out;
		memset(v, 0, sizeof(*v));
		v->abi_major = RINGDEV_ABI_MAJOR;
		v->abi_minor = RINGDEV_ABI_MINOR;
		v->frontend = dev->cfg.frontend;
		strncpy(v->daemon_version, RINGDEV_VERSION_STRING, sizeof(v->daemon_version) - 1);
		return 0;
	}
	case RINGDEV_IOC_STATS:
		device_stats_locked(dev, out);
		return 0;
	default:
		break;
	}
	if (!ctx)
		return -ENOTTY; /* the rest act on a handle */
	if (cmd == RINGDEV_IOC_ATTACH)
		return ioctl_attach(dev, ctx, in);
	if (cmd == RINGDEV_IOC_DETACH)
		return device_detach_locked(dev, ctx);
	struct pipe *p = ctx->pipe;
	switch (cmd) {
	case RINGDEV_IOC_PIPE_INFO:
		if (!p)
			return -ENXIO;
		pipe_info(p, out);
		return 0;
	case RINGDEV_IOC_NREAD: {
		if (!p)
			return -ENXIO;
		struct ringdev_nread *n = out;
		memset(n, 0, sizeof(*n));
		n->next = pipe_next_read_size(p);
		n->queued_bytes = pipe_queued_payload(p);
		n->queued_messages = p->kind == RINGDEV_KIND_MESSAGE ? p->queued_messages : 0;
		return 0;
	}
	case RINGDEV_IOC_SET_CONFIG:
		if (!p)
			return -ENXIO;
		return ioctl_set_config(dev, ctx, cred, in);
	default:
		return -ENOTTY;
	}
}

bool device_ioctl_sizes(unsigned int cmd, size_t *in, size_t *out)
{
	switch (cmd) {
	case RINGDEV_IOC_VERSION:
	case RINGDEV_IOC_ATTACH:
	case RINGDEV_IOC_DETACH:
	case RINGDEV_IOC_PIPE_INFO:
	case RINGDEV_IOC_NREAD:
	case RINGDEV_IOC_SET_CONFIG:
	case RINGDEV_IOC_STATS:
		*in = (_IOC_DIR(cmd) & _IOC_WRITE) ? _IOC_SIZE(cmd) : 0;
		*out = (_IOC_DIR(cmd) & _IOC_READ) ? _IOC_SIZE(cmd) : 0;
		return true;
	default:
		return false;
	}
}

int device_ioctl(struct device *dev, struct open_ctx *ctx, const struct cred *cred, unsigned int cmd,
		 const void *in, size_t in_size, void *out, size_t out_size)
{
	size_t need_in, need_out;
	if (!device_ioctl_sizes(cmd, &need_in, &need_out))
		return -ENOTTY; /* device-specific commands go to a broker; none is connected */
	if (in_size < need_in || out_size < need_out || (need_in && !in) || (need_out && !out)) {
		log_debug("ioctl 0x%x: argument of %zu/%zu bytes, need %zu/%zu", cmd, in_size, out_size, need_in,
			  need_out);
		return -EINVAL;
	}
	pthread_mutex_lock(&dev->lock);
	int r = ioctl_locked(dev, ctx, cred, cmd, in, out);
	pthread_mutex_unlock(&dev->lock);
	return r;
}
