/* SPDX-License-Identifier: MIT */
/*
 * test_policy.c - ringdev-broker's policy files (broker/policy.c): valid
 * files parse (the shipped example included), every kind of error is
 * reported with its file and line, rules match by operation, name pattern,
 * uid and gid with the first match deciding, the map template expands, and
 * `pipe` lines give settings and the brokered flag. `builtin` rules and
 * `default builtin` (and policy_builtin(), a broker's policy with no file)
 * hand the request to ringdevd with nothing else attached. %u and %g in
 * patterns say "the caller's own" and can match no other caller's name;
 * `grant` alone lets an answer reach a pipe of another user's; the shipped
 * example keeps each user to their own pipes. A policy path that is no
 * regular file (a FIFO) is refused at once, never waited on. A `network=`
 * URL (issue 21) is checked without connecting, makes the pipe brokered,
 * requires kind=message, and errors name the file and line.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"

#include "policy.h"

#ifndef BROKER_EXAMPLE_POLICY
#error "meson passes the path of broker/examples/broker.policy"
#endif

static struct policy *parse_ok(const char *text)
{
	struct policy *p = NULL;
	char error[512];
	int r = policy_parse(text, strlen(text), "t.policy", &p, error, sizeof(error));

	cr_assert_eq(r, 0, "policy did not parse: %s", error);
	return p;
}

/* The text must fail with exactly this message. */
static void parse_fails(const char *text, const char *message)
{
	struct policy *p = NULL;
	char error[512];
	int r = policy_parse(text, strlen(text), "t.policy", &p, error, sizeof(error));

	cr_assert_eq(r, -EINVAL, "'%s' parsed", text);
	cr_assert_null(p);
	cr_assert_str_eq(error, message);
}

static struct policy_decision decide(const struct policy *p, enum policy_op op, const char *name, uint32_t uid,
				     uint32_t gid)
{
	struct policy_query q = { .op = op, .name = name, .uid = uid, .gid = gid };
	struct policy_decision d;

	policy_decide(p, &q, &d);
	return d;
}

Test(policy, the_shipped_example_parses)
{
	struct policy *p = NULL;
	char error[512];

	cr_assert_eq(policy_load(BROKER_EXAMPLE_POLICY, &p, error, sizeof(error)), 0, "%s", error);
	cr_assert_eq(p->nrules, 8);
	cr_assert_eq(p->npipes, 3);
	cr_assert_not(p->default_allow);
	policy_free(p);
}

Test(policy, empty_file_denies_everything_with_eacces)
{
	struct policy *p = parse_ok("# nothing\n\n   \t\n");
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "x", 1000, 1000);

	cr_assert_eq(p->nrules, 0);
	cr_assert_not(d.allow);
	cr_assert_eq(d.err, EACCES);
	cr_assert_eq(d.line, 0);
	policy_free(p);
}

Test(policy, all_directives_and_options)
{
	struct policy *p = parse_ok("allow open,attach a* uid=0,1000-1999 gid=0 # comment\n"
				    "deny all secret user=root group=root errno=EPERM\n"
				    "deny attach b?[xy] errno=13\n"
				    "map \"\" user.%u\n"
				    "map inbox in.%g.%n uid=5\n"
				    "pipe user.* kind=message capacity=1M policy=overwrite mode=0640 owner=root:root\n"
				    "pipe rv.* brokered\n"
				    "pipe x owner=caller brokered\n"
				    "default allow\n"
				    "case-sensitive\n");

	cr_assert_eq(p->nrules, 5);
	cr_assert_eq(p->npipes, 3);
	cr_assert_eq(p->rules[0].ops, POLICY_OP_OPEN | POLICY_OP_ATTACH);
	cr_assert_eq(p->rules[0].uids.n, 2);
	cr_assert_eq(p->rules[0].uids.range[1].first, 1000);
	cr_assert_eq(p->rules[0].uids.range[1].last, 1999);
	cr_assert_eq(p->rules[1].err, EPERM);
	cr_assert_eq(p->rules[1].line, 2);
	cr_assert_eq(p->rules[2].err, 13);
	cr_assert_str_eq(p->rules[3].pattern, "");
	cr_assert_eq(p->rules[3].ops, POLICY_OP_OPEN);
	cr_assert_eq(p->pipes[0].kind, RINGDEV_KIND_MESSAGE);
	cr_assert_eq(p->pipes[0].capacity, 1 << 20);
	cr_assert_eq(p->pipes[0].policy, RINGDEV_POLICY_OVERWRITE);
	cr_assert_eq(p->pipes[0].mode, 0640);
	cr_assert(p->pipes[0].owner_given);
	cr_assert_not(p->pipes[1].has_settings);
	cr_assert(p->pipes[1].brokered);
	cr_assert(p->default_allow);
	cr_assert(p->case_sensitive);
	policy_free(p);
}

Test(policy, a_file_without_a_final_newline)
{
	struct policy *p = parse_ok("allow all x\ndeny all y");

	cr_assert_eq(p->nrules, 2);
	policy_free(p);
}

