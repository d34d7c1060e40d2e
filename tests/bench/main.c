/* SPDX-License-Identifier: MIT */
/*
 * main.c - ringdev-bench: how fast ringdev is, each figure against a
 * reference measured in the same run (tests/bench/README.md). It starts
 * its own ringdevd on temporary FUSE mounts, runs the sections asked for,
 * prints the table and, with --json, writes it as JSON. No time is
 * asserted: the exit status says only whether every step worked.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "bench.h"

struct bench_config cfg;

static const struct bench_sizes full_sizes = {
	.stream_bytes_small = 128u << 20,
	.stream_bytes_large = 512u << 20,
	.pings = 10000,
	.small_writes = 50000,
	.ioctls = 10000,
	.crowd_pipes = 10000,
	.crowd_handles = 1000,
	.pair_bytes = 128u << 20,
	.restart_pipes = 10000,
	.restart_handles = 1000,
	.restart_full_pipes = 16,
	.restart_ring = 64u << 20, /* 16 x 64 MiB: 1 GiB queued */
};

/* Every section end to end, in seconds rather than minutes. */
static const struct bench_sizes smoke_sizes = {
	.stream_bytes_small = 2u << 20,
	.stream_bytes_large = 8u << 20,
	.pings = 200,
	.small_writes = 1000,
	.ioctls = 200,
	.crowd_pipes = 200,
	.crowd_handles = 20,
	.pair_bytes = 4u << 20,
	.restart_pipes = 1000,
	.restart_handles = 100,
	.restart_full_pipes = 4,
	.restart_ring = 16u << 20, /* 64 MiB queued */
};

#define DEFAULT_ROUNDS 5
#define SMOKE_ROUNDS 2

static const char usage_text[] =
	"Usage: ringdev-bench [OPTION]... [RINGDEVD [ECHO_BROKER]]\n"
	"Measure ringdev against references taken in the same run: pipe(2), a\n"
	"socketpair, a bare libfuse file, ioctls the daemon answers itself. Rounds of\n"
	"reference and ringdev alternate; each figure is a median. Nothing is asserted.\n"
	"\n"
	"  RINGDEVD             the daemon (default $RINGDEVD)\n"
	"  ECHO_BROKER          broker/examples/echo-broker (default $RINGDEV_ECHO_BROKER)\n"
	"  --smoke              tiny sizes, 2 rounds: every section end to end in seconds\n"
	"  --rounds N           rounds per figure (default 5, 1 to 64)\n"
	"  --json FILE          also write the results to FILE as JSON\n"
	"  --only SECTION       run only section 1 to 6 (repeatable):\n"
	"                       1 stream, 2 ping-pong, 3 writes/s, 4 brokered ioctls, 5 scale,\n"
	"                       6 restart pause\n"
	"  --daemon-arg ARG     pass ARG to every ringdevd started (repeatable),\n"
	"                       e.g. --daemon-arg=--ring-size=1M\n"
	"  --bench-broker PATH  the threaded broker of section 4 (default\n"
	"                       $RINGDEV_BENCH_BROKER, else ringdev-bench-broker beside this program)\n"
	"  -h, --help           show this help\n";

static __attribute__((noreturn, format(printf, 1, 2))) void usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ringdev-bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ringdev-bench --help'.\n");
	exit(2);
}

static long parse_number(const char *s, long lo, long hi, const char *option)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < lo || v > hi)
		usage_error("%s: '%s' is not a number from %ld to %ld", option, s, lo, hi);
	return v;
}

enum { OPT_SMOKE = 256, OPT_ROUNDS, OPT_JSON, OPT_ONLY, OPT_DAEMON_ARG, OPT_BENCH_BROKER };

