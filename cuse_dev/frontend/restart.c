/* SPDX-License-Identifier: MIT */
/*
 * frontend/restart.c - restarting and upgrading ringdevd in place (SIGHUP),
 * as sshd re-executes itself: same pid, same mount or nodes, the program
 * at the path it was started from.
 *
 * What makes it possible: the kernel keeps a FUSE mount or a CUSE node as
 * long as one process holds its /dev/fuse or /dev/cuse descriptor, and exec
 * keeps descriptors. Everything else the kernel holds of ours is an
 * integer the new image can recognize: inode numbers, file handles (fh:
 * handle.c names them so that they survive), request ids (`unique`) and
 * poll handles (`kh`). The core's state goes over as records (handover.c)
 * in a sealed memfd; the rings' bytes never move: they live in a memfd
 * arena (arena.c) the new image maps again, so a gigabyte queued costs the
 * handover nothing.
 *
 * The handover, in the old image (restart_handover), with every serving
 * thread and the core's timer stopped:
 *   1. the state is written to a memfd; the kernel fds, the arena, the
 *      state and this program's own file (an O_PATH fd) lose FD_CLOEXEC;
 *   2. a guard is started: a process sharing the old image's address space
 *      (so that the exec does not tear the rings' page tables down inside
 *      the pause) that holds all of them and waits on a pipe;
 *   3. the process execs the program at its path, with
 *      RINGDEVD_HANDOVER=state:report:oldexe:guard in its environment.
 * The new image (restart_resume_*) checks and restores the state before it
 * reads or answers anything. Then it writes one byte to the guard, which
 * exits. If it refuses the state (a version it does not know, a record
 * that does not hold together), it execs the old program's file again (the
 * O_PATH fd: the file that ran before, even if the path has a new one
 * now), which takes its own state back; the pid stays. If the new image
 * dies instead (a crash, an exec of something that is not ringdevd), the
 * guard sees the pipe close with no byte and becomes the daemon itself by
 * exec'ing the old program: the mount or nodes never went away (the guard
 * held them), nothing is lost, only the pid is new. A new image that says
 * nothing for 30 s is stopped, and killed unless it spoke meanwhile, and
 * the guard takes over as well. With --fd-store the state also goes to the
 * service manager's store, and the manager, not the guard, starts the next
 * program on it (one state must never have two servers). If the exec
 * itself fails, the old image simply serves on.
 *
 * Requests parked before the handover are answered by id: the new image
 * holds a stand-in for each (a tagged pointer: restart_is_restored) and
 * writes the reply (a fuse_out_header with that unique) itself. INIT: the
 * kernel sends it once per connection, and libfuse will not serve a
 * session that has not seen one, so the INIT the old image received is
 * kept in the state and fed to the new session through its custom read;
 * the answer libfuse gives is dropped in the custom writev.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "arena.h"
#include "clock.h"
#include "config.h"
#include "hashmap.h"
#include "list.h"
#include "log.h"
#include "restart.h"
#include "service.h"
#include "state.h"

#ifndef FUSE_NOTIFY_POLL
#define FUSE_NOTIFY_POLL 1
#endif
#define CUSE_INIT_OPCODE 4096
#define INIT_SAVE_MAX 512
/* A request's or poll handle's id as the core keeps it: the kernel's
 * unique (or kh), and bit 62 for the session it came on (CUSE's control
 * node). Bit 63 stays the kernel's: a resent request has it set. */
#define WIRE_SESSION_SHIFT 62
#define WIRE_SESSION_BIT (UINT64_C(1) << WIRE_SESSION_SHIFT)
#define ENV_HANDOVER "RINGDEVD_HANDOVER"
#define ENV_FALLBACK "RINGDEVD_HANDOVER_FALLBACK"
#define ENV_STORE_CRASH "RINGDEVD_STORE_WITHOUT_STATE"
/* How long the guard waits for the new image's word before it takes over
 * anyway (a new program that hangs, say on a lock or a lookup, would leave
 * no one serving, forever). The environment may shorten it (tests). */
#define ENV_GUARD_TIMEOUT "RINGDEVD_GUARD_TIMEOUT_MS"
#define GUARD_TIMEOUT_MS 30000
#define SD_LISTEN_FDS_START 3
/* The path the first image was started from: an image run through the old
 * program's O_PATH fd (a refusal, a guard taking over) finds only "PATH
 * (deleted)" in /proc/self/exe once an upgrade replaced the file, and would
 * never upgrade again. */
#define ENV_PATH "RINGDEVD_HANDOVER_PATH"

enum { REC_META = STATE_FRONTEND_RECORDS, REC_SESSION, REC_GENS, REC_LOST, REC_INOS, REC_BOOT_SLOT };

/* Inode numbers: a boot record keeps the next one of its time (REC_INOS).
 * An image after a crash starts at the next multiple of 2^32 above it,
 * past every number the crashed one can have given (it would have had to
 * make 2^32 pipes), so no new pipe takes the number of a lost one. */
#define INO_EPOCH_SHIFT 32

/* Generations of fh a crash took from their images: the kernel holds the
 * handles of then until their apps close them, and a new handle of the same
 * generation would be taken for one. Kept (REC_LOST) by every later image,
 * through restarts and crashes: no generation of one is ever used again. */
static uint8_t lost_gens[32];

/* linux/fuse.h 7.40 (Linux 6.9): ask the kernel to send again every
 * request the daemon read and did not answer. */
#define RINGDEV_NOTIFY_RESEND 7
#define RINGDEV_MINOR_RESEND 40

/* One kernel connection: /dev/fuse (the mount) or a /dev/cuse fd. */
struct wire {
	int fd;                      /* -1: not attached */
	uint8_t init[INIT_SAVE_MAX]; /* the INIT the kernel sent, as it came */
	size_t init_len;
	bool feeding;                /* the next read is the saved INIT */
	bool drop_reply;             /* the answer to that INIT goes nowhere */
	uint64_t init_unique;
};

static struct wire wires[RESTART_SESSIONS_MAX] = { { .fd = -1 }, { .fd = -1 } };

static char self_path[PATH_MAX];
static int self_exe = -1;   /* this image's program file (O_PATH) */
static char **self_argv;

/* The message this thread is serving, as it came from the kernel. */
static _Thread_local const struct fuse_in_header *current_in;
static _Thread_local int current_session;

