/* SPDX-License-Identifier: MIT */
/*
 * handover.c - the core's whole state as records (state.h), and the core
 * rebuilt from them: what lets a new image of ringdevd take over from the
 * old one with every pipe, handle, waiting request and charge as it was.
 *
 * What is saved is what the kernel and the apps can observe: pipes with
 * their settings, owners, holds, counters and the place of their bytes in
 * the ring arena (the bytes themselves stay where they are, in the memfd
 * the next image maps again); handles with the file handle the kernel
 * holds for them; every parked request with the id the kernel will answer
 * it by (its `wire`), in the order of its queue; the broker's requests with
 * their payloads; the removed-pipe memory; the counters. Charges are not
 * saved: they follow from the objects and are made again as they are
 * restored, past the limits if need be (an image started with smaller
 * limits must not drop what the old one accepted).
 *
 * Restoring answers nothing and wakes nobody: until the frontend serves
 * again, the core only holds what it was given. A state that does not hold
 * together (a handle on a pipe that is not there, two pipes of one name, a
 * ring outside the arena, a request of a kind that does not exist) is
 * refused as a whole; the caller then discards this image without
 * touching the kernel (see frontend/restart.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "device_internal.h"
#include "log.h"
#include "state.h"

enum {
	REC_DEVICE = 1,
	REC_GONE = 2,
	REC_PIPE = 3,
	REC_HANDLE = 4,
	REC_RELAY = 5,
	REC_PARKED = 6,
};

enum { QUEUE_NONE, QUEUE_READ, QUEUE_WRITE, QUEUE_TRANSACT };
enum { RQ_PENDING, RQ_TAKEN };

/* ---- saving ---- */

static void save_cred(struct state_writer *w, const struct cred *c)
{
	sw_u32(w, c->uid);
	sw_u32(w, c->gid);
	sw_u32(w, c->pid);
}

static void save_device(struct device *dev, struct state_writer *w)
{
	sw_begin(w, REC_DEVICE);
	sw_u32(w, dev->fh_gen);
	sw_u64(w, dev->table.next_ino);
	sw_u64(w, dev->relay.next_id);
	sw_u64(w, dev->handles.next_id);
	sw_u64(w, dev->restarts);
	const uint64_t *c = (const uint64_t *)&dev->count;
	size_t n = sizeof(dev->count) / sizeof(uint64_t);
	sw_u32(w, (uint32_t)n);
	for (size_t i = 0; i < n; i++)
		sw_u64(w, c[i]);
	sw_u32(w, LIMIT_KINDS);
	for (int k = 0; k < LIMIT_KINDS; k++) {
		sw_u64(w, dev->limits.total_hits[k]);
		sw_u64(w, dev->limits.uid_hits[k]);
	}
	sw_end(w);
	for (unsigned i = 0; i < PIPE_TABLE_GONE; i++) {
		/* Oldest first, so that restoring them in order keeps the age. */
		const struct pipe_gone *g = &dev->table.gone[(dev->table.gone_next + i) % PIPE_TABLE_GONE];
		if (!g->ino)
			continue;
		sw_begin(w, REC_GONE);
		sw_u64(w, g->ino);
		sw_u8(w, g->unlinked);
		sw_u8(w, g->brokered);
		sw_u32(w, g->kind);
		sw_u32(w, g->policy);
		sw_u32(w, g->mode);
		sw_u32(w, g->uid);
		sw_u32(w, g->gid);
		sw_u64(w, g->capacity);
		sw_bytes(w, g->name, strnlen(g->name, sizeof(g->name) - 1));
		sw_end(w);
	}
}

static void save_parked(struct device *dev, struct state_writer *w, const struct parked_req *p, uint32_t queue)
{
	sw_begin(w, REC_PARKED);
	sw_u32(w, p->ops->kind);
	sw_u64(w, p->ctx->id);
	sw_u64(w, p->wire);
	sw_u32(w, queue);
	switch (p->ops->kind) {
	case PARKED_READ:
		sw_u64(w, p->u.read.size);
		break;
	case PARKED_WRITE:
		sw_u64(w, p->u.write.total);
		sw_u64(w, p->u.write.done);
		sw_u8(w, p->u.write.all_or_nothing);
		sw_bytes(w, p->u.write.data, p->u.write.total);
		break;
	case PARKED_OPEN:
	case PARKED_RELAY:
		sw_u64(w, p->u.relay.relay ? p->u.relay.relay->msg.id : 0);
		sw_u64(w, p->u.relay.hold_ino);
		break;
	case PARKED_TRANSACT:
		sw_u64(w, p->u.transact.deadline_ns);
		sw_bytes(w, p->u.transact.t, sizeof(*p->u.transact.t));
		break;
	}
	sw_end(w);
	(void)dev;
}

