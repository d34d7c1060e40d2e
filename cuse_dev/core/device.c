/* SPDX-License-Identifier: MIT */
/*
 * device.c - the device object (the NT device object and its extension):
 * it owns every module's state, makes and frees it, and holds the entry
 * points of the data path (read, write, poll, interrupt), the admin's pipe
 * lifecycle (create, remove) and the counters. Handles are in handle.c, the
 * open flow in open.c, the mount's namespace in namespace.c, the data path
 * itself in pipe.c, waiting in request.c.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "access.h"
#include "device_internal.h"
#include "log.h"
#include "name.h"

/* The most ring memory an arena is ever made for: virtual space only
 * (MAP_NORESERVE; pages cost memory once written), but a mapping has to fit
 * the address space the daemon runs in. */
#define ARENA_MAX (1ull << 40)
/* What one is made for at least, however small the limits. */
#define ARENA_SLACK (64ull << 20)
/* An arena smaller than it wanted is still made down to this (see
 * device_arena_new). */
#define ARENA_FLOOR (64ull << 20)

/* Room for every ring --max-memory allows twice over (a resize holds the
 * old ring and the new one at once, and freed extents leave holes), a page
 * of rounding per pipe, and some slack; 1 TiB at most (and with no limit). */
uint64_t device_arena_size(uint64_t max_memory, uint64_t max_pipes)
{
	if (max_memory == 0 || max_memory > ARENA_MAX / 2 || max_pipes > ARENA_MAX / 4096)
		return ARENA_MAX;
	uint64_t size = 2 * max_memory + max_pipes * 4096 + ARENA_SLACK;
	return size < ARENA_MAX ? size : ARENA_MAX;
}

/* The arena of the rings. Some address spaces cannot take a mapping of the
 * size wanted (valgrind's maps at most some tens of GiB at once; a ulimit
 * -v): then a smaller one, halving down to ARENA_FLOOR, with a warning that
 * rings past it fail with ENOMEM before --max-memory is reached. 0 or -errno. */
static int device_arena_new(struct device *dev)
{
	uint64_t want = device_arena_size(dev->cfg.max_memory, dev->cfg.max_pipes), size = want;
	int r;
	while ((r = arena_create(size, &dev->arena)) < 0 && (r == -ENOMEM || r == -EINVAL) && size / 2 >= ARENA_FLOOR)
		size /= 2;
	if (r < 0) {
		log_error("ring memory: cannot map a memfd of %llu MiB: %s", (unsigned long long)(want >> 20),
			  strerror(-r));
		return r;
	}
	if (size < want)
		log_warn("ring memory: a memfd of %llu MiB could not be mapped, only %llu MiB: rings past that fail "
			 "with ENOMEM", (unsigned long long)(want >> 20), (unsigned long long)(size >> 20));
	return 0;
}

struct device *device_new(const struct device_config *cfg, const struct device_ops *ops)
{
	struct device *dev = calloc(1, sizeof(*dev));
	if (!dev) {
		log_error("device: out of memory");
		return NULL;
	}
	dev->cfg = *cfg;
	int r = device_arena_new(dev);
	if (r < 0) {
		free(dev);
		errno = -r;
		return NULL;
	}
	pthread_mutex_init(&dev->lock, NULL);
	dev->ops = ops;
	pipe_table_init(&dev->table, cfg->case_sensitive);
	struct limits_config lc = {
		.total = { [LIMIT_PIPES] = cfg->max_pipes, [LIMIT_MEMORY] = cfg->max_memory,
			   [LIMIT_PARKED] = cfg->max_parked },
		.per_uid = { [LIMIT_PIPES] = cfg->max_pipes_per_uid, [LIMIT_OPENS] = cfg->max_opens_per_uid,
			     [LIMIT_MEMORY] = cfg->max_memory_per_uid, [LIMIT_PARKED] = cfg->max_parked_per_uid },
	};
	limit_init(&dev->limits, &lc);
	handles_init(&dev->handles);
	parked_registry_init(&dev->parked);
	relay_init(&dev->relay);
	r = timer_start(dev);
	if (r < 0) {
		log_error("device: cannot start the timer thread: %s", strerror(-r));
		arena_destroy(dev->arena);
		pthread_mutex_destroy(&dev->lock);
		free(dev);
		errno = -r;
		return NULL;
	}
	return dev;
}

struct arena *device_arena(struct device *dev)
{
	return dev->arena;
}

int device_use_arena(struct device *dev, struct arena *a)
{
	pthread_mutex_lock(&dev->lock);
	int r = pipe_table_count(&dev->table) || arena_in_use(dev->arena) ? -EBUSY : 0;
	if (r == 0) {
		arena_destroy(dev->arena);
		dev->arena = a;
	}
	pthread_mutex_unlock(&dev->lock);
	return r;
}

