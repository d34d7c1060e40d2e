/* SPDX-License-Identifier: MIT */
/*
 * restart.c - section 6: the pause of an in-place restart (SIGHUP), the
 * figure issue 20 promises: at most 100 ms with 10,000 pipes, 1,000
 * handles and 1 GiB queued.
 *
 * Two daemons of their own, with limits wide enough for the load: a loaded
 * one (the pipes, handles and queued bytes: full 64 MiB rings) and
 * an idle one (three pipes, one 64 KiB ring queued), each with a read
 * parked on an empty pipe. Each round SIGHUPs both, one after the other,
 * and measures each pause twice:
 *  - from outside, as an app sees it: a thread asks RINGDEV_IOC_NREAD on
 *    a pipe of its own in a tight loop; the longest time between two
 *    consecutive answers around the handover is the pause (the request in
 *    flight waits in the kernel for the new image; it includes one round
 *    trip, which an app also pays);
 *  - the daemon's own figure, last_restart_pause_us of
 *    RINGDEV_IOC_STATS_EXT (the old image stopping to the new one serving).
 * The reference, measured in the same round: one fork + exec + wait of the
 * same ringdevd binary with --version, the cost of an exec, which no
 * restart in place can avoid.
 *
 * Before each round but the first, every queued byte goes through the
 * daemon once (read, checked, written again): the image a SIGHUP replaces
 * has then touched all of its rings, as a daemon that served them has,
 * and its exec pays for tearing down their page tables.
 *
 * A pause only counts if nothing was lost: after every handover the
 * daemon must hold the same pipes and handles, every queued byte and the
 * parked read; every queued byte is read back through the handles opened
 * before the first handover and checked against its pattern (by the next
 * round, and after the last one), and the parked read must complete with
 * the bytes written to its pipe. Any of that failing ends the run (exit 1)
 * before a row is finished.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define HANDOVER_WAIT_MS 10000
#define PARKED_WAIT_MS 5000
#define PROBE_SETTLE_NS 20000000ull  /* probe alone before the SIGHUP, and after the handover */
#define CHUNK (1u << 20)            /* bytes per write and read of the rings */
#define IDLE_RING (64u << 10)
#define PARKED_MSG "parked read: woken after the restarts"

/* What one daemon holds while it is restarted. */
struct load {
	uint64_t pipes;               /* in all: idle ones, full ones, the probe's, the parked one */
	uint64_t handles;             /* in all, the same way */
	uint64_t full;                /* pipes with their ring filled */
	uint64_t ring;                /* capacity of each full pipe */
};

/* The daemon, its handles and what it must still hold after each handover. */
struct target {
	const char *tag;
	struct load load;
	struct daemon d;
	int *wfd, *rfd;               /* per full pipe: writer (filled it), reader (checks it) */
	uint64_t *head;               /* per full pipe: pattern offset of its first queued byte */
	uint64_t *buf;                /* CHUNK bytes */
	int *idle;                    /* handles on idle pipes */
	uint64_t nidle;
	int probe;                    /* the probe thread's handle */
	int parked_r, parked_w;       /* the parked read's pipe */
	pthread_t parked;
	_Atomic long parked_got;      /* the parked read's result (-errno on failure) */
	char parked_buf[64];
	uint64_t pipes, opens;        /* what STATS said before the first handover */
	uint64_t restarts;            /* STATS_EXT restarts so far */
};

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void stats_ext(const struct daemon *d, struct ringdev_stats_ext *x)
{
	memset(x, 0, sizeof(*x));
	if (ioctl(d->root, RINGDEV_IOC_STATS_EXT, x) < 0)
		die("RINGDEV_IOC_STATS_EXT");
}

static uint64_t queued_bytes(int fd)
{
	struct ringdev_nread n;
	memset(&n, 0, sizeof(n));
	if (ioctl(fd, RINGDEV_IOC_NREAD, &n) < 0)
		die("RINGDEV_IOC_NREAD");
	return n.queued_bytes;
}

/* ---- the load ---- */

