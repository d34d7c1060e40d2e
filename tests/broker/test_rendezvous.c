/* SPDX-License-Identifier: MIT */
/*
 * test_rendezvous.c - brokered pipes in ringdev-broker (broker/rendezvous.c):
 * a write completes only when readers took all its bytes, reads and writes
 * wait in FIFO order, end-of-file once the writers are gone, cancel and
 * release drop what waits, and the state goes away when nothing uses it.
 * Requests are small integers; completions are recorded in order.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "rendezvous.h"

enum event_kind { EV_READ, EV_WRITE, EV_DROP };

struct event {
	enum event_kind kind;
	uintptr_t request;
	size_t size;
	char data[64];
};

static struct event events[64];
static unsigned nevents;

static void read_done(void *ctx, void *request, const void *data, size_t size)
{
	struct event *e = &events[nevents++];

	e->kind = EV_READ;
	e->request = (uintptr_t)request;
	e->size = size;
	memset(e->data, 0, sizeof(e->data));
	if (size)
		memcpy(e->data, data, size < sizeof(e->data) ? size : sizeof(e->data) - 1);
}

static void write_done(void *ctx, void *request, size_t taken)
{
	events[nevents++] = (struct event){ .kind = EV_WRITE, .request = (uintptr_t)request, .size = taken };
}

static void drop(void *ctx, void *request)
{
	events[nevents++] = (struct event){ .kind = EV_DROP, .request = (uintptr_t)request };
}

static const struct rv_ops ops = { .read_done = read_done, .write_done = write_done, .drop = drop };

static struct rendezvous *rv;

static void setup(void)
{
	nevents = 0;
	rv = rv_new(&ops, NULL, false);
	cr_assert_not_null(rv);
}

static void teardown(void)
{
	rv = rv_free(rv);
}

TestSuite(rendezvous, .init = setup, .fini = teardown);

#define REQ(n) ((void *)(uintptr_t)(n))

static void assert_event(unsigned i, enum event_kind kind, uintptr_t request, size_t size, const char *data)
{
	cr_assert_lt(i, nevents, "event %u missing (%u events)", i, nevents);
	cr_assert_eq(events[i].kind, kind, "event %u: kind %d, expected %d", i, events[i].kind, kind);
	cr_assert_eq(events[i].request, request, "event %u: request %lu, expected %lu", i,
		     (unsigned long)events[i].request, (unsigned long)request);
	cr_assert_eq(events[i].size, size, "event %u: size %zu, expected %zu", i, events[i].size, size);
	if (data)
		cr_assert_str_eq(events[i].data, data, "event %u", i);
}

static void assert_idle(void)
{
	struct rv_counts c;

	rv_get_counts(rv, &c);
	cr_assert_eq(c.reads_held, 0);
	cr_assert_eq(c.writes_held, 0);
}

Test(rendezvous, write_waits_for_a_reader)
{
	cr_assert_eq(rv_attach(rv, 1, "rv", true), 0);
	cr_assert_eq(rv_attach(rv, 2, "rv", false), 0);
	cr_assert_eq(rv_write(rv, 1, 100, "rv", "hello", 5, false, REQ(100)), 0);
	cr_assert_eq(nevents, 0, "the write is held: no reader yet");
	cr_assert_eq(rv_read(rv, 2, 101, "rv", 64, false, REQ(101)), 0);
	assert_event(0, EV_READ, 101, 5, "hello");
	assert_event(1, EV_WRITE, 100, 5, NULL);
	assert_idle();
}

Test(rendezvous, read_waits_for_a_writer)
{
	rv_attach(rv, 1, "rv", true);
	rv_attach(rv, 2, "rv", false);
	cr_assert_eq(rv_read(rv, 2, 10, "rv", 64, false, REQ(10)), 0);
	cr_assert_eq(nevents, 0);
	cr_assert_eq(rv_write(rv, 1, 11, "rv", "abc", 3, false, REQ(11)), 0);
	assert_event(0, EV_READ, 10, 3, "abc");
	assert_event(1, EV_WRITE, 11, 3, NULL);
	assert_idle();
}

Test(rendezvous, small_reads_take_a_write_in_pieces)
{
	rv_attach(rv, 1, "rv", true);
	rv_write(rv, 1, 1, "rv", "0123456789", 10, false, REQ(1));
	rv_read(rv, 2, 2, "rv", 4, false, REQ(2));
	assert_event(0, EV_READ, 2, 4, "0123");
	cr_assert_eq(nevents, 1, "the write waits for its other 6 bytes");
	rv_read(rv, 2, 3, "rv", 4, false, REQ(3));
	assert_event(1, EV_READ, 3, 4, "4567");
	rv_read(rv, 2, 4, "rv", 100, false, REQ(4));
	assert_event(2, EV_READ, 4, 2, "89");
	assert_event(3, EV_WRITE, 1, 10, NULL);
	assert_idle();
}

Test(rendezvous, a_write_fills_waiting_readers_in_order)
{
	rv_attach(rv, 1, "rv", true);
	rv_read(rv, 2, 1, "rv", 4, false, REQ(1));
	rv_read(rv, 3, 2, "rv", 4, false, REQ(2));
	rv_read(rv, 4, 3, "rv", 4, false, REQ(3));
	rv_write(rv, 1, 4, "rv", "abcdefghij", 10, false, REQ(4));
	assert_event(0, EV_READ, 1, 4, "abcd");
	assert_event(1, EV_READ, 2, 4, "efgh");
	assert_event(2, EV_READ, 3, 2, "ij");
	assert_event(3, EV_WRITE, 4, 10, NULL);
	assert_idle();
}

Test(rendezvous, a_read_takes_from_one_write_only)
{
	rv_attach(rv, 1, "rv", true);
	rv_attach(rv, 2, "rv", true);
	rv_write(rv, 1, 1, "rv", "aa", 2, false, REQ(1));
	rv_write(rv, 2, 2, "rv", "bb", 2, false, REQ(2));
	rv_read(rv, 3, 3, "rv", 10, false, REQ(3));
	assert_event(0, EV_READ, 3, 2, "aa");
	assert_event(1, EV_WRITE, 1, 2, NULL);
	cr_assert_eq(nevents, 2);
	rv_read(rv, 3, 4, "rv", 10, false, REQ(4));
	assert_event(2, EV_READ, 4, 2, "bb");
	assert_event(3, EV_WRITE, 2, 2, NULL);
	assert_idle();
}

Test(rendezvous, pipes_are_separate_and_names_fold_case)
{
	rv_attach(rv, 1, "RV", true);
	rv_write(rv, 1, 1, "RV", "x", 1, false, REQ(1));
	rv_read(rv, 2, 2, "other", 10, false, REQ(2));
	cr_assert_eq(nevents, 0);
	rv_read(rv, 3, 3, "rv", 10, false, REQ(3));
	assert_event(0, EV_READ, 3, 1, "x");
	assert_event(1, EV_WRITE, 1, 1, NULL);
}

Test(rendezvous, case_sensitive_names_differ)
{
	struct rendezvous *cs = rv_new(&ops, NULL, true);

	rv_attach(cs, 1, "RV", true);
	rv_write(cs, 1, 1, "RV", "x", 1, false, REQ(1));
	rv_read(cs, 2, 2, "rv", 10, false, REQ(2));
	cr_assert_eq(nevents, 0);
	rv_free(cs);
}

Test(rendezvous, end_of_file_when_the_writers_are_gone)
{
	rv_attach(rv, 1, "rv", true);
	rv_attach(rv, 2, "rv", false);
	rv_read(rv, 2, 1, "rv", 10, false, REQ(1));
	rv_read(rv, 2, 2, "rv", 10, false, REQ(2));
	rv_detach(rv, 1); /* the writer closed */
	assert_event(0, EV_READ, 1, 0, NULL);
	assert_event(1, EV_READ, 2, 0, NULL);
	rv_read(rv, 2, 3, "rv", 10, false, REQ(3));
	assert_event(2, EV_READ, 3, 0, NULL);
	/* A new writer ends end-of-file: reads wait again. */
	rv_attach(rv, 4, "rv", true);
	rv_read(rv, 2, 4, "rv", 10, false, REQ(4));
	cr_assert_eq(nevents, 3);
}

