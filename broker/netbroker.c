/* SPDX-License-Identifier: MIT */
/*
 * netbroker.c - see netbroker.h. A job is one READ or WRITE; it sits on its
 * network's `reads` or `writes` list (oldest first) until a worker answers
 * it. A job a worker is serving stays on its list with `busy` set, so a
 * CANCEL or RELEASE finds it and leaves the answer to that worker.
 *
 * Faults: a connection errno from netpipe (Redis gone, hung, unreachable)
 * fails the request with EIO after netpipe's bound (NP_COMMAND_TIMEOUT_MS,
 * NP_CONNECT_TIMEOUT_MS), logs one line for the outage (not one per
 * request), and the worker's next request calls np_reconnect first.
 */
#include "netbroker.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "list.h"
#include "log.h"

struct nb_net;

struct nb_job {
	struct list_node link;          /* net->reads or net->writes */
	struct rdb_request *request;
	uint64_t id;
	uint64_t handle;
	uint32_t uid;
	bool read;
	bool nonblock;
	bool busy;                      /* a worker is serving it (off the lock) */
	bool cancelled;                 /* a CANCEL came while busy */
	bool released;                  /* its handle closed while busy */
	char pipe[RINGDEV_NAME_SIZE];   /* folded to the case rule */
	struct np_settings settings;
	size_t wanted;                  /* READ: the buffer's size */
	uint64_t retry_at_ms;           /* WRITE waiting for room: next try */
	uint32_t backoff_ms;
};

/* A delivered entry waiting for the daemon's verdict on its answer. */
struct nb_settle {
	struct list_node link;          /* net->settles, oldest first */
	uint64_t request_id;
	uint64_t deadline_ms;           /* no verdict by then: given back, logged */
	bool refused, accepted;
	char pipe[RINGDEV_NAME_SIZE];
	char entry[NP_ID_SIZE];
};

/* One worker's connection and the pipes it opened on it. */
struct nb_worker {
	struct nb_net *net;
	char role;                      /* 'r' or 'w' */
	struct np_conn *conn;
	bool broken;                    /* np_reconnect before the next call */
	bool down_logged;               /* the outage was logged */
	char (*opened)[RINGDEV_NAME_SIZE];
	size_t nopened;
	pthread_t thread;
	bool started;
};

struct nb_net {
	struct list_node link;          /* nb->nets */
	struct netbroker *nb;
	char url[NP_HOST_SIZE + 64];
	unsigned index;
	struct list_node reads;
	struct list_node writes;
	struct list_node settles;
	pthread_cond_t reads_cond;
	pthread_cond_t writes_cond;
	struct nb_worker reader;
	struct nb_worker writer;
	char last_read_pipe[RINGDEV_NAME_SIZE]; /* round robin among pipes */
};

