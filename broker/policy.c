/* SPDX-License-Identifier: MIT */
/*
 * policy.c - see policy.h. A line is cut at '#', split into words, and the
 * first word picks the directive; every other word is an argument or a
 * key=value option from the directive's own list. The first error ends the
 * parse with "FILE:LINE: reason": one line a user can act on, and a file is
 * either wholly valid or not used at all.
 *
 * network= URLs are checked here with np_url_parse (netpipe.c), so a
 * `--check` or a reload refuses a bad URL without connecting anywhere; a
 * broker built without hiredis refuses the key itself.
 */
#include "config.h"

#include "policy.h"

#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <grp.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "name.h"
#include "parse.h"
#if HAVE_REDIS
#include "netpipe.h"
#endif

#define POLICY_FILE_MAX (1u << 20)
#define POLICY_LINE_MAX 4096
#define POLICY_WORDS_MAX 16

/* ---- errno names ---- */

static const struct {
	const char *name;
	int value;
} errno_names[] = {
	{ "EPERM", EPERM },         { "ENOENT", ENOENT },       { "EIO", EIO },
	{ "ENXIO", ENXIO },         { "EAGAIN", EAGAIN },       { "ENOMEM", ENOMEM },
	{ "EACCES", EACCES },       { "EBUSY", EBUSY },         { "EEXIST", EEXIST },
	{ "ENODEV", ENODEV },       { "EINVAL", EINVAL },       { "ENFILE", ENFILE },
	{ "EMFILE", EMFILE },       { "ENOTTY", ENOTTY },       { "ENOSPC", ENOSPC },
	{ "EROFS", EROFS },         { "ENAMETOOLONG", ENAMETOOLONG }, { "ENOSYS", ENOSYS },
	{ "EOPNOTSUPP", EOPNOTSUPP }, { "ECONNREFUSED", ECONNREFUSED }, { "ETIMEDOUT", ETIMEDOUT },
	{ "EDQUOT", EDQUOT },       { "ECANCELED", ECANCELED }, { "EKEYREJECTED", EKEYREJECTED },
	{ "ESHUTDOWN", ESHUTDOWN }, { "ENOTCONN", ENOTCONN },   { "EHOSTUNREACH", EHOSTUNREACH },
};

const char *policy_errno_name(int err)
{
	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (errno_names[i].value == err)
			return errno_names[i].name;
	return NULL;
}

/* A name from the table or a number an application can be given: 1 to
 * RDB_ERRNO_MAX. A larger one would be refused by the kernel when the daemon
 * passes it on, so it is refused here, where it enters. -EINVAL for neither
 * a name nor a number, -ERANGE for a number out of range. */
static int errno_parse(const char *s, int *out)
{
	uint64_t v;

	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++) {
		if (strcmp(errno_names[i].name, s) == 0) {
			*out = errno_names[i].value;
			return 0;
		}
	}
	int r = parse_u64(s, 1, RDB_ERRNO_MAX, &v);
	if (r < 0)
		return r;
	*out = (int)v;
	return 0;
}

/* ---- the parser ---- */

struct parser {
	const char *filename;
	unsigned line;
	char *error;
	size_t error_size;
	struct policy *policy;
};

