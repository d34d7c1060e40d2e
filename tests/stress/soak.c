/* SPDX-License-Identifier: MIT */
/*
 * soak.c - integrity soak: writers and readers move a large volume through
 * message and stream pipes of one real ringdevd while SIGUSR1 (no
 * SA_RESTART) interrupts random processes all the time, and every byte and
 * every message arrives exactly once, whole and in order; with the
 * overwrite policy exactly what the daemon says it dropped is missing.
 *
 * Every writer writes records: a 24-byte header (magic, writer, sequence
 * number, length, FNV-1a checksum of header and payload) and a payload
 * derived from (writer, sequence).  Sizes are a deterministic function of
 * (seed, writer, sequence), so the test process knows every writer's plan.
 * Writers follow ringdev(4) to the letter: EINTR means nothing moved, so
 * the same bytes are written again; a count short of the request (a stream
 * write larger than the capacity, interrupted after moving part of it) is
 * resumed from where it stopped; a short count of a write that fits the
 * capacity (all-or-nothing) is a failure.
 *
 * Phases, one daemon (RINGDEV_STRESS_BYTES in all, 3/8 + 3/8 + 2/8):
 * - message, block policy: W writers and R readers share one message pipe
 *   (capacity 128 KiB, messages up to 64 KiB).  Each read must be one whole
 *   record (length = the read's count, valid checksum: no torn or merged
 *   message), each writer's sequence rises in every reader's view, and the
 *   union over the readers (a shared table of (writer, seq)) is every record
 *   exactly once.
 * - stream, block policy: W pipes of capacity 16 KiB, one writer and one
 *   reader each (with several, a stream reader could not tell whose bytes
 *   it got); records up to 48 KiB, so interrupted writes move parts.  The
 *   reader reads chunks of random size and frames records by position: the
 *   stream must be exactly the writer's records, in order, nothing between.
 * - overwrite: a message pipe (W writers, R readers that start once the
 *   ring has overflowed and pause now and then, so there are drops) where every message read is still a whole
 *   valid record, read at most once, in each writer's order, and written -
 *   read = dropped_messages (and bytes: dropped_bytes) exactly; and a stream
 *   pipe whose bytes encode their own offset, so each read shows where in
 *   the writer's stream it comes from: reads are contiguous pieces in rising
 *   order, and the gaps between them add up exactly to dropped_bytes.
 * Readers end at end-of-file (every writer closed); the test process holds
 * only a read-only handle on each pipe, to read its counters at the end.
 * A phase with no progress for RINGDEV_STRESS_STALL_MS is a hang.
 */
#include "stress.h"

#include <inttypes.h>
#include <sys/ioctl.h>
#include <time.h>

RD_SUITE(soak, 4000);

#define MAX_WORKERS 16
#define RECORD_MAGIC 0x4b534452u       /* "RDSK" */
#define READ_MAX 65536u
#define MESSAGE_CAPACITY (128u << 10)
#define STREAM_CAPACITY (16u << 10)
#define STREAM_RECORD_MAX (48u << 10)  /* three capacities: writes move in parts */
#define OVERWRITE_CAPACITY (32u << 10)
#define OVERWRITE_RECORD_MAX (8u << 10)
#define POSITION_TAG 0xa55aull          /* top 16 bits of each position word */

struct record {
	uint32_t magic;
	uint16_t writer;
	uint16_t reserved;
	uint32_t seq;
	uint32_t length;               /* the whole record, header included */
	uint64_t checksum;             /* FNV-1a of this header (checksum 0) and the payload */
};
_Static_assert(sizeof(struct record) == 24, "record header layout");

struct settings {
	unsigned writers, readers;
	uint64_t bytes;                /* in all phases together */
	unsigned stall_ms;
	uint64_t seed;
};

/* One process's figures, in shared memory. */
struct worker_stat {
	_Atomic int done;              /* set just before it exits */
	int failed;
	char why[320];
	uint64_t records, bytes, eintr, partial, reads;
	uint64_t gaps, gap_bytes;      /* overwrite stream reader */
};

struct soak_shared {
	_Atomic uint64_t progress;     /* bytes moved by anyone: the stall check */
	struct worker_stat writer[MAX_WORKERS], reader[MAX_WORKERS];
};

enum phase_kind { PHASE_MESSAGE, PHASE_STREAM, PHASE_OVERWRITE_MESSAGE, PHASE_OVERWRITE_STREAM };

struct phase {
	const char *name;
	enum phase_kind kind;
	unsigned writers, readers;
	uint32_t capacity, max_record;
	uint64_t seed;
	uint32_t records[MAX_WORKERS]; /* each writer's plan */
	uint64_t bytes[MAX_WORKERS];
	uint32_t seen_stride;
	_Atomic uint8_t *seen;         /* [writer][seq]: times read */
	int wfd[MAX_WORKERS], rfd[MAX_WORKERS];
};

