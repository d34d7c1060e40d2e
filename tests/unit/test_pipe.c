/* SPDX-License-Identifier: MIT */
/*
 * test_pipe.c - pipe semantics through the core API with a fake frontend:
 * message framing, policies and their drop accounting, parking and FIFO
 * service, the EOF rule, live resize, memory limits.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "device.h"
#include "fake_frontend.h"

static struct device *dev;

static void setup(void)
{
	dev = fake_device(65536, 64, 1 << 20);
}

static void teardown(void)
{
	device_shutdown(dev);
	device_free(dev);
}

TestSuite(pipe, .init = setup, .fini = teardown);

static struct ringdev_pipe_info info(struct open_ctx *ctx)
{
	struct ringdev_pipe_info pi;
	struct cred c = fake_cred(0);
	cr_assert_eq(device_ioctl(dev, ctx, &c, RINGDEV_IOC_PIPE_INFO, NULL, 0, &pi, sizeof(pi)), 0);
	return pi;
}

static void expect_data(int req, const void *data, size_t n)
{
	struct fake_reply *r = &fake_replies[req];
	cr_assert_eq(r->answers, 1, "request %d answered %d times", req, r->answers);
	cr_assert_eq(r->kind, FAKE_DATA, "request %d: kind %d err %d", req, r->kind, r->err);
	cr_assert_eq(r->count, n, "request %d: %zu bytes, expected %zu", req, r->count, n);
	if (n)
		cr_assert_arr_eq(r->data, data, n);
}

static void expect_written(int req, size_t n)
{
	struct fake_reply *r = &fake_replies[req];
	cr_assert_eq(r->answers, 1, "request %d answered %d times", req, r->answers);
	cr_assert_eq(r->kind, FAKE_WRITTEN, "request %d: kind %d err %d", req, r->kind, r->err);
	cr_assert_eq(r->count, n, "request %d: wrote %zu, expected %zu", req, r->count, n);
}

static void expect_error(int req, int err)
{
	struct fake_reply *r = &fake_replies[req];
	cr_assert_eq(r->answers, 1, "request %d answered %d times", req, r->answers);
	cr_assert_eq(r->kind, FAKE_ERROR, "request %d: kind %d", req, r->kind);
	cr_assert_eq(r->err, err, "request %d: err %d, expected %d", req, r->err, err);
}

static void expect_pending(int req)
{
	cr_assert_eq(fake_replies[req].answers, 0, "request %d should be parked", req);
}

Test(pipe, stream_read_returns_what_is_there)
{
	struct open_ctx *c = fake_open(dev, "s", O_RDWR, RINGDEV_KIND_STREAM, 0, 0);
	device_write(dev, c, REQ(1), "hello world", 11, 0);
	expect_written(1, 11);
	device_read(dev, c, REQ(2), 5, 0, false);
	expect_data(2, "hello", 5);
	device_read(dev, c, REQ(3), 100, 0, false);
	expect_data(3, " world", 6);
	device_read(dev, c, REQ(4), 100, O_NONBLOCK, false);
	expect_error(4, EAGAIN);
	device_release(dev, c);
}

Test(pipe, message_framing_keeps_boundaries)
{
	struct open_ctx *c = fake_open(dev, "m", O_RDWR, RINGDEV_KIND_MESSAGE, 0, 0);
	device_write(dev, c, REQ(1), "one", 3, 0);
	device_write(dev, c, REQ(2), "three", 5, 0);
	expect_written(1, 3);
	expect_written(2, 5);
	struct ringdev_pipe_info pi = info(c);
	cr_assert_eq(pi.queued_messages, 2);
	cr_assert_eq(pi.queued_bytes, 8, "queued_bytes counts payload, not headers");
	struct ringdev_nread nr;
	struct cred cr = fake_cred(0);
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_NREAD, NULL, 0, &nr, sizeof(nr)), 0);
	cr_assert_eq(nr.next, 3, "NREAD on a message pipe is the next message's size");
	device_read(dev, c, REQ(3), 2, 0, false);
	expect_error(3, EMSGSIZE);
	cr_assert_eq(info(c).queued_messages, 2, "a too-small read leaves the message queued");
	device_read(dev, c, REQ(4), 100, 0, false);
	expect_data(4, "one", 3);
	device_read(dev, c, REQ(5), 100, 0, false);
	expect_data(5, "three", 5);
	device_release(dev, c);
}

Test(pipe, message_larger_than_limits_is_rejected)
{
	struct open_ctx *c = fake_open(dev, "m", O_RDWR, RINGDEV_KIND_MESSAGE, 0, 128);
	static uint8_t big[RINGDEV_MESSAGE_MAX + 1];
	device_write(dev, c, REQ(1), big, 125, 0);
	expect_error(1, EMSGSIZE);
	device_write(dev, c, REQ(2), big, 124, 0);
	expect_written(2, 124);
	device_release(dev, c);
	c = fake_open(dev, "m2", O_RDWR, RINGDEV_KIND_MESSAGE, 0, 1 << 20);
	device_write(dev, c, REQ(3), big, sizeof(big), 0);
	expect_error(3, EMSGSIZE);
	device_release(dev, c);
}

Test(pipe, message_read_continuation_never_joins_messages)
{
	struct open_ctx *c = fake_open(dev, "m", O_RDWR, RINGDEV_KIND_MESSAGE, 0, 0);
	device_write(dev, c, REQ(1), "a", 1, 0);
	device_read(dev, c, REQ(2), 10, 0, true);
	expect_data(2, NULL, 0);
	cr_assert_eq(info(c).queued_messages, 1);
	device_release(dev, c);
}

Test(pipe, overwrite_stream_counts_every_dropped_byte)
{
	struct open_ctx *c = fake_open(dev, "o", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_OVERWRITE, 100);
	uint8_t buf[250];
	for (int i = 0; i < 250; i++)
		buf[i] = (uint8_t)i;
	device_write(dev, c, REQ(1), buf, 80, 0);
	device_write(dev, c, REQ(2), buf + 80, 50, 0); /* 30 oldest dropped */
	expect_written(1, 80);
	expect_written(2, 50);
	struct ringdev_pipe_info pi = info(c);
	cr_assert_eq(pi.dropped_bytes, 30);
	cr_assert_eq(pi.queued_bytes, 100);
	device_read(dev, c, REQ(3), 200, 0, false);
	expect_data(3, buf + 30, 100);
	/* A write larger than capacity keeps only its tail. */
	device_write(dev, c, REQ(4), buf, 10, 0);
	device_write(dev, c, REQ(5), buf, 250, 0);
	expect_written(5, 250);
	pi = info(c);
	cr_assert_eq(pi.dropped_bytes, 30 + 10 + 150);
	cr_assert_eq(pi.dropped_messages, 0);
	device_read(dev, c, REQ(6), 300, 0, false);
	expect_data(6, buf + 150, 100);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.dropped_bytes, 190, "device totals agree with the pipe");
	device_release(dev, c);
}