struct netbroker {
	pthread_mutex_t lock;
	struct list_node nets;
	char *credentials;
	bool case_sensitive;
	bool quit;
	unsigned nnets;
	struct nb_counts counts;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Wait on `cond` at most `ms` (CLOCK_REALTIME, as the default condattr). */
static void cond_wait_ms(pthread_cond_t *cond, pthread_mutex_t *lock, uint64_t ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += (time_t)(ms / 1000u);
	ts.tv_nsec += (long)(ms % 1000u) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_cond_timedwait(cond, lock, &ts);
}

/* ---- connections ---- */

static bool errno_breaks_connection(int r)
{
	return r == -ECONNREFUSED || r == -ETIMEDOUT || r == -EHOSTUNREACH || r == -ECONNRESET || r == -ENOTCONN ||
	       r == -EPROTO;
}

/* A call on the worker's connection failed with `r`: log the outage once. */
static void worker_failed(struct nb_worker *w, const char *pipe, int r)
{
	const char *why = w->conn ? np_error(w->conn) : "";

	if (errno_breaks_connection(r) || !w->conn)
		w->broken = true;
	if (!w->down_logged) {
		log_error("network pipe '%s' on %s: %s (%s): its reads and writes fail with EIO until Redis answers",
			  pipe, w->net->url, why[0] ? why : "no connection", strerror(-r));
		w->down_logged = true;
	}
}

/* Make sure the worker has a working connection. 0 or an errno. */
static int worker_ready(struct nb_worker *w, const char *pipe)
{
	char consumer[NP_CONSUMER_SIZE], host[64] = "localhost", err[NP_ERROR_SIZE];
	int r = 0;

	if (!w->conn) {
		gethostname(host, sizeof(host) - 1);
		host[sizeof(host) - 1] = '\0';
		for (char *c = host; *c; c++)
			if (*c == ' ' || !isprint((unsigned char)*c))
				*c = '_';
		snprintf(consumer, sizeof(consumer), "%s:%ld:%u:%c", host, (long)getpid(), w->net->index, w->role);
		/* RINGDEV_TEST_NP_MIN_IDLE_MS: test-only, not a user option (the
		 * tests reclaim a killed broker's entries without waiting 30 s). */
		struct np_options options = { 0 };
		const char *idle = getenv("RINGDEV_TEST_NP_MIN_IDLE_MS");
		if (idle && *idle)
			options.min_idle_ms = (uint32_t)strtoul(idle, NULL, 10);
		r = np_connect(w->net->url, w->net->nb->credentials, consumer, &options, &w->conn, err,
			       sizeof(err));
		if (r < 0 && !w->down_logged) {
			log_error("network pipe '%s': %s: its reads and writes fail with EIO until Redis answers", pipe,
				  err);
			w->down_logged = true;
		}
	} else if (w->broken) {
		r = np_reconnect(w->conn);
		if (r < 0)
			worker_failed(w, pipe, r);
		else
			w->nopened = 0; /* the pipes may be gone with a Redis that lost its data */
	}
	if (r < 0)
		return r;
	if (w->broken || w->down_logged)
		log_info("network %s: connected again", w->net->url);
	w->broken = false;
	w->down_logged = false;
	return 0;
}

/* np_open the pipe once per connection (creates it on Redis if needed). */
static int worker_open(struct nb_worker *w, const char *pipe, const struct np_settings *settings)
{
	struct np_settings s = *settings;

	for (size_t i = 0; i < w->nopened; i++)
		if (strcmp(w->opened[i], pipe) == 0)
			return 0;
	int r = np_open(w->conn, pipe, &s);
	if (r < 0)
		return r;
	void *more = realloc(w->opened, (w->nopened + 1) * sizeof(*w->opened));
	if (!more)
		return 0; /* opened all the same: asked again next time */
	w->opened = more;
	snprintf(w->opened[w->nopened++], RINGDEV_NAME_SIZE, "%s", pipe);
	return 0;
}

static void worker_forget(struct nb_worker *w, const char *pipe)
{
	for (size_t i = 0; i < w->nopened; i++) {
		if (strcmp(w->opened[i], pipe) == 0) {
			memmove(w->opened[i], w->opened[w->nopened - 1], RINGDEV_NAME_SIZE);
			w->nopened--;
			return;
		}
	}
}

/* ---- jobs ---- */

/* Off its list and freed; the caller answers its request. */
static struct rdb_request *job_end_locked(struct netbroker *nb, struct nb_job *job)
{
	struct rdb_request *request = job->request;

	list_unlink(&job->link);
	if (job->read)
		nb->counts.reads_held--;
	else
		nb->counts.writes_held--;
	free(job);
	return request;
}

static void user_name(uint32_t uid, char *out, size_t size)
{
	struct passwd pw, *found = NULL;
	char buf[1024];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &found) == 0 && found)
		snprintf(out, size, "%s", found->pw_name);
	else
		snprintf(out, size, "%u", uid); /* a uid with no name: its number */
}

/* ---- the writer ---- */

/* Append one WRITE. 0 (answer the size), -EAGAIN with *wait (try again),
 * or an errno to answer. */
