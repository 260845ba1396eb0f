"""The launcher of the bwrap sandbox: the program zerog starts, which becomes bubblewrap.

zerog never imports this module: it reads its source and runs it as
``python -I -S -c SOURCE SPEC... -- BWRAP [ARG...]``, with an empty environment and only
the descriptors bubblewrap needs. ``SPEC`` is a list of words (built by
:mod:`zerog.sandbox.launch`)::

    drop UID GID                   zerog is root: run the sandbox as UID and GID
    stage DIRECTORY                where to put the clones of the binds
    bind SOURCE READONLY IDMAP     a bind to clone (READONLY and IDMAP are 0 or 1)
    rlimit RESOURCE SOFT HARD      an rlimit to set
    ignore-signals                 a kept sandbox: ignore the terminal's signals

It does, in order, what bubblewrap cannot do for itself, then executes bubblewrap in its
place (same process, so zerog's handshake, cgroups and rlimits apply to bubblewrap as
before). It is started for every bubblewrap, so it imports little (no json, no enum:
not the ``signal`` module, whose enums cost more than the rest of the launcher).

1. When zerog runs as root (``drop`` is set): a private mount namespace; every bind
   source of the spec is cloned (``open_tree``) while root can still reach it, made
   ``nosuid``, ``nodev`` (and read-only when asked), and, for an idmapped bind, given an
   idmapping from the source's owner to the unprivileged id, so that the sandbox user
   can write the owner's files and what it creates belongs to the owner on disk. Then a
   small private tmpfs is mounted over the staging directory (``/tmp`` usually: the
   sandbox gets its own) and each clone is moved there as ``<stage>/<index>``, where the bwrap
   arguments zerog built expect it. Then the process drops to the unprivileged uid and
   gid (no supplementary groups; real, effective and saved ids), so no process of the
   sandbox is ever host root.
2. A fresh anonymous session keyring, so the sandbox cannot reach zerog's keys.
3. The rlimits of the spec, set on this process (lowering them needs no privilege, unlike
   setting them on a process of another user from outside), so bubblewrap and every
   process of the sandbox inherit them.
4. For a kept sandbox (``ignore-signals``, done first): the terminal's signals (SIGINT,
   SIGQUIT, SIGHUP, SIGTSTP, SIGTTIN, SIGTTOU) are ignored, so only zerog ends it; the
   kept sandbox's init gives each command the default dispositions back.
5. ``execve`` of bubblewrap with an empty environment.

Everything it imports is imported before the uid switch: zerog's interpreter may live
where the unprivileged user cannot read (``/root/.pyenv``).

Any failure is one line on stderr starting with ``zerog launcher:`` and exit status 126:
bubblewrap never runs with less than was asked for.
"""

from __future__ import annotations

import ctypes
import errno
import os
import resource
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
AT_FDCWD = -100
AT_SYMLINK_NOFOLLOW = 0x100
AT_NO_AUTOMOUNT = 0x800
AT_EMPTY_PATH = 0x1000
AT_RECURSIVE = 0x8000
OPEN_TREE_CLONE = 1
OPEN_TREE_CLOEXEC = 0o2000000
MOVE_MOUNT_F_EMPTY_PATH = 0x4
MOUNT_ATTR_RDONLY = 0x1
MOUNT_ATTR_NOSUID = 0x2
MOUNT_ATTR_NODEV = 0x4
MOUNT_ATTR_IDMAP = 0x00100000
KEYCTL_JOIN_SESSION_KEYRING = 1
# The new mount API has the same numbers everywhere; keyctl does not.
SYSCALLS = {
    "x86_64": {"keyctl": 250, "open_tree": 428, "move_mount": 429, "mount_setattr": 442},
    "aarch64": {"keyctl": 219, "open_tree": 428, "move_mount": 429, "mount_setattr": 442},
}
TERMINAL_SIGNALS = ("SIGINT", "SIGQUIT", "SIGHUP", "SIGTSTP", "SIGTTIN", "SIGTTOU")


class LaunchError(Exception):
    pass


class Spec:
    """What the words before ``--`` ask for."""

    def __init__(self) -> None:
        self.drop: tuple[int, int] | None = None
        self.stage = "/tmp"
        self.binds: list[tuple[str, bool, bool]] = []  # (source, readonly, idmap)
        self.rlimits: list[tuple[int, int, int]] = []
        self.ignore_signals = False


