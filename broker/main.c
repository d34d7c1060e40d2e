/* SPDX-License-Identifier: MIT */
/*
 * main.c - ringdev-broker(8), the reference broker: decides opens and
 * attaches by a policy file, links the readers and writers of brokered pipes
 * (rendezvous.c) and serves two example ioctls (ringdev-broker-ioctl.h), all
 * on libringdev-broker.
 *
 * Threads: the loops of rdb_run() call the handler, which does everything
 * under one mutex (the policy pointer and the rendezvous state) and never
 * blocks; a signal thread takes SIGHUP (reload: a new policy is parsed aside
 * and swapped in only when valid), SIGTERM and SIGINT (rdb_stop), with the
 * signals blocked everywhere else so no handler runs in a loop. Every
 * decision is logged on one line. Exit codes: 0 stopped by a signal, 1 failed
 * (policy, control node, the daemon went away), 2 usage.
 *
 * No file at the default policy path (a --policy given must exist) is not
 * an error: the broker then runs policy_builtin(), which hands every open
 * and attach back to ringdevd (RINGDEV_ANSWER_BUILTIN) so that owner and
 * mode bits decide as without a broker, and fails device-specific ioctls
 * with ENOTTY as ringdevd does; a file put there later is read on SIGHUP.
 * The daemon decides, not the broker, because only the daemon sees the
 * pipe as it is when the request lands (its owner and mode, whether it
 * exists): the broker cannot check that without racing it.
 *
 * Whose pipe a request reaches is the daemon's to enforce too: an allowed
 * request still meets the pipe's mode bits, and a mapped open is refused a
 * pipe of another user's unless the rule says `grant` (then the answer
 * carries RINGDEV_ANSWER_GRANT, and only then).
 *
 * Network pipes (issue 21): a pipe whose policy line has network= is
 * brokered like an rv.* pipe, but its READs and WRITEs go to netbroker.c,
 * whose worker threads talk to Redis; the handler only queues them, so a
 * slow or absent Redis never holds a loop thread. The Redis password is
 * read from --redis-credentials, never from a command line or the policy.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringdev/ringdev-broker.h>
#include <ringdev/ringdev-broker-ioctl.h>

#include "log.h"
#include "parse.h"
#include "policy.h"
#include "rendezvous.h"
#include "service.h"
#if HAVE_REDIS
#include "netbroker.h"
#endif


enum { EXIT_USAGE = 2 };

#define THREADS_MAX 64

struct options {
	const char *device;             /* -d, or NULL for the default */
	const char *policy;             /* --policy, or the default path */
	bool policy_given;              /* --policy: the file must exist */
	unsigned threads;
	bool foreground;
	bool verbose;
	bool check;                     /* --check: parse the policy and exit */
	const char *redis_credentials;  /* --redis-credentials: "[USER ]PASSWORD" for network pipes */
	struct run_as run_as;           /* --user: who to become once the control node is open */
};

/* What the handler shares between loop threads; all under `lock`. */
struct broker {
	pthread_mutex_t lock;
	struct policy *policy;
	struct rendezvous *rendezvous;
#if HAVE_REDIS
	struct netbroker *net;          /* network pipes; its own lock */
#endif
	char policy_path[PATH_MAX];
	bool no_file;                   /* no file at the path: policy_builtin() */
	struct rdb_broker *channel;
	atomic_bool quit;               /* the signal thread may end */
};

/* ---- command line ---- */

enum {
	OPTION_CHECK = 0x100,
	OPTION_USER,
	OPTION_REDIS_CREDENTIALS,
};

