"""The event catalog: every event real runs write parses to its typed model and dumps
back to the same JSON; unknown, old and malformed events come back explicit, never raise.

The runs are real: the engine, the local sandbox, SQLite stores, git and the shipped
scripted model."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from builders import acts, plan, scripted, shell, step, write
from zerog import Engine, Goal, RunStatus
from zerog.event_catalog import (
    AnyEvent,
    CheckDone,
    EventModel,
    ModelCalled,
    ObservationMade,
    RunFinished,
    SandboxBinds,
    SnapshotTaken,
    UnknownEvent,
    event_models,
    kind_of,
    parse,
    parse_data,
)
from zerog.events import Event
from zerog.router.builtin import BuiltinRouter
from zerog.store import Store
from zerog.types import Mount, Observation, ShellAction, Status

ENV = {"PATH": "/usr/bin:/bin"}
FIX = write("app.py", "def answer():\n    return 42\n")
CHECK = "python3 -c 'import app; assert app.answer() == 42'"
DOCS = Path(__file__).resolve().parents[1] / "docs" / "events.md"


def kinds_of() -> dict[str, type[EventModel]]:
    return {kind_of(m): m for m in event_models()}


def engine(model: object, store: Store, **kwargs: object) -> Engine:
    return Engine(
        model,  # type: ignore[arg-type]
        environ=ENV,
        sandbox_name="local",
        store=store,
        write_trace=False,
        **kwargs,  # type: ignore[arg-type]
    )


def once(reason: str) -> Iterator[str | None]:
    yield reason
    while True:
        yield None


def loop_run(root: Path, store: Store) -> str:
    """Preflight (fails), a failing action, a failed step check, a routed step demoted,
    a doubted pass, a re-plan that fails, the doubted answer kept: success."""
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n")
    doubts = once("the model was unsure")
    model = scripted(
        plan(step("break it", shell("exit 3"))),
        plan(step("try", write("app.py", "x = 1\n"), check="false")),
        plan({"intent": "run the check", "op": "rerun_check", "target": CHECK}, step("fix")),
        acts(FIX),
        acts(FIX),
        plan(step("second opinion", write("app.py", "def answer():\n    return 0\n"))),
    )
    goal = Goal(text="make answer() return 42", workspace=root, checks=[CHECK])
    result = engine(model, store, router=BuiltinRouter(), doubt=lambda: next(doubts)).run(goal)
    assert result.status is RunStatus.SUCCESS, result.reason
    return result.run_id


CALC = "def add(a, b):\n    return a - b\n"
TESTS = (
    "import unittest\n\nfrom calc import add\n\n\n"
    "class CalcTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n"
)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=root, check=True, capture_output=True)


def code_run(root: Path, store: Store) -> str:
    """A git repository; code calls: one unusable answer, a command changing a protected
    file (put back before the checks), a step naming only a protected file, a protected
    file skipped, then the fix; the result committed."""
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / "test_calc.py").write_text(TESTS)
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-qm", "init")
    fixed = "```python\ndef add(a, b):\n    return a + b\n```\n"
    model = scripted(
        {"purpose": "plan", "json": {"steps": [{"intent": "x", "files": ["calc.py"]}]}},
        {"purpose": "code", "text": "no code"},
        {"purpose": "code", "text": "still none"},
        {"purpose": "code", "text": "```python\nx = ("},
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {"intent": "touch the tests", "commands": ["echo '#' >> test_calc.py"]},
                    {"intent": "t", "files": ["test_calc.py"]},
                ]
            },
        },
        {
            "purpose": "plan",
            "json": {"steps": [{"intent": "f", "files": ["calc.py", "test_calc.py"]}]},
        },
        {"purpose": "code", "text": fixed},
    )
    goal = Goal(text="add() subtracts", workspace=root, checks=["python3 -m unittest -q"])
    result = engine(model, store, git=True).run(goal)
    assert result.status is RunStatus.SUCCESS, result.reason
    assert result.git is not None
    assert result.git.status == "committed"
    return result.run_id


def resumed_run(root: Path, path: Path) -> str:
    """A run whose log is cut right after an action started (as a crash would leave
    it), then resumed: the action is rolled back and retried."""
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n")
    goal = Goal(text="make answer() return 42", workspace=root, checks=[CHECK])
    with Store(path) as store:
        run_id = engine(scripted(plan(step("fix", FIX))), store).run(goal).run_id
        (action,) = [e.seq for e in store.events(run_id) if e.kind == "action"]
    db = sqlite3.connect(path)
    with db:
        db.execute("DELETE FROM events WHERE run_id = ? AND seq > ?", (run_id, action))
    db.close()
    with Store(path) as store:
        result = engine(scripted(plan(step("fix", FIX))), store).resume(run_id)
        assert result.status is RunStatus.SUCCESS, result.reason
    return run_id


def binds_run(root: Path, store: Store) -> str:
    """A bwrap run with a host directory mounted: the sandbox's binds are recorded."""
    root.mkdir()
    tools = root.parent / "tools"
    tools.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n")
    goal = Goal(
        text="make answer() return 42",
        workspace=root,
        checks=[CHECK],
        mounts=[Mount(source=tools)],
    )
    model = scripted(plan(step("fix", FIX)))
    result = Engine(model, environ=ENV, sandbox_name="bwrap", store=store, write_trace=False).run(
        goal
    )
    assert result.status is RunStatus.SUCCESS, result.reason
    return result.run_id


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> list[Event]:
    tmp = tmp_path_factory.mktemp("runs")
    events: list[Event] = []
    with Store(tmp / "runs.db") as store:
        for make, name in ((loop_run, "loop"), (code_run, "code"), (binds_run, "binds")):
            run_id = make(tmp / name, store)
            events += store.events(run_id)
    path = tmp / "resumed.db"
    run_id = resumed_run(tmp / "resumed", path)
    with Store(path) as store:
        events += store.events(run_id)
    return events


