/* SPDX-License-Identifier: MIT */
/*
 * frontend/fuse.c - the FUSE-mount frontend: MOUNT/NAME is pipe NAME.
 *
 * The mount is one flat directory (inode 1) whose entries are the pipes,
 * each a regular file whose size is the bytes queued. Nothing is cached by
 * the kernel (entry and attribute timeouts are 0) because pipes come and go
 * and their size changes with every write. Opens are answered as stream
 * files with direct I/O (see frontend_reply_open), so reads and writes reach
 * the core unchanged. The loop is libfuse's single-threaded one: no handler
 * blocks, so one thread never waits for another (see facts.md for why that
 * is also the faster loop here).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <linux/fuse.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "frontend.h"
#include "list.h"
#include "log.h"
#include "restart.h"
#include "state.h"

/* The control node, MOUNT/.ctl: a fixed inode below the pipes' (>= 16). */
#define CTL_INO 2
#define CTL_NAME ".ctl"

static struct daemon_config *fuse_cfg;

/* Open directory listings. A RELEASEDIR still queued when the daemon stops
 * never arrives, so the listings are tracked here and freed at exit. Each
 * is charged to its opener (device_list) until it is freed. */
struct dir_snapshot {
	struct list_node link;
	uint64_t fh;       /* the kernel's name for it (device_fh_name, or an earlier image's) */
	struct device *dev;
	struct cred opener;
	struct name_list names;
};
static struct list_node fuse_snapshots = LIST_INIT(fuse_snapshots);
static pthread_mutex_t fuse_snapshots_lock = PTHREAD_MUTEX_INITIALIZER;

static void snapshot_free(struct dir_snapshot *snap)
{
	pthread_mutex_lock(&fuse_snapshots_lock);
	list_unlink(&snap->link);
	pthread_mutex_unlock(&fuse_snapshots_lock);
	device_list_free(snap->dev, &snap->names);
	free(snap);
}
static struct timespec fuse_started; /* the mount root's times */
static char fuse_mount_path[PATH_MAX]; /* resolved: a resumed image must not look it up (it would ask itself) */

static struct dir_snapshot *snapshot_of(fuse_req_t req, struct fuse_file_info *fi)
{
	struct dir_snapshot *snap = device_fh_object(fuse_req_userdata(req), fi->fh);
	if (snap)
		return snap;
	/* A listing an earlier image opened (a handful at most). */
	struct list_node *pos;
	pthread_mutex_lock(&fuse_snapshots_lock);
	list_for_each(pos, &fuse_snapshots) {
		struct dir_snapshot *s = list_entry(pos, struct dir_snapshot, link);
		if (s->fh == fi->fh) {
			snap = s;
			break;
		}
	}
	pthread_mutex_unlock(&fuse_snapshots_lock);
	return snap;
}

/* The state's FUSE records (restart.c): the mount's path, and each open
 * listing by its fh and opener. A listing comes over empty: it is taken
 * again at its next READDIR (an `ls` running across a restart sees the
 * pipes of then, from its next entry on). */
enum { REC_FUSE_MOUNT = RESTART_REC_EXTRA, REC_FUSE_LISTING };

static void snapshots_save(struct state_writer *w)
{
	sw_begin(w, REC_FUSE_MOUNT);
	sw_bytes(w, fuse_mount_path, strlen(fuse_mount_path));
	sw_end(w);
	struct list_node *pos;
	pthread_mutex_lock(&fuse_snapshots_lock);
	list_for_each(pos, &fuse_snapshots) {
		struct dir_snapshot *s = list_entry(pos, struct dir_snapshot, link);
		sw_begin(w, REC_FUSE_LISTING);
		sw_u64(w, s->fh);
		sw_u32(w, s->opener.uid);
		sw_u32(w, s->opener.gid);
		sw_u32(w, s->opener.pid);
		sw_end(w);
	}
	pthread_mutex_unlock(&fuse_snapshots_lock);
}

