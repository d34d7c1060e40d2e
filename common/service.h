/* SPDX-License-Identifier: MIT */
/*
 * service.h - what running as a system service needs: becoming an
 * unprivileged user once the privileged part of starting is done (--user
 * USER[:GROUP] of ringdevd and ringdev-broker), and telling systemd when
 * the service is ready (sd_notify; nothing when built without libsystemd).
 *
 * Nothing here knows libfuse or the daemon, so ringdev-broker compiles the
 * same file; it would sit in common/ if that folder were not shared by the
 * installed library, which must not link libcap-ng.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct run_as {
	bool set;     /* --user given */
	uint32_t uid;
	uint32_t gid; /* GROUP, else USER's primary group */
};

/* Parse "USER[:GROUP]" (names or numbers). A number with no passwd entry
 * needs :GROUP. 0, -EINVAL (syntax), -ENOENT (no such user or group). */
int service_parse_user(const char *spec, struct run_as *out);

/* False when built without libcap-ng: --user is then refused. */
bool service_drop_supported(void);

/* Become who->uid:who->gid with no supplementary groups and no capability
 * left: effective, permitted, inheritable, ambient and the bounding set are
 * all emptied (libcap-ng's capng_change_id with CAPNG_DROP_SUPP_GRP |
 * CAPNG_CLEAR_BOUNDING), then checked. Credentials and capabilities are
 * per thread in the kernel: call it while no other thread runs. 0 or
 * -errno (-ENOTSUP without libcap-ng, -EPERM when not root); logs why. */
int service_drop_privileges(const struct run_as *who);

/* READY=1 once the node or mount serves, STOPPING=1 when shutting down;
 * no-ops without $NOTIFY_SOCKET or when built without libsystemd. */
void service_notify_ready(const char *status);
void service_notify_stopping(void);
/* An in-place restart begins (READY follows from the new image). */
void service_notify_reloading(void);
/* systemd's fd store (FileDescriptorStoreMax=): keep fds under name, in
 * place of what was kept under it (n 0: only forget those); 0, -ENOTCONN
 * when no service manager listens, -errno. And the fds this start was
 * given back (at SD_LISTEN_FDS_START on; *names: a NULL-terminated list to
 * free): their count, 0 if none. */
int service_store_fds(const char *name, const int *fds, unsigned n);
/* The same without forgetting what was kept under name first (the store
 * keeps one open file once: storing it again changes nothing). */
int service_store_add(const char *name, const int *fds, unsigned n);
int service_stored_fds(char ***names);
