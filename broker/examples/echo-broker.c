/* SPDX-License-Identifier: MIT */
/*
 * echo-broker.c - the complete example of ringdev-broker(3): a broker that
 * lets every open and attach through, answers every device-specific ioctl
 * with the bytes it was given, and makes the pipe "echo" brokered, where
 * each write waits for the next read, which gets its bytes (one waiting
 * write at a time; a read with none waiting gets end-of-file).
 *
 * Build: cc echo-broker.c $(pkg-config --cflags --libs libringdev-broker)
 * Run:   echo-broker /run/ringdev     (a mount, a node, or its control node)
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include <ringdev/ringdev-broker.h>

static struct rdb_broker *broker;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct rdb_request *held_write; /* a WRITE on "echo" waiting for a READ */

static void on_request(struct rdb_request *req, void *data)
{
	const struct ringdev_ctl_request *q = rdb_request_info(req);
	size_t size;
	const void *in = rdb_request_payload(req, &size);

	(void)data;
	switch (q->type) {
	case RINGDEV_CTL_OPEN:
	case RINGDEV_CTL_ATTACH:
		rdb_allow_pipe(req, NULL, NULL, strcmp(q->name, "echo") == 0);
		break;
	case RINGDEV_CTL_IOCTL: /* the in-payload goes back as the out-payload */
		rdb_reply_ioctl(req, 0, in, size < q->out_size ? size : q->out_size);
		break;
	case RINGDEV_CTL_WRITE: /* kept until a READ takes it: a deferred answer */
		pthread_mutex_lock(&lock);
		if (held_write)
			rdb_deny(req, EAGAIN);
		else
			held_write = req;
		pthread_mutex_unlock(&lock);
		break;
	case RINGDEV_CTL_READ:
		pthread_mutex_lock(&lock);
		if (!held_write) {
			rdb_reply_read(req, NULL, 0); /* nothing written: end-of-file */
		} else {
			size_t n;
			const void *bytes = rdb_request_payload(held_write, &n);
			n = n < q->size ? n : q->size;
			rdb_reply_read(req, bytes, n);
			rdb_reply_write(held_write, n);
			held_write = NULL;
		}
		pthread_mutex_unlock(&lock);
		break;
	case RINGDEV_CTL_CANCEL: /* the writer was interrupted */
		pthread_mutex_lock(&lock);
		if (held_write && rdb_request_info(held_write)->id == q->ref) {
			rdb_drop(held_write);
			held_write = NULL;
		}
		pthread_mutex_unlock(&lock);
		break;
	default: /* RELEASE: nothing kept per handle */
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
	int r = rdb_open(argc > 1 ? argv[1] : NULL, on_request, NULL, &broker);
	if (r < 0) {
		fprintf(stderr, "echo-broker: %s: %s\n", argc > 1 ? argv[1] : "default device", strerror(-r));
		return 1;
	}
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	r = rdb_run(broker, 1);
	broker = rdb_close(broker); /* held requests end with the channel */
	if (r < 0) {
		fprintf(stderr, "echo-broker: control node: %s\n", strerror(-r));
		return 1;
	}
	return 0;
}
