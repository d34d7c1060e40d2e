/* SPDX-License-Identifier: MIT */
/*
 * bench-broker.c - the broker of section 4's thread table: echo-broker's
 * answer to device-specific ioctls (the in-payload comes back as the
 * out-payload), served by as many libringdev-broker threads as --threads
 * says. Opens and attaches are let through as the app asked; no pipe is
 * brokered, so a read or write never comes (one would be refused).
 *
 *   ringdev-bench-broker [--threads N] CTL    (a mount, a node or its control node)
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ringdev/ringdev-broker.h>

#define PARK_MS 100 /* a stop is noticed within this */

static struct rdb_broker *broker;

static void on_request(struct rdb_request *req, void *data)
{
	const struct ringdev_ctl_request *q = rdb_request_info(req);
	size_t size;
	const void *in = rdb_request_payload(req, &size);

	switch (q->type) {
	case RINGDEV_CTL_OPEN:
	case RINGDEV_CTL_ATTACH:
		rdb_allow(req);
		break;
	case RINGDEV_CTL_IOCTL:
		rdb_reply_ioctl(req, 0, in, size < q->out_size ? size : q->out_size);
		break;
	case RINGDEV_CTL_READ:
	case RINGDEV_CTL_WRITE:
		rdb_deny(req, EOPNOTSUPP);
		break;
	default: /* CANCEL, RELEASE: nothing is kept */
		break;
	}
}

static void on_signal(int sig)
{
	rdb_stop(broker); /* async-signal-safe */
}

static int usage(FILE *out, int code)
{
	fputs("Usage: ringdev-bench-broker [--threads N] CTL\n"
	      "Echo every device-specific ioctl of ringdevd's device CTL (a FUSE mount,\n"
	      "a CUSE node or its control node) with N serving threads (1 to 64, default 1).\n"
	      "  -t, --threads N   serving threads\n"
	      "  -h, --help        show this help\n",
	      out);
	return code;
}

static int parse_threads(const char *s, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long n = strtoul(s, &end, 10);
	if (errno || end == s || *end || n < 1 || n > 64)
		return -1;
	*out = (unsigned)n;
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "threads", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	unsigned threads = 1;
	int c;
	while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
		if (c == 'h')
			return usage(stdout, 0);
		if (c != 't' || parse_threads(optarg, &threads) < 0)
			return usage(stderr, 2);
	}
	if (optind != argc - 1)
		return usage(stderr, 2);

	int r = rdb_open(argv[optind], on_request, NULL, &broker);
	if (r < 0) {
		fprintf(stderr, "ringdev-bench-broker: %s: %s\n", argv[optind], strerror(-r));
		return 1;
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rdb_set_timeout(broker, PARK_MS);
	r = rdb_run(broker, threads);
	broker = rdb_close(broker);
	if (r < 0) {
		fprintf(stderr, "ringdev-bench-broker: control node: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
