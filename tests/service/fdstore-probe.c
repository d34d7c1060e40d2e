/* SPDX-License-Identifier: MIT */
/*
 * fdstore-probe.c - a tiny Type=notify service that keeps its state in the
 * fd store, the way ringdevd does for issue 20, so test-supervise.sh can
 * check ringdev-supervise against the real client side: libsystemd's
 * sd_pid_notify_with_fds and sd_listen_fds_with_names.
 *
 * First start (no LISTEN_FDS): a memfd holding a counter (1) is stored as
 * "state", the read end of a pipe holding 5 bytes as "pipe" (with FDPOLL=0:
 * its write end is closed, which a polling manager takes for a hang-up).
 * Later starts find both by name, add one to the counter and say so.  Every
 * start ends with "STATUS=counter=N fds=K names=A,B,..\nREADY=1", so the test
 * reads the state from the supervisor's events.
 *
 * Then it serves commands, one per line, from the FIFO named by its only
 * argument (opened read-write, so it never sees EOF), each acknowledged with
 * a STATUS=done CMD sent after the work:
 *   remove NAME  FDSTOREREMOVE=1 of NAME
 *   dup          store "state" again (one open file: not stored twice)
 *   flood N      store N new memfds in one message as "flood"
 *   hup          store a pipe's read end as "hup", then close its write end
 *   other        a child of ours sends STATUS and an fd (not the main pid)
 *   mainpid      a child of ours becomes the main pid (MAINPID=), we exit 0
 *   exit N       exit with status N
 *   last N       store a new memfd as "last" and exit N at once (what a
 *                process sends just before it dies still counts)
 * SIGHUP: RELOADING=1, then READY=1.  SIGTERM: STOPPING=1, exit 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#define PIPE_BYTES "12345"

__attribute__((noreturn)) static void die(const char *thing, int e)
{
	fprintf(stderr, "fdstore-probe: %s: %s\n", thing, strerror(e < 0 ? -e : e));
	exit(1);
}

static void notify(const char *msg)
{
	int r = sd_notify(0, msg);
	if (r <= 0)
		die("sd_notify", r < 0 ? r : ENOTCONN);
}

static void store(int fd, const char *name, bool poll_it)
{
	char msg[128];
	snprintf(msg, sizeof(msg), "FDSTORE=1\nFDNAME=%s%s", name, poll_it ? "" : "\nFDPOLL=0");
	int r = sd_pid_notify_with_fds(0, 0, msg, &fd, 1);
	if (r <= 0)
		die("sd_pid_notify_with_fds", r < 0 ? r : ENOTCONN);
}

static int state_fd = -1;

/* First start: make what later starts find. */
static unsigned first_start(void)
{
	state_fd = memfd_create("fdstore-probe-state", MFD_CLOEXEC);
	if (state_fd < 0)
		die("memfd_create", errno);
	unsigned counter = 1;
	if (pwrite(state_fd, &counter, sizeof(counter), 0) != (ssize_t)sizeof(counter))
		die("state memfd", errno);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe", errno);
	if (write(p[1], PIPE_BYTES, strlen(PIPE_BYTES)) != (ssize_t)strlen(PIPE_BYTES))
		die("pipe", errno);
	close(p[1]);
	store(state_fd, "state", true);
	store(p[0], "pipe", false);
	close(p[0]);
	return counter;
}

/* A restart: the state comes back by name. */
static unsigned restart(int n, char **names, char *list, size_t list_size)
{
	int pipe_fd = -1;
	for (int i = 0; i < n; i++) {
		int fd = SD_LISTEN_FDS_START + i;
		size_t len = strlen(list);
		snprintf(list + len, list_size - len, "%s%s", len ? "," : "", names[i]);
		if (strcmp(names[i], "state") == 0 && state_fd < 0)
			state_fd = fd;
		else if (strcmp(names[i], "pipe") == 0)
			pipe_fd = fd;
	}
	if (state_fd < 0)
		die("no fd named state", ENOENT);
	if (pipe_fd >= 0) {
		struct stat st;
		int queued = 0;
		if (fstat(pipe_fd, &st) < 0 || !S_ISFIFO(st.st_mode) || ioctl(pipe_fd, FIONREAD, &queued) < 0 ||
		    queued != (int)strlen(PIPE_BYTES))
			die("the stored pipe is not the one stored", EINVAL);
	}
	unsigned counter;
	if (pread(state_fd, &counter, sizeof(counter), 0) != (ssize_t)sizeof(counter))
		die("state memfd", errno);
	counter++;
	if (pwrite(state_fd, &counter, sizeof(counter), 0) != (ssize_t)sizeof(counter))
		die("state memfd", errno);
	return counter;
}

static void send_done(const char *cmd)
{
	char msg[600];
	snprintf(msg, sizeof(msg), "STATUS=done %s", cmd);
	notify(msg);
}

static void cmd_other(void)
{
	pid_t pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		int fd = memfd_create("fdstore-probe-other", MFD_CLOEXEC);
		sd_pid_notify_with_fds(0, 0, "STATUS=from-other\nFDSTORE=1\nFDNAME=other", &fd, 1);
		_exit(0);
	}
	waitpid(pid, NULL, 0);
}

