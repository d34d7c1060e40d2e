/* SPDX-License-Identifier: MIT */
/*
 * rendezvous.c - see rendezvous.h. Three hash tables (pipes by name, handles
 * by number, held requests by id, so a CANCEL finds its request at once) and
 * two FIFO lists per pipe. A pipe's state exists while a handle is on it or a
 * request waits on it, and is freed as soon as neither holds.
 */
#include "rendezvous.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "hashmap.h"
#include "list.h"
#include "name.h"

struct rv_pipe {
	struct hash_node node;          /* rv->pipes, by name_hash */
	char name[RINGDEV_NAME_SIZE];
	struct list_node reads;         /* struct rv_op, oldest first */
	struct list_node writes;
	unsigned handles;
	unsigned writers;
	bool had_writer;                /* a writer came since the state exists */
};

struct rv_handle {
	struct hash_node node;          /* rv->handles, by hash_u64(handle) */
	uint64_t handle;
	struct rv_pipe *pipe;
	bool writer;
};

struct rv_op {
	struct hash_node node;          /* rv->ops, by hash_u64(id) */
	struct list_node link;          /* pipe->reads or pipe->writes */
	struct rv_pipe *pipe;
	uint64_t id;
	uint64_t handle;
	void *request;
	const uint8_t *data;            /* WRITE: the bytes offered */
	size_t size;                    /* READ: wanted; WRITE: offered */
	size_t done;                    /* WRITE: taken so far */
	uint8_t *unread;                /* bytes given back (rv_unread): no request, owns data */
};

struct rendezvous {
	const struct rv_ops *ops;
	void *ctx;
	bool case_sensitive;
	struct hashmap pipes;
	struct hashmap handles;
	struct hashmap held;
	struct rv_counts counts;
};

struct rendezvous *rv_new(const struct rv_ops *ops, void *ctx, bool case_sensitive)
{
	struct rendezvous *rv = calloc(1, sizeof(*rv));

	if (!rv)
		return NULL;
	rv->ops = ops;
	rv->ctx = ctx;
	rv->case_sensitive = case_sensitive;
	return rv;
}

/* ---- pipes ---- */

static uint64_t pipe_hash(const struct rendezvous *rv, const char *name)
{
	return name_hash(name, strlen(name), rv->case_sensitive);
}

static struct rv_pipe *pipe_find(struct rendezvous *rv, const char *name)
{
	uint64_t h = pipe_hash(rv, name);

	for (struct hash_node *n = hashmap_bucket(&rv->pipes, h); n; n = n->next) {
		struct rv_pipe *p = container_of(n, struct rv_pipe, node);
		if (n->hash == h && name_equal(p->name, strlen(p->name), name, strlen(name), rv->case_sensitive))
			return p;
	}
	return NULL;
}

static struct rv_pipe *pipe_get(struct rendezvous *rv, const char *name)
{
	struct rv_pipe *p = pipe_find(rv, name);
	size_t len = strnlen(name, RINGDEV_NAME_MAX);

	if (p)
		return p;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	memcpy(p->name, name, len);
	list_init(&p->reads);
	list_init(&p->writes);
	if (hashmap_insert(&rv->pipes, &p->node, pipe_hash(rv, p->name)) < 0) {
		free(p);
		return NULL;
	}
	rv->counts.pipes++;
	return p;
}

static void pipe_put(struct rendezvous *rv, struct rv_pipe *p)
{
	if (p->handles || !list_empty(&p->reads) || !list_empty(&p->writes))
		return;
	hashmap_remove(&rv->pipes, &p->node);
	rv->counts.pipes--;
	free(p);
}

/* ---- held requests ---- */

static struct rv_op *op_new(struct rendezvous *rv, struct rv_pipe *p, uint64_t handle, uint64_t id,
			    void *request, size_t size)
{
	struct rv_op *op = calloc(1, sizeof(*op));

	if (!op)
		return NULL;
	list_init(&op->link);
	op->pipe = p;
	op->id = id;
	op->handle = handle;
	op->request = request;
	op->size = size;
	if (hashmap_insert(&rv->held, &op->node, hash_u64(id)) < 0) {
		free(op);
		return NULL;
	}
	return op;
}

