"""The `zerog` command line, assembled: every command group's module adds its commands,
and `bench` is mounted from :mod:`zerog.bench.cli` (the only place that knows it)."""

from __future__ import annotations

import sys

import typer

from zerog.bench.cli.app import group as bench_group
from zerog.cli import batch, cache, diff, routes, run, runs, sandbox, serve
from zerog.cli.errors import EXIT_INTERRUPTED

HELP = (
    "Run LLM reasoning loops that plan, act in a sandbox, validate and backtrack "
    "until the goal's checks pass or a budget runs out."
)


def version() -> None:
    """Print the zerog version."""
    from zerog import __version__

    typer.echo(__version__)


def build() -> typer.Typer:
    """The whole command line; commands and groups in the order `zerog --help` lists them."""
    app = typer.Typer(
        name="zerog",
        help=HELP,
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
    )
    app.command()(serve.serve)
    app.command("diff")(diff.diff_command)
    app.command()(run.run)
    app.command()(run.resume)
    app.command()(runs.runs)
    app.command()(runs.show)
    app.command()(runs.export)
    app.command()(runs.replay)
    app.command()(batch.batch)
    app.command()(version)
    app.add_typer(bench_group(), name="bench")
    app.add_typer(routes.group(), name="routes")
    app.add_typer(cache.group(), name="cache")
    app.add_typer(sandbox.group(), name="sandbox")
    return app


def main() -> None:
    """The `zerog` console script and `python -m zerog`."""
    try:
        build()()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
