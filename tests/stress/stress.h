/* SPDX-License-Identifier: MIT */
/*
 * stress.h - what the two stress programs (load.c, soak.c) share: their
 * run-length settings from the environment, clocks, signal handlers that
 * interrupt system calls, the daemon-side checks for a lost wake-up, and
 * percentiles.
 *
 * Both programs run the real ringdevd through the integration harness
 * (harness.h) and follow its rules: helper processes never call Criterion's
 * asserts, they report through shared memory and their exit code; limits
 * only detect hangs, they never assert speed.
 *
 * Run length: short by default (CI: each program well under 2 minutes on 2
 * cores); RINGDEV_STRESS_LONG=1 selects the long mode (see README.md);
 * single settings can be overridden with RINGDEV_STRESS_* variables, parsed
 * strictly (a bad value fails the test, it is never silently ignored).
 */
#ifndef RINGDEV_TEST_STRESS_H
#define RINGDEV_TEST_STRESS_H

#include "harness.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

/* RINGDEV_STRESS_LONG set and not "0". */
bool stress_long_mode(void);
/* The unsigned number in environment variable `name`, else `fallback`.
 * Fails the test (test process only) if it is not a number in [min, max]. */
uint64_t stress_env_u64(const char *name, uint64_t fallback, uint64_t min, uint64_t max);

/* CLOCK_MONOTONIC in nanoseconds: comparable across processes. */
uint64_t stress_now_ns(void);
void stress_sleep_us(uint64_t us);

/* Handle SIGUSR1 and SIGALRM with a handler that does nothing and no
 * SA_RESTART, so a blocking call they hit returns EINTR (or the bytes a
 * write moved).  Counts what arrived in stress_signals_seen. */
void stress_catch_interrupts(void);
extern volatile sig_atomic_t stress_signals_seen;
/* Arm (us > 0) or disarm (0) the one-shot ITIMER_REAL of this process. */
void stress_alarm_us(uint64_t us);

/* Has helper pid ended?  true and a description ("exit 1", "signal 11")
 * if so.  Leaves it to be reaped by rd_join (WNOWAIT): a helper the
 * harness has not joined keeps its pid, so signals sent to it never reach
 * another process. */
bool stress_child_ended(pid_t pid, char *how, size_t size);

/* xorshift64*: each helper has its own stream from (seed, index). */
struct stress_rng {
	uint64_t state;
};
void stress_rng_init(struct stress_rng *r, uint64_t seed, uint64_t stream);
uint64_t stress_rng_next(struct stress_rng *r);
/* Uniform in [lo, hi]. */
uint64_t stress_rng_range(struct stress_rng *r, uint64_t lo, uint64_t hi);

/* Walk every pipe RINGDEV_IOC_LIST_PIPES shows through fd (root sees all).
 * fn returns false to stop.  0, or -errno of the first failed page. */
int stress_list_pipes(int fd, bool (*fn)(const struct ringdev_pipe_info *info, void *arg), void *arg);

/* The lost wake-up check on one pipe, from one consistent PIPE_INFO (the
 * daemon fills it under its lock, and serves parked requests under the same
 * lock after every change, so between requests no waiter can be servable):
 * a parked read while data is queued or the pipe is at end-of-file, or a
 * parked write while the ring is empty or the policy never parks, is a
 * waiter the daemon forgot.  Writes a description to why and returns true
 * on such a pipe. */
bool stress_waiter_stuck(const struct ringdev_pipe_info *info, char *why, size_t size);

/* The p-th percentile (0 < p < 100) of n samples (sorted in place). */
uint64_t stress_percentile(uint64_t *samples, size_t n, double p);

/* A pipe info as one line for failure messages. */
void stress_describe(const struct ringdev_pipe_info *info, char *out, size_t size);

#endif /* RINGDEV_TEST_STRESS_H */
