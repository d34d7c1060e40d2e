/* SPDX-License-Identifier: MIT */
/*
 * test_parked.c - every way a parked request ends early: interrupt (before
 * and after parking), detach, release, shutdown; a partially done write
 * answers its count. After each, the parked count is back to zero.
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

TestSuite(parked, .init = setup, .fini = teardown);

static void expect_error(int req, int err)
{
	cr_assert_eq(fake_replies[req].answers, 1, "request %d answered %d times", req, fake_replies[req].answers);
	cr_assert_eq(fake_replies[req].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[req].err, err, "request %d: %d, expected %d", req, fake_replies[req].err, err);
}

Test(parked, interrupt_ends_a_parked_read_and_loses_nothing)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDWR, 0, 0, 0);
	device_read(dev, c, REQ(1), 10, 0, false);
	cr_assert_eq(fake_parked(dev), 1);
	device_interrupt(dev, REQ(1));
	expect_error(1, EINTR);
	cr_assert_eq(fake_parked(dev), 0);
	device_interrupt(dev, REQ(1)); /* late or duplicate: ignored */
	cr_assert_eq(fake_replies[1].answers, 1);
	device_write(dev, c, REQ(2), "data", 4, 0);
	device_read(dev, c, REQ(3), 10, 0, false);
	cr_assert_eq(fake_replies[3].count, 4, "the data went to the next read, not the interrupted one");
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.interrupts, 1);
	device_release(dev, c);
}

Test(parked, interrupted_before_parking_is_not_parked)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDWR, 0, 0, 64);
	fake_interrupted[1] = true;
	device_read(dev, c, REQ(1), 10, 0, false);
	expect_error(1, EINTR);
	uint8_t buf[64] = { 0 };
	device_write(dev, c, REQ(2), buf, 64, 0);
	fake_interrupted[3] = true;
	device_write(dev, c, REQ(3), buf, 10, 0);
	expect_error(3, EINTR);
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, c);
}

Test(parked, interrupted_partial_write_answers_its_count)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDWR, 0, 0, 64);
	uint8_t buf[100] = { 0 };
	device_write(dev, c, REQ(1), buf, 100, 0); /* 64 moved, 36 parked */
	cr_assert_eq(fake_parked(dev), 1);
	device_interrupt(dev, REQ(1));
	cr_assert_eq(fake_replies[1].kind, FAKE_WRITTEN);
	cr_assert_eq(fake_replies[1].count, 64);
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, c);
}

Test(parked, interrupt_of_head_writer_releases_the_next)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDWR, 0, 0, 64);
	uint8_t buf[64] = { 0 };
	device_write(dev, c, REQ(1), buf, 60, 0);
	device_write(dev, c, REQ(2), buf, 10, 0); /* parks: 4 free */
	device_write(dev, c, REQ(3), buf, 2, 0);  /* parks behind it */
	cr_assert_eq(fake_parked(dev), 2);
	device_interrupt(dev, REQ(2));
	expect_error(2, EINTR);
	cr_assert_eq(fake_replies[3].kind, FAKE_WRITTEN, "the next writer no longer waits behind it");
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, c);
}

Test(parked, release_ends_parked_requests)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDWR, 0, 0, 64);
	struct open_ctx *other = fake_open(dev, "x", O_RDONLY, 0, 0, 0);
	device_read(dev, c, REQ(1), 10, 0, false);
	device_read(dev, other, REQ(2), 10, 0, false);
	device_release(dev, c);
	expect_error(1, EBADF);
	/* c was the only writer and the pipe is empty: EOF for the other reader. */
	cr_assert_eq(fake_replies[2].kind, FAKE_DATA);
	cr_assert_eq(fake_replies[2].count, 0);
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, other);
}

Test(parked, detach_ends_parked_requests_and_attach_again_works)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDONLY, 0, 0, 0);
	device_read(dev, c, REQ(1), 10, 0, false);
	cr_assert_eq(device_detach(dev, c), 0);
	expect_error(1, ENXIO);
	device_read(dev, c, REQ(2), 10, 0, false);
	expect_error(2, ENXIO);
	cr_assert_eq(device_poll(dev, c, NULL) & POLLERR, POLLERR);
	struct attach_args a = { .name = "y", .len = 1, .flags = RINGDEV_ATTACH_CREATE };
	cr_assert_eq(device_attach(dev, c, fake_ctx_cred(c), &a), 0);
	device_read(dev, c, REQ(3), 10, O_NONBLOCK, false);
	expect_error(3, EAGAIN);
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, c);
}

Test(parked, shutdown_ends_everything_with_eshutdown)
{
	struct open_ctx *r = fake_open(dev, "x", O_RDONLY, 0, 0, 64);
	struct open_ctx *w = fake_open(dev, "x", O_WRONLY, 0, 0, 0);
	uint8_t buf[64] = { 0 };
	device_read(dev, r, REQ(1), 10, 0, false);
	device_write(dev, w, REQ(2), buf, 64, 0); /* served reader 1 */
	device_write(dev, w, REQ(3), buf, 20, 0); /* 54 queued, parks */
	struct open_ctx *r2 = fake_open(dev, "empty", O_RDONLY, 0, 0, 0);
	device_read(dev, r2, REQ(4), 10, 0, false);
	device_poll(dev, r2, REQ(200));
	cr_assert_eq(fake_parked(dev), 2);
	device_shutdown(dev);
	expect_error(3, ESHUTDOWN);
	expect_error(4, ESHUTDOWN);
	cr_assert_eq(fake_parked(dev), 0);
	cr_assert_eq(fake_destroys, 1, "poll handles are dropped");
	/* device_free (teardown) releases the handles still open. */
}

Test(parked, overwrite_policy_switch_completes_parked_writers)
{
	struct open_ctx *c = fake_open(dev, "x", O_RDWR, 0, 0, 64);
	uint8_t buf[64] = { 0 };
	device_write(dev, c, REQ(1), buf, 64, 0);
	device_write(dev, c, REQ(2), buf, 10, 0);
	cr_assert_eq(fake_parked(dev), 1);
	struct cred cr = fake_cred(0);
	struct ringdev_pipe_config cfg = { .set = RINGDEV_SET_POLICY, .policy = RINGDEV_POLICY_OVERWRITE };
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), 0);
	cr_assert_eq(fake_replies[2].kind, FAKE_WRITTEN);
	cr_assert_eq(fake_parked(dev), 0);
	device_release(dev, c);
}
