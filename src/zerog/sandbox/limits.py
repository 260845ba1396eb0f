"""Enforcing :class:`~zerog.sandbox.base.Limits` on real processes.

Three mechanisms, used by the backends that spawn processes:

- rlimits, per process and inherited: CPU seconds (``RLIMIT_CPU``: SIGXCPU), size of one
  file (``RLIMIT_FSIZE``: SIGXFSZ), and, only where no memory cgroup is available, private
  writable memory (``RLIMIT_DATA``, which a many-process command can still exceed in sum;
  unlike ``RLIMIT_AS`` it leaves alone the large address-space reservations of runtimes
  such as V8, the JVM or Go).
- cgroups, for the command as a whole: a pids cgroup (``max_processes``; ``RLIMIT_NPROC``
  is not enforced for uid 0, even inside a user namespace) and a memory cgroup
  (``memory_bytes``, the OOM killer acts inside it). Each command gets its own cgroup,
  created under the cgroup this process is in, and every process left in it is killed
  afterwards: frozen first (a v1 freezer cgroup, or v2's ``cgroup.freeze``), so that
  nothing can fork while it is being killed, then killed, then thawed to die. Cgroup v1
  hierarchies and delegated v2 trees are used when writable.
- a disk watch: the free space and inodes of the workspace's file system are read every
  50 ms while the command runs. When more than ``max_disk_bytes`` (each new inode counts
  as 4 KiB) has gone, the workspace itself is measured against its size at the first
  read, and only its growth kills the command: other writers on the same file system
  (another run, a parallel check, a package install) do not count. Once the command has
  ended, the holes of the sparse files it changed count too (one walk of the workspace's
  stat data): a hole takes no block, but every copy or checksum sees it. This is a bound on
  what one command may take, not a quota: a burst can overshoot by what the disk writes
  in 50 ms, and writes outside the workspace are not counted (bwrap and wasm give a
  command no other writable place but a size-limited /tmp; ``local`` does).
"""

from __future__ import annotations

import contextlib
import math
import os
import resource
import signal
import stat
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zerog.beneath import Dir, walk
from zerog.sandbox.base import Limits
from zerog.types import Observation, Status

INODE_BYTES = 4096
CTIME_SLACK_NS = 50_000_000
PROC = Path("/proc")

_SIGNAL_STATUS = {signal.SIGXCPU: Status.CPU_LIMIT, signal.SIGXFSZ: Status.FILE_LIMIT}
_NOTES = {
    Status.CPU_LIMIT: "a process used more than {cpu:g} s of CPU time",
    Status.FILE_LIMIT: "a file grew past {file} bytes",
    Status.MEMORY_LIMIT: "the command used more than {memory} bytes of memory",
    Status.PROCESS_LIMIT: "the command tried to run more than {procs} processes",
    Status.DISK_LIMIT: "the command consumed more than {disk} bytes of disk",
}


def rlimits(limits: Limits, *, data: bool) -> dict[int, int]:
    """The rlimits (resource -> value) that carry ``limits`` for one process."""
    values = {
        resource.RLIMIT_CPU: max(1, math.ceil(limits.cpu_seconds)),
        resource.RLIMIT_FSIZE: limits.max_file_bytes,
        resource.RLIMIT_CORE: 0,
    }
    if data:
        values[resource.RLIMIT_DATA] = limits.memory_bytes
    return values


def _pair(which: int, value: int) -> tuple[int, int]:
    """(soft, hard), below today's hard limit. CPU gets a hard limit one second later, so
    SIGXCPU (a reportable cause) arrives before the SIGKILL of the hard limit."""
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    upper = value + 1 if which == resource.RLIMIT_CPU else value
    if hard != resource.RLIM_INFINITY:
        upper = min(upper, hard)
    return value, upper