/* The 64-bit word at byte `off` of full pipe `p`: a loss, a duplicate, a
 * reordering or another pipe's bytes all show. */
static uint64_t pattern_word(uint64_t p, uint64_t off)
{
	return (p + 1) * 0x9e3779b97f4a7c15ull ^ (off >> 3);
}

static void pattern_fill(uint64_t p, uint64_t off, uint64_t *buf, size_t n)
{
	for (size_t i = 0; i < n / 8; i++)
		buf[i] = pattern_word(p, off + 8 * i);
}

/* Write `n` bytes of full pipe `p`'s pattern from pattern offset `from`:
 * a writer that does not block, so that a ring taking less than it says
 * ends the run. */
static void write_pattern(struct target *t, uint64_t p, uint64_t from, uint64_t n)
{
	for (uint64_t off = 0; off < n;) {
		size_t len = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		pattern_fill(p, from + off, t->buf, len);
		size_t done = 0;
		while (done < len) {
			ssize_t w = write(t->wfd[p], (char *)t->buf + done, len - done);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN)
				fail("%s: full pipe %llu took %llu of its %llu bytes", t->tag, (unsigned long long)p,
				     (unsigned long long)(off + done), (unsigned long long)n);
			if (w <= 0)
				die("write into a full pipe");
			done += (size_t)w;
		}
		off += len;
	}
}

/* Read `n` bytes of full pipe `p` and check them against its pattern
 * from offset `from`. */
static void read_pattern(struct target *t, uint64_t p, uint64_t from, uint64_t n)
{
	for (uint64_t off = 0; off < n;) {
		size_t len = n - off < CHUNK ? (size_t)(n - off) : CHUNK;
		read_all(t->rfd[p], t->buf, len);
		for (size_t i = 0; i < len / 8; i++)
			if (t->buf[i] != pattern_word(p, from + off + 8 * i))
				fail("%s: after a restart full pipe %llu differs at byte %llu of its stream", t->tag,
				     (unsigned long long)p, (unsigned long long)(from + off + 8 * i));
		off += len;
	}
}

/* Every queued byte read, checked and written again (the next stretch of
 * the pattern), before each handover: the image about to be replaced then
 * has touched every page of the rings, as one that has served them would
 * have, and its exec has their page tables to tear down. Without it only
 * the first handover would: a new image maps the arena but touches none
 * of it until it serves the bytes. */
static void target_cycle(struct target *t)
{
	for (uint64_t p = 0; p < t->load.full; p++) {
		read_pattern(t, p, t->head[p], t->load.ring);
		t->head[p] += t->load.ring;
		write_pattern(t, p, t->head[p], t->load.ring);
	}
}

static void *parked_read(void *arg)
{
	struct target *t = arg;
	ssize_t r;
	while ((r = read(t->parked_r, t->parked_buf, sizeof(t->parked_buf))) < 0 && errno == EINTR) {
	}
	atomic_store(&t->parked_got, r < 0 ? -errno : (long)r);
	return NULL;
}

static void wait_parked(struct target *t)
{
	for (int ms = 0; ms < PARKED_WAIT_MS; ms++) {
		struct ringdev_stats st;
		daemon_stats(&t->d, &st);
		if (st.parked_reads >= 1)
			return;
		usleep(1000);
	}
	fail("%s: the read on an empty pipe did not park within %d s", t->tag, PARKED_WAIT_MS / 1000);
}

static int *fd_array(uint64_t n)
{
	int *a = calloc(n ? n : 1, sizeof(*a));
	if (!a)
		die("calloc");
	return a;
}

/* Start the daemon and give it its load: `pipes` in all (persistent idle
 * ones made with RINGDEV_IOC_CREATE, the full ones, the probe's, the
 * parked read's) and `handles` in all (a writer and a reader per full
 * pipe, the probe's, the parked read's two, the rest on idle pipes). */
