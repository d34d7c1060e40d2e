/* SPDX-License-Identifier: MIT */
/*
 * test_table.c - the pipe table through the device: case rules, lookup by
 * name and inode, lifetime, unlink, max-pipes, attach errors, permissions.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "device.h"
#include "fake_frontend.h"

static struct device *dev;

static void setup(void)
{
	dev = fake_device(65536, 4, 1 << 20);
}

static void teardown(void)
{
	device_shutdown(dev);
	device_free(dev);
}

static const struct cred root_cred = { .uid = 0, .gid = 0 };

TestSuite(table, .init = setup, .fini = teardown);

static int attach(struct open_ctx *c, const char *name, uint32_t flags)
{
	struct attach_args a = { .name = name, .len = strlen(name), .flags = flags };
	return device_attach(dev, c, fake_ctx_cred(c), &a);
}

static struct open_ctx *open_as(uint32_t uid, int oflags)
{
	struct cred cr = fake_cred(uid);
	struct open_ctx *c;
	cr_assert_eq(device_open(dev, &cr, oflags, &c), 0);
	return c;
}

Test(table, names_are_case_insensitive)
{
	struct open_ctx *a = fake_open(dev, "HELLO", O_RDWR, 0, 0, 0);
	struct open_ctx *b = open_as(0, O_RDONLY);
	cr_assert_eq(attach(b, "hello", 0), 0);
	struct pipe_attr x, y;
	cr_assert_eq(device_lookup(dev, &root_cred, "HeLLo", 5, &x), 0);
	cr_assert_eq(device_ctx_attr(dev, b, &y), 0);
	cr_assert_eq(x.ino, y.ino, "HELLO and hello are one pipe");
	struct open_ctx *t = fake_open(dev, "Temp", O_RDWR, 0, 0, 0);
	struct pipe_attr z;
	cr_assert_eq(device_ctx_attr(dev, t, &z), 0);
	cr_assert_neq(z.ino, x.ino);
	struct name_list list;
	device_dir_open(&root_cred, &list);
	cr_assert_eq(device_list(dev, &root_cred, &list), 0);
	cr_assert_eq(list.count, 2);
	device_list_free(dev, &list);
	device_release(dev, a);
	device_release(dev, b);
	device_release(dev, t);
}

Test(table, attach_errors)
{
	struct open_ctx *c = open_as(0, O_RDWR);
	cr_assert_eq(attach(c, "missing", 0), -ENOENT);
	cr_assert_eq(attach(c, ".x", RINGDEV_ATTACH_CREATE), -EINVAL);
	cr_assert_eq(attach(c, "a b", RINGDEV_ATTACH_CREATE), -EINVAL);
	cr_assert_eq(attach(c, "a", 0x80), -EINVAL);
	cr_assert_eq(attach(c, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", RINGDEV_ATTACH_CREATE),
		     -ENAMETOOLONG);
	cr_assert_eq(attach(c, "ok", RINGDEV_ATTACH_CREATE), 0);
	cr_assert_eq(attach(c, "OK", RINGDEV_ATTACH_CREATE | RINGDEV_ATTACH_EXCL), -EEXIST);
	struct attach_args bad = { .name = "k", .len = 1, .flags = RINGDEV_ATTACH_CREATE, .kind = 7 };
	cr_assert_eq(device_attach(dev, c, fake_ctx_cred(c), &bad), -EINVAL);
	bad.kind = 0;
	bad.capacity = 10;
	cr_assert_eq(device_attach(dev, c, fake_ctx_cred(c), &bad), -EINVAL);
	device_release(dev, c);
}

Test(table, pipe_lives_while_handles_or_data_keep_it)
{
	struct open_ctx *w = fake_open(dev, "life", O_WRONLY, 0, 0, 0);
	struct pipe_attr a;
	device_release(dev, w);
	cr_assert_eq(device_lookup(dev, &root_cred, "life", 4, &a), -ENOENT, "empty and unused: removed");
	w = fake_open(dev, "life", O_WRONLY, 0, 0, 0);
	device_write(dev, w, REQ(1), "abc", 3, 0);
	device_release(dev, w);
	cr_assert_eq(device_lookup(dev, &root_cred, "life", 4, &a), 0, "unread data keeps it");
	cr_assert_eq(a.size, 3);
	struct open_ctx *r = open_as(0, O_RDONLY);
	cr_assert_eq(device_attach_ino(dev, r, a.ino), 0);
	device_read(dev, r, REQ(2), 10, 0, false);
	cr_assert_eq(fake_replies[2].count, 3);
	device_release(dev, r);
	cr_assert_eq(device_lookup(dev, &root_cred, "life", 4, &a), -ENOENT);
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.pipes, 0);
	cr_assert_eq(s.memory_used, 0, "ring memory is returned");
}

Test(table, unlink_keeps_open_handles_working)
{
	struct open_ctx *c = fake_open(dev, "u", O_RDWR, 0, 0, 0);
	struct cred root = fake_cred(0);
	cr_assert_eq(device_unlink(dev, &root, "U", 1), 0);
	struct pipe_attr a;
	cr_assert_eq(device_lookup(dev, &root_cred, "u", 1, &a), -ENOENT);
	device_write(dev, c, REQ(1), "still", 5, 0);
	device_read(dev, c, REQ(2), 10, 0, false);
	cr_assert_eq(fake_replies[2].count, 5);
	device_write(dev, c, REQ(3), "left", 4, 0);
	struct open_ctx *fresh = fake_open(dev, "u", O_RDWR, 0, 0, 0); /* a new pipe of that name */
	device_read(dev, fresh, REQ(4), 10, O_NONBLOCK, false);
	cr_assert_eq(fake_replies[4].err, EAGAIN);
	device_release(dev, c); /* the unlinked pipe goes, data and all */
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.pipes, 1);
	device_release(dev, fresh);
}

