/* SPDX-License-Identifier: MIT */
/*
 * top.c - `ringdevctl top`: the live view of a device.
 *
 * Every refresh takes a sample (STATS and the whole pipe list) and compares
 * it with the previous one: a pipe's rate is what its byte counters moved
 * since, divided by the time that passed, so the busiest pipes come first.
 *
 * On a terminal the view is full-screen with plain ANSI sequences (no
 * curses): the alternate screen, the cursor hidden, each frame written in
 * one write(2) from the top left corner. The terminal goes to non-canonical,
 * no-echo mode so a single 'q' quits; it is restored on every way out: 'q',
 * --count, SIGINT, SIGTERM, SIGHUP, an error (through the hook of
 * client_error_hook_set(), before the error line), and on Ctrl-Z around the
 * stop. Signal handlers only set flags; the main loop waits in poll(2),
 * which a signal always interrupts, so a flag is seen within one refresh at
 * worst. A second SIGINT or SIGTERM
 * while the first waits restores the terminal from the handler and exits.
 *
 * Elsewhere (stdout not a terminal, or --json) each refresh prints a block
 * of plain lines, or one JSON object per line, for logs and scripts.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "ringdevctl.h"

/* ---- one sample of the device ---- */

struct sample {
	struct ringdev_stats stats;
	struct ringdev_pipe_info *pipes; /* sorted by name (ctl_list_pipes) */
	size_t count;
	double time;                  /* CLOCK_MONOTONIC seconds */
	bool taken;
};

/* One pipe of the view with its rates; known is false on the first frame
 * (nothing to compare with yet). */
struct top_row {
	const struct ringdev_pipe_info *pipe;
	double rate_in;
	double rate_out;
	bool known;
};

