/* SPDX-License-Identifier: MIT */
/*
 * access.h - every permission decision of the device, written once.
 *
 * Whoever reaches a pipe (an open, an ATTACH on any fd, an ioctl, the
 * mount's namespace, ringdevctl) is checked here with the credentials of
 * the process making that call, as the kernel reported them: never the pid,
 * never the credentials of whoever opened a passed fd. A broker, when one is
 * in charge, decides opens and attaches instead (relay.c); everything else
 * is decided here.
 */
#pragma once

#include <stdbool.h>

struct cred;
struct device;
struct pipe;

/* The rwx bits (4, 2, 1) cred has on p, by owner, group, other; root has all. */
unsigned access_bits(const struct pipe *p, const struct cred *cred);
/* Has cred every bit of want (4 read, 2 write, 1 x) on p? Logs a refusal at debug. */
bool access_permits(const struct pipe *p, const struct cred *cred, unsigned want);
/* Root or a member of --admin-group: sees and manages every pipe. */
bool access_is_admin(const struct device *dev, const struct cred *cred);
/* May cred create pipes (write permission on the device node or mount)? */
bool access_may_create(const struct device *dev, const struct cred *cred);
/* The visibility rule, for listings, lookups and stat alike: a user sees
 * the pipes it owns or could open for reading or writing; admins see all
 * but a pipe still waiting for the broker to allow its creation, which is
 * its creator's alone. */
bool access_may_see(const struct device *dev, const struct cred *cred, const struct pipe *p);
/* May cred change, flush or remove p (chmod, chown of its group, unlink)?
 * The owner and admins. */
bool access_may_manage(const struct device *dev, const struct cred *cred, const struct pipe *p);
/* May cred give p away (a new owner)? Admins only. */
bool access_may_chown(const struct device *dev, const struct cred *cred);
/* May cred open the control node? Root, the daemon's user, or --ctl-group. */
bool access_may_control(const struct device *dev, const struct cred *cred);
