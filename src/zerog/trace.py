"""The JSONL trace: one JSON object per event, flushed as it happens."""

from __future__ import annotations

import json
from pathlib import Path
from types import TracebackType
from typing import IO

from zerog.events import Event
from zerog.private import private_dir, private_file


class JsonlTrace:
    """An event sink that appends each event as one line of JSON to a file."""

    def __init__(self, path: Path, handle: IO[str] | None = None) -> None:
        """Append to ``path``, or to ``handle`` when given (already open at ``path``: the
        engine opens the traces under ``.zerog/`` without following links)."""
        self.path = path
        if handle is None:
            private_dir(path.parent)
            private_file(path)  # command output and model text: for its owner only
            handle = path.open("a", encoding="utf-8")
        self._file: IO[str] = handle

    def emit(self, event: Event) -> None:
        record = {"run_id": event.run_id, "seq": event.seq, "ts": event.ts, "kind": event.kind}
        record.update(event.data)
        self._file.write(json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> JsonlTrace:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_trace(path: Path) -> list[dict[str, object]]:
    """Load a trace file back (used by `zerog show`-like tooling and tests)."""
    with path.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]