__attribute__((format(printf, 2, 3)))
static int parse_fail(struct parser *p, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(p->error, p->error_size, "%s:%u: ", p->filename, p->line);

	if (n >= 0 && (size_t)n < p->error_size) {
		va_start(ap, fmt);
		vsnprintf(p->error + n, p->error_size - (size_t)n, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

enum option_key {
	KEY_UID,
	KEY_GID,
	KEY_USER,
	KEY_GROUP,
	KEY_ERRNO,
	KEY_KIND,
	KEY_CAPACITY,
	KEY_POLICY,
	KEY_MODE,
	KEY_OWNER,
	KEY_BROKERED,
	KEY_GRANT,
	KEY_NETWORK,
	KEY_COUNT,
};

static const char *const key_names[KEY_COUNT] = {
	"uid", "gid", "user", "group", "errno", "kind", "capacity", "policy", "mode", "owner", "brokered", "grant",
	"network",
};

#define KEYS_MATCH ((1u << KEY_UID) | (1u << KEY_GID) | (1u << KEY_USER) | (1u << KEY_GROUP))
#define KEYS_PIPE ((1u << KEY_KIND) | (1u << KEY_CAPACITY) | (1u << KEY_POLICY) | (1u << KEY_MODE) | \
		   (1u << KEY_OWNER) | (1u << KEY_BROKERED) | (1u << KEY_NETWORK))
/* The options that are a bare word, with no value. */
#define KEYS_BARE ((1u << KEY_BROKERED) | (1u << KEY_GRANT))

/* One key=value word (or a bare word: "brokered", "grant"). */
struct option {
	enum option_key key;
	const char *value;
};

/* An option key's name (key_names), "?" for none. */
static const char *key_name(enum option_key k)
{
	return (unsigned)k < KEY_COUNT ? key_names[k] : "?";
}

/* Split `word` into an option allowed by `allowed` (a KEY_ bit mask); a
 * key already in `seen` is an error. */
static int option_split(struct parser *p, const char *directive, char *word, unsigned allowed,
			unsigned *seen, struct option *out)
{
	char *eq = strchr(word, '=');
	const char *value = "";

	*out = (struct option){ .key = KEY_COUNT, .value = "" }; /* nothing yet: every failure leaves this */
	if (eq) {
		*eq = '\0';
		value = eq + 1;
	}
	for (unsigned k = 0; k < KEY_COUNT; k++) {
		if (strcmp(word, key_names[k]) != 0)
			continue;
		if (!(allowed & (1u << k)))
			return parse_fail(p, "'%s' is not an option of '%s'", word, directive);
		if (*seen & (1u << k))
			return parse_fail(p, "'%s' given twice", word);
		if ((KEYS_BARE & (1u << k)) && eq)
			return parse_fail(p, "'%s' takes no value", word);
		if (!(KEYS_BARE & (1u << k)) && (!eq || !*value))
			return parse_fail(p, "'%s' needs a value (%s=...)", word, word);
		*seen |= 1u << k;
		out->key = (enum option_key)k;
		out->value = value;
		return 0;
	}
	if (!eq)
		return parse_fail(p, "unexpected word '%s'", word);
	return parse_fail(p, "unknown option '%s'", word);
}

static int ids_add(struct parser *p, struct policy_ids *ids, uint32_t first, uint32_t last)
{
	if (ids->n >= POLICY_ID_RANGES)
		return parse_fail(p, "more than %d ids or ranges", POLICY_ID_RANGES);
	ids->range[ids->n].first = first;
	ids->range[ids->n].last = last;
	ids->n++;
	return 0;
}

/* "N", "N-M", comma-separated. */
static int ids_parse(struct parser *p, const char *key, const char *value, struct policy_ids *ids)
{
	char buf[POLICY_LINE_MAX];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", value);
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		uint64_t first, last;
		char *dash = strchr(item, '-');
		if (dash)
			*dash = '\0';
		if (parse_u64(item, 0, UINT32_MAX - 1, &first) < 0 ||
		    parse_u64(dash ? dash + 1 : item, 0, UINT32_MAX - 1, &last) < 0)
			return parse_fail(p, "%s: '%s' is not a number or a range N-M", key, value);
		if (last < first)
			return parse_fail(p, "%s: range %llu-%llu is empty", key, (unsigned long long)first,
					  (unsigned long long)last);
		int r = ids_add(p, ids, (uint32_t)first, (uint32_t)last);
		if (r < 0)
			return r;
	}
	if (ids->n == 0)
		return parse_fail(p, "%s: no ids given", key);
	return 0;
}

/* user=NAME[,NAME] or group=NAME[,NAME]. Parsing runs on one thread at a
 * time (start-up, then the signal thread), so getpwnam/getgrnam are fine. */
static int names_parse(struct parser *p, enum option_key key, const char *value, struct policy_ids *ids)
{
	char buf[POLICY_LINE_MAX];
	char *save = NULL;

	snprintf(buf, sizeof(buf), "%s", value);
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		uint32_t id;
		if (key == KEY_USER) {
			struct passwd *pw = getpwnam(item);
			if (!pw)
				return parse_fail(p, "user: unknown user '%s'", item);
			id = pw->pw_uid;
		} else {
			struct group *gr = getgrnam(item);
			if (!gr)
				return parse_fail(p, "group: unknown group '%s'", item);
			id = gr->gr_gid;
		}
		int r = ids_add(p, ids, id, id);
		if (r < 0)
			return r;
	}
	if (ids->n == 0)
		return parse_fail(p, "%s: no names given", key_names[key]);
	return 0;
}

