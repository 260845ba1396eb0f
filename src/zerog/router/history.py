"""Recorded steps read back from the run store: what each step was, which actions it took,
where those actions came from (planner, worker, a route) and how it ended.

Events are untrusted input here too (the store is a file): a malformed step, action or
event is skipped, never trusted or raised as a traceback.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from zerog.event_catalog import (
    ActionStarted,
    PlanMade,
    RouteDecided,
    RunFinished,
    RunStarted,
    StepDone,
    StepFailed,
    parse,
)
from zerog.events import Event
from zerog.store import Store
from zerog.types import Action, Step


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
        match parse(event):
            case RunStarted() as started:
                checks = started.checks
            case PlanMade() as made:
                plans[made.iteration] = made.steps
            case RunFinished() as finished:
                run_ok = finished.status == "success"
            case ActionStarted(action=action) as started_action if action is not None:
                key = (started_action.iteration, started_action.step)
                actions.setdefault(key, {})[started_action.index] = action
            case StepDone() | StepFailed() as end:
                ended[(end.iteration, end.step)] = isinstance(end, StepDone)
            case RouteDecided(iteration=int(iteration), step=int(step)) as route:
                if route.decision == "routed":
                    routed_count[(iteration, step)] = route.actions or 0
                elif route.decision == "demoted":
                    demoted.add((iteration, step))
            case _:
                pass  # other kinds say nothing of steps; an unknown event is skipped
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
