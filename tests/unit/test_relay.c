/* SPDX-License-Identifier: MIT */
/*
 * test_relay.c - the inverted call in the core, with a fake frontend:
 * control node rules, TRANSACT parking and batching, each request type,
 * answer checks (rejected and malformed), cancel, the broker going away,
 * --broker-timeout, FETCH and STAGE. Parked counts end at zero every time.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "device.h"
#include "fake_frontend.h"

static struct device *dev;
static struct open_ctx *ctl;
static struct cred root;

static void setup(void)
{
	dev = fake_device_broker(false, 5000);
	root = fake_cred(0);
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0);
}

static void teardown(void)
{
	device_shutdown(dev);
	device_free(dev);
}

TestSuite(relay, .init = setup, .fini = teardown, .timeout = 20);

static struct ringdev_ctl_transact *tr_new(uint32_t max, uint32_t timeout_ms)
{
	struct ringdev_ctl_transact *t = calloc(1, sizeof(*t));
	t->max_requests = max;
	t->timeout_ms = timeout_ms;
	return t;
}

/* Issue TRANSACT as request `req`; true if it was answered at once. */
static bool transact(struct ringdev_ctl_transact *t, int req)
{
	cr_assert(device_ioctl_async(dev, ctl, &root, REQ(req), RINGDEV_IOC_CTL_TRANSACT, t, sizeof(*t), sizeof(*t)));
	return fake_replies[req].answers == 1;
}

/* The transact struct a TRANSACT request was answered with. */
static const struct ringdev_ctl_transact *result(int req)
{
	cr_assert_eq(fake_replies[req].kind, FAKE_IOCTL, "TRANSACT %d: kind %d err %d", req, fake_replies[req].kind,
		     fake_replies[req].err);
	return (const struct ringdev_ctl_transact *)fake_replies[req].data;
}

static void answer(struct ringdev_ctl_transact *t, uint64_t id, int32_t res)
{
	struct ringdev_ctl_answer *a = &t->answers[t->nanswers++];
	memset(a, 0, sizeof(*a));
	a->id = id;
	a->result = res;
}

static uint64_t parked(void)
{
	return fake_parked(dev);
}

static struct open_ctx *app_on(const char *pipe)
{
	struct open_ctx *c = fake_open(dev, pipe, O_RDWR, 0, 0, 0);
	return c;
}

Test(relay, control_node_is_exclusive_and_checked)
{
	struct open_ctx *x;
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &x), -EBUSY);
	device_release(dev, ctl);
	struct cred user = fake_cred(1000);
	cr_assert_eq(device_ctl_open(dev, &user, O_RDWR, &x), -EACCES);
	cr_assert_eq(device_ctl_open(dev, &root, O_RDONLY, &x), -EINVAL);
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0, "a new broker can connect");
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.broker_connected, 1);
}

Test(relay, open_is_relayed_and_mapped)
{
	struct open_args args = { .default_pipe = true };
	device_open_request(dev, &root, O_RDWR, &args, REQ(1));
	cr_assert_eq(fake_replies[1].answers, 0, "the open waits for the broker");
	cr_assert_eq(parked(), 1);
	struct ringdev_ctl_transact *t = tr_new(RINGDEV_CTL_BATCH, 0);
	cr_assert(transact(t, 2));
	const struct ringdev_ctl_transact *got = result(2);
	cr_assert_eq(got->nrequests, 1);
	cr_assert_eq(got->requests[0].type, RINGDEV_CTL_OPEN);
	cr_assert_str_eq(got->requests[0].name, "", "a CUSE open carries no name");
	uint64_t id = got->requests[0].id;
	memset(t, 0, sizeof(*t));
	answer(t, id, 0);
	strcpy(t->answers[0].name, "user.1000");
	t->answers[0].flags = RINGDEV_ANSWER_SETTINGS;
	t->answers[0].kind = RINGDEV_KIND_MESSAGE;
	t->answers[0].policy = RINGDEV_POLICY_BLOCK;
	t->answers[0].capacity = 4096;
	t->answers[0].mode = 0600;
	t->answers[0].uid = 1000;
	cr_assert(transact(t, 3));
	cr_assert_eq(fake_replies[1].kind, FAKE_OPENED);
	struct open_ctx *app = fake_replies[1].ctx;
	struct ringdev_pipe_info pi;
	cr_assert_eq(device_ioctl(dev, app, &root, RINGDEV_IOC_PIPE_INFO, NULL, 0, &pi, sizeof(pi)), 0);
	cr_assert_str_eq(pi.name, "user.1000");
	cr_assert_eq(pi.kind, RINGDEV_KIND_MESSAGE);
	cr_assert_eq(pi.capacity, 4096);
	cr_assert_eq(pi.uid, 1000);
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
	free(t);
}