static void save_pipe(struct state_writer *w, const struct pipe *p)
{
	sw_begin(w, REC_PIPE);
	sw_u64(w, p->ino);
	sw_bytes(w, p->name, p->name_len);
	sw_u32(w, p->kind);
	sw_u32(w, p->policy);
	sw_u32(w, p->mode);
	sw_u32(w, p->uid);
	sw_u32(w, p->gid);
	uint32_t flags = (uint32_t)p->persistent | (uint32_t)p->brokered << 1 | (uint32_t)p->linked << 2 |
			 (uint32_t)p->had_writer << 3 | (uint32_t)p->hold_void << 4 | (uint32_t)p->provisional << 5 |
			 (uint32_t)p->name_removed << 6;
	sw_u32(w, flags);
	sw_u32(w, p->hold_uid);
	sw_u64(w, p->hold_deadline_ns);
	sw_u8(w, p->ring.buf != NULL);
	sw_u64(w, p->ring.off);
	sw_u64(w, p->ring.capacity);
	sw_u64(w, p->ring.start);
	sw_u64(w, p->ring.used);
	sw_u64(w, p->allocated);
	sw_u64(w, p->queued_messages);
	sw_u64(w, p->bytes_in);
	sw_u64(w, p->bytes_out);
	sw_u64(w, p->writes);
	sw_u64(w, p->reads);
	sw_u64(w, p->dropped_bytes);
	sw_u64(w, p->dropped_messages);
	const struct timespec *ts[3] = { &p->atime, &p->mtime, &p->ctime };
	for (int i = 0; i < 3; i++) {
		sw_u64(w, (uint64_t)ts[i]->tv_sec);
		sw_u64(w, (uint64_t)ts[i]->tv_nsec);
	}
	sw_end(w);
}

static void save_handle(struct device *dev, struct state_writer *w, const struct open_ctx *ctx)
{
	sw_begin(w, REC_HANDLE);
	sw_u64(w, ctx->id);
	sw_u64(w, ctx->fh);
	sw_u64(w, ctx->pipe ? ctx->pipe->ino : 0);
	sw_u32(w, (uint32_t)ctx->oflags);
	uint32_t flags = (uint32_t)ctx->reader | (uint32_t)ctx->writer << 1 | (uint32_t)ctx->ctl << 2 |
			 (uint32_t)ctx->broker_knows << 3 | (uint32_t)ctx->noted << 4 |
			 (uint32_t)(dev->relay.broker == ctx) << 5;
	sw_u32(w, flags);
	save_cred(w, &ctx->cred);
	sw_u64(w, ctx->bytes_in);
	sw_u64(w, ctx->bytes_out);
	sw_u8(w, ctx->ph != NULL);
	sw_u64(w, ctx->ph ? dev->ops->poll_wire(ctx->ph) : 0);
	sw_u32(w, ctx->poll_mask);
	sw_u8(w, ctx->ph && list_linked(&ctx->poll_link));
	sw_end(w);
}

static void save_relay(struct state_writer *w, const struct relay_req *r, uint32_t queue)
{
	sw_begin(w, REC_RELAY);
	sw_u32(w, queue);
	sw_u32(w, r->state);
	sw_bytes(w, &r->msg, sizeof(r->msg));
	sw_bytes(w, r->payload, r->payload ? r->msg.size : 0);
	sw_u64(w, r->staged_limit);
	sw_u8(w, r->staged != NULL);
	if (r->staged) {
		sw_bytes(w, r->staged, r->staged_limit);
		sw_bytes(w, r->staged_map, (r->staged_limit + 63) / 64 * sizeof(uint64_t));
	}
	sw_u64(w, r->charged);
	sw_u64(w, r->deadline_ns);
	save_cred(w, &r->cred);
	sw_u8(w, r->default_pipe);
	sw_u64(w, r->open_ino);
	sw_u8(w, r->takes_hold);
	sw_u32(w, r->kind == &open_relay_kind ? 1 : r->kind == &handle_relay_attach ? 2
			: r->kind == &create_relay_kind ? 3 : 0);
	sw_end(w);
}

static int pipe_by_ino(const void *a, const void *b)
{
	uint64_t x = (*(struct pipe *const *)a)->ino, y = (*(struct pipe *const *)b)->ino;
	return x < y ? -1 : x > y;
}

static void collect(struct hash_node *n, void *data)
{
	struct pipe ***cursor = data;
	**cursor = container_of(n, struct pipe, ino_node);
	(*cursor)++;
}