static void target_start(struct target *t, const char *tag, struct load load)
{
	static const char *const limits[] = {
		"--max-memory", "3G", "--max-memory-per-uid", "0", "--max-pipes-per-uid", "0",
		"--max-opens-per-uid", "0", NULL,
	};
	uint64_t own_pipes = load.full + 2, own_handles = 2 * load.full + 3;
	if (load.pipes < own_pipes || load.handles < own_handles)
		fail("%s: %llu pipes and %llu handles cannot hold %llu full pipes", tag, (unsigned long long)load.pipes,
		     (unsigned long long)load.handles, (unsigned long long)load.full);
	memset(t, 0, sizeof(*t));
	t->tag = tag;
	t->load = load;
	daemon_start_with(&t->d, tag, limits);

	uint64_t nidle_pipes = load.pipes - own_pipes;
	t->nidle = load.handles - own_handles;
	if (t->nidle > nidle_pipes)
		fail("%s: %llu handles on %llu idle pipes", tag, (unsigned long long)t->nidle,
		     (unsigned long long)nidle_pipes);
	for (uint64_t i = 0; i < nidle_pipes; i++) {
		struct ringdev_create c;
		memset(&c, 0, sizeof(c));
		snprintf(c.name, sizeof(c.name), "idle-%06llu", (unsigned long long)i);
		if (ioctl(t->d.root, RINGDEV_IOC_CREATE, &c) < 0)
			die("RINGDEV_IOC_CREATE of an idle pipe");
	}
	t->idle = fd_array(t->nidle);
	for (uint64_t i = 0; i < t->nidle; i++) {
		char name[RINGDEV_NAME_SIZE];
		snprintf(name, sizeof(name), "idle-%06llu", (unsigned long long)i);
		t->idle[i] = daemon_open(&t->d, name, O_RDONLY);
	}

	t->wfd = fd_array(load.full);
	t->rfd = fd_array(load.full);
	t->head = calloc(load.full ? load.full : 1, sizeof(*t->head));
	t->buf = malloc(CHUNK);
	if (!t->head || !t->buf)
		die("malloc");
	for (uint64_t p = 0; p < load.full; p++) {
		char name[RINGDEV_NAME_SIZE];
		snprintf(name, sizeof(name), "full-%03llu", (unsigned long long)p);
		t->rfd[p] = daemon_open(&t->d, name, O_RDONLY);
		t->wfd[p] = daemon_open(&t->d, name, O_WRONLY | O_NONBLOCK);
		pipe_set_capacity(t->wfd[p], load.ring);
		write_pattern(t, p, 0, load.ring);
	}

	t->probe = daemon_open(&t->d, "probe", O_RDONLY);
	t->parked_r = daemon_open(&t->d, "parked", O_RDONLY);
	t->parked_w = daemon_open(&t->d, "parked", O_WRONLY);
	atomic_init(&t->parked_got, -EINPROGRESS);
	int e = pthread_create(&t->parked, NULL, parked_read, t);
	if (e) {
		errno = e;
		die("pthread_create of the parked read");
	}
	wait_parked(t);

	struct ringdev_stats st;
	struct ringdev_stats_ext x;
	daemon_stats(&t->d, &st);
	stats_ext(&t->d, &x);
	t->pipes = st.pipes;
	t->opens = st.opens;
	t->restarts = x.restarts;
	if (st.pipes != load.pipes)
		fail("%s: the daemon holds %llu pipes, not %llu", tag, (unsigned long long)st.pipes,
		     (unsigned long long)load.pipes);
}

/* After a handover: the same pipes and handles, every queued byte, the
 * read still parked. */
