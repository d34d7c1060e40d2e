/* SPDX-License-Identifier: MIT */
/*
 * frontend_cuse.c - the CUSE frontend: /dev/NAME, a character device whose
 * every open is a handle on the core.
 *
 * A CUSE open carries no name, so an open starts on the persistent default
 * pipe (created here at start, owned by the daemon, with the node's mode) and
 * RINGDEV_IOC_ATTACH moves it. The node runs with unrestricted ioctls so that
 * FIONREAD (which encodes no size) can be answered: each ioctl is first
 * seen without its argument, and we ask the kernel to retry with the buffers
 * _IOC_SIZE describes. The read path is shared with the FUSE mount; CUSE
 * starts every read system call at offset 0, as a stream file does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frontend.h" /* sets FUSE_USE_VERSION before any libfuse header */

#include <cuse_lowlevel.h>
#include <ringdev/ringdev.h>

#include "log.h"

static struct daemon_config *cuse_cfg;
static char cuse_node[PATH_MAX];

static void cuse_open(fuse_req_t req, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	struct open_ctx *ctx;
	struct attach_args args = {
		.name = cuse_cfg->default_pipe,
		.len = strlen(cuse_cfg->default_pipe),
	};
	int r = device_open(dev, &cred, fi->flags, &ctx);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	r = device_attach(dev, ctx, &args);
	if (r == -EACCES) {
		/* The default pipe refuses this caller: the handle starts detached,
		 * and ATTACH names the pipe it may use. */
		r = 0;
	}
	if (r < 0) {
		device_release(dev, ctx);
		fuse_reply_err(req, -r);
		return;
	}
	frontend_reply_open(req, dev, ctx);
}

/* Bytes the kernel must copy in and out for a command we answer. */
static bool known_command(unsigned int cmd, size_t *in, size_t *out)
{
	if (cmd == FIONREAD) {
		*in = 0;
		*out = sizeof(int);
		return true;
	}
	return device_ioctl_sizes(cmd, in, out);
}

static void cuse_ioctl(fuse_req_t req, int cmd_signed, void *arg, struct fuse_file_info *fi, unsigned flags,
		       const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	unsigned int cmd = (unsigned int)cmd_signed;
	struct open_ctx *ctx = (struct open_ctx *)(uintptr_t)fi->fh;
	size_t need_in, need_out;
	if (!known_command(cmd, &need_in, &need_out)) {
		fuse_reply_err(req, ENOTTY); /* device-specific commands need a broker */
		return;
	}
	if (in_bufsz < need_in || out_bufsz < need_out) {
		if (flags & FUSE_IOCTL_RETRY) {
			fuse_reply_err(req, EINVAL); /* the kernel could not give what we asked */
			return;
		}
		struct iovec in_iov = { arg, need_in }, out_iov = { arg, need_out };
		fuse_reply_ioctl_retry(req, need_in ? &in_iov : NULL, need_in ? 1 : 0, need_out ? &out_iov : NULL,
				       need_out ? 1 : 0);
		return;
	}
	if (cmd == FIONREAD) {
		struct device *dev = fuse_req_userdata(req);
		struct cred cred = frontend_cred(req);
		struct ringdev_nread nr;
		int r = device_ioctl(dev, ctx, &cred, RINGDEV_IOC_NREAD, NULL, 0, &nr, sizeof(nr));
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
		int v = nr.next > INT_MAX ? INT_MAX : (int)nr.next;
		fuse_reply_ioctl(req, 0, &v, sizeof(v));
		return;
	}
	frontend_ioctl(req, ctx, cmd, flags, in_buf, need_in, need_out);
}

/* Give the node --mode and --group. Returns true if it had them already. */
static bool node_permissions(const struct daemon_config *cfg)
{
	struct stat st;
	if (stat(cuse_node, &st) < 0)
		return false;
	bool ok = true;
	if ((st.st_mode & 07777) != cfg->dev.mode) {
		ok = false;
		if (chmod(cuse_node, cfg->dev.mode) < 0)
			log_warn("%s: chmod: %s", cuse_node, strerror(errno));
	}
	if (cfg->group_set && st.st_gid != cfg->dev.gid) {
		ok = false;
		if (chown(cuse_node, (uid_t)-1, cfg->dev.gid) < 0)
			log_warn("%s: chown: %s", cuse_node, strerror(errno));
	}
	return ok;
}

/* CUSE nodes appear 0600 root:root, and a udev rule may set that again after
 * we change it, so the mode and group are reapplied for a few seconds. */