/* Resuming: what the old image handed over. */
static struct {
	bool active;
	bool fallback;       /* this is the old program taking its state back */
	bool in_guard;       /* ... in the guard, the new program having died */
	int state_fd, report_fd, old_exe, arena_fd;
	pid_t guard, old_pid;
	const uint8_t *state;
	size_t state_len;
	uint64_t stopped_ns; /* when the old image stopped serving */
	char old_version[64];
	uint32_t frontend;
	unsigned sessions;
	struct state_reader reader;
	bool from_store;     /* systemd's fd store gave it (restart or crash), not a SIGHUP */
	bool crash;          /* only the boot record: the state died with the old process */
	int store_conn[RESTART_SESSIONS_MAX], store_rings;
	uint8_t gens[32];    /* crash: fh generations the lost handles may use */
	bool gens_known;
	uint64_t boot_next_ino;  /* crash: the boot record's next inode number (0: an older one's) */
	int stored;          /* fds systemd gave (from SD_LISTEN_FDS_START) */
} resume = { .state_fd = -1, .report_fd = -1, .old_exe = -1, .arena_fd = -1 };

/* Stand-ins of an earlier image's requests, by wire id: what an INTERRUPT
 * of one of them finds. */
struct restored {
	struct hash_node node;
	uint64_t wire;
};
static struct hashmap restored_index = HASHMAP_INIT;
static pthread_mutex_t restored_lock = PTHREAD_MUTEX_INITIALIZER;
static struct device *restored_dev;

static void (*extra_save)(struct state_writer *w);
static int (*extra_load)(struct device *dev, struct state_record *rec);

void restart_set_extra(void (*save)(struct state_writer *w), int (*load)(struct device *dev, struct state_record *rec))
{
	extra_save = save;
	extra_load = load;
}

/* ---- the custom io every session goes through ---- */

static struct wire *wire_of(int fd, int *idx)
{
	for (int i = 0; i < RESTART_SESSIONS_MAX; i++)
		if (wires[i].fd == fd) {
			*idx = i;
			return &wires[i];
		}
	*idx = 0;
	return NULL;
}

/* systemd's fd store (--fd-store): the connection, the ring arena and a
 * boot record (how to feed INIT again: restart_fd_store) live there, and
 * the state when the daemon stops for a restart. */
static bool fd_store;
static bool stored_boot;
static bool store_ok;          /* the manager took the boot record: it keeps fds */
static unsigned boot_slot = 1; /* the boot record is under "boot0" or "boot1": this one */
static bool kept_in_store;
static void resend_parked(void);
static void store_boot(struct device *dev);
static void reap_later(pid_t pid);

static struct restored *restored_find_locked(uint64_t wire)
{
	for (struct hash_node *n = hashmap_bucket(&restored_index, hash_u64(wire)); n; n = n->next) {
		struct restored *r = container_of(n, struct restored, node);
		if (r->wire == wire)
			return r;
	}
	return NULL;
}

static ssize_t io_read(int fd, void *buf, size_t len, void *userdata)
{
	int idx;
	struct wire *w = wire_of(fd, &idx);
	if (w && w->feeding) {
		w->feeding = false;
		if (w->init_len > len) {
			errno = EIO;
			return -1;
		}
		memcpy(buf, w->init, w->init_len);
		w->drop_reply = true;
		current_in = buf;
		current_session = idx;
		return (ssize_t)w->init_len;
	}
	for (;;) {
		ssize_t n = read(fd, buf, len);
		if (n < (ssize_t)sizeof(struct fuse_in_header))
			return n;
		const struct fuse_in_header *in = buf;
		if (w && !w->init_len && (in->opcode == FUSE_INIT || in->opcode == CUSE_INIT_OPCODE)) {
			size_t keep = (size_t)n < sizeof(w->init) ? (size_t)n : sizeof(w->init);
			memcpy(w->init, buf, keep);
			w->init_len = keep;
			w->init_unique = in->unique;
			if (fd_store && !stored_boot)
				store_boot(userdata);
		}
		if (in->opcode == FUSE_INTERRUPT && restored_dev &&
		    (size_t)n >= sizeof(*in) + sizeof(struct fuse_interrupt_in)) {
			const struct fuse_interrupt_in *ii = (const void *)(in + 1);
			uint64_t wire = ii->unique | (uint64_t)idx << WIRE_SESSION_SHIFT;
			pthread_mutex_lock(&restored_lock);
			struct restored *r = restored_find_locked(wire);
			pthread_mutex_unlock(&restored_lock);
			if (r) {
				/* Answered (EINTR) through the core, or nothing
				 * if it was answered meanwhile. */
				device_interrupt(userdata, (void *)((uintptr_t)r | 1));
				continue;
			}
		}
		current_in = buf;
		current_session = idx;
		return n;
	}
}

static ssize_t io_writev(int fd, struct iovec *iov, int count, void *userdata)
{
	(void)userdata;
	int idx;
	struct wire *w = wire_of(fd, &idx);
	if (w && w->drop_reply && count > 0 && iov[0].iov_len >= sizeof(struct fuse_out_header)) {
		const struct fuse_out_header *out = iov[0].iov_base;
		if (out->unique == w->init_unique) {
			w->drop_reply = false;
			ssize_t total = 0;
			for (int i = 0; i < count; i++)
				total += (ssize_t)iov[i].iov_len;
			if (out->error)
				log_error("handover: the resumed session refused the kernel's INIT: %s",
					  strerror(-out->error));
			return total;
		}
	}
	return writev(fd, iov, count);
}

static const struct fuse_custom_io custom_io = { .read = io_read, .writev = io_writev };

int restart_attach_session(struct fuse_session *se, int i, int fd)
{
	if (i < 0 || i >= RESTART_SESSIONS_MAX)
		return -EINVAL;
	wires[i].fd = fd;
	int r = fuse_session_custom_io(se, &custom_io, fd);
	return r < 0 ? r : 0;
}

const void *restart_current_in(void)
{
	return current_in;
}

/* ---- requests and poll handles of an earlier image ---- */

uint64_t restart_req_wire(void *req)
{
	if (restart_is_restored(req))
		return ((struct restored *)((uintptr_t)req & ~(uintptr_t)1))->wire;
	/* A libfuse request parks only inside its own handler: the message
	 * this thread is serving is req's. */
	return current_in ? current_in->unique | (uint64_t)current_session << WIRE_SESSION_SHIFT : 0;
}

void *restart_req_restore(uint64_t wire)
{
	struct restored *r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	r->wire = wire;
	pthread_mutex_lock(&restored_lock);
	int e = restored_find_locked(wire) ? -EEXIST : hashmap_insert(&restored_index, &r->node, hash_u64(wire));
	pthread_mutex_unlock(&restored_lock);
	if (e < 0) {
		free(r);
		return NULL;
	}
	return (void *)((uintptr_t)r | 1);
}

static int session_fd(uint64_t wire)
{
	return wires[(wire & WIRE_SESSION_BIT) ? 1 : 0].fd;
}

