"""Running one process properly: own process group, bounded output, hard deadline."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import IO, Protocol, runtime_checkable

from zerog.text import decode
from zerog.types import Observation, Status

_CHUNK = 65536
_EXIT_GRACE = 0.2  # seconds to drain pipes after the main process exits
MAX_STDIN_BYTES = 4096  # what a pipe takes at once (PIPE_BUF): written before the command runs


def stdin_pipe(data: bytes) -> int:
    """The read end of a pipe that holds ``data`` and is closed for writing: a command's
    stdin that gives exactly ``data``, then end of file. The caller closes it.

    The data is written before the command starts, so it must fit in the pipe at once
    (at most :data:`MAX_STDIN_BYTES`); a larger input is a ValueError."""
    if len(data) > MAX_STDIN_BYTES:
        raise ValueError(f"a command's input is limited to {MAX_STDIN_BYTES} bytes")
    read, write = os.pipe()
    try:
        os.write(write, data)
    except BaseException:
        os.close(read)
        raise
    finally:
        os.close(write)
    return read


class BoundedBuffer:
    """Keeps the first and last ``limit // 2`` bytes of a stream and counts the rest."""

    def __init__(self, limit: int) -> None:
        self._head_cap = limit // 2
        self._tail_cap = limit - self._head_cap
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self._head_cap - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            excess = len(self.tail) - self._tail_cap
            if excess > 0:
                del self.tail[:excess]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return decode(bytes(self.head + self.tail))
        elided = self.total - len(self.head) - len(self.tail)
        marker = f"\n[... {elided} bytes elided ...]\n"
        return decode(bytes(self.head)) + marker + decode(bytes(self.tail))


def _kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


class Child(Protocol):
    """What :func:`supervise` needs of a started process (``subprocess.Popen`` fits)."""

    @property
    def pid(self) -> int: ...

    @property
    def returncode(self) -> int | None: ...

    @property
    def stdout(self) -> IO[bytes] | None: ...

    @property
    def stderr(self) -> IO[bytes] | None: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...


@runtime_checkable
class ExitWatch(Protocol):
    """A child that offers its own descriptor to watch for its exit (instead of a pidfd):
    readable once :meth:`Child.poll` can tell the exit status."""

    def exit_fd(self) -> int: ...


Watch = Callable[[], Status | None]
"""Polled while a command runs; a status it returns kills the command with that status."""

WATCH_INTERVAL = 0.05


def spawn_failure(exc: BaseException, duration: float) -> Observation:
    return Observation(
        status=Status.EXCEPTION,
        stderr=decode(f"could not start the command: {exc}".encode()),
        duration=duration,
    )


def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    timeout: float,
    max_output_bytes: int,
    kill_output_bytes: int,
    clock: Callable[[], float] = time.monotonic,
    watch: Watch | None = None,
    stdin: bytes = b"",
) -> Observation:
    """Run ``argv`` in its own process group; kill the group on timeout or when it exits.
    Its stdin gives ``stdin`` (see :func:`stdin_pipe`), or nothing (/dev/null).

    Processes left behind in the group are killed when the main process ends, so a command
    never outlives its observation (a process that starts a new session escapes this; the
    isolating backends close that gap with a pid namespace and a new session).
    """
    started = clock()
    source: int | None = None
    try:
        source = stdin_pipe(stdin) if stdin else None
        proc = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL if source is None else source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            process_group=0,  # own group, so the whole tree can be killed (keeps vfork)
            close_fds=True,
        )
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return spawn_failure(exc, clock() - started)
    finally:
        if source is not None:
            os.close(source)
    return supervise(
        proc,
        started=started,
        timeout=timeout,
        max_output_bytes=max_output_bytes,
        kill_output_bytes=kill_output_bytes,
        clock=clock,
        watch=watch,
    )