Test(rendezvous, before_any_writer_a_read_waits)
{
	rv_attach(rv, 2, "rv", false);
	rv_read(rv, 2, 1, "rv", 10, false, REQ(1));
	cr_assert_eq(nevents, 0);
}

Test(rendezvous, a_writing_handle_counts_as_writer)
{
	/* Never attached (the broker started later): its WRITE makes it one. */
	rv_write(rv, 7, 1, "rv", "hi", 2, false, REQ(1));
	rv_read(rv, 8, 2, "rv", 1, false, REQ(2));
	rv_read(rv, 8, 3, "rv", 1, false, REQ(3));
	assert_event(2, EV_WRITE, 1, 2, NULL);
	rv_detach(rv, 7);
	rv_read(rv, 8, 4, "rv", 1, false, REQ(4));
	assert_event(3, EV_READ, 4, 0, NULL);
}

Test(rendezvous, cancel_drops_a_held_request)
{
	struct rv_counts c;

	rv_attach(rv, 1, "rv", true);
	rv_write(rv, 1, 50, "rv", "data", 4, false, REQ(50));
	rv_get_counts(rv, &c);
	cr_assert_eq(c.writes_held, 1);
	cr_assert(rv_cancel(rv, 50));
	assert_event(0, EV_DROP, 50, 0, NULL);
	cr_assert_not(rv_cancel(rv, 50), "gone already");
	cr_assert_not(rv_cancel(rv, 51), "never held");
	assert_idle();
	/* The next reader does not see the cancelled bytes. */
	rv_read(rv, 2, 52, "rv", 4, false, REQ(52));
	cr_assert_eq(nevents, 1);
}

