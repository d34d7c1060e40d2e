/* SPDX-License-Identifier: MIT */
/*
 * main.c - ringdevd: parse the command line, pick the frontend the kernel
 * allows, run it. Exit codes: 0 clean shutdown, 1 failure, 2 usage.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "device_path.h"
#include "frontend.h"
#include "log.h"
#include "name.h"
#include "parse.h"
#include "restart.h"
#include "service.h"

/* --max-opens-per-uid when not given. */
#define DEFAULT_OPENS_PER_UID 4096

/* --busy-poll: the default covers one wake-up of another process on a VM
 * whose idle vCPUs halt (a broker's answer, an app's next call come within
 * it), as the kernel's net.core.busy_read suggests 50 us; an idle daemon
 * never polls, since the window counts from the last request. */
#define BUSY_POLL_DEFAULT_US 50
#define BUSY_POLL_MAX_US 1000

static const char usage_text[] =
	"Usage: ringdevd [OPTION]...\n"
	"Serve named ring-buffer pipes as a device: a CUSE node /dev/NAME, or a FUSE\n"
	"mount whose files are the pipes where the kernel has no CUSE.\n"
	"\n"
	"  --frontend=auto|fuse|cuse  auto: CUSE when /dev/cuse opens, else the FUSE mount\n"
	"  --name NAME                CUSE device name (default ringdev)\n"
	"  --mount DIR                FUSE mount directory (default /run/ringdev as root,\n"
	"                             else $XDG_RUNTIME_DIR/ringdev)\n"
	"  -f, --foreground           stay in the foreground, log to stderr\n"
	"  --mode OCTAL               device permissions (default 0666)\n"
	"  --group GROUP              device group (default: the daemon's group)\n"
	"  --ctl-group GROUP          control node group, mode 0660 (default: 0600, daemon only)\n"
	"  --admin-group GROUP        members see every pipe and open and manage every pipe\n"
	"  --require-broker           relayed requests wait for a broker, never the built-in policy\n"
	"  --broker-timeout MS        how long a relayed request waits to be taken (default 5000)\n"
	"  --cancel-timeout MS        how long an interrupted call the broker took waits for its\n"
	"                             answer before it ends with EINTR (default 2000)\n"
	"  --default-pipe NAME        pipe a CUSE open starts on (default default)\n"
	"  --ring-size BYTES          default pipe capacity (default 64K)\n"
	"  --max-pipes N              most pipes at once (default 1024)\n"
	"  --max-memory BYTES         most ring memory in all (default 256M)\n"
	"  --max-pipes-per-uid N      most pipes one user may own (default a quarter of --max-pipes; 0: no limit)\n"
	"  --max-opens-per-uid N      most handles one user may hold (default 4096; 0: no limit)\n"
	"  --max-parked N             most requests waiting at once (default 65536)\n"
	"  --max-memory-per-uid BYTES most ring memory of the pipes one user owns\n"
	"                             (default: a quarter of --max-memory; 0: no limit)\n"
	"  --max-parked-per-uid N     most requests of one user's handles waiting at once\n"
	"                             (default: a quarter of --max-parked; 0: no limit)\n"
	"  --case-sensitive           HELLO and hello are different pipes\n"
	"  --user USER[:GROUP]        once the node or mount is there, run as USER (and\n"
	"                             GROUP, default USER's group) with no capabilities\n"
	"  --threads N                serving threads, 1 to 64 (default: the CPUs, at most 4)\n"
	"  --fd-store                 keep the mount or nodes, the rings and (at a stop) the\n"
	"                             state in systemd's fd store, so that a restart or a\n"
	"                             crash of the service loses no handle or byte\n"
	"  --busy-poll USEC           after a request, one thread looks for the next for up\n"
	"                             to USEC microseconds before it sleeps (0 to 1000,\n"
	"                             default 50; 0: sleep at once)\n"
	"  -v, --verbose              log every decision (debug level)\n"
	"  -h, --help                 show this help and exit\n"
	"  -V, --version              show the version and exit\n"
	"\n"
	"BYTES take a K, M or G suffix (powers of 1024). Stop with SIGTERM or SIGINT.\n"
	"See ringdevd(8) and ringdev(4).\n";

enum {
	OPT_FRONTEND = 256,
	OPT_NAME,
	OPT_MOUNT,
	OPT_MODE,
	OPT_GROUP,
	OPT_CTL_GROUP,
	OPT_ADMIN_GROUP,
	OPT_MAX_PIPES_PER_UID,
	OPT_MAX_OPENS_PER_UID,
	OPT_MAX_PARKED,
	OPT_MAX_MEMORY_PER_UID,
	OPT_MAX_PARKED_PER_UID,
	OPT_REQUIRE_BROKER,
	OPT_BROKER_TIMEOUT,
	OPT_CANCEL_TIMEOUT,
	OPT_DEFAULT_PIPE,
	OPT_RING_SIZE,
	OPT_MAX_PIPES,
	OPT_MAX_MEMORY,
	OPT_CASE_SENSITIVE,
	OPT_USER,
	OPT_THREADS,
	OPT_BUSY_POLL,
	OPT_FD_STORE,
};

