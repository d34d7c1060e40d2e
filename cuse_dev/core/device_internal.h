/* SPDX-License-Identifier: MIT */
/*
 * device_internal.h - the core's objects, shared by its modules only.
 *
 * Ownership: the device owns the pipe table, every open_ctx (dev->opens)
 * and every parked request (dev->parked). A pipe lives while it has
 * handles, unread data or is persistent. A parked request is on exactly
 * one queue of its pipe, on its handle's list and in the device index by
 * request pointer (so an interrupt finds it in O(1)).
 */
#pragma once

#include <pthread.h>

#include <ringdev/ringdev.h>

#include "arena.h"
#include "clock.h"
#include "device.h"
#include "hashmap.h"
#include "limit.h"
#include "list.h"
#include "ring.h"

struct pipe {
	struct hash_node name_node;   /* in table.by_name while linked */
	struct hash_node ino_node;    /* in table.by_ino while alive */
	struct list_node opens;       /* open_ctx.pipe_link */
	struct list_node readq;       /* parked reads, FIFO */
	struct list_node writeq;      /* parked writes, FIFO */
	struct list_node pollers;     /* open_ctx.poll_link: handles holding a poll handle */
	char name[RINGDEV_NAME_SIZE];
	size_t name_len;
	uint64_t ino;
	uint32_t kind, policy, mode, uid, gid;
	bool persistent;
	bool brokered;                /* reads and writes go to the broker */
	bool linked;                  /* reachable by name */
	bool had_writer;              /* a writer wrote or closed here: the EOF rule */
	struct list_node hold_link;   /* dev->held_pipes while held */
	uint32_t hold_uid;            /* held for this creator's first open (see pipe_hold) */
	bool hold_void;               /* the hold gives its creator nothing any more (admit.c) */
	bool provisional;             /* made by MKNOD, not allowed by the broker yet: by no name */
	bool name_removed;            /* unlink(2) or REMOVE took its name */
	uint64_t hold_deadline_ns;    /* 0: not held */
	uint32_t readers, writers, handles;
	struct ring ring;             /* ring.capacity is the pipe's capacity */
	uint64_t allocated;           /* bytes counted against max_memory */
	uint64_t queued_messages;
	uint64_t bytes_in, bytes_out, writes, reads, dropped_bytes, dropped_messages;
	struct timespec atime, mtime, ctime;
};

/* How many removed pipes the table remembers by inode (see pipe_table_gone). */
#define PIPE_TABLE_GONE 256

struct pipe_table {
	struct hashmap by_name;
	struct hashmap by_ino;
	struct list_node held;        /* pipe.hold_link: made by mknod, waiting for their creator's open */
	uint64_t next_ino;
	bool case_sensitive;
	struct pipe_gone {            /* the last pipes removed, oldest overwritten first */
		uint64_t ino;
		bool unlinked;        /* its name was removed (unlink, REMOVE), not just unused */
		bool brokered;
		uint32_t kind, policy, mode, uid, gid;
		uint64_t capacity;
		char name[RINGDEV_NAME_SIZE];
	} gone[PIPE_TABLE_GONE];
	unsigned gone_next;
};

struct open_ctx {
	struct list_node dev_link;    /* dev->opens */
	struct list_node pipe_link;   /* pipe->opens while attached */
	struct list_node parked;      /* parked_req.ctx_link */
	struct list_node poll_link;   /* pipe->pollers while ph != NULL */
	struct pipe *pipe;            /* NULL when detached */
	void *ph;                     /* pending poll handle */
	unsigned poll_mask;           /* mask last reported to the poller */
	uint64_t id;
	uint64_t fh;                  /* the kernel's name for it (device_ctx_fh) */
	struct hash_node fh_node;     /* dev->fh_restored: a handle from an earlier image */
	bool fh_restored;
	int oflags;
	bool reader, writer;
	bool ctl;                     /* the control node's handle (the broker) */
	bool broker_knows;            /* a broker saw this handle: RELEASE notice */
	struct cred cred;
	uint64_t bytes_in, bytes_out;
	bool noted;                   /* device_ctx_note_once said true */
};

/* READ, WRITE: on a pipe's queue. OPEN: an app's open waiting for the
 * broker (its handle is dropped if it ends unanswered). RELAY: any other
 * operation waiting for the broker. TRANSACT: a broker waiting for work.
 * Only the statistics tell them apart; what a kind does is in its ops. */
