/* SPDX-License-Identifier: MIT */
/*
 * frontend/common.c - the glue between libfuse requests and the core.
 *
 * Interrupts: every handler that may park registers an interrupt callback
 * *before* taking the device lock. libfuse calls it with the request's own
 * lock held (possibly inline, from fuse_req_interrupt_func), and the callback
 * takes the device lock, so the order is always request lock -> device lock;
 * registering under the device lock would invert it. A request interrupted
 * before it parks is caught by the core's req_interrupted check under the
 * device lock, one interrupted after by the callback: no window is lost.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <linux/fuse.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <string.h>

#include <ringdev/ringdev.h>

#include "frontend.h"
#include "log.h"

static void ops_reply_data(void *req, const struct iovec *iov, int count)
{
	if (count == 0)
		fuse_reply_buf(req, NULL, 0);
	else
		fuse_reply_iov(req, iov, count);
}

static void ops_reply_written(void *req, size_t count)
{
	fuse_reply_write(req, count);
}

static void ops_reply_error(void *req, int err)
{
	/* The kernel refuses an errno it cannot carry and would leave the
	 * caller waiting forever; the core never passes one (answers are
	 * checked where they enter), and this keeps it so. */
	if (err <= 0 || err > RINGDEV_ERRNO_MAX) {
		log_error("internal error: errno %d cannot reach the app: EIO instead", err);
		err = EIO;
	}
	fuse_reply_err(req, err);
}

static bool ops_req_interrupted(void *req)
{
	return fuse_req_interrupted(req);
}

static void ops_poll_notify(void *ph)
{
	fuse_lowlevel_notify_poll(ph);
	fuse_pollhandle_destroy(ph);
}

static void ops_poll_destroy(void *ph)
{
	fuse_pollhandle_destroy(ph);
}

static bool ops_reply_open(void *req, struct open_ctx *ctx)
{
	return frontend_reply_open(req, ctx);
}

static void ops_reply_ioctl(void *req, int result, const void *out, size_t size)
{
	fuse_reply_ioctl(req, result, size ? out : NULL, size);
}

const struct device_ops frontend_ops = {
	.reply_data = ops_reply_data,
	.reply_written = ops_reply_written,
	.reply_error = ops_reply_error,
	.req_interrupted = ops_req_interrupted,
	.poll_notify = ops_poll_notify,
	.poll_destroy = ops_poll_destroy,
	.reply_open = ops_reply_open,
	.reply_ioctl = ops_reply_ioctl,
};

struct cred frontend_cred(fuse_req_t req)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	return (struct cred){ .uid = c->uid, .gid = c->gid, .pid = (uint32_t)c->pid };
}

static struct open_ctx *ctx_of(struct fuse_file_info *fi)
{
	return (struct open_ctx *)(uintptr_t)fi->fh;
}

static void on_interrupt(fuse_req_t req, void *data)
{
	device_interrupt(data, req);
}

void frontend_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	fuse_req_interrupt_func(req, on_interrupt, dev);
	/* Stream files start every read system call at offset 0; a later
	 * offset is the kernel's next chunk of the same call. */
	device_read(dev, ctx_of(fi), req, size, fi->flags, off > 0);
}

void frontend_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	fuse_req_interrupt_func(req, on_interrupt, dev);
	device_write(dev, ctx_of(fi), req, buf, size, fi->flags);
}

void frontend_poll(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	struct device *dev = fuse_req_userdata(req);
	unsigned mask = device_poll(dev, ctx_of(fi), ph);
	fuse_reply_poll(req, mask);
}

void frontend_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	device_release(dev, ctx_of(fi));
	fuse_reply_err(req, 0);
}

