/* SPDX-License-Identifier: MIT */
/*
 * ringdev-supervise.c - the service manager's end of the sd_notify and file
 * descriptor store protocol, so tests can restart and crash ringdevd and
 * check that it keeps its kernel connection and state, on hosts without
 * systemd and without touching the host's systemd where there is one.
 *
 * It speaks to its child what systemd speaks to a Type=notify service with
 * NotifyAccess=main, FileDescriptorStoreMax=N, KillMode=mixed and, with
 * --restart-on-exit, Restart=on-failure:
 * - $NOTIFY_SOCKET names a SOCK_DGRAM socket with SO_PASSCRED in a private
 *   folder; a datagram is accepted only from the main pid (by the kernel's
 *   SCM_CREDENTIALS), MAINPID= moves the main pid;
 * - FDSTORE=1 keeps every fd of the message (FDNAME=, default "stored")
 *   up to the maximum, closing the rest; an fd whose open file is already
 *   stored is closed, not stored twice (systemd's same_fd: F_DUPFD_QUERY,
 *   then kcmp; a kernel with neither keeps both); a stored fd that reports
 *   POLLHUP or POLLERR is closed and forgotten unless it came with FDPOLL=0;
 *   FDSTOREREMOVE=1 with FDNAME= closes every fd of that name;
 * - each start gets the store at fds 3.. with LISTEN_PID, LISTEN_FDS and
 *   LISTEN_FDNAMES, newest first as systemd lists them (its store is a
 *   list it prepends to), so a service must go by the names, not the order;
 * - stop (SIGTERM, SIGINT) sends SIGTERM to the main pid, SIGKILL after
 *   --stop-timeout, then SIGKILL to whatever else of the service is left
 *   (its session, which each start opens with setsid(), and any orphan
 *   reparented to us: we are a child subreaper), and closes the store;
 *   restart (SIGUSR1) does the same but keeps the store and starts again.
 * It never calls libsystemd: it is the other end of that library.
 *
 * Events go one line each to --events FILE (default stderr), written with
 * one write(2) as they happen, so a test can wait for a line; see --help.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <linux/kcmp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef F_DUPFD_QUERY
#define F_DUPFD_QUERY 1027 /* Linux 6.10: does this fd share its open file with that one */
#endif

#define PROG "ringdev-supervise"
/* systemd's limits: a notify datagram is at most PIPE_BUF (NOTIFY_BUFFER_MAX),
 * the kernel passes at most SCM_MAX_FD fds in one message, a name is at most
 * FDNAME_MAX characters. */
#define NOTIFY_MAX 4096
#define SCM_MAX_FD 253
#define FDNAME_MAX 255
#define RESTART_LIMIT 10
#define FDSTORE_MAX_LIMIT 4096
/* How long a SIGKILLed process may take to go before we stop waiting for it
 * (one stuck in the kernel would otherwise hang the test that runs us). */
#define KILL_WAIT_MS 5000

struct stored {
	int fd;
	bool poll; /* closed on POLLHUP/POLLERR (not sent with FDPOLL=0) */
	char name[FDNAME_MAX + 1];
};

static struct {
	bool restart_on_exit;
	unsigned fdstore_max;
	int64_t stop_timeout_ms;
	char **argv;

	int events_fd;
	int notify_fd;
	int signal_fd;
	char dir[PATH_MAX];
	char sock_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

	struct stored *store; /* store[0] is the newest */
	size_t n_store;

	pid_t main_pid;     /* 0: none */
	int main_pidfd;     /* watches a main pid set by MAINPID= */
	bool main_alien;    /* main pid set by MAINPID= and no pidfd: polled */
	pid_t session;      /* session of the last start (its pid) */
	bool stopping;      /* SIGTERM sent to the main pid */
	bool killed;        /* ... and after the timeout, SIGKILL */
	int64_t deadline;   /* of the current stopping step, ms; 0: none */
	bool exit_pending;  /* stop, then exit 0 */
	bool restart_pending; /* stop, then start again */
	unsigned auto_restarts;
} S = { .fdstore_max = 64, .stop_timeout_ms = 10000, .events_fd = -1, .notify_fd = -1,
	.signal_fd = -1, .main_pidfd = -1 };

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void error_line(const char *thing, const char *reason)
{
	fprintf(stderr, PROG ": %s: %s\n", thing, reason);
}

