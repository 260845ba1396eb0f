"""Events: every arrow of the loop is one, fanned out to sinks (trace file, progress, store)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

JSON = object  # anything json.dumps accepts: plain data, lists and dicts of it


@dataclass(frozen=True, slots=True)
class Event:
    run_id: str
    seq: int
    ts: float
    kind: str
    data: Mapping[str, JSON]


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class Recorder:
    """Numbers events of one run, stamps them, and hands them to every sink in order."""

    def __init__(
        self,
        run_id: str,
        sinks: Sequence[EventSink],
        wall_clock: Callable[[], float],
        start_seq: int = 0,
    ) -> None:
        self.run_id = run_id
        self._sinks = tuple(sinks)
        self._clock = wall_clock
        self._seq = start_seq
        self.muted = False  # while a resumed run replays what is already recorded

    def emit(self, kind: str, **data: JSON) -> None:
        if self.muted:
            # Replaying a resumed run: the events are recorded already. Sinks that keep
            # run state from them (``follows_replay``, e.g. an escalating model) still see
            # them, unnumbered, so that they are where they were when the run stopped.
            replay = Event(self.run_id, 0, self._clock(), kind, data)
            for sink in self._sinks:
                if getattr(sink, "follows_replay", False):
                    sink.emit(replay)
            return
        self._seq += 1
        event = Event(self.run_id, self._seq, self._clock(), kind, data)
        for sink in self._sinks:
            sink.emit(event)