def rlimit_triples(values: dict[int, int]) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for each value, as :func:`apply_rlimits` would set them."""
    return [(which, *_pair(which, value)) for which, value in values.items()]


def apply_rlimits(pid: int, values: dict[int, int]) -> None:
    """Set ``values`` on process ``pid`` (0: this process)."""
    for which, value in values.items():
        if pid:
            resource.prlimit(pid, which, _pair(which, value))
        else:
            resource.setrlimit(which, _pair(which, value))


def ulimit_lines(values: dict[int, int]) -> str:
    """Shell lines setting ``values`` for a POSIX shell and what it runs (``-f`` counts
    512-byte blocks, ``-d`` KiB); the script stops if one cannot be set."""
    flags = {
        resource.RLIMIT_CPU: ("-t", 1),
        resource.RLIMIT_FSIZE: ("-f", 512),
        resource.RLIMIT_DATA: ("-d", 1024),
        resource.RLIMIT_CORE: ("-c", 512),
    }
    lines = []
    for which, value in values.items():
        flag, unit = flags[which]
        soft, hard = _pair(which, value)
        lines.append(
            f"ulimit -S {flag} {soft // unit} && ulimit -H {flag} {hard // unit} || exit 125\n"
        )
    return "".join(lines)


def signal_status(returncode: int | None) -> Status | None:
    """The limit behind a death by SIGXCPU or SIGXFSZ, seen directly (negative) or through
    a shell or bwrap (128 + signal)."""
    if returncode is None:
        return None
    number = -returncode if returncode < 0 else returncode - 128
    for sig, status in _SIGNAL_STATUS.items():
        if number == sig:
            return status
    return None


def mark(observation: Observation, status: Status, limits: Limits) -> Observation:
    """Report a limit hit: its status, no exit code, and a note at the end of stderr."""
    note = _NOTES[status].format(
        cpu=limits.cpu_seconds,
        file=limits.max_file_bytes,
        memory=limits.memory_bytes,
        procs=limits.max_processes,
        disk=limits.max_disk_bytes,
    )
    stderr = observation.stderr
    stderr = f"{stderr}\n[zerog: killed: {note}]" if stderr else f"[zerog: killed: {note}]"
    return observation.model_copy(update={"status": status, "exit_code": None, "stderr": stderr})


def settle(
    observation: Observation,
    limits: Limits,
    groups: Cgroups | None = None,
    disk: DiskWatch | None = None,
) -> Observation:
    """Turn a failure caused by a limit into that limit's status.

    A memory or process limit hit only counts when the command failed or ran out of time
    (a build may retry a failed fork and still succeed); disk consumed past the limit
    always counts, since what was written stays behind.
    """
    status = observation.status
    if status is Status.DISK_LIMIT:
        return mark(observation, status, limits)
    if status in (Status.ERROR, Status.TIMEOUT) and groups is not None:
        if groups.memory_limit_hit():
            return mark(observation, Status.MEMORY_LIMIT, limits)
        if groups.process_limit_hit():
            return mark(observation, Status.PROCESS_LIMIT, limits)
    if status is Status.ERROR:
        by_signal = signal_status(observation.exit_code)
        if by_signal is not None:
            return mark(observation, by_signal, limits)
        # Programs that ignore SIGXFSZ (Python does) see EFBIG; an address-space limit
        # shows as a failed allocation. Both are read from the tail of what it printed.
        tail = observation.stderr[-2000:]
        if "File too large" in tail:
            return mark(observation, Status.FILE_LIMIT, limits)
        if "MemoryError" in tail or "Cannot allocate memory" in tail:
            return mark(observation, Status.MEMORY_LIMIT, limits)
        # RLIMIT_NPROC, where no pids cgroup can tell: what shells say when it bites.
        no_pids_cgroup = groups is None or "pids" not in groups.directories
        if no_pids_cgroup and ("Cannot fork" in tail or "fork: retry" in tail):
            return mark(observation, Status.PROCESS_LIMIT, limits)
    if (
        disk is not None
        and status is not Status.OUTPUT_LIMIT
        and disk.final() > limits.max_disk_bytes
    ):
        return mark(observation, Status.DISK_LIMIT, limits)
    return observation


# ---------------------------------------------------------------------- disk


def _stats(root: Path) -> Iterator[os.stat_result]:
    """The lstat of every entry under ``root``. The tree is walked through directory
    descriptors without following links, so a directory swapped for a link while a
    command runs is not measured (and cannot send the walk across the host)."""
    try:
        top = Dir.open(root)
    except OSError:
        return
    with top:
        for _, _, _, st in walk(top):
            yield st


def tree_usage(root: Path) -> int:
    """Bytes allocated under ``root`` (and 4 KiB per entry), symlinks not followed."""
    return sum(st.st_blocks * 512 + INODE_BYTES for st in _stats(root))


def new_holes(root: Path, since_ns: int) -> int:
    """Bytes of apparent size without disk blocks (holes) in the regular files under
    ``root`` changed at or after ``since_ns`` (their ctime): what a command that made
    sparse files added beyond the blocks it took."""
    return sum(
        max(st.st_size - st.st_blocks * 512, 0)
        for st in _stats(root)
        if stat.S_ISREG(st.st_mode) and st.st_ctime_ns >= since_ns
    )


class DiskWatch:
    """Watches the disk one command consumes in the workspace at ``path``.

    Reading the file system's free space is cheap and is done on every call; the
    workspace is walked only to confirm that a large drop is its own growth. The
    workspace's size at the start is measured in a background thread from the first
    call (50 ms into a command), so a short command never pays for it.
    """

    def __init__(
        self,
        path: Path,
        limits: Limits,
        usage: Callable[[Path], int] = tree_usage,
        clock_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._path = path
        self._budget = limits.max_disk_bytes
        self._usage = usage
        self._start = self._free()
        # ctimes come from the kernel's coarse clock, which may lag this one by a tick.
        self._since_ns = clock_ns() - CTIME_SLACK_NS
        self._base: list[int] = []
        self._baseline: threading.Thread | None = None

    def _free(self) -> tuple[int, int]:
        st = os.statvfs(self._path)
        return st.f_bavail * st.f_frsize, st.f_favail

    def _measure_base(self) -> None:
        self._base.append(self._usage(self._path))

    def _file_system_drop(self) -> tuple[int, tuple[int, int]]:
        space, inodes = self._free()
        drop = max(self._start[0] - space, 0) + max(self._start[1] - inodes, 0) * INODE_BYTES
        return drop, (space, inodes)

    def consumed(self) -> int:
        """Bytes (and 4 KiB per inode) the workspace grew by since the watch started.

        Until the drop in free space passes the budget it is the answer (cheap, and an
        upper bound). Past it, the workspace's growth is measured instead, and the drop
        caused by other writers is forgotten. Without a baseline (a command shorter than
        one watch interval) the drop is all there is to go by.
        """
        drop, now = self._file_system_drop()
        if drop <= self._budget or self._baseline is None:
            return drop
        self._baseline.join()
        if not self._base:
            return drop
        grown = max(self._usage(self._path) - self._base[0], 0)
        self._start = (now[0] + grown, now[1])
        return grown

    def final(self) -> int:
        """What the command consumed, once it has ended: :meth:`consumed`, plus the holes
        of the sparse files it changed (a hole takes no disk block, so the free space does
        not show it; copies, archives and checksums see every byte of it). One walk of
        the workspace, reading only the stat data of its entries."""
        return self.consumed() + new_holes(self._path, self._since_ns)

    def __call__(self) -> Status | None:
        if self._baseline is None:
            if self._file_system_drop()[0] > self._budget:
                return Status.DISK_LIMIT  # before any baseline: nothing tells whose it is
            self._baseline = threading.Thread(
                target=self._measure_base, name="zerog-disk-baseline", daemon=True
            )
            self._baseline.start()
        return Status.DISK_LIMIT if self.consumed() > self._budget else None


# ---------------------------------------------------------------------- cgroups


@dataclass(frozen=True)
class _Controller:
    directory: Path  # the cgroup this process is in, for one controller
    limit_file: str
    events_file: str
    event: str
    v2: bool


def _mounts(proc: Path) -> Iterator[tuple[Path, str, set[str]]]:
    """(mount point, fstype, super options) of every cgroup mount."""
    with contextlib.suppress(OSError):
        for line in (proc / "self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            parts, tail = left.split(), right.split()
            if len(parts) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
                continue
            yield Path(parts[4]), tail[0], set(tail[2].split(","))


def _own_paths(proc: Path) -> dict[str, str]:
    """controller name (or "" for v2) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for line in (proc / "self/cgroup").read_text().splitlines():
            _, names, path = line.split(":", 2)
            for name in names.split(",") if names else [""]:
                paths[name] = path
    return paths