/* Forget an op that was never queued. */
static void op_discard(struct rendezvous *rv, struct rv_op *op)
{
	hashmap_remove(&rv->held, &op->node);
	free(op);
}

/* Take a queued op off its pipe and forget it. */
static void op_free(struct rendezvous *rv, struct rv_op *op)
{
	list_unlink(&op->link);
	if (op->unread) {
		/* Not a request: in no table. */
		rv->counts.unread_bytes -= op->size - op->done;
		free(op->unread);
		free(op);
		return;
	}
	if (op->data)
		rv->counts.writes_held--;
	else
		rv->counts.reads_held--;
	op_discard(rv, op);
}

static struct rv_op *op_first(struct list_node *list)
{
	struct list_node *n = list_first(list);
	return n ? list_entry(n, struct rv_op, link) : NULL;
}

/* No writer left and none waiting: every waiting reader gets end-of-file. */
static void pipe_eof_check(struct rendezvous *rv, struct rv_pipe *p)
{
	struct rv_op *op;

	if (p->writers || !p->had_writer || !list_empty(&p->writes))
		return;
	while ((op = op_first(&p->reads))) {
		void *request = op->request;
		op_free(rv, op);
		rv->ops->read_done(rv->ctx, request, NULL, 0);
	}
}

/* ---- handles ---- */

static struct rv_handle *handle_find(struct rendezvous *rv, uint64_t handle)
{
	uint64_t h = hash_u64(handle);

	for (struct hash_node *n = hashmap_bucket(&rv->handles, h); n; n = n->next) {
		struct rv_handle *e = container_of(n, struct rv_handle, node);
		if (n->hash == h && e->handle == handle)
			return e;
	}
	return NULL;
}

/* Drop what `handle` has waiting on `p`. */
static void handle_drop_ops(struct rendezvous *rv, struct rv_pipe *p, uint64_t handle)
{
	struct list_node *lists[] = { &p->reads, &p->writes };
	struct list_node *pos, *tmp;

	for (size_t i = 0; i < 2; i++) {
		list_for_each_safe(pos, tmp, lists[i]) {
			struct rv_op *op = list_entry(pos, struct rv_op, link);
			if (op->handle != handle || op->unread)
				continue;
			void *request = op->request;
			op_free(rv, op);
			rv->ops->drop(rv->ctx, request);
		}
	}
}

/* Take the handle off its pipe (the entry itself stays). */
static void handle_leave(struct rendezvous *rv, struct rv_handle *e)
{
	struct rv_pipe *p = e->pipe;

	if (!p)
		return;
	e->pipe = NULL;
	handle_drop_ops(rv, p, e->handle);
	p->handles--;
	if (e->writer) {
		p->writers--;
		pipe_eof_check(rv, p);
	}
	pipe_put(rv, p);
}

static void handle_join(struct rv_handle *e, struct rv_pipe *p, bool writer)
{
	e->pipe = p;
	e->writer = writer;
	p->handles++;
	if (writer) {
		p->writers++;
		p->had_writer = true;
	}
}

int rv_attach(struct rendezvous *rv, uint64_t handle, const char *pipe, bool writer)
{
	struct rv_handle *e = handle_find(rv, handle);
	struct rv_pipe *p = pipe_get(rv, pipe);

	if (!p)
		return -ENOMEM;
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (!e || hashmap_insert(&rv->handles, &e->node, hash_u64(handle)) < 0) {
			free(e);
			pipe_put(rv, p);
			return -ENOMEM;
		}
		e->handle = handle;
		rv->counts.handles++;
	}
	p->handles++; /* keeps p while leaving the old pipe, which may be p */
	handle_leave(rv, e);
	p->handles--;
	handle_join(e, p, writer);
	return 0;
}

