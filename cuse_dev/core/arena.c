/* SPDX-License-Identifier: MIT */
/*
 * arena.c - see arena.h.
 *
 * The free extents are an array sorted by offset, never two adjacent ones
 * (free coalesces), so a range that is wholly free lies in one extent and a
 * binary search finds it. First fit must not scan every hole when there are
 * many (a fragmented arena of 1e5 pipes): a max-tree over the extents'
 * lengths (a segment tree in an array, one leaf per slot of the free array)
 * finds the lowest extent long enough in O(log n). Inserting or removing an
 * extent shifts the array (memmove) and the leaves after it: O(n) of plain
 * copying, accepted, and nothing else is.
 *
 * There are never more free extents than extents in use plus one, so the
 * array is grown to that bound by alloc and reserve, which may fail, and
 * free never allocates: it cannot fail.
 */
#include "arena.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

struct extent {
	uint64_t off, len;
};

struct arena {
	int fd;
	uint8_t *base;
	uint64_t size;
	uint64_t in_use;       /* bytes of the extents in use */
	size_t nused;          /* extents in use */
	struct extent *free;   /* sorted by off, disjoint, never adjacent */
	size_t nfree;
	size_t cap;            /* slots of free[]; a power of two */
	uint64_t *max;         /* 2 * cap: max[1] the root, the leaves max[cap + i] = free[i].len (0 past nfree) */
	bool punch_warned;
};

static uint64_t page_size(void)
{
	static uint64_t page;
	if (!page) {
		long p = sysconf(_SC_PAGESIZE);
		page = p > 0 ? (uint64_t)p : 4096;
	}
	return page;
}

uint64_t arena_extent_size(uint64_t n)
{
	uint64_t page = page_size();
	if (n == 0)
		return page;
	if (n > UINT64_MAX - (page - 1))
		return 0; /* no such extent: callers refuse it */
	return (n + page - 1) & ~(page - 1);
}

/* Recompute the leaves of slots [lo, hi) and their ancestors. */
static void tree_update(struct arena *a, size_t lo, size_t hi)
{
	if (lo >= hi)
		return;
	for (size_t i = lo; i < hi; i++)
		a->max[a->cap + i] = i < a->nfree ? a->free[i].len : 0;
	size_t l = lo + a->cap, h = hi + a->cap;
	while (l > 1) {
		l >>= 1;
		h = ((h - 1) >> 1) + 1;
		for (size_t p = l; p < h; p++) {
			uint64_t x = a->max[2 * p], y = a->max[2 * p + 1];
			a->max[p] = x > y ? x : y;
		}
	}
}

/* Room for `want` free extents. 0 or -ENOMEM (nothing changed). */
static int ensure_slots(struct arena *a, size_t want)
{
	if (want <= a->cap)
		return 0;
	size_t cap = a->cap;
	while (cap < want) {
		if (cap > SIZE_MAX / 4 / sizeof(uint64_t))
			return -ENOMEM;
		cap *= 2;
	}
	struct extent *f = realloc(a->free, cap * sizeof(*f));
	if (!f)
		return -ENOMEM;
	a->free = f;
	uint64_t *m = calloc(2 * cap, sizeof(*m));
	if (!m)
		return -ENOMEM; /* the larger free[] is kept: harmless */
	free(a->max);
	a->max = m;
	a->cap = cap;
	tree_update(a, 0, cap);
	return 0;
}