static int write_once(struct nb_worker *w, struct nb_job *job, const void *data, size_t size, bool *wait)
{
	char user[NP_USER_SIZE];
	struct np_appended out = { 0 };
	int r = worker_ready(w, job->pipe);

	*wait = false;
	if (r < 0)
		return r;
	user_name(job->uid, user, sizeof(user));
	for (int attempt = 0; attempt < 2; attempt++) {
		r = worker_open(w, job->pipe, &job->settings);
		if (r == 0)
			r = np_append(w->conn, job->pipe, user, data, size, &out);
		if (r == 0 && out.dropped) {
			/* The overwrite policy's drops: the total is the pipe's, on
			 * Redis, the same whichever host asks. */
			struct np_stat st;
			if (np_stat(w->conn, job->pipe, &st) == 0)
				log_info("network pipe '%s': overwrite dropped %llu, drops %llu", job->pipe,
					 (unsigned long long)out.dropped, (unsigned long long)st.drops);
		}
		if (r != -ENOENT)
			break;
		worker_forget(w, job->pipe); /* deleted under us: open it again */
	}
	if (r == -EAGAIN)
		*wait = out.wait;
	return r;
}

/* The oldest WRITE due now, skipping pipes where an older write still waits
 * (a writer's order is kept per pipe). Sets *next_ms to the earliest retry. */
static struct nb_job *write_pick_locked(struct nb_net *net, uint64_t now, uint64_t *next_ms)
{
	struct list_node *pos;
	char (*waiting)[RINGDEV_NAME_SIZE] = NULL;
	size_t nwaiting = 0;
	struct nb_job *pick = NULL;

	*next_ms = now + 100;
	list_for_each(pos, &net->writes) {
		struct nb_job *job = list_entry(pos, struct nb_job, link);
		bool behind = false;
		for (size_t i = 0; i < nwaiting && !behind; i++)
			behind = strcmp(waiting[i], job->pipe) == 0;
		if (behind)
			continue;
		if (job->retry_at_ms <= now) {
			pick = job;
			break;
		}
		if (job->retry_at_ms < *next_ms)
			*next_ms = job->retry_at_ms;
		void *more = realloc(waiting, (nwaiting + 1) * sizeof(*waiting));
		if (!more)
			break;
		waiting = more;
		memcpy(waiting[nwaiting++], job->pipe, RINGDEV_NAME_SIZE);
	}
	free(waiting);
	return pick;
}

static void *writer_main(void *arg)
{
	struct nb_net *net = arg;
	struct netbroker *nb = net->nb;
	struct nb_worker *w = &net->writer;

	pthread_mutex_lock(&nb->lock);
	while (!nb->quit) {
		uint64_t next;
		struct nb_job *job = write_pick_locked(net, now_ms(), &next);
		if (!job) {
			uint64_t now = now_ms();
			cond_wait_ms(&net->writes_cond, &nb->lock, next > now ? next - now : 1);
			continue;
		}
		job->busy = true;
		pthread_mutex_unlock(&nb->lock);

		size_t size;
		const void *data = rdb_request_payload(job->request, &size);
		bool wait;
		int r = write_once(w, job, data, size, &wait);
		if (r < 0 && r != -EAGAIN && r != -EMSGSIZE)
			worker_failed(w, job->pipe, r);

		pthread_mutex_lock(&nb->lock);
		job->busy = false;
		if (r == -EAGAIN && wait && !job->nonblock && !job->cancelled && !job->released) {
			/* Policy block: try again after a short backoff (polling, not
			 * a notification from readers: a first version). */
			job->backoff_ms = job->backoff_ms ? job->backoff_ms * 2 : NB_RETRY_FIRST_MS;
			if (job->backoff_ms > NB_RETRY_LAST_MS)
				job->backoff_ms = NB_RETRY_LAST_MS;
			job->retry_at_ms = now_ms() + job->backoff_ms;
			continue;
		}
		/* Still waiting, so cancelled or its handle closed: nothing written. */
		bool dropped = r == -EAGAIN && wait && !job->nonblock;
		struct rdb_request *request = job_end_locked(nb, job);
		pthread_mutex_unlock(&nb->lock);
		if (r == 0)
			rdb_reply_write(request, size); /* written: the writer is told, cancelled or not */
		else if (dropped)
			rdb_drop(request); /* cancelled or its handle closed: nothing was written */
		else if (r == -EAGAIN || r == -EMSGSIZE)
			rdb_deny(request, -r);
		else
			rdb_deny(request, EIO);
		pthread_mutex_lock(&nb->lock);
	}
	pthread_mutex_unlock(&nb->lock);
	return NULL;
}