Test(relay, a_creation_is_the_brokers_to_decide)
{
	struct cred user = fake_cred(1000);
	struct cred other = fake_cred(2000);
	/* MKNOD with a broker: the pipe is its creator's alone, by no name,
	 * until the broker allows the creator's open. */
	struct pipe_attr made, seen;
	cr_assert_eq(device_mknod(dev, &user, "mine", 4, 0666, &made), 0);
	cr_assert_eq(device_lookup(dev, &other, "mine", 4, &seen), -ENOENT, "nobody else meets it");
	cr_assert_eq(device_lookup(dev, &root, "mine", 4, &seen), -ENOENT, "not even root");
	cr_assert_eq(device_getattr(dev, &other, made.ino, &seen), -ENOENT);
	cr_assert_eq(device_lookup(dev, &user, "mine", 4, &seen), 0, "its creator finds it");
	struct pipe_attr root_made;
	cr_assert_eq(device_mknod(dev, &root, "mine", 4, 0600, &root_made), 0, "root may make its own meanwhile");
	struct open_args args = { .ino = made.ino };
	device_open_request(dev, &user, O_WRONLY, &args, REQ(1));
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 2);
	cr_assert_eq(result(2)->requests[0].type, RINGDEV_CTL_OPEN);
	cr_assert_eq(result(2)->requests[0].attach_flags, RINGDEV_ATTACH_CREATE, "the OPEN says it creates");
	uint64_t id = result(2)->requests[0].id;
	memset(t, 0, sizeof(*t));
	answer(t, id, -EPERM);
	transact(t, 3);
	cr_assert_eq(fake_replies[1].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[1].err, EPERM, "a broker that denies the user: no pipe is made");
	cr_assert_eq(device_lookup(dev, &user, "mine", 4, &seen), -ENOENT);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.pipes, 1, "only root's provisional pipe is left");
	/* RINGDEV_IOC_CREATE (ringdevctl create) is asked as an ATTACH with
	 * CREATE|EXCL on a handle of its own. */
	struct open_ctx *app = app_on("p");
	struct ringdev_create c = { .mode = 0600 };
	strcpy(c.name, "user.7");
	cr_assert(device_ioctl_async(dev, app, &user, REQ(10), RINGDEV_IOC_CREATE, &c, sizeof(c), 0));
	cr_assert_eq(fake_replies[10].answers, 0, "CREATE waits for the broker");
	memset(t, 0, sizeof(*t));
	t->max_requests = 1;
	transact(t, 11);
	cr_assert_eq(result(11)->requests[0].type, RINGDEV_CTL_ATTACH);
	cr_assert_eq(result(11)->requests[0].attach_flags, RINGDEV_ATTACH_CREATE | RINGDEV_ATTACH_EXCL);
	cr_assert_str_eq(result(11)->requests[0].name, "user.7");
	cr_assert_eq(result(11)->requests[0].uid, 1000);
	id = result(11)->requests[0].id;
	memset(t, 0, sizeof(*t));
	answer(t, id, -EACCES);
	transact(t, 12);
	cr_assert_eq(fake_replies[10].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[10].err, EACCES);
	device_stats(dev, &s);
	cr_assert_eq(s.pipes, 2, "p and root's provisional pipe");
	cr_assert_eq(s.opens, 2, "the broker's and the app's: the creation's own handle is gone");
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
	free(t);
}

Test(relay, denied_open_fails_with_the_brokers_errno)
{
	struct pipe_attr made;
	cr_assert_eq(device_mknod(dev, &root, "x", 1, 0600, &made), 0, "O_CREAT on the mount: MKNOD, then OPEN");
	struct open_args args = { .ino = made.ino };
	device_open_request(dev, &root, O_RDWR, &args, REQ(1));
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 2);
	cr_assert_str_eq(result(2)->requests[0].name, "x");
	uint64_t id = result(2)->requests[0].id;
	memset(t, 0, sizeof(*t));
	answer(t, id, -EPERM);
	transact(t, 3);
	cr_assert_eq(fake_replies[1].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[1].err, EPERM);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.opens, 1, "only the broker's handle is left");
	cr_assert_eq(s.pipes, 0, "the pipe made for the denied open is gone");
	free(t);
}

