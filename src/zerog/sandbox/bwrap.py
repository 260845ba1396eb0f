"""The bubblewrap backend: shell commands in Linux namespaces.

The profile (see ``docs/sandboxes.md`` for what it stops):

- never host root: bubblewrap is started by a launcher (:mod:`zerog.sandbox.launch`) that,
  when zerog is root, drops to an unprivileged ``host_id`` after giving it an idmapped
  view of the workspace; it also joins a fresh session keyring;
- new user, pid, network, ipc, uts and cgroup namespaces; nested user namespaces disabled;
  commands run as uid/gid 65534 inside, without capabilities, under a seccomp deny list
  (:mod:`zerog.sandbox.seccomp`);
- ``--new-session`` (no controlling terminal, so no TIOCSTI), and no life after zerog
  (``--die-with-parent`` for a command's own bubblewrap, socket EOF for a kept init);
  stdin is /dev/null; bwrap itself starts with an empty environment (its pid 1's
  ``/proc/1/environ`` would otherwise show the caller's variables), each command gets
  exactly the sandbox's allow-listed variables;
- the root is an empty tmpfs remounted read-only; /usr and a short list of /etc files
  are bound read-only (no /home, /root, /var, /run, /opt, host sockets or keys);
  /proc/sys is read-only and the kernel's sensitive /proc files are covered;
  /dev holds only the standard nodes and is read-only; /tmp and /dev/shm are private
  tmpfs of bounded size; the workspace, at its own path, is the only writable bind, and
  zerog's state in it (``.zerog/``: snapshots, traces, sidecars) is bound read-only;
- no network unless granted (``network=True`` shares the host's network namespace);
- bwrap's child is held (``--block-fd``) until it is in its pids and memory cgroups (where
  there are any), so nothing started in the sandbox escapes them; after each command
  everything but the sandbox's init is killed (by zerog through the cgroups, frozen
  first; without cgroups by the init itself, before it reports the exit status); a
  sandbox where that fails is retired.

By default one sandbox is kept per workspace and its init (:mod:`zerog.sandbox.bwrap_init`)
starts each command, which saves bubblewrap's ~9 ms (and the launcher's ~10 ms) per
command. A command stopped by a limit (timeout, output, disk) in a kept sandbox without
cgroups ends the whole sandbox: zerog kills its init, waits until its pid namespace is
gone, and the next command gets a new one. With ``reuse=False`` or without a Python in
the sandbox, every command gets a bubblewrap of its own, whose pid namespace zerog ends
with the command.

File actions (write, edit) do not need a process: they run in zerog, confined to the
workspace like on every backend.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import platform
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO

from zerog.errors import SandboxError
from zerog.sandbox import seccomp
from zerog.sandbox.base import MIB, Limits, SandboxUnavailable
from zerog.sandbox.files import RESERVED, edit_file, write_file
from zerog.sandbox.launch import HOST_ID, SOURCE, Bind, Launcher, stage_for
from zerog.sandbox.limits import (
    CgroupFactory,
    Cgroups,
    DiskWatch,
    apply_rlimits,
    rlimit_triples,
    rlimits,
)
from zerog.sandbox.limits import settle as settle_limits
from zerog.sandbox.process import spawn_failure, stdin_pipe, supervise
from zerog.text import decode
from zerog.types import Action, EditAction, Observation, ShellAction, Status

SHELL = "/bin/sh"
INIT_PYTHON = "/usr/bin/python3"  # runs bwrap_init.py inside a reused sandbox
SANDBOX_UID = 65534
INSTALL_HINT = (
    "install bubblewrap: `apt-get install bubblewrap` (Debian, Ubuntu), "
    "`dnf install bubblewrap` (Fedora), `pacman -S bubblewrap` (Arch); "
    "or choose another sandbox with --sandbox"
)
TOP_LEVEL = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")
# What a command may need from /etc: users, name resolution, the dynamic linker, time
# zone, certificates, Python's own config. Nothing with credentials (pip.conf, npmrc, ...).
ETC = (
    "passwd",
    "group",
    "hosts",
    "host.conf",
    "nsswitch.conf",
    "gai.conf",
    "resolv.conf",
    "services",
    "protocols",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "timezone",
    "alternatives",
    "ssl",
    "ca-certificates",
    "mime.types",
    "os-release",
    "locale.alias",
    "magic",
    "python3",
)
# Files of /proc a command has no business reading or writing (as container runtimes
# mask them): the kernel's memory and symbols, the magic SysRq trigger, every key on the
# system, timers and scheduler internals. Each is covered by /dev/null.
PROC_MASKED = (
    "kcore",
    "kallsyms",
    "sysrq-trigger",
    "keys",
    "key-users",
    "timer_list",
    "timer_stats",
    "sched_debug",
    "latency_stats",
)
_HANDSHAKE_SECONDS = 10.0


def find_bwrap(search_path: str | None = None) -> str:
    """The bwrap executable, or :class:`SandboxUnavailable` saying how to install it."""
    found = shutil.which("bwrap", path=search_path)
    if found is None:
        raise SandboxUnavailable(
            f"the bwrap sandbox needs bubblewrap, which is missing: {INSTALL_HINT}"
        )
    return found


class BwrapSandbox:
    """Runs shell commands under bubblewrap. Construction checks that bwrap works here and
    that every limit can be enforced, and raises :class:`SandboxUnavailable` otherwise."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        network: bool = False,
        executable: str | None = None,
        cgroups: CgroupFactory | None = None,
        clock: Callable[[], float] = time.monotonic,
        root: Path = Path("/"),
        uid: int | None = None,
        reuse: bool = True,
        host_id: int = HOST_ID,
        python: str | None = None,
        machine: str | None = None,
        proc: Path = Path("/proc"),
        sweep_seconds: float = 2.0,
        binds: Sequence[Bind] = (),
    ) -> None:
        """``host_id``: when zerog runs as root, the host uid and gid every process of the
        sandbox runs as (see :mod:`zerog.sandbox.launch`). ``python``: the interpreter
        that runs the launcher (zerog's own by default). ``machine``: the architecture
        the seccomp filter is built for (this one's by default). ``sweep_seconds``: how
        long killing what a command left behind may take before its sandbox is retired.
        ``binds``: host paths every command also sees (a toolchain, the user's mounts;
        see :mod:`zerog.toolchain`), before the workspace."""
        self._env = dict(env)
        self._extra = tuple(binds)
        self._network = network
        self._bwrap = executable or find_bwrap()
        self._cgroups = cgroups if cgroups is not None else CgroupFactory()
        self._clock = clock
        self._root = root
        self._proc = proc
        self._sweep_seconds = sweep_seconds
        self._root_user = (os.getuid() if uid is None else uid) == 0
        if self._root_user and "pids" not in self._cgroups.controllers:
            raise SandboxUnavailable(
                "the bwrap sandbox cannot bound the number of processes: zerog runs as root, "
                "for whom RLIMIT_NPROC is not enforced, and no pids cgroup is writable here; "
                "run zerog as an unprivileged user or give it a writable pids cgroup"
            )
        # Never host root inside: as root, bubblewrap and the sandbox run as host_id.
        drop = host_id if self._root_user or os.geteuid() == 0 else None
        if drop is not None and not 0 < host_id < 2**32 - 1:
            raise SandboxUnavailable(f"host_id {host_id} cannot be an unprivileged uid")
        needed = [Path(self._bwrap), root / "usr", root / "etc", *(root / n for n in TOP_LEVEL)]
        stage = stage_for(needed) if drop is not None else Path("/tmp")
        if stage is None:
            raise SandboxUnavailable(
                "the bwrap sandbox needs a directory to stage its binds in (/tmp, /var/tmp, "
                "/dev/shm or /mnt) that does not hold bubblewrap or the system's files"
            )
        interpreter = python or sys.executable
        if not interpreter:
            raise SandboxUnavailable(
                "the bwrap sandbox starts bubblewrap through a small Python launcher and "
                "cannot tell which interpreter runs zerog (sys.executable is empty)"
            )
        self._launcher = Launcher(interpreter, SOURCE.read_text("utf-8"), drop, stage)
        self._filter = seccomp.program(seccomp.arch_for(machine or platform.machine()))
        self._init_source = (Path(__file__).parent / "bwrap_init.py").read_text("utf-8")
        self._probe()
        self._cgroups.remove_stale()
        # Reusing one sandbox per workspace needs a Python inside it to start commands.
        # Nothing one command started (a daemon, a new session) may live on into the next
        # one or race zerog's own file actions: the sandbox's cgroups are emptied after
        # each command, or, without cgroups, its init empties its pid namespace before it
        # reports the exit (see _Session).
        self._reuse = reuse and (root / INIT_PYTHON.lstrip("/")).is_file()
        # Idle sandboxes by (workspace, /tmp size); one per command running at once (the
        # validation sweep runs checks in threads), each with its own cgroups and limits.
        self._lock = threading.Lock()
        self._idle: dict[tuple[Path, int], list[_Session]] = {}
        self._sessions: list[_Session] = []
        self._finalizer = weakref.finalize(self, _close_all, self._sessions)

    def close(self) -> None:
        """Stop the sandboxes kept for reuse (also done when this object is collected)."""
        with self._lock:
            self._idle.clear()
            _close_all(self._sessions)

    def __enter__(self) -> BwrapSandbox:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    @property
    def reuses(self) -> bool:
        """True when commands run in one sandbox kept per workspace (the fast path)."""
        return self._reuse

    @property
    def name(self) -> str:
        return "bwrap"

    @property
    def network(self) -> bool:
        return self._network

    def _probe(self) -> None:
        """The whole start-up once: launcher, uid switch, keyring, seccomp, bubblewrap."""
        filter_fd = self._filter_fd()
        argv = [*self._command(None, Limits(), None, filter_fd), SHELL, "-c", "true"]
        try:
            done = subprocess.run(
                argv,
                env={},
                capture_output=True,
                timeout=30,
                check=False,
                cwd="/",
                pass_fds=(filter_fd,),
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"bubblewrap does not start here: {exc}") from exc
        finally:
            os.close(filter_fd)
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip()[:500]
            if reason.startswith("zerog launcher:"):
                raise SandboxUnavailable(f"the bwrap sandbox cannot start here: {reason}")
            raise SandboxUnavailable(
                f"bubblewrap cannot create its namespaces here ({reason}); unprivileged user "
                "namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1, or the "
                "AppArmor profile for bwrap on Ubuntu)"
            )

    def _filter_fd(self) -> int:
        """A pipe holding the seccomp program, for ``bwrap --seccomp`` (which reads it to
        its end; the caller closes the descriptor once bubblewrap has started)."""
        read, write = os.pipe()
        try:
            os.write(write, self._filter)  # far below a pipe's capacity
        except BaseException:
            os.close(read)
            raise
        finally:
            os.close(write)
        return read

    def _binds(self, workspace: Path | None) -> list[Bind]:
        """The extra binds (toolchain, mounts), then the workspace, writable, and zerog's
        state in it, read-only."""
        binds = list(self._extra)
        if workspace is None or workspace == Path("/"):
            return binds
        binds.append(Bind(workspace, workspace, idmap=True))
        state = workspace / RESERVED
        if state.is_dir() and not state.is_symlink():
            binds.append(Bind(state, state, readonly=True, idmap=True))
        return binds

    def _command(
        self,
        workspace: Path | None,
        limits: Limits,
        fds: tuple[int, int] | None,
        filter_fd: int,
        *,
        init: bool = False,
        values: dict[int, int] | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        """The launcher's command line, up to the program bubblewrap runs; ``values`` are
        rlimits for the launcher to set on itself, and so on everything it starts; ``env``
        the command's variables (by default the sandbox's)."""
        binds = self._binds(workspace)
        argv = self._argv(
            workspace,
            limits,
            fds,
            init=init,
            binds=binds,
            sources=self._launcher.sources(binds),
            filter_fd=filter_fd,
            env=env,
        )
        return self._launcher.argv(
            argv, binds, ignore_signals=init, rlimits=rlimit_triples(values or {})
        )

    def _argv(
        self,
        workspace: Path | None,
        limits: Limits,
        fds: tuple[int, int] | None,
        *,
        init: bool = False,
        binds: list[Bind] | None = None,
        sources: list[str] | None = None,
        filter_fd: int | None = None,
        env: Mapping[str, str] | None = None,
    ) -> list[str]:
        """bubblewrap's command line. ``binds`` (by default :meth:`_binds`) are bound from
        ``sources`` (by default their own paths)."""
        binds = self._binds(workspace) if binds is None else binds
        sources = [str(b.source) for b in binds] if sources is None else sources
        argv = [self._bwrap, "--unshare-all", "--unshare-user"]
        if init:
            argv.append("--as-pid-1")
        if self._network:
            argv.append("--share-net")
        if not init:
            # The kernel ties this to the spawning *thread*: right for a command supervised
            # by that thread, wrong for a kept sandbox, whose init instead exits as soon as
            # zerog's end of its socket closes (zerog exited or died).
            argv.append("--die-with-parent")
        argv += [
            "--new-session",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--disable-userns",
            "--hostname",
            "zerog",
            "--ro-bind",
            str(self._root / "usr"),
            "/usr",
        ]
        for name in TOP_LEVEL:
            host = self._root / name
            if host.is_symlink():
                argv += ["--symlink", os.readlink(host), f"/{name}"]
            elif host.is_dir():
                argv += ["--ro-bind", str(host), f"/{name}"]
        for name in ETC:
            argv += ["--ro-bind-try", str(self._root / "etc" / name), f"/etc/{name}"]
        tmp_size = str(limits.max_disk_bytes)
        shm_size = str(min(limits.max_disk_bytes, 64 * MIB))
        argv += ["--proc", "/proc", "--ro-bind", str(self._proc / "sys"), "/proc/sys"]
        for name in PROC_MASKED:
            if (self._proc / name).exists():
                argv += ["--ro-bind", "/dev/null", f"/proc/{name}"]
        argv += ["--dev", "/dev"]
        argv += ["--size", shm_size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        argv += ["--size", tmp_size, "--tmpfs", "/tmp"]
        for bind, source in zip(binds, sources, strict=True):
            argv += ["--ro-bind" if bind.readonly else "--bind", source, str(bind.dest)]
        if workspace is not None and workspace != Path("/"):
            argv += ["--chdir", str(workspace)]
        argv += ["--remount-ro", "/"]
        for key, value in () if init else (self._env if env is None else env).items():
            argv += ["--setenv", key, value]
        if fds is not None:
            argv += ["--info-fd", str(fds[0]), "--block-fd", str(fds[1])]
        if filter_fd is not None:
            argv += ["--seccomp", str(filter_fd)]
        argv.append("--")
        return argv

    def run(
        self,
        action: Action,
        workspace: Path,
        limits: Limits,
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> Observation:
        if isinstance(action, ShellAction):
            variables = {**self._env, **(env or {})}
            return self._shell(action.command, workspace.resolve(), limits, stdin, variables)
        started = self._clock()
        if isinstance(action, EditAction):
            observation = edit_file(workspace, action)
        else:
            observation = write_file(workspace, action)
        return observation.model_copy(update={"duration": self._clock() - started})

    def _shell(
        self, command: str, workspace: Path, limits: Limits, stdin: bytes, env: Mapping[str, str]
    ) -> Observation:
        if not self._reuse:
            return self._shell_once(command, workspace, limits, stdin, env)
        started = self._clock()
        key = (workspace, limits.max_disk_bytes)  # the tmpfs sizes are fixed at the start
        session = self._checkout(key)
        try:
            try:
                if session is None:
                    session = self._new_session(workspace, limits)
                observation = session.run(
                    command, env, workspace, limits, self._values(limits, session.groups), stdin
                )
            except _NotStarted:
                # A kept sandbox that cannot take this command (its /tmp holds more than the
                # new memory limit, its init is gone): once more in a fresh one.
                if session is not None:
                    self._retire(session)
                session = self._new_session(workspace, limits)
                observation = session.run(
                    command, env, workspace, limits, self._values(limits, session.groups), stdin
                )
        except (OSError, SandboxError, TimeoutError) as exc:
            if session is not None:
                self._retire(session)
            return spawn_failure(exc, self._clock() - started)
        except BaseException:
            if session is not None:
                self._retire(session)
            raise
        with self._lock:
            if session.alive() and session in self._sessions:
                self._idle.setdefault(key, []).append(session)
                return observation
        self._retire(session)
        return observation

    def _new_session(self, workspace: Path, limits: Limits) -> _Session:
        session = self._start_session(workspace, limits)
        with self._lock:
            self._sessions.append(session)
        return session

    def _checkout(self, key: tuple[Path, int]) -> _Session | None:
        """An idle live sandbox for ``key``, now reserved for the caller."""
        dead = []
        found = None
        with self._lock:
            idle = self._idle.get(key, [])
            while idle and found is None:
                candidate = idle.pop()
                if candidate.alive():
                    found = candidate
                else:
                    dead.append(candidate)
        for session in dead:
            self._retire(session)
        return found

    def _retire(self, session: _Session) -> None:
        with self._lock:
            if session in self._sessions:
                self._sessions.remove(session)
        session.close()

    def _values(self, limits: Limits, groups: Cgroups) -> dict[int, int]:
        values = rlimits(limits, data="memory" not in groups.directories)
        # RLIMIT_NPROC counts per user and user namespace: for the calling user's own
        # sandboxes, set in each sandbox's namespace. Root's sandboxes (all host_id) have
        # the pids cgroup that root requires.
        calling_user = not self._root_user and self._launcher.drop is None
        if calling_user and "pids" not in groups.directories:
            values[resource.RLIMIT_NPROC] = limits.max_processes + 1  # per user namespace
        return values

    def _start_session(self, workspace: Path, limits: Limits) -> _Session:
        groups = self._cgroups.create(limits, reserve=1)  # + the init process
        host, guest = socket.socketpair()
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        filter_fd = self._filter_fd()
        argv = [
            *self._command(workspace, limits, (info_w, block_r), filter_fd, init=True),
            INIT_PYTHON,
            "-I",
            "-S",
            "-c",
            self._init_source,
            str(guest.fileno()),
        ]
        try:
            # A session of its own: no terminal, so no Ctrl-C, hang-up or job control
            # signal reaches the kept sandbox; only zerog ends it.
            proc = subprocess.Popen(
                argv,
                env={},
                cwd="/",
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                start_new_session=True,
                close_fds=True,
                pass_fds=(info_w, block_r, guest.fileno(), filter_fd),
            )
        except BaseException:
            host.close()
            groups.remove()
            raise
        finally:
            guest.close()
            os.close(info_w)
            os.close(block_r)
            os.close(filter_fd)
        try:
            released = self._release(proc, info_r, block_w, groups, None)
            if released is None:
                proc.wait(timeout=_HANDSHAKE_SECONDS)
                reason = proc.stderr.read().decode("utf-8", "replace") if proc.stderr else ""
                raise SandboxError(f"bubblewrap failed to start: {reason.strip()[:500]}")
        except BaseException:
            host.close()
            _kill_group(proc.pid)
            proc.wait()
            groups.remove()
            raise
        finally:
            os.close(info_r)
            os.close(block_w)
        pid, pidfd = released
        return _Session(proc, host, groups, pid, pidfd, self._clock, self._sweep_seconds)

    def _shell_once(
        self, command: str, workspace: Path, limits: Limits, stdin: bytes, env: Mapping[str, str]
    ) -> Observation:
        """One bubblewrap per command (no Python in the sandbox to reuse it with, or
        ``reuse=False``)."""
        started = self._clock()
        try:
            groups = self._cgroups.create(limits, reserve=1)  # + bwrap's init in the pid ns
        except OSError as exc:
            return spawn_failure(exc, self._clock() - started)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        filter_fd = self._filter_fd()
        # The per-process rlimits are set by the launcher on itself: zerog may not set
        # them from outside on a process of another user (root without CAP_SYS_RESOURCE,
        # as in many containers). RLIMIT_NPROC is set on bubblewrap's child, in its user
        # namespace, where it counts only the sandbox's processes.
        values = self._values(limits, groups)
        nproc = {k: v for k, v in values.items() if k == resource.RLIMIT_NPROC}
        inherited = {k: v for k, v in values.items() if k != resource.RLIMIT_NPROC}
        source: int | None = None
        try:
            try:
                disk = DiskWatch(workspace, limits)
                source = stdin_pipe(stdin) if stdin else None
                argv = self._command(
                    workspace, limits, (info_w, block_r), filter_fd, values=inherited, env=env
                )
                proc = subprocess.Popen(
                    [*argv, SHELL, "-c", command],
                    env={},
                    cwd="/",
                    stdin=subprocess.DEVNULL if source is None else source,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    start_new_session=True,
                    close_fds=True,
                    pass_fds=(info_w, block_r, filter_fd),
                )
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                return spawn_failure(exc, self._clock() - started)
            finally:
                os.close(info_w)
                os.close(block_r)
                os.close(filter_fd)
                if source is not None:
                    os.close(source)
            try:
                released = self._release(proc, info_r, block_w, groups, nproc)
            except BaseException:
                os.killpg(proc.pid, 9)
                proc.wait()
                raise
            finally:
                os.close(block_w)
            if released is None:  # the launcher or bubblewrap failed: a failure to start
                _, err = proc.communicate()
                reason = err.decode("utf-8", "replace").strip()[:500]
                return spawn_failure(SandboxError(reason), self._clock() - started)
            try:
                observation = supervise(
                    proc,
                    started=started,
                    timeout=limits.timeout,
                    max_output_bytes=limits.max_output_bytes,
                    kill_output_bytes=limits.kill_output_bytes,
                    clock=self._clock,
                    watch=disk,
                )
            finally:
                ended = _end_namespace(released[1], self._sweep_seconds)
            if not ended:
                note = (
                    "[zerog: processes of the command could not be killed within "
                    f"{self._sweep_seconds:g} s]"
                )
                stderr = f"{observation.stderr}\n{note}".lstrip("\n")
                observation = observation.model_copy(update={"stderr": decode(stderr.encode())})
            return settle_limits(observation, limits, groups, disk)
        finally:
            os.close(info_r)
            groups.remove()

    def _release(
        self,
        proc: subprocess.Popen[bytes],
        info_r: int,
        block_w: int,
        groups: Cgroups,
        values: dict[int, int] | None,
    ) -> tuple[int, int] | None:
        """Put bwrap's child (not yet running anything) in its cgroups, set its rlimits,
        then let it go; its pid and a pidfd of it (the caller closes it). None if bwrap
        failed before that (its error is on stderr)."""
        data = b""
        deadline = time.monotonic() + _HANDSHAKE_SECONDS
        while b"}" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([info_r], [], [], left)[0]:
                raise TimeoutError("bubblewrap did not report its child in time")
            chunk = os.read(info_r, 4096)
            if not chunk:
                return None
            data += chunk
        pid = int(json.loads(data.decode())["child-pid"])
        pidfd = os.pidfd_open(pid)  # before it can run, so the pid cannot have been reused
        try:
            groups.join(pid)
            if values is None:  # the reused sandbox's init: commands get their rlimits from it
                with contextlib.suppress(OSError):  # the OOM killer must pick a command, not it
                    Path(f"/proc/{pid}/oom_score_adj").write_text("-1000")
            else:
                apply_rlimits(pid, values)
            os.write(block_w, b"x")
        except BaseException:
            os.close(pidfd)
            raise
        return pid, pidfd


class _NotStarted(SandboxError):
    """A kept sandbox failed before the command was handed to it (safe to retry)."""


class _SessionChild:
    """A command started by a reused sandbox's init, shaped for :func:`supervise`: its exit
    status arrives on the init's socket."""

    def __init__(self, pid: int, stdout: IO[bytes], stderr: IO[bytes], sock: socket.socket):
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr
        self.returncode: int | None = None
        self.error = ""
        self.stuck = False  # the init could not kill what the command left behind
        self._sock = sock
        self._pending = b""

    def exit_fd(self) -> int:
        return self._sock.fileno()

    def abandon(self, reason: str) -> None:
        """Stop waiting for an exit status that may never come."""
        if self.returncode is None:
            self.returncode, self.error = -signal.SIGKILL, reason

    def killed(self) -> None:
        """zerog ended the sandbox (a limit): the command died of SIGKILL."""
        if self.returncode is None:
            self.returncode = -signal.SIGKILL

    def _receive(self) -> None:
        """Read the init's report, a line sent at once: once it has begun, wait for its
        end (or the init's death)."""
        while b"\n" not in self._pending:
            chunk = self._sock.recv(4096)
            if not chunk:
                self.returncode, self.error = -signal.SIGKILL, "the sandbox's init died"
                return
            self._pending += chunk
        line = self._pending.split(b"\n", 1)[0].decode("utf-8", "replace")
        if line.startswith("E "):
            self.returncode, self.error = 127, line[2:]
        else:
            code, _, note = line.partition(" ")
            self.stuck = note == "stuck"
            self.returncode = int(code)

    def poll(self) -> int | None:
        if self.returncode is None and select.select([self._sock], [], [], 0)[0]:
            self._receive()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            left = None if deadline is None else max(deadline - time.monotonic(), 0.0)
            if not select.select([self._sock], [], [], left)[0]:
                raise subprocess.TimeoutExpired("sandboxed command", timeout or 0.0)
            self._receive()
        return self.returncode


class _Session:
    """One bubblewrap sandbox kept for a workspace; its init starts each command.

    After each command, everything the command left running is killed, before zerog
    touches the workspace again: through the sandbox's cgroups where there are any
    (:meth:`_sweep`), otherwise by the init, which empties its pid namespace before it
    reports the command's exit status (see :mod:`zerog.sandbox.bwrap_init`). A command
    that zerog must stop early (a limit) in a sandbox without cgroups ends the sandbox
    (:meth:`_end`): its init is killed, and as pid 1 takes every process of the
    namespace with it."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        sock: socket.socket,
        groups: Cgroups,
        init_pid: int,
        init_pidfd: int,
        clock: Callable[[], float],
        sweep_seconds: float,
    ) -> None:
        self.proc = proc
        self.sock = sock
        self.groups = groups
        self.init_pid = init_pid
        self._init_pidfd = init_pidfd
        self._clock = clock
        self._sweep_seconds = sweep_seconds
        self._broken = False
        self._stuck = False  # something the command left could not be killed
        self._set: tuple[int, int] | None = None  # (processes, memory) the cgroups have

    def alive(self) -> bool:
        return not self._broken and self.proc.poll() is None

    def _sweep(self, child: _SessionChild) -> None:
        """Kill everything the command left in the sandbox (daemons, new sessions). What
        cannot be killed in time retires the sandbox (it is never handed another command)
        and ends the command: its exit status may never come."""
        if not self.groups.kill_all(self._sweep_seconds, keep=frozenset({self.init_pid})):
            self._broken = self._stuck = True
            child.abandon(self._stuck_note())

    def _end(self, child: _SessionChild) -> None:
        """No cgroups: stop the command by ending the whole sandbox, unless its init has
        already reported the exit (and so emptied the namespace). Returns once the pid
        namespace is gone (its init exits only after every process in it has), or after
        ``sweep_seconds``; the sandbox is never used again."""
        if child.poll() is not None:
            return
        self._broken = True
        if _kill_namespace(self._init_pidfd, self._sweep_seconds):
            child.killed()
        else:
            self._stuck = True
            child.abandon(self._stuck_note())

    def _stuck_note(self) -> str:
        return (
            f"processes of the command could not be killed within {self._sweep_seconds:g} s; "
            "its sandbox was retired"
        )

    def run(
        self,
        command: str,
        env: Mapping[str, str],
        workspace: Path,
        limits: Limits,
        values: dict[int, int],
        stdin: bytes = b"",
    ) -> Observation:
        started = self._clock()
        wanted = (limits.max_processes, limits.memory_bytes)
        try:
            if wanted != self._set:
                self._set = None
                self.groups.set_limits(limits, reserve=1)
                self._set = wanted
            self.groups.mark()
            disk = DiskWatch(workspace, limits)
            source = [stdin_pipe(stdin)] if stdin else []  # the init's child reads it as stdin
            out_r, out_w = os.pipe()
        except (OSError, ValueError) as exc:
            self._broken = True
            raise _NotStarted(str(exc)) from exc
        err_r, err_w = os.pipe()
        cgroups = bool(self.groups.directories)
        request = {
            "command": command,
            "env": dict(env),
            "cwd": str(workspace),
            "rlimits": rlimit_triples(values),
            "sweep": 0 if cgroups else self._sweep_seconds,  # the init empties the namespace
        }
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [out_w, err_w, *source])
        except OSError as exc:
            os.close(out_r)
            os.close(err_r)
            self._broken = True
            raise _NotStarted(str(exc)) from exc
        finally:
            for fd in (out_w, err_w, *source):
                os.close(fd)
        child = _SessionChild(
            self.init_pid, io.FileIO(out_r, "r"), io.FileIO(err_r, "r"), self.sock
        )
        try:
            observation = supervise(
                child,
                started=started,
                timeout=limits.timeout,
                max_output_bytes=limits.max_output_bytes,
                kill_output_bytes=limits.kill_output_bytes,
                clock=self._clock,
                watch=disk,
                kill=(lambda: self._sweep(child)) if cgroups else (lambda: self._end(child)),
            )
        except BaseException:
            self._broken = True
            raise
        if child.stuck:
            self._broken = self._stuck = True
        if self._stuck and not child.error:  # the command had ended, something it left had not
            stderr = f"{observation.stderr}\n[zerog: {self._stuck_note()}]".lstrip("\n")
            observation = observation.model_copy(update={"stderr": decode(stderr.encode())})
        if child.error:
            self._broken = child.returncode != 127
            stderr = f"{observation.stderr}\n[zerog: {child.error}]".lstrip("\n")
            return observation.model_copy(
                update={
                    "status": Status.EXCEPTION,
                    "exit_code": None,
                    "stderr": decode(stderr.encode()),
                }
            )
        return settle_limits(observation, limits, self.groups, disk)

    def close(self) -> None:
        self.sock.close()
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            _kill_group(self.proc.pid)
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        os.close(self._init_pidfd)
        self.groups.remove()


def _kill_namespace(pidfd: int, wait: float) -> bool:
    """Kill the pid namespace whose init ``pidfd`` refers to, and wait (up to ``wait``
    seconds) until it is gone: its init exits only once every process in it has. Whether
    it is gone."""
    with contextlib.suppress(ProcessLookupError):
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    return bool(select.select([pidfd], [], [], wait)[0])


def _end_namespace(pidfd: int, wait: float) -> bool:
    """:func:`_kill_namespace`, then close ``pidfd``."""
    try:
        return _kill_namespace(pidfd, wait)
    finally:
        os.close(pidfd)


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


def _close_all(sessions: list[_Session]) -> None:
    while sessions:
        sessions.pop().close()
