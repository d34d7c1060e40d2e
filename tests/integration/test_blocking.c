/* SPDX-License-Identifier: MIT */
/*
 * test_blocking.c - parked reads and writes and how they end early: a signal
 * (SIGUSR1 caught without SA_RESTART) ends them with EINTR and loses
 * nothing; SIGKILL of a parked process kills it promptly and the daemon's
 * parked count returns to 0; O_NONBLOCK set later with fcntl is honoured;
 * closing another handle of the pipe while a write is parked does not hang.
 *
 * Helpers park in the daemon and the test waits for the daemon's parked
 * counters before it signals them, so every signal hits a parked request.
 */
#include "harness.h"

#include <stdatomic.h>

RD_SUITE(blocking, 60);

#define CAP 4096u

struct interrupted_read {
	int fd;
	atomic_int phase;   /* 1 once the first read returned */
	ssize_t first_ret;
	int first_err;
	ssize_t second_ret;
	int second_err;
	char data[64];
};

static void on_sigusr1(int sig)
{
	(void)sig;
}

static void catch_sigusr1(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_sigusr1;
	sa.sa_flags = 0; /* no SA_RESTART */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
}

static int interrupted_read_main(void *arg)
{
	struct interrupted_read *s = arg;

	catch_sigusr1();
	s->first_ret = read(s->fd, s->data, sizeof(s->data));
	s->first_err = s->first_ret < 0 ? errno : 0;
	atomic_store(&s->phase, 1);
	s->second_ret = read(s->fd, s->data, sizeof(s->data));
	s->second_err = s->second_ret < 0 ? errno : 0;
	return 0;
}

/* Wait for a flag a helper sets in shared memory (hang limit only). */
static void wait_flag(atomic_int *flag, int value, const char *what)
{
	for (int i = 0; i < RD_PARK_TIMEOUT_MS && atomic_load(flag) != value; i++)
		usleep(1000);
	cr_assert_eq(atomic_load(flag), value, "%s", what);
}

Test(blocking, signal_ends_parked_read_with_eintr_and_loses_nothing)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "I", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	int w = rd_open_ok(d, "I", O_WRONLY);
	struct interrupted_read *s = rd_shared(sizeof(*s));
	struct ringdev_stats before = rd_stats(d), after;
	pid_t pid;

	s->fd = r;
	pid = rd_spawn(interrupted_read_main, s, r);
	rd_wait_parked(d, 1, 0);
	kill(pid, SIGUSR1);
	wait_flag(&s->phase, 1, "the interrupted read returned");
	cr_assert_eq(s->first_ret, -1, "interrupted read: expected -1 EINTR, got %zd", s->first_ret);
	cr_assert_eq(s->first_err, EINTR, "interrupted read: expected EINTR, got %s",
		     rd_errname(s->first_err));

	/* The helper reads again; what is written now goes to that read. */
	rd_wait_parked(d, 1, 0);
	rd_write_ok(w, "after", 5);
	cr_assert_eq(rd_join(pid), 0, "reader helper");
	cr_assert_eq(s->second_ret, 5, "read after the interrupt: expected 5 bytes, got %zd (%s)",
		     s->second_ret, rd_errname(s->second_err));
	cr_assert_eq(memcmp(s->data, "after", 5), 0, "the bytes written after the interrupt");
	after = rd_stats(d);
	cr_assert_eq(after.interrupts, before.interrupts + 1, "stats.interrupts counts it: %llu -> %llu",
		     (unsigned long long)before.interrupts, (unsigned long long)after.interrupts);
	cr_assert_eq(rd_nread(w).queued_bytes, 0, "nothing left over");
	close(w);
	close(r);
	rd_end(d);
}