/* ---- the reader ---- */

/* The first settle that is due: a verdict came, its wait ran out, or
 * (`all`, the reader stops) any. NULL if none. */
static struct nb_settle *settle_due_locked(struct nb_net *net, bool all, uint64_t now)
{
	struct list_node *pos;
	list_for_each(pos, &net->settles) {
		struct nb_settle *s = list_entry(pos, struct nb_settle, link);
		if (all || s->accepted || s->refused || s->deadline_ms <= now)
			return s;
	}
	return NULL;
}

/* Settle what is due: acknowledge the accepted; give back the refused,
 * and those whose verdict never came (the channel broke, or the broker
 * stops: the app's call did not get them, or it is not known). */
static void settles_run_locked(struct nb_net *net, bool all)
{
	struct netbroker *nb = net->nb;
	struct nb_worker *w = &net->reader;
	struct nb_settle *s;

	while ((s = settle_due_locked(net, all, now_ms()))) {
		list_unlink(&s->link);
		nb->counts.settling--;
		pthread_mutex_unlock(&nb->lock);
		int r = worker_ready(w, s->pipe);
		if (r == 0)
			r = s->accepted ? np_ack(w->conn, s->pipe, s->entry) : np_give_back(w->conn, s->pipe, s->entry);
		if (r < 0 && r != -ESTALE && r != -ENOENT)
			worker_failed(w, s->pipe, r); /* pending: reclaimed after NP_MIN_IDLE_MS */
		else if (s->refused)
			log_info("network pipe '%s': read %llu refused by ringdevd: entry %s goes to the next reader",
				 s->pipe, (unsigned long long)s->request_id, s->entry);
		else if (!s->accepted)
			log_warn("network pipe '%s': no outcome for read %llu: entry %s goes to the next reader",
				 s->pipe, (unsigned long long)s->request_id, s->entry);
		free(s);
		pthread_mutex_lock(&nb->lock);
	}
}

/* The oldest READ not being served, taking pipes in turn. *pipes counts the
 * pipes with reads waiting. */
static struct nb_job *read_pick_locked(struct nb_net *net, unsigned *pipes)
{
	struct list_node *pos;
	struct nb_job *first = NULL, *other = NULL;

	*pipes = 0;
	list_for_each(pos, &net->reads) {
		struct nb_job *job = list_entry(pos, struct nb_job, link);
		if (job->busy)
			continue;
		if (!first)
			first = job;
		if (strcmp(job->pipe, first->pipe) != 0)
			*pipes = 2;
		if (!other && strcmp(job->pipe, net->last_read_pipe) != 0)
			other = job;
	}
	if (first && !*pipes)
		*pipes = 1;
	return other ? other : first;
}

/* Serve one READ (busy, off the lock): take, keep, answer. Returns with
 * the lock held; the job is ended unless it must wait on. */
