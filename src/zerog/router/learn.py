"""Compile a router from recorded steps: which actions recur, and a classifier that knows
when a step is one of them.

1. Examples: every recorded step the worker (not the planner inline, not a route) carried
   out. Its label is its action template (``features.template``).
2. Routes: a label becomes a route when every step that took it ended ``step_done``, at
   least ``min_support`` of them belong to successful runs, and those span at least
   ``min_runs`` runs. Every other example is labelled 'ask the model' (row 0).
3. Split by run: the runs are ordered by the hash of their id and the first
   ``floor(holdout * runs)`` of them are held out (so the runs that calibrate were never
   trained on, and the share is exact: a coin per run could hold out most of a small
   history and leave too little to train on).
4. Train a multinomial logistic regression (sparse hashed features, L2, AdaGrad, pure
   Python) on the training part, leaving out features seen in fewer than
   ``min_feature_count`` training steps.
5. Calibrate: the threshold is the lowest confidence at which the held-out routed
   decisions are at least ``target_precision`` correct (never below ``floor``). With no
   held-out routed decision to learn from, the threshold is ``fallback``; when no threshold
   reaches the target, it is above 1 (the router routes nothing).
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zerog.router.artifact import Calibration, RouteClass, RouterModel, quantize
from zerog.router.compiled import probabilities
from zerog.router.features import DIM, FEATURE_VERSION, hashed, step_features, template
from zerog.router.history import RecordedStep
from zerog.text import one_line

NEVER = 1.01  # a threshold no confidence reaches


@dataclass(frozen=True, slots=True)
class Example:
    run_id: str
    features: tuple[int, ...]
    label: str


@dataclass(frozen=True, slots=True)
class Settings:
    min_support: int = 3
    min_runs: int = 2
    min_feature_count: int = 3
    holdout: float = 0.25
    target_precision: float = 0.99
    floor: float = 0.5
    fallback: float = 0.9
    epochs: int = 60
    learning_rate: float = 0.5
    l2: float = 1e-4


def examples(steps: Sequence[RecordedStep]) -> tuple[list[Example], dict[str, RecordedStep]]:
    """Examples of the worker's steps, and one recorded step per label (for route names)."""
    out: list[Example] = []
    first: dict[str, RecordedStep] = {}
    for s in steps:
        if s.step.actions or s.routed or not s.actions:
            continue
        names = step_features(s.step, s.checks, s.index, s.n_steps)
        label = template(s.actions, s.step.target)
        out.append(Example(s.run_id, hashed(names), label))
        first.setdefault(label, s)
    return out, first


def route_labels(steps: Sequence[RecordedStep], settings: Settings) -> dict[str, tuple[int, int]]:
    """Labels that qualify as routes -> (support, runs)."""
    failed: set[str] = set()
    support: Counter[str] = Counter()
    runs: dict[str, set[str]] = {}
    for s in steps:
        if s.step.actions or s.routed or not s.actions:
            continue
        label = template(s.actions, s.step.target)
        if not s.done:
            failed.add(label)
        elif s.run_ok:
            support[label] += 1
            runs.setdefault(label, set()).add(s.run_id)
    return {
        label: (count, len(runs[label]))
        for label, count in support.items()
        if label not in failed
        and count >= settings.min_support
        and len(runs[label]) >= settings.min_runs
    }


def heldout_runs(run_ids: Iterable[str], share: float) -> frozenset[str]:
    """The runs held out for calibration: an exact share, chosen by a hash of the id."""
    ordered = sorted(set(run_ids), key=lambda r: (hashlib.sha256(r.encode()).digest(), r))
    return frozenset(ordered[: math.floor(share * len(ordered))])


def train(
    data: Sequence[tuple[tuple[int, ...], int]], rows: int, settings: Settings
) -> tuple[list[float], dict[int, list[float]]]:
    """Multinomial logistic regression by AdaGrad over (features, row) examples."""
    counts = Counter(data)  # repetitive workloads repeat examples: weigh, do not repeat
    total = sum(counts.values())
    bias = [0.0] * rows
    weights: dict[int, list[float]] = {}
    g_bias = [1e-8] * rows
    g_w: dict[int, list[float]] = {}
    for features, _ in counts:
        for f in features:
            weights.setdefault(f, [0.0] * rows)
            g_w.setdefault(f, [1e-8] * rows)
    for _ in range(settings.epochs):
        grad_b = [0.0] * rows
        grad_w: dict[int, list[float]] = {}
        for (features, row), n in counts.items():
            scores = list(bias)
            for f in features:
                w = weights[f]
                for k in range(rows):
                    scores[k] += w[k]
            top = max(scores)
            exps = [math.exp(s - top) for s in scores]
            z = sum(exps)
            for k in range(rows):
                err = n * (exps[k] / z - (1.0 if k == row else 0.0)) / total
                grad_b[k] += err
                for f in features:
                    grad_w.setdefault(f, [0.0] * rows)[k] += err
        for k in range(rows):
            g_bias[k] += grad_b[k] ** 2
            bias[k] -= settings.learning_rate * grad_b[k] / math.sqrt(g_bias[k])
        for f, grads in grad_w.items():
            w, g = weights[f], g_w[f]
            for k in range(rows):
                step = grads[k] + settings.l2 * w[k]
                g[k] += step**2
                w[k] -= settings.learning_rate * step / math.sqrt(g[k])
    return bias, weights