/* One event, one write: lines of the supervisor never interleave, and a
 * reader sees a line whole once it is there.  A failing events file is
 * not a reason to stop supervising. */
__attribute__((format(printf, 1, 2))) static void event(const char *fmt, ...)
{
	char line[NOTIFY_MAX + 256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	size_t len = (size_t)n < sizeof(line) - 2 ? (size_t)n : sizeof(line) - 2;
	line[len++] = '\n';
	size_t off = 0;
	while (off < len) {
		ssize_t w = write(S.events_fd, line + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

/* --- the store ------------------------------------------------------- */

/* Whether a and b share one open file (not merely one inode: two opens of
 * one file are two entries, as in systemd). */
static bool same_open_file(int a, int b)
{
	struct stat sa, sb;
	if (fstat(a, &sa) < 0 || fstat(b, &sb) < 0)
		return false;
	if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino || ((sa.st_mode ^ sb.st_mode) & S_IFMT))
		return false;
	int r = fcntl(a, F_DUPFD_QUERY, b);
	if (r >= 0)
		return r == 1;
	pid_t me = getpid();
	long k = syscall(SYS_kcmp, me, me, KCMP_FILE, a, b);
	return k == 0;
}

static void store_remove_at(size_t i)
{
	close(S.store[i].fd);
	memmove(&S.store[i], &S.store[i + 1], (S.n_store - i - 1) * sizeof(S.store[0]));
	S.n_store--;
}

static void store_add(pid_t pid, int *fds, size_t n, const char *name, bool poll_it)
{
	size_t dropped = 0, duplicates = 0;
	for (size_t i = 0; i < n; i++) {
		if (S.n_store >= S.fdstore_max) {
			dropped = n - i; /* the caller closes them */
			break;
		}
		bool known = false;
		for (size_t j = 0; j < S.n_store && !known; j++)
			known = same_open_file(S.store[j].fd, fds[i]);
		if (known) {
			duplicates++;
			continue;
		}
		memmove(&S.store[1], &S.store[0], S.n_store * sizeof(S.store[0]));
		S.store[0].fd = fds[i];
		S.store[0].poll = poll_it;
		snprintf(S.store[0].name, sizeof(S.store[0].name), "%s", name);
		S.n_store++;
		fds[i] = -1;
	}
	if (duplicates)
		event("fdstore-duplicate pid=%d name=%s count=%zu", (int)pid, name, duplicates);
	if (dropped)
		event("fdstore-full pid=%d name=%s dropped=%zu max=%u", (int)pid, name, dropped, S.fdstore_max);
	event("fdstore pid=%d name=%s count=%zu", (int)pid, name, S.n_store);
}

static void store_remove(const char *name)
{
	for (size_t i = 0; i < S.n_store;) {
		if (strcmp(S.store[i].name, name) == 0)
			store_remove_at(i);
		else
			i++;
	}
	event("fdstore-remove name=%s", name);
}

static void store_flush(void)
{
	while (S.n_store)
		store_remove_at(S.n_store - 1);
}

/* systemd's fdname_is_valid: printable ASCII but ':', the separator of
 * $LISTEN_FDNAMES, at most 255 characters. */
static bool fdname_valid(const char *s)
{
	size_t len = 0;
	for (; s[len]; len++)
		if (s[len] < ' ' || s[len] > '~' || s[len] == ':')
			return false;
	return len <= FDNAME_MAX;
}

/* --- processes ------------------------------------------------------- */

struct proc_stat {
	char state;
	long ppid, session;
};

static int read_stat(pid_t pid, struct proc_stat *out)
{
	/* /proc/PID/stat: "pid (comm) state ppid pgrp session ...", comm may
	 * hold anything, so read from the last ')'. */
	char path[64], buf[512];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')');
	long pgrp;
	if (!p || sscanf(p + 1, " %c %ld %ld %ld", &out->state, &out->ppid, &pgrp, &out->session) != 4)
		return -1;
	return 0;
}

/* SIGKILL what is left of the service: its session and every child of ours
 * (as a subreaper we inherit its orphans, even those that left the session).
 * Returns how many processes were still there. */
static unsigned kill_leftovers(void)
{
	unsigned found = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	pid_t me = getpid();
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);
		if (*end || pid <= 1 || pid == me)
			continue;
		struct proc_stat st;
		if (read_stat((pid_t)pid, &st) < 0 || st.state == 'Z' || st.state == 'X')
			continue; /* gone, or dead and waiting for its parent (we reap ours) */
		if ((S.session > 0 && st.session == S.session) || st.ppid == me) {
			kill((pid_t)pid, SIGKILL);
			found++;
		}
	}
	closedir(d);
	return found;
}

