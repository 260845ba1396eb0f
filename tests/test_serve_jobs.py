"""The worker pool with real processes: capacity, cancel of a process that ignores SIGINT,
and a worker's error line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from zerog.serve.jobs import READY, Busy, Job, JobState, Launcher, Pool, QueueFull, WarmLauncher

pytestmark = pytest.mark.slow  # starts warm worker processes

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


def _read_all(process: subprocess.Popen[bytes], payload: bytes) -> list[str]:
    out, _ = process.communicate(payload, timeout=60)
    return out.decode().splitlines()


def test_a_warm_launcher_gives_each_job_a_spare_of_its_own(tmp_path: Path) -> None:
    launcher = WarmLauncher(sys.executable, dict(os.environ), spares=1)
    try:
        launcher.fill()
        (first_spare,) = launcher.waiting
        one = launcher(_job(1, tmp_path))
        assert one.pid == first_spare
        (second_spare,) = launcher.waiting  # the next one is started at once
        two = launcher(_job(2, tmp_path))
        assert two.pid == second_spare != one.pid
        # Each is a real zerog.serve.job worker: it says it is ready, then reads its job.
        for process in (one, two):
            lines = _read_all(process, b"{}")
            assert lines[0] == READY
            assert "invalid" in json.loads(lines[1])["error"]
            assert process.returncode == 2
    finally:
        launcher.close()


def test_a_dead_spare_is_passed_over_and_close_ends_the_rest(tmp_path: Path) -> None:
    launcher = WarmLauncher(sys.executable, dict(os.environ), spares=2)
    launcher.fill()
    dead, alive = launcher.waiting
    os.kill(dead, signal.SIGKILL)
    _until(lambda: dead not in launcher.waiting)
    process = launcher(_job(1, tmp_path))
    assert process.pid == alive
    spares = launcher.waiting
    assert len(spares) == 2
    assert alive not in spares
    launcher.close()
    assert launcher.waiting == ()
    assert all(not Path(f"/proc/{pid}").exists() for pid in spares)
    assert launcher(_job(2, tmp_path)).pid not in spares  # closed: a fresh start
    assert launcher.waiting == ()
    process.kill()
    process.wait()