Test(relay, transact_parks_and_batches)
{
	struct ringdev_ctl_transact *t = tr_new(RINGDEV_CTL_BATCH, 10000);
	cr_assert_not(transact(t, 1), "nothing pending: the TRANSACT parks");
	cr_assert_eq(parked(), 1);
	struct open_ctx *app = app_on("p");
	uint8_t in[8] = "payload";
	unsigned int cmd = _IOWR(RINGDEV_IOC_MAGIC, 0x90, uint64_t);
	for (int i = 0; i < 6; i++)
		cr_assert(device_ioctl_async(dev, app, &root, REQ(10 + i), cmd, in, sizeof(in), sizeof(in)));
	/* The first request woke the parked TRANSACT; five wait for the next. */
	cr_assert_eq(result(1)->nrequests, 1);
	struct ringdev_ctl_transact *t2 = tr_new(RINGDEV_CTL_BATCH, 0);
	answer(t2, result(1)->requests[0].id, 7);
	t2->answers[0].size = 8;
	memcpy(t2->answers[0].data, "answered", 8);
	transact(t2, 2);
	const struct ringdev_ctl_transact *b = result(2);
	cr_assert_eq(b->nrequests, RINGDEV_CTL_BATCH, "a whole batch in one call");
	cr_assert_eq(fake_replies[10].kind, FAKE_IOCTL);
	cr_assert_eq(fake_replies[10].err, 7, "the broker's result is the ioctl's value");
	cr_assert_arr_eq(fake_replies[10].data, "answered", 8);
	struct ringdev_ctl_transact *t3 = tr_new(RINGDEV_CTL_BATCH, 0);
	for (uint32_t i = 0; i < b->nrequests; i++) {
		cr_assert_eq(b->requests[i].cmd, cmd);
		cr_assert_arr_eq(b->requests[i].data, in, sizeof(in));
		answer(t3, b->requests[i].id, 0);
	}
	transact(t3, 3);
	cr_assert_eq(result(3)->nrequests, 1, "the sixth");
	for (int i = 11; i < 15; i++)
		cr_assert_eq(fake_replies[i].kind, FAKE_IOCTL, "app %d answered", i);
	memset(t3, 0, sizeof(*t3));
	answer(t3, result(3)->requests[0].id, -ENOTTY);
	transact(t3, 4);
	cr_assert_eq(fake_replies[15].err, ENOTTY);
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
	free(t);
	free(t2);
	free(t3);
}

Test(relay, unknown_duplicate_and_malformed_answers)
{
	struct open_ctx *app = app_on("p");
	unsigned int cmd = _IOR(RINGDEV_IOC_MAGIC, 0x91, uint32_t);
	device_ioctl_async(dev, app, &root, REQ(10), cmd, NULL, 0, 4);
	device_ioctl_async(dev, app, &root, REQ(11), cmd, NULL, 0, 4);
	device_ioctl_async(dev, app, &root, REQ(12), cmd, NULL, 0, 4);
	struct ringdev_ctl_transact *t = tr_new(RINGDEV_CTL_BATCH, 0);
	transact(t, 1);
	const struct ringdev_ctl_transact *got = result(1);
	cr_assert_eq(got->nrequests, 3);
	uint64_t a = got->requests[0].id, b = got->requests[1].id, c = got->requests[2].id;
	memset(t, 0, sizeof(*t));
	answer(t, 424242, 0);       /* unknown */
	answer(t, a, 0);            /* good */
	answer(t, a, 0);            /* duplicate */
	answer(t, b, -5000);        /* errno out of range */
	transact(t, 2);
	cr_assert_eq(result(2)->rejected, 2);
	cr_assert_eq(result(2)->failed, 1);
	cr_assert_eq(fake_replies[10].kind, FAKE_IOCTL);
	cr_assert_eq(fake_replies[11].err, EIO, "a malformed answer fails its request with EIO");
	memset(t, 0, sizeof(*t));
	answer(t, c, 0);
	t->answers[0].size = 8; /* more than the command's 4 out bytes */
	transact(t, 3);
	cr_assert_eq(result(3)->failed, 1);
	cr_assert_eq(fake_replies[12].err, EIO);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.relay_rejected, 2);
	cr_assert_eq(s.relay_failed, 2);
	cr_assert_eq(s.parked_total, 0);
	/* The whole call is refused when it is out of bounds. */
	memset(t, 0, sizeof(*t));
	t->nanswers = RINGDEV_CTL_BATCH + 1;
	transact(t, 4);
	cr_assert_eq(fake_replies[4].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[4].err, EINVAL);
	device_release(dev, app);
	free(t);
}

/* Interrupting a request nobody took yet ends it at once: nobody did
 * anything. */
Test(relay, interrupt_before_taken_ends_at_once)
{
	struct open_ctx *app = app_on("p");
	device_ioctl_async(dev, app, &root, REQ(10), _IO(RINGDEV_IOC_MAGIC, 0x92), NULL, 0, 0);
	device_interrupt(dev, REQ(10));
	cr_assert_eq(fake_replies[10].err, EINTR, "not taken: EINTR at once");
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 1);
	cr_assert_eq(result(1)->nrequests, 0, "nothing for the broker, not even a CANCEL");
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
	free(t);
}

/* Issue 19 B: an interrupt of a request the broker took asks the broker
 * (CANCEL, ref = its id) and keeps the request answerable; the broker's
 * "cancelled" answer (-EINTR) ends it with EINTR. */
Test(relay, interrupt_of_taken_request_sends_cancel_and_waits)
{
	struct open_ctx *app = app_on("p");
	device_ioctl_async(dev, app, &root, REQ(10), _IO(RINGDEV_IOC_MAGIC, 0x92), NULL, 0, 0);
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 1);
	uint64_t id = result(1)->requests[0].id;
	device_interrupt(dev, REQ(10));
	cr_assert_eq(fake_replies[10].answers, 0, "the app waits for the broker's answer");
	device_interrupt(dev, REQ(10));
	cr_assert_eq(fake_replies[10].answers, 0, "a second interrupt changes nothing");
	cr_assert_eq(parked(), 1);
	memset(t, 0, sizeof(*t));
	t->max_requests = RINGDEV_CTL_BATCH;
	transact(t, 2);
	cr_assert_eq(result(2)->nrequests, 1, "one CANCEL, however many interrupts");
	cr_assert_eq(result(2)->requests[0].type, RINGDEV_CTL_CANCEL);
	cr_assert_eq(result(2)->requests[0].ref, id);
	memset(t, 0, sizeof(*t));
	answer(t, id, -EINTR);
	transact(t, 3);
	cr_assert_eq(result(3)->refused, 0, "the answer was taken");
	cr_assert_eq(fake_replies[10].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[10].err, EINTR, "cancelled, nothing done: EINTR");
	cr_assert_eq(parked(), 0);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.relay_cancels, 1);
	device_release(dev, app);
	free(t);
}