void restart_reply_raw(void *req, int err, const struct iovec *iov, int count)
{
	struct restored *r = (struct restored *)((uintptr_t)req & ~(uintptr_t)1);
	struct fuse_out_header out = { .unique = r->wire & ~WIRE_SESSION_BIT };
	struct iovec v[4];
	int n = 0;
	v[n++] = (struct iovec){ &out, sizeof(out) };
	size_t len = sizeof(out);
	if (err) {
		out.error = -err;
	} else {
		for (int i = 0; i < count && n < 4; i++) {
			v[n++] = iov[i];
			len += iov[i].iov_len;
		}
	}
	out.len = (uint32_t)len;
	int fd = session_fd(r->wire);
	/* ENOENT: the kernel ended the request meanwhile (its caller died). */
	if (fd >= 0 && writev(fd, v, n) < 0 && errno != ENOENT)
		log_warn("handover: answer to request %llu: %s", (unsigned long long)out.unique, strerror(errno));
	pthread_mutex_lock(&restored_lock);
	hashmap_remove(&restored_index, &r->node);
	pthread_mutex_unlock(&restored_lock);
	free(r);
}

/* What the core holds as a poll handle: libfuse's, or the kh of an
 * earlier image's poll (ph NULL), with the id to save either by. */
struct restart_poll {
	struct fuse_pollhandle *ph;
	uint64_t wire;
};

void *restart_poll_wrap(struct fuse_pollhandle *ph)
{
	if (!ph)
		return NULL;
	struct restart_poll *p = malloc(sizeof(*p));
	if (!p) {
		fuse_pollhandle_destroy(ph); /* the poller is not woken: it polls again on its timeout */
		return NULL;
	}
	const struct fuse_in_header *in = current_in;
	uint64_t kh = 0;
	if (in && in->opcode == FUSE_POLL && in->len >= sizeof(*in) + sizeof(struct fuse_poll_in))
		kh = ((const struct fuse_poll_in *)(const void *)(in + 1))->kh;
	p->ph = ph;
	p->wire = kh | (uint64_t)current_session << WIRE_SESSION_SHIFT;
	return p;
}

uint64_t restart_poll_wire(void *p)
{
	return ((struct restart_poll *)p)->wire;
}

void *restart_poll_restore(uint64_t wire)
{
	struct restart_poll *p = malloc(sizeof(*p));
	if (p)
		*p = (struct restart_poll){ .ph = NULL, .wire = wire };
	return p;
}

void restart_poll_notify(void *ph)
{
	struct restart_poll *p = ph;
	if (p->ph) {
		fuse_lowlevel_notify_poll(p->ph);
		fuse_pollhandle_destroy(p->ph);
	} else {
		struct fuse_out_header out = { .error = FUSE_NOTIFY_POLL };
		struct fuse_notify_poll_wakeup_out arg = { .kh = p->wire & ~WIRE_SESSION_BIT };
		out.len = sizeof(out) + sizeof(arg);
		struct iovec iov[2] = { { &out, sizeof(out) }, { &arg, sizeof(arg) } };
		int fd = session_fd(p->wire);
		if (fd >= 0 && writev(fd, iov, 2) < 0 && errno != ENOENT)
			log_debug("handover: poll wake-up: %s", strerror(errno));
	}
	free(p);
}

void restart_poll_destroy(void *ph)
{
	struct restart_poll *p = ph;
	if (p->ph)
		fuse_pollhandle_destroy(p->ph);
	free(p);
}

/* Execute the program file fd names (O_PATH), with this image's argv and
 * environment. Through /proc/self/fd rather than execveat(AT_EMPTY_PATH):
 * the same file, and valgrind (3.19) follows it. Returns only on failure. */
static void exec_file(int fd)
{
	char path[64];
	extern char **environ;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	execve(path, self_argv, environ);
}

/* ---- starting ---- */

/* Valgrind (3.19) runs the new image: it reports an inherited O_PATH
 * descriptor without O_PATH (0x8000 here), so there a regular file is
 * taken. A forged environment gains nothing by it: LD_PRELOAD already runs
 * its code. */
static bool under_valgrind(void)
{
	const char *pre = getenv("LD_PRELOAD");
	return pre && strstr(pre, "vgpreload");
}

/* The old program's descriptor as only an old image hands it: O_PATH. */
static bool program_fd_ok(int fd, int flags)
{
	if (flags & O_PATH)
		return true;
	struct stat st;
	return under_valgrind() && fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
}

void restart_init(int argc, char **argv)
{
	(void)argc;
	self_argv = argv;
	ssize_t n = readlink("/proc/self/exe", self_path, sizeof(self_path) - 1);
	if (n < 0 || (size_t)n >= sizeof(self_path) - 1)
		self_path[0] = '\0';
	else
		self_path[n] = '\0';
	self_exe = open("/proc/self/exe", O_PATH | O_CLOEXEC);
	const char *h = getenv(ENV_HANDOVER);
	const char *path = getenv(ENV_PATH);
	if (h && path && *path && strlen(path) < sizeof(self_path))
		memcpy(self_path, path, strlen(path) + 1);
	unsetenv(ENV_PATH);
	if (!h)
		return;
	/* exec made this image dumpable again: after --user, any process of
	 * that user could then ptrace it or open its fds through /proc (the
	 * ring arena: every user's bytes), which the drop had ruled out. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	long v[4];
	const char *p = h;
	int got = 0;
	for (; got < 4; got++) {
		char *end;
		errno = 0;
		v[got] = strtol(p, &end, 10);
		if (errno || end == p || v[got] < -1 || v[got] > INT_MAX || *end != (got < 3 ? ':' : '\0'))
			break;
		p = end + 1;
	}
	int state = got == 4 ? (int)v[0] : -1, report = got == 4 ? (int)v[1] : -1, old_exe = got == 4 ? (int)v[2] : -1;
	long guard = got == 4 ? v[3] : 0;
	if (got != 4 || state < 0 || old_exe < 0) {
		fprintf(stderr, "ringdevd: %s: '%s' is not state:report:exe:guard\n", ENV_HANDOVER, h);
		exit(1);
	}
	/* Only an old image sets it, with its sealed state and its program
	 * as an O_PATH fd. Anything else is an environment that leaked or
	 * was forged: taking it for a handover would run whatever the "old
	 * program" fd is when the "state" is refused. A first start, then. */
	const int sealed = F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL;
	int seals = fcntl(state, F_GET_SEALS), exe_flags = fcntl(old_exe, F_GETFL);
	if (seals < 0 || (seals & sealed) != sealed || exe_flags < 0 || !program_fd_ok(old_exe, exe_flags)) {
		fprintf(stderr, "ringdevd: %s: fd %d is no sealed state or fd %d no program: not a handover, ignored\n",
			ENV_HANDOVER, state, old_exe);
		unsetenv(ENV_HANDOVER);
		unsetenv(ENV_FALLBACK);
		return;
	}
	resume.active = true;
	resume.state_fd = state;
	resume.report_fd = report;
	resume.old_exe = old_exe;
	resume.guard = (pid_t)guard;
	resume.fallback = getenv(ENV_FALLBACK) != NULL;
	resume.in_guard = resume.fallback && report < 0 && guard == 0; /* the guard runs the old program */
	/* None of them goes to a child or a later exec unless handed on. */
	int fds[] = { state, report, old_exe };
	for (int i = 0; i < 3; i++)
		if (fds[i] >= 0)
			fcntl(fds[i], F_SETFD, FD_CLOEXEC);
}

