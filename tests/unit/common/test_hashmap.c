/* SPDX-License-Identifier: MIT */
/*
 * test_hashmap.c - the intrusive hash table and hash_u64. Items are looked up
 * the way every user of the table does it (walk the bucket, check ->hash,
 * compare the key), so a table that files a node under the wrong bucket after
 * growing, or loses one on removal, fails here and not in the daemon.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>

#include "hashmap.h"
#include "list.h"

struct item {
	struct hash_node node;
	uint64_t key;
	int seen;
};

/* The item stored under key, found through its hash. */
static struct item *find(const struct hashmap *map, uint64_t key, uint64_t hash)
{
	for (struct hash_node *n = hashmap_bucket(map, hash); n; n = n->next) {
		if (n->hash != hash)
			continue;
		struct item *it = container_of(n, struct item, node);
		if (it->key == key)
			return it;
	}
	return NULL;
}

/* Nodes on the chain that holds hash, whatever their own hash. */
static size_t chain_length(const struct hashmap *map, uint64_t hash)
{
	size_t n = 0;
	for (struct hash_node *node = hashmap_bucket(map, hash); node; node = node->next)
		n++;
	return n;
}

static void count_visit(struct hash_node *node, void *data)
{
	container_of(node, struct item, node)->seen++;
	(*(size_t *)data)++;
}

static void never_called(struct hash_node *node, void *data)
{
	(*(size_t *)data)++;
}

Test(hashmap, empty_table_has_no_buckets)
{
	struct hashmap map = HASHMAP_INIT;
	cr_assert_null(map.buckets);
	cr_assert_eq(map.nbuckets, 0);
	cr_assert_eq(map.count, 0);
	cr_assert_null(hashmap_bucket(&map, 0));
	cr_assert_null(hashmap_bucket(&map, hash_u64(42)));
	size_t calls = 0;
	hashmap_for_each(&map, never_called, &calls);
	cr_assert_eq(calls, 0);
	hashmap_destroy(&map); /* never used: nothing to free */
	cr_assert_null(map.buckets);
}

Test(hashmap, inserted_nodes_are_found_by_hash_and_key)
{
	struct hashmap map = HASHMAP_INIT;
	struct item items[3] = { { .key = 1 }, { .key = 2 }, { .key = 1000000007 } };
	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(hashmap_insert(&map, &items[i].node, hash_u64(items[i].key)), 0);
	cr_assert_eq(map.count, 3);
	cr_assert_eq(map.nbuckets, 16, "the first insert allocates 16 buckets, got %zu", map.nbuckets);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(items[i].node.hash, hash_u64(items[i].key), "insert records the hash");
		cr_assert_eq(find(&map, items[i].key, hash_u64(items[i].key)), &items[i]);
	}
	cr_assert_null(find(&map, 3, hash_u64(3)));
	for (size_t i = 0; i < 3; i++)
		hashmap_remove(&map, &items[i].node);
	hashmap_destroy(&map);
}

Test(hashmap, remove_takes_out_only_that_node)
{
	struct hashmap map = HASHMAP_INIT;
	struct item items[5];
	for (uint64_t i = 0; i < 5; i++) {
		items[i] = (struct item){ .key = i };
		cr_assert_eq(hashmap_insert(&map, &items[i].node, hash_u64(i)), 0);
	}
	hashmap_remove(&map, &items[2].node);
	cr_assert_eq(map.count, 4);
	cr_assert_null(find(&map, 2, hash_u64(2)));
	for (uint64_t i = 0; i < 5; i++)
		if (i != 2)
			cr_assert_eq(find(&map, i, hash_u64(i)), &items[i], "item %llu lost", (unsigned long long)i);
	/* A removed node can go back in. */
	cr_assert_eq(hashmap_insert(&map, &items[2].node, hash_u64(2)), 0);
	cr_assert_eq(find(&map, 2, hash_u64(2)), &items[2]);
	for (uint64_t i = 0; i < 5; i++)
		hashmap_remove(&map, &items[i].node);
	cr_assert_eq(map.count, 0);
	hashmap_destroy(&map);
}