Test(rendezvous, cancelling_the_last_write_lets_readers_see_end_of_file)
{
	rv_attach(rv, 1, "rv", true);
	rv_write(rv, 1, 1, "rv", "data", 4, false, REQ(1));
	rv_detach(rv, 1);  /* writer closed while its write waits (not normal, but possible) */
	assert_event(0, EV_DROP, 1, 0, NULL);
	rv_read(rv, 2, 2, "rv", 4, false, REQ(2));
	cr_assert_eq(nevents, 1, "no writer was ever seen by this pipe state");
}

Test(rendezvous, release_drops_the_handles_requests_and_frees_the_pipe)
{
	struct rv_counts c;

	rv_attach(rv, 1, "rv", false);
	rv_read(rv, 1, 1, "rv", 4, false, REQ(1));
	rv_read(rv, 1, 2, "rv", 4, false, REQ(2));
	rv_get_counts(rv, &c);
	cr_assert_eq(c.pipes, 1);
	cr_assert_eq(c.handles, 1);
	cr_assert_eq(c.reads_held, 2);
	rv_detach(rv, 1);
	assert_event(0, EV_DROP, 1, 0, NULL);
	assert_event(1, EV_DROP, 2, 0, NULL);
	rv_get_counts(rv, &c);
	cr_assert_eq(c.pipes, 0);
	cr_assert_eq(c.handles, 0);
	cr_assert_eq(c.reads_held, 0);
}

Test(rendezvous, moving_a_handle_leaves_the_old_pipe)
{
	struct rv_counts c;

	rv_attach(rv, 1, "a", true);
	rv_attach(rv, 2, "a", false);
	rv_read(rv, 2, 1, "a", 4, false, REQ(1));
	rv_attach(rv, 1, "b", true); /* the only writer of a moves: a reaches end-of-file */
	assert_event(0, EV_READ, 1, 0, NULL);
	rv_attach(rv, 1, "b", true); /* again on the same pipe: no change */
	rv_get_counts(rv, &c);
	cr_assert_eq(c.pipes, 2);
	cr_assert_eq(c.handles, 2);
	rv_detach(rv, 2);
	rv_detach(rv, 1);
	rv_get_counts(rv, &c);
	cr_assert_eq(c.pipes, 0);
}

Test(rendezvous, zero_sizes_complete_at_once)
{
	rv_write(rv, 1, 1, "rv", "", 0, false, REQ(1));
	assert_event(0, EV_WRITE, 1, 0, NULL);
	rv_read(rv, 2, 2, "rv", 0, false, REQ(2));
	assert_event(1, EV_READ, 2, 0, NULL);
	assert_idle();
}

