/* SPDX-License-Identifier: MIT */
/*
 * test_handover.c - the state a ringdevd image hands to the next (issue 20):
 * the record format (core/state.c) refuses every state that is not exactly
 * what a writer wrote, and device_save -> device_restore rebuilds a device
 * that answers, wakes and charges as the old one would have.
 *
 * The restored device shares the old one's ring arena (a dup of its memfd,
 * as the next image inherits it), so ring bytes are never copied; the fake
 * frontend's stand-in for a request of the old device is its number again,
 * so an answer the new device gives lands in the same fake_replies slot.
 *
 * RINGDEV_STATE_SEEDS=DIR makes state_seeds write the states it builds
 * there: the seed corpus of the fuzz target (tests/fuzz/corpus/state).
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <ringdev/ringdev.h>

#include "arena.h"
#include "device_internal.h"
#include "fake_frontend.h"
#include "log.h"
#include "state.h"

/* ---- the record format ---- */

static void sample(struct state_writer *w)
{
	sw_init(w);
	sw_begin(w, 7);
	sw_u8(w, 0xab);
	sw_u32(w, 0xdeadbeef);
	sw_u64(w, 0x0123456789abcdefull);
	sw_bytes(w, "hello", 5);
	sw_end(w);
	sw_begin(w, 9);
	sw_end(w);
	cr_assert_eq(sw_finish(w), 0);
}

Test(state, round_trip)
{
	struct state_writer w;
	sample(&w);
	struct state_reader r;
	struct state_record rec;
	cr_assert_eq(sr_open(&r, w.buf, w.len), 0, "%s", r.problem);
	cr_assert_eq(r.version, STATE_VERSION);
	cr_assert_eq(sr_next(&r, &rec), 1);
	cr_assert_eq(rec.type, 7);
	cr_assert_eq(sr_u8(&rec), 0xab);
	cr_assert_eq(sr_u32(&rec), 0xdeadbeef);
	cr_assert_eq(sr_u64(&rec), 0x0123456789abcdefull);
	size_t n;
	const uint8_t *s = sr_bytes(&rec, 64, &n);
	cr_assert(s && n == 5 && memcmp(s, "hello", 5) == 0);
	cr_assert(sr_done(&rec));
	sr_u8(&rec);
	cr_assert(rec.bad && !sr_done(&rec), "a field past the record's end");
	cr_assert_eq(sr_next(&r, &rec), 1);
	cr_assert(rec.type == 9 && sr_done(&rec));
	cr_assert_eq(sr_next(&r, &rec), 0);
	cr_assert_null(r.problem);
	sw_free(&w);
}

Test(state, every_truncation_is_refused)
{
	struct state_writer w;
	sample(&w);
	for (size_t len = 0; len < w.len; len++) {
		struct state_reader r;
		cr_assert_eq(sr_open(&r, w.buf, len), -EINVAL, "a state cut to %zu of %zu bytes", len, w.len);
		cr_assert_not_null(r.problem);
	}
	sw_free(&w);
}

/* Every bit of the state flipped: refused (the checksum, the header's own
 * checks, the record count). */
Test(state, every_bit_flip_is_refused)
{
	struct state_writer w;
	sample(&w);
	for (size_t i = 0; i < w.len; i++)
		for (int b = 0; b < 8; b++) {
			w.buf[i] ^= (uint8_t)(1u << b);
			struct state_reader r;
			struct state_record rec;
			int e = sr_open(&r, w.buf, w.len);
			while (e == 0 && (e = sr_next(&r, &rec)) > 0)
				e = 0;
			cr_assert_eq(e, -EINVAL, "bit %d of byte %zu flipped: accepted", b, i);
			cr_assert_not_null(r.problem);
			w.buf[i] ^= (uint8_t)(1u << b);
		}
	sw_free(&w);
}

Test(state, versions_it_does_not_know_are_refused)
{
	struct state_writer w;
	sample(&w);
	uint32_t versions[] = { STATE_VERSION + 1, STATE_VERSION_MIN - 1, UINT32_MAX };
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		memcpy(w.buf + 8, &versions[i], 4);
		struct state_reader r;
		cr_assert_eq(sr_open(&r, w.buf, w.len), -EINVAL, "version %u accepted", versions[i]);
		cr_assert(r.problem && strstr(r.problem, "version"), "version %u: %s", versions[i], r.problem);
	}
	sw_free(&w);
}

/* ---- device_save -> device_restore ---- */