static void *permission_keeper(void *arg)
{
	for (int i = 0; i < 30; i++) {
		usleep(100 * 1000);
		if (!node_permissions(arg))
			log_debug("%s: permissions reapplied", cuse_node);
	}
	return NULL;
}

static void cuse_init_done(void *userdata)
{
	/* The kernel created the node while taking our INIT answer: set its
	 * permissions before any other request is served. */
	node_permissions(cuse_cfg);
	log_info("serving CUSE device %s", cuse_node);
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, permission_keeper, cuse_cfg) != 0)
		log_warn("%s: cannot start the permission thread", cuse_node);
	pthread_attr_destroy(&attr);
}

static void cuse_read(fuse_req_t req, size_t size, off_t off, struct fuse_file_info *fi)
{
	frontend_read(req, 0, size, off, fi);
}

static void cuse_write(fuse_req_t req, const char *buf, size_t size, off_t off, struct fuse_file_info *fi)
{
	frontend_write(req, 0, buf, size, off, fi);
}

static void cuse_release(fuse_req_t req, struct fuse_file_info *fi)
{
	frontend_release(req, 0, fi);
}

static void cuse_poll(fuse_req_t req, struct fuse_file_info *fi, struct fuse_pollhandle *ph)
{
	frontend_poll(req, 0, fi, ph);
}

static const struct cuse_lowlevel_ops cuse_ops = {
	.init_done = cuse_init_done,
	.open = cuse_open,
	.read = cuse_read,
	.write = cuse_write,
	.release = cuse_release,
	.ioctl = cuse_ioctl,
	.poll = cuse_poll,
};

int cuse_frontend_run(struct daemon_config *cfg)
{
	cuse_cfg = cfg;
	snprintf(cuse_node, sizeof(cuse_node), "/dev/%s", cfg->name);
	struct stat st;
	if (stat(cuse_node, &st) == 0) {
		fprintf(stderr, "ringdevd: %s: already exists (is another ringdevd serving it?)\n", cuse_node);
		return 1;
	}
	int fd = open("/dev/cuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ringdevd: /dev/cuse: %s (load it with 'modprobe cuse', or use --frontend=fuse)\n",
			strerror(errno));
		return 1;
	}

	cfg->dev.frontend = RINGDEV_FRONTEND_CUSE;
	struct device *dev = device_new(&cfg->dev, &frontend_ops);
	if (!dev) {
		close(fd);
		fprintf(stderr, "ringdevd: out of memory\n");
		return 1;
	}
	/* The pipe every open starts on: whoever may open the node may use it. */
	struct cred daemon = { .uid = cfg->dev.uid, .gid = cfg->dev.gid };
	struct attach_args def = {
		.name = cfg->default_pipe,
		.len = strlen(cfg->default_pipe),
		.mode = cfg->dev.mode & 0666,
	};
	int r = device_create(dev, &daemon, &def);
	if (r < 0) {
		fprintf(stderr, "ringdevd: pipe %s: %s\n", cfg->default_pipe, strerror(-r));
		close(fd);
		device_free(dev);
		return 1;
	}

	char devname[PATH_MAX + 8];
	snprintf(devname, sizeof(devname), "DEVNAME=%s", cfg->name);
	const char *dev_info[] = { devname };
	struct cuse_info ci = {
		.dev_info_argc = 1,
		.dev_info_argv = dev_info,
		.flags = CUSE_UNRESTRICTED_IOCTL,
	};
	char *argv[] = { "ringdevd", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	int code = 1;
	struct fuse_session *se = cuse_lowlevel_new(&args, &ci, &cuse_ops, dev);
	if (!se) {
		fprintf(stderr, "ringdevd: %s: cannot create CUSE session\n", cuse_node);
		close(fd);
		goto out_dev;
	}
	/* libfuse takes an already-open device fd as "/dev/fd/N". */
	char fdpath[32];
	snprintf(fdpath, sizeof(fdpath), "/dev/fd/%d", fd);
	if (fuse_session_mount(se, fdpath) < 0) {
		fprintf(stderr, "ringdevd: %s: cannot attach to /dev/cuse\n", cuse_node);
		close(fd);
		goto out_session;
	}
	code = frontend_serve(se, dev, cfg, cuse_node);
	fuse_session_unmount(se);
out_session:
	fuse_session_destroy(se); /* closes /dev/cuse: the kernel removes the node */
out_dev:
	device_free(dev);
	fuse_opt_free_args(&args);
	return code;
}
