"""`zerog diff RUN`: what a run changed in its workspace, as a unified diff (or a stat)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Mapping
from typing import Annotated, TextIO

import typer

from zerog.cli.errors import fail
from zerog.cli.options import ColorOption, StoreOption
from zerog.diff import RunDiff, render, render_stat, run_diff
from zerog.errors import ZerogError
from zerog.store import Store, default_store_path

StatOption = Annotated[
    bool, typer.Option("--stat", help="One line per file (lines added and removed), then totals.")
]


def use_color(choice: bool | None, stream: TextIO, environ: Mapping[str, str]) -> bool:
    if choice is not None:
        return choice
    return stream.isatty() and "NO_COLOR" not in environ and environ.get("TERM") != "dumb"


def load(store: Store, run_id: str) -> RunDiff:
    """The run's diff, or a clear error and exit code 2."""
    try:
        return run_diff(store, run_id)
    except ZerogError as exc:
        fail(exc)


def write(lines: Iterable[str], stream: TextIO) -> None:
    """Print lines; a reader that goes away (``| head``) ends the output quietly."""
    try:
        for line in lines:
            stream.write(line + "\n")
        stream.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        raise typer.Exit(0) from None


def print_diff(diff: RunDiff, *, stat: bool, color: bool, stream: TextIO) -> None:
    if not diff.files and not diff.note:
        write([f"run {diff.run_id} changed nothing in its workspace"], stream)
        return
    write(render_stat(diff) if stat else render(diff, color=color), stream)


def diff_command(
    run_id: Annotated[str, typer.Argument(help="The run (an id or a unique prefix).")],
    store: StoreOption = None,
    stat: StatOption = False,
    color: ColorOption = None,
) -> None:
    """Print what RUN changed in its workspace: a unified diff from the workspace as the
    run found it to the state it left (from the run's snapshots, so later edits do not
    show). Binary and large files get a one-line note; control characters in paths and
    lines are shown as escapes (\\x1b), never sent to the terminal.

    A run without a final state (still going, killed) is compared with the workspace as
    it is now, and the output says so. Exit code 0, or 2 when the run is unknown or its
    snapshots are gone.
    """
    try:
        with Store(store or default_store_path(os.environ)) as opened:
            diff = load(opened, run_id)
    except ZerogError as exc:
        fail(exc)
    print_diff(diff, stat=stat, color=use_color(color, sys.stdout, os.environ), stream=sys.stdout)
