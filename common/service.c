/* SPDX-License-Identifier: MIT */
/*
 * service.c - see service.h.
 *
 * libcap-ng does the drop because it gets the order right (bounding set
 * while CAP_SETPCAP is still there, groups before the uid, keepcaps off)
 * and clears the ambient set; without it --user is refused rather than
 * half done: a hand-written setresuid leaves the bounding set full, which
 * a later setuid-root exec could use.
 */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if HAVE_CAPNG
#include <cap-ng.h>
#endif
#if HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include "log.h"
#include "parse.h"
#include "service.h"

static int lookup_user(const char *s, uint32_t *uid, uint32_t *gid, bool *have_gid)
{
	uint64_t v;
	struct passwd *pw = getpwnam(s);
	if (!pw && parse_u64(s, 0, UINT32_MAX - 1, &v) == 0) {
		*uid = (uint32_t)v;
		pw = getpwuid((uid_t)v);
		*have_gid = pw != NULL;
		if (pw)
			*gid = pw->pw_gid;
		return 0;
	}
	if (!pw)
		return -ENOENT;
	*uid = pw->pw_uid;
	*gid = pw->pw_gid;
	*have_gid = true;
	return 0;
}

static int lookup_group(const char *s, uint32_t *gid)
{
	uint64_t v;
	struct group *g = getgrnam(s);
	if (g) {
		*gid = g->gr_gid;
		return 0;
	}
	if (parse_u64(s, 0, UINT32_MAX - 1, &v) < 0)
		return -ENOENT;
	*gid = (uint32_t)v;
	return 0;
}

int service_parse_user(const char *spec, struct run_as *out)
{
	char user[256];
	const char *colon = strchr(spec, ':');
	size_t len = colon ? (size_t)(colon - spec) : strlen(spec);
	if (len == 0 || len >= sizeof(user) || (colon && !colon[1]))
		return -EINVAL;
	memcpy(user, spec, len);
	user[len] = '\0';
	struct run_as r = { .set = true };
	bool have_gid = false;
	int e = lookup_user(user, &r.uid, &r.gid, &have_gid);
	if (e < 0)
		return e;
	if (colon) {
		e = lookup_group(colon + 1, &r.gid);
		if (e < 0)
			return e;
	} else if (!have_gid) {
		return -ENOENT; /* a bare number with no passwd entry: no group to take */
	}
	*out = r;
	return 0;
}

#if HAVE_CAPNG
bool service_drop_supported(void)
{
	return true;
}

int service_drop_privileges(const struct run_as *who)
{
	if (geteuid() != 0) {
		log_error("--user: changing to uid %u needs root", who->uid);
		return -EPERM;
	}
	capng_clear(CAPNG_SELECT_BOTH);
	int r = capng_change_id((int)who->uid, (int)who->gid, CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
	if (r < 0) {
		/* r is libcap-ng's step that failed (see capng_change_id(3)). */
		log_error("--user: cannot become uid %u gid %u (libcap-ng step %d): %s", who->uid, who->gid, r,
			  strerror(errno ? errno : EPERM));
		return errno ? -errno : -EPERM;
	}
	/* Trust, but check what the kernel now says about this thread. */
	capng_get_caps_process();
	uid_t ruid, euid, suid;
	gid_t rgid, egid, sgid;
	if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0 || ruid != who->uid ||
	    euid != who->uid || suid != who->uid || rgid != who->gid || egid != who->gid || sgid != who->gid ||
	    getgroups(0, NULL) != 0 || capng_have_capabilities(CAPNG_SELECT_CAPS) != CAPNG_NONE ||
	    capng_have_capabilities(CAPNG_SELECT_BOUNDS) != CAPNG_NONE) {
		log_error("--user: the drop to uid %u did not take: refusing to go on", who->uid);
		return -EPERM;
	}
	log_info("running as uid %u gid %u, no capabilities", who->uid, who->gid);
	return 0;
}
#else
bool service_drop_supported(void)
{
	return false;
}

int service_drop_privileges(const struct run_as *who)
{
	log_error("--user: built without libcap-ng");
	return -ENOTSUP;
}
#endif

#if HAVE_SYSTEMD
void service_notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void service_notify_stopping(void)
{
	sd_notify(0, "STOPPING=1");
}

void service_notify_reloading(void)
{
	sd_notify(0, "RELOADING=1");
}

int service_store_add(const char *name, const int *fds, unsigned n)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s", name);
	int r = sd_pid_notify_with_fds(0, 0, msg, fds, n);
	return r < 0 ? r : r == 0 ? -ENOTCONN : 0;
}

int service_store_fds(const char *name, const int *fds, unsigned n)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", name);
	sd_notify(0, msg);
	return n ? service_store_add(name, fds, n) : 0;
}

int service_stored_fds(char ***names)
{
	int n = sd_listen_fds_with_names(0, names);
	return n < 0 ? 0 : n;
}
#else
void service_notify_ready(const char *status)
{
}

void service_notify_stopping(void)
{
}

void service_notify_reloading(void)
{
}

int service_store_fds(const char *name, const int *fds, unsigned n)
{
	(void)name;
	(void)fds;
	(void)n;
	return -ENOTSUP;
}

int service_store_add(const char *name, const int *fds, unsigned n)
{
	return service_store_fds(name, fds, n);
}

int service_stored_fds(char ***names)
{
	*names = NULL;
	return 0;
}
#endif
