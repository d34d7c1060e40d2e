/* SPDX-License-Identifier: MIT */
/*
 * test_admin.c - the admin view and limits in the core: paged listings and
 * who sees what, create/remove/configure/flush and who may, the per-uid and
 * parked limits with their counters.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "device.h"
#include "fake_frontend.h"

#define ADMIN_GID 500

static struct device *dev;

static void setup(void)
{
	dev = fake_device_limits(3, 4, 6, ADMIN_GID);
}

static void teardown(void)
{
	device_shutdown(dev);
	device_free(dev);
}

TestSuite(admin, .init = setup, .fini = teardown);

static struct cred user(uint32_t uid)
{
	return fake_cred(uid);
}

static int io(const struct cred *c, unsigned int cmd, const void *in, void *out)
{
	size_t size = _IOC_SIZE(cmd);
	return device_ioctl(dev, NULL, c, cmd, in, (_IOC_DIR(cmd) & _IOC_WRITE) ? size : 0, out,
			    (_IOC_DIR(cmd) & _IOC_READ) ? size : 0);
}

static int create(const struct cred *c, const char *name, uint32_t mode)
{
	struct ringdev_create cr = { .mode = mode };
	snprintf(cr.name, sizeof(cr.name), "%s", name);
	return io(c, RINGDEV_IOC_CREATE, &cr, NULL);
}

static struct ringdev_list_pipes *list_pipes(const struct cred *c, uint32_t start)
{
	static struct ringdev_list_pipes l;
	struct ringdev_list_pipes in = { .start = start };
	cr_assert_eq(io(c, RINGDEV_IOC_LIST_PIPES, &in, &l), 0);
	return &l;
}

Test(admin, create_list_and_visibility)
{
	struct cred alice = user(1000), bob = user(2000), root = user(0);
	struct cred admin = { .uid = 3000, .gid = ADMIN_GID };
	cr_assert_eq(create(&alice, "a.private", 0600), 0);
	cr_assert_eq(create(&alice, "a.public", 0644), 0);
	cr_assert_eq(create(&bob, "b.private", 0600), 0);
	cr_assert_eq(create(&alice, "A.PUBLIC", 0600), -EEXIST);
	cr_assert_eq(list_pipes(&root, 0)->total, 3);
	cr_assert_eq(list_pipes(&admin, 0)->total, 3, "the admin group sees everything");
	struct ringdev_list_pipes *l = list_pipes(&bob, 0);
	cr_assert_eq(l->total, 2, "bob sees his own and the public one");
	cr_assert_str_eq(l->pipes[0].name, "a.public", "creation order");
	cr_assert_str_eq(l->pipes[1].name, "b.private");
	cr_assert(l->pipes[0].flags & RINGDEV_PIPE_PERSISTENT);
	l = list_pipes(&bob, 1);
	cr_assert_eq(l->count, 1, "paging: from the second");
	cr_assert_str_eq(l->pipes[0].name, "b.private");
	struct ringdev_pipe_info pi;
	memset(&pi, 0, sizeof(pi));
	strcpy(pi.name, "a.private");
	cr_assert_eq(io(&bob, RINGDEV_IOC_PIPE_BY_NAME, &pi, &pi), -EACCES);
	strcpy(pi.name, "a.private");
	cr_assert_eq(io(&alice, RINGDEV_IOC_PIPE_BY_NAME, &pi, &pi), 0);
	cr_assert_eq(pi.uid, 1000);
	strcpy(pi.name, "nope");
	cr_assert_eq(io(&alice, RINGDEV_IOC_PIPE_BY_NAME, &pi, &pi), -ENOENT);
	/* Choosing the owner is for admins. */
	struct ringdev_create cr = { .flags = RINGDEV_CREATE_OWNER, .uid = 7, .gid = 7 };
	strcpy(cr.name, "for7");
	cr_assert_eq(io(&alice, RINGDEV_IOC_CREATE, &cr, NULL), -EPERM);
	cr_assert_eq(io(&admin, RINGDEV_IOC_CREATE, &cr, NULL), 0);
	strcpy(pi.name, "for7");
	cr_assert_eq(io(&root, RINGDEV_IOC_PIPE_BY_NAME, &pi, &pi), 0);
	cr_assert_eq(pi.uid, 7);
}

