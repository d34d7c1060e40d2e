/* SPDX-License-Identifier: MIT */
/*
 * test_memory.c - memory the core holds on a user's behalf outside any
 * ring is charged to that user like a ring (issue 19, part C): a waiting
 * write's copy of its data, a directory listing; and the later pieces of a
 * write(2) the kernel split go on as the call's first piece began it
 * (issue 19, item 13).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "device.h"
#include "fake_frontend.h"
#include "log.h"

#define USER 1000

static struct device *dev;

static struct device *device_with(uint64_t max_memory, uint64_t memory_per_uid, uint64_t opens_per_uid)
{
	fake_reset();
	log_set_level(LOG_LEVEL_WARN); /* the refusals here log at info: expected */
	struct device_config cfg = {
		.ring_size = 1024,
		.max_pipes = 64,
		.max_memory = max_memory,
		.max_memory_per_uid = memory_per_uid,
		.max_opens_per_uid = opens_per_uid,
		.mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE,
		.max_parked = 1 << 20,
	};
	dev = device_new(&cfg, &fake_ops);
	cr_assert_not_null(dev);
	return dev;
}

static void teardown(void)
{
	if (dev) {
		device_shutdown(dev);
		device_free(dev); /* asserts that every charge was given back */
		dev = NULL;
	}
}

TestSuite(memory, .fini = teardown);

/* A handle of uid on a new pipe `name` (owned by uid, mode 0600). */
static struct open_ctx *open_as(uint32_t uid, const char *name, int oflags, uint32_t policy)
{
	struct cred c = fake_cred(uid);
	struct open_ctx *ctx;
	cr_assert_eq(device_open(dev, &c, oflags, &ctx), 0);
	struct attach_args a = { .name = name, .len = strlen(name), .flags = RINGDEV_ATTACH_CREATE, .policy = policy };
	cr_assert_eq(device_attach(dev, ctx, &c, &a), 0);
	return ctx;
}

static uint64_t memory_used(void)
{
	struct ringdev_stats s;
	device_stats(dev, &s);
	return s.memory_used;
}

static void expect_error(int req, int err)
{
	cr_assert_eq(fake_replies[req].answers, 1, "request %d answered %d times", req, fake_replies[req].answers);
	cr_assert_eq(fake_replies[req].kind, FAKE_ERROR, "request %d: not an error", req);
	cr_assert_eq(fake_replies[req].err, err, "request %d: errno %d, expected %d", req, fake_replies[req].err, err);
}

static void expect_written(int req, size_t n)
{
	cr_assert_eq(fake_replies[req].answers, 1, "request %d answered %d times", req, fake_replies[req].answers);
	cr_assert_eq(fake_replies[req].kind, FAKE_WRITTEN, "request %d: not written (errno %d)", req,
		     fake_replies[req].err);
	cr_assert_eq(fake_replies[req].count, n, "request %d: %zu written, expected %zu", req, fake_replies[req].count,
		     n);
}

Test(memory, a_waiting_write_s_copy_is_charged_to_its_writer_and_bounded)
{
	device_with(1 << 20, 3500, 0);
	static uint8_t buf[4096];
	struct open_ctx *w = open_as(USER, "p", O_WRONLY, 0);
	device_write(dev, w, REQ(1), buf, 1024, 0); /* fills the ring: 1024 charged */
	expect_written(1, 1024);
	cr_assert_eq(memory_used(), 1024);
	device_write(dev, w, REQ(2), buf, 1000, 0); /* waits with a copy */
	device_write(dev, w, REQ(3), buf, 1000, 0);
	cr_assert_eq(fake_parked(dev), 2);
	cr_assert_eq(memory_used(), 3024, "the copies of waiting writes count as memory: %llu",
		     (unsigned long long)memory_used());
	device_write(dev, w, REQ(4), buf, 1000, 0); /* whole or nothing: 4024 > 3500 */
	expect_error(4, ENOBUFS);
	cr_assert_eq(fake_parked(dev), 2);
	/* A reader makes room: the first waiting write goes in, its copy goes. */
	struct cred c = fake_cred(USER);
	struct open_ctx *r;
	cr_assert_eq(device_open(dev, &c, O_RDONLY, &r), 0);
	struct attach_args a = { .name = "p", .len = 1 };
	cr_assert_eq(device_attach(dev, r, &c, &a), 0);
	device_read(dev, r, REQ(5), 1024, 0, false);
	expect_written(2, 1000);
	cr_assert_eq(memory_used(), 2024);
	device_release(dev, w); /* the last waiting write ends: its charge goes */
	expect_error(3, EBADF);
	cr_assert_eq(memory_used(), 1024);
	device_release(dev, r);
}

Test(memory, root_s_waiting_writes_are_bounded_by_the_total)
{
	device_with(4096, 1024, 0);
	static uint8_t buf[4096];
	struct open_ctx *w = open_as(0, "p", O_WRONLY, 0);
	device_write(dev, w, REQ(1), buf, 1024, 0);
	device_write(dev, w, REQ(2), buf, 3000, 0); /* root: no per-uid bound */
	cr_assert_eq(fake_parked(dev), 1);
	device_write(dev, w, REQ(3), buf, 100, 0);
	expect_error(3, ENOBUFS);
	device_release(dev, w);
	expect_error(2, EBADF);
	cr_assert_eq(memory_used(), 1024, "the ring stays with its data");
}

/* A write that may go in parts (larger than the capacity) waits with what
 * its user may still hold and returns that count; one that may hold
 * nothing fails. */
