"""The loop's side of routing: ask the router, record the decision, undo a failed route.

Every decision is a ``route`` event (router, route, confidence, decision, reason, decision
time): ``model`` (the worker is asked), ``routed`` (with the actions and the snapshot taken
before them), ``demoted`` (the routed actions failed the step: the workspace is back at that
snapshot, the route is demoted, and the worker retries the step in the same iteration; its
actions are numbered after the routed ones). A resumed run replays the recorded decisions,
so it takes the same path and its model calls line up with the recorded responses.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from zerog.engine.replayer import Replayer
from zerog.event_catalog import RouteDecided, kind_of, parse_data
from zerog.events import Recorder
from zerog.router.base import Decision, Router, StepView
from zerog.sandbox.workspace import Snapshot, Workspace
from zerog.types import Action, Goal, Plan


@dataclass(frozen=True, slots=True)
class Routed:
    """A routed step. ``actions`` is empty when a resumed run knows they were demoted."""

    decision: Decision
    actions: tuple[Action, ...]
    snapshot: Snapshot | str | None
    offset: int  # the worker's retry numbers its actions from here
    replayed_demotion: bool = False


class RouteGate:
    """Routes a run's steps (``goal`` in ``workspace``); decisions are recorded with
    ``recorder`` and, while the run replays, read back through ``replayer``."""

    def __init__(
        self,
        router: Router,
        replayer: Replayer,
        recorder: Recorder,
        workspace: Workspace,
        goal: Goal,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.router = router
        self.replayer = replayer
        self.rec = recorder
        self.workspace = workspace
        self.goal = goal
        self.clock = clock

    def route(self, iteration: int, plan: Plan, index: int) -> Routed | None:
        """The routed actions of step ``index``, or None: ask the worker."""
        if self.replayer.replaying:
            return self._replayed(iteration, index)
        start = self.clock()
        decision = self.router.decide(StepView(self.goal, plan, index))
        elapsed_ms = round((self.clock() - start) * 1000, 4)
        common: dict[str, object] = {
            "iteration": iteration,
            "step": index,
            "router": self.router.name,
            "route": decision.route,
            "confidence": decision.confidence,
            "ms": elapsed_ms,
        }
        if not decision.routed:
            self.rec.emit("route", decision="model", reason=decision.reason, **common)
            return None
        snap = self.workspace.snapshot()
        self.rec.emit(
            "route",
            decision="routed",
            source=decision.source,
            actions=len(decision.actions),
            action_list=[a.model_dump(mode="json") for a in decision.actions],
            snapshot=snap.id,
            **common,
        )
        return Routed(decision, decision.actions, snap, len(decision.actions))

    def _replayed(self, iteration: int, index: int) -> Routed | None:
        """The recorded decision; without one the original run did not route this step
        (or stopped right before), and the worker is asked (live from there on)."""
        records = [
            parse_data(kind_of(RouteDecided), r) for r in self.replayer.routes(iteration, index)
        ]
        first = records[0] if records else None
        if not isinstance(first, RouteDecided) or first.decision != "routed":
            return None
        if first.action_list is None:
            return None
        actions = first.action_list
        demoted = any(isinstance(r, RouteDecided) and r.decision == "demoted" for r in records)
        decision = Decision(
            route=first.route,
            confidence=first.confidence,
            routed=True,
            actions=actions,
        )
        return Routed(
            decision,
            () if demoted else actions,
            first.snapshot,
            len(actions),
            replayed_demotion=demoted,
        )

    def demote(self, iteration: int, index: int, routed: Routed, failure: str) -> int:
        """Undo a failed routed step and demote its route; returns the retry's first
        action index."""
        if routed.replayed_demotion:
            return routed.offset
        self.replayer.go_live(f"demotion of the route of step {index + 1}")
        snap = routed.snapshot
        if isinstance(snap, str):
            snap = self.workspace.load(snap)
        written = removed = 0
        if snap is not None:
            stats = self.workspace.restore(snap)
            written, removed = stats.written, stats.removed
        self.router.demote(routed.decision.route)
        self.rec.emit(
            "route",
            iteration=iteration,
            step=index,
            router=self.router.name,
            route=routed.decision.route,
            confidence=routed.decision.confidence,
            decision="demoted",
            reason=failure,
            written=written,
            removed=removed,
        )
        return routed.offset
