/* SPDX-License-Identifier: MIT */
/*
 * main.c - ringdevctl(8): the command line.
 *
 * One getopt_long pass takes every option wherever it stands (GNU
 * permutation: `ringdevctl info HELLO --json` works), then the command
 * decides which options it accepts: an option another command owns is a
 * usage error, not silently ignored. Everything is checked before the
 * device is opened, so a usage error (exit 2) never touches the daemon.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "name.h"
#include "parse.h"
#include "ringdevctl.h"

enum command {
	COMMAND_NONE,
	COMMAND_LIST,
	COMMAND_INFO,
	COMMAND_OPENS,
	COMMAND_STATS,
	COMMAND_TOP,
	COMMAND_CREATE,
	COMMAND_RM,
	COMMAND_RESIZE,
	COMMAND_CHMOD,
	COMMAND_CHOWN,
	COMMAND_FLUSH,
};

static const struct {
	const char *name;
	enum command command;
	int arguments;                /* after the command word */
	const char *usage;            /* the arguments, for errors */
} commands[] = {
	{ "list", COMMAND_LIST, 0, "list" },
	{ "info", COMMAND_INFO, 1, "info NAME" },
	{ "opens", COMMAND_OPENS, 0, "opens" },
	{ "stats", COMMAND_STATS, 0, "stats" },
	{ "top", COMMAND_TOP, 0, "top" },
	{ "create", COMMAND_CREATE, 1, "create NAME" },
	{ "rm", COMMAND_RM, 1, "rm NAME" },
	{ "resize", COMMAND_RESIZE, 2, "resize NAME BYTES" },
	{ "chmod", COMMAND_CHMOD, 2, "chmod NAME MODE" },
	{ "chown", COMMAND_CHOWN, 2, "chown NAME USER[:GROUP]" },
	{ "flush", COMMAND_FLUSH, 1, "flush NAME" },
};

enum {
	OPTION_JSON = 0x100,
	OPTION_VERSION,
	OPTION_INTERVAL,
	OPTION_COUNT,
	OPTION_KIND,
	OPTION_CAPACITY,
	OPTION_POLICY,
	OPTION_MODE,
	OPTION_OWNER,
};

static const struct option long_options[] = {
	{ "json", no_argument, NULL, OPTION_JSON },
	{ "interval", required_argument, NULL, OPTION_INTERVAL },
	{ "count", required_argument, NULL, OPTION_COUNT },
	{ "kind", required_argument, NULL, OPTION_KIND },
	{ "capacity", required_argument, NULL, OPTION_CAPACITY },
	{ "policy", required_argument, NULL, OPTION_POLICY },
	{ "mode", required_argument, NULL, OPTION_MODE },
	{ "owner", required_argument, NULL, OPTION_OWNER },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, OPTION_VERSION },
	{ NULL, 0, NULL, 0 },
};

struct options {
	const char *device;
	bool json;
	enum command command;
	const char *command_name;
	const char *name;             /* the pipe, for commands that take one */
	const char *argument;         /* BYTES, MODE, USER[:GROUP] */
	struct top_options top;
	bool top_given;               /* --interval or --count seen */
	struct create_options create;
	const char *create_option;    /* the first create option seen, or NULL */
	const char *owner;            /* --owner as given */
	uint64_t capacity;            /* resize */
	uint32_t mode;                /* chmod */
	struct owner chown;
};

static void usage_print(FILE *out)
{
	fprintf(out,
		"Usage: ringdevctl [-d DEVICE] [--json] COMMAND [ARGUMENT]...\n"
		"Inspect and manage the pipes of a ringdev device (see ringdevd(8)).\n"
		"\n"
		"Commands:\n"
		"  list                     the pipes you may see: fill, users, waits, traffic\n"
		"  info NAME                one pipe in detail, with the handles attached to it\n"
		"  opens                    open handles (others' need root or --admin-group)\n"
		"  stats                    device totals and limit counters\n"
		"  top                      live view, busiest pipes first ('q' quits)\n"
		"  create NAME              create a persistent pipe\n"
		"  rm NAME                  remove a pipe and its data; waiting requests fail\n"
		"  resize NAME BYTES        change a pipe's capacity\n"
		"  chmod NAME MODE          change a pipe's permission bits (octal, 0777 at most)\n"
		"  chown NAME USER[:GROUP]  change a pipe's owner (root and --admin-group only)\n"
		"  flush NAME               discard what a pipe holds\n"
		"\n"
		"Options:\n"
		"  -d DEVICE                a ringdev CUSE node or FUSE mount directory\n"
		"                           (default: $RINGDEV_DEVICE, /dev/ringdev,\n"
		"                           /run/ringdev, or $XDG_RUNTIME_DIR/ringdev when\n"
		"                           not root)\n"
		"  --json                   print JSON for scripts (keys in ringdevctl(8))\n"
		"  -h, --help               show this help and exit\n"
		"  --version                show the version and exit\n"
		"\n"
		"top:\n"
		"  --interval SECONDS       time between refreshes, 0.1 to 3600 (default 1)\n"
		"  --count N                refresh N times, then exit\n"
		"\n"
		"create:\n"
		"  --kind KIND              stream (default) or message\n"
		"  --capacity BYTES         ring size, %u to 1G, K, M or G suffix\n"
		"                           (default: ringdevd --ring-size)\n"
		"  --policy POLICY          when full: block (default), overwrite or fail\n"
		"  --mode OCTAL             permission bits (default 0600)\n"
		"  --owner USER[:GROUP]     the owner (root and --admin-group; default: you)\n"
		"\n"
		"Exit status: 0 ok, 1 failed, 2 usage error.\n",
		RINGDEV_CAPACITY_MIN);
}