/* Every error names the file and the line, then the reason. */
Test(policy, errors_name_file_and_line)
{
	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
		{ "allow all x\nalow all y\n", "t.policy:2: unknown directive 'alow' (allow, deny, map, builtin, pipe, default, case-sensitive)" },
		{ "\n\nallow\n", "t.policy:3: allow needs OPERATIONS and a PATTERN" },
		{ "allow open\n", "t.policy:1: allow needs OPERATIONS and a PATTERN" },
		{ "allow read x\n", "t.policy:1: unknown operation 'read' (open, attach or all)" },
		{ "allow , x\n", "t.policy:1: no operation given (open, attach or all)" },
		{ "allow all a/b\n", "t.policy:1: pattern 'a/b' has a character no pipe name has" },
		{ "allow all x uid=abc\n", "t.policy:1: uid: 'abc' is not a number or a range N-M" },
		{ "allow all x uid=5-3\n", "t.policy:1: uid: range 5-3 is empty" },
		{ "allow all x uid=-1\n", "t.policy:1: uid: '-1' is not a number or a range N-M" },
		{ "allow all x gid=4294967295\n", "t.policy:1: gid: '4294967295' is not a number or a range N-M" },
		{ "allow all x uid=1 uid=2\n", "t.policy:1: 'uid' given twice" },
		{ "allow all x uid=\n", "t.policy:1: 'uid' needs a value (uid=...)" },
		{ "allow all x user=no-such-user-here\n", "t.policy:1: user: unknown user 'no-such-user-here'" },
		{ "allow all x group=no-such-group-here\n", "t.policy:1: group: unknown group 'no-such-group-here'" },
		{ "allow all x errno=EPERM\n", "t.policy:1: 'errno' is not an option of 'allow'" },
		{ "allow all x colour=red\n", "t.policy:1: unknown option 'colour'" },
		{ "allow all x y\n", "t.policy:1: unexpected word 'y'" },
		{ "deny all x errno=EWHAT\n", "t.policy:1: errno: 'EWHAT' is not an errno name (EACCES, EPERM, ...) or a number from 1 to 511" },
		{ "deny all x errno=-5\n", "t.policy:1: errno: '-5' is not an errno name (EACCES, EPERM, ...) or a number from 1 to 511" },
		{ "deny all x errno=0\n", "t.policy:1: errno: '0' is out of range: an application can only be given 1 to 511" },
		{ "map x\n", "t.policy:1: map needs a PATTERN and a TEMPLATE" },
		{ "map x user.%x\n", "t.policy:1: map: '%x' in 'user.%x' is not %u, %g or %n" },
		{ "map x user.%\n", "t.policy:1: map: '% ' in 'user.%' is not %u, %g or %n" },
		{ "map x .%u\n", "t.policy:1: map: '.%u' does not expand to a valid pipe name" },
		{ "map x a/%u\n", "t.policy:1: map: 'a/%u' does not expand to a valid pipe name" },
		{ "map x %u%u%u%u%u%u%u\n", "t.policy:1: map: '%u%u%u%u%u%u%u' can expand to more than 63 bytes" },
		{ "map x y errno=EPERM\n", "t.policy:1: 'errno' is not an option of 'map'" },
		{ "pipe\n", "t.policy:1: pipe needs a PATTERN" },
		{ "pipe x\n", "t.policy:1: pipe line sets nothing (kind, capacity, policy, mode, owner, brokered, network)" },
		{ "pipe x kind=datagram\n", "t.policy:1: kind: 'datagram' is not stream or message" },
		{ "pipe x policy=drop\n", "t.policy:1: policy: 'drop' is not block, overwrite or fail" },
		{ "pipe x capacity=10\n", "t.policy:1: capacity: '10' is not a size from 64 to 1G" },
		{ "pipe x capacity=2G\n", "t.policy:1: capacity: '2G' is not a size from 64 to 1G" },
		{ "pipe x mode=0999\n", "t.policy:1: mode: '0999' is not octal permission bits from 1 to 0777" },
		{ "pipe x mode=01777\n", "t.policy:1: mode: '01777' is not octal permission bits from 1 to 0777" },
		{ "pipe x mode=0\n", "t.policy:1: mode: '0' is not octal permission bits from 1 to 0777" },
		{ "pipe x owner=1000\n", "t.policy:1: owner: a numeric user needs a group (owner=1000:GROUP)" },
		{ "pipe x owner=no-such-user-here\n", "t.policy:1: owner: unknown user 'no-such-user-here'" },
		{ "pipe x owner=0:no-such-group-here\n", "t.policy:1: owner: unknown group 'no-such-group-here'" },
		{ "pipe x brokered=yes\n", "t.policy:1: 'brokered' takes no value" },
		{ "pipe x uid=0 brokered\n", "t.policy:1: 'uid' is not an option of 'pipe'" },
		{ "default\n", "t.policy:1: default needs allow, deny or builtin" },
		{ "default maybe\n", "t.policy:1: default needs allow, deny or builtin" },
		{ "default builtin errno=EPERM\n", "t.policy:1: 'errno' is not an option of 'default builtin'" },
		{ "builtin open\n", "t.policy:1: builtin needs OPERATIONS and a PATTERN" },
		{ "builtin all x errno=EPERM\n", "t.policy:1: 'errno' is not an option of 'builtin'" },
		{ "builtin write x\n", "t.policy:1: unknown operation 'write' (open, attach or all)" },
		{ "default allow errno=EPERM\n", "t.policy:1: 'errno' is not an option of 'default allow'" },
		{ "default deny\n# two\ndefault allow\n", "t.policy:3: default given twice (first on line 1)" },
		{ "case-sensitive yes\n", "t.policy:1: case-sensitive takes no arguments" },
		{ "allow all a b c d e f g h i j k l m n o p q\n", "t.policy:1: more than 16 words on one line" },
		{ "allow all x uid=1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n", "t.policy:1: more than 16 ids or ranges" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].text, cases[i].message);
}

