/* SPDX-License-Identifier: MIT */
/*
 * ringdev.h - the public ABI of ringdev: ioctl numbers and structures shared
 * by ringdevd, apps, the broker and the tools.
 *
 * Every structure has fixed-width fields only (no pointers, no size_t, no
 * off_t), natural alignment and explicit reserved space, so its layout is the
 * same for 32- and 64-bit callers; tests/unit/test_abi.c pins every size and
 * offset.  Every ioctl encodes its argument's size in its number
 * (_IOR/_IOW/_IOWR), so the kernel copies _IOC_SIZE bytes in and out: that is
 * what a FUSE file accepts. The CUSE node runs with unrestricted ioctls (so
 * that FIONREAD, which encodes no size, can be answered), and the daemon asks
 * the kernel to retry each command with the buffers its number describes: one
 * extra round trip per ioctl there.  Reserved fields must be zero on input
 * and are zero on output.  Strings are NUL-terminated within their arrays.
 *
 * Numbers: magic RINGDEV_IOC_MAGIC, nr 0x00-0x7f belong to ringdev itself,
 * nr 0x80-0xff are the device-specific range (relayed to the broker).
 */
#ifndef RINGDEV_RINGDEV_H
#define RINGDEV_RINGDEV_H

#include <stdint.h>
#include <linux/ioctl.h> /* _IOR and friends; callers include <sys/ioctl.h> for ioctl() */

#define RINGDEV_ABI_MAJOR 1
#define RINGDEV_ABI_MINOR 3           /* 1: RINGDEV_ANSWER_BUILTIN; 2: GRANT and the daemon's rules bind answers,
                                       * the CANCEL handshake and TRANSACT's refused; 3: restart statistics */

#define RINGDEV_NAME_MAX 63           /* bytes of a pipe name, without NUL */
#define RINGDEV_NAME_SIZE 64          /* array size holding a name + NUL */
#define RINGDEV_MESSAGE_MAX 65536u    /* largest message of a message pipe */
#define RINGDEV_MESSAGE_HEADER 4u     /* ring bytes each message costs extra */
#define RINGDEV_CAPACITY_MIN 64u      /* smallest pipe capacity */
#define RINGDEV_CAPACITY_MAX (1ull << 30) /* largest pipe capacity (1 GiB) */

enum ringdev_kind {
	RINGDEV_KIND_DEFAULT = 0,     /* on input: keep / use the default */
	RINGDEV_KIND_STREAM = 1,      /* bytes */
	RINGDEV_KIND_MESSAGE = 2,     /* each write is one message */
};

enum ringdev_policy {
	RINGDEV_POLICY_DEFAULT = 0,   /* on input: keep / use the default */
	RINGDEV_POLICY_BLOCK = 1,     /* writers wait for room */
	RINGDEV_POLICY_OVERWRITE = 2, /* oldest data is dropped and counted */
	RINGDEV_POLICY_FAIL = 3,      /* a write that does not fit gets EAGAIN */
};

/* RINGDEV_IOC_VERSION: any ringdev fd (pipe, device node, mount root). */
struct ringdev_version {
	uint32_t abi_major;           /* RINGDEV_ABI_MAJOR of the daemon */
	uint32_t abi_minor;
	uint32_t frontend;            /* RINGDEV_FRONTEND_* */
	uint32_t reserved0;
	char daemon_version[32];      /* e.g. "0.1.0" */
	uint64_t reserved[4];
};

enum ringdev_frontend {
	RINGDEV_FRONTEND_FUSE = 1,
	RINGDEV_FRONTEND_CUSE = 2,
};

/* RINGDEV_IOC_ATTACH: move this handle to pipe `name`. */
struct ringdev_attach {
	char name[RINGDEV_NAME_SIZE];
	uint32_t flags;               /* RINGDEV_ATTACH_* */
	uint32_t kind;                /* enum ringdev_kind, used when creating */
	uint32_t policy;              /* enum ringdev_policy, used when creating */
	uint32_t mode;                /* permission bits when creating; 0 = 0600 */
	uint64_t capacity;            /* bytes when creating; 0 = daemon default */
	uint64_t reserved[4];
};