Test(pipe, overwrite_message_drops_whole_oldest_messages)
{
	/* capacity 64: each 10-byte message costs 14 ring bytes: 4 fit (56). */
	struct open_ctx *c = fake_open(dev, "om", O_RDWR, RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_OVERWRITE, 64);
	char msg[10];
	for (int i = 0; i < 7; i++) {
		memset(msg, 'a' + i, sizeof(msg));
		device_write(dev, c, REQ(1 + i), msg, sizeof(msg), 0);
		expect_written(1 + i, 10);
	}
	struct ringdev_pipe_info pi = info(c);
	cr_assert_eq(pi.queued_messages, 4);
	cr_assert_eq(pi.dropped_messages, 3);
	cr_assert_eq(pi.dropped_bytes, 30);
	device_read(dev, c, REQ(20), 100, 0, false);
	memset(msg, 'd', sizeof(msg));
	expect_data(20, msg, 10);
	device_release(dev, c);
}

Test(pipe, fail_policy_rejects_what_does_not_fit)
{
	struct open_ctx *c = fake_open(dev, "f", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_FAIL, 100);
	uint8_t buf[200] = { 0 };
	device_write(dev, c, REQ(1), buf, 90, 0);
	expect_written(1, 90);
	device_write(dev, c, REQ(2), buf, 20, 0);
	expect_error(2, EAGAIN);
	device_write(dev, c, REQ(3), buf, 101, 0);
	expect_error(3, EFBIG);
	cr_assert_eq(info(c).queued_bytes, 90, "nothing of a failed write is stored");
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, c);
}

Test(pipe, block_policy_parks_writers_in_order)
{
	struct open_ctx *c = fake_open(dev, "b", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 100);
	uint8_t a[80], b[40], d[30];
	memset(a, 'a', sizeof(a));
	memset(b, 'b', sizeof(b));
	memset(d, 'd', sizeof(d));
	device_write(dev, c, REQ(1), a, 80, 0);
	expect_written(1, 80);
	device_write(dev, c, REQ(2), b, 40, 0); /* all-or-nothing: parks */
	expect_pending(2);
	device_write(dev, c, REQ(3), d, 10, 0); /* would fit, but must not overtake */
	expect_pending(3);
	device_write(dev, c, REQ(4), d, 10, O_NONBLOCK);
	expect_error(4, EAGAIN);
	cr_assert_eq(fake_parked(dev), 2);
	device_read(dev, c, REQ(5), 30, 0, false); /* 50 free: b, then d */
	expect_data(5, a, 30);
	expect_written(2, 40);
	expect_written(3, 10);
	cr_assert_eq(fake_parked(dev), 0);
	cr_assert_eq(info(c).queued_bytes, 100);
	device_release(dev, c);
}

