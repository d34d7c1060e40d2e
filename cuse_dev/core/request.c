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
	*err = ENOMEM;
	if (kind != PARKED_TRANSACT && dev->parked.count >= dev->cfg.max_parked) {
		dev->count.limit_parked_hits++;
		*err = EAGAIN;
		log_info("--max-parked (%llu) reached: a request that would wait is refused",
			 (unsigned long long)dev->cfg.max_parked);
		return NULL;
	}
	struct parked_req *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	list_init(&p->queue_link);
	list_init(&p->ctx_link);
	p->kind = kind;
	p->req = req;
	p->ctx = ctx;
	if (hashmap_insert(&dev->parked, &p->index_node, req_hash(req)) < 0) {
		free(p);
		return NULL;
	}
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
	if (p->kind == PARKED_WRITE && p->done > 0)
		dev->ops->reply_written(p->req, p->done);
	else
		dev->ops->reply_error(p->req, err);
	/* An open that never completed leaves a handle nobody will release. */
	struct open_ctx *orphan = NULL;
	if (p->relay && p->relay->msg.type == RINGDEV_CTL_OPEN)
		orphan = p->ctx;
	parked_free(dev, p);
	if (orphan)
		ctx_free_locked(dev, orphan);
}

void parked_end_ctx(struct device *dev, struct open_ctx *ctx, int err)
{
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &ctx->parked)
		parked_end(dev, list_entry(pos, struct parked_req, ctx_link), err);
}