static void read_serve(struct nb_net *net, struct nb_job *job, uint32_t block_ms)
{
	struct netbroker *nb = net->nb;
	struct nb_worker *w = &net->reader;
	struct np_entry entry = { 0 };
	int r = worker_ready(w, job->pipe);

	for (int attempt = 0; r == 0 && attempt < 2; attempt++) {
		r = worker_open(w, job->pipe, &job->settings);
		if (r == 0)
			r = np_take(w->conn, job->pipe, block_ms, &entry);
		if (r != -ENOENT)
			break;
		worker_forget(w, job->pipe);
	}
	if (r == 0 && entry.size > job->wanted) {
		/* A message is never cut: it stays for a larger buffer. */
		int g = np_give_back(w->conn, job->pipe, entry.id);
		if (g < 0 && g != -ESTALE)
			worker_failed(w, job->pipe, g);
		np_entry_clear(&entry);
		r = -EMSGSIZE;
	} else if (r == 0 && (r = np_keep(w->conn, job->pipe, entry.id)) < 0) {
		np_entry_clear(&entry);
		if (r == -ESTALE)
			r = -EAGAIN; /* another consumer has it now: not ours to deliver */
	}
	if (r < 0 && r != -EAGAIN && r != -EMSGSIZE)
		worker_failed(w, job->pipe, r);

	struct nb_settle *s = NULL;
	if (r == 0) {
		s = calloc(1, sizeof(*s));
		if (s) {
			s->request_id = job->id;
			s->deadline_ms = now_ms() + NB_VERDICT_MAX_MS;
			memcpy(s->pipe, job->pipe, sizeof(s->pipe));
			snprintf(s->entry, sizeof(s->entry), "%s", entry.id);
		}
	}

	pthread_mutex_lock(&nb->lock);
	job->busy = false;
	if (r == -EAGAIN && !job->nonblock && !job->cancelled && !job->released)
		return; /* waits on */
	if (r == 0 && (!s || job->released)) {
		/* No room to remember it, or nobody to give it to: back it goes. */
		pthread_mutex_unlock(&nb->lock);
		np_give_back(w->conn, job->pipe, entry.id);
		np_entry_clear(&entry);
		free(s);
		pthread_mutex_lock(&nb->lock);
		r = job->released ? -ECANCELED : -ENOMEM;
	}
	bool cancelled = job->cancelled || job->released;
	struct rdb_request *request = job_end_locked(nb, job);
	if (s && r == 0) {
		list_add_tail(&net->settles, &s->link); /* before the answer: a refusal may come inside it */
		nb->counts.settling++;
	}
	pthread_mutex_unlock(&nb->lock);
	if (r == 0)
		rdb_reply_read(request, entry.data, entry.size); /* the app gets it, even if it cancelled */
	else if (r == -EAGAIN && cancelled)
		rdb_drop(request);
	else if (r == -ECANCELED)
		rdb_drop(request);
	else if (r == -EAGAIN || r == -EMSGSIZE || r == -ENOMEM)
		rdb_deny(request, -r);
	else
		rdb_deny(request, EIO);
	np_entry_clear(&entry);
	pthread_mutex_lock(&nb->lock);
}

static void *reader_main(void *arg)
{
	struct nb_net *net = arg;
	struct netbroker *nb = net->nb;

	pthread_mutex_lock(&nb->lock);
	while (!nb->quit) {
		settles_run_locked(net, false);
		unsigned pipes;
		struct nb_job *job = read_pick_locked(net, &pipes);
		if (!job) {
			cond_wait_ms(&net->reads_cond, &nb->lock, list_empty(&net->settles) ? 200 : 50);
			continue;
		}
		/* Block in Redis only when this is the one pipe waiting: other
		 * pipes' readers are not held behind it. */
		uint32_t block_ms = job->nonblock || pipes > 1 ? 0 : NB_TAKE_BLOCK_MS;
		job->busy = true;
		memcpy(net->last_read_pipe, job->pipe, sizeof(net->last_read_pipe));
		pthread_mutex_unlock(&nb->lock);
		read_serve(net, job, block_ms);
		if (pipes > 1)
			cond_wait_ms(&net->reads_cond, &nb->lock, 2); /* several pipes, none ready: no spin */
	}
	settles_run_locked(net, true);
	pthread_mutex_unlock(&nb->lock);
	return NULL;
}

/* ---- networks ---- */

static struct nb_net *net_find_locked(struct netbroker *nb, const char *url)
{
	struct list_node *pos;

	list_for_each(pos, &nb->nets) {
		struct nb_net *net = list_entry(pos, struct nb_net, link);
		if (strcmp(net->url, url) == 0)
			return net;
	}
	return NULL;
}

static struct nb_net *net_get_locked(struct netbroker *nb, const char *url)
{
	struct nb_net *net = net_find_locked(nb, url);