Test(pipe, large_blocking_write_moves_in_parts)
{
	struct open_ctx *c = fake_open(dev, "big", O_RDWR, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 64);
	uint8_t buf[200];
	for (int i = 0; i < 200; i++)
		buf[i] = (uint8_t)i;
	device_write(dev, c, REQ(1), buf, 200, 0);
	expect_pending(1);
	cr_assert_eq(info(c).queued_bytes, 64, "what fits moves at once");
	uint8_t got[200];
	size_t n = 0;
	for (int i = 2; n < 200; i++) {
		device_read(dev, c, REQ(i), 50, 0, false);
		memcpy(got + n, fake_replies[i].data, fake_replies[i].count);
		n += fake_replies[i].count;
	}
	cr_assert_arr_eq(got, buf, 200);
	expect_written(1, 200);
	/* Non-blocking: partial count, then EAGAIN when full. */
	device_write(dev, c, REQ(30), buf, 200, O_NONBLOCK);
	expect_written(30, 64);
	device_write(dev, c, REQ(31), buf, 200, O_NONBLOCK);
	expect_error(31, EAGAIN);
	device_release(dev, c);
}

Test(pipe, parked_readers_are_served_in_fifo_order)
{
	struct open_ctx *r1 = fake_open(dev, "q", O_RDONLY, 0, 0, 0);
	struct open_ctx *r2 = fake_open(dev, "q", O_RDONLY, 0, 0, 0);
	struct open_ctx *w = fake_open(dev, "q", O_WRONLY, 0, 0, 0);
	device_read(dev, r1, REQ(1), 4, 0, false);
	device_read(dev, r2, REQ(2), 4, 0, false);
	device_read(dev, r1, REQ(3), 4, 0, false);
	cr_assert_eq(fake_parked(dev), 3);
	device_write(dev, w, REQ(4), "aaaabbbbcc", 10, 0);
	expect_data(1, "aaaa", 4);
	expect_data(2, "bbbb", 4);
	expect_data(3, "cc", 2);
	/* The first straight from the write's buffer, held until the handler
	 * returns; the rest through the ring, lent only for the call. */
	cr_assert(fake_replies[1].held, "handed over from the write");
	cr_assert(!fake_replies[2].held && !fake_replies[3].held, "served from the ring");
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, w);
	device_release(dev, r1);
	device_release(dev, r2);
}

Test(pipe, eof_only_after_writers_had_attached_and_left)
{
	struct open_ctx *r = fake_open(dev, "e", O_RDONLY, 0, 0, 0);
	device_read(dev, r, REQ(1), 10, O_NONBLOCK, false);
	expect_error(1, EAGAIN); /* never had a writer: no EOF */
	device_read(dev, r, REQ(2), 10, 0, false);
	expect_pending(2);
	struct open_ctx *w = fake_open(dev, "e", O_WRONLY, 0, 0, 0);
	device_write(dev, w, REQ(3), "xy", 2, 0);
	expect_data(2, "xy", 2);
	device_read(dev, r, REQ(4), 10, 0, false);
	expect_pending(4);
	device_release(dev, w); /* last writer leaves an empty pipe: EOF */
	expect_data(4, NULL, 0);
	device_read(dev, r, REQ(5), 10, 0, false);
	expect_data(5, NULL, 0);
	struct open_ctx *w2 = fake_open(dev, "e", O_WRONLY, 0, 0, 0);
	device_read(dev, r, REQ(6), 10, O_NONBLOCK, false);
	expect_error(6, EAGAIN); /* a new writer ends EOF */
	device_release(dev, w2);
	device_release(dev, r);
}

Test(pipe, a_writer_passing_through_does_not_end_readers)
{
	/* A CUSE open for writing starts on the default pipe and ATTACHes
	 * elsewhere: the readers waiting on the default pipe must keep waiting. */
	struct open_ctx *r = fake_open(dev, "default", O_RDONLY, 0, 0, 0);
	device_read(dev, r, REQ(1), 10, 0, false);
	struct open_ctx *w = fake_open(dev, "default", O_WRONLY, 0, 0, 0);
	struct attach_args a = { .name = "other", .len = 5, .flags = RINGDEV_ATTACH_CREATE };
	cr_assert_eq(device_attach(dev, w, fake_ctx_cred(w), &a), 0);
	expect_pending(1);
	cr_assert_eq(device_detach(dev, w), 0);
	expect_pending(1);
	/* A writer that closes does end it, written or not (as with FIFOs). */
	struct open_ctx *w2 = fake_open(dev, "default", O_WRONLY, 0, 0, 0);
	device_release(dev, w2);
	expect_data(1, NULL, 0);
	device_release(dev, w);
	device_release(dev, r);
}

