#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""ringdevd --fd-store under ringdev-supervise, the other end of systemd's
notify and fd store protocol: what `systemctl restart`, a crash with
Restart=on-failure and `systemctl stop` do to the apps of a running daemon.

- restart (SIGUSR1 to the supervisor: SIGTERM, then a new process with the
  stored fds): a new pid; queued bytes, a read parked on an empty pipe, a
  writer's handle and the broker-less settings of a persistent pipe all
  carry over; restarts counts 1.
- crash (SIGUSR2: SIGKILL, restarted): the mount or nodes stay; handles
  from before get EBADF; on kernels with FUSE_NOTIFY_RESEND (Linux 6.9) a
  read parked at the crash ends with EBADF at once; new opens work.
- after a crash, a new pipe never gets the inode number of a lost one:
  reopening an old handle through /proc/self/fd opened the new pipe (of
  another user, maybe) by that number, and read its bytes.
- a SIGHUP and a second crash: a handle from before the first crash still gets EBADF, and its
  close does not bring the daemon down (the process after the second crash
  once took its fh, of a generation it did not know was lost, for one of
  its own handles: SIGSEGV).
- --user with the store: a start from the store and one after a crash drop
  to the user as the first start did (they stayed root).
- stop (SIGTERM to the supervisor): the store is closed, the daemon is gone,
  nothing of it keeps running.

Runs on the FUSE mount here and on CUSE in the VM (RINGDEV_TEST_FRONTEND).
Cleans up by pid whatever happens.
"""
import errno
import os
import platform
import signal
import subprocess
import sys
import tempfile
import threading
import time

RINGDEVD = os.environ.get("RINGDEVD")
SUPERVISE = os.environ.get("SUPERVISE")
PYPATH = os.environ.get("RINGDEV_PYTHONPATH")
FRONTEND = os.environ.get("RINGDEV_TEST_FRONTEND", "fuse")
if PYPATH:
    sys.path.insert(0, PYPATH)
import ringdev  # noqa: E402

failures = 0
work = tempfile.mkdtemp(prefix="ringdev-fdstore.")
os.chmod(work, 0o755)
events = os.path.join(work, "events")
log = os.path.join(work, "ringdevd.log")
if FRONTEND == "cuse":
    NAME = "rdfs%d" % os.getpid()
    DEV = "/dev/" + NAME
    CTL = DEV + "-ctl"
    where = ["--frontend=cuse", "--name", NAME]
else:
    DEV = os.path.join(work, "mnt")
    CTL = os.path.join(DEV, ".ctl")
    where = ["--frontend=fuse", "--mount", DEV]
supervisor = None


def check(cond, what):
    global failures
    print(("ok: " if cond else "FAIL: ") + what, flush=True)
    if not cond:
        failures += 1


def event_lines():
    try:
        with open(events) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


def wait_event(prefix, after=0, timeout=20):
    """The first event line starting with prefix past line `after`."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        lines = event_lines()
        for i, line in enumerate(lines[after:], after):
            if line.startswith(prefix):
                return i, line
        time.sleep(0.02)
    raise TimeoutError("no '%s' event after line %d:\n%s" % (prefix, after, "\n".join(event_lines())))


def pid_of(line):
    for word in line.split():
        if word.startswith("pid="):
            return int(word[4:])
    return 0


def daemon_ready(after):
    """Wait for a start, its READY and the boot record in the store (in
    either order: CUSE stores it once both nodes had INIT, before READY)."""
    i, line = wait_event("start ", after)
    pid = pid_of(line)
    j, _ = wait_event("ready pid=%d" % pid, i)
    k, _ = wait_event("fdstore pid=%d name=boot" % pid, i)
    return max(j, k), pid


def stats_ext():
    import fcntl
    import struct
    from ringdev import _abi
    fd = os.open(DEV, os.O_RDONLY | os.O_NONBLOCK)
    try:
        buf = bytearray(128)
        fcntl.ioctl(fd, _abi.IOC_STATS_EXT, buf)
        return struct.unpack_from("<QQQ", buf)
    finally:
        os.close(fd)


