"""RunSpec: the spec the engine records with a run, read back typed and written back
unchanged; old runs' missing keys default, a malformed spec is a StoreError."""

from __future__ import annotations

from pathlib import Path

import pytest

from builders import ANSWER_FIX, engine, goal, plan, scripted, step
from zerog.runspec import GitRequest, RunSpec
from zerog.sandbox.base import Limits
from zerog.store import Store, StoreError
from zerog.strategies import StrategyOptions


def test_a_recorded_spec_reads_back_typed_and_writes_back_the_same(
    workspace: Path, tmp_path: Path
) -> None:
    front = RunSpec(
        model="scripted:m.jsonl",
        router="builtin",
        strategy=StrategyOptions(answer_file="app.py", escalate=("scripted:big.jsonl",)),
    )
    with Store(tmp_path / "runs.db") as store:
        model = scripted(plan(step("fix", ANSWER_FIX)))
        result = engine(model, store=store, stuck_after=3, limits=Limits(timeout=9)).run(
            goal(workspace), spec=front
        )
        assert result.ok, result.reason
        recorded = store.find(result.run_id).spec
    spec = RunSpec.from_recorded(recorded)
    assert spec.to_recorded() == recorded
    assert spec.recorded_goal() == goal(workspace)
    assert (spec.model, spec.router, spec.router_file) == ("scripted:m.jsonl", "builtin", None)
    assert spec.strategy == front.strategy
    assert (spec.limits.timeout, spec.stuck_after) == (9, 3)
    assert (spec.sandbox, spec.network, spec.sidecar, spec.git) == ("local", False, "wasm", None)


def test_an_old_spec_takes_the_defaults() -> None:
    spec = RunSpec.from_recorded({"model": "local", "unknown": 1, "router": None})
    assert spec == RunSpec()
    assert spec.strategy == StrategyOptions()
    with pytest.raises(StoreError, match="recorded no goal"):
        spec.recorded_goal()


def test_optional_keys_are_recorded_only_when_set() -> None:
    spec = RunSpec(batch="b1", source="/src", git=GitRequest(allow_dirty=True))
    recorded = spec.to_recorded()
    assert (recorded["batch"], recorded["source"], recorded["git"]) == (
        "b1",
        "/src",
        {"allow_dirty": True},
    )
    assert "replay_of" not in recorded
    assert "goal" not in recorded
    assert RunSpec.from_recorded(recorded) == spec


@pytest.mark.parametrize(
    ("recorded", "where"),
    [
        ({"goal": {"text": "x"}}, "goal"),
        ({"limits": {"timeout": -1}}, "limits.timeout"),
        ({"stuck_after": "often"}, "stuck_after"),
        ({"git": "yes"}, "git"),
    ],
)
def test_a_malformed_spec_is_a_store_error(recorded: dict[str, object], where: str) -> None:
    with pytest.raises(StoreError, match=f"malformed: {where}"):
        RunSpec.from_recorded(recorded)
