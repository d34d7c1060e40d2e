/* SPDX-License-Identifier: MIT */
/*
 * list.h - intrusive doubly linked lists. An object embeds a `struct
 * list_node` per list it can be on and is recovered with container_of, so
 * putting it on a queue never allocates and unlinking is O(1) from anywhere
 * (which is what cancelling a parked request needs).
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define container_of(ptr, type, member) ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

struct list_node {
	struct list_node *next;
	struct list_node *prev;
};

/* A node that is on no list points at itself, so list_unlink is idempotent. */
#define LIST_INIT(name) { &(name), &(name) }

static inline void list_init(struct list_node *n)
{
	n->next = n;
	n->prev = n;
}

static inline bool list_empty(const struct list_node *head)
{
	return head->next == head;
}

static inline bool list_linked(const struct list_node *n)
{
	return n->next != n;
}

static inline void list_add_tail(struct list_node *head, struct list_node *n)
{
	n->prev = head->prev;
	n->next = head;
	head->prev->next = n;
	head->prev = n;
}

static inline void list_unlink(struct list_node *n)
{
	n->prev->next = n->next;
	n->next->prev = n->prev;
	list_init(n);
}

static inline struct list_node *list_first(const struct list_node *head)
{
	return list_empty(head) ? NULL : head->next;
}

#define list_entry(ptr, type, member) container_of(ptr, type, member)

/* Iterate where the body may unlink the current node. */
#define list_for_each_safe(pos, tmp, head) \
	for ((pos) = (head)->next, (tmp) = (pos)->next; (pos) != (head); (pos) = (tmp), (tmp) = (pos)->next)

#define list_for_each(pos, head) for ((pos) = (head)->next; (pos) != (head); (pos) = (pos)->next)
