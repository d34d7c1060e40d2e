/* SPDX-License-Identifier: MIT */
/*
 * frontend/cuse.c - the CUSE frontend: /dev/NAME, a character device whose
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
#include "restart.h"

static struct daemon_config *cuse_cfg;
static char cuse_node[PATH_MAX];

static void on_open_interrupt(fuse_req_t req, void *data)
{
	device_interrupt(data, req);
}

static void cuse_open(fuse_req_t req, struct fuse_file_info *fi)
{
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	struct open_args args = { .default_pipe = true };
	fuse_req_interrupt_func(req, on_open_interrupt, dev);
	device_open_request(dev, &cred, fi->flags, &args, req);
}

/* Bytes the kernel must copy in and out for a command we answer: ours
 * (including the device-specific range and the control commands) encode
 * their size; FIONREAD is an int. */
static bool known_command(unsigned int cmd, size_t *in, size_t *out)
{
	if (cmd == FIONREAD) {
		*in = 0;
		*out = sizeof(int);
		return true;
	}
	return device_ioctl_arg_sizes(cmd, in, out);
}

static void cuse_ioctl(fuse_req_t req, int cmd_signed, void *arg, struct fuse_file_info *fi, unsigned flags,
		       const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	unsigned int cmd = (unsigned int)cmd_signed;
	struct open_ctx *ctx = frontend_ctx(req, fi);
	size_t need_in, need_out;
	if (!ctx) {
		fuse_reply_err(req, EBADF); /* see handle_or_fail in common.c */
		return;
	}
	if (!known_command(cmd, &need_in, &need_out)) {
		fuse_reply_err(req, ENOTTY);
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

static char ctl_node[PATH_MAX + 8];

/* Give a node its mode and group. Returns true if it had them already. */
static bool node_apply(const char *node, uint32_t mode, bool set_group, uint32_t gid)
{
	struct stat st;
	if (stat(node, &st) < 0)
		return false;
	bool ok = true;
	if ((st.st_mode & 07777) != mode) {
		ok = false;
		if (chmod(node, mode) < 0)
			log_warn("%s: chmod: %s", node, strerror(errno));
	}
	if (set_group && st.st_gid != gid) {
		ok = false;
		if (chown(node, (uid_t)-1, gid) < 0)
			log_warn("%s: chown: %s", node, strerror(errno));
	}
	return ok;
}

static bool node_permissions(const struct daemon_config *cfg)
{
	bool data = node_apply(cuse_node, cfg->dev.mode, cfg->group_set, cfg->dev.gid);
	bool ctl = node_apply(ctl_node, cfg->dev.ctl_mode, cfg->ctl_group_set, cfg->dev.ctl_gid);
	return data && ctl;
}

/* CUSE nodes appear 0600 root:root, and a udev rule may set that again after
 * we change it, so the modes and groups are reapplied for a few seconds. */
static void *permission_keeper(void *arg)
{
	for (int i = 0; i < 30; i++) {
		usleep(100 * 1000);
		if (!node_permissions(arg))
			log_debug("%s: permissions reapplied", cuse_node);
	}
	return NULL;
}

static struct fuse_session *cuse_sessions[2];
static int cuse_inits;   /* INITs answered: both nodes exist after two */
static bool cuse_failed; /* the drop failed: stop serving, exit 1 */

/* Both nodes exist and have their permissions: drop to --user and say
 * READY. As root, the permission keeper then holds the modes against udev
 * for a few seconds; after --user it could not (chmod and chown of a
 * root-owned node need root), so the udev rule must give the same mode and
 * group (dist/60-ringdev.rules does for the defaults; see ringdevd(8)). */
static void nodes_ready(struct device *dev)
{
	if (++cuse_inits < 2)
		return;
	if (frontend_drop_and_notify(dev, cuse_cfg, cuse_node) < 0) {
		cuse_failed = true;
		fuse_session_exit(cuse_sessions[0]);
		return;
	}
	frontend_threads_may_start();
	if (cuse_cfg->run_as.set || restart_resuming())
		return; /* resumed: the nodes have had their modes for long */
	pthread_t t;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (daemon_thread_create(&t, &attr, permission_keeper, cuse_cfg) < 0)
		log_warn("%s: cannot start the permission thread", cuse_node);
	pthread_attr_destroy(&attr);
}

static void cuse_init_done(void *userdata)
{
	/* The kernel created the node while taking our INIT answer: set its
	 * permissions before any other request is served. */
	if (!restart_resuming()) {
		node_permissions(cuse_cfg);
		log_info("serving CUSE device %s", cuse_node);
	}
	nodes_ready(userdata);
}

static void ctl_init_done(void *userdata)
{
	if (!restart_resuming()) {
		node_permissions(cuse_cfg);
		log_info("serving CUSE control node %s", ctl_node);
	}
	nodes_ready(userdata);
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

static const struct cuse_lowlevel_ops ctl_ops = {
	.init_done = ctl_init_done,
	.open = frontend_ctl_open,
	.read = cuse_read,
	.write = cuse_write,
	.release = cuse_release,
	.ioctl = cuse_ioctl,
	.poll = cuse_poll,
};

static const struct cuse_lowlevel_ops cuse_ops = {
	.init_done = cuse_init_done,
	.open = cuse_open,
	.read = cuse_read,
	.write = cuse_write,
	.release = cuse_release,
	.ioctl = cuse_ioctl,
	.poll = cuse_poll,
};

/* A CUSE session for /dev/<name> (session idx of restart.c) on a fresh
 * /dev/cuse fd, or on fd, an earlier image's; NULL on failure. */
static struct fuse_session *cuse_session(const char *name, const struct cuse_lowlevel_ops *ops, struct device *dev,
					 int idx, int fd)
{
	char devname[PATH_MAX + 8];
	snprintf(devname, sizeof(devname), "DEVNAME=%s", name);
	const char *dev_info[] = { devname };
	struct cuse_info ci = {
		.dev_info_argc = 1,
		.dev_info_argv = dev_info,
		.flags = CUSE_UNRESTRICTED_IOCTL,
	};
	char *argv[] = { "ringdevd", NULL };
	struct fuse_args args = FUSE_ARGS_INIT(1, argv);
	bool ours = fd < 0; /* an earlier image's fd stays open whatever happens (restart_refuse) */
	if (ours)
		fd = open("/dev/cuse", O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "ringdevd: /dev/cuse: %s (load it with 'modprobe cuse', or use --frontend=fuse)\n",
			strerror(errno));
		return NULL;
	}
	struct fuse_session *se = cuse_lowlevel_new(&args, &ci, ops, dev);
	fuse_opt_free_args(&args);
	if (!se) {
		fprintf(stderr, "ringdevd: /dev/%s: cannot create CUSE session\n", name);
		if (ours)
			close(fd);
		return NULL;
	}
	if (restart_attach_session(se, idx, fd) < 0) {
		fprintf(stderr, "ringdevd: /dev/%s: cannot attach to /dev/cuse\n", name);
		if (ours)
			close(fd);
		fuse_session_destroy(se);
		return NULL;
	}
	return se;
}

/* A new image taking over both nodes (restart.c). */
static int cuse_frontend_resume(struct daemon_config *cfg)
{
	cfg->dev.frontend = RINGDEV_FRONTEND_CUSE;
	struct device *dev = restart_resume_device(cfg, &frontend_ops);
	char ctl_name[RINGDEV_NAME_SIZE + 8];
	snprintf(ctl_name, sizeof(ctl_name), "%s-ctl", cfg->name);
	struct fuse_session *se = cuse_session(cfg->name, &cuse_ops, dev, 0, restart_session_fd(0));
	struct fuse_session *ctl = se ? cuse_session(ctl_name, &ctl_ops, dev, 1, restart_session_fd(1)) : NULL;
	if (!ctl)
		restart_refuse("cannot create the CUSE sessions");
	struct fuse_session *sessions[] = { se, ctl };
	cuse_sessions[0] = se;
	cuse_sessions[1] = ctl;
	restart_resume_feed(sessions, 2);
	int code = frontend_serve(sessions, 2, dev, cfg, cuse_node);
	if (cuse_failed)
		code = 1;
	if (restart_kept_in_store())
		return code; /* the nodes, and every request, wait for the next start */
	fuse_session_destroy(ctl);
	fuse_session_destroy(se);
	device_free(dev);
	return code;
}

int cuse_frontend_run(struct daemon_config *cfg)
{
	cuse_cfg = cfg;
	snprintf(cuse_node, sizeof(cuse_node), "/dev/%s", cfg->name);
	snprintf(ctl_node, sizeof(ctl_node), "/dev/%s-ctl", cfg->name);
	if (restart_resuming())
		return cuse_frontend_resume(cfg);
	struct stat st;
	const char *nodes[] = { cuse_node, ctl_node };
	for (int i = 0; i < 2; i++) {
		if (stat(nodes[i], &st) == 0) {
			fprintf(stderr, "ringdevd: %s: already exists (is another ringdevd serving it?)\n", nodes[i]);
			return 1;
		}
	}

	cfg->dev.frontend = RINGDEV_FRONTEND_CUSE;
	struct device *dev = device_new(&cfg->dev, &frontend_ops);
	if (!dev)
		return 1; /* device_new said why */
	/* The pipe every open starts on: whoever may open the node may use it. */
	struct cred daemon = { .uid = cfg->dev.uid, .gid = cfg->dev.gid };
	struct attach_args def = {
		.name = cfg->default_pipe,
		.len = strlen(cfg->default_pipe),
		.mode = cfg->dev.mode & 0666,
	};
	int code = 1;
	int r = device_create(dev, &daemon, &def);
	if (r < 0) {
		fprintf(stderr, "ringdevd: pipe %s: %s\n", cfg->default_pipe, strerror(-r));
		goto out_dev;
	}
	char ctl_name[RINGDEV_NAME_SIZE + 8];
	snprintf(ctl_name, sizeof(ctl_name), "%s-ctl", cfg->name);
	struct fuse_session *se = cuse_session(cfg->name, &cuse_ops, dev, 0, -1);
	if (!se)
		goto out_dev;
	struct fuse_session *ctl = cuse_session(ctl_name, &ctl_ops, dev, 1, -1);
	if (!ctl)
		goto out_session;
	struct fuse_session *sessions[] = { se, ctl };
	cuse_sessions[0] = se;
	cuse_sessions[1] = ctl;
	code = frontend_serve(sessions, 2, dev, cfg, cuse_node);
	if (cuse_failed)
		code = 1;
	if (restart_kept_in_store())
		return code; /* the nodes, and every request, wait for the next start */
	fuse_session_destroy(ctl); /* closes its /dev/cuse fd: the kernel removes the node */
out_session:
	fuse_session_destroy(se);
out_dev:
	device_free(dev);
	return code;
}
