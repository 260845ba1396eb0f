"""Crash safety: real processes killed with SIGKILL, then resumed with `zerog resume`.

Every resumed run must end in the same workspace and verdict as an uninterrupted run, with
no action lost and none run twice (an interrupted action may be retried once, visibly).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from zerog.bench.crash import (
    LOG_VAR,
    RUN_ID,
    Launcher,
    check_chain,
    goal,
    measure,
    prepare,
)
from zerog.engine.loop import Engine
from zerog.events import Event
from zerog.journal import COMMIT_KINDS
from zerog.models.scripted import ScriptedModel
from zerog.store import Store

pytestmark = pytest.mark.slow  # kills, crashes and resumes runs in processes of their own

HERE = Path(__file__).resolve().parent


def _env(root: Path) -> dict[str, str]:
    return {
        **os.environ,
        LOG_VAR: str(root / "side-effects.log"),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }


def _resume(root: Path, store: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerog", "resume", RUN_ID, "--store", str(store), "--quiet"],
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _check_outcome(root: Path, store_path: Path) -> None:
    outcome = check_chain(root, store_path)
    assert outcome.lost == [], "an action was lost"
    assert outcome.duplicated == [], "an action ran twice without a recorded retry"
    assert not outcome.wrong_state, "the final workspace or status differs"
    with Store(store_path) as store:
        seqs = [e.seq for e in store.events(RUN_ID)]
    assert seqs == list(range(1, len(seqs) + 1)), "events lost, reordered or duplicated"


def test_an_uninterrupted_run_matches_the_expected_outcome(tmp_path: Path) -> None:
    workspace, script, log = prepare(tmp_path)
    with Store(tmp_path / "runs.db") as store:
        environ = {"PATH": os.environ["PATH"], LOG_VAR: str(log)}
        result = Engine(
            ScriptedModel.from_file(script),
            store=store,
            environ=environ,
            write_trace=False,
            sandbox_name="local",
        ).run(goal(workspace), run_id=RUN_ID)
    assert result.ok, result.reason
    assert result.iterations == 3
    _check_outcome(tmp_path, tmp_path / "runs.db")


class DurableProbe:
    """A sink after the store's: as each event is emitted, how many of the run's events a
    second connection to the store file sees."""

    def __init__(self, path: Path) -> None:
        self.db = sqlite3.connect(path)
        self.seen: list[tuple[Event, int]] = []

    def emit(self, event: Event) -> None:
        row = self.db.execute("SELECT COUNT(*) FROM events WHERE run_id = ?", (event.run_id,))
        self.seen.append((event, int(row.fetchone()[0])))


def test_events_between_commit_points_are_written_together(tmp_path: Path) -> None:
    workspace, script, log = prepare(tmp_path)
    path = tmp_path / "runs.db"
    with Store(path) as store:
        probe = DurableProbe(path)
        result = Engine(
            ScriptedModel.from_file(script),
            store=store,
            environ={"PATH": os.environ["PATH"], LOG_VAR: str(log)},
            write_trace=False,
            sandbox_name="local",
            sinks=[probe],
        ).run(goal(workspace), run_id=RUN_ID)
        commits, syncs = store.commits, store.syncs
    probe.db.close()
    assert result.ok, result.reason
    # A commit kind is in the file, with every event before it, when the next sink sees
    # it: an action is recorded before it runs, a result as soon as it is known.
    late = [e.kind for e, durable in probe.seen if e.kind in COMMIT_KINDS and durable != e.seq]
    assert late == []
    # The others wait for the next commit point.
    waiting = {e.kind for e, durable in probe.seen if durable < e.seq}
    assert {"run_started", "iteration_started", "plan", "step_started", "check"} <= waiting
    assert {"step_done", "step_failed", "feedback"} <= waiting
    # Every commit is one the probe saw happen, one per commit kind (fewer than the
    # events); none is an fsync.
    assert len({durable for _, durable in probe.seen} - {0}) == commits
    assert commits == sum(1 for e, _ in probe.seen if e.kind in COMMIT_KINDS)
    assert commits < len(probe.seen) - 15, (commits, len(probe.seen))
    assert syncs == 0
    _check_outcome(tmp_path, path)


class Fails:
    """A sink that raises an ordinary error at the first event of a kind."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def emit(self, event: Event) -> None:
        if event.kind == self.kind:
            raise RuntimeError(f"failed at event {event.seq}")


