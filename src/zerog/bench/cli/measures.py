"""The `zerog bench` commands that fit on a screen: each measures one part of the engine
(the functions are in the modules of :mod:`zerog.bench`, imported when the command runs,
so that `zerog bench --help` needs none of their dependencies)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zerog.cli.cache import DataDirOption, data_dir_or_default
from zerog.cli.errors import EXIT_FAILED, EXIT_OK, fail
from zerog.cli.options import JsonOption, PrintJsonOption, RoundsOption, SandboxOption
from zerog.errors import ConfigError, ZerogError
from zerog.text import one_line


def print_report(
    console: Console, data: Mapping[str, object], tables: Iterable[Table], *, as_json: bool
) -> None:
    """A bench report: its figures as JSON on standard output, or its tables."""
    if as_json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    for table in tables:
        console.print(table)


def bench_serve(
    runs: Annotated[int, typer.Option(help="Runs each way; the median is reported.", min=1)] = 10,
    poll: Annotated[
        float, typer.Option(help="The event stream's store poll interval, s.", min=0.01)
    ] = 0.25,
    as_json: PrintJsonOption = False,
) -> None:
    """The demo goal through `zerog serve` (HTTP submit, a worker process, the event
    stream) against the same goal run by the engine in-process; the stream's delay."""
    try:
        from zerog.bench.serve import measure
    except ImportError as exc:
        fail(f"needs the serve extra ({exc.name} is missing)")
    console = Console(highlight=False, stderr=as_json)
    try:
        report = measure(runs=runs, poll_seconds=poll, progress=console.print)
    except ZerogError as exc:
        fail(str(exc))
    print_report(console, report.as_dict(), [report.table()], as_json=as_json)


def bench_router(
    train: Annotated[int, typer.Option(help="Recorded runs to compile from.", min=4)] = 120,
    heldout: Annotated[int, typer.Option(help="New runs to evaluate on.", min=1)] = 40,
    sandbox: Annotated[str, typer.Option(help="Sandbox of every run.")] = "local",
    seed: Annotated[int, typer.Option(help="Seed of the workload.")] = 1,
    as_json: PrintJsonOption = False,
) -> None:
    """Share of steps routed, routed-step accuracy, tokens and time saved, decision latency."""
    from zerog.bench.router import measure

    console = Console(stderr=as_json, highlight=False)
    try:
        report = measure(
            train=train,
            heldout=heldout,
            sandbox=sandbox,
            seed=seed,
            progress=lambda m: console.print(m, markup=False),
        )
    except ZerogError as exc:
        fail(str(exc))
    print_report(console, report.as_dict(), [report.table()], as_json=as_json)


def bench_cache(
    per_family: Annotated[
        int, typer.Option(help="Stored goals per task family (8 families).", min=2)
    ] = 15,
    queries: Annotated[int, typer.Option(help="Lookups per index size.", min=10)] = 200,
    sizes: Annotated[
        list[int], typer.Option("--size", help="Index sizes to time (repeatable).")
    ] = [10_000, 100_000],  # noqa: B006 - typer reads the default
    repeat_goals: Annotated[
        int, typer.Option(help="Goals in the repeated workload (3 runs each).", min=1)
    ] = 16,
    data_dir: DataDirOption = None,
    as_json: PrintJsonOption = False,
) -> None:
    """Plan-cache hit and wrong-hit rates on paraphrases and near misses, exact-hit
    latency, lookup latency at scale, and tokens with and without the caches."""
    from zerog.bench.cache import measure

    console = Console(highlight=False, stderr=as_json)
    try:
        report = measure(
            data_dir_or_default(data_dir),
            per_family=per_family,
            sizes=sizes,
            queries=queries,
            repeat_goals=repeat_goals,
            progress=lambda line: console.print(Text(line)),
        )
    except ZerogError as exc:
        fail(exc)
    print_report(console, report.as_dict(), report.tables(), as_json=as_json)


