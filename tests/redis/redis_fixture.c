/* SPDX-License-Identifier: MIT */
/*
 * redis_fixture.c - see redis_fixture.h. The configuration goes in a file
 * in the server's folder (mode 0600), so a requirepass never shows on a
 * command line. The port comes from binding port 0 and letting it go; a
 * server that then cannot bind it (another process was quicker) exits,
 * and the start tries again on a new port.
 */
#include "redis_fixture.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#define RS_POOL_SIZE 8
#define RS_PORT_TRIES 5

static struct {
	bool in_use;
	struct redis_server server;
} pool[RS_POOL_SIZE];

static void say(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void say(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void pause_ms(unsigned ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* The redis-server to run: $REDIS_SERVER, else the first on PATH. */
static int find_server(char *out, size_t size)
{
	const char *env = getenv("REDIS_SERVER");
	const char *path = getenv("PATH");

	if (env && *env) {
		snprintf(out, size, "%s", env);
		return access(out, X_OK) == 0 ? 0 : -ENOENT;
	}
	if (!path)
		path = "/usr/bin:/bin:/usr/sbin:/sbin";
	while (*path) {
		size_t len = strcspn(path, ":");

		snprintf(out, size, "%.*s/redis-server", (int)len, path);
		if (len && access(out, X_OK) == 0)
			return 0;
		path += len + (path[len] == ':');
	}
	return -ENOENT;
}

static int free_port(uint16_t *port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int rc = 0;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		rc = -errno;
	else
		*port = ntohs(sa.sin_port);
	close(fd);
	return rc;
}

int redis_server_write_file(const struct redis_server *s, const char *name, const char *text, unsigned mode,
			    char *out, size_t out_size)
{
	char path[RS_PATH_SIZE + 64];
	size_t len = strlen(text);
	int fd, rc = 0;

	snprintf(path, sizeof(path), "%s/%s", s->dir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || fchmod(fd, (mode_t)mode) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	if (out)
		snprintf(out, out_size, "%s", path);
	return rc;
}

static int write_config(struct redis_server *s)
{
	char conf[2048];

	snprintf(conf, sizeof(conf),
		 "bind 127.0.0.1\n"
		 "port %u\n"
		 "dir %s\n"
		 "daemonize no\n"
		 "appendonly yes\n"
		 "appendfsync always\n"
		 "save \"\"\n"
		 "pidfile %s\n"
		 "logfile %s\n"
		 "%s%s\n",
		 (unsigned)s->port, s->dir, s->pidfile, s->log, s->password[0] ? "requirepass " : "",
		 s->password);
	return redis_server_write_file(s, "redis.conf", conf, 0600, NULL, 0);
}

/* Up when it answers PING (PONG, or NOAUTH when it has a password; not
 * LOADING, which a restart says while it reads its files back). */
static bool answers_ping(const struct redis_server *s)
{
	struct timeval tv = { .tv_sec = 0, .tv_usec = 200000 };
	redisContext *c = redisConnectWithTimeout("127.0.0.1", s->port, tv);
	redisReply *r;
	bool up = false;

	if (!c)
		return false;
	if (!c->err) {
		redisSetTimeout(c, tv);
		r = redisCommand(c, "PING");
		if (r) {
			up = (r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0) ||
			     (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOAUTH", 6) == 0);
			freeReplyObject(r);
		}
	}
	redisFree(c);
	return up;
}

/* Fork and exec the server on its config, then wait until it answers.
 * -EADDRINUSE if it exited at once (its port was taken). */
static int spawn(struct redis_server *s, char *err, size_t err_size)
{
	char bin[RS_PATH_SIZE], conf[RS_PATH_SIZE + 16];
	uint64_t deadline;
	pid_t parent = getpid();
	int status;

	if (find_server(bin, sizeof(bin)) < 0) {
		say(err, err_size, "no redis-server to run (set REDIS_SERVER or install redis-server)");
		return -ENOENT;
	}
	snprintf(conf, sizeof(conf), "%s/redis.conf", s->dir);
	s->pid = fork();
	if (s->pid < 0) {
		s->pid = 0;
		say(err, err_size, "fork: %s", strerror(errno));
		return -errno;
	}
	if (s->pid == 0) {
		int null = open("/dev/null", O_RDWR);

		/* the server goes with the test process, however that ends */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(127);
		if (null >= 0) {
			dup2(null, STDIN_FILENO);
			dup2(null, STDOUT_FILENO);
		}
		execl(bin, bin, conf, (char *)NULL);
		_exit(127);
	}
	deadline = now_ms() + RS_START_TIMEOUT_MS;
	while (now_ms() < deadline) {
		if (waitpid(s->pid, &status, WNOHANG) == s->pid) {
			s->pid = 0;
			say(err, err_size, "redis-server on port %u exited at start (status %d; log %s)",
			    (unsigned)s->port, status, s->log);
			return -EADDRINUSE;
		}
		if (answers_ping(s))
			return 0;
		pause_ms(20);
	}
	redis_server_kill(s);
	say(err, err_size, "redis-server on port %u: no PING answer after %d ms (log %s)", (unsigned)s->port,
	    RS_START_TIMEOUT_MS, s->log);
	return -ETIMEDOUT;
}

struct redis_server *redis_server_start(const char *password, int *rc, char *err, size_t err_size)
{
	struct redis_server *s = NULL;
	const char *tmp = getenv(RS_RUN_DIR_ENV);
	char dir[RS_PATH_SIZE - 64]; /* room for the file names after it */
	int slot;

	if (!tmp || !*tmp)
		tmp = getenv("TMPDIR");
	for (slot = 0; slot < RS_POOL_SIZE && pool[slot].in_use; slot++)
		;
	if (slot == RS_POOL_SIZE) {
		say(err, err_size, "more than %d redis servers at once", RS_POOL_SIZE);
		*rc = -EMFILE;
		return NULL;
	}
	s = &pool[slot].server;
	memset(s, 0, sizeof(*s));
	snprintf(dir, sizeof(dir), "%s/ringdev-redis-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		*rc = -errno;
		say(err, err_size, "mkdtemp %s: %s", dir, strerror(errno));
		return NULL;
	}
	pool[slot].in_use = true;
	memcpy(s->dir, dir, sizeof(dir));
	snprintf(s->log, sizeof(s->log), "%s/redis.log", dir);
	snprintf(s->pidfile, sizeof(s->pidfile), "%s/redis.pid", dir);
	snprintf(s->password, sizeof(s->password), "%s", password ? password : "");
	*rc = -EADDRINUSE;
	for (int i = 0; i < RS_PORT_TRIES && *rc == -EADDRINUSE; i++) {
		*rc = free_port(&s->port);
		if (*rc < 0) {
			say(err, err_size, "no free port: %s", strerror(-*rc));
			break;
		}
		snprintf(s->url, sizeof(s->url), "redis://127.0.0.1:%u", (unsigned)s->port);
		*rc = write_config(s);
		if (*rc < 0) {
			say(err, err_size, "%s/redis.conf: %s", s->dir, strerror(-*rc));
			break;
		}
		*rc = spawn(s, err, err_size);
	}
	if (*rc < 0) {
		redis_server_destroy(s);
		return NULL;
	}
	return s;
}

/* Wait for the child for up to `ms`; true if reaped. */
static bool reap(struct redis_server *s, unsigned ms)
{
	uint64_t deadline = now_ms() + ms;
	int status;

	do {
		pid_t r = waitpid(s->pid, &status, WNOHANG);

		if (r == s->pid || (r < 0 && errno == ECHILD)) {
			s->pid = 0;
			return true;
		}
		pause_ms(5);
	} while (now_ms() < deadline);
	return false;
}

int redis_server_stop(struct redis_server *s)
{
	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGCONT);
	kill(s->pid, SIGTERM);
	if (reap(s, RS_STOP_TIMEOUT_MS))
		return 0;
	kill(s->pid, SIGKILL);
	reap(s, RS_STOP_TIMEOUT_MS);
	return -ETIMEDOUT;
}

int redis_server_kill(struct redis_server *s)
{
	if (s->pid <= 0)
		return 0;
	kill(s->pid, SIGKILL);
	return reap(s, RS_STOP_TIMEOUT_MS) ? 0 : -ETIMEDOUT;
}

int redis_server_restart(struct redis_server *s, char *err, size_t err_size)
{
	int rc = 0;

	if (s->pid > 0) {
		say(err, err_size, "redis-server on port %u is still running", (unsigned)s->port);
		return -EBUSY;
	}
	/* the port may be taken for a moment by a connection in TIME_WAIT on
	 * a client's side; the server uses SO_REUSEADDR, so a few tries do */
	for (int i = 0; i < RS_PORT_TRIES; i++) {
		rc = spawn(s, err, err_size);
		if (rc != -EADDRINUSE)
			break;
		pause_ms(100);
	}
	return rc;
}

int redis_server_pause(struct redis_server *s)
{
	return s->pid > 0 && kill(s->pid, SIGSTOP) == 0 ? 0 : -ESRCH;
}

int redis_server_resume(struct redis_server *s)
{
	return s->pid > 0 && kill(s->pid, SIGCONT) == 0 ? 0 : -ESRCH;
}

/* The pid in `folder`/redis.pid, if that process is a redis-server
 * working in that folder (so a stale pidfile never kills a stranger). */
static pid_t pidfile_pid(const char *folder)
{
	char buf[64], path[RS_PATH_SIZE + 64], cwd[RS_PATH_SIZE + 64], real[PATH_MAX];
	FILE *f;
	long pid = 0;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/redis.pid", folder);
	f = fopen(path, "re");
	if (!f)
		return 0;
	if (fgets(buf, sizeof(buf), f))
		pid = strtol(buf, NULL, 10);
	fclose(f);
	if (pid <= 1 || pid == getpid() || !realpath(folder, real))
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/cwd", pid);
	n = readlink(path, cwd, sizeof(cwd) - 1);
	if (n <= 0)
		return 0;
	cwd[n] = '\0';
	return strcmp(cwd, real) == 0 ? (pid_t)pid : 0;
}

static void kill_stray(const char *folder)
{
	pid_t stray = pidfile_pid(folder);

	if (stray > 0) {
		kill(stray, SIGKILL);
		waitpid(stray, NULL, 0);
	}
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

void redis_server_destroy(struct redis_server *s)
{
	if (!s)
		return;
	redis_server_stop(s);
	if (s->dir[0]) {
		kill_stray(s->dir);
		nftw(s->dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	for (int i = 0; i < RS_POOL_SIZE; i++)
		if (&pool[i].server == s)
			pool[i].in_use = false;
	memset(s, 0, sizeof(*s));
}

void redis_fixture_cleanup(void)
{
	for (int i = 0; i < RS_POOL_SIZE; i++)
		if (pool[i].in_use)
			redis_server_destroy(&pool[i].server);
}

int redis_fixture_run_begin(void)
{
	const char *tmp = getenv("TMPDIR");
	char dir[RS_PATH_SIZE - 128];

	snprintf(dir, sizeof(dir), "%s/ringdev-redis-run-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir))
		return -errno;
	return setenv(RS_RUN_DIR_ENV, dir, 1) == 0 ? 0 : -errno;
}

/* The run folder holds one folder per server: kill what a pidfile there
 * names (a server whose test process crashed has already died of
 * PR_SET_PDEATHSIG; this is for one that did not), then remove it all. */
static int sweep_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_D && ftw->level == 1)
		kill_stray(path);
	return 0;
}

void redis_fixture_run_end(void)
{
	const char *dir = getenv(RS_RUN_DIR_ENV);

	if (!dir || !*dir)
		return;
	nftw(dir, sweep_entry, 16, FTW_PHYS);
	nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
	unsetenv(RS_RUN_DIR_ENV);
}