def test_a_run_that_ends_in_an_error_still_writes_what_it_held(tmp_path: Path) -> None:
    workspace, script, log = prepare(tmp_path)
    path = tmp_path / "runs.db"
    with Store(path) as store:
        engine = Engine(
            ScriptedModel.from_file(script),
            store=store,
            environ={"PATH": os.environ["PATH"], LOG_VAR: str(log)},
            write_trace=False,
            sandbox_name="local",
            sinks=[Fails("step_started")],  # not a commit kind: it waits for the next one
        )
        with pytest.raises(RuntimeError, match="failed at event") as raised:
            engine.run(goal(workspace), run_id=RUN_ID)
        events = store.events(RUN_ID)
    assert events[-1].kind == "step_started"
    assert f"failed at event {events[-1].seq}" in str(raised.value)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


FAULTS = [
    *(
        ("after", kind, nth)
        for kind, nth in [
            ("run_started", 1),
            ("snapshot", 1),
            ("iteration_started", 1),
            ("iteration_started", 3),
            ("model_call", 1),
            ("model_call", 2),
            ("model_call", 4),
            ("plan", 2),
            ("step_started", 2),
            ("action", 1),
            ("action", 3),
            ("action", 7),
            ("observation", 1),
            ("observation", 4),
            ("observation", 7),
            ("step_check", 1),
            ("validation_started", 1),  # the preflight's sweep
            ("verdict", 1),
            ("preflight", 1),
            ("check", 1),
            ("check", 2),
            ("verdict", 2),
            ("rollback", 1),
            ("rollback", 2),
            ("feedback", 1),
            ("step_failed", 1),
            ("step_done", 1),
        ]
    ),
    *(
        ("during", kind, nth)
        for kind, nth in [
            ("model_call", 2),
            ("action", 3),
            ("observation", 4),
            ("rollback", 1),
            ("check", 1),
            ("verdict", 1),
            ("preflight", 1),
            ("iteration_started", 2),
            ("step_done", 2),
        ]
    ),
    # Between two commit boundaries: the events since the last one die with the process.
    *(
        ("emitted", kind, nth)
        for kind, nth in [
            ("run_started", 1),
            ("iteration_started", 1),
            ("iteration_started", 3),
            ("plan", 2),
            ("step_started", 2),
            ("check", 1),
            ("check", 2),
            ("feedback", 1),
            ("step_failed", 1),
            ("step_done", 1),
            ("step_done", 3),
        ]
    ),
]