enum parked_kind { PARKED_READ, PARKED_WRITE, PARKED_OPEN, PARKED_RELAY, PARKED_TRANSACT };

struct relay_req;
struct parked_req;

/* What a kind of waiting request does; defined by the module that owns the
 * kind (pipe.c: reads and writes; open.c: opens; relay.c: the rest), so the
 * registry (request.c) knows none of them. */
struct parked_ops {
	enum parked_kind kind;
	bool charged;                 /* counts against --max-parked(-per-uid) */
	/* Answer p's caller for an early end with err and free p (parked_free);
	 * NULL: answer the error. */
	void (*end)(struct device *dev, struct parked_req *p, int err);
	/* Let go of what p's data holds; called by parked_free. NULL: nothing. */
	void (*release)(struct device *dev, struct parked_req *p);
	/* Does p end when its handle leaves its pipe (detach, re-attach)? */
	bool (*pipe_bound)(const struct parked_req *p);
};

struct parked_req {
	struct list_node queue_link;  /* the queue it waits on (the kind's) */
	struct list_node ctx_link;    /* ctx->parked */
	struct hash_node index_node;  /* dev->parked by req pointer */
	const struct parked_ops *ops;
	void *req;
	uint64_t wire;                /* the kernel's id of req (device_ops.req_wire): saved at a handover */
	struct open_ctx *ctx;
	union {                       /* the kind's own data */
		struct {
			size_t size;          /* buffer size */
		} read;
		struct {
			uint8_t *data;        /* copy of what is to write */
			size_t total, done;   /* bytes in all, bytes moved so far */
			bool all_or_nothing;  /* may complete only whole */
		} write;
		struct {
			struct relay_req *relay; /* what waits for the broker; NULL once unhooked */
			uint64_t hold_ino;    /* OPEN: the pipe held for its creator's open, 0 */
		} relay;                      /* OPEN, RELAY */
		struct {
			struct ringdev_ctl_transact *t; /* the call's argument, answered when work comes */
			uint64_t deadline_ns; /* CLOCK_MONOTONIC end of its wait */
		} transact;
	} u;
};

/* PENDING: waits to be taken. TAKEN: a broker holds it. CANCELLING: the
 * app interrupted it after it was taken; the broker was sent a CANCEL and
 * its answer still ends the call, until deadline_ns (--cancel-timeout). */
enum relay_state { RELAY_PENDING, RELAY_TAKEN, RELAY_CANCELLING };

/* The parked kinds (their owners define them). */
extern const struct parked_ops pipe_parked_read, pipe_parked_write, open_parked, relay_parked, relay_parked_transact;
/* relay.c: a relayed request's waiter is freed: abandon its relay_req. */
void relay_parked_release(struct device *dev, struct parked_req *p);

/* A request for the broker. Owned by the device: on dev->relay_pending
 * until a TRANSACT takes it, then indexed by id until answered. The app's
 * waiting operation is `parked` (NULL for notices); the open an OPEN
 * request decides is parked->ctx. */
struct relay_req {
	struct list_node queue_link;  /* dev->relay_pending, then dev->relay_taken */
	struct hash_node id_node;     /* dev->relay_ids while it exists (not notices) */
	struct parked_req *parked;
	enum relay_state state;
	struct ringdev_ctl_request msg; /* what the broker gets (data[] filled when taken) */
	uint8_t *payload;             /* the full in-payload (WRITE, IOCTL) */
	uint8_t *staged;              /* STAGEd out-payload */
	uint64_t *staged_map;         /* bit per byte of staged[]: was it STAGEd (any order) */
	size_t staged_limit;
	uint64_t charged;             /* payload bytes charged to cred.uid (LIMIT_MEMORY) */
	uint64_t deadline_ns;         /* PENDING: taken by then; CANCELLING: answered by then (0: none) */
	struct cred cred;             /* who made the call (msg.uid/gid/pid) */
	bool default_pipe;            /* OPEN of the CUSE node */
	uint64_t open_ino;            /* OPEN of a pipe file on the mount */
	bool takes_hold;              /* OPEN by the creator of a held pipe */
	const struct relay_kind *kind; /* what an answer does, if not the type's own (a creation) */
};

