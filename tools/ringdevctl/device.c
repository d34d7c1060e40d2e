/* SPDX-License-Identifier: MIT */
/*
 * device.c - asking the device: the admin handle (found, opened and
 * ABI-checked by the client module, as ringcat(1) does), the paged lists,
 * and the id and pid names the printers show.
 *
 * A FUSE mount is asked through its root directory, which holds no pipe. A
 * CUSE open always starts on a pipe (--default-pipe) and would count as a
 * reader there, so the handle is detached at once: looking must not change
 * what is looked at.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "ringdevctl.h"

int ctl_open(struct ctl *ctl, const char *device)
{
	int r = client_device_open(&ctl->device, device, O_RDONLY | O_NONBLOCK);
	if (r < 0)
		return -1;
	/* A CUSE handle starts on the default pipe; a FUSE mount root is on
	 * none, and detaching it is harmless, so no frontend test is needed. */
	if (ctl->device.version.frontend == RINGDEV_FRONTEND_CUSE &&
	    ioctl(ctl->device.fd, RINGDEV_IOC_DETACH) < 0) {
		client_error(ctl->device.path, "detach", errno, CLIENT_CONTEXT_DEVICE);
		client_device_close(&ctl->device);
		return -1;
	}
	return 0;
}

void ctl_close(struct ctl *ctl)
{
	client_device_close(&ctl->device);
}

const char *ctl_frontend_name(const struct ctl *ctl)
{
	switch (ctl->device.version.frontend) {
	case RINGDEV_FRONTEND_FUSE:
		return "fuse";
	case RINGDEV_FRONTEND_CUSE:
		return "cuse";
	default:
		return "unknown";
	}
}

int ctl_stats(struct ctl *ctl, struct ringdev_stats *stats)
{
	memset(stats, 0, sizeof(*stats));
	if (ioctl(ctl->device.fd, RINGDEV_IOC_STATS, stats) < 0) {
		client_error(ctl->device.path, "stats", errno, CLIENT_CONTEXT_QUERY);
		return -1;
	}
	return 0;
}

void ctl_stats_ext(struct ctl *ctl, struct ringdev_stats_ext *stats)
{
	/* A daemon older than ABI 1.2 has none of these: they read as 0. */
	if (ioctl(ctl->device.fd, RINGDEV_IOC_STATS_EXT, stats) < 0)
		memset(stats, 0, sizeof(*stats));
}

size_t field_length(const char *field, size_t size)
{
	const char *end = memchr(field, '\0', size);
	return end ? (size_t)(end - field) : size;
}

/*
 * The two paged lists differ only in their ioctl and the array after the
 * common start of the page (start in, count and total out), so one loop
 * reads both from what it is told here.
 */
struct list_page {
	uint32_t start;
	uint32_t count;
	uint32_t total;
};

#define LIST_PAGE_MATCHES(type)                                                   \
	(offsetof(type, start) == offsetof(struct list_page, start) &&            \
	 offsetof(type, count) == offsetof(struct list_page, count) &&            \
	 offsetof(type, total) == offsetof(struct list_page, total))
_Static_assert(LIST_PAGE_MATCHES(struct ringdev_list_pipes), "LIST_PIPES page start");
_Static_assert(LIST_PAGE_MATCHES(struct ringdev_list_opens), "LIST_OPENS page start");

struct list_kind {
	unsigned long request;
	size_t page_size;
	size_t items_offset;          /* of the array in the page */
	size_t item_size;
	uint32_t items_max;           /* a larger count is the daemon's error */
	size_t name_offset;           /* a name field each item gets terminated */
	size_t name_size;
	const char *what;             /* for the error line */
};

static const struct list_kind list_pipes = {
	.request = RINGDEV_IOC_LIST_PIPES,
	.page_size = sizeof(struct ringdev_list_pipes),
	.items_offset = offsetof(struct ringdev_list_pipes, pipes),
	.item_size = sizeof(struct ringdev_pipe_info),
	.items_max = RINGDEV_LIST_PIPES_MAX,
	.name_offset = offsetof(struct ringdev_pipe_info, name),
	.name_size = sizeof(((struct ringdev_pipe_info *)NULL)->name),
	.what = "list pipes",
};