def bench_batch(
    goals: Annotated[int, typer.Option(help="Goals per measurement.", min=1)] = 40,
    workers: Annotated[
        list[int], typer.Option("--workers", help="Worker counts to measure (repeatable).")
    ] = [1, 2, 4],  # noqa: B006 - typer reads the default
    executor: Annotated[
        list[str], typer.Option("--executor", help="local and/or ray (repeatable).")
    ] = ["local", "ray"],  # noqa: B006
    bare_tasks: Annotated[
        int, typer.Option(help="Bare no-op tasks for the dispatch baseline.", min=10)
    ] = 200,
    as_json: PrintJsonOption = False,
) -> None:
    """Batch throughput (goals/s, scripted model, trivial check) at several worker
    counts on the local pool and on a local Ray, and the dispatch overhead per goal
    against a bare process-pool task and a bare Ray task, in the same run."""
    from zerog.bench.batch import measure

    console = Console(highlight=False, stderr=as_json)
    try:
        report = measure(
            goals=goals,
            workers=workers,
            executors=executor,
            bare_tasks=bare_tasks,
            progress=lambda line: console.print(Text(line)),
        )
    except ZerogError as exc:
        fail(str(exc))
    print_report(console, report.as_dict(), report.tables(), as_json=as_json)


def bench_crash(
    kills: Annotated[int, typer.Option(help="How many SIGKILLs to deliver in all.", min=1)] = 100,
    jobs: Annotated[int, typer.Option(help="Kill chains run side by side.", min=1)] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the random kill times.")] = 1,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh-processes",
            help="Start each process as a fresh interpreter, not a fork of a fork server.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Kill real `zerog run` / `zerog resume` processes at random moments, resume them, and
    count lost and duplicated actions (both must be 0); also what a durable event costs,
    now and the way it was written before (an fsync per event)."""
    from zerog.bench.crash import measure as measure_crash

    console = Console(highlight=False, stderr=as_json)
    report = measure_crash(
        kills=kills,
        jobs=jobs,
        seed=seed,
        progress=None if as_json else console.print,
        fork=not fresh,
    )
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        table = Table(title=f"crash test: {report.kills} kills in {report.chains} runs")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for label, value in report.rows():
            table.add_row(label, value)
        console.print(table)
    bad = report.lost or report.duplicated or report.wrong_state
    raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)


def bench_overhead(
    iterations: Annotated[int, typer.Option(help="Loop iterations per round.", min=1)] = 200,
    rounds: RoundsOption = 5,
    as_json: PrintJsonOption = False,
) -> None:
    """The engine's own time per iteration against the bare subprocess calls it makes."""
    from zerog.bench.overhead import measure

    console = Console(highlight=False)
    report = measure(
        iterations=iterations, rounds=rounds, progress=None if as_json else console.print
    )
    print_report(console, report.as_dict(), [report.table()], as_json=as_json)


def bench_preflight(
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="A workspace to copy (e.g. examples/demo/workspace); default: a stub "
            "median() and its unit tests.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[str, typer.Option(help="The goal's check.")] = "python3 -m unittest -q",
    sandbox: SandboxOption = None,
    rounds: RoundsOption = 7,
    as_json: PrintJsonOption = False,
) -> None:
    """What the preflight adds to a run (with and without it, alternately), against one
    bare sweep of the same checks."""
    from zerog.bench.preflight import measure
    from zerog.sandbox.factory import default_sandbox_name

    console = Console(highlight=False, stderr=as_json)
    if workspace is not None and not workspace.is_dir():
        fail(ConfigError(f"--workspace: {workspace} is not a directory"))
    try:
        report = measure(
            workspace=workspace.resolve() if workspace else None,
            check=check,
            sandbox=sandbox or default_sandbox_name(),
            rounds=rounds,
            environ=os.environ,
            progress=None if as_json else console.print,
        )
    except ZerogError as exc:
        fail(exc)
    print_report(console, report.as_dict(), [report.table()], as_json=as_json)


def bench_context(
    model: Annotated[
        str | None,
        typer.Option(help="Also run each task end to end, without and with the new parts."),
    ] = None,
    task: Annotated[list[str] | None, typer.Option(help="Only these tasks (repeatable).")] = None,
    iterations: Annotated[int, typer.Option(help="Iterations of an end-to-end run.", min=1)] = 2,
    sandbox: SandboxOption = None,
    rounds: RoundsOption = 5,
    total: Annotated[
        int | None,
        typer.Option(help="Characters of file text a prompt carries.", min=0, show_default=False),
    ] = None,
    as_json: PrintJsonOption = False,
) -> None:
    """What each part of the context (the files the goal and the failing checks name,
    their imports, the symbol map) adds to the prompt, on generated repositories."""
    from zerog.bench.context import measure as measure_context
    from zerog.models.spec import load_model
    from zerog.sandbox.factory import default_sandbox_name

    console = Console(highlight=False, stderr=as_json)
    try:
        loaded = (
            load_model(model, base_dir=Path.cwd(), on_progress=console.print) if model else None
        )
        report = measure_context(
            sandbox=sandbox or default_sandbox_name(),
            rounds=rounds,
            environ=os.environ,
            model=loaded,
            max_iterations=iterations,
            only=task or (),
            progress=None if as_json else console.print,
            total=total,
        )
    except ZerogError as exc:
        fail(exc)
    print_report(console, report.as_dict(), report.tables(), as_json=as_json)


def bench_sweep(
    rounds: Annotated[
        int, typer.Option(help="Sweeps per sidecar; the median is reported.", min=1)
    ] = 5,
    as_json: PrintJsonOption = False,
) -> None:
    """Validation: 10 sidecar checks in WASM against subprocesses, and failure feedback
    tokens against the raw output of real pytest, mypy, gcc and terraform failures."""
    from zerog.bench.sweep import measure

    console = Console(highlight=False)
    report = measure(rounds=rounds, progress=None if as_json else console.print)
    print_report(console, report.as_dict(), report.tables(), as_json=as_json)


def bench_sandbox(
    runs: Annotated[int, typer.Option(help="Runs per backend (after 2 warm-up runs).", min=3)] = 50,
    files: Annotated[int, typer.Option(help="Files in the snapshot workspace.", min=1)] = 1000,
    megabytes: Annotated[int, typer.Option(help="Size of that workspace, MB.", min=1)] = 50,
    as_json: PrintJsonOption = False,
) -> None:
    """Startup latency of each sandbox against bare subprocess.run; snapshot/restore time."""
    from zerog.bench.sandbox import measure

    console = Console(highlight=False, stderr=as_json)
    report = measure(runs=runs, files=files, megabytes=megabytes, progress=console.print)
    print_report(console, report.as_dict(), report.tables(), as_json=as_json)


def bench_models(
    local: Annotated[
        list[str],
        typer.Option("--local", help="Local models to time (repeatable): 0.5b, 1.5b, or none."),
    ] = ["0.5b", "1.5b"],  # noqa: B006 - typer reads the default
    tokens: Annotated[int, typer.Option(help="Tokens per local generation.", min=2)] = 128,
    calls: Annotated[int, typer.Option(help="API adapter calls per round.", min=1)] = 200,
    rounds: RoundsOption = 3,
    as_json: PrintJsonOption = False,
) -> None:
    """Local models' tokens/s, and each adapter's per-call overhead over its raw client."""
    from zerog.bench.models import measure

    console = Console(highlight=False)
    try:
        report = measure(
            local=[key for key in local if key != "none"],
            tokens=tokens,
            calls=calls,
            rounds=rounds,
            progress=None if as_json else lambda line: console.print(Text(line)),
        )
    except ZerogError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)
    for line in report.skipped:
        console.print(Text(f"skipped {one_line(line, 300)}"))


def bench_prefix(
    local: Annotated[
        str, typer.Option("--local", help="The local model to run: 0.5b or 1.5b.")
    ] = "0.5b",
    iterations: Annotated[int, typer.Option(help="Iterations of each run.", min=2)] = 5,
    files: Annotated[
        int, typer.Option(help="Source files in the workspace (1: 3 KB, 2: 8 KB).", min=1, max=2)
    ] = 1,
    as_json: PrintJsonOption = False,
) -> None:
    """Prompt-prefix reuse: a real run with the local model, its tokens kept between calls,
    against the same run evaluating every prompt whole (tokens and time per iteration)."""
    from zerog.bench.prefix import measure as measure_prefix
    from zerog.models.weights import WEIGHTS, default_model_dir, ensure_weights

    console = Console(highlight=False)
    say = None if as_json else lambda line: console.print(Text(line))
    try:
        if local not in WEIGHTS:
            raise ConfigError(f"unknown local model '{local}': expected {', '.join(WEIGHTS)}")
        path = ensure_weights(WEIGHTS[local], default_model_dir(os.environ), on_progress=say)
        report = measure_prefix(
            path, name=f"local:{local}", iterations=iterations, files=files, progress=say
        )
    except ZerogError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)
