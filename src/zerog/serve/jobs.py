"""A bounded pool of worker processes: at most ``workers`` runs at once, at most ``queue``
waiting; a submission beyond that is refused (the API answers 429).

Each job is one process (see :mod:`zerog.serve.job`), started in its own session so that
signals aimed at the server do not reach it and a cancel can reach all of it. Cancelling a
queued job drops it; cancelling a running one sends SIGINT (the loop stops, kills the
command it was running, rolls the workspace back and records the run as interrupted) and,
if the process is still there after ``grace`` seconds, SIGKILL to its process group.

A worker says it is ready for SIGINT (one line on standard output) once it has taken the
signal back: a server started in the background by a non-interactive shell ignores SIGINT
and its workers inherit that, so a signal sent before would be lost. A cancel that comes
earlier is held and sent when the worker says so.

Starting an interpreter and importing zerog costs more than a short run itself (about
0.3 s of imports); :class:`WarmLauncher` keeps spare worker processes that have already
done it and wait for a job on standard input. A spare has seen no job: each run still gets
a process of its own, never used again, so the isolation and the cancel stay the same.
"""

from __future__ import annotations

import collections
import contextlib
import enum
import json
import os
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zerog.text import one_line

MAX_OUTPUT = 64 * 1024
KEEP_FINISHED = 1000


