/* SPDX-License-Identifier: MIT */
/*
 * load.c - many client processes doing random operations on many pipes of
 * one real ringdevd, first without a broker and then with one, and the
 * daemon neither crashes, nor forgets a waiter, nor loses or invents a byte;
 * its limits refuse what they must and recover; a client flooding its own
 * pipe does not starve the others.
 *
 * One daemon lives through every phase, so whatever a phase leaves behind
 * (a leaked charge, a parked request nobody ends) shows in the next one and
 * in the final checks:
 *
 * 1. Random load (RINGDEV_STRESS_SECONDS, CI 30 s): N client processes each
 *    hold up to 6 handles on P persistent pipes of mixed kinds, policies and
 *    capacities (half their picks on 8 hot pipes, so calls meet) and do, at
 *    random: open, close, ATTACH, DETACH, read and write (blocking or not),
 *    PIPE_INFO, NREAD, SET_CONFIG (capacity, kind, policy), FLUSH,
 *    LIST_OPENS, poll, O_NONBLOCK toggles, short-lived pipes of their own
 *    (against a tight --max-pipes; unlinked or REMOVEd while open), a read
 *    or write interrupted by a short timer, and SIGUSR1 to a sibling at any
 *    moment; --max-memory is tight too.  Every result is checked against
 *    ringdev(4): an errno the page does not allow for that call in that
 *    state fails the run.  Every blocking call runs under a timer (SIGALRM,
 *    no SA_RESTART) so a call waiting for data that never comes ends with
 *    EINTR; so a call that does not return within the hang limit is a hang,
 *    reported with the call and the pipe.  Half-way a broker thread in this
 *    process connects to the control node and answers every OPEN and
 *    ATTACH with 0 (as test_control.c's raw broker does); every 2.5 s it
 *    dies holding what it took (its apps get ECONNRESET, exactly as many as
 *    the daemon's relay_broker_gone) and a new one connects; the clients go
 *    on through every change.
 *    Lost wake-ups (stress_waiter_stuck): the daemon serves waiters under
 *    the lock that fills PIPE_INFO, before it answers the next request, so
 *    a pipe with a servable waiter is a forgotten one.  Each client looks
 *    at the pipe it just changed, right after the change; the test process
 *    also samples every pipe (LIST_PIPES) four times a second.
 *    Accounting: clients count per pipe the bytes their calls moved and
 *    their FLUSHes discarded; the pipes are persistent, so their counters
 *    outlive every handle, and for each pipe written == bytes_in,
 *    read == bytes_out and bytes_in == bytes_out + queued_bytes +
 *    dropped_bytes + flushed, exactly; the device totals agree.
 * 2. Fairness: 3 probe processes time write+read round trips of 64 bytes on
 *    their own pipes, with the daemon otherwise idle and then while one
 *    process writes 64 KiB as fast as it can to its own overwrite pipe (two
 *    rounds of each, so a noisy neighbour on the machine hits both).  The
 *    ratio of the p99s is printed; only a generous bound is asserted:
 *    p99 under flood < 50 x idle p99 + 50 ms.  The machine is shared and
 *    has 2 cores; the bound catches starvation (a flooder holding the
 *    daemon's loop for its whole run), not slowness.
 * 3. Per-user limits: clients as uid 65534 (root is never limited) wait on
 *    empty pipes past --max-parked-per-uid 4 (ENOBUFS) and create pipes past
 *    --max-pipes-per-uid 3 (ENOSPC).  Afterwards exactly 4 of that user's
 *    reads can wait again and exactly 3 of its pipes can be created: every
 *    charge was given back.
 * 4. Final: nothing waits (rd_assert_idle), no handle or poller is left,
 *    memory_used is the sum of the rings, exactly --max-pipes less the
 *    pipes that exist can be created, and the daemon exits 0 on SIGTERM.
 */
#include "stress.h"

#include <grp.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <time.h>

/* Criterion's limit only bounds the long mode; CI runs are bounded by the
 * hang limits below and by meson's timeout. */
RD_SUITE(load, 4000);

#define MAX_CLIENTS 64
#define MAX_PIPES 1000
#define CLIENT_FDS 6
#define CLIENT_TEMPS 2
#define MIN_CAPACITY 256u              /* the smallest capacity SET_CONFIG uses */
#define IO_MAX 65536u                  /* largest read or write: a whole message always fits */
#define NOBODY 65534
#define PROBES 3
#define FAIR_SAMPLES 100000
#define LIMIT_CLIENTS 6
#define LIMIT_PARKED 4                 /* --max-parked-per-uid */
#define LIMIT_PIPES 3                  /* --max-pipes-per-uid */

enum op {
	OP_OPEN,
	OP_CLOSE,
	OP_ATTACH,
	OP_DETACH,
	OP_READ,
	OP_WRITE,
	OP_INFO,
	OP_NREAD,
	OP_CONFIG,
	OP_POLL,
	OP_NONBLOCK,
	OP_INTR_READ,
	OP_INTR_WRITE,
	OP_SIGNAL,
	OP_TEMP,
	OP_FLUSH,
	OP_LIST,
	OP_KINDS
};

static const char *const op_names[OP_KINDS] = {
	"open", "close", "ATTACH", "DETACH", "read", "write", "PIPE_INFO", "NREAD", "SET_CONFIG",
	"poll", "O_NONBLOCK", "interrupted read", "interrupted write", "SIGUSR1", "own pipe",
	"FLUSH", "LIST_OPENS",
};

/* How often each operation is picked (out of their sum). */
static const unsigned op_weight[OP_KINDS] = {
	[OP_OPEN] = 8, [OP_CLOSE] = 6, [OP_ATTACH] = 6, [OP_DETACH] = 1, [OP_READ] = 18,
	[OP_WRITE] = 18, [OP_INFO] = 4, [OP_NREAD] = 4, [OP_CONFIG] = 4, [OP_POLL] = 3,
	[OP_NONBLOCK] = 3, [OP_INTR_READ] = 4, [OP_INTR_WRITE] = 3, [OP_SIGNAL] = 3, [OP_TEMP] = 3,
	[OP_FLUSH] = 1, [OP_LIST] = 1,
};

/* Half the picks go to a few hot pipes, so that calls meet on one pipe
 * (waiters woken by another client's call, writes queued in the kernel
 * behind a waiting one); the other half spread over all of them. */
#define HOT_PIPES 8

/* While brokered, the broker dies and is replaced this often. */
#define BROKER_BOUNCE_NS 2500000000ull

struct settings {
	unsigned clients, pipes;
	unsigned seconds;              /* random load, half without and half with the broker */
	unsigned hang_ms;              /* one call longer than this is a hang */
	unsigned fair_ms;              /* idle and flood time of the fairness phase, each */
	unsigned limit_ms;             /* per-user limit phase */
	uint64_t seed;
};

/* One client's slot in shared memory: written by the client, read by the
 * test process (the monitor reads op_start_ns while the client runs). */
struct client_slot {
	pid_t pid;
	_Atomic int exited;
	_Atomic uint64_t op_start_ns;  /* 0 between calls */
	_Atomic int op;
	_Atomic int pipe;              /* of the current call: index, -1 detached, -2 own pipe */
	int failed;
	char why[320];
	uint64_t count[OP_KINDS];
	uint64_t ops, ops_brokered;
	uint64_t eintr, eagain, eof, partial, emsgsize, ebusy, efbig, enospc, enobufs, econnreset;
	uint64_t enomem;               /* ENOSPC of --max-memory: first writes, capacity growth */
	uint64_t checks;               /* check_waiters looks */
	uint64_t bytes_written, bytes_read; /* all, own pipes included */
	uint64_t temp_created;
};

struct load_shared {
	_Atomic int stop;
	_Atomic int brokered;          /* the broker is connected: count ops apart */
	uint64_t deadline_ns;          /* clients stop by themselves after it */
	struct client_slot client[MAX_CLIENTS];
	struct client_slot limit[LIMIT_CLIENTS];
};

/* Shared with the helpers by fork (set before any is started). */
static struct settings cfg;
static struct rd_daemon *daemon_ref;
static struct load_shared *sh;
static uint64_t *wrote_by;             /* [client][pipe] bytes written */
static uint64_t *read_by;              /* [client][pipe] bytes read */
static uint64_t *flushed_by;           /* [client][pipe] bytes FLUSH discarded */
static unsigned char write_data[IO_MAX];

static void pipe_name(unsigned index, char *out, size_t size)
{
	snprintf(out, size, "p%04u", index);
}

/* ---- a client ------------------------------------------------------------ */

struct client_fd {
	int fd;
	int pipe;                      /* index; -1: detached */
	int access;                    /* O_RDONLY, O_WRONLY or O_RDWR */
	bool nonblock;
};

struct client {
	unsigned index;
	struct client_slot *me;
	struct stress_rng rng;
	struct client_fd fds[CLIENT_FDS];
	unsigned nfds;
	int temp[CLIENT_TEMPS];
	char temp_name[CLIENT_TEMPS][32];
	unsigned ntemp;
	uint64_t temp_attempts;
	int admin;                     /* FUSE mount root: PIPE_BY_NAME, never relayed; -1 on CUSE */
	unsigned char buf[IO_MAX];
};

__attribute__((format(printf, 2, 3))) static void client_fail(struct client *c, const char *fmt, ...)
{
	va_list ap;

	if (c->me->failed)
		return;
	va_start(ap, fmt);
	vsnprintf(c->me->why, sizeof(c->me->why), fmt, ap);
	va_end(ap);
	c->me->failed = 1;
}

static unsigned rnd(struct client *c, unsigned n)
{
	return (unsigned)(stress_rng_next(&c->rng) % n);
}

static void op_begin(struct client *c, enum op op, int pipe)
{
	atomic_store(&c->me->op, (int)op);
	atomic_store(&c->me->pipe, pipe);
	atomic_store(&c->me->op_start_ns, stress_now_ns());
}

static void op_end(struct client *c, enum op op)
{
	atomic_store(&c->me->op_start_ns, 0);
	c->me->count[op]++;
	c->me->ops++;
	if (atomic_load(&sh->brokered))
		c->me->ops_brokered++;
}