static const struct option long_options[] = {
	{ "frontend", required_argument, NULL, OPT_FRONTEND },
	{ "name", required_argument, NULL, OPT_NAME },
	{ "mount", required_argument, NULL, OPT_MOUNT },
	{ "foreground", no_argument, NULL, 'f' },
	{ "mode", required_argument, NULL, OPT_MODE },
	{ "group", required_argument, NULL, OPT_GROUP },
	{ "ctl-group", required_argument, NULL, OPT_CTL_GROUP },
	{ "admin-group", required_argument, NULL, OPT_ADMIN_GROUP },
	{ "max-pipes-per-uid", required_argument, NULL, OPT_MAX_PIPES_PER_UID },
	{ "max-opens-per-uid", required_argument, NULL, OPT_MAX_OPENS_PER_UID },
	{ "max-parked", required_argument, NULL, OPT_MAX_PARKED },
	{ "max-memory-per-uid", required_argument, NULL, OPT_MAX_MEMORY_PER_UID },
	{ "max-parked-per-uid", required_argument, NULL, OPT_MAX_PARKED_PER_UID },
	{ "require-broker", no_argument, NULL, OPT_REQUIRE_BROKER },
	{ "broker-timeout", required_argument, NULL, OPT_BROKER_TIMEOUT },
	{ "cancel-timeout", required_argument, NULL, OPT_CANCEL_TIMEOUT },
	{ "default-pipe", required_argument, NULL, OPT_DEFAULT_PIPE },
	{ "ring-size", required_argument, NULL, OPT_RING_SIZE },
	{ "max-pipes", required_argument, NULL, OPT_MAX_PIPES },
	{ "max-memory", required_argument, NULL, OPT_MAX_MEMORY },
	{ "case-sensitive", no_argument, NULL, OPT_CASE_SENSITIVE },
	{ "user", required_argument, NULL, OPT_USER },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "busy-poll", required_argument, NULL, OPT_BUSY_POLL },
	{ "fd-store", no_argument, NULL, OPT_FD_STORE },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

__attribute__((format(printf, 1, 2))) static int usage_error(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "ringdevd: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry 'ringdevd --help' for more information.\n");
	return 2;
}

static int parse_group(const char *s, uint32_t *gid)
{
	uint64_t v;
	if (parse_u64(s, 0, UINT32_MAX - 1, &v) == 0) {
		*gid = (uint32_t)v;
		return 0;
	}
	struct group *g = getgrnam(s);
	if (!g)
		return -ENOENT;
	*gid = g->gr_gid;
	return 0;
}

static char default_mount[PATH_MAX];

static const char *pick_default_mount(void)
{
	return device_path_default_mount(default_mount, sizeof(default_mount)) < 0 ? "/run/ringdev" : default_mount;
}