	if (net)
		return net;
	if (strlen(url) >= sizeof(net->url))
		return NULL;
	net = calloc(1, sizeof(*net));
	if (!net)
		return NULL;
	net->nb = nb;
	snprintf(net->url, sizeof(net->url), "%s", url);
	net->index = nb->nnets;
	list_init(&net->reads);
	list_init(&net->writes);
	list_init(&net->settles);
	pthread_cond_init(&net->reads_cond, NULL);
	pthread_cond_init(&net->writes_cond, NULL);
	net->reader = (struct nb_worker){ .net = net, .role = 'r' };
	net->writer = (struct nb_worker){ .net = net, .role = 'w' };
	/* The workers take SIGHUP, SIGTERM... as blocked as this thread is. */
	if (pthread_create(&net->reader.thread, NULL, reader_main, net) == 0)
		net->reader.started = true;
	if (net->reader.started && pthread_create(&net->writer.thread, NULL, writer_main, net) == 0)
		net->writer.started = true;
	list_add_tail(&nb->nets, &net->link);
	nb->nnets++;
	nb->counts.networks++;
	if (!net->writer.started)
		return NULL; /* kept for nb_free to join; no job goes to it */
	log_info("network %s: reader and writer threads started", url);
	return net;
}

struct netbroker *nb_new(const char *credentials, bool case_sensitive)
{
	struct netbroker *nb = calloc(1, sizeof(*nb));

	if (!nb)
		return NULL;
	pthread_mutex_init(&nb->lock, NULL);
	list_init(&nb->nets);
	nb->case_sensitive = case_sensitive;
	if (credentials && !(nb->credentials = strdup(credentials))) {
		free(nb);
		return NULL;
	}
	return nb;
}

int nb_submit(struct netbroker *nb, const char *url, const struct np_settings *settings,
	      struct rdb_request *request)
{
	const struct ringdev_ctl_request *q = rdb_request_info(request);
	struct nb_job *job = calloc(1, sizeof(*job));

	if (!job)
		return -ENOMEM;
	job->request = request;
	job->id = q->id;
	job->handle = q->handle;
	job->uid = q->uid;
	job->read = q->type == RINGDEV_CTL_READ;
	job->nonblock = q->oflags & O_NONBLOCK;
	job->settings = *settings;
	job->wanted = q->size;
	snprintf(job->pipe, sizeof(job->pipe), "%s", q->name);
	if (!nb->case_sensitive)
		for (char *c = job->pipe; *c; c++)
			*c = (char)tolower((unsigned char)*c);

	pthread_mutex_lock(&nb->lock);
	struct nb_net *net = nb->quit ? NULL : net_get_locked(nb, url);
	if (!net) {
		pthread_mutex_unlock(&nb->lock);
		free(job);
		return -EAGAIN;
	}
	if (job->read) {
		list_add_tail(&net->reads, &job->link);
		nb->counts.reads_held++;
		pthread_cond_signal(&net->reads_cond);
	} else {
		list_add_tail(&net->writes, &job->link);
		nb->counts.writes_held++;
		pthread_cond_signal(&net->writes_cond);
	}
	pthread_mutex_unlock(&nb->lock);
	return 0;
}

/* Find job `id` on any network. */
static struct nb_job *job_find_locked(struct netbroker *nb, uint64_t id)
{
	struct list_node *n, *pos;

	list_for_each(n, &nb->nets) {
		struct nb_net *net = list_entry(n, struct nb_net, link);
		struct list_node *lists[] = { &net->reads, &net->writes };
		for (size_t i = 0; i < 2; i++) {
			list_for_each(pos, lists[i]) {
				struct nb_job *job = list_entry(pos, struct nb_job, link);
				if (job->id == id)
					return job;
			}
		}
	}
	return NULL;
}

bool nb_cancel(struct netbroker *nb, uint64_t id)
{
	pthread_mutex_lock(&nb->lock);
	struct nb_job *job = job_find_locked(nb, id);
	struct rdb_request *request = NULL;

	if (job && job->busy)
		job->cancelled = true; /* its worker answers: the outcome, or EINTR */
	else if (job)
		request = job_end_locked(nb, job);
	pthread_mutex_unlock(&nb->lock);
	if (request)
		rdb_drop(request); /* nothing done: EINTR */
	return job != NULL;
}