static const struct option long_options[] = {
	{ "device", required_argument, NULL, 'd' },
	{ "policy", required_argument, NULL, 'p' },
	{ "threads", required_argument, NULL, 't' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "check", no_argument, NULL, OPTION_CHECK },
	{ "user", required_argument, NULL, OPTION_USER },
	{ "redis-credentials", required_argument, NULL, OPTION_REDIS_CREDENTIALS },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

static void usage_print(FILE *out)
{
	fprintf(out,
		"Usage: ringdev-broker [-d CTL] [--policy FILE] [--threads N] [--redis-credentials FILE] [-f] [-v]\n"
		"       ringdev-broker --check [--policy FILE]\n"
		"Decide what ringdevd relays (opens, attaches, device-specific ioctls, reads\n"
		"and writes of brokered pipes) by a policy file.\n"
		"\n"
		"  -d, --device CTL     the control node (/dev/NAME-ctl, MOUNT/.ctl), or a data\n"
		"                       node or mount to find it from (default: $RINGDEV_DEVICE,\n"
		"                       /dev/ringdev, /run/ringdev)\n"
		"  -p, --policy FILE    the policy (default $RINGDEV_BROKER_POLICY, else\n"
		"                       %s; with no file there,\n"
		"                       ringdevd's owner and mode bits decide)\n"
		"  -t, --threads N      TRANSACT threads, 1 to %d (default 1)\n"
		"  -f, --foreground     stay in the foreground, log to stderr\n"
		"  -v, --verbose        log at debug level too (every read and write)\n"
		"  --user USER[:GROUP]  once the control node is open, run as USER (and GROUP,\n"
		"                       default USER's group) with no capabilities\n"
		"  --redis-credentials FILE\n"
		"                       AUTH to the Redis of network pipes with \"[USER ]PASSWORD\"\n"
		"                       from FILE (mode 0600 or 0400, owned by the broker's user)\n"
		"  --check              check the policy file (network= URLs too, without\n"
		"                       connecting) and exit\n"
		"  -h, --help           show this help and exit\n"
		"  -V, --version        show the version and exit\n"
		"\n"
		"SIGHUP reloads the policy; SIGTERM or SIGINT stop. See ringdev-broker(8).\n"
		"Exit status: 0 stopped, 1 failed, 2 usage error.\n",
		RINGDEV_BROKER_POLICY_PATH, THREADS_MAX);
}

__attribute__((format(printf, 1, 2)))
static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("ringdev-broker: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(" (see ringdev-broker --help)\n", stderr);
	return EXIT_USAGE;
}

static int options_unknown(char **argv, int c)
{
	if (c == ':')
		return usage_error("option '%s' needs an argument", argv[optind - 1]);
	if (optopt)
		return usage_error("unknown option '-%c'", optopt);
	return usage_error("unknown option '%s'", argv[optind - 1]);
}

/* One option: 0, EXIT_USAGE after reporting, or -1 for "exit 0 now". */
static int option_apply(struct options *o, int c, char **argv)
{
	uint64_t n;

	switch (c) {
	case 'd':
		o->device = optarg;
		return 0;
	case 'p':
		o->policy = optarg;
		o->policy_given = true;
		return 0;
	case 't':
		if (parse_u64(optarg, 1, THREADS_MAX, &n) < 0)
			return usage_error("--threads: '%s' is not a number from 1 to %d", optarg, THREADS_MAX);
		o->threads = (unsigned)n;
		return 0;
	case 'f':
		o->foreground = true;
		return 0;
	case 'v':
		o->verbose = true;
		return 0;
	case OPTION_CHECK:
		o->check = true;
		return 0;
	case OPTION_REDIS_CREDENTIALS:
		o->redis_credentials = optarg;
		return 0;
	case OPTION_USER:
		if (!service_drop_supported())
			return usage_error("--user: %s", "ringdev-broker was built without libcap-ng");
		if (service_parse_user(optarg, &o->run_as) < 0)
			return usage_error("--user: no such user or group '%s' (USER[:GROUP]; a uid with no passwd "
					   "entry needs :GROUP)", optarg);
		return 0;
	case 'h':
		usage_print(stdout);
		return -1;
	case 'V':
		printf("ringdev-broker %s (ringdev ABI %d.%d)\n", RINGDEV_VERSION, RINGDEV_ABI_MAJOR,
		       RINGDEV_ABI_MINOR);
		return -1;
	default:
		return options_unknown(argv, c);
	}
}

/* 0 to go on, else the exit code (0 after --help/--version). */
static int options_parse(int argc, char **argv, struct options *o)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:p:t:fvhV", long_options, NULL)) != -1) {
		int r = option_apply(o, c, argv);
		if (r < 0)
			return -1;
		if (r > 0)
			return r;
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return 0;
}

/* ---- logging helpers ---- */

static const char *const type_names[] = { "?", "open", "attach", "ioctl", "read", "write", "cancel", "release" };

static const char *type_name(uint32_t type)
{
	return type < sizeof(type_names) / sizeof(type_names[0]) ? type_names[type] : "?";
}

static void errno_format(int err, char *buf, size_t size)
{
	const char *name = policy_errno_name(err);

	if (name)
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "errno %d", err);
}

/* Text from an app, fit for one log line: printable ASCII, the rest \xNN. */
static void text_sanitize(const char *in, size_t in_size, char *out, size_t out_size)
{
	size_t n = 0;

	for (size_t i = 0; i < in_size && in[i] && n + 5 < out_size; i++) {
		unsigned char c = (unsigned char)in[i];
		if (c >= 0x20 && c < 0x7f && c != '\\')
			out[n++] = (char)c;
		else
			n += (size_t)snprintf(out + n, out_size - n, "\\x%02x", c);
	}
	out[n] = '\0';
}