#define RINGDEV_ATTACH_CREATE 0x1u    /* create the pipe if it does not exist */
#define RINGDEV_ATTACH_EXCL 0x2u      /* with CREATE: fail with EEXIST if it exists */
#define RINGDEV_ATTACH_FLAGS_ALL (RINGDEV_ATTACH_CREATE | RINGDEV_ATTACH_EXCL)

/* Pipe state flags in ringdev_pipe_info.flags. */
#define RINGDEV_PIPE_PERSISTENT 0x1u  /* kept when unused and empty */
#define RINGDEV_PIPE_EOF 0x2u         /* empty and all its writers closed */
#define RINGDEV_PIPE_UNLINKED 0x4u    /* removed from the name table */
#define RINGDEV_PIPE_ALLOCATED 0x8u   /* ring memory is allocated */

/* RINGDEV_IOC_PIPE_INFO: the pipe this handle is attached to. */
struct ringdev_pipe_info {
	char name[RINGDEV_NAME_SIZE];
	uint32_t kind;
	uint32_t policy;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint32_t flags;               /* RINGDEV_PIPE_* */
	uint32_t readers;             /* handles open for reading */
	uint32_t writers;             /* handles open for writing */
	uint32_t handles;             /* all handles attached */
	uint32_t parked_reads;
	uint32_t parked_writes;
	uint32_t reserved0;
	uint64_t capacity;            /* ring bytes */
	uint64_t queued_bytes;        /* payload bytes waiting to be read */
	uint64_t queued_messages;     /* message pipes: messages waiting */
	uint64_t allocated_bytes;     /* ring memory held (0 until first write) */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t writes;              /* write calls completed (messages in) */
	uint64_t reads;               /* read calls completed (messages out) */
	uint64_t dropped_bytes;       /* overwrite policy: payload bytes lost */
	uint64_t dropped_messages;    /* overwrite policy: whole messages lost (message pipes) */
	uint64_t ino;                 /* the pipe's inode number on the FUSE mount */
	uint64_t reserved[7];
};

/* RINGDEV_IOC_NREAD: what a read would get now (FIONREAD that works everywhere). */
struct ringdev_nread {
	uint64_t next;                /* stream: bytes queued; message: next message size */
	uint64_t queued_bytes;
	uint64_t queued_messages;
	uint64_t reserved;
};

/* RINGDEV_IOC_SET_CONFIG: change the handle's pipe live (owner or root). */
struct ringdev_pipe_config {
	uint32_t set;                 /* RINGDEV_SET_* : which fields to apply */
	uint32_t kind;                /* only while the pipe is empty (else EBUSY) */
	uint32_t policy;
	uint32_t mode;                /* permission bits, 0777 at most */
	uint64_t capacity;            /* never below what is queued (else EBUSY) */
	uint64_t reserved[4];
};

#define RINGDEV_SET_KIND 0x1u
#define RINGDEV_SET_POLICY 0x2u
#define RINGDEV_SET_CAPACITY 0x4u
#define RINGDEV_SET_MODE 0x8u
#define RINGDEV_SET_ALL (RINGDEV_SET_KIND | RINGDEV_SET_POLICY | RINGDEV_SET_CAPACITY | RINGDEV_SET_MODE)

