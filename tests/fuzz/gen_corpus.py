#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""gen_corpus.py - write the seed corpora of tests/fuzz/corpus/<target>/.

Each seed is a small input that means something to its target: a valid ioctl
struct for one command, an op sequence that opens, relays and answers, the
example policy file, names that are equal but for case. The byte layouts
follow the targets' readers (fuzz_input.h: numbers little-endian, every
choice a byte); keep this file in step with fuzz_*.c when a reader changes.

    tests/fuzz/gen_corpus.py        rewrite every seed (crash seeds are kept)
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

# ---- ringdev.h ----
MAGIC = 0xE5
IOC_WRITE, IOC_READ = 1, 2


def ioc(d, nr, size):
    return (d << 30) | (size << 16) | (MAGIC << 8) | nr


ATTACH_CREATE, ATTACH_EXCL = 1, 2
KIND_STREAM, KIND_MESSAGE = 1, 2
POLICY_BLOCK, POLICY_OVERWRITE, POLICY_FAIL = 1, 2, 3
SET_KIND, SET_POLICY, SET_CAPACITY, SET_MODE, SET_OWNER = 1, 2, 4, 8, 16
ANSWER_BROKERED, ANSWER_SETTINGS, ANSWER_STAGED, ANSWER_BUILTIN = 1, 2, 4, 8
CTL_OPEN, CTL_ATTACH, CTL_IOCTL, CTL_READ, CTL_WRITE, CTL_CANCEL, CTL_RELEASE = range(1, 8)


def name64(s):
    b = s.encode()
    return b + b"\0" * (64 - len(b))


def attach(name, flags=ATTACH_CREATE, kind=0, policy=0, mode=0o644, capacity=0):
    return name64(name) + struct.pack("<IIIIQ", flags, kind, policy, mode, capacity) + bytes(32)


def pipe_config(set_, kind=0, policy=0, mode=0, capacity=0):
    return struct.pack("<IIIIQ", set_, kind, policy, mode, capacity) + bytes(32)


def create(name, kind=0, policy=0, mode=0o644, flags=0, uid=0, gid=0, capacity=0):
    return name64(name) + struct.pack("<IIIIIIQ", kind, policy, mode, flags, uid, gid, capacity) + bytes(32)


def configure(name, set_, kind=0, policy=0, mode=0, uid=0, gid=0, capacity=0):
    return name64(name) + struct.pack("<IIIIIIQ", set_, kind, policy, mode, uid, gid, capacity) + bytes(32)


def by_name(name, size):
    return name64(name) + bytes(size - 64)


def answer(id_, result=0, flags=0, name="", kind=0, policy=0, mode=0, uid=0, gid=0, size=0, capacity=0, data=b""):
    head = struct.pack("<QiI", id_, result, flags) + name64(name)
    head += struct.pack("<IIIIIIQ", kind, policy, mode, uid, gid, size, capacity) + bytes(32)
    assert len(head) == 144
    return head + data + bytes(1024 - len(data))


def transact(answers=(), max_requests=4, timeout_ms=0):
    t = struct.pack("<IIIIII", len(answers), max_requests, timeout_ms, 0, 0, 0) + bytes(24)
    for a in answers:
        t += a
    t += bytes(1168 * (4 - len(answers)))
    t += bytes(1208 * 4)
    assert len(t) == 9552
    return t


def bulk(id_, offset, size, data=b""):
    return struct.pack("<QQIIQ", id_, offset, size, 0, 0) + data + bytes(16256 - len(data))


# ---- the harness's readers (fuzz_fake.c, fuzz_drive.c) ----
def u16(v):
    return struct.pack("<H", v)


def u32(v):
    return struct.pack("<I", v)


def u64(v):
    return struct.pack("<Q", v)


def cfg(f=0, g=2):
    """fuzz_config: f 1 case-sensitive, 2 require broker, 4 CUSE, 8 admin group,
    0x10 small limits, 0x20 ctl 0660, 0x40 broker timeout; g&3 ring 64/100/4096/65536."""
    return bytes([f, g])


ROOTC, OWNER, GROUP, OTHER, ADMIN, NOBODY, CTLGRP = range(7)
NAMES = ["a", "b", "A", "default", "Default", "user.1000", "rv.x", "x-y_z.0", "p" * 63]


