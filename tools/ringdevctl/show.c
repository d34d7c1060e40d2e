/* SPDX-License-Identifier: MIT */
/*
 * show.c - the read-only commands: list, info, opens, stats.
 *
 * `info` is the page an admin reads when something is wrong with one pipe:
 * how full it is, who is attached and how (from LIST_OPENS filtered by the
 * pipe), what waits and what that most likely means. Every value it shows
 * is also in the --json form, under the keys ringdevctl(8) documents; the
 * JSON keys are the ABI's field names so scripts and the header agree.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "ringdevctl.h"

/* ---- JSON members (shared with top) ---- */

void pipe_json_members(struct json *j, const struct ringdev_pipe_info *p)
{
	char octal[8];
	snprintf(octal, sizeof(octal), "%04o", p->mode & 07777);

	json_key(j, "name");
	json_string_len(j, p->name, FIELD_LEN(p->name));
	json_member_string(j, "kind", kind_name(p->kind));
	json_member_string(j, "policy", full_policy_name(p->policy));
	json_member_u64(j, "mode", p->mode);
	json_member_string(j, "mode_octal", octal);
	json_member_u64(j, "uid", p->uid);
	json_member_u64(j, "gid", p->gid);
	json_member_string_or_null(j, "user", user_name(p->uid));
	json_member_string_or_null(j, "group", group_name(p->gid));
	json_member_u64(j, "flags", p->flags);
	json_member_bool(j, "persistent", p->flags & RINGDEV_PIPE_PERSISTENT);
	json_member_bool(j, "eof", p->flags & RINGDEV_PIPE_EOF);
	json_member_bool(j, "unlinked", p->flags & RINGDEV_PIPE_UNLINKED);
	json_member_bool(j, "allocated", p->flags & RINGDEV_PIPE_ALLOCATED);
	json_member_u64(j, "readers", p->readers);
	json_member_u64(j, "writers", p->writers);
	json_member_u64(j, "handles", p->handles);
	json_member_u64(j, "parked_reads", p->parked_reads);
	json_member_u64(j, "parked_writes", p->parked_writes);
	json_member_u64(j, "capacity", p->capacity);
	json_member_u64(j, "queued_bytes", p->queued_bytes);
	json_member_u64(j, "queued_messages", p->queued_messages);
	json_member_u64(j, "allocated_bytes", p->allocated_bytes);
	json_member_u64(j, "bytes_in", p->bytes_in);
	json_member_u64(j, "bytes_out", p->bytes_out);
	json_member_u64(j, "writes", p->writes);
	json_member_u64(j, "reads", p->reads);
	json_member_u64(j, "dropped_bytes", p->dropped_bytes);
	json_member_u64(j, "dropped_messages", p->dropped_messages);
	json_member_u64(j, "ino", p->ino);
}

void open_json_members(struct json *j, const struct ringdev_open_info *o)
{
	char comm[64];
	size_t pipe_len = FIELD_LEN(o->pipe);

	json_member_u64(j, "handle", o->handle);
	json_key(j, "pipe");
	if (pipe_len)
		json_string_len(j, o->pipe, pipe_len);
	else
		json_null(j);
	json_member_u64(j, "uid", o->uid);
	json_member_u64(j, "gid", o->gid);
	json_member_string_or_null(j, "user", user_name(o->uid));
	json_member_u64(j, "pid", o->pid);
	json_member_string_or_null(j, "command", process_name(o->pid, comm, sizeof(comm)) ? comm : NULL);
	json_member_u64(j, "oflags", o->oflags);
	json_member_bool(j, "nonblock", o->oflags & O_NONBLOCK);
	json_member_u64(j, "flags", o->flags);
	json_member_bool(j, "reader", o->flags & RINGDEV_OPEN_READER);
	json_member_bool(j, "writer", o->flags & RINGDEV_OPEN_WRITER);
	json_member_bool(j, "control", o->flags & RINGDEV_OPEN_CONTROL);
	json_member_bool(j, "detached", o->flags & RINGDEV_OPEN_DETACHED);
	json_member_u64(j, "parked_reads", o->parked_reads);
	json_member_u64(j, "parked_writes", o->parked_writes);
	json_member_u64(j, "parked_other", o->parked_other);
	json_member_u64(j, "bytes_in", o->bytes_in);
	json_member_u64(j, "bytes_out", o->bytes_out);
}

