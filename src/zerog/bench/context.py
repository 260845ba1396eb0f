"""`zerog bench context`: what each part of the context adds to the prompt.

For each generated repository (:mod:`zerog.bench.context_repos`: a bug in one module, the
failing test in another, more files than the index holds), the checks run once, as the
preflight runs them, and the context is built with the parts turned on one after another:
the index's order only (what zerog did before), then the files the goal names, those the
failing checks name, their imports, the symbol map. Per variant: the prompt's characters
and estimated tokens, the characters of each part, whether the buggy line is in the
prompt, and the time to build it against the first variant's (the baseline, same process).

With ``--model``, each task is also run end to end, without and with the new parts
(same model, same budget of iterations): solved or not, iterations, tokens, seconds.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from zerog.bench.context_repos import RepoTask, tasks
from zerog.context import Context, build, render
from zerog.engine.loop import Engine
from zerog.errors import ModelOutputError, ZerogError
from zerog.focus import ContextBudget
from zerog.models.base import Model
from zerog.models.scripted import ScriptedModel
from zerog.types import Budget, CommandCheck, Goal, Plan

CHARS_PER_TOKEN = 4
OFF = {"goal": 0, "failing": 0, "imports": 0, "symbols": 0}
VARIANTS: tuple[tuple[str, dict[str, int]], ...] = (
    ("before", OFF),  # the index's order only: what zerog showed before
    ("+goal", {**OFF, "goal": ContextBudget().goal}),  # the files the goal names
    ("+failing", {"imports": 0, "symbols": 0}),  # ... and those the failing checks name
    ("+imports", {"symbols": 0}),  # ... and their imports
    ("+map", {}),  # ... and the symbol map: every part
)
PARTS = ("goal", "failing", "imports", "symbols", "other")


@dataclass(frozen=True)
class Row:
    task: str
    variant: str
    prompt_chars: int
    parts: dict[str, int]
    bug_in_prompt: bool
    build_ms: float

    @property
    def tokens(self) -> int:
        return -(-self.prompt_chars // CHARS_PER_TOKEN)


@dataclass(frozen=True)
class Solve:
    task: str
    variant: str
    status: str
    iterations: int
    input_tokens: int
    output_tokens: int
    seconds: float


@dataclass
class ContextReport:
    sandbox: str
    rounds: int
    rows: list[Row] = field(default_factory=list)
    solves: list[Solve] = field(default_factory=list)
    model: str = ""
    total: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "sandbox": self.sandbox,
            "rounds": self.rounds,
            "model": self.model,
            "total_chars": self.total,
            "rows": [
                {
                    "task": r.task,
                    "variant": r.variant,
                    "prompt_chars": r.prompt_chars,
                    "prompt_tokens_estimated": r.tokens,
                    "parts_chars": r.parts,
                    "bug_line_in_prompt": r.bug_in_prompt,
                    "build_ms": round(r.build_ms, 2),
                }
                for r in self.rows
            ],
            "solves": [s.__dict__ for s in self.solves],
        }

    def tables(self) -> list[Table]:
        table = Table(
            title=f"context parts, {self.total} characters of file text "
            f"(median build time of {self.rounds} rounds)"
        )
        for column in ("task", "variant", "chars", "~tokens", *PARTS, "bug shown", "build ms"):
            table.add_column(column, justify="left" if column in ("task", "variant") else "right")
        base: dict[str, float] = {}
        for row in self.rows:
            base.setdefault(row.task, row.build_ms)
            ratio = row.build_ms / base[row.task] if base[row.task] > 0 else 0.0
            table.add_row(
                row.task,
                row.variant,
                str(row.prompt_chars),
                str(row.tokens),
                *(str(row.parts.get(p, 0)) for p in PARTS),
                "yes" if row.bug_in_prompt else "no",
                f"{row.build_ms:.1f} ({ratio:.2f}x)",
            )
        out = [table]
        if self.solves:
            solved = Table(title=f"end to end with {self.model}")
            for column in ("task", "variant", "status", "iterations", "in", "out", "s"):
                solved.add_column(column)
            for s in self.solves:
                solved.add_row(
                    s.task,
                    s.variant,
                    s.status,
                    str(s.iterations),
                    str(s.input_tokens),
                    str(s.output_tokens),
                    f"{s.seconds:.0f}",
                )
            out.append(solved)
        return out


def _feedback(task: RepoTask, workspace: Path, sandbox: str, environ: Mapping[str, str]) -> str:
    """What the preflight tells the first plan (the checks' failures, summarized), taken
    from the context a real run builds; the run ends there, before any model call."""
    seen: list[Context] = []

    def capture(_model: Model, context: Context) -> Plan:
        seen.append(context)
        raise ModelOutputError("bench: the context is all this run is for")

    engine = Engine(
        ScriptedModel([]),
        sandbox_name=sandbox,
        environ=environ,
        write_trace=False,
        plan_with=capture,
    )
    goal = Goal(
        text=task.goal,
        workspace=workspace,
        checks=(CommandCheck(command=task.check),),
        budget=Budget(max_iterations=1),
    )
    result = engine.run(goal)
    if not seen:
        raise ZerogError(f"{task.name}: no context was built ({result.status}: {result.reason})")
    return seen[0].preflight


def _shows(context: Context, task: RepoTask) -> bool:
    """Whether the prompt shows the buggy line in the text of its file (not only quoted
    by the failing checks' output)."""
    entry = next((f for f in context.files if f.path == task.bug_path), None)
    shown = entry.content or entry.excerpt if entry is not None else None
    return shown is not None and task.bug_line in shown


def _budget(overrides: Mapping[str, int], total: int | None) -> ContextBudget:
    return ContextBudget(**overrides, **({"total": total} if total is not None else {}))


def measure(
    *,
    sandbox: str,
    rounds: int,
    environ: Mapping[str, str],
    model: Model | None = None,
    max_iterations: int = 2,
    only: Sequence[str] = (),
    progress: Callable[[str], None] | None = None,
    repos: Sequence[RepoTask] | None = None,
    total: int | None = None,
) -> ContextReport:
    """``repos``: the tasks (default: :func:`zerog.bench.context_repos.tasks`), those
    named in ``only`` if given; ``total``: the characters of file text a prompt carries
    (default: :class:`~zerog.focus.ContextBudget`'s)."""
    report = ContextReport(sandbox=sandbox, rounds=rounds, model=model.name if model else "")
    report.total = total or ContextBudget().total
    chosen = [t for t in (tasks() if repos is None else repos) if not only or t.name in only]
    with tempfile.TemporaryDirectory(prefix="zerog-bench-context-") as tmp:
        for task in chosen:
            workspace = task.write(Path(tmp) / task.name)
            feedback = _feedback(task, workspace, sandbox, environ)
            goal = Goal(text=task.goal, workspace=workspace, checks=[task.check])
            for variant, overrides in VARIANTS:
                budget = _budget(overrides, total)
                times = []
                for _ in range(rounds):
                    started = time.perf_counter()
                    context = build(goal, environ, preflight=feedback, budget=budget)
                    text = render(context)
                    times.append(time.perf_counter() - started)
                report.rows.append(
                    Row(
                        task=task.name,
                        variant=variant,
                        prompt_chars=len(text),
                        parts={p: context.used.get(p, 0) for p in PARTS},
                        bug_in_prompt=_shows(context, task),
                        build_ms=1000 * statistics.median(times),
                    )
                )
            if progress is not None:
                progress(f"{task.name}: context built")
        if model is not None:
            for task in chosen:
                for variant, overrides in (VARIANTS[0], VARIANTS[-1]):
                    runs = Path(tmp) / "runs"
                    budget = _budget(overrides, total)
                    solve = _solve(
                        task, variant, budget, model, sandbox, environ, runs, max_iterations
                    )
                    report.solves.append(solve)
                    if progress is not None:
                        progress(f"{task.name} / {variant}: {solve.status}, {solve.seconds:.0f} s")
    return report


def _solve(
    task: RepoTask,
    variant: str,
    budget: ContextBudget,
    model: Model,
    sandbox: str,
    environ: Mapping[str, str],
    root: Path,
    max_iterations: int,
) -> Solve:
    workspace = task.write(root / f"{task.name}-{len(variant)}-{time.monotonic_ns()}")
    engine = Engine(
        model,
        sandbox_name=sandbox,
        environ=environ,
        write_trace=False,
        stuck_after=max(max_iterations, 2),
        context_budget=budget,
    )
    goal = Goal(
        text=task.goal,
        workspace=workspace,
        checks=(CommandCheck(command=task.check),),
        budget=Budget(max_iterations=max_iterations, max_seconds=900.0),
    )
    started = time.monotonic()
    result = engine.run(goal)
    return Solve(
        task=task.name,
        variant=variant,
        status=result.status.value,
        iterations=result.iterations,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        seconds=time.monotonic() - started,
    )