def parse(words: list[str]) -> tuple[Spec, list[str]]:
    """The spec and bubblewrap's command line (what follows ``--``)."""
    spec = Spec()
    at = 0
    while at < len(words) and words[at] != "--":
        word = words[at]
        if word == "drop":
            spec.drop = (int(words[at + 1]), int(words[at + 2]))
            at += 3
        elif word == "stage":
            spec.stage = words[at + 1]
            at += 2
        elif word == "bind":
            source, readonly, idmap = words[at + 1 : at + 4]
            spec.binds.append((source, readonly == "1", idmap == "1"))
            at += 4
        elif word == "rlimit":
            which, soft, hard = (int(w) for w in words[at + 1 : at + 4])
            spec.rlimits.append((which, soft, hard))
            at += 4
        elif word == "ignore-signals":
            spec.ignore_signals = True
            at += 1
        else:
            raise LaunchError(f"unknown word in the spec: {word!r}")
    bwrap = words[at + 1 :]
    if not bwrap:
        raise LaunchError("usage: launcher [SPEC...] -- BWRAP [ARG...]")
    return spec, bwrap


class _MountAttr(ctypes.Structure):
    _fields_ = [
        ("attr_set", ctypes.c_uint64),
        ("attr_clr", ctypes.c_uint64),
        ("propagation", ctypes.c_uint64),
        ("userns_fd", ctypes.c_uint64),
    ]


class _Kernel:
    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.libc.syscall.restype = ctypes.c_long
        self.numbers = SYSCALLS.get(os.uname().machine, {})

    def call(self, what: str, name: str, *args: object) -> int:
        if name not in self.numbers:
            raise LaunchError(f"{what}: {name} is unknown on {os.uname().machine}")
        wide = [ctypes.c_long(a) if isinstance(a, int) else a for a in args]
        result = int(self.libc.syscall(ctypes.c_long(self.numbers[name]), *wide))
        if result < 0:
            raise self.error(what)
        return result

    def error(self, what: str) -> LaunchError:
        number = ctypes.get_errno()
        return LaunchError(f"{what}: {os.strerror(number)} ({errno.errorcode.get(number, number)})")

    def check(self, what: str, result: int) -> None:
        if result != 0:
            raise self.error(what)


def _userns(kernel: _Kernel, uid: tuple[int, int], gid: tuple[int, int]) -> int:
    """A descriptor of a new user namespace mapping ``uid[0]`` (inside) to ``uid[1]``."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only holds the namespace until the parent has opened it
        try:
            os.close(ready_r)
            os.close(done_w)
            ok = kernel.libc.unshare(CLONE_NEWUSER) == 0
            os.write(ready_w, b"1" if ok else b"0")
            os.read(done_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"1":
            raise LaunchError("cannot create a user namespace for the idmapped mount")
        with open(f"/proc/{pid}/uid_map", "w") as handle:
            handle.write(f"{uid[0]} {uid[1]} 1\n")
        with open(f"/proc/{pid}/gid_map", "w") as handle:
            handle.write(f"{gid[0]} {gid[1]} 1\n")
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def _clone(kernel: _Kernel, bind: tuple[str, bool, bool], drop: tuple[int, int]) -> int:
    """A detached copy of the bind's source, with the attributes it needs."""
    source, readonly, idmap = bind
    tree = kernel.call(
        f"cannot clone {source}",
        "open_tree",
        AT_FDCWD,
        source.encode(),
        OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT,
    )
    attr = _MountAttr()
    attr.attr_set = MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV
    if readonly:
        attr.attr_set |= MOUNT_ATTR_RDONLY
    userns = -1
    try:
        if idmap:
            owner = os.stat(tree)
            userns = _userns(kernel, (owner.st_uid, drop[0]), (owner.st_gid, drop[1]))
            attr.attr_set |= MOUNT_ATTR_IDMAP
            attr.userns_fd = userns
        try:
            kernel.call(
                "idmapped mount",
                "mount_setattr",
                tree,
                b"",
                AT_EMPTY_PATH | AT_RECURSIVE,
                ctypes.byref(attr),
                ctypes.sizeof(attr),
            )
        except LaunchError as exc:
            raise LaunchError(
                f"cannot make an idmapped, nosuid mount of {source} ({exc}): as root, zerog "
                "runs the sandbox as an unprivileged user and needs idmapped mounts (Linux "
                "5.12 or later, and a file system that supports them, such as ext4, xfs, "
                "btrfs or tmpfs); run zerog as an unprivileged user instead"
            ) from None
    except BaseException:
        os.close(tree)
        raise
    finally:
        if userns >= 0:
            os.close(userns)
    return tree


