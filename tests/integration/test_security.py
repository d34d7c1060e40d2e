#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""test_security.py - what an unprivileged user cannot do to another's pipes.

Runs as root against a real ringdevd (a FUSE mount here, a CUSE node in the
VM of tests/vm with RINGDEV_TEST_FRONTEND=cuse). Two users, created by the
test with useradd where /etc is writable (removed at the end) and otherwise
two unused uids, act only through setpriv(1) (real, effective and saved
uid and gid changed, supplementary groups cleared, so nothing of root's is
left): "alice" owns pipes, "mallory" attacks them by every path there is:

- the control node (open by path, on either frontend);
- opening alice's private pipe by name (the mount's file, ATTACH on CUSE);
- ATTACH on a handle alice opened and passed over a unix socket (the
  daemon checks the caller, not the opener), SET_CONFIG on it;
- the device-wide ioctls by name (PIPE_INFO, CONFIGURE, REMOVE, FLUSH) and
  ringdevctl (info, rm, chmod, resize, flush, chown);
- the mount's namespace: readdir, stat, unlink, chmod, chown, rename;
- what the visibility rule hides: list, info, opens;
- the per-uid limits: pipes, handles and ring memory, with alice still able
  to create after mallory hit them;
- oversized, truncated and unterminated inputs at the ioctls: each a clear
  errno, and the daemon still serving.

Every check prints "ok" or "FAIL"; the last line is "security: N passed, M
failed". Env: RINGDEVD, RINGDEVCTL, RINGDEV_PYTHONPATH (the python/ tree);
RINGDEV_TEST_FRONTEND fuse (default) or cuse. Exit 0 pass, 1 fail.
"""

import errno
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

RINGDEVD = os.environ.get("RINGDEVD")
RINGDEVCTL = os.environ.get("RINGDEVCTL")
PYPATH = os.environ.get("RINGDEV_PYTHONPATH")
FRONTEND = os.environ.get("RINGDEV_TEST_FRONTEND", "fuse")
PYTHON = sys.executable

passed = failed = 0


def ok(what):
    global passed
    passed += 1
    print("ok   " + what, flush=True)


def fail(what):
    global failed
    failed += 1
    print("FAIL " + what, flush=True)


def check(cond, what):
    (ok if cond else fail)(what)


# ---- the users ----

class User:
    def __init__(self, name, uid, created):
        self.name, self.uid, self.created = name, uid, created


def make_users():
    """Two users made with useradd, or, where /etc is read-only (the VM
    sees the host's root read-only), two uids no account uses."""
    users = []
    for who in ("alice", "mallory"):
        name = "rdsec-%s-%d" % (who, os.getpid() % 100000)
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--user-group",
                            "--shell", "/usr/sbin/nologin", name],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if r.returncode == 0:
            import pwd
            users.append(User(name, pwd.getpwnam(name).pw_uid, True))
        else:
            uid = 61000 + len(users) + os.getpid() % 1000 * 2
            users.append(User(str(uid), uid, False))
    return users