static int snapshots_load(struct device *dev, struct state_record *rec)
{
	if (rec->type == REC_FUSE_MOUNT) {
		size_t n;
		const uint8_t *p = sr_bytes(rec, sizeof(fuse_mount_path) - 1, &n);
		if (!p || !sr_done(rec) || n == 0 || p[0] != '/' || memchr(p, '\0', n))
			return -EINVAL;
		memcpy(fuse_mount_path, p, n);
		fuse_mount_path[n] = '\0';
		return 0;
	}
	if (rec->type != REC_FUSE_LISTING)
		return -EINVAL;
	struct dir_snapshot *snap = calloc(1, sizeof(*snap));
	if (!snap)
		return -ENOMEM;
	snap->fh = sr_u64(rec);
	snap->opener.uid = sr_u32(rec);
	snap->opener.gid = sr_u32(rec);
	snap->opener.pid = sr_u32(rec);
	if (!sr_done(rec) || !snap->fh) {
		free(snap);
		return -EINVAL;
	}
	snap->dev = dev;
	/* Its fh is the kernel's as long as the listing is open: no later
	 * image may name its own objects by that generation (device_fh_hold). */
	device_fh_hold(dev, snap->fh);
	device_dir_open(&snap->opener, &snap->names);
	pthread_mutex_lock(&fuse_snapshots_lock);
	list_add_tail(&fuse_snapshots, &snap->link);
	pthread_mutex_unlock(&fuse_snapshots_lock);
	return 0;
}

static void attr_to_stat(const struct pipe_attr *a, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = a->ino;
	st->st_mode = S_IFREG | a->mode;
	st->st_nlink = 1;
	st->st_uid = a->uid;
	st->st_gid = a->gid;
	st->st_size = (off_t)a->size;
	st->st_blksize = 4096;
	st->st_atim = a->atime;
	st->st_mtim = a->mtime;
	st->st_ctim = a->ctime;
}

static void root_stat(struct stat *st)
{
	uint32_t m = fuse_cfg->dev.mode & 0777;
	/* Whoever may read the device may list it. */
	m |= (m & 0444) >> 2;
	memset(st, 0, sizeof(*st));
	st->st_ino = FUSE_ROOT_ID;
	st->st_mode = S_IFDIR | m;
	st->st_nlink = 2;
	st->st_uid = fuse_cfg->dev.uid;
	st->st_gid = fuse_cfg->dev.gid;
	st->st_atim = st->st_mtim = st->st_ctim = fuse_started;
}

static void ctl_stat(struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = CTL_INO;
	st->st_mode = S_IFREG | fuse_cfg->dev.ctl_mode;
	st->st_nlink = 1;
	st->st_uid = fuse_cfg->dev.uid;
	st->st_gid = fuse_cfg->dev.ctl_gid;
	st->st_atim = st->st_mtim = st->st_ctim = fuse_started;
}

static void on_open_interrupt(fuse_req_t req, void *data)
{
	device_interrupt(data, req);
}

static void reply_entry(fuse_req_t req, const struct pipe_attr *a)
{
	struct fuse_entry_param e;
	memset(&e, 0, sizeof(e));
	e.ino = a->ino;
	attr_to_stat(a, &e.attr);
	fuse_reply_entry(req, &e);
}

/* FUSE 7.9 and later: every READ carries fuse_read_in.lock_owner, which
 * libfuse copies into fi->lock_owner (see fs_read). */
