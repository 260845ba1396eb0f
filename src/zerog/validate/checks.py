"""Running one check outside a sweep (compiled on the spot)."""

from __future__ import annotations

from pathlib import Path

from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Check, CheckResult
from zerog.validate.compile import compile_checks
from zerog.validate.kinds import CheckEnv
from zerog.validate.sidecar import PythonRunner, SandboxPython


def run_check(
    check: Check | str,
    workspace: Path,
    sandbox: Sandbox,
    limits: Limits,
    *,
    sidecar: PythonRunner | None = None,
) -> CheckResult:
    """Compile and run one check once (no flaky re-run: see :func:`sweep.run_one`)."""
    (compiled,) = compile_checks([check]).checks
    env = CheckEnv(workspace, sandbox, limits, sidecar or SandboxPython(sandbox))
    return compiled.runner.run(env, compiled.label)