/* RINGDEV_IOC_STATS: device totals (device node or mount root, or any fd). */
struct ringdev_stats {
	uint64_t pipes;
	uint64_t opens;
	uint64_t parked_reads;
	uint64_t parked_writes;
	uint64_t parked_other;        /* relayed requests and broker TRANSACTs */
	uint64_t parked_total;        /* sum of the three above */
	uint64_t pollers;             /* handles with a pending poll notification */
	uint64_t memory_used;         /* bytes charged: rings, waiting writes, listings */
	uint64_t memory_limit;        /* --max-memory */
	uint64_t pipes_limit;         /* --max-pipes */
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t writes;
	uint64_t reads;
	uint64_t dropped_bytes;
	uint64_t dropped_messages;
	uint64_t interrupts;          /* parked requests ended by an interrupt */
	uint64_t limit_pipes_hits;    /* creations refused by --max-pipes */
	uint64_t limit_memory_hits;   /* refused by --max-memory(-per-uid) */
	uint64_t pipes_created;
	uint64_t pipes_removed;
	uint64_t broker_connected;    /* 1 while the control node is open */
	uint64_t relayed;             /* requests handed to a broker */
	uint64_t relay_rejected;      /* answers ignored: unknown, late or duplicate id */
	uint64_t relay_failed;        /* malformed answers (the app got EIO) */
	uint64_t relay_timeouts;      /* relayed requests that waited past --broker-timeout */
	uint64_t relay_cancels;       /* relayed requests the app interrupted */
	uint64_t relay_broker_gone;   /* requests ended because the broker went away */
	uint64_t limit_uid_pipes_hits; /* creations refused by --max-pipes-per-uid */
	uint64_t limit_uid_opens_hits; /* opens refused by --max-opens-per-uid */
	uint64_t limit_parked_hits;   /* requests refused by --max-parked(-per-uid) (ENOBUFS) */
	uint64_t flushed_bytes;       /* bytes discarded by RINGDEV_IOC_FLUSH */
};

/* RINGDEV_IOC_STATS_EXT: more device totals, where struct ringdev_stats has
 * no room left (ABI 1.2); asked like RINGDEV_IOC_STATS. */
struct ringdev_stats_ext {
	uint64_t relay_cancel_timeouts; /* interrupted requests whose broker did not answer
	                                 * the CANCEL within --cancel-timeout (the app got EINTR) */
	uint64_t restarts;              /* in-place restarts and upgrades this daemon went through (ABI 1.3) */
	uint64_t last_restart_pause_us; /* the last one's pause: old image's last answer to the new one's first */
	uint64_t reserved[13];
};

#define RINGDEV_IOC_MAGIC 0xE5

#define RINGDEV_IOC_VERSION _IOR(RINGDEV_IOC_MAGIC, 0x00, struct ringdev_version)
#define RINGDEV_IOC_ATTACH _IOW(RINGDEV_IOC_MAGIC, 0x01, struct ringdev_attach)
#define RINGDEV_IOC_DETACH _IO(RINGDEV_IOC_MAGIC, 0x02)
#define RINGDEV_IOC_PIPE_INFO _IOR(RINGDEV_IOC_MAGIC, 0x03, struct ringdev_pipe_info)
#define RINGDEV_IOC_NREAD _IOR(RINGDEV_IOC_MAGIC, 0x04, struct ringdev_nread)
#define RINGDEV_IOC_SET_CONFIG _IOW(RINGDEV_IOC_MAGIC, 0x05, struct ringdev_pipe_config)
#define RINGDEV_IOC_STATS _IOR(RINGDEV_IOC_MAGIC, 0x10, struct ringdev_stats)

/*
 * Admin view (any ringdev fd: the CUSE node, the FUSE mount root, a pipe).
 * Lists are paged: `start` is the index of the first entry wanted; `total`
 * the entries there are now; call again with start += count until
 * start >= total. Names in lists are only those the caller may see: pipes it
 * could open for reading or writing (all, for root or --admin-group); opens
 * of other users need root or --admin-group.
 */
#define RINGDEV_LIST_PIPES_MAX 60u
#define RINGDEV_LIST_OPENS_MAX 120u

struct ringdev_list_pipes {
	uint32_t start;               /* in */
	uint32_t count;               /* out: entries filled */
	uint32_t total;               /* out: entries visible in all */
	uint32_t reserved0;
	uint64_t reserved[2];
	struct ringdev_pipe_info pipes[RINGDEV_LIST_PIPES_MAX];
};

