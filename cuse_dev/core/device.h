/* SPDX-License-Identifier: MIT */
/*
 * device.h - the device core: what a frontend (FUSE mount, CUSE node) calls.
 *
 * The core owns all state (pipes, opens, parked requests, counters) behind
 * one device lock, and knows nothing of libfuse: a request is an opaque
 * `void *req` the core either answers at once or parks, answering it later
 * through `struct device_ops` from whichever call makes it answerable.
 * Every entry point here takes the lock itself; the ops are called with the
 * lock held and must not call back into the device. An op may send its
 * answer later, once the lock is dropped (the frontend's outbox); whatever
 * it keeps of the data it is lent, it copies (except reply_data_held's).
 *
 * Errors: 0 or a negative errno, passed up unchanged. Ops take positive errnos
 * (that is what goes on the wire).
 */
#pragma once

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <time.h>

struct device;
struct open_ctx;
struct pipe_attr;

/* How the core answers requests; provided by the frontend. */
struct device_ops {
	/* Answer a read with data (count 0 and no iov: 0 bytes, EOF). The
	 * iovecs point into the ring and are valid only during the call. */
	void (*reply_data)(void *req, const struct iovec *iov, int count);
	/* The same with data that stays valid until the frontend's handler
	 * returns: the bytes of the write that handler serves, handed to a
	 * parked reader; the frontend may send them later without a copy. */
	void (*reply_data_held)(void *req, const struct iovec *iov, int count);
	/* Answer a write with the number of bytes taken. */
	void (*reply_written)(void *req, size_t count);
	/* Answer any request with an error (positive errno). */
	void (*reply_error)(void *req, int err);
	/* True if the caller of req was interrupted (checked before parking). */
	bool (*req_interrupted)(void *req);
	/* Wake the poller behind ph; the core forgets ph afterwards. */
	void (*poll_notify)(void *ph);
	/* Drop a poll handle without waking it. */
	void (*poll_destroy)(void *ph);
	/* Answer an open with its handle. False if the opener is gone: the
	 * core then drops ctx. */
	bool (*reply_open)(void *req, struct open_ctx *ctx);
	/* Answer an ioctl with its return value and out bytes. */
	void (*reply_ioctl)(void *req, int result, const void *out, size_t size);
	/* Handover (device_save, device_restore; all may be NULL where no
	 * handover is done): the id the kernel knows req by, asked while
	 * req's own handler runs (the core parks a request only there); the
	 * same for a poll handle; and stand-ins for a request or poll handle
	 * of an earlier image, answered through the same ops (NULL: no
	 * memory). */
	uint64_t (*req_wire)(void *req);
	uint64_t (*poll_wire)(void *ph);
	void *(*req_restore)(uint64_t wire);
	void *(*poll_restore)(uint64_t wire);
};

struct device_config {
	uint64_t ring_size;       /* default capacity of new pipes */
	uint64_t max_pipes;
	uint64_t max_memory;      /* bytes of ring storage in total */
	bool case_sensitive;
	uint32_t mode;            /* device permission bits (who may create pipes) */
	uint32_t uid, gid;        /* device owner */
	uint32_t frontend;        /* RINGDEV_FRONTEND_* reported by VERSION */
	char default_pipe[64];    /* where a CUSE open starts */
	uint32_t ctl_mode;        /* control node permission bits (0600 or 0660) */
	uint32_t ctl_gid;         /* control node group (with ctl_mode 0660) */
	bool admin_set;           /* --admin-group given */
	uint32_t admin_gid;       /* its members see and manage everything */
	uint64_t max_pipes_per_uid; /* 0: no limit */
	uint64_t max_opens_per_uid; /* 0: no limit */
	uint64_t max_parked;      /* requests waiting at once, in all */
	uint64_t max_memory_per_uid; /* ring bytes of the pipes one uid owns; 0: no limit */
	uint64_t max_parked_per_uid; /* requests of one uid's handles waiting at once; 0: no limit */
	bool require_broker;      /* relayed requests wait for a broker */
	uint32_t broker_timeout_ms; /* how long they may wait to be taken */
	/* How long an interrupted request the broker took waits for its answer
	 * (the CANCEL handshake) before it ends with EINTR; 0: the default. */
	uint32_t cancel_timeout_ms;
};