static void collect_pipe(struct hash_node *n, void *data)
{
	struct pipe ***cursor = data;
	**cursor = container_of(n, struct pipe, ino_node);
	(*cursor)++;
}

void device_free(struct device *dev)
{
	if (!dev)
		return;
	timer_stop(dev);
	pthread_mutex_lock(&dev->lock);
	relay_shutdown(dev);
	pthread_mutex_unlock(&dev->lock);
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->handles.list) {
		struct open_ctx *ctx = list_entry(pos, struct open_ctx, dev_link);
		device_release(dev, ctx);
	}
	size_t n = pipe_table_count(&dev->table);
	struct pipe **all = calloc(n ? n : 1, sizeof(*all));
	if (all) {
		struct pipe **cursor = all;
		hashmap_for_each(&dev->table.by_ino, collect_pipe, &cursor);
		for (size_t i = 0; i < n; i++)
			pipe_destroy(dev, all[i]);
		free(all);
	}
	/* Each module asserts it was left empty. */
	relay_deinit(&dev->relay);
	parked_registry_deinit(&dev->parked);
	handles_deinit(&dev->handles);
	pipe_table_deinit(&dev->table);
	limit_deinit(&dev->limits);
	assert(arena_in_use(dev->arena) == 0); /* every ring gave its extent back */
	arena_destroy(dev->arena);
	hashmap_destroy(&dev->fh_restored);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
}

void device_shutdown(struct device *dev)
{
	pthread_mutex_lock(&dev->lock);
	relay_shutdown(dev); /* first: it may drop handles whose open never completed */
	struct list_node *pos, *tmp;
	list_for_each_safe(pos, tmp, &dev->handles.list) {
		struct open_ctx *ctx = list_entry(pos, struct open_ctx, dev_link);
		parked_end_ctx(dev, ctx, ESHUTDOWN);
		ctx_poll_drop(dev, ctx);
	}
	pthread_mutex_unlock(&dev->lock);
}

int device_create(struct device *dev, const struct cred *cred, const struct attach_args *a)
{
	pthread_mutex_lock(&dev->lock);
	int r = device_create_locked(dev, cred, a, cred->uid, cred->gid);
	pthread_mutex_unlock(&dev->lock);
	return r;
}

void device_remove_locked(struct device *dev, struct pipe *p)
{
	struct list_node *pos, *tmp;
	pipe_end_waiters(dev, p, EIDRM);
	/* Handles stay open, attached to nothing: ENXIO from now on. The pipe
	 * is held (persistent) meanwhile, or the last detach would free it
	 * under this loop. */
	p->persistent = true;
	list_for_each_safe(pos, tmp, &p->opens)
		handle_detach_pipe(dev, list_entry(pos, struct open_ctx, pipe_link), EIDRM);
	p->persistent = false;
	p->name_removed = true;
	pipe_table_unlink(&dev->table, p);
	pipe_collect(dev, p);
}

void device_read(struct device *dev, struct open_ctx *ctx, void *req, size_t size, int oflags, bool continuation)
{
	pthread_mutex_lock(&dev->lock);
	if (ctx->ctl)
		dev->ops->reply_error(req, EINVAL);
	else if (!ctx->pipe)
		dev->ops->reply_error(req, ENXIO);
	else if (ctx->pipe->brokered && !continuation)
		relay_io(dev, ctx, req, RINGDEV_CTL_READ, NULL, size);
	else if (ctx->pipe->brokered)
		dev->ops->reply_data(req, NULL, 0); /* one relayed read per system call */
	else
		pipe_read(dev, ctx, req, size, oflags, continuation);
	pthread_mutex_unlock(&dev->lock);
}

void device_write(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size, int oflags)
{
	device_write_piece(dev, ctx, req, buf, size, oflags, false);
}

void device_write_piece(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size,
			int oflags, bool continuation)
{
	pthread_mutex_lock(&dev->lock);
	if (ctx->ctl)
		dev->ops->reply_error(req, EINVAL);
	else if (!ctx->pipe)
		dev->ops->reply_error(req, ENXIO);
	else if (ctx->pipe->brokered)
		relay_io(dev, ctx, req, RINGDEV_CTL_WRITE, buf, size);
	else
		pipe_write(dev, ctx, req, buf, size, oflags, continuation);
	pthread_mutex_unlock(&dev->lock);
}

void device_interrupt(struct device *dev, void *req)
{
	pthread_mutex_lock(&dev->lock);
	struct parked_req *p = parked_find(dev, req);
	if (p) {
		struct pipe *pipe = p->ctx->pipe;
		dev->count.interrupts++;
		parked_end(dev, p, EINTR);
		if (pipe)
			pipe_settle(dev, pipe); /* a writer that left the head may unblock others */
	}
	pthread_mutex_unlock(&dev->lock);
}