/* Seconds as a decimal number, e.g. 1, 0.5, 2.25: strtod on a string that
 * starts with a digit and ends where the number ends. */
static int seconds_parse(const char *s, double min, double max, double *out)
{
	char *end;
	if (!s || !((s[0] >= '0' && s[0] <= '9') || s[0] == '.'))
		return -EINVAL;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end != '\0' || errno == ERANGE || !isfinite(v))
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = v;
	return 0;
}

/* Permission bits as the ABI takes them: 0777 at most. */
static int mode_parse(const char *s, uint32_t *out)
{
	int r = parse_mode(s, out);
	if (r == 0 && *out > 0777)
		r = -ERANGE;
	return r;
}

static void create_option_seen(struct options *o, const char *option)
{
	if (!o->create_option)
		o->create_option = option;
}

/* One option. 0, CLIENT_EXIT_USAGE after reporting, or -1 for "exit 0 now". */
static int option_apply(struct options *o, int c, char **argv)
{
	switch (c) {
	case 'd':
		o->device = optarg;
		return 0;
	case OPTION_JSON:
		o->json = true;
		return 0;
	case OPTION_INTERVAL:
		o->top_given = true;
		if (seconds_parse(optarg, 0.1, 3600, &o->top.interval) < 0)
			return client_usage_error("--interval: '%s' is not a number of seconds from 0.1 to 3600",
						  optarg);
		return 0;
	case OPTION_COUNT:
		o->top_given = true;
		if (parse_u64(optarg, 1, 1000000000, &o->top.count) < 0)
			return client_usage_error("--count: '%s' is not a number from 1 to 1000000000", optarg);
		return 0;
	case OPTION_KIND:
		create_option_seen(o, "--kind");
		return client_option_kind(optarg, &o->create.kind);
	case OPTION_POLICY:
		create_option_seen(o, "--policy");
		return client_option_policy(optarg, &o->create.policy);
	case OPTION_CAPACITY:
		create_option_seen(o, "--capacity");
		return client_option_capacity("--capacity", optarg, &o->create.capacity);
	case OPTION_MODE:
		create_option_seen(o, "--mode");
		if (mode_parse(optarg, &o->create.mode) < 0)
			return client_usage_error("--mode: '%s' is not an octal mode from 0 to 0777", optarg);
		o->create.has_mode = true;
		return 0;
	case OPTION_OWNER:
		create_option_seen(o, "--owner");
		o->owner = optarg;
		return 0;
	case 'h':
		usage_print(stdout);
		return -1;
	case OPTION_VERSION:
		client_version_print();
		return -1;
	default:
		return client_usage_unknown(argv, c);
	}
}

/* USER[:GROUP] of --owner or chown, resolved now: an unknown name is a
 * usage error, as ringdevd treats an unknown --group. */
static int owner_resolve(const char *s, bool group_only_ok, struct owner *out, const char *what)
{
	const char *bad;
	int r = owner_parse(s, group_only_ok, out, &bad);
	if (r == -ENOENT)
		return client_usage_error("%s: no such user or group '%s'", what, bad);
	if (r < 0)
		return client_usage_error("%s: '%s' is not USER[:GROUP]%s", what, s,
					  group_only_ok ? " or :GROUP" : "");
	return 0;
}

