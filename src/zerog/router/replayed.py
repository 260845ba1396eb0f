"""A router that gives back the decisions a run recorded, in order (for ``zerog replay``).

A replay feeds the recorded model answers back in order; a step that was routed must be
routed again, or the worker would take an answer meant for a later step. Each decision of
the replay takes the next recorded ``routed`` or ``model`` decision; a demotion needs
nothing here (the worker's recorded answer for the retry is next in the model's queue).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from zerog.events import Event
from zerog.router.base import Decision, StepView
from zerog.types import Action

_ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(list[Action])


class RecordedRouter:
    def __init__(self, decisions: Sequence[Decision]) -> None:
        self._queue = deque(decisions)

    @property
    def name(self) -> str:
        return "recorded"

    def decide(self, view: StepView) -> Decision:
        if not self._queue:
            return Decision(reason="no recorded decision left")
        return self._queue.popleft()

    def demote(self, route: str) -> None:
        return None


def recorded_router(events: Sequence[Event]) -> RecordedRouter | None:
    """The decisions of a recorded run, or None when it made none (it ran without a router)."""
    decisions: list[Decision] = []
    for event in events:
        if event.kind != "route":
            continue
        d = event.data
        route = str(d.get("route", ""))
        confidence = float(str(d.get("confidence", 0.0)))
        if d.get("decision") == "model":
            decisions.append(Decision(route=route, confidence=confidence, reason="recorded"))
        elif d.get("decision") == "routed":
            try:
                actions = tuple(_ACTIONS.validate_python(d.get("action_list")))
            except ValidationError:
                actions = ()
            decisions.append(
                Decision(route=route, confidence=confidence, routed=bool(actions), actions=actions)
            )
    return RecordedRouter(decisions) if decisions else None
