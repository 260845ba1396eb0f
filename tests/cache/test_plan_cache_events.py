"""The plan cache's events in the event catalog: runs with the real MiniLM model, a real
cache and store; every event they write parses to its typed model and dumps back the same
(the rest of the catalog is held by tests/test_event_catalog.py)."""

from __future__ import annotations

from pathlib import Path

from builders import plan, scripted, step
from zerog import Engine, Goal
from zerog.cache.db import CacheDB
from zerog.cache.embed import Embedder
from zerog.cache.semantic import PlanCache
from zerog.event_catalog import PlanCacheUsed, UnknownEvent, parse
from zerog.store import Store

CHECK = 'grep -qx "MAX_RETRIES = $(cat want.txt)" config.py'


def _set_to(value: str) -> dict[str, object]:
    edit = {
        "kind": "edit",
        "path": "config.py",
        "search": "MAX_RETRIES = 0",
        "replace": f"MAX_RETRIES = {value}",
    }
    return plan(step("set it", edit))


def _goal(root: Path, want: str) -> Goal:
    root.mkdir()
    (root / "config.py").write_text("MAX_RETRIES = 0\n")
    (root / "want.txt").write_text(want)
    return Goal(text="Set MAX_RETRIES in config.py to 5", workspace=root, checks=[CHECK])


def test_plan_cache_events_are_typed_and_dump_back_the_same(
    tmp_path: Path, embedder: Embedder
) -> None:
    cache = PlanCache(CacheDB(tmp_path / "cache.db"), embedder)
    with Store(tmp_path / "runs.db") as store:
        runs = []
        for root, value in (
            (tmp_path / "a", "5"),
            # The same goal, but this workspace's check wants 7: the reused plan fails.
            (tmp_path / "b", "7"),
        ):
            engine = Engine(
                scripted(_set_to(value)),
                sandbox_name="local",
                write_trace=False,
                plan_cache=cache,
                store=store,
            )
            result = engine.run(_goal(root, value))
            assert result.ok, result.reason
            runs.append(result.run_id)
        events = [e for run_id in runs for e in store.events(run_id)]
    outcomes = []
    for event in events:
        typed = parse(event)
        assert not isinstance(typed, UnknownEvent), (event.kind, typed.problem)
        assert typed.to_data() == event.data, event.kind
        if isinstance(typed, PlanCacheUsed):
            outcomes.append(typed.outcome)
    assert outcomes == ["miss", "stored", "hit", "invalidated", "stored"]