int device_save(struct device *dev, struct state_writer *w)
{
	pthread_mutex_lock(&dev->lock);
	size_t n = pipe_table_count(&dev->table);
	struct pipe **all = calloc(n ? n : 1, sizeof(struct pipe *));
	if (!all) {
		pthread_mutex_unlock(&dev->lock);
		return -ENOMEM;
	}
	struct pipe **cursor = all;
	hashmap_for_each(&dev->table.by_ino, collect, &cursor);
	qsort(all, n, sizeof(struct pipe *), pipe_by_ino);

	save_device(dev, w);
	for (size_t i = 0; i < n; i++)
		save_pipe(w, all[i]);
	struct list_node *pos;
	list_for_each(pos, &dev->handles.list)
		save_handle(dev, w, list_entry(pos, struct open_ctx, dev_link));
	/* Requests for the broker before the requests waiting on them. */
	list_for_each(pos, &dev->relay.pending)
		save_relay(w, list_entry(pos, struct relay_req, queue_link), RQ_PENDING);
	list_for_each(pos, &dev->relay.taken)
		save_relay(w, list_entry(pos, struct relay_req, queue_link), RQ_TAKEN);
	/* Each queue in its order; then what waits on no queue (opens and
	 * operations waiting for the broker), handle by handle. */
	for (size_t i = 0; i < n; i++) {
		list_for_each(pos, &all[i]->readq)
			save_parked(dev, w, list_entry(pos, struct parked_req, queue_link), QUEUE_READ);
		list_for_each(pos, &all[i]->writeq)
			save_parked(dev, w, list_entry(pos, struct parked_req, queue_link), QUEUE_WRITE);
	}
	list_for_each(pos, &dev->relay.transacts)
		save_parked(dev, w, list_entry(pos, struct parked_req, queue_link), QUEUE_TRANSACT);
	struct list_node *h;
	list_for_each(h, &dev->handles.list) {
		struct open_ctx *ctx = list_entry(h, struct open_ctx, dev_link);
		list_for_each(pos, &ctx->parked) {
			struct parked_req *p = list_entry(pos, struct parked_req, ctx_link);
			if (!list_linked(&p->queue_link))
				save_parked(dev, w, p, QUEUE_NONE);
		}
	}
	free(all);
	pthread_mutex_unlock(&dev->lock);
	return w->err;
}

/* ---- restoring ---- */

struct restore {
	struct device *dev;
	struct state_reader *r;
	struct hashmap handles;       /* restored handles by id (a local index) */
	struct handle_ref *refs;
	bool device_seen;
	uint64_t next_ino, relay_next_id, handles_next_id;
	uint32_t fh_gen;
};

struct handle_ref {
	struct hash_node node;
	struct open_ctx *ctx;
	struct handle_ref *next;      /* restore.refs: all of them, to free */
};

static int bad(struct restore *rs, const char *why)
{
	if (!rs->r->problem)
		rs->r->problem = why;
	return -EINVAL;
}

static struct cred load_cred(struct state_record *rec)
{
	struct cred c;
	c.uid = sr_u32(rec);
	c.gid = sr_u32(rec);
	c.pid = sr_u32(rec);
	return c;
}

static int load_name(struct state_record *rec, char *out, size_t *len)
{
	size_t n;
	const uint8_t *s = sr_bytes(rec, RINGDEV_NAME_SIZE - 1, &n);
	if (!s)
		return -EINVAL;
	memcpy(out, s, n);
	out[n] = '\0';
	*len = n;
	return memchr(out, '\0', n) ? -EINVAL : 0;
}

static int restore_device(struct restore *rs, struct state_record *rec)
{
	struct device *dev = rs->dev;
	rs->fh_gen = sr_u32(rec);
	rs->next_ino = sr_u64(rec);
	rs->relay_next_id = sr_u64(rec);
	rs->handles_next_id = sr_u64(rec);
	dev->restarts = sr_u64(rec);
	uint64_t *c = (uint64_t *)&dev->count;
	size_t mine = sizeof(dev->count) / sizeof(uint64_t);
	uint32_t n = sr_u32(rec);
	for (uint32_t i = 0; i < n && !rec->bad; i++) {
		uint64_t v = sr_u64(rec);
		if (i < mine)
			c[i] = v; /* counters an older image did not have start at 0 */
	}
	uint32_t kinds = sr_u32(rec);
	for (uint32_t k = 0; k < kinds && !rec->bad; k++) {
		uint64_t t = sr_u64(rec), u = sr_u64(rec);
		if (k < LIMIT_KINDS) {
			dev->limits.total_hits[k] = t;
			dev->limits.uid_hits[k] = u;
		}
	}
	if (!sr_done(rec) || rs->fh_gen > 255 || rs->next_ino < 16 || !rs->relay_next_id || !rs->handles_next_id)
		return bad(rs, "the device record is malformed");
	rs->device_seen = true;
	return 0;
}

