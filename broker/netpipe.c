/* SPDX-License-Identifier: MIT */
/*
 * netpipe.c - see netpipe.h. Every operation that reads and changes more
 * than one key is a Lua script, so that it is one step for every host: the
 * capacity check and the append, the acknowledgement and the byte count,
 * the reclaim of a dead consumer's entries and the read of new ones. The
 * scripts are loaded once per connection (SCRIPT LOAD) and called by sha;
 * a NOSCRIPT answer (a restarted or flushed Redis) falls back to EVAL.
 *
 * hiredis (0.14, the sync API) leaves a context unusable after an I/O error,
 * so the first such error marks the connection broken and np_reconnect
 * makes a new context. The socket timeout (redisSetTimeout, SO_RCVTIMEO and
 * SO_SNDTIMEO) is what bounds a command; a blocking read widens it by its
 * BLOCK time for that one command.
 */
#include "netpipe.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include <ringdev/ringdev.h>

#include "name.h"
#include "parse.h"

#define NP_GROUP "ringdev"
/* np_give_back marks an entry idle this long, so any min_idle_ms takes it. */
#define NP_GIVE_BACK_IDLE_MS "31536000000"
/* How many rounds of XAUTOCLAIM (each looks at up to 10 pending entries)
 * one np_take spends looking for an entry a dead consumer left. */
#define NP_RECLAIM_ROUNDS "64"
#define NP_CREDENTIALS_MAX 1024

enum np_script {
	SCRIPT_OPEN,
	SCRIPT_APPEND,
	SCRIPT_TAKE,
	SCRIPT_ACK,
	SCRIPT_CLAIM,
	SCRIPT_STAT,
	SCRIPT_COUNT
};

/* KEYS of every script: 1 stream, 2 bytes, 3 drops, 4 meta. ARGV[1] is the
 * group. A field list of an entry is {"u", USER, "d", DATA}. */
static const char *const script_source[SCRIPT_COUNT] = {
	/* ARGV: group, capacity, policy -> {capacity, policy} as stored */
	[SCRIPT_OPEN] =
		"local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], ARGV[1], '0', 'MKSTREAM')\n"
		"if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then return r end\n"
		"redis.call('HSETNX', KEYS[4], 'capacity', ARGV[2])\n"
		"redis.call('HSETNX', KEYS[4], 'policy', ARGV[3])\n"
		"return {tonumber(redis.call('HGET', KEYS[4], 'capacity')),\n"
		"        tonumber(redis.call('HGET', KEYS[4], 'policy'))}\n",
	/* ARGV: group, user, data -> {status, id, dropped}; status 0 appended,
	 * 1 full (fail), 2 full (wait), 3 no such pipe, 4 larger than the capacity */
	[SCRIPT_APPEND] =
		"local cap = tonumber(redis.call('HGET', KEYS[4], 'capacity'))\n"
		"local policy = tonumber(redis.call('HGET', KEYS[4], 'policy'))\n"
		"if not cap or not policy or redis.call('EXISTS', KEYS[1]) == 0 then return {3, '', 0} end\n"
		"local size = string.len(ARGV[3])\n"
		"if size > cap then return {4, '', 0} end\n"
		"local used = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
		"local dropped = 0\n"
		"if used + size > cap then\n"
		"  if policy == 2 then return {1, '', 0} end\n"
		"  if policy ~= 1 then return {2, '', 0} end\n"
		/* overwrite: only entries after the group's last delivered id
		 * (never delivered) may go; entries taken and not acked stay */
		"  local last = '0-0'\n"
		"  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[1])) do\n"
		"    local name, ldi\n"
		"    for i = 1, #g, 2 do\n"
		"      if g[i] == 'name' then name = g[i + 1] elseif g[i] == 'last-delivered-id' then ldi = g[i + 1] end\n"
		"    end\n"
		"    if name == ARGV[1] then last = ldi end\n"
		"  end\n"
		"  local victims, free, from = {}, 0, '(' .. last\n"
		"  while used - free + size > cap do\n"
		"    local batch = redis.call('XRANGE', KEYS[1], from, '+', 'COUNT', 64)\n"
		"    if #batch == 0 then break end\n"
		"    for _, e in ipairs(batch) do\n"
		"      local f, n = e[2], 0\n"
		"      for i = 1, #f, 2 do if f[i] == 'd' then n = string.len(f[i + 1]) end end\n"
		"      victims[#victims + 1] = e[1]\n"
		"      free = free + n\n"
		"      from = '(' .. e[1]\n"
		"      if used - free + size <= cap then break end\n"
		"    end\n"
		"  end\n"
		"  if used - free + size > cap then return {2, '', 0} end\n"
		"  for _, id in ipairs(victims) do redis.call('XDEL', KEYS[1], id) end\n"
		"  dropped = #victims\n"
		"  redis.call('DECRBY', KEYS[2], free)\n"
		"  redis.call('INCRBY', KEYS[3], dropped)\n"
		"end\n"
		"local id = redis.call('XADD', KEYS[1], '*', 'u', ARGV[2], 'd', ARGV[3])\n"
		"redis.call('INCRBY', KEYS[2], size)\n"
		"return {0, id, dropped}\n",
	/* ARGV: group, consumer, min idle, rounds -> {0 new | 1 reclaimed, id,
	 * fields}, {2} nothing, {3} no such pipe */
	[SCRIPT_TAKE] =
		"if redis.call('EXISTS', KEYS[1]) == 0 then return {3} end\n"
		"local cursor = '0-0'\n"
		"for round = 1, tonumber(ARGV[4]) do\n"
		"  local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], cursor, 'COUNT', 1)\n"
		"  local e = r[2][1]\n"
		"  if e and e[2] then return {1, e[1], e[2]} end\n"
		"  cursor = r[1]\n"
		"  if cursor == '0-0' then break end\n"
		"end\n"
		"local r = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', 1, 'STREAMS', KEYS[1], '>')\n"
		"if r and r[1] and r[1][2][1] then local e = r[1][2][1]; return {0, e[1], e[2]} end\n"
		"return {2}\n",
	/* ARGV: group, id -> 1 acknowledged, 0 not pending */
	[SCRIPT_ACK] =
		"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
		"local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])\n"
		"if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end\n"
		"if e[1] then\n"
		"  local f, n = e[1][2], 0\n"
		"  for i = 1, #f, 2 do if f[i] == 'd' then n = string.len(f[i + 1]) end end\n"
		"  redis.call('XDEL', KEYS[1], ARGV[2])\n"
		"  redis.call('DECRBY', KEYS[2], n)\n"
		"end\n"
		"return 1\n",
	/* ARGV: group, consumer, id, idle -> 1 done, 0 not pending to consumer */
	[SCRIPT_CLAIM] =
		"if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end\n"
		"local p = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)\n"
		"if not p[1] or p[1][2] ~= ARGV[2] then return 0 end\n"
		"redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'IDLE', ARGV[4], 'JUSTID')\n"
		"return 1\n",
	/* ARGV: group -> {1, length, pending, bytes, drops, capacity, policy}, {0} no such pipe */
	[SCRIPT_STAT] =
		"local cap = redis.call('HGET', KEYS[4], 'capacity')\n"
		"if not cap or redis.call('EXISTS', KEYS[1]) == 0 then return {0} end\n"
		"local p = redis.call('XPENDING', KEYS[1], ARGV[1])\n"
		"return {1, redis.call('XLEN', KEYS[1]), p[1],\n"
		"        tonumber(redis.call('GET', KEYS[2]) or '0'), tonumber(redis.call('GET', KEYS[3]) or '0'),\n"
		"        tonumber(cap), tonumber(redis.call('HGET', KEYS[4], 'policy'))}\n",
};