void rv_detach(struct rendezvous *rv, uint64_t handle)
{
	struct rv_handle *e = handle_find(rv, handle);

	if (!e)
		return;
	handle_leave(rv, e);
	hashmap_remove(&rv->handles, &e->node);
	rv->counts.handles--;
	free(e);
}

/* The pipe for an operation; a handle the broker never saw attach (a broker
 * started after the app opened) joins it now. */
static struct rv_pipe *op_pipe(struct rendezvous *rv, uint64_t handle, const char *pipe, bool writer)
{
	struct rv_handle *e = handle_find(rv, handle);

	if (!e || !e->pipe || !name_equal(e->pipe->name, strlen(e->pipe->name), pipe, strlen(pipe),
					 rv->case_sensitive)) {
		if (rv_attach(rv, handle, pipe, writer) < 0)
			return NULL;
		e = handle_find(rv, handle);
	} else if (writer && !e->writer) {
		e->writer = true;
		e->pipe->writers++;
		e->pipe->had_writer = true;
	}
	return e->pipe;
}

/* ---- reads and writes ---- */

int rv_read(struct rendezvous *rv, uint64_t handle, uint64_t id, const char *pipe, size_t wanted,
	    bool nonblock, void *request)
{
	struct rv_pipe *p = op_pipe(rv, handle, pipe, false);
	struct rv_op *w;

	if (!p)
		return -ENOMEM;
	if (wanted == 0) {
		rv->ops->read_done(rv->ctx, request, NULL, 0);
		return 0;
	}
	w = op_first(&p->writes);
	if (w) {
		size_t n = w->size - w->done < wanted ? w->size - w->done : wanted;
		rv->ops->read_done(rv->ctx, request, w->data + w->done, n);
		if (w->unread)
			rv->counts.unread_bytes -= n;
		w->done += n;
		if (w->done == w->size) {
			void *writer = w->request;
			size_t size = w->size;
			bool unread = w->unread;
			op_free(rv, w);
			if (!unread)
				rv->ops->write_done(rv->ctx, writer, size);
		}
		return 0;
	}
	if (!p->writers && p->had_writer) {
		rv->ops->read_done(rv->ctx, request, NULL, 0); /* end-of-file */
		return 0;
	}
	if (nonblock) {
		pipe_put(rv, p);
		return -EAGAIN;
	}
	struct rv_op *op = op_new(rv, p, handle, id, request, wanted);
	if (!op)
		return -ENOMEM;
	list_add_tail(&p->reads, &op->link);
	rv->counts.reads_held++;
	return 0;
}

int rv_write(struct rendezvous *rv, uint64_t handle, uint64_t id, const char *pipe, const void *data,
	     size_t size, bool nonblock, void *request)
{
	struct rv_pipe *p = op_pipe(rv, handle, pipe, true);
	const uint8_t *bytes = data;
	struct rv_op *r;
	size_t done = 0;

	if (!p)
		return -ENOMEM;
	/* Allocate first: once a reader was answered there is no way back. */
	struct rv_op *op = size ? op_new(rv, p, handle, id, request, size) : NULL;
	if (size && !op)
		return -ENOMEM;
	while (done < size && list_empty(&p->writes) && (r = op_first(&p->reads))) {
		size_t n = size - done < r->size ? size - done : r->size;
		void *reader = r->request;
		op_free(rv, r);
		rv->ops->read_done(rv->ctx, reader, bytes + done, n);
		done += n;
	}
	if (done == size || (nonblock && done > 0)) {
		if (op)
			op_discard(rv, op);
		rv->ops->write_done(rv->ctx, request, done);
		return 0;
	}
	if (nonblock) {
		op_discard(rv, op);
		return -EAGAIN;
	}
	op->data = bytes;
	op->done = done;
	list_add_tail(&p->writes, &op->link);
	rv->counts.writes_held++;
	return 0;
}