static int restore_gone(struct restore *rs, struct state_record *rec)
{
	struct pipe_table *t = &rs->dev->table;
	struct pipe_gone g = { 0 };
	size_t len;
	g.ino = sr_u64(rec);
	g.unlinked = sr_u8(rec);
	g.brokered = sr_u8(rec);
	g.kind = sr_u32(rec);
	g.policy = sr_u32(rec);
	g.mode = sr_u32(rec);
	g.uid = sr_u32(rec);
	g.gid = sr_u32(rec);
	g.capacity = sr_u64(rec);
	if (load_name(rec, g.name, &len) < 0 || !sr_done(rec) || !g.ino || !settings_kind_ok(g.kind) ||
	    !settings_policy_ok(g.policy) || !settings_mode_ok(g.mode) || !settings_capacity_ok(g.capacity))
		return bad(rs, "a removed-pipe record is malformed");
	t->gone[t->gone_next] = g;
	t->gone_next = (t->gone_next + 1) % PIPE_TABLE_GONE;
	return 0;
}

static int restore_pipe(struct restore *rs, struct state_record *rec)
{
	struct device *dev = rs->dev;
	struct pipe *p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	list_init(&p->opens);
	list_init(&p->readq);
	list_init(&p->writeq);
	list_init(&p->pollers);
	list_init(&p->hold_link);
	p->ino = sr_u64(rec);
	int name_ok = load_name(rec, p->name, &p->name_len);
	p->kind = sr_u32(rec);
	p->policy = sr_u32(rec);
	p->mode = sr_u32(rec);
	p->uid = sr_u32(rec);
	p->gid = sr_u32(rec);
	uint32_t flags = sr_u32(rec);
	p->hold_uid = sr_u32(rec);
	p->hold_deadline_ns = sr_u64(rec);
	bool has_buf = sr_u8(rec);
	uint64_t off = sr_u64(rec), cap = sr_u64(rec), start = sr_u64(rec), used = sr_u64(rec);
	p->allocated = sr_u64(rec);
	p->queued_messages = sr_u64(rec);
	p->bytes_in = sr_u64(rec);
	p->bytes_out = sr_u64(rec);
	p->writes = sr_u64(rec);
	p->reads = sr_u64(rec);
	p->dropped_bytes = sr_u64(rec);
	p->dropped_messages = sr_u64(rec);
	struct timespec *ts[3] = { &p->atime, &p->mtime, &p->ctime };
	for (int i = 0; i < 3; i++) {
		ts[i]->tv_sec = (time_t)sr_u64(rec);
		ts[i]->tv_nsec = (long)sr_u64(rec);
	}
	p->persistent = flags & 1;
	p->brokered = flags & 2;
	bool linked = flags & 4;
	p->had_writer = flags & 8;
	p->hold_void = flags & 16;
	p->provisional = flags & 32;
	p->name_removed = flags & 64;
	const char *why = NULL;
	if (name_ok < 0 || !sr_done(rec) || flags >> 7)
		why = "a pipe record is malformed";
	else if (p->ino < 16 || p->ino >= rs->next_ino || pipe_table_find_ino(&dev->table, p->ino))
		why = "a pipe's inode number is out of range or taken twice";
	else if (!settings_kind_ok(p->kind) || !settings_policy_ok(p->policy) || !settings_mode_ok(p->mode) ||
		 !settings_capacity_ok(cap))
		why = "a pipe's settings are out of range";
	else if (used > cap || (cap && start >= cap) || (has_buf ? p->allocated != cap : used != 0 || p->allocated))
		why = "a pipe's ring does not hold together";
	else if (p->kind != RINGDEV_KIND_MESSAGE && p->queued_messages)
		why = "a stream pipe counts messages";
	if (why) {
		free(p);
		return bad(rs, why);
	}
	p->ring.capacity = (size_t)cap;
	p->ring.arena = dev->arena;
	if (has_buf) {
		int e = arena_reserve(dev->arena, off, cap);
		if (e == 0)
			e = ring_adopt(&p->ring, dev->arena, off, (size_t)cap, (size_t)start, (size_t)used);
		if (e < 0) {
			free(p);
			return bad(rs, "a pipe's ring lies outside the arena or over another's");
		}
	}
	/* Messages: every length must lie inside what is queued. */
	if (p->kind == RINGDEV_KIND_MESSAGE) {
		uint64_t at = 0, count = 0;
		while (at < used && !why) {
			uint32_t len;
			if (used - at < RINGDEV_MESSAGE_HEADER) {
				why = "a message pipe's ring is cut inside a message";
				break;
			}
			ring_peek(&p->ring, (size_t)at, &len, sizeof(len));
			if (len > used - at - RINGDEV_MESSAGE_HEADER)
				why = "a message pipe's ring is cut inside a message";
			at += RINGDEV_MESSAGE_HEADER + (uint64_t)len;
			count++;
		}
		if (!why && count != p->queued_messages)
			why = "a message pipe's count does not match its ring";
	}
	if (!why && hashmap_insert(&dev->table.by_ino, &p->ino_node, hash_u64(p->ino)) < 0)
		why = "out of memory";
	if (why) {
		/* Its extent stays reserved: a refused state is never cleaned
		 * up in the daemon (the old image still uses the arena). */
		free(p);
		return bad(rs, why);
	}
	if (linked) {
		int e = pipe_table_link(&dev->table, p);
		if (e < 0) {
			/* Freed with the rest: the discard walks the table. */
			return bad(rs, e == -EEXIST ? "two pipes have one name" : "out of memory");
		}
	}
	if (p->hold_deadline_ns)
		list_add_tail(&dev->table.held, &p->hold_link);
	if (limit_charge_force(&dev->limits, LIMIT_PIPES, p->uid, 1) < 0)
		return bad(rs, "out of memory");
	if (limit_charge_force(&dev->limits, LIMIT_MEMORY, p->uid, p->allocated) < 0) {
		p->allocated = 0; /* what pipe_destroy gives back must be what was charged */
		return bad(rs, "out of memory");
	}
	return 0;
}

