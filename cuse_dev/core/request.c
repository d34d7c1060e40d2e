/* SPDX-License-Identifier: MIT */
/*
 * request.c - parked requests: the queues a request waits on, and the
 * ways a wait ends early (interrupt, release, detach, shutdown).
 *
 * The index by request pointer is what makes interrupts safe: the frontend's
 * interrupt callback passes only the request, and a request that was answered
 * meanwhile is simply not found (libfuse keeps the request alive during the
 * callback, so the pointer cannot be reused under us).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "device_internal.h"
#include "log.h"

static uint64_t req_hash(void *req)
{
	return hash_u64((uint64_t)(uintptr_t)req);
}

struct parked_req *parked_new(struct device *dev, enum parked_kind kind, void *req, struct open_ctx *ctx, int *err)
{
	if (kind != PARKED_TRANSACT) {
		int r = limit_charge(&dev->limits, LIMIT_PARKED, ctx->cred.uid, 1, "a request that would wait");
		if (r < 0) {
			*err = -r;
			return NULL;
		}
	}
	*err = ENOMEM;
	struct parked_req *p = calloc(1, sizeof(*p));
	if (!p || hashmap_insert(&dev->parked, &p->index_node, req_hash(req)) < 0) {
		free(p);
		if (kind != PARKED_TRANSACT)
			limit_uncharge(&dev->limits, LIMIT_PARKED, ctx->cred.uid, 1);
		return NULL;
	}
	list_init(&p->queue_link);
	list_init(&p->ctx_link);
	p->kind = kind;
	p->req = req;
	p->ctx = ctx;
	list_add_tail(&ctx->parked, &p->ctx_link);
	if (kind == PARKED_READ)
		dev->parked_reads++;
	else if (kind == PARKED_WRITE)
		dev->parked_writes++;
	else
		dev->parked_other++;
	return p;
}

struct parked_req *parked_find(struct device *dev, void *req)
{
	uint64_t h = req_hash(req);
	for (struct hash_node *n = hashmap_bucket(&dev->parked, h); n; n = n->next) {
		struct parked_req *p = container_of(n, struct parked_req, index_node);
		if (p->req == req)
			return p;
	}
	return NULL;
}

void parked_free(struct device *dev, struct parked_req *p)
{
	list_unlink(&p->queue_link);
	list_unlink(&p->ctx_link);
	hashmap_remove(&dev->parked, &p->index_node);
	if (p->kind == PARKED_READ)
		dev->parked_reads--;
	else if (p->kind == PARKED_WRITE)
		dev->parked_writes--;
	else
		dev->parked_other--;
	if (p->kind != PARKED_TRANSACT)
		limit_uncharge(&dev->limits, LIMIT_PARKED, p->ctx->cred.uid, 1);
	if (p->relay) {
		/* Ended before the broker answered: the broker may need to know. */
		struct relay_req *r = p->relay;
		p->relay = NULL;
		r->parked = NULL;
		relay_abandon(dev, r);
	}
	free(p->data);
	free(p);
}

void parked_end(struct device *dev, struct parked_req *p, int err)
{
	if (p->kind == PARKED_OPEN) {
		struct open_ctx *ctx = p->ctx;
		void *req = p->req;
		uint64_t hold_ino = p->hold_ino;
		parked_free(dev, p);
		device_open_fail(dev, ctx, req, err, hold_ino);
		return;
	}
	if (p->kind == PARKED_WRITE && p->done > 0)
		dev->ops->reply_written(p->req, p->done);
	else
		dev->ops->reply_error(p->req, err);
	parked_free(dev, p);
}

/* Each step ends the first matching request anew: ending one may end
 * others of the same handle, so no saved position is ever reused. */
static void end_matching(struct device *dev, struct open_ctx *ctx, int err, bool pipe_bound_only)
{
	for (;;) {
		struct parked_req *found = NULL;
		struct list_node *pos;
		list_for_each(pos, &ctx->parked) {
			struct parked_req *p = list_entry(pos, struct parked_req, ctx_link);
			if (!pipe_bound_only || parked_bound_to_pipe(p)) {
				found = p;
				break;
			}
		}
		if (!found)
			return;
		parked_end(dev, found, err);
	}
}

void parked_end_ctx(struct device *dev, struct open_ctx *ctx, int err)
{
	end_matching(dev, ctx, err, false);
}

void parked_end_pipe_bound(struct device *dev, struct open_ctx *ctx, int err)
{
	end_matching(dev, ctx, err, true);
}