/* A brokered pipe's handle for the app (answer BROKERED to its open). */
static struct open_ctx *brokered_app(const char *pipe, int oreq, int treq)
{
	struct open_args args = { .default_pipe = true };
	device_open_request(dev, &root, O_RDWR, &args, REQ(oreq));
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, treq);
	uint64_t id = result(treq)->requests[0].id;
	memset(t, 0, sizeof(*t));
	answer(t, id, 0);
	strcpy(t->answers[0].name, pipe);
	t->answers[0].flags = RINGDEV_ANSWER_BROKERED;
	transact(t, treq + 1);
	free(t);
	cr_assert_eq(fake_replies[oreq].kind, FAKE_OPENED);
	return fake_replies[oreq].ctx;
}

/* An interrupt that came before its request parked (libfuse calls the
 * interrupt callback at once then, and the kernel sends no second one)
 * ends the request at once: parked, it would have waited for a broker that
 * may never answer, its caller unkillable (the concurrency review's
 * readers of a rendezvous pipe, stuck in D state after a signal storm). */
Test(relay, a_request_interrupted_before_it_parks_is_not_relayed)
{
	struct open_ctx *app = brokered_app("sink", 1, 2);
	static uint8_t bytes[8];
	unsigned int cmd = _IOWR(RINGDEV_IOC_MAGIC, 0x90, uint64_t);
	fake_interrupted[10] = fake_interrupted[11] = fake_interrupted[12] = true;
	device_read(dev, app, REQ(10), 8, 0, false);
	device_write(dev, app, REQ(11), bytes, sizeof(bytes), 0);
	cr_assert(device_ioctl_async(dev, app, &root, REQ(12), cmd, bytes, sizeof(bytes), sizeof(bytes)));
	for (int i = 10; i <= 12; i++) {
		cr_assert_eq(fake_replies[i].kind, FAKE_ERROR, "request %d was parked", i);
		cr_assert_eq(fake_replies[i].err, EINTR);
	}
	cr_assert_eq(parked(), 0);
	struct ringdev_ctl_transact *t = tr_new(RINGDEV_CTL_BATCH, 0);
	transact(t, 13);
	cr_assert_eq(result(13)->nrequests, 0, "nothing reached the broker");
	device_release(dev, app);
	free(t);
}

/* Issue 19 B: the broker completed the READ and WRITE it took while the
 * app was interrupting them: the app gets the data and the count, so no
 * byte is lost (reader) or sent twice (writer retrying after EINTR). */
Test(relay, answers_after_cancel_are_delivered)
{
	struct open_ctx *app = brokered_app("sink", 1, 2);
	static uint8_t bytes[100];
	memset(bytes, 'w', sizeof(bytes));
	device_read(dev, app, REQ(10), 50, 0, false);
	device_write(dev, app, REQ(11), bytes, sizeof(bytes), 0);
	struct ringdev_ctl_transact *t = tr_new(2, 0);
	transact(t, 4);
	cr_assert_eq(result(4)->nrequests, 2);
	uint64_t rid = result(4)->requests[0].id, wid = result(4)->requests[1].id;
	device_interrupt(dev, REQ(10));
	device_interrupt(dev, REQ(11));
	cr_assert_eq(fake_replies[10].answers + fake_replies[11].answers, 0, "both wait for the broker");
	memset(t, 0, sizeof(*t));
	answer(t, rid, 5);
	t->answers[0].size = 5;
	memcpy(t->answers[0].data, "hello", 5);
	answer(t, wid, 100);
	t->max_requests = RINGDEV_CTL_BATCH;
	transact(t, 5);
	cr_assert_eq(result(5)->refused, 0);
	cr_assert_eq(result(5)->nrequests, 2, "the two CANCELs");
	cr_assert_eq(result(5)->requests[0].type, RINGDEV_CTL_CANCEL);
	cr_assert_eq(fake_replies[10].kind, FAKE_DATA, "the reader gets the data the broker gave it");
	cr_assert_eq(fake_replies[10].count, 5);
	cr_assert_eq(memcmp(fake_replies[10].data, "hello", 5), 0);
	cr_assert_eq(fake_replies[11].kind, FAKE_WRITTEN, "the writer learns its bytes were taken");
	cr_assert_eq(fake_replies[11].count, 100);
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
	free(t);
}