Test(memory, a_write_in_parts_waits_with_what_its_user_may_hold)
{
	device_with(1 << 20, 4096, 0);
	static uint8_t buf[8192];
	struct open_ctx *w = open_as(USER, "p", O_RDWR, 0);
	device_write(dev, w, REQ(1), buf, 1024, 0); /* full: 1024 charged */
	device_write(dev, w, REQ(2), buf, 5000, 0); /* 3072 left to hold */
	cr_assert_eq(fake_parked(dev), 1);
	cr_assert_eq(memory_used(), 4096);
	device_write(dev, w, REQ(3), buf, 5000, 0);
	expect_error(3, ENOBUFS);
	for (int i = 0; i < 3; i++)
		device_read(dev, w, REQ(4 + i), 1024, 0, false);
	expect_written(2, 3072);
	cr_assert_eq(memory_used(), 1024);
	device_release(dev, w);
}

Test(memory, a_listing_is_charged_to_its_opener_and_holds_only_what_it_sees)
{
	device_with(1 << 20, 0, 1);
	/* Root's pipes, hidden from the user (0600). */
	struct open_ctx *hidden[20];
	for (int i = 0; i < 20; i++) {
		char name[16];
		snprintf(name, sizeof(name), "root%d", i);
		hidden[i] = open_as(0, name, O_RDWR, 0);
	}
	struct open_ctx *mine = open_as(USER, "mine", O_RDWR, 0);
	struct cred user = fake_cred(USER);
	struct name_list list, second;
	device_dir_open(&user, &list);
	cr_assert_eq(memory_used(), 0, "an open of the root alone holds nothing");
	cr_assert_eq(device_list(dev, &user, &list), 0);
	cr_assert_eq(list.count, 1, "the user sees its own pipe only");
	cr_assert_eq(memory_used(), sizeof(*list.entries), "a listing is sized by what its caller sees: %llu",
		     (unsigned long long)memory_used());
	cr_assert_eq(device_list(dev, &user, &list), 0, "a rewound listing replaces the first");
	cr_assert_eq(memory_used(), sizeof(*list.entries));
	/* Not a handle: the user at --max-opens-per-uid 1 may still list. */
	device_dir_open(&user, &second);
	cr_assert_eq(device_list(dev, &user, &second), 0);
	cr_assert_eq(memory_used(), 2 * sizeof(*list.entries));
	device_list_free(dev, &second);
	device_list_free(dev, &list);
	cr_assert_eq(memory_used(), 0);
	/* Root lists everything, bounded by the total only. */
	struct cred root = fake_cred(0);
	device_dir_open(&root, &list);
	cr_assert_eq(device_list(dev, &root, &list), 0);
	cr_assert_eq(list.count, 21);
	device_list_free(dev, &list);
	device_release(dev, mine);
	for (int i = 0; i < 20; i++)
		device_release(dev, hidden[i]);
}

Test(memory, a_listing_past_the_memory_limit_is_enomem)
{
	device_with(1 << 20, 100, 0);
	struct open_ctx *a = open_as(USER, "a", O_RDWR, 0);
	struct open_ctx *b = open_as(USER, "b", O_RDWR, 0);
	struct cred user = fake_cred(USER);
	struct name_list list;
	device_dir_open(&user, &list);
	cr_assert_eq(device_list(dev, &user, &list), -ENOMEM, "two entries (144 bytes) past 100");
	cr_assert_eq(memory_used(), 0, "nothing charged on failure");
	device_list_free(dev, &list);
	device_release(dev, a);
	device_release(dev, b);
}

/* Item 13: the later pieces of a write(2) the kernel split. The first piece
 * is judged as itself (the kernel tells no total); once it is placed the
 * call is larger than one request and goes on in parts, as a write larger
 * than the capacity does, so O_NONBLOCK returns all that fitted. */
Test(memory, a_later_piece_of_a_split_write_goes_in_parts)
{
	device_with(1 << 20, 0, 0);
	static uint8_t buf[1024];
	struct open_ctx *w = open_as(USER, "p", O_WRONLY | O_NONBLOCK, 0);
	device_write(dev, w, REQ(1), buf, 300, O_NONBLOCK); /* 724 free */
	expect_written(1, 300);
	device_write_piece(dev, w, REQ(2), buf, 500, O_NONBLOCK, false); /* first piece of a call */
	expect_written(2, 500);
	device_write_piece(dev, w, REQ(3), buf, 500, O_NONBLOCK, true); /* its next piece: 224 fit */
	expect_written(3, 224);
	device_write_piece(dev, w, REQ(4), buf, 500, O_NONBLOCK, true); /* full: nothing fits */
	expect_error(4, EAGAIN);
	device_write_piece(dev, w, REQ(5), buf, 10, O_NONBLOCK, false); /* a new call: all or nothing */
	expect_error(5, EAGAIN);
	device_release(dev, w);
}

Test(memory, a_later_piece_of_a_blocking_split_write_waits_for_room_in_parts)
{
	device_with(1 << 20, 0, 0);
	static uint8_t buf[1024];
	struct open_ctx *w = open_as(USER, "p", O_RDWR, 0);
	device_write(dev, w, REQ(1), buf, 900, 0);
	device_write_piece(dev, w, REQ(2), buf, 500, 0, true); /* 124 now, the rest later */
	cr_assert_eq(fake_parked(dev), 1);
	device_read(dev, w, REQ(3), 1024, 0, false);
	expect_written(2, 500);
	device_release(dev, w);
}
