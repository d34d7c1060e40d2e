# SPDX-License-Identifier: MIT
"""The ringdev ABI of include/ringdev/ringdev.h, in Python.

Each structure is a list of (field, struct code) in declaration order, packed
with the native byte order and *no* automatic alignment ("="): the C structs
have natural alignment with explicit reserved fields, so their layout is
exactly the fields one after the other. Reserved fields are pad bytes ("x"):
zero when packed, skipped when unpacked, but still counted in the offsets
that the tests compare with tests/unit/test_abi.c.

The ioctl numbers are computed as asm-generic/ioctl.h does (x86, arm, arm64,
riscv, s390, loongarch): dir << 30 | size << 16 | type << 8 | nr.
"""

import struct

ABI_MAJOR = 1
ABI_MINOR = 3

NAME_MAX = 63
NAME_SIZE = 64
MESSAGE_MAX = 65536
MESSAGE_HEADER = 4
CAPACITY_MIN = 64
CAPACITY_MAX = 1 << 30

KIND_DEFAULT, KIND_STREAM, KIND_MESSAGE = 0, 1, 2
POLICY_DEFAULT, POLICY_BLOCK, POLICY_OVERWRITE, POLICY_FAIL = 0, 1, 2, 3
FRONTEND_FUSE, FRONTEND_CUSE = 1, 2

ATTACH_CREATE = 0x1
ATTACH_EXCL = 0x2

PIPE_PERSISTENT = 0x1
PIPE_EOF = 0x2
PIPE_UNLINKED = 0x4
PIPE_ALLOCATED = 0x8

SET_KIND = 0x1
SET_POLICY = 0x2
SET_CAPACITY = 0x4
SET_MODE = 0x8

LIST_PIPES_MAX = 60

# asm-generic/ioctl.h
_IOC_NRBITS, _IOC_TYPEBITS, _IOC_SIZEBITS = 8, 8, 14
_IOC_NRSHIFT = 0
_IOC_TYPESHIFT = _IOC_NRSHIFT + _IOC_NRBITS
_IOC_SIZESHIFT = _IOC_TYPESHIFT + _IOC_TYPEBITS
_IOC_DIRSHIFT = _IOC_SIZESHIFT + _IOC_SIZEBITS
_IOC_NONE, _IOC_WRITE, _IOC_READ = 0, 1, 2

IOC_MAGIC = 0xE5


def _IOC(direction, type_, nr, size):
    if not 0 <= size < (1 << _IOC_SIZEBITS):
        raise ValueError("ioctl argument of %d bytes does not fit _IOC_SIZEBITS" % size)
    return (direction << _IOC_DIRSHIFT) | (type_ << _IOC_TYPESHIFT) | \
        (nr << _IOC_NRSHIFT) | (size << _IOC_SIZESHIFT)


def IO(nr, type_=IOC_MAGIC):
    return _IOC(_IOC_NONE, type_, nr, 0)


def IOR(nr, size, type_=IOC_MAGIC):
    return _IOC(_IOC_READ, type_, nr, size)


def IOW(nr, size, type_=IOC_MAGIC):
    return _IOC(_IOC_WRITE, type_, nr, size)


def IOWR(nr, size, type_=IOC_MAGIC):
    return _IOC(_IOC_READ | _IOC_WRITE, type_, nr, size)