/* Returns -1 to go on, else the exit code. */
static int parse_args(int argc, char **argv, struct daemon_config *cfg)
{
	int c;
	uint64_t v;
	while ((c = getopt_long(argc, argv, "fvhV", long_options, NULL)) != -1) {
		switch (c) {
		case OPT_FRONTEND:
			if (strcmp(optarg, "auto") && strcmp(optarg, "fuse") && strcmp(optarg, "cuse"))
				return usage_error("--frontend: '%s' is not auto, fuse or cuse", optarg);
			cfg->frontend = optarg;
			break;
		case OPT_NAME:
			if (name_check_str(optarg) < 0)
				return usage_error("--name: '%s' is not a valid device name", optarg);
			cfg->name = optarg;
			break;
		case OPT_MOUNT:
			if (!optarg[0])
				return usage_error("--mount: %s", "empty path");
			cfg->mount = optarg;
			break;
		case 'f':
			cfg->foreground = true;
			break;
		case OPT_MODE:
			if (parse_mode(optarg, &cfg->dev.mode) < 0 || cfg->dev.mode > 0777)
				return usage_error("--mode: '%s' is not an octal mode up to 0777", optarg);
			cfg->mode_set = true;
			break;
		case OPT_GROUP:
			if (parse_group(optarg, &cfg->dev.gid) < 0)
				return usage_error("--group: no such group '%s'", optarg);
			cfg->group_set = true;
			break;
		case OPT_CTL_GROUP:
			if (parse_group(optarg, &cfg->dev.ctl_gid) < 0)
				return usage_error("--ctl-group: no such group '%s'", optarg);
			cfg->ctl_group_set = true;
			cfg->dev.ctl_mode = 0660;
			break;
		case OPT_ADMIN_GROUP:
			if (parse_group(optarg, &cfg->dev.admin_gid) < 0)
				return usage_error("--admin-group: no such group '%s'", optarg);
			cfg->dev.admin_set = true;
			break;
		case OPT_MAX_PIPES_PER_UID:
			if (parse_u64(optarg, 0, 1u << 24, &v) < 0)
				return usage_error("--max-pipes-per-uid: '%s' is not a number from 0 to 16777216", optarg);
			cfg->dev.max_pipes_per_uid = v;
			cfg->pipes_per_uid_set = true;
			break;
		case OPT_MAX_OPENS_PER_UID:
			if (parse_u64(optarg, 0, 1u << 24, &v) < 0)
				return usage_error("--max-opens-per-uid: '%s' is not a number from 0 to 16777216", optarg);
			cfg->dev.max_opens_per_uid = v;
			cfg->opens_per_uid_set = true;
			break;
		case OPT_MAX_PARKED:
			if (parse_u64(optarg, 1, 1u << 24, &v) < 0)
				return usage_error("--max-parked: '%s' is not a number from 1 to 16777216", optarg);
			cfg->dev.max_parked = v;
			break;
		case OPT_MAX_MEMORY_PER_UID:
			if (parse_size(optarg, 0, UINT64_MAX >> 1, &v) < 0)
				return usage_error("--max-memory-per-uid: '%s' is not a size", optarg);
			cfg->dev.max_memory_per_uid = v;
			cfg->memory_per_uid_set = true;
			break;
		case OPT_MAX_PARKED_PER_UID:
			if (parse_u64(optarg, 0, 1u << 24, &v) < 0)
				return usage_error("--max-parked-per-uid: '%s' is not a number from 0 to 16777216", optarg);
			cfg->dev.max_parked_per_uid = v;
			cfg->parked_per_uid_set = true;
			break;
		case OPT_REQUIRE_BROKER:
			cfg->dev.require_broker = true;
			break;
		case OPT_BROKER_TIMEOUT:
			if (parse_u64(optarg, 1, 24u * 3600 * 1000, &v) < 0)
				return usage_error("--broker-timeout: '%s' is not a number of milliseconds from 1 to 86400000",
						   optarg);
			cfg->dev.broker_timeout_ms = (uint32_t)v;
			break;
		case OPT_CANCEL_TIMEOUT:
			/* Bounded: the kernel waits for the answer uninterruptibly. */
			if (parse_u64(optarg, 1, 60000, &v) < 0)
				return usage_error("--cancel-timeout: '%s' is not a number of milliseconds from 1 to 60000",
						   optarg);
			cfg->dev.cancel_timeout_ms = (uint32_t)v;
			break;
		case OPT_DEFAULT_PIPE:
			if (name_check_str(optarg) < 0)
				return usage_error("--default-pipe: '%s' is not a valid pipe name", optarg);
			cfg->default_pipe = optarg;
			break;
		case OPT_RING_SIZE:
			if (parse_size(optarg, RINGDEV_CAPACITY_MIN, RINGDEV_CAPACITY_MAX, &v) < 0)
				return usage_error("--ring-size: '%s' is not a size from 64 to 1G", optarg);
			cfg->dev.ring_size = v;
			break;
		case OPT_MAX_PIPES:
			if (parse_u64(optarg, 1, 1u << 24, &v) < 0)
				return usage_error("--max-pipes: '%s' is not a number from 1 to 16777216", optarg);
			cfg->dev.max_pipes = v;
			break;
		case OPT_MAX_MEMORY:
			if (parse_size(optarg, 0, UINT64_MAX >> 1, &v) < 0)
				return usage_error("--max-memory: '%s' is not a size", optarg);
			cfg->dev.max_memory = v;
			break;
		case OPT_CASE_SENSITIVE:
			cfg->dev.case_sensitive = true;
			break;
		case OPT_USER:
			if (!service_drop_supported())
				return usage_error("--user: %s", "ringdevd was built without libcap-ng");
			if (service_parse_user(optarg, &cfg->run_as) < 0)
				return usage_error("--user: no such user or group '%s' (USER[:GROUP]; a uid with no "
						   "passwd entry needs :GROUP)", optarg);
			break;
		case OPT_THREADS:
			if (parse_u64(optarg, 1, 64, &v) < 0)
				return usage_error("--threads: '%s' is not a number from 1 to 64", optarg);
			cfg->threads = (unsigned)v;
			break;
		case OPT_BUSY_POLL:
			if (parse_u64(optarg, 0, BUSY_POLL_MAX_US, &v) < 0)
				return usage_error("--busy-poll: '%s' is not a number of microseconds from 0 to %d",
						   optarg, BUSY_POLL_MAX_US);
			cfg->busy_poll_us = (unsigned)v;
			break;
		case OPT_FD_STORE:
			cfg->fd_store = true;
			break;
		case 'v':
			cfg->verbose = true;
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("ringdevd %s (ABI %d.%d)\n", RINGDEV_VERSION, RINGDEV_ABI_MAJOR, RINGDEV_ABI_MINOR);
			return 0;
		default:
			fprintf(stderr, "Try 'ringdevd --help' for more information.\n");
			return 2;
		}
	}
	if (optind < argc)
		return usage_error("unexpected argument '%s'", argv[optind]);
	return -1;
}