static double clock_seconds(clockid_t clock)
{
	struct timespec ts;
	clock_gettime(clock, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int sample_take(struct ctl *ctl, struct sample *s)
{
	free(s->pipes);
	s->pipes = NULL;
	s->count = 0;
	s->taken = false;
	if (ctl_stats(ctl, &s->stats) < 0)
		return -1;
	if (ctl_list_pipes(ctl, &s->pipes, &s->count) < 0)
		return -1;
	s->time = clock_seconds(CLOCK_MONOTONIC);
	s->taken = true;
	return 0;
}

static int pipe_name_compare(const void *key, const void *element)
{
	const struct ringdev_pipe_info *p = element;
	return strncmp(key, p->name, sizeof(p->name));
}

/* Counter movement per second; a counter that went back belongs to a pipe
 * made anew since, whose count started at zero within the interval. */
static double rate(uint64_t now, uint64_t before, double seconds)
{
	uint64_t moved = now >= before ? now - before : now;
	return seconds > 0 ? (double)moved / seconds : 0.0;
}

static int row_compare(const void *a, const void *b)
{
	const struct top_row *ra = a, *rb = b;
	double ta = ra->rate_in + ra->rate_out, tb = rb->rate_in + rb->rate_out;
	if (ta != tb)
		return ta > tb ? -1 : 1;
	if (ra->pipe->queued_bytes != rb->pipe->queued_bytes)
		return ra->pipe->queued_bytes > rb->pipe->queued_bytes ? -1 : 1;
	return strncmp(ra->pipe->name, rb->pipe->name, sizeof(ra->pipe->name));
}

/* The rows of `now`, busiest first. NULL (count 0) when there are no
 * pipes; -1 only when memory runs out. */
static int rows_build(const struct sample *now, const struct sample *before,
		      struct top_row **out)
{
	*out = NULL;
	if (now->count == 0)
		return 0;
	struct top_row *rows = calloc(now->count, sizeof(*rows));
	if (!rows)
		return -1;
	double seconds = before->taken ? now->time - before->time : 0;
	for (size_t i = 0; i < now->count; i++) {
		const struct ringdev_pipe_info *p = &now->pipes[i];
		rows[i].pipe = p;
		if (!before->taken)
			continue;
		const struct ringdev_pipe_info *old =
			bsearch(p->name, before->pipes, before->count, sizeof(*before->pipes),
				pipe_name_compare);
		rows[i].known = true;
		rows[i].rate_in = rate(p->bytes_in, old ? old->bytes_in : 0, seconds);
		rows[i].rate_out = rate(p->bytes_out, old ? old->bytes_out : 0, seconds);
	}
	qsort(rows, now->count, sizeof(*rows), row_compare);
	*out = rows;
	return 0;
}

/* ---- a growing text buffer for one frame ---- */

struct text {
	char *data;
	size_t len;
	size_t room;
	bool failed;
};

__attribute__((format(printf, 2, 3)))
static void text_printf(struct text *t, const char *fmt, ...)
{
	va_list ap;
	for (int attempt = 0; attempt < 2 && !t->failed; attempt++) {
		va_start(ap, fmt);
		int n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->room - t->len : 0,
				  fmt, ap);
		va_end(ap);
		if (n < 0) {
			t->failed = true;
			return;
		}
		if (t->data && t->len + (size_t)n < t->room) {
			t->len += (size_t)n;
			return;
		}
		size_t want = t->room ? t->room : 4096;
		while (want <= t->len + (size_t)n)
			want *= 2;
		char *bigger = realloc(t->data, want);
		if (!bigger) {
			t->failed = true;
			return;
		}
		t->data = bigger;
		t->room = want;
	}
}

/* Appends at most `width` bytes of s (ASCII: bytes are columns). Returns
 * the columns used. */
static size_t text_clip(struct text *t, const char *s, size_t width)
{
	size_t len = strlen(s);
	if (len > width)
		len = width;
	text_printf(t, "%.*s", (int)len, s);
	return len;
}

/* ---- the terminal ---- */

static struct termios term_saved;
static bool term_raw;                 /* term_saved holds the mode to restore */
static bool term_screen;              /* the alternate screen is on */
static volatile sig_atomic_t signal_quit;
static volatile sig_atomic_t signal_stop;
static volatile sig_atomic_t signal_resize;

#define SCREEN_ENTER "\033[?1049h\033[?25l\033[H\033[2J"
#define SCREEN_LEAVE "\033[?25h\033[?1049l"

/* Async-signal-safe: write(2) and tcsetattr(3) only. */
static void term_leave(void)
{
	if (term_screen) {
		term_screen = false;
		(void)!write(STDOUT_FILENO, SCREEN_LEAVE, sizeof(SCREEN_LEAVE) - 1);
	}
	if (term_raw) {
		term_raw = false;
		tcsetattr(STDIN_FILENO, TCSANOW, &term_saved);
	}
}

static void term_enter(bool keys)
{
	if (keys && tcgetattr(STDIN_FILENO, &term_saved) == 0) {
		struct termios raw = term_saved;
		/* ISIG stays: Ctrl-C and Ctrl-Z keep working through signals. */
		raw.c_lflag &= ~(tcflag_t)(ICANON | ECHO);
		raw.c_cc[VMIN] = 0;
		raw.c_cc[VTIME] = 0;
		if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0)
			term_raw = true;
	}
	term_screen = true;
	(void)!write(STDOUT_FILENO, SCREEN_ENTER, sizeof(SCREEN_ENTER) - 1);
}

static void signal_handler(int signo)
{
	switch (signo) {
	case SIGTSTP:
		signal_stop = 1;
		break;
	case SIGWINCH:
		signal_resize = 1;
		break;
	default:
		if (signal_quit) {
			/* The loop did not get to it (a daemon that does not
			 * answer): leave now, terminal first. */
			term_leave();
			_exit(EXIT_FAILURE);
		}
		signal_quit = signo;
	}
}

static void signals_install(bool screen)
{
	struct sigaction sa = { .sa_handler = signal_handler };
	sigemptyset(&sa.sa_mask);
	/* SA_RESTART: an ioctl in flight is restarted, not failed; poll(2)
	 * returns EINTR regardless, which is what the loop waits on. */
	sa.sa_flags = SA_RESTART;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (screen) {
		sigaction(SIGTSTP, &sa, NULL);
		sigaction(SIGWINCH, &sa, NULL);
	}
}

static void term_size(unsigned *rows, unsigned *cols)
{
	struct winsize ws;
	*rows = 24;
	*cols = 80;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_row > 0 && ws.ws_col > 0) {
		*rows = ws.ws_row;
		*cols = ws.ws_col;
	}
}

/* ---- the full-screen frame ---- */