/* Issue 19 B: a broker that ignores the CANCEL (an old one) cannot keep
 * the app: --cancel-timeout ends the call with EINTR and is counted; the
 * late answer is refused and the broker told so by its position. */
Test(relay_timeout, cancel_bound_ends_with_eintr_and_is_counted)
{
	fake_reset();
	struct device_config cfg = {
		.ring_size = 65536, .max_pipes = 64, .max_memory = 1 << 20, .mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE, .default_pipe = "default", .ctl_mode = 0600,
		.max_parked = 1 << 20, .broker_timeout_ms = 5000, .cancel_timeout_ms = 50,
	};
	dev = device_new(&cfg, &fake_ops);
	root = fake_cred(0);
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0);
	struct open_ctx *app = app_on("p");
	device_ioctl_async(dev, app, &root, REQ(10), _IO(RINGDEV_IOC_MAGIC, 0x92), NULL, 0, 0);
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 1);
	uint64_t id = result(1)->requests[0].id;
	device_interrupt(dev, REQ(10));
	struct ringdev_stats s;
	device_stats(dev, &s);
	for (int i = 0; i < 400 && s.parked_total != 0; i++) {
		usleep(10000);
		device_stats(dev, &s);
	}
	cr_assert_eq(s.parked_total, 0, "the bound ended it");
	cr_assert_eq(fake_replies[10].err, EINTR);
	struct ringdev_stats_ext x;
	device_stats_ext(dev, &x);
	cr_assert_eq(x.relay_cancel_timeouts, 1, "counted");
	memset(t, 0, sizeof(*t));
	answer(t, id + 1000, 0); /* unknown */
	answer(t, id, 0);        /* late: after the bound */
	transact(t, 2);
	cr_assert_eq(result(2)->rejected, 2);
	cr_assert_eq(result(2)->refused, 0x3, "both refused, by position");
	device_release(dev, app);
	free(t);
	device_shutdown(dev);
	device_free(dev);
}

/* Issue 19 B: TRANSACT says which of its answers reached no app: unknown,
 * duplicate, malformed, or for a request whose handle was released. */
Test(relay, refused_answers_are_reported_by_position)
{
	struct open_ctx *app = app_on("p");
	struct open_ctx *gone = app_on("q");
	device_ioctl_async(dev, app, &root, REQ(10), _IO(RINGDEV_IOC_MAGIC, 0x92), NULL, 0, 0);
	device_ioctl_async(dev, app, &root, REQ(11), _IO(RINGDEV_IOC_MAGIC, 0x92), NULL, 0, 0);
	device_ioctl_async(dev, gone, &root, REQ(12), _IO(RINGDEV_IOC_MAGIC, 0x92), NULL, 0, 0);
	struct ringdev_ctl_transact *t = tr_new(3, 0);
	transact(t, 1);
	cr_assert_eq(result(1)->nrequests, 3);
	uint64_t a = result(1)->requests[0].id, b = result(1)->requests[1].id, c = result(1)->requests[2].id;
	device_release(dev, gone);
	cr_assert_eq(fake_replies[12].err, EBADF);
	memset(t, 0, sizeof(*t));
	answer(t, a, 0);        /* taken */
	answer(t, a, 0);        /* duplicate */
	answer(t, b, -100000);  /* malformed: the app gets EIO */
	answer(t, c, 0);        /* its handle was released */
	t->max_requests = RINGDEV_CTL_BATCH;
	transact(t, 2);
	cr_assert_eq(result(2)->refused, 0xe, "refused: 0x%x", result(2)->refused);
	cr_assert_eq(result(2)->rejected, 2);
	cr_assert_eq(result(2)->failed, 1);
	cr_assert_eq(fake_replies[10].kind, FAKE_IOCTL);
	cr_assert_eq(fake_replies[11].err, EIO);
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
	free(t);
}

/* Issue 19, defect 15: pieces of a staged answer come in any order (several
 * broker threads) and may overlap; the answer is whole once they cover
 * 0..size, and only then. */
