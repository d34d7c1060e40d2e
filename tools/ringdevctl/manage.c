/* SPDX-License-Identifier: MIT */
/*
 * manage.c - the commands that change pipes: create, rm, resize, chmod,
 * chown, flush. Each is one ioctl by name; the daemon checks the caller's
 * credentials, so the tool never guesses what is allowed and reports the
 * daemon's errno with a hint.
 *
 * On success the human form is silent (like rm(1), chmod(1)), except flush,
 * which says what it discarded. With --json, the commands that leave a pipe
 * behind print it as `info` does, so a script sees the result of its change.
 */
#include <errno.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "parse.h"
#include "ringdevctl.h"

/* A user or group: a name first (as chown(1) does), else a number. */
static int id_parse(const char *s, bool group, uint32_t *out)
{
	uint64_t v;
	if (group) {
		struct group *gr = getgrnam(s);
		if (gr) {
			*out = (uint32_t)gr->gr_gid;
			return 0;
		}
	} else {
		struct passwd *pw = getpwnam(s);
		if (pw) {
			*out = (uint32_t)pw->pw_uid;
			return 0;
		}
	}
	/* (uint32_t)-1 means "no change" to chown(2): not an id. */
	int r = parse_u64(s, 0, UINT32_MAX - 1, &v);
	if (r == -EINVAL)
		return -ENOENT;
	if (r < 0)
		return r;
	*out = (uint32_t)v;
	return 0;
}

int owner_parse(const char *s, bool group_only_ok, struct owner *out, const char **what)
{
	static char user[256];
	const char *colon = strchr(s, ':');
	size_t user_len = colon ? (size_t)(colon - s) : strlen(s);

	*out = (struct owner){ 0 };
	*what = s;
	if (user_len >= sizeof(user) || (colon && !colon[1]) || (!user_len && !colon))
		return -EINVAL;
	if (!user_len && !group_only_ok)
		return -EINVAL;
	if (user_len) {
		memcpy(user, s, user_len);
		user[user_len] = '\0';
		*what = user;
		int r = id_parse(user, false, &out->uid);
		if (r < 0)
			return r;
		out->has_uid = true;
	}
	if (colon) {
		*what = colon + 1;
		int r = id_parse(colon + 1, true, &out->gid);
		if (r < 0)
			return r;
		out->has_gid = true;
	}
	return 0;
}

bool owner_primary_group(uint32_t uid, uint32_t *gid)
{
	struct passwd *pw = getpwuid((uid_t)uid);
	if (!pw)
		return false;
	*gid = (uint32_t)pw->pw_gid;
	return true;
}

/* --json after a change: the pipe as it is now. */
static int pipe_show_after(struct ctl *ctl, const char *name)
{
	struct ringdev_pipe_info info;
	if (!ctl->json)
		return EXIT_SUCCESS;
	int r = ctl_pipe_by_name(ctl, name, &info);
	if (r < 0) {
		client_error(name, "info after the change", -r, CLIENT_CONTEXT_LOOKUP);
		return EXIT_FAILURE;
	}
	pipe_json_document(&info);
	return EXIT_SUCCESS;
}

/* Copies a checked name (at most RINGDEV_NAME_MAX bytes) into a struct. */
static void name_copy(char dest[RINGDEV_NAME_SIZE], const char *name)
{
	size_t len = strnlen(name, RINGDEV_NAME_MAX);
	memset(dest, 0, RINGDEV_NAME_SIZE);
	memcpy(dest, name, len);
}

/* Every change is one ioctl on a pipe named in its argument: `name_field`
 * is that argument's name array, filled in here. 0, or -1 after
 * reporting in `context`. */
static int name_ioctl(struct ctl *ctl, unsigned long request, void *arg,
		      char name_field[RINGDEV_NAME_SIZE], const char *name,
		      enum client_context context)
{
	name_copy(name_field, name);
	if (ioctl(ctl->device.fd, request, arg) < 0) {
		client_error(name, NULL, errno, context);
		return -1;
	}
	return 0;
}

static int configure(struct ctl *ctl, struct ringdev_configure *c, const char *name,
		     enum client_context context)
{
	return name_ioctl(ctl, RINGDEV_IOC_CONFIGURE, c, c->name, name, context);
}