struct np_conn {
	redisContext *redis;            /* NULL while broken */
	struct np_url url;
	char *url_text;
	char *credentials;              /* path, read again on every connect; NULL: no AUTH */
	char consumer[NP_CONSUMER_SIZE];
	struct np_options options;
	char sha[SCRIPT_COUNT][41];
	char error[NP_ERROR_SIZE];
	uint64_t setup_deadline;        /* connect_now: monotonic ms by which the setup ends */
};

#define KEY_SIZE (RINGDEV_NAME_SIZE + 32)

struct np_keys {
	char key[4][KEY_SIZE];
	size_t len[4];
};

static void format_error(char *err, size_t err_size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void format_error(char *err, size_t err_size, const char *fmt, ...)
{
	va_list ap;

	if (!err || !err_size)
		return;
	va_start(ap, fmt);
	vsnprintf(err, err_size, fmt, ap);
	va_end(ap);
}

#define conn_error(conn, ...) format_error((conn)->error, sizeof((conn)->error), __VA_ARGS__)

/* ---- the URL ---- */

int np_url_parse(const char *url, struct np_url *out, char *err, size_t err_size)
{
	static const char scheme[] = "redis://";
	const char *host, *host_end, *p;
	char number[16];
	uint64_t value;
	size_t len;

	char shown[112];

	memset(out, 0, sizeof(*out));
	/* a long URL is cut in messages, so the reason always fits */
	snprintf(shown, sizeof(shown), "%.96s%s", url ? url : "(none)", url && strlen(url) > 96 ? "..." : "");
	if (!url || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
		format_error(err, err_size, "URL %s: the scheme must be redis:// (TLS and sockets are not supported)",
			     shown);
		return -EINVAL;
	}
	host = url + sizeof(scheme) - 1;
	if (strchr(host, '@')) {
		/* not quoted: the part before @ may be a password */
		format_error(err, err_size, "URL redis://...@%.96s: credentials do not go in the URL; give a credentials file",
			     strrchr(host, '@') + 1);
		return -EINVAL;
	}
	if (*host == '[') {
		host_end = strchr(host, ']');
		if (!host_end || host_end == host + 1) {
			format_error(err, err_size, "URL %s: the IPv6 address has no closing ]", shown);
			return -EINVAL;
		}
		for (p = host + 1; p < host_end; p++)
			if (!strchr("0123456789abcdefABCDEF:.", *p)) {
				format_error(err, err_size, "URL %s: '%c' in the IPv6 address", shown, *p);
				return -EINVAL;
			}
		len = (size_t)(host_end - host - 1);
		if (len >= sizeof(out->host)) {
			format_error(err, err_size, "URL %s: the host is too long", shown);
			return -EINVAL;
		}
		memcpy(out->host, host + 1, len);
		p = host_end + 1;
	} else {
		for (p = host; *p && *p != ':' && *p != '/'; p++)
			if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-", *p)) {
				format_error(err, err_size, "URL %s: '%c' in the host name", shown, *p);
				return -EINVAL;
			}
		len = (size_t)(p - host);
		if (len == 0 || len >= sizeof(out->host)) {
			format_error(err, err_size, "URL %s: the host is %s", shown, len ? "too long" : "missing");
			return -EINVAL;
		}
		memcpy(out->host, host, len);
	}
	if (*p != ':') {
		format_error(err, err_size, "URL %s: the port is missing (redis://HOST:PORT[/DB])", shown);
		return -EINVAL;
	}
	host = ++p;
	p += strcspn(p, "/");
	len = (size_t)(p - host);
	if (len == 0 || len >= sizeof(number)) {
		format_error(err, err_size, "URL %s: the port is %s", shown, len ? "not a number" : "missing");
		return -EINVAL;
	}
	memcpy(number, host, len);
	number[len] = '\0';
	if (parse_u64(number, 1, 65535, &value) < 0) {
		format_error(err, err_size, "URL %s: port %s is not a number from 1 to 65535", shown, number);
		return -EINVAL;
	}
	out->port = (uint16_t)value;
	if (*p == '/') {
		p++;
		if (parse_u64(p, 0, 1023, &value) < 0) {
			format_error(err, err_size, "URL %s: database '%s' is not a number from 0 to 1023", shown, p);
			return -EINVAL;
		}
		out->db = (uint32_t)value;
	}
	return 0;
}