class JobState(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"  # the process ended; the store tells how the run ended
    FAILED = "failed"  # the run could not start (see ``error``)
    CANCELLED = "cancelled"  # cancelled while queued: it never started


@dataclass
class Job:
    id: str
    action: str  # run | resume
    payload: str  # the JSON a worker process reads on stdin
    workspace: Path
    goal: str
    model: str
    created: float
    state: JobState = JobState.QUEUED
    error: str = ""
    cancel_requested: bool = False
    ready: bool = False  # the worker process takes SIGINT now
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    # Set once the job is over (its process ended, or it never started): a follower of
    # its events reads them one last time at once instead of at its next poll.
    over: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def active(self) -> bool:
        return self.state in (JobState.QUEUED, JobState.RUNNING)

    def end(self, state: JobState, error: str = "") -> None:
        self.state, self.error = state, error
        self.over.set()


class Busy(Exception):
    """The run, its workspace, or a workspace inside or around it is already queued or
    running here."""

    def __init__(self, holder: Job, how: str = "in use") -> None:
        what = "run" if holder.action == "run" else "resumed run"
        super().__init__(f"workspace is {how} by {what} {holder.id} ({holder.state.value})")
        self.holder = holder


def overlap(one: Path, other: Path) -> str | None:
    """How two workspaces overlap: the same one, one inside the other, or None. A run may
    change anything in its workspace, so one inside another's could be swapped for a
    symbolic link to anywhere while its run waits."""
    if one == other:
        return "in use"
    if one.is_relative_to(other):
        return "inside the workspace used"
    if other.is_relative_to(one):
        return "around the workspace used"
    return None


class QueueFull(Exception):
    """No room for another job; try again after ``retry_after`` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the run queue is full; retry in {retry_after} s")
        self.retry_after = retry_after


Launcher = Callable[[Job], "subprocess.Popen[bytes]"]


READY = '{"ready": true}'
# The first thing a worker does is take SIGINT back and say so (see the module docstring).
# It runs isolated (``python -I``): neither the server's working directory nor PYTHON*
# variables nor the user's site directory can put modules in front of the standard ones.
BOOT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    f"sys.stdout.write({READY!r} + chr(10)); sys.stdout.flush(); "
    "import runpy; runpy.run_module('zerog.serve.job', run_name='__main__', alter_sys=True)"
)


# A spare: the same, but zerog is imported before the job is read (see WarmLauncher).
WARM_BOOT = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    f"sys.stdout.write({READY!r} + chr(10)); sys.stdout.flush(); "
    "import os, zerog.serve.job as job; sys.exit(job.main(sys.stdin.read(), os.environ))"
)


def _start(python: str, boot: str, environ: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [python, "-I", "-c", boot],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=environ,
        start_new_session=True,
        close_fds=True,
    )


def launch_worker(python: str, environ: dict[str, str]) -> Launcher:
    """Start a ``zerog.serve.job`` process for a job, its spec on stdin."""

    def launch(job: Job) -> subprocess.Popen[bytes]:
        return _start(python, BOOT, environ)

    return launch


class WarmLauncher:
    """Hands each job a spare worker process started earlier (zerog already imported,
    waiting for the job on stdin) and starts the next spare at once; ``spares`` are kept.
    A spare that died meanwhile is passed over; none ready means a fresh start, as
    :func:`launch_worker` does. :meth:`close` ends the spares (their stdin closes: a spare
    reads an empty job and exits, and is killed if it does not)."""

    def __init__(self, python: str, environ: dict[str, str], *, spares: int = 1) -> None:
        if spares < 0:
            raise ValueError("spares must be >= 0")
        self._python = python
        self._environ = environ
        self._wanted = spares
        self._lock = threading.Lock()
        self._spares: collections.deque[subprocess.Popen[bytes]] = collections.deque()
        self._closed = False

    def fill(self) -> None:
        """Start spares until ``spares`` are waiting (none once closed)."""
        with self._lock:
            while not self._closed and len(self._spares) < self._wanted:
                self._spares.append(_start(self._python, WARM_BOOT, self._environ))

    def __call__(self, job: Job) -> subprocess.Popen[bytes]:
        with self._lock:
            while self._spares:
                process = self._spares.popleft()
                if process.poll() is None:
                    break
                _discard(process)
            else:
                process = _start(self._python, WARM_BOOT, self._environ)
        self.fill()
        return process

    @property
    def waiting(self) -> tuple[int, ...]:
        """The process ids of the spares still alive and waiting."""
        with self._lock:
            return tuple(p.pid for p in self._spares if p.poll() is None)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            spares, self._spares = list(self._spares), collections.deque()
        for process in spares:
            _discard(process)


def _discard(process: subprocess.Popen[bytes]) -> None:
    """End a spare that never got a job, and reap it."""
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        _kill_group(process)
        process.wait()


class Pool:
    """Worker threads, each driving one job process at a time."""

    def __init__(
        self,
        launch: Launcher,
        *,
        workers: int = 2,
        queue_size: int = 16,
        grace: float = 10.0,
        retry_after: int = 5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if workers < 1 or queue_size < 0:
            raise ValueError("a pool needs at least one worker and a queue of size >= 0")
        self._launch = launch
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._capacity = queue_size
        self._grace = grace
        self._retry_after = retry_after
        self._clock = clock
        self._lock = threading.Lock()
        self._jobs: dict[str, Job] = {}
        self._closed = False
        self._threads = [
            threading.Thread(target=self._work, name=f"zerog-serve-worker-{n}", daemon=True)
            for n in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def workers(self) -> int:
        return len(self._threads)

    @property
    def capacity(self) -> int:
        return self._capacity

    # ---------------------------------------------------------------- the API's view

    def submit(self, job: Job) -> None:
        """Queue ``job``: :class:`Busy` if the same run or workspace is active here,
        :class:`QueueFull` when the queue is at capacity (checked under one lock, so two
        requests at once cannot both get in)."""
        with self._lock:
            if self._closed:
                raise QueueFull(self._retry_after)
            for other in self._jobs.values():
                if not other.active:
                    continue
                how = "in use" if other.id == job.id else overlap(job.workspace, other.workspace)
                if how is not None:
                    raise Busy(other, how)
            active = sum(1 for j in self._jobs.values() if j.active)
            if active >= self._capacity + len(self._threads):
                raise QueueFull(self._retry_after)
            self._jobs[job.id] = job
            self._prune()
        self._queue.put(job)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def jobs(self) -> list[Job]:
        with self._lock:
            return list(self._jobs.values())

    def cancel(self, job_id: str) -> Job | None:
        """Stop a job: drop it if queued, interrupt it if running. None if not active."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None or not job.active:
                return None
            job.cancel_requested = True
            if job.state is JobState.QUEUED:
                job.end(JobState.CANCELLED, "cancelled before it started")
                return job
            process, ready = job.process, job.ready
        if process is not None:
            self._interrupt(process, now=ready)  # not ready: sent when it is (_drive)
        return job

    def close(self, *, kill: bool = True) -> None:
        """Stop taking jobs; drop the queued ones; kill the running ones' process groups
        (``kill``: their runs stay unfinished and can be resumed) or interrupt them."""
        with self._lock:
            self._closed = True
            running = [j.process for j in self._jobs.values() if j.process is not None]
            for job in self._jobs.values():
                if job.state is JobState.QUEUED:
                    job.end(JobState.CANCELLED, "the server stopped before it started")
        for process in running:
            if process.poll() is None:
                if kill:
                    _kill_group(process)
                else:
                    self._interrupt(process, now=True)
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=self._grace + 5)

    # ---------------------------------------------------------------- workers

    def _prune(self) -> None:
        finished = [j for j in self._jobs.values() if not j.active]
        for job in finished[: max(len(finished) - KEEP_FINISHED, 0)]:
            del self._jobs[job.id]

    def _interrupt(self, process: subprocess.Popen[bytes], *, now: bool) -> None:
        """SIGINT (now, or when the worker is ready), then SIGKILL after the grace."""
        if now:
            try:
                process.send_signal(signal.SIGINT)
            except ProcessLookupError:
                return

        def reap() -> None:
            try:
                process.wait(timeout=self._grace)
            except subprocess.TimeoutExpired:
                _kill_group(process)

        threading.Thread(target=reap, name="zerog-serve-reaper", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state is not JobState.QUEUED or self._closed:
                    continue
                try:
                    job.process = self._launch(job)
                except OSError as exc:
                    job.end(JobState.FAILED, f"cannot start a worker: {exc}")
                    continue
                job.state = JobState.RUNNING
            self._drive(job, job.process)

    def _drive(self, job: Job, process: subprocess.Popen[bytes]) -> None:
        if process.stdin is None or process.stdout is None:
            raise RuntimeError("a worker process must be started with piped stdin and stdout")
        try:
            process.stdin.write(job.payload.encode())
            process.stdin.close()
        except BrokenPipeError:
            pass
        first = process.stdout.readline(MAX_OUTPUT)
        if first.strip() == READY.encode():
            with self._lock:
                job.ready = True
                held = job.cancel_requested  # a cancel came before the worker was ready
            if held:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
            first = b""
        output = first + process.stdout.read(MAX_OUTPUT)
        process.stdout.close()
        code = process.wait()
        error = _error_line(output)
        with self._lock:
            job.process = None
            if error and not (job.cancel_requested and error == "cancelled"):
                job.end(JobState.FAILED, error)
            elif code not in (0, 130) and not job.cancel_requested:
                job.end(JobState.FAILED, f"the worker process ended with {code}")
            else:
                job.end(JobState.DONE)


def _error_line(output: bytes) -> str:
    for line in output.decode("utf-8", "replace").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("error"), str):
            return one_line(data["error"], 2000)
    return ""


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