static struct open_ctx *find_handle(struct restore *rs, uint64_t id)
{
	for (struct hash_node *n = hashmap_bucket(&rs->handles, hash_u64(id)); n; n = n->next) {
		struct handle_ref *h = container_of(n, struct handle_ref, node);
		if (h->ctx->id == id)
			return h->ctx;
	}
	return NULL;
}

static int restore_handle(struct restore *rs, struct state_record *rec)
{
	struct device *dev = rs->dev;
	uint64_t id = sr_u64(rec), fh = sr_u64(rec), ino = sr_u64(rec);
	int oflags = (int)sr_u32(rec);
	uint32_t flags = sr_u32(rec);
	struct cred cred = load_cred(rec);
	uint64_t in = sr_u64(rec), out = sr_u64(rec);
	bool has_ph = sr_u8(rec);
	uint64_t kh = sr_u64(rec);
	uint32_t mask = sr_u32(rec);
	bool on_pollers = sr_u8(rec);
	if (!sr_done(rec) || flags >> 6 || !id || id >= rs->handles_next_id || !fh)
		return bad(rs, "a handle record is malformed");
	if (find_handle(rs, id) || device_ctx_from_fh_locked(dev, fh))
		return bad(rs, "two handles have one id");
	struct pipe *p = NULL;
	if (ino && !(p = pipe_table_find_ino(&dev->table, ino)))
		return bad(rs, "a handle is on a pipe that is not there");
	bool ctl = flags & 4, broker = flags & 32;
	if ((broker && (!ctl || dev->relay.broker)) || (ctl && p) || (on_pollers && !p) || (on_pollers && !has_ph))
		return bad(rs, "a handle's links do not hold together");
	struct open_ctx *ctx = calloc(1, sizeof(*ctx));
	struct handle_ref *ref = calloc(1, sizeof(*ref));
	if (!ctx || !ref || hashmap_insert(&rs->handles, &ref->node, hash_u64(id)) < 0) {
		free(ctx);
		free(ref);
		return bad(rs, "out of memory");
	}
	ref->ctx = ctx;
	ref->next = rs->refs;
	rs->refs = ref;
	list_init(&ctx->pipe_link);
	list_init(&ctx->parked);
	list_init(&ctx->poll_link);
	ctx->id = id;
	ctx->oflags = oflags;
	ctx->reader = flags & 1;
	ctx->writer = flags & 2;
	ctx->ctl = ctl;
	ctx->broker_knows = flags & 8;
	ctx->noted = flags & 16;
	ctx->cred = cred;
	ctx->bytes_in = in;
	ctx->bytes_out = out;
	list_add_tail(&dev->handles.list, &ctx->dev_link);
	dev->handles.count++;
	if (device_fh_adopt(dev, ctx, fh) < 0)
		return bad(rs, "out of memory");
	if (!ctl && limit_charge_force(&dev->limits, LIMIT_OPENS, cred.uid, 1) < 0) {
		ctx->ctl = true; /* so that its release gives back no charge */
		return bad(rs, "out of memory");
	}
	if (broker)
		dev->relay.broker = ctx;
	if (p) {
		list_add_tail(&p->opens, &ctx->pipe_link);
		ctx->pipe = p;
		p->handles++;
		p->readers += ctx->reader;
		p->writers += ctx->writer;
	}
	if (has_ph) {
		void *ph = dev->ops->poll_restore(kh);
		if (!ph)
			return bad(rs, "out of memory");
		ctx_poll_keep(dev, ctx, on_pollers ? &p->pollers : NULL, ph, mask);
	}
	return 0;
}