def cred(c):
    return bytes([c])


def name(n):
    return bytes([NAMES.index(n)])


COMMANDS = ["VERSION", "ATTACH", "DETACH", "PIPE_INFO", "NREAD", "SET_CONFIG", "STATS", "LIST_PIPES",
            "LIST_OPENS", "PIPE_BY_NAME", "CREATE", "REMOVE", "CONFIGURE", "FLUSH", "CTL_TRANSACT",
            "CTL_FETCH", "CTL_STAGE", "FIONREAD", "DEVICE_IN", "DEVICE_INOUT", "DEVICE_BIG", "DEVICE_NONE"]


def command(c):
    return bytes([0, COMMANDS.index(c)])


SIZES = [0, 1, 4, 60, 64, 65, 100, 1024, 1025, 4096, 65536, 65537, 131072]


def size(n):
    return bytes([SIZES.index(n)])


def oflags(acc, nonblock=False):
    return bytes([{"r": 0, "w": 1, "rw": 2}[acc] | (4 if nonblock else 0)])


def ino(n=16):
    return bytes([0, n - 16])


# ---- target ioctl ----
def ioctl_call(target, c, cmd, arg=b"", flags=1, nm="a", taken=0, handle=0):
    """target: 'h' handle, 'ctl' the broker's, 'dev' ctx NULL."""
    t = (handle << 2) | {"h": 0, "ctl": 2, "dev": 3}[target]
    arg = arg.rstrip(b"\0")  # the target zero-fills the argument to its size
    return bytes([t]) + cred(c) + command(cmd) + b"\0" + bytes([flags]) + name(nm) + u16(len(arg)) + arg + bytes([taken])