def main():
    global supervisor
    for tool, path in (("RINGDEVD", RINGDEVD), ("SUPERVISE", SUPERVISE), ("RINGDEV_PYTHONPATH", PYPATH)):
        if not path:
            print("fdstore: %s is not set" % tool, file=sys.stderr)
            return 1
    with open(log, "w") as out:
        supervisor = subprocess.Popen(
            [SUPERVISE, "--restart-on-exit", "--events", events, "--", RINGDEVD, "-f", "--fd-store"] + where,
            stdout=out, stderr=subprocess.STDOUT)
    at, pid1 = daemon_ready(0)
    check(pid1 > 0, "ringdevd started under the supervisor and stored its connection")

    # --- systemctl restart ---
    kept = ringdev.open_pipe("kept", "rw", device=DEV, capacity=128 << 10)
    kept.write(b"queued before the restart")
    settings = ringdev.open_pipe("settings", "w", device=DEV, kind="message", capacity=4096, policy="overwrite")
    empty = ringdev.open_pipe("empty", "rw", device=DEV)
    got = {}

    def parked_read(pipe, key):
        try:
            got[key] = pipe.read(64)
        except OSError as e:
            got[key] = errno.errorcode.get(e.errno, str(e.errno))

    reader = threading.Thread(target=parked_read, args=(empty, "restart"))
    reader.start()
    time.sleep(0.3)
    os.kill(supervisor.pid, signal.SIGUSR1)
    at, pid2 = daemon_ready(at + 1)
    check(pid2 != pid1, "systemctl restart: a new process (%d, was %d)" % (pid2, pid1))
    _, restarts, pause = stats_ext()
    check(restarts == 1, "the new process counts the restart (%d)" % restarts)
    check(kept.read(64) == b"queued before the restart", "queued bytes carried over")
    kept.write(b"and the handle writes on")
    check(kept.read(64) == b"and the handle writes on", "the handle opened before serves on")
    writer = ringdev.open_pipe("empty", "w", create=False, device=DEV)
    writer.write(b"wakes the parked read")
    reader.join(10)
    check(got.get("restart") == b"wakes the parked read", "the read parked before the restart completed: %r"
          % got.get("restart"))
    info = settings.info()
    check(info.capacity == 4096 and info.kind == "message" and info.policy == "overwrite",
          "a pipe keeps its settings (capacity %d)" % info.capacity)
    check(0 < pause < 10_000_000, "the pause is reported (%d us)" % pause)

    # --- a crash ---
    kept_ino = os.fstat(kept.fileno()).st_ino
    reader = threading.Thread(target=parked_read, args=(empty, "crash"))
    reader.start()
    time.sleep(0.3)
    os.kill(supervisor.pid, signal.SIGUSR2)
    at, pid3 = daemon_ready(at + 1)
    check(pid3 != pid2, "after a crash a new process serves (%d)" % pid3)
    try:
        kept.write(b"x")
        check(False, "a handle from before the crash fails")
    except OSError as e:
        check(e.errno == errno.EBADF, "a handle from before the crash gets EBADF (%s)" % errno.errorcode[e.errno])
    release = tuple(int(x) for x in platform.release().split("-")[0].split(".")[:2])
    reader.join(10 if release >= (6, 9) else 1)
    if release >= (6, 9):
        check(got.get("crash") == "EBADF", "the read parked at the crash ended with EBADF (resent): %r"
              % got.get("crash"))
    else:
        check(reader.is_alive(), "kernel %s has no resend: the read parked at the crash still waits"
              % platform.release())
    fresh = ringdev.open_pipe("fresh", "rw", device=DEV)
    fresh.write(b"new opens work")
    check(fresh.read(64) == b"new opens work", "new opens work after the crash")
    if FRONTEND == "fuse":
        # The kernel still knows the lost pipe's inode by its number: an
        # open through /proc/self/fd names that number, not a path.
        check(os.fstat(fresh.fileno()).st_ino != kept_ino, "a pipe made after the crash has an inode number "
              "of its own (%d, the lost one had %d)" % (os.fstat(fresh.fileno()).st_ino, kept_ino))
        fresh.write(b"not for the old handle")
        try:
            os.close(os.open("/proc/self/fd/%d" % kept.fileno(), os.O_RDONLY | os.O_NONBLOCK))
            check(False, "reopening a handle from before the crash opened a pipe made after it")
        except OSError as e:
            check(e.errno == errno.ENOENT, "reopening a handle from before the crash finds nothing (%s)"
                  % errno.errorcode[e.errno])
        check(fresh.read(64) == b"not for the old handle", "the new pipe's bytes stay its own")
    fresh.close()

    # --- a SIGHUP, then a second crash: the handles of before the first
    # crash are still the kernel's, and no handle of the process after the
    # second may share their fh, however many images came in between ---
    before = stats_ext()[1]
    os.kill(supervisor.pid, signal.SIGHUP)  # passed on to ringdevd
    end = time.monotonic() + 20
    while stats_ext()[1] == before and time.monotonic() < end:
        time.sleep(0.02)
    check(stats_ext()[1] == before + 1, "a SIGHUP after the crash restarted in place")
    os.kill(supervisor.pid, signal.SIGUSR2)
    at, pid4 = daemon_ready(at + 1)
    try:
        kept.write(b"x")
        check(False, "a handle from before two crashes fails")
    except OSError as e:
        check(e.errno == errno.EBADF, "a handle from before two crashes gets EBADF (%s)" % errno.errorcode[e.errno])
    try:
        kept.close()  # its RELEASE names an fh of two processes ago
    except OSError:
        pass
    again = ringdev.open_pipe("fresh", "rw", device=DEV)
    again.write(b"still serving")
    check(again.read(64) == b"still serving", "the process after two crashes serves on after that handle's close")
    again.close()
    check(not [line for line in event_lines() if line.startswith("exit pid=%d" % pid4)],
          "the process after two crashes is alive (it took an old fh for its own: %s)"
          % [line for line in event_lines() if line.startswith("exit ")])
    for p in (empty, writer, settings):
        try:
            p.close()
        except OSError:
            pass

    # --- systemctl stop ---
    supervisor.send_signal(signal.SIGTERM)
    code = supervisor.wait(30)
    check(code == 0, "the supervisor stopped cleanly (%d)" % code)
    for pid in (pid1, pid2, pid3, pid4):
        check(not os.path.exists("/proc/%d" % pid) or open("/proc/%d/stat" % pid).read().split()[2] == "Z",
              "ringdevd %d is gone" % pid)
    if reader.is_alive():
        reader.join(10)  # the store closed: the connection ended, the read with it
    check(not reader.is_alive(), "nothing of the daemon is left waiting")
    user_drop()
    crash_during_sighup()
    return 0


