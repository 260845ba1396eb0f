"""Running one check outside a sweep (compiled on the spot)."""

from __future__ import annotations

from pathlib import Path

from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Check, CheckResult
from zerog.validate.compile import compile_checks
from zerog.validate.home import check_variables
from zerog.validate.kinds import CheckEnv
from zerog.validate.nonce import new_nonce
from zerog.validate.sidecar import PythonRunner, SandboxPython


def run_check(
    check: Check | str,
    workspace: Path,
    sandbox: Sandbox,
    limits: Limits,
    *,
    sidecar: PythonRunner | None = None,
) -> CheckResult:
    """Compile and run one check once (no flaky re-run: see :func:`sweep.run_one`), with a
    nonce of its own and the checks' environment (as in a sweep)."""
    (compiled,) = compile_checks([check]).checks
    with check_variables(sandbox.name, new_nonce()) as variables:
        runner = sidecar or SandboxPython(sandbox)
        env = CheckEnv(workspace, sandbox, limits, runner, variables=variables)
        return compiled.runner.run(env, compiled.label)
