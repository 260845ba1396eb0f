"""The closed loop end to end: real sandboxes (every backend), real files, scripted model."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from builders import (
    ANSWER_CHECK,
    ANSWER_FIX,
    EngineFactory,
    acts,
    goal,
    plan,
    scripted,
    shell,
    step,
    write,
)
from zerog import Budget, Engine, Goal, RunStatus
from zerog.errors import ConfigError
from zerog.sandbox.base import Limits
from zerog.trace import read_trace
from zerog.types import CommandCheck, PredicateCheck, SchemaCheck


def kinds(path: Path | None) -> list[str]:
    assert path is not None
    return [str(e["kind"]) for e in read_trace(path)]


# Every test of the loop runs on every sandbox backend (the ``engine`` fixture's).
pytestmark = pytest.mark.usefixtures("backend")


def test_solved_on_first_try(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 1
    assert "return 42" in (workspace / "app.py").read_text()
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0
    events = kinds(result.trace_path)
    assert events[0] == "run_started"
    assert events[-1] == "run_finished"
    assert "rollback" not in events


def test_backtrack_restores_workspace_then_succeeds(workspace: Path, engine: EngineFactory) -> None:
    wrong = step(
        "wrong fix",
        write("app.py", "def answer():\n    return 40\n"),
        write("scratch/notes.txt", "left behind"),
    )
    model = scripted(plan(wrong), plan(step("right fix")), acts(ANSWER_FIX))
    seen_during_replan: list[bool] = []

    result = engine(model).run(goal(workspace))

    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 2
    assert not (workspace / "scratch").exists(), "a file of the failed attempt survived"
    assert "return 42" in (workspace / "app.py").read_text()
    # The replanning request carried the failure of the first attempt.
    replan_prompt = model.requests[1].messages[-1].content
    assert "Earlier attempts" in replan_prompt
    assert "AssertionError" in replan_prompt
    seen_during_replan.append("scratch/notes.txt" in replan_prompt)
    assert seen_during_replan == [False], "the replan saw the rolled-back file"
    # The trace tells the story in order.
    story = [
        k
        for k in kinds(result.trace_path)
        if k in {"plan", "action", "verdict", "rollback", "run_finished"}
    ]
    assert story == [
        "verdict",  # the preflight's
        "plan",
        "action",
        "action",
        "verdict",
        "rollback",
        "plan",
        "action",
        "verdict",
        "run_finished",
    ]


def test_failed_run_leaves_workspace_as_it_was(workspace: Path, engine: EngineFactory) -> None:
    before = (workspace / "app.py").read_bytes()
    bad = plan(step("break things", write("app.py", "oops"), write("new.txt", "x")))
    result = engine(model=scripted(bad)).run(goal(workspace, budget=Budget(max_iterations=1)))
    assert result.status is RunStatus.MAX_ITERATIONS
    assert (workspace / "app.py").read_bytes() == before
    assert not (workspace / "new.txt").exists()


def test_step_check_failure_is_fed_back(workspace: Path, engine: EngineFactory) -> None:
    first = plan(step("create marker", shell("true"), check="test -f marker"))
    model = scripted(first, plan(step("fix", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert "step check: test -f marker" in model.requests[1].messages[-1].content


def test_goal_checks_decide_even_if_a_step_failed(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(plan(step("fix then fail", ANSWER_FIX, shell("exit 3"))))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS


@pytest.mark.parametrize(
    ("budget", "status"),
    [
        (Budget(max_iterations=2), RunStatus.MAX_ITERATIONS),
        (Budget(max_input_tokens=50), RunStatus.MAX_INPUT_TOKENS),
        (Budget(max_output_tokens=20), RunStatus.MAX_OUTPUT_TOKENS),
        (Budget(max_cost=0.015), RunStatus.MAX_COST),
    ],
)
def test_each_budget_stops_the_run(
    workspace: Path, budget: Budget, status: RunStatus, engine: EngineFactory
) -> None:
    # Distinct failing attempts, so stuck detection does not end the run first.
    lines = [
        {**plan(step(f"attempt {i}", shell(f"echo attempt {i}"))), "cost": 0.01} for i in range(10)
    ]
    result = engine(scripted(*lines)).run(goal(workspace, budget=budget))
    assert result.status is status
    assert result.reason
    assert result.iterations <= 2


def test_time_budget_stops_a_long_command(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(plan(step("wait forever", shell("sleep 30"))))
    result = engine(model).run(goal(workspace, budget=Budget(max_seconds=1.0)))
    assert result.status is RunStatus.MAX_TIME
    assert result.duration < 10


def test_output_budget_clamps_max_tokens(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(plan(step("fix", ANSWER_FIX)))
    engine(model).run(goal(workspace, budget=Budget(max_output_tokens=100)))
    assert model.requests[0].max_tokens == 100


def test_clock_is_injected(workspace: Path, backend: str) -> None:
    ticks = itertools.count(step=100.0)
    model = scripted(plan(step("fix", ANSWER_FIX)))
    result = Engine(model, environ={}, clock=lambda: float(next(ticks)), sandbox_name=backend).run(
        goal(workspace, budget=Budget(max_seconds=50))
    )
    assert result.status is RunStatus.MAX_TIME


@pytest.mark.parametrize(
    "answer",
    [
        {"text": "I think you should edit app.py"},
        {"text": '{"steps": [}'},
        {"json": {"steps": "not a list"}},
        {"json": {"steps": []}},
        {"json": {"steps": [{"intent": "x", "actions": [{"kind": "rm -rf /"}]}]}},
        {"json": {"plan": "wrong key"}},
        {"text": "{" + '"a": 1, ' * 100_000 + "}"},
        {"json": [1, 2, 3]},
    ],
)
def test_malformed_plan_is_reasked_once_then_fails_cleanly(
    workspace: Path, answer: dict[str, object], engine: EngineFactory
) -> None:
    bad = {"purpose": "plan", **answer}
    model = scripted(bad, bad, plan(step("never used", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.MODEL_ERROR
    assert "invalid after 2 attempts" in result.reason
    assert len(model.requests) == 2
    reask = model.requests[1].messages[-1].content
    assert reask.startswith("That answer was invalid")


def test_malformed_then_valid_plan_recovers(workspace: Path, engine: EngineFactory) -> None:
    fenced = (
        "Here is the plan:\n```json\n" + '{"steps": [{"intent": "fix", "actions": ['
        '{"kind": "write_file", "path": "app.py", "content": "def answer():\\n    return 42\\n"}'
        "]}]}\n```"
    )
    model = scripted(
        {"purpose": "plan", "text": "no json here"}, {"purpose": "plan", "text": fenced}
    )
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS


def test_hostile_text_in_model_output_is_data(
    workspace: Path, tmp_path: Path, engine: EngineFactory
) -> None:
    canary = tmp_path / "outside.txt"
    hostile = plan(
        step(
            "\x1b]0;pwned\x07\x1b[31mred\x00",
            write("../outside.txt", "escaped"),
        ),
        step("abs", write(str(canary), "escaped")),
    )
    model = scripted(hostile, plan(step("fix", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert not canary.exists()
    feedback = model.requests[1].messages[-1].content
    assert "leaves the workspace" in feedback
    assert "\x1b" not in feedback
    assert "\x00" not in feedback


@pytest.mark.slow
def test_timeout_and_flood_become_observations(workspace: Path, engine: EngineFactory) -> None:
    flood = shell("python3 -c \"import sys; sys.stdout.write('x' * 5_000_000)\"")
    model = scripted(
        plan(step("flood", flood, shell("false"))),
        plan(step("hang", shell("sleep 20"))),
        plan(step("fix", ANSWER_FIX)),
    )
    eng = engine(model, limits=Limits(timeout=1.0, max_output_bytes=4096))
    result = eng.run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 3
    events = read_trace(result.trace_path) if result.trace_path else []
    observations = [e for e in events if e["kind"] == "observation"]
    flooded = observations[0]
    assert flooded["truncated"] is True
    assert len(str(flooded["stdout"])) < 5000
    assert any(o["status"] == "timeout" for o in observations)
    assert "timed out" in model.requests[2].messages[-1].content


def test_stuck_detection_warns_then_stops(workspace: Path, engine: EngineFactory) -> None:
    same = plan(step("same thing", shell("echo trying; false")))
    model = scripted(same, same, same, same, same)
    result = engine(model, stuck_after=2).run(goal(workspace))
    assert result.status is RunStatus.STUCK
    assert result.iterations == 3
    assert "exactly the same way" not in model.requests[1].messages[-1].content
    assert "exactly the same way" in model.requests[2].messages[-1].content


def test_script_running_out_is_a_model_error(workspace: Path, engine: EngineFactory) -> None:
    result = engine(scripted(plan(step("noop", shell("true"))))).run(goal(workspace))
    assert result.status is RunStatus.MODEL_ERROR
    assert "no response left" in result.reason


def test_worker_is_asked_when_a_step_has_no_actions(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(plan(step("fix via worker")), acts(ANSWER_FIX))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert [r.purpose for r in model.requests] == ["plan", "act"]
    assert "fix via worker" in model.requests[1].messages[-1].content


def test_secrets_do_not_reach_prompt_or_sandbox(workspace: Path, backend: str) -> None:
    (workspace / ".env").write_text("API_KEY=sk-abcdefghijklmnopqrstuvwx\n")
    env_dump = "env > envdump.txt; cat envdump.txt"
    model = scripted(plan(step("look", shell(env_dump), ANSWER_FIX)))
    environ = {
        "PATH": "/usr/bin:/bin",
        "OPENAI_API_KEY": "sk-canary0123456789abcdef",
        "CI": "token ghp_abcdefghijklmnopqrstuvwxyz0123",
    }
    result = Engine(model, environ=environ, sandbox_name=backend).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    prompt = model.requests[0].messages[-1].content
    assert "sk-abcdefghijklmnopqrstuvwx" not in prompt
    assert "ghp_abcdefghij" not in prompt
    assert "CI=token [redacted]" in prompt
    trace_text = result.trace_path.read_text() if result.trace_path else ""
    assert "sk-canary" not in trace_text


def test_bad_workspace_is_a_config_error(tmp_path: Path, engine: EngineFactory) -> None:
    with pytest.raises(ConfigError, match="not a directory"):
        engine(scripted()).run(goal(tmp_path / "missing"))


def test_spend_is_reported_per_phase(workspace: Path, engine: EngineFactory) -> None:
    model = scripted(
        {
            **plan(step("via worker")),
            "cost": 0.25,
            "usage": {"input_tokens": 100, "output_tokens": 10},
        },
        {**acts(ANSWER_FIX), "cost": 0.5, "usage": {"input_tokens": 200, "output_tokens": 20}},
    )
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    assert result.phases["plan"].usage.input_tokens == 100
    assert result.phases["act"].usage.output_tokens == 20
    assert result.phases["act"].calls == 1
    assert result.cost == 0.75
    assert result.usage.input_tokens == 300


def test_one_run_at_a_time_per_workspace(workspace: Path, engine: EngineFactory) -> None:
    import fcntl

    (workspace / ".zerog").mkdir()
    with (workspace / ".zerog" / "lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(ConfigError, match="in use by another zerog run"):
            engine(scripted(plan(step("fix", ANSWER_FIX)))).run(goal(workspace))
    result = engine(scripted(plan(step("fix", ANSWER_FIX)))).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS


def _sidecar_goal(root: Path) -> Goal:
    return Goal(
        text="write the answer and a valid config",
        workspace=root,
        checks=[
            PredicateCheck(python="from pathlib import Path\nPath('out.txt').read_text() == '42'"),
            SchemaCheck.model_validate(
                {"path": "config.json", "schema": {"type": "object", "required": ["answer"],
                        "properties": {"answer": {"type": "integer"}}}}
            ),
        ],
    )  # fmt: skip


@pytest.mark.parametrize("sidecar", ["wasm", "sandbox"])
def test_predicate_and_schema_checks_decide_the_run(
    workspace: Path, sidecar: str, engine: EngineFactory
) -> None:
    wrong = plan(step("write", write("out.txt", "41"), write("config.json", '{"answer": "x"}')))
    right = plan(step("write", write("out.txt", "42"), write("config.json", '{"answer": 42}')))
    result = engine(scripted(wrong, right), sidecar=sidecar).run(_sidecar_goal(workspace))
    assert result.status is RunStatus.SUCCESS, result.reason
    assert result.iterations == 2
    assert result.verdict is not None
    assert [r.name for r in result.verdict.results] == [
        "from pathlib import Path; Path('out.txt').read_text() == '42'",
        "config.json matches its schema",
    ]
    events = read_trace(result.trace_path) if result.trace_path else []
    first = next(e for e in events if e["kind"] == "verdict")
    assert first["failures"] == [r.name for r in result.verdict.results]


def test_an_unknown_sidecar_is_refused(engine: EngineFactory) -> None:
    with pytest.raises(ConfigError, match="unknown sidecar"):
        engine(scripted(), sidecar="host")


def test_a_bad_check_is_refused_before_any_model_call(
    workspace: Path, engine: EngineFactory
) -> None:
    model = scripted(plan(step("fix it", ANSWER_FIX)))
    bad = goal(workspace, ANSWER_CHECK).model_copy(
        update={"checks": (CommandCheck(command="true", after=("nope",)),)}
    )
    with pytest.raises(ConfigError, match="nope"):
        engine(model).run(bad)
    assert model.requests == []


def test_a_flaky_goal_check_passes_and_is_listed(workspace: Path, engine: EngineFactory) -> None:
    # Fails on its first run, passes on the immediate re-run. Its counter lives in a tool
    # cache directory, which flaky detection leaves out of the workspace's state.
    (workspace / ".pytest_cache").mkdir()
    flaky = (
        'python3 -c \'import os,sys; d=".pytest_cache"; n=len(os.listdir(d)); '
        'open(d+"/"+str(n),"w").close(); sys.exit(n == 0)\''
    )
    flaky_goal = goal(workspace).model_copy(update={"checks": (CommandCheck(command=flaky),)})
    result = engine(scripted(plan(step("nothing", shell("true"))))).run(flaky_goal)
    assert result.status is RunStatus.SUCCESS
    assert result.verdict is not None
    assert [r.name for r in result.verdict.flaky] == [flaky]
    verdicts = [e for e in read_trace(result.trace_path or Path()) if e["kind"] == "verdict"]
    assert verdicts[0]["flaky"] == [flaky]


def test_a_failed_step_check_rolls_back_before_any_sweep(
    workspace: Path, engine: EngineFactory
) -> None:
    first = plan(
        step("half a fix", ANSWER_FIX, check="test -f marker"), step("never run", ANSWER_FIX)
    )
    model = scripted(first, plan(step("fix", ANSWER_FIX)))
    result = engine(model).run(goal(workspace))
    assert result.status is RunStatus.SUCCESS
    events = read_trace(result.trace_path or Path())
    kinds_ = [str(e["kind"]) for e in events]
    start = kinds_.index("iteration_started")  # after the preflight's sweep
    first_rollback = kinds_.index("rollback")
    assert "validation_started" not in kinds_[start:first_rollback]
    assert kinds_[start:].count("validation_started") == 1
    assert sum(1 for e in events if e["kind"] == "step_started" and e["iteration"] == 1) == 1