Test(relay, stage_out_of_order_is_accepted)
{
	struct open_ctx *app = brokered_app("sink", 1, 2);
	device_read(dev, app, REQ(10), 4000, 0, false);
	device_read(dev, app, REQ(11), 4000, 0, false);
	struct ringdev_ctl_transact *t = tr_new(2, 0);
	transact(t, 4);
	uint64_t id = result(4)->requests[0].id, id2 = result(4)->requests[1].id;
	struct ringdev_ctl_bulk *b = calloc(1, sizeof(*b));
	int req = 20;
	struct { uint64_t id; uint64_t off; uint32_t size; } pieces[] = {
		{ id, 2000, 2000 }, { id, 0, 1500 }, { id, 1000, 1500 },   /* covers 0..4000 */
		{ id2, 2000, 2000 }, { id2, 0, 1000 }, { id2, 1001, 999 }, /* byte 1000 missing */
	};
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++) {
		memset(b, 0, sizeof(*b));
		b->id = pieces[i].id;
		b->offset = pieces[i].off;
		b->size = pieces[i].size;
		for (uint32_t k = 0; k < b->size; k++)
			b->data[k] = (uint8_t)((b->offset + k) % 251);
		cr_assert(device_ioctl_async(dev, ctl, &root, REQ(req), RINGDEV_IOC_CTL_STAGE, b, sizeof(*b), 0));
		cr_assert_eq(fake_replies[req].kind, FAKE_IOCTL, "STAGE %zu: err %d", i, fake_replies[req].err);
		req++;
	}
	memset(t, 0, sizeof(*t));
	answer(t, id, 4000);
	t->answers[0].size = 4000;
	t->answers[0].flags = RINGDEV_ANSWER_STAGED;
	answer(t, id2, 4000);
	t->answers[1].size = 4000;
	t->answers[1].flags = RINGDEV_ANSWER_STAGED;
	transact(t, 5);
	cr_assert_eq(result(5)->failed, 1, "only the one with a hole is malformed");
	cr_assert_eq(result(5)->refused, 0x2);
	cr_assert_eq(fake_replies[10].kind, FAKE_DATA, "kind %d err %d", fake_replies[10].kind, fake_replies[10].err);
	cr_assert_eq(fake_replies[10].count, 4000);
	for (int k = 0; k < 4000; k++)
		cr_assert_eq(fake_replies[10].data[k], (uint8_t)(k % 251), "byte %d", k);
	cr_assert_eq(fake_replies[11].err, EIO);
	cr_assert_eq(parked(), 0);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.memory_used, 0, "the staged buffers were uncharged");
	device_release(dev, app);
	free(t);
	free(b);
}

/* Issue 19: relay payloads count against the memory limits of the app's
 * uid: a write whose copy does not fit fails with ENOBUFS, and what was
 * charged goes when the request does. */
Test(relay, payloads_are_charged_to_the_app)
{
	struct open_ctx *app = brokered_app("sink", 1, 2);
	static uint8_t big[(1 << 20) + 1];
	device_write(dev, app, REQ(10), big, sizeof(big), 0);
	cr_assert_eq(fake_replies[10].err, ENOBUFS, "over --max-memory: ENOBUFS");
	device_write(dev, app, REQ(11), big, 1000, 0);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.memory_used, 1000, "the write's copy is charged");
	cr_assert_geq(s.limit_memory_hits, 1);
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 4);
	memset(t, 0, sizeof(*t));
	answer(t, result(4)->requests[0].id, 1000);
	transact(t, 5);
	cr_assert_eq(fake_replies[11].count, 1000);
	device_stats(dev, &s);
	cr_assert_eq(s.memory_used, 0, "uncharged with the request");
	/* A read whose staged answer cannot be charged: the app gets ENOBUFS,
	 * the broker's STAGE ENOENT (the request is gone), its answer is
	 * refused. */
	device_read(dev, app, REQ(12), 1 << 20, 0, false);
	memset(t, 0, sizeof(*t));
	t->max_requests = 1;
	transact(t, 6);
	uint64_t rid = result(6)->requests[0].id;
	struct ringdev_ctl_bulk *b = calloc(1, sizeof(*b));
	b->id = rid;
	b->size = 10;
	cr_assert(device_ioctl_async(dev, ctl, &root, REQ(20), RINGDEV_IOC_CTL_STAGE, b, sizeof(*b), 0));
	cr_assert_eq(fake_replies[20].err, ENOENT);
	cr_assert_eq(fake_replies[12].err, ENOBUFS, "the read: %d", fake_replies[12].err);
	memset(t, 0, sizeof(*t));
	answer(t, rid, 10);
	t->answers[0].size = 10;
	t->answers[0].flags = RINGDEV_ANSWER_STAGED;
	transact(t, 7);
	cr_assert_eq(result(7)->refused, 1);
	device_stats(dev, &s);
	cr_assert_eq(s.memory_used, 0);
	cr_assert_eq(parked(), 0);
	free(b);
	device_release(dev, app);
	free(t);
}

Test(relay, broker_gone_ends_what_it_held)
{
	struct open_ctx *app = app_on("p");
	device_ioctl_async(dev, app, &root, REQ(10), _IO(RINGDEV_IOC_MAGIC, 0x93), NULL, 0, 0);
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 1); /* taken */
	struct open_args args = { .default_pipe = true };
	device_open_request(dev, &root, O_RDWR, &args, REQ(11)); /* pending */
	struct ringdev_ctl_transact *w = tr_new(1, 10000);
	device_release(dev, ctl);
	cr_assert_eq(fake_replies[10].err, ECONNRESET, "taken: ends with ECONNRESET");
	cr_assert_eq(fake_replies[11].kind, FAKE_OPENED, "not taken: decided by the built-in policy");
	cr_assert_eq(parked(), 0);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.relay_broker_gone, 1);
	cr_assert_eq(s.broker_connected, 0);
	/* Without a broker the built-in policy answers at once. */
	cr_assert_not(device_ioctl_async(dev, app, &root, REQ(12), _IO(RINGDEV_IOC_MAGIC, 0x93), NULL, 0, 0),
		      "device-specific ioctls go to the synchronous path (ENOTTY)");
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0);
	device_release(dev, fake_replies[11].ctx);
	device_release(dev, app);
	free(t);
	free(w);
}