struct job {
	struct phase *ph;
	unsigned index;
	bool writer;
	pid_t pid;
};

static struct settings cfg;
static struct soak_shared *sh;

/* ---- records ------------------------------------------------------------- */

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static uint32_t record_size(const struct phase *ph, unsigned writer, uint32_t seq)
{
	uint64_t r = mix(ph->seed ^ ((uint64_t)writer << 40) ^ seq);
	uint32_t small = ph->max_record < 1024 ? ph->max_record : 1024;
	uint32_t max = (r & 1) ? small : ph->max_record;

	return (uint32_t)sizeof(struct record) + (uint32_t)((r >> 1) % (max - sizeof(struct record) + 1));
}

static uint64_t record_seed(const struct phase *ph, unsigned writer, uint32_t seq)
{
	return mix(ph->seed + 1) ^ ((uint64_t)writer << 32 | seq);
}

static uint64_t record_checksum(const unsigned char *rec, uint32_t length)
{
	struct record h;

	memcpy(&h, rec, sizeof(h));
	h.checksum = 0;
	return rd_fnv1a(rd_fnv1a(RD_FNV_INIT, &h, sizeof(h)), rec + sizeof(h), length - sizeof(h));
}

static void record_fill(const struct phase *ph, unsigned writer, uint32_t seq, unsigned char *out, uint32_t length)
{
	struct record h = { .magic = RECORD_MAGIC, .writer = (uint16_t)writer, .seq = seq, .length = length };

	memcpy(out, &h, sizeof(h));
	rd_pattern(out + sizeof(h), length - sizeof(h), record_seed(ph, writer, seq), 0);
	h.checksum = record_checksum(out, length);
	memcpy(out, &h, sizeof(h));
}

/* Is the header at rec plausible for this phase?  NULL, or what is wrong. */
static const char *header_problem(const struct phase *ph, const struct record *h)
{
	if (h->magic != RECORD_MAGIC)
		return "bad magic";
	if (h->writer >= ph->writers || h->seq >= ph->records[h->writer])
		return "writer or sequence out of range";
	if (h->length < sizeof(*h) || h->length > ph->max_record)
		return "length out of range";
	if (h->length != record_size(ph, h->writer, h->seq))
		return "length differs from the writer's plan";
	return NULL;
}

/* A whole record of n bytes: NULL, or what is wrong with it. */
static const char *record_problem(const struct phase *ph, const unsigned char *rec, size_t n, struct record *h)
{
	const char *why;

	if (n < sizeof(*h))
		return "shorter than a header";
	memcpy(h, rec, sizeof(*h));
	why = header_problem(ph, h);
	if (why)
		return why;
	if (h->length != n)
		return "length differs from the bytes read (torn or merged)";
	if (record_checksum(rec, h->length) != h->checksum)
		return "checksum mismatch (corrupted)";
	return NULL;
}

static void plan(struct phase *ph, uint64_t budget_per_writer)
{
	ph->seen_stride = 0;
	for (unsigned w = 0; w < ph->writers; w++) {
		uint64_t bytes = 0;
		uint32_t seq = 0;

		while (bytes < budget_per_writer)
			bytes += record_size(ph, w, seq++);
		ph->records[w] = seq;
		ph->bytes[w] = bytes;
		if (seq > ph->seen_stride)
			ph->seen_stride = seq;
	}
	ph->seen = rd_shared((size_t)ph->writers * ph->seen_stride);
}

__attribute__((format(printf, 2, 3))) static int job_fail(struct worker_stat *st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->why, sizeof(st->why), fmt, ap);
	va_end(ap);
	st->failed = 1;
	return 1;
}

static int job_fd(const struct job *j)
{
	return j->writer ? j->ph->wfd[j->index] : j->ph->rfd[j->index];
}

/* ---- writers ------------------------------------------------------------- */

/* Write all of buf, the way ringdev(4) says: EINTR moved nothing (again),
 * a short count is resumed, a short count of what fits the capacity is a
 * failure (all-or-nothing). */
static int write_record(const struct job *j, struct worker_stat *st, const unsigned char *buf, uint32_t length,
			bool message)
{
	uint32_t done = 0;

	while (done < length) {
		size_t want = length - done;
		ssize_t n = write(job_fd(j), buf + done, want);

		if (n < 0) {
			if (errno != EINTR)
				return job_fail(st, "write of %zu bytes: %s", want, rd_errname(errno));
			st->eintr++;
			continue;
		}
		if (n == 0 || (size_t)n > want)
			return job_fail(st, "write of %zu bytes returned %zd", want, n);
		if ((size_t)n < want) {
			st->partial++;
			if (message || want <= j->ph->capacity)
				return job_fail(st, "write of %zu bytes (all-or-nothing: %s) moved %zd", want,
						message ? "a message" : "within the capacity", n);
		}
		done += (uint32_t)n;
		atomic_fetch_add(&sh->progress, (uint64_t)n);
	}
	return 0;
}

