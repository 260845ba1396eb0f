"""The sandbox seam: ``run(action, workspace, limits) -> Observation``."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from pydantic import Field

from zerog.types import Action, Frozen, Observation


class Limits(Frozen):
    """Bounds on one action. Every backend honours the same names."""

    timeout: float = Field(default=60.0, gt=0)
    max_output_bytes: int = Field(default=64 * 1024, ge=256)
    kill_output_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)


class Sandbox(Protocol):
    """Runs one action against a workspace and reports what happened, never raising for
    a failing command: failures are observations."""

    @property
    def name(self) -> str: ...

    def run(self, action: Action, workspace: Path, limits: Limits) -> Observation: ...
