/* SPDX-License-Identifier: MIT */
/*
 * arena.h - the memory every pipe's ring lives in: one memfd, mapped once.
 *
 * ringdevd restarts and upgrades in place by executing itself again (same
 * pid) and handing its state to the new image (issue 20). Queued data (up
 * to 1 GiB and more) is not copied or serialized for that: the rings' bytes
 * are in a memfd, which survives exec, and the new image maps it again
 * (arena_adopt) and marks the extents its rings use (arena_reserve) from the
 * state it was handed. Everything else about a ring (start, used, capacity)
 * is small and goes in that state record.
 *
 * Extents are whole pages taken first-fit from a list of free extents kept
 * sorted by offset (coalesced on free); freeing punches the pages out of the
 * memfd, so the daemon's memory goes down as it would with free(3).
 *
 * Not thread-safe: the device lock covers every call.
 */
#pragma once

#include <stdint.h>

struct arena; /* ring storage: one memfd, mapped once, MAP_SHARED|MAP_NORESERVE */

/* A new arena able to hold `size` bytes of virtual space (rounded up to
 * pages); its memfd is named "ringdev-rings", MFD_CLOEXEC|MFD_ALLOW_SEALING,
 * sealed against shrinking. Pages cost memory only once written. 0 or -errno. */
int arena_create(uint64_t size, struct arena **out);

/* Map an arena another image of ringdevd made (an inherited memfd, left as
 * it is): it must be a memfd or tmpfs file (F_GET_SEALS works) of a
 * page-multiple, non-zero size; nothing is in use until arena_reserve. 0 or
 * -errno (-EINVAL for anything that is not such a file). Sets FD_CLOEXEC
 * again. On success the arena owns fd (arena_destroy closes it). */
int arena_adopt(int fd, struct arena **out);

int arena_fd(const struct arena *a);
uint64_t arena_size(const struct arena *a);
void *arena_ptr(const struct arena *a, uint64_t off); /* base + off */

/* The bytes an extent of n bytes takes: n rounded up to whole pages, and at
 * least one page (an empty ring still has an extent of its own). */
uint64_t arena_extent_size(uint64_t n);

/* Take n bytes (rounded as arena_extent_size): 0 and *off, or -ENOMEM when
 * no free extent is large enough. */
int arena_alloc(struct arena *a, uint64_t n, uint64_t *off);

/* Give back an extent from arena_alloc/arena_reserve (same n); its pages are
 * released to the system at once (fallocate PUNCH_HOLE|KEEP_SIZE) so the
 * daemon's RSS (RssShmem) goes down. */
void arena_free(struct arena *a, uint64_t off, uint64_t n);

/* Restore: mark [off, off + arena_extent_size(n)) used. The values come
 * from a state record, untrusted input: -EINVAL if off is not page aligned,
 * the extent is outside the arena, overflows, or overlaps an extent already
 * in use; -ENOMEM if the bookkeeping cannot grow. */
int arena_reserve(struct arena *a, uint64_t off, uint64_t n);

/* Bytes of the extents in use (page-rounded). */
uint64_t arena_in_use(const struct arena *a);

/* Unmap and close; NULL ok. */
void arena_destroy(struct arena *a);