static int record_writer_main(void *arg)
{
	const struct job *j = arg;
	struct worker_stat *st = &sh->writer[j->index];
	static unsigned char buf[READ_MAX];
	bool message = j->ph->kind != PHASE_STREAM;

	for (uint32_t seq = 0; seq < j->ph->records[j->index] && !st->failed; seq++) {
		uint32_t length = record_size(j->ph, j->index, seq);

		record_fill(j->ph, j->index, seq, buf, length);
		if (write_record(j, st, buf, length, message) == 0) {
			st->records++;
			st->bytes += length;
		}
	}
	close(job_fd(j));
	atomic_store(&st->done, 1);
	return st->failed;
}

/* The overwrite stream: byte o is byte o % 8 of the little-endian word
 * POSITION_TAG << 48 | o / 8, so any 15 bytes in a row tell their offset. */
static void position_fill(unsigned char *out, size_t n, uint64_t offset)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t o = offset + i, word = POSITION_TAG << 48 | o / 8;

		out[i] = (unsigned char)(word >> (8 * (o % 8)));
	}
}

static bool position_matches(const unsigned char *chunk, size_t n, uint64_t offset)
{
	unsigned char expect[256];

	for (size_t done = 0; done < n;) {
		size_t k = n - done < sizeof(expect) ? n - done : sizeof(expect);

		position_fill(expect, k, offset + done);
		if (memcmp(expect, chunk + done, k) != 0)
			return false;
		done += k;
	}
	return true;
}

/* Where in the stream chunk comes from: true and *offset, else false. */
static bool position_find(const unsigned char *chunk, size_t n, uint64_t *offset)
{
	for (size_t s = 0; s < 8 && s + 8 <= n; s++) {
		uint64_t v = 0;

		for (int b = 7; b >= 0; b--)
			v = v << 8 | chunk[s + (size_t)b];
		if (v >> 48 != POSITION_TAG)
			continue;
		uint64_t word = v & ((1ull << 48) - 1);
		if (word * 8 < s)
			continue;
		/* chunk + s starts a word only if s is the distance to the next boundary. */
		uint64_t start = word * 8 - s;
		if (position_matches(chunk, n, start)) {
			*offset = start;
			return true;
		}
	}
	return false;
}

static int position_writer_main(void *arg)
{
	const struct job *j = arg;
	struct worker_stat *st = &sh->writer[j->index];
	static unsigned char buf[STREAM_RECORD_MAX];
	struct stress_rng rng;
	uint64_t offset = 0, total = j->ph->bytes[0];

	stress_rng_init(&rng, j->ph->seed, 77);
	while (offset < total && !st->failed) {
		uint32_t size = (uint32_t)stress_rng_range(&rng, 1, sizeof(buf));

		if (size > total - offset)
			size = (uint32_t)(total - offset);
		position_fill(buf, size, offset);
		if (write_record(j, st, buf, size, false) == 0) {
			offset += size;
			st->bytes += size;
			st->records++;
		}
	}
	close(job_fd(j));
	atomic_store(&st->done, 1);
	return st->failed;
}

/* ---- readers ------------------------------------------------------------- */

/* Overwrite phases: readers start once the writers have overfilled the
 * ring, so there are drops whatever the speeds (the writers' plans are far
 * larger than two rings). */
static void wait_for_overflow(const struct phase *ph)
{
	while (atomic_load(&sh->progress) < 2ull * ph->capacity)
		stress_sleep_us(500);
}

/* One read(2), again after EINTR (nothing was taken). */
static ssize_t read_some(const struct job *j, struct worker_stat *st, void *buf, size_t size)
{
	for (;;) {
		ssize_t n = read(job_fd(j), buf, size);

		if (n >= 0 || errno != EINTR) {
			if (n > 0) {
				st->reads++;
				atomic_fetch_add(&sh->progress, (uint64_t)n);
			}
			return n;
		}
		st->eintr++;
	}
}

