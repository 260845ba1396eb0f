"""The stuck detector: repeated failed attempts (same actions, same feedback up to
volatile numbers) are counted, and ``stuck_after`` repeats end the run."""

from __future__ import annotations

from zerog.engine.stuck import STUCK_NOTICE, StuckDetector
from zerog.types import ShellAction, WriteFileAction

ACTIONS = [ShellAction(command="pytest -q")]


def test_repeats_are_counted_until_stuck() -> None:
    detector = StuckDetector(stuck_after=2)
    assert detector.notice == ""
    assert detector.observe(ACTIONS, "1 failed in 0.12s (<Foo at 0x7f3a>)") == 0
    # Timings and addresses do not count.
    assert detector.observe(ACTIONS, "1 failed in 0.31s (<Foo at 0x1b2c>)") == 1
    assert detector.notice == STUCK_NOTICE
    assert not detector.stuck
    assert detector.observe(ACTIONS, "1 failed in 0.05s (<Foo at 0x9e>)") == 2
    assert detector.stuck


def test_a_different_attempt_starts_counting_again() -> None:
    detector = StuckDetector(stuck_after=1)
    detector.observe(ACTIONS, "same")
    assert detector.observe([WriteFileAction(path="a.py", content="x")], "same") == 0
    assert detector.observe(ACTIONS, "same") == 0
    assert detector.observe(ACTIONS, "other output") == 0
    assert detector.notice == ""
    assert not detector.stuck