class Layout:
    """One C structure: pack/unpack by field name, with offsets."""

    def __init__(self, cname, fields):
        self.cname = cname
        self.fields = fields
        self.struct = struct.Struct("=" + "".join(code for _, code in fields))
        self.size = self.struct.size
        self.offsets = {}
        self.names = []  # the fields that are values (not pad)
        fmt = "="
        for name, code in fields:
            self.offsets[name] = struct.calcsize(fmt)
            fmt += code
            if not code.endswith("x"):
                self.names.append(name)

    def pack(self, **values):
        unknown = set(values) - set(self.names)
        if unknown:
            raise TypeError("%s has no field %s" % (self.cname, ", ".join(sorted(unknown))))
        args = []
        for name, code in self.fields:
            if code.endswith("x"):
                continue
            default = b"" if code.endswith("s") else 0
            args.append(values.get(name, default))
        return self.struct.pack(*args)

    def unpack(self, raw, offset=0):
        out = dict(zip(self.names, self.struct.unpack_from(raw, offset)))
        for name, code in self.fields:
            if code.endswith("s"):
                out[name] = out[name].split(b"\0", 1)[0].decode("utf-8", "replace")
        return out


VERSION = Layout("ringdev_version", [
    ("abi_major", "I"), ("abi_minor", "I"), ("frontend", "I"), ("reserved0", "4x"),
    ("daemon_version", "32s"), ("reserved", "32x"),
])

ATTACH = Layout("ringdev_attach", [
    ("name", "64s"), ("flags", "I"), ("kind", "I"), ("policy", "I"), ("mode", "I"),
    ("capacity", "Q"), ("reserved", "32x"),
])

PIPE_INFO = Layout("ringdev_pipe_info", [("name", "64s")] + [
    (f, "I") for f in ("kind policy mode uid gid flags readers writers handles "
                       "parked_reads parked_writes").split()
] + [("reserved0", "4x")] + [
    (f, "Q") for f in ("capacity queued_bytes queued_messages allocated_bytes bytes_in "
                       "bytes_out writes reads dropped_bytes dropped_messages ino").split()
] + [("reserved", "56x")])

NREAD = Layout("ringdev_nread", [
    ("next", "Q"), ("queued_bytes", "Q"), ("queued_messages", "Q"), ("reserved", "8x"),
])

PIPE_CONFIG = Layout("ringdev_pipe_config", [
    ("set", "I"), ("kind", "I"), ("policy", "I"), ("mode", "I"), ("capacity", "Q"),
    ("reserved", "32x"),
])

STATS = Layout("ringdev_stats", [(f, "Q") for f in """
    pipes opens parked_reads parked_writes parked_other parked_total pollers
    memory_used memory_limit pipes_limit bytes_in bytes_out writes reads
    dropped_bytes dropped_messages interrupts limit_pipes_hits limit_memory_hits
    pipes_created pipes_removed broker_connected relayed relay_rejected
    relay_failed relay_timeouts relay_cancels relay_broker_gone
    limit_uid_pipes_hits limit_uid_opens_hits limit_parked_hits flushed_bytes
""".split()])

# The header of ringdev_list_pipes; PIPE_INFO entries follow at `pipes`.
LIST_PIPES_HEAD = Layout("ringdev_list_pipes", [
    ("start", "I"), ("count", "I"), ("total", "I"), ("reserved0", "4x"), ("reserved", "16x"),
])
LIST_PIPES_SIZE = LIST_PIPES_HEAD.size + LIST_PIPES_MAX * PIPE_INFO.size

LAYOUTS = {l.cname: l for l in (VERSION, ATTACH, PIPE_INFO, NREAD, PIPE_CONFIG, STATS)}

IOC_VERSION = IOR(0x00, VERSION.size)
IOC_ATTACH = IOW(0x01, ATTACH.size)
IOC_DETACH = IO(0x02)
IOC_PIPE_INFO = IOR(0x03, PIPE_INFO.size)
IOC_NREAD = IOR(0x04, NREAD.size)
IOC_SET_CONFIG = IOW(0x05, PIPE_CONFIG.size)
IOC_STATS = IOR(0x10, STATS.size)
IOC_STATS_EXT = IOR(0x18, 128)  # struct ringdev_stats_ext (ABI 1.2)
IOC_LIST_PIPES = IOWR(0x11, LIST_PIPES_SIZE)

IOC_DEVICE_NR_FIRST = 0x80
IOC_DEVICE_NR_LAST = 0xFF