unsigned device_poll(struct device *dev, struct open_ctx *ctx, void *ph)
{
	unsigned mask;
	pthread_mutex_lock(&dev->lock);
	if (ctx->ctl) {
		mask = relay_poll_mask(dev);
		if (ph)
			ctx_poll_keep(dev, ctx, NULL, ph, mask);
	} else if (!ctx->pipe) {
		mask = POLLERR;
		if (ph)
			dev->ops->poll_destroy(ph);
	} else {
		mask = pipe_poll_mask(ctx->pipe, ctx);
		if (ph)
			ctx_poll_keep(dev, ctx, &ctx->pipe->pollers, ph, mask);
	}
	pthread_mutex_unlock(&dev->lock);
	return mask;
}

void device_stats_locked(struct device *dev, struct ringdev_stats *s)
{
	memset(s, 0, sizeof(*s));
	s->pipes = pipe_table_count(&dev->table);
	s->opens = dev->handles.count;
	s->parked_reads = dev->parked.count[PARKED_READ];
	s->parked_writes = dev->parked.count[PARKED_WRITE];
	s->parked_other = dev->parked.count[PARKED_OPEN] + dev->parked.count[PARKED_RELAY] +
			  dev->parked.count[PARKED_TRANSACT];
	s->parked_total = s->parked_reads + s->parked_writes + s->parked_other;
	s->pollers = dev->handles.pollers;
	s->memory_used = limit_used(&dev->limits, LIMIT_MEMORY);
	s->memory_limit = dev->cfg.max_memory;
	s->pipes_limit = dev->cfg.max_pipes;
	s->bytes_in = dev->count.bytes_in;
	s->bytes_out = dev->count.bytes_out;
	s->writes = dev->count.writes;
	s->reads = dev->count.reads;
	s->dropped_bytes = dev->count.dropped_bytes;
	s->dropped_messages = dev->count.dropped_messages;
	s->interrupts = dev->count.interrupts;
	s->limit_pipes_hits = dev->limits.total_hits[LIMIT_PIPES];
	s->limit_memory_hits = dev->limits.total_hits[LIMIT_MEMORY] + dev->limits.uid_hits[LIMIT_MEMORY];
	s->pipes_created = dev->count.pipes_created;
	s->pipes_removed = dev->count.pipes_removed;
	s->broker_connected = dev->relay.broker != NULL;
	s->relayed = dev->count.relayed;
	s->relay_rejected = dev->count.relay_rejected;
	s->relay_failed = dev->count.relay_failed;
	s->relay_timeouts = dev->count.relay_timeouts;
	s->relay_cancels = dev->count.relay_cancels;
	s->relay_broker_gone = dev->count.relay_broker_gone;
	s->limit_uid_pipes_hits = dev->limits.uid_hits[LIMIT_PIPES];
	s->limit_uid_opens_hits = dev->limits.uid_hits[LIMIT_OPENS];
	s->limit_parked_hits = dev->limits.total_hits[LIMIT_PARKED] + dev->limits.uid_hits[LIMIT_PARKED];
	s->flushed_bytes = dev->count.flushed_bytes;
}

void device_stats_ext_locked(struct device *dev, struct ringdev_stats_ext *s)
{
	memset(s, 0, sizeof(*s));
	s->relay_cancel_timeouts = dev->count.relay_cancel_timeouts;
	s->restarts = dev->restarts;
	s->last_restart_pause_us = dev->last_pause_us;
}

void device_note_pause(struct device *dev, uint64_t pause_us)
{
	pthread_mutex_lock(&dev->lock);
	dev->last_pause_us = pause_us;
	pthread_mutex_unlock(&dev->lock);
}

void device_ids_after_crash(struct device *dev)
{
	struct timespec ts;
	clock_gettime(CLOCK_BOOTTIME, &ts);
	uint64_t base = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
	pthread_mutex_lock(&dev->lock);
	if (dev->relay.next_id < base)
		dev->relay.next_id = base;
	if (dev->handles.next_id < base)
		dev->handles.next_id = base;
	pthread_mutex_unlock(&dev->lock);
}

void device_stats_ext(struct device *dev, struct ringdev_stats_ext *out)
{
	pthread_mutex_lock(&dev->lock);
	device_stats_ext_locked(dev, out);
	pthread_mutex_unlock(&dev->lock);
}

void device_stats(struct device *dev, struct ringdev_stats *out)
{
	pthread_mutex_lock(&dev->lock);
	device_stats_locked(dev, out);
	pthread_mutex_unlock(&dev->lock);
}
