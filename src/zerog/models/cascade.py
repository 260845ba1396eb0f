"""Escalation: a cheap model first, a stronger one once the cheap one has failed.

:class:`Escalating` is a model wrapper and an event sink at once. Given to the engine as
its model and as one of its sinks, it answers with the first model until the run reports
``after`` failed iterations (the loop's ``feedback`` event), then with the next model,
and so on down the list. The stronger models are built only when first needed, so a run
the small model finishes never loads them.

It keeps per-run state (how many iterations failed): make one per run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zerog.errors import ConfigError
from zerog.events import Event
from zerog.models.base import Model, Request, Response

ModelFactory = Callable[[], Model]


class Escalating:
    """Answers with ``first``, then with each of ``then`` after ``after`` more failed
    iterations (``after=1``: every failed iteration moves one model up)."""

    def __init__(self, first: Model, then: Sequence[ModelFactory], *, after: int = 1) -> None:
        if after < 1:
            raise ConfigError("escalation needs at least one failed iteration (after >= 1)")
        self._models: list[Model] = [first]
        self._factories = list(then)
        self._after = after
        self._failures = 0
        self.level = 0  # index of the model that answers now

    @property
    def name(self) -> str:
        first = self._models[0].name
        return f"{first}>escalating" if self._factories else first

    def current(self) -> Model:
        while len(self._models) <= self.level:
            self._models.append(self._factories[len(self._models) - 1]())
        return self._models[self.level]

    def escalate(self) -> bool:
        """Move one model up now; false when already at the strongest."""
        if self.level >= len(self._factories):
            return False
        self.level += 1
        self._failures = 0
        return True

    def complete(self, request: Request) -> Response:
        return self.current().complete(request)

    def emit(self, event: Event) -> None:
        if event.kind != "feedback":
            return
        self._failures += 1
        if self._failures >= self._after:
            self.escalate()
