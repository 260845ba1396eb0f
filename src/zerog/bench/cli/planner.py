"""`zerog bench planner`: the command over :mod:`zerog.bench.planner`."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zerog.cli.errors import fail
from zerog.cli.options import PrintJsonOption, model_option
from zerog.errors import ZerogError


def bench_planner(
    model: Annotated[str, model_option("The model's spec.")] = "local",
    variant: Annotated[
        list[str],
        typer.Option(help="json (code in the JSON plan), blocks (default), edits (repeatable)."),
    ] = ["json", "blocks"],  # noqa: B006 - typer reads the default
    task: Annotated[
        list[str], typer.Option(help="Only these tasks (repeatable); default: all.")
    ] = [],  # noqa: B006 - typer reads the default
    local_demo: Annotated[
        Path | None,
        typer.Option(help="The local demo's workspace, run as a task too."),
    ] = Path("examples/local-demo/workspace"),
    iterations: Annotated[int, typer.Option(help="Iterations per run.", min=1)] = 2,
    sandbox: Annotated[str | None, typer.Option(help="bwrap (default on Linux), local.")] = None,
    as_json: PrintJsonOption = False,
) -> None:
    """Old planner (code in JSON) against code as code, on small bug-fix tasks, with the
    same model in the same process (Markdown table)."""
    from zerog.bench.planner import VARIANTS, as_dicts, measure, table, tasks
    from zerog.models.spec import load_model
    from zerog.sandbox.factory import default_sandbox_name

    console = Console(highlight=False, stderr=True)
    try:
        unknown = [v for v in variant if v not in VARIANTS]
        if unknown:
            raise typer.BadParameter(f"unknown variant(s) {unknown}: one of {VARIANTS}")
        demo = local_demo if local_demo is not None and local_demo.is_dir() else None
        chosen = [t for t in tasks(demo) if not task or t.name in task]
        loaded = load_model(model, Path.cwd())
        runs = measure(
            loaded,
            chosen,
            variant,
            sandbox=sandbox or default_sandbox_name(),
            iterations=iterations,
            environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
            progress=lambda r: console.print(
                f"{r.task} {r.variant}: {r.status} in {r.iterations} iteration(s), "
                f"{r.model_calls} calls, {r.model_seconds} model s",
                markup=False,
            ),
        )
    except ZerogError as exc:
        fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(as_dicts(runs), indent=2) + "\n")
        return
    typer.echo(table(runs, variant), nl=False)