/* Flags in ringdev_open_info.flags. */
#define RINGDEV_OPEN_CONTROL 0x1u     /* the broker's control-node handle */
#define RINGDEV_OPEN_DETACHED 0x2u    /* attached to no pipe */
#define RINGDEV_OPEN_READER 0x4u
#define RINGDEV_OPEN_WRITER 0x8u

struct ringdev_open_info {
	uint64_t handle;              /* the handle's id (as in control requests) */
	char pipe[RINGDEV_NAME_SIZE]; /* its pipe ("" when detached) */
	uint32_t uid;
	uint32_t gid;
	uint32_t pid;                 /* at open: informational */
	uint32_t oflags;              /* open(2) flags */
	uint32_t flags;               /* RINGDEV_OPEN_* */
	uint32_t parked_reads;
	uint32_t parked_writes;
	uint32_t parked_other;        /* relayed requests, TRANSACTs */
	uint64_t bytes_in;            /* written through this handle */
	uint64_t bytes_out;           /* read through this handle */
	uint64_t reserved[2];
};

struct ringdev_list_opens {
	uint32_t start;               /* in */
	uint32_t count;               /* out */
	uint32_t total;               /* out */
	uint32_t reserved0;
	uint64_t reserved[2];
	struct ringdev_open_info opens[RINGDEV_LIST_OPENS_MAX];
};

/* RINGDEV_IOC_CREATE: a persistent pipe (kept when unused and empty). */
struct ringdev_create {
	char name[RINGDEV_NAME_SIZE];
	uint32_t kind;                /* 0 = stream */
	uint32_t policy;              /* 0 = block */
	uint32_t mode;                /* 0 = 0600 */
	uint32_t flags;               /* RINGDEV_CREATE_* */
	uint32_t uid;                 /* owner, with RINGDEV_CREATE_OWNER (root only) */
	uint32_t gid;
	uint64_t capacity;            /* 0 = --ring-size */
	uint64_t reserved[4];
};
#define RINGDEV_CREATE_OWNER 0x1u     /* use uid/gid (root only); else the caller's */
#define RINGDEV_CREATE_FLAGS_ALL 0x1u

/* RINGDEV_IOC_REMOVE, RINGDEV_IOC_PIPE_BY_NAME use a name. */
struct ringdev_name {
	char name[RINGDEV_NAME_SIZE];
	uint64_t reserved[2];
};

/* RINGDEV_IOC_CONFIGURE: SET_CONFIG on a pipe by name; also owner (root). */
struct ringdev_configure {
	char name[RINGDEV_NAME_SIZE];
	uint32_t set;                 /* RINGDEV_SET_* and RINGDEV_SET_OWNER */
	uint32_t kind;
	uint32_t policy;
	uint32_t mode;
	uint32_t uid;
	uint32_t gid;
	uint64_t capacity;
	uint64_t reserved[4];
};
#define RINGDEV_SET_OWNER 0x10u       /* uid and gid (root only) */

/* RINGDEV_IOC_FLUSH: discard what a pipe holds (counted). */
struct ringdev_flush {
	char name[RINGDEV_NAME_SIZE];
	uint64_t bytes;               /* out: payload bytes discarded */
	uint64_t messages;            /* out: messages discarded */
	uint64_t reserved[2];
};