static struct device *broker_device(void)
{
	log_set_level(LOG_LEVEL_WARN);
	struct device_config cfg = {
		.ring_size = 4096,
		.max_pipes = 64,
		.max_memory = 1 << 20,
		.mode = 0666,
		.frontend = RINGDEV_FRONTEND_FUSE,
		.ctl_mode = 0600,
		.max_parked = 1 << 20,
		.broker_timeout_ms = 60000,
	};
	struct device *dev = device_new(&cfg, &fake_ops);
	cr_assert_not_null(dev);
	return dev;
}

/* A device with something of every kind the state carries. */
struct scene {
	struct device *dev;
	struct open_ctx *ctl, *s, *er, *ew, *f, *m, *app;
};

#define DEV_ECHO _IOWR(RINGDEV_IOC_MAGIC, 0x80, struct { uint8_t b[16]; })

static void scene_build(struct scene *sc)
{
	fake_reset();
	struct device *dev = sc->dev = broker_device();
	struct cred root = fake_cred(0), user = fake_cred(1000);

	/* A stream with data. */
	sc->s = fake_open(dev, "s", O_RDWR, RINGDEV_KIND_STREAM, 0, 0);
	device_write(dev, sc->s, REQ(1), "hello", 5, 0);
	cr_assert_eq(fake_replies[1].kind, FAKE_WRITTEN);
	/* A read parked on an empty pipe, and a poll on it. */
	sc->er = fake_open(dev, "e", O_RDONLY, 0, 0, 0);
	sc->ew = fake_open(dev, "e", O_WRONLY, 0, 0, 0);
	device_read(dev, sc->er, REQ(10), 100, 0, false);
	cr_assert_eq(fake_replies[10].answers, 0, "the read parks");
	cr_assert_eq(device_poll(dev, sc->ew, NULL) & POLLIN, 0);
	device_poll(dev, sc->er, REQ(200));
	/* A write parked on a full pipe. */
	sc->f = fake_open(dev, "f", O_RDWR, 0, RINGDEV_POLICY_BLOCK, 64);
	uint8_t full[64];
	memset(full, 'f', sizeof(full));
	device_write(dev, sc->f, REQ(2), full, sizeof(full), 0);
	device_write(dev, sc->f, REQ(11), "parked", 6, 0);
	cr_assert_eq(fake_replies[11].answers, 0, "the write parks");
	/* Messages. */
	sc->m = fake_open(dev, "m", O_RDWR, RINGDEV_KIND_MESSAGE, 0, 0);
	device_write(dev, sc->m, REQ(3), "one", 3, 0);
	device_write(dev, sc->m, REQ(4), "second", 6, 0);
	/* A persistent pipe with settings of its own, owned by a user. */
	struct attach_args p = { .name = "p", .len = 1, .kind = RINGDEV_KIND_MESSAGE,
				 .policy = RINGDEV_POLICY_OVERWRITE, .mode = 0640, .capacity = 8192 };
	cr_assert_eq(device_create(dev, &user, &p), 0);
	/* A pipe held for its creator's first open. */
	struct pipe_attr attr;
	cr_assert_eq(device_mknod(dev, &user, "h", 1, 0600, &attr), 0);
	/* A removed pipe (a tombstone). */
	struct open_ctx *t = fake_open(dev, "t", O_RDWR, 0, 0, 0);
	device_write(dev, t, REQ(5), "x", 1, 0);
	device_release(dev, t);
	cr_assert_eq(device_unlink(dev, &root, "t", 1), 0);
	/* A broker holding an app's ioctl, and a TRANSACT of its parked. */
	cr_assert_eq(device_ctl_open(dev, &root, O_RDWR, &sc->ctl), 0);
	sc->app = fake_open(dev, "a", O_RDWR, 0, 0, 0);
	static uint8_t arg[16];
	cr_assert(device_ioctl_async(dev, sc->app, &root, REQ(12), DEV_ECHO, arg, sizeof(arg), sizeof(arg)));
	static struct ringdev_ctl_transact t1, t2;
	t1.max_requests = 1;
	cr_assert(device_ioctl_async(dev, sc->ctl, &root, REQ(6), RINGDEV_IOC_CTL_TRANSACT, &t1, sizeof(t1),
				     sizeof(t1)));
	cr_assert_eq(fake_replies[6].kind, FAKE_IOCTL);
	cr_assert_eq(((struct ringdev_ctl_transact *)fake_replies[6].data)->nrequests, 1);
	t2.max_requests = 1;
	t2.timeout_ms = 60000;
	cr_assert(device_ioctl_async(dev, sc->ctl, &root, REQ(13), RINGDEV_IOC_CTL_TRANSACT, &t2, sizeof(t2),
				     sizeof(t2)));
	cr_assert_eq(fake_replies[13].answers, 0, "the TRANSACT parks");
}

