# SPDX-License-Identifier: MIT
"""The Python package `ringdev` against the real ringdevd on a FUSE mount
(conftest.py starts it): the ABI it packs, open/read/write of both kinds,
the pipe ioctls, device stats, the asyncio reader and the errors."""

import asyncio
import errno
import os
import re
import sys
import tempfile
import time
from pathlib import Path

import pytest

import ringdev
from ringdev import _abi

SOURCE_ROOT = Path(os.environ.get("RINGDEV_SOURCE_ROOT", Path(__file__).resolve().parents[2]))
NOBODY = 65534


# ---- the ABI: what tests/unit/test_abi.c and ringdev.h pin ----

def _int(expr):
    assert re.fullmatch(r"[0-9a-fx+* ]+", expr), expr
    return eval(expr, {"__builtins__": {}})  # digits, + and * only


def test_struct_layouts_match_test_abi_c():
    text = (SOURCE_ROOT / "tests/unit/test_abi.c").read_text()
    layouts = dict(_abi.LAYOUTS)
    layouts["ringdev_list_pipes"] = _abi.LIST_PIPES_HEAD
    sizes = {"ringdev_list_pipes": _abi.LIST_PIPES_SIZE}
    checked_sizes, checked_offsets = set(), 0
    for cname, expr in re.findall(r"sizeof\(struct (\w+)\),\s*([0-9a-fx+* ]+)\)", text):
        if cname in layouts:
            assert sizes.get(cname, layouts[cname].size) == _int(expr), cname
            checked_sizes.add(cname)
    for cname, field, expr in re.findall(r"OFF\((\w+),\s*(\w+),\s*([0-9a-fx+* ]+)\)", text):
        if cname not in layouts:
            continue
        if cname == "ringdev_list_pipes" and field == "pipes":
            assert _abi.LIST_PIPES_HEAD.size == _int(expr)
        else:
            assert layouts[cname].offsets[field] == _int(expr), "%s.%s" % (cname, field)
        checked_offsets += 1
    assert checked_sizes == set(layouts), "test_abi.c pins a size for every struct we pack"
    assert checked_offsets >= 50, "the regexes still find test_abi.c's pins"


def test_ioctl_numbers_match_test_abi_c():
    text = (SOURCE_ROOT / "tests/unit/test_abi.c").read_text()
    pinned = dict(re.findall(r"cr_assert_eq\(RINGDEV_IOC_(\w+),\s*(0x[0-9a-fA-F]+)u\)", text))
    assert len(pinned) == 8
    for name, value in pinned.items():
        assert getattr(_abi, "IOC_" + name) == int(value, 16), name


def test_constants_match_ringdev_h():
    text = (SOURCE_ROOT / "include/ringdev/ringdev.h").read_text()
    defines = dict(re.findall(r"#define RINGDEV_(\w+) (0x[0-9a-fA-F]+|\d+)u?\b", text))
    for name in ("ABI_MAJOR", "ABI_MINOR", "NAME_MAX", "NAME_SIZE", "MESSAGE_MAX",
                 "MESSAGE_HEADER", "CAPACITY_MIN", "ATTACH_CREATE", "ATTACH_EXCL",
                 "PIPE_EOF", "SET_KIND", "SET_POLICY", "SET_CAPACITY", "SET_MODE",
                 "LIST_PIPES_MAX", "IOC_MAGIC"):
        assert getattr(_abi, name) == int(defines[name], 0), name
    nums = dict(re.findall(r"#define RINGDEV_IOC_(\w+) _IO\w*\(RINGDEV_IOC_MAGIC, (0x[0-9a-f]+)", text))
    for name in ("VERSION", "ATTACH", "DETACH", "PIPE_INFO", "NREAD", "SET_CONFIG", "STATS",
                 "LIST_PIPES"):
        assert getattr(_abi, "IOC_" + name) & 0xFF == int(nums[name], 16), name


def test_ioc_macros():
    assert ringdev.IO(0x02) == 0xE502
    assert ringdev.IOR(0x00, 80) == 0x8050E500
    assert ringdev.IOW(0x01, 120) == 0x4078E501
    assert ringdev.IOWR(0x11, 15392) == (3 << 30) | (15392 << 16) | 0xE511
    with pytest.raises(ValueError):
        ringdev.IOR(0x90, 1 << 14)