/* What may stand next to a %u or %g in a pattern: a character that ends the
 * number for sure. A digit would merge with it (user.1%u for uid 0 is
 * uid 10's user.%u), a glob would stretch it (user.%u* for uid 1 matches
 * user.10), so only letters, . - _ and the pattern's ends are taken. */
static bool var_neighbour_ok(char c)
{
	return c == '\0' || c == '.' || c == '-' || c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* The end of the fnmatch(3) bracket expression opened at `s` ('['), or
 * NULL when nothing closes it (then the '[' is an ordinary character). */
static const char *bracket_end(const char *s)
{
	const char *e = s + 1;

	if (*e == '!' || *e == '^')
		e++;
	if (*e == ']')
		e++; /* a ']' first in the set is one of its characters */
	e = strchr(e, ']');
	return e;
}

/* The %u and %g of a pattern. There is no escape for a literal '%': no
 * pipe name has one, so it could never match. */
static int pattern_vars_check(struct parser *p, const char *word)
{
	for (const char *s = word; *s; s++) {
		if (*s == '[') {
			const char *e = bracket_end(s);
			if (e && memchr(s, '%', (size_t)(e - s)))
				return parse_fail(p, "pattern '%s': %%u and %%g cannot stand inside [...]", word);
			if (e)
				s = e;
			continue;
		}
		if (*s != '%')
			continue;
		if (s[1] != 'u' && s[1] != 'g') {
			if (!s[1])
				return parse_fail(p, "pattern '%s': a '%%' at the end (only %%u and %%g; no pipe name "
						  "has a '%%')", word);
			return parse_fail(p, "pattern '%s': '%%%c' is not %%u or %%g (no pipe name has a '%%')", word,
					  s[1]);
		}
		if (!var_neighbour_ok(s == word ? '\0' : s[-1]) || !var_neighbour_ok(s[2]))
			return parse_fail(p, "pattern '%s': next to '%%%c' only a letter, '.', '-', '_' or the "
					  "pattern's end may stand, else it matches other ids too", word, s[1]);
		s++;
	}
	return 0;
}

/* Patterns name pipes: name characters, the glob characters * ? [ ] ! ^,
 * and %u and %g for the caller's uid and gid. The word "" stands for the
 * empty name (an open of the CUSE node). */
static int pattern_parse(struct parser *p, const char *word, char *out)
{
	if (strcmp(word, "\"\"") == 0) {
		out[0] = '\0';
		return 0;
	}
	if (strlen(word) >= POLICY_PATTERN_SIZE)
		return parse_fail(p, "pattern longer than %d bytes", POLICY_PATTERN_SIZE - 1);
	if (word[strspn(word, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-*?[]!^%")])
		return parse_fail(p, "pattern '%s' has a character no pipe name has", word);
	int r = pattern_vars_check(p, word);
	if (r < 0)
		return r;
	memcpy(out, word, strlen(word) + 1);
	return 0;
}

static int ops_parse(struct parser *p, const char *word, unsigned *ops)
{
	char buf[POLICY_LINE_MAX];
	char *save = NULL;

	*ops = 0;
	snprintf(buf, sizeof(buf), "%s", word);
	for (char *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
		if (strcmp(item, "open") == 0)
			*ops |= POLICY_OP_OPEN;
		else if (strcmp(item, "attach") == 0)
			*ops |= POLICY_OP_ATTACH;
		else if (strcmp(item, "all") == 0)
			*ops |= POLICY_OP_OPEN | POLICY_OP_ATTACH;
		else
			return parse_fail(p, "unknown operation '%s' (open, attach or all)", item);
	}
	if (!*ops)
		return parse_fail(p, "no operation given (open, attach or all)");
	return 0;
}

static int match_option(struct parser *p, const struct option *o, struct policy_rule *rule)
{
	switch (o->key) {
	case KEY_UID:
		return ids_parse(p, "uid", o->value, &rule->uids);
	case KEY_GID:
		return ids_parse(p, "gid", o->value, &rule->gids);
	case KEY_USER:
		return names_parse(p, KEY_USER, o->value, &rule->uids);
	case KEY_GROUP:
		return names_parse(p, KEY_GROUP, o->value, &rule->gids);
	case KEY_ERRNO: {
		int r = errno_parse(o->value, &rule->err);
		if (r == -ERANGE)
			return parse_fail(p, "errno: '%s' is out of range: an application can only be given 1 to %d",
					  o->value, RDB_ERRNO_MAX);
		if (r < 0)
			return parse_fail(p, "errno: '%s' is not an errno name (EACCES, EPERM, ...) "
					  "or a number from 1 to %d", o->value, RDB_ERRNO_MAX);
		return 0;
	}
	default:
		return parse_fail(p, "'%s' is not an option here", key_name(o->key));
	}
}

static int rules_push(struct parser *p, const struct policy_rule *rule)
{
	struct policy *pol = p->policy;
	struct policy_rule *rules = realloc(pol->rules, (pol->nrules + 1) * sizeof(*rules));

	if (!rules)
		return parse_fail(p, "out of memory");
	pol->rules = rules;
	pol->rules[pol->nrules++] = *rule;
	return 0;
}

/* The template must expand to a valid name for any uid and gid. */
static int template_check(struct parser *p, const char *word)
{
	const struct policy_query sample = { .name = "name", .uid = UINT32_MAX - 1, .gid = UINT32_MAX - 1 };
	char out[RINGDEV_NAME_SIZE];

	for (const char *s = word; *s; s++) {
		if (*s == '%' && (s[1] == 'u' || s[1] == 'g' || s[1] == 'n')) {
			s++;
			continue;
		}
		if (*s == '%')
			return parse_fail(p, "map: '%%%c' in '%s' is not %%u, %%g or %%n", s[1] ? s[1] : ' ', word);
	}
	int r = policy_expand(word, &sample, out, sizeof(out));
	if (r == -ENAMETOOLONG)
		return parse_fail(p, "map: '%s' can expand to more than %d bytes", word, RINGDEV_NAME_MAX);
	if (r < 0)
		return parse_fail(p, "map: '%s' does not expand to a valid pipe name", word);
	return 0;
}

/* allow OPS PATTERN [match...] [grant] / deny OPS PATTERN [match...] [errno=E] /
 * map PATTERN TEMPLATE [match...] [grant] / builtin OPS PATTERN [match...] */
static int access_parse(struct parser *p, enum policy_action action, char **words, unsigned n)
{
	struct policy_rule rule = { .line = p->line, .action = action, .err = EACCES };
	const char *directive = words[0];
	unsigned allowed = KEYS_MATCH | (action == POLICY_DENY ? 1u << KEY_ERRNO : 0) |
			   (action == POLICY_ALLOW || action == POLICY_MAP ? 1u << KEY_GRANT : 0);
	unsigned seen = 0, first_option;
	int r;

	if (action == POLICY_MAP) {
		if (n < 3)
			return parse_fail(p, "map needs a PATTERN and a TEMPLATE");
		rule.ops = POLICY_OP_OPEN;
		r = pattern_parse(p, words[1], rule.pattern);
		if (r == 0)
			r = template_check(p, words[2]);
		if (r < 0)
			return r;
		memcpy(rule.target, words[2], strlen(words[2]) + 1);
	} else {
		if (n < 3)
			return parse_fail(p, "%s needs OPERATIONS and a PATTERN", directive);
		r = ops_parse(p, words[1], &rule.ops);
		if (r == 0)
			r = pattern_parse(p, words[2], rule.pattern);
		if (r < 0)
			return r;
	}
	first_option = 3;
	for (unsigned i = first_option; i < n; i++) {
		struct option o;
		r = option_split(p, directive, words[i], allowed, &seen, &o);
		if (r < 0)
			return r;
		if (o.key == KEY_GRANT)
			rule.grant = true;
		else if ((r = match_option(p, &o, &rule)) < 0)
			return r;
	}
	return rules_push(p, &rule);
}

/* One of owner=USER[:GROUP]: a name or a number. */
static int owner_id(const char *s, bool user, uint32_t *id, uint32_t *primary_gid)
{
	uint64_t v;

	if (parse_u64(s, 0, UINT32_MAX - 1, &v) == 0) {
		*id = (uint32_t)v;
		return 1; /* numeric: no primary group known */
	}
	if (user) {
		struct passwd *pw = getpwnam(s);
		if (!pw)
			return -ENOENT;
		*id = pw->pw_uid;
		*primary_gid = pw->pw_gid;
		return 0;
	}
	struct group *gr = getgrnam(s);
	if (!gr)
		return -ENOENT;
	*id = gr->gr_gid;
	return 0;
}

static int owner_parse(struct parser *p, const char *value, struct policy_pipe *pipe)
{
	char buf[POLICY_LINE_MAX];
	uint32_t primary_gid = 0;

	if (strcmp(value, "caller") == 0)
		return 0;
	snprintf(buf, sizeof(buf), "%s", value);
	char *colon = strchr(buf, ':');
	if (colon)
		*colon = '\0';
	int r = owner_id(buf, true, &pipe->uid, &primary_gid);
	if (r < 0)
		return parse_fail(p, "owner: unknown user '%s'", buf);
	if (!colon && r == 1)
		return parse_fail(p, "owner: a numeric user needs a group (owner=%s:GROUP)", buf);
	pipe->gid = primary_gid;
	if (colon && owner_id(colon + 1, false, &pipe->gid, &primary_gid) < 0)
		return parse_fail(p, "owner: unknown group '%s'", colon + 1);
	pipe->owner_given = true;
	return 0;
}

/* network=redis://HOST:PORT[/DB]: checked, never connected to. */
static int network_parse(struct parser *p, const char *value, struct policy_pipe *pipe)
{
#if HAVE_REDIS
	struct np_url url;
	char reason[NP_ERROR_SIZE];

	if (strlen(value) >= sizeof(pipe->network))
		return parse_fail(p, "network: the URL is longer than %zu bytes", sizeof(pipe->network) - 1);
	if (np_url_parse(value, &url, reason, sizeof(reason)) < 0)
		return parse_fail(p, "network: %s", reason);
	snprintf(pipe->network, sizeof(pipe->network), "%s", value);
	pipe->brokered = true; /* the broker is the other end: Redis */
	return 0;
#else
	(void)value;
	(void)pipe;
	return parse_fail(p, "network: ringdev-broker was built without Redis support (hiredis)");
#endif
}

static int pipe_option(struct parser *p, const struct option *o, struct policy_pipe *pipe)
{
	switch (o->key) {
	case KEY_KIND:
		if (parse_kind(o->value, &pipe->kind) < 0)
			return parse_fail(p, "kind: '%s' is not stream or message", o->value);
		break;
	case KEY_POLICY:
		if (parse_full_policy(o->value, &pipe->policy) < 0)
			return parse_fail(p, "policy: '%s' is not block, overwrite or fail", o->value);
		break;
	case KEY_CAPACITY:
		if (parse_size(o->value, RINGDEV_CAPACITY_MIN, RINGDEV_CAPACITY_MAX, &pipe->capacity) < 0)
			return parse_fail(p, "capacity: '%s' is not a size from %u to 1G", o->value,
					  RINGDEV_CAPACITY_MIN);
		break;
	case KEY_MODE:
		if (parse_mode(o->value, &pipe->mode) < 0 || pipe->mode > 0777 || pipe->mode == 0)
			return parse_fail(p, "mode: '%s' is not octal permission bits from 1 to 0777", o->value);
		pipe->mode_given = true;
		break;
	case KEY_OWNER: {
		int r = owner_parse(p, o->value, pipe);
		if (r < 0)
			return r;
		break;
	}
	case KEY_BROKERED:
		pipe->brokered = true;
		return 0;
	case KEY_NETWORK:
		return network_parse(p, o->value, pipe);
	default:
		return parse_fail(p, "'%s' is not an option here", key_name(o->key));
	}
	pipe->has_settings = true;
	return 0;
}

/* pipe PATTERN [kind=K] [capacity=B] [policy=P] [mode=M] [owner=O] [brokered]
 *      [network=URL] */
static int pipe_parse(struct parser *p, char **words, unsigned n)
{
	struct policy_pipe pipe = { .line = p->line };
	struct policy *pol = p->policy;
	unsigned seen = 0;

	if (n < 2)
		return parse_fail(p, "pipe needs a PATTERN");
	int r = pattern_parse(p, words[1], pipe.pattern);
	for (unsigned i = 2; r == 0 && i < n; i++) {
		struct option o;
		r = option_split(p, "pipe", words[i], KEYS_PIPE, &seen, &o);
		if (r == 0)
			r = pipe_option(p, &o, &pipe);
	}
	if (r < 0)
		return r;
	if (!seen)
		return parse_fail(p, "pipe line sets nothing (kind, capacity, policy, mode, owner, brokered, network)");
	/* A message is one stream entry; a byte stream across hosts needs its
	 * own rules for partial reads, which this version does not have. */
	if (pipe.network[0] && pipe.kind != RINGDEV_KIND_MESSAGE)
		return parse_fail(p, "network: a network pipe must be kind=message (%s)",
				  pipe.kind ? "kind=stream is not supported across hosts yet" : "kind not given");
	struct policy_pipe *pipes = realloc(pol->pipes, (pol->npipes + 1) * sizeof(*pipes));
	if (!pipes)
		return parse_fail(p, "out of memory");
	pol->pipes = pipes;
	pol->pipes[pol->npipes++] = pipe;
	return 0;
}

/* default allow | default deny [errno=E] | default builtin */
static int default_parse(struct parser *p, char **words, unsigned n)
{
	struct policy *pol = p->policy;
	struct policy_rule scratch = { .err = EACCES };
	unsigned seen = 0;

	if (pol->default_line)
		return parse_fail(p, "default given twice (first on line %u)", pol->default_line);
	if (n < 2 || (strcmp(words[1], "allow") != 0 && strcmp(words[1], "deny") != 0 &&
		      strcmp(words[1], "builtin") != 0))
		return parse_fail(p, "default needs allow, deny or builtin");
	bool allow = strcmp(words[1], "allow") == 0;
	bool builtin = strcmp(words[1], "builtin") == 0;
	bool deny = !allow && !builtin;
	char directive[32];
	snprintf(directive, sizeof(directive), "default %s", words[1]);
	for (unsigned i = 2; i < n; i++) {
		struct option o;
		int r = option_split(p, directive, words[i], deny ? 1u << KEY_ERRNO : 0, &seen, &o);
		if (r == 0)
			r = match_option(p, &o, &scratch);
		if (r < 0)
			return r;
	}
	pol->default_allow = allow;
	pol->default_builtin = builtin;
	pol->default_err = scratch.err;
	pol->default_line = p->line;
	return 0;
}

/* Split at blanks; '#' starts a comment. Returns the word count or -EINVAL. */
static int words_split(struct parser *p, char *line, char **words)
{
	char *hash = strchr(line, '#');
	char *save = NULL;
	unsigned n = 0;

	if (hash)
		*hash = '\0';
	for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
		if (n == POLICY_WORDS_MAX)
			return parse_fail(p, "more than %d words on one line", POLICY_WORDS_MAX);
		words[n++] = w;
	}
	return (int)n;
}

static int line_parse(struct parser *p, char *line)
{
	char *words[POLICY_WORDS_MAX];
	int n = words_split(p, line, words);

	if (n <= 0)
		return n;
	if (strcmp(words[0], "allow") == 0)
		return access_parse(p, POLICY_ALLOW, words, (unsigned)n);
	if (strcmp(words[0], "deny") == 0)
		return access_parse(p, POLICY_DENY, words, (unsigned)n);
	if (strcmp(words[0], "map") == 0)
		return access_parse(p, POLICY_MAP, words, (unsigned)n);
	if (strcmp(words[0], "builtin") == 0)
		return access_parse(p, POLICY_BUILTIN, words, (unsigned)n);
	if (strcmp(words[0], "pipe") == 0)
		return pipe_parse(p, words, (unsigned)n);
	if (strcmp(words[0], "default") == 0)
		return default_parse(p, words, (unsigned)n);
	if (strcmp(words[0], "case-sensitive") == 0) {
		if (n > 1)
			return parse_fail(p, "case-sensitive takes no arguments");
		p->policy->case_sensitive = true;
		return 0;
	}
	return parse_fail(p, "unknown directive '%s' (allow, deny, map, builtin, pipe, default, case-sensitive)",
			  words[0]);
}

int policy_parse(const char *text, size_t len, const char *filename, struct policy **out,
		 char *error, size_t error_size)
{
	struct parser p = { .filename = filename, .error = error, .error_size = error_size };
	char line[POLICY_LINE_MAX + 1];
	int r = 0;

	if (error_size)
		error[0] = '\0';
	p.policy = calloc(1, sizeof(*p.policy));
	if (!p.policy)
		return -ENOMEM;
	p.policy->default_err = EACCES;
	for (size_t start = 0; start < len && r == 0;) {
		const char *nl = memchr(text + start, '\n', len - start);
		size_t end = nl ? (size_t)(nl - text) : len;
		p.line++;
		if (memchr(text + start, '\0', end - start))
			r = parse_fail(&p, "NUL byte in the line");
		else if (end - start > POLICY_LINE_MAX)
			r = parse_fail(&p, "line longer than %d bytes", POLICY_LINE_MAX);
		else {
			memcpy(line, text + start, end - start);
			line[end - start] = '\0';
			r = line_parse(&p, line);
		}
		start = end + 1;
	}
	if (r < 0) {
		policy_free(p.policy);
		return r;
	}
	*out = p.policy;
	return 0;
}

/* The whole file, at most POLICY_FILE_MAX bytes, into a new buffer. */
static int file_read(const char *path, char **text, size_t *len)
{
	/* O_NONBLOCK: a FIFO (or a device) at the path must not block the
	 * open, or --check hangs and, on SIGHUP, so does the signal thread,
	 * and with it every later signal. What is not a regular file is
	 * refused before it is read; a regular file ignores O_NONBLOCK. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
	struct stat st;
	char *buf;
	size_t n = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
	}
	buf = malloc(POLICY_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	for (;;) {
		ssize_t got = read(fd, buf + n, POLICY_FILE_MAX + 1 - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0) {
			int err = got < 0 ? -errno : 0;
			close(fd);
			if (err == 0 && n > POLICY_FILE_MAX)
				err = -EFBIG;
			if (err < 0) {
				free(buf);
				return err;
			}
			*text = buf;
			*len = n;
			return 0;
		}
		n += (size_t)got;
		if (n > POLICY_FILE_MAX) {
			close(fd);
			free(buf);
			return -EFBIG;
		}
	}
}

int policy_load(const char *path, struct policy **out, char *error, size_t error_size)
{
	char *text = NULL;
	size_t len = 0;
	int r = file_read(path, &text, &len);

	if (r < 0) {
		snprintf(error, error_size, "%s: %s", path,
			 r == -EFBIG ? "larger than 1 MiB" : r == -EINVAL ? "not a regular file" : strerror(-r));
		return r;
	}
	r = policy_parse(text, len, path, out, error, error_size);
	free(text);
	return r;
}

struct policy *policy_builtin(void)
{
	/* What "default builtin" parses to, but from no line of any file. */
	struct policy *policy = calloc(1, sizeof(*policy));

	if (policy) {
		policy->default_builtin = true;
		policy->default_err = EACCES;
	}
	return policy;
}

struct policy *policy_free(struct policy *policy)
{
	if (!policy)
		return NULL;
	free(policy->rules);
	free(policy->pipes);
	free(policy);
	return NULL;
}

/* ---- deciding ---- */

static bool ids_match(const struct policy_ids *ids, uint32_t id)
{
	if (ids->n == 0)
		return true;
	for (unsigned i = 0; i < ids->n; i++)
		if (id >= ids->range[i].first && id <= ids->range[i].last)
			return true;
	return false;
}

/* The pattern with %u and %g replaced by the caller's ids. The parser let
 * no '%' through but these two, and none inside [...], so every '%' here
 * is one of them; `out` has POLICY_EXPANDED_SIZE bytes, enough for any
 * pattern the parser takes. */
static void pattern_expand(const char *pattern, const struct policy_query *q, char *out)
{
	size_t n = 0;

	for (const char *s = pattern; *s && n < POLICY_EXPANDED_SIZE - 11; s++) {
		if (*s == '%' && (s[1] == 'u' || s[1] == 'g')) {
			n += (size_t)snprintf(out + n, POLICY_EXPANDED_SIZE - n, "%u", s[1] == 'u' ? q->uid : q->gid);
			s++;
		} else {
			out[n++] = *s;
		}
	}
	out[n] = '\0';
}

bool policy_name_matches(const struct policy *policy, const char *pattern, const struct policy_query *query,
			 const char *name)
{
	char expanded[POLICY_EXPANDED_SIZE];

	if (!pattern[0])
		return !name[0]; /* the word "" */
	if (strchr(pattern, '%')) {
		if (!query)
			return false; /* "the caller's own" with no caller: nobody's */
		pattern_expand(pattern, query, expanded);
		pattern = expanded;
	}
	/* Case folding leaves the digits of %u and %g as they are, so it
	 * cannot make one uid's name another's. */
	return fnmatch(pattern, name, policy->case_sensitive ? 0 : FNM_CASEFOLD) == 0;
}

const struct policy_pipe *policy_pipe_find(const struct policy *policy, const struct policy_query *query,
					   const char *name)
{
	for (size_t i = 0; i < policy->npipes; i++)
		if (policy_name_matches(policy, policy->pipes[i].pattern, query, name))
			return &policy->pipes[i];
	return NULL;
}

static const struct policy_rule *rule_find(const struct policy *policy, const struct policy_query *q)
{
	for (size_t i = 0; i < policy->nrules; i++) {
		const struct policy_rule *rule = &policy->rules[i];
		if ((rule->ops & q->op) && ids_match(&rule->uids, q->uid) && ids_match(&rule->gids, q->gid) &&
		    policy_name_matches(policy, rule->pattern, q, q->name))
			return rule;
	}
	return NULL;
}

int policy_expand(const char *template, const struct policy_query *query, char *out, size_t size)
{
	size_t n = 0;

	for (const char *t = template; *t; t++) {
		char number[16];
		char single[2] = { *t, '\0' };
		const char *add = single;
		if (*t == '%') {
			t++;
			if (*t == 'u')
				snprintf(number, sizeof(number), "%u", query->uid);
			else if (*t == 'g')
				snprintf(number, sizeof(number), "%u", query->gid);
			else if (*t != 'n')
				return -EINVAL;
			add = *t == 'n' ? query->name : number;
		}
		size_t len = strlen(add);
		if (n + len >= size)
			return -ENAMETOOLONG;
		memcpy(out + n, add, len);
		n += len;
	}
	out[n] = '\0';
	return name_check_str(out);
}

/* What the pipe a decision leads to gets, from its `pipe` line. */
static void settings_decide(const struct policy *policy, const struct policy_query *q, struct policy_decision *d)
{
	const char *name = d->pipe[0] ? d->pipe : q->name;
	const struct policy_pipe *pipe = name[0] ? policy_pipe_find(policy, q, name) : NULL;

	if (!pipe)
		return;
	d->pipe_line = pipe->line;
	d->brokered = pipe->brokered;
	snprintf(d->network, sizeof(d->network), "%s", pipe->network);
	if (!pipe->has_settings)
		return;
	d->has_settings = true;
	d->settings.kind = pipe->kind ? pipe->kind : q->kind;
	d->settings.policy = pipe->policy ? pipe->policy : q->policy;
	d->settings.mode = pipe->mode_given ? pipe->mode : q->mode;
	d->settings.capacity = pipe->capacity ? pipe->capacity : q->capacity;
	d->settings.uid = pipe->owner_given ? pipe->uid : q->uid;
	d->settings.gid = pipe->owner_given ? pipe->gid : q->gid;
}

void policy_decide(const struct policy *policy, const struct policy_query *query,
		   struct policy_decision *decision)
{
	const struct policy_rule *rule = rule_find(policy, query);

	memset(decision, 0, sizeof(*decision));
	if (!rule) {
		decision->allow = policy->default_allow || policy->default_builtin;
		decision->builtin = policy->default_builtin;
		decision->err = decision->allow ? 0 : policy->default_err;
		decision->line = policy->default_line;
	} else {
		decision->line = rule->line;
		decision->allow = rule->action != POLICY_DENY;
		decision->builtin = rule->action == POLICY_BUILTIN;
		decision->err = rule->action == POLICY_DENY ? rule->err : 0;
		if (rule->action == POLICY_MAP) {
			int r = policy_expand(rule->target, query, decision->pipe, sizeof(decision->pipe));
			if (r < 0) {
				decision->allow = false;
				decision->err = -r;
				decision->pipe[0] = '\0';
			}
		}
		/* Only a rule that says so lets the request land in a pipe of
		 * another user's (RINGDEV_ANSWER_GRANT). */
		decision->grant = decision->allow && rule->grant;
	}
	/* A builtin answer carries nothing: the daemon creates as the app asked. */
	if (decision->allow && !decision->builtin)
		settings_decide(policy, query, decision);
}