static void rate_format(const struct top_row *row, double value, char *buf, size_t size)
{
	if (!row->known) {
		snprintf(buf, size, "-");
		return;
	}
	size_format((uint64_t)(value + 0.5), buf, size);
}

/* The device's traffic in and out per second since `before` (in and out
 * hold `size` bytes each), "-" on the first sample. */
static void device_rates_format(const struct sample *now, const struct sample *before, char *in,
				char *out, size_t size)
{
	if (!before->taken) {
		snprintf(in, size, "-");
		snprintf(out, size, "-");
		return;
	}
	double seconds = now->time - before->time;
	size_format((uint64_t)(rate(now->stats.bytes_in, before->stats.bytes_in, seconds) + 0.5), in,
		    size);
	size_format((uint64_t)(rate(now->stats.bytes_out, before->stats.bytes_out, seconds) + 0.5), out,
		    size);
}

static void clock_format(char *buf, size_t size)
{
	time_t now = time(NULL);
	struct tm tm;
	if (!localtime_r(&now, &tm) || strftime(buf, size, "%H:%M:%S", &tm) == 0)
		snprintf(buf, size, "-");
}

/* A line of the header or a row: clipped to the width, erased to its end. */
static void frame_line(struct text *t, const char *line, unsigned cols)
{
	text_clip(t, line, cols);
	text_printf(t, "\033[K\n");
}

static void frame_header(struct text *t, const struct ctl *ctl, const struct top_options *o,
			 const struct sample *now, const struct sample *before, unsigned cols)
{
	const struct ringdev_stats *s = &now->stats;
	char line[512], clock[16], a[16], b[16], c[16], d[16];

	clock_format(clock, sizeof(clock));
	snprintf(line, sizeof(line), "ringdevctl top - %s (%s, ringdevd %s)  %s  every %gs  q: quit",
		 ctl->device.path, ctl_frontend_name(ctl), ctl->device.version.daemon_version, clock,
		 o->interval);
	frame_line(t, line, cols);

	size_format(s->memory_used, a, sizeof(a));
	size_format(s->memory_limit, b, sizeof(b));
	snprintf(line, sizeof(line),
		 "pipes %" PRIu64 "/%" PRIu64 "  opens %" PRIu64 "  memory %s/%s (%.1f%%)  broker %s",
		 s->pipes, s->pipes_limit, s->opens, a, b, fill_percent(s->memory_used, s->memory_limit),
		 s->broker_connected ? "connected" : "none");
	frame_line(t, line, cols);

	snprintf(line, sizeof(line),
		 "parked %" PRIu64 ": reads %" PRIu64 ", writes %" PRIu64 ", other %" PRIu64
		 "  pollers %" PRIu64 "  interrupts %" PRIu64,
		 s->parked_total, s->parked_reads, s->parked_writes, s->parked_other, s->pollers,
		 s->interrupts);
	frame_line(t, line, cols);

	device_rates_format(now, before, a, b, sizeof(a));
	size_format(s->bytes_in, c, sizeof(c));
	size_format(s->bytes_out, d, sizeof(d));
	char dropped[16], flushed[16];
	size_format(s->dropped_bytes, dropped, sizeof(dropped));
	size_format(s->flushed_bytes, flushed, sizeof(flushed));
	snprintf(line, sizeof(line), "in %s/s  out %s/s  (total in %s, out %s)  dropped %s  flushed %s",
		 a, b, c, d, dropped, flushed);
	frame_line(t, line, cols);

	snprintf(line, sizeof(line),
		 "limit hits: pipes %" PRIu64 "  memory %" PRIu64 "  pipes/uid %" PRIu64
		 "  opens/uid %" PRIu64 "  parked %" PRIu64,
		 s->limit_pipes_hits, s->limit_memory_hits, s->limit_uid_pipes_hits,
		 s->limit_uid_opens_hits, s->limit_parked_hits);
	frame_line(t, line, cols);
	frame_line(t, "", cols);
}

/*
 * A row: NAME, then columns that fit 80 columns with 18 left for the name:
 * rates in and out, the fill bar and percent, queued, capacity, readers/
 * writers, waiting reads (r) and writes (w), dropped. The name column is
 * as wide as the longest name shown, or what the terminal leaves; a name
 * cut short ends in '+', which no pipe name contains.
 */
