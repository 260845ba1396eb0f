"""A router that gives back the decisions a run recorded, in order (for ``zerog replay``).

A replay feeds the recorded model answers back in order; a step that was routed must be
routed again, or the worker would take an answer meant for a later step. Each decision of
the replay takes the next recorded ``routed`` or ``model`` decision; a demotion needs
nothing here (the worker's recorded answer for the retry is next in the model's queue).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from zerog.event_catalog import RouteDecided, parse
from zerog.events import Event
from zerog.router.base import Decision, StepView


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
        match parse(event):
            case RouteDecided(decision="model") as route:
                decisions.append(
                    Decision(route=route.route, confidence=route.confidence, reason="recorded")
                )
            case RouteDecided(decision="routed") as route:
                actions = route.action_list or ()
                decisions.append(
                    Decision(
                        route=route.route,
                        confidence=route.confidence,
                        routed=bool(actions),
                        actions=actions,
                    )
                )
            case _:
                pass  # not a decision to give back (or an unknown event)
    return RecordedRouter(decisions) if decisions else None