/* ---- opens and attaches ---- */

static bool opened_for_writing(uint32_t oflags)
{
	return (oflags & O_ACCMODE) == O_WRONLY || (oflags & O_ACCMODE) == O_RDWR;
}

/* "open pipe 'x' by uid 1000 gid 1000 pid 42 (handle 7): allow, mapped to
 * user.1000 (line 3); pipe line 9: brokered, settings". A request that
 * creates says so: "attach pipe 'x' (create, excl) by ..." for ringdevctl
 * create, "(create)" for an ATTACH or an open with O_CREAT or after a
 * mknod on the mount. */
static void decision_log(const struct ringdev_ctl_request *q, const struct policy_decision *d, bool no_file)
{
	char what[128], where[32], pipe_line[64] = "", how[32] = "";

	if (d->builtin) {
		snprintf(what, sizeof(what), "builtin, ringdevd decides by owner and mode bits");
	} else if (!d->allow) {
		char err[32];
		errno_format(d->err, err, sizeof(err));
		snprintf(what, sizeof(what), "deny %s", err);
	} else if (d->pipe[0]) {
		snprintf(what, sizeof(what), "allow, mapped to %s%s", d->pipe, d->grant ? ", grant" : "");
	} else {
		snprintf(what, sizeof(what), "allow%s", d->grant ? ", grant" : "");
	}
	if ((q->type == RINGDEV_CTL_ATTACH || q->type == RINGDEV_CTL_OPEN) && (q->attach_flags & RINGDEV_ATTACH_CREATE))
		snprintf(how, sizeof(how), " (create%s)", (q->attach_flags & RINGDEV_ATTACH_EXCL) ? ", excl" : "");
	if (d->line)
		snprintf(where, sizeof(where), "line %u", d->line);
	else
		snprintf(where, sizeof(where), "%s", no_file ? "no policy file" : "default");
	if (d->pipe_line)
		snprintf(pipe_line, sizeof(pipe_line), "; pipe line %u:%s%s%s", d->pipe_line,
			 d->brokered ? " brokered" : "", d->network[0] ? ", network" : "",
			 d->has_settings ? (d->brokered ? ", settings" : " settings") : "");
	log_info("%s pipe '%s'%s by uid %u gid %u pid %u (handle %llu): %s (%s)%s", type_name(q->type), q->name,
		 how, q->uid, q->gid, q->pid, (unsigned long long)q->handle, what, where, pipe_line);
}

static void on_access(struct broker *b, struct rdb_request *request, const struct ringdev_ctl_request *q)
{
	struct policy_query query = {
		.op = q->type == RINGDEV_CTL_OPEN ? POLICY_OP_OPEN : POLICY_OP_ATTACH,
		.name = q->name,
		.uid = q->uid,
		.gid = q->gid,
		.kind = q->kind,
		.policy = q->policy,
		.mode = q->mode,
		.capacity = q->capacity,
	};
	struct policy_decision d;
	int r = 0;

	pthread_mutex_lock(&b->lock);
	policy_decide(b->policy, &query, &d);
	const char *pipe = d.pipe[0] ? d.pipe : q->name;
	if (d.allow && d.brokered && !d.network[0])
		r = rv_attach(b->rendezvous, q->handle, pipe, opened_for_writing(q->oflags));
	else if (d.allow)
		rv_detach(b->rendezvous, q->handle); /* moved off a brokered pipe, if it was on one */
	bool no_file = b->no_file;
	pthread_mutex_unlock(&b->lock);

	if (r < 0) {
		log_error("%s pipe '%s': %s", type_name(q->type), pipe, strerror(-r));
		rdb_deny(request, -r);
		return;
	}
	decision_log(q, &d, no_file);
	if (d.builtin)
		r = rdb_allow_builtin(request);
	else if (!d.allow)
		r = rdb_deny(request, d.err);
	else if (d.grant)
		r = rdb_allow_grant(request, d.pipe, d.has_settings ? &d.settings : NULL, d.brokered);
	else
		r = rdb_allow_pipe(request, d.pipe, d.has_settings ? &d.settings : NULL, d.brokered);
	if (r == -EPROTONOSUPPORT)
		log_error("%s pipe '%s': ringdevd is older than ABI 1.%d and cannot decide it: denied EACCES",
			  type_name(q->type), pipe, RDB_BUILTIN_ABI_MINOR);
	else if (r < 0)
		log_error("%s pipe '%s': answer: %s", type_name(q->type), pipe, strerror(-r));
}

/* ---- the example ioctls ---- */