Test(pipe, resize_with_data_queued_loses_nothing)
{
	struct open_ctx *c = fake_open(dev, "r", O_RDWR, 0, 0, 200);
	uint8_t buf[256];
	for (int i = 0; i < 256; i++)
		buf[i] = (uint8_t)(i * 3 + 1);
	device_write(dev, c, REQ(1), buf, 150, 0);
	device_read(dev, c, REQ(2), 100, 0, false);   /* start moves to 100 */
	device_write(dev, c, REQ(3), buf + 150, 80, 0); /* wraps: 130 queued */
	device_write(dev, c, REQ(4), buf, 100, 0);    /* 70 free: parks */
	expect_written(3, 80);
	expect_pending(4);
	struct cred cr = fake_cred(0);
	struct ringdev_pipe_config cfg = { .set = RINGDEV_SET_CAPACITY, .capacity = 128 };
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), -EBUSY,
		     "below what is queued");
	cfg.capacity = 150;
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), 0);
	expect_pending(4);
	cfg.capacity = 4096;
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), 0);
	expect_written(4, 100); /* growth released the parked writer */
	device_read(dev, c, REQ(5), 1000, 0, false);
	cr_assert_eq(fake_replies[5].count, 230);
	cr_assert_arr_eq(fake_replies[5].data, buf + 100, 130, "the wrapped data survived two resizes");
	cr_assert_arr_eq(fake_replies[5].data + 130, buf, 100);
	cr_assert_eq(info(c).capacity, 4096);
	device_release(dev, c);
}

Test(pipe, memory_limit_refuses_allocation_and_growth)
{
	/* max_memory 1 MiB from setup. */
	struct open_ctx *a = fake_open(dev, "a", O_RDWR, 0, 0, 768 * 1024);
	struct open_ctx *b = fake_open(dev, "b", O_RDWR, 0, 0, 512 * 1024);
	device_write(dev, a, REQ(1), "x", 1, 0);
	expect_written(1, 1);
	device_write(dev, b, REQ(2), "x", 1, 0);
	expect_error(2, ENOSPC);
	struct cred cr = fake_cred(0);
	struct ringdev_pipe_config cfg = { .set = RINGDEV_SET_CAPACITY, .capacity = 2 << 20 };
	cr_assert_eq(device_ioctl(dev, a, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), -ENOSPC);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.limit_memory_hits, 2);
	cr_assert_eq(s.memory_used, 768 * 1024);
	device_release(dev, a); /* "a" keeps its byte: still allocated */
	device_release(dev, b);
	device_stats(dev, &s);
	cr_assert_eq(s.memory_used, 768 * 1024);
	cr_assert_eq(s.pipes, 1);
}

Test(pipe, poll_mask_and_notifications)
{
	struct open_ctx *r = fake_open(dev, "p", O_RDONLY, 0, 0, 64);
	struct open_ctx *w = fake_open(dev, "p", O_WRONLY, 0, 0, 0);
	cr_assert_eq(device_poll(dev, r, NULL), 0u);
	cr_assert_eq(device_poll(dev, w, NULL), (unsigned)(POLLOUT | POLLWRNORM));
	cr_assert_eq(device_poll(dev, r, REQ(100)), 0u);
	device_write(dev, w, REQ(1), "hi", 2, 0);
	cr_assert_eq(fake_notifies, 1, "the reader's poller is woken when data arrives");
	cr_assert_eq(device_poll(dev, r, NULL), (unsigned)(POLLIN | POLLRDNORM));
	device_write(dev, w, REQ(2), "hi", 2, 0);
	cr_assert_eq(fake_notifies, 1, "no handle, no second wake-up");
	uint8_t fill[60] = { 0 };
	device_write(dev, w, REQ(3), fill, 60, 0); /* 64 of 64 */
	cr_assert_eq(device_poll(dev, w, NULL), 0u, "full: not writable");
	device_poll(dev, w, REQ(101));
	device_read(dev, r, REQ(4), 64, 0, false);
	cr_assert_eq(fake_notifies, 2, "the writer's poller is woken when room appears");
	device_poll(dev, r, REQ(102));
	device_release(dev, w);
	cr_assert_eq(fake_notifies, 3, "EOF wakes the reader");
	cr_assert_eq(device_poll(dev, r, NULL), (unsigned)POLLHUP);
	device_release(dev, r);
}