static const struct list_kind list_opens = {
	.request = RINGDEV_IOC_LIST_OPENS,
	.page_size = sizeof(struct ringdev_list_opens),
	.items_offset = offsetof(struct ringdev_list_opens, opens),
	.item_size = sizeof(struct ringdev_open_info),
	.items_max = RINGDEV_LIST_OPENS_MAX,
	.name_offset = offsetof(struct ringdev_open_info, pipe),
	.name_size = sizeof(((struct ringdev_open_info *)NULL)->pipe),
	.what = "list opens",
};

/* Grows `*items` (of `item_size` bytes, `count` used, room for `*room`) to
 * hold `more` more. 0 or -ENOMEM. */
static int list_reserve(void **items, size_t item_size, size_t count, size_t *room, size_t more)
{
	if (count + more <= *room)
		return 0;
	size_t want = *room ? *room * 2 : 64;
	while (want < count + more)
		want *= 2;
	void *bigger = realloc(*items, want * item_size);
	if (!bigger)
		return -ENOMEM;
	*items = bigger;
	*room = want;
	return 0;
}

/* Every entry of a list, page by page until start + count reaches total,
 * in the daemon's order. *out is malloc'ed and the caller's (NULL with
 * *count 0 when there are none). 0, or -1 after reporting. */
static int list_read(struct ctl *ctl, const struct list_kind *kind, void **out, size_t *count)
{
	unsigned char *page = malloc(kind->page_size);
	void *items = NULL;
	size_t n = 0, room = 0;
	int r = page ? 0 : -ENOMEM;

	for (uint32_t start = 0; r == 0;) {
		struct list_page *head = (struct list_page *)page;
		memset(page, 0, kind->page_size);
		head->start = start;
		if (ioctl(ctl->device.fd, kind->request, page) < 0) {
			r = -errno;
			break;
		}
		if (head->count > kind->items_max) {
			r = -EPROTO;
			break;
		}
		r = list_reserve(&items, kind->item_size, n, &room, head->count);
		if (r < 0)
			break;
		for (uint32_t i = 0; i < head->count; i++, n++) {
			unsigned char *item = (unsigned char *)items + n * kind->item_size;
			memcpy(item, page + kind->items_offset + i * kind->item_size, kind->item_size);
			item[kind->name_offset + kind->name_size - 1] = '\0';
		}
		if (head->count == 0 || head->total - start <= head->count)
			break; /* start + count >= total, without overflow */
		start += head->count;
	}
	free(page);
	if (r < 0) {
		free(items);
		client_error(ctl->device.path, kind->what, -r, CLIENT_CONTEXT_QUERY);
		return -1;
	}
	*out = items;
	*count = n;
	return 0;
}

/* Drops from sorted `items` each one `compare` finds equal to the one
 * before it. The number kept. */
static size_t list_unique(void *items, size_t count, size_t size,
			  int (*compare)(const void *, const void *))
{
	unsigned char *base = items;
	size_t kept = 0;
	for (size_t i = 0; i < count; i++) {
		if (kept && compare(base + (kept - 1) * size, base + i * size) == 0)
			continue;
		if (kept != i)
			memcpy(base + kept * size, base + i * size, size);
		kept++;
	}
	return kept;
}

static int pipe_compare(const void *a, const void *b)
{
	const struct ringdev_pipe_info *pa = a, *pb = b;
	return strncmp(pa->name, pb->name, sizeof(pa->name));
}