static void save(struct device *dev, struct state_writer *w)
{
	sw_init(w);
	cr_assert_eq(device_save(dev, w), 0);
	cr_assert_eq(sw_finish(w), 0);
}

/* A new device on the old one's arena, restored from w. */
static struct device *restore_from(struct device *old, const struct state_writer *w)
{
	struct device *dev = broker_device();
	struct arena *a;
	int fd = dup(arena_fd(device_arena(old)));
	cr_assert_geq(fd, 0);
	cr_assert_eq(arena_adopt(fd, &a), 0);
	cr_assert_eq(device_use_arena(dev, a), 0);
	struct state_reader r;
	cr_assert_eq(sr_open(&r, w->buf, w->len), 0, "%s", r.problem);
	int e = device_restore(dev, &r, NULL, NULL);
	cr_assert_eq(e, 0, "device_restore: %d (%s)", e, r.problem);
	return dev;
}

static struct open_ctx *same(struct device *dev, struct open_ctx *old)
{
	struct open_ctx *c = device_ctx_from_fh(dev, device_ctx_fh(old));
	cr_assert_not_null(c, "handle %llu is not there", (unsigned long long)old->id);
	return c;
}

static void old_free(struct device *old)
{
	/* Its requests belong to the new device now: what the old one
	 * would answer on shutdown is not looked at. */
	fake_reset();
	device_shutdown(old);
	device_free(old);
}