#define BAR_WIDTH 8u
#define COLUMNS_WIDTH 62u             /* everything after the name */
#define NAME_WIDTH_MIN 4u

static void name_fit(const char *name, unsigned width, char *buf, size_t size)
{
	size_t len = strlen(name);
	if (len <= width) {
		snprintf(buf, size, "%-*s", (int)width, name);
		return;
	}
	snprintf(buf, size, "%.*s+", (int)width - 1, name);
}

static unsigned name_width(const struct top_row *rows, size_t count, unsigned cols)
{
	unsigned width = NAME_WIDTH_MIN;
	for (size_t i = 0; i < count; i++) {
		size_t len = strlen(rows[i].pipe->name);
		if (len > width)
			width = (unsigned)len;
	}
	unsigned room = cols > COLUMNS_WIDTH + NAME_WIDTH_MIN ? cols - COLUMNS_WIDTH : NAME_WIDTH_MIN;
	return width < room ? width : room;
}

/* "1r", "2w", "1r2w", or "-". */
static void waits_format(const struct ringdev_pipe_info *p, char *buf, size_t size)
{
	if (p->parked_reads && p->parked_writes)
		snprintf(buf, size, "%ur%uw", p->parked_reads, p->parked_writes);
	else if (p->parked_reads)
		snprintf(buf, size, "%ur", p->parked_reads);
	else if (p->parked_writes)
		snprintf(buf, size, "%uw", p->parked_writes);
	else
		snprintf(buf, size, "-");
}

static void frame_row(struct text *t, const struct top_row *row, unsigned width, unsigned cols)
{
	const struct ringdev_pipe_info *p = row->pipe;
	char name[RINGDEV_NAME_SIZE + 1], in[16], out[16], queued[16], capacity[16], users[32];
	char waits[32], dropped[16], bar[BAR_WIDTH + 3], before[160], after[128];
	double percent = fill_percent(pipe_ring_used(p), p->capacity);

	name_fit(p->name, width, name, sizeof(name));
	rate_format(row, row->rate_in, in, sizeof(in));
	rate_format(row, row->rate_out, out, sizeof(out));
	size_format(p->queued_bytes, queued, sizeof(queued));
	size_format(p->capacity, capacity, sizeof(capacity));
	snprintf(users, sizeof(users), "%u/%u", p->readers, p->writers);
	waits_format(p, waits, sizeof(waits));
	size_format(p->dropped_bytes, dropped, sizeof(dropped));
	bar_format(percent, BAR_WIDTH, bar, sizeof(bar));
	snprintf(before, sizeof(before), "%s %5s %5s ", name, in, out);
	snprintf(after, sizeof(after), " %4.0f%% %6s %6s %5s %6s %5s", percent, queued, capacity,
		 users, waits, dropped);

	/* The bar is colored by how full the pipe is (green, yellow from
	 * 50%, red from 90%): the one place color says something at a glance. */
	const char *color = percent >= 90.0 ? "\033[31m" : percent >= 50.0 ? "\033[33m" : "\033[32m";
	size_t used = text_clip(t, before, cols);
	if (used < cols) {
		text_printf(t, "%s", color);
		used += text_clip(t, bar, cols - used);
		text_printf(t, "\033[0m");
	}
	if (used < cols)
		text_clip(t, after, cols - used);
	text_printf(t, "\033[K\n");
}

static int frame_draw(const struct ctl *ctl, const struct top_options *o, const struct sample *now,
		      const struct sample *before, const struct top_row *rows)
{
	struct text t = { 0 };
	unsigned term_rows, cols;
	char title[256];

	term_size(&term_rows, &cols);
	text_printf(&t, "\033[H");
	frame_header(&t, ctl, o, now, before, cols);
	unsigned used = 6;

	size_t room = term_rows > used + 2 ? term_rows - used - 2 : 0;
	size_t count = now->count;
	if (count > room)
		room = room > 0 ? room - 1 : 0; /* keep a line for "more" */
	size_t shown_rows = count < room ? count : room;
	unsigned width = name_width(rows, shown_rows, cols);

	snprintf(title, sizeof(title), "%-*s %5s %5s %-*s %6s %6s %5s %6s %5s", (int)width, "NAME",
		 "IN/s", "OUT/s", (int)BAR_WIDTH + 2 + 6, "FILL", "QUEUED", "CAP", "R/W", "WAIT", "DROP");
	text_printf(&t, "\033[7m");
	size_t shown = text_clip(&t, title, cols);
	text_printf(&t, "%*s\033[0m\033[K\n", (int)(cols - shown), "");

	for (size_t i = 0; i < shown_rows; i++)
		frame_row(&t, &rows[i], width, cols);
	if (count == 0) {
		frame_line(&t, "(no pipes)", cols);
	} else if (count > shown_rows) {
		char more[64];
		snprintf(more, sizeof(more), "... %zu more pipes", count - shown_rows);
		frame_line(&t, more, cols);
	}
	text_printf(&t, "\033[J");
	int r = t.failed ? -ENOMEM : client_write_all(STDOUT_FILENO, t.data, t.len);
	free(t.data);
	return r;
}