def _files(name: str, v2: bool) -> tuple[str, str, str]:
    """(limit file, events file, event counting the limit hits) of a controller."""
    if name == "freezer":  # cgroup v1 only: v2 has cgroup.freeze in every cgroup
        return "freezer.state", "", ""
    if name == "pids":
        return "pids.max", "pids.events", "max"
    if v2:
        return "memory.max", "memory.events", "oom_kill"
    return "memory.limit_in_bytes", "memory.oom_control", "oom_kill"


def _find(proc: Path, name: str) -> _Controller | None:
    own = _own_paths(proc)
    for mount, fstype, options in _mounts(proc):
        if fstype == "cgroup" and name in options and name in own:
            directory, v2 = mount / own[name].lstrip("/"), False
        elif fstype == "cgroup2" and "" in own:
            directory, v2 = mount / own[""].lstrip("/"), True
            try:
                if name not in (directory / "cgroup.subtree_control").read_text().split():
                    continue
            except OSError:
                continue
        else:
            continue
        limit_file, events_file, event = _files(name, v2)
        if directory.is_dir() and os.access(directory, os.W_OK):
            return _Controller(directory, limit_file, events_file, event, v2)
    return None


@dataclass
class Cgroups:
    """A pids and a memory cgroup for one command (either may be missing)."""

    directories: dict[str, Path] = field(default_factory=dict)
    _controllers: dict[str, _Controller] = field(default_factory=dict)
    _marks: dict[str, int] = field(default_factory=dict)

    def join(self, pid: int) -> None:
        for directory in self.directories.values():
            (directory / "cgroup.procs").write_text(str(pid))

    def procs_files(self) -> list[Path]:
        return [d / "cgroup.procs" for d in self.directories.values()]

    def _event(self, name: str) -> int:
        directory = self.directories.get(name)
        if directory is None:
            return 0
        controller = self._controllers[name]
        with contextlib.suppress(OSError, ValueError):
            for line in (directory / controller.events_file).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == controller.event:
                    return int(value)
        return 0

    def process_limit_hit(self) -> bool:
        return self._event("pids") > self._marks.get("pids", 0)

    def memory_limit_hit(self) -> bool:
        return self._event("memory") > self._marks.get("memory", 0)

    def pids(self) -> set[int]:
        found: set[int] = set()
        for procs in self.procs_files():
            with contextlib.suppress(OSError, ValueError):
                found.update(int(p) for p in procs.read_text().split())
        return found

    def kill_all(self, wait: float = 2.0, keep: frozenset[int] = frozenset()) -> bool:
        """Kill every process still in the cgroups (a daemon, a new session), but ``keep``;
        True once none is left, False if some still were after ``wait`` seconds.

        The cgroups are frozen first, where a freezer is available, so that no process
        can fork (or otherwise run) while they are killed; then thawed, so they die."""
        deadline = time.monotonic() + wait
        if not self.pids() - keep:
            return True
        frozen = self._freeze(True, deadline)
        try:
            _kill(self.pids() - keep)
        finally:
            if frozen:
                self._freeze(False, deadline)
        while True:
            alive = self.pids() - keep
            if not alive:
                return True
            if time.monotonic() > deadline:
                return False
            _kill(alive)
            time.sleep(0.001)

    def _freeze(self, frozen: bool, deadline: float) -> bool:
        """Freeze (or thaw) the processes of the cgroups; whether there was a freezer. A
        freeze waits, until ``deadline`` at most, for every process to be frozen."""
        freezer = self.directories.get("freezer")
        unified = [d for kind, d in self.directories.items() if self._controllers[kind].v2]
        if freezer is not None:
            control, value = freezer / "freezer.state", "FROZEN" if frozen else "THAWED"
            state, done = control, "FROZEN"
        elif unified:
            control, value = unified[0] / "cgroup.freeze", "1" if frozen else "0"
            state, done = unified[0] / "cgroup.events", "frozen 1"
        else:
            return False
        try:
            control.write_text(value)
            while frozen and done not in state.read_text() and time.monotonic() < deadline:
                time.sleep(0.001)
        except OSError:
            return False
        return True

    def mark(self) -> None:
        """Count limit hits from now on only (a reused cgroup keeps its counters)."""
        self._marks = {name: self._event(name) for name in self.directories}

    def set_limits(self, limits: Limits, *, reserve: int = 0) -> None:
        for kind, directory in self.directories.items():
            if kind not in ("pids", "memory"):
                continue
            controller = self._controllers[kind]
            value = limits.max_processes + reserve if kind == "pids" else limits.memory_bytes
            if kind == "memory" and not controller.v2:
                _set_v1_memory(directory, value)
            else:
                (directory / controller.limit_file).write_text(str(value))

    def remove(self) -> None:
        self.kill_all()
        for directory in self.directories.values():
            for _ in range(100):  # rmdir fails while the last killed tasks are being reaped
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.005)


