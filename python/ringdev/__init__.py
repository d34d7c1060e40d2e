# SPDX-License-Identifier: MIT
"""ringdev: named ring-buffered pipes served by ringdevd, from Python.

Pure Python over the device interface of ringdev(4): open(2), read(2),
write(2), poll(2) and the ioctls of <ringdev/ringdev.h>, through os and
fcntl.ioctl. No library is linked and nothing but the standard library is
needed.

    import ringdev
    with ringdev.open_pipe("jobs", "w", kind="message", capacity=1 << 20) as p:
        p.write(b"one message")
    with ringdev.open_pipe("jobs", "r", create=False) as p:
        print(p.read(), p.info().queued_messages)

The device is the CUSE node (/dev/NAME) or the FUSE mount (a directory whose
files are the pipes); without `device` it is found like the tools do:
$RINGDEV_DEVICE, else /dev/ringdev if it exists, else /run/ringdev (root)
or $XDG_RUNTIME_DIR/ringdev. Every failure is an OSError with the errno the
daemon gave (FileNotFoundError for ENOENT, PermissionError for EACCES, ...).
"""

import asyncio
import errno
import fcntl
import os
import re
import stat as _stat
from dataclasses import dataclass, make_dataclass

from . import _abi
from ._abi import (ABI_MAJOR, ABI_MINOR, CAPACITY_MAX, CAPACITY_MIN, MESSAGE_HEADER,  # noqa: F401
                   MESSAGE_MAX, NAME_MAX, IO, IOR, IOW, IOWR)

__all__ = [
    "ABI_MAJOR", "ABI_MINOR", "MESSAGE_MAX", "NAME_MAX", "CAPACITY_MIN", "CAPACITY_MAX",
    "IO", "IOR", "IOW", "IOWR",
    "Pipe", "PipeInfo", "NRead", "Stats", "Version", "AsyncReader",
    "open_pipe", "stats", "version", "list_pipes", "default_device", "read_async", "write_async",
]

__version__ = "0.1.0"

KINDS = {"stream": _abi.KIND_STREAM, "message": _abi.KIND_MESSAGE}
POLICIES = {"block": _abi.POLICY_BLOCK, "overwrite": _abi.POLICY_OVERWRITE,
            "fail": _abi.POLICY_FAIL}
FRONTENDS = {_abi.FRONTEND_FUSE: "fuse", _abi.FRONTEND_CUSE: "cuse"}
_KIND_NAMES = {v: k for k, v in KINDS.items()}
_POLICY_NAMES = {v: k for k, v in POLICIES.items()}
_OPEN_MODES = {"r": os.O_RDONLY, "w": os.O_WRONLY, "rw": os.O_RDWR}
_NAME_RE = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*\Z")


# ---- results ----

@dataclass(frozen=True)
class Version:
    """RINGDEV_IOC_VERSION."""
    abi_major: int
    abi_minor: int
    frontend: str           # "fuse" or "cuse" (or the number if unknown)
    daemon_version: str


@dataclass(frozen=True)
class PipeInfo:
    """RINGDEV_IOC_PIPE_INFO: the pipe a handle is attached to."""
    name: str
    kind: str               # "stream" or "message"
    policy: str             # "block", "overwrite" or "fail"
    mode: int
    uid: int
    gid: int
    flags: int              # RINGDEV_PIPE_* bits
    readers: int
    writers: int
    handles: int
    parked_reads: int
    parked_writes: int
    capacity: int
    queued_bytes: int
    queued_messages: int
    allocated_bytes: int
    bytes_in: int
    bytes_out: int
    writes: int
    reads: int
    dropped_bytes: int
    dropped_messages: int
    ino: int

    @property
    def eof(self):
        return bool(self.flags & _abi.PIPE_EOF)

    @property
    def persistent(self):
        return bool(self.flags & _abi.PIPE_PERSISTENT)

    @property
    def unlinked(self):
        return bool(self.flags & _abi.PIPE_UNLINKED)


@dataclass(frozen=True)
class NRead:
    """RINGDEV_IOC_NREAD: what a read would get now."""
    next: int               # stream: bytes queued; message: next message's size
    queued_bytes: int
    queued_messages: int


Stats = make_dataclass("Stats", [(name, int) for name in _abi.STATS.names], frozen=True)
Stats.__doc__ = "RINGDEV_IOC_STATS: device totals (the fields of struct ringdev_stats)."