void nb_release(struct netbroker *nb, uint64_t handle)
{
	struct list_node dropped = LIST_INIT(dropped);
	struct list_node *n, *pos, *tmp;

	pthread_mutex_lock(&nb->lock);
	list_for_each(n, &nb->nets) {
		struct nb_net *net = list_entry(n, struct nb_net, link);
		struct list_node *lists[] = { &net->reads, &net->writes };
		for (size_t i = 0; i < 2; i++) {
			list_for_each_safe(pos, tmp, lists[i]) {
				struct nb_job *job = list_entry(pos, struct nb_job, link);
				if (job->handle != handle)
					continue;
				if (job->busy) {
					job->released = true;
					continue;
				}
				list_unlink(&job->link);
				list_add_tail(&dropped, &job->link);
				if (job->read)
					nb->counts.reads_held--;
				else
					nb->counts.writes_held--;
			}
		}
	}
	pthread_mutex_unlock(&nb->lock);
	list_for_each_safe(pos, tmp, &dropped) {
		struct nb_job *job = list_entry(pos, struct nb_job, link);
		struct rdb_request *request = job->request;
		list_unlink(&job->link);
		free(job);
		rdb_drop(request);
	}
}

/* The verdict on READ `id`'s answer. */
static bool verdict(struct netbroker *nb, uint64_t id, bool accepted)
{
	struct list_node *n, *pos;
	bool found = false;

	pthread_mutex_lock(&nb->lock);
	list_for_each(n, &nb->nets) {
		struct nb_net *net = list_entry(n, struct nb_net, link);
		list_for_each(pos, &net->settles) {
			struct nb_settle *s = list_entry(pos, struct nb_settle, link);
			if (s->request_id == id) {
				s->accepted = accepted;
				s->refused = !accepted;
				found = true;
				pthread_cond_signal(&net->reads_cond);
				break;
			}
		}
		if (found)
			break;
	}
	pthread_mutex_unlock(&nb->lock);
	return found;
}

bool nb_refused(struct netbroker *nb, uint64_t id)
{
	return verdict(nb, id, false);
}

bool nb_accepted(struct netbroker *nb, uint64_t id)
{
	return verdict(nb, id, true);
}

void nb_get_counts(struct netbroker *nb, struct nb_counts *out)
{
	pthread_mutex_lock(&nb->lock);
	*out = nb->counts;
	pthread_mutex_unlock(&nb->lock);
}

struct netbroker *nb_free(struct netbroker *nb)
{
	struct list_node *pos, *tmp;

	if (!nb)
		return NULL;
	pthread_mutex_lock(&nb->lock);
	nb->quit = true;
	list_for_each(pos, &nb->nets) {
		struct nb_net *net = list_entry(pos, struct nb_net, link);
		pthread_cond_broadcast(&net->reads_cond);
		pthread_cond_broadcast(&net->writes_cond);
	}
	pthread_mutex_unlock(&nb->lock);
	list_for_each_safe(pos, tmp, &nb->nets) {
		struct nb_net *net = list_entry(pos, struct nb_net, link);
		struct nb_worker *workers[] = { &net->reader, &net->writer };
		for (size_t i = 0; i < 2; i++)
			if (workers[i]->started)
				pthread_join(workers[i]->thread, NULL);
		struct list_node *lists[] = { &net->reads, &net->writes };
		for (size_t i = 0; i < 2; i++) {
			struct list_node *first;
			while ((first = list_first(lists[i]))) {
				struct nb_job *job = list_entry(first, struct nb_job, link);
				rdb_deny(job_end_locked(nb, job), ECONNRESET);
			}
		}
		for (size_t i = 0; i < 2; i++) {
			np_close(workers[i]->conn);
			free(workers[i]->opened);
		}
		pthread_cond_destroy(&net->reads_cond);
		pthread_cond_destroy(&net->writes_cond);
		list_unlink(&net->link);
		free(net);
	}
	pthread_mutex_destroy(&nb->lock);
	free(nb->credentials);
	free(nb);
	return NULL;
}