Test(handover, a_restored_device_is_the_old_one)
{
	struct scene sc;
	scene_build(&sc);
	struct device *old = sc.dev;
	struct ringdev_stats before, after;
	device_stats(old, &before);
	struct state_writer w;
	save(old, &w);
	struct device *dev = restore_from(old, &w);
	device_stats(dev, &after);

	/* Counters and charges. */
	cr_assert(before.pipes == after.pipes && before.opens == after.opens &&
			  before.parked_reads == after.parked_reads && before.parked_writes == after.parked_writes &&
			  before.parked_other == after.parked_other && before.pollers == after.pollers &&
			  before.parked_total == after.parked_total && before.broker_connected == after.broker_connected,
		  "stats: pipes %llu/%llu opens %llu/%llu parked %llu/%llu pollers %llu/%llu",
		  (unsigned long long)before.pipes, (unsigned long long)after.pipes, (unsigned long long)before.opens,
		  (unsigned long long)after.opens, (unsigned long long)before.parked_total,
		  (unsigned long long)after.parked_total, (unsigned long long)before.pollers,
		  (unsigned long long)after.pollers);
	cr_assert_eq(memcmp(&old->count, &dev->count, sizeof(old->count)), 0, "the device's counters");
	for (int k = 0; k < LIMIT_KINDS; k++) {
		cr_assert_eq(limit_used(&old->limits, (enum limit_kind)k), limit_used(&dev->limits, (enum limit_kind)k),
			     "charges of kind %d", k);
		for (uint32_t uid = 0; uid <= 1000; uid += 1000)
			cr_assert_eq(limit_used_by(&old->limits, (enum limit_kind)k, uid),
				     limit_used_by(&dev->limits, (enum limit_kind)k, uid), "charges of kind %d, uid %u",
				     k, uid);
	}
	cr_assert_eq(memcmp(old->table.gone, dev->table.gone, sizeof(old->table.gone)), 0, "the tombstones");
	cr_assert_eq(dev->restarts, old->restarts + 1);

	/* The held pipe: still held, for its user. */
	struct pipe *h_old = pipe_table_find_ino(&old->table, pipe_table_find(&old->table, "h", 1)->ino);
	struct pipe *h = pipe_table_find(&dev->table, "h", 1);
	cr_assert_not_null(h);
	cr_assert(h->hold_uid == 1000 && h->hold_deadline_ns == h_old->hold_deadline_ns, "the hold");
	/* The persistent pipe and its settings. */
	struct pipe *p = pipe_table_find(&dev->table, "p", 1);
	cr_assert(p && p->persistent && p->kind == RINGDEV_KIND_MESSAGE && p->policy == RINGDEV_POLICY_OVERWRITE &&
		  p->mode == 0640 && p->ring.capacity == 8192 && p->uid == 1000, "the persistent pipe");

	/* The stream's data, from the shared arena. */
	struct open_ctx *s = same(dev, sc.s);
	device_read(dev, s, REQ(20), 100, 0, false);
	cr_assert(fake_replies[20].kind == FAKE_DATA && fake_replies[20].count == 5 &&
		  memcmp(fake_replies[20].data, "hello", 5) == 0);
	/* The messages, whole. */
	struct open_ctx *m = same(dev, sc.m);
	device_read(dev, m, REQ(21), 100, 0, false);
	device_read(dev, m, REQ(22), 100, 0, false);
	cr_assert(fake_replies[21].count == 3 && memcmp(fake_replies[21].data, "one", 3) == 0);
	cr_assert(fake_replies[22].count == 6 && memcmp(fake_replies[22].data, "second", 6) == 0);
	/* The parked read and the poll wake with a write through the new device. */
	int notifies = fake_notifies;
	device_write(dev, same(dev, sc.ew), REQ(23), "wake", 4, 0);
	cr_assert(fake_replies[10].kind == FAKE_DATA && fake_replies[10].count == 4, "the parked read: kind %d",
		  fake_replies[10].kind);
	device_write(dev, same(dev, sc.ew), REQ(27), "more", 4, 0);
	cr_assert_gt(fake_notifies, notifies, "the poll was woken");
	/* The parked write goes in once there is room. */
	device_read(dev, same(dev, sc.f), REQ(24), 64, 0, false);
	cr_assert_eq(fake_replies[24].count, 64);
	cr_assert(fake_replies[11].kind == FAKE_WRITTEN && fake_replies[11].count == 6, "the parked write");
	/* The broker answers what it held: the app gets it; the parked
	 * TRANSACT takes the next request. */
	struct cred root = fake_cred(0);
	struct open_ctx *ctl = same(dev, sc.ctl);
	static struct ringdev_ctl_transact t;
	memset(&t, 0, sizeof(t));
	const struct ringdev_ctl_transact *first = (const void *)fake_replies[6].data;
	uint64_t held = first->requests[0].id;
	static uint8_t arg[16];
	cr_assert(device_ioctl_async(dev, same(dev, sc.app), &root, REQ(25), DEV_ECHO, arg, sizeof(arg), sizeof(arg)));
	cr_assert_eq(fake_replies[13].kind, FAKE_IOCTL, "the TRANSACT parked before the handover took a request");
	const struct ringdev_ctl_transact *got = (const void *)fake_replies[13].data;
	cr_assert_eq(got->nrequests, 1);
	t.nanswers = 2;
	t.answers[0].id = got->requests[0].id;
	t.answers[0].result = 25;
	t.answers[1].id = held;
	t.answers[1].result = 12;
	cr_assert(device_ioctl_async(dev, ctl, &root, REQ(26), RINGDEV_IOC_CTL_TRANSACT, &t, sizeof(t), sizeof(t)));
	const struct ringdev_ctl_transact *res = (const void *)fake_replies[26].data;
	cr_assert_eq(res->refused, 0, "refused %#x", res->refused);
	cr_assert(fake_replies[12].kind == FAKE_IOCTL && fake_replies[12].err == 12, "the held ioctl: kind %d err %d",
		  fake_replies[12].kind, fake_replies[12].err);
	cr_assert(fake_replies[25].kind == FAKE_IOCTL && fake_replies[25].err == 25);

	device_shutdown(dev);
	device_free(dev);
	sw_free(&w);
	old_free(old);
}

/* Saving the restored device gives the same records (counters aside). */
Test(handover, save_restore_save_is_stable)
{
	struct scene sc;
	scene_build(&sc);
	struct state_writer w1, w2;
	save(sc.dev, &w1);
	struct device *dev = restore_from(sc.dev, &w1);
	/* What differs by design: the count of restarts, and the generation
	 * new handles get (this image's own, never the old one's). */
	dev->restarts--;
	uint32_t gen = dev->fh_gen;
	cr_assert_neq(gen, sc.dev->fh_gen, "the new image names new handles apart from the old one's");
	dev->fh_gen = sc.dev->fh_gen;
	save(dev, &w2);
	dev->fh_gen = gen;
	cr_assert_eq(w1.len, w2.len);
	size_t at = 32; /* the header's checksum differs with the body */
	while (at < w1.len && w1.buf[at] == w2.buf[at])
		at++;
	cr_assert_eq(at, w1.len, "the second save differs from the first at byte %zu of %zu", at, w1.len);
	dev->restarts++;
	device_shutdown(dev);
	device_free(dev);
	sw_free(&w1);
	sw_free(&w2);
	old_free(sc.dev);
}