static void ioctl_log(struct rdb_request *request, const struct ringdev_ctl_request *q, const void *in,
		      size_t size)
{
	const struct ringdev_broker_log *msg = in;
	char text[4 * RINGDEV_BROKER_TEXT_SIZE + 1];

	if (size != sizeof(*msg) || !memchr(msg->text, '\0', sizeof(msg->text))) {
		log_info("ioctl LOG on pipe '%s' by uid %u pid %u: text not terminated: EINVAL", q->name, q->uid,
			 q->pid);
		rdb_deny(request, EINVAL);
		return;
	}
	text_sanitize(msg->text, sizeof(msg->text), text, sizeof(text));
	log_info("ioctl LOG on pipe '%s' by uid %u pid %u: \"%s\"", q->name, q->uid, q->pid, text);
	rdb_reply_ioctl(request, 0, NULL, 0);
}

static void ioctl_echo(struct rdb_request *request, const struct ringdev_ctl_request *q, const void *in,
		       size_t size)
{
	struct ringdev_broker_echo *out;

	if (size != sizeof(*out) || q->out_size != sizeof(*out)) {
		rdb_deny(request, EINVAL);
		return;
	}
	out = calloc(1, sizeof(*out));
	if (!out) {
		rdb_deny(request, ENOMEM);
		return;
	}
	memcpy(&out->len, in, sizeof(out->len));
	if (out->len > RINGDEV_BROKER_ECHO_MAX) {
		log_info("ioctl ECHO on pipe '%s' by uid %u pid %u: len %u: EINVAL", q->name, q->uid, q->pid,
			 out->len);
		free(out);
		rdb_deny(request, EINVAL);
		return;
	}
	memcpy(out->data, (const uint8_t *)in + offsetof(struct ringdev_broker_echo, data), out->len);
	for (uint32_t i = 0; i < out->len; i++)
		if (out->data[i] >= 'a' && out->data[i] <= 'z')
			out->data[i] = (uint8_t)(out->data[i] - 'a' + 'A');
	log_info("ioctl ECHO on pipe '%s' by uid %u pid %u: %u bytes", q->name, q->uid, q->pid, out->len);
	int r = rdb_reply_ioctl(request, (int)out->len, out, sizeof(*out));
	if (r < 0)
		log_error("ioctl ECHO: answer: %s", strerror(-r));
	free(out);
}

static void on_ioctl(struct broker *b, struct rdb_request *request, const struct ringdev_ctl_request *q)
{
	size_t size;
	const void *in = rdb_request_payload(request, &size);

	pthread_mutex_lock(&b->lock);
	bool no_file = b->no_file;
	pthread_mutex_unlock(&b->lock);
	if (no_file) {
		/* As ringdevd without a broker: it has no device-specific ioctls. */
		log_info("ioctl 0x%08x on pipe '%s' by uid %u pid %u: no policy file: ENOTTY", q->cmd, q->name,
			 q->uid, q->pid);
		rdb_deny(request, ENOTTY);
	} else if (q->cmd == RINGDEV_BROKER_IOC_LOG) {
		ioctl_log(request, q, in, size);
	} else if (q->cmd == RINGDEV_BROKER_IOC_ECHO) {
		ioctl_echo(request, q, in, size);
	} else {
		log_info("ioctl 0x%08x on pipe '%s' by uid %u pid %u: unknown: ENOTTY", q->cmd, q->name, q->uid,
			 q->pid);
		rdb_deny(request, ENOTTY);
	}
}

/* ---- brokered pipes ---- */

static void read_done(void *ctx, void *request, const void *data, size_t size)
{
	const struct ringdev_ctl_request *q = rdb_request_info(request);

	log_debug("read %llu on pipe '%s' (handle %llu): %zu of %u bytes%s", (unsigned long long)q->id, q->name,
		  (unsigned long long)q->handle, size, q->size, size ? "" : " (end-of-file)");
	int r = rdb_reply_read(request, data, size);
	if (r < 0)
		log_error("read on pipe: answer: %s", strerror(-r));
}

static void write_done(void *ctx, void *request, size_t taken)
{
	const struct ringdev_ctl_request *q = rdb_request_info(request);

	log_debug("write %llu on pipe '%s' (handle %llu): %zu bytes taken", (unsigned long long)q->id, q->name,
		  (unsigned long long)q->handle, taken);
	int r = rdb_reply_write(request, taken);
	if (r < 0)
		log_error("write on pipe: answer: %s", strerror(-r));
}

static void drop(void *ctx, void *request)
{
	rdb_drop(request);
}

static const struct rv_ops rendezvous_ops = {
	.read_done = read_done,
	.write_done = write_done,
	.drop = drop,
};

