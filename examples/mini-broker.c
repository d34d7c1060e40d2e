/* SPDX-License-Identifier: MIT */
/*
 * mini-broker.c - the smallest useful broker on libringdev-broker: every
 * open and attach is decided exactly as ringdevd would decide it without a
 * broker (rdb_allow_builtin), and one device-specific ioctl is answered:
 * MINI_IOC_WHOAMI tells the caller who the kernel says it is, and how many
 * times it was asked. (broker/examples/echo-broker.c, the example of
 * ringdev-broker(3), shows brokered pipes and deferred answers too.)
 *
 * Build: cc mini-broker.c $(pkg-config --cflags --libs libringdev-broker)
 * Run:   mini-broker [DEVICE]   (a mount, a node, or its control node)
 * It prints "mini-broker: serving CTL" once the control node is open, and
 * exits 0 on SIGINT or SIGTERM, 1 when the channel cannot be opened or breaks.
 */
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <ringdev/ringdev-broker.h>

/* The app's side of the device-specific ioctl (fixed-width fields, the
 * device-specific number range 0x80-0xff of ringdev(4)). */
struct mini_whoami {
	uint32_t uid;                 /* the caller, as the kernel reported it */
	uint32_t gid;
	uint32_t pid;
	uint32_t calls;               /* WHOAMI calls answered so far, this one included */
	char pipe[RINGDEV_NAME_SIZE]; /* the pipe of the caller's handle */
};
#define MINI_IOC_WHOAMI _IOR(RINGDEV_IOC_MAGIC, 0x90, struct mini_whoami)

static struct rdb_broker *broker;
static atomic_uint calls;

static void on_request(struct rdb_request *req, void *data)
{
	const struct ringdev_ctl_request *q = rdb_request_info(req);
	(void)data;

	switch (q->type) {
	case RINGDEV_CTL_OPEN:
	case RINGDEV_CTL_ATTACH:
		rdb_allow_builtin(req); /* the pipe's owner and mode decide, as without a broker */
		break;
	case RINGDEV_CTL_IOCTL:
		if (q->cmd == MINI_IOC_WHOAMI) {
			struct mini_whoami w = {
				.uid = q->uid,
				.gid = q->gid,
				.pid = q->pid,
				.calls = atomic_fetch_add(&calls, 1) + 1,
			};
			snprintf(w.pipe, sizeof(w.pipe), "%s", q->name);
			rdb_reply_ioctl(req, 0, &w, sizeof(w));
		} else {
			rdb_deny(req, ENOTTY); /* as ringdevd answers an ioctl nobody knows */
		}
		break;
	case RINGDEV_CTL_READ:
	case RINGDEV_CTL_WRITE: /* no pipe is brokered here, so these never come */
		rdb_deny(req, EIO);
		break;
	default: /* CANCEL, RELEASE: notices, nothing kept, nothing to answer */
		break;
	}
}

static void on_signal(int sig)
{
	(void)sig;
	rdb_stop(broker); /* async-signal-safe */
}

int main(int argc, char **argv)
{
	const char *device = argc > 1 ? argv[1] : NULL;
	int r = rdb_open(device, on_request, NULL, &broker);
	if (r < 0) {
		fprintf(stderr, "mini-broker: %s: %s\n", device ? device : "default device", strerror(-r));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	printf("mini-broker: serving %s\n", device ? device : "the default device");
	fflush(stdout);
	r = rdb_run(broker, 1);
	broker = rdb_close(broker);
	if (r < 0) {
		fprintf(stderr, "mini-broker: control node: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
