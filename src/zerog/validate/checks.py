"""Check kinds. Each runs through the sandbox and reports pass or fail with its output."""

from __future__ import annotations

from pathlib import Path

from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Check, CheckResult, ShellAction


def run_check(check: Check, workspace: Path, sandbox: Sandbox, limits: Limits) -> CheckResult:
    bounded = limits.model_copy(update={"timeout": min(check.timeout, limits.timeout)})
    observation = sandbox.run(ShellAction(command=check.command), workspace, bounded)
    return CheckResult(name=check.label, passed=observation.ok, observation=observation)