#if HAVE_REDIS
static uint32_t np_policy_of(uint32_t policy)
{
	return policy == RINGDEV_POLICY_FAIL ? NP_POLICY_FAIL
	       : policy == RINGDEV_POLICY_OVERWRITE ? NP_POLICY_OVERWRITE : NP_POLICY_BLOCK;
}

/* Is the request's pipe a network pipe (its policy line has network=)?
 * Then its URL and the settings its stream gets. */
static bool network_of(struct broker *b, const struct ringdev_ctl_request *q, char *url, size_t size,
		       struct np_settings *settings)
{
	struct policy_query query = { .op = POLICY_OP_ATTACH, .name = q->name, .uid = q->uid, .gid = q->gid };

	pthread_mutex_lock(&b->lock);
	const struct policy_pipe *line = policy_pipe_find(b->policy, &query, q->name);
	bool network = line && line->network[0];
	if (network) {
		snprintf(url, size, "%s", line->network);
		settings->capacity = line->capacity ? line->capacity : 64u << 10; /* ringdevd's --ring-size default */
		settings->policy = np_policy_of(line->policy);
	}
	pthread_mutex_unlock(&b->lock);
	return network;
}

/* A READ or WRITE on a network pipe: queued for the netbroker's workers.
 * False if the pipe is not a network pipe. */
static bool on_network_data(struct broker *b, struct rdb_request *request, const struct ringdev_ctl_request *q)
{
	char url[POLICY_NETWORK_SIZE];
	struct np_settings settings;

	if (!network_of(b, q, url, sizeof(url), &settings))
		return false;
	int r = nb_submit(b->net, url, &settings, request);
	if (r < 0) {
		log_error("%s on network pipe '%s': %s", type_name(q->type), q->name, strerror(-r));
		rdb_deny(request, r == -EAGAIN ? EIO : -r);
	}
	return true;
}
#endif

static void on_data(struct broker *b, struct rdb_request *request, const struct ringdev_ctl_request *q)
{
	size_t size;
	const void *data = rdb_request_payload(request, &size);
	int r;

	bool nonblock = q->oflags & O_NONBLOCK;

#if HAVE_REDIS
	if (on_network_data(b, request, q))
		return;
#endif
	pthread_mutex_lock(&b->lock);
	if (q->type == RINGDEV_CTL_READ)
		r = rv_read(b->rendezvous, q->handle, q->id, q->name, q->size, nonblock, request);
	else
		r = rv_write(b->rendezvous, q->handle, q->id, q->name, data, size, nonblock, request);
	pthread_mutex_unlock(&b->lock);
	if (r == -EAGAIN) {
		log_debug("%s %llu on pipe '%s' (handle %llu): EAGAIN (O_NONBLOCK)", type_name(q->type),
			  (unsigned long long)q->id, q->name, (unsigned long long)q->handle);
		rdb_deny(request, EAGAIN);
	} else if (r < 0) {
		log_error("%s on pipe '%s': %s", type_name(q->type), q->name, strerror(-r));
		rdb_deny(request, -r);
	}
}

/* The daemon refused an answer: nothing it carried reached an app. A READ's
 * bytes go back to the head of their pipe, for the next reader; a WRITE's
 * count reached no writer, but its bytes are with readers already and cannot
 * come back (only a broker slower than --cancel-timeout gets here). */
#if HAVE_REDIS
/* An answer the daemon took: a network read's entry is acknowledged in
 * Redis only now that the app has it. */
static void on_accepted(const struct rdb_request *request, const struct ringdev_ctl_answer *a, void *data)
{
	struct broker *b = data;
	const struct ringdev_ctl_request *q = rdb_request_info(request);
	(void)a;
	if (q->type == RINGDEV_CTL_READ)
		nb_accepted(b->net, q->id);
}
#endif