static void target_check(struct target *t)
{
	struct ringdev_stats st;
	daemon_stats(&t->d, &st);
	if (st.pipes != t->pipes || st.opens != t->opens)
		fail("%s: after the restart the daemon holds %llu pipes and %llu handles, not %llu and %llu", t->tag,
		     (unsigned long long)st.pipes, (unsigned long long)st.opens, (unsigned long long)t->pipes,
		     (unsigned long long)t->opens);
	if (st.parked_reads < 1 || atomic_load(&t->parked_got) != -EINPROGRESS)
		fail("%s: after the restart the read on an empty pipe is no longer parked", t->tag);
	for (uint64_t p = 0; p < t->load.full; p++) {
		uint64_t q = queued_bytes(t->rfd[p]);
		if (q != t->load.ring)
			fail("%s: after the restart full pipe %llu holds %llu bytes, not %llu", t->tag,
			     (unsigned long long)p, (unsigned long long)q, (unsigned long long)t->load.ring);
	}
}

/* After the last handover: every queued byte read back and checked, the
 * parked read woken by a write. */
static void target_verify(struct target *t)
{
	for (uint64_t p = 0; p < t->load.full; p++) {
		read_pattern(t, p, t->head[p], t->load.ring);
		if (queued_bytes(t->rfd[p]) != 0)
			fail("%s: full pipe %llu holds more than it was given", t->tag, (unsigned long long)p);
	}

	write_all(t->parked_w, PARKED_MSG, sizeof(PARKED_MSG) - 1);
	struct timespec until;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PARKED_WAIT_MS / 1000;
	int e = pthread_timedjoin_np(t->parked, NULL, &until);
	if (e == ETIMEDOUT)
		fail("%s: the read parked before the restarts did not complete when data came", t->tag);
	if (e) {
		errno = e;
		die("pthread_timedjoin_np of the parked read");
	}
	long got = atomic_load(&t->parked_got);
	if (got < 0) {
		errno = (int)-got;
		die("the read parked before the restarts");
	}
	if ((size_t)got != sizeof(PARKED_MSG) - 1 || memcmp(t->parked_buf, PARKED_MSG, sizeof(PARKED_MSG) - 1) != 0)
		fail("%s: the read parked before the restarts got %ld bytes, not the %zu written", t->tag, got,
		     sizeof(PARKED_MSG) - 1);
}

static void close_array(int *fds, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		close(fds[i]);
	free(fds);
}

static void target_stop(struct target *t)
{
	close_array(t->idle, t->nidle);
	close_array(t->wfd, t->load.full);
	close_array(t->rfd, t->load.full);
	free(t->head);
	free(t->buf);
	close(t->probe);
	close(t->parked_r);
	close(t->parked_w);
	daemon_stop(&t->d);
}

/* ---- the probe: an app asking all the time ---- */

/* Gaps between answers longer than this are kept, with when they were;
 * the pause is the longest of them that spans the handover. */
#define GAP_MIN_NS 100000ull
#define GAPS_MAX 4096

struct gap {
	uint64_t start, end;          /* the answers before and after it */
};

struct probe {
	int fd;
	atomic_bool stop;
	atomic_bool running;          /* it has had an answer */
	atomic_uint_fast64_t from_ns; /* gaps ending before this are not kept */
	struct gap gaps[GAPS_MAX];
	int ngaps;
	uint64_t calls;
	int err;                      /* errno of a call that failed, or 0 */
};

static void *probe_run(void *arg)
{
	struct probe *p = arg;
	uint64_t prev = now_ns();
	while (!atomic_load(&p->stop)) {
		struct ringdev_nread n;
		memset(&n, 0, sizeof(n));
		if (ioctl(p->fd, RINGDEV_IOC_NREAD, &n) < 0) {
			p->err = errno;
			break;
		}
		uint64_t t = now_ns();
		p->calls++;
		atomic_store(&p->running, true);
		if (t - prev >= GAP_MIN_NS && t >= atomic_load(&p->from_ns) && p->ngaps < GAPS_MAX)
			p->gaps[p->ngaps++] = (struct gap){ prev, t };
		prev = t;
	}
	atomic_store(&p->running, true);
	return NULL;
}

/* The longest gap that ends after the SIGHUP and begins before the daemon
 * said it was done: the time the app waited for an answer across it. */