#define DEVICE_CANCEL_TIMEOUT_MS 2000u

/* The caller's identity as the kernel reported it. The pid is informational. */
struct cred {
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;
};

/* What the FUSE mount shows of a pipe. */
struct pipe_attr {
	uint64_t ino;
	uint32_t mode;            /* permission bits only */
	uint32_t uid, gid;
	uint64_t size;            /* payload bytes queued */
	struct timespec atime, mtime, ctime;
};

/* Arguments of an attach (FUSE create/open by name, CUSE ATTACH ioctl). */
struct attach_args {
	const char *name;
	size_t len;
	uint32_t flags;           /* RINGDEV_ATTACH_* */
	uint32_t kind;            /* used when creating; 0 = stream */
	uint32_t policy;          /* used when creating; 0 = block */
	uint32_t mode;            /* used when creating; permission bits */
	uint64_t capacity;        /* used when creating; 0 = config default */
};

/* pthread_create for every thread the daemon starts: the new thread begins
 * with every signal blocked (the caller's mask is restored after). Only the
 * serving thread may take SIGTERM, SIGINT and SIGHUP: libfuse's handlers
 * just mark the session exited, and only the thread waiting in the serving
 * loop's ppoll wakes with EINTR to see that; a signal some other thread
 * takes leaves the loop serving on. 0 or -errno. */
int daemon_thread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);

/* Threads do not follow fork() into the child: a daemon that forks after
 * device_new (fuse_daemonize) would have no timer thread (no deadline would
 * ever expire, and device_free would wait forever to join it). Fork only
 * between these two: the first stops the core's threads, the second, in
 * the process that goes on, starts them again (0 or -errno). */
void device_before_fork(struct device *dev);
int device_after_fork(struct device *dev);

/* Makes the arena of the rings (a memfd: see arena.h) and starts the
 * device's timer thread; NULL on failure, which it has logged (one line),
 * with errno set. */
struct device *device_new(const struct device_config *cfg, const struct device_ops *ops);
struct arena;
/* The arena every pipe's ring lives in: its memfd is what a re-exec of the
 * daemon hands to the new image with the rings' state. */
struct arena *device_arena(struct device *dev);
/* Take a (an earlier image's arena: arena_adopt) in place of the one
 * device_new made, which it destroys; only while there is no pipe yet.
 * 0 or -EBUSY. */
int device_use_arena(struct device *dev, struct arena *a);
/* The size device_new makes it for these limits (max_memory 0: no limit). */
uint64_t device_arena_size(uint64_t max_memory, uint64_t max_pipes);

/* Handover (handover.c). device_save appends the core's records to w; call
 * it while no request is being served. device_restore rebuilds a new,
 * empty device from a state (records of types >= STATE_FRONTEND_RECORDS
 * go to `other`); it answers nothing. 0, or -errno with r->problem saying
 * why the state was refused; a refused device must not be used again (its
 * arena still holds the old image's rings: see frontend/restart.c). */
struct state_writer;
struct state_reader;
struct state_record;
int device_save(struct device *dev, struct state_writer *w);
int device_restore(struct device *dev, struct state_reader *r, int (*other)(void *arg, struct state_record *rec),
		   void *arg);
/* A handover ended: how long requests waited (statistics). */
void device_note_pause(struct device *dev, uint64_t pause_us);
/* A new device after a crash (--fd-store): the ids a broker saw, of
 * requests and of handles, must never come again on this connection (a
 * broker still holding work of the crashed process would answer a request
 * of now), and the crashed process's last ids are not known. Both start
 * past any it can have given: the boot-time clock in nanoseconds, which
 * no process outruns by one id a nanosecond. */
void device_ids_after_crash(struct device *dev);
/* Frees everything; call after device_shutdown. Accepts NULL. */
void device_free(struct device *dev);
/* End every parked request (ESHUTDOWN) and drop poll handles; later
 * requests are still served (the frontend stops taking them). */
void device_shutdown(struct device *dev);

/* An app opens the device. CUSE: default_pipe set (the open starts on the
 * default pipe). FUSE mount: ino of an existing pipe (a new one was made by
 * device_mknod just before). With a broker the open is relayed and answered
 * later. The core answers req with reply_open or reply_error, exactly once. */
struct open_args {
	bool default_pipe;
	uint64_t ino;
};
void device_open_request(struct device *dev, const struct cred *cred, int oflags, const struct open_args *args,
			 void *req);