/* The kernel carries errnos 1 to 511 to an application; a policy that could
 * answer with another is refused at the line that says it, so no answer the
 * daemon must fail with EIO ever leaves the broker. */
Test(policy, an_errno_the_kernel_cannot_carry_is_refused_with_its_line)
{
	static const char *const out_of_range[] = { "512", "600", "4095", "4096", "0x200", "99999999999999999999" };
	char text[128], message[256];

	for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
		snprintf(text, sizeof(text), "allow all a\ndeny all x errno=%s\n", out_of_range[i]);
		snprintf(message, sizeof(message),
			 "t.policy:2: errno: '%s' is out of range: an application can only be given 1 to 511",
			 out_of_range[i]);
		parse_fails(text, message);
		snprintf(text, sizeof(text), "# c\n\ndefault deny errno=%s\n", out_of_range[i]);
		snprintf(message, sizeof(message),
			 "t.policy:3: errno: '%s' is out of range: an application can only be given 1 to 511",
			 out_of_range[i]);
		parse_fails(text, message);
	}

	struct policy *p = parse_ok("deny all a errno=1\ndeny all b errno=511\ndeny all c errno=0x1ff\n"
				    "deny all d errno=EHOSTUNREACH\ndefault deny errno=511\n");
	cr_assert_eq(p->rules[0].err, 1);
	cr_assert_eq(p->rules[1].err, 511);
	cr_assert_eq(p->rules[2].err, 511);
	cr_assert_eq(p->rules[3].err, EHOSTUNREACH);
	cr_assert_eq(p->default_err, 511);
	cr_assert_eq(decide(p, POLICY_OP_OPEN, "b", 1000, 1000).err, 511);
	policy_free(p);
}

Test(policy, a_nul_byte_and_a_long_line_are_errors)
{
	static char text[5000];
	struct policy *p = NULL;
	char error[512];

	cr_assert_eq(policy_parse("allow all x\nal\0low\n", 19, "t.policy", &p, error, sizeof(error)), -EINVAL);
	cr_assert_str_eq(error, "t.policy:2: NUL byte in the line");
	memset(text, ' ', sizeof(text));
	memcpy(text, "allow all x\n", 12);
	cr_assert_eq(policy_parse(text, sizeof(text), "t.policy", &p, error, sizeof(error)), -EINVAL);
	cr_assert_str_eq(error, "t.policy:2: line longer than 4096 bytes");
}

Test(policy, load_reports_a_missing_file)
{
	struct policy *p = NULL;
	char error[512];

	cr_assert_eq(policy_load("/nonexistent/broker.policy", &p, error, sizeof(error)), -ENOENT);
	cr_assert_str_eq(error, "/nonexistent/broker.policy: No such file or directory");
	cr_assert_eq(policy_load("/", &p, error, sizeof(error)), -EISDIR);
}

Test(policy, first_matching_rule_decides)
{
	struct policy *p = parse_ok("deny all secret.* errno=EPERM\n"
				    "allow open * uid=1000\n"
				    "deny open *\n"
				    "allow attach *\n");
	struct policy_decision d;

	d = decide(p, POLICY_OP_OPEN, "secret.x", 1000, 1000);
	cr_assert_not(d.allow);
	cr_assert_eq(d.err, EPERM);
	cr_assert_eq(d.line, 1);
	d = decide(p, POLICY_OP_OPEN, "other", 1000, 1000);
	cr_assert(d.allow);
	cr_assert_eq(d.line, 2);
	d = decide(p, POLICY_OP_OPEN, "other", 1001, 1000);
	cr_assert_not(d.allow);
	cr_assert_eq(d.err, EACCES); /* deny without errno= */
	cr_assert_eq(d.line, 3);
	d = decide(p, POLICY_OP_ATTACH, "other", 1001, 1000);
	cr_assert(d.allow);
	cr_assert_eq(d.line, 4);
	policy_free(p);
}

Test(policy, uid_and_gid_ranges)
{
	struct policy *p = parse_ok("allow all * uid=10-20,30 gid=7\n"
				    "default deny errno=ENOENT\n");

	cr_assert(decide(p, POLICY_OP_OPEN, "x", 10, 7).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "x", 20, 7).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "x", 30, 7).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "x", 21, 7).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "x", 10, 8).allow);
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "x", 9, 7);
	cr_assert_eq(d.err, ENOENT);
	cr_assert_eq(d.line, 2);
	policy_free(p);
}

Test(policy, user_and_group_names_resolve)
{
	struct policy *p = parse_ok("allow all * user=root group=root\n");

	cr_assert(decide(p, POLICY_OP_OPEN, "x", 0, 0).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "x", 0, 1).allow);
	policy_free(p);
}