/* A blocking call waits at most this long for its data or room; then its
 * timer interrupts it (EINTR, or the bytes a write moved). */
static void patience(struct client *c)
{
	stress_alarm_us(stress_rng_range(&c->rng, 5000, 100000));
}

static unsigned pick_pipe(struct client *c)
{
	if (rnd(c, 2) && cfg.pipes > HOT_PIPES)
		return rnd(c, HOT_PIPES);
	return rnd(c, cfg.pipes);
}

static struct client_fd *pick_fd(struct client *c, bool reader, bool writer)
{
	unsigned start = c->nfds ? rnd(c, c->nfds) : 0;

	for (unsigned i = 0; i < c->nfds; i++) {
		struct client_fd *f = &c->fds[(start + i) % c->nfds];

		if (reader && f->access == O_WRONLY)
			continue;
		if (writer && f->access == O_RDONLY)
			continue;
		return f;
	}
	return NULL;
}

/* Where the daemon says fd is: 0 and *pipe (index, -1 detached), or -errno. */
static int where_is(int fd, int *pipe)
{
	struct ringdev_pipe_info info;
	unsigned index;

	memset(&info, 0, sizeof(info));
	if (ioctl(fd, RINGDEV_IOC_PIPE_INFO, &info) < 0) {
		if (errno == ENXIO) {
			*pipe = -1;
			return 0;
		}
		return -errno;
	}
	if (sscanf(info.name, "p%4u", &index) != 1)
		return -EPROTO;
	*pipe = (int)index;
	return 0;
}

/* Right after a call that changed pipe `pipe` (data in or out, settings,
 * a handle leaving it), no waiter on it may be servable: the daemon serves
 * waiters before it answers the next request, and this look is a later
 * request.  Exact, unlike sampling: a waiter forgotten for a moment shows. */
static void check_waiters(struct client *c, int pipe, const char *after)
{
	struct ringdev_pipe_info info;
	char why[700];
	int fd = c->admin >= 0 ? c->admin : c->nfds ? c->fds[0].fd : -1;

	if (pipe < 0 || fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	pipe_name((unsigned)pipe, info.name, sizeof(info.name));
	if (ioctl(fd, RINGDEV_IOC_PIPE_BY_NAME, &info) < 0) {
		if (errno != EINTR)
			client_fail(c, "PIPE_BY_NAME %s: %s", info.name, rd_errname(errno));
		return;
	}
	c->me->checks++;
	if (stress_waiter_stuck(&info, why, sizeof(why)))
		client_fail(c, "after %s: %s", after, why);
}

static void forget_fd(struct client *c, struct client_fd *f)
{
	*f = c->fds[--c->nfds];
}

static void op_close(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	int r, err;

	if (!f)
		return;
	op_begin(c, OP_CLOSE, f->pipe);
	r = close(f->fd);
	err = errno;
	op_end(c, OP_CLOSE);
	/* A FUSE close may report the interrupt of its flush; the fd is gone either way. */
	if (r < 0 && err != EINTR)
		client_fail(c, "close of a handle on pipe %d: %s", f->pipe, rd_errname(err));
	int pipe = f->pipe;
	forget_fd(c, f);
	/* On the FUSE mount the release arrives after close(2) returns: only
	 * a later look is sure to follow it; this one checks what it finds. */
	check_waiters(c, pipe, "close");
}

static void op_open(struct client *c)
{
	static const int modes[] = { O_RDONLY, O_WRONLY, O_RDWR };
	unsigned pipe = pick_pipe(c);
	int access = modes[rnd(c, 3)];
	bool nonblock = rnd(c, 10) < 3;
	char name[16];
	int fd, err;

	if (c->nfds == CLIENT_FDS) {
		op_close(c);
		return;
	}
	pipe_name(pipe, name, sizeof(name));
	op_begin(c, OP_OPEN, (int)pipe);
	fd = rd_open(daemon_ref, name, access | (nonblock ? O_NONBLOCK : 0) | O_CLOEXEC, 0);
	err = errno;
	op_end(c, OP_OPEN);
	if (fd >= 0)
		c->fds[c->nfds++] = (struct client_fd){ fd, (int)pipe, access, nonblock };
	else if (err == EINTR)
		c->me->eintr++;
	else if (err == ECONNRESET)
		c->me->econnreset++; /* the broker went away holding this open */
	else
		client_fail(c, "open %s: %s", name, rd_errname(err));
}

static void op_attach(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	unsigned target = pick_pipe(c);
	char name[16];
	int r, err, now = -2;

	if (!f) {
		op_open(c);
		return;
	}
	pipe_name(target, name, sizeof(name));
	op_begin(c, OP_ATTACH, (int)target);
	r = rd_attach(f->fd, name, 0, 0, 0, 0, 0);
	err = errno;
	op_end(c, OP_ATTACH);
	if (r == 0) {
		check_waiters(c, f->pipe, "ATTACH away from it");
		f->pipe = (int)target;
		if (where_is(f->fd, &now) == 0 && now != (int)target)
			client_fail(c, "ATTACH to %s succeeded but PIPE_INFO says pipe %d", name, now);
		return;
	}
	if (err != EINTR && err != ECONNRESET) {
		client_fail(c, "ATTACH to %s: %s", name, rd_errname(err));
		return;
	}
	if (err == EINTR)
		c->me->eintr++;
	else
		c->me->econnreset++; /* the broker went away holding this ATTACH */
	/* Not done: the handle stays where it was. */
	if (where_is(f->fd, &now) == 0 && now != f->pipe)
		client_fail(c, "ATTACH to %s failed with %s but moved the handle from pipe %d to %d", name,
			    rd_errname(err), f->pipe, now);
}

static void op_detach(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	int r, err, now = -2;

	if (!f)
		return;
	op_begin(c, OP_DETACH, f->pipe);
	r = ioctl(f->fd, RINGDEV_IOC_DETACH);
	err = errno;
	op_end(c, OP_DETACH);
	if (r == 0) {
		check_waiters(c, f->pipe, "DETACH");
		f->pipe = -1;
	} else if (err == EINTR) {
		c->me->eintr++;
		if (where_is(f->fd, &now) == 0 && now != f->pipe)
			client_fail(c, "DETACH failed with EINTR but the handle moved from pipe %d to %d", f->pipe, now);
	} else {
		client_fail(c, "DETACH of a handle on pipe %d: %s", f->pipe, rd_errname(err));
	}
}

/* The result of a read(2) of up to size bytes, against ringdev(4). */
static void read_result(struct client *c, const struct client_fd *f, size_t size, bool blocking, ssize_t n, int err)
{
	if (f->pipe < 0) {
		if (!(n < 0 && (err == ENXIO || err == EINTR)))
			client_fail(c, "read on a detached handle: %zd (%s), expected ENXIO", n, n < 0 ? rd_errname(err) : "data");
		return;
	}
	if (n > 0) {
		if ((size_t)n > size)
			client_fail(c, "read of %zu bytes returned %zd", size, n);
		read_by[c->index * cfg.pipes + (unsigned)f->pipe] += (uint64_t)n;
		c->me->bytes_read += (uint64_t)n;
	} else if (n == 0) {
		c->me->eof++;
	} else if (err == EINTR) {
		c->me->eintr++;
	} else if (err == EAGAIN && !blocking) {
		c->me->eagain++;
	} else if (err == EMSGSIZE && size < IO_MAX) {
		c->me->emsgsize++; /* a message longer than this buffer stays queued */
	} else {
		client_fail(c, "%s read of %zu bytes on pipe %d: %s", blocking ? "blocking" : "O_NONBLOCK", size, f->pipe,
			    rd_errname(err));
	}
}

/* The result of a write(2) of size bytes, against ringdev(4).  Policies and
 * capacities change under the client (SET_CONFIG by any client), so only
 * what holds under every one of them is checked. */
static void write_result(struct client *c, const struct client_fd *f, size_t size, ssize_t n, int err)
{
	if (f->pipe < 0) {
		if (!(n < 0 && (err == ENXIO || err == EINTR)))
			client_fail(c, "write on a detached handle: %zd (%s), expected ENXIO", n, n < 0 ? rd_errname(err) : "written");
		return;
	}
	if (n > 0) {
		if ((size_t)n > size)
			client_fail(c, "write of %zu bytes returned %zd", size, n);
		if ((size_t)n < size) {
			c->me->partial++;
			/* Within every capacity: all-or-nothing under every policy. */
			if (size <= MIN_CAPACITY)
				client_fail(c, "write of %zu bytes (below every capacity) on pipe %d moved only %zd", size,
					    f->pipe, n);
		}
		wrote_by[c->index * cfg.pipes + (unsigned)f->pipe] += (uint64_t)n;
		c->me->bytes_written += (uint64_t)n;
	} else if (n == 0) {
		client_fail(c, "write of %zu bytes on pipe %d returned 0", size, f->pipe);
	} else if (err == EINTR) {
		c->me->eintr++;
	} else if (err == EAGAIN) {
		c->me->eagain++; /* O_NONBLOCK, the fail policy, or a policy changed to fail while waiting */
	} else if (err == EMSGSIZE && size + RINGDEV_MESSAGE_HEADER > MIN_CAPACITY) {
		c->me->emsgsize++;
	} else if (err == EFBIG && size > MIN_CAPACITY) {
		c->me->efbig++;
	} else if (err == ENOSPC) {
		c->me->enomem++; /* the pipe's first write, past --max-memory */
	} else if (err == ENOBUFS) {
		c->me->enobufs++; /* a write that would wait, its copy past --max-memory (ringdev(4)) */
	} else {
		client_fail(c, "write of %zu bytes on pipe %d: %s", size, f->pipe, rd_errname(err));
	}
}

static size_t write_size(struct client *c)
{
	unsigned k = rnd(c, 10);

	if (k < 4)
		return 1 + rnd(c, 256);
	if (k < 8)
		return 1 + rnd(c, 4096);
	return 1 + rnd(c, IO_MAX);
}

static void op_read(struct client *c, bool interrupted)
{
	struct client_fd *f = pick_fd(c, true, false);
	size_t size = rnd(c, 2) ? IO_MAX : 1 + rnd(c, IO_MAX);
	bool blocking;
	ssize_t n;
	int err;

	if (!f) {
		op_open(c);
		return;
	}
	if (interrupted && f->nonblock)
		fcntl(f->fd, F_SETFL, 0);
	blocking = interrupted || !f->nonblock;
	op_begin(c, interrupted ? OP_INTR_READ : OP_READ, f->pipe);
	if (interrupted)
		stress_alarm_us(stress_rng_range(&c->rng, 1000, 15000));
	else if (blocking)
		patience(c);
	n = read(f->fd, c->buf, size);
	err = errno;
	stress_alarm_us(0);
	op_end(c, interrupted ? OP_INTR_READ : OP_READ);
	if (interrupted && f->nonblock)
		fcntl(f->fd, F_SETFL, O_NONBLOCK);
	read_result(c, f, size, blocking, n, err);
	if (n > 0)
		check_waiters(c, f->pipe, "a read");
}

static void op_write(struct client *c, bool interrupted)
{
	struct client_fd *f = pick_fd(c, false, true);
	size_t size = interrupted ? IO_MAX : write_size(c);
	size_t offset = rnd(c, IO_MAX - (unsigned)size + 1);
	bool blocking;
	ssize_t n;
	int err;

	if (!f) {
		op_open(c);
		return;
	}
	if (interrupted && f->nonblock)
		fcntl(f->fd, F_SETFL, 0);
	blocking = interrupted || !f->nonblock;
	op_begin(c, interrupted ? OP_INTR_WRITE : OP_WRITE, f->pipe);
	if (interrupted)
		stress_alarm_us(stress_rng_range(&c->rng, 1000, 15000));
	else if (blocking)
		patience(c);
	n = write(f->fd, write_data + offset, size);
	err = errno;
	stress_alarm_us(0);
	op_end(c, interrupted ? OP_INTR_WRITE : OP_WRITE);
	if (interrupted && f->nonblock)
		fcntl(f->fd, F_SETFL, O_NONBLOCK);
	write_result(c, f, size, n, err);
	if (n > 0)
		check_waiters(c, f->pipe, "a write");
}

static void op_info(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	struct ringdev_pipe_info info;
	char expect[16];
	int r, err;

	if (!f)
		return;
	memset(&info, 0, sizeof(info));
	op_begin(c, OP_INFO, f->pipe);
	r = ioctl(f->fd, RINGDEV_IOC_PIPE_INFO, &info);
	err = errno;
	op_end(c, OP_INFO);
	if (r < 0) {
		if (err == EINTR)
			c->me->eintr++;
		else if (!(err == ENXIO && f->pipe < 0))
			client_fail(c, "PIPE_INFO of a handle on pipe %d: %s", f->pipe, rd_errname(err));
		return;
	}
	if (f->pipe < 0) {
		client_fail(c, "PIPE_INFO of a detached handle answered pipe %s, expected ENXIO", info.name);
		return;
	}
	pipe_name((unsigned)f->pipe, expect, sizeof(expect));
	if (strcmp(info.name, expect) != 0)
		client_fail(c, "PIPE_INFO: the handle is on %s, expected %s", info.name, expect);
	else if (info.queued_bytes > info.capacity)
		client_fail(c, "PIPE_INFO of %s: %" PRIu64 " bytes queued in a capacity of %" PRIu64, info.name,
			    info.queued_bytes, info.capacity);
}

static void op_nread(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	struct ringdev_nread nr;
	int r, err;

	if (!f)
		return;
	memset(&nr, 0, sizeof(nr));
	op_begin(c, OP_NREAD, f->pipe);
	r = ioctl(f->fd, RINGDEV_IOC_NREAD, &nr);
	err = errno;
	op_end(c, OP_NREAD);
	if (r < 0) {
		if (err == EINTR)
			c->me->eintr++;
		else if (!(err == ENXIO && f->pipe < 0))
			client_fail(c, "NREAD of a handle on pipe %d: %s", f->pipe, rd_errname(err));
		return;
	}
	if (f->pipe < 0)
		client_fail(c, "NREAD of a detached handle succeeded, expected ENXIO");
	else if (nr.next > nr.queued_bytes || nr.reserved != 0)
		client_fail(c, "NREAD of pipe %d: next %" PRIu64 ", queued %" PRIu64 ", reserved %" PRIu64, f->pipe,
			    nr.next, nr.queued_bytes, nr.reserved);
}

static void op_config(struct client *c)
{
	static const uint64_t capacities[] = { MIN_CAPACITY, 1024, 4096, 16384, 65536 };
	static const uint32_t policies[] = { RINGDEV_POLICY_BLOCK, RINGDEV_POLICY_BLOCK, RINGDEV_POLICY_BLOCK,
					     RINGDEV_POLICY_BLOCK, RINGDEV_POLICY_OVERWRITE, RINGDEV_POLICY_FAIL };
	struct client_fd *f = pick_fd(c, false, false);
	uint32_t set = 0;
	int r, err;

	if (!f)
		return;
	if (rnd(c, 2))
		set |= RINGDEV_SET_CAPACITY;
	if (rnd(c, 3) == 0)
		set |= RINGDEV_SET_POLICY;
	if (rnd(c, 4) == 0)
		set |= RINGDEV_SET_KIND;
	if (rnd(c, 8) == 0)
		set |= RINGDEV_SET_MODE;
	op_begin(c, OP_CONFIG, f->pipe);
	r = rd_set_config(f->fd, set, rnd(c, 2) ? RINGDEV_KIND_STREAM : RINGDEV_KIND_MESSAGE,
			  policies[rnd(c, sizeof(policies) / sizeof(policies[0]))], 0666,
			  capacities[rnd(c, sizeof(capacities) / sizeof(capacities[0]))]);
	err = errno;
	op_end(c, OP_CONFIG);
	if (r == 0) {
		if (f->pipe < 0)
			client_fail(c, "SET_CONFIG on a detached handle succeeded, expected ENXIO");
		check_waiters(c, f->pipe, "SET_CONFIG");
	} else if (err == EINTR) {
		c->me->eintr++;
	} else if (err == EBUSY && f->pipe >= 0) {
		c->me->ebusy++; /* below what is queued, or a kind change of a pipe holding data */
	} else if (err == ENOSPC && (set & RINGDEV_SET_CAPACITY) && f->pipe >= 0) {
		c->me->enomem++; /* growing an allocated ring past --max-memory */
	} else if (!(err == ENXIO && f->pipe < 0)) {
		client_fail(c, "SET_CONFIG (set %#x) on pipe %d: %s", set, f->pipe, rd_errname(err));
	}
}

static void op_poll(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	struct pollfd p;
	int r, err;

	if (!f)
		return;
	p.fd = f->fd;
	p.events = (short)((f->access != O_WRONLY ? POLLIN : 0) | (f->access != O_RDONLY ? POLLOUT : 0));
	p.revents = 0;
	op_begin(c, OP_POLL, f->pipe);
	r = poll(&p, 1, (int)rnd(c, 20));
	err = errno;
	op_end(c, OP_POLL);
	if (r < 0 && err != EINTR)
		client_fail(c, "poll of a handle on pipe %d: %s", f->pipe, rd_errname(err));
	else if (r >= 0 && f->pipe < 0 && !(r == 1 && (p.revents & POLLERR)))
		client_fail(c, "poll of a detached handle: %d, revents %#x, expected POLLERR", r, (unsigned)p.revents);
}

static void op_nonblock(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);

	if (!f)
		return;
	op_begin(c, OP_NONBLOCK, f->pipe);
	f->nonblock = !f->nonblock;
	if (fcntl(f->fd, F_SETFL, f->nonblock ? O_NONBLOCK : 0) < 0)
		client_fail(c, "fcntl F_SETFL: %s", rd_errname(errno));
	op_end(c, OP_NONBLOCK);
}