static void on_refused(const struct rdb_request *request, const struct ringdev_ctl_answer *a, const void *payload,
		       size_t size, void *data)
{
	struct broker *b = data;
	const struct ringdev_ctl_request *q = rdb_request_info(request);

#if HAVE_REDIS
	/* A network pipe's entry goes back to Redis, for any host's reader. */
	if (q->type == RINGDEV_CTL_READ && nb_refused(b->net, q->id))
		return;
	char url[POLICY_NETWORK_SIZE];
	struct np_settings settings;
	if (q->type == RINGDEV_CTL_READ && a->result > 0 && network_of(b, q, url, sizeof(url), &settings)) {
		/* Its entry was given back already (no verdict within
		 * NB_VERDICT_MAX_MS): not the rendezvous' to give out. */
		log_error("read %llu on network pipe '%s': answer refused by ringdevd after its entry was given "
			  "back", (unsigned long long)q->id, q->name);
		return;
	}
#endif
	if (q->type == RINGDEV_CTL_READ && a->result > 0 && payload && size) {
		pthread_mutex_lock(&b->lock);
		int r = rv_unread(b->rendezvous, q->name, payload, size);
		pthread_mutex_unlock(&b->lock);
		if (r < 0)
			log_error("read %llu on pipe '%s': %zu bytes refused by ringdevd and lost: %s",
				  (unsigned long long)q->id, q->name, size, strerror(-r));
		else
			log_info("read %llu on pipe '%s': answer refused by ringdevd: its %zu bytes go to the next reader",
				 (unsigned long long)q->id, q->name, size);
	} else if (q->type == RINGDEV_CTL_WRITE && a->result > 0) {
		log_warn("write %llu on pipe '%s': answer refused by ringdevd: the writer was not told that %d bytes "
			 "were taken", (unsigned long long)q->id, q->name, a->result);
	} else if ((q->type == RINGDEV_CTL_OPEN || q->type == RINGDEV_CTL_ATTACH) && a->result == 0) {
		/* The open or attach this answer allowed never happened (its app
		 * was interrupted, or went): no RELEASE will come for it, so the
		 * handle leaves its rendezvous pipe now, or the pipe's readers
		 * would wait for a writer that never was. */
		pthread_mutex_lock(&b->lock);
		rv_detach(b->rendezvous, q->handle);
		pthread_mutex_unlock(&b->lock);
		log_debug("%s %llu: answer refused by ringdevd: handle %llu let go", type_name(q->type),
			  (unsigned long long)q->id, (unsigned long long)q->handle);
	} else {
		log_debug("%s %llu: answer refused by ringdevd", type_name(q->type), (unsigned long long)q->id);
	}
}

static void on_notice(struct broker *b, const struct ringdev_ctl_request *q)
{
	if (q->type == RINGDEV_CTL_CANCEL) {
		bool held = false;
#if HAVE_REDIS
		held = nb_cancel(b->net, q->ref);
#endif
		pthread_mutex_lock(&b->lock);
		if (!held)
			held = rv_cancel(b->rendezvous, q->ref);
		pthread_mutex_unlock(&b->lock);
		log_info("cancel of request %llu (handle %llu): %s", (unsigned long long)q->ref,
			 (unsigned long long)q->handle, held ? "ended" : "not held (answered already)");
		return;
	}
#if HAVE_REDIS
	nb_release(b->net, q->handle);
#endif
	pthread_mutex_lock(&b->lock);
	rv_detach(b->rendezvous, q->handle);
	pthread_mutex_unlock(&b->lock);
	log_debug("release of handle %llu", (unsigned long long)q->handle);
}

static void on_request(struct rdb_request *request, void *data)
{
	struct broker *b = data;
	const struct ringdev_ctl_request *q = rdb_request_info(request);

	switch (q->type) {
	case RINGDEV_CTL_OPEN:
	case RINGDEV_CTL_ATTACH:
		on_access(b, request, q);
		break;
	case RINGDEV_CTL_IOCTL:
		on_ioctl(b, request, q);
		break;
	case RINGDEV_CTL_READ:
	case RINGDEV_CTL_WRITE:
		on_data(b, request, q);
		break;
	default:
		on_notice(b, q);
		break;
	}
}

/* ---- signals, reload ---- */

static void policy_reload(struct broker *b)
{
	struct policy *fresh = NULL;
	char error[512];

	int r = policy_load(b->policy_path, &fresh, error, sizeof(error));
	pthread_mutex_lock(&b->lock);
	bool no_file = b->no_file;
	pthread_mutex_unlock(&b->lock); /* only this thread changes it */
	if (r == -ENOENT && no_file) {
		log_info("policy reload: %s does not exist: keeping the built-in policy", b->policy_path);
		return;
	}
	if (r < 0) {
		log_error("policy reload failed, keeping the old policy: %s", error);
		return;
	}
	pthread_mutex_lock(&b->lock);
	struct policy *old = b->policy;
	bool case_changed = old->case_sensitive != fresh->case_sensitive;
	b->policy = fresh;
	b->no_file = false;
	pthread_mutex_unlock(&b->lock);
	if (case_changed)
		log_warn("policy reload: case-sensitive changes take effect only at restart");
	log_info("policy reloaded from %s: %zu rules, %zu pipe lines", b->policy_path, fresh->nrules,
		 fresh->npipes);
	policy_free(old);
}

/* SIGUSR1 with `quit` set ends the signal thread (main sends it); from
 * anyone else it is ignored. Not pthread_cancel: a thread cancelled inside
 * sigwait leaves its stack frame to the unwinder, which sanitizers dislike. */
static void signals_set(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGHUP);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGUSR1);
}

