/* SPDX-License-Identifier: MIT */
/*
 * encode.c - see encode.h. The checks here mirror what ringdevd accepts
 * (/work/protocol.md, "Malformed"), so a broker learns about a bad answer
 * from a -EINVAL at the call that made it rather than from an app's EIO.
 */
#include "encode.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "name.h"

bool ctl_type_is_notice(uint32_t type)
{
	return type == RINGDEV_CTL_CANCEL || type == RINGDEV_CTL_RELEASE;
}

static bool type_known(uint32_t type)
{
	return type >= RINGDEV_CTL_OPEN && type <= RINGDEV_CTL_RELEASE;
}

size_t ctl_request_payload_size(const struct ringdev_ctl_request *request)
{
	if (request->type == RINGDEV_CTL_IOCTL || request->type == RINGDEV_CTL_WRITE)
		return request->size;
	return 0;
}

int ctl_request_check(const struct ringdev_ctl_request *request)
{
	size_t payload = ctl_request_payload_size(request);

	if (!type_known(request->type))
		return -EPROTO;
	if (!memchr(request->name, '\0', sizeof(request->name)))
		return -EPROTO;
	if (payload > RDB_PAYLOAD_MAX)
		return -EPROTO;
	if (request->inline_size > RINGDEV_CTL_INLINE || request->inline_size > payload)
		return -EPROTO;
	if (request->type == RINGDEV_CTL_IOCTL && request->out_size > _IOC_SIZEMASK)
		return -EPROTO;
	return 0;
}

bool ctl_request_needs_fetch(const struct ringdev_ctl_request *request)
{
	return ctl_request_payload_size(request) > request->inline_size;
}

bool ctl_payload_needs_stage(size_t size)
{
	return size > RINGDEV_CTL_INLINE;
}

size_t ctl_bulk_chunk(size_t size, size_t offset)
{
	size_t left = offset < size ? size - offset : 0;
	return left < RINGDEV_CTL_BULK ? left : RINGDEV_CTL_BULK;
}

static void answer_start(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request)
{
	memset(answer, 0, sizeof(*answer));
	answer->id = request->id;
}

int ctl_answer_deny(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request, int err)
{
	answer_start(answer, request);
	if (ctl_type_is_notice(request->type) || err <= 0 || err > CTL_ERRNO_MAX)
		return -EINVAL;
	answer->result = -err;
	return 0;
}

/* Zero fields take the documented defaults; the daemon wants real values. */
static int settings_encode(struct ringdev_ctl_answer *answer, const struct rdb_pipe_settings *s)
{
	uint32_t kind = s->kind ? s->kind : RINGDEV_KIND_STREAM;
	uint32_t policy = s->policy ? s->policy : RINGDEV_POLICY_BLOCK;
	uint32_t mode = s->mode ? s->mode : 0600;

	if (kind > RINGDEV_KIND_MESSAGE || policy > RINGDEV_POLICY_FAIL || mode > 0777 || s->reserved0)
		return -EINVAL;
	if (s->capacity && (s->capacity < RINGDEV_CAPACITY_MIN || s->capacity > RINGDEV_CAPACITY_MAX))
		return -EINVAL;
	answer->flags |= RINGDEV_ANSWER_SETTINGS;
	answer->kind = kind;
	answer->policy = policy;
	answer->mode = mode;
	answer->uid = s->uid;
	answer->gid = s->gid;
	answer->capacity = s->capacity;
	return 0;
}

int ctl_answer_allow(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		     const char *pipe, const struct rdb_pipe_settings *settings, bool brokered)
{
	answer_start(answer, request);
	if (request->type != RINGDEV_CTL_OPEN && request->type != RINGDEV_CTL_ATTACH)
		return -EINVAL;
	if (pipe && pipe[0]) {
		/* ATTACH has its name already; only an open can be mapped. */
		if (request->type != RINGDEV_CTL_OPEN || name_check_str(pipe) < 0)
			return -EINVAL;
		memcpy(answer->name, pipe, strlen(pipe) + 1);
	}
	if (settings && settings_encode(answer, settings) < 0)
		return -EINVAL;
	if (brokered)
		answer->flags |= RINGDEV_ANSWER_BROKERED;
	return 0;
}

/* The out-payload: inline when it fits, else marked STAGED (the caller
 * stages the bytes before the answer goes out). */
static void payload_encode(struct ringdev_ctl_answer *answer, const void *data, size_t size)
{
	answer->size = (uint32_t)size;
	if (ctl_payload_needs_stage(size))
		answer->flags |= RINGDEV_ANSWER_STAGED;
	else if (size)
		memcpy(answer->data, data, size);
}

int ctl_answer_ioctl(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		     int result, const void *out, size_t size)
{
	answer_start(answer, request);
	if (request->type != RINGDEV_CTL_IOCTL)
		return -EINVAL;
	if (result < -CTL_ERRNO_MAX)
		return -EINVAL;
	if (result < 0)
		return ctl_answer_deny(answer, request, -result);
	if (size > request->out_size || (size && !out))
		return -EINVAL;
	answer->result = result;
	payload_encode(answer, out, size);
	return 0;
}

int ctl_answer_read(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		    const void *data, size_t size)
{
	answer_start(answer, request);
	if (request->type != RINGDEV_CTL_READ || size > request->size || size > INT32_MAX || (size && !data))
		return -EINVAL;
	answer->result = (int32_t)size;
	payload_encode(answer, data, size);
	return 0;
}

int ctl_answer_write(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request,
		     size_t taken)
{
	answer_start(answer, request);
	if (request->type != RINGDEV_CTL_WRITE || taken > request->size || taken > INT32_MAX)
		return -EINVAL;
	answer->result = (int32_t)taken;
	return 0;
}

int ctl_answer_builtin(struct ringdev_ctl_answer *answer, const struct ringdev_ctl_request *request)
{
	answer_start(answer, request);
	if (request->type != RINGDEV_CTL_OPEN && request->type != RINGDEV_CTL_ATTACH)
		return -EINVAL;
	/* Nothing else with it: the daemon finds a name or another flag malformed. */
	answer->flags = RINGDEV_ANSWER_BUILTIN;
	return 0;
}