/* The arguments after the command word, by command. */
static int arguments_parse(struct options *o, char **args)
{
	switch (o->command) {
	case COMMAND_RESIZE:
		return client_option_capacity("resize", args[1], &o->capacity);
	case COMMAND_CHMOD:
		if (mode_parse(args[1], &o->mode) < 0)
			return client_usage_error("chmod: '%s' is not an octal mode from 0 to 0777", args[1]);
		break;
	case COMMAND_CHOWN:
		return owner_resolve(args[1], true, &o->chown, "chown");
	default:
		break;
	}
	return 0;
}

/* Options that belong to one command, given with another. */
static int options_check_command(struct options *o)
{
	if (o->top_given && o->command != COMMAND_TOP)
		return client_usage_error("--interval and --count are for top only");
	if (o->create_option && o->command != COMMAND_CREATE)
		return client_usage_error("%s is for create only", o->create_option);
	if (o->owner) {
		int r = owner_resolve(o->owner, false, &o->create.owner, "--owner");
		if (r)
			return r;
		if (!o->create.owner.has_gid &&
		    !owner_primary_group(o->create.owner.uid, &o->create.owner.gid))
			return client_usage_error("--owner: user %u has no login group; give --owner UID:GID",
						  o->create.owner.uid);
		o->create.owner.has_gid = true;
	}
	return 0;
}

/* Fills `o` from the command line. 0 to go on, else the exit code. */
static int options_parse(int argc, char **argv, struct options *o)
{
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:h", long_options, NULL)) != -1) {
		int r = option_apply(o, c, argv);
		if (r < 0)
			return EXIT_SUCCESS;
		if (r > 0)
			return r;
	}
	if (optind >= argc)
		return client_usage_error("missing COMMAND");
	const char *word = argv[optind++];
	size_t i;
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(word, commands[i].name) == 0)
			break;
	if (i == sizeof(commands) / sizeof(commands[0]))
		return client_usage_error("unknown command '%s'", word);
	o->command = commands[i].command;
	o->command_name = commands[i].name;

	int given = argc - optind;
	if (given < commands[i].arguments)
		return client_usage_error("%s: missing argument (usage: %s)", word, commands[i].usage);
	if (given > commands[i].arguments)
		return client_usage_error("%s: unexpected argument '%s' (usage: %s)", word,
					  argv[optind + commands[i].arguments], commands[i].usage);
	if (commands[i].arguments > 0)
		o->name = argv[optind];
	if (commands[i].arguments > 1)
		o->argument = argv[optind + 1];
	int r = arguments_parse(o, argv + optind);
	if (r)
		return r;
	return options_check_command(o);
}

static int command_run(struct ctl *ctl, const struct options *o)
{
	switch (o->command) {
	case COMMAND_LIST:
		return command_list(ctl);
	case COMMAND_INFO:
		return command_info(ctl, o->name);
	case COMMAND_OPENS:
		return command_opens(ctl);
	case COMMAND_STATS:
		return command_stats(ctl);
	case COMMAND_TOP:
		return command_top(ctl, &o->top);
	case COMMAND_CREATE:
		return command_create(ctl, o->name, &o->create);
	case COMMAND_RM:
		return command_rm(ctl, o->name);
	case COMMAND_RESIZE:
		return command_resize(ctl, o->name, o->capacity);
	case COMMAND_CHMOD:
		return command_chmod(ctl, o->name, o->mode);
	case COMMAND_CHOWN:
		return command_chown(ctl, o->name, &o->chown);
	case COMMAND_FLUSH:
		return command_flush(ctl, o->name);
	default:
		return CLIENT_EXIT_USAGE;
	}
}

int main(int argc, char **argv)
{
	struct options o = { .top = { .interval = 1.0, .count = 0 } };
	struct ctl ctl = CTL_INIT;

	client_program_set("ringdevctl");
	int r = options_parse(argc, argv, &o);
	if (r != 0 || o.command == COMMAND_NONE)
		return r;

	/* A bad name is a failed operation, not a usage error (as in
	 * ringcat): the device would refuse it the same way. */
	if (o.name) {
		r = name_check_str(o.name);
		if (r < 0) {
			client_error(o.name, NULL, -r, CLIENT_CONTEXT_LOOKUP);
			return EXIT_FAILURE;
		}
	}

	ctl.json = o.json;
	if (ctl_open(&ctl, o.device) < 0)
		return EXIT_FAILURE;
	r = command_run(&ctl, &o);
	ctl_close(&ctl);

	/* Output that could not be written is a failure, said once. */
	if (fflush(stdout) != 0 || ferror(stdout)) {
		client_error("stdout", NULL, errno ? errno : EIO, CLIENT_CONTEXT_OTHER);
		return EXIT_FAILURE;
	}
	return r;
}
