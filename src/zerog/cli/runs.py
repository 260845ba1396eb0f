"""`zerog runs`, `zerog show`, `zerog export` and `zerog replay`: the recorded runs of a
store, listed, told, exported as JSONL and replayed."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zerog.cli import diff as diff_cli
from zerog.cli.errors import EXIT_FAILED, EXIT_OK, fail
from zerog.cli.options import ColorOption, JsonOption, StoreOption, VerboseOption
from zerog.cli.store import open_store
from zerog.cli.summary import cannot_run_rows, files_rows, git_rows
from zerog.errors import ZerogError
from zerog.event_catalog import RunFinished, kind_of, parse
from zerog.events import Event
from zerog.progress import ConsoleProgress
from zerog.text import one_line


def runs(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(help="How many runs to list, newest first.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recorded runs: status, goal, iterations, tokens, cost, duration."""
    with open_store(store) as opened:
        rows = opened.runs(limit)
    if as_json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
        return
    table = Table(title=f"runs in {opened.path}")
    for column in ("id", "status", "goal", "iter", "tokens in/out", "cost", "time"):
        if column == "goal":
            table.add_column(column, min_width=24, overflow="fold")
        else:
            table.add_column(column, no_wrap=True)
    for r in rows:
        table.add_row(
            r.id,
            r.status,
            Text(one_line(r.goal, 60)),
            str(r.iterations),
            f"{r.input_tokens:,}/{r.output_tokens:,}",
            f"${r.cost:.4f}",
            f"{r.duration:.1f} s",
        )
    Console(highlight=False).print(table)


def show(
    run_id: Annotated[str, typer.Argument(help="The run to show (an id or a prefix).")],
    store: StoreOption = None,
    verbose: VerboseOption = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Then print what the run changed (as zerog diff).")
    ] = False,
    color: ColorOption = None,
) -> None:
    """Tell the whole story of one run: plans, actions, checks, rollbacks, spend, the
    files it changed and, with --diff, the diff."""
    with open_store(store) as opened:
        try:
            row = opened.find(run_id)
        except ZerogError as exc:
            fail(exc)
        events = opened.events(row.id)
    console = Console(highlight=False)
    progress = ConsoleProgress(console, verbose=verbose, live=False)
    for event in events:
        progress.emit(event)
    ends = [parse(e) for e in events if e.kind == kind_of(RunFinished)]
    end = ends[-1] if ends else None
    if end is None:
        status = "unfinished"
    elif isinstance(end, RunFinished):
        status = end.status
    else:  # the store is a file: a damaged record is named, not guessed at
        status = "finished (its record is damaged)"
    console.print(
        Text(
            f"{row.id}: {status} · {row.iterations} iterations · "
            f"{row.input_tokens:,} in / {row.output_tokens:,} out tokens · ${row.cost:.4f}"
            f" · {row.duration:.2f} s"
        )
    )
    finished = end if isinstance(end, RunFinished) else None
    if finished is not None and len(finished.models) > 1:  # a cascade: each model's share
        for name, spent in finished.models.items():
            console.print(
                Text(
                    f"  by {one_line(str(name), 60)}: {spent.calls} "
                    f"call{'s' if spent.calls != 1 else ''} · "
                    f"{spent.usage.input_tokens:,} in / {spent.usage.output_tokens:,} out "
                    f"tokens · ${spent.cost:.4f}"
                )
            )
    if finished is not None:
        _show_outcome(console, finished, row.id)
    if end is None:
        console.print(
            f"this run did not finish: `zerog resume {row.id}` continues it", markup=False
        )
    if diff:
        with open_store(store) as opened:
            changes = diff_cli.load(opened, row.id)
        console.file.flush()
        diff_cli.print_diff(
            changes,
            stat=False,
            color=diff_cli.use_color(color, sys.stdout, os.environ),
            stream=sys.stdout,
        )


def _show_outcome(console: Console, finished: RunFinished, run_id: str) -> None:
    """The files a finished run changed and what --git did, from its run_finished event."""
    table = Table(show_header=False, box=None, pad_edge=False)
    if finished.files is not None:
        files_rows(table, finished.files, run_id)
    if finished.git is not None:
        git_rows(table, finished.git)
    if finished.cannot_run:
        cannot_run_rows(table, finished.cannot_run)
    if table.row_count:
        console.print(table)


def export(
    run_id: Annotated[str, typer.Argument(help="The run to export (an id or a prefix).")],
    store: StoreOption = None,
) -> None:
    """Write one run's events as JSONL (one JSON object per event) to standard output."""
    with open_store(store) as opened:
        try:
            row = opened.find(run_id)
        except ZerogError as exc:
            fail(exc)
        for event in opened.events(row.id):
            sys.stdout.write(_event_json(event) + "\n")


def _event_json(event: Event) -> str:
    record: dict[str, object] = {
        "run_id": event.run_id,
        "seq": event.seq,
        "ts": event.ts,
        "kind": event.kind,
    }
    record.update(event.data)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (an id or a prefix).")],
    store: StoreOption = None,
) -> None:
    """Re-run a recorded run with its recorded model answers (no model is called) in a
    fresh copy of its starting workspace, and report every divergence."""
    from zerog.replay import replay_run

    console = Console(highlight=False)
    with open_store(store) as opened:
        try:
            report = replay_run(opened, run_id, environ=os.environ)
        except ZerogError as exc:
            fail(exc)
    console.print(
        Text(
            f"replayed {report.original} as {report.replay.run_id}: "
            f"{report.model_calls} recorded model answers, {report.compared} outcomes "
            f"compared, {len(report.divergences)} divergences, "
            f"{report.prompt_changes} prompts differ"
        )
    )
    for line in report.divergences[:50]:
        console.print(Text(f"  ✗ {line}"))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)
