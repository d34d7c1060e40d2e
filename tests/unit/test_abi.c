/* SPDX-License-Identifier: MIT */
/*
 * test_abi.c - pins the size and every field offset of the public structs.
 * A change here is an ABI break: bump RINGDEV_ABI_MAJOR and say so.
 */
#include <criterion/criterion.h>
#include <stddef.h>

#include <ringdev/ringdev.h>

#define OFF(type, field, expect) cr_assert_eq(offsetof(struct type, field), (size_t)(expect), #type "." #field)

Test(abi, version)
{
	cr_assert_eq(sizeof(struct ringdev_version), 80);
	OFF(ringdev_version, abi_major, 0);
	OFF(ringdev_version, abi_minor, 4);
	OFF(ringdev_version, frontend, 8);
	OFF(ringdev_version, daemon_version, 16);
	OFF(ringdev_version, reserved, 48);
}

Test(abi, attach)
{
	cr_assert_eq(sizeof(struct ringdev_attach), 120);
	OFF(ringdev_attach, name, 0);
	OFF(ringdev_attach, flags, 64);
	OFF(ringdev_attach, kind, 68);
	OFF(ringdev_attach, policy, 72);
	OFF(ringdev_attach, mode, 76);
	OFF(ringdev_attach, capacity, 80);
	OFF(ringdev_attach, reserved, 88);
}

Test(abi, pipe_info)
{
	cr_assert_eq(sizeof(struct ringdev_pipe_info), 256);
	OFF(ringdev_pipe_info, name, 0);
	OFF(ringdev_pipe_info, kind, 64);
	OFF(ringdev_pipe_info, policy, 68);
	OFF(ringdev_pipe_info, mode, 72);
	OFF(ringdev_pipe_info, uid, 76);
	OFF(ringdev_pipe_info, gid, 80);
	OFF(ringdev_pipe_info, flags, 84);
	OFF(ringdev_pipe_info, readers, 88);
	OFF(ringdev_pipe_info, writers, 92);
	OFF(ringdev_pipe_info, handles, 96);
	OFF(ringdev_pipe_info, parked_reads, 100);
	OFF(ringdev_pipe_info, parked_writes, 104);
	OFF(ringdev_pipe_info, capacity, 112);
	OFF(ringdev_pipe_info, queued_bytes, 120);
	OFF(ringdev_pipe_info, queued_messages, 128);
	OFF(ringdev_pipe_info, allocated_bytes, 136);
	OFF(ringdev_pipe_info, bytes_in, 144);
	OFF(ringdev_pipe_info, bytes_out, 152);
	OFF(ringdev_pipe_info, writes, 160);
	OFF(ringdev_pipe_info, reads, 168);
	OFF(ringdev_pipe_info, dropped_bytes, 176);
	OFF(ringdev_pipe_info, dropped_messages, 184);
	OFF(ringdev_pipe_info, ino, 192);
	OFF(ringdev_pipe_info, reserved, 200);
}

Test(abi, nread_config_stats)
{
	cr_assert_eq(sizeof(struct ringdev_nread), 32);
	OFF(ringdev_nread, next, 0);
	OFF(ringdev_nread, queued_bytes, 8);
	OFF(ringdev_nread, queued_messages, 16);
	cr_assert_eq(sizeof(struct ringdev_pipe_config), 56);
	OFF(ringdev_pipe_config, set, 0);
	OFF(ringdev_pipe_config, kind, 4);
	OFF(ringdev_pipe_config, policy, 8);
	OFF(ringdev_pipe_config, mode, 12);
	OFF(ringdev_pipe_config, capacity, 16);
	OFF(ringdev_pipe_config, reserved, 24);
	cr_assert_eq(sizeof(struct ringdev_stats), 256);
	OFF(ringdev_stats, pipes, 0);
	OFF(ringdev_stats, parked_total, 40);
	OFF(ringdev_stats, memory_used, 56);
	OFF(ringdev_stats, interrupts, 128);
	OFF(ringdev_stats, pipes_removed, 160);
	OFF(ringdev_stats, broker_connected, 168);
	OFF(ringdev_stats, relay_broker_gone, 216);
	OFF(ringdev_stats, limit_uid_pipes_hits, 224);
	OFF(ringdev_stats, flushed_bytes, 248);
	cr_assert_eq(sizeof(struct ringdev_stats_ext), 128);
	OFF(ringdev_stats_ext, relay_cancel_timeouts, 0);
	OFF(ringdev_stats_ext, restarts, 8);
	OFF(ringdev_stats_ext, last_restart_pause_us, 16);
	OFF(ringdev_stats_ext, reserved, 24);
}