static bool cuse_available(void)
{
	int fd = open("/dev/cuse", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int main(int argc, char **argv)
{
	struct daemon_config cfg = {
		.frontend = "auto",
		.name = "ringdev",
		.default_pipe = "default",
		.busy_poll_us = BUSY_POLL_DEFAULT_US,
		.dev = {
			.ring_size = 64 * 1024,
			.max_pipes = 1024,
			.max_memory = 256ull << 20,
			.mode = 0666,
			.uid = (uint32_t)geteuid(),
			.gid = (uint32_t)getegid(),
			.ctl_mode = 0600,
			.ctl_gid = (uint32_t)getegid(),
			.broker_timeout_ms = 5000,
			.cancel_timeout_ms = DEVICE_CANCEL_TIMEOUT_MS,
			.max_parked = 65536,
		},
	};
	/* SIGHUP asks for a restart in place, SIGTERM and SIGINT for a stop
	 * (frontend/common.c), but their handlers come only once the device
	 * is set up: until then their default action would kill the daemon
	 * and leave its mount behind. Held back from here, they wait for the
	 * serving loop, which takes them then (a SIGHUP is ignored with a
	 * warning while the kernel has not finished setting up the
	 * connection). A resumed image has them held back already: the mask
	 * goes through exec. */
	sigset_t held;
	sigemptyset(&held);
	sigaddset(&held, SIGHUP);
	sigaddset(&held, SIGTERM);
	sigaddset(&held, SIGINT);
	sigprocmask(SIG_BLOCK, &held, NULL);
	log_set_ident("ringdevd");
	log_detect_journal();
	restart_init(argc, argv);
	int code = parse_args(argc, argv, &cfg);
	if (code >= 0)
		return code;
	if (!cfg.mount)
		cfg.mount = pick_default_mount();
	snprintf(cfg.dev.default_pipe, sizeof(cfg.dev.default_pipe), "%s", cfg.default_pipe);
	/* One user may take a quarter of what is shared unless told otherwise:
	 * enough for any single app, and room for three more users. */
	if (!cfg.memory_per_uid_set)
		cfg.dev.max_memory_per_uid = cfg.dev.max_memory / 4;
	if (!cfg.pipes_per_uid_set)
		cfg.dev.max_pipes_per_uid = cfg.dev.max_pipes / 4 ? cfg.dev.max_pipes / 4 : 1;
	/* Handles cost the daemon little each (under 1 KiB), but nothing else
	 * bounds how many one user's processes may hold. */
	if (!cfg.opens_per_uid_set)
		cfg.dev.max_opens_per_uid = DEFAULT_OPENS_PER_UID;
	if (!cfg.parked_per_uid_set)
		cfg.dev.max_parked_per_uid = cfg.dev.max_parked / 4 ? cfg.dev.max_parked / 4 : 1;
	if (!cfg.threads) {
		/* One thread per CPU the daemon may use, at most 4: past that
		 * the one device lock, not the threads, is what limits. */
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		cfg.threads = cpus < 1 ? 1 : cpus > 4 ? 4 : (unsigned)cpus;
	}
	if (cfg.verbose)
		log_set_level(LOG_LEVEL_DEBUG);
	/* An image taking over from a daemonized one logs where it did. */
	if (restart_resuming() && !cfg.foreground)
		log_use_syslog("ringdevd");
	if (cfg.run_as.set && geteuid() != 0 && !restart_dropped_already()) {
		fprintf(stderr, "ringdevd: --user: only root can change to another user\n");
		return 1;
	}

	bool cuse = strcmp(cfg.frontend, "cuse") == 0 || (strcmp(cfg.frontend, "auto") == 0 && cuse_available());
	if (cfg.fd_store) {
		restart_use_fd_store(cuse ? RINGDEV_FRONTEND_CUSE : RINGDEV_FRONTEND_FUSE);
		if (!restart_resuming())
			restart_from_store();
	}
	code = cuse ? cuse_frontend_run(&cfg) : fuse_frontend_run(&cfg);
	log_flush(); /* a flood held back by the rate limit is still counted */
	if (restart_kept_in_store())
		_exit(code); /* the next start owns what is left: nothing is torn down */
	return code;
}