bool restart_resuming(void)
{
	return resume.active;
}

bool restart_dropped_already(void)
{
	return resume.active && !resume.from_store;
}

static void set_inherit(int fd, bool inherit)
{
	if (fd < 0)
		return;
	int f = fcntl(fd, F_GETFD);
	if (f >= 0)
		fcntl(fd, F_SETFD, inherit ? (f & ~FD_CLOEXEC) : (f | FD_CLOEXEC));
}

void restart_refuse(const char *why)
{
	if (resume.from_store) {
		if (resume.crash) {
			log_error("handover: cannot take the connection back from the fd store: %s; exiting", why);
			log_flush();
			_exit(1);
		}
		/* No old program to go back to: start again keeping only the
		 * connection, as after a crash. */
		log_error("handover: refusing the stored state: %s; serving the connection without it", why);
		log_flush();
		setenv(ENV_STORE_CRASH, "1", 1);
		for (int fd = SD_LISTEN_FDS_START; fd < SD_LISTEN_FDS_START + resume.stored; fd++)
			set_inherit(fd, true);
		exec_file(self_exe);
		_exit(1);
	}
	if (resume.fallback) {
		log_error("handover: the old program cannot take its own state back: %s; exiting", why);
		log_flush();
		_exit(1);
	}
	log_error("handover: refusing the state of ringdevd %s: %s; the old program serves on", resume.old_version,
		  why);
	log_flush();
	/* Back to the old program, with everything as it was handed over. */
	int fds[] = { resume.state_fd, resume.report_fd, resume.old_exe, resume.arena_fd, wires[0].fd, wires[1].fd };
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		set_inherit(fds[i], true);
	setenv(ENV_FALLBACK, "1", 1);
	if (self_path[0])
		setenv(ENV_PATH, self_path, 1);
	exec_file(resume.old_exe);
	log_error("handover: cannot run the old program again: %s; its guard takes over", strerror(errno));
	log_flush();
	_exit(1); /* the guard sees the report pipe close and execs it itself */
}

/* First pass over the state: the frontend's records, which say how to map
 * the rest (the arena) and which fds are the kernel's. */
