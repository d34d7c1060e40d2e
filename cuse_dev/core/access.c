/* SPDX-License-Identifier: MIT */
/*
 * access.c - permission checks (see access.h). Credentials are uid and the
 * primary gid only: supplementary groups would have to be read through the
 * caller's pid, which is racy and must never authorize anything.
 */
#include "access.h"
#include "device_internal.h"
#include "log.h"

static unsigned mode_bits(uint32_t mode, uint32_t owner, uint32_t group, const struct cred *cred)
{
	if (cred->uid == 0)
		return 7;
	if (cred->uid == owner)
		return (mode >> 6) & 7;
	if (cred->gid == group)
		return (mode >> 3) & 7;
	return mode & 7;
}

unsigned access_bits(const struct pipe *p, const struct cred *cred)
{
	return mode_bits(p->mode, p->uid, p->gid, cred);
}

bool access_permits(const struct pipe *p, const struct cred *cred, unsigned want)
{
	if ((access_bits(p, cred) & want) == want)
		return true;
	log_debug("pipe %s: uid %u gid %u wants %o, mode %03o owner %u:%u: denied", p->name, cred->uid, cred->gid,
		  want, p->mode, p->uid, p->gid);
	return false;
}

bool access_is_admin(const struct device *dev, const struct cred *cred)
{
	return cred->uid == 0 || (dev->cfg.admin_set && cred->gid == dev->cfg.admin_gid);
}

bool access_may_create(const struct device *dev, const struct cred *cred)
{
	return mode_bits(dev->cfg.mode, dev->cfg.uid, dev->cfg.gid, cred) & 2;
}

bool access_may_see(const struct device *dev, const struct cred *cred, const struct pipe *p)
{
	if (p->provisional && !(p->hold_uid == cred->uid && !p->hold_void))
		return false; /* its creator's alone until the broker allowed it: not even admins */
	return access_is_admin(dev, cred) || cred->uid == p->uid || (access_bits(p, cred) & 6);
}

bool access_may_manage(const struct device *dev, const struct cred *cred, const struct pipe *p)
{
	return access_is_admin(dev, cred) || cred->uid == p->uid;
}

bool access_may_chown(const struct device *dev, const struct cred *cred)
{
	return access_is_admin(dev, cred);
}

bool access_may_control(const struct device *dev, const struct cred *cred)
{
	bool member = (dev->cfg.ctl_mode & 0060) && cred->gid == dev->cfg.ctl_gid;
	return cred->uid == 0 || cred->uid == dev->cfg.uid || member;
}
