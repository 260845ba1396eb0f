"""The planner of a run, with the plan cache in front of it (cache/semantic.py).

The first plan of a new run may be a verified plan of a similar goal from the cache; a
plan that worked is stored (a reused one is there already); a reused plan that failed is
invalidated, and the next iteration asks the planner. A resumed run never reuses: the
plan its journal replays came from the planner.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zerog import context as ctx
from zerog.budget import Meter
from zerog.events import Recorder
from zerog.models.base import Model
from zerog.types import Goal, Plan, Step

if TYPE_CHECKING:
    from zerog.cache.semantic import PlanCache, Reuse

PlanWith = Callable[[Model, ctx.Context], Plan]


class CachingPlanner:
    """``plan_with`` behind ``cache`` (None: no cache, every plan is the planner's)."""

    def __init__(
        self,
        plan_with: PlanWith,
        cache: PlanCache | None,
        goal: Goal,
        recorder: Recorder,
        meter: Meter,
        *,
        resumed: bool = False,
    ) -> None:
        self.plan_with = plan_with
        self.cache = cache
        self.goal = goal
        self.rec = recorder
        self.meter = meter
        self.resumed = resumed
        self.reused: Reuse | None = None  # the cached plan the last iteration runs

    def plan(self, model: Model, context: ctx.Context, *, first: bool) -> Plan:
        """The plan of an iteration: from the cache for the ``first`` one when it has a
        verified plan for the goal, else from the planner."""
        self.reused = self._lookup() if first else None
        return self.reused.plan if self.reused else self.plan_with(model, context)

    def _lookup(self) -> Reuse | None:
        """A verified plan from the plan cache (first iteration of a live run only)."""
        if self.cache is None or self.resumed:
            return None
        reuse = self.cache.lookup(self.goal)
        self.rec.emit(
            "plan_cache",
            outcome="hit" if reuse else "miss",
            entry=reuse.entry if reuse else None,
            similarity=round(reuse.similarity, 4) if reuse else None,
        )
        if reuse is not None:
            self.meter.cache_hits["plan"] = self.meter.cache_hits.get("plan", 0) + 1
        return reuse

    def worked(self, steps: Sequence[Step], *, replaying: bool) -> None:
        """After success: store the plan that worked, ``steps`` with the actions that
        ran (a reused one is already stored; a replayed success was stored before)."""
        if self.cache is None or self.reused is not None or replaying:
            return
        entry = self.cache.store(self.goal, Plan(steps=tuple(steps)))
        self.rec.emit("plan_cache", outcome="stored", entry=entry)

    def failed(self) -> None:
        """The iteration failed: a reused plan is invalidated (the next one re-plans)."""
        if self.reused is not None and self.cache is not None:
            self.cache.invalidate(self.reused.entry)
            self.rec.emit("plan_cache", outcome="invalidated", entry=self.reused.entry)
