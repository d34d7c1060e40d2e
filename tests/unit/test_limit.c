/* SPDX-License-Identifier: MIT */
/*
 * test_limit.c - the limits module alone: totals and per-uid bounds for
 * every kind, the errno each kind refuses with, counting of refusals, root
 * bounded by the totals only, moving a charge, and that a user's entry goes
 * once it is charged for nothing (deinit asserts everything is zero).
 */
#include <criterion/criterion.h>
#include <errno.h>

#include "limit.h"

static struct limits l;

static void setup(void)
{
	struct limits_config cfg = {
		.total = { [LIMIT_PIPES] = 4, [LIMIT_MEMORY] = 1000, [LIMIT_PARKED] = 5 },
		.per_uid = { [LIMIT_PIPES] = 2, [LIMIT_OPENS] = 3, [LIMIT_MEMORY] = 600, [LIMIT_PARKED] = 2 },
	};
	limit_init(&l, &cfg);
}

TestSuite(limit, .init = setup);

Test(limit, each_kind_refuses_past_its_per_uid_bound_with_its_errno)
{
	cr_assert_eq(limit_charge(&l, LIMIT_PIPES, 1000, 1, "p1"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_PIPES, 1000, 1, "p2"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_PIPES, 1000, 1, "p3"), -ENOSPC);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(limit_charge(&l, LIMIT_OPENS, 1000, 1, "open"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_OPENS, 1000, 1, "open"), -EMFILE);
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1000, 600, "ring"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1000, 1, "ring"), -ENOSPC);
	cr_assert_eq(limit_charge(&l, LIMIT_PARKED, 1000, 1, "wait"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_PARKED, 1000, 1, "wait"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_PARKED, 1000, 1, "wait"), -ENOBUFS);
	cr_assert_eq(l.uid_hits[LIMIT_PIPES], 1);
	cr_assert_eq(l.uid_hits[LIMIT_OPENS], 1);
	cr_assert_eq(l.uid_hits[LIMIT_MEMORY], 1);
	cr_assert_eq(l.uid_hits[LIMIT_PARKED], 1);
	cr_assert_eq(limit_used_by(&l, LIMIT_OPENS, 1000), 3);
	limit_uncharge(&l, LIMIT_PIPES, 1000, 2);
	limit_uncharge(&l, LIMIT_OPENS, 1000, 3);
	limit_uncharge(&l, LIMIT_MEMORY, 1000, 600);
	limit_uncharge(&l, LIMIT_PARKED, 1000, 2);
	limit_deinit(&l);
}

Test(limit, the_total_bounds_everyone_and_a_refusal_charges_nothing)
{
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1, 600, "a"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 2, 400, "b"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 3, 1, "c"), -ENOSPC, "the total is reached");
	cr_assert_eq(l.total_hits[LIMIT_MEMORY], 1);
	cr_assert_eq(limit_used(&l, LIMIT_MEMORY), 1000);
	cr_assert_eq(limit_used_by(&l, LIMIT_MEMORY, 3), 0, "nothing charged on failure");
	cr_assert_eq(l.users.count, 2, "no entry is left for a refused user");
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1, UINT64_MAX, "huge"), -ENOSPC, "no overflow");
	limit_uncharge(&l, LIMIT_MEMORY, 1, 600);
	limit_uncharge(&l, LIMIT_MEMORY, 2, 400);
	limit_deinit(&l);
}

Test(limit, root_is_bounded_by_the_totals_only)
{
	for (int i = 0; i < 4; i++)
		cr_assert_eq(limit_charge(&l, LIMIT_PIPES, 0, 1, "root's"), 0, "root's pipe %d", i);
	cr_assert_eq(limit_charge(&l, LIMIT_PIPES, 0, 1, "root's"), -ENOSPC, "the total binds root too");
	cr_assert_eq(l.total_hits[LIMIT_PIPES], 1);
	cr_assert_eq(l.uid_hits[LIMIT_PIPES], 0);
	limit_uncharge(&l, LIMIT_PIPES, 0, 4);
	limit_deinit(&l);
}

Test(limit, a_move_is_bounded_by_the_new_owners_limit)
{
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1000, 500, "ring"), 0);
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 2000, 500, "ring"), 0);
	cr_assert_eq(limit_move(&l, LIMIT_MEMORY, 1000, 2000, 500), -ENOSPC,
		     "uid 2000 would hold 1000 of its 600: refused, as if it made the pipe itself");
	cr_assert_eq(l.uid_hits[LIMIT_MEMORY], 1);
	cr_assert_eq(limit_used_by(&l, LIMIT_MEMORY, 1000), 500, "nothing moved");
	cr_assert_eq(limit_used_by(&l, LIMIT_MEMORY, 2000), 500);
	limit_uncharge(&l, LIMIT_MEMORY, 2000, 400);
	cr_assert_eq(limit_move(&l, LIMIT_MEMORY, 1000, 2000, 500), 0, "within the bound it moves");
	cr_assert_eq(limit_used_by(&l, LIMIT_MEMORY, 2000), 600);
	cr_assert_eq(limit_used_by(&l, LIMIT_MEMORY, 1000), 0);
	cr_assert_eq(l.users.count, 1, "uid 1000 is charged for nothing: its entry is gone");
	cr_assert_eq(limit_used(&l, LIMIT_MEMORY), 600, "the total is unchanged by a move");
	cr_assert_eq(limit_move(&l, LIMIT_MEMORY, 2000, 0, 600), 0, "root has no per-uid bound");
	limit_uncharge(&l, LIMIT_MEMORY, 0, 600);
	limit_deinit(&l);
}

Test(limit, available_is_the_smaller_of_what_the_total_and_the_uid_leave)
{
	cr_assert_eq(limit_available(&l, LIMIT_MEMORY, 1000), 600, "the per-uid bound");
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1000, 500, "a"), 0);
	cr_assert_eq(limit_available(&l, LIMIT_MEMORY, 1000), 100);
	cr_assert_eq(limit_charge(&l, LIMIT_MEMORY, 1001, 450, "b"), 0);
	cr_assert_eq(limit_available(&l, LIMIT_MEMORY, 1002), 50, "the total's rest");
	cr_assert_eq(limit_available(&l, LIMIT_MEMORY, 0), 50, "root: the total only");
	cr_assert_eq(limit_available(&l, LIMIT_OPENS, 0), UINT64_MAX, "no bound");
	limit_uncharge(&l, LIMIT_MEMORY, 1000, 500);
	limit_uncharge(&l, LIMIT_MEMORY, 1001, 450);
	limit_deinit(&l);
}
