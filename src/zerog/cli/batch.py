"""`zerog batch`: many goals at once (see docs/batch.md)."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from zerog.batch.ledger import SharedBudget, Spend
from zerog.batch.runner import BatchOptions, BatchProgress, BatchReport, run_batch
from zerog.batch.worker import GoalOutcome
from zerog.cli.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, fail
from zerog.cli.options import (
    AnswerFileOption,
    EscalateAfterOption,
    EscalateOption,
    QuietOption,
    RouterFileOption,
    RouterOption,
    SandboxOption,
    UnsureTokensOption,
    max_cost_option,
    max_input_tokens_option,
    max_iterations_option,
    max_output_tokens_option,
    max_time_option,
    model_option,
    stuck_after_option,
    timeout_option,
)
from zerog.errors import ConfigError, ZerogError
from zerog.store import default_store_path
from zerog.strategies import StrategyOptions
from zerog.text import one_line

MAX_ROWS = 50  # goals listed one by one in the summary; beyond, only the counts


class _Bar(BatchProgress):
    """A progress bar on stderr: goals done, how they ended, what the batch spent."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"),
            console=console,
            transient=False,
        )
        self.task = self.progress.add_task("goals", total=None, status="")
        self.ok = self.failed = 0

    def started(self, batch_id: str, total: int, done_before: int, resumed: bool) -> None:
        note = f" (resumed: {done_before} goals already done)" if resumed else ""
        self.console.print(Text(f"batch {batch_id}: {total} goals{note}"))
        self.progress.update(self.task, total=total, completed=done_before)
        self.progress.start()

    def goal_done(self, outcome: GoalOutcome, spend: Spend) -> None:
        if outcome.status == "success":
            self.ok += 1
        else:
            self.failed += 1
            self.progress.console.print(
                Text(
                    f"  goal {outcome.index} {outcome.status}: {one_line(outcome.reason, 120)}",
                    style="yellow",
                )
            )
        status = (
            f"{self.ok} ok · {self.failed} not · {spend.input_tokens:,}/"
            f"{spend.output_tokens:,} tokens · ${spend.cost:.4f}"
        )
        self.progress.update(self.task, advance=1, status=status)

    def close(self) -> None:
        self.progress.stop()


def _summary(console: Console, report: BatchReport, shared: SharedBudget) -> None:
    if len(report.outcomes) <= MAX_ROWS:
        table = Table(title=f"batch {report.batch_id}")
        for column in ("goal", "status", "iter", "tokens in/out", "cost", "time", "tries"):
            table.add_column(column, no_wrap=column != "goal")
        for o in report.outcomes:
            style = "green" if o.status == "success" else "red"
            table.add_row(
                Text(f"{o.index} {o.run_id}"),
                Text(o.status, style=style),
                str(o.iterations),
                f"{o.input_tokens:,}/{o.output_tokens:,}",
                f"${o.cost:.4f}",
                f"{o.duration:.1f} s",
                str(o.attempts),
            )
        console.print(table)
    totals = Table(show_header=False, box=None, pad_edge=False)
    counts = ", ".join(f"{n} {status}" for status, n in report.counts().items())
    totals.add_row("goals", Text(f"{len(report.outcomes)}: {counts}"))
    totals.add_row(
        "this run",
        Text(f"{report.ran} run or resumed, {report.skipped} done before, {report.seconds:.1f} s"),
    )
    spend = report.spend
    limits = [
        f"{shared.max_input_tokens:,} in" if shared.max_input_tokens is not None else "",
        f"{shared.max_output_tokens:,} out" if shared.max_output_tokens is not None else "",
        f"${shared.max_cost}" if shared.max_cost is not None else "",
    ]
    shown = ", ".join(x for x in limits if x)
    totals.add_row(
        "spent",
        Text(
            f"{spend.input_tokens:,} in / {spend.output_tokens:,} out tokens, ${spend.cost:.4f}, "
            f"{spend.calls} model calls" + (f" (shared budget: {shown})" if shown else "")
        ),
    )
    totals.add_row("results", Text(str(report.results_path)))
    totals.add_row("workspaces", Text(str(report.out_dir / "goals")))
    console.print(totals)