def supervise(
    proc: Child,
    *,
    started: float,
    timeout: float,
    max_output_bytes: int,
    kill_output_bytes: int,
    clock: Callable[[], float] = time.monotonic,
    watch: Watch | None = None,
    kill: Callable[[], None] | None = None,
) -> Observation:
    """Read a started process's output until it ends or a limit is hit, then kill what is
    left of it and report. ``kill`` kills the command and everything it started; by
    default, ``proc`` leads its own process group and the group is killed."""
    if proc.stdout is None or proc.stderr is None:  # pragma: no cover - pipes were asked for
        raise RuntimeError("subprocess pipes missing")
    buffers = {
        proc.stdout.fileno(): BoundedBuffer(max_output_bytes),
        proc.stderr.fileno(): BoundedBuffer(max_output_bytes),
    }
    deadline = started + timeout
    stop = kill or (lambda: _kill_group(proc.pid))
    try:
        status = _pump(proc, buffers, deadline, kill_output_bytes, clock, watch, stop)
    except BaseException:  # interrupted: never leave the process tree behind
        stop()
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
        raise
    status = _finish(proc, status, deadline, clock, stop)
    returncode = proc.returncode
    out, err = buffers[proc.stdout.fileno()], buffers[proc.stderr.fileno()]
    proc.stdout.close()
    proc.stderr.close()
    stderr = err.text()
    if status is Status.TIMEOUT:
        stderr += f"\n[zerog: killed after {timeout:g} s timeout]"
    elif status is Status.OUTPUT_LIMIT:
        stderr += f"\n[zerog: killed after writing more than {kill_output_bytes} bytes]"
    elif returncode is not None and returncode < 0:
        stderr += f"\n[zerog: killed by signal {-returncode}]"
    return Observation(
        status=status,
        exit_code=returncode if status in (Status.SUCCESS, Status.ERROR) else None,
        stdout=out.text(),
        stderr=stderr.lstrip("\n") if not err.total else stderr,
        duration=clock() - started,
        truncated=out.truncated or err.truncated,
    )


def _pidfd(pid: int) -> int | None:
    """A descriptor that becomes readable when ``pid`` exits (Linux 5.3+), else None."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _pump(
    proc: Child,
    buffers: dict[int, BoundedBuffer],
    deadline: float,
    kill_output_bytes: int,
    clock: Callable[[], float],
    watch: Watch | None,
    stop: Callable[[], None],
) -> Status | None:
    """Read both pipes until EOF, the deadline, or an output flood. Returns the status
    decided here (timeout, output limit) or None when the pipes simply closed.

    The process's exit is watched through a pidfd in the same select, so a finished
    command is noticed at once, without polling."""
    own = isinstance(proc, ExitWatch)
    pidfd = proc.exit_fd() if isinstance(proc, ExitWatch) else _pidfd(proc.pid)
    with selectors.DefaultSelector() as selector:
        open_pipes = 0
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                selector.register(pipe, selectors.EVENT_READ)
                open_pipes += 1
        if pidfd is not None:
            selector.register(pidfd, selectors.EVENT_READ, data="exit")
        exited_at: float | None = None
        next_watch = clock() + WATCH_INTERVAL
        try:
            while open_pipes:
                now = clock()
                if now >= deadline:
                    return Status.TIMEOUT
                if exited_at is None and pidfd is None and proc.poll() is not None:
                    exited_at = now
                    stop()
                if exited_at is not None and now - exited_at > _EXIT_GRACE:
                    return None  # something outside the group still holds the pipes
                wait = deadline - now
                if exited_at is not None:
                    wait = min(wait, exited_at + _EXIT_GRACE - now)
                elif pidfd is None or watch is not None:
                    wait = min(wait, WATCH_INTERVAL)
                for key, _ in selector.select(timeout=max(wait, 0.0)):
                    if key.data == "exit":
                        selector.unregister(key.fileobj)
                        exited_at = clock()
                        stop()  # leftovers hold the pipes open
                        continue
                    chunk = os.read(key.fd, _CHUNK)
                    if not chunk:
                        selector.unregister(key.fileobj)
                        open_pipes -= 1
                        continue
                    buffers[key.fd].add(chunk)
                if sum(b.total for b in buffers.values()) > kill_output_bytes:
                    return Status.OUTPUT_LIMIT
                if watch is not None and exited_at is None and clock() >= next_watch:
                    next_watch = clock() + WATCH_INTERVAL
                    verdict = watch()
                    if verdict is not None:
                        return verdict
        finally:
            if pidfd is not None and not own:
                os.close(pidfd)
    return None


def _finish(
    proc: Child,
    status: Status | None,
    deadline: float,
    clock: Callable[[], float],
    stop: Callable[[], None],
) -> Status:
    """Reap the process, killing its whole group, and settle the final status."""
    if status is None:
        try:
            proc.wait(timeout=max(deadline - clock(), 0.0))
        except subprocess.TimeoutExpired:
            status = Status.TIMEOUT
    stop()
    proc.wait()
    if status is not None:
        return status
    return Status.SUCCESS if proc.returncode == 0 else Status.ERROR