@pytest.mark.parametrize(("mode", "kind", "nth"), FAULTS)
def test_kill_at_fault_point_then_resume(tmp_path: Path, mode: str, kind: str, nth: int) -> None:
    prepare(tmp_path)
    store = tmp_path / "runs.db"
    crashed = subprocess.run(
        [
            sys.executable,
            str(HERE / "crash_runner.py"),
            str(store),
            str(tmp_path),
            RUN_ID,
            kind,
            str(nth),
            mode,
        ],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    resumed = _resume(tmp_path, store)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    _check_outcome(tmp_path, store)


@pytest.mark.timeout(900)
def test_random_kills_of_real_zerog_processes() -> None:
    """100 SIGKILLs at random moments of `zerog run` and `zerog resume` processes (the
    short version of `zerog bench crash`)."""
    report = measure(kills=100, jobs=2, seed=20261126, cost_runs=2)
    assert report.kills >= 100
    assert report.chains >= 2
    assert (report.lost, report.duplicated, report.wrong_state) == (0, 0, 0)
    before, now = report.costs[0], report.costs[1]  # the ways (timings: zerog bench crash)
    assert (before.commits_per_event, before.syncs_per_event) == (1.0, 1.0)
    assert now.commits_per_event < 0.8
    assert now.syncs_per_event == 0


@pytest.mark.parametrize("fork", [True, False])
def test_the_bench_starts_the_real_command_line(tmp_path: Path, fork: bool) -> None:
    output = tmp_path / "out.txt"
    proc = Launcher(fork).run(["version"], dict(os.environ), output)
    assert proc.wait(120) == 0
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*\n", output.read_text())
    slow = Launcher(fork).run(["run", "x", "-w", str(tmp_path / "none")], {}, output)
    slow.kill()
    assert slow.wait(120) == -signal.SIGKILL


def test_resume_of_a_finished_run_is_refused(tmp_path: Path) -> None:
    prepare(tmp_path)
    store = tmp_path / "runs.db"
    runner = [
        sys.executable,
        str(HERE / "crash_runner.py"),
        str(store),
        str(tmp_path),
        RUN_ID,
        "none",
        "1",
        "after",
    ]
    assert subprocess.run(runner, env=_env(tmp_path), check=False, timeout=120).returncode == 0
    again = _resume(tmp_path, store)
    assert again.returncode == 2
    assert "already finished" in again.stderr


def test_replay_reports_no_divergence_then_a_divergence(tmp_path: Path) -> None:
    workspace, script, log = prepare(tmp_path)
    store_path = tmp_path / "runs.db"
    with Store(store_path) as store:
        environ = {"PATH": os.environ["PATH"], LOG_VAR: str(log)}
        result = Engine(
            ScriptedModel.from_file(script),
            store=store,
            environ=environ,
            write_trace=False,
            sandbox_name="local",
        ).run(goal(workspace), run_id=RUN_ID)
    assert result.ok
    env = _env(tmp_path)
    same = subprocess.run(
        [sys.executable, "-m", "zerog", "replay", RUN_ID, "--store", str(store_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert same.returncode == 0, same.stdout + same.stderr
    assert "0 divergences" in same.stdout
    # Without the log variable the marking actions fail: the replay must say where.
    env.pop(LOG_VAR)
    broken = subprocess.run(
        [sys.executable, "-m", "zerog", "replay", RUN_ID, "--store", str(store_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert broken.returncode == 1
    assert re.search(
        r"iteration 1 step 1 action 2: recorded success \(exit 0\), replayed "
        r"error",
        broken.stdout,
    ), broken.stdout


def test_show_and_runs_tell_the_story(tmp_path: Path) -> None:
    workspace, script, log = prepare(tmp_path)
    store_path = tmp_path / "runs.db"
    with Store(store_path) as store:
        environ = {"PATH": os.environ["PATH"], LOG_VAR: str(log)}
        Engine(
            ScriptedModel.from_file(script),
            store=store,
            environ=environ,
            write_trace=False,
            sandbox_name="local",
        ).run(goal(workspace), run_id=RUN_ID)
    env = {**os.environ, "COLUMNS": "200"}
    listed = subprocess.run(
        [sys.executable, "-m", "zerog", "runs", "--store", str(store_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert RUN_ID in listed.stdout
    assert "success" in listed.stdout
    shown = subprocess.run(
        [sys.executable, "-m", "zerog", "show", "crash", "--store", str(store_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    for text in ("iteration 3", "rolled back", "step check", "success"):
        assert text in shown.stdout
    exported = subprocess.run(
        [sys.executable, "-m", "zerog", "export", RUN_ID, "--store", str(store_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    lines = exported.stdout.splitlines()
    assert lines[0].startswith('{"run_id":"crashrun","seq":1,')
    assert '"kind":"run_finished"' in lines[-1]