static const struct option options[] = {
	{ "smoke", no_argument, NULL, OPT_SMOKE },
	{ "rounds", required_argument, NULL, OPT_ROUNDS },
	{ "json", required_argument, NULL, OPT_JSON },
	{ "only", required_argument, NULL, OPT_ONLY },
	{ "daemon-arg", required_argument, NULL, OPT_DAEMON_ARG },
	{ "bench-broker", required_argument, NULL, OPT_BENCH_BROKER },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static void parse_option(int c)
{
	switch (c) {
	case OPT_SMOKE:
		cfg.smoke = true;
		break;
	case OPT_ROUNDS:
		cfg.rounds = (int)parse_number(optarg, 1, BENCH_MAX_ROUNDS, "--rounds");
		break;
	case OPT_JSON:
		cfg.json_path = optarg;
		break;
	case OPT_ONLY:
		cfg.sections |= 1u << (parse_number(optarg, 1, BENCH_SECTIONS, "--only") - 1);
		break;
	case OPT_DAEMON_ARG:
		if (cfg.ndaemon_args == BENCH_MAX_DAEMON_ARGS)
			usage_error("--daemon-arg: more than %d", BENCH_MAX_DAEMON_ARGS);
		cfg.daemon_args[cfg.ndaemon_args++] = optarg;
		break;
	case OPT_BENCH_BROKER:
		snprintf(cfg.bench_broker, sizeof(cfg.bench_broker), "%s", optarg);
		break;
	case 'h':
		fputs(usage_text, stdout);
		exit(0);
	default:
		fprintf(stderr, "Try 'ringdev-bench --help'.\n");
		exit(2);
	}
}

/* ringdev-bench-broker beside this program, unless told otherwise. */
static void default_bench_broker(void)
{
	const char *env = getenv("RINGDEV_BENCH_BROKER");
	char self[BENCH_PATH_MAX];
	if (cfg.bench_broker[0])
		return;
	if (env) {
		snprintf(cfg.bench_broker, sizeof(cfg.bench_broker), "%s", env);
		return;
	}
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		die("readlink /proc/self/exe");
	self[n] = '\0';
	snprintf(cfg.bench_broker, sizeof(cfg.bench_broker), "%s/ringdev-bench-broker", dirname(self));
}

static void require_program(const char *path, const char *what)
{
	if (!path || !path[0])
		usage_error("no %s given", what);
	if (access(path, X_OK) < 0)
		usage_error("%s: not an executable program", path);
}

static void parse_args(int argc, char **argv)
{
	int c;
	while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1)
		parse_option(c);
	if (argc - optind > 2)
		usage_error("unexpected argument '%s'", argv[optind + 2]);
	cfg.ringdevd = optind < argc ? argv[optind] : getenv("RINGDEVD");
	cfg.echo_broker = optind + 1 < argc ? argv[optind + 1] : getenv("RINGDEV_ECHO_BROKER");
	if (!cfg.sections)
		cfg.sections = (1u << BENCH_SECTIONS) - 1;
	if (!cfg.rounds)
		cfg.rounds = cfg.smoke ? SMOKE_ROUNDS : DEFAULT_ROUNDS;
	cfg.sizes = cfg.smoke ? smoke_sizes : full_sizes;
	require_program(cfg.ringdevd, "ringdevd (argument or $RINGDEVD)");
	if (cfg.sections & (1u << 3)) {
		default_bench_broker();
		require_program(cfg.echo_broker, "echo broker (argument or $RINGDEV_ECHO_BROKER)");
		require_program(cfg.bench_broker, "ringdev-bench-broker (--bench-broker)");
	}
}

/* Sections 5 and 6 hold their handles open at once, beside the run's own
 * fds (section 6: both of its daemons' at once). */
static void raise_fd_limit(void)
{
	struct rlimit rl;
	uint64_t most = cfg.sizes.crowd_handles > cfg.sizes.restart_handles ? cfg.sizes.crowd_handles
									       : cfg.sizes.restart_handles;
	rlim_t want = (rlim_t)most + 256;
	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("getrlimit(RLIMIT_NOFILE)");
	if (rl.rlim_cur >= want)
		return;
	if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
		fail("RLIMIT_NOFILE: %llu descriptors at most, sections 5 and 6 need %llu", (unsigned long long)rl.rlim_max,
		     (unsigned long long)want);
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		die("setrlimit(RLIMIT_NOFILE)");
}

typedef void section_fn(struct daemon *d);

static section_fn *const sections[BENCH_SECTIONS] = {
	section_stream, section_pingpong, section_writes, section_ioctl, section_scale, section_restart,
};

int main(int argc, char **argv)
{
	parse_args(argc, argv);
	install_exit_handlers();
	raise_fd_limit();
	setvbuf(stdout, NULL, _IOLBF, 0);

	struct daemon d;
	daemon_start(&d, "main");
	for (int s = 0; s < BENCH_SECTIONS; s++)
		if (cfg.sections & (1u << s))
			sections[s](&d);
	bench_phase = "report";
	report_print();
	if (cfg.json_path)
		report_json(cfg.json_path);
	daemon_stop(&d);
	stop_all_children();
	return 0;
}
