/* SPDX-License-Identifier: MIT */
/*
 * fuzz_drive.c - see fuzz_drive.h. Each step reads a few bytes and makes
 * one call of device.h the way a frontend would: requests are the harness's
 * (fuzz_req_new), payloads are exactly as large as they claim (malloc of
 * that size, so AddressSanitizer sees any overrun), and a step that needs
 * something the world lacks (a handle, a broker) does nothing.
 *
 * Values are chosen from small sets of meaningful ones (limits, the inline
 * and bulk sizes, errnos near 511) with a way out to any value, so the
 * fuzzer reaches both the edges and the garbage.
 */
#include "fuzz_drive.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "device.h"
#include "fuzz_fake.h"

static const char *const good_names[] = {
	"a", "b", "A", "default", "Default", "user.1000", "rv.x", "x-y_z.0",
	"ppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp", /* 63 bytes */
};
static const char *const bad_names[] = {
	"", "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp" /* 64 */, ".hidden", "bad/name", "a b",
};

size_t drive_name(struct fuzz_input *in, char name[RINGDEV_NAME_SIZE])
{
	unsigned sel = fin_pick(in, 16);
	const char *s = NULL;
	memset(name, 0, RINGDEV_NAME_SIZE);
	if (sel < 10)
		s = good_names[sel % (sizeof(good_names) / sizeof(good_names[0]))];
	else if (sel < 13)
		s = bad_names[fin_pick(in, sizeof(bad_names) / sizeof(bad_names[0]))];
	if (s) {
		size_t len = strlen(s);
		memcpy(name, s, len < RINGDEV_NAME_SIZE ? len : RINGDEV_NAME_SIZE);
		return len < RINGDEV_NAME_SIZE ? len : RINGDEV_NAME_SIZE;
	}
	size_t len = fin_pick(in, RINGDEV_NAME_SIZE + 1);
	fin_bytes(in, name, len);
	return len;
}

uint64_t drive_ino(struct fuzz_input *in)
{
	unsigned sel = fin_pick(in, 8);
	if (sel < 6)
		return 16 + fin_pick(in, 32);
	if (sel == 6)
		return fin_pick(in, 16); /* the root, the control node, unused */
	return fin_u64(in);
}

static int drive_oflags(struct fuzz_input *in)
{
	static const int acc[] = { O_RDONLY, O_WRONLY, O_RDWR, O_ACCMODE };
	uint8_t b = fin_u8(in);
	return acc[b & 3] | ((b & 4) ? O_NONBLOCK : 0) | ((b & 8) ? O_APPEND : 0);
}

static uint64_t drive_capacity(struct fuzz_input *in)
{
	static const uint64_t caps[] = { 0, 0, 64, 65, 100, 4096, 65536, RINGDEV_CAPACITY_MAX, 63 };
	unsigned sel = fin_pick(in, 10);
	return sel < 9 ? caps[sel] : fin_u64(in);
}

static size_t drive_size(struct fuzz_input *in)
{
	static const size_t sizes[] = { 0, 1, 4, 60, 64, 65, 100, 1024, 1025, 4096, 65536, 65537, 131072 };
	unsigned sel = fin_pick(in, 16);
	if (sel < 13)
		return sizes[sel];
	if (sel < 15)
		return fin_u8(in);
	return fin_u16(in);
}

static struct fuzz_handle *app_handle(struct fuzz_input *in)
{
	return fuzz_handle_pick(fin_u8(in));
}

/* ---- apps ---- */

void drive_open_request(struct fuzz_input *in)
{
	struct cred cred = fuzz_cred(in);
	int oflags = drive_oflags(in);
	uint8_t f = fin_u8(in);
	struct open_args args = { .default_pipe = fz.cfg.default_pipe[0] && (f & 1) };
	if (!args.default_pipe)
		args.ino = drive_ino(in);
	void *req = fuzz_req_new(FUZZ_REQ_OPEN, 0, f & 2);
	if (!req)
		return;
	fuzz_req_of(req)->opener_gone = (f & 0x0c) == 0x0c;
	device_open_request(fz.dev, &cred, oflags, &args, req);
}

void drive_open(struct fuzz_input *in)
{
	struct cred cred = fuzz_cred(in);
	int oflags = drive_oflags(in);
	if (fz.nhandles >= FUZZ_HANDLES)
		return;
	struct open_ctx *ctx;
	int r = device_open(fz.dev, &cred, oflags, &ctx);
	FUZZ_ASSERT(r <= 0, "device_open returned %d", r);
	if (r == 0)
		fuzz_handle_add(ctx, false, &cred, oflags);
}