def remove_users(users):
    for u in users:
        if u.created:
            subprocess.run(["userdel", u.name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def as_user(user, code, pass_fds=(), timeout=30):
    """Run Python `code` as `user` through setpriv; returns its stdout,
    stripped. The code has `ringdev`, `os`, `errno`, `fcntl`, DEV and
    `attempt(fn)` (the errno name fn's OSError gave, or 'ok')."""
    prelude = (
        "import os, errno, fcntl, socket, struct, ringdev\n"
        "from ringdev import _abi\n"
        "DEV = %r\n"
        "def attempt(fn):\n"
        "    try:\n"
        "        fn()\n"
        "        return 'ok'\n"
        "    except OSError as e:\n"
        "        return errno.errorcode.get(e.errno, str(e.errno))\n" % DEV)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": PYPATH,
           "RINGDEV_DEVICE": DEV, "HOME": "/"}
    r = subprocess.run(["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.uid, "--clear-groups",
                        PYTHON, "-c", prelude + code], env=env, pass_fds=pass_fds,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout)
    return r.stdout.strip()


def ctl_as(user, *args):
    """ringdevctl ARGS as `user`: (exit status, output)."""
    r = subprocess.run(["setpriv", "--reuid=%d" % user.uid, "--regid=%d" % user.uid, "--clear-groups",
                        RINGDEVCTL, "-d", DEV] + list(args),
                       env={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=30)
    return r.returncode, r.stdout.strip()


# ---- the daemon ----

work = tempfile.mkdtemp(prefix="rdsec.")
os.chmod(work, 0o755)  # the users reach the mount inside it
daemon = None
if FRONTEND == "cuse":
    NAME = "rdsec%d" % os.getpid()
    DEV = "/dev/" + NAME
    CTL = DEV + "-ctl"
    where = ["--frontend=cuse", "--name", NAME]
else:
    DEV = os.path.join(work, "mnt")
    os.mkdir(DEV)
    CTL = os.path.join(DEV, ".ctl")
    where = ["--frontend=fuse", "--mount", DEV]


def start_daemon():
    global daemon
    log = open(os.path.join(work, "ringdevd.log"), "w")
    daemon = subprocess.Popen([RINGDEVD, "-f"] + where +
                              ["--max-pipes-per-uid", "4", "--max-opens-per-uid", "8",
                               "--max-memory", "64M", "--max-memory-per-uid", "1M"],
                              stdout=log, stderr=subprocess.STDOUT)
    for _ in range(400):
        if daemon.poll() is not None:
            break
        if (FRONTEND == "cuse" and os.path.exists(CTL)) or \
           (FRONTEND == "fuse" and os.path.exists(CTL)):
            return
        time.sleep(0.05)
    print("security: ringdevd did not start:\n" + open(log.name).read(), file=sys.stderr)
    sys.exit(1)


def stop_daemon():
    if daemon and daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(20)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    if FRONTEND == "fuse" and os.path.ismount(DEV):
        subprocess.run(["fusermount3", "-u", "-z", DEV], stderr=subprocess.DEVNULL)


def main():
    for tool, path in (("RINGDEVD", RINGDEVD), ("RINGDEVCTL", RINGDEVCTL), ("RINGDEV_PYTHONPATH", PYPATH)):
        if not path:
            print("security: set %s" % tool, file=sys.stderr)
            return 1
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        print("security: needs root and setpriv(1)", file=sys.stderr)
        return 1
    users = make_users()
    try:
        start_daemon()
        run_checks(*users)
    finally:
        stop_daemon()
        remove_users(users)
        shutil.rmtree(work, ignore_errors=True)
    print("security: %d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


def run_checks(alice, mallory):
    print("security: %s frontend, alice uid %d%s, mallory uid %d" %
          (FRONTEND, alice.uid, " (useradd)" if alice.created else "", mallory.uid), flush=True)

    # alice: a private pipe with data, and an inbox others may write. Both
    # persistent (ringdevctl create), so they outlive alice's handles.
    rc1, txt1 = ctl_as(alice, "create", "alice-keep", "--mode", "0600")
    rc2, txt2 = ctl_as(alice, "create", "alice-inbox", "--mode", "0622")
    got = as_user(alice, "p = ringdev.open_pipe('alice-keep', 'w', create=False); print(p.write(b'kept data'))")
    check(rc1 == 0 and rc2 == 0 and got == "9", "alice creates her pipes: %s %s %s" % (txt1, txt2, got))

    # 1. The control node.
    got = as_user(mallory, "print(attempt(lambda: os.open(%r, os.O_RDWR)))" % CTL)
    check(got == "EACCES", "mallory cannot open the control node %s: %s" % (CTL, got))

    # 2. Opening alice's private pipe by name.
    if FRONTEND == "fuse":
        code = "print(attempt(lambda: os.open(os.path.join(DEV, 'alice-keep'), os.O_RDONLY)))"
    else:
        code = ("fd = os.open(DEV, os.O_RDONLY)\n"
                "p = ringdev.Pipe(fd, None, DEV)\n"
                "print(attempt(lambda: p.attach('alice-keep')))")
    got = as_user(mallory, code)
    check(got == "EACCES", "mallory cannot open alice's private pipe by name: %s" % got)
    got = as_user(mallory, "print(attempt(lambda: ringdev.open_pipe('alice-keep', 'r', create=False)))")
    check(got == "EACCES", "ringdev.open_pipe of it fails too: %s" % got)

    # 3. A handle alice opened, passed to mallory.
    a_sock, b_sock = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    got = as_user(alice, """
s = socket.socket(fileno=%d)
p = ringdev.open_pipe('alice-inbox', 'w', create=False)
socket.send_fds(s, [b'x'], [p.fileno()])
print('sent')
""" % b_sock.fileno(), pass_fds=(b_sock.fileno(),))
    b_sock.close()
    _, fds, _, _ = socket.recv_fds(a_sock, 1, 1)
    a_sock.close()
    check(got == "sent" and len(fds) == 1, "alice passes a handle on her inbox: %s" % got)
    if fds:
        passed_fd = fds[0]
        got = as_user(mallory, """
p = ringdev.Pipe(%d, 'alice-inbox', DEV)
print(attempt(lambda: p.attach('alice-keep')),
      attempt(lambda: p.set_config(permissions=0o666)),
      attempt(lambda: p.set_config(capacity=1 << 20)),
      attempt(lambda: p.write(b'to the inbox')))
""" % passed_fd, pass_fds=(passed_fd,))
        check(got == "EACCES EPERM EPERM ok",
              "on alice's passed handle mallory cannot ATTACH to her private pipe or change the pipe, "
              "but may write as the handle allows: %s" % got)
        os.close(passed_fd)

    # 4. The device-wide ioctls by name, and ringdevctl.
    for args, what in ((["info", "alice-keep"], "info"), (["rm", "alice-keep"], "rm"),
                       (["chmod", "alice-keep", "0666"], "chmod"), (["resize", "alice-keep", "1M"], "resize"),
                       (["flush", "alice-keep"], "flush"), (["chown", "alice-keep", str(mallory.uid)], "chown")):
        rc, txt = ctl_as(mallory, *args)
        check(rc == 1 and "alice-keep" in txt and "\n" not in txt,
              "ringdevctl %s of alice's pipe fails with one line naming it: %s" % (what, txt))
    rc, txt = ctl_as(mallory, "chmod", "alice-inbox", "0666")
    check(rc == 1 and "alice-inbox" in txt and ("not permitted" in txt or "denied" in txt),
          "mallory cannot chmod alice's inbox she may write: %s" % txt)
    got = as_user(alice, "p = ringdev.open_pipe('alice-keep', 'r', create=False, nonblocking=True); print(p.read(64))")
    check(got == "b'kept data'", "alice's private pipe still holds her data: %s" % got)

    # 5. The mount's namespace.
    if FRONTEND == "fuse":
        got = as_user(mallory, """
names = os.listdir(DEV)
f = os.path.join(DEV, 'alice-keep')
print('alice-keep' in names, 'alice-inbox' in names,
      attempt(lambda: os.stat(f)), attempt(lambda: os.unlink(f)), attempt(lambda: os.chmod(f, 0o666)),
      attempt(lambda: os.chown(f, os.getuid(), -1)),
      attempt(lambda: os.rename(os.path.join(DEV, 'alice-inbox'), os.path.join(DEV, 'mine'))),
      attempt(lambda: os.unlink(os.path.join(DEV, 'alice-inbox'))))
""")
        check(got.startswith("False True EACCES EACCES EACCES EACCES") and got.split()[-1] in ("EACCES", "EPERM")
              and got.split()[-2] in ("EACCES", "EPERM", "EXDEV", "ENOSYS", "EINVAL"),
              "on the mount mallory neither sees nor stats, removes, chmods, chowns or renames alice's pipes: %s"
              % got)

    # 6. What the visibility rule hides.
    rc, txt = ctl_as(mallory, "list")
    check(rc == 0 and "alice-keep" not in txt and "alice-inbox" in txt,
          "ringdevctl list shows mallory the inbox (mode 0622) and not alice's private pipe")
    rc, txt = ctl_as(mallory, "opens")
    check(rc == 0 and "alice-keep" not in txt, "ringdevctl opens shows mallory nothing of alice's")
    got = as_user(mallory, "print(sorted(p.name for p in ringdev.list_pipes()))")
    check(got.startswith("[") and "alice-inbox" in got and "alice-keep" not in got,
          "ringdev.list_pipes hides it too: %s" % got)

    # 7. The per-uid limits: 4 pipes, 8 handles, 1 MiB of ring.
    # Ring memory is charged when a pipe's ring is first used: 4 x 256K,
    # each written to, is exactly mallory's 1M.
    codes = []
    for i in range(5):
        rc, txt = ctl_as(mallory, "create", "mp%d" % i, "--capacity", "256K")
        codes.append(rc)
    check(codes == [0, 0, 0, 0, 1], "mallory's 5th pipe is refused (--max-pipes-per-uid 4): %s" % codes)
    got = as_user(mallory, """
print(' '.join(attempt(lambda: os.write(p.fileno(), b'x'))
               for p in [ringdev.open_pipe('mp%d' % i, 'w', create=False, nonblocking=True) for i in range(4)]))
""")
    check(got == "ok ok ok ok", "her four 256K rings fill her 1M (--max-memory-per-uid): %s" % got)
    rc, txt = ctl_as(mallory, "resize", "mp0", "512K")
    check(rc == 1 and "mp0" in txt and "\n" not in txt,
          "mallory cannot grow a ring past --max-memory-per-uid 1M: %s" % txt)
    got = as_user(mallory, """
hs = []
while True:
    try:
        hs.append(os.open(%r, os.O_WRONLY | os.O_NONBLOCK))
    except OSError as e:
        print(len(hs), errno.errorcode[e.errno]); break
    if len(hs) > 64:
        print('no limit'); break
""" % (os.path.join(DEV, "mp0") if FRONTEND == "fuse" else DEV))
    check(got.split()[-1] in ("EMFILE", "EDQUOT", "ENFILE", "EUSERS", "ENOSPC") and got.split()[0] == "8",
          "mallory's 9th handle is refused (--max-opens-per-uid 8): %s" % got)
    rc, txt = ctl_as(alice, "create", "alice-after", "--capacity", "256K")
    check(rc == 0, "alice still creates a pipe after mallory hit her limits: %s" % txt)
    for i in range(4):
        ctl_as(mallory, "rm", "mp%d" % i)

    # 8. Oversized, truncated and unterminated inputs, unprivileged.
    got = as_user(mallory, """
h = ringdev.open_pipe('m-inputs', 'rw', capacity=64 << 10)
res = []
# ATTACH with a name that fills its field and has no NUL
arg = bytearray(_abi.ATTACH.size); arg[:64] = b'a' * 64
res.append(attempt(lambda: fcntl.ioctl(h.fileno(), _abi.IOC_ATTACH, arg)))
# a name with a byte the rule forbids
arg = bytearray(_abi.ATTACH.size); arg[:5] = b'a/b\\x01c'
res.append(attempt(lambda: fcntl.ioctl(h.fileno(), _abi.IOC_ATTACH, arg)))
# the ATTACH number with a truncated and an oversized argument
res.append(attempt(lambda: fcntl.ioctl(h.fileno(), _abi.IOW(0x01, _abi.ATTACH.size - 8), bytes(_abi.ATTACH.size - 8))))
res.append(attempt(lambda: fcntl.ioctl(h.fileno(), _abi.IOW(0x01, _abi.ATTACH.size + 64), bytes(_abi.ATTACH.size + 64))))
# a capacity past the largest, and a kind that does not exist
res.append(attempt(lambda: h.ioctl(_abi.IOC_SET_CONFIG, _abi.PIPE_CONFIG.pack(set=_abi.SET_CAPACITY, kind=0, policy=0, mode=0, capacity=(1 << 30) + 1))))
res.append(attempt(lambda: h.ioctl(_abi.IOC_SET_CONFIG, _abi.PIPE_CONFIG.pack(set=_abi.SET_KIND, kind=77, policy=0, mode=0, capacity=0))))
# a 1 MiB write to a 64 KiB non-blocking stream pipe is short, not a crash
os.set_blocking(h.fileno(), False)
n = os.write(h.fileno(), b'z' * (1 << 20))
res.append(str(n))
print(' '.join(res))
""")
    check(got == "ENAMETOOLONG EINVAL ENOTTY ENOTTY EINVAL EINVAL 65536",
          "an unterminated name is ENAMETOOLONG, a bad one EINVAL, a wrong-sized argument ENOTTY (no such "
          "ioctl), bad settings EINVAL; a big write is short: %s"
          % got)
    got = as_user(alice, "p = ringdev.open_pipe('alice-keep', 'rw', create=False, nonblocking=True); "
                         "p.write(b'kept data'); print(p.read(64))")
    check(got == "b'kept data'" and daemon.poll() is None, "after all of it the daemon serves alice: %s" % got)
    st = subprocess.run([RINGDEVCTL, "-d", DEV, "--json", "stats"], stdout=subprocess.PIPE, text=True).stdout
    check('"parked_total": 0' in st, "nothing is left parked")


if __name__ == "__main__":
    sys.exit(main())