def test_every_event_of_real_runs_is_typed_and_dumps_back_the_same(
    recorded: Sequence[Event],
) -> None:
    for event in recorded:
        typed = parse(event)
        assert not isinstance(typed, UnknownEvent), (event.kind, typed.problem)
        assert typed.kind == event.kind
        assert typed.to_data() == event.data, event.kind
        assert json.dumps(typed.to_data(), sort_keys=True) == json.dumps(event.data, sort_keys=True)


# The plan cache needs the embedding model: tests/cache/test_plan_cache_events.py.
NOT_IN_THESE_RUNS = {"plan_cache"}


def test_the_runs_write_every_kind_the_catalog_knows(recorded: Sequence[Event]) -> None:
    seen = {e.kind for e in recorded}
    assert seen == set(kinds_of()) - NOT_IN_THESE_RUNS


def test_a_routed_demoted_and_model_decision_are_all_recorded(recorded: Sequence[Event]) -> None:
    decisions = {e.data.get("decision") for e in recorded if e.kind == "route"}
    assert decisions == {"model", "routed", "demoted"}


def test_typed_fields_read_what_was_recorded(recorded: Sequence[Event]) -> None:
    typed = [parse(e) for e in recorded]
    finished = [t for t in typed if isinstance(t, RunFinished)]
    assert [f.status for f in finished] == ["success"] * 4
    assert finished[1].git is not None
    assert finished[1].git.status == "committed"
    base = next(t for t in typed if isinstance(t, SnapshotTaken) and t.role == "base")
    assert base.files is not None
    assert base.files > 0
    calls = [t for t in typed if isinstance(t, ModelCalled)]
    assert {c.purpose for c in calls} >= {"plan", "act", "code"}
    failed = next(t for t in typed if isinstance(t, ObservationMade) and t.status == "error")
    observation = failed.to_observation()
    assert observation is not None
    assert observation.exit_code == 3
    checks = [t for t in typed if isinstance(t, CheckDone)]
    assert any(not c.passed and c.observation.stderr for c in checks)
    (binds,) = [t for t in typed if isinstance(t, SandboxBinds)]
    assert [(b.mode, b.why) for b in binds.binds] == [("ro", "--mount")]


# ---------------------------------------------------------------- unknown and old events