def ioctl_seeds():
    s = {}
    base = cfg(0x00, 2) + b"\x00"          # FUSE, ring 4096; h0 owner on "a", h1 other, h2 root on "b"
    broker = cfg(0x00, 2) + b"\x01"        # the same with a broker: h3 is the control handle
    s["version-device"] = base + ioctl_call("dev", OTHER, "VERSION")
    s["stats-device"] = base + ioctl_call("dev", OTHER, "STATS")
    s["attach-create"] = base + ioctl_call("h", OWNER, "ATTACH", attach("c", ATTACH_CREATE, KIND_MESSAGE,
                                                                         POLICY_OVERWRITE, 0o640, 128), nm="A")
    s["attach-excl"] = base + ioctl_call("h", OWNER, "ATTACH", attach("a", ATTACH_CREATE | ATTACH_EXCL))
    s["detach-info-nread"] = (base + ioctl_call("h", OWNER, "PIPE_INFO") + ioctl_call("h", OWNER, "NREAD") +
                              ioctl_call("h", OWNER, "DETACH") + ioctl_call("h", OWNER, "PIPE_INFO"))
    s["set-config"] = base + ioctl_call("h", OWNER, "SET_CONFIG", pipe_config(SET_POLICY | SET_CAPACITY, 0,
                                                                              POLICY_FAIL, 0, 64))
    s["set-config-kind"] = base + ioctl_call("h", OWNER, "SET_CONFIG", pipe_config(SET_KIND | SET_MODE,
                                                                                   KIND_MESSAGE, 0, 0o600))
    s["list-pipes"] = base + ioctl_call("dev", OTHER, "LIST_PIPES", u32(0)) + ioctl_call("dev", ROOTC, "LIST_PIPES", u32(1))
    s["list-opens"] = base + ioctl_call("dev", ROOTC, "LIST_OPENS", u32(0)) + ioctl_call("h", OTHER, "LIST_OPENS", u32(0))
    s["pipe-by-name"] = base + ioctl_call("dev", OWNER, "PIPE_BY_NAME", by_name("a", 256), nm="A")
    s["create-owner"] = base + ioctl_call("dev", ROOTC, "CREATE", create("c", KIND_STREAM, POLICY_BLOCK, 0o600, 1,
                                                                           1002, 1002, 4096), nm="b")
    s["create-user"] = base + ioctl_call("dev", OWNER, "CREATE", create("c", KIND_MESSAGE, POLICY_FAIL, 0o666),
                                         flags=0)
    s["remove"] = base + ioctl_call("dev", ROOTC, "REMOVE", by_name("b", 80), nm="b")
    s["configure-owner"] = base + ioctl_call("dev", ROOTC, "CONFIGURE",
                                             configure("a", SET_OWNER | SET_MODE | SET_CAPACITY, 0, 0, 0o644,
                                                       1002, 1002, 8192))
    s["flush"] = base + ioctl_call("dev", OWNER, "FLUSH", by_name("a", 96))
    s["fionread"] = base + ioctl_call("h", OWNER, "FIONREAD")
    s["transact-empty"] = broker + ioctl_call("ctl", ROOTC, "CTL_TRANSACT", transact(), flags=0)
    s["device-ioctl-relayed"] = (broker + ioctl_call("h", OWNER, "DEVICE_IN", by_name("a", 80)) +
                                 ioctl_call("ctl", ROOTC, "CTL_TRANSACT", transact(), flags=0) +
                                 ioctl_call("ctl", ROOTC, "CTL_TRANSACT", transact([answer(0)], 0), flags=2))
    s["attach-relayed"] = (broker + ioctl_call("h", OWNER, "ATTACH", attach("c")) +
                           ioctl_call("ctl", ROOTC, "CTL_TRANSACT", transact(), flags=0) +
                           ioctl_call("ctl", ROOTC, "CTL_TRANSACT",
                                      transact([answer(0, 0, ANSWER_SETTINGS, "", KIND_MESSAGE, POLICY_BLOCK,
                                                       0o600, 1000, 1000, 0, 256)], 0), flags=2))
    s["fetch-stage"] = (broker + ioctl_call("h", OWNER, "DEVICE_BIG", bytes(4096)) +
                        ioctl_call("ctl", ROOTC, "CTL_TRANSACT", transact(), flags=0) +
                        ioctl_call("ctl", ROOTC, "CTL_FETCH", bulk(0, 1024, 16256), flags=2) +
                        ioctl_call("ctl", ROOTC, "CTL_STAGE", bulk(0, 0, 4096), flags=2) +
                        ioctl_call("ctl", ROOTC, "CTL_TRANSACT",
                                   transact([answer(0, 0, ANSWER_STAGED, size=4096)], 0), flags=2))
    s["transact-on-data-node"] = base + ioctl_call("h", ROOTC, "CTL_TRANSACT", transact(), flags=0)
    return s


# ---- targets ops and ctl ----
OPS = ["open_request", "open", "attach", "attach_ino", "detach", "read", "write", "poll", "release", "interrupt",
       "device_ioctl", "admin_ioctl", "ctl_open", "transact", "transact_raw", "fetch", "stage", "broker_close",
       "namespace", "expire"]
CTL = ["transact_raw", "transact_raw2", "transact", "transact2", "fetch", "stage", "stage2", "open_request",
       "attach", "device_ioctl", "read", "write", "interrupt", "release", "open", "expire", "broker", "poll"]


class Seq:
    def __init__(self, table):
        self.table = table
        self.b = b""

    def op(self, name, *parts):
        self.b += bytes([self.table.index(name)]) + b"".join(parts)
        return self


def a_open(c=OWNER, acc="rw"):
    return cred(c) + oflags(acc)


def a_ctl_open():
    return cred(ROOTC) + b"\x01"


def a_open_request(c=OWNER, acc="rw", ino_=16, interrupted=False, default=False):
    f = (1 if default else 0) | (2 if interrupted else 0)
    return cred(c) + oflags(acc) + bytes([f]) + (b"" if default else ino(ino_))


def a_attach(h, nm, flags=ATTACH_CREATE, kind=0, policy=0, mode=0o644, cap=0, ioctl=False):
    capsel = {0: 0, 64: 2, 65: 3, 100: 4, 4096: 5, 65536: 6}[cap]
    f = 0x10 if ioctl else 0
    return bytes([h, f]) + name(nm) + bytes([flags, kind, policy]) + u16(mode) + bytes([capsel])


def a_rw(h, n, f=0):
    return bytes([h, f]) + size(n)