static int message_reader_main(void *arg)
{
	const struct job *j = arg;
	const struct phase *ph = j->ph;
	struct worker_stat *st = &sh->reader[j->index];
	static unsigned char buf[READ_MAX];
	int64_t last[MAX_WORKERS];
	bool slow = ph->kind == PHASE_OVERWRITE_MESSAGE;

	for (unsigned w = 0; w < MAX_WORKERS; w++)
		last[w] = -1;
	if (slow)
		wait_for_overflow(ph);
	for (;;) {
		ssize_t n = read_some(j, st, buf, sizeof(buf));
		struct record h;
		const char *why;

		if (n == 0)
			break;
		if (n < 0) {
			job_fail(st, "read: %s", rd_errname(errno));
			break;
		}
		why = record_problem(ph, buf, (size_t)n, &h);
		if (why) {
			memcpy(&h, buf, (size_t)n < sizeof(h) ? (size_t)n : sizeof(h));
			job_fail(st, "message %" PRIu64 " of %zd bytes (writer %u seq %u length %u): %s", st->records, n,
				 h.writer, h.seq, h.length, why);
			break;
		}
		if ((int64_t)h.seq <= last[h.writer]) {
			job_fail(st, "writer %u: seq %u after seq %" PRId64 ": out of order", h.writer, h.seq, last[h.writer]);
			break;
		}
		last[h.writer] = h.seq;
		atomic_fetch_add(&ph->seen[(size_t)h.writer * ph->seen_stride + h.seq], 1);
		st->records++;
		st->bytes += (uint64_t)n;
		/* Overwrite: pause now and then so the writers outrun the readers. */
		if (slow && st->records % 4 == 0)
			stress_sleep_us(300);
	}
	close(job_fd(j));
	atomic_store(&st->done, 1);
	return st->failed;
}

/* One writer's stream, framed by position: records back to back, in order. */
static int stream_reader_main(void *arg)
{
	const struct job *j = arg;
	const struct phase *ph = j->ph;
	struct worker_stat *st = &sh->reader[j->index];
	static unsigned char acc[2 * STREAM_RECORD_MAX + READ_MAX];
	struct stress_rng rng;
	size_t have = 0;
	uint32_t next = 0;
	uint64_t offset = 0;           /* stream offset of acc[0] */

	stress_rng_init(&rng, ph->seed, 100 + j->index);
	for (;;) {
		size_t want = (size_t)stress_rng_range(&rng, 1, READ_MAX);
		ssize_t n;

		if (want > sizeof(acc) - have)
			want = sizeof(acc) - have;
		n = read_some(j, st, acc + have, want);
		if (n == 0)
			break;
		if (n < 0) {
			job_fail(st, "read at stream offset %" PRIu64 ": %s", offset + have, rd_errname(errno));
			break;
		}
		st->bytes += (uint64_t)n;
		have += (size_t)n;
		/* Take every whole record at the front. */
		while (have >= sizeof(struct record) && !st->failed) {
			struct record h;
			const char *why;

			memcpy(&h, acc, sizeof(h));
			why = header_problem(ph, &h);
			if (!why && (h.writer != j->index || h.seq != next))
				why = "not the next record of this pipe's writer";
			if (why) {
				job_fail(st, "stream offset %" PRIu64 ": header (writer %u seq %u length %u), expected writer %u seq %u: %s",
					 offset, h.writer, h.seq, h.length, j->index, next, why);
				break;
			}
			if (have < h.length)
				break;
			if (record_checksum(acc, h.length) != h.checksum) {
				job_fail(st, "stream offset %" PRIu64 ": record seq %u: checksum mismatch", offset, h.seq);
				break;
			}
			memmove(acc, acc + h.length, have - h.length);
			have -= h.length;
			offset += h.length;
			next++;
			st->records++;
		}
		if (st->failed)
			break;
	}
	if (!st->failed && (have != 0 || next != ph->records[j->index]))
		job_fail(st, "end of file after %u of %u records with %zu bytes of a record left", next,
			 ph->records[j->index], have);
	close(job_fd(j));
	atomic_store(&st->done, 1);
	return st->failed;
}

/* Overwrite stream: contiguous pieces in rising order; gaps are drops. */
static int position_reader_main(void *arg)
{
	const struct job *j = arg;
	struct worker_stat *st = &sh->reader[j->index];
	static unsigned char buf[READ_MAX];
	struct stress_rng rng;
	uint64_t pos = 0;

	stress_rng_init(&rng, j->ph->seed, 200);
	wait_for_overflow(j->ph);
	for (;;) {
		/* At least 16: a piece after a gap is the whole (full) ring or
		 * this buffer, and 15 bytes always tell their offset. */
		size_t want = (size_t)stress_rng_range(&rng, 16, READ_MAX);
		uint64_t at;
		ssize_t n = read_some(j, st, buf, want);

		if (n == 0)
			break;
		if (n < 0) {
			job_fail(st, "read at stream offset %" PRIu64 ": %s", pos, rd_errname(errno));
			break;
		}
		if (!position_matches(buf, (size_t)n, pos)) {
			if (!position_find(buf, (size_t)n, &at)) {
				job_fail(st, "a read of %zd bytes after offset %" PRIu64 " is no piece of the written stream", n, pos);
				break;
			}
			if (at < pos) {
				job_fail(st, "a read of %zd bytes from offset %" PRIu64 " goes back before %" PRIu64 " (duplicated)", n,
					 at, pos);
				break;
			}
			st->gaps++;
			st->gap_bytes += at - pos;
			pos = at;
		}
		pos += (uint64_t)n;
		st->bytes += (uint64_t)n;
		st->records++;
		if (st->records % 4 == 0)
			stress_sleep_us(300);
	}
	if (!st->failed)
		st->gap_bytes += j->ph->bytes[0] - pos; /* dropped after the last read: none, at end-of-file */
	close(job_fd(j));
	atomic_store(&st->done, 1);
	return st->failed;
}