struct device_counters {
	uint64_t bytes_in, bytes_out, writes, reads, dropped_bytes, dropped_messages;
	uint64_t interrupts, pipes_created, pipes_removed;
	uint64_t relayed, relay_rejected, relay_failed, relay_timeouts, relay_cancels, relay_broker_gone;
	uint64_t relay_cancel_timeouts;
	uint64_t flushed_bytes;
};

/* The parked-request registry (request.c). */
struct parked_registry {
	struct hashmap index;         /* parked_req.index_node, by request pointer */
	uint64_t count[PARKED_TRANSACT + 1]; /* by kind */
};

/* The relay's state (relay.c). */
struct relay {
	struct open_ctx *broker;      /* the control node's handle while open */
	struct list_node pending;     /* relay_req.queue_link, FIFO, not taken yet */
	struct list_node taken;       /* relay_req.queue_link: taken, not answered */
	struct hashmap ids;           /* relay_req.id_node: every answerable request */
	struct list_node transacts;   /* parked TRANSACTs (parked_req.queue_link) */
	uint64_t next_id;
};

/* Every handle (handle.c). */
struct handles {
	struct list_node list;        /* open_ctx.dev_link */
	uint64_t count;
	uint64_t pollers;             /* handles holding a poll handle */
	uint64_t next_id;
};

/* The core's one thread (timer.c). */
struct timer {
	pthread_cond_t cond;          /* wakes it: a new deadline, or stop */
	pthread_t thread;
	bool running, stop;
};

/* The device: one lock over the state of every module, each embedded with
 * its own init and a deinit that asserts it is empty. */
struct device {
	pthread_mutex_t lock;
	struct device_config cfg;
	const struct device_ops *ops;
	struct timer timer;
	struct pipe_table table;
	struct handles handles;
	struct parked_registry parked;
	struct relay relay;
	struct limits limits;
	struct device_counters count;
	struct arena *arena;          /* every ring's bytes (arena.h) */
	uint32_t fh_gen;              /* this image's generation, in the top byte of its handles' fh */
	struct hashmap fh_restored;   /* open_ctx.fh_node: handles of earlier images, by fh */
	uint8_t fh_held[32];          /* other generations the kernel may hold fh of (device_fh_hold) */
	uint64_t restarts;            /* handovers this device went through */
	uint64_t last_pause_us;       /* how long the last one kept requests waiting */
};

void parked_registry_init(struct parked_registry *r);
void parked_registry_deinit(struct parked_registry *r);
void relay_init(struct relay *r);
void relay_deinit(struct relay *r);
void handles_init(struct handles *h);
void handles_deinit(struct handles *h);

/* admit.c: the one rule for reaching a pipe (see there). */
struct pipe_settings;
struct admit {
	const struct cred *cred;      /* the process making the call */
	const char *name;             /* the pipe by name, or */
	size_t len;
	struct pipe *pipe;            /* the pipe itself (an open by inode: maybe unlinked) */
	unsigned want;                /* rwx bits the handle needs (handle_want) */
	bool create;                  /* may create it: O_CREAT/MKNOD, ATTACH_CREATE, CREATE, a mapped or default pipe */
	bool excl;                    /* must create it */
	bool mapped;                  /* the broker picked this pipe, not the app */
	bool grant;                   /* the broker vouches for a mapped pipe of another owner */
	bool brokered;                /* a pipe this creates is brokered */
	const struct pipe_settings *set; /* a pipe this creates gets these (NULL: defaults, owned by cred) */
	uint64_t hold_ino;            /* the open follows its caller's MKNOD of this inode (0: no) */
};
/* Find or create the pipe a asks for and check the caller may reach it:
 * 0 and *out, or -errno. */
int admit_pipe(struct device *dev, const struct admit *a, struct pipe **out);
/* The same, and move ctx onto it. */
int admit_attach(struct device *dev, struct open_ctx *ctx, const struct admit *a);
/* The settings of an answer with RINGDEV_ANSWER_SETTINGS (checked). */
struct pipe_settings answer_settings(const struct ringdev_ctl_answer *a);
/* Is p held for this caller's first open after its MKNOD of hold_ino? */
bool admit_hold_valid(const struct pipe *p, const struct cred *cred, uint64_t hold_ino);

/* device.c: the same as the public calls, for callers holding the lock */
int device_attach_locked(struct device *dev, struct open_ctx *ctx, const struct cred *cred,
			 const struct attach_args *args);