static void resume_scan(void)
{
	struct stat st;
	if (fstat(resume.state_fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    (uint64_t)st.st_size > STATE_SIZE_MAX)
		restart_refuse("the state is not a file of a sane size");
	resume.state_len = (size_t)st.st_size;
	void *m = mmap(NULL, resume.state_len, PROT_READ, MAP_PRIVATE, resume.state_fd, 0);
	if (m == MAP_FAILED)
		restart_refuse("cannot map the state");
	resume.state = m;
	snprintf(resume.old_version, sizeof(resume.old_version), "%s", "(unknown version)");
	struct state_reader r;
	if (sr_open(&r, resume.state, resume.state_len) < 0)
		restart_refuse(r.problem);
	struct state_record rec;
	int k;
	bool meta = false;
	while ((k = sr_next(&r, &rec)) > 0) {
		if (rec.type == REC_META) {
			resume.frontend = sr_u32(&rec);
			resume.sessions = sr_u32(&rec);
			resume.stopped_ns = sr_u64(&rec);
			resume.old_pid = (pid_t)sr_u32(&rec);
			resume.arena_fd = (int)sr_u32(&rec);
			size_t n;
			const uint8_t *v = sr_bytes(&rec, sizeof(resume.old_version) - 1, &n);
			if (v) {
				memcpy(resume.old_version, v, n);
				resume.old_version[n] = '\0';
			}
			if (!sr_done(&rec) || resume.sessions < 1 || resume.sessions > RESTART_SESSIONS_MAX)
				restart_refuse("the frontend record is malformed");
			meta = true;
		} else if (rec.type == REC_BOOT_SLOT) {
			uint32_t slot = sr_u32(&rec);
			if (!sr_done(&rec) || slot > 1)
				restart_refuse("the boot slot record is malformed");
			if (!resume.from_store)
				boot_slot = slot;
		} else if (rec.type == REC_INOS) {
			resume.boot_next_ino = sr_u64(&rec);
			if (!sr_done(&rec))
				restart_refuse("the inode record is malformed");
		} else if (rec.type == REC_LOST) {
			size_t n;
			const uint8_t *g = sr_bytes(&rec, sizeof(lost_gens), &n);
			if (!g || n != sizeof(lost_gens) || !sr_done(&rec))
				restart_refuse("the lost generations record is malformed");
			for (size_t i = 0; i < n; i++)
				lost_gens[i] |= g[i];
		} else if (rec.type == REC_GENS) {
			size_t n;
			const uint8_t *g = sr_bytes(&rec, sizeof(resume.gens), &n);
			if (!g || n != sizeof(resume.gens) || !sr_done(&rec))
				restart_refuse("the generations record is malformed");
			memcpy(resume.gens, g, n);
			resume.gens_known = true;
		} else if (rec.type == REC_SESSION) {
			uint32_t i = sr_u32(&rec), fd = sr_u32(&rec);
			size_t n;
			const uint8_t *init = sr_bytes(&rec, INIT_SAVE_MAX, &n);
			/* From the store the fds come numbered anew (below). */
			if (!sr_done(&rec) || i >= RESTART_SESSIONS_MAX || fd > INT_MAX || !init ||
			    n < sizeof(struct fuse_in_header) || (!resume.from_store && fcntl((int)fd, F_GETFD) < 0))
				restart_refuse("a session record is malformed or names no open fd");
			wires[i].fd = (int)fd;
			memcpy(wires[i].init, init, n);
			wires[i].init_len = n;
			struct fuse_in_header head;
			memcpy(&head, init, sizeof(head)); /* the state keeps no alignment */
			wires[i].init_unique = head.unique;
		}
	}
	if (k < 0)
		restart_refuse(r.problem);
	if (!meta)
		restart_refuse("the state has no frontend record");
	if (resume.from_store) {
		/* The store numbers the fds anew. */
		for (unsigned i = 0; i < RESTART_SESSIONS_MAX; i++)
			wires[i].fd = i < resume.sessions ? resume.store_conn[i] : -1;
		resume.arena_fd = resume.store_rings;
	}
	for (unsigned i = 0; i < resume.sessions; i++)
		if (wires[i].fd < 0)
			restart_refuse("a session of the state is missing");
}

static int frontend_record(void *arg, struct state_record *rec)
{
	if (rec->type == REC_META || rec->type == REC_SESSION || rec->type == REC_GENS || rec->type == REC_LOST ||
	    rec->type == REC_INOS || rec->type == REC_BOOT_SLOT)
		return 0; /* read by resume_scan */
	if (rec->type >= RESTART_REC_EXTRA && extra_load)
		return extra_load(arg, rec);
	return -EINVAL;
}

/* After a crash: the connection and how to feed INIT came back from the
 * store, the state did not. A new, empty device serves the same mount or
 * nodes; handles from before are nobody's (EBADF), and their fh can never
 * be mistaken for a new handle's (device_fh_avoid). */
static struct device *resume_after_crash(struct daemon_config *cfg, const struct device_ops *ops)
{
	struct device *dev = device_new(&cfg->dev, ops);
	if (!dev)
		restart_refuse("cannot make the device");
	device_before_fork(dev); /* no deadline is served before restart_resume_done */
	if (!resume.gens_known)
		memset(resume.gens, 0xff, sizeof(resume.gens) - 1); /* unknown: all but one */
	/* Every generation the crashed image knew is lost now, for good. */
	for (size_t i = 0; i < sizeof(lost_gens); i++)
		lost_gens[i] |= resume.gens[i];
	device_fh_hold_gens(dev, lost_gens);
	device_ids_after_crash(dev);
	struct state_reader r;
	struct state_record rec;
	if (sr_reopen(&r, resume.state, resume.state_len) < 0)
		restart_refuse(r.problem);
	/* The frontend's objects first: they hold generations too. */
	while (sr_next(&r, &rec) > 0)
		if (rec.type >= RESTART_REC_EXTRA && extra_load && extra_load(dev, &rec) < 0)
			restart_refuse("a frontend record is malformed");
	if (device_fh_avoid(dev, resume.gens) < 0)
		restart_refuse("every handle generation may be in use");
	uint64_t epoch = (resume.boot_next_ino >> INO_EPOCH_SHIFT) + 1;
	if (epoch >> (64 - INO_EPOCH_SHIFT))
		restart_refuse("every inode number may be in use");
	device_ino_floor(dev, epoch << INO_EPOCH_SHIFT);
	return dev;
}

struct device *restart_resume_device(struct daemon_config *cfg, const struct device_ops *ops)
{
	resume_scan();
	if (resume.frontend != cfg->dev.frontend)
		restart_refuse("the state is of the other frontend (the command line changed?)");
	if (resume.crash) {
		struct device *dev = resume_after_crash(cfg, ops);
		restored_dev = dev;
		return dev;
	}
	struct arena *arena;
	int e = arena_adopt(resume.arena_fd, &arena);
	if (e < 0)
		restart_refuse("the ring arena cannot be mapped");
	struct device *dev = device_new(&cfg->dev, ops);
	if (!dev || device_use_arena(dev, arena) < 0)
		restart_refuse("cannot make the device");
	device_before_fork(dev); /* no deadline is served before restart_resume_done */
	device_fh_hold_gens(dev, lost_gens);
	restored_dev = dev;
	if (sr_reopen(&resume.reader, resume.state, resume.state_len) < 0 ||
	    device_restore(dev, &resume.reader, frontend_record, dev) < 0)
		restart_refuse(resume.reader.problem ? resume.reader.problem : "the state does not hold together");
	return dev;
}

int restart_session_fd(int i)
{
	return i >= 0 && i < RESTART_SESSIONS_MAX ? wires[i].fd : -1;
}

void restart_resume_feed(struct fuse_session **se, int n)
{
	struct fuse_buf buf = { 0 };
	for (int i = 0; i < n; i++) {
		wires[i].feeding = true;
		int r = fuse_session_receive_buf(se[i], &buf);
		if (r <= 0)
			restart_refuse("the saved INIT could not be fed to the new session");
		fuse_session_process_buf(se[i], &buf);
		if (wires[i].drop_reply) {
			wires[i].drop_reply = false;
			restart_refuse("the new session did not answer the saved INIT");
		}
		if (fuse_session_exited(se[i]))
			restart_refuse("the new session refused the saved INIT");
	}
	free(buf.mem);
	current_in = NULL;
}

void restart_resume_done(struct device *dev)
{
	uint64_t pause = resume.stopped_ns ? (now_ns() - resume.stopped_ns) / 1000 : 0;
	device_note_pause(dev, pause);
	if (resume.report_fd >= 0) {
		if (write(resume.report_fd, "k", 1) != 1)
			log_warn("handover: cannot tell the guard: %s", strerror(errno));
		close(resume.report_fd);
		resume.report_fd = -1;
	}
	/* The guard exits now; it may take a while (with the old address
	 * space goes its memory): reaped off the serving path. */
	if (resume.guard > 0)
		reap_later(resume.guard);
	munmap((void *)resume.state, resume.state_len);
	close(resume.state_fd);
	if (resume.old_exe >= 0)
		close(resume.old_exe);
	resume.state_fd = resume.old_exe = -1;
	unsetenv(ENV_HANDOVER);
	unsetenv(ENV_FALLBACK);
	if (resume.from_store) {
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDNAMES");
		unsetenv(ENV_STORE_CRASH);
	}
	/* A crash from now on must not bring this state back. */
	if (fd_store)
		service_store_fds("state", NULL, 0);
	/* Deadlines are served from here on: before the word, an image
	 * that the guard replaced would have answered what the old state
	 * still holds. */
	int t = device_after_fork(dev);
	if (t < 0)
		log_error("handover: cannot start the timer thread: %s", strerror(-t));
	if (fd_store)
		store_boot(dev);
	if (resume.crash) {
		resend_parked();
		log_info("recovered after a crash: %s serves again; handles opened before it get EBADF",
			 resume.frontend == RINGDEV_FRONTEND_CUSE ? "the node" : "the mount");
		resume.active = false;
		return;
	}
	struct ringdev_stats s;
	device_stats(dev, &s);
	/* One line says how it went: done; refused by the new program (the
	 * old one took its state back, same pid); or the new program died
	 * and the guard runs the old one (a new pid). */
	char head[192];
	if (!resume.fallback)
		snprintf(head, sizeof(head), "done: ringdevd %s took over from %s (pid %ld)", RINGDEV_VERSION,
			 resume.old_version, (long)resume.old_pid);
	else if (resume.in_guard)
		snprintf(head, sizeof(head), "failed: the new program died; ringdevd %s took its state back in the guard "
			 "(was pid %ld)", RINGDEV_VERSION, (long)resume.old_pid);
	else
		snprintf(head, sizeof(head), "refused by the new program: ringdevd %s took its state back (pid %ld)",
			 RINGDEV_VERSION, (long)resume.old_pid);
	log_info("handover %s: %llu pipes, %llu handles, %llu waiting requests, pause %llu.%03llu ms", head,
		 (unsigned long long)s.pipes, (unsigned long long)s.opens, (unsigned long long)s.parked_total,
		 (unsigned long long)(pause / 1000), (unsigned long long)(pause % 1000));
	resume.active = false;
}

/* ---- what every state starts with: how to take the connection back ---- */

static unsigned sessions_attached(void)
{
	unsigned n = 0;
	while (n < RESTART_SESSIONS_MAX && wires[n].fd >= 0)
		n++;
	return n;
}

/* In every state and boot record, but only after a crash: a state
 * without it reads as before. */
static void write_lost(struct state_writer *w)
{
	static const uint8_t none[sizeof(lost_gens)];
	if (!memcmp(lost_gens, none, sizeof(none)))
		return;
	sw_begin(w, REC_LOST);
	sw_bytes(w, lost_gens, sizeof(lost_gens));
	sw_end(w);
}

static void write_frontend(struct state_writer *w, struct device *dev, uint32_t frontend, uint64_t stopped, bool boot)
{
	unsigned n = sessions_attached();
	sw_begin(w, REC_META);
	sw_u32(w, frontend);
	sw_u32(w, n);
	sw_u64(w, stopped);
	sw_u32(w, (uint32_t)getpid());
	sw_u32(w, (uint32_t)arena_fd(device_arena(dev)));
	sw_bytes(w, RINGDEV_VERSION, strlen(RINGDEV_VERSION));
	sw_end(w);
	for (unsigned i = 0; i < n; i++) {
		sw_begin(w, REC_SESSION);
		sw_u32(w, i);
		sw_u32(w, (uint32_t)wires[i].fd);
		sw_bytes(w, wires[i].init, wires[i].init_len);
		sw_end(w);
	}
	uint8_t gens[32];
	device_fh_gens(dev, gens);
	sw_begin(w, REC_GENS);
	sw_bytes(w, gens, sizeof(gens));
	sw_end(w);
	write_lost(w);
	if (boot) {
		/* The boot record only (read after a crash alone): a stopped
		 * state has the device's own count, and an older image would
		 * refuse a record it does not know there. */
		sw_begin(w, REC_INOS);
		sw_u64(w, device_next_ino(dev));
		sw_end(w);
	}
}

static int state_memfd(const struct state_writer *w);

/* The frontend of the device being served (stored with the boot record). */
static uint32_t served_frontend;

void restart_use_fd_store(uint32_t frontend)
{
	fd_store = true;
	served_frontend = frontend;
}

/* Keep the connection, the arena and the boot record in the store, once
 * every session has had its INIT: what a start after a crash needs. */
static void store_boot(struct device *dev)
{
	unsigned n = sessions_attached();
	for (unsigned i = 0; i < n; i++)
		if (!wires[i].init_len)
			return; /* the other CUSE node's INIT is still to come */
	stored_boot = true;
	struct state_writer w;
	sw_init(&w);
	write_frontend(&w, dev, served_frontend, now_ns(), true); /* when: the newer of two boot records wins */
	if (extra_save)
		extra_save(&w);
	int e = sw_finish(&w);
	int boot = e < 0 ? e : state_memfd(&w);
	sw_free(&w);
	if (boot < 0) {
		log_warn("--fd-store: cannot write the boot record: %s", strerror(-boot));
		return;
	}
	/* Nothing is ever missing from the store, even for an instant: the
	 * connection and the rings are stored again (the same open files: a
	 * no-op once there), except after a crash, where the rings are new;
	 * the boot record goes under the other of two names first, and only
	 * then the old one is dropped (a start takes the newer). */
	static const char *const conn[] = { "conn0", "conn1" };
	static const char *const boots[] = { "boot0", "boot1" };
	int arena = arena_fd(device_arena(dev));
	e = 0;
	for (unsigned i = 0; i < n && e == 0; i++)
		e = service_store_add(conn[i], &wires[i].fd, 1);
	if (e == 0)
		e = resume.crash ? service_store_fds("rings", &arena, 1) : service_store_add("rings", &arena, 1);
	unsigned slot = boot_slot ^ 1;
	if (e == 0)
		e = service_store_add(boots[slot], &boot, 1);
	if (e == 0) {
		service_store_fds(boots[boot_slot], NULL, 0);
		boot_slot = slot;
	}
	close(boot);
	store_ok = e == 0;
	if (e < 0)
		log_warn("--fd-store: the service manager keeps nothing (%s): a restart or crash ends every handle",
			 e == -ENOTCONN ? "none listens" : strerror(-e));
	else
		log_debug("--fd-store: connection, rings and boot record kept");
}

bool restart_stop_into_store(struct device *dev, const struct daemon_config *cfg)
{
	if (!fd_store || !stored_boot)
		return false;
	if (!device_fh_gen_left(dev)) {
		/* The next start could not take the state: stop as without
		 * the store (every call ends with ESHUTDOWN) rather than leave
		 * a state that would fail every start after. */
		log_error("--fd-store: every handle generation is in use by handles open since earlier restarts: "
			  "stopping without keeping the state");
		return false;
	}
	device_before_fork(dev); /* the timer thread answers nothing from here on */
	struct state_writer w;
	sw_init(&w);
	write_frontend(&w, dev, cfg->dev.frontend, now_ns(), false);
	int e = device_save(dev, &w);
	if (e == 0 && extra_save)
		extra_save(&w);
	if (e == 0)
		e = sw_finish(&w);
	int state = e < 0 ? e : state_memfd(&w);
	sw_free(&w);
	if (state >= 0) {
		e = service_store_fds("state", &state, 1);
		close(state);
	} else {
		e = state;
	}
	if (e < 0) {
		log_error("--fd-store: cannot keep the state (%s): stopping as without it", strerror(-e));
		device_after_fork(dev);
		return false;
	}
	kept_in_store = true;
	log_info("stopping with everything kept in the service manager's fd store: the next start resumes");
	log_flush();
	return true;
}

bool restart_kept_in_store(void)
{
	return kept_in_store;
}

/* When a boot record was written (its META's time), 0 if it is none. */
static uint64_t boot_time(int fd)
{
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || st.st_size <= 0 || (uint64_t)st.st_size > STATE_SIZE_MAX)
		return 0;
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (m == MAP_FAILED)
		return 0;
	uint64_t t = 0;
	struct state_reader r;
	struct state_record rec;
	if (sr_open(&r, m, (size_t)st.st_size) == 0 && sr_next(&r, &rec) > 0 && rec.type == REC_META) {
		sr_u32(&rec);
		sr_u32(&rec);
		t = sr_u64(&rec);
	}
	munmap(m, (size_t)st.st_size);
	return t;
}