/* ---- the plain and JSON lines ---- */

static void lines_print(const struct ctl *ctl, const struct sample *now, const struct sample *before,
			const struct top_row *rows)
{
	const struct ringdev_stats *s = &now->stats;
	char clock[16], a[16], b[16], c[16], d[16];

	clock_format(clock, sizeof(clock));
	device_rates_format(now, before, a, b, sizeof(a));
	size_format(s->memory_used, c, sizeof(c));
	size_format(s->dropped_bytes, d, sizeof(d));
	printf("%s device %s pipes=%" PRIu64 " opens=%" PRIu64 " parked=%" PRIu64
	       " parked_reads=%" PRIu64 " parked_writes=%" PRIu64 " memory=%s in=%s/s out=%s/s dropped=%s\n",
	       clock, ctl->device.path, s->pipes, s->opens, s->parked_total, s->parked_reads,
	       s->parked_writes, c, a, b, d);
	for (size_t i = 0; i < now->count; i++) {
		const struct ringdev_pipe_info *p = rows[i].pipe;
		char queued[16], capacity[16], dropped[16];
		rate_format(&rows[i], rows[i].rate_in, a, sizeof(a));
		rate_format(&rows[i], rows[i].rate_out, b, sizeof(b));
		size_format(p->queued_bytes, queued, sizeof(queued));
		size_format(p->capacity, capacity, sizeof(capacity));
		size_format(p->dropped_bytes, dropped, sizeof(dropped));
		printf("%s pipe %s in=%s/s out=%s/s fill=%.0f%% queued=%s capacity=%s readers=%u "
		       "writers=%u parked_reads=%u parked_writes=%u dropped=%s\n",
		       clock, p->name, a, b, fill_percent(pipe_ring_used(p), p->capacity), queued,
		       capacity, p->readers, p->writers, p->parked_reads, p->parked_writes, dropped);
	}
}

static void json_rate(struct json *j, const char *key, bool known, double value)
{
	json_key(j, key);
	if (known)
		json_u64(j, (uint64_t)(value + 0.5));
	else
		json_null(j);
}

static void json_line_print(const struct sample *now, const struct sample *before,
			    const struct top_row *rows)
{
	struct json j;
	double seconds = before->taken ? now->time - before->time : 0;

	json_document_begin(&j, stdout, false);
	json_key(&j, "time");
	json_double(&j, clock_seconds(CLOCK_REALTIME));
	json_key(&j, "interval");
	if (before->taken)
		json_double(&j, seconds);
	else
		json_null(&j);
	json_key(&j, "stats");
	json_object_begin(&j);
	stats_json_members(&j, &now->stats);
	json_object_end(&j);
	json_rate(&j, "rate_in", before->taken, rate(now->stats.bytes_in, before->stats.bytes_in, seconds));
	json_rate(&j, "rate_out", before->taken,
		  rate(now->stats.bytes_out, before->stats.bytes_out, seconds));
	json_key(&j, "pipes");
	json_array_begin(&j);
	for (size_t i = 0; i < now->count; i++) {
		json_object_begin(&j);
		pipe_json_members(&j, rows[i].pipe);
		json_rate(&j, "rate_in", rows[i].known, rows[i].rate_in);
		json_rate(&j, "rate_out", rows[i].known, rows[i].rate_out);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_document_end(&j);
}

/* ---- the loop ---- */

enum key_action { KEY_NONE, KEY_QUIT, KEY_REFRESH };

/* Reads what is typed: 'q' quits, space and Ctrl-L redraw now. */
static enum key_action keys_read(int *fd)
{
	char buf[64];
	ssize_t n = read(*fd, buf, sizeof(buf));
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		*fd = -1; /* gone: no more keys, the view goes on */
		return KEY_NONE;
	}
	enum key_action action = KEY_NONE;
	for (ssize_t i = 0; i < n; i++) {
		if (buf[i] == 'q' || buf[i] == 'Q' || buf[i] == 3 /* Ctrl-C without ISIG */)
			return KEY_QUIT;
		if (buf[i] == ' ' || buf[i] == 12 /* Ctrl-L */)
			action = KEY_REFRESH;
	}
	return action;
}

