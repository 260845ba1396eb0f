"""Batches: many goals in real worker processes (a spawn pool, and Ray), workers killed
with SIGKILL in the middle of a goal, the shared budget held across processes, and an
interrupted `zerog batch` resumed by running it again."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.batch.goals import read_goals
from zerog.batch.ledger import BatchLedger, SharedBudget
from zerog.batch.runner import BatchReport
from zerog.bench.batch import LOG_VAR, Workload, check_side_effects, prepare, run_workload
from zerog.budget import BudgetExhausted
from zerog.errors import ConfigError
from zerog.store import Store
from zerog.types import RunStatus, Usage

pytestmark = pytest.mark.slow  # runs batches in worker processes


@pytest.fixture(scope="session")
def ray_session() -> Iterator[None]:
    """One small local Ray for every test that needs it (its start-up is slow)."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _run(
    workload: Workload, store: Path, monkeypatch: pytest.MonkeyPatch, **kw: object
) -> BatchReport:
    monkeypatch.setenv(LOG_VAR, str(workload.log))
    return run_workload(workload, store_path=store, **kw)  # type: ignore[arg-type]


def _assert_clean(workload: Workload, report: BatchReport, store: Path, goals: int) -> None:
    assert len(report.outcomes) == goals
    assert report.counts() == {"success": goals}, [
        o.reason for o in report.outcomes if o.status != "success"
    ]
    effects = check_side_effects(workload, report, store)
    assert effects.lost == [], "a goal's action never ran"
    assert effects.duplicated == [], "an action ran twice without a recorded retry"
    for outcome in report.outcomes:
        if outcome.index in workload.killed:
            assert outcome.attempts >= 2, f"goal {outcome.index}'s worker was not killed"
            assert outcome.resumed
    assert effects.retries >= len(workload.killed)  # each kill interrupted an action
    with Store(store) as opened:
        for outcome in report.outcomes:
            seqs = [e.seq for e in opened.events(outcome.run_id)]
            assert seqs == list(range(1, len(seqs) + 1)), "events lost or duplicated"
            assert opened.find(outcome.run_id).status == "success"
    lines = report.results_path.read_text().splitlines()
    assert [json.loads(line)["goal"] for line in lines] == list(range(1, goals + 1))


def test_local_pool_survives_killed_workers_without_duplicating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workload = prepare(tmp_path, goals=50, kill_every=10)
    store = tmp_path / "runs.db"
    report = _run(workload, store, monkeypatch, executor="local", jobs=2)
    _assert_clean(workload, report, store, 50)
    assert len({o.pid for o in report.outcomes}) >= 2  # more than one worker process
    # Running the batch again redoes nothing.
    before = workload.log.read_text()
    again = _run(workload, store, monkeypatch, executor="local", jobs=2)
    assert (again.ran, again.skipped, again.resumed) == (0, 50, True)
    assert workload.log.read_text() == before


def test_ray_tasks_survive_killed_workers_without_duplicating(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ray_session: None
) -> None:
    workload = prepare(tmp_path, goals=50, kill_every=10)
    store = tmp_path / "runs.db"
    report = _run(workload, store, monkeypatch, executor="ray", jobs=2)
    _assert_clean(workload, report, store, 50)


def test_shared_budget_is_held_across_worker_processes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every goal makes one model call of exactly 100 input tokens.
    workload = prepare(tmp_path, goals=10, usage={"input_tokens": 100, "output_tokens": 10})
    store = tmp_path / "runs.db"
    shared = SharedBudget(max_input_tokens=350)
    report = _run(workload, store, monkeypatch, executor="local", jobs=2, shared=shared)
    succeeded = [o for o in report.outcomes if o.status == "success"]
    stopped = [o for o in report.outcomes if o.status != "success"]
    # Calls start while the batch is under 350: 4 in sequence; a second worker may start
    # one more at the same moment, never more.
    assert 4 <= len(succeeded) <= 5
    assert all(o.status == RunStatus.MAX_INPUT_TOKENS.value for o in stopped)
    assert all("shared budget of 350 input tokens" in o.reason for o in stopped)
    assert all(o.input_tokens == 0 for o in stopped)
    # The account shared by the processes lost no update: it equals the runs' own sums.
    assert report.spend.input_tokens == 100 * len(succeeded) == report.spend.calls * 100
    with Store(store) as opened:
        assert sum(opened.find(o.run_id).input_tokens for o in report.outcomes) == 100 * len(
            succeeded
        )


