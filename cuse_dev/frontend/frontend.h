/* SPDX-License-Identifier: MIT */
/*
 * frontend/frontend.h - what the FUSE-mount and CUSE frontends share: the daemon's
 * settings, the device_ops that answer core requests with fuse_req_t, and
 * the file handlers (read, write, ioctl, poll, release) that are the same
 * for a pipe file on the mount and for /dev/NAME.
 */
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>
#include <stdbool.h>
#include <stdint.h>

#include "device.h"
#include "service.h"

struct daemon_config {
	const char *frontend;     /* "auto", "fuse" or "cuse" */
	bool ctl_group_set;       /* --ctl-group given */
	const char *name;         /* CUSE device name */
	const char *mount;        /* FUSE mount directory */
	const char *default_pipe; /* CUSE opens start here */
	bool foreground;
	bool verbose;
	struct device_config dev; /* limits, modes, case rule */
	bool group_set;           /* --group given */
	bool mode_set;            /* --mode given */
	bool memory_per_uid_set;  /* --max-memory-per-uid given */
	bool pipes_per_uid_set;   /* --max-pipes-per-uid given */
	bool opens_per_uid_set;   /* --max-opens-per-uid given */
	bool parked_per_uid_set;  /* --max-parked-per-uid given */
	struct run_as run_as;     /* --user: who to become once the node or mount is there */
	unsigned threads;         /* --threads: serving threads (the data session's) */
	unsigned busy_poll_us;    /* --busy-poll: how long a thread looks for more before it sleeps */
	bool fd_store;            /* --fd-store: survive restarts and crashes through systemd's fd store */
};

/* The device_ops answering through libfuse. */
extern const struct device_ops frontend_ops;

/* The handle behind a file's fh (NULL: none, e.g. one from before a crash). */
struct open_ctx *frontend_ctx(fuse_req_t req, struct fuse_file_info *fi);

/* The caller's credentials as the kernel gave them. */
struct cred frontend_cred(fuse_req_t req);

/* Handlers shared by both frontends; the session's userdata is the device. */
void frontend_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi);
void frontend_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi);
void frontend_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph);
void frontend_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* Open the control node (MOUNT/.ctl, /dev/NAME-ctl) for the broker. */
void frontend_ctl_open(fuse_req_t req, struct fuse_file_info *fi);
/* ctx may be NULL (device-wide ioctl). */
void frontend_ioctl(fuse_req_t req, struct open_ctx *ctx, unsigned int cmd, unsigned flags, const void *in_buf,
		    size_t in_bufsz, size_t out_bufsz);

/* How every pipe open is answered: reads and writes go straight to the core
 * (direct I/O), every read system call starts at offset 0 (stream), and
 * close() sends no FLUSH, which on the FUSE mount would wait for the inode
 * lock a parked write holds (release is all the core needs). */
#define RINGDEV_FOPEN_FLAGS (FOPEN_DIRECT_IO | FOPEN_STREAM | FOPEN_NONSEEKABLE | FOPEN_NOFLUSH)

/* Answer an open with RINGDEV_FOPEN_FLAGS so that every read system call
 * starts at offset 0 (libfuse's fuse_file_info has no stream bit). False if
 * the answer could not be delivered (the opener is gone). */
bool frontend_reply_open(fuse_req_t req, struct open_ctx *ctx);

/* Become --user (if given) with no capabilities left, and say READY to
 * systemd: once the mount is there (FUSE, from frontend_serve) or once the
 * kernel made both nodes (CUSE, from its INIT callbacks). The core's thread
 * is stopped around the drop, because credentials are per thread: no
 * thread may keep root. 0 or -errno. */
int frontend_drop_and_notify(struct device *dev, const struct daemon_config *cfg, const char *what);

/* Let the extra serving threads (--threads) start: from the INIT callbacks,
 * once the node or mount is ready and any --user drop is done. */
void frontend_threads_may_start(void);

/* Serve mounted sessions until SIGTERM/SIGINT (daemonizing first without
 * -f), then end every parked request. Returns the process exit code; the
 * caller unmounts and destroys the session. */
int frontend_serve(struct fuse_session **se, int n, struct device *dev, const struct daemon_config *cfg,
		   const char *what);

/* Run a frontend until SIGTERM/SIGINT. Return the process exit code. */
int fuse_frontend_run(struct daemon_config *cfg);
int cuse_frontend_run(struct daemon_config *cfg);
