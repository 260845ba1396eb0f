"""The compiled router at run time: score a step, route it when confident, demote on failure."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path

from zerog.router.artifact import RouterFileError, RouterModel, load, save
from zerog.router.base import Decision, StepView
from zerog.router.features import fill, hashed, step_features

Table = dict[int, tuple[float, ...]]


def probabilities(bias: Sequence[float], table: Table, indices: Sequence[int]) -> list[float]:
    """Softmax over the rows (row 0: ask the model) for a step's hashed features."""
    scores = list(bias)
    for index in indices:
        row = table.get(index)
        if row is not None:
            for k, w in enumerate(row):
                scores[k] += w
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


class CompiledRouter:
    """Routes a step when its best row is a route with confidence at or above the threshold.

    A demotion multiplies that route's confidence by ``demotion_factor``; after
    ``max_demotions`` it is not used at all. With ``path`` demotions are written back to
    the router file (atomically, re-read first), so the next run trusts the route less too.
    """

    def __init__(
        self,
        model: RouterModel,
        path: Path | None = None,
        *,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.model = model
        self.path = path
        self.warn = warn
        self.demotions = {c.name: c.demotions for c in model.classes}
        self.table = model.table()

    @classmethod
    def from_file(cls, path: Path, warn: Callable[[str], None] | None = None) -> CompiledRouter:
        return cls(load(path), path, warn=warn)

    @property
    def name(self) -> str:
        return "compiled"

    def decide(self, view: StepView) -> Decision:
        step = view.step
        checks = [c.label for c in view.goal.checks]
        names = step_features(step, checks, view.index, len(view.plan.steps))
        probs = probabilities(self.model.bias, self.table, hashed(names))
        if len(probs) == 1:
            return Decision(reason="the router has no routes")
        best = max(range(1, len(probs)), key=probs.__getitem__)
        route = self.model.classes[best - 1]
        demoted = self.demotions.get(route.name, 0)
        confidence = probs[best] * self.model.demotion_factor**demoted
        decision = Decision(route=route.name, confidence=round(confidence, 6), source="compiled")
        if demoted >= self.model.max_demotions:
            return _with(decision, reason=f"demoted {demoted} times")
        if probs[0] >= probs[best]:
            return _with(decision, reason="the model row scores higher")
        if confidence < self.model.threshold:
            return _with(decision, reason=f"below the threshold {self.model.threshold:.3f}")
        actions = fill(route.actions, step.target)
        if actions is None:
            return _with(decision, reason="the route needs a plain target")
        return Decision(
            route=route.name,
            confidence=decision.confidence,
            routed=True,
            actions=actions,
            source="compiled",
        )

    def demote(self, route: str) -> None:
        if route not in self.demotions:
            return
        self.demotions[route] += 1
        if self.path is None:
            return
        try:  # re-read: another run may have demoted routes of the same file meanwhile
            current = load(self.path)
        except RouterFileError as exc:
            if self.warn is not None:
                self.warn(f"demotion of {route} not saved: {exc}")
            return
        classes = tuple(
            c.model_copy(update={"demotions": c.demotions + 1}) if c.name == route else c
            for c in current.classes
        )
        updated = current.model_copy(update={"classes": classes})
        save(updated, self.path)


def _with(decision: Decision, *, reason: str) -> Decision:
    return Decision(
        route=decision.route,
        confidence=decision.confidence,
        source=decision.source,
        reason=reason,
    )