Test(policy, patterns_and_case)
{
	struct policy *p = parse_ok("allow all log.[0-9]*\nallow all \"\"\n");

	cr_assert(decide(p, POLICY_OP_OPEN, "log.1", 1, 1).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "LOG.1", 1, 1).allow, "names are case-insensitive by default");
	cr_assert_not(decide(p, POLICY_OP_OPEN, "log.x", 1, 1).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "", 1, 1).allow, "\"\" is the empty name");
	cr_assert_eq(decide(p, POLICY_OP_OPEN, "", 1, 1).line, 2);
	policy_free(p);

	p = parse_ok("case-sensitive\nallow all log.*\n");
	cr_assert(decide(p, POLICY_OP_OPEN, "log.1", 1, 1).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "LOG.1", 1, 1).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "", 1, 1).allow, "log.* does not match the empty name");
	policy_free(p);

	p = parse_ok("allow all *\n");
	cr_assert(decide(p, POLICY_OP_OPEN, "", 1, 1).allow, "* matches the empty name too");
	policy_free(p);
}

Test(policy, map_expands_the_template)
{
	struct policy *p = parse_ok("map \"\" user.%u\n"
				    "map in.* box.%g.%n\n");
	struct policy_decision d;

	d = decide(p, POLICY_OP_OPEN, "", 1000, 100);
	cr_assert(d.allow);
	cr_assert_str_eq(d.pipe, "user.1000");
	cr_assert_eq(d.line, 1);
	d = decide(p, POLICY_OP_OPEN, "in.x", 1000, 100);
	cr_assert_str_eq(d.pipe, "box.100.in.x");
	cr_assert_eq(d.line, 2);
	policy_free(p);
}

Test(policy, map_only_applies_to_opens)
{
	struct policy *p = parse_ok("map * user.%u\n");
	struct policy_decision d = decide(p, POLICY_OP_ATTACH, "x", 1000, 100);

	cr_assert_not(d.allow);
	cr_assert_eq(d.line, 0);
	policy_free(p);
}

Test(policy, map_to_an_invalid_name_denies)
{
	struct policy *p = parse_ok("map * %n\n");
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "", 5, 5);

	cr_assert_not(d.allow, "%%n of the empty name is no pipe name");
	cr_assert_eq(d.err, EINVAL);
	policy_free(p);
}

Test(policy, expand)
{
	struct policy_query q = { .name = "abc", .uid = 42, .gid = 7 };
	char out[RINGDEV_NAME_SIZE];
	char name63[64];

	cr_assert_eq(policy_expand("u%u.g%g.%n", &q, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "u42.g7.abc");
	cr_assert_eq(policy_expand("plain", &q, out, sizeof(out)), 0);
	cr_assert_str_eq(out, "plain");
	cr_assert_eq(policy_expand("%q", &q, out, sizeof(out)), -EINVAL);
	cr_assert_eq(policy_expand("a%", &q, out, sizeof(out)), -EINVAL);
	memset(name63, 'n', 63);
	name63[63] = '\0';
	q.name = name63;
	cr_assert_eq(policy_expand("%n", &q, out, sizeof(out)), 0);
	cr_assert_eq(policy_expand("x%n", &q, out, sizeof(out)), -ENAMETOOLONG);
}

Test(policy, pipe_lines_give_settings_and_brokered)
{
	struct policy *p = parse_ok("allow all *\n"
				    "map inbox user.%u\n" /* never reached: allow all * comes first */
				    "pipe user.* kind=message capacity=4K mode=0640\n"
				    "pipe rv.* brokered\n"
				    "pipe own.* owner=root:root policy=fail\n");
	struct policy_query q = {
		.op = POLICY_OP_ATTACH, .name = "user.5", .uid = 5, .gid = 6,
		.kind = RINGDEV_KIND_STREAM, .policy = RINGDEV_POLICY_OVERWRITE, .mode = 0644, .capacity = 8192,
	};
	struct policy_decision d;

	policy_decide(p, &q, &d);
	cr_assert(d.allow);
	cr_assert(d.has_settings);
	cr_assert_eq(d.pipe_line, 3);
	cr_assert_eq(d.settings.kind, RINGDEV_KIND_MESSAGE);         /* the line's */
	cr_assert_eq(d.settings.policy, RINGDEV_POLICY_OVERWRITE);   /* the app's */
	cr_assert_eq(d.settings.capacity, 4096);
	cr_assert_eq(d.settings.mode, 0640);
	cr_assert_eq(d.settings.uid, 5);                             /* the caller */
	cr_assert_eq(d.settings.gid, 6);
	cr_assert_not(d.brokered);

	q.name = "rv.1";
	policy_decide(p, &q, &d);
	cr_assert(d.brokered);
	cr_assert_not(d.has_settings);

	q.name = "own.1";
	policy_decide(p, &q, &d);
	cr_assert_eq(d.settings.uid, 0);
	cr_assert_eq(d.settings.gid, 0);
	cr_assert_eq(d.settings.policy, RINGDEV_POLICY_FAIL);

	q.name = "other";
	policy_decide(p, &q, &d);
	cr_assert_not(d.has_settings);
	cr_assert_eq(d.pipe_line, 0);
	policy_free(p);
}

Test(policy, pipe_lines_apply_to_the_mapped_name)
{
	struct policy *p = parse_ok("map \"\" rv.%u\npipe rv.* brokered\n");
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "", 7, 7);

	cr_assert_str_eq(d.pipe, "rv.7");
	cr_assert(d.brokered);
	policy_free(p);
}

