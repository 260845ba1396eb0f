"""Stuck detection: the same failed attempt again and again means re-planning is not
making progress."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from zerog.types import Action

STUCK_NOTICE = (
    "The last attempt failed in exactly the same way as the one before it. That approach "
    "does not work: change strategy (different files, different fix, smaller steps)."
)
_VOLATILE = re.compile(r"\d+\.\d+|0x[0-9a-fA-F]+")


def fingerprint(actions: Sequence[Action], feedback: str) -> str:
    """What makes two failed attempts 'the same': their actions and normalized output."""
    digest = hashlib.sha256()
    for action in actions:
        digest.update(action.model_dump_json().encode())
    digest.update(_VOLATILE.sub("#", feedback).encode())
    return digest.hexdigest()


class StuckDetector:
    """Counts failed attempts that repeat the one before; ``stuck_after`` repeats in a row
    end the run."""

    def __init__(self, stuck_after: int) -> None:
        self.stuck_after = stuck_after
        self.repeats = 0  # how many attempts in a row repeated the one before them
        self._last = ""

    def observe(self, actions: Sequence[Action], feedback: str) -> int:
        """Count a failed attempt (its actions and feedback); returns the repeats now."""
        seen = fingerprint(actions, feedback)
        self.repeats = self.repeats + 1 if seen == self._last else 0
        self._last = seen
        return self.repeats

    @property
    def stuck(self) -> bool:
        return self.repeats >= self.stuck_after

    @property
    def notice(self) -> str:
        """What the next plan is told: change strategy, after a repeat."""
        return STUCK_NOTICE if self.repeats else ""