/* Equal hashes (two names that collide) share one chain; the key decides. */
Test(hashmap, equal_hashes_share_a_chain_and_the_key_decides)
{
	struct hashmap map = HASHMAP_INIT;
	const uint64_t h = 0x1234;
	struct item items[4];
	for (uint64_t i = 0; i < 4; i++) {
		items[i] = (struct item){ .key = 100 + i };
		cr_assert_eq(hashmap_insert(&map, &items[i].node, h), 0);
	}
	cr_assert_eq(chain_length(&map, h), 4);
	for (uint64_t i = 0; i < 4; i++)
		cr_assert_eq(find(&map, 100 + i, h), &items[i]);

	/* Remove from the middle, the head and the tail of the chain. */
	hashmap_remove(&map, &items[1].node);
	cr_assert_eq(chain_length(&map, h), 3);
	cr_assert_null(find(&map, 101, h));
	struct hash_node *head = hashmap_bucket(&map, h);
	struct item *first = container_of(head, struct item, node);
	hashmap_remove(&map, head);
	cr_assert_null(find(&map, first->key, h));
	cr_assert_eq(chain_length(&map, h), 2);
	struct hash_node *tail = hashmap_bucket(&map, h)->next;
	cr_assert_null(tail->next);
	hashmap_remove(&map, tail);
	cr_assert_eq(chain_length(&map, h), 1);
	hashmap_remove(&map, hashmap_bucket(&map, h));
	cr_assert_null(hashmap_bucket(&map, h));
	cr_assert_eq(map.count, 0);
	hashmap_destroy(&map);
}

/* Different hashes that land in one bucket are told apart by ->hash. */
Test(hashmap, different_hashes_in_one_bucket_are_told_apart)
{
	struct hashmap map = HASHMAP_INIT;
	struct item a = { .key = 7 }, b = { .key = 7 }, c = { .key = 7 };
	/* With 16 buckets, the low 4 bits pick the bucket. */
	cr_assert_eq(hashmap_insert(&map, &a.node, 0x05), 0);
	cr_assert_eq(hashmap_insert(&map, &b.node, 0x15), 0);
	cr_assert_eq(hashmap_insert(&map, &c.node, 0xf05), 0);
	cr_assert_eq(map.nbuckets, 16);
	cr_assert_eq(hashmap_bucket(&map, 0x05), hashmap_bucket(&map, 0x15));
	cr_assert_eq(chain_length(&map, 0x05), 3);
	cr_assert_eq(find(&map, 7, 0x05), &a);
	cr_assert_eq(find(&map, 7, 0x15), &b);
	cr_assert_eq(find(&map, 7, 0xf05), &c);
	cr_assert_null(find(&map, 7, 0x25), "same bucket, no node with that hash");
	cr_assert_eq(chain_length(&map, 0x06), 0);
	hashmap_remove(&map, &b.node);
	cr_assert_eq(find(&map, 7, 0x05), &a);
	cr_assert_eq(find(&map, 7, 0xf05), &c);
	hashmap_remove(&map, &a.node);
	hashmap_remove(&map, &c.node);
	hashmap_destroy(&map);
}

static size_t expected_buckets(size_t count)
{
	size_t n = 16;
	while (n < count)
		n *= 2;
	return n;
}