# ---- the device ----

def test_version(daemon):
    v = ringdev.version()
    assert (v.abi_major, v.abi_minor) == (ringdev.ABI_MAJOR, ringdev.ABI_MINOR)
    assert v.frontend == "fuse"
    assert v.daemon_version == os.environ.get("RINGDEV_VERSION", v.daemon_version)
    assert re.fullmatch(r"\d+\.\d+\.\d+.*", v.daemon_version)
    assert ringdev.version(daemon.mount) == v
    with ringdev.open_pipe("ver", "r") as p:
        assert p.version() == v


def test_default_device(monkeypatch, daemon):
    assert ringdev.default_device() == daemon.mount
    monkeypatch.delenv("RINGDEV_DEVICE")
    want = "/dev/ringdev" if os.path.exists("/dev/ringdev") else "/run/ringdev"
    assert ringdev.default_device() == want  # root: XDG_RUNTIME_DIR does not count
    monkeypatch.setenv("RINGDEV_DEVICE", "")
    assert ringdev.default_device() == want


# ---- pipes ----

def test_stream_round_trip(daemon):
    w = ringdev.open_pipe("Stream1", "w", kind="stream", capacity=4096)
    assert w.write(b"hello ") == 6
    assert w.write(b"world") == 5
    info = w.info()
    assert (info.name, info.kind, info.policy) == ("Stream1", "stream", "block")
    assert (info.capacity, info.queued_bytes, info.writes) == (4096, 11, 2)
    assert (info.readers, info.writers, info.uid) == (0, 1, os.geteuid())
    assert info.mode == 0o600

    r = ringdev.open_pipe("stream1", "r", create=False)  # names are case-insensitive
    assert r.info().ino == info.ino
    assert r.nread() == ringdev.NRead(next=11, queued_bytes=11, queued_messages=0)
    assert r.read(4) == b"hell"  # a stream keeps no write boundaries
    assert r.read() == b"o world"
    assert r.info().queued_bytes == 0 and r.info().bytes_out == 11
    w.close()
    assert w.closed
    assert r.read() == b""  # end-of-file once the last writer closed
    assert r.info().eof
    r.close()


def test_message_round_trip(daemon):
    with ringdev.open_pipe("msg1", "rw", kind="message", capacity=256) as p:
        assert p.write(b"one") == 3
        assert p.write(b"three") == 5
        info = p.info()
        assert (info.kind, info.capacity) == ("message", 256)
        assert (info.queued_messages, info.queued_bytes) == (2, 8)
        assert p.nread() == ringdev.NRead(next=3, queued_bytes=8, queued_messages=2)
        with pytest.raises(OSError) as e:
            p.read(2)  # a short buffer: the message stays queued
        assert e.value.errno == errno.EMSGSIZE
        assert p.read(1000) == b"one"  # one read, one whole message
        assert p.read() == b"three"
        with pytest.raises(OSError) as e:
            p.write(b"x" * (256 - ringdev.MESSAGE_HEADER + 1))
        assert e.value.errno == errno.EMSGSIZE
        assert p.write(b"y" * (256 - ringdev.MESSAGE_HEADER)) == 252
        assert len(p.read()) == 252


def test_settings_apply_only_when_created(daemon):
    with ringdev.open_pipe("made", "rw", kind="message", capacity=1024, policy="overwrite",
                           permissions=0o640) as a:
        i = a.info()
        assert (i.kind, i.capacity, i.policy, i.mode) == ("message", 1024, "overwrite", 0o640)
        with ringdev.open_pipe("made", "r", kind="stream", capacity=64) as b:
            assert b.info().kind == "message" and b.info().capacity == 1024