def crash_during_sighup():
    """A new program that dies during a SIGHUP handover under --fd-store:
    the manager starts the next one on the state the old image stored, and
    the guard does not take over too (two users of one state would answer
    twice): the bytes and a parked read come through, once."""
    global supervisor, events, log, DEV, CTL, where
    subprocess.run(["umount", "-l", DEV], stderr=subprocess.DEVNULL)
    sub = os.path.join(work, "hup")
    os.mkdir(sub)
    os.chmod(sub, 0o755)
    events = os.path.join(sub, "events")
    log = os.path.join(sub, "ringdevd.log")
    if FRONTEND == "cuse":
        name = "rdfh%d" % os.getpid()
        DEV = "/dev/" + name
        CTL = DEV + "-ctl"
        where = ["--frontend=cuse", "--name", name]
    else:
        DEV = os.path.join(sub, "mnt")
        CTL = os.path.join(DEV, ".ctl")
        where = ["--frontend=fuse", "--mount", DEV]
    prog = os.path.join(sub, "ringdevd")
    real = os.path.join(sub, "ringdevd.real")
    subprocess.run(["cp", RINGDEVD, prog], check=True)
    subprocess.run(["cp", RINGDEVD, real], check=True)
    with open(log, "w") as out:
        supervisor = subprocess.Popen(
            [SUPERVISE, "--restart-on-exit", "--events", events, "--", prog, "-f", "--fd-store"] + where,
            stdout=out, stderr=subprocess.STDOUT)
    at, pid = daemon_ready(0)
    kept = ringdev.open_pipe("kept", "rw", device=DEV)
    kept.write(b"queued before the handover")
    empty = ringdev.open_pipe("empty", "rw", device=DEV)
    got = {}

    def parked_read():
        try:
            got["r"] = empty.read(64)
        except OSError as e:
            got["r"] = errno.errorcode.get(e.errno, str(e.errno))

    reader = threading.Thread(target=parked_read)
    reader.start()
    time.sleep(0.3)
    # The program at ringdevd's path now dies once, then is ringdevd again.
    script = prog + ".new"
    with open(script, "w") as f:
        f.write('#!/bin/sh\nif [ ! -e "%s/crashed" ]; then touch "%s/crashed"; kill -SEGV $$; fi\n'
                'exec "%s" "$@"\n' % (sub, sub, real))
    os.chmod(script, 0o755)
    os.rename(script, prog)
    os.kill(pid, signal.SIGHUP)
    wait_event("exit pid=%d status=signal=SIGSEGV" % pid, at)
    at, pid2 = daemon_ready(at + 1)
    check(pid2 != pid, "the manager started the next program (%d) after the new one died" % pid2)
    check(kept.read(64) == b"queued before the handover", "queued bytes came through the stored state")
    w = ringdev.open_pipe("empty", "w", create=False, device=DEV)
    w.write(b"wakes it")
    reader.join(10)
    check(got.get("r") == b"wakes it", "the read parked before the SIGHUP completed once: %r" % got.get("r"))
    starts = [line for line in event_lines() if line.startswith("start ")]
    check(len(starts) == 2, "one start after the crash, no second server: %s" % starts)
    for p in (kept, empty, w):
        p.close()
    supervisor.send_signal(signal.SIGTERM)
    check(supervisor.wait(30) == 0, "the supervisor stopped cleanly")
    if FRONTEND == "fuse":
        subprocess.run(["umount", "-l", DEV], stderr=subprocess.DEVNULL)