void restart_from_store(void)
{
	char **names = NULL;
	int n = service_stored_fds(&names);
	if (n <= 0)
		return;
	int conn[RESTART_SESSIONS_MAX] = { -1, -1 }, rings = -1, state = -1, boot = -1, boots[2] = { -1, -1 };
	for (int i = 0; i < n && names && names[i]; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		fcntl(fd, F_SETFD, FD_CLOEXEC);
		if (!strcmp(names[i], "conn0"))
			conn[0] = fd;
		else if (!strcmp(names[i], "conn1"))
			conn[1] = fd;
		else if (!strcmp(names[i], "rings"))
			rings = fd;
		else if (!strcmp(names[i], "state"))
			state = fd;
		else if (!strcmp(names[i], "boot0"))
			boots[0] = fd;
		else if (!strcmp(names[i], "boot1"))
			boots[1] = fd;
	}
	/* Two boot records: a crash came between storing the new one and
	 * dropping the old. The newer wins; the other goes. */
	uint64_t t0 = boot_time(boots[0]), t1 = boot_time(boots[1]);
	int pick = boots[1] >= 0 && (boots[0] < 0 || t1 > t0) ? 1 : 0;
	if (boots[pick] >= 0) {
		boot = boots[pick];
		boot_slot = (unsigned)pick;
		if (boots[pick ^ 1] >= 0) {
			service_store_fds(pick ? "boot0" : "boot1", NULL, 0);
			close(boots[pick ^ 1]);
		}
	}
	for (int i = 0; names && names[i]; i++)
		free(names[i]);
	free(names);
	resume.stored = n;
	if (conn[0] < 0 || boot < 0) {
		log_warn("--fd-store: the store holds no connection to take back: starting afresh");
		return;
	}
	bool crash = state < 0 || rings < 0 || getenv(ENV_STORE_CRASH) != NULL;
	resume.active = true;
	resume.from_store = true;
	resume.crash = crash;
	resume.state_fd = crash ? boot : state;
	resume.store_conn[0] = conn[0];
	resume.store_conn[1] = conn[1];
	resume.store_rings = crash ? -1 : rings;
	if (crash && rings >= 0)
		close(rings); /* the lost state's rings: a new arena replaces it in the store */
}

