"""How a run ends: each ``RunEnded`` of engine/exceptions.py, raised by a real run (local
sandbox, scripted model), becomes the result's status and reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import plan, scripted, shell, step, write
from zerog import Budget, Engine, Goal, RunStatus
from zerog import context as ctx
from zerog.budget import BudgetExhausted
from zerog.engine.exceptions import (
    Cancelled,
    ChecksCannotRun,
    ModelFailed,
    NothingToDo,
    PreflightEnded,
    RunEnded,
    StepFailed,
    Stuck,
    Succeeded,
)
from zerog.errors import ConfigError
from zerog.models.base import Model
from zerog.types import Observation, Plan, Status

FIX = write("app.py", "def answer():\n    return 42\n")
CHECK = "python3 -c 'import app; assert app.answer() == 42'"


def run(root: Path, model: Model, budget: Budget | None = None, **kwargs: object) -> RunStatus:
    goal = Goal(text="make answer() return 42", workspace=root, checks=[CHECK])
    if budget is not None:
        goal = goal.model_copy(update={"budget": budget})
    engine = Engine(
        model,
        environ={"PATH": "/usr/bin:/bin"},
        sandbox_name="local",
        write_trace=False,
        **kwargs,  # type: ignore[arg-type]
    )
    result = engine.run(goal)
    assert result.reason
    return result.status


def test_every_end_is_a_run_ended_with_its_status() -> None:
    ends: list[tuple[RunEnded, RunStatus]] = [
        (Succeeded("all checks passed (iteration 1)"), RunStatus.SUCCESS),
        (Stuck(2), RunStatus.STUCK),
        (ModelFailed("no response left"), RunStatus.MODEL_ERROR),
        (Cancelled(), RunStatus.INTERRUPTED),
        (NothingToDo(), RunStatus.SUCCESS),
        (ChecksCannotRun("pytest is not installed"), RunStatus.CANNOT_RUN),
        (BudgetExhausted(RunStatus.MAX_COST, "spent"), RunStatus.MAX_COST),
    ]
    for end, status in ends:
        assert isinstance(end, RunEnded)
        assert end.status is status
        assert str(end) == end.reason
    assert Stuck(2).reason == "no progress: the same failure 3 times in a row"
    assert isinstance(NothingToDo(), PreflightEnded)
    assert isinstance(ChecksCannotRun("x"), PreflightEnded)


def test_a_failed_step_says_what_failed() -> None:
    seen = Observation(status=Status.ERROR, exit_code=1, stderr="boom")
    failed = StepFailed("fix it", "step check: false", seen, check=True)
    assert failed.failure == ("fix it", "step check: false", seen)
    assert failed.check
    assert not StepFailed("fix it", "run `false`", seen).check


def test_success_stuck_budget_and_model_error_end_real_runs(workspace: Path) -> None:
    assert run(workspace, scripted(plan(step("fix", FIX)))) is RunStatus.SUCCESS
    (workspace / "app.py").write_text("def answer():\n    return 41\n")
    same = plan(step("same", shell("false")))
    assert run(workspace, scripted(same, same, same), stuck_after=1) is RunStatus.STUCK
    one = Budget(max_iterations=1)
    assert run(workspace, scripted(same), budget=one) is RunStatus.MAX_ITERATIONS
    assert run(workspace, scripted()) is RunStatus.MODEL_ERROR


def test_the_preflight_ends_a_run_whose_checks_pass(workspace: Path) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    model = scripted()
    assert run(workspace, model) is RunStatus.SUCCESS
    assert model.requests == []  # ended before any model call


def test_ctrl_c_ends_the_run_as_interrupted_and_rolls_back(workspace: Path) -> None:
    def interrupted(model: Model, context: ctx.Context) -> Plan:
        (workspace / "scratch.txt").write_text("left behind")
        raise KeyboardInterrupt

    assert run(workspace, scripted(), plan_with=interrupted) is RunStatus.INTERRUPTED
    assert not (workspace / "scratch.txt").exists()


@pytest.mark.parametrize("stuck_after", [0, -1])
def test_stuck_after_must_be_positive(workspace: Path, stuck_after: int) -> None:
    with pytest.raises(ConfigError, match="stuck_after"):
        run(workspace, scripted(), stuck_after=stuck_after)