def a_mknod(c, nm, mode=0o644):
    return b"\x00" + cred(c) + name(nm) + u16(mode)


def a_take(n=4):
    return b"\x00" + bytes([0, n])


def a_answer_allow(flags_sel=0, result_sel=6, size_sel=5):
    # id: the newest taken; result 0; flags by index (0 none, 3 brokered, 4 settings, 6 staged, 7 builtin)
    return bytes([0, 0, result_sel, flags_sel, 0]) + b"" + bytes([size_sel, 1])


def a_answer_settings():
    return bytes([0, 0, 6, 4, 0]) + bytes([1, 1]) + u16(0o640) + cred(OWNER) + bytes([5]) + bytes([5, 1])


def a_give(answer_bytes, n_answers=1, take=0):
    return b"\x00" + bytes([n_answers, take]) + answer_bytes


def a_fetch():
    return b"\x00" + bytes([0, 0]) + b"\x00"  # the newest taken, at its inline size


def a_stage(size_sel=2):
    return b"\x00" + bytes([0, 0]) + b"\x05" + bytes([size_sel])


def a_device_ioctl(h, in_size, out_size):
    return bytes([h, 3, 0]) + size(in_size) + size(out_size)


def ops_seeds(table):
    s = {}
    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("namespace", a_mknod(OWNER, "a")).op("open_request", a_open_request())
    q.op("transact", a_take()).op("transact", a_give(a_answer_allow()))
    q.op("write", a_rw(1, 100)).op("read", a_rw(1, 100)).op("read", a_rw(1, 64))
    s["open-relayed-allowed"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("open", a_open(OWNER, "rw")).op("attach", a_attach(1, "rv.x", ioctl=True))
    q.op("transact", a_take()).op("transact", a_give(a_answer_allow(flags_sel=3)))
    q.op("read", a_rw(1, 100)).op("transact", a_take()).op("transact", a_give(a_answer_allow(result_sel=2, size_sel=5)))
    q.op("write", a_rw(1, 1025)).op("transact", a_take()).op("fetch", a_fetch())
    q.op("transact", a_give(a_answer_allow(result_sel=2)))
    s["brokered-pipe"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("open", a_open(OWNER, "rw")).op("device_ioctl", a_device_ioctl(1, 4096, 1024))
    q.op("transact", a_take()).op("fetch", a_fetch()).op("stage", a_stage())
    q.op("transact", a_give(a_answer_allow(flags_sel=6, size_sel=0)))
    s["device-ioctl-staged"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("open", a_open(OWNER, "rw")).op("attach", a_attach(0, "a", kind=1, policy=1, cap=64))
    q.op("open", a_open(OTHER, "r")).op("attach", a_attach(1, "a"))
    q.op("write", a_rw(0, 100)).op("write", a_rw(0, 60, 1)).op("read", a_rw(0, 4)).op("interrupt", b"\x01\x00")
    q.op("poll", b"\x00\x01").op("read", a_rw(0, 100)).op("read", a_rw(0, 100)).op("release", b"\x00")
    s["block-pipe-parked"] = cfg(0x00, 0) + q.b

    q = Seq(table)
    q.op("open", a_open(OWNER, "rw")).op("attach", a_attach(0, "b", kind=2, policy=2, cap=100))
    for n in (60, 4, 60, 1, 64):
        q.op("write", a_rw(0, n))
    q.op("read", a_rw(0, 4)).op("read", a_rw(0, 64)).op("admin_ioctl", b"\x0b\x00\x00\x01")
    s["message-overwrite-flush"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("namespace", a_mknod(OWNER, "x-y_z.0")).op("namespace", b"\x02" + cred(ROOTC) + ino() + b"\x07" +
                                                     u16(0o600) + cred(OTHER))
    q.op("namespace", b"\x06" + cred(OTHER)).op("namespace", b"\x01" + cred(OWNER) + name("x-y_z.0"))
    q.op("open_request", a_open_request(OWNER, "rw", 16)).op("expire", u16(20000))
    s["namespace"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("open_request", a_open_request(default=True))
    q.op("transact", a_take()).op("broker_close", b"").op("read", a_rw(0, 100))
    s["cuse-broker-gone"] = cfg(0x04, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("open_request", a_open_request(default=True))
    q.op("transact", a_take()).op("transact", a_give(a_answer_settings()))
    q.op("open_request", a_open_request(default=True)).op("transact", a_take())
    q.op("transact", a_give(a_answer_allow(flags_sel=7)))
    s["cuse-settings-builtin"] = cfg(0x04 | 0x40, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("namespace", a_mknod(OWNER, "a")).op("open_request", a_open_request())
    q.op("transact", a_take()).op("transact", a_give(a_answer_settings())).op("write", a_rw(1, 100))
    s["mknod-open-settings"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("open_request", a_open_request()).op("transact", a_take())
    q.op("interrupt", b"\x01\x00").op("transact", a_take()).op("transact", a_give(a_answer_allow()))
    s["interrupt-taken-open"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("ctl_open", a_ctl_open()).op("transact", b"\x01" + bytes([0, 4]) + u16(0))
    q.op("open_request", a_open_request()).op("open_request", a_open_request(OTHER, "r"))
    q.op("broker_close", b"").op("expire", u16(30000))
    s["broker-close-parked"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("open", a_open(OWNER, "rw")).op("attach", a_attach(0, "a", kind=1, policy=1, cap=64))
    q.op("write", a_rw(0, 100)).op("poll", b"\x00\x01").op("read", a_rw(0, 0))
    q.op("admin_ioctl", b"\x09\x00\x01" + cred(ROOTC) + name("a")).op("read", a_rw(0, 4))
    s["remove-with-waiters"] = cfg(0x00, 2) + q.b

    q = Seq(table)
    q.op("open", a_open(OWNER, "rw")).op("attach", a_attach(0, "a", kind=2, policy=1, cap=100))
    q.op("write", a_rw(0, 60)).op("write", a_rw(0, 60))
    q.op("admin_ioctl", b"\x03\x00\x00" + bytes([SET_CAPACITY | SET_POLICY, 0, POLICY_OVERWRITE]) + u16(0) + b"\x03")
    q.op("read", a_rw(0, 64)).op("read", a_rw(0, 64))
    s["policy-change-parked"] = cfg(0x00, 2) + q.b
    return s


def a_answer_named(nm):
    return bytes([0, 0, 6, 0, 2]) + name(nm) + bytes([5, 1])


def ctl_seeds():
    """The ctl target starts with the broker connected as handle 0."""
    s = {}
    q = Seq(CTL)
    q.op("open_request", a_open_request(OWNER, "rw", 16)).op("transact", a_take())
    q.op("transact", a_give(a_answer_named("a"))).op("write", a_rw(1, 100)).op("read", a_rw(1, 60))
    s["open-mapped"] = cfg(0x00, 2) + q.b

    q = Seq(CTL)
    q.op("open", a_open(OWNER, "rw")).op("attach", a_attach(1, "rv.x", ioctl=True)).op("transact", a_take())
    q.op("transact", a_give(a_answer_allow(flags_sel=3))).op("read", a_rw(1, 1025)).op("transact", a_take())
    q.op("stage", a_stage(size_sel=2)).op("transact", a_give(a_answer_allow(flags_sel=6, result_sel=2)))
    q.op("write", a_rw(1, 4096)).op("transact", a_take()).op("fetch", a_fetch())
    q.op("transact", a_give(a_answer_allow(result_sel=2))).op("release", b"\x01").op("transact", a_take())
    s["brokered-read-write"] = cfg(0x00, 2) + q.b

    q = Seq(CTL)
    q.op("open", a_open(OWNER, "rw")).op("device_ioctl", a_device_ioctl(1, 4096, 1024)).op("transact", a_take())
    q.op("fetch", a_fetch()).op("stage", a_stage()).op("transact", a_give(a_answer_allow(flags_sel=6, size_sel=0)))
    s["device-ioctl-staged"] = cfg(0x00, 2) + q.b

    q = Seq(CTL)
    q.op("open", a_open(OWNER, "rw")).op("attach", a_attach(1, "a", ioctl=True)).op("transact", a_take())
    raw = answer(0)[:144]
    q.op("transact_raw", b"\x00" + bytes([1, 0]) + raw + bytes([0, 0]) + b"\x00")
    s["raw-answer"] = cfg(0x00, 2) + q.b

    q = Seq(CTL)
    q.op("open_request", a_open_request(OWNER, "rw", 16)).op("transact", a_take()).op("broker", b"")
    q.op("open_request", a_open_request(OTHER, "r", 16)).op("broker", a_ctl_open()).op("transact", a_take())
    q.op("interrupt", b"\x01\x00").op("transact", a_take()).op("expire", u16(40000))
    s["broker-gone-back"] = cfg(0x02, 2) + q.b
    return s


# ---- target encode ----
def encode_seeds():
    s = {}
    # one request: [mode 0][request][id][chunk][builders...]
    def req(type_, size_sel=0, inline_sel=1, out_sel=3, out8=0, name_sel=1):
        return bytes([0, type_, 1, 1, 2, size_sel]) + bytes([inline_sel, out_sel, out8, name_sel, 1, 1, 0])
    s["one-open-allow"] = b"\x00" + req(CTL_OPEN) + u64(7) + b"\x00" + b"\x01" + u16(0) + u32(0) + b"\x01" + b"\x00"
    s["one-ioctl-reply"] = (b"\x00" + req(CTL_IOCTL, size_sel=4, out_sel=2) + u64(9) + b"\x00" +
                            b"\x01" + u16(1025) + u32(0) + b"\x02" + b"\x01" + u32(3))
    s["one-read-staged"] = (b"\x00" + req(CTL_READ, size_sel=5) + u64(11) + b"\x00" +
                            b"\x01" + u16(2000) + u32(0) + b"\x03")
    s["one-deny"] = b"\x00" + req(CTL_WRITE) + u64(1) + b"\x00" + b"\x01" + u16(0) + u32(13) + b"\x00\x01" + u32(511)
    # the loop: [mode 1][abi minor][transacts: f, requests...][handler bytes]...
    loop = b"\x01\x01"
    loop += b"\x02" + req(CTL_OPEN)[1:] + req(CTL_IOCTL, size_sel=6)[1:]
    loop += b"\x00" * 8 + b"\x01" * 4 + b"\x00" * 40
    s["loop-open-ioctl"] = loop
    return s


# ---- targets name, policy ----
def name_seeds():
    return {
        "equal-case": b"\x01\x07Default" + b"\x01" * 7,
        "different": b"\x00\x01a" + b"b",
        "long": b"\x00\x3f" + b"p" * 63 + b"P" * 63,
        "dot": b"\x00\x07.hidden.hidden",
        "bad-byte": b"\x03\x05ab/cd\x01\x00\x00\x00\x00\x02\x2f",
    }


def policy_seeds():
    with open(os.path.join(ROOT, "broker", "examples", "broker.policy"), "rb") as f:
        example = f.read()
    return {
        "example": example,
        "allow-deny": b"allow open,attach a* uid=0-999,1000 gid=5\ndeny attach b errno=EPERM\ndefault allow\n",
        "map": b"map inbox user.%u-%g\nmap \"\" %n.x user=root\ncase-sensitive\n",
        "pipe": b"pipe rv.* kind=message policy=fail capacity=64K mode=0640 owner=0:0 brokered\ndefault builtin\n",
        "builtin": b"builtin all [a-z]* group=root\ndefault deny errno=511\n",
        "bad-line": b"allow all *\nfrobnicate\n",
        "own": b"allow all user.%u\nallow attach g.%g.*\ndeny open %u-%g\npipe box.%u mode=0640\nallow all u.%u*\n",
        "grant": b"map inbox shared.box grant\nallow all pub.* grant uid=5\nmap x %n grant\n",
    }


def write(target, seeds):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    for f in os.listdir(d):
        if not f.startswith("crash-"):
            os.unlink(os.path.join(d, f))
    for k, v in seeds.items():
        with open(os.path.join(d, k), "wb") as f:
            f.write(v)


def main():
    write("ioctl", ioctl_seeds())
    write("ops", ops_seeds(OPS))
    write("ctl", ctl_seeds())
    write("encode", encode_seeds())
    write("name", name_seeds())
    write("policy", policy_seeds())
    return 0


if __name__ == "__main__":
    sys.exit(main())