def test_output_tokens_are_reserved_before_a_call(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        ledger = BatchLedger(store, "b")
        ledger.open({"digest": "x"}, SharedBudget(max_output_tokens=100), {1: "b-1", 2: "b-2"}, 0)
        assert ledger.reserve("b-1", 80) == 80
        assert ledger.reserve("b-2", 80) == 20  # what the call in flight left
        ledger.charge("b-1", Usage(input_tokens=5, output_tokens=70), 0.0)
        assert ledger.reserve("b-1", 80) == 10  # b-2 still holds 20
        ledger.charge("b-2", Usage(output_tokens=20), 0.0)
        ledger.charge("b-1", Usage(output_tokens=10), 0.0)
        with pytest.raises(BudgetExhausted, match="100 output tokens is spent"):
            ledger.reserve("b-2", 1)
        assert ledger.spend().output_tokens == 100
        assert ledger.spend().reserved_output == 0
        # Another goals file cannot take over this batch id.
        with pytest.raises(ConfigError, match="other goals"):
            ledger.open({"digest": "y"}, SharedBudget(), {}, 0)


def test_goals_file_errors_name_the_line(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    path = tmp_path / "goals.jsonl"
    good = {"text": "t", "workspace": "ws", "checks": ["true"]}
    cases = [
        ("{not json", "goals.jsonl:2: not JSON"),
        ('["a"]', "goals.jsonl:2: each line must be a JSON object"),
        (json.dumps({"text": "t", "checks": ["true"]}), "goals.jsonl:2: workspace: missing"),
        (json.dumps({**good, "colour": "red"}), "goals.jsonl:2: colour: not a known field"),
        (json.dumps({**good, "workspace": "nope"}), "goals.jsonl:2: workspace: "),
        (json.dumps({**good, "checks": []}), "goals.jsonl:2: checks: missing"),
    ]
    for line, message in cases:
        path.write_text(json.dumps(good) + "\n" + line + "\n")
        with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
            read_goals(path)
    path.write_text("# only a comment\n\n")
    with pytest.raises(ConfigError, match="has no goals"):
        read_goals(path)
    path.write_text(json.dumps({**good, "budget": {"max_iterations": 3}}) + "\n" + json.dumps(good))
    first, second = read_goals(path, {"max_iterations": 7, "max_seconds": 30}).goals
    assert (first.goal.budget.max_iterations, second.goal.budget.max_iterations) == (3, 7)
    assert first.goal.budget.max_seconds == 30


def batch_argv(goals: Path, model: str, store: Path, out: Path, *extra: str) -> list[str]:
    """`zerog batch` of ``goals`` with ``model`` in the local sandbox."""
    return [
        sys.executable,
        "-m",
        "zerog",
        "batch",
        str(goals),
        "-m",
        model,
        "--sandbox",
        "local",
        "--store",
        str(store),
        "--out",
        str(out),
        *extra,
    ]


def _batch_state(store: Path, batch_id: str) -> int:
    if not store.exists():
        return 0
    with Store(store) as opened:
        return sum(1 for row in BatchLedger(opened, batch_id).goals() if row.state == "done")


def test_killed_zerog_batch_resumes_when_run_again(tmp_path: Path) -> None:
    workload = prepare(tmp_path, goals=16)
    store = tmp_path / "runs.db"
    argv = batch_argv(
        workload.goals_file,
        workload.model(),
        store,
        tmp_path / "out",
        "--batch-id",
        "nightly",
        "--jobs",
        "2",
    )
    env = {**os.environ, LOG_VAR: str(workload.log)}
    first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _batch_state(store, "nightly") < 4 and first.poll() is None:
        assert time.monotonic() < deadline, "the batch made no progress"
        time.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # the coordinator; its workers die with it
    first.wait()
    done = _batch_state(store, "nightly")
    assert 4 <= done < 16
    second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stderr
    assert "16: 16 success" in second.stdout
    with Store(store) as opened:
        rows = BatchLedger(opened, "nightly").goals()
    report_lines = (tmp_path / "out" / "results.jsonl").read_text().splitlines()
    assert len(report_lines) == 16
    assert all(r.state == "done" for r in rows)
    ran = workload.log.read_text().split("\n")
    counts: dict[str, int] = {}
    for line in filter(None, ran):
        counts[line] = counts.get(line, 0) + 1
    with Store(store) as opened:
        retried = sum(
            1 for r in rows for e in opened.events(r.run_id) if e.kind == "action_retried"
        )
    extra = sum(n - 1 for n in counts.values())
    assert len(counts) == 32  # two tags for each of the 16 goals: none lost
    assert extra <= retried  # a repeat only where the store records a retry


def test_bad_input_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "goals.jsonl").write_text("{oops\n")
    result = subprocess.run(
        [sys.executable, "-m", "zerog", "batch", str(tmp_path / "goals.jsonl"), "-m", "scripted:x"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "400"},  # one line, however long the temporary path
    )
    assert result.returncode == 2
    assert "goals.jsonl:1: not JSON" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_batch_runs_each_goal_with_the_cascade(tmp_path: Path) -> None:
    stub = 'def double(x):\n    """Twice x."""\n'
    goals = []
    for n in range(3):
        workspace = tmp_path / f"w{n}"
        workspace.mkdir()
        (workspace / "calc.py").write_text(stub, encoding="utf-8")
        check = "python3 -c 'import calc; assert calc.double(21) == 42'"
        goals.append({"text": "Implement double()", "workspace": str(workspace), "checks": [check]})
    (tmp_path / "goals.jsonl").write_text("\n".join(json.dumps(g) for g in goals) + "\n")
    small = tmp_path / "small.jsonl"
    small.write_text(json.dumps({"text": "```python\ndef double(x):\n    return x\n```"}) + "\n")
    big = tmp_path / "big.jsonl"
    big.write_text(json.dumps({"text": "```python\ndef double(x):\n    return 2 * x\n```"}) + "\n")
    store = tmp_path / "runs.db"
    argv = batch_argv(
        tmp_path / "goals.jsonl",
        f"scripted:{small}",
        store,
        tmp_path / "out",
        "--answer-file",
        "calc.py",
        "--escalate",
        f"scripted:{big}",
        "--json",
    )
    done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["counts"] == {"success": 3}
    outcomes = [json.loads(line) for line in Path(report["results"]).read_text().splitlines()]
    assert len(outcomes) == 3
    with Store(store) as opened:
        for outcome in outcomes:
            assert outcome["iterations"] == 2
            events = opened.events(outcome["run_id"])
            calls = [e.data.get("model") for e in events if e.kind == "model_call"]
            assert len(calls) == 2
            assert "small.jsonl" in str(calls[0])  # the first model, then the one escalated to
            assert "big.jsonl" in str(calls[1])
            spec = opened.find(outcome["run_id"]).spec
            assert spec["escalate"] == [f"scripted:{big}"]
            assert spec["answer_file"] == "calc.py"
    # Options that need a model to escalate to are refused up front.
    lone = batch_argv(
        tmp_path / "goals.jsonl", "scripted:x", store, tmp_path / "o", "--unsure-tokens", "3"
    )
    refused = subprocess.run(lone, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2
    assert "needs a model to escalate to" in refused.stderr


def test_a_batch_routes_predictable_steps_without_the_model(tmp_path: Path) -> None:
    goals = []
    for n in range(2):
        workspace = tmp_path / f"w{n}"
        workspace.mkdir()
        (workspace / "notes.txt").write_text(f"notes {n}\n", encoding="utf-8")
        # The check passes from the start: without the preflight the step still runs.
        goals.append(
            {
                "text": "Show the notes",
                "workspace": str(workspace),
                "checks": ["true"],
                "preflight": False,
            }
        )
    (tmp_path / "goals.jsonl").write_text("\n".join(json.dumps(g) for g in goals) + "\n")
    step = {"intent": "Show the notes", "op": "read_file", "target": "notes.txt"}
    plan = {"purpose": "plan", "json": {"steps": [step]}}  # no actions: the worker's job
    script = tmp_path / "plan.jsonl"
    script.write_text(json.dumps(plan) + "\n")
    store = tmp_path / "runs.db"

    def batch(router: str) -> subprocess.CompletedProcess[str]:
        argv = batch_argv(
            tmp_path / "goals.jsonl",
            f"scripted:{script}",
            store,
            tmp_path / f"out-{router}",
            "--router",
            router,
            "--batch-id",
            f"notes-{router}",
            "--json",
        )
        return subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)

    routed = batch("builtin")  # the default, as for `zerog run`
    assert routed.returncode == 0, routed.stderr
    assert json.loads(routed.stdout)["counts"] == {"success": 2}
    with Store(store) as opened:
        run_id = "notes-builtin-g0001"
        decisions = [e.data["decision"] for e in opened.events(run_id) if e.kind == "route"]
        assert decisions == ["routed"]
        assert opened.find(run_id).spec["router"] == "builtin"
    unrouted = batch("off")  # the worker asks the model, whose script has no answer
    assert unrouted.returncode == 1
    assert json.loads(unrouted.stdout)["counts"] == {"model_error": 2}
    bad = batch("magic")
    assert bad.returncode == 2
    assert "unknown router 'magic'" in bad.stderr