/* resize, chmod, chown: one CONFIGURE, then the pipe with --json. The
 * exit code. */
static int configure_command(struct ctl *ctl, struct ringdev_configure *c, const char *name,
			     enum client_context context)
{
	if (configure(ctl, c, name, context) < 0)
		return EXIT_FAILURE;
	return pipe_show_after(ctl, name);
}

int command_create(struct ctl *ctl, const char *name, const struct create_options *o)
{
	struct ringdev_create c = {
		.kind = o->kind,
		.policy = o->policy,
		.mode = o->has_mode ? o->mode : 0,
		.capacity = o->capacity,
	};
	if (o->owner.has_uid) {
		c.flags |= RINGDEV_CREATE_OWNER;
		c.uid = o->owner.uid;
		c.gid = o->owner.gid;
	}
	if (name_ioctl(ctl, RINGDEV_IOC_CREATE, &c, c.name, name, CLIENT_CONTEXT_CREATE) < 0)
		return EXIT_FAILURE;
	/* Mode 0 in the request means "the default, 0600"; an explicit
	 * --mode 0 is set afterwards. */
	if (o->has_mode && o->mode == 0) {
		struct ringdev_configure cfg = { .set = RINGDEV_SET_MODE, .mode = 0 };
		if (configure(ctl, &cfg, name, CLIENT_CONTEXT_MANAGE) < 0)
			return EXIT_FAILURE;
	}
	return pipe_show_after(ctl, name);
}

int command_rm(struct ctl *ctl, const char *name)
{
	struct ringdev_name n = { 0 };
	if (name_ioctl(ctl, RINGDEV_IOC_REMOVE, &n, n.name, name, CLIENT_CONTEXT_MANAGE) < 0)
		return EXIT_FAILURE;
	if (ctl->json) {
		struct json j;
		json_document_begin(&j, stdout, true);
		json_member_string(&j, "name", name);
		json_member_bool(&j, "removed", true);
		json_document_end(&j);
	}
	return EXIT_SUCCESS;
}

int command_resize(struct ctl *ctl, const char *name, uint64_t capacity)
{
	struct ringdev_configure c = { .set = RINGDEV_SET_CAPACITY, .capacity = capacity };
	return configure_command(ctl, &c, name, CLIENT_CONTEXT_RESIZE);
}

int command_chmod(struct ctl *ctl, const char *name, uint32_t mode)
{
	struct ringdev_configure c = { .set = RINGDEV_SET_MODE, .mode = mode };
	return configure_command(ctl, &c, name, CLIENT_CONTEXT_MANAGE);
}

int command_chown(struct ctl *ctl, const char *name, const struct owner *owner)
{
	struct ringdev_configure c = { .set = RINGDEV_SET_OWNER, .uid = owner->uid, .gid = owner->gid };

	/* SET_OWNER sets both ids: the one not given stays as it is, as with
	 * chown(1). */
	if (!owner->has_uid || !owner->has_gid) {
		struct ringdev_pipe_info info;
		int r = ctl_pipe_by_name(ctl, name, &info);
		if (r < 0) {
			client_error(name, NULL, -r, CLIENT_CONTEXT_LOOKUP);
			return EXIT_FAILURE;
		}
		if (!owner->has_uid)
			c.uid = info.uid;
		if (!owner->has_gid)
			c.gid = info.gid;
	}
	return configure_command(ctl, &c, name, CLIENT_CONTEXT_OWNER);
}

int command_flush(struct ctl *ctl, const char *name)
{
	struct ringdev_flush f = { 0 };
	if (name_ioctl(ctl, RINGDEV_IOC_FLUSH, &f, f.name, name, CLIENT_CONTEXT_MANAGE) < 0)
		return EXIT_FAILURE;
	if (ctl->json) {
		struct json j;
		json_document_begin(&j, stdout, true);
		json_member_string(&j, "name", name);
		json_member_u64(&j, "flushed_bytes", f.bytes);
		json_member_u64(&j, "flushed_messages", f.messages);
		json_document_end(&j);
	} else {
		char size[16];
		size_format(f.bytes, size, sizeof(size));
		printf("%s: flushed %s (%" PRIu64 " bytes, %" PRIu64 " messages)\n", name, size, f.bytes,
		       f.messages);
	}
	return EXIT_SUCCESS;
}