/* Waits until `deadline` (monotonic seconds), a key or a signal. */
static enum key_action wait_until(double deadline, int *key_fd)
{
	for (;;) {
		if (signal_quit)
			return KEY_QUIT;
		if (signal_stop || signal_resize)
			return KEY_REFRESH;
		double left = deadline - clock_seconds(CLOCK_MONOTONIC);
		if (left <= 0)
			return KEY_NONE;
		struct pollfd pfd = { .fd = *key_fd, .events = POLLIN };
		int r = poll(&pfd, 1, (int)(left * 1000.0) + 1);
		if (r < 0 && errno != EINTR)
			return KEY_NONE;
		if (r > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR))) {
			enum key_action action = keys_read(key_fd);
			if (action != KEY_NONE)
				return action;
		}
	}
}

/* Ctrl-Z: the normal screen back while stopped, the view again after. */
static void stop_handle(bool keys)
{
	signal_stop = 0;
	term_leave();
	struct sigaction sa = { .sa_handler = SIG_DFL }, old;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTSTP, &sa, &old);
	raise(SIGTSTP);
	sigaction(SIGTSTP, &old, NULL);
	term_enter(keys);
}

int command_top(struct ctl *ctl, const struct top_options *o)
{
	struct sample samples[2] = { { .pipes = NULL }, { .pipes = NULL } };
	struct sample *now = &samples[0], *before = &samples[1];
	bool screen = !ctl->json && isatty(STDOUT_FILENO);
	bool keys = screen && isatty(STDIN_FILENO);
	int key_fd = keys ? STDIN_FILENO : -1;
	int status = EXIT_SUCCESS;

	signals_install(screen);
	if (screen) {
		client_error_hook_set(term_leave);
		atexit(term_leave);
		term_enter(keys);
	}
	double deadline = clock_seconds(CLOCK_MONOTONIC);
	for (uint64_t frame = 0; o->count == 0 || frame < o->count; frame++) {
		struct top_row *rows;
		if (sample_take(ctl, now) < 0) {
			status = EXIT_FAILURE;
			break;
		}
		if (rows_build(now, before, &rows) < 0) {
			client_error("top", NULL, ENOMEM, CLIENT_CONTEXT_OTHER);
			status = EXIT_FAILURE;
			break;
		}
		int r = 0;
		if (screen) {
			r = frame_draw(ctl, o, now, before, rows);
		} else {
			if (ctl->json)
				json_line_print(now, before, rows);
			else
				lines_print(ctl, now, before, rows);
			if (fflush(stdout) != 0 || ferror(stdout))
				r = -errno;
		}
		free(rows);
		if (r < 0) {
			client_error("stdout", NULL, -r, CLIENT_CONTEXT_OTHER);
			status = EXIT_FAILURE;
			break;
		}
		struct sample *swap = before;
		before = now;
		now = swap;
		if (o->count && frame + 1 >= o->count)
			break;

		/* Refreshes keep to the interval's grid, not drifting by the
		 * time each one takes; a late one moves the grid. */
		deadline += o->interval;
		double current = clock_seconds(CLOCK_MONOTONIC);
		if (deadline < current)
			deadline = current;
		enum key_action action = wait_until(deadline, &key_fd);
		if (action == KEY_QUIT)
			break;
		if (signal_stop)
			stop_handle(keys);
		signal_resize = 0;
		if (action == KEY_REFRESH)
			deadline = clock_seconds(CLOCK_MONOTONIC);
	}
	term_leave();
	client_error_hook_set(NULL);
	free(samples[0].pipes);
	free(samples[1].pipes);
	return status;
}