Test(policy, denied_requests_get_no_settings)
{
	struct policy *p = parse_ok("deny all rv.*\npipe rv.* brokered kind=message\n");
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "rv.1", 7, 7);

	cr_assert_not(d.allow);
	cr_assert_not(d.brokered);
	cr_assert_not(d.has_settings);
	policy_free(p);
}

Test(policy, errno_names)
{
	cr_assert_str_eq(policy_errno_name(EACCES), "EACCES");
	cr_assert_str_eq(policy_errno_name(EPERM), "EPERM");
	cr_assert_null(policy_errno_name(4000));
}

/* ---- builtin: ringdevd decides ---- */

/* A builtin decision carries nothing: no name, no settings, not brokered,
 * whatever `pipe` lines say (the daemon creates as the app asked). */
static void assert_builtin(struct policy_decision d, unsigned line, const char *what)
{
	cr_assert(d.allow, "%s: denied with %d", what, d.err);
	cr_assert(d.builtin, "%s: not builtin", what);
	cr_assert_eq(d.err, 0, "%s", what);
	cr_assert_eq(d.line, line, "%s: line %u, expected %u", what, d.line, line);
	cr_assert_eq(d.pipe[0], '\0', "%s: mapped to %s", what, d.pipe);
	cr_assert_not(d.has_settings, "%s: settings", what);
	cr_assert_not(d.brokered, "%s: brokered", what);
	cr_assert_eq(d.pipe_line, 0, "%s: a pipe line applied", what);
}

Test(policy, a_builtin_rule_matches_like_allow_and_carries_nothing)
{
	struct policy *p = parse_ok("deny all admin.* errno=EPERM\n"
				    "builtin attach,open * uid=1000-1999\n"
				    "allow all * uid=0\n"
				    "pipe * mode=0666 kind=message brokered\n");
	struct policy_decision d;

	cr_assert_eq(p->nrules, 3);
	cr_assert_eq(p->rules[1].action, POLICY_BUILTIN);
	cr_assert_eq(p->rules[1].ops, POLICY_OP_OPEN | POLICY_OP_ATTACH);
	assert_builtin(decide(p, POLICY_OP_OPEN, "x", 1000, 1000), 2, "uid 1000 open");
	assert_builtin(decide(p, POLICY_OP_ATTACH, "", 1999, 5), 2, "uid 1999 attach");
	d = decide(p, POLICY_OP_OPEN, "admin.x", 1000, 1000);
	cr_assert_not(d.allow);
	cr_assert_not(d.builtin);
	cr_assert_eq(d.err, EPERM, "an earlier deny still decides");
	d = decide(p, POLICY_OP_OPEN, "x", 0, 0);
	cr_assert(d.allow);
	cr_assert_not(d.builtin, "root's rule is an allow");
	cr_assert(d.brokered, "and pipe lines apply to it");
	d = decide(p, POLICY_OP_OPEN, "x", 2000, 2000);
	cr_assert_not(d.allow, "no rule: the default deny");
	cr_assert_not(d.builtin);
	policy_free(p);
}

Test(policy, default_builtin_decides_what_no_rule_matched)
{
	struct policy *p = parse_ok("deny open secret\npipe * brokered\ndefault builtin\n");
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "secret", 7, 7);

	cr_assert(p->default_builtin);
	cr_assert_not(p->default_allow);
	cr_assert_not(d.allow);
	cr_assert_eq(d.err, EACCES);
	assert_builtin(decide(p, POLICY_OP_ATTACH, "secret", 7, 7), 3, "attach: no rule");
	assert_builtin(decide(p, POLICY_OP_OPEN, "other", 7, 7), 3, "open: no rule");
	policy_free(p);

	p = parse_ok("default allow\n");
	cr_assert_not(decide(p, POLICY_OP_OPEN, "x", 7, 7).builtin, "default allow is no builtin");
	policy_free(p);
}

/* A broker without a policy file: every open and attach goes to ringdevd. */
Test(policy, the_policy_without_a_file_is_default_builtin)
{
	struct policy *p = policy_builtin();

	cr_assert_not_null(p);
	cr_assert_eq(p->nrules, 0);
	cr_assert_eq(p->npipes, 0);
	cr_assert(p->default_builtin);
	cr_assert_not(p->case_sensitive);
	assert_builtin(decide(p, POLICY_OP_OPEN, "", 1000, 1000), 0, "a CUSE open");
	assert_builtin(decide(p, POLICY_OP_OPEN, "x", 0, 0), 0, "root's open");
	assert_builtin(decide(p, POLICY_OP_ATTACH, "user.5", 65534, 65534), 0, "nobody's attach");
	policy_free(p);
}

/* ---- the caller's own: %u and %g in patterns ---- */

static struct policy_decision decide_attach_create(const struct policy *p, const char *name, uint32_t uid,
						   uint32_t gid)
{
	/* ringdevctl create and a mknod on the mount reach the broker so. */
	struct policy_query q = { .op = POLICY_OP_ATTACH, .name = name, .uid = uid, .gid = gid, .mode = 0600 };
	struct policy_decision d;

	policy_decide(p, &q, &d);
	return d;
}

