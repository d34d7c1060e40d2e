/* SPDX-License-Identifier: MIT */
/*
 * frontend/restart.h - restarting and upgrading ringdevd in place.
 *
 * Every session reads and writes the kernel through this module (libfuse's
 * custom io), which is what lets a new image take over a connection the
 * kernel set up with an old one: it keeps the INIT the kernel sent, feeds
 * it to a resumed session (whose answer it drops: the kernel sends INIT
 * once), answers requests an earlier image parked by their id, and takes
 * the kernel's INTERRUPTs of those. See restart.c for the handover itself.
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "frontend.h"

#define RESTART_SESSIONS_MAX 2

/* At start, before anything else: remember how this image was started
 * (the program's path and argv, for the re-exec). */
void restart_init(int argc, char **argv);

/* True if this image was started to take over from an earlier one. */
bool restart_resuming(void);
/* True if this image took over by exec from one that ran as --user already
 * (a SIGHUP, a refused state, a guard): it must not drop again. A start
 * from the service manager's fd store is a new process started as root:
 * it drops as a first start does. */
bool restart_dropped_already(void);

/* Serve session se (index i: 0 the data session, 1 CUSE's control node)
 * on fd through this module. 0 or -errno. */
int restart_attach_session(struct fuse_session *se, int i, int fd);

/* Resuming: the state's sessions and device. restart_resume_device makes
 * the device (over the old image's ring arena) and restores the core;
 * restart_session_fd gives the kernel fd of session i; restart_resume_feed
 * feeds each attached session its INIT. Any failure here ends in
 * restart_refuse, which does not return. */
struct device *restart_resume_device(struct daemon_config *cfg, const struct device_ops *ops);
int restart_session_fd(int i);
void restart_resume_feed(struct fuse_session **se, int n);
/* The new image serves: tell the old one's guard, and log the handover. */
void restart_resume_done(struct device *dev);
__attribute__((noreturn)) void restart_refuse(const char *why);

/* SIGHUP: hand everything to a new image of the program. Returns only if
 * that could not start (the daemon serves on): -errno. The caller has
 * stopped every serving thread. */
int restart_handover(struct device *dev, const struct daemon_config *cfg);
/* Wait for the guard of the handover that started this image to end (it
 * is reaped off the serving path): before this image exits or hands over,
 * so that no process is left to whoever inherits it. */
void restart_reap_guard(void);

/* --fd-store: keep the connection, the rings and a boot record in
 * systemd's fd store once the kernel's INIT came (frontend: the one
 * served), and on SIGTERM the state too. restart_from_store: at start,
 * take back what the store gives (after parsing the command line). */
void restart_use_fd_store(uint32_t frontend);
void restart_from_store(void);
/* SIGTERM with --fd-store: the state goes into the store and the
 * connection stays: true if so (then nothing may be answered or
 * unmounted: the next start answers it all). */
bool restart_stop_into_store(struct device *dev, const struct daemon_config *cfg);
bool restart_kept_in_store(void);

/* Frontend records of the state (FUSE directory listings): a saver called
 * while the state is written, a loader for each record of type
 * STATE_FRONTEND_RECORDS + 100 and up. */
struct state_writer;
struct state_record;
void restart_set_extra(void (*save)(struct state_writer *w), int (*load)(struct device *dev, struct state_record *rec));
#define RESTART_REC_EXTRA 1100u

/* Requests and poll handles of earlier images, as the core holds them
 * (device_ops.req_restore, poll_restore): tagged pointers that the
 * frontend's ops answer here. */
static inline bool restart_is_restored(const void *req)
{
	return ((uintptr_t)req & 1) != 0;
}
uint64_t restart_req_wire(void *req);
void *restart_req_restore(uint64_t wire);
void restart_reply_raw(void *req, int err, const struct iovec *iov, int count);
/* Poll handles: every one the core holds is a struct restart_poll. */
struct fuse_pollhandle;
void *restart_poll_wrap(struct fuse_pollhandle *ph);
uint64_t restart_poll_wire(void *p);
void *restart_poll_restore(uint64_t wire);
void restart_poll_notify(void *p);
void restart_poll_destroy(void *p);
/* The message the calling thread is serving (its poll's kh, for one). */
const void *restart_current_in(void);