static uint64_t probe_pause(const struct probe *p, uint64_t hup, uint64_t done)
{
	uint64_t best = 0;
	for (int i = 0; i < p->ngaps; i++)
		if (p->gaps[i].end >= hup && p->gaps[i].start <= done && p->gaps[i].end - p->gaps[i].start > best)
			best = p->gaps[i].end - p->gaps[i].start;
	return best;
}

static void sleep_ns(uint64_t ns)
{
	struct timespec ts = { .tv_sec = (time_t)(ns / 1000000000ull), .tv_nsec = (long)(ns % 1000000000ull) };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
	}
}

/* Wait until the daemon says the handover is done: its restart count one
 * up. Returns when it said so. While the old image has stopped and the
 * new one not yet begun, this ioctl too waits in the kernel. */
static uint64_t wait_handover(struct target *t, struct ringdev_stats_ext *x)
{
	for (int ms = 0; ms < HANDOVER_WAIT_MS; ms++) {
		int status;
		char how[48];
		stats_ext(&t->d, x);
		if (x->restarts == t->restarts + 1)
			return now_ns();
		if (x->restarts != t->restarts)
			fail("%s: one SIGHUP, %llu restarts", t->tag, (unsigned long long)(x->restarts - t->restarts));
		if (child_exited(t->d.pid, &status))
			fail("%s: ringdevd ended (%s) on SIGHUP", t->tag, status_text(status, how, sizeof(how)));
		usleep(1000);
	}
	fail("%s: SIGHUP: no handover done within %d s (refused? see the daemon's log above)", t->tag,
	     HANDOVER_WAIT_MS / 1000);
}

/* One handover under the probe: the pause an app saw and the daemon's own
 * figure, in ms. */
static void handover_once(struct target *t, double *app_ms, double *daemon_ms)
{
	static struct probe p; /* 64 KiB of gaps: not on the stack */
	memset(&p, 0, sizeof(p));
	p.fd = t->probe;
	atomic_init(&p.stop, false);
	atomic_init(&p.running, false);
	atomic_init(&p.from_ns, UINT64_MAX);
	pthread_t th;
	int e = pthread_create(&th, NULL, probe_run, &p);
	if (e) {
		errno = e;
		die("pthread_create of the probe");
	}
	while (!atomic_load(&p.running))
		usleep(100);
	sleep_ns(PROBE_SETTLE_NS);
	uint64_t hup = now_ns();
	atomic_store(&p.from_ns, hup);
	if (kill(t->d.pid, SIGHUP) < 0)
		die("kill(SIGHUP) of ringdevd");
	struct ringdev_stats_ext x;
	uint64_t done = wait_handover(t, &x);
	sleep_ns(PROBE_SETTLE_NS);
	atomic_store(&p.stop, true);
	pthread_join(th, NULL);
	if (p.err) {
		errno = p.err;
		die("RINGDEV_IOC_NREAD across a restart");
	}
	uint64_t pause = probe_pause(&p, hup, done);
	if (pause == 0)
		fail("%s: the probe saw no pause around the handover (%llu calls)", t->tag,
		     (unsigned long long)p.calls);
	t->restarts = x.restarts;
	target_check(t);
	*app_ms = (double)pause / 1e6;
	*daemon_ms = (double)x.last_restart_pause_us / 1e3;
}

/* ---- the reference: one exec of ringdevd ---- */

static double exec_once(void)
{
	char *argv[] = { (char *)cfg.ringdevd, (char *)"--version", NULL };
	double t0 = now();
	fflush(NULL);
	pid_t pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		if (null < 0 || dup2(null, STDOUT_FILENO) < 0)
			_exit(127);
		execv(argv[0], argv);
		_exit(127);
	}
	int status;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid of ringdevd --version");
	double t = now() - t0;
	char how[48];
	if (status != 0)
		fail("%s --version: %s", cfg.ringdevd, status_text(status, how, sizeof(how)));
	return t * 1e3;
}

/* ---- the rows ---- */

