"""The preflight in the engine: the checks once on the untouched workspace, before the
first model call; real sandboxes (every backend), real files, a scripted model."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from builders import (
    ANSWER_CHECK,
    ANSWER_FIX,
    EngineFactory,
    goal,
    plan,
    scripted,
    shell,
    step,
    write,
)
from zerog import Budget, Goal, RunStatus
from zerog.events import Event
from zerog.replay import replay_run
from zerog.store import Store
from zerog.trace import read_trace
from zerog.types import CommandCheck, FileCheck

# Every test of the preflight runs on every sandbox backend (the ``engine`` fixture's).
pytestmark = pytest.mark.usefixtures("backend")


def kinds(path: Path | None) -> list[str]:
    assert path is not None
    return [str(e["kind"]) for e in read_trace(path)]


def test_checks_that_already_pass_end_the_run_without_a_model_call(
    workspace: Path, engine: EngineFactory
) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert result.reason == "nothing to do: the checks already pass"
    assert (result.iterations, result.usage.input_tokens, result.usage.output_tokens) == (0, 0, 0)
    assert model.requests == []
    assert result.verdict is not None
    assert result.verdict.passed
    assert result.files is not None
    assert result.files.total == 0
    events = read_trace(result.trace_path or Path())
    assert next(e for e in events if e["kind"] == "preflight")["outcome"] == "passed"
    finished = events[-1]
    assert finished["kind"] == "run_finished"
    assert finished["reason"] == "nothing to do: the checks already pass"
    assert "iteration_started" not in [e["kind"] for e in events]


def test_a_check_that_cannot_run_ends_the_run_without_a_model_call(
    workspace: Path, engine: EngineFactory
) -> None:
    (workspace / "test_app.py").write_text("import absent_dependency_q7\n")
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    result = engine(model).run(goal(workspace, "python3 -m unittest -q"))
    assert result.status is RunStatus.CANNOT_RUN
    assert model.requests == []
    assert result.iterations == 0
    [refusal] = result.cannot_run
    assert refusal.check == "python3 -m unittest -q"
    assert "No module named 'absent_dependency_q7'" in refusal.cause
    assert "cannot import absent_dependency_q7" in refusal.fix
    assert result.reason.startswith("the checks cannot run: `python3 -m unittest -q`: ")
    finished = read_trace(result.trace_path or Path())[-1]
    assert finished["status"] == "cannot_run"
    assert finished["cannot_run"] == [refusal.model_dump(mode="json")]
    assert not result.ok


def test_the_preflight_failure_is_the_first_plans_feedback(
    workspace: Path, engine: EngineFactory
) -> None:
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 1
    prompt = model.requests[0].messages[-1].content
    assert "# How the checks fail now (before any change)" in prompt
    assert "AssertionError" in prompt
    assert "Earlier attempts" not in prompt
    # One sweep before the first model call (the preflight's), none after it until the
    # plan was carried out: the checks are not run twice for the same workspace.
    story = kinds(result.trace_path)
    first_call = story.index("model_call")
    assert story[:first_call].count("validation_started") == 1
    assert story[first_call:].count("validation_started") == 1
    assert story.index("preflight") < first_call


def test_only_the_first_plan_sees_the_preflight(workspace: Path, engine: EngineFactory) -> None:
    wrong = plan(step("wrong fix", write("app.py", "def answer():\n    return 40\n")))
    model = scripted(wrong, plan(step("right fix", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert "How the checks fail now" in model.requests[0].messages[-1].content
    replan = model.requests[1].messages[-1].content
    assert "How the checks fail now" not in replan
    assert "Earlier attempts" in replan


def test_what_the_checks_wrote_is_rolled_back_before_the_first_plan(
    workspace: Path, engine: EngineFactory
) -> None:
    check = f"touch made-by-the-check && {ANSWER_CHECK}"
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    result = engine(model).run(goal(workspace, check))
    assert result.status is RunStatus.SUCCESS
    prompt = model.requests[0].messages[-1].content
    assert "Workspace files (1 listed)" in prompt
    assert "- made-by-the-check (" not in prompt
    rollbacks = [e for e in read_trace(result.trace_path or Path()) if e["kind"] == "rollback"]
    assert rollbacks[0]["iteration"] == 0
    assert rollbacks[0]["removed"] == 1


def test_a_passing_preflight_leaves_the_workspace_as_it_was(
    workspace: Path, engine: EngineFactory
) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    result = engine(scripted()).run(goal(workspace, f"touch made-by-the-check && {ANSWER_CHECK}"))
    assert result.reason == "nothing to do: the checks already pass"
    assert not (workspace / "made-by-the-check").exists()
    assert result.files is not None
    assert result.files.total == 0


def test_no_preflight_asks_the_model_first(workspace: Path, engine: EngineFactory) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    model = scripted(plan(step("look", shell("true"))))
    result = engine(model).run(goal(workspace, preflight=False))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 1
    assert len(model.requests) == 1
    story = kinds(result.trace_path)
    assert "preflight" not in story
    assert story.index("model_call") < story.index("validation_started")


@pytest.mark.slow
def test_the_preflight_counts_toward_wall_time_not_iterations(
    workspace: Path, engine: EngineFactory
) -> None:
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    slow = "sleep 30"
    result = engine(model).run(goal(workspace, slow, budget=Budget(max_seconds=1.5)))
    assert result.status is RunStatus.MAX_TIME
    assert result.iterations == 0
    assert model.requests == []


def test_only_checks_that_run_a_command_are_judged(workspace: Path, engine: EngineFactory) -> None:
    """A file check that fails is the goal's business, never 'cannot run'."""
    model = scripted(plan(step("write it", write("done.txt", "ok\n"))))
    result = engine(model).run(
        Goal(text="write done.txt", workspace=workspace, checks=(FileCheck(path="done.txt"),))
    )
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 1