void frontend_ioctl(fuse_req_t req, struct open_ctx *ctx, unsigned int cmd, unsigned flags, const void *in_buf,
		    size_t in_bufsz, size_t out_bufsz)
{
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	/* Broker TRANSACTs and relayed commands may park: interruptible. */
	fuse_req_interrupt_func(req, on_interrupt, dev);
	if (device_ioctl_async(dev, ctx, &cred, req, cmd, in_buf, in_bufsz, out_bufsz))
		return;
	/* Restricted ioctls carry at most _IOC_SIZE bytes: 14 bits. */
	uint8_t out[1u << 14];
	if (out_bufsz > sizeof(out)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	memset(out, 0, out_bufsz);
	int r = device_ioctl(dev, ctx, &cred, cmd, in_buf, in_bufsz, out, out_bufsz);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		fuse_reply_ioctl(req, 0, out_bufsz ? out : NULL, out_bufsz);
}

void frontend_ctl_open(fuse_req_t req, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	struct open_ctx *ctx;
	int r = device_ctl_open(dev, &cred, fi->flags, &ctx);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	fi->fh = (uint64_t)(uintptr_t)ctx;
	fi->direct_io = 1;
	fi->nonseekable = 1;
	if (fuse_reply_open(req, fi) < 0)
		device_release(dev, ctx);
}

bool frontend_reply_open(fuse_req_t req, struct open_ctx *ctx)
{
	struct fuse_open_out arg;
	memset(&arg, 0, sizeof(arg));
	arg.fh = (uint64_t)(uintptr_t)ctx;
	arg.open_flags = RINGDEV_FOPEN_FLAGS;
	return fuse_reply_buf(req, (const char *)&arg, sizeof(arg)) == 0;
}

/* Serve the sessions (the FUSE mount; the CUSE data and control nodes) from
 * one thread: no handler blocks, so one thread never waits for another.
 * Returns 0 when the sessions ended normally (signal, or the kernel side went
 * away), or -errno.
 *
 * Not fuse_session_loop: it checks fuse_session_exited and then blocks in
 * read(/dev/fuse), so a SIGTERM whose handler runs between the two only
 * marks the session exited and the daemon serves on until the next request
 * arrives (under valgrind, which delivers signals at the next system call,
 * every stop of an idle daemon hung so). Here the stop signals are blocked
 * in this thread except inside ppoll, which opens them atomically: a signal
 * is taken only while the loop waits, and ppoll then ends with EINTR, so the
 * check of fuse_session_exited always sees it. The fds are non-blocking so
 * the one read after ppoll cannot wait with the signals shut (a request
 * the kernel withdrew in between gives EAGAIN). */
static int serve_loop(struct fuse_session **se, int n)
{
	sigset_t stop, old_mask, open_mask;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM); /* the signals fuse_set_signal_handlers handles */
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGHUP);
	int r = pthread_sigmask(SIG_BLOCK, &stop, &old_mask);
	if (r != 0)
		return -r;
	open_mask = old_mask;
	sigdelset(&open_mask, SIGTERM);
	sigdelset(&open_mask, SIGINT);
	sigdelset(&open_mask, SIGHUP);

	struct fuse_buf bufs[2];
	struct pollfd pfd[2];
	memset(bufs, 0, sizeof(bufs));
	int result = 0;
	for (int i = 0; i < n && result == 0; i++) {
		int fd = fuse_session_fd(se[i]);
		int flags = fcntl(fd, F_GETFL);
		if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
			result = -errno;
		pfd[i] = (struct pollfd){ .fd = fd, .events = POLLIN };
	}
	while (!fuse_session_exited(se[0]) && result == 0) {
		if (ppoll(pfd, (nfds_t)n, NULL, &open_mask) < 0) {
			if (errno != EINTR)
				result = -errno;
			continue;
		}
		for (int i = 0; i < n && result == 0; i++) {
			if (!pfd[i].revents)
				continue;
			r = fuse_session_receive_buf(se[i], &bufs[i]);
			if (r == -EINTR || r == -EAGAIN)
				continue;
			if (r <= 0) {
				result = r == 0 || r == -ENODEV ? 1 : r; /* 1: the kernel side is gone */
				break;
			}
			fuse_session_process_buf(se[i], &bufs[i]);
		}
	}
	for (int i = 0; i < n; i++)
		free(bufs[i].mem);
	pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
	return result > 0 ? 0 : result;
}

int frontend_drop_and_notify(struct device *dev, const struct daemon_config *cfg, const char *what)
{
	if (cfg->run_as.set) {
		device_before_fork(dev);
		int r = service_drop_privileges(&cfg->run_as);
		int t = device_after_fork(dev);
		if (r < 0)
			return r;
		if (t < 0) {
			log_error("%s: cannot start the timer thread: %s", what, strerror(-t));
			return t;
		}
	}
	char status[PATH_MAX + 16];
	snprintf(status, sizeof(status), "serving %s", what);
	service_notify_ready(status);
	return 0;
}

int frontend_serve(struct fuse_session **se, int n, struct device *dev, const struct daemon_config *cfg,
		   const char *what)
{
	if (fuse_set_signal_handlers(se[0]) < 0) {
		fprintf(stderr, "ringdevd: cannot install signal handlers\n");
		return 1;
	}
	if (!cfg->foreground) {
		/* fuse_daemonize forks and the parent exits: only this thread
		 * goes on into the daemon, the core's are started again there. */
		device_before_fork(dev);
		if (fuse_daemonize(0) < 0) {
			fuse_remove_signal_handlers(se[0]);
			return 1;
		}
		log_use_syslog("ringdevd");
		int r = device_after_fork(dev);
		if (r < 0) {
			log_error("%s: cannot start the timer thread: %s", what, strerror(-r));
			fuse_remove_signal_handlers(se[0]);
			return 1;
		}
	}
	/* The mount is there now; CUSE nodes only once the loop answered INIT. */
	if (cfg->dev.frontend == RINGDEV_FRONTEND_FUSE && frontend_drop_and_notify(dev, cfg, what) < 0) {
		device_shutdown(dev);
		fuse_remove_signal_handlers(se[0]);
		return 1;
	}
	int r = serve_loop(se, n);
	service_notify_stopping();
	if (r < 0)
		log_error("%s: session failed: %s", what, strerror(-r));
	else
		log_info("%s: shutting down", what);
	device_shutdown(dev); /* parked requests: ESHUTDOWN, while the fds still work */
	fuse_remove_signal_handlers(se[0]);
	return r < 0 ? 1 : 0;
}
