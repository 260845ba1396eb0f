"""The degenerate-output guard: notice a generation that has started to repeat itself.

Small models sometimes fall into a loop (the same line, the same phrase, a run of blank
lines) and repeat it until ``max_tokens``: minutes of decoding for an answer that is
useless anyway. :class:`LoopGuard` watches the text as it grows and says when its end is
one span repeated back to back: a span of 1 to ``max_span`` characters, at least
``repeats`` copies, and at least ``min_chars`` characters in all (so that a legitimate
``====`` rule or a short list of equal lines is not a loop). Backends that stream stop
decoding there; the others check the whole answer (:func:`find_loop`). Either way the
response's ``finish`` is :data:`DEGENERATE`.

The check is on characters, not tokens, so it means the same on every backend. It runs
after every ``every`` new characters, on the tail only, with string comparisons done in C:
well under a millisecond per check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

DEGENERATE: Final = "degenerate"


@dataclass(frozen=True)
class LoopRule:
    """What counts as a loop (the defaults were chosen so that code does not trip them)."""

    repeats: int = 4
    min_chars: int = 256
    max_span: int = 512
    every: int = 32

    @property
    def window(self) -> int:
        """How much of the tail a check needs to see."""
        return max(self.min_chars, self.repeats * self.max_span) + self.max_span


LOOPS: Final = LoopRule()  # the default rule (immutable)


def find_loop(text: str, rule: LoopRule = LOOPS) -> int | None:
    """Where the repeated tail of ``text`` starts (the end of its first copy is kept), or
    None when ``text`` does not end in a loop."""
    tail = text[-rule.window :]
    for span in range(1, rule.max_span + 1):
        need = max(rule.min_chars, rule.repeats * span)
        if need > len(tail):
            break
        # The last ``need`` characters repeat with period ``span`` exactly when they equal
        # themselves shifted by one span.
        size = len(tail)
        if tail[-1] != tail[-1 - span] or tail[-2] != tail[-2 - span]:
            continue  # the cheap test first: most spans fail it
        if tail[size - need + span :] == tail[size - need : size - span]:
            start = size - need
            while start > 0 and tail[start - 1] == tail[start - 1 + span]:
                start -= 1
            # Keep one copy of the repeated span: the answer up to where the loop began.
            return len(text) - size + start + span
    return None


class LoopGuard:
    """Fed the pieces of a growing answer; :meth:`feed` turns true once it loops."""

    def __init__(self, rule: LoopRule = LOOPS) -> None:
        self._rule = rule
        self._tail = ""
        self._pending = 0
        self.tripped = False

    def feed(self, piece: str) -> bool:
        """Add ``piece``; true once the answer so far ends in a loop (and from then on)."""
        if self.tripped or not piece:
            return self.tripped
        self._tail += piece
        self._pending += len(piece)
        if self._pending >= self._rule.every:
            self._pending = 0
            self._tail = self._tail[-self._rule.window :]
            self.tripped = find_loop(self._tail, self._rule) is not None
        return self.tripped


def trim_loop(text: str, rule: LoopRule = LOOPS) -> tuple[str, bool]:
    """``text`` cut where its looping tail began, and whether it looped."""
    start = find_loop(text, rule)
    if start is None:
        return text, False
    return text[:start], True
