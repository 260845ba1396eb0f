"""The `zerog` command line: a friendly face over the library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from zerog.errors import ConfigError, ZerogError
from zerog.loop import Engine
from zerog.models.spec import load_model
from zerog.progress import ConsoleProgress
from zerog.sandbox.base import Limits
from zerog.text import one_line
from zerog.types import Budget, CommandCheck, Goal, RunResult, RunStatus

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

app = typer.Typer(
    name="zerog",
    help="Run LLM reasoning loops that plan, act in a sandbox, validate and backtrack "
    "until the goal's checks pass or a budget runs out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks that print ratios against a baseline run.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")


def _exit_code(result: RunResult) -> int:
    if result.status is RunStatus.SUCCESS:
        return EXIT_OK
    if result.status is RunStatus.MODEL_ERROR:
        return EXIT_MODEL
    if result.status is RunStatus.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _summary(console: Console, result: RunResult) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    style = "bold green" if result.ok else "bold red"
    table.add_row("status", f"[{style}]{result.status.value}[/]")
    table.add_row("reason", one_line(result.reason, 200).replace("[", r"\["))
    table.add_row("iterations", str(result.iterations))
    table.add_row(
        "tokens",
        f"{result.usage.input_tokens:,} in / {result.usage.output_tokens:,} out"
        + (f" ({result.usage.cached_tokens:,} cached)" if result.usage.cached_tokens else ""),
    )
    table.add_row("cost", f"${result.cost:.4f}")
    for phase, spent in sorted(result.phases.items()):
        table.add_row(
            f"  {phase}",
            f"{spent.calls} call{'s' if spent.calls != 1 else ''}, "
            f"{spent.usage.input_tokens:,} in / {spent.usage.output_tokens:,} out, "
            f"${spent.cost:.4f}",
        )
    table.add_row("time", f"{result.duration:.2f} s")
    if result.trace_path is not None:
        table.add_row("trace", str(result.trace_path))
    console.print(table)


@app.command()
def run(
    goal: Annotated[str, typer.Argument(help="What to achieve, in plain words.")],
    check: Annotated[
        list[str],
        typer.Option(
            "--check",
            "-c",
            help="A shell command that must exit 0 for the goal to be met "
            "(repeatable; at least one).",
        ),
    ] = [],  # noqa: B006 - typer reads the default
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="The directory the loop may change.")
    ] = Path("."),
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model spec: scripted:FILE, local, openai:MODEL, "
            "openai-compatible:URL#MODEL, anthropic:MODEL.",
        ),
    ] = "local",
    max_iterations: Annotated[
        int, typer.Option(help="Stop after this many plan-act-validate iterations.", min=1)
    ] = 5,
    max_input_tokens: Annotated[
        int | None, typer.Option(help="Stop once this many input tokens are spent.", min=1)
    ] = None,
    max_output_tokens: Annotated[
        int | None, typer.Option(help="Stop once this many output tokens are spent.", min=1)
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop once this much money (USD) is spent.", min=0)
    ] = None,
    max_time: Annotated[
        float, typer.Option(help="Stop after this many seconds of wall time.", min=0.001)
    ] = 900.0,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds one action or check may run before its process tree is killed.", min=0.001
        ),
    ] = 120.0,
    env: Annotated[
        list[str],
        typer.Option(
            "--env",
            help="Name of an environment variable the sandbox and the planner may see "
            "(repeatable; secret-looking names are refused).",
        ),
    ] = [],  # noqa: B006
    stuck_after: Annotated[
        int,
        typer.Option(
            help="Stop after this many iterations in a row that fail the same way.", min=1
        ),
    ] = 2,
    trace_dir: Annotated[
        Path | None,
        typer.Option(help="Where to write the JSONL trace (default: WORKSPACE/.zerog/runs)."),
    ] = None,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show model calls and feedback.")
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
) -> None:
    """Run GOAL in a workspace until every --check passes or a budget runs out.

    Exit code: 0 success, 1 checks not met (budget, stuck), 2 bad input, 3 model error,
    130 interrupted.
    """
    console = Console(stderr=as_json, highlight=False)
    err = Console(stderr=True, highlight=False)
    try:
        if not check:
            raise ConfigError("give at least one --check command that proves the goal")
        the_goal = Goal(
            text=goal,
            workspace=workspace,
            checks=tuple(CommandCheck(command=c) for c in check),
            budget=Budget(
                max_iterations=max_iterations,
                max_input_tokens=max_input_tokens,
                max_output_tokens=max_output_tokens,
                max_cost=max_cost,
                max_seconds=max_time,
            ),
            env_allow=tuple(env),
        )
        backend = load_model(model, base_dir=Path.cwd())
        progress = None if quiet or as_json else ConsoleProgress(console, verbose=verbose)
        sinks = [progress] if progress else []
        engine = Engine(
            backend,
            sinks=sinks,
            limits=Limits(timeout=timeout),
            stuck_after=stuck_after,
            trace_dir=trace_dir,
        )
        try:
            result = engine.run(the_goal)
        finally:
            if progress is not None:
                progress.close()
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        err.print(f"[red]error:[/] invalid {where}: {first['msg']}", markup=True)
        raise typer.Exit(EXIT_USAGE) from None
    except ZerogError as exc:
        err.print(f"error: {one_line(str(exc), 500)}", style="red", markup=False)
        raise typer.Exit(EXIT_USAGE) from None
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        _summary(console, result)
    raise typer.Exit(_exit_code(result))


@bench_app.command("overhead")
def bench_overhead(
    iterations: Annotated[int, typer.Option(help="Loop iterations per round.", min=1)] = 200,
    rounds: Annotated[int, typer.Option(help="Rounds; the median is reported.", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The engine's own time per iteration against the bare subprocess calls it makes."""
    from zerog.bench.overhead import measure

    console = Console(highlight=False)
    report = measure(
        iterations=iterations, rounds=rounds, progress=None if as_json else console.print
    )
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    console.print(report.table())


@app.command()
def version() -> None:
    """Print the zerog version."""
    from zerog import __version__

    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
