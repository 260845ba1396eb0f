"""Runs the durable workload and kills its own process with SIGKILL at a named point.

Usage: python crash_runner.py STORE ROOT RUN_ID KIND NTH MODE
The store holds a run's events and commits them in groups (journal.COMMIT_KINDS), so:
MODE "after": the process dies right after the commit that carries the NTH event of KIND
  (a commit boundary: that event and everything before it are in the store).
MODE "during": it dies inside that commit's transaction, before it commits.
MODE "emitted": it dies as soon as that event is emitted, whatever has been committed by
  then (between two commit boundaries, the events since the last one are lost).
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from zerog.bench.crash import LOG_VAR, goal
from zerog.engine.loop import Engine
from zerog.events import Event
from zerog.models.scripted import ScriptedModel
from zerog.runspec import RunSpec
from zerog.store import Store


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class KillingStore(Store):
    def __init__(self, path: Path, kind: str, nth: int, mode: str) -> None:
        super().__init__(path)
        self.kind, self.nth, self.mode, self.seen = kind, nth, mode, 0

    def append(self, events: Sequence[Event]) -> None:
        before = self.seen
        self.seen += sum(1 for e in events if e.kind == self.kind)
        hit = self.mode in ("after", "during") and before < self.nth <= self.seen
        if hit and self.mode == "during":
            with self._write() as db:
                for event in events:
                    db.execute(
                        "INSERT INTO events (run_id, seq, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                        (event.run_id, event.seq, event.ts, event.kind, "{}"),
                    )
                _die()
        super().append(events)
        if hit:
            _die()


class KillAt:
    """A sink after the store's: dies when the NTH event of KIND is emitted."""

    def __init__(self, kind: str, nth: int) -> None:
        self.kind, self.nth, self.seen = kind, nth, 0

    def emit(self, event: Event) -> None:
        if event.kind == self.kind:
            self.seen += 1
            if self.seen == self.nth:
                _die()


def main() -> None:
    store_path, root, run_id, kind, nth, mode = sys.argv[1:7]
    workspace = Path(root) / "ws"
    environ = {"PATH": os.environ["PATH"], LOG_VAR: str(Path(root) / "side-effects.log")}
    store = KillingStore(Path(store_path), kind, int(nth), mode)
    model = ScriptedModel.from_file(Path(root) / "script.jsonl")
    engine = Engine(
        model,
        store=store,
        environ=environ,
        write_trace=False,
        new_id=lambda: run_id,
        sandbox_name="local",
        sinks=[KillAt(kind, int(nth))] if mode == "emitted" else [],
    )
    spec = RunSpec(model=f"scripted:{Path(root) / 'script.jsonl'}")
    result = engine.run(goal(workspace), spec=spec)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