int device_detach_locked(struct device *dev, struct open_ctx *ctx);
/* A persistent pipe made by an admin command (owner uid/gid). */
int device_create_locked(struct device *dev, const struct cred *cred, const struct attach_args *args, uint32_t uid,
			 uint32_t gid);
/* RINGDEV_IOC_CREATE with a broker in charge: relayed as a creation
 * (namespace.c) and answered to req; false if no broker is in charge. */
bool device_create_relayed(struct device *dev, const struct cred *cred, const struct attach_args *a, void *req);
/* Destroy a pipe now: parked requests end with EIDRM, handles are detached. */
void device_remove_locked(struct device *dev, struct pipe *p);
void device_stats_locked(struct device *dev, struct ringdev_stats *out);
void device_stats_ext_locked(struct device *dev, struct ringdev_stats_ext *out);

/* ioctl.c: every argument check. */
/* Range and name checks of attach arguments (all paths that attach). */
int attach_args_check(const struct attach_args *args);
/* Decode and check a RINGDEV_IOC_ATTACH argument (copied to *a; args
 * points into it). */
int ioctl_decode_attach(const void *in, struct ringdev_attach *a, struct attach_args *args);
/* The ranges of a pipe's kind, policy, mode bits and capacity. */
bool settings_kind_ok(uint32_t kind);
bool settings_policy_ok(uint32_t policy);
bool settings_mode_ok(uint32_t mode);
bool settings_capacity_ok(uint64_t capacity);
bool ioctl_all_zero(const void *p, size_t n);

/* pipe_table.c */
void pipe_table_init(struct pipe_table *t, bool case_sensitive);
void pipe_table_deinit(struct pipe_table *t); /* asserts it is empty */
struct pipe *pipe_table_find(struct pipe_table *t, const char *name, size_t len);
struct pipe *pipe_table_find_ino(struct pipe_table *t, uint64_t ino);
/* What a removed pipe of inode ino was, if the table still remembers it
 * (the last PIPE_TABLE_GONE removals): an open the kernel sends for an
 * inode that went between its LOOKUP and the OPEN is an open of that name. */
const struct pipe_gone *pipe_table_gone(const struct pipe_table *t, uint64_t ino);
int pipe_table_add(struct pipe_table *t, struct pipe *p);
void pipe_table_unlink(struct pipe_table *t, struct pipe *p);   /* name only */
int pipe_table_link(struct pipe_table *t, struct pipe *p);      /* by its name again: 0, -EEXIST, -ENOMEM */
void pipe_table_remove(struct pipe_table *t, struct pipe *p);   /* name (if linked) and ino */
size_t pipe_table_count(const struct pipe_table *t);

/* request.c */
/* A new waiting request of ctx, charged to ctx's uid: NULL with *err
 * ENOBUFS (--max-parked, --max-parked-per-uid: counted) or ENOMEM. A
 * broker's TRANSACT is never refused. */
struct parked_req *parked_new(struct device *dev, const struct parked_ops *ops, void *req, struct open_ctx *ctx,
			      int *err);
struct parked_req *parked_find(struct device *dev, void *req);
/* The same for a request restored from a handover (handover.c): charged
 * past the limits if need be, with the kernel's id it had. */
struct parked_req *parked_new_restored(struct device *dev, const struct parked_ops *ops, void *req,
				       struct open_ctx *ctx, uint64_t wire, int *err);
/* Unlink from every list and the index, free. Does not answer. */
void parked_free(struct device *dev, struct parked_req *p);
/* End a parked request early with err: a write that already moved bytes
 * answers their count instead (as a pipe's interrupted write does); an
 * app's open that never completed also drops its handle. */
void parked_end(struct device *dev, struct parked_req *p, int err);
/* End every request parked by ctx. */
void parked_end_ctx(struct device *dev, struct open_ctx *ctx, int err);
/* End the requests of ctx that belong to its pipe (ops->pipe_bound). */
void parked_end_pipe_bound(struct device *dev, struct open_ctx *ctx, int err);

/* device.c */
/* The one way an app's open ends: answered with its handle (finish), or
 * with err and the handle dropped, since no release will come for it
 * (fail). hold_ino: the pipe its creator made by mknod for this open (0). */