static void close_main_watch(void)
{
	if (S.main_pidfd >= 0)
		close(S.main_pidfd);
	S.main_pidfd = -1;
	S.main_alien = false;
}

static void cleanup_files(void)
{
	if (S.sock_path[0])
		unlink(S.sock_path);
	if (S.dir[0])
		rmdir(S.dir);
}

/* The end: nothing of the service survives us, the store is closed, our
 * folder is gone. */
__attribute__((noreturn)) static void finish(int code)
{
	if (S.main_pid > 0)
		kill(S.main_pid, SIGKILL);
	int64_t end = now_ms() + KILL_WAIT_MS;
	for (;;) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		if (kill_leftovers() == 0)
			break;
		if (now_ms() >= end) {
			error_line("stop", "processes of the service are still there after SIGKILL");
			code = 1;
			break;
		}
		usleep(10000);
	}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	store_flush();
	cleanup_files();
	exit(code);
}

/* After fork, in the child: what systemd's exec of a service does that
 * matters here, then exec.  We are single-threaded, so anything goes. */
__attribute__((noreturn)) static void child_exec(const char *names)
{
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGPIPE, SIG_DFL);
	setsid();
	int nul = open("/dev/null", O_RDONLY);
	if (nul >= 0 && nul != STDIN_FILENO) {
		dup2(nul, STDIN_FILENO);
		close(nul);
	}
	/* Stored fds to 3.. without FD_CLOEXEC: first all above the target
	 * range, so no move overwrites one not yet moved. */
	int n = (int)S.n_store;
	for (int i = 0; i < n; i++) {
		S.store[i].fd = fcntl(S.store[i].fd, F_DUPFD_CLOEXEC, 3 + n);
		if (S.store[i].fd < 0) {
			error_line("passing the stored fds", strerror(errno));
			_exit(127);
		}
	}
	for (int i = 0; i < n; i++) {
		if (dup2(S.store[i].fd, 3 + i) < 0) { /* the copy at 3 + i has no FD_CLOEXEC */
			error_line("passing the stored fds", strerror(errno));
			_exit(127);
		}
	}
	/* Nothing else of ours (or of whoever started us) gets through. */
	if (syscall(SYS_close_range, 3 + n, ~0u, 0) < 0) {
		long max = sysconf(_SC_OPEN_MAX);
		for (long fd = 3 + n; fd < (max > 0 && max < 65536 ? max : 65536); fd++)
			close((int)fd);
	}
	if (n > 0) {
		char v[32];
		snprintf(v, sizeof(v), "%d", (int)getpid());
		setenv("LISTEN_PID", v, 1);
		snprintf(v, sizeof(v), "%d", n);
		setenv("LISTEN_FDS", v, 1);
		setenv("LISTEN_FDNAMES", names, 1);
	} else {
		unsetenv("LISTEN_PID");
		unsetenv("LISTEN_FDS");
		unsetenv("LISTEN_FDNAMES");
	}
	unsetenv("WATCHDOG_PID");
	unsetenv("WATCHDOG_USEC");
	setenv("NOTIFY_SOCKET", S.sock_path, 1);
	execvp(S.argv[0], S.argv);
	error_line(S.argv[0], strerror(errno));
	_exit(127);
}

static void start_child(void)
{
	size_t len = 1;
	for (size_t i = 0; i < S.n_store; i++)
		len += strlen(S.store[i].name) + 1;
	char *names = malloc(len);
	if (!names) {
		error_line("start", strerror(ENOMEM));
		finish(1);
	}
	names[0] = '\0';
	for (size_t i = 0; i < S.n_store; i++) {
		if (i)
			strcat(names, ":");
		strcat(names, S.store[i].name);
	}
	pid_t pid = fork();
	if (pid < 0) {
		free(names);
		error_line("fork", strerror(errno));
		finish(1);
	}
	if (pid == 0)
		child_exec(names);
	free(names);
	close_main_watch();
	S.main_pid = pid;
	S.session = pid;
	S.stopping = S.killed = false;
	S.deadline = 0;
	event("start pid=%d fds=%zu", (int)pid, S.n_store);
}

