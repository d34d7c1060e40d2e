/* SPDX-License-Identifier: MIT */
/*
 * request.c - the registry of parked requests: every request that waits,
 * of any kind, indexed by its request pointer, on its handle's list and
 * charged to its handle's user; and the ways a wait ends early (interrupt,
 * release, detach, shutdown). It knows no kind: each kind's behaviour
 * comes with it (struct parked_ops), from the module that owns it.
 *
 * The index by request pointer is what makes interrupts safe: the frontend's
 * interrupt callback passes only the request, and a request that was answered
 * meanwhile is simply not found (libfuse keeps the request alive during the
 * callback, so the pointer cannot be reused under us).
 */
#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

#include "device_internal.h"
#include "log.h"

static uint64_t req_hash(void *req)
{
	return hash_u64((uint64_t)(uintptr_t)req);
}

void parked_registry_init(struct parked_registry *r)
{
	*r = (struct parked_registry){ .index = HASHMAP_INIT };
}

void parked_registry_deinit(struct parked_registry *r)
{
	assert(r->index.count == 0);
	for (size_t k = 0; k < sizeof(r->count) / sizeof(r->count[0]); k++)
		assert(r->count[k] == 0);
	hashmap_destroy(&r->index);
}

static struct parked_req *parked_make(struct device *dev, const struct parked_ops *ops, void *req,
				      struct open_ctx *ctx, uint64_t wire, bool force, int *err)
{
	if (ops->charged) {
		if (force) {
			if (limit_charge_force(&dev->limits, LIMIT_PARKED, ctx->cred.uid, 1) < 0)
				return NULL;
		} else {
			int r = limit_charge(&dev->limits, LIMIT_PARKED, ctx->cred.uid, 1, "a request that would wait");
			if (r < 0) {
				*err = -r;
				return NULL;
			}
		}
	}
	*err = ENOMEM;
	struct parked_req *p = calloc(1, sizeof(*p));
	if (!p || hashmap_insert(&dev->parked.index, &p->index_node, req_hash(req)) < 0) {
		free(p);
		if (ops->charged)
			limit_uncharge(&dev->limits, LIMIT_PARKED, ctx->cred.uid, 1);
		return NULL;
	}
	list_init(&p->queue_link);
	list_init(&p->ctx_link);
	p->ops = ops;
	p->req = req;
	p->wire = wire;
	p->ctx = ctx;
	list_add_tail(&ctx->parked, &p->ctx_link);
	dev->parked.count[ops->kind]++;
	return p;
}

/* A request parks inside the frontend's handler of that very request, so
 * the frontend can still tell which one it is on the wire (req_wire). */
struct parked_req *parked_new(struct device *dev, const struct parked_ops *ops, void *req, struct open_ctx *ctx,
			      int *err)
{
	uint64_t wire = dev->ops->req_wire ? dev->ops->req_wire(req) : 0;
	return parked_make(dev, ops, req, ctx, wire, false, err);
}

struct parked_req *parked_new_restored(struct device *dev, const struct parked_ops *ops, void *req,
				       struct open_ctx *ctx, uint64_t wire, int *err)
{
	return parked_make(dev, ops, req, ctx, wire, true, err);
}

struct parked_req *parked_find(struct device *dev, void *req)
{
	uint64_t h = req_hash(req);
	for (struct hash_node *n = hashmap_bucket(&dev->parked.index, h); n; n = n->next) {
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
	hashmap_remove(&dev->parked.index, &p->index_node);
	dev->parked.count[p->ops->kind]--;
	if (p->ops->charged)
		limit_uncharge(&dev->limits, LIMIT_PARKED, p->ctx->cred.uid, 1);
	if (p->ops->release)
		p->ops->release(dev, p);
	free(p);
}

void parked_end(struct device *dev, struct parked_req *p, int err)
{
	if (p->ops->end) {
		p->ops->end(dev, p, err);
		return;
	}
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
			if (!pipe_bound_only || (p->ops->pipe_bound && p->ops->pipe_bound(p))) {
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