def test_set_config(daemon):
    with ringdev.open_pipe("cfg", "rw") as p:
        p.set_config(capacity=8192, policy="fail", permissions=0o604)
        i = p.info()
        assert (i.capacity, i.policy, i.mode) == (8192, "fail", 0o604)
        p.write(b"data")
        with pytest.raises(OSError) as e:
            p.set_config(kind="message")  # only while empty
        assert e.value.errno == errno.EBUSY
        with pytest.raises(OSError) as e:
            p.ioctl(_abi.IOC_SET_CONFIG, _abi.PIPE_CONFIG.pack(set=_abi.SET_CAPACITY, capacity=1))
        assert e.value.errno == errno.EINVAL  # the daemon checks the range too
        with pytest.raises(ValueError):
            p.set_config(capacity=1)
        assert p.read() == b"data"


def test_attach_and_detach(daemon):
    with ringdev.open_pipe("att1", "rw") as p:
        p.attach("att2", create=True, kind="message", capacity=128)
        i = p.info()
        assert (p.name, i.name, i.kind, i.capacity) == ("att2", "att2", "message", 128)
        p.detach()
        with pytest.raises(OSError) as e:
            p.info()
        assert e.value.errno == errno.ENXIO


def test_list_pipes(daemon):
    with ringdev.open_pipe("listed-a", "w") as a, ringdev.open_pipe("listed-b", "w") as b:
        a.write(b"12345")
        pipes = {i.name: i for i in ringdev.list_pipes()}
        assert {"listed-a", "listed-b"} <= set(pipes)
        assert pipes["listed-a"].queued_bytes == 5
        assert b.info().ino == pipes["listed-b"].ino
        with ringdev.open_pipe("listed-a", "r") as r:
            r.read()


def test_stats_counters_change(daemon):
    before = ringdev.stats()
    with ringdev.open_pipe("stats1", "rw") as p:
        p.write(b"x" * 100)
        assert p.read() == b"x" * 100
        during = p.stats()
    after = ringdev.stats()
    assert during.bytes_in - before.bytes_in == 100
    assert during.bytes_out - before.bytes_out == 100
    assert (during.writes - before.writes, during.reads - before.reads) == (1, 1)
    assert during.pipes_created - before.pipes_created == 1
    assert during.opens >= 1 and during.pipes >= 1
    assert after.memory_limit > 0 and after.pipes_limit > 0
    assert after.parked_total == 0


def test_nonblocking_read_of_empty_pipe(daemon):
    with ringdev.open_pipe("nb", "rw", nonblocking=True) as p:
        with pytest.raises(BlockingIOError) as e:
            p.read()
        assert e.value.errno == errno.EAGAIN
        assert ringdev.stats().parked_reads == 0  # O_NONBLOCK never parks


# ---- asyncio ----

async def _wait_for_poller(task):
    """Until the daemon holds a poll notification for our handle (the task
    waits in loop.add_reader, not in a read): the write comes after that."""
    deadline = time.monotonic() + 5
    while ringdev.stats().pollers < 1:
        assert not task.done()
        assert time.monotonic() < deadline, "the reader never polled"
        await asyncio.sleep(0.01)
    assert not task.done()


def test_async_reader_gets_data_written_later_by_a_thread(daemon):
    async def main():
        with ringdev.open_pipe("async1", "r") as r, \
             ringdev.open_pipe("async1", "w", create=False) as w:
            task = asyncio.create_task(ringdev.read_async(r))
            await _wait_for_poller(task)
            loop = asyncio.get_running_loop()
            assert await loop.run_in_executor(None, w.write, b"later") == 5
            return await asyncio.wait_for(task, 10)
    assert asyncio.run(main()) == b"later"


def test_async_reader_gets_messages_from_another_process(daemon):
    writer = ("import ringdev, sys\n"
              "with ringdev.open_pipe('async2', 'w', create=False) as p:\n"
              "    p.write(b'first'); p.write(b'second')\n")

    async def main():
        with ringdev.open_pipe("async2", "r", kind="message") as r:
            reader = ringdev.AsyncReader(r)
            got = []

            async def collect():
                async for message in reader:  # until end-of-file
                    got.append(message)
            task = asyncio.create_task(collect())
            await _wait_for_poller(task)
            env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", writer, env=env)
            assert await asyncio.wait_for(proc.wait(), 20) == 0
            await asyncio.wait_for(task, 10)
            return got
    assert asyncio.run(main()) == [b"first", b"second"]