/* ---- running a phase ----------------------------------------------------- */

struct phase_result {
	uint64_t bytes_written, bytes_read, records_written, records_read, eintr, partial, signals;
	uint64_t dropped_bytes, dropped_messages, looks;
	double seconds;
};

/* Create the pipes, open every handle, start the helpers (each keeps only
 * its own handle), close the test's copies but one read-only observer per
 * pipe, send SIGUSR1 to random helpers until all are done, join them. */
static void run_phase(const struct rd_daemon *d, struct phase *ph, int *observers, unsigned npipes,
		      struct phase_result *res)
{
	static struct job jobs[2 * MAX_WORKERS];
	unsigned njobs = 0;
	struct stress_rng rng;
	uint64_t start = stress_now_ns(), last_progress = UINT64_MAX, last_change = start, next_look = 0;
	bool per_writer_pipe = ph->kind == PHASE_STREAM;

	memset(sh->writer, 0, sizeof(sh->writer));
	memset(sh->reader, 0, sizeof(sh->reader));
	atomic_store(&sh->progress, 0);
	for (unsigned p = 0; p < npipes; p++) {
		char name[32];
		uint32_t kind = ph->kind == PHASE_STREAM || ph->kind == PHASE_OVERWRITE_STREAM ? RINGDEV_KIND_STREAM
											   : RINGDEV_KIND_MESSAGE;
		uint32_t policy = ph->kind >= PHASE_OVERWRITE_MESSAGE ? RINGDEV_POLICY_OVERWRITE : RINGDEV_POLICY_BLOCK;

		snprintf(name, sizeof(name), "soak-%s-%u", ph->name, p);
		int first = rd_create(d, name, O_WRONLY, kind, policy, ph->capacity);
		for (unsigned w = 0; w < ph->writers; w++)
			if (per_writer_pipe ? w == p : p == 0)
				ph->wfd[w] = w == (per_writer_pipe ? p : 0) ? first : rd_open_ok(d, name, O_WRONLY);
		for (unsigned r = 0; r < ph->readers; r++)
			if (per_writer_pipe ? r == p : p == 0)
				ph->rfd[r] = rd_open_ok(d, name, O_RDONLY);
		observers[p] = rd_open_ok(d, name, O_RDONLY | O_NONBLOCK);
	}
	for (unsigned r = 0; r < ph->readers; r++) {
		jobs[njobs] = (struct job){ .ph = ph, .index = r, .writer = false };
		int (*fn)(void *) = ph->kind == PHASE_STREAM ? stream_reader_main
				    : ph->kind == PHASE_OVERWRITE_STREAM ? position_reader_main
									   : message_reader_main;
		jobs[njobs].pid = rd_spawn(fn, &jobs[njobs], ph->rfd[r]);
		njobs++;
	}
	for (unsigned w = 0; w < ph->writers; w++) {
		jobs[njobs] = (struct job){ .ph = ph, .index = w, .writer = true };
		jobs[njobs].pid = rd_spawn(ph->kind == PHASE_OVERWRITE_STREAM ? position_writer_main : record_writer_main,
					   &jobs[njobs], ph->wfd[w]);
		njobs++;
	}
	for (unsigned w = 0; w < ph->writers; w++)
		close(ph->wfd[w]);
	for (unsigned r = 0; r < ph->readers; r++)
		close(ph->rfd[r]);