Test(relay, brokered_pipe_read_and_write)
{
	struct open_args args = { .default_pipe = true };
	device_open_request(dev, &root, O_RDWR, &args, REQ(1));
	struct ringdev_ctl_transact *t = tr_new(1, 0);
	transact(t, 2);
	uint64_t id = result(2)->requests[0].id;
	memset(t, 0, sizeof(*t));
	answer(t, id, 0);
	strcpy(t->answers[0].name, "sink");
	t->answers[0].flags = RINGDEV_ANSWER_BROKERED;
	t->max_requests = 1;
	transact(t, 3);
	struct open_ctx *app = fake_replies[1].ctx;
	static uint8_t big[3000];
	memset(big, 'w', sizeof(big));
	device_write(dev, app, REQ(10), big, sizeof(big), 0);
	device_read(dev, app, REQ(11), 5000, 0, false);
	memset(t, 0, sizeof(*t));
	t->max_requests = 2;
	transact(t, 4);
	const struct ringdev_ctl_transact *got = result(4);
	cr_assert_eq(got->nrequests, 2);
	cr_assert_eq(got->requests[0].type, RINGDEV_CTL_WRITE);
	cr_assert_eq(got->requests[0].size, 3000);
	cr_assert_eq(got->requests[0].inline_size, RINGDEV_CTL_INLINE);
	cr_assert_eq(got->requests[1].type, RINGDEV_CTL_READ);
	uint64_t wid = got->requests[0].id, rid = got->requests[1].id;
	/* FETCH the rest of the write's payload. */
	struct ringdev_ctl_bulk *b = calloc(1, sizeof(*b));
	b->id = wid;
	b->offset = RINGDEV_CTL_INLINE;
	b->size = RINGDEV_CTL_BULK;
	cr_assert(device_ioctl_async(dev, ctl, &root, REQ(20), RINGDEV_IOC_CTL_FETCH, b, sizeof(*b), sizeof(*b)));
	cr_assert_eq(fake_replies[20].kind, FAKE_IOCTL);
	const struct ringdev_ctl_bulk *fb = (const struct ringdev_ctl_bulk *)fake_replies[20].data;
	cr_assert_eq(fb->size, 3000 - RINGDEV_CTL_INLINE);
	/* STAGE 2000 bytes for the read, then answer both. */
	memset(b, 0, sizeof(*b));
	b->id = rid;
	b->size = 2000;
	memset(b->data, 'r', 2000);
	cr_assert(device_ioctl_async(dev, ctl, &root, REQ(21), RINGDEV_IOC_CTL_STAGE, b, sizeof(*b), 0));
	cr_assert_eq(fake_replies[21].kind, FAKE_IOCTL);
	b->offset = 4000; /* past the 5000 wanted with its size */
	cr_assert(device_ioctl_async(dev, ctl, &root, REQ(22), RINGDEV_IOC_CTL_STAGE, b, sizeof(*b), 0));
	cr_assert_eq(fake_replies[22].err, EINVAL);
	memset(t, 0, sizeof(*t));
	answer(t, wid, 3000);
	answer(t, rid, 2000);
	t->answers[1].size = 2000;
	t->answers[1].flags = RINGDEV_ANSWER_STAGED;
	transact(t, 5);
	cr_assert_eq(fake_replies[10].kind, FAKE_WRITTEN);
	cr_assert_eq(fake_replies[10].count, 3000);
	cr_assert_eq(fake_replies[11].kind, FAKE_DATA);
	cr_assert_eq(fake_replies[11].count, 2000);
	cr_assert_eq(fake_replies[11].data[1999], 'r');
	struct ringdev_pipe_info pi;
	cr_assert_eq(device_ioctl(dev, app, &root, RINGDEV_IOC_PIPE_INFO, NULL, 0, &pi, sizeof(pi)), 0);
	cr_assert_eq(pi.queued_bytes, 0, "a brokered pipe's ring is not used");
	device_release(dev, ctl);
	device_read(dev, app, REQ(12), 10, 0, false);
	cr_assert_eq(fake_replies[12].err, ENOTCONN, "no broker: brokered I/O fails");
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0);
	device_release(dev, app);
	free(t);
	free(b);
}

TestSuite(relay_timeout, .timeout = 20);

Test(relay_timeout, required_broker_times_out)
{
	dev = fake_device_broker(true, 50);
	struct open_args args = { .default_pipe = true };
	device_open_request(dev, &root, O_RDWR, &args, REQ(1));
	cr_assert_eq(fake_parked(dev), 1, "no broker, but one is required: the open waits");
	/* The timer thread answers, under the device lock: wait through the
	 * counters (device_stats takes the lock), never by reading the reply
	 * while that thread may be writing it. */
	struct ringdev_stats s;
	device_stats(dev, &s);
	for (int i = 0; i < 400 && s.parked_total != 0; i++) {
		usleep(10000);
		device_stats(dev, &s);
	}
	cr_assert_eq(fake_replies[1].kind, FAKE_ERROR);
	cr_assert_eq(fake_replies[1].err, ETIMEDOUT);
	cr_assert_eq(s.relay_timeouts, 1);
	cr_assert_eq(s.parked_total, 0);
	cr_assert_eq(s.opens, 0);
	device_shutdown(dev);
	device_free(dev);
}