Test(abi, admin)
{
	cr_assert_eq(sizeof(struct ringdev_list_pipes), 15392);
	OFF(ringdev_list_pipes, total, 8);
	OFF(ringdev_list_pipes, pipes, 32);
	cr_assert_eq(sizeof(struct ringdev_open_info), 136);
	OFF(ringdev_open_info, pipe, 8);
	OFF(ringdev_open_info, uid, 72);
	OFF(ringdev_open_info, flags, 88);
	OFF(ringdev_open_info, bytes_in, 104);
	cr_assert_eq(sizeof(struct ringdev_list_opens), 16352);
	OFF(ringdev_list_opens, opens, 32);
	cr_assert_eq(sizeof(struct ringdev_create), 128);
	OFF(ringdev_create, flags, 76);
	OFF(ringdev_create, capacity, 88);
	cr_assert_eq(sizeof(struct ringdev_name), 80);
	cr_assert_eq(sizeof(struct ringdev_configure), 128);
	OFF(ringdev_configure, capacity, 88);
	cr_assert_eq(sizeof(struct ringdev_flush), 96);
	OFF(ringdev_flush, bytes, 64);
	cr_assert_lt(_IOC_SIZE(RINGDEV_IOC_LIST_OPENS), 1u << 14, "fits a restricted ioctl");
}

Test(abi, control_channel)
{
	cr_assert_eq(sizeof(struct ringdev_ctl_request), 1208);
	OFF(ringdev_ctl_request, id, 0);
	OFF(ringdev_ctl_request, type, 8);
	OFF(ringdev_ctl_request, handle, 16);
	OFF(ringdev_ctl_request, ref, 24);
	OFF(ringdev_ctl_request, uid, 32);
	OFF(ringdev_ctl_request, cmd, 44);
	OFF(ringdev_ctl_request, size, 48);
	OFF(ringdev_ctl_request, inline_size, 56);
	OFF(ringdev_ctl_request, name, 64);
	OFF(ringdev_ctl_request, kind, 128);
	OFF(ringdev_ctl_request, capacity, 144);
	OFF(ringdev_ctl_request, data, 184);
	cr_assert_eq(sizeof(struct ringdev_ctl_answer), 1168);
	OFF(ringdev_ctl_answer, id, 0);
	OFF(ringdev_ctl_answer, result, 8);
	OFF(ringdev_ctl_answer, flags, 12);
	OFF(ringdev_ctl_answer, name, 16);
	OFF(ringdev_ctl_answer, kind, 80);
	OFF(ringdev_ctl_answer, size, 100);
	OFF(ringdev_ctl_answer, capacity, 104);
	OFF(ringdev_ctl_answer, data, 144);
	cr_assert_eq(sizeof(struct ringdev_ctl_transact), 9552);
	OFF(ringdev_ctl_transact, nrequests, 12);
	OFF(ringdev_ctl_transact, rejected, 16);
	OFF(ringdev_ctl_transact, failed, 20);
	OFF(ringdev_ctl_transact, refused, 24);
	OFF(ringdev_ctl_transact, reserved0, 28);
	OFF(ringdev_ctl_transact, reserved, 32);
	OFF(ringdev_ctl_transact, answers, 48);
	OFF(ringdev_ctl_transact, requests, 48 + 4 * 1168);
	cr_assert_eq(sizeof(struct ringdev_ctl_bulk), 16288);
	OFF(ringdev_ctl_bulk, data, 32);
	cr_assert_lt(_IOC_SIZE(RINGDEV_IOC_CTL_TRANSACT), 1u << 14, "fits a restricted ioctl");
	cr_assert_lt(_IOC_SIZE(RINGDEV_IOC_CTL_FETCH), 1u << 14);
}

Test(abi, ioctl_numbers_are_stable)
{
	cr_assert_eq(RINGDEV_IOC_VERSION, 0x8050e500u);
	cr_assert_eq(RINGDEV_IOC_ATTACH, 0x4078e501u);
	cr_assert_eq(RINGDEV_IOC_DETACH, 0x0000e502u);
	cr_assert_eq(RINGDEV_IOC_PIPE_INFO, 0x8100e503u);
	cr_assert_eq(RINGDEV_IOC_NREAD, 0x8020e504u);
	cr_assert_eq(RINGDEV_IOC_SET_CONFIG, 0x4038e505u);
	cr_assert_eq(RINGDEV_IOC_STATS, 0x8100e510u);
	cr_assert_eq(RINGDEV_IOC_STATS_EXT, 0x8080e518u);
}