Test(blocking, signal_ends_parked_write_with_eintr_or_its_partial_count)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "W", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int rn = rd_open_ok(d, "W", O_RDONLY | O_NONBLOCK);
	static unsigned char fill[CAP], dst[2 * CAP];
	struct rd_io *io;

	rd_pattern(fill, sizeof(fill), 11, 0);
	rd_write_ok(w, fill, CAP);

	/* Nothing written yet: EINTR, nothing queued. */
	io = rd_io_new(w, RD_IO_WRITE, 100);
	io->catch_sigusr1 = true;
	memset(io->buf, 'X', 100);
	rd_io_start(io);
	rd_wait_parked(d, 0, 1);
	kill(io->pid, SIGUSR1);
	rd_io_join(io);
	cr_assert_eq(io->ret, -1, "interrupted write: expected -1, got %zd", io->ret);
	cr_assert_eq(io->err, EINTR, "interrupted write: expected EINTR, got %s", rd_errname(io->err));
	cr_assert_eq(rd_pipe_info(rn).queued_bytes, CAP, "the interrupted write added nothing");
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, fill, CAP), 0, "the ring's data is intact");

	/* A stream write larger than capacity wrote 4096 before parking: the
	 * signal makes it return that count. */
	io = rd_io_new(w, RD_IO_WRITE, 3 * CAP);
	io->catch_sigusr1 = true;
	rd_pattern(io->buf, 3 * CAP, 12, 0);
	rd_io_start(io);
	rd_wait_parked(d, 0, 1);
	cr_assert_eq(rd_pipe_info(rn).queued_bytes, CAP, "the part that fits is queued");
	kill(io->pid, SIGUSR1);
	rd_io_join(io);
	cr_assert_eq(io->ret, (ssize_t)CAP, "interrupted partial write: expected %u, got %zd (%s)", CAP,
		     io->ret, rd_errname(io->err));
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	cr_assert_eq(memcmp(dst, io->buf, CAP), 0, "the bytes it reported written");
	close(rn);
	close(w);
	rd_end(d);
}

Test(blocking, sigkill_of_parked_reader_and_writer)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "K", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 0);
	int w = rd_create(d, "KW", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	static unsigned char fill[CAP];
	struct rd_io *reader = rd_io_new(r, RD_IO_READ, 100);
	struct rd_io *writer = rd_io_new(w, RD_IO_WRITE, 100);
	int status;

	rd_io_start(reader);
	rd_wait_parked(d, 1, 0);
	kill(reader->pid, SIGKILL);
	cr_assert(rd_wait_child(reader->pid, RD_PARK_TIMEOUT_MS, &status),
		  "a SIGKILLed parked reader must die promptly (the daemon honours the interrupt)");
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed by SIGKILL");
	rd_wait_parked(d, 0, 0);

	rd_write_ok(w, fill, CAP);
	rd_io_start(writer);
	rd_wait_parked(d, 0, 1);
	kill(writer->pid, SIGKILL);
	cr_assert(rd_wait_child(writer->pid, RD_PARK_TIMEOUT_MS, &status),
		  "a SIGKILLed parked writer must die promptly");
	cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "killed by SIGKILL");
	rd_wait_parked(d, 0, 0);
	cr_assert_eq(rd_pipe_info(w).queued_bytes, CAP, "the killed write added nothing");

	/* Nothing lost on the read side: data written now is read whole. */
	{
		int w2 = rd_open_ok(d, "K", O_WRONLY);
		char buf[16];

		rd_write_ok(w2, "still here", 10);
		rd_read_ok(r, buf, sizeof(buf), 10);
		cr_assert_eq(memcmp(buf, "still here", 10), 0, "data after the kill");
		close(w2);
	}
	rd_assert_idle(d);
	close(r);
	close(w);
	rd_end(d);
}