/* ---- errors of the connection ---- */

/* The errno of a context in error, captured errno `saved` (hiredis copies
 * the text of errno into errstr, and may have changed errno since). */
static int context_errno(const redisContext *c, int saved)
{
	static const int known[] = { ETIMEDOUT, ECONNREFUSED, EHOSTUNREACH, ENETUNREACH, ECONNRESET, EPIPE };
	int e = 0;

	if (c->err == REDIS_ERR_EOF)
		return -ECONNRESET;
	if (c->err == REDIS_ERR_PROTOCOL)
		return -EPROTO;
	if (c->err == REDIS_ERR_OOM)
		return -ENOMEM;
	if (c->err == REDIS_ERR_OTHER)
		return -EPROTO;
	/* REDIS_ERR_IO: a blocking socket whose timeout ran out says EAGAIN */
	if (strstr(c->errstr, strerror(EAGAIN)) || strstr(c->errstr, strerror(EINPROGRESS)))
		e = ETIMEDOUT;
	for (size_t i = 0; !e && i < sizeof(known) / sizeof(known[0]); i++)
		if (strstr(c->errstr, strerror(known[i])))
			e = known[i];
	if (!e)
		e = saved;
	switch (e) {
	case EAGAIN:
	case EINPROGRESS:
	case ETIMEDOUT:
		return -ETIMEDOUT;
	case ECONNREFUSED:
		return -ECONNREFUSED;
	case EHOSTUNREACH:
	case ENETUNREACH:
	case EADDRNOTAVAIL:
		return -EHOSTUNREACH;
	default:
		return -ECONNRESET;
	}
}