void drive_ctl_open(struct fuzz_input *in)
{
	struct cred cred = fuzz_cred(in);
	int oflags = (fin_u8(in) & 7) ? O_RDWR : drive_oflags(in);
	if (fz.nhandles >= FUZZ_HANDLES)
		return;
	struct open_ctx *ctx;
	bool had = fuzz_broker() != NULL;
	int r = device_ctl_open(fz.dev, &cred, oflags, &ctx);
	FUZZ_ASSERT(r <= 0, "device_ctl_open returned %d", r);
	FUZZ_ASSERT(!had || r == -EBUSY || r == -EINVAL || r == -EACCES, "a second control open: %d", r);
	if (r == 0)
		fuzz_handle_add(ctx, true, &cred, oflags);
}

void drive_attach(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	uint8_t f = fin_u8(in);
	struct cred cred = (f & 1) ? fuzz_cred(in) : h ? h->cred : fuzz_root;
	struct ringdev_attach a = { 0 };
	size_t len = drive_name(in, a.name);
	a.flags = (f & 2) ? fin_u32(in) : fin_u8(in) & RINGDEV_ATTACH_FLAGS_ALL;
	a.kind = fin_pick(in, 4);
	a.policy = fin_pick(in, 5);
	a.mode = (f & 4) ? fin_u32(in) : fin_u16(in) & 0777;
	a.capacity = drive_capacity(in);
	if (f & 8)
		a.reserved[fin_pick(in, 4)] = fin_u64(in);
	if (!h)
		return;
	if (f & 0x10) { /* the ioctl: relayed while a broker is in charge */
		fuzz_ioctl(h->ctx, &cred, RINGDEV_IOC_ATTACH, &a, sizeof(a), 0, f & 0x20);
		return;
	}
	struct attach_args args = {
		.name = a.name, .len = len < RINGDEV_NAME_SIZE ? len : RINGDEV_NAME_SIZE, .flags = a.flags,
		.kind = a.kind, .policy = a.policy, .mode = a.mode, .capacity = a.capacity,
	};
	int r = device_attach(fz.dev, h->ctx, &cred, &args);
	FUZZ_ASSERT(r <= 0 && r >= -RINGDEV_ERRNO_MAX, "device_attach returned %d", r);
}

void drive_attach_ino(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	uint64_t ino = drive_ino(in);
	if (!h)
		return;
	int r = device_attach_ino(fz.dev, h->ctx, ino);
	FUZZ_ASSERT(r <= 0 && r >= -RINGDEV_ERRNO_MAX, "device_attach_ino returned %d", r);
}

void drive_detach(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	if (!h)
		return;
	if (fin_u8(in) & 1)
		fuzz_ioctl(h->ctx, &h->cred, RINGDEV_IOC_DETACH, NULL, 0, 0, false);
	else
		FUZZ_ASSERT(device_detach(fz.dev, h->ctx) == 0, "device_detach failed");
}

void drive_read(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	uint8_t f = fin_u8(in);
	size_t size = (f & 0x10) ? FUZZ_READ_MAX - fin_u8(in) : drive_size(in);
	if (!h)
		return;
	void *req = fuzz_req_new(FUZZ_REQ_READ, size, f & 1);
	if (!req)
		return;
	fuzz_req_of(req)->ctx = h->ctx;
	int oflags = h->oflags ^ ((f & 2) ? O_NONBLOCK : 0);
	device_read(fz.dev, h->ctx, req, size, oflags, f & 4);
}

void drive_write(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	uint8_t f = fin_u8(in);
	size_t size = drive_size(in);
	if (!h)
		return;
	void *req = fuzz_req_new(FUZZ_REQ_WRITE, size, f & 1);
	if (!req)
		return;
	uint8_t *buf = fuzz_payload(size);
	int oflags = h->oflags ^ ((f & 2) ? O_NONBLOCK : 0);
	fz.writing = buf; /* what reply_data_held may point into */
	fz.writing_size = size;
	device_write(fz.dev, h->ctx, req, buf, size, oflags);
	fz.writing = NULL;
	free(buf); /* the core keeps a copy of what it parks: only the request outlives the call */
}