def _stage(kernel: _Kernel, spec: Spec, drop: tuple[int, int]) -> None:
    """Clone the bind sources, cover the staging directory, move the clones under it."""
    binds = spec.binds
    kernel.check("cannot create a mount namespace", kernel.libc.unshare(CLONE_NEWNS))
    kernel.check(
        "cannot make the mounts private",
        kernel.libc.mount(b"none", b"/", None, MS_REC | MS_PRIVATE, None),
    )
    trees = []
    try:
        for bind in binds:
            trees.append(_clone(kernel, bind, drop))
        stage = spec.stage
        kernel.check(
            f"cannot mount the staging tmpfs on {stage}",
            kernel.libc.mount(
                b"tmpfs",
                stage.encode(),
                b"tmpfs",
                MS_NOSUID | MS_NODEV | MS_NOEXEC,
                b"mode=0755,size=64k,nr_inodes=1024",
            ),
        )
        for index, tree in enumerate(trees):
            target = f"{stage}/{index}"
            if stat.S_ISDIR(os.fstat(tree).st_mode):
                os.mkdir(target, 0o755)
            else:
                os.close(os.open(target, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o644))
            kernel.call(
                f"cannot move the clone of {binds[index][0]} to {target}",
                "move_mount",
                tree,
                b"",
                AT_FDCWD,
                target.encode(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
    finally:
        for tree in trees:
            os.close(tree)


def _open_program(path: str) -> int:
    """bubblewrap, opened while root can reach it (the unprivileged user need not). A
    script keeps its descriptor across execve, for its interpreter to read it by."""
    with open(path, "rb") as handle:
        script = handle.read(2) == b"#!"
    program = os.open(path, os.O_PATH)  # close-on-exec, as Python opens every file
    os.set_inheritable(program, script)
    return program


def _drop(uid: int, gid: int) -> None:
    try:
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    except OSError as exc:
        raise LaunchError(
            f"cannot switch to the unprivileged uid/gid {uid} ({exc}); choose another with "
            "BwrapSandbox(host_id=...)"
        ) from None
    if os.getresuid() != (uid, uid, uid) or os.getresgid() != (gid, gid, gid):
        raise LaunchError(f"the switch to uid/gid {uid} did not take")


def _fresh_keyring(kernel: _Kernel) -> None:
    """Join a new anonymous session keyring. A kernel without keys, or one that refuses
    keyctl (a container's own filter), leaves nothing for the sandbox to reach."""
    try:
        kernel.call("new session keyring", "keyctl", KEYCTL_JOIN_SESSION_KEYRING, None)
    except LaunchError:
        if ctypes.get_errno() not in (errno.ENOSYS, errno.EPERM, errno.EACCES):
            raise


def launch(argv: list[str]) -> None:
    spec, bwrap = parse(argv[1:])
    kernel = _Kernel()
    os.chdir("/")
    program: int | str = bwrap[0]
    if spec.ignore_signals:
        # The interpreter's built-in _signal, which the signal module wraps in enums:
        # importing those costs 4 ms (2-core VM), on every start of a kept sandbox.
        import _signal  # type: ignore[import-not-found]  # built in, but typeshed has no stub

        for name in TERMINAL_SIGNALS:
            _signal.signal(getattr(_signal, name), _signal.SIG_IGN)
    if spec.drop is not None:
        uid, gid = spec.drop
        if uid == 0 or gid == 0:
            raise LaunchError("refusing to run the sandbox as uid or gid 0")
        program = _open_program(bwrap[0])
        _stage(kernel, spec, (uid, gid))
        _drop(uid, gid)
    _fresh_keyring(kernel)
    for which, soft, hard in spec.rlimits:
        resource.setrlimit(which, (soft, hard))
    try:
        os.execve(program, bwrap, {})  # noqa: S606 - bubblewrap itself
    except OSError as exc:
        raise LaunchError(f"cannot execute {bwrap[0]}: {exc}") from None


def main(argv: list[str]) -> int:
    try:
        launch(argv)
    except (LaunchError, OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        os.write(2, f"zerog launcher: {exc}\n".encode())
        return 126
    return 126  # pragma: no cover - launch() executes bubblewrap or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv))