void device_open_finish(struct device *dev, struct open_ctx *ctx, void *req, uint64_t hold_ino);
void device_open_fail(struct device *dev, struct open_ctx *ctx, void *req, int err, uint64_t hold_ino);
/* The built-in decision for an open (no broker). */
void device_open_builtin(struct device *dev, struct open_ctx *ctx, void *req, const struct open_args *args);
void ctx_free_locked(struct device *dev, struct open_ctx *ctx);

/* handle.c */
/* A new handle of cred, charged to its uid unless it is the control node's. */
int handle_new(struct device *dev, const struct cred *cred, int oflags, bool ctl, struct open_ctx **out);
void handle_attach_pipe(struct device *dev, struct open_ctx *ctx, struct pipe *p);
/* Take ctx off its pipe; what it waited for there ends with err. */
void handle_detach_pipe(struct device *dev, struct open_ctx *ctx, int err);
/* The rwx bits a handle needs on its pipe: 4 reader, 2 writer. */
unsigned handle_want(const struct open_ctx *ctx);
/* Handover (handover.c): a restored handle keeps the fh the kernel holds
 * for it; device_fh_next_gen picks this image's generation after old's,
 * one no restored handle uses. 0 or -errno. */
struct open_ctx *device_ctx_from_fh_locked(struct device *dev, uint64_t fh);
int device_fh_adopt(struct device *dev, struct open_ctx *ctx, uint64_t fh);
int device_fh_next_gen(struct device *dev, uint32_t old);

/* relay.c: the transport of the inverted call. What a relayed request of
 * each type does to the device comes from the device's modules through a
 * relay_kind: the relay calls nothing of the device by name. */
struct relay_waiter {
	struct open_ctx *ctx;         /* the handle the request is about */
	void *req;                    /* the app's request, to be answered */
	uint64_t hold_ino;            /* OPEN: the pipe held for its creator's open, 0 */
};
struct relay_kind {
	/* Apply a checked answer: answer w->req, exactly once. */
	void (*apply)(struct device *dev, struct relay_req *r, const struct relay_waiter *w,
		      const struct ringdev_ctl_answer *a);
	/* Decide as with no broker: answer w->req, exactly once. */
	void (*builtin)(struct device *dev, struct relay_req *r, const struct relay_waiter *w);
};
extern const struct relay_kind open_relay_kind;    /* open.c */
extern const struct relay_kind handle_relay_attach; /* handle.c */
extern const struct relay_kind create_relay_kind;   /* namespace.c */
/* A request for the broker by id (NULL: none); is it a notice (CANCEL,
 * RELEASE: no app waits, no id to answer)? */
struct relay_req *relay_find(struct device *dev, uint64_t id);
bool relay_is_notice(const struct relay_req *r);
/* Is a broker in charge (connected, or required)? */
bool relay_active(const struct device *dev);
/* An app's open for the broker, parked on ctx (kind PARKED_OPEN); NULL and
 * *err (negative) if it cannot wait. The caller fills msg and submits. */
struct relay_req *relay_open(struct device *dev, struct open_ctx *ctx, void *req, uint64_t hold_ino, int *err);
void relay_submit(struct device *dev, struct relay_req *r);
/* A user's RINGDEV_IOC_CREATE for the broker: an ATTACH with CREATE|EXCL
 * on ctx, a handle made for it alone (parked as an open: it is dropped
 * however the request ends), decided by `kind`. NULL and *err (negative) if
 * it cannot wait. The caller fills msg and submits. */
struct relay_req *relay_create(struct device *dev, struct open_ctx *ctx, void *req, const struct relay_kind *kind,
			       int *err);
/* The app's side ended (release, detach...): tell the broker if it took it. */
void relay_abandon(struct device *dev, struct relay_req *r);
/* A handle the broker knew was closed. */
void relay_notice_release(struct device *dev, struct open_ctx *ctx);
void relay_ctl_release(struct device *dev, struct open_ctx *ctl);
/* POLLIN while requests wait to be taken. */
unsigned relay_poll_mask(const struct device *dev);
/* The control node's commands, their arguments checked by ioctl.c: a
 * TRANSACT (owns t), a FETCH (fills *b), a STAGE. */
