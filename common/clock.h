/* SPDX-License-Identifier: MIT */
/*
 * clock.h - the monotonic clock in nanoseconds, for the core's deadlines
 * (core/timer.c) and the serving threads' --busy-poll window
 * (frontend/common.c).
 */
#pragma once

#include <stdint.h>
#include <time.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