static void begin_stop(void)
{
	if (S.stopping || S.main_pid <= 0)
		return;
	kill(S.main_pid, SIGTERM);
	S.stopping = true;
	S.deadline = now_ms() + S.stop_timeout_ms;
}

static void drain_notify(void);

/* The main process is gone: status is its wait status, or -1 when it was
 * not our child and nobody can tell. */
static void main_exited(int status)
{
	pid_t pid = S.main_pid;
	/* What it sent before it went still counts, as in systemd (there the
	 * notify socket has priority over SIGCHLD). */
	drain_notify();
	if (S.main_pid != pid)
		return; /* its last message was MAINPID=: the service goes on */
	bool failed;
	if (status == -1) {
		event("exit pid=%d status=unknown", (int)pid);
		failed = true;
	} else if (WIFSIGNALED(status)) {
		const char *sig = sigabbrev_np(WTERMSIG(status));
		if (sig)
			event("exit pid=%d status=signal=SIG%s", (int)pid, sig);
		else
			event("exit pid=%d status=signal=%d", (int)pid, WTERMSIG(status));
		failed = true;
	} else {
		event("exit pid=%d status=%d", (int)pid, WEXITSTATUS(status));
		failed = WEXITSTATUS(status) != 0;
	}
	S.main_pid = 0;
	close_main_watch();
	S.stopping = S.killed = false;
	S.deadline = 0;
	/* KillMode=mixed: the rest of the service goes with its main process. */
	int64_t end = now_ms() + KILL_WAIT_MS;
	while (kill_leftovers() > 0 && now_ms() < end) {
		while (waitpid(-1, NULL, WNOHANG) > 0)
			;
		usleep(10000);
	}
	if (S.exit_pending)
		finish(0);
	if (S.restart_pending) {
		S.restart_pending = false;
		start_child();
		return;
	}
	if (failed && S.restart_on_exit) {
		if (S.auto_restarts >= RESTART_LIMIT) {
			error_line(S.argv[0], "failed again after 10 restarts: giving up");
			finish(1);
		}
		S.auto_restarts++;
		start_child();
		return;
	}
	finish(failed ? 1 : 0);
}

static void reap_all(void)
{
	int status;
	pid_t pid;
	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		if (pid == S.main_pid)
			main_exited(status);
}

/* --- notify messages ------------------------------------------------- */

/* The value of the first line "KEY=...", or NULL. */
static const char *tag(char **lines, size_t n, const char *key)
{
	size_t k = strlen(key);
	for (size_t i = 0; i < n; i++)
		if (strncmp(lines[i], key, k) == 0 && lines[i][k] == '=')
			return lines[i] + k + 1;
	return NULL;
}

static bool has_line(char **lines, size_t n, const char *line)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(lines[i], line) == 0)
			return true;
	return false;
}

static void set_main_pid(pid_t sender, const char *v)
{
	char *end;
	errno = 0;
	long pid = strtol(v, &end, 10);
	if (errno || end == v || *end || pid <= 1 || pid > INT_MAX || pid == getpid() ||
	    (kill((pid_t)pid, 0) < 0 && errno != EPERM)) {
		event("ignored pid=%d reason=bad-mainpid", (int)sender);
		return;
	}
	if ((pid_t)pid == S.main_pid)
		return;
	close_main_watch();
	S.main_pid = (pid_t)pid;
	/* A pid that is not our child is watched through a pidfd; once it is
	 * ours (its parent died and we are its subreaper) SIGCHLD tells too. */
	S.main_pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
	if (S.main_pidfd < 0)
		S.main_alien = true;
	event("mainpid pid=%d new=%d", (int)sender, (int)pid);
}

