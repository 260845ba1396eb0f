"""What a run already did, read back from its events, so a resumed run can skip it.

A resumed run executes the loop again from the start. Every side-effecting operation
(model call, action, step check, sweep, preflight, rollback, snapshot, git commit) first
asks the journal: if its result was recorded, the recorded result is used and nothing
runs; the first operation without a recorded result is where the crash happened, and from
there on the run is live again. Because the loop's decisions depend only on those
results, the replayed prefix takes exactly the same path as the original run.

The store does not write every event on its own (see ``store.GroupCommit``): it holds them
and writes all it holds in one transaction when an event of a kind in ``COMMIT_KINDS``
arrives. What a kill can lose is therefore the tail after the last such event, never a
hole: the recorded events are always a prefix of the emitted ones. The kinds are chosen so
that losing that tail changes nothing a resumed run does (docs/journal.md says why).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from zerog.events import Event

ActionKey = tuple[int, int, int]  # iteration, step, action index
StepKey = tuple[int, int]  # iteration, step
FINAL = -1  # the rollback key of the clean-up after a failed run

# An event of one of these kinds is written, with every event before it, as soon as it is
# emitted; the others wait for the next one. "action" is emitted just before the action
# runs, so an action never runs unrecorded (a kill during it is seen and it is retried from
# its snapshot). The rest are the results the resume reads instead of doing the work again
# (a model call, an action's observation, a step check, a sweep's verdict, the preflight),
# the snapshots it rolls back to, the router's decisions (a demotion is saved in the
# router's file), the git plan and commit, and "validation_started" (so a watcher of the
# store sees a long sweep running).
COMMIT_KINDS = frozenset(
    {
        "git_prepared",
        "snapshot",
        "model_call",
        "action",
        "observation",
        "step_check",
        "validation_started",
        "verdict",
        "preflight",
        "rollback",
        "route",
        "git_commit",
        "run_finished",
    }
)


@dataclass
class Journal:
    base_snapshot: str | None = None
    final_snapshot: str | None = None  # the state the run left (taken before run_finished)
    git_prepared: Mapping[str, object] | None = None  # --git: what was pinned at the start
    git_commit: Mapping[str, object] | None = None  # --git: what was committed at the end
    kept: dict[int, str] = field(default_factory=dict)  # iteration -> its passing snapshot
    responses: dict[int, Mapping[str, object]] = field(default_factory=dict)
    started: dict[ActionKey, Mapping[str, object]] = field(default_factory=dict)
    observations: dict[ActionKey, Mapping[str, object]] = field(default_factory=dict)
    step_checks: dict[StepKey, Mapping[str, object]] = field(default_factory=dict)
    checks: dict[int, list[Mapping[str, object]]] = field(default_factory=dict)
    verdicts: dict[int, Mapping[str, object]] = field(default_factory=dict)
    rollbacks: set[int] = field(default_factory=set)
    routes: dict[StepKey, list[Mapping[str, object]]] = field(default_factory=dict)
    preflight: Mapping[str, object] | None = None  # what the preflight concluded
    iterations: int = 0  # the last iteration that started
    last_seq: int = 0
    elapsed: float = 0.0
    finished: str | None = None


def _int(data: Mapping[str, object], key: str) -> int:
    return int(str(data.get(key, 0)))


def read_journal(events: Sequence[Event]) -> Journal:
    journal = Journal()
    segment_start: float | None = None
    last_ts = 0.0
    for event in events:
        d = event.data
        kind = event.kind
        if kind == "resumed" and segment_start is not None:
            journal.elapsed += last_ts - segment_start
            segment_start = None
        if segment_start is None:
            segment_start = event.ts
        last_ts = event.ts
        journal.last_seq = max(journal.last_seq, event.seq)
        if kind == "snapshot" and d.get("role") == "base":
            journal.base_snapshot = str(d["snapshot"])
        elif kind == "snapshot" and d.get("role") == "final":
            journal.final_snapshot = str(d["snapshot"])
        elif kind == "git_prepared":
            journal.git_prepared = d
        elif kind == "git_commit":
            journal.git_commit = d
        elif kind == "snapshot" and d.get("role") == "passing":
            journal.kept[_int(d, "iteration")] = str(d["snapshot"])
        elif kind == "model_call":
            journal.responses[_int(d, "call")] = d
        elif kind == "action":
            journal.started[(_int(d, "iteration"), _int(d, "step"), _int(d, "index"))] = d
        elif kind == "observation":
            key = (_int(d, "iteration"), _int(d, "step"), _int(d, "index"))
            journal.observations[key] = d
        elif kind == "step_check":
            journal.step_checks[(_int(d, "iteration"), _int(d, "step"))] = d
        elif kind == "check":
            journal.checks.setdefault(_int(d, "iteration"), []).append(d)
        elif kind == "verdict":
            journal.verdicts[_int(d, "iteration")] = d
        elif kind == "rollback":
            journal.rollbacks.add(FINAL if d.get("final") else _int(d, "iteration"))
        elif kind == "preflight":
            journal.preflight = d
        elif kind == "iteration_started":
            journal.iterations = max(journal.iterations, _int(d, "iteration"))
        elif kind == "route":
            journal.routes.setdefault((_int(d, "iteration"), _int(d, "step")), []).append(d)
        elif kind == "run_finished":
            journal.finished = str(d.get("status", ""))
    if segment_start is not None:
        journal.elapsed += last_ts - segment_start
    return journal
