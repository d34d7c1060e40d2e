# SPDX-License-Identifier: MIT
"""The real ringdevd for the Python tests: one daemon on a private FUSE mount
for the whole session, found through $RINGDEVD (meson passes it). The
finalizer runs even when tests failed: it checks that no request is left
parked, stops the daemon by its pid (SIGTERM, then SIGKILL), unmounts a
mount it left, and removes the temp dir; then it fails the session if the
daemon did not exit 0."""

import fcntl
import os
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

import ringdev
from ringdev import _abi

START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0


def is_mounted(path):
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


def answers_version(path):
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        fcntl.ioctl(fd, _abi.IOC_VERSION, bytearray(_abi.VERSION.size), True)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


class Daemon:
    def __init__(self):
        self.exe = os.environ.get("RINGDEVD")
        if not self.exe:
            raise RuntimeError("set RINGDEVD to the ringdevd binary (meson test does)")
        if os.geteuid() != 0:
            raise RuntimeError("the Python tests need root (a FUSE mount with other users' access)")
        self.dir = tempfile.mkdtemp(prefix="ringdev-py.")
        os.chmod(self.dir, 0o755)  # the nobody helpers must reach the mount
        self.mount = os.path.join(self.dir, "mnt")
        os.mkdir(self.mount)
        self.log_path = os.path.join(self.dir, "daemon.log")
        self.proc = None

    def log(self):
        try:
            with open(self.log_path) as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def start(self):
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen([self.exe, "--frontend=fuse", "--mount", self.mount, "-f"],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + START_TIMEOUT
        while not answers_version(self.mount):
            if self.proc.poll() is not None:
                raise RuntimeError("ringdevd exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if time.monotonic() > deadline:
                raise RuntimeError("ringdevd not ready within %.0f s:\n%s" % (START_TIMEOUT, self.log()))
            time.sleep(0.02)

    def wait_idle(self, timeout=2.0):
        deadline = time.monotonic() + timeout
        while True:
            s = ringdev.stats(self.mount)
            if s.parked_total == 0 or time.monotonic() > deadline:
                return s.parked_total
            time.sleep(0.02)

    def stop(self):
        problems = []
        try:
            if self.proc and self.proc.poll() is None:
                parked = self.wait_idle()
                if parked:
                    problems.append("%d requests still parked at the end" % parked)
        except OSError as e:
            problems.append("stats at the end: %s" % e)
        finally:
            if self.proc:
                if self.proc.poll() is None:
                    os.kill(self.proc.pid, signal.SIGTERM)
                try:
                    self.proc.wait(STOP_TIMEOUT)
                except subprocess.TimeoutExpired:
                    os.kill(self.proc.pid, signal.SIGKILL)
                    self.proc.wait()
                    problems.append("ringdevd ignored SIGTERM")
                if self.proc.returncode != 0:
                    problems.append("ringdevd exited with %d:\n%s" % (self.proc.returncode, self.log()))
            if is_mounted(self.mount):
                subprocess.run(["umount", "-l", self.mount], check=False)
            shutil.rmtree(self.dir, ignore_errors=True)
        if problems:
            raise AssertionError("; ".join(problems))


@pytest.fixture(scope="session")
def daemon():
    d = Daemon()
    try:
        d.start()
    except BaseException:
        d.stop()
        raise
    old = os.environ.get("RINGDEV_DEVICE")
    os.environ["RINGDEV_DEVICE"] = d.mount  # the default device for every test
    try:
        yield d
    finally:
        if old is None:
            os.environ.pop("RINGDEV_DEVICE", None)
        else:
            os.environ["RINGDEV_DEVICE"] = old
        d.stop()


@pytest.fixture
def mount(daemon):
    return daemon.mount

