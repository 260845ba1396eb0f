"""Replaying a recorded run: the recorded model answers, live actions, divergences reported.

The replay starts from the run's base snapshot, restored into a fresh directory, and feeds
the engine the model responses the run received, in order (read with the engine's
replayer, engine/replayer.py), so no model is called. Every observation and verdict is
compared with the recording.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from zerog.engine.loop import Engine
from zerog.engine.replayer import had_preflight, recorded_calls
from zerog.errors import ZerogError
from zerog.events import Event
from zerog.journal import read_journal
from zerog.models.scripted import ScriptedModel, ScriptLine
from zerog.models.spec import with_cascade
from zerog.router.replayed import recorded_router
from zerog.runspec import RunSpec
from zerog.sandbox.base import Sandbox
from zerog.sandbox.workspace import Workspace
from zerog.statedir import STATE_DIR
from zerog.store import Store, StoreError
from zerog.strategies import StrategyOptions
from zerog.types import RunResult


@dataclass
class ReplayReport:
    original: str
    replay: RunResult
    model_calls: int
    compared: int = 0
    divergences: list[str] = field(default_factory=list)
    prompt_changes: int = 0

    @property
    def ok(self) -> bool:
        return not self.divergences


def _keyed(events: Sequence[Event]) -> dict[str, Mapping[str, object]]:
    """Observations, step checks and verdicts by where they happened."""
    keyed: dict[str, Mapping[str, object]] = {}
    for e in events:
        d = e.data
        if e.kind == "observation":
            keyed[
                f"iteration {d['iteration']} step {int(str(d['step'])) + 1} action "
                f"{int(str(d['index'])) + 1}"
            ] = d
        elif e.kind == "step_check":
            keyed[f"iteration {d['iteration']} step {int(str(d['step'])) + 1} check"] = d
        elif e.kind == "verdict":
            keyed[f"iteration {d['iteration']} verdict"] = d
        elif e.kind == "run_finished":
            keyed["final status"] = d
    return keyed


def _outcome(data: Mapping[str, object]) -> str:
    if "passed" in data:
        return "passed" if data["passed"] else "failed"
    if "status" in data and "exit_code" in data:
        return f"{data['status']} (exit {data['exit_code']})"
    return str(data.get("status", "?"))


def _replayed_strategy(spec: RunSpec, environ: Mapping[str, str]) -> StrategyOptions:
    """The run's strategy with the models its model spec stood for (``local`` may be a
    cascade) put before the escalated ones, as the run itself did."""
    try:
        _, escalate = with_cascade(spec.model, spec.strategy.escalate, environ=environ)
    except ZerogError:  # a model spec this machine cannot resolve: its own escalation only
        escalate = spec.strategy.escalate
    return spec.strategy.model_copy(update={"escalate": escalate})


def replay_run(
    store: Store,
    run_id: str,
    *,
    environ: Mapping[str, str],
    sandbox: Sandbox | None = None,
    workdir: Path | None = None,
) -> ReplayReport:
    row = store.find(run_id)
    events = store.events(row.id)
    journal = read_journal(events)
    if journal.base_snapshot is None:
        raise StoreError(f"run {row.id} recorded no base snapshot; nothing to replay from")
    spec = RunSpec.from_recorded(row.spec)
    goal = spec.recorded_goal()
    # A run recorded before zerog had a preflight is replayed without one.
    goal = goal.model_copy(update={"preflight": goal.preflight and had_preflight(journal)})
    calls = recorded_calls(journal)
    model = ScriptedModel(
        [ScriptLine(purpose=str(c.get("purpose", "")), text=str(c.get("text", ""))) for c in calls],
        name=f"replay:{row.id}",
    )
    original_state = goal.workspace / STATE_DIR / "snapshots"
    if not (original_state / "manifests" / f"{journal.base_snapshot}.json").exists():
        raise StoreError(
            f"the snapshots of run {row.id} are gone from {original_state}; cannot replay"
        )
    root = Path(tempfile.mkdtemp(prefix=f"zerog-replay-{row.id}-", dir=workdir))
    Workspace(root, original_state).restore(
        Workspace(root, original_state).load(journal.base_snapshot)
    )
    # The run's strategy is rebuilt around the one recorded script: its planner (a code
    # planner for an answer file) and its cascade, each escalated model answering from
    # the same script, in the order the run asked them.
    strategy = _replayed_strategy(spec, environ).build(model, lambda _: model)
    engine = Engine(
        strategy.model,
        sandbox,
        sinks=strategy.sinks,
        plan_with=strategy.plan_with,
        doubt=strategy.doubt,
        store=store,
        environ=environ,
        limits=spec.limits,
        stuck_after=spec.stuck_after,
        write_trace=False,
        sandbox_name=spec.sandbox,
        network=spec.network,
        router=recorded_router(events),
    )
    result = engine.run(
        goal.model_copy(update={"workspace": root}),
        spec=spec.model_copy(update={"replay_of": row.id}),
    )
    report = ReplayReport(original=row.id, replay=result, model_calls=len(calls))
    before = _keyed(events)
    after_events = store.events(result.run_id)
    after = _keyed(after_events)
    for where in before.keys() | after.keys():
        old, new = before.get(where), after.get(where)
        report.compared += 1
        if old is None or new is None:
            report.divergences.append(
                f"{where}: {'only in the replay' if old is None else 'missing in the replay'}"
            )
        elif _outcome(old) != _outcome(new):
            report.divergences.append(
                f"{where}: recorded {_outcome(old)}, replayed {_outcome(new)}"
            )
    digests_new = [e.data.get("request") for e in after_events if e.kind == "model_call"]
    digests_old = [c.get("request") for c in calls]
    report.prompt_changes = sum(1 for a, b in zip(digests_old, digests_new, strict=False) if a != b)
    report.divergences.sort()
    return report