bool rv_cancel(struct rendezvous *rv, uint64_t id)
{
	uint64_t h = hash_u64(id);

	for (struct hash_node *n = hashmap_bucket(&rv->held, h); n; n = n->next) {
		struct rv_op *op = container_of(n, struct rv_op, node);
		if (n->hash != h || op->id != id)
			continue;
		struct rv_pipe *p = op->pipe;
		void *request = op->request;
		size_t done = op->data ? op->done : 0;
		op_free(rv, op);
		if (done)
			rv->ops->write_done(rv->ctx, request, done); /* readers have those bytes */
		else
			rv->ops->drop(rv->ctx, request);
		/* A cancelled write may have been the last thing keeping readers
		 * from end-of-file; a pipe nobody uses goes. */
		pipe_eof_check(rv, p);
		pipe_put(rv, p);
		return true;
	}
	return false;
}

int rv_unread(struct rendezvous *rv, const char *pipe, const void *data, size_t size)
{
	struct rv_pipe *p;
	struct rv_op *op, *r;

	if (size == 0)
		return 0;
	p = pipe_get(rv, pipe);
	op = calloc(1, sizeof(*op));
	uint8_t *copy = malloc(size);
	if (!p || !op || !copy) {
		free(op);
		free(copy);
		if (p)
			pipe_put(rv, p);
		return -ENOMEM;
	}
	memcpy(copy, data, size);
	list_init(&op->link);
	op->pipe = p;
	op->unread = copy;
	op->data = copy;
	op->size = size;
	list_add_tail(p->writes.next, &op->link); /* the head: these bytes came first */
	rv->counts.unread_bytes += size;
	/* Readers may be waiting (no write was there for them). */
	while ((r = op_first(&p->reads)) && !list_empty(&p->writes)) {
		struct rv_op *w = op_first(&p->writes);
		size_t n = w->size - w->done < r->size ? w->size - w->done : r->size;
		void *reader = r->request;
		op_free(rv, r);
		rv->ops->read_done(rv->ctx, reader, w->data + w->done, n);
		if (w->unread)
			rv->counts.unread_bytes -= n;
		w->done += n;
		if (w->done == w->size) {
			void *writer = w->request;
			size_t wsize = w->size;
			bool unread = w->unread;
			op_free(rv, w);
			if (!unread)
				rv->ops->write_done(rv->ctx, writer, wsize);
		}
	}
	return 0;
}

void rv_get_counts(const struct rendezvous *rv, struct rv_counts *out)
{
	*out = rv->counts;
}

/* ---- teardown ---- */

/* Empty a table, freeing each node's object with `free_node`. */
static void table_drain(struct hashmap *map, void (*free_node)(struct hash_node *n))
{
	for (size_t i = 0; i < map->nbuckets; i++) {
		while (map->buckets[i]) {
			struct hash_node *n = map->buckets[i];
			hashmap_remove(map, n);
			free_node(n);
		}
	}
	hashmap_destroy(map);
}

static void free_handle(struct hash_node *n)
{
	free(container_of(n, struct rv_handle, node));
}

static void free_op(struct hash_node *n)
{
	free(container_of(n, struct rv_op, node));
}

static void free_pipe(struct hash_node *n)
{
	free(container_of(n, struct rv_pipe, node));
}

struct rendezvous *rv_free(struct rendezvous *rv)
{
	if (!rv)
		return NULL;
	/* Given-back bytes are in no table but their pipe's queue. */
	for (size_t i = 0; i < rv->pipes.nbuckets; i++) {
		for (struct hash_node *n = rv->pipes.buckets[i]; n; n = n->next) {
			struct rv_pipe *p = container_of(n, struct rv_pipe, node);
			struct list_node *pos, *tmp;
			list_for_each_safe(pos, tmp, &p->writes) {
				struct rv_op *op = list_entry(pos, struct rv_op, link);
				if (op->unread)
					op_free(rv, op);
			}
		}
	}
	table_drain(&rv->handles, free_handle);
	table_drain(&rv->held, free_op);
	table_drain(&rv->pipes, free_pipe);
	free(rv);
	return NULL;
}