#define RINGDEV_IOC_LIST_PIPES _IOWR(RINGDEV_IOC_MAGIC, 0x11, struct ringdev_list_pipes)
#define RINGDEV_IOC_LIST_OPENS _IOWR(RINGDEV_IOC_MAGIC, 0x12, struct ringdev_list_opens)
#define RINGDEV_IOC_PIPE_BY_NAME _IOWR(RINGDEV_IOC_MAGIC, 0x13, struct ringdev_pipe_info) /* name in */
#define RINGDEV_IOC_CREATE _IOW(RINGDEV_IOC_MAGIC, 0x14, struct ringdev_create)
#define RINGDEV_IOC_REMOVE _IOW(RINGDEV_IOC_MAGIC, 0x15, struct ringdev_name)
#define RINGDEV_IOC_CONFIGURE _IOW(RINGDEV_IOC_MAGIC, 0x16, struct ringdev_configure)
#define RINGDEV_IOC_FLUSH _IOWR(RINGDEV_IOC_MAGIC, 0x17, struct ringdev_flush)
#define RINGDEV_IOC_STATS_EXT _IOR(RINGDEV_IOC_MAGIC, 0x18, struct ringdev_stats_ext)

/* Device-specific range: relayed to the broker (see ringdev(4)). */
#define RINGDEV_IOC_DEVICE_NR_FIRST 0x80
#define RINGDEV_IOC_DEVICE_NR_LAST 0xff

/*
 * The control channel (inverted call). The broker opens the control node
 * (CUSE: /dev/NAME-ctl; FUSE mount: MOUNT/.ctl; one open at a time, EBUSY
 * for a second) and calls RINGDEV_IOC_CTL_TRANSACT from one or more threads:
 * each call carries answers to requests taken earlier and returns the next
 * batch of requests, parking until at least one exists or timeout_ms ends.
 * Payloads beyond the inline space move with RINGDEV_IOC_CTL_FETCH (the
 * request's in-payload) and RINGDEV_IOC_CTL_STAGE (the answer's out-payload),
 * addressed by request id. Only fixed-size ioctls: both frontends carry the
 * same protocol.
 */
enum ringdev_ctl_type {
	RINGDEV_CTL_OPEN = 1,     /* an app opened the data node (FUSE: a pipe file) */
	RINGDEV_CTL_ATTACH = 2,   /* an app asked to attach to pipe `name` */
	RINGDEV_CTL_IOCTL = 3,    /* a device-specific ioctl (cmd) */
	RINGDEV_CTL_READ = 4,     /* a read on a brokered pipe: `size` bytes wanted */
	RINGDEV_CTL_WRITE = 5,    /* a write on a brokered pipe: `size` bytes offered */
	RINGDEV_CTL_CANCEL = 6,   /* notice: the app interrupted request `ref`: answer `ref` (ABI 1.2) */
	RINGDEV_CTL_RELEASE = 7,  /* notice: handle `handle` was closed; no answer */
};

#define RINGDEV_CTL_INLINE 1024u  /* payload bytes carried inside a request or answer */
#define RINGDEV_ERRNO_MAX 511     /* an answer's -errno is 1..511: the kernel carries no larger one */
#define RINGDEV_CTL_BATCH 4u      /* requests (and answers) per TRANSACT at most */
#define RINGDEV_CTL_BULK 16256u   /* payload bytes per FETCH or STAGE call */

struct ringdev_ctl_request {
	uint64_t id;                  /* answer with this id; unique for the daemon's life */
	uint32_t type;                /* enum ringdev_ctl_type */
	uint32_t oflags;              /* the handle's open(2) flags */
	uint64_t handle;              /* the app's handle, the same in all its requests */
	uint64_t ref;                 /* CANCEL: the id of the cancelled request */
	uint32_t uid;                 /* who made the call, as the kernel reported it (READ, */
	uint32_t gid;                 /* WRITE: who opened the handle, whose fd it is) */
	uint32_t pid;                 /* informational only: never authorize by it */
	uint32_t cmd;                 /* IOCTL: the command */
	uint32_t size;                /* IOCTL, WRITE: in-payload bytes; READ: bytes wanted */
	uint32_t out_size;            /* IOCTL: bytes the command copies back to the app */
	uint32_t inline_size;         /* payload bytes in data[] (the rest: FETCH) */
	uint32_t attach_flags;        /* ATTACH: RINGDEV_ATTACH_* the app gave */
	char name[RINGDEV_NAME_SIZE]; /* OPEN (FUSE mount), ATTACH, READ, WRITE, IOCTL: the pipe */
	uint32_t kind;                /* ATTACH: what the app asked for when creating */
	uint32_t policy;
	uint32_t mode;
	uint32_t reserved0;
	uint64_t capacity;
	uint64_t reserved[4];
	uint8_t data[RINGDEV_CTL_INLINE];
};