def _pipe_info(raw, offset=0):
    d = _abi.PIPE_INFO.unpack(raw, offset)
    d["kind"] = _KIND_NAMES.get(d["kind"], d["kind"])
    d["policy"] = _POLICY_NAMES.get(d["policy"], d["policy"])
    return PipeInfo(**d)


# ---- the device ----

def default_device():
    """The device used without `device`: common/device_path.c's rule."""
    env = os.environ.get("RINGDEV_DEVICE")
    if env:
        return env
    if os.path.exists("/dev/ringdev"):
        return "/dev/ringdev"
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if os.geteuid() != 0 and runtime and runtime.startswith("/"):
        return runtime + "/ringdev"
    return "/run/ringdev"


def _ioctl(fd, request, arg=None):
    """fcntl.ioctl with a mutable buffer of the argument's size: returns the
    bytes the daemon wrote back. OSError with the daemon's errno."""
    buf = bytearray(arg if arg is not None else (request >> _abi._IOC_SIZESHIFT) & 0x3FFF)
    fcntl.ioctl(fd, request, buf, True)
    return bytes(buf)


def _is_mount(path):
    """True for a FUSE mount (a directory), False for a CUSE node; else ENOTTY."""
    st = os.stat(path)
    if _stat.S_ISDIR(st.st_mode):
        return True
    if _stat.S_ISCHR(st.st_mode):
        return False
    raise OSError(errno.ENOTTY, "not a ringdev device (a mount or a node)", path)


def _version_of(fd):
    d = _abi.VERSION.unpack(_ioctl(fd, _abi.IOC_VERSION))
    return Version(d["abi_major"], d["abi_minor"], FRONTENDS.get(d["frontend"], d["frontend"]),
                   d["daemon_version"])


def _open_device(device):
    """An fd on the device for device-wide ioctls: the mount root
    (O_DIRECTORY) or the node (O_RDONLY | O_NONBLOCK, as ringdevctl)."""
    path = device or default_device()
    flags = os.O_RDONLY | os.O_CLOEXEC
    flags |= os.O_DIRECTORY if _is_mount(path) else os.O_NONBLOCK
    return os.open(path, flags), path


def _checked(fd, path):
    """Check fd speaks our ABI major: ENOTTY if it is no ringdev at all."""
    try:
        v = _version_of(fd)
    except OSError as e:
        if e.errno == errno.ENOTTY:
            raise OSError(errno.ENOTTY, "not a ringdev device (no RINGDEV_IOC_VERSION)", path)
        raise
    if v.abi_major != ABI_MAJOR:
        raise OSError(errno.EPROTONOSUPPORT, "ringdevd speaks ABI %d.%d, this module %d.%d"
                      % (v.abi_major, v.abi_minor, ABI_MAJOR, ABI_MINOR), path)
    return v


def version(device=None):
    """RINGDEV_IOC_VERSION of the device (default: default_device())."""
    fd, _ = _open_device(device)
    try:
        return _version_of(fd)
    finally:
        os.close(fd)


def stats(device=None):
    """RINGDEV_IOC_STATS of the device, a Stats."""
    fd, _ = _open_device(device)
    try:
        return Stats(**_abi.STATS.unpack(_ioctl(fd, _abi.IOC_STATS)))
    finally:
        os.close(fd)


def list_pipes(device=None):
    """RINGDEV_IOC_LIST_PIPES: a PipeInfo for every pipe the caller may see."""
    fd, _ = _open_device(device)
    head, out, start = _abi.LIST_PIPES_HEAD, [], 0
    try:
        while True:
            buf = bytearray(_abi.LIST_PIPES_SIZE)
            buf[:head.size] = head.pack(start=start)
            fcntl.ioctl(fd, _abi.IOC_LIST_PIPES, buf, True)
            h = head.unpack(buf)
            for i in range(h["count"]):
                out.append(_pipe_info(buf, head.size + i * _abi.PIPE_INFO.size))
            start += h["count"]
            if h["count"] == 0 or start >= h["total"]:
                return out
    finally:
        os.close(fd)


# ---- pipes ----

def _check_name(name):
    if len(name.encode()) > NAME_MAX:
        raise OSError(errno.ENAMETOOLONG, "pipe name longer than %d bytes" % NAME_MAX, name)
    if not _NAME_RE.match(name):
        raise OSError(errno.EINVAL,
                      "invalid pipe name (1-63 of [A-Za-z0-9._-], not starting with '.')", name)


def _value(table, what, value):
    if value is None:
        return 0
    if value not in table:
        raise ValueError("%s must be one of %s, not %r" % (what, ", ".join(table), value))
    return table[value]