/* The errno of an error answer. */
static int reply_errno(const redisReply *r)
{
	static const struct {
		const char *prefix;
		int err;
	} map[] = {
		{ "NOAUTH", EACCES }, { "WRONGPASS", EACCES }, { "NOPERM", EACCES },
		{ "ERR invalid password", EACCES }, { "ERR AUTH", EACCES },
		{ "NOGROUP", ENOENT }, { "LOADING", EBUSY }, { "BUSY", EBUSY }, { "OOM", ENOMEM },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (strncmp(r->str, map[i].prefix, strlen(map[i].prefix)) == 0)
			return -map[i].err;
	return -EPROTO;
}

static void conn_break(struct np_conn *conn)
{
	if (conn->redis)
		redisFree(conn->redis);
	conn->redis = NULL;
}

static uint64_t monotonic_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int set_timeout(redisContext *c, uint64_t ms)
{
	struct timeval tv = { .tv_sec = (time_t)(ms / 1000), .tv_usec = (suseconds_t)(ms % 1000 * 1000) };

	return redisSetTimeout(c, tv) == REDIS_OK ? 0 : -errno;
}

/* Send one command. Returns the answer (an error answer too) or NULL with
 * *rc set, the connection broken and the reason in conn->error. */
static redisReply *command(struct np_conn *conn, int argc, const char **argv, const size_t *lens, int *rc)
{
	redisReply *r;
	int saved;

	if (!conn->redis) {
		conn_error(conn, "redis %s: not connected since an earlier failure; reconnect", conn->url_text);
		*rc = -ENOTCONN;
		return NULL;
	}
	errno = 0;
	r = redisCommandArgv(conn->redis, argc, argv, lens);
	saved = errno;
	if (!r) {
		*rc = conn->redis->err ? context_errno(conn->redis, saved) : -ENOMEM;
		conn_error(conn, "redis %s: %s: %s", conn->url_text, argv[0],
			   conn->redis->err ? conn->redis->errstr : "out of memory");
		conn_break(conn);
		return NULL;
	}
	*rc = 0;
	return r;
}

/* An answer that is an error: its errno, and the reason in conn->error. */
static int answer_error(struct np_conn *conn, redisReply *r, const char *what)
{
	int rc = reply_errno(r);

	conn_error(conn, "redis %s: %s: %.*s", conn->url_text, what, (int)(r->len > 160 ? 160 : r->len), r->str);
	return rc;
}

static void keys_make(struct np_keys *k, const char *name)
{
	static const char *const suffix[4] = { "stream", "bytes", "drops", "meta" };

	for (int i = 0; i < 4; i++) {
		int n = snprintf(k->key[i], sizeof(k->key[i]), "ringdev:{%s}:%s", name, suffix[i]);

		k->len[i] = (size_t)n;
	}
}

/* Run a script on pipe `name` (whose keys it gets) with `nargs` arguments
 * after the group. By sha; by source when Redis does not know the sha. */
static redisReply *script_run(struct np_conn *conn, enum np_script s, const char *name, int nargs,
			      const char **args, const size_t *lens, int *rc)
{
	const char *argv[16];
	size_t argl[16];
	struct np_keys k;
	redisReply *r;
	int argc = 0;

	if (name_check_str(name) < 0) {
		conn_error(conn, "network pipe '%s': not a valid pipe name", name);
		*rc = -EINVAL;
		return NULL;
	}
	keys_make(&k, name);
	argv[argc] = "EVALSHA";
	argl[argc++] = 7;
	argv[argc] = conn->sha[s];
	argl[argc++] = strlen(conn->sha[s]);
	argv[argc] = "4";
	argl[argc++] = 1;
	for (int i = 0; i < 4; i++) {
		argv[argc] = k.key[i];
		argl[argc++] = k.len[i];
	}
	argv[argc] = NP_GROUP;
	argl[argc++] = strlen(NP_GROUP);
	for (int i = 0; i < nargs; i++) {
		argv[argc] = args[i];
		argl[argc++] = lens[i];
	}
	r = command(conn, argc, argv, argl, rc);
	if (r && r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) == 0) {
		freeReplyObject(r);
		argv[0] = "EVAL";
		argl[0] = 4;
		argv[1] = script_source[s];
		argl[1] = strlen(script_source[s]);
		r = command(conn, argc, argv, argl, rc);
	}
	if (r && r->type == REDIS_REPLY_ERROR) {
		*rc = answer_error(conn, r, name);
		freeReplyObject(r);
		return NULL;
	}
	return r;
}

/* ---- credentials ---- */

/* Read "[USER ]PASSWORD" from `path` into buf (NUL-terminated; *user and
 * *password point into it, *user NULL without a user). The caller wipes buf. */
