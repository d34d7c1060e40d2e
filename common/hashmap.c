/* SPDX-License-Identifier: MIT */
/*
 * hashmap.c - see hashmap.h. Load factor is kept at or below 1.
 */
#include "hashmap.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>

void hashmap_destroy(struct hashmap *map)
{
	assert(map->count == 0);
	free(map->buckets);
	map->buckets = NULL;
	map->nbuckets = 0;
}

static int hashmap_grow(struct hashmap *map)
{
	size_t n = map->nbuckets ? map->nbuckets * 2 : 16;
	struct hash_node **b = calloc(n, sizeof(*b));
	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < map->nbuckets; i++) {
		struct hash_node *node = map->buckets[i];
		while (node) {
			struct hash_node *next = node->next;
			size_t j = node->hash & (n - 1);
			node->next = b[j];
			b[j] = node;
			node = next;
		}
	}
	free(map->buckets);
	map->buckets = b;
	map->nbuckets = n;
	return 0;
}

int hashmap_insert(struct hashmap *map, struct hash_node *node, uint64_t hash)
{
	if (map->count >= map->nbuckets) {
		int r = hashmap_grow(map);
		if (r < 0)
			return r;
	}
	size_t i = hash & (map->nbuckets - 1);
	node->hash = hash;
	node->next = map->buckets[i];
	map->buckets[i] = node;
	map->count++;
	return 0;
}

void hashmap_remove(struct hashmap *map, struct hash_node *node)
{
	struct hash_node **pp = &map->buckets[node->hash & (map->nbuckets - 1)];
	while (*pp && *pp != node)
		pp = &(*pp)->next;
	assert(*pp == node);
	*pp = node->next;
	node->next = NULL;
	map->count--;
}

struct hash_node *hashmap_bucket(const struct hashmap *map, uint64_t hash)
{
	if (map->nbuckets == 0)
		return NULL;
	return map->buckets[hash & (map->nbuckets - 1)];
}

void hashmap_for_each(const struct hashmap *map, void (*fn)(struct hash_node *node, void *data), void *data)
{
	for (size_t i = 0; i < map->nbuckets; i++)
		for (struct hash_node *n = map->buckets[i]; n; n = n->next)
			fn(n, data);
}