/* Open the control node (EBUSY if open, EACCES, EINVAL unless O_RDWR). */
int device_ctl_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out);

/* A new handle, attached to no pipe yet. oflags: the open(2) flags. */
int device_open(struct device *dev, const struct cred *cred, int oflags, struct open_ctx **out);
/* Attach a handle to a pipe by name (moves it if attached elsewhere),
 * checked with cred, the caller's credentials (not the opener's). */
int device_attach(struct device *dev, struct open_ctx *ctx, const struct cred *cred, const struct attach_args *args);
/* Attach a handle to the pipe with this inode number (FUSE open). */
int device_attach_ino(struct device *dev, struct open_ctx *ctx, uint64_t ino);
/* Create a persistent pipe (kept when unused and empty) owned by cred; -EEXIST
 * if it exists. Used for the CUSE default pipe and by admins. */
int device_create(struct device *dev, const struct cred *cred, const struct attach_args *args);
/* Detach a handle from its pipe; its parked requests end with ENXIO. */
int device_detach(struct device *dev, struct open_ctx *ctx);
/* Last close of a handle: parked requests end with EBADF, ctx is freed. */
void device_release(struct device *dev, struct open_ctx *ctx);
/* The attributes of the handle's pipe (-ENXIO if detached). */
int device_ctx_attr(struct device *dev, struct open_ctx *ctx, struct pipe_attr *out);
/* True the first time it is asked for a handle, false after: lets a
 * frontend log something once per handle, not once per request. */
bool device_ctx_note_once(struct device *dev, struct open_ctx *ctx);
/* The fh the kernel knows a handle by, and the handle of an fh the kernel
 * gave (NULL if no handle has it: see handle.c). */
uint64_t device_ctx_fh(const struct open_ctx *ctx);
struct open_ctx *device_ctx_from_fh(struct device *dev, uint64_t fh);
/* Name a frontend object (a FUSE directory listing) as handles are named,
 * and find it again: NULL if an earlier image named it (the frontend keeps
 * those itself). */
uint64_t device_fh_name(const struct device *dev, const void *obj);
/* The generations of fh that handles alive now use (a bit each), and a
 * device (with no handle yet) that must use none of them: after a crash,
 * the kernel still holds the fh of handles nobody knows any more, and no
 * new handle may be mistaken for one. 0 or -ENOSPC (all 256 taken). */
void device_fh_gens(struct device *dev, uint8_t used[32]);
/* Is a generation left for the next image (not all 256 in use)? */
bool device_fh_gen_left(struct device *dev);
int device_fh_avoid(struct device *dev, const uint8_t used[32]);
/* The kernel may hold fh of these generations that are no handle's of this
 * image: a frontend object an earlier image named (a FUSE listing: its fh),
 * the handles a crash lost (a set of generations). No later generation of
 * this device is one of them, and device_fh_gens counts them. Only while
 * the device is restored, before it serves and before its generation is
 * chosen (device_restore, device_fh_avoid): they take no lock. */
void device_fh_hold(struct device *dev, uint64_t fh);
/* The inode number the next pipe gets, and (before the device serves) a
 * floor for it: after a crash the kernel still knows the inodes of the
 * lost pipes by number (an open through /proc/PID/fd/N names the inode,
 * not the path), and no new pipe may answer to one of them. */
uint64_t device_next_ino(struct device *dev);
void device_ino_floor(struct device *dev, uint64_t floor);
void device_fh_hold_gens(struct device *dev, const uint8_t gens[32]);
void *device_fh_object(const struct device *dev, uint64_t fh);

/* I/O. The core answers req now or parks it; it always answers exactly once.
 * `continuation` is true for the second and later chunks of one read system
 * call that the kernel split: those never park (a pipe's read returns what
 * is there). */
void device_read(struct device *dev, struct open_ctx *ctx, void *req, size_t size, int oflags,
		 bool continuation);
void device_write(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size,
		  int oflags);
/* The same for one piece of a write(2) the kernel split into requests (at
 * most max_write bytes each: 1 MiB on the FUSE mount, 128 KiB on CUSE).
 * `continuation` is true for the second and later pieces: the call has
 * already placed bytes, so it is a write larger than one request, judged
 * like a stream write larger than the capacity (it may go in parts). The
 * kernel sends no total, so only its first piece can be judged, and only as
 * itself; device_write is a first piece. */