static bool reads_carry_owner;

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	reads_carry_owner = conn->proto_major > 7 || (conn->proto_major == 7 && conn->proto_minor >= 9);
	/* O_TRUNC arrives with the open (and is ignored) instead of a setattr. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Chunks of one read must arrive in order, one at a time. */
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_DIO;
	conn->want &= ~(unsigned)FUSE_CAP_ASYNC_READ;
	log_debug("FUSE connection: proto %u.%u, max_write %u", conn->proto_major, conn->proto_minor,
		  conn->max_write);
	frontend_threads_may_start(); /* the mount, and any --user drop, came before */
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct pipe_attr a;
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strcmp(name, CTL_NAME) == 0) {
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.ino = CTL_INO;
		ctl_stat(&e.attr);
		fuse_reply_entry(req, &e);
		return;
	}
	struct cred cred = frontend_cred(req);
	int r = device_lookup(fuse_req_userdata(req), &cred, name, strlen(name), &a);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, &a);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fuse_reply_none(req); /* pipes are found by number; nothing to drop */
}

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	if (ino == FUSE_ROOT_ID) {
		root_stat(&st);
	} else if (ino == CTL_INO) {
		ctl_stat(&st);
	} else {
		struct pipe_attr a;
		struct cred cred = frontend_cred(req);
		int r = device_getattr(fuse_req_userdata(req), &cred, ino, &a);
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
		attr_to_stat(&a, &st);
	}
	fuse_reply_attr(req, &st, 0);
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi)
{
	struct cred cred = frontend_cred(req);
	struct pipe_attr a;
	struct stat st;
	if (ino == FUSE_ROOT_ID || ino == CTL_INO) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* Size (truncate) and times are accepted and ignored: queued data is
	 * never discarded by a shell's O_TRUNC or a truncate(1). */
	int r = device_setattr(fuse_req_userdata(req), &cred, ino, to_set & FUSE_SET_ATTR_MODE, attr->st_mode,
			       to_set & FUSE_SET_ATTR_UID, attr->st_uid, to_set & FUSE_SET_ATTR_GID, attr->st_gid, &a);
	if (r < 0) {
		fuse_reply_err(req, -r);
		return;
	}
	attr_to_stat(&a, &st);
	fuse_reply_attr(req, &st, 0);
}

static void fs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct cred cred = frontend_cred(req);
	int r = 0;
	if (ino == FUSE_ROOT_ID) {
		if ((mask & W_OK) && !device_may_create(fuse_req_userdata(req), &cred))
			r = -EACCES;
	} else if (ino == CTL_INO) {
		r = 0; /* decided at open */
	} else {
		r = device_access(fuse_req_userdata(req), &cred, ino, mask);
	}
	fuse_reply_err(req, -r);
}

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_snapshot *snap = calloc(1, sizeof(*snap));
	if (!snap) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The listing is taken at the first READDIR, not here, and charged
	 * to the opener then: the tools and anything else that opens the root
	 * only for its ioctls hold none (see device_dir_open). */
	snap->dev = fuse_req_userdata(req);
	snap->opener = frontend_cred(req);
	device_dir_open(&snap->opener, &snap->names);
	snap->fh = device_fh_name(snap->dev, snap);
	pthread_mutex_lock(&fuse_snapshots_lock);
	list_add_tail(&fuse_snapshots, &snap->link);
	pthread_mutex_unlock(&fuse_snapshots_lock);
	fi->fh = snap->fh;
	if (fuse_reply_open(req, fi) < 0)
		snapshot_free(snap);
}

