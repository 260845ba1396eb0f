"""Recorded steps read back from the run store: what each step was, which actions it took,
where those actions came from (planner, worker, a route) and how it ended.

Events are untrusted input here too (the store is a file): a malformed step, action or
event is skipped, never trusted or raised as a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import TypeAdapter, ValidationError

from zerog.events import Event
from zerog.store import Store
from zerog.types import Action, Step

_ACTION: TypeAdapter[Action] = TypeAdapter(Action)


@dataclass(frozen=True, slots=True)
class RecordedStep:
    run_id: str
    iteration: int
    index: int
    step: Step
    n_steps: int
    checks: tuple[str, ...]  # the labels of the goal's checks (context)
    actions: tuple[Action, ...]  # the actions of the step, from the planner or the worker
    done: bool  # the step ended with step_done
    run_ok: bool  # the run ended in success
    routed: bool  # the actions came from a route that was not demoted


def _int(data: Mapping[str, object], key: str) -> int | None:
    value = data.get(key)
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _action(data: object) -> Action | None:
    try:
        return _ACTION.validate_python(data)
    except ValidationError:
        return None


def recorded_steps(run_id: str, events: Sequence[Event]) -> list[RecordedStep]:
    """Every step of one run that started, in order."""
    plans: dict[int, tuple[Step, ...]] = {}
    actions: dict[tuple[int, int], dict[int, Action]] = {}
    ended: dict[tuple[int, int], bool] = {}
    routed_count: dict[tuple[int, int], int] = {}
    demoted: set[tuple[int, int]] = set()
    checks: tuple[str, ...] = ()
    run_ok = False
    for event in events:
        d = event.data
        iteration, step = _int(d, "iteration"), _int(d, "step")  # step: its index
        if event.kind == "run_started":
            raw = d.get("checks")
            checks = tuple(str(c) for c in raw) if isinstance(raw, list) else ()
        elif event.kind == "plan" and iteration is not None:
            raw_steps = d.get("steps")
            if not isinstance(raw_steps, list):
                continue
            try:
                plans[iteration] = tuple(Step.model_validate(s) for s in raw_steps)
            except ValidationError:
                continue
        elif iteration is None or step is None:
            if event.kind == "run_finished":
                run_ok = d.get("status") == "success"
        elif event.kind == "action":
            index, action = _int(d, "index"), _action(d.get("action"))
            if index is not None and action is not None:
                actions.setdefault((iteration, step), {})[index] = action
        elif event.kind in ("step_done", "step_failed"):
            ended[(iteration, step)] = event.kind == "step_done"
        elif event.kind == "route":
            if d.get("decision") == "routed":
                count = _int(d, "actions")
                routed_count[(iteration, step)] = count or 0
            elif d.get("decision") == "demoted":
                demoted.add((iteration, step))
    out: list[RecordedStep] = []
    for iteration, steps in sorted(plans.items()):
        for index, planned in enumerate(steps):
            key = (iteration, index)
            if key not in ended:
                continue
            taken = actions.get(key, {})
            first = routed_count.get(key, 0) if key in demoted else 0
            own = tuple(taken[i] for i in sorted(taken) if i >= first)
            out.append(
                RecordedStep(
                    run_id=run_id,
                    iteration=iteration,
                    index=index,
                    step=planned,
                    n_steps=len(steps),
                    checks=checks,
                    actions=own,
                    done=ended[key],
                    run_ok=run_ok,
                    routed=key in routed_count and key not in demoted,
                )
            )
    return out


def store_steps(store: Store, limit: int) -> list[RecordedStep]:
    """The recorded steps of the ``limit`` newest runs of ``store``, oldest run first."""
    steps: list[RecordedStep] = []
    for row in reversed(store.runs(limit)):
        steps.extend(recorded_steps(row.id, store.events(row.id)))
    return steps
