/* SPDX-License-Identifier: MIT */
/*
 * pipe_table.c - the named pipes of a device: a hash by folded name (what
 * attaches look up) and a hash by inode number (what the FUSE mount refers
 * to). An unlinked pipe leaves the name hash but stays in the inode hash
 * while its handles live. Inode numbers are never reused (64-bit counter).
 * The names of the last pipes removed are remembered by inode, in a fixed
 * ring (no memory grows with what users do), for opens that race a removal.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "device_internal.h"
#include "name.h"

void pipe_table_init(struct pipe_table *t, bool case_sensitive)
{
	/* Inodes below 16 are the FUSE mount's own (root 1, control node 2). */
	*t = (struct pipe_table){ .by_name = HASHMAP_INIT, .by_ino = HASHMAP_INIT, .next_ino = 16,
				  .case_sensitive = case_sensitive };
	list_init(&t->held);
}

void pipe_table_deinit(struct pipe_table *t)
{
	assert(t->by_name.count == 0 && t->by_ino.count == 0 && list_empty(&t->held));
	hashmap_destroy(&t->by_name);
	hashmap_destroy(&t->by_ino);
}

struct pipe *pipe_table_find(struct pipe_table *t, const char *name, size_t len)
{
	uint64_t h = name_hash(name, len, t->case_sensitive);
	for (struct hash_node *n = hashmap_bucket(&t->by_name, h); n; n = n->next) {
		struct pipe *p = container_of(n, struct pipe, name_node);
		if (n->hash == h && name_equal(p->name, p->name_len, name, len, t->case_sensitive))
			return p;
	}
	return NULL;
}

struct pipe *pipe_table_find_ino(struct pipe_table *t, uint64_t ino)
{
	uint64_t h = hash_u64(ino);
	for (struct hash_node *n = hashmap_bucket(&t->by_ino, h); n; n = n->next) {
		struct pipe *p = container_of(n, struct pipe, ino_node);
		if (p->ino == ino)
			return p;
	}
	return NULL;
}

int pipe_table_add(struct pipe_table *t, struct pipe *p)
{
	p->ino = t->next_ino++;
	int r = hashmap_insert(&t->by_name, &p->name_node, name_hash(p->name, p->name_len, t->case_sensitive));
	if (r < 0)
		return r;
	r = hashmap_insert(&t->by_ino, &p->ino_node, hash_u64(p->ino));
	if (r < 0) {
		hashmap_remove(&t->by_name, &p->name_node);
		return r;
	}
	p->linked = true;
	return 0;
}

void pipe_table_unlink(struct pipe_table *t, struct pipe *p)
{
	if (!p->linked)
		return;
	hashmap_remove(&t->by_name, &p->name_node);
	p->linked = false;
}

int pipe_table_link(struct pipe_table *t, struct pipe *p)
{
	if (p->linked)
		return 0;
	if (pipe_table_find(t, p->name, p->name_len))
		return -EEXIST;
	int r = hashmap_insert(&t->by_name, &p->name_node, name_hash(p->name, p->name_len, t->case_sensitive));
	if (r < 0)
		return r;
	p->linked = true;
	return 0;
}

void pipe_table_remove(struct pipe_table *t, struct pipe *p)
{
	pipe_table_unlink(t, p);
	hashmap_remove(&t->by_ino, &p->ino_node);
	if (!p->provisional) {
		struct pipe_gone *g = &t->gone[t->gone_next];
		*g = (struct pipe_gone){ .ino = p->ino, .unlinked = p->name_removed, .brokered = p->brokered,
					 .kind = p->kind, .policy = p->policy, .mode = p->mode, .uid = p->uid,
					 .gid = p->gid, .capacity = p->ring.capacity };
		memcpy(g->name, p->name, p->name_len + 1);
		t->gone_next = (t->gone_next + 1) % PIPE_TABLE_GONE;
	}
}

const struct pipe_gone *pipe_table_gone(const struct pipe_table *t, uint64_t ino)
{
	/* A linear scan: this runs only for an open that lost a race. */
	for (unsigned i = 0; ino && i < PIPE_TABLE_GONE; i++)
		if (t->gone[i].ino == ino)
			return &t->gone[i];
	return NULL;
}

size_t pipe_table_count(const struct pipe_table *t)
{
	return t->by_ino.count;
}