Test(hashmap, grows_by_doubling_and_keeps_every_node_findable)
{
	enum { N = 5000 };
	struct hashmap map = HASHMAP_INIT;
	struct item *items = calloc(N, sizeof(*items));
	cr_assert_not_null(items);
	for (size_t i = 0; i < N; i++) {
		items[i].key = i * 4096; /* page-aligned, like pointers */
		cr_assert_eq(hashmap_insert(&map, &items[i].node, hash_u64(items[i].key)), 0);
		cr_assert_eq(map.count, i + 1);
		cr_assert_eq(map.nbuckets, expected_buckets(i + 1), "after %zu inserts: %zu buckets, expected %zu",
			     i + 1, map.nbuckets, expected_buckets(i + 1));
		cr_assert_leq(map.count, map.nbuckets, "load factor above 1");
	}
	cr_assert_eq(map.nbuckets, 8192);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(find(&map, items[i].key, hash_u64(items[i].key)), &items[i],
			     "item %zu lost in a rehash", i);
	/* Every node sits in the bucket its hash selects. */
	for (size_t b = 0; b < map.nbuckets; b++)
		for (struct hash_node *n = map.buckets[b]; n; n = n->next)
			cr_assert_eq(n->hash & (map.nbuckets - 1), b);

	for (size_t i = 0; i < N; i++)
		hashmap_remove(&map, &items[i].node);
	cr_assert_eq(map.count, 0);
	cr_assert_eq(map.nbuckets, 8192, "the table never shrinks");
	for (size_t b = 0; b < map.nbuckets; b++)
		cr_assert_null(map.buckets[b]);
	hashmap_destroy(&map);
	free(items);
}

Test(hashmap, for_each_visits_every_node_once)
{
	enum { N = 300 };
	struct hashmap map = HASHMAP_INIT;
	struct item items[N];
	for (size_t i = 0; i < N; i++) {
		items[i] = (struct item){ .key = i };
		/* A tenth of them collide outright. */
		uint64_t h = i % 10 == 0 ? 99 : hash_u64(i);
		cr_assert_eq(hashmap_insert(&map, &items[i].node, h), 0);
	}
	size_t calls = 0;
	hashmap_for_each(&map, count_visit, &calls);
	cr_assert_eq(calls, N);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(items[i].seen, 1, "item %zu visited %d times", i, items[i].seen);
	for (size_t i = 0; i < N; i++)
		hashmap_remove(&map, &items[i].node);
	calls = 0;
	hashmap_for_each(&map, never_called, &calls);
	cr_assert_eq(calls, 0);
	hashmap_destroy(&map);
}

Test(hashmap, destroy_resets_the_table_for_reuse)
{
	struct hashmap map = HASHMAP_INIT;
	struct item it = { .key = 5 };
	cr_assert_eq(hashmap_insert(&map, &it.node, hash_u64(5)), 0);
	hashmap_remove(&map, &it.node);
	hashmap_destroy(&map);
	cr_assert_null(map.buckets);
	cr_assert_eq(map.nbuckets, 0);
	cr_assert_eq(map.count, 0);
	cr_assert_null(hashmap_bucket(&map, hash_u64(5)));
	cr_assert_eq(hashmap_insert(&map, &it.node, hash_u64(5)), 0);
	cr_assert_eq(find(&map, 5, hash_u64(5)), &it);
	hashmap_remove(&map, &it.node);
	hashmap_destroy(&map);
}

#ifndef NDEBUG
Test(hashmap, destroy_of_a_non_empty_table_aborts, .signal = SIGABRT)
{
	struct hashmap map = HASHMAP_INIT;
	struct item it = { .key = 1 };
	cr_assert_eq(hashmap_insert(&map, &it.node, 1), 0);
	hashmap_destroy(&map);
}

Test(hashmap, removing_a_node_that_is_not_in_the_table_aborts, .signal = SIGABRT)
{
	struct hashmap map = HASHMAP_INIT;
	struct item in = { .key = 1 }, out = { .key = 2 };
	cr_assert_eq(hashmap_insert(&map, &in.node, 1), 0);
	out.node.hash = 1; /* same chain, but never inserted */
	hashmap_remove(&map, &out.node);
}
#endif

#if defined(__SANITIZE_ADDRESS__)
#define HAVE_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define HAVE_ASAN 1
#endif
#endif

#ifndef HAVE_ASAN
/* Bytes of address space this process maps now (/proc/self/statm). */
static size_t mapped_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	cr_assert_not_null(f);
	unsigned long pages = 0;
	cr_assert_eq(fscanf(f, "%lu", &pages), 1);
	fclose(f);
	return (size_t)pages * (size_t)sysconf(_SC_PAGESIZE);
}