static int restore_relay(struct restore *rs, struct state_record *rec)
{
	struct device *dev = rs->dev;
	struct relay_req *r = calloc(1, sizeof(*r));
	if (!r)
		return bad(rs, "out of memory");
	list_init(&r->queue_link);
	uint32_t queue = sr_u32(rec);
	r->state = sr_u32(rec);
	size_t n;
	const uint8_t *msg = sr_bytes(rec, sizeof(r->msg), &n);
	if (msg && n == sizeof(r->msg))
		memcpy(&r->msg, msg, n);
	else
		rec->bad = true;
	const uint8_t *payload = sr_bytes(rec, UINT32_MAX, &n);
	size_t payload_len = n;
	r->staged_limit = sr_u64(rec);
	bool staged = sr_u8(rec);
	const uint8_t *st = NULL, *map = NULL;
	size_t st_len = 0, map_len = 0;
	if (staged) {
		st = sr_bytes(rec, SIZE_MAX, &st_len);
		map = sr_bytes(rec, SIZE_MAX, &map_len);
	}
	r->charged = sr_u64(rec);
	r->deadline_ns = sr_u64(rec);
	r->cred = load_cred(rec);
	r->default_pipe = sr_u8(rec);
	r->open_ino = sr_u64(rec);
	r->takes_hold = sr_u8(rec);
	uint32_t kind = sr_u32(rec);
	const char *why = NULL;
	if (!sr_done(rec) || queue > RQ_TAKEN || r->state > RELAY_CANCELLING || kind > 3 || (!payload && payload_len))
		why = "a broker request record is malformed";
	else if (r->msg.type < RINGDEV_CTL_OPEN || r->msg.type > RINGDEV_CTL_RELEASE || !r->msg.id ||
		 r->msg.id >= rs->relay_next_id || (relay_is_notice(r) ? r->state != RELAY_PENDING || queue
					       : relay_find(dev, r->msg.id) != NULL))
		why = "a broker request's id or type is out of range";
	else if ((queue == RQ_PENDING) != (r->state == RELAY_PENDING))
		why = "a broker request's state does not match its queue";
	else if ((payload_len && payload_len != r->msg.size) ||
		 (staged && (st_len != r->staged_limit || map_len != (r->staged_limit + 63) / 64 * sizeof(uint64_t))))
		why = "a broker request's payload does not match its size";
	else if (r->msg.inline_size > RINGDEV_CTL_INLINE)
		why = "a broker request's inline size is out of range";
	if (why) {
		free(r);
		return bad(rs, why);
	}
	r->kind = kind == 1 ? &open_relay_kind : kind == 2 ? &handle_relay_attach : kind == 3 ? &create_relay_kind : NULL;
	if (payload_len && !(r->payload = malloc(payload_len)))
		why = "out of memory";
	if (!why && staged && (!(r->staged = malloc(st_len ? st_len : 1)) || !(r->staged_map = malloc(map_len ? map_len : 1))))
		why = "out of memory";
	if (!why && !relay_is_notice(r) && hashmap_insert(&dev->relay.ids, &r->id_node, hash_u64(r->msg.id)) < 0)
		why = "out of memory";
	if (why) {
		free(r->payload);
		free(r->staged);
		free(r->staged_map);
		free(r);
		return bad(rs, why);
	}
	if (payload_len)
		memcpy(r->payload, payload, payload_len);
	if (staged) {
		memcpy(r->staged, st, st_len);
		memcpy(r->staged_map, map, map_len);
	}
	uint64_t charged = r->charged;
	r->charged = 0;
	list_add_tail(queue == RQ_PENDING ? &dev->relay.pending : &dev->relay.taken, &r->queue_link);
	if (limit_charge_force(&dev->limits, LIMIT_MEMORY, r->cred.uid, charged) < 0)
		return bad(rs, "out of memory");
	r->charged = charged;
	return 0;
}

