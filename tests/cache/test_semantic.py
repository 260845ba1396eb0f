"""The semantic plan cache with the real MiniLM model: paraphrases hit, near misses never
do, and a reused plan that fails the sweep is invalidated and the model asked instead."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from builders import plan, scripted, step, write
from zerog.cache.db import CacheDB
from zerog.cache.embed import Embedder
from zerog.cache.semantic import PlanCache
from zerog.cache.tools import ToolCache
from zerog.engine.loop import Engine
from zerog.events import Event
from zerog.types import Goal, Plan

CHECK = "python3 verify.py"
VERIFY = (
    "import json, pathlib, sys\n"
    "want = json.loads(pathlib.Path('expected.json').read_text())\n"
    "for name, text in want.items():\n"
    "    if pathlib.Path(name).read_text() != text:\n"
    "        sys.exit(name + ' is wrong')\n"
)


def _workspace(root: Path, files: dict[str, str], expected: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, text in {
        **files,
        "verify.py": VERIFY,
        "expected.json": json.dumps(expected),
    }.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _set_plan(file: str, name: str, value: str) -> Plan:
    return Plan.model_validate(
        {
            "steps": [
                {
                    "intent": f"set {name}",
                    "actions": [
                        {
                            "kind": "edit",
                            "path": file,
                            "search": f"{name} = 0",
                            "replace": f"{name} = {value}",
                        }
                    ],
                }
            ]
        }
    )


@pytest.fixture
def cache(tmp_path: Path, embedder: Embedder) -> PlanCache:
    return PlanCache(CacheDB(tmp_path / "cache.db"), embedder)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    files = {"config.py": "MAX_RETRIES = 0\n", "settings.py": "MAX_RETRIES = 0\n"}
    return _workspace(tmp_path / "ws", files, {"config.py": "MAX_RETRIES = 5\n"})


def _goal(text: str, root: Path, check: str = CHECK) -> Goal:
    return Goal(text=text, workspace=root, checks=[check])


def test_paraphrase_hits_and_near_misses_do_not(cache: PlanCache, ws: Path) -> None:
    cache.store(
        _goal("Set MAX_RETRIES in config.py to 5", ws), _set_plan("config.py", "MAX_RETRIES", "5")
    )
    for paraphrase in (
        "Change the value of MAX_RETRIES in config.py to 5",
        "In config.py, make MAX_RETRIES equal to 5",
    ):
        reuse = cache.lookup(_goal(paraphrase, ws))
        assert reuse is not None, paraphrase
        assert reuse.similarity >= cache.threshold
    for near_miss in (
        "Set MAX_RETRIES in config.py to 50",  # number
        "Set MAX_RETRIES in settings.py to 5",  # file
        "Set MAX_TIMEOUT in config.py to 5",  # target
        "Change the value of MAX_RETRIES in config.py to 6",
    ):
        assert cache.lookup(_goal(near_miss, ws)) is None, near_miss


def test_swapped_targets_and_plain_word_targets_do_not_share(cache: PlanCache, ws: Path) -> None:
    (ws / "shop.py").write_text("def restock(x):\n    return x\n")
    rename = Plan.model_validate(
        {"steps": [{"intent": "r", "actions": [{"kind": "shell", "command": "true"}]}]}
    )
    cache.store(_goal("Change the port in shop.py from 8000 to 9000", ws), rename)
    assert cache.lookup(_goal("Change the port in shop.py from 9000 to 8000", ws)) is None
    cache.store(_goal("Fix the restock function in shop.py", ws), rename)
    assert cache.lookup(_goal("Fix the restock function in shop.py", ws)) is not None
    assert cache.lookup(_goal("Fix the reorder function in shop.py", ws)) is None


def test_other_checks_or_missing_preconditions_miss(cache: PlanCache, ws: Path) -> None:
    text = "Set MAX_RETRIES in config.py to 5"
    cache.store(_goal(text, ws), _set_plan("config.py", "MAX_RETRIES", "5"))
    assert cache.lookup(_goal(text, ws, check="python3 other.py")) is None
    (ws / "config.py").write_text("MAX_RETRIES = 3\n")  # the edit's search text is gone
    assert cache.lookup(_goal(text, ws)) is None
    assert cache.last_outcome == "precondition"
    (ws / "config.py").unlink()
    assert cache.lookup(_goal(text, ws)) is None


def test_corrupted_plan_is_ignored(tmp_path: Path, embedder: Embedder, ws: Path) -> None:
    path = tmp_path / "c.db"
    text = "Set MAX_RETRIES in config.py to 5"
    with CacheDB(path) as db:
        PlanCache(db, embedder).store(_goal(text, ws), _set_plan("config.py", "MAX_RETRIES", "5"))
    raw = sqlite3.connect(path)
    raw.execute("UPDATE plans SET payload = replace(payload, '= 5', '= 6')")
    raw.commit()
    raw.close()
    with CacheDB(path) as db:
        assert PlanCache(db, embedder).lookup(_goal(text, ws)) is None
        assert db.plan_ids() == []
        assert db.stats()["plan"]["corrupt"] == 1


def _set_script(value: str) -> dict[str, object]:
    edit = {
        "kind": "edit",
        "path": "config.py",
        "search": "MAX_RETRIES = 0",
        "replace": f"MAX_RETRIES = {value}",
    }
    return plan(step("set it", edit))


def test_engine_reuses_a_verified_plan_without_the_model(cache: PlanCache, tmp_path: Path) -> None:
    files = {"config.py": "MAX_RETRIES = 0\n"}
    expected = {"config.py": "MAX_RETRIES = 5\n"}
    first = Engine(
        scripted(_set_script("5")), sandbox_name="local", write_trace=False, plan_cache=cache
    )
    done = first.run(
        _goal("Set MAX_RETRIES in config.py to 5", _workspace(tmp_path / "a", files, expected))
    )
    assert done.ok
    assert cache.db.plan_ids()
    model = scripted()  # nothing scripted: any model call would fail the run
    again = Engine(model, sandbox_name="local", write_trace=False, plan_cache=cache).run(
        _goal(
            "In config.py, make MAX_RETRIES equal to 5", _workspace(tmp_path / "b", files, expected)
        )
    )
    assert again.ok, again.reason
    assert again.cache_hits == {"plan": 1}
    assert again.usage.input_tokens == 0
    assert model.requests == []


def test_reuse_that_fails_the_sweep_is_invalidated_and_replanned(
    cache: PlanCache, tmp_path: Path
) -> None:
    files = {"config.py": "MAX_RETRIES = 0\n"}
    text = "Set MAX_RETRIES in config.py to 5"
    stored = Engine(
        scripted(_set_script("5")), sandbox_name="local", write_trace=False, plan_cache=cache
    )
    assert stored.run(
        _goal(text, _workspace(tmp_path / "a", files, {"config.py": "MAX_RETRIES = 5\n"}))
    ).ok
    (entry,) = cache.db.plan_ids()
    # Same goal and checks, but this workspace's checker wants something else: the
    # reused plan passes the gate, fails the sweep, and the model is asked.
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    model = scripted(_set_script("7"))
    root = _workspace(tmp_path / "b", files, {"config.py": "MAX_RETRIES = 7\n"})
    result = Engine(
        model, sandbox_name="local", write_trace=False, plan_cache=cache, sinks=[Sink()]
    ).run(_goal(text, root))
    assert result.ok
    assert result.iterations == 2
    assert len(model.requests) == 1  # the fallback plan came from the model
    outcomes = [e.data["outcome"] for e in events if e.kind == "plan_cache"]
    assert outcomes == ["hit", "invalidated", "stored"]
    assert entry not in cache.db.plan_ids()
    assert cache.db.stats()["plan"]["invalidated"] == 1
    assert (root / "config.py").read_text() == "MAX_RETRIES = 7\n"


def test_engine_tool_cache_serves_actions_not_checks(tmp_path: Path, db: CacheDB) -> None:
    root = _workspace(
        tmp_path / "w", {"config.py": "MAX_RETRIES = 5\n"}, {"config.py": "MAX_RETRIES = 5\n"}
    )
    tools = ToolCache(db, commands=["cat config.py", CHECK])
    runs = []
    for _ in range(2):
        model = scripted(plan(step("look", {"kind": "shell", "command": "cat config.py"})))
        engine = Engine(model, sandbox_name="local", write_trace=False, tool_cache=tools)
        # The check passes from the start: without the preflight the action still runs.
        goal = _goal("Show config.py", root).model_copy(update={"preflight": False})
        runs.append(engine.run(goal))
    assert all(r.ok for r in runs)
    assert runs[0].cache_hits == {}
    assert runs[1].cache_hits == {"tool": 1}
    assert db.stats()["tool"]["hit"] == 1  # the check itself always ran


def test_stored_plan_carries_the_workers_actions(cache: PlanCache, tmp_path: Path) -> None:
    root = _workspace(tmp_path / "w", {}, {"out.txt": "42\n"})
    model = scripted(
        plan(step("write it")), {"purpose": "act", "json": {"actions": [write("out.txt", "42\n")]}}
    )
    assert (
        Engine(model, sandbox_name="local", write_trace=False, plan_cache=cache)
        .run(_goal("Create out.txt containing 42", root))
        .ok
    )
    (row,) = cache.db.plans()
    steps = Plan.model_validate(row.payload["plan"]).steps
    assert [a.model_dump() for a in steps[0].actions] == [
        {"kind": "write_file", "path": "out.txt", "content": "42\n"}
    ]


def test_a_plan_whose_code_came_as_blocks_is_stored_resolved_and_reused(
    cache: PlanCache, tmp_path: Path
) -> None:
    files = {"config.py": "MAX_RETRIES = 0\n"}
    expected = {"config.py": "MAX_RETRIES = 5\n"}
    model = scripted(
        {"purpose": "plan", "json": {"steps": [{"intent": "set it", "files": ["config.py"]}]}},
        {"purpose": "code", "text": "```python\nMAX_RETRIES = 5\n```\n"},
    )
    text = "Set MAX_RETRIES in config.py to 5"
    engine = Engine(model, sandbox_name="local", write_trace=False, plan_cache=cache)
    assert engine.run(_goal(text, _workspace(tmp_path / "a", files, expected))).ok
    (row,) = cache.db.plans()
    (stored,) = Plan.model_validate(row.payload["plan"]).steps
    assert stored.files == ()
    assert [a.model_dump() for a in stored.actions] == [
        {"kind": "write_file", "path": "config.py", "content": "MAX_RETRIES = 5\n"}
    ]
    again = scripted()  # nothing scripted: any model call would fail the run
    reused = Engine(again, sandbox_name="local", write_trace=False, plan_cache=cache).run(
        _goal(text, _workspace(tmp_path / "b", files, expected))
    )
    assert reused.ok, reused.reason
    assert again.requests == []