/* Issue 19, item 1: with `allow all user.*` user B attached to user A's
 * pipe and read it. The example must keep each user to their own. */
Test(policy, the_shipped_example_keeps_users_to_their_own_pipes)
{
	struct policy *p = NULL;
	char error[512];
	struct policy_decision d;
	static const enum policy_op ops[] = { POLICY_OP_OPEN, POLICY_OP_ATTACH };

	cr_assert_eq(policy_load(BROKER_EXAMPLE_POLICY, &p, error, sizeof(error)), 0, "%s", error);
	for (size_t i = 0; i < 2; i++) {
		enum policy_op op = ops[i];
		/* Their own, in any case (names ignore case), and below it. */
		cr_assert(decide(p, op, "user.1000", 1000, 1000).allow, "op %d: own pipe", op);
		cr_assert(decide(p, op, "USER.1000", 1000, 1000).allow, "op %d: own pipe, other case", op);
		cr_assert(decide(p, op, "user.1000.log", 1000, 1000).allow, "op %d: own sub-pipe", op);
		/* Anyone else's: the default deny. Not a prefix, not an extension. */
		static const char *const others[] = { "user.1001", "user.0", "user.100", "user.10000", "user.1000x",
						      "user.10001.log", "user.1001.1000", "user.", "User.65534" };
		for (size_t j = 0; j < sizeof(others) / sizeof(others[0]); j++) {
			d = decide(p, op, others[j], 1000, 1000);
			cr_assert_not(d.allow, "op %d: uid 1000 may reach %s (line %u)", op, others[j], d.line);
			cr_assert_eq(d.err, EACCES);
		}
		cr_assert(decide(p, op, "shared.x", 1000, 1000).allow);
		cr_assert(decide(p, op, "rv.x", 1000, 1000).brokered);
		cr_assert_eq(decide(p, op, "admin.x", 1000, 1000).err, EPERM);
		cr_assert_not(decide(p, op, "other", 1000, 1000).allow);
		cr_assert(decide(p, op, "user.1000", 0, 0).allow, "root reaches everything");
	}
	/* Creating another's name (ringdevctl create, mknod): denied too. */
	d = decide_attach_create(p, "user.1001", 1000, 1000);
	cr_assert_not(d.allow, "uid 1000 may create user.1001 (line %u)", d.line);
	cr_assert_eq(d.err, EACCES);
	d = decide_attach_create(p, "user.1000", 1000, 1000);
	cr_assert(d.allow);
	cr_assert_eq(d.settings.uid, 1000, "created owned by the caller");
	cr_assert_eq(d.settings.mode, 0600);
	/* The maps go to the caller's own name, with no grant. */
	d = decide(p, POLICY_OP_OPEN, "", 1000, 1000);
	cr_assert_str_eq(d.pipe, "user.1000");
	cr_assert_not(d.grant, "the example grants nothing");
	d = decide(p, POLICY_OP_OPEN, "inbox", 1001, 1001);
	cr_assert_str_eq(d.pipe, "user.1001");
	cr_assert_not(d.grant);
	for (size_t i = 0; i < p->nrules; i++)
		cr_assert_not(p->rules[i].grant, "line %u grants", p->rules[i].line);
	policy_free(p);
}

Test(policy, percent_u_and_g_in_a_pattern_are_the_callers_ids)
{
	struct policy *p = parse_ok("allow all user.%u\n"
				    "allow attach grp.%g.*\n"
				    "deny open %u-%g errno=EPERM\n"
				    "map box.%u in.%u.%n\n"
				    "pipe user.%u mode=0640\n"
				    "pipe user.* mode=0600\n");
	struct policy_decision d;

	cr_assert(decide(p, POLICY_OP_OPEN, "user.7", 7, 9).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "user.8", 7, 9).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "user.%u", 7, 9).allow, "no literal %%u");
	cr_assert(decide(p, POLICY_OP_ATTACH, "grp.9.x", 7, 9).allow);
	cr_assert_not(decide(p, POLICY_OP_ATTACH, "grp.7.x", 7, 9).allow, "%%g is the gid");
	cr_assert_not(decide(p, POLICY_OP_OPEN, "grp.9.x", 7, 9).allow, "attach only");
	d = decide(p, POLICY_OP_OPEN, "7-9", 7, 9);
	cr_assert_eq(d.err, EPERM);
	cr_assert_eq(d.line, 3);
	d = decide(p, POLICY_OP_OPEN, "box.7", 7, 9);
	cr_assert_str_eq(d.pipe, "in.7.box.7");
	cr_assert_not(decide(p, POLICY_OP_OPEN, "box.8", 7, 9).allow);
	/* pipe lines too: the caller's own user.N gets 0640, another's 0600 */
	struct policy_query q = { .op = POLICY_OP_ATTACH, .name = "user.7", .uid = 7, .gid = 9 };
	policy_decide(p, &q, &d);
	cr_assert_eq(d.settings.mode, 0640);
	cr_assert_eq(d.pipe_line, 5);
	cr_assert_eq(policy_pipe_find(p, &q, "user.8")->line, 6);
	cr_assert_eq(policy_pipe_find(p, NULL, "user.7")->line, 6, "with no caller, %%u is nobody's");
	cr_assert(policy_name_matches(p, "user.%u", &q, "USER.7"), "the case rule still applies");
	policy_free(p);

	p = parse_ok("case-sensitive\nallow all user.%u\n");
	cr_assert(decide(p, POLICY_OP_OPEN, "user.7", 7, 9).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "USER.7", 7, 9).allow);
	policy_free(p);
}