static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	struct dir_snapshot *snap = snapshot_of(req, fi);
	if (!snap) {
		fuse_reply_err(req, EBADF);
		return;
	}
	struct name_list *list = &snap->names;
	/* A snapshot from the start of the listing (and again when it is
	 * rewound): consistent even while pipes come and go. Charged to the
	 * directory's opener (ENOMEM past its memory limits). */
	if (off == 0 || !list->entries) {
		int r = device_list(snap->dev, &snap->opener, list); /* what its opener sees */
		if (r < 0) {
			fuse_reply_err(req, -r);
			return;
		}
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t used = 0;
	struct stat st;
	memset(&st, 0, sizeof(st));
	size_t count = list->entries ? list->count : 0; /* device_list set both, or failed above */
	for (size_t i = (size_t)off; i < count + 2; i++) {
		const char *name;
		if (i < 2) {
			name = i == 0 ? "." : "..";
			st.st_ino = FUSE_ROOT_ID;
			st.st_mode = S_IFDIR;
		} else {
			name = list->entries[i - 2].name;
			st.st_ino = list->entries[i - 2].ino;
			st.st_mode = S_IFREG;
		}
		size_t n = fuse_add_direntry(req, buf + used, size - used, name, &st, (off_t)(i + 1));
		if (n > size - used)
			break;
		used += n;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct dir_snapshot *snap = snapshot_of(req, fi);
	if (snap)
		snapshot_free(snap);
	fuse_reply_err(req, 0);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	if (ino == FUSE_ROOT_ID) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if (ino == CTL_INO) {
		frontend_ctl_open(req, fi);
		return;
	}
	struct device *dev = fuse_req_userdata(req);
	struct cred cred = frontend_cred(req);
	struct open_args args = { .ino = ino };
	fuse_req_interrupt_func(req, on_open_interrupt, dev);
	device_open_request(dev, &cred, fi->flags, &args, req);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct cred cred = frontend_cred(req);
	int r = parent == FUSE_ROOT_ID ? device_unlink(fuse_req_userdata(req), &cred, name, strlen(name)) : -ENOTDIR;
	fuse_reply_err(req, -r);
}

/* O_CREAT of a new name. There is no create handler on purpose: the kernel
 * holds the directory's lock for the whole of a FUSE create, so while a
 * broker decided one app's create nobody could list the mount or look up a
 * name. Without one the kernel sends MKNOD (answered at once, under that
 * lock) and then OPEN (outside it), and only the OPEN waits for a broker;
 * until the broker allowed it, the new pipe is its creator's alone
 * (device_mknod). Only regular files: FIFOs and device nodes are not pipes
 * of ours. */
static void fs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct cred cred = frontend_cred(req);
	struct pipe_attr a;
	if (parent != FUSE_ROOT_ID) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (!S_ISREG(mode)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	int r = device_mknod(fuse_req_userdata(req), &cred, name, strlen(name), (mode & 0777) ? (mode & 0777) : 0600, &a);
	if (r < 0)
		fuse_reply_err(req, -r);
	else
		reply_entry(req, &a);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	fuse_reply_err(req, EPERM); /* one flat directory */
}

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct statvfs sv;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = RINGDEV_NAME_MAX;
	fuse_reply_statfs(req, &sv);
}

static void fs_ioctl(fuse_req_t req, fuse_ino_t ino, unsigned int cmd, void *arg, struct fuse_file_info *fi,
		     unsigned flags, const void *in_buf, size_t in_bufsz, size_t out_bufsz)
{
	/* On the root directory the fh is a listing, not a handle. */
	struct open_ctx *ctx = ino == FUSE_ROOT_ID ? NULL : frontend_ctx(req, fi);
	if (ino != FUSE_ROOT_ID && !ctx) {
		fuse_reply_err(req, EBADF); /* see handle_or_fail in common.c */
		return;
	}
	frontend_ioctl(req, ctx, cmd, flags, in_buf, in_bufsz, out_bufsz);
}

/* A pipe's bytes go to read(2) callers and to nobody else. The kernel
 * refuses MAP_SHARED of a direct-I/O file (ENODEV), but it maps MAP_PRIVATE
 * with generic_file_mmap without asking us, and the page faults then fill
 * the page cache with READs of their own, as readahead does, and splice on
 * kernels where it goes through filemap_splice_read (6.18 here; 6.1 splices
 * through read's path). Served, such a read takes the bytes out of the pipe
 * into pages no reader sees in order: a 4 KiB mapping of a pipe holding
 * 10,000 bytes took them all. The two kinds can be told apart: read(2) on a
 * direct-I/O file comes through fuse_direct_io -> fuse_send_read(...,
 * current->files), which sets FUSE_READ_LOCKOWNER and a nonzero lock_owner,
 * while fuse_read_folio and fuse_readahead fill theirs with
 * fuse_read_args_fill only: no lock owner (Linux fs/fuse/file.c, 6.1 to
 * 6.18). Those are refused and nothing is taken: the fault gets SIGBUS,
 * readahead leaves its pages unfilled (nothing is cached), and splice fails
 * with EINVAL, the errno splice(2) gives for a file that cannot splice, on
 * which its users fall back to read(2). The file size we report (the bytes
 * queued, as the kernel last heard it) only bounds such reads: past it a
 * fault gets SIGBUS without asking us. */