static void op_signal(struct client *c)
{
	const struct client_slot *to = &sh->client[rnd(c, cfg.clients)];

	op_begin(c, OP_SIGNAL, -1);
	if (to != c->me && to->pid > 0 && !atomic_load(&to->exited))
		kill(to->pid, SIGUSR1);
	op_end(c, OP_SIGNAL);
}

/* A short-lived pipe of this client's own: created, a few bytes through it
 * and back (exactly), held for a while against the tight --max-pipes. */
static void op_temp(struct client *c)
{
	char name[32], back[256];
	size_t size = 1 + rnd(c, sizeof(back));
	ssize_t n;
	int fd, err;

	if (c->ntemp == CLIENT_TEMPS || (c->ntemp > 0 && rnd(c, 2))) {
		unsigned i = rnd(c, c->ntemp);

		op_begin(c, OP_TEMP, -2);
		unsigned how = rnd(c, 3);

		/* Removed by its owner while open: the handle stays, attached to nothing. */
		if (how == 0) {
			struct ringdev_name rm;
			struct ringdev_pipe_info info;

			memset(&rm, 0, sizeof(rm));
			snprintf(rm.name, sizeof(rm.name), "%s", c->temp_name[i]);
			if (ioctl(c->temp[i], RINGDEV_IOC_REMOVE, &rm) < 0 && errno != EINTR)
				client_fail(c, "REMOVE %s: %s", rm.name, rd_errname(errno));
			else if (ioctl(c->temp[i], RINGDEV_IOC_PIPE_INFO, &info) == 0)
				client_fail(c, "PIPE_INFO after REMOVE %s: still on %s, expected ENXIO", rm.name, info.name);
		}
		/* Unlinked while open (FUSE): the handle keeps it until the close. */
		if (how == 1 && !daemon_ref->cuse) {
			char path[RD_PATH_SIZE + 40];

			snprintf(path, sizeof(path), "%s/%s", daemon_ref->mount, c->temp_name[i]);
			if (unlink(path) < 0 && errno != EINTR)
				client_fail(c, "unlink %s: %s", path, rd_errname(errno));
		}
		close(c->temp[i]);
		op_end(c, OP_TEMP);
		c->ntemp--;
		c->temp[i] = c->temp[c->ntemp];
		memcpy(c->temp_name[i], c->temp_name[c->ntemp], sizeof(c->temp_name[i]));
		return;
	}
	/* A new name each attempt: an interrupted creation may leave its name taken for a while. */
	snprintf(name, sizeof(name), "t%u-%" PRIu64, c->index, c->temp_attempts++);
	op_begin(c, OP_TEMP, -2);
	fd = rd_open(daemon_ref, name, O_RDWR | O_CREAT | O_EXCL | O_NONBLOCK | O_CLOEXEC, 0600);
	err = errno;
	op_end(c, OP_TEMP);
	if (fd < 0) {
		if (err == ENOSPC)
			c->me->enospc++; /* --max-pipes */
		else if (err == EINTR)
			c->me->eintr++;
		else if (err == ECONNRESET)
			c->me->econnreset++;
		else
			client_fail(c, "create %s: %s", name, rd_errname(err));
		return;
	}
	c->me->temp_created++;
	memcpy(c->temp_name[c->ntemp], name, sizeof(c->temp_name[c->ntemp]));
	c->temp[c->ntemp++] = fd;
	/* O_NONBLOCK: nothing waits; a signal can only stop a call before it reaches the daemon. */
	do
		n = write(fd, write_data, size);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == ENOSPC) {
		c->me->enomem++; /* its ring, past --max-memory */
		return;
	}
	if (n != (ssize_t)size) {
		client_fail(c, "write of %zu bytes to new pipe %s: %zd (%s)", size, name, n, n < 0 ? rd_errname(errno) : "short");
		return;
	}
	c->me->bytes_written += size;
	do
		n = read(fd, back, sizeof(back));
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)size || memcmp(back, write_data, size) != 0) {
		client_fail(c, "read back from new pipe %s: %zd of %zu bytes (%s)", name, n, size,
			    n < 0 ? rd_errname(errno) : "short or different");
		return;
	}
	c->me->bytes_read += size;
}

