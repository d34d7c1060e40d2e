/* SPDX-License-Identifier: MIT */
/*
 * policy.h - ringdev-broker's policy file: parsed once into rules, then
 * asked for each OPEN and ATTACH. The format is in ringdev-broker(8).
 *
 * Design: the first matching access rule (allow, deny, map) decides, in file
 * order, as in a firewall; what a pipe gets when created and whether it is
 * brokered comes from the first matching `pipe` line for the pipe's final
 * name, kept apart so "who may" and "what it is" are written once each. A
 * parsed policy is immutable: a reload builds a new one and swaps it, so a
 * bad file never leaves a half-applied policy behind.
 *
 * A pattern may say "the caller's own" with %u and %g (the caller's uid and
 * gid), expanded per request before matching; the parser only takes them
 * where the number cannot run into a neighbouring digit or glob, so
 * `user.%u` can never match another uid's `user.N`.
 */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <ringdev/ringdev-broker.h>

enum policy_op {
	POLICY_OP_OPEN = 0x1,
	POLICY_OP_ATTACH = 0x2,
};

enum policy_action {
	POLICY_ALLOW,
	POLICY_DENY,
	POLICY_MAP,
	POLICY_BUILTIN,               /* ringdevd decides: owner and mode bits */
};

/* A set of ids as ranges; empty means any. */
#define POLICY_ID_RANGES 16
struct policy_ids {
	unsigned n;
	struct {
		uint32_t first;
		uint32_t last;
	} range[POLICY_ID_RANGES];
};

#define POLICY_PATTERN_SIZE 256
/* A pattern with its %u and %g expanded: each 2-byte %u becomes at most 10
 * digits. */
#define POLICY_EXPANDED_SIZE (POLICY_PATTERN_SIZE * 5)
/* A network= URL, redis://HOST:PORT[/DB], with its NUL. */
#define POLICY_NETWORK_SIZE 320

struct policy_rule {
	unsigned line;
	enum policy_action action;
	unsigned ops;                 /* POLICY_OP_* */
	char pattern[POLICY_PATTERN_SIZE]; /* fnmatch(3); "" only matches the empty name */
	bool grant;                   /* allow, map: the answer carries RINGDEV_ANSWER_GRANT */
	struct policy_ids uids;
	struct policy_ids gids;
	int err;                      /* deny: the errno */
	char target[POLICY_PATTERN_SIZE]; /* map: the template */
};

struct policy_pipe {
	unsigned line;
	char pattern[POLICY_PATTERN_SIZE];
	bool has_settings;            /* any of kind..owner given */
	uint32_t kind;                /* 0: not given */
	uint32_t policy;
	uint32_t mode;                /* only if mode_given */
	bool mode_given;
	uint64_t capacity;
	bool owner_given;             /* else the caller owns the pipe */
	uint32_t uid;
	uint32_t gid;
	bool brokered;
	/* network=: the pipe lives on this Redis (issue 21); "" for a local
	 * pipe. Implies brokered; only kind=message is taken (first version). */
	char network[POLICY_NETWORK_SIZE];
};

struct policy {
	struct policy_rule *rules;
	size_t nrules;
	struct policy_pipe *pipes;
	size_t npipes;
	bool default_allow;           /* no rule matched: allow or deny */
	bool default_builtin;         /* no rule matched: ringdevd decides */
	int default_err;
	unsigned default_line;        /* 0: not given in the file */
	bool case_sensitive;
};

/* What is asked. */
struct policy_query {
	enum policy_op op;
	const char *name;             /* the pipe asked for; "" for a CUSE open */
	uint32_t uid;
	uint32_t gid;
	/* ATTACH: what the app asked a new pipe to be (0: default) */
	uint32_t kind;
	uint32_t policy;
	uint32_t mode;
	uint64_t capacity;
};

/* The answer. */
struct policy_decision {
	bool allow;
	bool builtin;                 /* allow: ringdevd decides (nothing below applies) */
	int err;                      /* !allow: the errno */
	unsigned line;                /* the rule that decided; 0: the default */
	char pipe[RINGDEV_NAME_SIZE]; /* OPEN mapped here; "" = as asked */
	bool grant;                   /* allow: the pipe may belong to another user (the rule says grant) */
	unsigned pipe_line;           /* the `pipe` line that applied, or 0 */
	bool brokered;
	char network[POLICY_NETWORK_SIZE]; /* the pipe line's network=, or "" */
	bool has_settings;
	struct rdb_pipe_settings settings;
};

/* Parse `text` (len bytes). `filename` only names the file in errors.
 * 0 and *out, or -EINVAL with "FILE:LINE: reason" in `error`. */
int policy_parse(const char *text, size_t len, const char *filename, struct policy **out,
		 char *error, size_t error_size);

/* Read and parse a file: as policy_parse; -errno with "FILE: reason" when
 * it cannot be read. */
int policy_load(const char *path, struct policy **out, char *error, size_t error_size);

/* The policy of a broker with no policy file: "default builtin", every
 * open and attach decided by ringdevd as without a broker. NULL when out of
 * memory. */
struct policy *policy_builtin(void);

/* Accepts NULL; returns NULL. */
struct policy *policy_free(struct policy *policy);

/* Decide an OPEN or ATTACH. */
void policy_decide(const struct policy *policy, const struct policy_query *query,
		   struct policy_decision *decision);

/* Does `pattern` match `name` under the policy's case rule, its %u and %g
 * being the query's uid and gid? */
bool policy_name_matches(const struct policy *policy, const char *pattern, const struct policy_query *query,
			 const char *name);

/* The first `pipe` line for `name` asked by the query's caller, or NULL. */
const struct policy_pipe *policy_pipe_find(const struct policy *policy, const struct policy_query *query,
					   const char *name);

/* Expand a map template for the query: %u uid, %g gid, %n the name asked
 * (a '%' can never be part of a pipe name, so there is no escape for it).
 * 0, -ENAMETOOLONG, or -EINVAL (another %x, or the result is no valid pipe
 * name). */
int policy_expand(const char *template, const struct policy_query *query, char *out, size_t size);

/* "EACCES" for EACCES; a number in a static buffer for others. */
const char *policy_errno_name(int err);