def test_async_write_waits_for_room(daemon):
    async def main():
        with ringdev.open_pipe("async3", "rw", capacity=64) as p:
            a = ringdev.AsyncReader(p)
            assert await a.write(b"a" * 64) == 64
            task = asyncio.create_task(a.write(b"b" * 10))  # full: waits for POLLOUT
            await asyncio.sleep(0.05)
            assert not task.done()
            assert p.read(100) == b"a" * 64
            assert await asyncio.wait_for(task, 10) == 10
            return p.read(100)
    assert asyncio.run(main()) == b"b" * 10


# ---- errors ----

def test_missing_pipe_without_create_is_enoent(daemon):
    with pytest.raises(FileNotFoundError) as e:
        ringdev.open_pipe("nosuch", "r", create=False)
    assert e.value.errno == errno.ENOENT
    assert "nosuch" not in {i.name for i in ringdev.list_pipes()}


def test_exclusive_on_existing_pipe_is_eexist(daemon):
    with ringdev.open_pipe("excl", "w", exclusive=True):
        with pytest.raises(FileExistsError) as e:
            ringdev.open_pipe("excl", "w", exclusive=True)
        assert e.value.errno == errno.EEXIST


def test_bad_names_and_arguments(daemon):
    for name, err in ((".hidden", errno.EINVAL), ("a/b", errno.EINVAL), ("", errno.EINVAL),
                      ("sp ace", errno.EINVAL), ("x" * 64, errno.ENAMETOOLONG)):
        with pytest.raises(OSError) as e:
            ringdev.open_pipe(name, "w")
        assert e.value.errno == err, name
    with ringdev.open_pipe("x" * 63, "r") as p:
        assert len(p.info().name) == 63
    with pytest.raises(ValueError):
        ringdev.open_pipe("ok", "a")
    with pytest.raises(ValueError):
        ringdev.open_pipe("ok", "w", kind="datagram")
    with pytest.raises(ValueError):
        ringdev.open_pipe("ok", "w", capacity=(1 << 30) + 1)


def test_not_a_ringdev_device_is_enotty(daemon):
    with tempfile.TemporaryDirectory() as plain:
        with pytest.raises(OSError) as e:
            ringdev.open_pipe("p", "w", device=plain)
        assert e.value.errno == errno.ENOTTY
        assert os.listdir(plain) == []  # nothing was created in it
        with pytest.raises(OSError) as e:
            ringdev.stats(plain)
        assert e.value.errno == errno.ENOTTY


def test_closed_pipe_raises_valueerror(daemon):
    p = ringdev.open_pipe("closed", "rw")
    p.close()
    p.close()  # twice is fine
    for call in (p.read, p.fileno, p.info, lambda: p.write(b"x")):
        with pytest.raises(ValueError):
            call()


def _as_nobody(fn):
    """Run fn() in a forked child as uid/gid 65534: its exit code is the
    errno of the OSError it raised, 0 if none (100 for anything else)."""
    pid = os.fork()
    if pid == 0:
        code = 100
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            fn()
            code = 0
        except OSError as e:
            code = e.errno
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status), status
    return os.WEXITSTATUS(status)


def test_another_users_private_pipe_is_eacces(daemon):
    mount = daemon.mount
    with ringdev.open_pipe("private", "w", permissions=0o600), \
         ringdev.open_pipe("public", "w", permissions=0o666):
        def open_private():
            ringdev.open_pipe("private", "r", create=False, device=mount).close()

        def open_public():
            ringdev.open_pipe("public", "r", create=False, device=mount).close()

        def configure_public():
            with ringdev.open_pipe("public", "r", create=False, device=mount) as p:
                p.set_config(capacity=128)
        assert _as_nobody(open_public) == 0  # the mount is reachable for nobody
        assert _as_nobody(open_private) == errno.EACCES
        assert _as_nobody(configure_public) == errno.EPERM  # not the owner
        assert _as_nobody(lambda: ringdev.stats(mount)) == 0  # anyone may ask