static void handle_message(char *buf, size_t len, pid_t sender, int *fds, size_t nfds)
{
	if (memchr(buf, '\0', len)) {
		event("ignored pid=%d reason=nul-byte", (int)sender);
		return;
	}
	buf[len] = '\0';
	char *lines[NOTIFY_MAX / 2 + 1];
	size_t n = 0;
	for (char *save = NULL, *l = strtok_r(buf, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
		lines[n++] = l;

	/* In systemd's order. */
	const char *v = tag(lines, n, "MAINPID");
	if (v)
		set_main_pid(sender, v);
	if (has_line(lines, n, "READY=1"))
		event("ready pid=%d", (int)sender);
	if (has_line(lines, n, "RELOADING=1"))
		event("reloading pid=%d", (int)sender);
	if (has_line(lines, n, "STOPPING=1"))
		event("stopping pid=%d", (int)sender);
	v = tag(lines, n, "STATUS");
	if (v)
		event("status pid=%d %s", (int)sender, v);

	const char *name = tag(lines, n, "FDNAME");
	if (name && !fdname_valid(name)) {
		event("fdname-invalid pid=%d", (int)sender); /* systemd: the default name */
		name = NULL;
	}
	if (has_line(lines, n, "FDSTOREREMOVE=1")) {
		if (name)
			store_remove(name);
		else
			event("ignored pid=%d reason=fdstoreremove-without-fdname", (int)sender);
	}
	if (nfds > 0) {
		if (has_line(lines, n, "FDSTORE=1"))
			store_add(sender, fds, nfds, name ? name : "stored", !has_line(lines, n, "FDPOLL=0"));
		else
			event("fds-closed pid=%d count=%zu reason=no-fdstore", (int)sender, nfds);
	}
}

static void drain_notify(void)
{
	for (;;) {
		char buf[NOTIFY_MAX + 1];
		union {
			struct cmsghdr align;
			char b[CMSG_SPACE(sizeof(struct ucred)) + CMSG_SPACE(sizeof(int) * SCM_MAX_FD)];
		} ctl;
		struct iovec iov = { .iov_base = buf, .iov_len = NOTIFY_MAX };
		struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = &ctl,
				    .msg_controllen = sizeof(ctl) };
		ssize_t r = recvmsg(S.notify_fd, &m, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				error_line(S.sock_path, strerror(errno));
			return;
		}
		int *fds = NULL;
		size_t nfds = 0;
		struct ucred *cred = NULL;
		for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
			if (c->cmsg_level != SOL_SOCKET)
				continue;
			if (c->cmsg_type == SCM_RIGHTS) {
				fds = (int *)(void *)CMSG_DATA(c);
				nfds = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
			} else if (c->cmsg_type == SCM_CREDENTIALS && c->cmsg_len == CMSG_LEN(sizeof(struct ucred))) {
				cred = (struct ucred *)(void *)CMSG_DATA(c);
			}
		}
		pid_t sender = cred ? cred->pid : 0;
		if (m.msg_flags & MSG_CTRUNC)
			event("ignored pid=%d reason=control-truncated", (int)sender);
		else if ((size_t)r > NOTIFY_MAX)
			event("ignored pid=%d reason=too-long", (int)sender);
		else if (sender <= 0)
			event("ignored pid=0 reason=no-credentials");
		else if (sender != S.main_pid)
			event("ignored pid=%d reason=not-main-pid", (int)sender);
		else
			handle_message(buf, (size_t)r, sender, fds, nfds);
		for (size_t i = 0; i < nfds; i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
}

/* --- setup and the loop ---------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " PROG " [--restart-on-exit] [--events FILE] [--fdstore-max N]\n"
		"                         [--stop-timeout SECONDS] -- COMMAND [ARG]...\n"
		"Run COMMAND as systemd runs a Type=notify service with NotifyAccess=main,\n"
		"FileDescriptorStoreMax=N and KillMode=mixed: $NOTIFY_SOCKET, the fd store\n"
		"(FDSTORE=1, FDNAME=, FDPOLL=0, FDSTOREREMOVE=1), LISTEN_FDS/LISTEN_FDNAMES.\n"
		"A test tool: no libsystemd, no systemd needed.\n"
		"\n"
		"  --restart-on-exit  start COMMAND again after a failed exit (Restart=on-failure),\n"
		"                     at most 10 times (SIGUSR1 restarts do not count), then exit 1\n"
		"  --events FILE      append event lines to FILE (default: stderr)\n"
		"  --fdstore-max N    keep at most N stored fds (default 64, at most 4096)\n"
		"  --stop-timeout S   SIGKILL a main process S seconds after SIGTERM (default 10)\n"
		"  --help             this text\n"
		"\n"
		"Signals: SIGTERM, SIGINT stop (SIGTERM to the main pid, wait, close the store,\n"
		"exit 0); SIGUSR1 restarts keeping the store; SIGUSR2 SIGKILLs the main pid\n"
		"(a crash); SIGHUP is passed on to the main pid.\n"
		"\n"
		"Events, one line each: supervisor pid=N; start pid=N fds=K; ready pid=N;\n"
		"status pid=N TEXT; reloading pid=N; stopping pid=N; mainpid pid=N new=M;\n"
		"fdstore pid=N name=NAME count=C (C: fds now held); fdstore-full pid=N\n"
		"name=NAME dropped=D max=M; fdstore-duplicate pid=N name=NAME count=D;\n"
		"fdstore-remove name=NAME; fdstore-hup name=NAME count=C; fds-closed pid=N\n"
		"count=K reason=R; fdname-invalid pid=N; ignored pid=N reason=R;\n"
		"stop-timeout pid=N; exit pid=N status=S (S: the exit code, signal=SIGNAME,\n"
		"or unknown for a MAINPID= process that was not our child).\n"
		"\n"
		"Exit status: 0 stopped, or COMMAND exited 0; 1 COMMAND failed (and was not\n"
		"restarted) or an error; 2 usage.\n");
}

__attribute__((noreturn)) static void usage_error(const char *thing, const char *reason)
{
	error_line(thing, reason);
	fprintf(stderr, "Try '" PROG " --help'.\n");
	exit(2);
}

static unsigned long parse_number(const char *opt, const char *s, unsigned long max)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || end == s || *end || s[0] == '-' || s[0] == '+' || v > max)
		usage_error(opt, "not a number in range");
	return v;
}

static void parse_args(int argc, char **argv, const char **events_path)
{
	static const struct option opts[] = {
		{ "restart-on-exit", no_argument, NULL, 'r' },
		{ "events", required_argument, NULL, 'e' },
		{ "fdstore-max", required_argument, NULL, 'm' },
		{ "stop-timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	opterr = 0;
	int c;
	/* '+': the first non-option starts COMMAND, its options are its own */
	while ((c = getopt_long(argc, argv, "+:h", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			S.restart_on_exit = true;
			break;
		case 'e':
			*events_path = optarg;
			break;
		case 'm':
			S.fdstore_max = (unsigned)parse_number("--fdstore-max", optarg, FDSTORE_MAX_LIMIT);
			break;
		case 't':
			S.stop_timeout_ms = (int64_t)parse_number("--stop-timeout", optarg, 86400) * 1000;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		case ':':
			usage_error(argv[optind - 1], "needs a value");
		default:
			usage_error(argv[optind - 1], "unknown option");
		}
	}
	if (optind >= argc)
		usage_error("COMMAND", "missing");
	S.argv = argv + optind;
}

static void setup(const char *events_path)
{
	/* 0, 1, 2 open, so none of our own fds lands there. */
	for (int fd = 0; fd < 3; fd++)
		if (fcntl(fd, F_GETFD) < 0 && open("/dev/null", O_RDWR) < 0)
			exit(1);
	if (events_path) {
		S.events_fd = open(events_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (S.events_fd < 0) {
			error_line(events_path, strerror(errno));
			exit(1);
		}
	} else {
		S.events_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	}
	S.store = calloc(S.fdstore_max ? S.fdstore_max : 1, sizeof(S.store[0]));
	if (!S.store) {
		error_line("fd store", strerror(ENOMEM));
		exit(1);
	}

	sigset_t set;
	sigemptyset(&set);
	int sigs[] = { SIGTERM, SIGINT, SIGUSR1, SIGUSR2, SIGHUP, SIGCHLD };
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		/* an ignored signal never reaches a signalfd: a shell starts
		 * background jobs with SIGINT ignored */
		signal(sigs[i], SIG_DFL);
		sigaddset(&set, sigs[i]);
	}
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN); /* an events pipe whose reader went */
	S.signal_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (S.signal_fd < 0) {
		error_line("signalfd", strerror(errno));
		exit(1);
	}
	/* Orphans of the service come to us, so we can reap and kill them. */
	if (prctl(PR_SET_CHILD_SUBREAPER, 1) < 0) {
		error_line("PR_SET_CHILD_SUBREAPER", strerror(errno));
		exit(1);
	}

	const char *tmp = getenv("TMPDIR");
	snprintf(S.dir, sizeof(S.dir), "%s/ringdev-supervise.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(S.dir)) {
		error_line(S.dir, strerror(errno));
		S.dir[0] = '\0';
		exit(1);
	}
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	if ((size_t)snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/notify", S.dir) >= sizeof(addr.sun_path)) {
		error_line(S.dir, "too long for a unix socket path");
		cleanup_files();
		exit(1);
	}
	S.notify_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int one = 1;
	if (S.notify_fd < 0 || bind(S.notify_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    setsockopt(S.notify_fd, SOL_SOCKET, SO_PASSCRED, &one, sizeof(one)) < 0) {
		error_line(addr.sun_path, strerror(errno));
		cleanup_files();
		exit(1);
	}
	/* As systemd's: a service that dropped its privileges (ringdevd
	 * --user) still reaches the socket; only its main pid is heard. */
	if (chmod(S.dir, 0755) < 0 || chmod(addr.sun_path, 0666) < 0) {
		error_line(addr.sun_path, strerror(errno));
		cleanup_files();
		exit(1);
	}
	snprintf(S.sock_path, sizeof(S.sock_path), "%s", addr.sun_path);
}

static void handle_signal(int sig)
{
	switch (sig) {
	case SIGTERM:
	case SIGINT:
		S.exit_pending = true;
		S.restart_pending = false;
		if (S.main_pid <= 0)
			finish(0);
		begin_stop();
		break;
	case SIGUSR1:
		if (S.exit_pending || S.main_pid <= 0)
			break;
		S.restart_pending = true;
		begin_stop();
		break;
	case SIGUSR2:
		if (S.main_pid > 0)
			kill(S.main_pid, SIGKILL);
		break;
	case SIGHUP:
		if (S.main_pid > 0)
			kill(S.main_pid, SIGHUP);
		break;
	case SIGCHLD:
		reap_all();
		break;
	}
}

static void stored_fd_events(const struct pollfd *p, size_t n)
{
	/* p[i] watched the fd that was store[i] when poll was called; entries
	 * may have gone since, so match by fd number and name once more. */
	for (size_t i = 0; i < n; i++) {
		if (!(p[i].revents & (POLLHUP | POLLERR)))
			continue;
		for (size_t j = 0; j < S.n_store; j++) {
			if (S.store[j].fd != p[i].fd || !S.store[j].poll)
				continue;
			char name[FDNAME_MAX + 1];
			snprintf(name, sizeof(name), "%s", S.store[j].name);
			store_remove_at(j);
			event("fdstore-hup name=%s count=%zu", name, S.n_store);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	const char *events_path = NULL;
	parse_args(argc, argv, &events_path);
	setup(events_path);
	event("supervisor pid=%d", (int)getpid());
	start_child();

	struct pollfd *p = calloc(3 + (S.fdstore_max ? S.fdstore_max : 1), sizeof(*p));
	if (!p) {
		error_line("poll set", strerror(ENOMEM));
		finish(1);
	}
	for (;;) {
		size_t n = 0;
		p[n++] = (struct pollfd){ .fd = S.notify_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = S.signal_fd, .events = POLLIN };
		p[n++] = (struct pollfd){ .fd = S.main_pidfd, .events = POLLIN }; /* -1: skipped */
		size_t first_stored = n;
		for (size_t i = 0; i < S.n_store; i++)
			p[n++] = (struct pollfd){ .fd = S.store[i].poll ? S.store[i].fd : -1, .events = 0 };

		int timeout = -1;
		if (S.deadline) {
			int64_t left = S.deadline - now_ms();
			timeout = left < 0 ? 0 : (int)left;
		}
		if (S.main_alien && (timeout < 0 || timeout > 100))
			timeout = 100;
		int r = poll(p, (nfds_t)n, timeout);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			error_line("poll", strerror(errno));
			finish(1);
		}
		/* Messages first: a message sent before a signal or an exit is
		 * handled before it. */
		if (p[0].revents)
			drain_notify();
		if (p[1].revents) {
			struct signalfd_siginfo si;
			while (read(S.signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si))
				handle_signal((int)si.ssi_signo);
		}
		pid_t watched = S.main_pid;
		if (watched > 0 && ((p[2].fd >= 0 && p[2].fd == S.main_pidfd && p[2].revents) ||
				    (S.main_alien && kill(watched, 0) < 0 && errno == ESRCH))) {
			reap_all(); /* ours after all (a subreaper's orphan): its status is known */
			if (S.main_pid == watched)
				main_exited(-1);
		}
		stored_fd_events(p + first_stored, n - first_stored);
		if (S.deadline && now_ms() >= S.deadline && S.main_pid > 0) {
			if (!S.killed) {
				event("stop-timeout pid=%d", (int)S.main_pid);
				kill(S.main_pid, SIGKILL);
				S.killed = true;
				S.deadline = now_ms() + KILL_WAIT_MS;
			} else {
				error_line("stop", "the main process is still there after SIGKILL");
				finish(1);
			}
		}
	}
}