/* FLUSH (an admin's, by name, through any handle): what it discards is
 * counted for the pipe's accounting; writers waiting for room go on. */
static void op_flush(struct client *c)
{
	struct client_fd *f = pick_fd(c, false, false);
	unsigned pipe = pick_pipe(c);
	struct ringdev_flush fl;
	int r, err;

	if (!f)
		return;
	memset(&fl, 0, sizeof(fl));
	pipe_name(pipe, fl.name, sizeof(fl.name));
	op_begin(c, OP_FLUSH, (int)pipe);
	r = ioctl(f->fd, RINGDEV_IOC_FLUSH, &fl);
	err = errno;
	op_end(c, OP_FLUSH);
	if (r == 0) {
		flushed_by[c->index * cfg.pipes + pipe] += fl.bytes;
		check_waiters(c, (int)pipe, "FLUSH");
	} else if (err == EINTR)
		c->me->eintr++;
	else
		client_fail(c, "FLUSH %s: %s", fl.name, rd_errname(err));
}

/* LIST_OPENS, every page, while everyone opens and closes. */
static void op_list(struct client *c)
{
	static struct ringdev_list_opens l;
	struct client_fd *f = pick_fd(c, false, false);
	uint32_t start = 0;

	if (!f)
		return;
	op_begin(c, OP_LIST, f->pipe);
	for (int pages = 0; pages < 64; pages++) {
		memset(&l, 0, sizeof(l));
		l.start = start;
		if (ioctl(f->fd, RINGDEV_IOC_LIST_OPENS, &l) < 0) {
			if (errno == EINTR)
				c->me->eintr++;
			else
				client_fail(c, "LIST_OPENS from %u: %s", start, rd_errname(errno));
			break;
		}
		if (l.count > RINGDEV_LIST_OPENS_MAX) {
			client_fail(c, "LIST_OPENS filled %u entries", l.count);
			break;
		}
		start += l.count;
		if (l.count == 0 || start >= l.total)
			break;
	}
	op_end(c, OP_LIST);
}

static void client_step(struct client *c)
{
	unsigned total = 0, pick;
	enum op op = OP_OPEN;

	for (int i = 0; i < OP_KINDS; i++)
		total += op_weight[i];
	pick = rnd(c, total);
	for (int i = 0; i < OP_KINDS; i++) {
		if (pick < op_weight[i]) {
			op = (enum op)i;
			break;
		}
		pick -= op_weight[i];
	}
	switch (op) {
	case OP_OPEN: op_open(c); break;
	case OP_CLOSE: op_close(c); break;
	case OP_ATTACH: op_attach(c); break;
	case OP_DETACH: op_detach(c); break;
	case OP_READ: op_read(c, false); break;
	case OP_WRITE: op_write(c, false); break;
	case OP_INFO: op_info(c); break;
	case OP_NREAD: op_nread(c); break;
	case OP_CONFIG: op_config(c); break;
	case OP_POLL: op_poll(c); break;
	case OP_NONBLOCK: op_nonblock(c); break;
	case OP_INTR_READ: op_read(c, true); break;
	case OP_INTR_WRITE: op_write(c, true); break;
	case OP_SIGNAL: op_signal(c); break;
	case OP_TEMP: op_temp(c); break;
	case OP_FLUSH: op_flush(c); break;
	case OP_LIST: op_list(c); break;
	case OP_KINDS: break;
	}
}