void device_write_piece(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size,
			int oflags, bool continuation);
/* The caller of req was interrupted: if req is parked it ends with EINTR. */
void device_interrupt(struct device *dev, void *req);
/* Current POLL* mask of the handle; if ph is not NULL the core keeps it and
 * calls poll_notify when the mask changes (replacing an earlier handle). */
unsigned device_poll(struct device *dev, struct open_ctx *ctx, void *ph);

/* The argument bytes the kernel must copy in and out for any command of
 * ringdev's magic (its own, the control node's, the device-specific range),
 * from the bits of the number; false if cmd is not of ringdev's magic. */
bool device_ioctl_arg_sizes(unsigned int cmd, size_t *in, size_t *out);
/* The same, only for the commands the daemon answers itself. */
bool device_ioctl_sizes(unsigned int cmd, size_t *in, size_t *out);

/* An ioctl that may have to wait (control node commands, ATTACH and the
 * device-specific range while a broker is there): returns true if the core
 * took req (and answers it with reply_ioctl/reply_error), false if the
 * caller should use device_ioctl. */
bool device_ioctl_async(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
			unsigned int cmd, const void *in, size_t in_size, size_t out_size);

/* ioctl: ctx is NULL for the device itself (FUSE mount root). `in`/`out`
 * are the kernel-copied argument buffers. Returns 0 or -errno. */
int device_ioctl(struct device *dev, struct open_ctx *ctx, const struct cred *cred, unsigned int cmd,
		 const void *in, size_t in_size, void *out, size_t out_size);

/* Namespace (FUSE mount). What cred may not see (access.h) is ENOENT. */
int device_lookup(struct device *dev, const struct cred *cred, const char *name, size_t len, struct pipe_attr *out);
int device_getattr(struct device *dev, const struct cred *cred, uint64_t ino, struct pipe_attr *out);
/* A new pipe by name, owned by cred, for the open that follows (the FUSE
 * mount's O_CREAT: the kernel sends MKNOD, then OPEN outside its directory
 * lock, so a broker deciding the open blocks nobody else's lookups). The
 * pipe is held for cred's first open; with a broker in charge it is reachable
 * by nobody else until that open is allowed. -EEXIST, -EACCES (no write
 * permission on the device, whatever a broker says; an existing pipe cred
 * may not see), limit errnos. */
int device_mknod(struct device *dev, const struct cred *cred, const char *name, size_t len, uint32_t mode,
		 struct pipe_attr *out);
/* chmod/chown through the mount: set_mode/set_uid/set_gid choose what changes. */
int device_setattr(struct device *dev, const struct cred *cred, uint64_t ino, bool set_mode, uint32_t mode,
		   bool set_uid, uint32_t uid, bool set_gid, uint32_t gid, struct pipe_attr *out);
/* access(2): mask of R_OK/W_OK/X_OK. */
int device_access(struct device *dev, const struct cred *cred, uint64_t ino, int mask);
int device_unlink(struct device *dev, const struct cred *cred, const char *name, size_t len);
/* Whether cred may create pipes (write permission on the device). */
bool device_may_create(struct device *dev, const struct cred *cred);

/* An open of the FUSE mount's root and the snapshot of the pipe names its
 * opener may see, for a directory listing. device_dir_open readies the
 * open (charged nothing: see namespace.c); device_list takes the snapshot
 * (again, replacing an earlier one), memory charged to the opener's uid
 * (-ENOMEM past --max-memory or --max-memory-per-uid) until
 * device_list_free. */
struct name_list {
	size_t count;
	struct name_entry {
		uint64_t ino;
		char name[64];
	} *entries;
	uint32_t uid;                 /* the opener: charged */
	uint64_t charged;             /* bytes charged for entries */
};
void device_dir_open(const struct cred *cred, struct name_list *out);
int device_list(struct device *dev, const struct cred *cred, struct name_list *list);
void device_list_free(struct device *dev, struct name_list *list);

/* Counters for tests and admins. */
struct ringdev_stats;
void device_stats(struct device *dev, struct ringdev_stats *out);
struct ringdev_stats_ext;
void device_stats_ext(struct device *dev, struct ringdev_stats_ext *out);