/* A state refused late (every pipe restored, then a record this image
 * does not know) leaves a device that frees cleanly and takes nothing of
 * the old image's rings with it: they share the memfd, and the old image
 * serves on from it. */
Test(handover, a_refused_state_leaves_the_old_rings_alone)
{
	struct scene sc;
	scene_build(&sc);
	struct state_writer w;
	sw_init(&w);
	cr_assert_eq(device_save(sc.dev, &w), 0);
	sw_begin(&w, 999); /* a core record type no image knows */
	sw_end(&w);
	cr_assert_eq(sw_finish(&w), 0);
	struct device *dev = broker_device();
	struct arena *a;
	int afd = dup(arena_fd(device_arena(sc.dev)));
	cr_assert_eq(arena_adopt(afd, &a), 0);
	cr_assert_eq(device_use_arena(dev, a), 0);
	struct state_reader r;
	cr_assert_eq(sr_open(&r, w.buf, w.len), 0);
	cr_assert_eq(device_restore(dev, &r, NULL, NULL), -EINVAL);
	cr_assert(r.problem && strstr(r.problem, "does not know"), "%s", r.problem);
	cr_assert_eq(arena_in_use(device_arena(dev)), 0, "the refused device holds no extent");
	device_shutdown(dev);
	device_free(dev);
	sw_free(&w);
	/* Refused: the memfd stays open at its number, the caller's again. */
	cr_assert_geq(fcntl(afd, F_GETFD), 0, "the arena's fd was closed");
	close(afd);

	/* The old device's bytes are all there. */
	device_read(sc.dev, sc.s, REQ(30), 100, 0, false);
	cr_assert(fake_replies[30].count == 5 && memcmp(fake_replies[30].data, "hello", 5) == 0,
		  "the stream's data after a refused restore: %zu bytes", fake_replies[30].count);
	device_read(sc.dev, sc.m, REQ(31), 100, 0, false);
	cr_assert(fake_replies[31].count == 3 && memcmp(fake_replies[31].data, "one", 3) == 0);
	old_free(sc.dev);
}

/* A state restored into a device that is not empty is refused. */
Test(handover, only_an_empty_device_restores)
{
	struct scene sc;
	scene_build(&sc);
	struct state_writer w;
	save(sc.dev, &w);
	struct state_reader r;
	cr_assert_eq(sr_open(&r, w.buf, w.len), 0);
	cr_assert_eq(device_restore(sc.dev, &r, NULL, NULL), -EINVAL);
	cr_assert_not_null(r.problem);
	sw_free(&w);
	fake_reset();
	device_shutdown(sc.dev);
	device_free(sc.dev);
}

/* The fuzz target's seeds: states of scenes, written where asked. */
Test(handover, state_seeds)
{
	const char *dir = getenv("RINGDEV_STATE_SEEDS");
	struct scene sc;
	scene_build(&sc);
	struct state_writer w;
	save(sc.dev, &w);
	if (dir && *dir) {
		char path[512];
		snprintf(path, sizeof(path), "%s/scene", dir);
		FILE *f = fopen(path, "wb");
		cr_assert_not_null(f, "%s", path);
		/* The fuzz target's input: the arena's first bytes, then the state. */
		uint32_t image = 64u << 10;
		cr_assert_eq(fwrite(&image, 1, 4, f), 4);
		cr_assert_eq(fwrite(arena_ptr(device_arena(sc.dev), 0), 1, image, f), image);
		cr_assert_eq(fwrite(w.buf, 1, w.len, f), w.len);
		fclose(f);
	}
	sw_free(&w);
	fake_reset();
	device_shutdown(sc.dev);
	device_free(sc.dev);
	if (dir && *dir) {
		/* And a device with nothing in it. */
		struct device *dev = broker_device();
		char path[512];
		save(dev, &w);
		snprintf(path, sizeof(path), "%s/empty", dir);
		FILE *f = fopen(path, "wb");
		cr_assert_not_null(f, "%s", path);
		uint32_t image = 0;
		cr_assert_eq(fwrite(&image, 1, 4, f), 4);
		cr_assert_eq(fwrite(w.buf, 1, w.len, f), w.len);
		fclose(f);
		sw_free(&w);
		device_shutdown(dev);
		device_free(dev);
	}
}
