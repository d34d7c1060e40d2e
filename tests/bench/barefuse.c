/* SPDX-License-Identifier: MIT */
/*
 * barefuse.c - the reference of section 3: the least a FUSE file costs. A
 * low-level libfuse3 file system on its own temporary mount, served by one
 * thread with fuse_session_loop, holding one file, "file", opened direct-I/O
 * with the open flags ringdevd gives its pipes (stream, nonseekable, no
 * flush), so that the kernel sends both the same requests. Every write is
 * answered at once with its full size; every read at once with as many of
 * the bytes written so far and not yet read as fit (zeros; none at all is
 * a read of 0 bytes). It counts the reads and writes it answered in memory
 * shared with the run.
 */
#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>
#include <linux/fuse.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"

#define FILE_INO 2
#define FILE_NAME "file"
#define READY_WAIT_MS 10000

static uint64_t pending;          /* bytes written and not read */
static volatile uint64_t *answered;
static char zeros[128u << 10];

static void bare_init(void *userdata, struct fuse_conn_info *conn)
{
	/* As ringdevd: one read chunk at a time, in order. */
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_READ;
}

static void fill_attr(fuse_ino_t ino, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = ino;
	st->st_mode = ino == FUSE_ROOT_ID ? S_IFDIR | 0755 : S_IFREG | 0600;
	st->st_nlink = ino == FUSE_ROOT_ID ? 2 : 1;
}

static void bare_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (parent != FUSE_ROOT_ID || strcmp(name, FILE_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = FILE_INO;
	e.attr_timeout = 60;
	e.entry_timeout = 60;
	fill_attr(FILE_INO, &e.attr);
	fuse_reply_entry(req, &e);
}

static void bare_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	if (ino != FUSE_ROOT_ID && ino != FILE_INO) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fill_attr(ino, &st);
	fuse_reply_attr(req, &st, 60);
}

/* libfuse's fuse_file_info has no stream bit: the open is answered with
 * the kernel's structure itself, as ringdevd answers its pipe opens. */
static void bare_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino != FILE_INO) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	struct fuse_open_out out;
	memset(&out, 0, sizeof(out));
	out.open_flags = FOPEN_DIRECT_IO | FOPEN_STREAM | FOPEN_NONSEEKABLE | FOPEN_NOFLUSH;
	fuse_reply_buf(req, (const char *)&out, sizeof(out));
}

static void bare_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	size_t n = size < pending ? size : (size_t)pending;
	n = n < sizeof(zeros) ? n : sizeof(zeros);
	pending -= n;
	(*answered)++;
	fuse_reply_buf(req, zeros, n);
}

static void bare_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	pending += size;
	(*answered)++;
	fuse_reply_write(req, size);
}

static void bare_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fuse_reply_err(req, 0);
}

static const struct fuse_lowlevel_ops bare_ops = {
	.init = bare_init,
	.lookup = bare_lookup,
	.getattr = bare_getattr,
	.open = bare_open,
	.read = bare_read,
	.write = bare_write,
	.release = bare_release,
};

/* The server process: mount, serve until SIGTERM (or the unmount), go. */
static __attribute__((noreturn)) void bare_serve(const char *mount)
{
	char *argv[] = { (char *)"ringdev-bench-bare", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	struct fuse_session *se = fuse_session_new(&args, &bare_ops, sizeof(bare_ops), NULL);
	if (!se)
		fail("fuse_session_new for the bare server");
	if (fuse_set_signal_handlers(se) < 0)
		fail("fuse_set_signal_handlers for the bare server");
	if (fuse_session_mount(se, mount) < 0)
		fail("fuse_session_mount %s", mount);
	int r = fuse_session_loop(se);
	fuse_session_unmount(se);
	fuse_remove_signal_handlers(se);
	fuse_session_destroy(se);
	_exit(r < 0 ? 1 : 0);
}

void bare_start(struct bare_server *s)
{
	memset(s, 0, sizeof(*s));
	bench_mkdir("bare", s->mount, sizeof(s->mount));
	snprintf(s->file, sizeof(s->file), "%s/%s", s->mount, FILE_NAME);
	s->requests = answered = shared_alloc(sizeof(*answered));
	s->pid = spawn(CHILD_SERVER, s->mount, SIGTERM);
	if (s->pid == 0)
		bare_serve(s->mount);
	for (int ms = 0; ms < READY_WAIT_MS; ms += 10) {
		struct stat st;
		int status;
		char how[48];
		if (child_exited(s->pid, &status))
			fail("the bare libfuse server ended (%s) before serving %s",
			     status_text(status, how, sizeof(how)), s->mount);
		if (stat(s->file, &st) == 0)
			return;
		usleep(10000);
	}
	fail("the bare libfuse server did not serve %s within %d s", s->mount, READY_WAIT_MS / 1000);
}

void bare_stop(struct bare_server *s)
{
	char how[48];
	int status = stop_child(s->pid);
	if (status != 0)
		fprintf(stderr, "ringdev-bench: the bare libfuse server ended with %s\n",
			status_text(status, how, sizeof(how)));
	s->pid = 0;
}
