/* SPDX-License-Identifier: MIT */
/*
 * limit.c - resource accounting in total and per uid (see limit.h).
 */
#include <assert.h>
#include <errno.h>
#include <stdlib.h>

#include "limit.h"
#include "list.h"
#include "log.h"

struct user_charge {
	struct hash_node node;
	uint32_t uid;
	uint64_t used[LIMIT_KINDS];
};

static const struct {
	const char *total, *per_uid;
	int err;
} kind_info[LIMIT_KINDS] = {
	[LIMIT_PIPES] = { "--max-pipes", "--max-pipes-per-uid", ENOSPC },
	[LIMIT_OPENS] = { "handles", "--max-opens-per-uid", EMFILE },
	[LIMIT_MEMORY] = { "--max-memory", "--max-memory-per-uid", ENOSPC },
	[LIMIT_PARKED] = { "--max-parked", "--max-parked-per-uid", ENOBUFS },
};

void limit_init(struct limits *l, const struct limits_config *cfg)
{
	*l = (struct limits){ .cfg = *cfg, .users = HASHMAP_INIT };
}

void limit_deinit(struct limits *l)
{
	for (int k = 0; k < LIMIT_KINDS; k++)
		assert(l->used[k] == 0);
	assert(l->users.count == 0);
	hashmap_destroy(&l->users);
}

static struct user_charge *user_find(const struct limits *l, uint32_t uid)
{
	for (struct hash_node *n = hashmap_bucket(&l->users, hash_u64(uid)); n; n = n->next) {
		struct user_charge *u = container_of(n, struct user_charge, node);
		if (u->uid == uid)
			return u;
	}
	return NULL;
}

static struct user_charge *user_get(struct limits *l, uint32_t uid)
{
	struct user_charge *u = user_find(l, uid);
	if (u)
		return u;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	if (hashmap_insert(&l->users, &u->node, hash_u64(uid)) < 0) {
		free(u);
		return NULL;
	}
	return u;
}

/* Forget u once it is charged for nothing. */
static void user_put(struct limits *l, struct user_charge *u)
{
	for (int k = 0; k < LIMIT_KINDS; k++)
		if (u->used[k])
			return;
	hashmap_remove(&l->users, &u->node);
	free(u);
}

int limit_charge(struct limits *l, enum limit_kind kind, uint32_t uid, uint64_t n, const char *what)
{
	uint64_t total = l->cfg.total[kind], per_uid = uid == 0 ? 0 : l->cfg.per_uid[kind];
	if (total && (n > total || l->used[kind] > total - n)) {
		l->total_hits[kind]++;
		log_info("%s: refused for uid %u: %s (%llu) reached", what, uid, kind_info[kind].total,
			 (unsigned long long)total);
		return -kind_info[kind].err;
	}
	struct user_charge *u = user_get(l, uid);
	if (!u)
		return -ENOMEM;
	if (per_uid && (n > per_uid || u->used[kind] > per_uid - n)) {
		l->uid_hits[kind]++;
		log_info("%s: refused for uid %u: %s (%llu) reached", what, uid, kind_info[kind].per_uid,
			 (unsigned long long)per_uid);
		user_put(l, u);
		return -kind_info[kind].err;
	}
	u->used[kind] += n;
	l->used[kind] += n;
	return 0;
}

int limit_charge_force(struct limits *l, enum limit_kind kind, uint32_t uid, uint64_t n)
{
	if (!n)
		return 0;
	struct user_charge *u = user_get(l, uid);
	if (!u)
		return -ENOMEM;
	u->used[kind] += n;
	l->used[kind] += n;
	return 0;
}

void limit_uncharge(struct limits *l, enum limit_kind kind, uint32_t uid, uint64_t n)
{
	if (!n)
		return;
	struct user_charge *u = user_find(l, uid);
	assert(u && u->used[kind] >= n && l->used[kind] >= n);
	u->used[kind] -= n;
	l->used[kind] -= n;
	user_put(l, u);
}

int limit_move(struct limits *l, enum limit_kind kind, uint32_t from, uint32_t to, uint64_t n)
{
	if (!n || from == to)
		return 0;
	struct user_charge *dst = user_get(l, to);
	if (!dst)
		return -ENOMEM;
	/* The new owner is charged as if it made the object itself: an answer
	 * or a chown never lets a uid hold more than its own limit. */
	uint64_t per_uid = to == 0 ? 0 : l->cfg.per_uid[kind];
	if (per_uid && (n > per_uid || dst->used[kind] > per_uid - n)) {
		l->uid_hits[kind]++;
		log_info("a change of owner: refused for uid %u: %s (%llu) reached", to, kind_info[kind].per_uid,
			 (unsigned long long)per_uid);
		user_put(l, dst);
		return -kind_info[kind].err;
	}
	dst->used[kind] += n;
	l->used[kind] += n;
	limit_uncharge(l, kind, from, n);
	return 0;
}

uint64_t limit_available(const struct limits *l, enum limit_kind kind, uint32_t uid)
{
	uint64_t total = l->cfg.total[kind], per_uid = uid == 0 ? 0 : l->cfg.per_uid[kind];
	uint64_t left = UINT64_MAX;
	if (total)
		left = l->used[kind] < total ? total - l->used[kind] : 0;
	if (per_uid) {
		const struct user_charge *u = user_find(l, uid);
		uint64_t used = u ? u->used[kind] : 0;
		uint64_t mine = used < per_uid ? per_uid - used : 0;
		if (mine < left)
			left = mine;
	}
	return left;
}

uint64_t limit_used(const struct limits *l, enum limit_kind kind)
{
	return l->used[kind];
}

uint64_t limit_used_by(const struct limits *l, enum limit_kind kind, uint32_t uid)
{
	const struct user_charge *u = user_find(l, uid);
	return u ? u->used[kind] : 0;
}