static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	if (reads_carry_owner && fi->lock_owner == 0) {
		struct open_ctx *ctx = frontend_ctx(req, fi);
		if (ctx && device_ctx_note_once(fuse_req_userdata(req), ctx))
			log_debug("inode %llu: refusing a read through the page cache (mmap, readahead or splice)",
				  (unsigned long long)ino);
		fuse_reply_err(req, EINVAL);
		return;
	}
	frontend_read(req, ino, size, off, fi);
}

static const struct fuse_lowlevel_ops fs_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.access = fs_access,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.open = fs_open,
	.read = fs_read,
	.write = frontend_write,
	.release = frontend_release,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.ioctl = fs_ioctl,
	.poll = frontend_poll,
};

/* Unmount a mount left by a daemon that died (the directory answers ENOTCONN). */
static int unmount_stale(const char *dir)
{
	if (geteuid() == 0)
		return umount2(dir, MNT_DETACH) == 0 ? 0 : -errno;
	pid_t pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		execlp("fusermount3", "fusermount3", "-u", "-z", "--", dir, (char *)NULL);
		_exit(127);
	}
	int status;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -EBUSY;
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return -ENAMETOOLONG;
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Make DIR ready to mount on: clean a stale mount, create it, refuse a live one. */
static int prepare_mountpoint(const char *dir)
{
	struct stat st, parent;
	if (stat(dir, &st) < 0) {
		if (errno == ENOTCONN || errno == ECONNABORTED) {
			log_info("%s: removing the stale mount of a daemon that died", dir);
			int r = unmount_stale(dir);
			if (r < 0) {
				fprintf(stderr, "ringdevd: %s: cannot remove stale mount: %s\n", dir, strerror(-r));
				return r;
			}
		} else if (errno != ENOENT) {
			fprintf(stderr, "ringdevd: %s: %s\n", dir, strerror(errno));
			return -errno;
		}
		int r = mkdir_p(dir, 0755);
		if (r < 0) {
			fprintf(stderr, "ringdevd: %s: cannot create mount directory: %s\n", dir, strerror(-r));
			return r;
		}
		if (stat(dir, &st) < 0) {
			fprintf(stderr, "ringdevd: %s: %s\n", dir, strerror(errno));
			return -errno;
		}
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "ringdevd: %s: not a directory\n", dir);
		return -ENOTDIR;
	}
	char up[PATH_MAX];
	if (snprintf(up, sizeof(up), "%s/..", dir) < (int)sizeof(up) && stat(up, &parent) == 0 &&
	    parent.st_dev != st.st_dev) {
		fprintf(stderr, "ringdevd: %s: already a mount point (is another ringdevd serving it?)\n", dir);
		return -EBUSY;
	}
	return 0;
}

/* A new image taking over the mount (restart.c): no mount is made, and at
 * the end the mount is removed here, since libfuse did not make it. */
static int fuse_frontend_resume(struct daemon_config *cfg)
{
	const char *mount;
	cfg->dev.frontend = RINGDEV_FRONTEND_FUSE;
	restart_set_extra(snapshots_save, snapshots_load);
	struct device *dev = restart_resume_device(cfg, &frontend_ops);
	if (!fuse_mount_path[0])
		restart_refuse("the state does not say where the mount is");
	mount = fuse_mount_path;
	const char *opts = "fsname=ringdev,subtype=ringdev";
	char *argv[] = { "ringdevd", "-o", (char *)opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), dev);
	fuse_opt_free_args(&args);
	if (!se || restart_attach_session(se, 0, restart_session_fd(0)) < 0)
		restart_refuse("cannot create the FUSE session");
	restart_resume_feed(&se, 1);
	int code = frontend_serve(&se, 1, dev, cfg, mount);
	if (restart_kept_in_store())
		return code; /* the mount, and every request, wait for the next start */
	if (cfg->run_as.set && !cfg->fd_store)
		log_info("%s: fusermount3 unmounts it once ringdevd exits", mount);
	else if (unmount_stale(mount) == 0)
		log_info("unmounted %s", mount);
	else
		log_warn("%s: cannot unmount: it stays until unmounted by hand (fusermount3 -u)", mount);
	fuse_session_destroy(se);
	while (!list_empty(&fuse_snapshots))
		snapshot_free(list_entry(list_first(&fuse_snapshots), struct dir_snapshot, link));
	device_free(dev);
	return code;
}