void drive_poll(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	bool keep = fin_u8(in) & 1;
	if (!h)
		return;
	device_poll(fz.dev, h->ctx, keep ? fuzz_poll_new() : NULL);
}

void drive_release(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	if (h)
		fuzz_handle_release(h);
}

void drive_interrupt(struct fuzz_input *in)
{
	uint8_t f = fin_u8(in), sel = fin_u8(in);
	void *req;
	if (f & 1)
		req = fuzz_req_pick_unanswered(sel);
	else if (f & 2)
		req = fz.nreqs ? (void *)(uintptr_t)(sel % fz.nreqs + 1) : NULL; /* maybe answered already */
	else
		req = (void *)(uintptr_t)(FUZZ_REQS + 1 + sel); /* never made: must be ignored */
	if (!req)
		return;
	if ((uintptr_t)req <= fz.nreqs)
		fuzz_req_of(req)->interrupted = true; /* as fuse_req_interrupted says from now on */
	device_interrupt(fz.dev, req);
}

void drive_device_ioctl(struct fuzz_input *in)
{
	struct fuzz_handle *h = app_handle(in);
	uint8_t f = fin_u8(in);
	unsigned nr = RINGDEV_IOC_DEVICE_NR_FIRST + fin_pick(in, 0x80);
	size_t in_size = (f & 1) ? drive_size(in) : 0, out_size = (f & 2) ? drive_size(in) : 0;
	if (in_size > _IOC_SIZEMASK)
		in_size = _IOC_SIZEMASK;
	if (out_size > _IOC_SIZEMASK)
		out_size = _IOC_SIZEMASK;
	unsigned dir = (in_size ? _IOC_WRITE : 0) | (out_size ? _IOC_READ : 0);
	size_t arg = in_size > out_size ? in_size : out_size;
	unsigned cmd = (f & 4) ? fin_u32(in) : _IOC(dir, RINGDEV_IOC_MAGIC, nr, arg);
	struct cred cred = (f & 8) ? fuzz_cred(in) : h ? h->cred : fuzz_root;
	uint8_t *buf = fuzz_payload(in_size);
	fuzz_ioctl((f & 0x20) || !h ? NULL : h->ctx, &cred, cmd, in_size ? buf : NULL, in_size, out_size, f & 0x10);
	free(buf);
}

void drive_admin_ioctl(struct fuzz_input *in)
{
	static const unsigned cmds[] = {
		RINGDEV_IOC_VERSION, RINGDEV_IOC_PIPE_INFO,    RINGDEV_IOC_NREAD,  RINGDEV_IOC_SET_CONFIG,
		RINGDEV_IOC_STATS,   RINGDEV_IOC_LIST_PIPES,   RINGDEV_IOC_LIST_OPENS, RINGDEV_IOC_PIPE_BY_NAME,
		RINGDEV_IOC_CREATE,  RINGDEV_IOC_REMOVE,       RINGDEV_IOC_CONFIGURE, RINGDEV_IOC_FLUSH,
	};
	unsigned cmd = cmds[fin_pick(in, sizeof(cmds) / sizeof(cmds[0]))];
	struct fuzz_handle *h = app_handle(in);
	uint8_t f = fin_u8(in);
	struct cred cred = (f & 1) ? fuzz_cred(in) : h ? h->cred : fuzz_root;
	size_t need_in, need_out;
	device_ioctl_arg_sizes(cmd, &need_in, &need_out);
	size_t size = need_in > need_out ? need_in : need_out;
	uint8_t *arg = calloc(1, size ? size : 1);
	FUZZ_ASSERT(arg, "out of memory");
	/* Every argument with a name has it first; the other fields follow. */
	if (cmd == RINGDEV_IOC_LIST_PIPES || cmd == RINGDEV_IOC_LIST_OPENS) {
		uint32_t start = fin_pick(in, 8) ? fin_u8(in) : fin_u32(in);
		memcpy(arg, &start, sizeof(start));
	} else if (cmd == RINGDEV_IOC_SET_CONFIG) {
		struct ringdev_pipe_config c = { .set = fin_u8(in) & 0x1f, .kind = fin_pick(in, 4),
						 .policy = fin_pick(in, 5), .mode = fin_u16(in) & 01777 };
		c.capacity = drive_capacity(in);
		memcpy(arg, &c, sizeof(c));
	} else if (cmd == RINGDEV_IOC_CREATE) {
		struct ringdev_create c = { 0 };
		drive_name(in, c.name);
		c.kind = fin_pick(in, 4);
		c.policy = fin_pick(in, 5);
		c.mode = fin_u16(in) & 01777;
		c.flags = fin_pick(in, 3);
		struct cred owner = fuzz_cred(in);
		c.uid = owner.uid;
		c.gid = owner.gid;
		c.capacity = drive_capacity(in);
		memcpy(arg, &c, sizeof(c));
	} else if (cmd == RINGDEV_IOC_CONFIGURE) {
		struct ringdev_configure c = { 0 };
		drive_name(in, c.name);
		c.set = fin_u8(in) & 0x3f;
		c.kind = fin_pick(in, 4);
		c.policy = fin_pick(in, 5);
		c.mode = fin_u16(in) & 01777;
		struct cred owner = fuzz_cred(in);
		c.uid = owner.uid;
		c.gid = owner.gid;
		c.capacity = drive_capacity(in);
		memcpy(arg, &c, sizeof(c));
	} else if (need_in >= RINGDEV_NAME_SIZE) {
		drive_name(in, (char *)arg); /* PIPE_BY_NAME, REMOVE, FLUSH */
	}
	if (f & 2 && size)
		arg[fin_u16(in) % size] ^= (uint8_t)(1u << fin_pick(in, 8)); /* one bit off */
	fuzz_ioctl((f & 4) || !h ? NULL : h->ctx, &cred, cmd, need_in ? arg : NULL, need_in, need_out, false);
	free(arg);
}