Test(admin, list_opens_shows_others_only_to_admins)
{
	struct cred alice = user(1000), bob = user(2000), root = user(0);
	struct open_ctx *a, *b;
	cr_assert_eq(device_open(dev, &alice, O_RDONLY, &a), 0);
	cr_assert_eq(device_open(dev, &bob, O_WRONLY, &b), 0);
	struct attach_args args = { .name = "shared", .len = 6, .flags = RINGDEV_ATTACH_CREATE, .mode = 0666 };
	cr_assert_eq(device_attach(dev, a, &alice, &args), 0);
	cr_assert_eq(device_attach(dev, b, &bob, &args), 0);
	device_read(dev, a, REQ(1), 10, 0, false); /* parks */
	static struct ringdev_list_opens l;
	struct ringdev_list_opens in = { .start = 0 };
	cr_assert_eq(io(&root, RINGDEV_IOC_LIST_OPENS, &in, &l), 0);
	cr_assert_eq(l.total, 2);
	cr_assert_str_eq(l.opens[0].pipe, "shared");
	cr_assert_eq(l.opens[0].uid, 1000);
	cr_assert_eq(l.opens[0].parked_reads, 1, "what is stuck, and whose");
	cr_assert(l.opens[0].flags & RINGDEV_OPEN_READER);
	cr_assert(l.opens[1].flags & RINGDEV_OPEN_WRITER);
	cr_assert_eq(io(&bob, RINGDEV_IOC_LIST_OPENS, &in, &l), 0);
	cr_assert_eq(l.total, 1, "bob sees only his own handle");
	cr_assert_eq(l.opens[0].uid, 2000);
	device_release(dev, b);
	device_release(dev, a);
}

Test(admin, remove_ends_parked_and_detaches)
{
	struct cred alice = user(1000), bob = user(2000);
	struct open_ctx *r;
	cr_assert_eq(device_open(dev, &alice, O_RDONLY, &r), 0);
	struct attach_args args = { .name = "gone", .len = 4, .flags = RINGDEV_ATTACH_CREATE, .mode = 0644 };
	cr_assert_eq(device_attach(dev, r, &alice, &args), 0);
	device_read(dev, r, REQ(1), 10, 0, false);
	struct ringdev_name n = { .name = "gone" };
	cr_assert_eq(io(&bob, RINGDEV_IOC_REMOVE, &n, NULL), -EPERM);
	cr_assert_eq(io(&alice, RINGDEV_IOC_REMOVE, &n, NULL), 0);
	cr_assert_eq(fake_replies[1].err, EIDRM, "the parked reader learns why");
	device_read(dev, r, REQ(2), 10, 0, false);
	cr_assert_eq(fake_replies[2].err, ENXIO, "the handle has no pipe any more");
	cr_assert_eq(io(&alice, RINGDEV_IOC_REMOVE, &n, NULL), -ENOENT);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.pipes, 0);
	cr_assert_eq(s.parked_total, 0);
	device_release(dev, r);
}