	/* Interrupt at random until everyone is done; watch for a stall. */
	stress_rng_init(&rng, ph->seed, 300);
	for (;;) {
		unsigned live = 0, writing = 0, pick;
		uint64_t now = stress_now_ns(), progress = atomic_load(&sh->progress);

		for (unsigned i = 0; i < njobs; i++) {
			struct worker_stat *st = jobs[i].writer ? &sh->writer[jobs[i].index] : &sh->reader[jobs[i].index];
			char how[64];

			live += atomic_load(&st->done) ? 0u : 1u;
			writing += jobs[i].writer && !atomic_load(&st->done) ? 1u : 0u;
			if (!atomic_load(&st->done) && stress_child_ended(jobs[i].pid, how, sizeof(how)))
				job_fail(st, "ended (%s) before it was done", how);
			if (st->failed) {
				for (unsigned k = 0; k < njobs; k++)
					kill(jobs[k].pid, SIGKILL);
				cr_assert_fail("%s phase: %s %u: %s", ph->name, jobs[i].writer ? "writer" : "reader",
					       jobs[i].index, st->why);
			}
		}
		if (live == 0)
			break;
		/* A waiter the daemon should have served (stress_waiter_stuck). */
		if (now >= next_look) {
			for (unsigned p = 0; p < npipes; p++) {
				struct ringdev_pipe_info info = rd_pipe_info(observers[p]);
				char why[700];

				if (stress_waiter_stuck(&info, why, sizeof(why))) {
					for (unsigned k = 0; k < njobs; k++)
						kill(jobs[k].pid, SIGKILL);
					cr_assert_fail("%s phase: %s", ph->name, why);
				}
			}
			res->looks++;
			next_look = now + 50000000u;
		}
		if (progress != last_progress) {
			last_progress = progress;
			last_change = now;
		} else if (now - last_change > (uint64_t)cfg.stall_ms * 1000000u) {
			char desc[400];

			for (unsigned p = 0; p < npipes; p++) {
				struct ringdev_pipe_info info = rd_pipe_info(observers[p]);
				stress_describe(&info, desc, sizeof(desc));
				fprintf(stderr, "soak %s: %s\n", ph->name, desc);
			}
			for (unsigned k = 0; k < njobs; k++)
				kill(jobs[k].pid, SIGKILL);
			cr_assert_fail("%s phase: no byte moved for %u ms with %u processes left (pipes above)", ph->name,
				       cfg.stall_ms, live);
		}
		/* Once the writers are done, no more signals: the readers' end of
		 * file must come from the daemon's wake-up, not from a read that an
		 * interrupt made them start again. */
		pick = (unsigned)(stress_rng_next(&rng) % njobs);
		for (unsigned i = 0; i < njobs && writing > 0; i++) {
			const struct job *jb = &jobs[(pick + i) % njobs];
			struct worker_stat *st = jb->writer ? &sh->writer[jb->index] : &sh->reader[jb->index];

			/* Not reaped before the join: the pid cannot be reused. */
			if (!atomic_load(&st->done)) {
				kill(jb->pid, SIGUSR1);
				res->signals++;
				break;
			}
		}
		stress_sleep_us(stress_rng_range(&rng, 100, 1500));
	}
	for (unsigned i = 0; i < njobs; i++) {
		const struct worker_stat *st = jobs[i].writer ? &sh->writer[jobs[i].index] : &sh->reader[jobs[i].index];

		cr_assert_eq(rd_join_within(jobs[i].pid, 10000), 0, "%s phase: %s %u: %s", ph->name,
			     jobs[i].writer ? "writer" : "reader", jobs[i].index, st->why);
	}
	res->seconds = (double)(stress_now_ns() - start) / 1e9;
	for (unsigned w = 0; w < ph->writers; w++) {
		cr_assert_eq(sh->writer[w].bytes, ph->bytes[w], "%s phase: writer %u wrote %" PRIu64 " of %" PRIu64 " bytes",
			     ph->name, w, sh->writer[w].bytes, ph->bytes[w]);
		res->bytes_written += sh->writer[w].bytes;
		res->records_written += sh->writer[w].records;
		res->eintr += sh->writer[w].eintr;
		res->partial += sh->writer[w].partial;
	}
	for (unsigned r = 0; r < ph->readers; r++) {
		res->bytes_read += sh->reader[r].bytes;
		res->records_read += sh->reader[r].records;
		res->eintr += sh->reader[r].eintr;
	}
	for (unsigned p = 0; p < npipes; p++) {
		struct ringdev_pipe_info info = rd_pipe_info(observers[p]);
		char desc[400];

		stress_describe(&info, desc, sizeof(desc));
		cr_assert(info.queued_bytes == 0 && info.writers == 0 && info.parked_reads == 0 && info.parked_writes == 0 &&
			  (info.flags & RINGDEV_PIPE_EOF),
			  "%s phase: after the readers' end of file the pipe is empty at end-of-file: %s", ph->name, desc);
		res->dropped_bytes += info.dropped_bytes;
		res->dropped_messages += info.dropped_messages;
	}
}

static void phase_init(struct phase *ph, const char *name, enum phase_kind kind, unsigned writers, unsigned readers,
		       uint32_t capacity, uint32_t max_record, uint64_t budget)
{
	memset(ph, 0, sizeof(*ph));
	ph->name = name;
	ph->kind = kind;
	ph->writers = writers;
	ph->readers = readers;
	ph->capacity = capacity;
	ph->max_record = max_record;
	ph->seed = mix(cfg.seed ^ (uint64_t)kind);
	plan(ph, budget / writers);
}