void stats_json_members(struct json *j, const struct ringdev_stats *s)
{
#define STAT(field) json_member_u64(j, #field, s->field)
	STAT(pipes);
	STAT(opens);
	STAT(parked_reads);
	STAT(parked_writes);
	STAT(parked_other);
	STAT(parked_total);
	STAT(pollers);
	STAT(memory_used);
	STAT(memory_limit);
	STAT(pipes_limit);
	STAT(bytes_in);
	STAT(bytes_out);
	STAT(writes);
	STAT(reads);
	STAT(dropped_bytes);
	STAT(dropped_messages);
	STAT(interrupts);
	STAT(limit_pipes_hits);
	STAT(limit_memory_hits);
	STAT(pipes_created);
	STAT(pipes_removed);
	STAT(broker_connected);
	STAT(relayed);
	STAT(relay_rejected);
	STAT(relay_failed);
	STAT(relay_timeouts);
	STAT(relay_cancels);
	STAT(relay_broker_gone);
	STAT(limit_uid_pipes_hits);
	STAT(limit_uid_opens_hits);
	STAT(limit_parked_hits);
	STAT(flushed_bytes);
#undef STAT
}

/* "pipe": {...} and "opens": [{...}, ...], inside the caller's object. */
static void pipe_json_member(struct json *j, const struct ringdev_pipe_info *p)
{
	json_key(j, "pipe");
	json_object_begin(j);
	pipe_json_members(j, p);
	json_object_end(j);
}

static void opens_json_member(struct json *j, const struct ringdev_open_info *opens, size_t count)
{
	json_key(j, "opens");
	json_array_begin(j);
	for (size_t i = 0; i < count; i++) {
		json_object_begin(j);
		open_json_members(j, &opens[i]);
		json_object_end(j);
	}
	json_array_end(j);
}

/* ---- shared bits of the human forms ---- */

const char *open_access(const struct ringdev_open_info *o)
{
	bool r = o->flags & RINGDEV_OPEN_READER, w = o->flags & RINGDEV_OPEN_WRITER;
	if (o->flags & RINGDEV_OPEN_CONTROL)
		return "control";
	if (r && w)
		return "read+write";
	if (r)
		return "read";
	if (w)
		return "write";
	return "none";
}

/* "alice" or "1000" when the id has no name. */
static void id_format(uint32_t id, const char *name, char *buf, size_t size)
{
	if (name)
		snprintf(buf, size, "%s", name);
	else
		snprintf(buf, size, "%u", id);
}

/* "1 read, 2 writes" for what waits, "-" for nothing. */
static void parked_format(uint32_t reads, uint32_t writes, uint32_t other, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
	struct { uint32_t n; const char *one, *many; } parts[] = {
		{ reads, "read", "reads" },
		{ writes, "write", "writes" },
		{ other, "other", "other" },
	};
	for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++) {
		if (!parts[i].n || used >= size)
			continue;
		int n = snprintf(buf + used, size - used, "%s%u %s", used ? ", " : "", parts[i].n,
				 parts[i].n == 1 ? parts[i].one : parts[i].many);
		if (n > 0)
			used += (size_t)n;
	}
	if (!buf[0])
		snprintf(buf, size, "-");
}

