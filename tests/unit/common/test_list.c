/* SPDX-License-Identifier: MIT */
/*
 * test_list.c - the intrusive doubly linked list. Every check walks the
 * links in both directions, so a list_add_tail or list_unlink that fixes one
 * side and forgets the other fails here.
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include "list.h"

struct entry {
	int value;
	struct list_node queue;   /* on one list... */
	struct list_node all;     /* ...and another at the same time */
};

/* Asserts that head holds exactly the n entries of want, in order, linked
 * consistently forwards and backwards. */
static void assert_queue(const struct list_node *head, struct entry *const *want, size_t n)
{
	size_t i = 0;
	const struct list_node *prev = head;
	struct list_node *pos;
	list_for_each(pos, head) {
		cr_assert_lt(i, n, "more than %zu entries on the list", n);
		cr_assert_eq(list_entry(pos, struct entry, queue), want[i], "entry %zu out of order", i);
		cr_assert_eq(pos->prev, prev, "entry %zu: prev link broken", i);
		prev = pos;
		i++;
	}
	cr_assert_eq(i, n, "%zu entries on the list, expected %zu", i, n);
	cr_assert_eq(head->prev, prev, "head->prev is not the last entry");
	cr_assert_eq(list_empty(head), n == 0);
	cr_assert_eq(list_first(head), n ? &want[0]->queue : NULL);
}

static struct list_node static_head = LIST_INIT(static_head);

Test(list, init_makes_an_empty_list)
{
	cr_assert(list_empty(&static_head), "LIST_INIT gives an empty list");
	cr_assert_eq(static_head.next, &static_head);
	cr_assert_eq(static_head.prev, &static_head);
	cr_assert_null(list_first(&static_head));

	struct list_node head;
	list_init(&head);
	cr_assert(list_empty(&head));
	cr_assert_not(list_linked(&head));
	cr_assert_null(list_first(&head));
	struct list_node *pos;
	int visits = 0;
	list_for_each(pos, &head)
		visits++;
	cr_assert_eq(visits, 0);
}

Test(list, add_tail_appends_in_order)
{
	struct list_node head = LIST_INIT(head);
	struct entry a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 };
	list_add_tail(&head, &a.queue);
	cr_assert(list_linked(&a.queue));
	cr_assert_not(list_empty(&head));
	assert_queue(&head, (struct entry *[]){ &a }, 1);
	list_add_tail(&head, &b.queue);
	list_add_tail(&head, &c.queue);
	assert_queue(&head, (struct entry *[]){ &a, &b, &c }, 3);
	cr_assert_eq(list_entry(list_first(&head), struct entry, queue)->value, 1);
}

Test(list, unlink_works_anywhere_and_is_idempotent)
{
	struct list_node head = LIST_INIT(head);
	struct entry a = { .value = 1 }, b = { .value = 2 }, c = { .value = 3 };
	list_add_tail(&head, &a.queue);
	list_add_tail(&head, &b.queue);
	list_add_tail(&head, &c.queue);

	list_unlink(&b.queue); /* middle */
	cr_assert_not(list_linked(&b.queue), "an unlinked node points at itself");
	cr_assert_eq(b.queue.next, &b.queue);
	cr_assert_eq(b.queue.prev, &b.queue);
	assert_queue(&head, (struct entry *[]){ &a, &c }, 2);
	list_unlink(&b.queue); /* again: no effect on the list */
	assert_queue(&head, (struct entry *[]){ &a, &c }, 2);

	list_unlink(&a.queue); /* head */
	assert_queue(&head, (struct entry *[]){ &c }, 1);
	list_unlink(&c.queue); /* last one */
	assert_queue(&head, NULL, 0);
	cr_assert_eq(head.next, &head);
	cr_assert_eq(head.prev, &head);

	list_add_tail(&head, &b.queue); /* an unlinked node can go back */
	assert_queue(&head, (struct entry *[]){ &b }, 1);
}

/* What cancelling parked requests does: drop some while walking the queue. */
Test(list, for_each_safe_allows_unlinking_the_current_node)
{
	enum { N = 10 };
	struct list_node head = LIST_INIT(head);
	struct entry e[N];
	for (int i = 0; i < N; i++) {
		e[i] = (struct entry){ .value = i };
		list_add_tail(&head, &e[i].queue);
	}
	struct list_node *pos, *tmp;
	int visited = 0;
	list_for_each_safe(pos, tmp, &head) {
		struct entry *it = list_entry(pos, struct entry, queue);
		cr_assert_eq(it->value, visited, "visited out of order");
		visited++;
		if (it->value % 2 == 0)
			list_unlink(pos);
	}
	cr_assert_eq(visited, N, "removal cut the walk short");
	assert_queue(&head, (struct entry *[]){ &e[1], &e[3], &e[5], &e[7], &e[9] }, 5);
	for (int i = 0; i < N; i += 2)
		cr_assert_not(list_linked(&e[i].queue));

	visited = 0;
	list_for_each_safe(pos, tmp, &head) {
		list_unlink(pos);
		visited++;
	}
	cr_assert_eq(visited, 5);
	assert_queue(&head, NULL, 0);
}

Test(list, container_of_recovers_the_entry_from_any_member)
{
	struct list_node queue = LIST_INIT(queue), all = LIST_INIT(all);
	struct entry a = { .value = 1 }, b = { .value = 2 };
	list_add_tail(&queue, &a.queue);
	list_add_tail(&all, &b.all);
	list_add_tail(&all, &a.all);
	cr_assert_eq(list_entry(list_first(&queue), struct entry, queue), &a);
	cr_assert_eq(list_entry(list_first(&all), struct entry, all), &b);
	cr_assert_eq(list_entry(all.prev, struct entry, all), &a);
	cr_assert_eq(container_of(&a.all, struct entry, all), container_of(&a.queue, struct entry, queue));

	/* Leaving one list does not touch the other. */
	list_unlink(&a.queue);
	cr_assert(list_empty(&queue));
	cr_assert(list_linked(&a.all));
	cr_assert_eq(list_entry(all.prev, struct entry, all), &a);
}

Test(list, a_node_moves_between_lists)
{
	struct list_node one = LIST_INIT(one), two = LIST_INIT(two);
	struct entry a = { .value = 1 }, b = { .value = 2 };
	list_add_tail(&one, &a.queue);
	list_add_tail(&one, &b.queue);
	list_unlink(&a.queue);
	list_add_tail(&two, &a.queue);
	assert_queue(&one, (struct entry *[]){ &b }, 1);
	assert_queue(&two, (struct entry *[]){ &a }, 1);
}