static void cmd_flood(unsigned n)
{
	int fds[64];
	if (n > 64)
		n = 64;
	for (unsigned i = 0; i < n; i++) {
		fds[i] = memfd_create("fdstore-probe-flood", MFD_CLOEXEC);
		if (fds[i] < 0)
			die("memfd_create", errno);
	}
	int r = sd_pid_notify_with_fds(0, 0, "FDSTORE=1\nFDNAME=flood", fds, n);
	if (r <= 0)
		die("sd_pid_notify_with_fds", r < 0 ? r : ENOTCONN);
	for (unsigned i = 0; i < n; i++)
		close(fds[i]);
}

static void cmd_hup(void)
{
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		die("pipe", errno);
	store(p[0], "hup", true);
	close(p[0]);
	close(p[1]); /* now the stored read end hangs up */
}

/* A child takes over as the main process and we go, as a daemon that
 * re-execs itself would.  It waits for SIGTERM and exits 0. */
__attribute__((noreturn)) static void cmd_mainpid(void)
{
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	pid_t pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		int sig;
		sigwait(&set, &sig);
		_exit(0);
	}
	char msg[64];
	snprintf(msg, sizeof(msg), "MAINPID=%d\nSTATUS=done mainpid", (int)pid);
	notify(msg);
	/* From now on we are not the main pid: this one is ignored. */
	notify("STATUS=from-old-main");
	exit(0);
}

static void command(char *line)
{
	char *arg = strchr(line, ' ');
	if (arg)
		*arg++ = '\0';
	if (strcmp(line, "remove") == 0 && arg) {
		char msg[600];
		snprintf(msg, sizeof(msg), "FDSTOREREMOVE=1\nFDNAME=%s", arg);
		notify(msg);
	} else if (strcmp(line, "dup") == 0) {
		store(state_fd, "state", true);
	} else if (strcmp(line, "flood") == 0 && arg) {
		cmd_flood((unsigned)atoi(arg));
	} else if (strcmp(line, "hup") == 0) {
		cmd_hup();
	} else if (strcmp(line, "other") == 0) {
		cmd_other();
	} else if (strcmp(line, "mainpid") == 0) {
		cmd_mainpid();
	} else if (strcmp(line, "exit") == 0 && arg) {
		exit(atoi(arg));
	} else if (strcmp(line, "last") == 0 && arg) {
		int fd = memfd_create("fdstore-probe-last", MFD_CLOEXEC);
		if (fd < 0)
			die("memfd_create", errno);
		store(fd, "last", true);
		_exit(atoi(arg));
	} else {
		fprintf(stderr, "fdstore-probe: %s: unknown command\n", line);
		return;
	}
	send_done(line);
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: fdstore-probe FIFO\n");
		return 2;
	}
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigprocmask(SIG_BLOCK, &set, NULL);
	int sfd = signalfd(-1, &set, SFD_CLOEXEC);
	int cmd_fd = open(argv[1], O_RDWR | O_CLOEXEC);
	if (sfd < 0 || cmd_fd < 0)
		die(sfd < 0 ? "signalfd" : argv[1], errno);

	/* As passed, before sd_listen_fds sets FD_CLOEXEC on them: each one
	 * open and inherited through exec. */
	const char *listen = getenv("LISTEN_FDS");
	for (int i = 0; listen && i < atoi(listen); i++)
		if (fcntl(SD_LISTEN_FDS_START + i, F_GETFD) != 0)
			die("a passed fd is closed or has FD_CLOEXEC", EBADF);
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);
	if (n < 0)
		die("sd_listen_fds_with_names", n);
	char list[1024] = "";
	unsigned counter = n == 0 ? first_start() : restart(n, names, list, sizeof(list));
	char msg[1200];
	snprintf(msg, sizeof(msg), "STATUS=counter=%u fds=%d names=%s\nREADY=1", counter, n, list);
	notify(msg);
	printf("counter=%u\n", counter);
	fflush(stdout);

	char buf[512];
	size_t have = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = sfd, .events = POLLIN }, { .fd = cmd_fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll", errno);
		}
		if (p[0].revents) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
				if (si.ssi_signo == SIGTERM) {
					notify("STOPPING=1");
					return 0;
				}
				notify("RELOADING=1");
				notify("STATUS=reloaded\nREADY=1");
			}
		}
		if (p[1].revents) {
			ssize_t r = read(cmd_fd, buf + have, sizeof(buf) - 1 - have);
			if (r <= 0)
				die(argv[1], r < 0 ? errno : EPIPE);
			have += (size_t)r;
			char *nl;
			while ((nl = memchr(buf, '\n', have))) {
				*nl = '\0';
				command(buf);
				have -= (size_t)(nl + 1 - buf);
				memmove(buf, nl + 1, have);
			}
			if (have == sizeof(buf) - 1)
				have = 0; /* a line too long: dropped */
		}
	}
}