Test(blocking, nonblock_set_by_fcntl_is_honoured)
{
	struct rd_daemon *d = rd_start(NULL);
	int r = rd_create(d, "N", O_RDONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	int w = rd_open_ok(d, "N", O_WRONLY);
	static unsigned char fill[CAP];
	char buf[16];

	cr_assert_eq(fcntl(r, F_SETFL, O_NONBLOCK), 0, "F_SETFL: %s", strerror(errno));
	rd_assert_errno(read(r, buf, sizeof(buf)), EAGAIN, "read after fcntl(O_NONBLOCK) on an empty pipe");
	rd_write_ok(w, fill, CAP);
	cr_assert_eq(fcntl(w, F_SETFL, O_NONBLOCK), 0, "F_SETFL: %s", strerror(errno));
	rd_assert_errno(write(w, fill, 1), EAGAIN, "write after fcntl(O_NONBLOCK) on a full pipe");
	cr_assert_eq(rd_stats(d).parked_total, 0, "nothing parked");
	close(w);
	close(r);
	rd_end(d);
}

static int close_handles_main(void *arg)
{
	const struct rd_daemon *d = arg;
	int a = rd_open(d, "H", O_RDONLY, 0);
	int b = rd_open(d, "H", O_WRONLY, 0);

	if (a < 0 || b < 0)
		return 1;
	if (close(a) != 0 || close(b) != 0)
		return 2;
	return 0;
}

Test(blocking, closing_other_handles_while_a_write_is_parked_does_not_hang)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "H", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, CAP);
	static unsigned char fill[CAP], dst[CAP];
	struct rd_io *parked = rd_io_new(w, RD_IO_WRITE, 100);
	pid_t closer;
	int status, rn;

	rd_write_ok(w, fill, CAP);
	rd_io_start(parked);
	rd_wait_parked(d, 0, 1);

	/* Another process opens and closes a reader and a writer handle: on the
	 * FUSE mount every close(2) sends FLUSH; it must not wait for the
	 * parked write (no reader would ever come to drain the pipe). */
	closer = rd_spawn(close_handles_main, (void *)d, -1);
	cr_assert(rd_wait_child(closer, RD_PARK_TIMEOUT_MS, &status),
		  "close(2) of another handle hung while a write was parked on the pipe");
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "open/close helper: status %#x", status);
	rd_wait_parked(d, 0, 1);

	rn = rd_open_ok(d, "H", O_RDONLY | O_NONBLOCK);
	rd_read_ok(rn, dst, sizeof(dst), CAP);
	rd_io_join(parked);
	cr_assert_eq(parked->ret, 100, "the parked write completes: %zd (%s)", parked->ret,
		     rd_errname(parked->err));
	rd_read_ok(rn, dst, sizeof(dst), 100);
	close(rn);
	close(w);
	rd_end(d);
}

/* One write that completes more parked reads than the serving thread holds
 * answers for after the device lock (frontend/common.c, the outbox: 32
 * answers, 16 KiB of data): every reader gets its own whole chunk, none is
 * lost or doubled, and nothing stays parked. 100-byte chunks fill the
 * outbox's slots first, 1000-byte chunks its bytes; 12 chunks of 5000
 * bytes (one request, within the 64 KiB ring) are long answers: the first
 * goes from the write's buffer, the others are copied out of the ring. */
#define MANY_READERS 40

static void one_write_completes_parked_readers(size_t chunk_size, unsigned readers)
{
	struct rd_daemon *d = rd_start(NULL);
	int w = rd_create(d, "many", O_WRONLY, RINGDEV_KIND_STREAM, RINGDEV_POLICY_BLOCK, 65536);
	struct rd_io *rd[MANY_READERS];
	static unsigned char data[120000];
	bool seen[MANY_READERS] = { false };

	cr_assert(chunk_size * readers <= sizeof(data) && readers <= MANY_READERS);
	for (unsigned i = 0; i < readers; i++) {
		rd[i] = rd_io_new(rd_open_ok(d, "many", O_RDONLY), RD_IO_READ, chunk_size);
		rd_io_start(rd[i]);
		memset(data + i * chunk_size, (int)i + 1, chunk_size);
	}
	rd_wait_parked(d, readers, 0);
	rd_write_ok(w, data, chunk_size * readers);
	for (unsigned i = 0; i < readers; i++) {
		rd_io_join(rd[i]);
		cr_assert_eq(rd[i]->ret, (ssize_t)chunk_size, "reader %u: read %zd (%s)", i, rd[i]->ret,
			     rd_errname(rd[i]->err));
		unsigned chunk = rd[i]->buf[0] - 1u;
		cr_assert(chunk < readers && !seen[chunk], "reader %u: chunk %u twice or unknown", i, chunk);
		seen[chunk] = true;
		for (size_t j = 0; j < chunk_size; j++)
			cr_assert_eq(rd[i]->buf[j], chunk + 1u, "reader %u: byte %zu of chunk %u", i, j, chunk);
		close(rd[i]->fd);
	}
	rd_assert_idle(d);
	close(w);
	rd_end(d);
}

Test(blocking, one_write_completes_forty_parked_readers_of_100_bytes)
{
	one_write_completes_parked_readers(100, MANY_READERS);
}

Test(blocking, one_write_completes_forty_parked_readers_of_1000_bytes)
{
	one_write_completes_parked_readers(1000, MANY_READERS);
}

Test(blocking, one_write_completes_12_parked_readers_of_5000_bytes)
{
	one_write_completes_parked_readers(5000, 12);
}