uint64_t pipe_ring_used(const struct ringdev_pipe_info *p)
{
	uint64_t used = p->queued_bytes;
	if (p->kind == RINGDEV_KIND_MESSAGE)
		used += p->queued_messages * RINGDEV_MESSAGE_HEADER;
	return used > p->capacity ? p->capacity : used;
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

/* ---- list ---- */

static int list_json(const struct ringdev_pipe_info *pipes, size_t count)
{
	struct json j;
	json_document_begin(&j, stdout, true);
	json_key(&j, "pipes");
	json_array_begin(&j);
	for (size_t i = 0; i < count; i++) {
		json_object_begin(&j);
		pipe_json_members(&j, &pipes[i]);
		json_object_end(&j);
	}
	json_array_end(&j);
	json_document_end(&j);
	return 0;
}

static const struct table_column list_columns[] = {
	{ "NAME", ALIGN_LEFT },
	{ "KIND", ALIGN_LEFT },
	{ "POLICY", ALIGN_LEFT },
	{ "OWNER", ALIGN_LEFT },
	{ "MODE", ALIGN_LEFT },
	{ "QUEUED", ALIGN_RIGHT },
	{ "CAPACITY", ALIGN_RIGHT },
	{ "FILL", ALIGN_RIGHT },
	{ "READERS", ALIGN_RIGHT },
	{ "WRITERS", ALIGN_RIGHT },
	{ "PARKED", ALIGN_LEFT },
	{ "DROPPED", ALIGN_RIGHT },
	{ "IN", ALIGN_RIGHT },
	{ "OUT", ALIGN_RIGHT },
};

static int list_table(const struct ringdev_pipe_info *pipes, size_t count)
{
	struct table t = TABLE_INIT(list_columns);
	int r = 0;

	for (size_t i = 0; i < count && r == 0; i++) {
		const struct ringdev_pipe_info *p = &pipes[i];
		char owner[96], mode[8], queued[16], capacity[16], fill[16], readers[16];
		char writers[16], parked[64], dropped[16], in[16], out[16];
		char user[48], group[48];

		id_format(p->uid, user_name(p->uid), user, sizeof(user));
		id_format(p->gid, group_name(p->gid), group, sizeof(group));
		snprintf(owner, sizeof(owner), "%s:%s", user, group);
		snprintf(mode, sizeof(mode), "%04o", p->mode & 07777);
		size_format(p->queued_bytes, queued, sizeof(queued));
		size_format(p->capacity, capacity, sizeof(capacity));
		snprintf(fill, sizeof(fill), "%.0f%%", fill_percent(pipe_ring_used(p), p->capacity));
		snprintf(readers, sizeof(readers), "%u", p->readers);
		snprintf(writers, sizeof(writers), "%u", p->writers);
		parked_format(p->parked_reads, p->parked_writes, 0, parked, sizeof(parked));
		size_format(p->dropped_bytes, dropped, sizeof(dropped));
		size_format(p->bytes_in, in, sizeof(in));
		size_format(p->bytes_out, out, sizeof(out));
		const char *cells[] = { p->name, kind_name(p->kind), full_policy_name(p->policy), owner,
					mode, queued, capacity, fill, readers, writers, parked,
					dropped, in, out };
		r = table_add(&t, cells);
	}
	if (r == 0) {
		if (count)
			table_print(&t, stdout);
		else
			puts("no pipes");
	}
	table_free(&t);
	if (r < 0) {
		client_error("list", NULL, -r, CLIENT_CONTEXT_OTHER);
		return -1;
	}
	return 0;
}

int command_list(struct ctl *ctl)
{
	struct ringdev_pipe_info *pipes;
	size_t count;

	if (ctl_list_pipes(ctl, &pipes, &count) < 0)
		return EXIT_FAILURE;
	int r = ctl->json ? list_json(pipes, count) : list_table(pipes, count);
	free(pipes);
	return r == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* ---- opens (and the opens part of info) ---- */

static const struct table_column open_columns[] = {
	{ "HANDLE", ALIGN_RIGHT },
	{ "PIPE", ALIGN_LEFT },
	{ "USER", ALIGN_LEFT },
	{ "PID", ALIGN_RIGHT },
	{ "COMMAND", ALIGN_LEFT },
	{ "ACCESS", ALIGN_LEFT },
	{ "PARKED", ALIGN_LEFT },
	{ "WRITTEN", ALIGN_RIGHT },
	{ "READ", ALIGN_RIGHT },
};

/* The opens table; with `skip_pipe` the PIPE column is left out (info
 * shows one pipe). 0 or -ENOMEM. */
static int opens_table(const struct ringdev_open_info *opens, size_t count, bool skip_pipe)
{
	struct table_column columns[sizeof(open_columns) / sizeof(open_columns[0])];
	size_t ncolumns = 0;
	for (size_t c = 0; c < sizeof(open_columns) / sizeof(open_columns[0]); c++)
		if (!(skip_pipe && c == 1))
			columns[ncolumns++] = open_columns[c];
	struct table t = { .columns = columns, .ncolumns = ncolumns };
	int r = 0;

	for (size_t i = 0; i < count && r == 0; i++) {
		const struct ringdev_open_info *o = &opens[i];
		char handle[24], user[48], pid[16], comm[64], parked[64], in[16], out[16];
		const char *pipe = o->pipe[0] ? o->pipe : "-";

		snprintf(handle, sizeof(handle), "%" PRIu64, o->handle);
		id_format(o->uid, user_name(o->uid), user, sizeof(user));
		snprintf(pid, sizeof(pid), "%u", o->pid);
		if (!process_name(o->pid, comm, sizeof(comm)))
			snprintf(comm, sizeof(comm), "-");
		parked_format(o->parked_reads, o->parked_writes, o->parked_other, parked, sizeof(parked));
		size_format(o->bytes_in, in, sizeof(in));
		size_format(o->bytes_out, out, sizeof(out));
		const char *all[] = { handle, pipe, user, pid, comm, open_access(o), parked, in, out };
		const char *cells[sizeof(all) / sizeof(all[0])];
		size_t n = 0;
		for (size_t c = 0; c < sizeof(all) / sizeof(all[0]); c++)
			if (!(skip_pipe && c == 1))
				cells[n++] = all[c];
		r = table_add(&t, cells);
	}
	if (r == 0)
		table_print(&t, stdout);
	table_free(&t);
	return r;
}

int command_opens(struct ctl *ctl)
{
	struct ringdev_open_info *opens;
	size_t count;
	int r = 0;

	if (ctl_list_opens(ctl, &opens, &count) < 0)
		return EXIT_FAILURE;
	if (ctl->json) {
		struct json j;
		json_document_begin(&j, stdout, true);
		opens_json_member(&j, opens, count);
		json_document_end(&j);
	} else if (count == 0) {
		puts("no opens");
	} else {
		r = opens_table(opens, count, false);
	}
	free(opens);
	if (r < 0) {
		client_error("opens", NULL, -r, CLIENT_CONTEXT_OTHER);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* ---- info ---- */

/* What the counts most likely mean, for the "status" line: the question an
 * admin asks is "what is stuck and why". */
static void info_status(const struct ringdev_pipe_info *p, char *buf, size_t size)
{
	size_t used = 0;
	buf[0] = '\0';
#define SAY(...)                                                                         \
	do {                                                                             \
		if (used < size) {                                                       \
			int n_ = snprintf(buf + used, size - used, "%s", used ? "; " : ""); \
			if (n_ > 0)                                                      \
				used += (size_t)n_;                                      \
		}                                                                        \
		if (used < size) {                                                       \
			int n_ = snprintf(buf + used, size - used, __VA_ARGS__);         \
			if (n_ > 0)                                                      \
				used += (size_t)n_;                                      \
		}                                                                        \
	} while (0)

	if (p->parked_writes && p->readers == 0)
		SAY("stuck: %u %s for room and no reader is attached", p->parked_writes,
		    plural(p->parked_writes, "write waits", "writes wait"));
	else if (p->parked_writes)
		SAY("full: %u %s for room (the readers are slower than the writers)", p->parked_writes,
		    plural(p->parked_writes, "write waits", "writes wait"));
	if (p->parked_reads && p->writers == 0)
		SAY("%u %s for data and no writer is attached", p->parked_reads,
		    plural(p->parked_reads, "read waits", "reads wait"));
	else if (p->parked_reads)
		SAY("%u %s for data (the writers are idle)", p->parked_reads,
		    plural(p->parked_reads, "read waits", "reads wait"));
	if (p->queued_bytes && p->readers == 0 && !p->parked_writes)
		SAY("unread data and no reader is attached");
	if (p->dropped_bytes)
		SAY("data was lost to the overwrite policy");
	if (p->flags & RINGDEV_PIPE_EOF)
		SAY("end of file: empty and all writers closed");
	if (p->flags & RINGDEV_PIPE_UNLINKED)
		SAY("removed");
	if (!buf[0])
		SAY(p->handles ? "ok" : "idle");
#undef SAY
}

static void info_flags(const struct ringdev_pipe_info *p, char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s%s",
		 p->flags & RINGDEV_PIPE_PERSISTENT ? "persistent (kept when unused and empty)" :
						      "temporary (removed when unused and empty)",
		 p->flags & RINGDEV_PIPE_ALLOCATED ? ", ring allocated" : ", no ring yet",
		 p->flags & RINGDEV_PIPE_EOF ? ", end of file" : "",
		 p->flags & RINGDEV_PIPE_UNLINKED ? ", removed" : "");
}

void bar_format(double percent, unsigned width, char *buf, size_t size)
{
	if (size < width + 3)
		return;
	unsigned full = (unsigned)(percent / 100.0 * width + 0.5);
	if (full > width)
		full = width;
	if (full == 0 && percent > 0)
		full = 1; /* anything at all shows */
	buf[0] = '[';
	for (unsigned i = 0; i < width; i++)
		buf[1 + i] = i < full ? '#' : '-';
	buf[width + 1] = ']';
	buf[width + 2] = '\0';
}

static void info_print(const struct ringdev_pipe_info *p, const struct ringdev_open_info *opens,
		       size_t count)
{
	char user[48], group[48], a[32], b[32], c[32], bar[32], line[512];

	id_format(p->uid, user_name(p->uid), user, sizeof(user));
	id_format(p->gid, group_name(p->gid), group, sizeof(group));

	printf("pipe %s\n", p->name);
	printf("  kind      %s, policy %s (when full: %s)\n", kind_name(p->kind), full_policy_name(p->policy),
	       p->policy == RINGDEV_POLICY_OVERWRITE ? "drop the oldest data" :
	       p->policy == RINGDEV_POLICY_FAIL ? "writes fail with EAGAIN" : "writers wait");
	printf("  owner     %s:%s (uid %u, gid %u), mode %04o\n", user, group, p->uid, p->gid,
	       p->mode & 07777);
	info_flags(p, line, sizeof(line));
	printf("  state     %s\n", line);
	uint64_t used = pipe_ring_used(p);
	double percent = fill_percent(used, p->capacity);
	bar_format(percent, 20, bar, sizeof(bar));
	size_format(used, a, sizeof(a));
	size_format(p->capacity, b, sizeof(b));
	printf("  fill      %s %.1f%%, %s of %s\n", bar, percent, a, b);
	size_format(p->queued_bytes, a, sizeof(a));
	if (p->kind == RINGDEV_KIND_MESSAGE)
		printf("  queued    %" PRIu64 " bytes in %" PRIu64 " %s (%s)\n", p->queued_bytes,
		       p->queued_messages, plural(p->queued_messages, "message", "messages"), a);
	else
		printf("  queued    %" PRIu64 " bytes (%s)\n", p->queued_bytes, a);
	printf("  handles   %u: %u %s, %u %s\n", p->handles, p->readers,
	       plural(p->readers, "reader", "readers"), p->writers,
	       plural(p->writers, "writer", "writers"));
	printf("  parked    %u %s waiting for data, %u %s waiting for room\n", p->parked_reads,
	       plural(p->parked_reads, "read", "reads"), p->parked_writes,
	       plural(p->parked_writes, "write", "writes"));
	size_format(p->bytes_in, a, sizeof(a));
	size_format(p->bytes_out, b, sizeof(b));
	printf("  traffic   in %s (%" PRIu64 " bytes, %" PRIu64 " %s), out %s (%" PRIu64
	       " bytes, %" PRIu64 " %s)\n",
	       a, p->bytes_in, p->writes, plural(p->writes, "write", "writes"), b, p->bytes_out,
	       p->reads, plural(p->reads, "read", "reads"));
	size_format(p->dropped_bytes, a, sizeof(a));
	printf("  dropped   %s (%" PRIu64 " bytes, %" PRIu64 " %s)\n", a, p->dropped_bytes,
	       p->dropped_messages, plural(p->dropped_messages, "message", "messages"));
	size_format(p->allocated_bytes, c, sizeof(c));
	printf("  memory    %s\n", c);
	info_status(p, line, sizeof(line));
	printf("  status    %s\n", line);

	printf("\n");
	if (count < p->handles)
		printf("opens: %zu shown of %u (only root and the --admin-group see other users' handles)\n",
		       count, p->handles);
	else
		printf("opens: %zu\n", count);
	if (count)
		opens_table(opens, count, true);
}

void pipe_json_document(const struct ringdev_pipe_info *p)
{
	struct json j;
	json_document_begin(&j, stdout, true);
	pipe_json_member(&j, p);
	json_document_end(&j);
}

static void info_json(const struct ringdev_pipe_info *p, const struct ringdev_open_info *opens,
		      size_t count)
{
	struct json j;
	json_document_begin(&j, stdout, true);
	pipe_json_member(&j, p);
	opens_json_member(&j, opens, count);
	json_member_u64(&j, "opens_hidden", count < p->handles ? p->handles - count : 0);
	json_document_end(&j);
}

int command_info(struct ctl *ctl, const char *name)
{
	struct ringdev_pipe_info info;
	struct ringdev_open_info *opens;
	size_t count, kept = 0;

	int r = ctl_pipe_by_name(ctl, name, &info);
	if (r < 0) {
		client_error(name, NULL, -r, CLIENT_CONTEXT_LOOKUP);
		return EXIT_FAILURE;
	}
	if (ctl_list_opens(ctl, &opens, &count) < 0)
		return EXIT_FAILURE;
	/* The daemon spells the pipe one way in both answers, whatever case
	 * the user typed. */
	for (size_t i = 0; i < count; i++)
		if (strncmp(opens[i].pipe, info.name, sizeof(info.name)) == 0)
			opens[kept++] = opens[i];
	if (ctl->json)
		info_json(&info, opens, kept);
	else
		info_print(&info, opens, kept);
	free(opens);
	return EXIT_SUCCESS;
}

/* ---- stats ---- */

static void stats_json(const struct ctl *ctl, const struct ringdev_stats *s, const struct ringdev_stats_ext *x)
{
	const struct ringdev_version *v = &ctl->device.version;
	struct json j;
	json_document_begin(&j, stdout, true);
	json_member_string(&j, "device", ctl->device.path);
	json_member_string(&j, "frontend", ctl_frontend_name(ctl));
	json_key(&j, "daemon_version");
	json_string_len(&j, v->daemon_version, FIELD_LEN(v->daemon_version));
	json_member_u64(&j, "abi_major", v->abi_major);
	json_member_u64(&j, "abi_minor", v->abi_minor);
	json_key(&j, "stats");
	json_object_begin(&j);
	stats_json_members(&j, s);
	json_member_u64(&j, "relay_cancel_timeouts", x->relay_cancel_timeouts);
	json_member_u64(&j, "restarts", x->restarts);
	json_member_u64(&j, "last_restart_pause_us", x->last_restart_pause_us);
	json_object_end(&j);
	json_document_end(&j);
}

static void stats_print(const struct ctl *ctl, const struct ringdev_stats *s, const struct ringdev_stats_ext *x)
{
	const struct ringdev_version *v = &ctl->device.version;
	char a[32], b[32];

	printf("device      %s (%s), ringdevd %s, ABI %u.%u\n", ctl->device.path, ctl_frontend_name(ctl),
	       v->daemon_version, v->abi_major, v->abi_minor);
	printf("pipes       %" PRIu64 " of %" PRIu64 " (created %" PRIu64 ", removed %" PRIu64 ")\n",
	       s->pipes, s->pipes_limit, s->pipes_created, s->pipes_removed);
	printf("opens       %" PRIu64 "\n", s->opens);
	printf("parked      %" PRIu64 " (reads %" PRIu64 ", writes %" PRIu64 ", other %" PRIu64
	       "), pollers %" PRIu64 "\n",
	       s->parked_total, s->parked_reads, s->parked_writes, s->parked_other, s->pollers);
	size_format(s->memory_used, a, sizeof(a));
	size_format(s->memory_limit, b, sizeof(b));
	printf("memory      %s of %s (%.1f%%)\n", a, b, fill_percent(s->memory_used, s->memory_limit));
	size_format(s->bytes_in, a, sizeof(a));
	size_format(s->bytes_out, b, sizeof(b));
	printf("traffic     in %s in %" PRIu64 " writes, out %s in %" PRIu64 " reads\n", a, s->writes,
	       b, s->reads);
	size_format(s->dropped_bytes, a, sizeof(a));
	size_format(s->flushed_bytes, b, sizeof(b));
	printf("dropped     %s (%" PRIu64 " messages), flushed %s\n", a, s->dropped_messages, b);
	printf("interrupts  %" PRIu64 "\n", s->interrupts);
	printf("broker      %s; relayed %" PRIu64 ", rejected %" PRIu64 ", failed %" PRIu64
	       ", timeouts %" PRIu64 ", cancels %" PRIu64 ", ended by broker exit %" PRIu64 "\n",
	       s->broker_connected ? "connected" : "not connected", s->relayed, s->relay_rejected,
	       s->relay_failed, s->relay_timeouts, s->relay_cancels, s->relay_broker_gone);
	printf("            cancels unanswered within --cancel-timeout %" PRIu64 "\n", x->relay_cancel_timeouts);
	if (x->restarts)
		printf("restarts    %" PRIu64 " in place, the last one's pause %" PRIu64 ".%03" PRIu64 " ms\n",
		       x->restarts, x->last_restart_pause_us / 1000, x->last_restart_pause_us % 1000);
	else
		printf("restarts    none in place\n");
	printf("limit hits  pipes %" PRIu64 ", memory %" PRIu64 ", pipes per uid %" PRIu64
	       ", opens per uid %" PRIu64 ", parked %" PRIu64 "\n",
	       s->limit_pipes_hits, s->limit_memory_hits, s->limit_uid_pipes_hits,
	       s->limit_uid_opens_hits, s->limit_parked_hits);
}

int command_stats(struct ctl *ctl)
{
	struct ringdev_stats s;
	struct ringdev_stats_ext x;
	if (ctl_stats(ctl, &s) < 0)
		return EXIT_FAILURE;
	ctl_stats_ext(ctl, &x);
	if (ctl->json)
		stats_json(ctl, &s, &x);
	else
		stats_print(ctl, &s, &x);
	return EXIT_SUCCESS;
}
