/* SPDX-License-Identifier: MIT */
/*
 * fuzz_policy.c - target "policy": ringdev-broker's policy parser
 * (broker/policy.c, policy_parse: the file as one string; policy_load only
 * reads the file into one). Any input is parsed; an error must be one
 * terminated "FILE:LINE: reason" line, the same when the error buffer is
 * too short. A policy that parses is asked a fixed set of questions (names
 * valid and odd, root and others, OPEN and ATTACH, settings the daemon
 * could have sent), and each decision must make an answer the broker
 * library accepts (ctl_answer_*): a policy that loads never makes the
 * broker answer EIO. A mapped name must be a valid pipe name; only an
 * allow (or map) grants.
 *
 * Input: the policy file's text.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "encode.h"
#include "name.h"
#include "policy.h"

#define CHECK(cond, ...)                                                                                              \
	do {                                                                                                          \
		if (!(cond)) {                                                                                        \
			fprintf(stderr, "fuzz-policy: " __VA_ARGS__);                                                 \
			fputc('\n', stderr);                                                                          \
			abort();                                                                                      \
		}                                                                                                     \
	} while (0)

static const char *const names[] = {
	"", "a", "A", "admin.x", "inbox", "user.1000", "USER.1000", "user.10000", "user.65534", "shared.q", "rv.z",
	"Rv.Z", "x-y_z.0",
	"ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp",
};
static const uint32_t ids[] = { 0, 1000, 65534, 4294967294u };

static void ask(const struct policy *pol, enum policy_op op, const char *name, uint32_t uid, uint32_t gid,
		unsigned variant)
{
	struct policy_query q = { .op = op, .name = name, .uid = uid, .gid = gid };
	if (op == POLICY_OP_ATTACH && variant) {
		/* What an app may ask for when creating: the daemon checked these ranges. */
		q.kind = variant % 3;
		q.policy = variant % 4;
		q.mode = variant & 1 ? 0640 : 0;
		q.capacity = variant & 2 ? RINGDEV_CAPACITY_MIN : 0;
	}
	struct policy_decision d;
	policy_decide(pol, &q, &d);
	struct ringdev_ctl_request req = { .id = 7, .type = op == POLICY_OP_OPEN ? RINGDEV_CTL_OPEN : RINGDEV_CTL_ATTACH,
					   .uid = uid, .gid = gid, .kind = q.kind, .policy = q.policy,
					   .mode = q.mode, .capacity = q.capacity };
	snprintf(req.name, sizeof(req.name), "%s", name);
	struct ringdev_ctl_answer a;
	int r;
	if (!d.allow) {
		CHECK(d.err >= 1 && d.err <= RDB_ERRNO_MAX, "deny with errno %d", d.err);
		CHECK(!d.grant, "a denial that grants");
		r = ctl_answer_deny(&a, &req, d.err);
	} else if (d.builtin) {
		CHECK(!d.pipe[0] && !d.has_settings && !d.grant, "a builtin decision that carries a pipe, settings "
		      "or grant");
		r = ctl_answer_builtin(&a, &req);
	} else {
		if (d.pipe[0])
			CHECK(op == POLICY_OP_OPEN && name_check_str(d.pipe) == 0, "mapped to '%.64s'", d.pipe);
		r = ctl_answer_allow(&a, &req, d.pipe, d.has_settings ? &d.settings : NULL, d.brokered);
	}
	CHECK(r == 0, "the decision for %s '%s' uid %u (line %u, pipe line %u) makes no answer: %d",
	      op == POLICY_OP_OPEN ? "open" : "attach", name, uid, d.line, d.pipe_line, r);
	CHECK(a.id == req.id, "answer for the wrong id");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly `size` bytes, no NUL after them: the parser must not need one. */
	char *text = malloc(size ? size : 1);
	CHECK(text, "out of memory");
	if (size)
		memcpy(text, data, size);
	char error[512];
	struct policy *pol = NULL;
	memset(error, 'x', sizeof(error));
	int r = policy_parse(text, size, "fuzz.policy", &pol, error, sizeof(error));
	CHECK(memchr(error, '\0', sizeof(error)), "the error is not terminated");
	if (r < 0) {
		CHECK(r == -EINVAL || r == -ENOMEM, "policy_parse returned %d", r);
		CHECK(r == -ENOMEM || strncmp(error, "fuzz.policy:", 12) == 0, "error '%s' names no line", error);
		CHECK(!strchr(error, '\n'), "the error is more than one line");
		char small[16];
		struct policy *again = NULL;
		memset(small, 'x', sizeof(small));
		CHECK(policy_parse(text, size, "fuzz.policy", &again, small, sizeof(small)) == r && !again,
		      "a second parse differs");
		CHECK(memchr(small, '\0', sizeof(small)) && strncmp(small, error, strlen(small)) == 0,
		      "the cut error is not the error's start");
		free(text);
		return 0;
	}
	CHECK(pol, "policy_parse succeeded without a policy");
	for (size_t n = 0; n < sizeof(names) / sizeof(names[0]); n++)
		for (size_t u = 0; u < sizeof(ids) / sizeof(ids[0]); u++) {
			ask(pol, POLICY_OP_OPEN, names[n], ids[u], ids[(u + 1) % 4], 0);
			ask(pol, POLICY_OP_ATTACH, names[n], ids[u], ids[u], (unsigned)(n + u));
		}
	policy_free(pol);
	free(text);
	return 0;
}
