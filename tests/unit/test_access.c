/* SPDX-License-Identifier: MIT */
/*
 * test_access.c - the permission module alone: owner, group and other bits,
 * root, --admin-group, creating on the device's mode, the visibility rule,
 * who may manage or give a pipe away, and who may open the control node.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "access.h"
#include "device_internal.h"

static struct device dev;
static struct pipe pipe;

static const struct cred root = { 0, 0, 1 }, owner = { 1000, 1000, 2 }, member = { 2000, 1000, 3 },
			 other = { 3000, 3000, 4 }, admin = { 4000, 77, 5 };

static void setup(void)
{
	memset(&dev, 0, sizeof(dev));
	dev.cfg.mode = 0664;
	dev.cfg.uid = 1000;
	dev.cfg.gid = 1000;
	dev.cfg.ctl_mode = 0600;
	dev.cfg.ctl_gid = 1000;
	memset(&pipe, 0, sizeof(pipe));
	strcpy(pipe.name, "p");
	pipe.uid = 1000;
	pipe.gid = 1000;
	pipe.mode = 0640;
}

TestSuite(access, .init = setup);

Test(access, owner_group_and_other_bits_and_root)
{
	cr_assert(access_permits(&pipe, &owner, 6));
	cr_assert(access_permits(&pipe, &member, 4));
	cr_assert(!access_permits(&pipe, &member, 2), "group may not write 0640");
	cr_assert(!access_permits(&pipe, &other, 4), "others have nothing");
	cr_assert(access_permits(&pipe, &root, 7));
	pipe.mode = 0046; /* the owner's own bits apply to the owner, even if the group's give more */
	cr_assert(!access_permits(&pipe, &owner, 4));
	cr_assert_eq(access_bits(&pipe, &member), 4);
	cr_assert_eq(access_bits(&pipe, &other), 6);
}

Test(access, the_visibility_rule)
{
	cr_assert(access_may_see(&dev, &owner, &pipe));
	cr_assert(access_may_see(&dev, &member, &pipe), "a reader sees it");
	cr_assert(!access_may_see(&dev, &other, &pipe), "neither reader nor writer: hidden");
	pipe.mode = 0;
	cr_assert(access_may_see(&dev, &owner, &pipe), "its owner sees it whatever the bits");
	cr_assert(access_may_see(&dev, &root, &pipe));
	cr_assert(!access_may_see(&dev, &admin, &pipe), "no --admin-group: an ordinary user");
	dev.cfg.admin_set = true;
	dev.cfg.admin_gid = 77;
	cr_assert(access_may_see(&dev, &admin, &pipe), "--admin-group sees everything");
	pipe.mode = 0002;
	cr_assert(access_may_see(&dev, &other, &pipe), "a writer sees it");
}

Test(access, managing_and_giving_away)
{
	cr_assert(access_may_manage(&dev, &owner, &pipe));
	cr_assert(!access_may_manage(&dev, &member, &pipe));
	cr_assert(access_may_manage(&dev, &root, &pipe));
	cr_assert(!access_may_chown(&dev, &owner), "only admins give pipes away");
	cr_assert(access_may_chown(&dev, &root));
	dev.cfg.admin_set = true;
	dev.cfg.admin_gid = 77;
	cr_assert(access_may_manage(&dev, &admin, &pipe));
	cr_assert(access_may_chown(&dev, &admin));
}

Test(access, creating_follows_the_devices_mode)
{
	cr_assert(access_may_create(&dev, &owner));
	cr_assert(access_may_create(&dev, &member), "0664: the group writes");
	cr_assert(!access_may_create(&dev, &other));
	cr_assert(access_may_create(&dev, &root));
	dev.cfg.mode = 0666;
	cr_assert(access_may_create(&dev, &other));
}

Test(access, the_control_node)
{
	cr_assert(access_may_control(&dev, &root));
	cr_assert(access_may_control(&dev, &owner), "the daemon's user");
	cr_assert(!access_may_control(&dev, &member), "0600: not the group");
	dev.cfg.ctl_mode = 0660;
	cr_assert(access_may_control(&dev, &member), "--ctl-group");
	cr_assert(!access_may_control(&dev, &other));
}
