"""`zerog bench preflight`: what the preflight adds to a run, against one bare sweep.

Each round runs the same goal twice on fresh copies of a workspace, once with the
preflight and once without, in alternating order. Its model is a scripted one with no
answer, so a run ends at its first model call (``model_error``): what the two runs differ
by is the preflight (its sweep, the rollback of what the checks wrote, its judgement and
events). The baseline is a bare :func:`~zerog.validate.sweep.sweep` of the same checks on
the same workspace in the same process: the preflight should cost that and little more.

The workspace is a copy of ``--workspace`` (``examples/demo/workspace``,
``examples/local-demo/workspace``), or by default a small one shaped like the local demo:
a stub ``median()`` and its unit tests.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from zerog.engine.loop import Engine
from zerog.models.scripted import ScriptedModel
from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits
from zerog.sandbox.factory import make_sandbox
from zerog.statedir import STATE_DIR
from zerog.types import Budget, CommandCheck, Goal
from zerog.validate.sweep import sweep

STUB = '''def median(values):
    """The middle value of a non-empty list (the mean of the two middle ones)."""
    raise NotImplementedError
'''
TESTS = """import unittest

from stats import median


class MedianTest(unittest.TestCase):
    def test_odd_length(self):
        self.assertEqual(median([3, 1, 2]), 2)

    def test_even_length(self):
        self.assertEqual(median([4, 1, 3, 2]), 2.5)
"""


@dataclass(frozen=True)
class PreflightReport:
    workspace: str
    check: str
    sandbox: str
    rounds: int
    with_ms: float  # median wall time of a run with the preflight
    without_ms: float  # ... and without it
    sweep_ms: float  # median of a bare sweep of the same checks

    @property
    def added_ms(self) -> float:
        return self.with_ms - self.without_ms

    @property
    def ratio(self) -> float:
        return self.added_ms / self.sweep_ms if self.sweep_ms > 0 else 0.0

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "workspace": self.workspace,
            "check": self.check,
            "sandbox": self.sandbox,
            "rounds": self.rounds,
            "run_with_preflight_ms": round(self.with_ms, 1),
            "run_without_preflight_ms": round(self.without_ms, 1),
            "added_ms": round(self.added_ms, 1),
            "bare_sweep_ms": round(self.sweep_ms, 1),
            "ratio_added_to_sweep": round(self.ratio, 2),
        }

    def table(self) -> Table:
        table = Table(
            title=f"preflight: {self.workspace}, `{self.check}`, {self.sandbox}, "
            f"median of {self.rounds} rounds"
        )
        table.add_column("measure")
        table.add_column("ms", justify="right")
        table.add_row(
            "run with the preflight (ends at the first model call)", f"{self.with_ms:.1f}"
        )
        table.add_row("run without it", f"{self.without_ms:.1f}")
        table.add_row("added by the preflight", f"{self.added_ms:.1f}")
        table.add_row("bare sweep of the same checks (baseline)", f"{self.sweep_ms:.1f}")
        table.add_row("ratio added / bare sweep", f"{self.ratio:.2f}x")
        return table


def _copy(source: Path | None, dest: Path) -> Path:
    if source is None:
        dest.mkdir(parents=True)
        (dest / "stats.py").write_text(STUB, encoding="utf-8")
        (dest / "test_stats.py").write_text(TESTS, encoding="utf-8")
    else:
        shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(STATE_DIR))
    return dest


def _run(
    workspace: Path, check: str, sandbox: str, preflight: bool, environ: Mapping[str, str]
) -> float:
    engine = Engine(ScriptedModel([]), sandbox_name=sandbox, environ=environ, write_trace=False)
    goal = Goal(
        text="make the checks pass",
        workspace=workspace,
        checks=(CommandCheck(command=check),),
        budget=Budget(max_iterations=1),
        preflight=preflight,
    )
    started = time.perf_counter()
    engine.run(goal)
    return time.perf_counter() - started


def _bare_sweep(workspace: Path, check: str, sandbox: str, environ: Mapping[str, str]) -> float:
    env = sandbox_env(environ, (), home=str(workspace), host_path=sandbox == "local")
    backend = make_sandbox(sandbox, env, environ=environ)
    started = time.perf_counter()
    sweep([check], workspace, backend, Limits())
    return time.perf_counter() - started


def measure(
    *,
    workspace: Path | None,
    check: str,
    sandbox: str,
    rounds: int,
    environ: Mapping[str, str],
    progress: Callable[[str], None] | None = None,
) -> PreflightReport:
    times: dict[str, list[float]] = {"with": [], "without": [], "sweep": []}
    with tempfile.TemporaryDirectory(prefix="zerog-bench-preflight-") as tmp:
        root = Path(tmp)
        for number in range(rounds):
            order = (True, False) if number % 2 == 0 else (False, True)
            for preflight in order:
                copy = _copy(workspace, root / f"r{number}-{preflight}")
                key = "with" if preflight else "without"
                times[key].append(_run(copy, check, sandbox, preflight, environ))
            copy = _copy(workspace, root / f"r{number}-sweep")
            times["sweep"].append(_bare_sweep(copy, check, sandbox, environ))
            if progress is not None:
                progress(f"round {number + 1}/{rounds}")
    return PreflightReport(
        workspace=str(workspace) if workspace else "built-in (a stub median() and its tests)",
        check=check,
        sandbox=sandbox,
        rounds=rounds,
        with_ms=1000 * statistics.median(times["with"]),
        without_ms=1000 * statistics.median(times["without"]),
        sweep_ms=1000 * statistics.median(times["sweep"]),
    )