/* ---- the broker ---- */

static uint64_t answer_id(struct fuzz_input *in, const struct ringdev_ctl_request **req)
{
	unsigned sel = fin_pick(in, 8);
	*req = NULL;
	if (sel < 5 && (*req = fuzz_taken_pick(fin_u8(in))))
		return (*req)->id;
	if (sel < 7)
		return fz.last_id + fin_pick(in, 4) - 1; /* the newest, or one never given */
	return fin_u64(in);
}

static int32_t answer_result(struct fuzz_input *in, const struct ringdev_ctl_request *req)
{
	switch (fin_pick(in, 10)) {
	case 0:
		return -(int32_t)(1 + fin_u8(in));
	case 1:
		return -(int32_t)(RINGDEV_ERRNO_MAX - 2 + fin_pick(in, 4)); /* 509..512 */
	case 2:
		return req ? (int32_t)req->size : 1;
	case 3:
		return req ? (int32_t)req->size - 1 + fin_pick(in, 3) : 2;
	case 4:
		return fin_u16(in);
	case 5:
		return (int32_t)fin_u32(in);
	default:
		return 0;
	}
}

static uint32_t answer_size(struct fuzz_input *in, const struct ringdev_ctl_request *req, int32_t result)
{
	switch (fin_pick(in, 8)) {
	case 0:
		return req ? req->out_size : 0;
	case 1:
		return RINGDEV_CTL_INLINE + fin_pick(in, 3) - 1;
	case 2:
		return fin_u16(in);
	case 3:
		return fin_u32(in);
	case 4:
		return 0;
	default:
		return result > 0 ? (uint32_t)result : 0;
	}
}

static void answer_build(struct fuzz_input *in, struct ringdev_ctl_answer *a, bool raw)
{
	const struct ringdev_ctl_request *req;
	memset(a, 0, sizeof(*a));
	if (raw) {
		fin_bytes(in, a, offsetof(struct ringdev_ctl_answer, data));
		a->id = answer_id(in, &req);
		if (!(fin_u8(in) & 3))
			memset(a->reserved, 0, sizeof(a->reserved));
	} else {
		a->id = answer_id(in, &req);
		a->result = answer_result(in, req);
		static const uint32_t flags[] = {
			0, 0, 0, RINGDEV_ANSWER_BROKERED, RINGDEV_ANSWER_SETTINGS,
			RINGDEV_ANSWER_SETTINGS | RINGDEV_ANSWER_BROKERED, RINGDEV_ANSWER_STAGED, RINGDEV_ANSWER_BUILTIN,
		};
		unsigned sel = fin_pick(in, 9);
		a->flags = sel < 8 ? flags[sel] : fin_u32(in) & 0x1f;
		sel = fin_pick(in, 4);
		if (sel == 2)
			drive_name(in, a->name);
		else if (sel == 3)
			fin_bytes(in, a->name, sizeof(a->name));
		if (a->flags & RINGDEV_ANSWER_SETTINGS) {
			a->kind = fin_pick(in, 4);
			a->policy = fin_pick(in, 5);
			a->mode = fin_u16(in) & 01777;
			struct cred owner = fuzz_cred(in);
			a->uid = owner.uid;
			a->gid = owner.gid;
			a->capacity = drive_capacity(in);
		}
		a->size = answer_size(in, req, a->result);
		if (!fin_pick(in, 16))
			a->reserved[fin_pick(in, 4)] = fin_u64(in);
	}
	uint8_t *bytes = fuzz_payload(RINGDEV_CTL_INLINE);
	memcpy(a->data, bytes, a->size < RINGDEV_CTL_INLINE ? a->size : RINGDEV_CTL_INLINE);
	free(bytes);
}

