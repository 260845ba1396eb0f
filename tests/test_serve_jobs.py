"""The worker pool with real processes: capacity, cancel of a process that ignores SIGINT,
and a worker's error line."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zerog.serve.jobs import READY, Busy, Job, JobState, Launcher, Pool, QueueFull

STUBBORN = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "sys.stdin.read()\n"
    "time.sleep(60)\n"
)
SLOW_TO_START = (  # ignores SIGINT for a while, as a worker would while starting
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "time.sleep(0.5)\n"
    "signal.signal(signal.SIGINT, signal.default_int_handler)\n"
    f"print({READY!r}, flush=True)\n"
    "sys.stdin.read()\n"
    "time.sleep(60)\n"
)
FAILING = 'import sys; sys.stdin.read(); print(\'{"error": "workspace is busy"}\'); sys.exit(2)'


def _launcher(code: str) -> Launcher:
    def launch(job: Job) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-c", code],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            start_new_session=True,
        )

    return launch


def _job(n: int, tmp_path: Path) -> Job:
    return Job(
        id=f"j{n}",
        action="run",
        payload="{}",
        workspace=tmp_path / f"ws{n}",
        goal="g",
        model="m",
        created=0.0,
    )


def _until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_process_that_ignores_sigint_is_killed_after_the_grace(tmp_path: Path) -> None:
    pool = Pool(_launcher(STUBBORN), workers=1, queue_size=1, grace=0.5)
    try:
        job = _job(1, tmp_path)
        pool.submit(job)
        _until(lambda: job.process is not None)
        process = job.process
        assert process is not None
        started = time.monotonic()
        assert pool.cancel(job.id) is job
        _until(lambda: job.state is JobState.DONE)
        assert time.monotonic() - started < 5
        assert process.poll() is not None  # really gone
        assert pool.cancel(job.id) is None  # no longer active
    finally:
        pool.close()


def test_a_cancel_before_the_worker_is_ready_is_sent_when_it_is(tmp_path: Path) -> None:
    pool = Pool(_launcher(SLOW_TO_START), workers=1, queue_size=1, grace=30.0)
    try:
        job = _job(1, tmp_path)
        pool.submit(job)
        _until(lambda: job.process is not None)
        started = time.monotonic()
        assert pool.cancel(job.id) is job  # while it still ignores SIGINT
        assert not job.ready
        _until(lambda: job.state is JobState.DONE, timeout=20)
        assert job.ready
        assert time.monotonic() - started < 10  # the held SIGINT, not the 30 s grace
    finally:
        pool.close()


def test_capacity_conflicts_and_error_lines(tmp_path: Path) -> None:
    pool = Pool(_launcher(FAILING), workers=1, queue_size=0, grace=0.5)
    try:
        first = _job(1, tmp_path)
        pool.submit(first)
        same_workspace = _job(2, tmp_path)
        same_workspace.workspace = first.workspace
        if first.active:
            with pytest.raises(Busy):
                pool.submit(same_workspace)
        _until(lambda: not first.active)
        assert first.state is JobState.FAILED
        assert first.error == "workspace is busy"
        pool.submit(_job(3, tmp_path))
    finally:
        pool.close()
    with pytest.raises(QueueFull):
        pool.submit(_job(4, tmp_path))  # a closed pool takes nothing