/* After a crash, on kernels that can (FUSE 7.40, Linux 6.9): every
 * request the dead process had read and not answered comes again, and
 * ends with the error of a handle nobody knows instead of waiting. */
static void resend_parked(void)
{
	for (unsigned i = 0; i < sessions_attached(); i++) {
		struct fuse_init_in init;
		if (wires[i].init_len < sizeof(struct fuse_in_header) + 8)
			continue;
		memcpy(&init, wires[i].init + sizeof(struct fuse_in_header),
		       wires[i].init_len - sizeof(struct fuse_in_header) < sizeof(init)
			       ? wires[i].init_len - sizeof(struct fuse_in_header) : sizeof(init));
		if (init.major != 7 || init.minor < RINGDEV_MINOR_RESEND) {
			log_info("recovered after a crash: this kernel (FUSE 7.%u) cannot resend what was waiting; "
				 "calls parked at the crash stay blocked until the connection ends", init.minor);
			continue;
		}
		struct fuse_out_header out = { .len = sizeof(out), .error = RINGDEV_NOTIFY_RESEND };
		if (write(wires[i].fd, &out, sizeof(out)) < 0)
			log_warn("recovered after a crash: resend: %s", strerror(errno));
	}
}

static void *reaper(void *arg)
{
	pid_t pid = (pid_t)(intptr_t)arg;
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
	}
	return NULL;
}

static pthread_t reaper_thread;
static bool reaping;

static void reap_later(pid_t pid)
{
	if (daemon_thread_create(&reaper_thread, NULL, reaper, (void *)(intptr_t)pid) == 0) {
		reaping = true;
		return;
	}
	reaper((void *)(intptr_t)pid);
}

void restart_reap_guard(void)
{
	if (reaping)
		pthread_join(reaper_thread, NULL);
	reaping = false;
}

/* ---- the old image's side ---- */

static int state_memfd(const struct state_writer *w)
{
	int fd = memfd_create("ringdev-state", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	size_t done = 0;
	while (done < w->len) {
		ssize_t n = write(fd, w->buf + done, w->len - done);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			int e = -errno;
			close(fd);
			return e;
		}
		done += (size_t)n;
	}
	/* The new image maps it: nobody may change it under it. */
	fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL);
	return fd;
}

/* Is pid stopped (SIGSTOP taken)? Its main thread's state in /proc. */
static bool process_stopped(pid_t pid)
{
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true; /* gone */
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	const char *end = strrchr(buf, ')');
	return !end || end[1] != ' ' || end[2] == 'T' || end[2] == 't' || end[2] == 'Z' || end[2] == 'X';
}

/* The guard: true when the new image said it serves (a byte on the report
 * pipe); false when it is gone without a word, and the guard must run the
 * old program: it died, or it neither spoke nor died within guard_ms (it
 * hangs: nobody would ever serve again) and the guard killed it. It is
 * killed only if it is stopped first and then found to have said nothing:
 * the word comes from its main thread before it serves anything, so a
 * stopped image without a word has answered nothing the old state does not
 * know, and a word that came just in time is honoured. */
static bool guard_wait(int report, pid_t daemon_pid, long guard_ms)
{
	char c;
	ssize_t got;
	struct pollfd pf = { .fd = report, .events = POLLIN };
	int k;
	while ((k = poll(&pf, 1, (int)guard_ms)) < 0 && errno == EINTR) {
	}
	if (k != 0) {
		while ((got = read(report, &c, 1)) < 0 && errno == EINTR) {
		}
		return got == 1;
	}
	kill(daemon_pid, SIGSTOP);
	for (int i = 0; i < 1000 && !process_stopped(daemon_pid); i++)
		usleep(1000);
	if (poll(&pf, 1, 0) == 1 && read(report, &c, 1) == 1) {
		kill(daemon_pid, SIGCONT); /* it spoke after all: it serves */
		return true;
	}
	log_error("handover: the new program said nothing in %ld ms: killing it, the old one serves on", guard_ms);
	log_flush();
	kill(daemon_pid, SIGKILL);
	/* Gone once this guard, its child, is someone else's (a child of it
	 * may still hold the pipe open: no EOF to wait for). */
	while (getppid() == daemon_pid)
		usleep(1000);
	return false;
}

/* What the guard needs (restart_handover): static, since a guard that
 * shares the old image's memory reads it after that image is gone. */
static struct guard_job {
	int report_r, report_w;   /* by value: the old image goes on changing its own copies */
	int state;
	pid_t daemon_pid;
	long guard_ms;
	bool via_store;
} guard_job;

/* The guard: wait for the new image's word; if it dies without one, run
 * the old program on the same state. Under a service manager that keeps
 * the state (--fd-store), it only ends a new image that hangs: the manager
 * starts the next one from the stored state, and a guard serving meanwhile
 * would make two users of one state. Until the old image has executed the
 * new program (the report pipe's other end then belongs to it), this does
 * nothing but wait: with CLONE_VM it shares that image's memory. */