/* A failed growth leaves the node out and the table as it was. The
 * address-space limit makes the 16 MiB bucket array of the next growth
 * impossible (not under ASan, which needs far more address space). */
Test(hashmap, insert_that_cannot_grow_returns_enomem_and_changes_nothing)
{
	enum { N = 1 << 20 };
	struct hashmap map = HASHMAP_INIT;
	struct item *items = calloc(N + 1, sizeof(*items));
	cr_assert_not_null(items);
	for (size_t i = 0; i < N; i++)
		cr_assert_eq(hashmap_insert(&map, &items[i].node, hash_u64(i)), 0);
	cr_assert_eq(map.nbuckets, (size_t)N, "full: the next insert must grow");

	struct rlimit old;
	cr_assert_eq(getrlimit(RLIMIT_AS, &old), 0);
	struct rlimit tight = { .rlim_cur = mapped_bytes() + (4u << 20), .rlim_max = old.rlim_max };
	cr_assert_eq(setrlimit(RLIMIT_AS, &tight), 0);
	struct hash_node **buckets = map.buckets;
	int r = hashmap_insert(&map, &items[N].node, hash_u64(N));
	cr_assert_eq(setrlimit(RLIMIT_AS, &old), 0);

	cr_assert_eq(r, -ENOMEM);
	cr_assert_eq(map.count, (size_t)N);
	cr_assert_eq(map.nbuckets, (size_t)N);
	cr_assert_eq(map.buckets, buckets, "the old bucket array is kept");
	items[N].key = N;
	cr_assert_null(find(&map, N, hash_u64(N)), "the node was not inserted");
	items[0].key = 0;
	cr_assert_eq(find(&map, 0, hash_u64(0)), &items[0]);

	/* With room again, the same insert succeeds. */
	cr_assert_eq(hashmap_insert(&map, &items[N].node, hash_u64(N)), 0);
	cr_assert_eq(map.nbuckets, 2 * (size_t)N);
	cr_assert_eq(find(&map, N, hash_u64(N)), &items[N]);
	for (size_t i = 0; i <= N; i++)
		hashmap_remove(&map, &items[i].node);
	hashmap_destroy(&map);
	free(items);
}
#endif

/* Pinned outputs (MurmurHash3's fmix64): a change of the mixer shows here. */
Test(hash_u64, pinned_values)
{
	cr_assert_eq(hash_u64(0), 0);
	cr_assert_eq(hash_u64(1), 0xb456bcfc34c2cb2cull);
	cr_assert_eq(hash_u64(2), 0x3abf2a20650683e7ull);
	cr_assert_eq(hash_u64(0xdeadbeef), 0xd24bd59f862a1dacull);
	cr_assert_eq(hash_u64(UINT64_MAX), 0x64b5720b4b825f21ull);
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Pointers and inode numbers differ in their high or middle bits; the table
 * uses the low bits. The mixer must spread them over every bucket. */
Test(hash_u64, spreads_aligned_keys_over_the_low_bits)
{
	enum { N = 4096, BUCKETS = 64 };
	static uint64_t hashes[N];
	unsigned per_bucket[BUCKETS] = { 0 };
	for (uint64_t i = 0; i < N; i++) {
		hashes[i] = hash_u64(0x7f0000000000ull + i * 4096);
		per_bucket[hashes[i] & (BUCKETS - 1)]++;
	}
	/* 64 expected per bucket; a mixer that ignored the high bits would
	 * put everything in bucket 0. */
	for (unsigned b = 0; b < BUCKETS; b++)
		cr_assert(per_bucket[b] >= 32 && per_bucket[b] <= 96, "bucket %u got %u of %d keys", b,
			  per_bucket[b], N);
	qsort(hashes, N, sizeof(hashes[0]), compare_u64);
	for (size_t i = 1; i < N; i++)
		cr_assert_neq(hashes[i], hashes[i - 1], "two keys share a hash");
}