static void *signal_thread(void *arg)
{
	struct broker *b = arg;
	sigset_t set;
	int sig;

	signals_set(&set);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGUSR1 && atomic_load(&b->quit))
			return NULL;
		if (sig == SIGUSR1)
			log_debug("SIGUSR1 ignored");
		else if (sig == SIGHUP)
			policy_reload(b);
		else {
			log_info("signal %d: stopping", sig);
			rdb_stop(b->channel);
		}
	}
}

/* ---- start-up ---- */

static const char *open_hint(int err)
{
	switch (err) {
	case ENOENT:
		return "is ringdevd running?";
	case EBUSY:
		return "another broker holds the control node";
	case EACCES:
		return "only root, ringdevd's user or its --ctl-group may open the control node";
	case ENOTTY:
		return "not a ringdev control node";
	case EPROTO:
		return "ringdevd speaks another ABI version";
	case ENOTCONN:
	case ECONNABORTED:
	case ENODEV:
		return "ringdevd is gone";
	case ESHUTDOWN:
		return "ringdevd is shutting down";
	default:
		return NULL;
	}
}

/* No file at the default path: policy_builtin(). The path is kept,
 * absolute (a detached broker runs in /), so SIGHUP reads a file put there. */
static int policy_start_builtin(struct broker *b, const struct options *o)
{
	char cwd[PATH_MAX];
	const char *dir = o->policy[0] == '/' ? "" : getcwd(cwd, sizeof(cwd));
	int n = dir ? snprintf(b->policy_path, sizeof(b->policy_path), "%s%s%s", dir, dir[0] ? "/" : "",
			       o->policy) : -1;

	if (n < 0 || (size_t)n >= sizeof(b->policy_path)) {
		fprintf(stderr, "ringdev-broker: %s: %s\n", o->policy, strerror(dir ? ENAMETOOLONG : errno));
		return EXIT_FAILURE;
	}
	b->policy = policy_builtin();
	if (!b->policy) {
		fprintf(stderr, "ringdev-broker: %s\n", strerror(ENOMEM));
		return EXIT_FAILURE;
	}
	b->no_file = true;
	return 0;
}

static int policy_start(struct broker *b, const struct options *o)
{
	char error[512];

	if (!realpath(o->policy, b->policy_path)) {
		int err = errno;
		if (err == ENOENT && !o->policy_given)
			return policy_start_builtin(b, o);
		fprintf(stderr, "ringdev-broker: %s: %s\n", o->policy, strerror(err));
		return EXIT_FAILURE;
	}
	if (policy_load(b->policy_path, &b->policy, error, sizeof(error)) < 0) {
		/* Name the file as the user gave it. */
		const char *rest = strncmp(error, b->policy_path, strlen(b->policy_path)) == 0
					   ? error + strlen(b->policy_path) : NULL;
		if (rest)
			fprintf(stderr, "ringdev-broker: %s%s\n", o->policy, rest);
		else
			fprintf(stderr, "ringdev-broker: %s\n", error);
		return EXIT_FAILURE;
	}
	return 0;
}

static int channel_open(struct broker *b, const struct options *o)
{
	char path[PATH_MAX];
	int r = rdb_ctl_path(o->device, path, sizeof(path));

	if (r == 0)
		r = rdb_open(path, on_request, b, &b->channel);
	if (r == 0)
		r = rdb_set_refused_handler(b->channel, on_refused, b);
#if HAVE_REDIS
	if (r == 0)
		r = rdb_set_accepted_handler(b->channel, on_accepted, b);
#endif
	if (r < 0) {
		const char *hint = open_hint(-r);
		fprintf(stderr, "ringdev-broker: %s: %s%s%s\n", path[0] ? path : o->device, strerror(-r),
			hint ? "; " : "", hint ? hint : "");
		return EXIT_FAILURE;
	}
	if (b->no_file) {
		/* Said once, and only when serving: a failed start says one line. */
		log_info("no policy file at %s: using the built-in policy (owner and mode bits decide, "
			 "device ioctls get ENOTTY)", b->policy_path);
		log_info("control node %s, the built-in policy, %u thread%s", path, o->threads,
			 o->threads == 1 ? "" : "s");
	} else {
		log_info("control node %s, policy %s (%zu rules, %zu pipe lines), %u thread%s", path,
			 b->policy_path, b->policy->nrules, b->policy->npipes, o->threads, o->threads == 1 ? "" : "s");
	}
	struct ringdev_version version;
	rdb_version(b->channel, &version);
	if (version.abi_minor < RDB_BUILTIN_ABI_MINOR)
		log_warn("ringdevd speaks ABI %u.%u: it cannot decide for this broker, so builtin decisions%s are "
			 "denied with EACCES", version.abi_major, version.abi_minor,
			 b->no_file ? " (all of them, with no policy file)" : "");
	else if (version.abi_minor < RDB_GRANT_ABI_MINOR && !b->no_file)
		log_warn("ringdevd speaks ABI %u.%u: an open or attach this broker allows skips the pipe's owner and "
			 "mode bits there, and a mapped open may land in another user's pipe (ABI 1.%d checks both)",
			 version.abi_major, version.abi_minor, RDB_GRANT_ABI_MINOR);
	return 0;
}