/* Every (writer, seq) read exactly once (block) or at most once (overwrite). */
static uint64_t check_seen(const struct phase *ph, bool exactly_once)
{
	uint64_t seen = 0;

	for (unsigned w = 0; w < ph->writers; w++)
		for (uint32_t s = 0; s < ph->records[w]; s++) {
			uint8_t times = atomic_load(&ph->seen[(size_t)w * ph->seen_stride + s]);

			if (exactly_once)
				cr_assert_eq(times, 1, "%s phase: record (writer %u, seq %u) read %u times, expected once", ph->name,
					     w, s, times);
			else
				cr_assert_leq(times, 1, "%s phase: record (writer %u, seq %u) read %u times, expected at most once",
					      ph->name, w, s, times);
			seen += times;
		}
	return seen;
}

static void settings_init(void)
{
	bool long_mode = stress_long_mode();

	cfg.writers = (unsigned)stress_env_u64("RINGDEV_STRESS_WRITERS", long_mode ? 16 : 8, 1, MAX_WORKERS);
	cfg.readers = (unsigned)stress_env_u64("RINGDEV_STRESS_READERS", long_mode ? 16 : 8, 1, MAX_WORKERS);
	cfg.bytes = stress_env_u64("RINGDEV_STRESS_BYTES", long_mode ? 16ull << 30 : 1ull << 30, 1u << 20, 1ull << 40);
	cfg.stall_ms = (unsigned)stress_env_u64("RINGDEV_STRESS_STALL_MS", 20000, 1000, 3600000);
	cfg.seed = stress_env_u64("RINGDEV_STRESS_SEED", (uint64_t)time(NULL), 0, UINT64_MAX);
}