void relay_transact(struct device *dev, struct open_ctx *ctl, void *req, struct ringdev_ctl_transact *t);
int relay_fetch(struct device *dev, struct ringdev_ctl_bulk *b);
int relay_stage(struct device *dev, const struct ringdev_ctl_bulk *b);
/* An app's checked ATTACH or device-specific ioctl, for the broker. */
void relay_attach(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
		  const struct ringdev_attach *a);
void relay_device_ioctl(struct device *dev, struct open_ctx *ctx, const struct cred *cred, void *req,
			unsigned int cmd, const void *in, size_t in_size, size_t out_size);
void relay_io(struct device *dev, struct open_ctx *ctx, void *req, uint32_t type, const void *buf, size_t size);
void relay_shutdown(struct device *dev);
/* End what waited too long (timer thread); returns the next deadline or UINT64_MAX. */
uint64_t relay_expire(struct device *dev, uint64_t now);
int timer_start(struct device *dev);
void timer_stop(struct device *dev);
void timer_kick(struct device *dev);

/* pipe.c */
struct pipe_settings {
	uint32_t kind, policy, mode, uid, gid;
	uint64_t capacity;
};
/* A new pipe, charged to its owner (limit.h): 0 or -errno. */
int pipe_new(struct device *dev, const struct pipe_settings *set, const char *name, size_t len, struct pipe **out);
void pipe_destroy(struct device *dev, struct pipe *p);
/* End every read and write waiting on p with err. */
void pipe_end_waiters(struct device *dev, struct pipe *p, int err);
/* Give p to uid:gid, moving its charges. */
int pipe_set_owner(struct device *dev, struct pipe *p, uint32_t uid, uint32_t gid);
/* Keep p (unused and empty) until its creator uid opens it or the deadline. */
void pipe_hold(struct device *dev, struct pipe *p, uint32_t uid, uint64_t deadline_ns);
/* End p's hold; true if p was freed (nothing else keeps it). */
bool pipe_release_hold(struct device *dev, struct pipe *p);
/* Something about p changed (owner, mode): its hold gives its creator
 * nothing any more (it still keeps p until its deadline). */
void pipe_void_hold(struct pipe *p);
/* A handle attached to p: its hold is over (never frees p: the handle
 * keeps it). */
void pipe_end_hold(struct pipe *p);
/* chmod: the new permission bits (a change voids a hold). */
void pipe_set_mode(struct pipe *p, uint32_t mode);
/* End holds past their deadline (timer thread); the next deadline or UINT64_MAX. */
uint64_t pipe_expire_holds(struct device *dev, uint64_t now);
/* The settings attach arguments (0: defaults) give a pipe owned by uid:gid. */
struct pipe_settings pipe_settings_from_args(const struct device *dev, const struct attach_args *a, uint32_t uid,
					     uint32_t gid);
/* Remove p if nothing keeps it any more; returns true if it was freed. */
bool pipe_collect(struct device *dev, struct pipe *p);
void pipe_read(struct device *dev, struct open_ctx *ctx, void *req, size_t size, int oflags, bool continuation);
/* continuation: a later piece of one write(2) the kernel split (see
 * device_write_piece). */
void pipe_write(struct device *dev, struct open_ctx *ctx, void *req, const void *buf, size_t size, int oflags,
		bool continuation);
/* Serve parked requests and pollers after any change to p. */
void pipe_settle(struct device *dev, struct pipe *p);
unsigned pipe_poll_mask(const struct pipe *p, const struct open_ctx *ctx);
uint64_t pipe_queued_payload(const struct pipe *p);
uint64_t pipe_next_read_size(const struct pipe *p);
bool pipe_eof(const struct pipe *p);
int pipe_set_capacity(struct device *dev, struct pipe *p, uint64_t capacity);
void pipe_attr(const struct pipe *p, struct pipe_attr *out);
void pipe_info(const struct pipe *p, struct ringdev_pipe_info *out);
/* Keep a poll handle for ctx (on `pollers` if not NULL), replacing an older one. */
void ctx_poll_keep(struct device *dev, struct open_ctx *ctx, struct list_node *pollers, void *ph, unsigned mask);
/* Wake ctx's poller once and forget its handle. */
void ctx_poll_wake(struct device *dev, struct open_ctx *ctx);
/* Drop a handle's poll handle (not woken). */
void ctx_poll_drop(struct device *dev, struct open_ctx *ctx);

static inline struct timespec now_realtime(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return ts;
}