/* Serve until a signal or the daemon ends it; the exit code. */
static int serve(struct broker *b, const struct options *o)
{
	pthread_t signals;

	if (!o->foreground) {
		if (daemon(0, 0) < 0) {
			fprintf(stderr, "ringdev-broker: daemon: %s\n", strerror(errno));
			return EXIT_FAILURE;
		}
		log_use_syslog("ringdev-broker");
	}
	/* No thread runs yet (credentials are per thread), the control node
	 * is open, and SIGHUP's reload needs only a readable policy file. */
	if (o->run_as.set && service_drop_privileges(&o->run_as) < 0)
		return EXIT_FAILURE;
	service_notify_ready("serving the control node");
	int r = pthread_create(&signals, NULL, signal_thread, b);
	if (r) {
		log_error("signal thread: %s", strerror(r));
		return EXIT_FAILURE;
	}
	r = rdb_run(b->channel, o->threads);
	service_notify_stopping();
	atomic_store(&b->quit, true);
	pthread_kill(signals, SIGUSR1);
	pthread_join(signals, NULL);
	if (r < 0) {
		const char *hint = open_hint(-r);
		log_error("control node: %s%s%s", strerror(-r), hint ? "; " : "", hint ? hint : "");
		return EXIT_FAILURE;
	}
	log_info("stopped");
	return EXIT_SUCCESS;
}

static int broker_run(const struct options *o)
{
	struct broker b = { .lock = PTHREAD_MUTEX_INITIALIZER };
	int code = policy_start(&b, o);

	if (code == 0 && o->check) {
		if (b.no_file)
			printf("%s: no such file: the built-in policy applies (owner and mode bits decide)\n",
			       o->policy);
		else
			printf("%s: ok (%zu rules, %zu pipe lines)\n", o->policy, b.policy->nrules, b.policy->npipes);
		policy_free(b.policy);
		return EXIT_SUCCESS;
	}
	if (code == 0) {
		b.rendezvous = rv_new(&rendezvous_ops, &b, b.policy->case_sensitive);
#if HAVE_REDIS
		b.net = nb_new(o->redis_credentials, b.policy->case_sensitive);
		if (!b.net)
			b.rendezvous = rv_free(b.rendezvous);
#endif
		if (!b.rendezvous) {
			fprintf(stderr, "ringdev-broker: %s\n", strerror(ENOMEM));
			code = EXIT_FAILURE;
		}
	}
	if (code == 0) {
		/* From here a signal waits for the signal thread: once the
		 * daemon counts the broker connected, a SIGHUP or SIGTERM sent
		 * before serving starts must be taken, not kill the broker by
		 * its default action (a stop before rdb_run() still stops it). */
		sigset_t set;
		signals_set(&set);
		pthread_sigmask(SIG_BLOCK, &set, NULL);
		code = channel_open(&b, o);
	}
	if (code == 0)
		code = serve(&b, o);
#if HAVE_REDIS
	b.net = nb_free(b.net); /* its held requests are answered on the channel */
#endif
	b.channel = rdb_close(b.channel);
	b.rendezvous = rv_free(b.rendezvous);
	b.policy = policy_free(b.policy);
	return code;
}

/* The default policy file: $RINGDEV_BROKER_POLICY (a broker run from a build
 * tree, or a test, points it elsewhere), else the installed one. */
static const char *policy_default(void)
{
	const char *env = getenv("RINGDEV_BROKER_POLICY");

	return env && env[0] ? env : RINGDEV_BROKER_POLICY_PATH;
}

int main(int argc, char **argv)
{
	struct options o = { .policy = policy_default(), .threads = 1 };

	log_set_ident("ringdev-broker");
	log_detect_journal();
	int r = options_parse(argc, argv, &o);
	if (r != 0)
		return r < 0 ? EXIT_SUCCESS : r;
	if (o.verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	/* Replies to apps never raise SIGPIPE; neither does anything else here. */
	signal(SIGPIPE, SIG_IGN);
	int code = broker_run(&o);
	log_flush(); /* a flood held back by the rate limit is still counted */
	return code;
}
