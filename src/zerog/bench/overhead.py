"""`zerog bench overhead`: what the engine itself costs per iteration.

Each iteration of the measured run makes one model call (scripted, instant), runs one
trivial action (`true`) and one failing check (`false`, which the sweep runs twice: a
failed check is re-run once to tell a flaky one from a real failure), rolls the
workspace back and builds feedback. The run uses the ``local`` sandbox, so that what is
measured is the engine, not the isolation (``zerog bench sandbox`` measures that). The
baseline runs the same three commands with bare ``subprocess.run`` in the same process;
the difference divided by the iterations is the engine's overhead.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from zerog.engine.loop import Engine
from zerog.models.scripted import ScriptedModel, ScriptLine
from zerog.types import Budget, CommandCheck, Goal

PLAN = {
    "steps": [{"intent": "do the trivial thing", "actions": [{"kind": "shell", "command": "true"}]}]
}


@dataclass(frozen=True)
class OverheadReport:
    iterations: int
    rounds: int
    engine_per_iteration_ms: float
    bare_per_iteration_ms: float

    @property
    def overhead_ms(self) -> float:
        return self.engine_per_iteration_ms - self.bare_per_iteration_ms

    @property
    def ratio(self) -> float:
        return self.engine_per_iteration_ms / self.bare_per_iteration_ms

    def as_dict(self) -> dict[str, float | int]:
        return {
            "iterations": self.iterations,
            "rounds": self.rounds,
            "engine_per_iteration_ms": round(self.engine_per_iteration_ms, 3),
            "bare_per_iteration_ms": round(self.bare_per_iteration_ms, 3),
            "overhead_per_iteration_ms": round(self.overhead_ms, 3),
            "ratio": round(self.ratio, 3),
        }

    def table(self) -> Table:
        table = Table(
            title=f"engine overhead ({self.iterations} iterations x {self.rounds} rounds, median)"
        )
        table.add_column("measure")
        table.add_column("ms / iteration", justify="right")
        table.add_row(
            "zerog loop (plan call, `true`, check `false` + re-run, rollback)",
            f"{self.engine_per_iteration_ms:.3f}",
        )
        table.add_row(
            "bare subprocess.run of the same three commands", f"{self.bare_per_iteration_ms:.3f}"
        )
        table.add_row("engine overhead", f"{self.overhead_ms:.3f}")
        table.add_row("ratio engine / bare", f"{self.ratio:.2f}x")
        return table


def _engine_round(root: Path, iterations: int) -> float:
    workspace = root / "ws"
    workspace.mkdir(exist_ok=True)
    (workspace / "README.md").write_text("bench workspace\n", encoding="utf-8")
    model = ScriptedModel([ScriptLine(purpose="plan", text=json.dumps(PLAN))] * iterations)
    goal = Goal(
        text="make the check pass",
        workspace=workspace,
        checks=(CommandCheck(command="false"),),
        budget=Budget(max_iterations=iterations, max_seconds=3600),
    )
    engine = Engine(
        model,
        sandbox_name="local",
        environ={"PATH": "/usr/bin:/bin"},
        stuck_after=iterations + 1,
        trace_dir=root / "traces",
    )
    started = time.perf_counter()
    result = engine.run(goal)
    elapsed = time.perf_counter() - started
    if result.iterations != iterations:
        raise RuntimeError(f"bench run stopped early: {result.status} {result.reason}")
    return elapsed / iterations


def _bare_round(root: Path, iterations: int) -> float:
    env = {"PATH": "/usr/bin:/bin"}
    started = time.perf_counter()
    for _ in range(iterations):
        for command in ("true", "false", "false"):
            subprocess.run(
                ["/bin/sh", "-c", command],
                cwd=root,
                env=env,
                capture_output=True,
                check=False,
                timeout=10,
            )
    return (time.perf_counter() - started) / iterations


def measure(
    iterations: int = 200, rounds: int = 5, progress: Callable[[str], None] | None = None
) -> OverheadReport:
    engine_times: list[float] = []
    bare_times: list[float] = []
    for number in range(1, rounds + 1):
        with tempfile.TemporaryDirectory(prefix="zerog-bench-") as tmp:
            root = Path(tmp)
            bare_times.append(_bare_round(root, iterations))
            engine_times.append(_engine_round(root, iterations))
        if progress is not None:
            progress(
                f"round {number}/{rounds}: engine {engine_times[-1] * 1000:.2f} ms, "
                f"bare {bare_times[-1] * 1000:.2f} ms per iteration"
            )
    return OverheadReport(
        iterations=iterations,
        rounds=rounds,
        engine_per_iteration_ms=statistics.median(engine_times) * 1000,
        bare_per_iteration_ms=statistics.median(bare_times) * 1000,
    )