Test(admin, configure_and_flush)
{
	struct cred alice = user(1000), bob = user(2000), root = user(0);
	struct open_ctx *w;
	cr_assert_eq(device_open(dev, &alice, O_WRONLY, &w), 0);
	struct attach_args args = { .name = "f", .len = 1, .flags = RINGDEV_ATTACH_CREATE, .capacity = 64 };
	cr_assert_eq(device_attach(dev, w, &alice, &args), 0);
	uint8_t buf[64] = { 0 };
	device_write(dev, w, REQ(1), buf, 64, 0);
	device_write(dev, w, REQ(2), buf, 10, 0); /* parks: full */
	struct ringdev_flush f = { .name = "f" };
	cr_assert_eq(io(&bob, RINGDEV_IOC_FLUSH, &f, &f), -EPERM);
	cr_assert_eq(io(&alice, RINGDEV_IOC_FLUSH, &f, &f), 0);
	cr_assert_eq(f.bytes, 64);
	cr_assert_eq(fake_replies[2].kind, FAKE_WRITTEN, "the flush made room for the parked writer");
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.flushed_bytes, 64);
	/* A temporary pipe nobody holds goes once a flush empties it. */
	struct open_ctx *t;
	cr_assert_eq(device_open(dev, &alice, O_WRONLY, &t), 0);
	struct attach_args ta = { .name = "tmp", .len = 3, .flags = RINGDEV_ATTACH_CREATE };
	cr_assert_eq(device_attach(dev, t, &alice, &ta), 0);
	device_write(dev, t, REQ(3), buf, 5, 0);
	device_release(dev, t);
	struct ringdev_flush tf = { .name = "tmp" };
	cr_assert_eq(io(&alice, RINGDEV_IOC_FLUSH, &tf, &tf), 0);
	cr_assert_eq(tf.bytes, 5);
	cr_assert_eq(io(&alice, RINGDEV_IOC_FLUSH, &tf, &tf), -ENOENT, "and it is gone");
	struct ringdev_configure c = { .name = "f", .set = RINGDEV_SET_CAPACITY | RINGDEV_SET_MODE, .capacity = 4096,
				       .mode = 0640 };
	cr_assert_eq(io(&bob, RINGDEV_IOC_CONFIGURE, &c, NULL), -EPERM);
	cr_assert_eq(io(&alice, RINGDEV_IOC_CONFIGURE, &c, NULL), 0);
	c.set = RINGDEV_SET_OWNER;
	c.uid = 2000;
	c.gid = 2000;
	cr_assert_eq(io(&alice, RINGDEV_IOC_CONFIGURE, &c, NULL), -EPERM, "chown is for admins");
	cr_assert_eq(io(&root, RINGDEV_IOC_CONFIGURE, &c, NULL), 0);
	struct ringdev_pipe_info pi;
	memset(&pi, 0, sizeof(pi));
	strcpy(pi.name, "f");
	cr_assert_eq(io(&root, RINGDEV_IOC_PIPE_BY_NAME, &pi, &pi), 0);
	cr_assert_eq(pi.capacity, 4096);
	cr_assert_eq(pi.mode, 0640);
	cr_assert_eq(pi.uid, 2000);
	device_release(dev, w);
}

Test(admin, per_uid_and_parked_limits)
{
	struct cred alice = user(1000);
	/* --max-pipes-per-uid 3 */
	cr_assert_eq(create(&alice, "p1", 0600), 0);
	cr_assert_eq(create(&alice, "p2", 0600), 0);
	cr_assert_eq(create(&alice, "p3", 0600), 0);
	cr_assert_eq(create(&alice, "p4", 0600), -ENOSPC);
	cr_assert_eq(create(&(struct cred){ .uid = 2000, .gid = 2000 }, "p4", 0600), 0, "another uid may");
	/* --max-opens-per-uid 4: device_open_request is the app's open. */
	struct pipe_attr p1;
	cr_assert_eq(device_lookup(dev, &alice, "p1", 2, &p1), 0);
	struct open_args oa = { .ino = p1.ino };
	for (int i = 0; i < 5; i++)
		device_open_request(dev, &alice, O_RDONLY, &oa, REQ(10 + i));
	for (int i = 0; i < 4; i++)
		cr_assert_eq(fake_replies[10 + i].kind, FAKE_OPENED, "open %d", i);
	cr_assert_eq(fake_replies[14].err, EMFILE);
	/* --max-parked 6: the seventh wait is refused. */
	for (int i = 0; i < 4; i++)
		device_read(dev, fake_replies[10 + i].ctx, REQ(20 + i), 10, 0, false);
	struct open_ctx *x;
	struct cred bob = user(2000);
	cr_assert_eq(device_open(dev, &bob, O_RDONLY, &x), 0);
	struct attach_args a4 = { .name = "p4", .len = 2 };
	cr_assert_eq(device_attach(dev, x, &bob, &a4), 0);
	device_read(dev, x, REQ(30), 10, 0, false);
	device_read(dev, x, REQ(31), 10, 0, false);
	cr_assert_eq(fake_replies[31].answers, 0);
	device_read(dev, x, REQ(32), 10, 0, false);
	cr_assert_eq(fake_replies[32].err, ENOBUFS, "a blocking call refused by a limit: ENOBUFS");
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.limit_uid_pipes_hits, 1);
	cr_assert_eq(s.limit_uid_opens_hits, 1);
	cr_assert_eq(s.limit_parked_hits, 1);
	cr_assert_eq(s.parked_total, 6);
	device_release(dev, x);
	for (int i = 0; i < 4; i++)
		device_release(dev, fake_replies[10 + i].ctx);
	device_stats(dev, &s);
	cr_assert_eq(s.parked_total, 0);
}
