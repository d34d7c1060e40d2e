/* SPDX-License-Identifier: MIT */
/*
 * stress.c - the helpers both stress programs share (see stress.h).
 */
#include "stress.h"

#include <inttypes.h>
#include <sys/ioctl.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>

volatile sig_atomic_t stress_signals_seen;

bool stress_long_mode(void)
{
	const char *v = getenv("RINGDEV_STRESS_LONG");

	return v && *v && strcmp(v, "0") != 0;
}

uint64_t stress_env_u64(const char *name, uint64_t fallback, uint64_t min, uint64_t max)
{
	const char *v = getenv(name);
	unsigned long long n;
	char *end = NULL;

	if (!v || !*v)
		return fallback;
	errno = 0;
	n = strtoull(v, &end, 10);
	cr_assert(errno == 0 && end && *end == '\0' && v[0] != '-', "%s=%s: not an unsigned number", name, v);
	cr_assert(n >= min && n <= max, "%s=%llu: outside %" PRIu64 "..%" PRIu64, name, n, min, max);
	return n;
}

uint64_t stress_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

void stress_sleep_us(uint64_t us)
{
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000u), .tv_nsec = (long)(us % 1000000u) * 1000 };

	nanosleep(&ts, NULL);
}

static void on_interrupt(int sig)
{
	(void)sig;
	stress_signals_seen++;
}

void stress_catch_interrupts(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_interrupt;
	sa.sa_flags = 0; /* no SA_RESTART: the interrupted call returns EINTR */
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
}

void stress_alarm_us(uint64_t us)
{
	struct itimerval it;

	memset(&it, 0, sizeof(it));
	it.it_value.tv_sec = (time_t)(us / 1000000u);
	it.it_value.tv_usec = (suseconds_t)(us % 1000000u);
	setitimer(ITIMER_REAL, &it, NULL);
}

bool stress_child_ended(pid_t pid, char *how, size_t size)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0 || si.si_pid != pid)
		return false;
	if (si.si_code == CLD_EXITED)
		snprintf(how, size, "exit %d", si.si_status);
	else
		snprintf(how, size, "signal %d (%s)", si.si_status, strsignal(si.si_status));
	return true;
}

void stress_rng_init(struct stress_rng *r, uint64_t seed, uint64_t stream)
{
	uint64_t x = seed ^ (stream * 0x9e3779b97f4a7c15ull);

	/* splitmix64 once: nearby seeds give unrelated streams, never 0. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	x ^= x >> 31;
	r->state = x ? x : 1;
}

uint64_t stress_rng_next(struct stress_rng *r)
{
	r->state ^= r->state >> 12;
	r->state ^= r->state << 25;
	r->state ^= r->state >> 27;
	return r->state * 0x2545f4914f6cdd1dull;
}

uint64_t stress_rng_range(struct stress_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + stress_rng_next(r) % (hi - lo + 1);
}

int stress_list_pipes(int fd, bool (*fn)(const struct ringdev_pipe_info *info, void *arg), void *arg)
{
	struct ringdev_list_pipes *l = malloc(sizeof(*l));
	uint32_t start = 0;
	int r = 0;

	if (!l)
		return -ENOMEM;
	for (;;) {
		memset(l, 0, sizeof(*l));
		l->start = start;
		if (ioctl(fd, RINGDEV_IOC_LIST_PIPES, l) < 0) {
			r = -errno;
			break;
		}
		bool go_on = true;
		for (uint32_t i = 0; i < l->count && go_on; i++)
			go_on = fn(&l->pipes[i], arg);
		start += l->count;
		if (!go_on || l->count == 0 || start >= l->total)
			break;
	}
	free(l);
	return r;
}

bool stress_waiter_stuck(const struct ringdev_pipe_info *info, char *why, size_t size)
{
	bool empty = info->kind == RINGDEV_KIND_MESSAGE ? info->queued_messages == 0 : info->queued_bytes == 0;
	char desc[400];

	if (info->parked_reads > 0 && !empty) {
		stress_describe(info, desc, sizeof(desc));
		snprintf(why, size, "lost wake-up: %u reads wait while data is queued: %s", info->parked_reads, desc);
		return true;
	}
	if (info->parked_reads > 0 && (info->flags & RINGDEV_PIPE_EOF)) {
		stress_describe(info, desc, sizeof(desc));
		snprintf(why, size, "lost wake-up: %u reads wait on a pipe at end-of-file: %s", info->parked_reads,
			 desc);
		return true;
	}
	if (info->parked_writes > 0 && empty) {
		stress_describe(info, desc, sizeof(desc));
		snprintf(why, size, "lost wake-up: %u writes wait while the ring is empty: %s", info->parked_writes,
			 desc);
		return true;
	}
	if (info->parked_writes > 0 && info->policy != RINGDEV_POLICY_BLOCK) {
		stress_describe(info, desc, sizeof(desc));
		snprintf(why, size, "lost wake-up: %u writes wait under a policy that never waits: %s",
			 info->parked_writes, desc);
		return true;
	}
	return false;
}

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

uint64_t stress_percentile(uint64_t *samples, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(samples, n, sizeof(*samples), compare_u64);
	i = (size_t)((double)n * p / 100.0);
	return samples[i < n ? i : n - 1];
}

void stress_describe(const struct ringdev_pipe_info *info, char *out, size_t size)
{
	static const char *const kinds[] = { "?", "stream", "message" };
	static const char *const policies[] = { "?", "block", "overwrite", "fail" };

	snprintf(out, size,
		 "%s (%s, %s, capacity %" PRIu64 ", queued %" PRIu64 " bytes / %" PRIu64
		 " messages, readers %u writers %u, parked %u reads %u writes, flags %#x, in %" PRIu64
		 " out %" PRIu64 " dropped %" PRIu64 ")",
		 info->name, info->kind < 3 ? kinds[info->kind] : "?", info->policy < 4 ? policies[info->policy] : "?",
		 info->capacity, info->queued_bytes, info->queued_messages, info->readers, info->writers,
		 info->parked_reads, info->parked_writes, info->flags, info->bytes_in, info->bytes_out,
		 info->dropped_bytes);
}