class CgroupFactory:
    """Creates per-command cgroups under this process's own cgroup, when it can."""

    def __init__(self, proc: Path = PROC, new_id: Callable[[], str] | None = None) -> None:
        self._proc = proc
        self._controllers = {
            name: found for name in ("pids", "memory", "freezer") if (found := _find(proc, name))
        }
        self._new_id = new_id or (lambda: f"zerog-{os.getpid()}-{uuid.uuid4().hex[:10]}")

    @property
    def controllers(self) -> frozenset[str]:
        """The writable controllers: any one of them holds every process of a sandbox, so
        that they can all be killed."""
        return frozenset(self._controllers)

    def remove_stale(self) -> int:
        """Remove the empty cgroups that zerog processes which died without cleaning up
        (killed, crashed) left behind; how many were removed."""
        removed = 0
        for controller in self._controllers.values():
            with contextlib.suppress(OSError):
                for entry in controller.directory.iterdir():
                    owner = entry.name.split("-")
                    if len(owner) != 3 or owner[0] != "zerog" or not owner[1].isdigit():
                        continue
                    if (self._proc / owner[1]).exists():
                        continue  # its zerog is still running
                    with contextlib.suppress(OSError):
                        entry.rmdir()  # fails while a process is still in it
                        removed += 1
        return removed

    def create(self, limits: Limits, *, reserve: int = 0) -> Cgroups:
        """Cgroups bounded by ``limits``; ``reserve`` extra pids for the sandbox's own init."""
        name = self._new_id()
        groups = Cgroups()
        try:
            for kind, controller in self._controllers.items():
                directory = controller.directory / name
                if directory not in groups.directories.values():  # v2: one for all
                    directory.mkdir()
                groups.directories[kind] = directory
                groups._controllers[kind] = controller
                if kind == "memory" and controller.v2:
                    with contextlib.suppress(OSError):
                        (directory / "memory.swap.max").write_text("0")
            groups.set_limits(limits, reserve=reserve)
        except OSError:
            groups.remove()
            raise
        return groups


def _kill(pids: set[int]) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


def _set_v1_memory(directory: Path, value: int) -> None:
    """memory.memsw (memory + swap) must stay at or above memory: raise it first, lower it
    last. Kernels without swap accounting have no memsw file."""
    memsw = directory / "memory.memsw.limit_in_bytes"
    has_memsw = memsw.exists()
    if has_memsw:
        with contextlib.suppress(OSError):
            memsw.write_text(str(max(value, _read_int(memsw))))
    (directory / "memory.limit_in_bytes").write_text(str(value))
    if has_memsw:
        memsw.write_text(str(value))


def _read_int(path: Path) -> int:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return 0
