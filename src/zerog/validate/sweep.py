"""The validation sweep: run every goal check and return one verdict."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Check, CheckResult, Verdict
from zerog.validate.checks import run_check


def sweep(
    checks: Sequence[Check],
    workspace: Path,
    sandbox: Sandbox,
    limits: Limits,
    on_result: Callable[[CheckResult], None] | None = None,
) -> Verdict:
    results = []
    for check in checks:
        result = run_check(check, workspace, sandbox, limits)
        if on_result is not None:
            on_result(result)
        results.append(result)
    return Verdict(passed=all(r.passed for r in results), results=tuple(results))
