/* SPDX-License-Identifier: MIT */
/*
 * transport.h - the three control-node calls the loop makes, behind a table,
 * so the unit tests can put a scripted daemon behind the real loop (batching,
 * deferred answers, cancel ordering, FETCH/STAGE) without a device. The
 * library itself only ever uses the ioctl transport of rdb_open().
 */
#pragma once

#include <ringdev/ringdev-broker.h>

struct rdb_transport {
	/* RINGDEV_IOC_CTL_TRANSACT; 0 or -errno. */
	int (*transact)(void *ctx, struct ringdev_ctl_transact *transact);
	/* RINGDEV_IOC_CTL_FETCH; 0 or -errno. */
	int (*fetch)(void *ctx, struct ringdev_ctl_bulk *bulk);
	/* RINGDEV_IOC_CTL_STAGE; 0 or -errno. */
	int (*stage)(void *ctx, const struct ringdev_ctl_bulk *bulk);
	/* Called by rdb_close() (the ioctl transport closes its fd). */
	void (*close)(void *ctx);
};

/* rdb_open() over any transport; `version` is what rdb_version() reports. */
int rdb_open_transport(const struct rdb_transport *transport, void *ctx,
		       const struct ringdev_version *version, rdb_handler_fn *handler, void *data,
		       struct rdb_broker **out);