Test(rendezvous, free_with_requests_held)
{
	rv_attach(rv, 1, "a", false);
	rv_read(rv, 1, 1, "a", 4, false, REQ(1));
	rv_write(rv, 2, 2, "b", "x", 1, false, REQ(2));
	/* teardown frees it all; ASan/valgrind check nothing leaks */
}

Test(rendezvous, nonblocking_reads_and_writes_never_wait)
{
	struct rv_counts c;

	rv_attach(rv, 1, "rv", true);
	cr_assert_eq(rv_read(rv, 2, 1, "rv", 4, true, REQ(1)), -EAGAIN);
	cr_assert_eq(rv_write(rv, 1, 2, "rv", "abc", 3, true, REQ(2)), -EAGAIN);
	cr_assert_eq(nevents, 0);
	rv_get_counts(rv, &c);
	cr_assert_eq(c.reads_held + c.writes_held, 0);

	/* With a reader waiting, a non-blocking write gives what it takes. */
	rv_read(rv, 2, 3, "rv", 2, false, REQ(3));
	cr_assert_eq(rv_write(rv, 1, 4, "rv", "abc", 3, true, REQ(4)), 0);
	assert_event(0, EV_READ, 3, 2, "ab");
	assert_event(1, EV_WRITE, 4, 2, NULL);
	/* With a write waiting, a non-blocking read takes from it. */
	rv_write(rv, 1, 5, "rv", "xy", 2, false, REQ(5));
	cr_assert_eq(rv_read(rv, 2, 6, "rv", 8, true, REQ(6)), 0);
	assert_event(2, EV_READ, 6, 2, "xy");
	assert_event(3, EV_WRITE, 5, 2, NULL);
	assert_idle();
}

/* Issue 19 B: a writer interrupted after readers took part of its bytes is
 * answered with that count, not dropped: dropped, it would get EINTR and
 * write the bytes the readers already have again. */
Test(rendezvous, cancelling_a_partly_taken_write_answers_what_was_taken)
{
	rv_attach(rv, 1, "rv", true);
	rv_write(rv, 1, 1, "rv", "0123456789", 10, false, REQ(1));
	rv_read(rv, 2, 2, "rv", 4, false, REQ(2));
	assert_event(0, EV_READ, 2, 4, "0123");
	cr_assert(rv_cancel(rv, 1));
	assert_event(1, EV_WRITE, 1, 4, NULL);
	cr_assert_eq(nevents, 2);
	assert_idle();
}

/* Issue 19 B: bytes a reader never got (the daemon refused its answer) go
 * back to the head of the pipe: the next reader gets them first, before
 * what was written after them, and a waiting reader gets them at once. */
Test(rendezvous, unread_bytes_come_first)
{
	rv_attach(rv, 1, "rv", true);
	rv_write(rv, 1, 1, "rv", "0123456789", 10, false, REQ(1));
	rv_read(rv, 2, 2, "rv", 4, false, REQ(2));
	assert_event(0, EV_READ, 2, 4, "0123");
	cr_assert_eq(rv_unread(rv, "rv", "0123", 4), 0, "the reader of 0123 never got them");
	rv_read(rv, 2, 3, "rv", 64, false, REQ(3));
	assert_event(1, EV_READ, 3, 4, "0123");
	rv_read(rv, 2, 4, "rv", 64, false, REQ(4));
	assert_event(2, EV_READ, 4, 6, "456789");
	assert_event(3, EV_WRITE, 1, 10, NULL);
	rv_read(rv, 2, 5, "rv", 64, false, REQ(5));
	cr_assert_eq(nevents, 4, "the reader waits");
	cr_assert_eq(rv_unread(rv, "rv", "ab", 2), 0);
	assert_event(4, EV_READ, 5, 2, "ab");
	struct rv_counts c;
	rv_get_counts(rv, &c);
	cr_assert_eq(c.unread_bytes, 0);
	assert_idle();
	/* Given back and never read: freed with the state. */
	cr_assert_eq(rv_unread(rv, "rv", "zz", 2), 0);
	rv_detach(rv, 1);
	rv_read(rv, 2, 6, "rv", 1, false, REQ(6));
	assert_event(5, EV_READ, 6, 1, "z");
}
