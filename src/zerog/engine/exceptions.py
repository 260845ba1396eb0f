"""The loop's flow by exceptions: a failed step, and the ways a run ends.

A step that fails raises :class:`StepFailed`; the iteration catches it, validates (unless
the step's own check failed), rolls back and re-plans. Every way a run ends is a
:class:`RunEnded` with the run's status and reason, caught once, where the result is built
(``engine/loop.py``). The budget's :class:`~zerog.budget.BudgetExhausted` is one of them.
"""

from __future__ import annotations

from zerog.types import Observation, RunStatus

StepFailure = tuple[str, str, Observation]  # what the step meant, what failed, what came back


class StepFailed(Exception):
    """A step of the plan failed: an action did not succeed, its code could not be
    written, or its own check failed (``check``: the step is known bad, and the iteration
    rolls back without running the final sweep)."""

    def __init__(self, intent: str, what: str, observation: Observation, *, check: bool = False):
        super().__init__(f"{intent}: {what}")
        self.intent = intent
        self.what = what
        self.observation = observation
        self.check = check

    @property
    def failure(self) -> StepFailure:
        """The failure as the feedback summarizes it."""
        return self.intent, self.what, self.observation


class RunEnded(Exception):
    """The run is over: ``status`` and ``reason`` are its result's."""

    def __init__(self, status: RunStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Succeeded(RunEnded):
    """The checks passed (and nobody doubted the answer)."""

    def __init__(self, reason: str) -> None:
        super().__init__(RunStatus.SUCCESS, reason)


class Stuck(RunEnded):
    """The same failure ``repeats + 1`` times in a row: re-planning makes no progress."""

    def __init__(self, repeats: int) -> None:
        super().__init__(
            RunStatus.STUCK, f"no progress: the same failure {repeats + 1} times in a row"
        )


class ModelFailed(RunEnded):
    """The model failed, or its answer stayed unusable (``errors.ModelError`` and
    ``ModelOutputError``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(RunStatus.MODEL_ERROR, reason)


class Cancelled(RunEnded):
    """The user interrupted the run (Ctrl-C)."""

    def __init__(self) -> None:
        super().__init__(RunStatus.INTERRUPTED, "interrupted by the user")


class PreflightEnded(RunEnded):
    """The preflight ended the run before any model call: nothing was changed, so
    nothing is rolled back or committed."""


class NothingToDo(PreflightEnded):
    """The checks already pass on the untouched workspace."""

    def __init__(self) -> None:
        super().__init__(RunStatus.SUCCESS, "nothing to do: the checks already pass")


class ChecksCannotRun(PreflightEnded):
    """Some checks cannot run in this sandbox (``reason`` says which and why)."""

    def __init__(self, reason: str) -> None:
        super().__init__(RunStatus.CANNOT_RUN, reason)
