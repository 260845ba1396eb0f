"""The summary table of a run: its status and spend, the files it changed, what --git
did and the checks that cannot run (printed by `zerog run`/`zerog resume`; the outcome
rows also by `zerog show`)."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.table import Table
from rich.text import Text

from zerog.text import one_line
from zerog.types import CannotRun, FileChanges, GitOutcome, RunResult


def print_summary(console: Console, result: RunResult) -> None:
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
    if result.cache_hits:
        hits = ", ".join(f"{kind} {n}" for kind, n in sorted(result.cache_hits.items()))
        table.add_row("cache hits", hits)
    rows = sorted(result.phases.items())
    if len(result.models) > 1:  # a cascade: what each model spent, in the order asked
        rows += [(f"by {one_line(name, 40)}", spent) for name, spent in result.models.items()]
    for label, spent in rows:
        table.add_row(
            f"  {label}".replace("[", r"\["),
            f"{spent.calls} call{'s' if spent.calls != 1 else ''}, "
            f"{spent.usage.input_tokens:,} in / {spent.usage.output_tokens:,} out, "
            f"${spent.cost:.4f}",
        )
    if result.verdict is not None and result.verdict.flaky:
        names = ", ".join(one_line(r.name, 60) for r in result.verdict.flaky)
        table.add_row("flaky", Text(f"passed only on a re-run: {names}", style="yellow"))
    table.add_row("time", f"{result.duration:.2f} s")
    cannot_run_rows(table, result.cannot_run)
    if result.trace_path is not None:
        table.add_row("trace", str(result.trace_path))
    if result.files is not None:
        files_rows(table, result.files, result.run_id)
    if result.git is not None:
        git_rows(table, result.git)
    console.print(table)


SHOWN_PATHS = 10  # paths of a run's changes listed in the terminal


def files_rows(table: Table, files: FileChanges, run_id: str) -> None:
    """What the run changed: the counts, then the first paths (escaped already)."""
    counts = (
        f"{files.changed_total} changed, {files.added_total} added, {files.removed_total} removed"
    )
    hint = f"  (zerog diff {run_id})" if files.total else ""
    table.add_row("files", Text(counts + hint))
    listed = [
        (kind, path)
        for kind, paths in (
            ("changed", files.changed),
            ("added", files.added),
            ("removed", files.removed),
        )
        for path in paths
    ]
    for kind, path in listed[:SHOWN_PATHS]:
        table.add_row("", Text(f"{kind:<8} {path}"))
    if files.total > SHOWN_PATHS:
        table.add_row("", Text(f"… and {files.total - SHOWN_PATHS} more"))


def cannot_run_rows(table: Table, refusals: Sequence[CannotRun]) -> None:
    """Each check the preflight found cannot run: the check, the cause, the fix (whole)."""
    for refusal in refusals:
        table.add_row("cannot run", Text(one_line(refusal.check, 200), style="bold red"))
        table.add_row("  cause", Text(one_line(refusal.cause, 400)))
        table.add_row("  fix", Text(one_line(refusal.fix, 1_000)))


def git_rows(table: Table, git: GitOutcome) -> None:
    branch = one_line(git.branch, 100)
    user = one_line(git.user_branch, 100)
    if git.status == "committed" and git.commit:
        table.add_row(
            "git",
            Text(
                f"committed {git.commit[:12]} on new branch {branch}; {user} and the work "
                "tree are as they were",
                style="green",
            ),
        )
        table.add_row("", Text(f"review: git log -p {user}..{branch}"))
        table.add_row("", Text(f"take it: git merge {branch}  (or git switch {branch})"))
    else:
        style = "red" if git.status == "failed" else "yellow"
        table.add_row("git", Text(f"{git.status}: {one_line(git.message, 300)}", style=style))