static int credentials_read(const char *path, char *buf, size_t size, const char **user, const char **password,
			    char *err, size_t err_size)
{
	struct stat st;
	ssize_t n;
	size_t len;
	char *space;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	int rc;

	if (fd < 0) {
		rc = -errno;
		format_error(err, err_size, "credentials file %s: %s", path, strerror(-rc));
		return rc == -ENOENT ? -ENOENT : -EACCES;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		format_error(err, err_size, "credentials file %s: not a regular file", path);
		close(fd);
		return -EACCES;
	}
	if (st.st_mode & 077) {
		format_error(err, err_size, "credentials file %s: mode %04o lets group or others at it (chmod 600)",
			     path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -EACCES;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		format_error(err, err_size, "credentials file %s: owned by uid %u, not by this user or root", path,
			     (unsigned)st.st_uid);
		close(fd);
		return -EACCES;
	}
	n = read(fd, buf, size - 1);
	rc = n < 0 ? -errno : 0;
	close(fd);
	if (n < 0) {
		format_error(err, err_size, "credentials file %s: %s", path, strerror(-rc));
		return -EACCES;
	}
	len = (size_t)n;
	if (len >= size - 1) {
		format_error(err, err_size, "credentials file %s: longer than %zu bytes", path, size - 2);
		return -EINVAL;
	}
	buf[len] = '\0';
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	if (len == 0 || strlen(buf) != len || strpbrk(buf, "\r\n")) {
		format_error(err, err_size, "credentials file %s: not one line of [USER ]PASSWORD", path);
		return -EINVAL;
	}
	space = strchr(buf, ' ');
	*user = NULL;
	*password = buf;
	if (space) {
		*space = '\0';
		*user = buf;
		*password = space + 1;
		if (!*buf || !**password) {
			format_error(err, err_size, "credentials file %s: empty user or password", path);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- connecting ---- */

/* A simple command during setup, bounded by what is left of the setup's
 * time (so the whole setup takes at most connect_timeout_ms); 0 or errno,
 * with the reason in conn->error. */
static int setup_command(struct np_conn *conn, int argc, const char **argv, const size_t *lens, const char *what,
			 redisReply **out)
{
	uint64_t now = monotonic_ms();
	redisReply *r;
	int rc;

	if (now >= conn->setup_deadline) {
		conn_error(conn, "redis %s: no answer to %s within %u ms", conn->url_text, what,
			   conn->options.connect_timeout_ms);
		conn_break(conn);
		return -ETIMEDOUT;
	}
	rc = set_timeout(conn->redis, conn->setup_deadline - now);
	if (rc < 0) {
		conn_error(conn, "redis %s: setting the timeout: %s", conn->url_text, strerror(-rc));
		conn_break(conn);
		return rc;
	}
	r = command(conn, argc, argv, lens, &rc);
	if (!r)
		return rc < 0 ? rc : -EPROTO;
	if (r->type == REDIS_REPLY_ERROR) {
		rc = answer_error(conn, r, what);
		if (rc == -EACCES && strncmp(r->str, "NOAUTH", 6) == 0)
			conn_error(conn, "redis %s: asks for a password and no credentials file was given",
				   conn->url_text);
		freeReplyObject(r);
		return rc;
	}
	if (out)
		*out = r;
	else
		freeReplyObject(r);
	return 0;
}

static int connect_now(struct np_conn *conn)
{
	struct timeval tv = {
		.tv_sec = (time_t)(conn->options.connect_timeout_ms / 1000),
		.tv_usec = (suseconds_t)(conn->options.connect_timeout_ms % 1000 * 1000),
	};
	char buf[NP_CREDENTIALS_MAX], db[16];
	const char *argv[3];
	size_t lens[3];
	redisReply *r;
	int saved, rc;

	conn_break(conn);
	conn->error[0] = '\0';
	conn->setup_deadline = monotonic_ms() + conn->options.connect_timeout_ms;
	errno = 0;
	conn->redis = redisConnectWithTimeout(conn->url.host, conn->url.port, tv);
	saved = errno;
	if (!conn->redis) {
		conn_error(conn, "redis %s: out of memory", conn->url_text);
		return -ENOMEM;
	}
	if (conn->redis->err) {
		/* hiredis says REDIS_ERR_OTHER at connect when getaddrinfo fails */
		rc = conn->redis->err == REDIS_ERR_OTHER ? -EHOSTUNREACH : context_errno(conn->redis, saved);
		conn_error(conn, "redis %s: connect: %s", conn->url_text, conn->redis->errstr);
		conn_break(conn);
		return rc;
	}
	if (conn->credentials) {
		const char *user, *password;

		rc = credentials_read(conn->credentials, buf, sizeof(buf), &user, &password, conn->error,
				      sizeof(conn->error));
		if (rc == 0) {
			int argc = 0;

			argv[argc] = "AUTH";
			lens[argc++] = 4;
			if (user) {
				argv[argc] = user;
				lens[argc++] = strlen(user);
			}
			argv[argc] = password;
			lens[argc++] = strlen(password);
			rc = setup_command(conn, argc, argv, lens, "AUTH", NULL);
			if (rc == -EPROTO)
				rc = -EACCES;
		}
		explicit_bzero(buf, sizeof(buf));
		if (rc < 0) {
			conn_break(conn);
			return rc;
		}
	}
	snprintf(db, sizeof(db), "%u", conn->url.db);
	argv[0] = "SELECT";
	lens[0] = 6;
	argv[1] = db;
	lens[1] = strlen(db);
	rc = setup_command(conn, 2, argv, lens, "SELECT", NULL);
	for (int s = 0; rc == 0 && s < SCRIPT_COUNT; s++) {
		argv[0] = "SCRIPT";
		lens[0] = 6;
		argv[1] = "LOAD";
		lens[1] = 4;
		argv[2] = script_source[s];
		lens[2] = strlen(script_source[s]);
		r = NULL;
		rc = setup_command(conn, 3, argv, lens, "SCRIPT LOAD", &r);
		if (rc == 0 && r) {
			if (r->type != REDIS_REPLY_STRING || r->len >= sizeof(conn->sha[s])) {
				conn_error(conn, "redis %s: SCRIPT LOAD: unexpected answer", conn->url_text);
				rc = -EPROTO;
			} else {
				memcpy(conn->sha[s], r->str, r->len);
				conn->sha[s][r->len] = '\0';
			}
			freeReplyObject(r);
		}
	}
	if (rc == 0) {
		rc = set_timeout(conn->redis, conn->options.command_timeout_ms);
		if (rc < 0)
			conn_error(conn, "redis %s: setting the timeout: %s", conn->url_text, strerror(-rc));
	}
	if (rc < 0) {
		conn_break(conn);
		return rc;
	}
	return 0;
}

int np_connect(const char *url, const char *credentials, const char *consumer, const struct np_options *options,
	       struct np_conn **out, char *err, size_t err_size)
{
	struct np_conn *conn;
	int rc;

	*out = NULL;
	if (!consumer || !*consumer || strlen(consumer) >= NP_CONSUMER_SIZE || strpbrk(consumer, " \t\r\n")) {
		format_error(err, err_size, "consumer name '%s': empty, too long or with spaces",
			     consumer ? consumer : "(none)");
		return -EINVAL;
	}
	conn = calloc(1, sizeof(*conn));
	if (!conn) {
		format_error(err, err_size, "redis %s: out of memory", url);
		return -ENOMEM;
	}
	rc = np_url_parse(url, &conn->url, err, err_size);
	if (rc < 0) {
		np_close(conn);
		return rc;
	}
	conn->url_text = strdup(url);
	conn->credentials = credentials ? strdup(credentials) : NULL;
	if (!conn->url_text || (credentials && !conn->credentials)) {
		format_error(err, err_size, "redis %s: out of memory", url);
		np_close(conn);
		return -ENOMEM;
	}
	snprintf(conn->consumer, sizeof(conn->consumer), "%s", consumer);
	if (options)
		conn->options = *options;
	if (!conn->options.connect_timeout_ms)
		conn->options.connect_timeout_ms = NP_CONNECT_TIMEOUT_MS;
	if (!conn->options.command_timeout_ms)
		conn->options.command_timeout_ms = NP_COMMAND_TIMEOUT_MS;
	if (!conn->options.min_idle_ms)
		conn->options.min_idle_ms = NP_MIN_IDLE_MS;
	rc = connect_now(conn);
	if (rc < 0) {
		format_error(err, err_size, "%s", conn->error);
		np_close(conn);
		return rc;
	}
	*out = conn;
	return 0;
}

int np_reconnect(struct np_conn *conn)
{
	return connect_now(conn);
}

struct np_conn *np_close(struct np_conn *conn)
{
	if (!conn)
		return NULL;
	conn_break(conn);
	free(conn->url_text);
	free(conn->credentials);
	free(conn);
	return NULL;
}

const char *np_error(const struct np_conn *conn)
{
	return conn->error;
}

/* ---- pipes ---- */

static bool reply_is(const redisReply *r, int type, size_t min_elements)
{
	return r && r->type == type && (type != REDIS_REPLY_ARRAY || r->elements >= min_elements);
}

static int unexpected(struct np_conn *conn, redisReply *r, const char *name, const char *what)
{
	conn_error(conn, "network pipe %s: %s: unexpected answer from redis %s", name, what, conn->url_text);
	freeReplyObject(r);
	return -EPROTO;
}

int np_open(struct np_conn *conn, const char *name, struct np_settings *settings)
{
	char capacity[24], policy[4];
	const char *args[2] = { capacity, policy };
	size_t lens[2];
	redisReply *r;
	int rc;

	if (!settings->capacity || settings->policy > NP_POLICY_FAIL) {
		conn_error(conn, "network pipe %s: capacity 0 or an unknown full policy", name);
		return -EINVAL;
	}
	lens[0] = (size_t)snprintf(capacity, sizeof(capacity), "%" PRIu64, settings->capacity);
	lens[1] = (size_t)snprintf(policy, sizeof(policy), "%u", (unsigned)settings->policy);
	r = script_run(conn, SCRIPT_OPEN, name, 2, args, lens, &rc);
	if (!r)
		return rc;
	if (!reply_is(r, REDIS_REPLY_ARRAY, 2) || r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_INTEGER || r->element[0]->integer <= 0 ||
	    r->element[1]->integer < 0 || r->element[1]->integer > NP_POLICY_FAIL)
		return unexpected(conn, r, name, "open");
	settings->capacity = (uint64_t)r->element[0]->integer;
	settings->policy = (enum np_policy)r->element[1]->integer;
	freeReplyObject(r);
	return 0;
}

int np_append(struct np_conn *conn, const char *name, const char *user, const void *data, size_t size,
	      struct np_appended *out)
{
	const char *args[2] = { user, size ? data : "" };
	size_t lens[2] = { strlen(user), size };
	struct np_appended ignored;
	redisReply *r;
	int rc;

	if (!out)
		out = &ignored;
	memset(out, 0, sizeof(*out));
	if (!*user || lens[0] >= NP_USER_SIZE) {
		conn_error(conn, "network pipe %s: user name empty or longer than %d bytes", name, NP_USER_SIZE - 1);
		return -EINVAL;
	}
	r = script_run(conn, SCRIPT_APPEND, name, 2, args, lens, &rc);
	if (!r)
		return rc;
	if (!reply_is(r, REDIS_REPLY_ARRAY, 3) || r->element[0]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->type != REDIS_REPLY_STRING || r->element[2]->type != REDIS_REPLY_INTEGER ||
	    r->element[1]->len >= NP_ID_SIZE || r->element[2]->integer < 0)
		return unexpected(conn, r, name, "append");
	switch (r->element[0]->integer) {
	case 0:
		memcpy(out->id, r->element[1]->str, r->element[1]->len);
		out->id[r->element[1]->len] = '\0';
		out->dropped = (uint64_t)r->element[2]->integer;
		rc = 0;
		break;
	case 1:
		conn_error(conn, "network pipe %s: full", name);
		rc = -EAGAIN;
		break;
	case 2:
		conn_error(conn, "network pipe %s: full, wait for readers", name);
		out->wait = true;
		rc = -EAGAIN;
		break;
	case 3:
		conn_error(conn, "network pipe %s: does not exist on redis %s", name, conn->url_text);
		rc = -ENOENT;
		break;
	case 4:
		conn_error(conn, "network pipe %s: a message of %zu bytes is larger than the capacity", name, size);
		rc = -EMSGSIZE;
		break;
	default:
		return unexpected(conn, r, name, "append");
	}
	freeReplyObject(r);
	return rc;
}

void np_entry_clear(struct np_entry *entry)
{
	free(entry->data);
	memset(entry, 0, sizeof(*entry));
}

/* Fill `entry` from an entry answer {id, {"u", USER, "d", DATA}}. */
static int entry_fill(struct np_entry *entry, const redisReply *id, const redisReply *fields)
{
	const redisReply *user = NULL, *data = NULL;

	if (id->type != REDIS_REPLY_STRING || id->len >= NP_ID_SIZE || fields->type != REDIS_REPLY_ARRAY)
		return -EPROTO;
	for (size_t i = 0; i + 1 < fields->elements; i += 2) {
		const redisReply *f = fields->element[i];

		if (f->type != REDIS_REPLY_STRING || f->len != 1 || fields->element[i + 1]->type != REDIS_REPLY_STRING)
			continue;
		if (f->str[0] == 'u')
			user = fields->element[i + 1];
		else if (f->str[0] == 'd')
			data = fields->element[i + 1];
	}
	if (!user || !data || user->len >= NP_USER_SIZE)
		return -EPROTO;
	memcpy(entry->id, id->str, id->len);
	entry->id[id->len] = '\0';
	memcpy(entry->user, user->str, user->len);
	entry->user[user->len] = '\0';
	entry->data = malloc(data->len + 1);
	if (!entry->data)
		return -ENOMEM;
	memcpy(entry->data, data->str, data->len);
	((char *)entry->data)[data->len] = '\0';
	entry->size = data->len;
	return 0;
}

/* XREADGROUP ... BLOCK block_ms with the socket timeout widened for it. */
static int take_blocking(struct np_conn *conn, const char *name, uint32_t block_ms, struct np_entry *entry)
{
	char block[16];
	struct np_keys k;
	const char *argv[11];
	size_t lens[11];
	redisReply *r;
	int rc;

	keys_make(&k, name);
	snprintf(block, sizeof(block), "%u", block_ms);
	argv[0] = "XREADGROUP";
	argv[1] = "GROUP";
	argv[2] = NP_GROUP;
	argv[3] = conn->consumer;
	argv[4] = "COUNT";
	argv[5] = "1";
	argv[6] = "BLOCK";
	argv[7] = block;
	argv[8] = "STREAMS";
	argv[9] = k.key[0];
	argv[10] = ">";
	for (int i = 0; i < 11; i++)
		lens[i] = strlen(argv[i]);
	rc = set_timeout(conn->redis, (uint64_t)conn->options.command_timeout_ms + block_ms);
	if (rc < 0) {
		conn_error(conn, "redis %s: setting the timeout: %s", conn->url_text, strerror(-rc));
		conn_break(conn);
		return rc;
	}
	r = command(conn, 11, argv, lens, &rc);
	if (!r)
		return rc;
	rc = set_timeout(conn->redis, conn->options.command_timeout_ms);
	if (rc < 0) {
		conn_error(conn, "redis %s: setting the timeout: %s", conn->url_text, strerror(-rc));
		conn_break(conn);
		freeReplyObject(r);
		return rc;
	}
	if (r->type == REDIS_REPLY_ERROR) {
		rc = answer_error(conn, r, name);
		if (strstr(r->str, "no longer exists"))
			rc = -ENOENT;
		freeReplyObject(r);
		return rc;
	}
	if (r->type == REDIS_REPLY_NIL) {
		conn_error(conn, "network pipe %s: nothing to take within %u ms", name, block_ms);
		freeReplyObject(r);
		return -EAGAIN;
	}
	if (!reply_is(r, REDIS_REPLY_ARRAY, 1) || !reply_is(r->element[0], REDIS_REPLY_ARRAY, 2) ||
	    !reply_is(r->element[0]->element[1], REDIS_REPLY_ARRAY, 1) ||
	    !reply_is(r->element[0]->element[1]->element[0], REDIS_REPLY_ARRAY, 2))
		return unexpected(conn, r, name, "take");
	rc = entry_fill(entry, r->element[0]->element[1]->element[0]->element[0],
			r->element[0]->element[1]->element[0]->element[1]);
	freeReplyObject(r);
	if (rc < 0) {
		np_entry_clear(entry);
		conn_error(conn, "network pipe %s: take: %s", name, rc == -ENOMEM ? "out of memory" : "a malformed entry");
	}
	return rc;
}

int np_take(struct np_conn *conn, const char *name, uint32_t block_ms, struct np_entry *entry)
{
	char min_idle[16];
	const char *args[3] = { conn->consumer, min_idle, NP_RECLAIM_ROUNDS };
	size_t lens[3];
	redisReply *r;
	int rc;

	memset(entry, 0, sizeof(*entry));
	if (block_ms > NP_BLOCK_MAX_MS) {
		conn_error(conn, "network pipe %s: a wait of %u ms is over %u ms", name, block_ms, NP_BLOCK_MAX_MS);
		return -EINVAL;
	}
	lens[0] = strlen(conn->consumer);
	lens[1] = (size_t)snprintf(min_idle, sizeof(min_idle), "%u", conn->options.min_idle_ms);
	lens[2] = strlen(NP_RECLAIM_ROUNDS);
	r = script_run(conn, SCRIPT_TAKE, name, 3, args, lens, &rc);
	if (!r)
		return rc;
	if (!reply_is(r, REDIS_REPLY_ARRAY, 1) || r->element[0]->type != REDIS_REPLY_INTEGER)
		return unexpected(conn, r, name, "take");
	switch (r->element[0]->integer) {
	case 0:
	case 1:
		if (r->elements < 3)
			return unexpected(conn, r, name, "take");
		rc = entry_fill(entry, r->element[1], r->element[2]);
		entry->reclaimed = r->element[0]->integer == 1;
		freeReplyObject(r);
		if (rc < 0) {
			/* taken but unreadable: it stays pending, reclaimable */
			np_entry_clear(entry);
			conn_error(conn, "network pipe %s: take: %s", name,
				   rc == -ENOMEM ? "out of memory" : "a malformed entry");
		}
		return rc;
	case 2:
		freeReplyObject(r);
		if (block_ms)
			return take_blocking(conn, name, block_ms, entry);
		conn_error(conn, "network pipe %s: nothing to take", name);
		return -EAGAIN;
	case 3:
		freeReplyObject(r);
		conn_error(conn, "network pipe %s: does not exist on redis %s", name, conn->url_text);
		return -ENOENT;
	default:
		return unexpected(conn, r, name, "take");
	}
}

/* A script answering 1 (done) or 0 (then `none`, with `reason`). */
static int run_flag(struct np_conn *conn, enum np_script s, const char *name, int nargs, const char **args,
		    const size_t *lens, int none, const char *what, const char *id, const char *reason)
{
	redisReply *r;
	int rc;

	r = script_run(conn, s, name, nargs, args, lens, &rc);
	if (!r)
		return rc;
	if (r->type != REDIS_REPLY_INTEGER)
		return unexpected(conn, r, name, what);
	rc = r->integer ? 0 : none;
	freeReplyObject(r);
	if (rc < 0)
		conn_error(conn, "network pipe %s: %s %s: %s", name, what, id, reason);
	return rc;
}

int np_ack(struct np_conn *conn, const char *name, const char *id)
{
	const char *args[1] = { id };
	size_t lens[1] = { strlen(id) };

	return run_flag(conn, SCRIPT_ACK, name, 1, args, lens, -ENOENT, "ack", id, "not pending any more");
}

static int claim(struct np_conn *conn, const char *name, const char *id, const char *idle, const char *what)
{
	const char *args[3] = { conn->consumer, id, idle };
	size_t lens[3] = { strlen(conn->consumer), strlen(id), strlen(idle) };

	return run_flag(conn, SCRIPT_CLAIM, name, 3, args, lens, -ESTALE, what, id,
			"no longer pending to this consumer");
}

int np_keep(struct np_conn *conn, const char *name, const char *id)
{
	return claim(conn, name, id, "0", "keep");
}

int np_give_back(struct np_conn *conn, const char *name, const char *id)
{
	return claim(conn, name, id, NP_GIVE_BACK_IDLE_MS, "give back");
}

int np_stat(struct np_conn *conn, const char *name, struct np_stat *out)
{
	redisReply *r;
	int rc;

	memset(out, 0, sizeof(*out));
	r = script_run(conn, SCRIPT_STAT, name, 0, NULL, NULL, &rc);
	if (!r)
		return rc;
	if (!reply_is(r, REDIS_REPLY_ARRAY, 1) || r->element[0]->type != REDIS_REPLY_INTEGER)
		return unexpected(conn, r, name, "stat");
	if (r->element[0]->integer == 0) {
		freeReplyObject(r);
		conn_error(conn, "network pipe %s: does not exist on redis %s", name, conn->url_text);
		return -ENOENT;
	}
	if (r->elements < 7)
		return unexpected(conn, r, name, "stat");
	for (size_t i = 1; i < 7; i++)
		if (r->element[i]->type != REDIS_REPLY_INTEGER || r->element[i]->integer < 0)
			return unexpected(conn, r, name, "stat");
	out->length = (uint64_t)r->element[1]->integer;
	out->pending = (uint64_t)r->element[2]->integer;
	out->bytes = (uint64_t)r->element[3]->integer;
	out->drops = (uint64_t)r->element[4]->integer;
	out->settings.capacity = (uint64_t)r->element[5]->integer;
	out->settings.policy = (enum np_policy)r->element[6]->integer;
	freeReplyObject(r);
	return 0;
}

int np_delete(struct np_conn *conn, const char *name)
{
	const char *argv[5] = { "DEL" };
	size_t lens[5] = { 3 };
	struct np_keys k;
	redisReply *r;
	int rc;

	if (name_check_str(name) < 0) {
		conn_error(conn, "network pipe '%s': not a valid pipe name", name);
		return -EINVAL;
	}
	keys_make(&k, name);
	for (int i = 0; i < 4; i++) {
		argv[i + 1] = k.key[i];
		lens[i + 1] = k.len[i];
	}
	r = command(conn, 5, argv, lens, &rc);
	if (!r)
		return rc;
	rc = r->type == REDIS_REPLY_ERROR ? answer_error(conn, r, name) : 0;
	freeReplyObject(r);
	return rc;
}
