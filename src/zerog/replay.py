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
from zerog.events import Event
from zerog.journal import read_journal
from zerog.models.scripted import ScriptedModel, ScriptLine
from zerog.router.replayed import recorded_router
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.workspace import Workspace
from zerog.statedir import STATE_DIR
from zerog.store import Store, StoreError
from zerog.types import Goal, RunResult


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
    goal = Goal.model_validate(row.spec.get("goal", {}))
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
    limits = Limits.model_validate(row.spec.get("limits", {}))
    stuck_after = int(str(row.spec.get("stuck_after", 2)))
    recorded_sandbox = row.spec.get("sandbox")
    engine = Engine(
        model,
        sandbox,
        store=store,
        environ=environ,
        limits=limits,
        stuck_after=stuck_after,
        write_trace=False,
        sandbox_name=str(recorded_sandbox) if recorded_sandbox else None,
        network=bool(row.spec.get("network", False)),
        router=recorded_router(events),
    )
    result = engine.run(
        goal.model_copy(update={"workspace": root}), spec={**row.spec, "replay_of": row.id}
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
