"""`zerog routes compile | show` (see docs/routing.md)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from zerog.cli.errors import fail
from zerog.errors import ZerogError
from zerog.store import Store, default_store_path
from zerog.text import one_line, sanitize


def compile_command(
    store: Annotated[
        Path | None,
        typer.Option(
            help="The run store to learn from (default: $ZEROG_STORE, else "
            "~/.local/share/zerog/runs.db).",
            show_default=False,
        ),
    ] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the router.")] = Path(
        "router.json"
    ),
    runs: Annotated[int, typer.Option(help="Learn from this many newest runs.", min=1)] = 1000,
    min_support: Annotated[
        int, typer.Option(help="Successful steps a route needs at least.", min=1)
    ] = 3,
    min_runs: Annotated[int, typer.Option(help="Distinct runs a route needs at least.", min=1)] = 2,
    holdout: Annotated[
        float, typer.Option(help="Share of runs held out to calibrate.", min=0.05, max=0.9)
    ] = 0.25,
    target_precision: Annotated[
        float,
        typer.Option(help="Held-out precision the threshold must reach.", min=0.5, max=1.0),
    ] = 0.99,
) -> None:
    """Learn a router from the recorded runs of a store and write it to --out."""
    import os

    from zerog.router.artifact import dumps, save
    from zerog.router.history import store_steps
    from zerog.router.learn import Settings, compile_router

    path = store or default_store_path(os.environ)
    if not path.exists():
        fail(f"no run store at {path}: record some runs first (zerog run)")
    settings = Settings(
        min_support=min_support,
        min_runs=min_runs,
        holdout=holdout,
        target_precision=target_precision,
    )
    console = Console(stderr=True, highlight=False)
    try:
        with Store(path) as opened:
            console.print(f"reading up to {runs} runs from {path} ...", markup=False)
            steps = store_steps(opened, runs)
        compiled = compile_router(steps, settings)
        save(compiled.model, out)
    except (ZerogError, OSError) as exc:
        fail(str(exc))
    model = compiled.model
    cal = model.calibration
    console.print(
        f"{len(model.classes)} routes from {compiled.examples} worker steps "
        f"({compiled.train_examples} trained, {compiled.heldout_examples} held out); "
        f"threshold {model.threshold:.3f} ({cal.note}); "
        f"{len(dumps(model).encode())} bytes -> {out}",
        markup=False,
    )


def show_command(
    file: Annotated[Path, typer.Argument(help="A router file (zerog routes compile).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the whole file as JSON.")] = False,
) -> None:
    """Check a router file (format, version, digest) and print its routes."""
    from zerog.router.artifact import digest_of, dumps, load

    try:
        model = load(file)
    except ZerogError as exc:
        fail(str(exc))
    if as_json:
        sys.stdout.write(dumps(model))
        return
    console = Console(highlight=False)
    cal = model.calibration
    console.print(f"router      {file}  ({digest_of(model)[:23]}...)", markup=False)
    console.print(
        f"threshold   {model.threshold:.3f}  (target precision {cal.target_precision}, "
        f"{cal.heldout_steps} held-out steps of {cal.heldout_runs} runs: {cal.correct}/"
        f"{cal.routed} routed right; {cal.note})",
        markup=False,
    )
    console.print(
        f"trained on  {model.trained_steps} steps of {model.trained_runs} runs; "
        f"{len(model.weights)} weight rows",
        markup=False,
    )
    table = Table()
    for column in ("route", "support", "runs", "demotions", "actions"):
        table.add_column(column)
    for route in model.classes:
        actions = json.loads(route.actions)
        summary = "; ".join(
            one_line(str(a.get("command") or f"{a.get('kind')} {a.get('path')}"), 60)
            for a in actions
        )
        table.add_row(
            sanitize(route.name),
            str(route.support),
            str(route.runs),
            str(route.demotions),
            sanitize(summary),
        )
    console.print(table)


HELP = "Routers that carry out predictable steps without the model."


def group() -> typer.Typer:
    """`zerog routes ...`."""
    app = typer.Typer(help=HELP, no_args_is_help=True)
    app.command("compile")(compile_command)
    app.command("show")(show_command)
    return app