def _capacity(capacity):
    if capacity is None:
        return 0
    if not CAPACITY_MIN <= capacity <= CAPACITY_MAX:
        raise ValueError("capacity must be %d to %d bytes" % (CAPACITY_MIN, CAPACITY_MAX))
    return capacity


class Pipe:
    """An open handle on a ringdev pipe: file-like (read, write, fileno,
    close, a context manager) plus the pipe ioctls. Unbuffered: each read()
    and write() is one system call, so on a message pipe one write() is one
    message and one read() returns one whole message."""

    def __init__(self, fd, name, device):
        self._fd = fd
        self.name = name
        self.device = device

    # file-like
    def fileno(self):
        if self._fd < 0:
            raise ValueError("I/O operation on closed pipe")
        return self._fd

    @property
    def closed(self):
        return self._fd < 0

    def close(self):
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except OSError:
            pass

    def __repr__(self):
        return "<ringdev.Pipe %r fd=%d on %s>" % (self.name, self._fd, self.device)

    def read(self, size=MESSAGE_MAX):
        """One read(2): a stream pipe gives up to `size` bytes, a message pipe
        one whole message (EMSGSIZE if it is larger than `size`; the default
        always suffices). b"" is end-of-file. BlockingIOError when the pipe is
        non-blocking and empty."""
        return os.read(self.fileno(), size)

    def write(self, data):
        """One write(2): the count written. On a message pipe, one message."""
        return os.write(self.fileno(), data)

    def set_blocking(self, blocking):
        os.set_blocking(self.fileno(), blocking)

    def get_blocking(self):
        return os.get_blocking(self.fileno())

    # ioctls
    def ioctl(self, request, arg=None):
        """A raw ioctl (e.g. a device-specific one answered by a broker):
        `arg` is the input bytes (or None for a zeroed buffer of the size the
        number encodes); returns the buffer as the daemon left it."""
        return _ioctl(self.fileno(), request, arg)

    def version(self):
        return _version_of(self.fileno())

    def info(self):
        """RINGDEV_IOC_PIPE_INFO, a PipeInfo."""
        return _pipe_info(self.ioctl(_abi.IOC_PIPE_INFO))

    def nread(self):
        """RINGDEV_IOC_NREAD, an NRead."""
        return NRead(**_abi.NREAD.unpack(self.ioctl(_abi.IOC_NREAD)))

    def stats(self):
        """RINGDEV_IOC_STATS through this handle."""
        return Stats(**_abi.STATS.unpack(self.ioctl(_abi.IOC_STATS)))

    def set_config(self, kind=None, policy=None, capacity=None, permissions=None):
        """RINGDEV_IOC_SET_CONFIG: change what is given, live (owner or root)."""
        bits = 0
        bits |= _abi.SET_KIND if kind is not None else 0
        bits |= _abi.SET_POLICY if policy is not None else 0
        bits |= _abi.SET_CAPACITY if capacity is not None else 0
        bits |= _abi.SET_MODE if permissions is not None else 0
        if not bits:
            return
        if permissions is not None and not 0 <= permissions <= 0o777:
            raise ValueError("permissions must be 0 to 0o777")
        arg = _abi.PIPE_CONFIG.pack(set=bits, kind=_value(KINDS, "kind", kind),
                                    policy=_value(POLICIES, "policy", policy),
                                    mode=permissions or 0, capacity=_capacity(capacity))
        self.ioctl(_abi.IOC_SET_CONFIG, arg)

    def attach(self, name, create=False, exclusive=False, kind=None, policy=None,
               capacity=None, permissions=0o600):
        """RINGDEV_IOC_ATTACH: move this handle to pipe `name` (settings apply
        only when this call creates it)."""
        _check_name(name)
        flags = (_abi.ATTACH_CREATE if create else 0) | (_abi.ATTACH_EXCL if exclusive else 0)
        arg = _abi.ATTACH.pack(name=name.encode(), flags=flags,
                               kind=_value(KINDS, "kind", kind),
                               policy=_value(POLICIES, "policy", policy),
                               mode=permissions, capacity=_capacity(capacity))
        self.ioctl(_abi.IOC_ATTACH, arg)
        self.name = name

    def detach(self):
        """RINGDEV_IOC_DETACH."""
        fcntl.ioctl(self.fileno(), _abi.IOC_DETACH)