int fuse_frontend_run(struct daemon_config *cfg)
{
	fuse_cfg = cfg;
	clock_gettime(CLOCK_REALTIME, &fuse_started);
	if (restart_resuming())
		return fuse_frontend_resume(cfg);
	char mount[PATH_MAX];
	if (!realpath(cfg->mount, mount)) {
		if (snprintf(mount, sizeof(mount), "%s", cfg->mount) >= (int)sizeof(mount)) {
			fprintf(stderr, "ringdevd: %s: path too long\n", cfg->mount);
			return 1;
		}
	}
	if (prepare_mountpoint(mount) < 0)
		return 1;
	char resolved[PATH_MAX];
	if (!realpath(mount, resolved)) {
		fprintf(stderr, "ringdevd: %s: %s\n", cfg->mount, strerror(errno));
		return 1;
	}
	memcpy(mount, resolved, sizeof(mount));

	cfg->dev.frontend = RINGDEV_FRONTEND_FUSE;
	struct device *dev = device_new(&cfg->dev, &frontend_ops);
	if (!dev)
		return 1; /* device_new said why */
	/* After --user the daemon can no longer unmount a mount root made
	 * (umount2 needs CAP_SYS_ADMIN, and fusermount3 -u refuses a mount
	 * whose user_id is 0). auto_unmount makes libfuse mount through
	 * fusermount3, which stays behind as root, blocks signals, and
	 * unmounts once this process's end of its socket closes: at exit,
	 * clean or not. */
	const char *opts = geteuid() != 0 ? "fsname=ringdev,subtype=ringdev"
			   : cfg->run_as.set && !cfg->fd_store ? "fsname=ringdev,subtype=ringdev,allow_other,auto_unmount"
								: "fsname=ringdev,subtype=ringdev,allow_other";
	char *argv[] = { "ringdevd", "-o", (char *)opts, NULL };
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	int code = 1;
	struct fuse_session *se = fuse_session_new(&args, &fs_ops, sizeof(fs_ops), dev);
	if (!se) {
		fprintf(stderr, "ringdevd: %s: cannot create FUSE session\n", mount);
		goto out_dev;
	}
	if (fuse_session_mount(se, mount) < 0) {
		fprintf(stderr, "ringdevd: %s: mount failed (is /dev/fuse there and usable?)\n", mount);
		goto out_session;
	}
	restart_set_extra(snapshots_save, snapshots_load);
	snprintf(fuse_mount_path, sizeof(fuse_mount_path), "%s", mount);
	if (restart_attach_session(se, 0, fuse_session_fd(se)) < 0) {
		fprintf(stderr, "ringdevd: %s: cannot serve the mount's connection\n", mount);
		fuse_session_unmount(se);
		goto out_session;
	}
	log_info("serving FUSE mount %s", mount);
	code = frontend_serve(&se, 1, dev, cfg, mount);
	if (restart_kept_in_store()) {
		fuse_opt_free_args(&args);
		return code; /* the mount, and every request, wait for the next start */
	}
	fuse_session_unmount(se);
	if (cfg->run_as.set && !cfg->fd_store)
		log_info("%s: fusermount3 unmounts it once ringdevd exits", mount);
	else if (cfg->run_as.set)
		log_warn("%s: left mounted (--user: no right to unmount); the next start removes it", mount);
	else
		log_info("unmounted %s", mount);
out_session:
	fuse_session_destroy(se);
	while (!list_empty(&fuse_snapshots))
		snapshot_free(list_entry(list_first(&fuse_snapshots), struct dir_snapshot, link));
out_dev:
	device_free(dev);
	fuse_opt_free_args(&args);
	return code;
}