static const struct parked_ops *parked_kind_ops(uint32_t kind)
{
	switch (kind) {
	case PARKED_READ:
		return &pipe_parked_read;
	case PARKED_WRITE:
		return &pipe_parked_write;
	case PARKED_OPEN:
		return &open_parked;
	case PARKED_RELAY:
		return &relay_parked;
	case PARKED_TRANSACT:
		return &relay_parked_transact;
	default:
		return NULL;
	}
}

static int restore_parked(struct restore *rs, struct state_record *rec)
{
	struct device *dev = rs->dev;
	const struct parked_ops *ops = parked_kind_ops(sr_u32(rec));
	struct open_ctx *ctx = find_handle(rs, sr_u64(rec));
	uint64_t wire = sr_u64(rec);
	uint32_t queue = sr_u32(rec);
	if (rec->bad || !ops || !ctx)
		return bad(rs, "a waiting request's kind or handle is not there");
	/* Where each kind waits: reads and writes on their pipe's queue, a
	 * broker's TRANSACT on the relay's, the rest on none. */
	uint32_t want = ops->kind == PARKED_READ ? QUEUE_READ : ops->kind == PARKED_WRITE ? QUEUE_WRITE
			: ops->kind == PARKED_TRANSACT ? QUEUE_TRANSACT : QUEUE_NONE;
	if (queue != want || (want <= QUEUE_WRITE && want && !ctx->pipe) || (want == QUEUE_TRANSACT && !ctx->ctl))
		return bad(rs, "a waiting request is on the wrong queue");
	void *req = dev->ops->req_restore(wire);
	if (!req)
		return bad(rs, "out of memory");
	if (parked_find(dev, req))
		return bad(rs, "two waiting requests have one id");
	int err;
	struct parked_req *p = parked_new_restored(dev, ops, req, ctx, wire, &err);
	if (!p)
		return bad(rs, "out of memory");
	switch (ops->kind) {
	case PARKED_READ:
		p->u.read.size = (size_t)sr_u64(rec);
		break;
	case PARKED_WRITE: {
		uint64_t total = sr_u64(rec), done = sr_u64(rec);
		p->u.write.all_or_nothing = sr_u8(rec);
		size_t n;
		const uint8_t *d = sr_bytes(rec, UINT32_MAX, &n);
		if (!d || n != total || done > total || !total)
			return bad(rs, "a waiting write's data does not match its size");
		if (!(p->u.write.data = malloc(n)) || limit_charge_force(&dev->limits, LIMIT_MEMORY, ctx->cred.uid, total) < 0)
			return bad(rs, "out of memory");
		memcpy(p->u.write.data, d, n);
		p->u.write.total = (size_t)total;
		p->u.write.done = (size_t)done;
		break;
	}
	case PARKED_OPEN:
	case PARKED_RELAY: {
		uint64_t id = sr_u64(rec);
		p->u.relay.hold_ino = sr_u64(rec);
		struct relay_req *r = id ? relay_find(dev, id) : NULL;
		if (id && (!r || r->parked))
			return bad(rs, "a waiting request's broker request is not there");
		if (r) {
			r->parked = p;
			p->u.relay.relay = r;
		}
		break;
	}
	case PARKED_TRANSACT: {
		p->u.transact.deadline_ns = sr_u64(rec);
		size_t n;
		const uint8_t *t = sr_bytes(rec, sizeof(struct ringdev_ctl_transact), &n);
		if (!t || n != sizeof(struct ringdev_ctl_transact))
			return bad(rs, "a broker's waiting TRANSACT is malformed");
		if (!(p->u.transact.t = malloc(n)))
			return bad(rs, "out of memory");
		memcpy(p->u.transact.t, t, n);
		if (p->u.transact.t->max_requests > RINGDEV_CTL_BATCH)
			return bad(rs, "a broker's waiting TRANSACT is malformed");
		break;
	}
	}
	if (!sr_done(rec))
		return bad(rs, "a waiting request record is malformed");
	if (want == QUEUE_READ)
		list_add_tail(&ctx->pipe->readq, &p->queue_link);
	else if (want == QUEUE_WRITE)
		list_add_tail(&ctx->pipe->writeq, &p->queue_link);
	else if (want == QUEUE_TRANSACT)
		list_add_tail(&dev->relay.transacts, &p->queue_link);
	return 0;
}