static double max_of(const double *v, int n)
{
	double m = 0;
	for (int i = 0; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* "10000 pipes/1000 handles/1 GiB queued" */
static void load_text(const struct load *l, char *out, size_t size)
{
	uint64_t q = l->ring * l->full;
	const char *unit = "KiB";
	uint64_t n = q >> 10;
	if (q >= (1ull << 30) && q % (1ull << 30) == 0) {
		unit = "GiB";
		n = q >> 30;
	} else if (q >= (1ull << 20)) {
		unit = "MiB";
		n = q >> 20;
	}
	snprintf(out, size, "%llu pipes/%llu handles/%llu %s queued", (unsigned long long)l->pipes,
		 (unsigned long long)l->handles, (unsigned long long)n, unit);
}

static struct row *pause_row(const char *key, const char *how, const char *load)
{
	char what[96];
	snprintf(what, sizeof(what), "restart pause %s, %s", how, load);
	struct row *r = row_add(6, key, what, "ms");
	row_reference(r, "one exec of ringdevd", "pause/exec time");
	return r;
}

static struct row *max_row(const char *key, const char *how, int rounds)
{
	char what[96];
	snprintf(what, sizeof(what), "restart pause %s, longest of %d", how, rounds);
	return row_add(6, key, what, "ms");
}

void section_restart(struct daemon *unused)
{
	(void)unused;
	bench_phase = "6 restart: setup";
	const struct load idle_load = { .pipes = 3, .handles = 5, .full = 1, .ring = IDLE_RING };
	const struct load big_load = { .pipes = cfg.sizes.restart_pipes,
				       .handles = cfg.sizes.restart_handles,
				       .full = cfg.sizes.restart_full_pipes,
				       .ring = cfg.sizes.restart_ring };
	char idle_text[48], big_text[48], what[96];
	load_text(&idle_load, idle_text, sizeof(idle_text));
	load_text(&big_load, big_text, sizeof(big_text));

	struct row *app_idle = pause_row("restart.app.idle", "seen by an app, idle", idle_text);
	struct row *app_big = pause_row("restart.app.loaded", "seen by an app", big_text);
	struct row *app_max = max_row("restart.app.loaded.max", "seen by an app", cfg.rounds);
	struct row *own_idle = pause_row("restart.daemon.idle", "the daemon reports, idle", idle_text);
	struct row *own_big = pause_row("restart.daemon.loaded", "the daemon reports", big_text);
	struct row *own_max = max_row("restart.daemon.loaded.max", "the daemon reports", cfg.rounds);
	snprintf(what, sizeof(what), "restart pause seen by an app, loaded vs idle daemon");
	struct row *size = row_add(6, "restart.app.size", what, "ms");
	row_reference(size, "idle daemon", "loaded/idle pause");

	struct target idle, big;
	target_start(&idle, "restart-idle", idle_load);
	target_start(&big, "restart-loaded", big_load);
	bench_phase = "6 restart: handovers";
	for (int round = 0; round < cfg.rounds; round++) {
		if (round > 0) {
			target_cycle(&idle);
			target_cycle(&big);
		}
		double exec_ms = exec_once(), a, b;
		handover_once(&idle, &a, &b);
		row_ref_sample(app_idle, exec_ms);
		row_val_sample(app_idle, a);
		row_ref_sample(own_idle, exec_ms);
		row_val_sample(own_idle, b);
		row_ref_sample(size, a);
		handover_once(&big, &a, &b);
		row_ref_sample(app_big, exec_ms);
		row_val_sample(app_big, a);
		row_ref_sample(own_big, exec_ms);
		row_val_sample(own_big, b);
		row_val_sample(size, a);
	}
	bench_phase = "6 restart: checking every byte";
	target_verify(&idle);
	target_verify(&big);
	/* Only now, with nothing lost, are the pauses worth a row. */
	row_finish(app_idle);
	row_finish(app_big);
	row_set(app_max, max_of(app_big->val_samples, app_big->nval));
	row_finish(own_idle);
	row_finish(own_big);
	row_set(own_max, max_of(own_big->val_samples, own_big->nval));
	row_finish(size);
	target_stop(&idle);
	target_stop(&big);
}