@dataclass(frozen=True, slots=True)
class Scored:
    confidence: float
    predicted: int  # the best route row (>= 1), or 0 when the model row wins
    truth: int


def score(model: RouterModel, data: Sequence[tuple[tuple[int, ...], int]]) -> list[Scored]:
    out: list[Scored] = []
    table = model.table()
    for features, truth in data:
        probs = probabilities(model.bias, table, features)
        if len(probs) == 1:
            out.append(Scored(probs[0], 0, truth))
            continue
        best = max(range(1, len(probs)), key=probs.__getitem__)
        predicted = best if probs[best] > probs[0] else 0
        out.append(Scored(probs[best], predicted, truth))
    return out


def calibrate(scored: Sequence[Scored], settings: Settings) -> tuple[float, int, int, str]:
    """(threshold, routed, correct, note) from held-out scores (see the module docstring)."""
    routable = sorted((s for s in scored if s.predicted), key=lambda s: -s.confidence)
    if not routable:
        return settings.fallback, 0, 0, "no held-out step scored as a route: fallback threshold"
    best: float | None = None
    correct = 0
    for n, s in enumerate(routable, start=1):
        correct += s.predicted == s.truth
        last = n == len(routable) or routable[n].confidence < s.confidence
        if last and correct / n >= settings.target_precision:
            best = max(s.confidence, settings.floor)
    if best is None:
        return NEVER, 0, 0, "no threshold reaches the target precision: nothing is routed"
    kept = [s for s in routable if s.confidence >= best]
    return best, len(kept), sum(s.predicted == s.truth for s in kept), "calibrated"


@dataclass(frozen=True, slots=True)
class Compiled:
    model: RouterModel
    examples: int
    train_examples: int
    heldout_examples: int


def _route_name(number: int, step: RecordedStep) -> str:
    op = step.step.op or "step"
    words = "-".join(one_line(step.step.intent, 40).lower().split()[:4])
    slug = "".join(ch for ch in words if ch.isalnum() or ch == "-")[:40] or "route"
    return f"compiled:{number}:{op}:{slug}"


def compile_router(steps: Sequence[RecordedStep], settings: Settings = Settings()) -> Compiled:
    found, first = examples(steps)
    routes = route_labels(steps, settings)
    labels = sorted(routes, key=lambda label: (-routes[label][0], label))
    rows = {label: k + 1 for k, label in enumerate(labels)}
    classes = tuple(
        RouteClass(
            name=_route_name(k + 1, first[label]),
            actions=label,
            support=routes[label][0],
            runs=routes[label][1],
        )
        for k, label in enumerate(labels)
    )
    held = heldout_runs((e.run_id for e in found), settings.holdout)
    train_part = [(e.features, rows.get(e.label, 0)) for e in found if e.run_id not in held]
    held_part = [(e.features, rows.get(e.label, 0)) for e in found if e.run_id in held]
    seen = Counter(f for features, _ in train_part for f in features)
    train_part = [  # a feature seen once (a run's own numbers, names) only adds weight rows
        (tuple(f for f in features if seen[f] >= settings.min_feature_count), row)
        for features, row in train_part
    ]
    bias, weights = train(train_part, len(classes) + 1, settings)
    bias_q, scale, rows_q = quantize(bias, weights)
    draft = RouterModel(
        feature_version=FEATURE_VERSION,
        dim=DIM,
        classes=classes,
        bias=bias_q,
        scale=scale,
        weights=rows_q,
        threshold=NEVER,
        calibration=Calibration(
            target_precision=settings.target_precision,
            heldout_runs=0,
            heldout_steps=0,
            routed=0,
            correct=0,
        ),
        trained_runs=len({e.run_id for e in found} - held),
        trained_steps=len(train_part),
    )
    threshold, routed, correct, note = calibrate(score(draft, held_part), settings)
    calibration = Calibration(
        target_precision=settings.target_precision,
        heldout_runs=len(held),
        heldout_steps=len(held_part),
        routed=routed,
        correct=correct,
        note=note,
    )
    model = RouterModel.model_validate(
        {
            **draft.model_dump(mode="json"),
            "threshold": math.floor(threshold * 1e6) / 1e6,  # down: the calibrated one passes
            "calibration": calibration.model_dump(mode="json"),
        }
    )
    return Compiled(model, len(found), len(train_part), len(held_part))
