"""The bubblewrap backend: each shell command in its own Linux namespaces.

The profile (see ``docs/sandboxes.md`` for what it stops):

- new user, pid, network, ipc, uts and cgroup namespaces; nested user namespaces disabled;
  the command runs as uid/gid 65534 inside, without capabilities;
- ``--die-with-parent`` and ``--new-session`` (no controlling terminal, so no TIOCSTI);
  stdin is /dev/null; bwrap itself starts with an empty environment (its pid 1's
  ``/proc/1/environ`` would otherwise show the caller's variables), the sandbox's
  variables are passed with ``--setenv``;
- the root is an empty tmpfs remounted read-only; /usr and a short list of /etc files
  are bound read-only (no /home, /root, /var, /run, /opt, host sockets or keys);
  /dev holds only the standard nodes and is read-only; /tmp and /dev/shm are private
  tmpfs of bounded size; the workspace, at its own path, is the only writable bind, and
  zerog's state in it (``.zerog/``: snapshots, traces, sidecars) is bound read-only;
- no network unless granted (``network=True`` shares the host's network namespace);
- the command is held (``--block-fd``) until it is in its own pids and memory cgroups and
  its rlimits are set, so nothing it starts escapes the limits; killing bwrap kills the
  pid namespace and everything in it.

File actions (write, edit) do not need a process: they run in zerog, confined to the
workspace like on every backend.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from zerog.sandbox.base import MIB, Limits, SandboxUnavailable
from zerog.sandbox.files import RESERVED, edit_file, write_file
from zerog.sandbox.limits import CgroupFactory, Cgroups, DiskWatch, apply_rlimits, rlimits
from zerog.sandbox.limits import settle as settle_limits
from zerog.sandbox.process import spawn_failure, supervise
from zerog.types import Action, EditAction, Observation, ShellAction

SHELL = "/bin/sh"
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
    ) -> None:
        self._env = dict(env)
        self._network = network
        self._bwrap = executable or find_bwrap()
        self._cgroups = cgroups if cgroups is not None else CgroupFactory()
        self._clock = clock
        self._root = root
        self._root_user = (os.getuid() if uid is None else uid) == 0
        if self._root_user and "pids" not in self._cgroups.controllers:
            raise SandboxUnavailable(
                "the bwrap sandbox cannot bound the number of processes: zerog runs as root, "
                "for whom RLIMIT_NPROC is not enforced, and no pids cgroup is writable here; "
                "run zerog as an unprivileged user or give it a writable pids cgroup"
            )
        self._probe()

    @property
    def name(self) -> str:
        return "bwrap"

    @property
    def network(self) -> bool:
        return self._network

    def _probe(self) -> None:
        argv = [*self._argv(Path("/"), Limits(), None), SHELL, "-c", "true"]
        try:
            done = subprocess.run(argv, env={}, capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.SubprocessError) as exc:
            raise SandboxUnavailable(f"bubblewrap does not start here: {exc}") from exc
        if done.returncode != 0:
            reason = done.stderr.decode("utf-8", "replace").strip()[:500]
            raise SandboxUnavailable(
                f"bubblewrap cannot create its namespaces here ({reason}); unprivileged user "
                "namespaces must be allowed (sysctl kernel.unprivileged_userns_clone=1, or the "
                "AppArmor profile for bwrap on Ubuntu)"
            )

    def _argv(
        self, workspace: Path | None, limits: Limits, fds: tuple[int, int] | None
    ) -> list[str]:
        argv = [self._bwrap, "--unshare-all", "--unshare-user"]
        if self._network:
            argv.append("--share-net")
        argv += [
            "--die-with-parent",
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
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", shm_size, "--tmpfs", "/dev/shm", "--remount-ro", "/dev"]
        argv += ["--size", tmp_size, "--tmpfs", "/tmp"]
        if workspace is not None and workspace != Path("/"):
            where = str(workspace)
            argv += ["--bind", where, where]
            if (workspace / RESERVED).is_dir():  # zerog's state: readable, not writable
                state = str(workspace / RESERVED)
                argv += ["--ro-bind", state, state]
            argv += ["--chdir", where]
        argv += ["--remount-ro", "/"]
        for key, value in self._env.items():
            argv += ["--setenv", key, value]
        if fds is not None:
            argv += ["--info-fd", str(fds[0]), "--block-fd", str(fds[1])]
        argv.append("--")
        return argv

    def run(self, action: Action, workspace: Path, limits: Limits) -> Observation:
        if isinstance(action, ShellAction):
            return self._shell(action.command, workspace.resolve(), limits)
        started = self._clock()
        if isinstance(action, EditAction):
            observation = edit_file(workspace, action)
        else:
            observation = write_file(workspace, action)
        return observation.model_copy(update={"duration": self._clock() - started})

    def _shell(self, command: str, workspace: Path, limits: Limits) -> Observation:
        started = self._clock()
        try:
            groups = self._cgroups.create(limits, reserve=1)  # + bwrap's init in the pid ns
        except OSError as exc:
            return spawn_failure(exc, self._clock() - started)
        info_r, info_w = os.pipe()
        block_r, block_w = os.pipe()
        try:
            try:
                disk = DiskWatch(workspace, limits)
                proc = subprocess.Popen(
                    [*self._argv(workspace, limits, (info_w, block_r)), SHELL, "-c", command],
                    env={},
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    process_group=0,
                    close_fds=True,
                    pass_fds=(info_w, block_r),
                )
            except (OSError, ValueError, subprocess.SubprocessError) as exc:
                return spawn_failure(exc, self._clock() - started)
            finally:
                os.close(info_w)
                os.close(block_r)
            try:
                self._release(proc, info_r, block_w, groups, limits)
            except BaseException:
                os.killpg(proc.pid, 9)
                proc.wait()
                raise
            finally:
                os.close(block_w)
            observation = supervise(
                proc,
                started=started,
                timeout=limits.timeout,
                max_output_bytes=limits.max_output_bytes,
                kill_output_bytes=limits.kill_output_bytes,
                clock=self._clock,
                watch=disk,
            )
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
        limits: Limits,
    ) -> None:
        """Put bwrap's child (not yet running the command) in its cgroups, set its rlimits,
        then let it go. If bwrap failed before that, there is nothing to release."""
        data = b""
        deadline = time.monotonic() + _HANDSHAKE_SECONDS
        while b"}" not in data:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([info_r], [], [], left)[0]:
                raise TimeoutError("bubblewrap did not report its child in time")
            chunk = os.read(info_r, 4096)
            if not chunk:
                return  # bwrap exited: its error is on stderr
            data += chunk
        pid = int(json.loads(data.decode())["child-pid"])
        groups.join(pid)
        values = rlimits(limits, address_space="memory" not in groups.directories)
        if not self._root_user and "pids" not in groups.directories:
            values[resource.RLIMIT_NPROC] = limits.max_processes + 1  # per user namespace
        apply_rlimits(pid, values)
        os.write(block_w, b"x")
