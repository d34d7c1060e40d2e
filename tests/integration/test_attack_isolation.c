/* SPDX-License-Identifier: MIT */
/*
 * test_attack_isolation.c - defects found by the isolation review
 * (h/attack-iso). Each test fails on the code it was written against.
 *
 * 1. A pipe a user made by mknod(2) while a broker holds the control node
 *    is that user's alone until the broker allowed it (ringdev(4), FUSE
 *    mount: "nobody else finds, lists or opens it"); RINGDEV_IOC_LIST_PIPES
 *    shows it to other users all the same (readdir, stat and
 *    PIPE_BY_NAME hide it).
 */
#include <stdatomic.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include "harness.h"

RD_SUITE(attack_isolation, 60);

#define USER_A 1001
#define USER_B 1002

struct job {
	struct rd_daemon daemon;
	char pipe[RINGDEV_NAME_SIZE];
	int err;
	unsigned seen;      /* LIST_PIPES entries named pipe */
	unsigned total;
};

static int mknod_as_b(void *arg)
{
	struct job *j = arg;
	char path[RD_PATH_SIZE + RINGDEV_NAME_SIZE + 2];

	if (rd_become(USER_B, USER_B) < 0) {
		j->err = errno;
		return 1;
	}
	umask(0);
	snprintf(path, sizeof(path), "%s/%s", j->daemon.mount, j->pipe);
	if (mknod(path, S_IFREG | 0666, 0) < 0)
		j->err = errno;
	return 0;
}

static int list_as_a(void *arg)
{
	struct job *j = arg;
	static struct ringdev_list_pipes l;

	if (rd_become(USER_A, USER_A) < 0) {
		j->err = errno;
		return 1;
	}
	int fd = open(j->daemon.mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		j->err = errno;
		return 1;
	}
	memset(&l, 0, sizeof(l));
	if (ioctl(fd, RINGDEV_IOC_LIST_PIPES, &l) < 0) {
		j->err = errno;
		close(fd);
		return 1;
	}
	j->total = l.total;
	for (unsigned i = 0; i < l.count; i++)
		if (!strcmp(l.pipes[i].name, j->pipe))
			j->seen++;
	close(fd);
	return 0;
}

Test(attack_isolation, a_held_pipe_is_not_listed_to_other_users)
{
	if (rd_frontend_is_cuse()) {
		cr_log_info("mknod: the FUSE mount only");
		return;
	}
	struct rd_daemon *d = rd_start(NULL);
	int ctl = rd_ctl_open(d);
	cr_assert_geq(ctl, 0, "open the control node: %s", rd_errname(errno));
	rd_wait_broker(d, 1);

	struct job *j = rd_shared(sizeof(*j));
	j->daemon = *d;
	strcpy(j->pipe, "shared.held");
	cr_assert_eq(rd_join(rd_spawn(mknod_as_b, j, -1)), 0);
	cr_assert_eq(j->err, 0, "B's mknod: %s", rd_errname(j->err));

	char path[RD_PATH_SIZE + 32];
	snprintf(path, sizeof(path), "%s/shared.held", d->mount);
	cr_assert_eq(rd_join(rd_spawn(list_as_a, j, -1)), 0, "A's LIST_PIPES: %s", rd_errname(j->err));
	cr_assert_eq(j->seen, 0,
		     "A lists B's pipe that no broker allowed yet (%u entries, total %u)",
		     j->seen, j->total);
	cr_assert_eq(j->total, 0, "A's total counts B's held pipe (%u)", j->total);

	close(ctl);
	rd_wait_broker(d, 0);
	rd_end(d);
}
