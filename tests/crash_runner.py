"""Runs the durable workload and kills its own process with SIGKILL at a named point.

Usage: python crash_runner.py STORE ROOT RUN_ID KIND NTH MODE
MODE "after": the process dies right after the NTH event of KIND is durable.
MODE "during": it dies inside the write of that event, before the transaction commits.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

from zerog.bench.crash import LOG_VAR, goal
from zerog.events import Event
from zerog.loop import Engine
from zerog.models.scripted import ScriptedModel
from zerog.store import Store


class KillingStore(Store):
    def __init__(self, path: Path, kind: str, nth: int, mode: str) -> None:
        super().__init__(path)
        self.kind, self.nth, self.mode, self.seen = kind, nth, mode, 0

    def emit(self, event: Event) -> None:
        hit = False
        if event.kind == self.kind:
            self.seen += 1
            hit = self.seen == self.nth
        if hit and self.mode == "during":
            with self._write() as db:
                db.execute(
                    "INSERT INTO events (run_id, seq, ts, kind, data) VALUES (?, ?, ?, ?, ?)",
                    (event.run_id, event.seq, event.ts, event.kind, "{}"),
                )
                os.kill(os.getpid(), signal.SIGKILL)
        super().emit(event)
        if hit and self.mode == "after":
            os.kill(os.getpid(), signal.SIGKILL)


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
    )
    spec = {"model": f"scripted:{Path(root) / 'script.jsonl'}"}
    result = engine.run(goal(workspace), spec=spec)
    sys.exit(0 if result.ok else 1)


if __name__ == "__main__":
    main()