/* Answer flags. */
#define RINGDEV_ANSWER_BROKERED 0x1u   /* OPEN/ATTACH: reads and writes of this pipe go to the broker */
#define RINGDEV_ANSWER_SETTINGS 0x2u   /* OPEN/ATTACH: create the pipe with kind..gid below */
#define RINGDEV_ANSWER_STAGED 0x4u     /* READ/IOCTL: the out-payload was STAGEd (size bytes) */
#define RINGDEV_ANSWER_BUILTIN 0x8u    /* OPEN/ATTACH: decide as ringdevd would with no broker (ABI 1.1) */
#define RINGDEV_ANSWER_GRANT 0x10u   /* OPEN/ATTACH: the named pipe may belong to another user (ABI 1.2) */
#define RINGDEV_ANSWER_FLAGS_ALL 0x1fu

struct ringdev_ctl_answer {
	uint64_t id;                  /* the request answered */
	int32_t result;               /* 0 or a count (READ/WRITE/IOCTL), or -errno (1..RINGDEV_ERRNO_MAX) */
	uint32_t flags;               /* RINGDEV_ANSWER_* */
	char name[RINGDEV_NAME_SIZE]; /* OPEN: the pipe this open maps to ("" = as asked) */
	uint32_t kind;                /* with SETTINGS: for a pipe the answer creates */
	uint32_t policy;
	uint32_t mode;
	uint32_t uid;                 /* owner of a created pipe */
	uint32_t gid;
	uint32_t size;                /* READ/IOCTL: out-payload bytes (inline or staged) */
	uint64_t capacity;
	uint64_t reserved[4];
	uint8_t data[RINGDEV_CTL_INLINE]; /* inline out-payload when size <= RINGDEV_CTL_INLINE */
};

struct ringdev_ctl_transact {
	uint32_t nanswers;            /* in: answers[] used (0..RINGDEV_CTL_BATCH) */
	uint32_t max_requests;        /* in: requests to take at most (0..RINGDEV_CTL_BATCH) */
	uint32_t timeout_ms;          /* in: park this long at most for a request; 0: never park */
	uint32_t nrequests;           /* out: requests[] filled */
	uint32_t rejected;            /* out: answers of this call ignored (unknown, late, duplicate id) */
	uint32_t failed;              /* out: answers of this call that were malformed (the app got EIO) */
	uint32_t refused;             /* out: bit i set: answers[i] reached no app (rejected or failed) (ABI 1.2) */
	uint32_t reserved0;
	uint64_t reserved[2];
	struct ringdev_ctl_answer answers[RINGDEV_CTL_BATCH];
	struct ringdev_ctl_request requests[RINGDEV_CTL_BATCH];
};

struct ringdev_ctl_bulk {
	uint64_t id;                  /* the request */
	uint64_t offset;              /* byte offset in the payload */
	uint32_t size;                /* STAGE: bytes in data; FETCH: in: bytes wanted, out: bytes given */
	uint32_t reserved0;
	uint64_t reserved[1];
	uint8_t data[RINGDEV_CTL_BULK];
};

#define RINGDEV_IOC_CTL_TRANSACT _IOWR(RINGDEV_IOC_MAGIC, 0x20, struct ringdev_ctl_transact)
#define RINGDEV_IOC_CTL_FETCH _IOWR(RINGDEV_IOC_MAGIC, 0x21, struct ringdev_ctl_bulk)
#define RINGDEV_IOC_CTL_STAGE _IOW(RINGDEV_IOC_MAGIC, 0x22, struct ringdev_ctl_bulk)

#endif /* RINGDEV_RINGDEV_H */