void drive_transact(struct fuzz_input *in, bool raw)
{
	struct fuzz_handle *b = fuzz_broker();
	uint8_t f = fin_u8(in);
	struct ringdev_ctl_transact *t = calloc(1, sizeof(*t));
	FUZZ_ASSERT(t, "out of memory");
	t->nanswers = (f & 0x80) ? fin_u32(in) : fin_pick(in, RINGDEV_CTL_BATCH + 1);
	t->max_requests = (f & 0x40) ? fin_u32(in) : fin_pick(in, RINGDEV_CTL_BATCH + 1);
	/* Parks 20 s at least: only fuzz_expire ends it, never the timer. */
	t->timeout_ms = (f & 1) ? 20000 + fin_u16(in) : 0;
	if (f & 0x20)
		t->reserved[fin_pick(in, sizeof(t->reserved) / sizeof(t->reserved[0]))] = fin_u64(in);
	for (uint32_t i = 0; i < t->nanswers && i < RINGDEV_CTL_BATCH; i++)
		answer_build(in, &t->answers[i], raw || (f & 2));
	struct cred cred = b ? b->cred : fuzz_root;
	struct fuzz_handle *h = b;
	if ((f & 0x0c) == 0x0c) /* from some other handle: not a control command there */
		h = fuzz_handle_pick(fin_u8(in));
	size_t in_size = sizeof(*t), out_size = sizeof(*t);
	if ((f & 0x18) == 0x10)
		in_size -= 1 + fin_u8(in);
	if (h)
		fuzz_ioctl(h->ctx, &cred, RINGDEV_IOC_CTL_TRANSACT, t, in_size, out_size, f & 0x04 && !(f & 0x08));
	free(t);
}

void drive_fetch(struct fuzz_input *in)
{
	struct fuzz_handle *b = fuzz_broker();
	uint8_t f = fin_u8(in);
	struct ringdev_ctl_bulk *bulk = calloc(1, sizeof(*bulk));
	FUZZ_ASSERT(bulk, "out of memory");
	const struct ringdev_ctl_request *req;
	bulk->id = answer_id(in, &req);
	switch (fin_pick(in, 6)) {
	case 0:
		bulk->offset = req ? req->inline_size : RINGDEV_CTL_INLINE;
		break;
	case 1:
		bulk->offset = req ? req->size + fin_pick(in, 3) - 1 : 1;
		break;
	case 2:
		bulk->offset = fin_u16(in);
		break;
	case 3:
		bulk->offset = fin_u64(in);
		break;
	default:
		break;
	}
	bulk->size = (f & 1) ? fin_u32(in) : RINGDEV_CTL_BULK;
	if (f & 2)
		bulk->reserved0 = fin_u32(in);
	if (b)
		fuzz_ioctl(b->ctx, &b->cred, RINGDEV_IOC_CTL_FETCH, bulk, sizeof(*bulk), sizeof(*bulk), false);
	free(bulk);
}