Test(soak, every_byte_and_message_exactly_once)
{
	static struct phase msg, str, owm, ows;
	struct phase_result rm = { 0 }, rs = { 0 }, rom = { 0 }, ros = { 0 };
	int obs[MAX_WORKERS];
	struct ringdev_pipe_info info;
	struct ringdev_stats st;
	struct rd_daemon *d;
	uint64_t started = stress_now_ns(), seen;

	settings_init();
	/* Before any helper exists: each inherits the handlers, so a signal
	 * can never find one with the default action (death). */
	stress_catch_interrupts();
	d = rd_start(NULL);
	sh = rd_shared(sizeof(*sh));
	fprintf(stderr, "stress-soak: seed %" PRIu64 ", %u writers x %u readers, %" PRIu64 " MiB\n", cfg.seed, cfg.writers,
		cfg.readers, cfg.bytes >> 20);

	/* Message pipe, block policy: W x R on one pipe. */
	phase_init(&msg, "message", PHASE_MESSAGE, cfg.writers, cfg.readers, MESSAGE_CAPACITY, READ_MAX, cfg.bytes / 8 * 3);
	run_phase(d, &msg, obs, 1, &rm);
	cr_assert_eq(rm.records_read, rm.records_written, "message phase: %" PRIu64 " records read, %" PRIu64 " written",
		     rm.records_read, rm.records_written);
	check_seen(&msg, true);
	info = rd_pipe_info(obs[0]);
	cr_assert(info.bytes_in == rm.bytes_written && info.bytes_out == rm.bytes_read && rm.bytes_read == rm.bytes_written &&
		  info.dropped_bytes == 0 && info.writes == rm.records_written && info.reads == rm.records_read,
		  "message phase: pipe in %" PRIu64 " out %" PRIu64 " writes %" PRIu64 " reads %" PRIu64 " dropped %" PRIu64
		  "; written %" PRIu64 " read %" PRIu64 " bytes",
		  info.bytes_in, info.bytes_out, info.writes, info.reads, info.dropped_bytes, rm.bytes_written, rm.bytes_read);
	close(obs[0]);

	/* Stream pipes, block policy: one writer and one reader each. */
	phase_init(&str, "stream", PHASE_STREAM, cfg.writers, cfg.writers, STREAM_CAPACITY, STREAM_RECORD_MAX,
		   cfg.bytes / 8 * 3);
	run_phase(d, &str, obs, cfg.writers, &rs);
	cr_assert_eq(rs.records_read, rs.records_written, "stream phase: %" PRIu64 " records framed, %" PRIu64 " written",
		     rs.records_read, rs.records_written);
	for (unsigned p = 0; p < cfg.writers; p++) {
		info = rd_pipe_info(obs[p]);
		cr_assert(info.bytes_in == str.bytes[p] && info.bytes_out == str.bytes[p] && info.dropped_bytes == 0,
			  "stream pipe %u: in %" PRIu64 " out %" PRIu64 " dropped %" PRIu64 ", writer's plan %" PRIu64, p,
			  info.bytes_in, info.bytes_out, info.dropped_bytes, str.bytes[p]);
		close(obs[p]);
	}

	/* Overwrite, messages: what is missing is exactly what was dropped. */
	phase_init(&owm, "overwrite-message", PHASE_OVERWRITE_MESSAGE, cfg.writers, cfg.readers, OVERWRITE_CAPACITY,
		   OVERWRITE_RECORD_MAX, cfg.bytes / 8 * 3 / 2);
	run_phase(d, &owm, obs, 1, &rom);
	seen = check_seen(&owm, false);
	info = rd_pipe_info(obs[0]);
	close(obs[0]);
	cr_assert_eq(seen, rom.records_read, "overwrite-message phase: the table saw %" PRIu64 ", readers %" PRIu64, seen,
		     rom.records_read);
	cr_assert_gt(info.dropped_messages, 0, "overwrite-message phase: the writers outran the readers (drops)");
	cr_assert(info.bytes_in == rom.bytes_written && info.bytes_out == rom.bytes_read &&
		  rom.bytes_written - rom.bytes_read == info.dropped_bytes &&
		  rom.records_written - rom.records_read == info.dropped_messages,
		  "overwrite-message phase: wrote %" PRIu64 " bytes / %" PRIu64 " messages, read %" PRIu64 " / %" PRIu64
		  "; the daemon: in %" PRIu64 " out %" PRIu64 ", dropped %" PRIu64 " bytes / %" PRIu64 " messages",
		  rom.bytes_written, rom.records_written, rom.bytes_read, rom.records_read, info.bytes_in, info.bytes_out,
		  info.dropped_bytes, info.dropped_messages);

	/* Overwrite, stream: the gaps between the pieces read are the drops. */
	phase_init(&ows, "overwrite-stream", PHASE_OVERWRITE_STREAM, 1, 1, STREAM_CAPACITY, STREAM_RECORD_MAX,
		   cfg.bytes / 8 / 2);
	ows.bytes[0] = cfg.bytes / 8 / 2;
	run_phase(d, &ows, obs, 1, &ros);
	info = rd_pipe_info(obs[0]);
	close(obs[0]);
	cr_assert_gt(info.dropped_bytes, 0, "overwrite-stream phase: the writer outran the reader (drops)");
	cr_assert(info.bytes_in == ros.bytes_written && info.bytes_out == ros.bytes_read &&
		  ros.bytes_written - ros.bytes_read == info.dropped_bytes && sh->reader[0].gap_bytes == info.dropped_bytes,
		  "overwrite-stream phase: wrote %" PRIu64 " read %" PRIu64 " bytes, gaps seen %" PRIu64 " (%" PRIu64
		  " gaps); the daemon: in %" PRIu64 " out %" PRIu64 " dropped %" PRIu64,
		  ros.bytes_written, ros.bytes_read, sh->reader[0].gap_bytes, sh->reader[0].gaps, info.bytes_in,
		  info.bytes_out, info.dropped_bytes);

	rd_wait_opens(d, 0);
	st = rd_stats(d);
	uint64_t eintr = rm.eintr + rs.eintr + rom.eintr + ros.eintr;
	cr_assert_gt(eintr, 0, "signals interrupted calls (EINTR seen)");
	cr_assert_gt(st.interrupts, 0, "the daemon ended waiting requests on signals");
	rd_end(d);

	double secs = (double)(stress_now_ns() - started) / 1e9;
	uint64_t moved = rm.bytes_written + rs.bytes_written + rom.bytes_written + ros.bytes_written;
	printf("stress-soak: writers %u, readers %u, records %" PRIu64 " (message %" PRIu64 ", stream %" PRIu64
	       ", overwrite %" PRIu64 "), bytes written %" PRIu64 " read %" PRIu64 ", dropped %" PRIu64 " bytes / %" PRIu64
	       " messages, EINTR %" PRIu64 ", resumed partial writes %" PRIu64 ", signals sent %" PRIu64
	       ", daemon interrupts %" PRIu64 ", waiter looks %" PRIu64 ", %.1f s (%.1f MiB/s), seed %" PRIu64 "\n",
	       cfg.writers, cfg.readers, rm.records_written + rs.records_written + rom.records_written,
	       rm.records_written, rs.records_written, rom.records_written, moved,
	       rm.bytes_read + rs.bytes_read + rom.bytes_read + ros.bytes_read, rom.dropped_bytes + ros.dropped_bytes,
	       rom.dropped_messages, eintr, rs.partial, rm.signals + rs.signals + rom.signals + ros.signals, st.interrupts,
	       rm.looks + rs.looks + rom.looks + ros.looks, secs, (double)moved / (1 << 20) / secs, cfg.seed);
	fflush(stdout);
}