/* Where the number could run into a digit or a glob, `user.%u*` would give
 * uid 1 user.10 and `user.1%u` would give uid 0 uid 10's name: refused. */
Test(policy, percent_u_is_refused_where_it_could_match_another_id)
{
	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
		{ "allow all user.%u*\n", "t.policy:1: pattern 'user.%u*': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "allow all user.*%u\n", "t.policy:1: pattern 'user.*%u': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "allow all user.%u?\n", "t.policy:1: pattern 'user.%u?': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "allow all user.1%u\n", "t.policy:1: pattern 'user.1%u': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "deny all user.%g0\n", "t.policy:1: pattern 'user.%g0': next to '%g' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "builtin all %u%g\n", "t.policy:1: pattern '%u%g': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "allow all u.%u[0-9]\n", "t.policy:1: pattern 'u.%u[0-9]': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "allow all a[%u\n", "t.policy:1: pattern 'a[%u': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "allow all user.[%u]\n", "t.policy:1: pattern 'user.[%u]': %u and %g cannot stand inside [...]" },
		{ "allow all user.[!]%]\n", "t.policy:1: pattern 'user.[!]%]': %u and %g cannot stand inside [...]" },
		{ "map user.%u* x\n", "t.policy:1: pattern 'user.%u*': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		{ "pipe user.%u* mode=0600\n", "t.policy:1: pattern 'user.%u*': next to '%u' only a letter, '.', '-', '_' or the pattern's end may stand, else it matches other ids too" },
		/* No escape for '%': no pipe name has one. */
		{ "allow all user.%%\n", "t.policy:1: pattern 'user.%%': '%%' is not %u or %g (no pipe name has a '%')" },
		{ "allow all user.%n\n", "t.policy:1: pattern 'user.%n': '%n' is not %u or %g (no pipe name has a '%')" },
		{ "allow all user.%U\n", "t.policy:1: pattern 'user.%U': '%U' is not %u or %g (no pipe name has a '%')" },
		{ "allow all user.%\n", "t.policy:1: pattern 'user.%': a '%' at the end (only %u and %g; no pipe name has a '%')" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].text, cases[i].message);

	/* What stands next to it ends the number: these are fine. */
	struct policy *p = parse_ok("allow all %u\nallow all user.%u.*\nallow all a%ub\nallow all x-%u_%g\n"
				    "allow all [ab].%u\n");
	cr_assert(decide(p, POLICY_OP_OPEN, "12", 12, 3).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "123", 12, 3).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "user.12.x", 12, 3).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "user.123.x", 12, 3).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "a12b", 12, 3).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "x-12_3", 12, 3).allow);
	cr_assert(decide(p, POLICY_OP_OPEN, "b.12", 12, 3).allow);
	cr_assert_not(decide(p, POLICY_OP_OPEN, "b.1", 12, 3).allow);
	policy_free(p);
}

/* ---- grant: a pipe of another user's ---- */

Test(policy, only_a_rule_that_says_grant_grants)
{
	struct policy *p = parse_ok("map inbox shared.box grant\n"
				    "map box user.%u\n"
				    "allow all pub.* grant uid=5\n"
				    "allow all *\n"
				    "map bad %n grant\n");
	struct policy_decision d;

	d = decide(p, POLICY_OP_OPEN, "inbox", 5, 5);
	cr_assert_str_eq(d.pipe, "shared.box");
	cr_assert(d.grant);
	d = decide(p, POLICY_OP_OPEN, "box", 5, 5);
	cr_assert_str_eq(d.pipe, "user.5");
	cr_assert_not(d.grant, "a map without grant");
	d = decide(p, POLICY_OP_ATTACH, "pub.x", 5, 5);
	cr_assert(d.grant);
	cr_assert_not(decide(p, POLICY_OP_ATTACH, "pub.x", 6, 5).grant, "uid=5 only");
	cr_assert_not(decide(p, POLICY_OP_OPEN, "x", 5, 5).grant, "an allow without grant");
	cr_assert(p->rules[0].grant);
	cr_assert_not(p->rules[1].grant);
	policy_free(p);

	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
		{ "deny all x grant\n", "t.policy:1: 'grant' is not an option of 'deny'" },
		{ "builtin all x grant\n", "t.policy:1: 'grant' is not an option of 'builtin'" },
		{ "pipe x grant\n", "t.policy:1: 'grant' is not an option of 'pipe'" },
		{ "default allow grant\n", "t.policy:1: 'grant' is not an option of 'default allow'" },
		{ "allow all x grant=yes\n", "t.policy:1: 'grant' takes no value" },
		{ "map x y grant grant\n", "t.policy:1: 'grant' given twice" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].text, cases[i].message);
}

Test(policy, a_denied_map_grants_nothing)
{
	struct policy *p = parse_ok("map * %n grant\n");
	struct policy_decision d = decide(p, POLICY_OP_OPEN, "", 5, 5);

	cr_assert_not(d.allow);
	cr_assert_not(d.grant);
	policy_free(p);
}