void drive_stage(struct fuzz_input *in)
{
	struct fuzz_handle *b = fuzz_broker();
	uint8_t f = fin_u8(in);
	struct ringdev_ctl_bulk *bulk = calloc(1, sizeof(*bulk));
	FUZZ_ASSERT(bulk, "out of memory");
	const struct ringdev_ctl_request *req;
	bulk->id = answer_id(in, &req);
	switch (fin_pick(in, 6)) {
	case 0:
		bulk->offset = RINGDEV_CTL_BULK;
		break;
	case 1:
		bulk->offset = fin_u16(in);
		break;
	case 2:
		bulk->offset = fin_u64(in);
		break;
	default:
		break;
	}
	switch (fin_pick(in, 4)) {
	case 0:
		bulk->size = fin_u32(in);
		break;
	case 1:
		bulk->size = fin_u16(in) % (RINGDEV_CTL_BULK + 1);
		break;
	case 2:
		bulk->size = req ? (req->type == RINGDEV_CTL_READ ? req->size : req->out_size) : 0;
		break;
	default:
		bulk->size = RINGDEV_CTL_BULK;
		break;
	}
	uint8_t *bytes = fuzz_payload(RINGDEV_CTL_BULK);
	memcpy(bulk->data, bytes, RINGDEV_CTL_BULK);
	free(bytes);
	if (f & 1)
		bulk->reserved[0] = fin_u64(in);
	if (b)
		fuzz_ioctl(b->ctx, &b->cred, RINGDEV_IOC_CTL_STAGE, bulk, sizeof(*bulk), 0, false);
	free(bulk);
}

void drive_broker_close(struct fuzz_input *in)
{
	struct fuzz_handle *b = fuzz_broker();
	if (b)
		fuzz_handle_release(b);
}

/* ---- the namespace ---- */

static void check_rc(int r, const char *what)
{
	FUZZ_ASSERT(r <= 0 && r >= -RINGDEV_ERRNO_MAX, "%s returned %d", what, r);
}

void drive_namespace(struct fuzz_input *in)
{
	unsigned sel = fin_pick(in, 11);
	struct cred cred = fuzz_cred(in);
	char name[RINGDEV_NAME_SIZE];
	struct pipe_attr attr;
	switch (sel) {
	case 0: {
		size_t len = drive_name(in, name);
		check_rc(device_mknod(fz.dev, &cred, name, len, fin_u16(in), &attr), "device_mknod");
		break;
	}
	case 1: {
		size_t len = drive_name(in, name);
		check_rc(device_unlink(fz.dev, &cred, name, len), "device_unlink");
		break;
	}
	case 2: {
		uint64_t ino = drive_ino(in);
		uint8_t f = fin_u8(in);
		uint32_t mode = fin_u16(in);
		struct cred owner = fuzz_cred(in);
		check_rc(device_setattr(fz.dev, &cred, ino, f & 1, mode, f & 2, owner.uid, f & 4, owner.gid, &attr),
			 "device_setattr");
		break;
	}
	case 3: {
		size_t len = drive_name(in, name);
		check_rc(device_lookup(fz.dev, &cred, name, len, &attr), "device_lookup");
		break;
	}
	case 4:
		check_rc(device_getattr(fz.dev, &cred, drive_ino(in), &attr), "device_getattr");
		break;
	case 5: {
		uint64_t ino = drive_ino(in);
		check_rc(device_access(fz.dev, &cred, ino, fin_u8(in)), "device_access");
		break;
	}
	case 6: {
		struct name_list list;
		device_dir_open(&cred, &list);
		check_rc(device_list(fz.dev, &cred, &list), "device_list");
		for (size_t i = 0; i < list.count; i++)
			FUZZ_ASSERT(memchr(list.entries[i].name, '\0', sizeof(list.entries[i].name)),
				    "device_list: a name without its NUL");
		device_list_free(fz.dev, &list);
		break;
	}
	case 7: {
		size_t len = drive_name(in, name);
		struct attach_args a = { .name = name, .len = len, .flags = fin_pick(in, 4), .kind = fin_pick(in, 4),
					 .policy = fin_pick(in, 5), .mode = fin_u16(in) & 01777 };
		a.capacity = drive_capacity(in);
		check_rc(device_create(fz.dev, &cred, &a), "device_create");
		break;
	}
	case 8:
		device_may_create(fz.dev, &cred);
		break;
	case 9: {
		struct fuzz_handle *h = app_handle(in);
		if (h)
			check_rc(device_ctx_attr(fz.dev, h->ctx, &attr), "device_ctx_attr");
		break;
	}
	default: {
		struct fuzz_handle *h = app_handle(in);
		if (h)
			device_ctx_note_once(fz.dev, h->ctx);
		break;
	}
	}
}

/* ---- time and the end ---- */

void drive_expire(struct fuzz_input *in)
{
	fuzz_expire(fin_u16(in));
}

void drive_shutdown(struct fuzz_input *in)
{
	device_shutdown(fz.dev);
}