def test_a_command_missing_from_the_sandbox(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    result = engine(model).run(goal(workspace, "absent-tool-q7 --check ."))
    assert result.status is RunStatus.CANNOT_RUN
    assert model.requests == []
    [refusal] = result.cannot_run
    assert "absent-tool-q7" in refusal.cause
    assert "not found" in refusal.cause


def test_a_store_records_zero_model_calls(
    tmp_path: Path, workspace: Path, engine: EngineFactory
) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    with Store(tmp_path / "runs.db") as store:
        result = engine(scripted(), store=store).run(goal(workspace))
        row = store.find(result.run_id)
        events = store.events(result.run_id)
    assert (row.status, row.iterations, row.input_tokens, row.output_tokens) == (
        "success",
        0,
        0,
        0,
    )
    assert not [e for e in events if e.kind == "model_call"]


@pytest.mark.parametrize("already_passing", [False, True])
def test_replay_of_a_run_with_a_preflight(
    tmp_path: Path, workspace: Path, already_passing: bool, engine: EngineFactory
) -> None:
    if already_passing:
        (workspace / "app.py").write_text("def answer():\n    return 42\n")
    wrong = plan(step("wrong fix", write("app.py", "def answer():\n    return 40\n")))
    model = scripted(wrong, plan(step("right fix", ANSWER_FIX)))
    with Store(tmp_path / "runs.db") as store:
        result = engine(model, store=store).run(goal(workspace))
        report = replay_run(store, result.run_id, environ={"PATH": "/usr/bin:/bin"})
    assert report.ok, report.divergences
    assert report.replay.status is result.status
    assert report.replay.iterations == (0 if already_passing else 2)
    assert report.compared >= 2  # the preflight's verdict and the final status at least


def _forget_preflight(store_path: Path, run_id: str) -> None:
    """Make the run's record look like one an earlier zerog wrote: a goal without the
    preflight field (which then defaults to on)."""
    with Store(store_path) as store:
        spec = store.find(run_id).spec
    goal = spec["goal"]
    assert isinstance(goal, dict)
    goal.pop("preflight")
    with sqlite3.connect(store_path) as db:
        db.execute("UPDATE runs SET spec = ? WHERE id = ?", (json.dumps(spec), run_id))
    db.close()


def test_replay_of_a_run_recorded_without_a_preflight(
    tmp_path: Path, workspace: Path, engine: EngineFactory
) -> None:
    """A run recorded before zerog had a preflight replays as it ran, without one (with
    one, its checks pass at once here: nothing to do, a divergence)."""
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    model = scripted(plan(step("look", shell("true"))))
    with Store(tmp_path / "runs.db") as store:
        result = engine(model, store=store).run(goal(workspace, preflight=False))
    _forget_preflight(tmp_path / "runs.db", result.run_id)
    with Store(tmp_path / "runs.db") as store:
        report = replay_run(store, result.run_id, environ={"PATH": "/usr/bin:/bin"})
    assert report.ok, report.divergences
    assert report.replay.iterations == 1


class _Crash(BaseException):
    """Stands for a SIGKILL: nothing in the engine catches it."""


class CrashingStore(Store):
    """Dies right after the commit that makes the ``nth`` event of ``kind`` durable."""

    def __init__(self, path: Path, kind: str, nth: int = 1) -> None:
        super().__init__(path)
        self.kind, self.nth = kind, nth

    def append(self, events: Sequence[Event]) -> None:
        super().append(events)
        self.nth -= sum(1 for e in events if e.kind == self.kind)
        if self.nth <= 0:
            raise _Crash


@pytest.mark.parametrize("kind", ["verdict", "preflight", "iteration_started", "model_call"])
def test_a_resumed_run_does_not_preflight_twice(
    tmp_path: Path, workspace: Path, kind: str, engine: EngineFactory
) -> None:
    check = f"touch made-by-the-check && {ANSWER_CHECK}"
    lines = (plan(step("wrong fix", shell("true"))), plan(step("right fix", ANSWER_FIX)))
    store_path = tmp_path / "runs.db"
    with CrashingStore(store_path, kind) as crashing, pytest.raises(_Crash):
        engine(scripted(*lines), store=crashing, new_id=lambda: "run1").run(goal(workspace, check))
    with Store(store_path) as store:
        result = engine(scripted(*lines), store=store).resume("run1")
        events = store.events("run1")
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 2
    sweeps = [e for e in events if e.kind == "validation_started" and e.data["iteration"] == 0]
    assert len(sweeps) == 1
    assert len([e for e in events if e.kind == "preflight"]) == 1
    assert [e.seq for e in events] == list(range(1, len(events) + 1))


@pytest.mark.parametrize("check", [ANSWER_CHECK, "absent-tool-q7"])
def test_a_run_the_preflight_ended_resumes_to_the_same_end(
    tmp_path: Path, workspace: Path, check: str, engine: EngineFactory
) -> None:
    """Killed after the preflight recorded its outcome, before the run's end: the resume
    ends the run the same way, without a sweep or a model call."""
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    store_path = tmp_path / "runs.db"
    with CrashingStore(store_path, "preflight") as crashing, pytest.raises(_Crash):
        engine(scripted(), store=crashing, new_id=lambda: "run1").run(goal(workspace, check))
    with Store(store_path) as store:
        result = engine(scripted(), store=store).resume("run1")
        events = store.events("run1")
    expected = RunStatus.SUCCESS if check == ANSWER_CHECK else RunStatus.CANNOT_RUN
    assert (result.status, result.iterations) == (expected, 0)
    assert [e.kind for e in events].count("validation_started") == 1
    assert events[-1].kind == "run_finished"
    assert events[-1].data["reason"] == result.reason
    assert len(result.cannot_run) == (0 if check == ANSWER_CHECK else 1)


def test_a_run_recorded_without_a_preflight_resumes_without_one(
    tmp_path: Path, workspace: Path, engine: EngineFactory
) -> None:
    lines = (plan(step("wrong fix", shell("true"))), plan(step("right fix", ANSWER_FIX)))
    store_path = tmp_path / "runs.db"
    with CrashingStore(store_path, "model_call") as crashing, pytest.raises(_Crash):
        engine(scripted(*lines), store=crashing, new_id=lambda: "run1").run(
            goal(workspace, preflight=False)
        )
    _forget_preflight(store_path, "run1")
    with Store(store_path) as store:
        result = engine(scripted(*lines), store=store).resume("run1")
        events = store.events("run1")
    assert result.status is RunStatus.SUCCESS
    assert not [e for e in events if e.kind == "preflight"]
    assert not [e for e in events if e.kind == "verdict" and e.data["iteration"] == 0]


def test_a_goal_with_several_checks_cannot_run_if_one_cannot(
    workspace: Path, engine: EngineFactory
) -> None:
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    checks = (CommandCheck(command=ANSWER_CHECK), CommandCheck(command="absent-tool-q7"))
    result = engine(model).run(Goal(text="fix it", workspace=workspace, checks=checks))
    assert result.status is RunStatus.CANNOT_RUN
    assert [r.check for r in result.cannot_run] == ["absent-tool-q7"]