def open_pipe(name, mode="r", kind="stream", capacity=None, policy=None, create=True,
              device=None, *, exclusive=False, permissions=0o600, nonblocking=False):
    """Open pipe `name` for reading ("r"), writing ("w") or both ("rw").

    With `create` a missing pipe is created with `kind`, `capacity` (None:
    ringdevd --ring-size), `policy` (None: block) and `permissions`; an
    existing pipe keeps its settings. `exclusive` makes an existing pipe
    EEXIST. Without `create` a missing pipe is ENOENT.

    FUSE mount: opens MOUNT/NAME (O_CREAT | O_EXCL when creating, so it knows
    it created the pipe) and then applies the settings with
    RINGDEV_IOC_SET_CONFIG. CUSE node: opens the node and moves the handle
    with RINGDEV_IOC_ATTACH (CREATE and the settings in one call).
    """
    if mode not in _OPEN_MODES:
        raise ValueError("mode must be 'r', 'w' or 'rw', not %r" % (mode,))
    _check_name(name)
    kind_v = _value(KINDS, "kind", kind)
    _value(POLICIES, "policy", policy)
    _capacity(capacity)
    if not 0 <= permissions <= 0o777:
        raise ValueError("permissions must be 0 to 0o777")
    path = device or default_device()
    flags = _OPEN_MODES[mode] | os.O_CLOEXEC | (os.O_NONBLOCK if nonblocking else 0)

    if not _is_mount(path):
        fd = os.open(path, flags)
        try:
            _checked(fd, path)
            pipe = Pipe(fd, None, path)
            pipe.attach(name, create=create, exclusive=exclusive, kind=kind, policy=policy,
                        capacity=capacity, permissions=permissions)
            return pipe
        except BaseException:
            os.close(fd)
            raise

    # The mount: check it is one before anything is created in it.
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _checked(dfd, path)
    finally:
        os.close(dfd)
    file = os.path.join(path, name)
    created = False
    fd = -1
    for _ in range(8):  # the pipe may come and go between the two opens
        if create:
            try:
                fd = os.open(file, flags | os.O_CREAT | os.O_EXCL, permissions)
                created = True
                break
            except FileExistsError:
                if exclusive:
                    raise
        try:
            fd = os.open(file, flags)
            break
        except FileNotFoundError:
            if not create:
                raise
    else:
        raise OSError(errno.EAGAIN, "pipe keeps appearing and disappearing", file)
    pipe = Pipe(fd, name, path)
    if created:
        try:
            # The kernel applied the umask to the mode: give exactly `permissions`.
            pipe.set_config(kind=kind if kind_v != _abi.KIND_STREAM else None,
                            policy=policy, capacity=capacity, permissions=permissions)
        except BaseException:
            pipe.close()
            try:
                os.unlink(file)
            except OSError:
                pass
            raise
    return pipe


# ---- asyncio ----

class AsyncReader:
    """Reads (and writes) a pipe from an asyncio event loop without blocking
    it: the fd is made non-blocking, and a read that gets EAGAIN waits for
    readability with loop.add_reader (poll(2) on the handle: POLLIN, or
    POLLHUP at end-of-file), then tries again."""

    def __init__(self, pipe, loop=None):
        self.pipe = pipe
        self._loop = loop
        pipe.set_blocking(False)

    def _get_loop(self):
        return self._loop or asyncio.get_running_loop()

    async def _wait(self, add, remove):
        loop = self._get_loop()
        fd = self.pipe.fileno()
        fut = loop.create_future()

        def ready():
            if not fut.done():
                fut.set_result(None)
        add(loop)(fd, ready)
        try:
            await fut
        finally:
            remove(loop)(fd)

    async def read(self, size=MESSAGE_MAX):
        """The next data (one message on a message pipe); b"" at end-of-file."""
        while True:
            try:
                return self.pipe.read(size)
            except BlockingIOError:
                pass
            await self._wait(lambda l: l.add_reader, lambda l: l.remove_reader)

    async def write(self, data):
        """Write `data` (one message on a message pipe), waiting for room:
        the count written."""
        while True:
            try:
                return self.pipe.write(data)
            except BlockingIOError:
                pass
            await self._wait(lambda l: l.add_writer, lambda l: l.remove_writer)

    def __aiter__(self):
        return self

    async def __anext__(self):
        data = await self.read()
        if not data:
            raise StopAsyncIteration
        return data


async def read_async(pipe, size=MESSAGE_MAX):
    """One read of `pipe` from asyncio (see AsyncReader)."""
    return await AsyncReader(pipe).read(size)


async def write_async(pipe, data):
    """One write to `pipe` from asyncio (see AsyncReader)."""
    return await AsyncReader(pipe).write(data)