def batch(
    goals_file: Annotated[
        Path,
        typer.Argument(
            help="JSONL: one goal per line, each a goal file's table (text, workspace, "
            "checks, budget, env)."
        ),
    ],
    jobs: Annotated[int, typer.Option("--jobs", "-j", help="Goals run at once.", min=1)] = 2,
    executor: Annotated[
        str,
        typer.Option(help="local (a process pool on this machine) or ray (Ray tasks)."),
    ] = "local",
    ray_address: Annotated[
        str | None,
        typer.Option(
            help="Join this Ray cluster (e.g. ray://head:10001 or auto) instead of "
            "starting a local Ray; every node must see the same store and paths.",
            show_default=False,
        ),
    ] = None,
    model: Annotated[str, model_option("Model spec, as for `zerog run`.")] = "local",
    out: Annotated[
        Path | None,
        typer.Option(
            help="Where each goal's workspace copy and results.jsonl go "
            "(default: ./zerog-batch-BATCH).",
            show_default=False,
        ),
    ] = None,
    batch_id: Annotated[
        str | None,
        typer.Option(
            help="Name the batch (default: from the goals file and the model, so the "
            "same command resumes an interrupted batch).",
            show_default=False,
        ),
    ] = None,
    total_input_tokens: Annotated[
        int | None,
        typer.Option(help="Shared budget: input tokens for all goals together.", min=1),
    ] = None,
    total_output_tokens: Annotated[
        int | None,
        typer.Option(help="Shared budget: output tokens for all goals together.", min=1),
    ] = None,
    total_cost: Annotated[
        float | None,
        typer.Option(help="Shared budget: money (USD) for all goals together.", min=0),
    ] = None,
    max_iterations: Annotated[
        int | None, max_iterations_option("Per-goal default (a goal's budget wins).")
    ] = None,
    max_input_tokens: Annotated[
        int | None, max_input_tokens_option("Per-goal default input tokens.")
    ] = None,
    max_output_tokens: Annotated[
        int | None, max_output_tokens_option("Per-goal default output tokens.")
    ] = None,
    max_cost: Annotated[float | None, max_cost_option("Per-goal default money (USD).")] = None,
    max_time: Annotated[float | None, max_time_option("Per-goal default wall time (s).")] = None,
    retries: Annotated[int, typer.Option(help="Retries of a goal whose worker died.", min=0)] = 3,
    timeout: Annotated[float, timeout_option("Seconds one action or check may run.")] = 120.0,
    stuck_after: Annotated[
        int, stuck_after_option("Stop a goal after this many identical failures.")
    ] = 2,
    router: RouterOption = "builtin",
    router_file: RouterFileOption = None,
    answer_file: AnswerFileOption = None,
    escalate: EscalateOption = [],  # noqa: B006
    escalate_after: EscalateAfterOption = 1,
    unsure_tokens: UnsureTokensOption = None,
    sandbox: SandboxOption = None,
    sidecar: Annotated[
        str, typer.Option("--sidecar", help="wasm or sandbox (predicate/schema checks).")
    ] = "wasm",
    store: Annotated[
        Path | None,
        typer.Option(
            help="The SQLite run store (default: as for `zerog run`).", show_default=False
        ),
    ] = None,
    quiet: QuietOption = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    force_workspace: Annotated[
        bool,
        typer.Option(
            "--force-workspace",
            help="Accept goal workspaces zerog refuses by default (the root, a system "
            "directory, the home directory, one holding zerog's own files).",
        ),
    ] = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="Per-goal default (a goal's own 'preflight' wins): run its checks once "
            "before its first model call; a goal whose checks already pass ends at once, "
            "one whose checks cannot run in the sandbox ends with cannot_run.",
        ),
    ] = True,
) -> None:
    """Run every goal of GOALS_FILE, each in its own sandbox and copy of its workspace,
    JOBS at a time, within per-goal budgets and an optional shared budget.

    Running the same command again resumes an interrupted batch: finished goals are
    not run again, interrupted ones resume their runs. Exit code: 0 every goal
    succeeded, 1 some did not, 2 bad input, 130 interrupted.
    """
    from zerog.batch.goals import read_goals

    defaults = {
        k: v
        for k, v in {
            "max_iterations": max_iterations,
            "max_input_tokens": max_input_tokens,
            "max_output_tokens": max_output_tokens,
            "max_cost": max_cost,
            "max_seconds": max_time,
        }.items()
        if v is not None
    }
    console = Console(stderr=as_json, highlight=False)
    bar = None if quiet or as_json else _Bar(Console(stderr=True, highlight=False))
    shared = SharedBudget(
        max_input_tokens=total_input_tokens,
        max_output_tokens=total_output_tokens,
        max_cost=total_cost,
    )
    options = BatchOptions(
        model=model,
        out_dir=out,
        batch_id=batch_id,
        jobs=jobs,
        executor=executor,
        ray_address=ray_address,
        retries=retries,
        shared=shared,
        sandbox=sandbox,
        sidecar=sidecar,
        timeout=timeout,
        stuck_after=stuck_after,
        router=router,
        router_file=router_file,
        strategy=StrategyOptions(
            answer_file=answer_file,
            escalate=tuple(escalate),
            escalate_after=escalate_after,
            unsure_tokens=unsure_tokens,
        ),
    )
    try:
        if executor not in ("local", "ray"):
            raise ConfigError(f"unknown executor {executor!r}: choose local or ray")
        if ray_address and executor != "ray":
            raise ConfigError("--ray-address needs --executor ray")
        goals = read_goals(
            goals_file,
            defaults,
            environ=os.environ,
            force_workspace=force_workspace,
            preflight=preflight,
        )
        report = run_batch(goals, options, store or default_store_path(os.environ), progress=bar)
    except (ZerogError, ValidationError) as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        Console(stderr=True).print(
            "interrupted: run the same command again to resume the batch", markup=False
        )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        if bar is not None:
            bar.close()
    if as_json:
        data = {
            "batch_id": report.batch_id,
            "results": str(report.results_path),
            "counts": report.counts(),
            "spend": dataclasses.asdict(report.spend),
            "seconds": round(report.seconds, 3),
        }
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    else:
        _summary(console, report, shared)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)