int ctl_list_pipes(struct ctl *ctl, struct ringdev_pipe_info **out, size_t *count)
{
	void *items;
	size_t n;

	if (list_read(ctl, &list_pipes, &items, &n) < 0)
		return -1;
	/* Pages can shift while we read them (a pipe removed between two
	 * calls moves the rest up, one created may land before `start`): a
	 * pipe may come twice, and sorted, the second copy is dropped. */
	if (n > 1) {
		qsort(items, n, sizeof(**out), pipe_compare);
		n = list_unique(items, n, sizeof(**out), pipe_compare);
	}
	*out = items;
	*count = n;
	return 0;
}

static int open_compare(const void *a, const void *b)
{
	const struct ringdev_open_info *oa = a, *ob = b;
	int r = strncmp(oa->pipe, ob->pipe, sizeof(oa->pipe));
	if (r)
		return r;
	return oa->handle < ob->handle ? -1 : oa->handle > ob->handle;
}

static int open_compare_handle(const void *a, const void *b)
{
	const struct ringdev_open_info *oa = a, *ob = b;
	return oa->handle < ob->handle ? -1 : oa->handle > ob->handle;
}

int ctl_list_opens(struct ctl *ctl, struct ringdev_open_info **out, size_t *count)
{
	void *items;
	size_t n;

	if (list_read(ctl, &list_opens, &items, &n) < 0)
		return -1;
	if (n > 1) {
		/* A handle can come twice if pages shifted (even on two pipes, if
		 * it moved): by handle to drop repeats, then the order people read. */
		qsort(items, n, sizeof(**out), open_compare_handle);
		n = list_unique(items, n, sizeof(**out), open_compare_handle);
		qsort(items, n, sizeof(**out), open_compare);
	}
	*out = items;
	*count = n;
	return 0;
}

int ctl_pipe_by_name(struct ctl *ctl, const char *name, struct ringdev_pipe_info *info)
{
	memset(info, 0, sizeof(*info));
	size_t len = strlen(name);
	if (len >= sizeof(info->name))
		return -ENAMETOOLONG;
	memcpy(info->name, name, len);
	if (ioctl(ctl->device.fd, RINGDEV_IOC_PIPE_BY_NAME, info) < 0)
		return -errno;
	info->name[sizeof(info->name) - 1] = '\0';
	return 0;
}

/* A few ids, looked up once: top asks every second for the same owners,
 * and a directory service may be slow. */
#define ID_CACHE_SIZE 64

struct id_name {
	uint32_t id;
	bool used;
	bool found;
	char name[64];
};

static const char *id_cached(struct id_name *cache, unsigned *next, uint32_t id, bool group)
{
	for (unsigned i = 0; i < ID_CACHE_SIZE; i++)
		if (cache[i].used && cache[i].id == id)
			return cache[i].found ? cache[i].name : NULL;

	struct id_name *slot = &cache[*next];
	*next = (*next + 1) % ID_CACHE_SIZE;
	const char *name = NULL;
	if (group) {
		struct group *gr = getgrgid((gid_t)id);
		name = gr ? gr->gr_name : NULL;
	} else {
		struct passwd *pw = getpwuid((uid_t)id);
		name = pw ? pw->pw_name : NULL;
	}
	slot->id = id;
	slot->used = true;
	slot->found = name && strlen(name) < sizeof(slot->name);
	if (slot->found)
		strcpy(slot->name, name);
	return slot->found ? slot->name : NULL;
}

const char *user_name(uint32_t uid)
{
	static struct id_name cache[ID_CACHE_SIZE];
	static unsigned next;
	return id_cached(cache, &next, uid, false);
}

const char *group_name(uint32_t gid)
{
	static struct id_name cache[ID_CACHE_SIZE];
	static unsigned next;
	return id_cached(cache, &next, gid, true);
}

bool process_name(uint32_t pid, char *buf, size_t size)
{
	char path[64];
	if (pid == 0 || size < 2)
		return false;
	snprintf(path, sizeof(path), "/proc/%u/comm", pid);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n <= 0)
		return false;
	if (buf[n - 1] == '\n')
		n--;
	buf[n] = '\0';
	return n > 0;
}
