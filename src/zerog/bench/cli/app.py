"""`zerog bench`: every benchmark command, in one group the engine's command line mounts.

The commands import their benchmark (and what it needs) only when they run, so
`zerog bench --help` works without the bench extra's packages, and a command whose
package is missing says what to install.
"""

from __future__ import annotations

import typer

from zerog.bench.cli import humaneval, measures, planner, repos

HELP = "Benchmarks that print ratios against a baseline run."


def group() -> typer.Typer:
    """The `zerog bench` group, its commands in the order `zerog bench --help` lists them."""
    app = typer.Typer(help=HELP, no_args_is_help=True)
    app.command("serve")(measures.bench_serve)
    app.command("router")(measures.bench_router)
    app.command("cache")(measures.bench_cache)
    app.command("humaneval")(humaneval.bench_humaneval)
    app.command("humaneval-compare")(humaneval.bench_humaneval_compare)
    app.command("humaneval-signals")(humaneval.bench_humaneval_signals)
    app.command("planner")(planner.bench_planner)
    app.command("crash")(measures.bench_crash)
    app.command("overhead")(measures.bench_overhead)
    app.command("preflight")(measures.bench_preflight)
    app.command("context")(measures.bench_context)
    app.command("sweep")(measures.bench_sweep)
    app.command("sandbox")(measures.bench_sandbox)
    app.command("models")(measures.bench_models)
    app.command("prefix")(measures.bench_prefix)
    app.command("batch")(measures.bench_batch)
    app.command("repos")(repos.bench_repos)
    return app
