"""The caching planner on a real SQLite plan cache (and the real embedder): a miss asks
the planner, a plan that worked is stored, a hit skips the planner, a reused plan that
failed is invalidated, and a resumed run never looks."""

from __future__ import annotations

from pathlib import Path

from zerog import context as ctx
from zerog.budget import Meter
from zerog.cache.db import CacheDB
from zerog.cache.embed import Embedder
from zerog.cache.semantic import PlanCache
from zerog.engine.planning import CachingPlanner
from zerog.events import Event, Recorder
from zerog.models.base import Model
from zerog.models.scripted import ScriptedModel
from zerog.types import Budget, Goal, Plan, Step, WriteFileAction

PLAN = Plan(
    steps=(
        Step(
            intent="set the retries",
            actions=(WriteFileAction(path="config.py", content="MAX_RETRIES = 5\n"),),
        ),
    )
)


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def outcomes(self) -> list[object]:
        return [e.data["outcome"] for e in self.events if e.kind == "plan_cache"]


def test_miss_store_hit_invalidate(tmp_path: Path, embedder: Embedder) -> None:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "config.py").write_text("MAX_RETRIES = 0\n")
    goal = Goal(text="Set MAX_RETRIES in config.py to 5", workspace=root, checks=["true"])
    cache = PlanCache(CacheDB(tmp_path / "cache.db"), embedder)
    asked: list[str] = []

    def plan_with(model: Model, context: ctx.Context) -> Plan:
        asked.append(model.name)
        return PLAN

    model = ScriptedModel([], name="planner")
    context = ctx.Context(goal=goal.text, checks=(), env={}, files=(), files_omitted=0, history=())

    def planner(sink: Sink, *, resumed: bool = False) -> tuple[CachingPlanner, Meter]:
        meter = Meter(Budget(), lambda: 0.0)
        recorder = Recorder("run", [sink], lambda: 0.0)
        return CachingPlanner(plan_with, cache, goal, recorder, meter, resumed=resumed), meter

    sink = Sink()
    first, _ = planner(sink)
    assert first.plan(model, context, first=True) == PLAN
    assert asked == ["planner"]
    first.worked(PLAN.steps, replaying=False)
    assert sink.outcomes() == ["miss", "stored"]

    sink = Sink()
    second, meter = planner(sink)
    assert second.plan(model, context, first=True).steps == PLAN.steps
    assert asked == ["planner"]  # a hit: the planner was not asked
    assert meter.cache_hits == {"plan": 1}
    second.failed()
    assert sink.outcomes() == ["hit", "invalidated"]
    assert second.plan(model, context, first=False) == PLAN  # the next iteration re-plans
    assert asked == ["planner", "planner"]

    sink = Sink()
    resumed, _ = planner(sink, resumed=True)
    resumed.plan(model, context, first=True)
    resumed.worked(PLAN.steps, replaying=True)
    assert sink.outcomes() == []
