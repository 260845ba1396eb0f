"""What a router sees (a step in its plan and goal) and what it answers (a decision)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from zerog.types import Action, Goal, Plan, Step

Source = Literal["builtin", "compiled"]


@dataclass(frozen=True, slots=True)
class StepView:
    """Step ``index`` of ``plan``, run for ``goal`` (its workspace already resolved)."""

    goal: Goal
    plan: Plan
    index: int

    @property
    def step(self) -> Step:
        return self.plan.steps[self.index]


@dataclass(frozen=True, slots=True)
class Decision:
    """A router's answer. ``routed`` means: run ``actions`` instead of asking the worker.

    A decision that is not routed still names the best route and its confidence (empty
    when nothing matched), so the event log shows how close the router came.
    """

    route: str = ""
    confidence: float = 0.0
    routed: bool = False
    actions: tuple[Action, ...] = field(default=())
    source: Source | None = None
    reason: str = ""


class Router(Protocol):
    """Decides whether a step is predictable; learns nothing during a run except demotions."""

    @property
    def name(self) -> str: ...

    def decide(self, view: StepView) -> Decision: ...

    def demote(self, route: str) -> None:
        """The actions of ``route`` failed a step: trust it less from now on."""
        ...
