/* SPDX-License-Identifier: MIT */
/*
 * timer.c - the one thread the core owns: it ends waits that have a
 * deadline (relayed requests nobody took within --broker-timeout, cancelled
 * ones their broker did not answer within --cancel-timeout, broker
 * TRANSACTs with a timeout, pipes held for a creator who never opened them). It sleeps on a condition variable tied to the
 * device lock until the earliest deadline, and anything that adds a deadline
 * wakes it (timer_kick), so no request waits on a polling interval.
 * It also holds daemon_thread_create, the one way the daemon starts a
 * thread, so that no thread but the serving one takes a signal.
 */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <time.h>

#include "device_internal.h"
#include "log.h"

int daemon_thread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	/* A thread starts with its creator's mask: block everything for the
	 * moment of pthread_create, so there is no window in which the new
	 * thread runs with the signals open. */
	sigset_t all, old;
	sigfillset(&all);
	int r = pthread_sigmask(SIG_SETMASK, &all, &old);
	if (r != 0)
		return -r;
	r = pthread_create(thread, attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return -r;
}

static void *timer_main(void *arg)
{
	struct device *dev = arg;
	pthread_mutex_lock(&dev->lock);
	while (!dev->timer.stop) {
		uint64_t now = now_ns(), next = relay_expire(dev, now), holds = pipe_expire_holds(dev, now);
		if (holds < next)
			next = holds;
		if (next == UINT64_MAX) {
			pthread_cond_wait(&dev->timer.cond, &dev->lock);
		} else {
			struct timespec ts = { (time_t)(next / 1000000000u), (long)(next % 1000000000u) };
			pthread_cond_timedwait(&dev->timer.cond, &dev->lock, &ts);
		}
	}
	pthread_mutex_unlock(&dev->lock);
	return NULL;
}

int timer_start(struct device *dev)
{
	pthread_condattr_t attr;
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	int r = pthread_cond_init(&dev->timer.cond, &attr);
	pthread_condattr_destroy(&attr);
	if (r != 0)
		return -r;
	dev->timer.stop = false; /* started again after device_before_fork */
	r = daemon_thread_create(&dev->timer.thread, NULL, timer_main, dev);
	if (r < 0) {
		pthread_cond_destroy(&dev->timer.cond);
		return r;
	}
	dev->timer.running = true;
	return 0;
}

void timer_kick(struct device *dev)
{
	if (dev->timer.running)
		pthread_cond_signal(&dev->timer.cond);
}

void timer_stop(struct device *dev)
{
	if (!dev->timer.running)
		return;
	pthread_mutex_lock(&dev->lock);
	dev->timer.stop = true;
	pthread_cond_signal(&dev->timer.cond);
	pthread_mutex_unlock(&dev->lock);
	pthread_join(dev->timer.thread, NULL);
	pthread_cond_destroy(&dev->timer.cond);
	dev->timer.running = false;
}

void device_before_fork(struct device *dev)
{
	timer_stop(dev);
}

int device_after_fork(struct device *dev)
{
	return dev->timer.running ? 0 : timer_start(dev);
}