/* ---- what is no regular file ---- */

/* Issue 19, item 16: the open of a FIFO blocked until a writer came: --check
 * hung, and on SIGHUP the signal thread with it. Refused at once now. */
Test(policy, a_fifo_or_a_device_at_the_path_is_refused_at_once, .timeout = 10)
{
	char dir[] = "/tmp/rdb-policy.XXXXXX";
	char path[sizeof(dir) + 16], want[sizeof(path) + 32];
	struct policy *p = NULL;
	char error[512];

	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/fifo", dir);
	cr_assert_eq(mkfifo(path, 0600), 0, "mkfifo: %s", strerror(errno));
	cr_assert_eq(policy_load(path, &p, error, sizeof(error)), -EINVAL);
	snprintf(want, sizeof(want), "%s: not a regular file", path);
	cr_assert_str_eq(error, want);
	cr_assert_null(p);
	unlink(path);
	rmdir(dir);

	cr_assert_eq(policy_load("/dev/null", &p, error, sizeof(error)), -EINVAL);
	cr_assert_str_eq(error, "/dev/null: not a regular file");
}

/* ---- network pipes (issue 21) ---- */

#if HAVE_REDIS
Test(policy, a_network_pipe_line_is_brokered_and_carries_its_url)
{
	struct policy *p = parse_ok("allow all *\n"
				    "pipe net.* kind=message network=redis://127.0.0.1:6390\n"
				    "pipe far.* kind=message policy=fail capacity=8K network=redis://[::1]:7000/3\n"
				    "pipe local.* kind=message\n");
	struct policy_decision d;
	struct policy_query q = { .op = POLICY_OP_ATTACH, .name = "net.jobs", .uid = 5, .gid = 6 };

	cr_assert_eq(p->npipes, 3);
	cr_assert_str_eq(p->pipes[0].network, "redis://127.0.0.1:6390");
	cr_assert(p->pipes[0].brokered, "network= implies brokered");

	policy_decide(p, &q, &d);
	cr_assert(d.allow);
	cr_assert(d.brokered);
	cr_assert_str_eq(d.network, "redis://127.0.0.1:6390");
	cr_assert_eq(d.settings.kind, RINGDEV_KIND_MESSAGE);

	q.name = "far.x";
	policy_decide(p, &q, &d);
	cr_assert_str_eq(d.network, "redis://[::1]:7000/3");
	cr_assert_eq(d.settings.policy, RINGDEV_POLICY_FAIL);
	cr_assert_eq(d.settings.capacity, 8192);

	q.name = "local.x";
	policy_decide(p, &q, &d);
	cr_assert_not(d.brokered);
	cr_assert_str_eq(d.network, "");

	/* A network pipe line's URL also reaches the mapped name's decision. */
	const struct policy_pipe *line = policy_pipe_find(p, &q, "NET.Jobs");
	cr_assert_not_null(line, "names match without case by default");
	cr_assert_str_eq(line->network, "redis://127.0.0.1:6390");
	policy_free(p);
}

Test(policy, network_errors_name_file_and_line)
{
	static const struct {
		const char *text;
		const char *message;
	} cases[] = {
		{ "allow all *\npipe net.* network=redis://h:1\n",
		  "t.policy:2: network: a network pipe must be kind=message (kind not given)" },
		{ "pipe net.* kind=stream network=redis://h:1\n",
		  "t.policy:1: network: a network pipe must be kind=message (kind=stream is not supported across hosts yet)" },
		{ "pipe net.* kind=message network=\n", "t.policy:1: 'network' needs a value (network=...)" },
		{ "pipe net.* kind=message network=http://h:1\n",
		  "t.policy:1: network: URL http://h:1: the scheme must be redis:// (TLS and sockets are not supported)" },
		{ "pipe net.* kind=message network=redis://user:secret@h:1\n",
		  "t.policy:1: network: URL redis://...@h:1: credentials do not go in the URL; give a credentials file" },
		{ "pipe net.* kind=message network=redis://h:1 network=redis://h:2\n",
		  "t.policy:1: 'network' given twice" },
		{ "allow all net.* network=redis://h:1\n", "t.policy:1: 'network' is not an option of 'allow'" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		parse_fails(cases[i].text, cases[i].message);

	/* Whatever np_url_parse refuses is refused here, with the line. */
	struct policy *p = NULL;
	char error[512];
	const char *bad[] = { "redis://h", "redis://h:0", "redis://h:70000", "redis://h:1/x", "redis://:1" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char text[256];
		snprintf(text, sizeof(text), "\npipe n.* kind=message network=%s\n", bad[i]);
		cr_assert_eq(policy_parse(text, strlen(text), "t.policy", &p, error, sizeof(error)), -EINVAL,
			     "%s parsed", bad[i]);
		cr_assert(strncmp(error, "t.policy:2: network: URL ", 25) == 0, "%s: %s", bad[i], error);
	}
}
#else
Test(policy, network_is_refused_without_redis_support)
{
	parse_fails("pipe net.* kind=message network=redis://h:1\n",
		    "t.policy:1: network: ringdev-broker was built without Redis support (hiredis)");
}
#endif