static int client_main(void *arg)
{
	static struct client c; /* per process: the helper is a fork */
	unsigned index = (unsigned)(uintptr_t)arg;

	memset(&c, 0, sizeof(c));
	c.index = index;
	c.me = &sh->client[index];
	c.admin = daemon_ref->cuse ? -1 : open(daemon_ref->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	stress_rng_init(&c.rng, cfg.seed, index + 1);
	while (!atomic_load(&sh->stop) && !c.me->failed && stress_now_ns() < sh->deadline_ns)
		client_step(&c);
	stress_alarm_us(0);
	for (unsigned i = 0; i < c.nfds; i++)
		close(c.fds[i].fd);
	for (unsigned i = 0; i < c.ntemp; i++)
		close(c.temp[i]);
	if (c.admin >= 0)
		close(c.admin);
	atomic_store(&c.me->exited, 1);
	return c.me->failed ? 1 : 0;
}

/* ---- the test process's broker ------------------------------------------ */

struct broker {
	int fd;
	pthread_t thread;
	atomic_bool stop;
	atomic_bool abrupt;            /* stop holding requests it took, unanswered */
	uint64_t held;                 /* requests it went away with */
	uint64_t opens, attaches, cancels, releases, unexpected, rejected, failed, connects;
	int err;                       /* errno of a failed TRANSACT, else 0 */
};

/* Answers every OPEN and ATTACH with 0 (allowed, as asked); counts the
 * notices.  Runs beside the test's main thread: never asserts. */
static void *broker_main(void *arg)
{
	struct broker *b = arg;
	struct ringdev_ctl_transact *t = calloc(1, sizeof(*t));
	struct ringdev_ctl_answer answers[RINGDEV_CTL_BATCH];
	uint32_t n = 0;

	if (!t) {
		b->err = ENOMEM;
		return NULL;
	}
	for (;;) {
		bool stopping = atomic_load(&b->stop);

		if (stopping && atomic_load(&b->abrupt)) {
			/* Take what waits (a little), answer nothing, go. */
			if (rd_transact(b->fd, NULL, 0, RINGDEV_CTL_BATCH, 20, t) == 0)
				for (uint32_t i = 0; i < t->nrequests; i++)
					n += t->requests[i].type == RINGDEV_CTL_OPEN || t->requests[i].type == RINGDEV_CTL_ATTACH;
			b->held += n;
			break;
		}
		if (stopping && n == 0)
			break;
		if (rd_transact(b->fd, answers, n, stopping ? 0 : RINGDEV_CTL_BATCH, stopping ? 0 : 100, t) < 0) {
			if (errno == EINTR) {
				n = 0; /* the answers were applied */
				continue;
			}
			b->err = errno;
			break;
		}
		n = 0;
		b->rejected += t->rejected;
		b->failed += t->failed;
		for (uint32_t i = 0; i < t->nrequests; i++) {
			const struct ringdev_ctl_request *r = &t->requests[i];

			switch (r->type) {
			case RINGDEV_CTL_OPEN:
			case RINGDEV_CTL_ATTACH:
				if (r->type == RINGDEV_CTL_OPEN)
					b->opens++;
				else
					b->attaches++;
				memset(&answers[n], 0, sizeof(answers[n]));
				answers[n].id = r->id;
				answers[n++].result = 0;
				break;
			case RINGDEV_CTL_CANCEL:
				b->cancels++;
				break;
			case RINGDEV_CTL_RELEASE:
				b->releases++;
				break;
			default:
				b->unexpected++;
				memset(&answers[n], 0, sizeof(answers[n]));
				answers[n].id = r->id;
				answers[n++].result = -EIO;
				break;
			}
		}
	}
	free(t);
	return NULL;
}

/* Connect (again): the counts go on.  A FUSE release of the previous
 * control handle arrives after its close, so EBUSY can be seen for a moment. */
static void broker_start(struct broker *b, const struct rd_daemon *d)
{
	uint64_t deadline = stress_now_ns() + (uint64_t)cfg.hang_ms * 1000000u;

	atomic_store(&b->stop, false);
	atomic_store(&b->abrupt, false);
	for (;;) {
		b->fd = rd_ctl_open(d);
		if (b->fd >= 0 || errno != EBUSY || stress_now_ns() > deadline)
			break;
		stress_sleep_us(1000);
	}
	cr_assert_geq(b->fd, 0, "open the control node: %s", rd_errname(errno));
	cr_assert_eq(pthread_create(&b->thread, NULL, broker_main, b), 0, "start the broker thread");
	b->connects++;
}

/* Go away: having answered all it took, or (abrupt) holding some, whose
 * apps then get ECONNRESET. */
static void broker_stop(struct broker *b, bool abrupt)
{
	atomic_store(&b->abrupt, abrupt);
	atomic_store(&b->stop, true);
	pthread_join(b->thread, NULL);
	close(b->fd);
	b->fd = -1;
}

/* ---- watching a phase ---------------------------------------------------- */

struct watch {
	const struct rd_daemon *d;
	int admin;                     /* mount root (FUSE) or node (CUSE): LIST_PIPES, STATS */
	char problem[1024];
	uint64_t samples;              /* pipes checked for stuck waiters */
};

static bool waiter_check(const struct ringdev_pipe_info *info, void *arg)
{
	struct watch *w = arg;

	w->samples++;
	return !stress_waiter_stuck(info, w->problem, sizeof(w->problem));
}

/* Look at every pipe once; a problem is kept in w->problem. */
static void watch_waiters(struct watch *w)
{
	int r = stress_list_pipes(w->admin, waiter_check, w);

	if (r < 0 && !w->problem[0])
		snprintf(w->problem, sizeof(w->problem), "LIST_PIPES: %s (is the daemon alive?)", rd_errname(-r));
}

static void pipe_by_name(int admin, const char *name, char *out, size_t size)
{
	struct ringdev_pipe_info info;

	memset(&info, 0, sizeof(info));
	snprintf(info.name, sizeof(info.name), "%s", name);
	if (ioctl(admin, RINGDEV_IOC_PIPE_BY_NAME, &info) < 0)
		snprintf(out, size, "%s: %s", name, rd_errname(errno));
	else
		stress_describe(&info, out, size);
}

/* A client call older than the hang limit: the call, its pipe and the pipe's
 * state go into w->problem. */
static void watch_hangs(struct watch *w, struct client_slot *slots, unsigned n, const char *who)
{
	uint64_t now = stress_now_ns();

	for (unsigned i = 0; i < n && !w->problem[0]; i++) {
		uint64_t start = atomic_load(&slots[i].op_start_ns);
		int pipe = atomic_load(&slots[i].pipe);
		char name[16], state[400] = "";

		if (!start || now < start || now - start < (uint64_t)cfg.hang_ms * 1000000u)
			continue;
		if (pipe >= 0) {
			pipe_name((unsigned)pipe, name, sizeof(name));
			pipe_by_name(w->admin, name, state, sizeof(state));
		}
		snprintf(w->problem, sizeof(w->problem),
			 "%s %u (pid %d): %s on pipe %d has not returned after %" PRIu64 " ms (hang limit %u ms); pipe: %s",
			 who, i, (int)slots[i].pid, op_names[atomic_load(&slots[i].op)], pipe,
			 (now - start) / 1000000u, cfg.hang_ms, state);
	}
}

/* Wait until every slot says it exited (or a hang or failure shows), then
 * join them.  Fails the test with the problem. */
static void join_clients(struct watch *w, struct client_slot *slots, unsigned n, const char *who)
{
	for (;;) {
		unsigned exited = 0;

		for (unsigned i = 0; i < n; i++) {
			char how[64];

			exited += atomic_load(&slots[i].exited) ? 1u : 0u;
			if (!atomic_load(&slots[i].exited) && !w->problem[0] &&
			    stress_child_ended(slots[i].pid, how, sizeof(how)))
				snprintf(w->problem, sizeof(w->problem), "%s %u (pid %d) ended (%s) before it was done: %s",
					 who, i, (int)slots[i].pid, how, slots[i].why);
		}
		if (exited == n)
			break;
		watch_hangs(w, slots, n, who);
		if (w->problem[0]) {
			for (unsigned i = 0; i < n; i++)
				kill(slots[i].pid, SIGKILL);
			rd_log_tail(w->d, 20);
			cr_assert_fail("%s", w->problem);
		}
		stress_sleep_us(10000);
	}
	for (unsigned i = 0; i < n; i++) {
		int code = rd_join_within(slots[i].pid, 10000);

		cr_assert_eq(code, 0, "%s %u failed (exit %d): %s", who, i, code, slots[i].why);
	}
}

/* ---- the phases ---------------------------------------------------------- */

static void create_persistent(int admin, const char *name, uint32_t kind, uint32_t policy, uint64_t capacity)
{
	struct ringdev_create c;

	memset(&c, 0, sizeof(c));
	snprintf(c.name, sizeof(c.name), "%s", name);
	c.kind = kind;
	c.policy = policy;
	c.mode = 0666;
	c.capacity = capacity;
	cr_assert_eq(ioctl(admin, RINGDEV_IOC_CREATE, &c), 0, "RINGDEV_IOC_CREATE %s: %s", name, rd_errname(errno));
}

struct load_totals {
	uint64_t ops, ops_brokered, bytes_written, bytes_read, eintr, enospc, partial, eof, signals;
	uint64_t econnreset, enomem, checks;
	double seconds;
};

static void random_load(struct watch *w, struct load_totals *tot, struct broker *b)
{
	const struct rd_daemon *d = w->d;
	uint64_t start = stress_now_ns(), half = start + (uint64_t)cfg.seconds * 500000000u;
	uint64_t end = start + (uint64_t)cfg.seconds * 1000000000u, next_sample = 0, next_bounce = 0;
	struct ringdev_stats st;
	bool brokered = false;

	memset(b, 0, sizeof(*b));
	atomic_store(&sh->stop, 0);
	sh->deadline_ns = end + 30ull * 1000000000u; /* if this process is stopped meanwhile */
	for (unsigned i = 0; i < cfg.clients; i++)
		sh->client[i].pid = rd_spawn(client_main, (void *)(uintptr_t)i, -1);
	for (uint64_t now = start; now < end && !w->problem[0]; now = stress_now_ns()) {
		if (!brokered && now >= half) {
			broker_start(b, d);
			atomic_store(&sh->brokered, 1);
			brokered = true;
			next_bounce = now + BROKER_BOUNCE_NS;
		} else if (brokered && now >= next_bounce && now + BROKER_BOUNCE_NS < end) {
			/* The broker dies holding requests, and a new one takes over. */
			broker_stop(b, true);
			broker_start(b, d);
			next_bounce = now + BROKER_BOUNCE_NS;
		}
		watch_hangs(w, sh->client, cfg.clients, "client");
		if (now >= next_sample) {
			watch_waiters(w);
			next_sample = now + 250000000u;
		}
		for (unsigned i = 0; i < cfg.clients && !w->problem[0]; i++) {
			char how[64];

			if (sh->client[i].failed)
				snprintf(w->problem, sizeof(w->problem), "client %u: %s", i, sh->client[i].why);
			else if (stress_child_ended(sh->client[i].pid, how, sizeof(how)))
				snprintf(w->problem, sizeof(w->problem), "client %u (pid %d) ended (%s) during the load", i,
					 (int)sh->client[i].pid, how);
		}
		stress_sleep_us(20000);
	}
	atomic_store(&sh->stop, 1);
	join_clients(w, sh->client, cfg.clients, "client");
	cr_assert(brokered, "the broker connected half-way");
	broker_stop(b, false);
	atomic_store(&sh->brokered, 0);
	tot->seconds = (double)(stress_now_ns() - start) / 1e9;
	for (unsigned i = 0; i < cfg.clients; i++) {
		const struct client_slot *s = &sh->client[i];

		tot->ops += s->ops;
		tot->ops_brokered += s->ops_brokered;
		tot->bytes_written += s->bytes_written;
		tot->bytes_read += s->bytes_read;
		tot->eintr += s->eintr;
		tot->enospc += s->enospc;
		tot->partial += s->partial;
		tot->eof += s->eof;
		tot->signals += s->count[OP_SIGNAL];
		tot->econnreset += s->econnreset;
		tot->enomem += s->enomem;
		tot->checks += s->checks;
	}
	cr_assert_eq(b->err, 0, "the broker's TRANSACT failed: %s", rd_errname(b->err));
	cr_assert_eq(b->failed, 0, "the daemon found %" PRIu64 " of the broker's answers malformed", b->failed);
	cr_assert_eq(b->unexpected, 0, "the broker got %" PRIu64 " requests other than OPEN/ATTACH/notices",
		     b->unexpected);
	cr_assert_gt(b->opens + b->attaches, 0, "the broker decided opens and attaches");
	cr_assert_gt(tot->ops_brokered, 0, "clients ran while the broker was connected");
	cr_assert_gt(tot->ops - tot->ops_brokered, 0, "clients ran while no broker was connected");
	/* The broker's close sends its RELEASE without waiting for it, and
	 * another serving thread may answer the STATS first: wait for it. */
	uint64_t gone_by = stress_now_ns() + (uint64_t)cfg.hang_ms * 1000000u;
	while ((st = rd_stats(d)).broker_connected && stress_now_ns() < gone_by)
		stress_sleep_us(1000);
	cr_assert_eq(st.broker_connected, 0, "the broker is gone");
	cr_assert_eq(st.relay_failed, 0, "relay_failed: %" PRIu64, st.relay_failed);
	/* Every request a vanished broker held ended with ECONNRESET for its app, and no other did. */
	cr_assert_eq(tot->econnreset, st.relay_broker_gone,
		     "apps got ECONNRESET %" PRIu64 " times; the daemon ended %" PRIu64 " requests of gone brokers"
		     " (the brokers went away holding %" PRIu64 ")",
		     tot->econnreset, st.relay_broker_gone, b->held);
	cr_assert_gt(tot->enospc, 0, "clients' own pipes hit --max-pipes (ENOSPC)");
	cr_assert_gt(st.limit_pipes_hits, 0, "stats.limit_pipes_hits");
	cr_assert_gt(tot->enomem, 0, "writes and growth hit --max-memory (ENOSPC)");
	cr_assert_geq(st.limit_memory_hits, tot->enomem, "stats.limit_memory_hits counts every one the clients saw");
}

/* Totals over the pipes LIST_PIPES shows; the first mismatch in problem. */
struct account {
	unsigned seen;
	uint64_t written, queued, dropped, flushed, allocated;
	char problem[1024];
};

static bool account_pipe(const struct ringdev_pipe_info *info, void *arg)
{
	struct account *a = arg;
	uint64_t written = 0, read = 0, flushed = 0;
	char desc[400];
	unsigned index;

	a->allocated += info->allocated_bytes;
	if (info->allocated_bytes != ((info->flags & RINGDEV_PIPE_ALLOCATED) ? info->capacity : 0)) {
		stress_describe(info, desc, sizeof(desc));
		snprintf(a->problem, sizeof(a->problem), "pipe %s: allocated %" PRIu64 " bytes, capacity %" PRIu64 ": %s",
			 info->name, info->allocated_bytes, info->capacity, desc);
		return false;
	}
	if (info->name[0] != 'p' || sscanf(info->name, "p%4u", &index) != 1 || index >= cfg.pipes)
		return true;
	a->seen++;
	for (unsigned c = 0; c < cfg.clients; c++) {
		written += wrote_by[c * cfg.pipes + index];
		read += read_by[c * cfg.pipes + index];
		flushed += flushed_by[c * cfg.pipes + index];
	}
	a->queued += info->queued_bytes;
	a->dropped += info->dropped_bytes;
	a->flushed += flushed;
	a->written += written;
	if (info->bytes_in == written && info->bytes_out == read &&
	    info->bytes_in == info->bytes_out + info->queued_bytes + info->dropped_bytes + flushed)
		return true;
	stress_describe(info, desc, sizeof(desc));
	snprintf(a->problem, sizeof(a->problem),
		 "pipe %s: clients wrote %" PRIu64 ", read %" PRIu64 " and flushed %" PRIu64
		 " bytes; the daemon counts in %" PRIu64 " out %" PRIu64 " queued %" PRIu64 " dropped %" PRIu64
		 " (in must be out + queued + dropped + flushed): %s",
		 info->name, written, read, flushed, info->bytes_in, info->bytes_out, info->queued_bytes,
		 info->dropped_bytes, desc);
	return false;
}

static struct account check_accounting(struct watch *w)
{
	struct account a = { 0 };
	int r = stress_list_pipes(w->admin, account_pipe, &a);

	cr_assert_eq(r, 0, "LIST_PIPES: %s", rd_errname(-r));
	cr_assert(!a.problem[0], "%s", a.problem);
	cr_assert_eq(a.seen, cfg.pipes, "LIST_PIPES showed %u of the %u load pipes", a.seen, cfg.pipes);
	return a;
}

/* ---- fairness ------------------------------------------------------------ */

enum fair_phase { FAIR_WARMUP, FAIR_IDLE, FAIR_FLOOD, FAIR_END };

struct fair_shared {
	_Atomic int phase;
	atomic_bool flood_stop;
	_Atomic uint64_t flood_writes;
	uint64_t flood_bytes;
	int flood_err;
	struct {
		uint64_t n[2];             /* samples: idle, flood */
		uint64_t bytes;
		int err;
		uint64_t samples[2][FAIR_SAMPLES];
	} probe[PROBES];
};

static struct fair_shared *fair;

static int probe_main(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	char name[16], msg[64], back[64];
	int fd;

	snprintf(name, sizeof(name), "probe-%u", index);
	fd = rd_open(daemon_ref, name, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		fair->probe[index].err = errno;
		return 1;
	}
	memset(msg, 'a' + (int)index, sizeof(msg));
	for (;;) {
		int phase = atomic_load(&fair->phase);
		uint64_t t0, t1;

		if (phase == FAIR_END)
			break;
		t0 = stress_now_ns();
		if (write(fd, msg, sizeof(msg)) != (ssize_t)sizeof(msg) ||
		    read(fd, back, sizeof(back)) != (ssize_t)sizeof(back)) {
			fair->probe[index].err = errno ? errno : EPROTO;
			return 2;
		}
		t1 = stress_now_ns();
		fair->probe[index].bytes += sizeof(msg);
		/* Only round trips wholly inside one measured phase count. */
		if ((phase == FAIR_IDLE || phase == FAIR_FLOOD) && atomic_load(&fair->phase) == phase) {
			int k = phase == FAIR_IDLE ? 0 : 1;

			if (fair->probe[index].n[k] < FAIR_SAMPLES)
				fair->probe[index].samples[k][fair->probe[index].n[k]++] = t1 - t0;
		}
	}
	close(fd);
	return 0;
}

static int flood_main(void *arg)
{
	int fd = rd_open(daemon_ref, "flood", O_WRONLY | O_CLOEXEC, 0);

	(void)arg;
	if (fd < 0) {
		fair->flood_err = errno;
		return 1;
	}
	while (!atomic_load(&fair->flood_stop)) {
		/* Overwrite policy: never waits; the daemon's loop is all it costs. */
		if (write(fd, write_data, IO_MAX) != (ssize_t)IO_MAX) {
			fair->flood_err = errno ? errno : EPROTO;
			return 2;
		}
		fair->flood_bytes += IO_MAX;
		atomic_fetch_add(&fair->flood_writes, 1);
	}
	close(fd);
	return 0;
}

static void wait_flag_u64(_Atomic uint64_t *v, uint64_t at_least, const char *what)
{
	uint64_t deadline = stress_now_ns() + (uint64_t)cfg.hang_ms * 1000000u;

	while (atomic_load(v) < at_least && stress_now_ns() < deadline)
		stress_sleep_us(2000);
	cr_assert_geq(atomic_load(v), at_least, "%s", what);
}

struct fairness {
	uint64_t idle_p99, flood_p99, idle_n, flood_n, flood_bytes;
	double ratio;
};

static void fairness(const struct rd_daemon *d, int admin, struct fairness *out)
{
	static uint64_t all[2][PROBES * FAIR_SAMPLES];
	pid_t probes[PROBES];
	size_t n[2] = { 0, 0 };
	struct ringdev_pipe_info info;
	char name[16];

	fair = rd_shared(sizeof(*fair));
	for (unsigned i = 0; i < PROBES; i++)
		probes[i] = rd_spawn(probe_main, (void *)(uintptr_t)i, -1);
	stress_sleep_us(300000);
	/* Two rounds of idle then flood: a passing disturbance hits both. */
	for (int round = 0; round < 2; round++) {
		pid_t flooder;

		atomic_store(&fair->phase, FAIR_IDLE);
		stress_sleep_us((uint64_t)cfg.fair_ms * 500u);
		atomic_store(&fair->phase, FAIR_WARMUP);
		atomic_store(&fair->flood_stop, false);
		flooder = rd_spawn(flood_main, NULL, -1);
		wait_flag_u64(&fair->flood_writes, atomic_load(&fair->flood_writes) + 50, "the flooder writes");
		atomic_store(&fair->phase, FAIR_FLOOD);
		stress_sleep_us((uint64_t)cfg.fair_ms * 500u);
		atomic_store(&fair->phase, FAIR_WARMUP);
		atomic_store(&fair->flood_stop, true);
		cr_assert_eq(rd_join(flooder), 0, "flooder: %s", rd_errname(fair->flood_err));
	}
	atomic_store(&fair->phase, FAIR_END);
	for (unsigned i = 0; i < PROBES; i++) {
		cr_assert_eq(rd_join(probes[i]), 0, "probe %u: %s", i, rd_errname(fair->probe[i].err));
		for (int k = 0; k < 2; k++)
			for (uint64_t j = 0; j < fair->probe[i].n[k]; j++)
				all[k][n[k]++] = fair->probe[i].samples[k][j];
	}
	cr_assert(n[0] >= 100 && n[1] >= 100, "round trips measured: %zu idle, %zu under flood", n[0], n[1]);
	out->idle_n = n[0];
	out->flood_n = n[1];
	out->idle_p99 = stress_percentile(all[0], n[0], 99.0);
	out->flood_p99 = stress_percentile(all[1], n[1], 99.0);
	out->ratio = out->idle_p99 ? (double)out->flood_p99 / (double)out->idle_p99 : 0.0;
	out->flood_bytes = fair->flood_bytes;

	/* The flood pipe and the probes' pipes account exactly too. */
	int fd = rd_open_ok(d, "flood", O_RDONLY | O_NONBLOCK);
	info = rd_pipe_info(fd);
	close(fd);
	/* + the byte fixed_pipes() put through each of these pipes. */
	cr_assert_eq(info.bytes_in, fair->flood_bytes + 1, "flood pipe: bytes_in %" PRIu64 ", written %" PRIu64,
		     info.bytes_in, fair->flood_bytes + 1);
	cr_assert_eq(info.bytes_in, info.bytes_out + info.queued_bytes + info.dropped_bytes,
		     "flood pipe: in %" PRIu64 " = out %" PRIu64 " + queued %" PRIu64 " + dropped %" PRIu64, info.bytes_in,
		     info.bytes_out, info.queued_bytes, info.dropped_bytes);
	for (unsigned i = 0; i < PROBES; i++) {
		snprintf(name, sizeof(name), "probe-%u", i);
		fd = rd_open_ok(d, name, O_RDONLY | O_NONBLOCK);
		info = rd_pipe_info(fd);
		close(fd);
		cr_assert(info.bytes_in == fair->probe[i].bytes + 1 && info.bytes_out == info.bytes_in && info.queued_bytes == 0,
			  "probe pipe %s: in %" PRIu64 " out %" PRIu64 " queued %" PRIu64 ", probe wrote and read %" PRIu64,
			  name, info.bytes_in, info.bytes_out, info.queued_bytes, fair->probe[i].bytes);
	}
}

/* ---- per-user limits ----------------------------------------------------- */

/* Become uid/gid 65534 for good; the death signal is cleared by the change
 * of credentials, so it is set again. */
static int become_nobody(void)
{
	pid_t parent = getppid();

	if (setgroups(0, NULL) != 0 || setresgid(NOBODY, NOBODY, NOBODY) != 0 ||
	    setresuid(NOBODY, NOBODY, NOBODY) != 0)
		return -1;
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	return getppid() == parent ? 0 : -1;
}

/* A user limited to LIMIT_PARKED waiting requests and LIMIT_PIPES pipes
 * waits on empty pipes and creates pipes of its own; ENOBUFS and ENOSPC are
 * what the limits say, everything else is checked as in the load. */
static int limit_client_main(void *arg)
{
	unsigned index = (unsigned)(uintptr_t)arg;
	struct client_slot *me = &sh->limit[index];
	struct stress_rng rng;
	int own[CLIENT_TEMPS], nown = 0;
	uint64_t made = 0;
	char buf[16];

	if (become_nobody() < 0) {
		snprintf(me->why, sizeof(me->why), "become uid %d: %s", NOBODY, rd_errname(errno));
		me->failed = 1;
		atomic_store(&me->exited, 1);
		return 1;
	}
	stress_rng_init(&rng, cfg.seed, 1000 + index);
	while (!atomic_load(&sh->stop) && !me->failed && stress_now_ns() < sh->deadline_ns) {
		char name[32];
		int fd, err;

		if (stress_rng_next(&rng) % 3) {
			/* Wait on an empty pipe no one writes: ends by the timer or by the limit. */
			snprintf(name, sizeof(name), "lim-%u", (unsigned)(stress_rng_next(&rng) % 2));
			atomic_store(&me->pipe, -1);
			atomic_store(&me->op, OP_READ);
			atomic_store(&me->op_start_ns, stress_now_ns());
			fd = rd_open(daemon_ref, name, O_RDONLY | O_CLOEXEC, 0);
			if (fd >= 0) {
				ssize_t n;

				stress_alarm_us(stress_rng_range(&rng, 20000, 150000));
				n = read(fd, buf, sizeof(buf));
				err = errno;
				stress_alarm_us(0);
				close(fd);
				if (n >= 0 || (err != EINTR && err != ENOBUFS)) {
					snprintf(me->why, sizeof(me->why), "read of empty %s as uid %d: %zd (%s)", name, NOBODY,
						 n, n < 0 ? rd_errname(err) : "data");
					me->failed = 1;
				}
				if (n < 0 && err == ENOBUFS) {
					me->enobufs++;
					stress_sleep_us(1000);
				}
				else if (n < 0)
					me->eintr++;
			} else if (errno != EINTR) {
				snprintf(me->why, sizeof(me->why), "open %s as uid %d: %s", name, NOBODY, rd_errname(errno));
				me->failed = 1;
			}
			atomic_store(&me->op_start_ns, 0);
			me->ops++;
			continue;
		}
		if (nown == CLIENT_TEMPS) {
			close(own[--nown]);
			continue;
		}
		snprintf(name, sizeof(name), "n%u-%" PRIu64, index, made++);
		atomic_store(&me->pipe, -2);
		atomic_store(&me->op, OP_TEMP);
		atomic_store(&me->op_start_ns, stress_now_ns());
		fd = rd_open(daemon_ref, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		err = errno;
		atomic_store(&me->op_start_ns, 0);
		me->ops++;
		if (fd >= 0)
			own[nown++] = fd;
		else if (err == ENOSPC) {
			me->enospc++;
			stress_sleep_us(1000);
		} else if (err != EINTR) {
			snprintf(me->why, sizeof(me->why), "create %s as uid %d: %s", name, NOBODY, rd_errname(err));
			me->failed = 1;
		}
	}
	while (nown > 0)
		close(own[--nown]);
	atomic_store(&me->exited, 1);
	return me->failed ? 1 : 0;
}

struct nobody_io {
	ssize_t ret;
	int err;
	int created;                   /* pipes created before the first refusal */
	int refusal;                   /* errno of that refusal */
};

static int nobody_reader_main(void *arg)
{
	struct nobody_io *io = arg;
	char buf[16];
	int fd;

	if (become_nobody() < 0 || (fd = rd_open(daemon_ref, "lim-0", O_RDONLY | O_CLOEXEC, 0)) < 0) {
		io->err = errno;
		return 1;
	}
	io->ret = read(fd, buf, sizeof(buf));
	io->err = io->ret < 0 ? errno : 0;
	close(fd);
	return 0;
}

static int nobody_creator_main(void *arg)
{
	struct nobody_io *io = arg;
	int fds[LIMIT_PIPES + 1];

	if (become_nobody() < 0) {
		io->err = errno;
		return 1;
	}
	for (io->created = 0; io->created <= LIMIT_PIPES; io->created++) {
		char name[32];

		snprintf(name, sizeof(name), "again-%d", io->created);
		fds[io->created] = rd_open(daemon_ref, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fds[io->created] < 0) {
			io->refusal = errno;
			break;
		}
	}
	for (int i = 0; i < io->created; i++)
		close(fds[i]);
	return 0;
}

struct limit_totals {
	uint64_t enobufs, enospc, ops;
};

static void per_user_limits(struct watch *w, struct limit_totals *tot)
{
	const struct rd_daemon *d = w->d;
	uint64_t end = stress_now_ns() + (uint64_t)cfg.limit_ms * 1000000u;
	struct nobody_io *io = rd_shared(sizeof(*io) * (LIMIT_PARKED + 2));
	pid_t pid[LIMIT_PARKED + 1];
	struct ringdev_stats before = rd_stats(d), st;
	/* Writers attached: the pipes are not at end-of-file, so reads wait. */
	int fd = rd_open_ok(d, "lim-0", O_WRONLY), other = rd_open_ok(d, "lim-1", O_WRONLY);

	atomic_store(&sh->stop, 0);
	sh->deadline_ns = end + 30ull * 1000000000u;
	for (unsigned i = 0; i < LIMIT_CLIENTS; i++)
		sh->limit[i].pid = rd_spawn(limit_client_main, (void *)(uintptr_t)i, -1);
	while (stress_now_ns() < end && !w->problem[0]) {
		watch_hangs(w, sh->limit, LIMIT_CLIENTS, "uid-65534 client");
		stress_sleep_us(20000);
	}
	atomic_store(&sh->stop, 1);
	join_clients(w, sh->limit, LIMIT_CLIENTS, "uid-65534 client");
	for (unsigned i = 0; i < LIMIT_CLIENTS; i++) {
		tot->enobufs += sh->limit[i].enobufs;
		tot->enospc += sh->limit[i].enospc;
		tot->ops += sh->limit[i].ops;
	}
	st = rd_stats(d);
	cr_assert_gt(tot->enobufs, 0, "reads past --max-parked-per-uid %d got ENOBUFS", LIMIT_PARKED);
	cr_assert_gt(tot->enospc, 0, "creations past --max-pipes-per-uid %d got ENOSPC", LIMIT_PIPES);
	cr_assert_gt(st.limit_parked_hits, before.limit_parked_hits, "stats.limit_parked_hits counted them");
	cr_assert_gt(st.limit_uid_pipes_hits, before.limit_uid_pipes_hits, "stats.limit_uid_pipes_hits counted them");

	/* Recovered: exactly LIMIT_PARKED reads of that user wait again ... */
	rd_assert_idle(d);
	for (int i = 0; i < LIMIT_PARKED; i++)
		pid[i] = rd_spawn(nobody_reader_main, &io[i], -1);
	rd_wait_parked(d, LIMIT_PARKED, 0);
	pid[LIMIT_PARKED] = rd_spawn(nobody_reader_main, &io[LIMIT_PARKED], -1);
	cr_assert_eq(rd_join(pid[LIMIT_PARKED]), 0, "reader past the limit: %s", rd_errname(io[LIMIT_PARKED].err));
	cr_assert(io[LIMIT_PARKED].ret == -1 && io[LIMIT_PARKED].err == ENOBUFS,
		  "a read past --max-parked-per-uid after the load: %zd (%s), expected ENOBUFS", io[LIMIT_PARKED].ret,
		  rd_errname(io[LIMIT_PARKED].err));
	for (int i = 0; i < LIMIT_PARKED; i++) {
		rd_write_ok(fd, "x", 1);
		rd_wait_parked(d, (uint64_t)(LIMIT_PARKED - 1 - i), 0);
	}
	for (int i = 0; i < LIMIT_PARKED; i++) {
		cr_assert_eq(rd_join(pid[i]), 0, "waiting reader %d: %s", i, rd_errname(io[i].err));
		cr_assert_eq(io[i].ret, 1, "waiting reader %d got %zd (%s)", i, io[i].ret, rd_errname(io[i].err));
	}
	close(fd);
	close(other);
	/* ... and exactly LIMIT_PIPES pipes of that user can be created. */
	pid[0] = rd_spawn(nobody_creator_main, &io[LIMIT_PARKED + 1], -1);
	cr_assert_eq(rd_join(pid[0]), 0, "creator: %s", rd_errname(io[LIMIT_PARKED + 1].err));
	cr_assert(io[LIMIT_PARKED + 1].created == LIMIT_PIPES && io[LIMIT_PARKED + 1].refusal == ENOSPC,
		  "after the load uid %d created %d pipes, then %s; expected %d, then ENOSPC", NOBODY,
		  io[LIMIT_PARKED + 1].created, rd_errname(io[LIMIT_PARKED + 1].refusal), LIMIT_PIPES);
}

/* Exactly --max-pipes less the pipes there are can be created by root, and
 * the next is ENOSPC: no pipe slot leaked. */
static void pipes_recovered(const struct rd_daemon *d, uint64_t fixed, uint64_t max_pipes)
{
	static int fds[MAX_CLIENTS * CLIENT_TEMPS + 64];
	uint64_t deadline = stress_now_ns() + 15000000000ull;
	struct ringdev_stats st = rd_stats(d);
	uint64_t made = 0;

	/* A creation whose open was interrupted leaves its pipe held for the
	 * creator for up to 10 s (ringdev(4), FUSE O_CREAT): wait that out. */
	while (st.pipes != fixed && stress_now_ns() < deadline) {
		stress_sleep_us(20000);
		st = rd_stats(d);
	}
	cr_assert_eq(st.pipes, fixed, "pipes after the load: %" PRIu64 ", expected the %" PRIu64 " persistent ones",
		     st.pipes, fixed);
	for (;;) {
		char name[32];
		int fd;

		cr_assert_lt(made, sizeof(fds) / sizeof(fds[0]), "more pipes than --max-pipes allows");
		snprintf(name, sizeof(name), "again-root-%" PRIu64, made);
		fd = rd_open(d, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			cr_assert_eq(errno, ENOSPC, "create %s: %s", name, rd_errname(errno));
			break;
		}
		fds[made++] = fd;
	}
	cr_assert_eq(fixed + made, max_pipes, "after the load %" PRIu64 " pipes could be created beside %" PRIu64
		     ", --max-pipes is %" PRIu64, made, fixed, max_pipes);
	for (uint64_t i = 0; i < made; i++)
		close(fds[i]);
}

/* The pipes of the fairness and limit phases, their rings allocated now
 * (one byte through each) so the load cannot leave them no ring memory. */
static void fixed_pipes(const struct rd_daemon *d, int admin)
{
	static const char *const names[] = { "probe-0", "probe-1", "probe-2", "flood", "lim-0", "lim-1" };
	char byte;

	_Static_assert(PROBES == 3, "the probe pipes above");
	for (unsigned i = 0; i < PROBES; i++)
		create_persistent(admin, names[i], RINGDEV_KIND_MESSAGE, RINGDEV_POLICY_BLOCK, 4096);
	create_persistent(admin, "flood", RINGDEV_KIND_STREAM, RINGDEV_POLICY_OVERWRITE, 65536);
	create_persistent(admin, "lim-0", RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	create_persistent(admin, "lim-1", RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		int fd = rd_open_ok(d, names[i], O_RDWR | O_NONBLOCK);

		rd_write_ok(fd, "!", 1);
		rd_read_ok(fd, &byte, 1, 1);
		close(fd);
	}
}

static void settings_init(void)
{
	bool long_mode = stress_long_mode();

	/* At least 4: their own pipes must outnumber the free slots (ENOSPC). */
	cfg.clients = (unsigned)stress_env_u64("RINGDEV_STRESS_CLIENTS", 64, 4, MAX_CLIENTS);
	cfg.pipes = (unsigned)stress_env_u64("RINGDEV_STRESS_PIPES", 1000, 4, MAX_PIPES);
	cfg.seconds = (unsigned)stress_env_u64("RINGDEV_STRESS_SECONDS", long_mode ? 600 : 30, 2, 86400);
	cfg.hang_ms = (unsigned)stress_env_u64("RINGDEV_STRESS_HANG_MS", 20000, 1000, 3600000);
	cfg.fair_ms = long_mode ? 10000 : 3000;
	cfg.limit_ms = long_mode ? 20000 : 3000;
	cfg.seed = stress_env_u64("RINGDEV_STRESS_SEED", (uint64_t)time(NULL), 0, UINT64_MAX);
}

Test(load, random_clients_broker_fairness_limits)
{
	static const uint64_t capacities[] = { 1024, 4096, 16384, 65536 };
	char max_pipes_arg[32], max_memory_arg[32];
	const char *args[] = { "--max-pipes", max_pipes_arg, "--max-memory", max_memory_arg, "--ring-size", "4K",
			       "--max-parked-per-uid", "4", "--max-pipes-per-uid", "3", NULL };
	struct load_totals tot = { 0 };
	struct limit_totals lim = { 0 };
	struct fairness fr = { 0 };
	struct broker broker;
	struct watch w;
	struct account acc;
	struct stress_rng rng;
	struct ringdev_stats st, before_load;
	uint64_t fixed, slack, max_pipes, max_memory, started = stress_now_ns();

	settings_init();
	/* Before any helper exists: each inherits the handlers, so a signal
	 * can never find one with the default action (death). */
	stress_catch_interrupts();
	/* The load pipes, the probes' and the flood pipe, 2 pipes for the
	 * limit phase; the slack is what the clients' own pipes compete for. */
	fixed = cfg.pipes + PROBES + 1 + 2;
	slack = cfg.clients / 4 > LIMIT_PIPES + 1 ? cfg.clients / 4 : LIMIT_PIPES + 1;
	max_pipes = fixed + slack + (rd_frontend_is_cuse() ? 1 : 0); /* CUSE: the node's default pipe */
	snprintf(max_pipes_arg, sizeof(max_pipes_arg), "%" PRIu64, max_pipes);
	/* Less than the load pipes' rings may want (capacities up to 64 KiB,
	 * about 20 KiB on average): first writes and growth meet ENOSPC. */
	max_memory = (uint64_t)cfg.pipes * 16384 + (1u << 20);
	snprintf(max_memory_arg, sizeof(max_memory_arg), "%" PRIu64, max_memory);
	daemon_ref = rd_start(args);
	sh = rd_shared(sizeof(*sh));
	wrote_by = rd_shared(sizeof(uint64_t) * cfg.clients * cfg.pipes);
	read_by = rd_shared(sizeof(uint64_t) * cfg.clients * cfg.pipes);
	flushed_by = rd_shared(sizeof(uint64_t) * cfg.clients * cfg.pipes);
	rd_pattern(write_data, sizeof(write_data), cfg.seed, 0);
	memset(&w, 0, sizeof(w));
	w.d = daemon_ref;
	w.admin = daemon_ref->cuse ? open(daemon_ref->device, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
				   : open(daemon_ref->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	cr_assert_geq(w.admin, 0, "open the device for LIST_PIPES: %s", rd_errname(errno));
	/* The broker takes every open of a CUSE node: read counters through this one. */
	rd_stats_through(daemon_ref, w.admin);

	stress_rng_init(&rng, cfg.seed, 0);
	for (unsigned i = 0; i < cfg.pipes; i++) {
		unsigned k = (unsigned)(stress_rng_next(&rng) % 10);
		char name[16];

		pipe_name(i, name, sizeof(name));
		create_persistent(w.admin, name, k < 6 ? RINGDEV_KIND_STREAM : RINGDEV_KIND_MESSAGE,
				  k < 7 ? RINGDEV_POLICY_BLOCK : k < 9 ? RINGDEV_POLICY_OVERWRITE : RINGDEV_POLICY_FAIL,
				  capacities[stress_rng_next(&rng) % 4]);
	}
	fixed_pipes(daemon_ref, w.admin);
	before_load = rd_stats(daemon_ref);
	fprintf(stderr, "stress-load: seed %" PRIu64 ", %u clients, %u pipes, %u s of random load, --max-pipes %" PRIu64 "\n",
		cfg.seed, cfg.clients, cfg.pipes, cfg.seconds, max_pipes);

	random_load(&w, &tot, &broker);
	rd_assert_idle(daemon_ref);
	watch_waiters(&w);
	cr_assert(!w.problem[0], "%s", w.problem);
	acc = check_accounting(&w);
	cr_assert_gt(acc.written, 0, "the clients wrote to the load pipes");
	cr_assert_gt(w.samples, 0, "pipes were checked for forgotten waiters");
	/* Nothing but the clients moved data so far: the device totals are theirs. */
	st = rd_stats(daemon_ref);
	st.bytes_in -= before_load.bytes_in;
	st.bytes_out -= before_load.bytes_out;
	cr_assert(st.bytes_in == tot.bytes_written && st.bytes_out == tot.bytes_read && st.flushed_bytes == acc.flushed &&
		  st.dropped_bytes == acc.dropped,
		  "device: in %" PRIu64 " out %" PRIu64 " flushed %" PRIu64 " dropped %" PRIu64 "; clients wrote %" PRIu64
		  " read %" PRIu64 " flushed %" PRIu64 ", pipes dropped %" PRIu64,
		  st.bytes_in, st.bytes_out, st.flushed_bytes, st.dropped_bytes, tot.bytes_written, tot.bytes_read,
		  acc.flushed, acc.dropped);

	fairness(daemon_ref, w.admin, &fr);
	per_user_limits(&w, &lim);

	/* Final: nothing waits, nothing is held, nothing leaked. */
	rd_assert_idle(daemon_ref);
	rd_wait_opens(daemon_ref, daemon_ref->cuse ? 1 : 0);
	check_accounting(&w);
	pipes_recovered(daemon_ref, fixed, max_pipes);
	{
		struct account a = { 0 };

		cr_assert_eq(stress_list_pipes(w.admin, account_pipe, &a), 0, "LIST_PIPES");
		st = rd_stats(daemon_ref);
		cr_assert_eq(st.memory_used, a.allocated, "memory_used %" PRIu64 ", the rings hold %" PRIu64,
			     st.memory_used, a.allocated);
		cr_assert_eq(st.pollers, 0, "pollers left: %" PRIu64, st.pollers);
	}
	rd_stats_through(daemon_ref, -1);
	close(w.admin);
	rd_end(daemon_ref);

	printf("stress-load: clients %u, pipes %u, ops %" PRIu64 " (%" PRIu64 " with a broker), bytes written %" PRIu64
	       " read %" PRIu64 ", EINTR %" PRIu64 ", partial writes %" PRIu64 ", signals sent %" PRIu64
	       ", daemon interrupts %" PRIu64 ", ENOSPC pipes %" PRIu64 "+%" PRIu64 " memory %" PRIu64
	       " ENOBUFS %" PRIu64 ", load pipes in %" PRIu64 " = out + queued %" PRIu64 " + dropped %" PRIu64
	       " + flushed %" PRIu64 ", waiter checks %" PRIu64 " sampled + %" PRIu64 " after changes"
	       ", load %.1f s, run %.1f s, fairness p99 idle %" PRIu64 " us flood %" PRIu64 " us ratio %.2f"
	       " (%" PRIu64 "/%" PRIu64 " round trips, %" PRIu64 " MiB flooded), broker opens %" PRIu64
	       " attaches %" PRIu64 " cancels %" PRIu64 " connects %" PRIu64 " ECONNRESET %" PRIu64
	       ", seed %" PRIu64 "\n",
	       cfg.clients, cfg.pipes, tot.ops, tot.ops_brokered, tot.bytes_written, tot.bytes_read, tot.eintr,
	       tot.partial, tot.signals, st.interrupts, tot.enospc, lim.enospc, tot.enomem, lim.enobufs, acc.written,
	       acc.queued, acc.dropped, acc.flushed, w.samples, tot.checks, tot.seconds,
	       (double)(stress_now_ns() - started) / 1e9, fr.idle_p99 / 1000, fr.flood_p99 / 1000, fr.ratio,
	       fr.idle_n, fr.flood_n, fr.flood_bytes >> 20, broker.opens, broker.attaches, broker.cancels,
	       broker.connects, tot.econnreset, cfg.seed);
	fflush(stdout);
	/* The one timing assertion, and a generous one (see the top of this file). */
	cr_assert_lt(fr.flood_p99, 50 * fr.idle_p99 + 50000000u,
		     "round-trip p99 under flood %" PRIu64 " us, idle %" PRIu64 " us: over 50 x idle + 50 ms",
		     fr.flood_p99 / 1000, fr.idle_p99 / 1000);
}