/* The first slot whose extent starts after off (nfree if none). */
static size_t upper_bound(const struct arena *a, uint64_t off)
{
	size_t lo = 0, hi = a->nfree;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a->free[mid].off <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static void slot_set(struct arena *a, size_t i, uint64_t off, uint64_t len)
{
	a->free[i] = (struct extent){ off, len };
	tree_update(a, i, i + 1);
}

/* The caller made room (ensure_slots). */
static void slot_insert(struct arena *a, size_t i, uint64_t off, uint64_t len)
{
	assert(a->nfree < a->cap);
	memmove(&a->free[i + 1], &a->free[i], (a->nfree - i) * sizeof(a->free[0]));
	a->free[i] = (struct extent){ off, len };
	a->nfree++;
	tree_update(a, i, a->nfree);
}

static void slot_remove(struct arena *a, size_t i)
{
	memmove(&a->free[i], &a->free[i + 1], (a->nfree - i - 1) * sizeof(a->free[0]));
	a->nfree--;
	tree_update(a, i, a->nfree + 1);
}

/* An arena over fd mapped at base, all of it free. */
static int arena_init(int fd, uint64_t size, struct arena **out)
{
	if (size > SIZE_MAX)
		return -ENOMEM;
	struct arena *a = calloc(1, sizeof(*a));
	if (!a)
		return -ENOMEM;
	a->fd = -1;
	a->cap = 1;
	a->free = calloc(1, sizeof(*a->free));
	a->max = calloc(2, sizeof(*a->max));
	if (!a->free || !a->max || ensure_slots(a, 16) < 0) {
		arena_destroy(a);
		return -ENOMEM;
	}
	void *base = mmap(NULL, (size_t)size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, fd, 0);
	if (base == MAP_FAILED) {
		int err = errno;
		arena_destroy(a);
		return -err;
	}
	a->base = base;
	a->size = size;
	a->fd = fd;
	slot_insert(a, 0, 0, size);
	*out = a;
	return 0;
}

int arena_create(uint64_t size, struct arena **out)
{
	uint64_t sz = arena_extent_size(size);
	if (size == 0 || sz == 0 || sz > (uint64_t)INT64_MAX)
		return -EINVAL;
	int fd = memfd_create("ringdev-rings", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	int r = 0;
	if (ftruncate(fd, (off_t)sz) < 0 || fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK) < 0)
		r = -errno;
	if (r == 0)
		r = arena_init(fd, sz, out);
	if (r < 0)
		close(fd);
	return r;
}

int arena_adopt(int fd, struct arena **out)
{
	struct stat st;
	if (fstat(fd, &st) < 0)
		return -errno;
	/* A memfd or tmpfs file answers F_GET_SEALS; nothing else does. */
	if (!S_ISREG(st.st_mode) || fcntl(fd, F_GET_SEALS) < 0)
		return -EINVAL;
	if (st.st_size <= 0 || (uint64_t)st.st_size % page_size() != 0)
		return -EINVAL;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return arena_init(fd, (uint64_t)st.st_size, out);
}

int arena_fd(const struct arena *a)
{
	return a->fd;
}

uint64_t arena_size(const struct arena *a)
{
	return a->size;
}

void *arena_ptr(const struct arena *a, uint64_t off)
{
	assert(off <= a->size);
	return a->base + off;
}

uint64_t arena_in_use(const struct arena *a)
{
	return a->in_use;
}

/* The lowest slot whose extent holds need bytes; nfree if none. */
static size_t first_fit(const struct arena *a, uint64_t need)
{
	if (a->max[1] < need)
		return a->nfree;
	size_t p = 1;
	while (p < a->cap)
		p = a->max[2 * p] >= need ? 2 * p : 2 * p + 1;
	return p - a->cap;
}

int arena_alloc(struct arena *a, uint64_t n, uint64_t *off)
{
	uint64_t need = arena_extent_size(n);
	if (need == 0)
		return -ENOMEM;
	size_t i = first_fit(a, need);
	if (i >= a->nfree)
		return -ENOMEM;
	/* Taking the front of an extent never adds one; the slot for the
	 * extent free may have to add later is made now, while failing is
	 * allowed. */
	if (ensure_slots(a, a->nused + 2) < 0)
		return -ENOMEM;
	struct extent e = a->free[i];
	if (e.len == need)
		slot_remove(a, i);
	else
		slot_set(a, i, e.off + need, e.len - need);
	a->in_use += need;
	a->nused++;
	*off = e.off;
	return 0;
}

void arena_free(struct arena *a, uint64_t off, uint64_t n)
{
	uint64_t len = arena_extent_size(n);
	assert(len && off % page_size() == 0 && off <= a->size && len <= a->size - off);
	assert(a->nused > 0 && a->in_use >= len);
	/* The pages go back to the system now, not when the extent is reused:
	 * memory use follows what the rings hold, as with free(3). */
	if (fallocate(a->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)len) < 0 &&
	    !a->punch_warned) {
		a->punch_warned = true;
		log_warn("ring memory: cannot release freed pages (fallocate): %s", strerror(errno));
	}
	size_t i = upper_bound(a, off);
	bool prev = i > 0 && a->free[i - 1].off + a->free[i - 1].len == off;
	bool next = i < a->nfree && off + len == a->free[i].off;
	assert(i == 0 || a->free[i - 1].off + a->free[i - 1].len <= off); /* not free already */
	assert(i == a->nfree || off + len <= a->free[i].off);
	if (prev && next) {
		slot_set(a, i - 1, a->free[i - 1].off, a->free[i - 1].len + len + a->free[i].len);
		slot_remove(a, i);
	} else if (prev) {
		slot_set(a, i - 1, a->free[i - 1].off, a->free[i - 1].len + len);
	} else if (next) {
		slot_set(a, i, off, len + a->free[i].len);
	} else {
		slot_insert(a, i, off, len); /* room made by alloc or reserve */
	}
	a->in_use -= len;
	a->nused--;
}

int arena_reserve(struct arena *a, uint64_t off, uint64_t n)
{
	uint64_t len = arena_extent_size(n);
	if (len == 0 || off % page_size() != 0 || off > a->size || len > a->size - off)
		return -EINVAL;
	/* Wholly free means inside one free extent (they are coalesced). */
	size_t i = upper_bound(a, off);
	if (i == 0)
		return -EINVAL;
	struct extent e = a->free[i - 1];
	if (e.off + e.len < off + len)
		return -EINVAL;
	/* Splitting an extent in two adds one: room for it, and for the one a
	 * later free may add. */
	if (ensure_slots(a, a->nused + 2) < 0)
		return -ENOMEM;
	uint64_t left = off - e.off, right = e.off + e.len - (off + len);
	if (left && right) {
		slot_set(a, i - 1, e.off, left);
		slot_insert(a, i, off + len, right);
	} else if (left) {
		slot_set(a, i - 1, e.off, left);
	} else if (right) {
		slot_set(a, i - 1, off + len, right);
	} else {
		slot_remove(a, i - 1);
	}
	a->in_use += len;
	a->nused++;
	return 0;
}

void arena_destroy(struct arena *a)
{
	if (!a)
		return;
	if (a->base)
		munmap(a->base, (size_t)a->size);
	if (a->fd >= 0)
		close(a->fd);
	free(a->free);
	free(a->max);
	free(a);
}