def test_an_unknown_kind_is_explicit() -> None:
    typed = parse(Event("r1", 1, 0.0, "teleported", {"to": "mars"}))
    assert isinstance(typed, UnknownEvent)
    assert typed.kind == "teleported"
    assert typed.data == {"to": "mars"}
    assert "no event kind 'teleported'" in typed.problem


@pytest.mark.parametrize(
    ("kind", "data", "problem"),
    [
        ("iteration_started", {"iteration": "first"}, "iteration"),
        ("observation", {"status": "success", "exit_code": [1]}, "exit_code"),
        ("action", {"action": {"kind": "teleport"}}, "action"),
        ("run_finished", {"status": "success", "surprise": 1}, "surprise"),
        ("check", {"kind": "check"}, "named kind"),
        ("step_done", ["not", "an", "object"], "not an object"),
    ],
)
def test_malformed_data_is_explicit(kind: str, data: object, problem: str) -> None:
    typed = parse_data(kind, data)
    assert isinstance(typed, UnknownEvent)
    assert problem in typed.problem
    assert typed.data == data


def test_an_old_or_partial_event_takes_defaults_and_dumps_only_what_it_had() -> None:
    typed = parse(Event("r1", 1, 0.0, "check", {"name": "pytest -q", "observation": {}}))
    assert isinstance(typed, CheckDone)
    assert (typed.passed, typed.flaky, typed.failed_tests) == (False, False, ())
    assert typed.observation.to_observation() is None  # no status: not a whole observation
    assert typed.to_data() == {"name": "pytest -q", "observation": {}}


def test_an_observation_event_gives_back_the_observation() -> None:
    observation = Observation(status=Status.TIMEOUT, stdout="x", duration=1.5)
    data = {"iteration": 1, "step": 0, "index": 2, **observation.model_dump(mode="json")}
    typed = parse_data("observation", data)
    assert isinstance(typed, ObservationMade)
    assert typed.to_observation() == observation
    assert typed.to_data() == data


def test_an_action_event_carries_the_typed_action() -> None:
    typed: AnyEvent | UnknownEvent = parse_data(
        "action",
        {"iteration": 1, "step": 0, "index": 0, "action": {"kind": "shell", "command": "ls"}},
    )
    assert not isinstance(typed, UnknownEvent)
    assert typed.kind == "action"
    assert typed.action == ShellAction(command="ls")


# ---------------------------------------------------------------- the docs


def documented() -> dict[str, list[str]]:
    """``docs/events.md``: a ``### `kind` `` heading per kind, then its field list."""
    out: dict[str, list[str]] = {}
    kind = ""
    for line in DOCS.read_text(encoding="utf-8").splitlines():
        if line.startswith("### `"):
            kind = line.removeprefix("### `").removesuffix("`")
            out[kind] = []
        elif kind and line.startswith("| `"):
            out[kind].append(line.split("`")[1])
    return out


def test_the_docs_list_every_kind_and_field_of_the_catalog() -> None:
    catalog = {
        kind: [f for f in model.model_fields if f != "kind"] for kind, model in kinds_of().items()
    }
    assert documented() == catalog


def test_a_check_event_gives_back_the_check_result(recorded: Sequence[Event]) -> None:
    checks = [t for t in map(parse, recorded) if isinstance(t, CheckDone)]
    results = [c.to_result() for c in checks]
    assert all(r is not None for r in results)
    failed = next(r for r in results if r is not None and not r.passed)
    assert failed.name == CHECK
    assert failed.observation.status is Status.ERROR
    partial = parse_data("check", {"name": "x", "passed": True, "observation": {}})
    assert isinstance(partial, CheckDone)
    assert partial.to_result() is None


def test_a_model_call_event_gives_back_the_response(recorded: Sequence[Event]) -> None:
    calls = [t for t in map(parse, recorded) if isinstance(t, ModelCalled)]
    assert calls
    for call in calls:
        response = call.to_response()
        assert response.text == call.text
        assert response.usage.input_tokens == call.input_tokens
        assert (response.model, response.cost, response.cache_hit) == (
            call.model,
            call.cost,
            call.cache_hit,
        )
