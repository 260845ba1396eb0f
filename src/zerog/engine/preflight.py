"""What the preflight found: the checks once on the untouched workspace, before any model
call (``Effects.preflight`` runs it; a resumed run's comes back through the replayer)."""

from __future__ import annotations

from dataclasses import dataclass

from zerog.engine.exceptions import ChecksCannotRun, NothingToDo
from zerog.types import CannotRun, Verdict
from zerog.validate.preflight import describe as describe_cannot_run

PREFLIGHT = 0  # the "iteration" the preflight's sweep is recorded under


@dataclass(frozen=True)
class Preflight:
    """What the preflight found: its verdict, the checks that cannot run, and the feedback
    the first plan gets (empty unless the checks ran and failed)."""

    verdict: Verdict
    cannot_run: tuple[CannotRun, ...]
    feedback: str

    @property
    def outcome(self) -> str:
        return "passed" if self.verdict.passed else "cannot_run" if self.cannot_run else "failed"

    def end(self) -> None:
        """End the run when the preflight ends it (its checks pass already, or some
        cannot run); return when the loop is to start."""
        if self.verdict.passed:
            raise NothingToDo()
        if self.cannot_run:
            raise ChecksCannotRun(describe_cannot_run(self.cannot_run))