Test(table, max_pipes_is_enforced_and_counted)
{
	struct open_ctx *c[4];
	char name[8];
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "p%d", i);
		c[i] = fake_open(dev, name, O_RDWR, 0, 0, 0);
	}
	struct open_ctx *x = open_as(0, O_RDWR);
	cr_assert_eq(attach(x, "p4", RINGDEV_ATTACH_CREATE), -ENOSPC);
	cr_assert_eq(attach(x, "p0", RINGDEV_ATTACH_CREATE), 0, "attaching to an existing pipe still works");
	struct ringdev_stats s;
	device_stats(dev, &s);
	cr_assert_eq(s.limit_pipes_hits, 1);
	device_release(dev, x);
	for (int i = 0; i < 4; i++)
		device_release(dev, c[i]);
}

Test(table, permissions_follow_owner_and_mode)
{
	struct open_ctx *o = open_as(1000, O_RDWR);
	struct attach_args a = { .name = "mine", .len = 4, .flags = RINGDEV_ATTACH_CREATE, .mode = 0640 };
	cr_assert_eq(device_attach(dev, o, fake_ctx_cred(o), &a), 0);
	struct open_ctx *other = open_as(2000, O_RDONLY);
	cr_assert_eq(attach(other, "mine", 0), -EACCES);
	struct cred group = { .uid = 2000, .gid = 1000 };
	struct open_ctx *g;
	cr_assert_eq(device_open(dev, &group, O_RDONLY, &g), 0);
	cr_assert_eq(attach(g, "mine", 0), 0, "group may read");
	struct open_ctx *gw;
	cr_assert_eq(device_open(dev, &group, O_WRONLY, &gw), 0);
	cr_assert_eq(attach(gw, "mine", 0), -EACCES, "group may not write");
	struct cred stranger = fake_cred(2000);
	cr_assert_eq(device_unlink(dev, &stranger, "mine", 4), -EPERM);
	struct ringdev_pipe_config cfg = { .set = RINGDEV_SET_CAPACITY, .capacity = 4096 };
	cr_assert_eq(device_ioctl(dev, g, &group, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), -EPERM);
	struct cred owner = fake_cred(1000);
	cr_assert_eq(device_ioctl(dev, o, &owner, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), 0);
	device_release(dev, o);
	device_release(dev, other);
	device_release(dev, g);
	device_release(dev, gw);
}

Test(table, ioctl_argument_checks)
{
	struct open_ctx *c = fake_open(dev, "io", O_RDWR, 0, 0, 0);
	struct cred cr = fake_cred(0);
	struct ringdev_pipe_info pi;
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_PIPE_INFO, NULL, 0, &pi, 8), -EINVAL, "short buffer");
	cr_assert_eq(device_ioctl(dev, c, &cr, _IOR(RINGDEV_IOC_MAGIC, 0x90, uint64_t), NULL, 0, &pi, 8), -ENOTTY,
		     "device-specific range without a broker");
	cr_assert_eq(device_ioctl(dev, c, &cr, 0x5401, NULL, 0, NULL, 0), -ENOTTY);
	cr_assert_eq(device_ioctl(dev, NULL, &cr, RINGDEV_IOC_PIPE_INFO, NULL, 0, &pi, sizeof(pi)), -ENOTTY,
		     "pipe ioctls need a handle");
	struct ringdev_attach at;
	memset(&at, 'a', sizeof(at)); /* no NUL in the name */
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_ATTACH, &at, sizeof(at), NULL, 0), -ENAMETOOLONG);
	memset(&at, 0, sizeof(at));
	strcpy(at.name, "io2");
	at.flags = RINGDEV_ATTACH_CREATE;
	at.reserved[2] = 1;
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_ATTACH, &at, sizeof(at), NULL, 0), -EINVAL,
		     "reserved must be zero");
	struct ringdev_pipe_config cfg = { .set = 0x100 };
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), -EINVAL);
	cfg = (struct ringdev_pipe_config){ .set = RINGDEV_SET_KIND, .kind = RINGDEV_KIND_MESSAGE };
	device_write(dev, c, REQ(1), "x", 1, 0);
	cr_assert_eq(device_ioctl(dev, c, &cr, RINGDEV_IOC_SET_CONFIG, &cfg, sizeof(cfg), NULL, 0), -EBUSY,
		     "kind changes only while empty");
	struct ringdev_version v;
	cr_assert_eq(device_ioctl(dev, NULL, &cr, RINGDEV_IOC_VERSION, NULL, 0, &v, sizeof(v)), 0);
	cr_assert_eq(v.abi_major, RINGDEV_ABI_MAJOR);
	device_release(dev, c);
}