/* Every restored object must hang together as the old image had it. */
static int restore_check(struct restore *rs)
{
	struct device *dev = rs->dev;
	struct list_node *pos;
	list_for_each(pos, &dev->relay.pending) {
		struct relay_req *r = list_entry(pos, struct relay_req, queue_link);
		if (!relay_is_notice(r) && !r->parked)
			return bad(rs, "a broker request waits for no app");
	}
	list_for_each(pos, &dev->relay.taken) {
		struct relay_req *r = list_entry(pos, struct relay_req, queue_link);
		if (!r->parked)
			return bad(rs, "a broker request waits for no app");
	}
	return 0;
}

static void forget_ring(struct hash_node *n, void *data)
{
	struct pipe *p = container_of(n, struct pipe, ino_node);
	p->ring.arena = data;
	p->ring.buf = NULL;
	p->ring.off = 0;
	p->ring.start = 0;
	p->ring.used = 0;
}

/* A refused state's rings are the old image's, which serves on from the
 * same memfd: giving their extents back (pipe_destroy, device_free) would
 * punch its queued bytes out. The device forgets them and takes an empty
 * arena of its own, so that freeing it touches nothing of the old image's;
 * the memfd stays open at the same fd number and is the caller's again
 * (the frontend hands that number back to the old program; a test closes
 * it). If that cannot be done the device keeps the arena, and must then
 * never be freed (see device.h). */
static void forget_rings(struct device *dev)
{
	struct arena *fresh;
	int fd = arena_fd(dev->arena);
	int keep = dup(fd);
	if (keep < 0)
		return;
	if (arena_create(arena_size(dev->arena), &fresh) < 0) {
		close(keep);
		return;
	}
	hashmap_for_each(&dev->table.by_ino, forget_ring, fresh);
	arena_destroy(dev->arena); /* closes fd: unmaps, punches nothing */
	dev->arena = fresh;
	if (dup3(keep, fd, O_CLOEXEC) < 0)
		log_error("handover: cannot keep the ring arena's fd %d: %s", fd, strerror(errno));
	close(keep);
}

int device_restore(struct device *dev, struct state_reader *r,
		   int (*other)(void *arg, struct state_record *rec), void *arg)
{
	struct restore rs = { .dev = dev, .r = r, .handles = HASHMAP_INIT };
	struct state_record rec;
	int e = 0, k = 0;
	pthread_mutex_lock(&dev->lock);
	if (pipe_table_count(&dev->table) || dev->handles.count)
		e = bad(&rs, "the device is not empty");
	while (e == 0 && (k = sr_next(r, &rec)) > 0) {
		if (!rs.device_seen && rec.type != REC_DEVICE && rec.type < STATE_FRONTEND_RECORDS) {
			e = bad(&rs, "the state does not start with its device record");
			break;
		}
		switch (rec.type) {
		case REC_DEVICE:
			e = rs.device_seen ? bad(&rs, "two device records") : restore_device(&rs, &rec);
			break;
		case REC_GONE:
			e = restore_gone(&rs, &rec);
			break;
		case REC_PIPE:
			e = restore_pipe(&rs, &rec);
			break;
		case REC_HANDLE:
			e = restore_handle(&rs, &rec);
			break;
		case REC_RELAY:
			e = restore_relay(&rs, &rec);
			break;
		case REC_PARKED:
			e = restore_parked(&rs, &rec);
			break;
		default:
			e = rec.type >= STATE_FRONTEND_RECORDS && other ? other(arg, &rec)
									: bad(&rs, "a record of a type this ringdevd does not know");
			if (e < 0 && !r->problem)
				r->problem = "a frontend record is malformed";
		}
	}
	if (e == 0 && k < 0)
		e = -EINVAL;
	if (e == 0 && !rs.device_seen)
		e = bad(&rs, "the state has no device record");
	if (e == 0)
		e = restore_check(&rs);
	if (e == 0) {
		dev->table.next_ino = rs.next_ino;
		dev->relay.next_id = rs.relay_next_id;
		dev->handles.next_id = rs.handles_next_id;
		e = device_fh_next_gen(dev, rs.fh_gen);
		if (e < 0)
			bad(&rs, "every handle generation is in use");
	}
	while (rs.refs) {
		struct handle_ref *next = rs.refs->next;
		hashmap_remove(&rs.handles, &rs.refs->node);
		free(rs.refs);
		rs.refs = next;
	}
	hashmap_destroy(&rs.handles);
	if (e == 0) {
		dev->restarts++;
		timer_kick(dev);
	} else {
		forget_rings(dev);
	}
	pthread_mutex_unlock(&dev->lock);
	return e;
}