static int guard_main(void *arg)
{
	(void)arg;
	struct guard_job *g = &guard_job;
	close(g->report_w);
	if (guard_wait(g->report_r, g->daemon_pid, g->guard_ms) || g->via_store)
		_exit(0);
	char env[96];
	snprintf(env, sizeof(env), "%d:-1:%d:0", g->state, self_exe);
	setenv(ENV_HANDOVER, env, 1);
	setenv(ENV_FALLBACK, "1", 1);
	exec_file(self_exe);
	_exit(1);
}

/* A sanitizer or valgrind runs us: they follow a fork, not a process that
 * shares the address space without being a thread. */
static bool plain_fork_only(void)
{
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
	return true;
#else
	return under_valgrind();
#endif
}

#define GUARD_STACK (256u << 10)

/* Start the guard: the pid, or -errno. It shares the old image's address
 * space (CLONE_VM): the exec of the new program then only lets go of that
 * space, and the page tables of the rings (a gigabyte queued: tens of
 * milliseconds to tear down) go when the guard exits, after the new image
 * serves, not inside the pause. Under sanitizers and valgrind, a fork. */
static pid_t guard_start(void)
{
	if (!plain_fork_only()) {
		void *stack = mmap(NULL, GUARD_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK,
				   -1, 0);
		if (stack != MAP_FAILED) {
			pid_t pid = clone(guard_main, (char *)stack + GUARD_STACK, CLONE_VM | SIGCHLD, NULL);
			if (pid >= 0)
				return pid; /* the stack goes with the old address space */
			munmap(stack, GUARD_STACK);
		}
	}
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0)
		guard_main(NULL);
	return pid;
}

int restart_handover(struct device *dev, const struct daemon_config *cfg)
{
	/* The guard of the handover that started this image, if it is still
	 * ending: a child left to the next image would be reaped by none. */
	restart_reap_guard();
	uint64_t stopped = now_ns();
	unsigned n = cfg->dev.frontend == RINGDEV_FRONTEND_CUSE ? 2 : 1;
	for (unsigned i = 0; i < n; i++)
		if (wires[i].fd < 0 || !wires[i].init_len) {
			log_warn("handover: the kernel has not finished setting up the connection yet: SIGHUP ignored");
			return -EAGAIN;
		}
	if (!self_path[0] || self_exe < 0) {
		log_error("handover: this program's own path is not known: SIGHUP ignored");
		return -ENOENT;
	}
	if (!device_fh_gen_left(dev)) {
		/* The new image would refuse the state, and so would this
		 * program taking it back: it would exit with every pipe. */
		log_error("handover: every handle generation is used by handles or listings open since earlier "
			  "restarts: SIGHUP refused, serving on (ringdevctl opens shows them)");
		return -ENOSPC;
	}
	int arena = arena_fd(device_arena(dev));
	device_before_fork(dev); /* the timer thread answers nothing from here on */
	struct state_writer w;
	sw_init(&w);
	write_frontend(&w, dev, cfg->dev.frontend, stopped, false); /* the same records a stop stores */
	if (fd_store && stored_boot) {
		/* Which name the boot record is under, for the next image. */
		sw_begin(&w, REC_BOOT_SLOT);
		sw_u32(&w, boot_slot);
		sw_end(&w);
	}
	int e = device_save(dev, &w);
	if (e == 0 && extra_save)
		extra_save(&w);
	if (e == 0)
		e = sw_finish(&w);
	int state = e < 0 ? e : state_memfd(&w);
	sw_free(&w);
	/* With --fd-store the state goes to the store as well: if the new
	 * image dies, the manager starts the next one on it. The new image
	 * drops it once it serves. */
	bool via_store = state >= 0 && fd_store && store_ok && service_store_fds("state", &state, 1) == 0;
	int report[2] = { -1, -1 };
	if (state < 0) {
		e = state;
		log_error("handover: cannot write the state: %s; serving on", strerror(-e));
		goto fail;
	}
	if (pipe2(report, O_CLOEXEC) < 0) {
		e = -errno;
		log_error("handover: pipe: %s; serving on", strerror(-e));
		goto fail;
	}
	int handed[] = { state, arena, self_exe, report[1], wires[0].fd, wires[1].fd };
	for (size_t i = 0; i < sizeof(handed) / sizeof(handed[0]); i++)
		set_inherit(handed[i], true);
	set_inherit(report[1], true);
	setenv(ENV_PATH, self_path, 1); /* for the new image and the guard */
	log_flush();
	pid_t daemon_pid = getpid();
	const char *gt = getenv(ENV_GUARD_TIMEOUT);
	long guard_ms = gt ? strtol(gt, NULL, 10) : 0;
	if (guard_ms <= 0)
		guard_ms = GUARD_TIMEOUT_MS;
	if (guard_ms > 86400000)
		guard_ms = 86400000; /* a day: poll takes an int */
	guard_job = (struct guard_job){ .report_r = report[0], .report_w = report[1], .state = state,
					.daemon_pid = daemon_pid,
					.guard_ms = guard_ms, .via_store = via_store };
	pid_t guard = guard_start();
	if (guard < 0) {
		e = guard;
		log_error("handover: cannot start the guard: %s; serving on", strerror(-e));
		goto fail;
	}
	close(report[0]);
	report[0] = -1;
	char env[96];
	snprintf(env, sizeof(env), "%d:%d:%d:%ld", state, report[1], self_exe, (long)guard);
	setenv(ENV_HANDOVER, env, 1);
	unsetenv(ENV_FALLBACK);
	service_notify_reloading();
	log_debug("handover: re-executing %s", self_path); /* the new image says how it went */
	log_flush();
	execv(self_path, self_argv);
	e = -errno;
	log_error("handover: cannot run %s: %s; serving on", self_path, strerror(-e));
	unsetenv(ENV_HANDOVER);
	/* Any byte sends the guard away; without one it would take over. */
	if (write(report[1], "x", 1) != 1)
		kill(guard, SIGKILL);
	while (waitpid(guard, NULL, 0) < 0 && errno == EINTR) {
	}
fail:
	unsetenv(ENV_PATH);
	if (report[0] >= 0)
		close(report[0]);
	if (report[1] >= 0)
		close(report[1]);
	if (state >= 0)
		close(state);
	set_inherit(arena, false);
	set_inherit(self_exe, false);
	set_inherit(wires[0].fd, false);
	set_inherit(wires[1].fd, false);
	int t = device_after_fork(dev);
	if (t < 0)
		log_error("handover: cannot start the timer thread again: %s", strerror(-t));
	service_notify_ready("serving (handover failed)");
	return e;
}