def proc_ids(pid):
    """(uid line, CapEff, CapBnd) of a process, from /proc/PID/status."""
    got = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            got[key] = value.split()
    return got["Uid"], got["CapEff"][0], got["CapBnd"][0]


def user_drop():
    """--user with --fd-store: a start from the store (systemctl restart, a
    crash) is a new process that systemd starts as root; it must drop as a
    first start does (it kept root and every capability: it took itself for
    an image that had dropped already)."""
    global supervisor, events, log, DEV, CTL, where
    if FRONTEND != "fuse":
        return  # one frontend is enough: the drop is the same code
    subprocess.run(["umount", "-l", DEV], stderr=subprocess.DEVNULL)  # cleanup() sees only the last mount
    sub = os.path.join(work, "user")
    os.mkdir(sub)
    os.chmod(sub, 0o755)
    events = os.path.join(sub, "events")
    log = os.path.join(sub, "ringdevd.log")
    DEV = os.path.join(sub, "mnt")
    CTL = os.path.join(DEV, ".ctl")
    where = ["--frontend=fuse", "--mount", DEV]
    # systemd's notify socket is reachable by every uid; the supervisor's
    # lives in a private folder: open it up before the daemon drops.
    wrap = os.path.join(sub, "wrap.sh")
    with open(wrap, "w") as f:
        f.write('#!/bin/sh\nchmod 755 "$(dirname "$NOTIFY_SOCKET")"; chmod 777 "$NOTIFY_SOCKET"\n'
                'exec "$0.real" "$@"\n'.replace("$0.real", RINGDEVD))
    os.chmod(wrap, 0o755)
    with open(log, "w") as out:
        supervisor = subprocess.Popen(
            [SUPERVISE, "--restart-on-exit", "--events", events, "--", wrap, "-f", "--fd-store", "--user", "nobody"]
            + where, stdout=out, stderr=subprocess.STDOUT)
    at, pid = daemon_ready(0)
    nobody = (["65534"] * 4, "0000000000000000", "0000000000000000")
    check(proc_ids(pid) == nobody, "--user nobody: the first start dropped (%s)" % (proc_ids(pid),))
    os.kill(supervisor.pid, signal.SIGUSR1)
    at, pid = daemon_ready(at + 1)
    check(proc_ids(pid) == nobody, "--user nobody: the start from the store dropped too (%s)" % (proc_ids(pid),))
    os.kill(supervisor.pid, signal.SIGUSR2)
    at, pid = daemon_ready(at + 1)
    check(proc_ids(pid) == nobody, "--user nobody: the start after a crash dropped too (%s)" % (proc_ids(pid),))
    supervisor.send_signal(signal.SIGTERM)
    check(supervisor.wait(30) == 0, "the --user supervisor stopped cleanly")
    subprocess.run(["umount", "-l", DEV], stderr=subprocess.DEVNULL)


def cleanup():
    if supervisor and supervisor.poll() is None:
        supervisor.kill()
        supervisor.wait()
    for line in event_lines():
        pid = pid_of(line)
        if pid and line.startswith("start "):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    if FRONTEND == "fuse":
        subprocess.run(["umount", "-l", DEV], stderr=subprocess.DEVNULL)
    subprocess.run(["rm", "-rf", work])


if __name__ == "__main__":
    try:
        rc = main()
    except Exception as e:  # a hang or an exception is a failure, with the log
        print("FAIL: %s" % e, flush=True)
        rc = 1
    if failures or rc:
        try:
            print(open(log).read()[-4000:], file=sys.stderr)
        except OSError:
            pass
    cleanup()
    sys.exit(1 if failures or rc else 0)
