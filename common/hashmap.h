/* SPDX-License-Identifier: MIT */
/*
 * hashmap.h - an intrusive chained hash table. Objects embed a `struct
 * hash_node`; the caller computes the hash and compares keys while walking a
 * bucket, so one table type serves names, inode numbers and request pointers
 * without callbacks or key copies. The table grows by doubling; it never
 * shrinks.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

struct hash_node {
	struct hash_node *next;
	uint64_t hash;
};

struct hashmap {
	struct hash_node **buckets;
	size_t nbuckets;  /* power of two, or 0 before the first insert */
	size_t count;
};

#define HASHMAP_INIT { NULL, 0, 0 }

/* Frees the bucket array; the table must be empty (asserted). */
void hashmap_destroy(struct hashmap *map);

/* Insert node under hash; -ENOMEM if the table could not grow (node not inserted). */
int hashmap_insert(struct hashmap *map, struct hash_node *node, uint64_t hash);

/* Remove a node that is in the table. */
void hashmap_remove(struct hashmap *map, struct hash_node *node);

/* First node of the chain that may hold `hash`; follow ->next, check ->hash. */
struct hash_node *hashmap_bucket(const struct hashmap *map, uint64_t hash);

/* Calls fn(node, data) for every node; fn must not insert or remove. */
void hashmap_for_each(const struct hashmap *map, void (*fn)(struct hash_node *node, void *data), void *data);

/* Mix a 64-bit integer (pointer or inode number) into a well-spread hash. */
static inline uint64_t hash_u64(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}
