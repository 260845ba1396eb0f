"""Crash safety: real processes killed with SIGKILL, then resumed with `zerog resume`.

Every resumed run must end in the same workspace and verdict as an uninterrupted run, with
no action lost and none run twice (an interrupted action may be retried once, visibly).
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import random
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from durable_support import LOG_VAR, goal, prepare, workspace_files
from zerog.loop import Engine
from zerog.models.scripted import ScriptedModel
from zerog.store import Store

HERE = Path(__file__).resolve().parent
RUN_ID = "crashrun"


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


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, str], list[str]]:
    """The uninterrupted run: final files and the side-effect log."""
    root = tmp_path_factory.mktemp("reference")
    workspace, script, log = prepare(root)
    with Store(root / "runs.db") as store:
        environ = {"PATH": os.environ["PATH"], LOG_VAR: str(log)}
        result = Engine(
            ScriptedModel.from_file(script), store=store, environ=environ, write_trace=False
        ).run(goal(workspace))
    assert result.ok, result.reason
    assert result.iterations == 3
    return workspace_files(workspace), log.read_text().split()


def _check_outcome(
    root: Path, store_path: Path, reference: tuple[dict[str, str], list[str]]
) -> None:
    files, tags = reference
    assert workspace_files(root / "ws") == files
    with Store(store_path) as store:
        row = store.find(RUN_ID)
        events = store.events(RUN_ID)
    assert row.status == "success", row.reason
    retried = collections.Counter(
        f"i{e.data['iteration']}s{int(str(e.data['step'])) + 1}a{int(str(e.data['index'])) + 1}"
        for e in events
        if e.kind == "action_retried"
    )
    ran = collections.Counter((root / "side-effects.log").read_text().split())
    assert set(ran) == set(tags), "an action was lost"
    for tag, count in ran.items():
        assert count <= 1 + retried[tag], f"{tag} ran {count} times, retried {retried[tag]}"
    seqs = [e.seq for e in events]
    assert seqs == sorted(set(seqs)), "events out of order or duplicated"


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
            ("validation_started", 1),
            ("check", 1),
            ("check", 3),
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
            ("iteration_started", 2),
            ("step_done", 2),
        ]
    ),
]


@pytest.mark.parametrize(("mode", "kind", "nth"), FAULTS)
def test_kill_at_fault_point_then_resume(
    tmp_path: Path, reference: tuple[dict[str, str], list[str]], mode: str, kind: str, nth: int
) -> None:
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
    _check_outcome(tmp_path, store, reference)


def _kill_chains(
    root: Path, seed: int, target: int, reference: tuple[dict[str, str], list[str]]
) -> int:
    """Start runs and kill them (and their resumes) at random moments until ``target``
    kills; every chain of kills must still end in the reference outcome."""
    rng = random.Random(seed)
    kills = chains = 0
    while kills < target:
        chains += 1
        chain = root / f"chain{chains}"
        _, script, _ = prepare(chain)
        store = chain / "runs.db"
        argv = [
            sys.executable,
            "-m",
            "zerog",
            "run",
            "create done.txt",
            "-w",
            str(chain / "ws"),
            "-c",
            "test -f done.txt && grep -q final a.txt",
            "-m",
            f"scripted:{script}",
            "--env",
            LOG_VAR,
            "--store",
            str(store),
            "--run-id",
            RUN_ID,
            "--quiet",
        ]
        while True:
            proc = subprocess.Popen(
                argv, env=_env(chain), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
            )
            try:
                proc.wait(timeout=rng.uniform(0.15, 1.0))
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                kills += 1
                state = _run_state(store)
                if state is None:
                    continue  # killed before the run existed: start it again, as a user would
                if state != "running":
                    break  # killed after the run finished, on its way out
                argv = [
                    sys.executable,
                    "-m",
                    "zerog",
                    "resume",
                    RUN_ID,
                    "--store",
                    str(store),
                    "--quiet",
                ]
                continue
            assert proc.returncode == 0, proc.stderr.read() if proc.stderr else ""
            break
        _check_outcome(chain, store, reference)
    return kills


def test_random_kills_of_real_zerog_processes(
    tmp_path: Path, reference: tuple[dict[str, str], list[str]]
) -> None:
    """100 SIGKILLs at random moments of `zerog run` and `zerog resume` processes, in two
    parallel chains."""
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = [
            pool.submit(_kill_chains, tmp_path / f"lane{n}", 20261126 + n, 50, reference)
            for n in range(2)
        ]
        kills = sum(f.result() for f in futures)
    assert kills >= 100


def _run_state(store: Path) -> str | None:
    """The recorded status of the run, or None if it never got going."""
    if not store.exists():
        return None
    with Store(store) as opened:
        if not opened.runs() or not opened.events(RUN_ID):
            return None
        return opened.find(RUN_ID).status


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
            ScriptedModel.from_file(script), store=store, environ=environ, write_trace=False
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
            ScriptedModel.from_file(script), store=store, environ=environ, write_trace=False
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
