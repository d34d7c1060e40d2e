/* SPDX-License-Identifier: MIT */
/*
 * redis_fixture.h - a real redis-server for tests: on 127.0.0.1, on a port
 * of its own, in a temp folder of its own, durable (appendonly yes,
 * appendfsync always, no RDB saves), run in the foreground as a child of
 * the test process.
 *
 * Cleanup, whatever a test does:
 * - servers live in a static pool owned by the fixture (not on a test's
 *   stack), so a suite's .fini stops every one a failed test left running
 *   (redis_fixture_cleanup), killing the pid its pidfile names as well;
 * - each server dies with the process that started it (PR_SET_PDEATHSIG),
 *   so a crashed test leaves no server;
 * - the folders of one run sit in a run folder the test runner makes before
 *   the tests and removes after them, killing any server a pidfile there
 *   still names (redis_fixture_run_begin/_end, from Criterion's PRE_ALL and
 *   POST_ALL report hooks, which run in the runner process): so a crashed
 *   test leaves no folder either.
 *
 * No Criterion here: functions return 0 or a negative errno with the reason
 * in `err`; -ENOENT from redis_server_start means there is no redis-server
 * to run ($REDIS_SERVER, else redis-server on PATH), and the caller decides
 * whether that skips or fails.
 */
#ifndef RINGDEV_TEST_REDIS_FIXTURE_H
#define RINGDEV_TEST_REDIS_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RS_PATH_SIZE 512
/* Limits that only detect hangs. */
#define RS_START_TIMEOUT_MS 10000   /* PING answered after the start */
#define RS_STOP_TIMEOUT_MS 10000    /* exit after SIGTERM, before SIGKILL */

struct redis_server {
	pid_t pid;                  /* > 0 while running */
	uint16_t port;
	char dir[RS_PATH_SIZE];     /* the folder: config, append-only files, log, pidfile */
	char log[RS_PATH_SIZE];     /* DIR/redis.log */
	char pidfile[RS_PATH_SIZE]; /* DIR/redis.pid */
	char url[64];               /* redis://127.0.0.1:PORT */
	char password[64];          /* requirepass, "" for none */
};

/* Start a server (with requirepass `password` unless NULL) and wait until
 * it answers PING. NULL on failure with *rc and err set. */
struct redis_server *redis_server_start(const char *password, int *rc, char *err, size_t err_size);
/* SIGTERM, then SIGKILL after RS_STOP_TIMEOUT_MS; reaped. The folder stays. */
int redis_server_stop(struct redis_server *s);
/* SIGKILL at once (a crash); reaped. The folder stays. */
int redis_server_kill(struct redis_server *s);
/* Start a stopped server again on its port and folder (it reads its
 * append-only file back) and wait until it answers PING. */
int redis_server_restart(struct redis_server *s, char *err, size_t err_size);
/* SIGSTOP / SIGCONT: a server that accepts connections and answers nothing. */
int redis_server_pause(struct redis_server *s);
int redis_server_resume(struct redis_server *s);
/* Stop it (if running), remove its folder, free its slot. Accepts NULL. */
void redis_server_destroy(struct redis_server *s);
/* Destroy every server this process started: call from a suite's .fini. */
void redis_fixture_cleanup(void);
/* The run folder (see above), passed to the test processes in the
 * environment; without it servers go straight under $TMPDIR or /tmp. */
#define RS_RUN_DIR_ENV "RINGDEV_REDIS_RUN_DIR"
int redis_fixture_run_begin(void);
void redis_fixture_run_end(void);
/* Write `text` to DIR/NAME with `mode` (for credentials files); the path in
 * out. 0 or -errno. */
int redis_server_write_file(const struct redis_server *s, const char *name, const char *text, unsigned mode,
			    char *out, size_t out_size);

#endif
