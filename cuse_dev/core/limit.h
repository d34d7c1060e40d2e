/* SPDX-License-Identifier: MIT */
/*
 * limit.h - one charge/uncharge API for every bounded resource: pipes,
 * handles, ring memory and parked requests, in total and per uid.
 *
 * Every path that makes one of these (an app's open or ATTACH, a broker's
 * answer, an admin's create, a first write) charges it here and uncharges it
 * when it goes, so a limit cannot be missed by one path and kept by another.
 * Memory is all the daemon holds for a user, not only rings: a waiting
 * write's copy of its data and a directory's listing are memory too.
 * Charges are per uid (a pipe and its ring memory are charged to the pipe's
 * owner; a handle, its parked requests and the copies they keep, and a
 * directory open and its listing, to the opener), kept in a
 * table of users that holds an entry only while that uid is charged for
 * something. Root is bounded by the totals only: the per-uid bounds are what
 * keep one ordinary user from starving the others.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "hashmap.h"

enum limit_kind { LIMIT_PIPES, LIMIT_OPENS, LIMIT_MEMORY, LIMIT_PARKED, LIMIT_KINDS };

struct limits_config {
	uint64_t total[LIMIT_KINDS];    /* 0: no bound */
	uint64_t per_uid[LIMIT_KINDS];  /* 0: no bound */
};

struct limits {
	struct limits_config cfg;
	struct hashmap users;           /* struct user_charge by uid */
	uint64_t used[LIMIT_KINDS];
	uint64_t total_hits[LIMIT_KINDS];
	uint64_t uid_hits[LIMIT_KINDS];
};

void limit_init(struct limits *l, const struct limits_config *cfg);
/* Asserts that nothing is charged any more. */
void limit_deinit(struct limits *l);

/* Charge n of kind to uid: 0, or the kind's errno (counted and logged with
 * `what`, the thing that was refused): ENOSPC for pipes and memory, EMFILE
 * for handles, ENOBUFS for parked requests; ENOMEM. Nothing is charged on
 * failure. */
int limit_charge(struct limits *l, enum limit_kind kind, uint32_t uid, uint64_t n, const char *what);
/* Charge n of kind to uid whatever the bounds say: what a handover
 * restores was accepted by the image before (an image started with smaller
 * limits refuses new things until the use is back under them). 0 or
 * -ENOMEM, with nothing charged. */
int limit_charge_force(struct limits *l, enum limit_kind kind, uint32_t uid, uint64_t n);
void limit_uncharge(struct limits *l, enum limit_kind kind, uint32_t uid, uint64_t n);
/* Move a charge from one uid to another (a chown, a broker's answer that
 * names the owner of a pipe being created). The new owner's per-uid bound
 * applies as if it had made the object itself (the total does not change).
 * 0, or -errno of that bound or -ENOMEM with nothing moved. */
int limit_move(struct limits *l, enum limit_kind kind, uint32_t from, uint32_t to, uint64_t n);

/* How much of kind uid may still be charged now (UINT64_MAX: unbounded). */
uint64_t limit_available(const struct limits *l, enum limit_kind kind, uint32_t uid);
uint64_t limit_used(const struct limits *l, enum limit_kind kind);
uint64_t limit_used_by(const struct limits *l, enum limit_kind kind, uint32_t uid);