/* Issue 8, defect 1: the broker leaves while a handle has an ATTACH and
 * IOCTLs relayed, none taken. The built-in policy decides every one (the
 * ATTACH moves the handle, the IOCTLs get ENOTTY); nothing is used after it
 * was freed (the sanitizer build runs this too), in either order. */
Test(relay, broker_gone_decides_pending_attach_and_ioctls_in_any_order)
{
	unsigned int cmd = _IOWR(RINGDEV_IOC_MAGIC, 0x90, uint64_t);
	uint64_t arg = 1;
	for (int round = 0; round < 2; round++) {
		struct open_ctx *app = app_on("start");
		struct ringdev_attach at = { .flags = RINGDEV_ATTACH_CREATE };
		snprintf(at.name, sizeof(at.name), "moved%d", round);
		int req = 100 * (round + 1);
		if (round == 0)
			cr_assert(device_ioctl_async(dev, app, &root, REQ(req), RINGDEV_IOC_ATTACH, &at, sizeof(at), 0));
		for (int i = 1; i <= 3; i++)
			cr_assert(device_ioctl_async(dev, app, &root, REQ(req + i), cmd, &arg, sizeof(arg), sizeof(arg)));
		if (round == 1)
			cr_assert(device_ioctl_async(dev, app, &root, REQ(req), RINGDEV_IOC_ATTACH, &at, sizeof(at), 0));
		cr_assert_eq(parked(), 4);
		device_release(dev, ctl);
		cr_assert_eq(fake_replies[req].kind, FAKE_IOCTL, "the ATTACH was decided: kind %d err %d",
			     fake_replies[req].kind, fake_replies[req].err);
		for (int i = 1; i <= 3; i++)
			cr_assert_eq(fake_replies[req + i].err, ENOTTY, "IOCTL %d: built-in ENOTTY, got %d", i,
				     fake_replies[req + i].err);
		struct ringdev_pipe_info pi;
		cr_assert_eq(device_ioctl(dev, app, &root, RINGDEV_IOC_PIPE_INFO, NULL, 0, &pi, sizeof(pi)), 0);
		cr_assert_str_eq(pi.name, at.name);
		cr_assert_eq(parked(), 0);
		device_release(dev, app);
		cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0, "the next broker");
	}
}

/* Issue 8, defect 2: an errno the kernel cannot carry fails the answer
 * (counted for the broker) and the app gets EIO, never the bad errno. */
Test(relay, answers_with_an_errno_past_511_fail_with_eio)
{
	unsigned int cmd = _IOWR(RINGDEV_IOC_MAGIC, 0x90, uint64_t);
	uint64_t arg = 1;
	const int32_t bad[] = { -512, -600, -999, -1000, -4095 };
	struct open_ctx *app = app_on("e");
	for (int i = 0; i < 5; i++) {
		cr_assert(device_ioctl_async(dev, app, &root, REQ(10 + i), cmd, &arg, sizeof(arg), sizeof(arg)));
		struct ringdev_ctl_transact *t = tr_new(1, 0);
		transact(t, 20 + 2 * i);
		uint64_t id = result(20 + 2 * i)->requests[0].id;
		memset(t, 0, sizeof(*t));
		answer(t, id, bad[i]);
		transact(t, 21 + 2 * i);
		cr_assert_eq(result(21 + 2 * i)->failed, 1, "result %d: counted as failed", bad[i]);
		cr_assert_eq(fake_replies[10 + i].err, EIO, "result %d: the app gets EIO, got %d", bad[i],
			     fake_replies[10 + i].err);
		free(t);
	}
	cr_assert_eq(parked(), 0);
	device_release(dev, app);
}

/* Issue 8, defect 4: a broker polling the control node is woken by the
 * next request queued, and its poll handle goes with the node. */
Test(relay, poll_on_the_control_node_is_woken_by_a_queued_request)
{
	cr_assert_eq(device_poll(dev, ctl, REQ(1)), 0, "nothing queued");
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.pollers, 1, "the poll handle is kept");
	int before = fake_notifies;
	unsigned int cmd = _IOWR(RINGDEV_IOC_MAGIC, 0x90, uint64_t);
	uint64_t arg = 1;
	struct open_ctx *app = app_on("p");
	cr_assert(device_ioctl_async(dev, app, &root, REQ(2), cmd, &arg, sizeof(arg), sizeof(arg)));
	cr_assert_eq(fake_notifies, before + 1, "the poller was woken");
	cr_assert_eq(device_poll(dev, ctl, NULL) & POLLIN, POLLIN);
	device_release(dev, app);
	device_poll(dev, ctl, REQ(3));
	device_release(dev, ctl);
	device_stats(dev, &s);
	cr_assert_eq(s.pollers, 0);
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &ctl), 0);
}
