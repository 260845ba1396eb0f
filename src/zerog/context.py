"""Reconstructive parsing: everything the planner should know, bounded and redacted.

The context is rebuilt from the world at the start of every iteration: the goal, an
allow-list of environment variables, an index of the workspace, and what earlier attempts
of this run did and how they failed.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from pydantic import Field

from zerog.beneath import Dir, PathEscape, read_below, read_beneath
from zerog.focus import ContextBudget, Shown, choose
from zerog.redact import Redactor, is_secret_file, redact_env, redact_text
from zerog.text import elide, sanitize
from zerog.types import Frozen, Goal

DEFAULT_ENV_ALLOW = ("LANG", "SHELL", "VIRTUAL_ENV", "CI", "PYTHONPATH", "TZ")
SKIPPED_DIRS = frozenset(
    {
        ".zerog",
        ".git",
        ".hg",
        ".svn",
        "__pycache__",
        ".venv",
        "venv",
        "node_modules",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
        ".tox",
        ".nox",
        "dist",
        "build",
        ".terraform",
        ".idea",
        ".vscode",
        ".eggs",
    }
)


class IndexLimits(Frozen):
    max_files: int = Field(default=200, ge=1)
    max_file_bytes: int = Field(default=6_000, ge=0)
    max_content_bytes: int = Field(default=16_000, ge=0)
    max_known: int = Field(default=5_000, ge=0)  # paths remembered to match names against


class FileEntry(Frozen):
    path: str
    size: int
    content: str | None = None  # the whole text, when the prompt shows it
    excerpt: str | None = None  # the relevant regions, when the whole does not fit
    reason: str = ""  # why the prompt shows it before other files (named in the goal, ...)


class Attempt(Frozen):
    """What one failed iteration tried and how it failed (already bounded)."""

    iteration: int
    plan: tuple[str, ...]
    failure: str


class Context(Frozen):
    goal: str
    checks: tuple[str, ...]
    env: dict[str, str]
    files: tuple[FileEntry, ...]
    files_omitted: int
    history: tuple[Attempt, ...]
    history_omitted: int = 0
    notice: str = ""
    # How the checks failed on the untouched workspace: what a first (or fresh) question
    # shows instead of earlier attempts.
    preflight: str = ""
    # When not every file fits: the files shown first, in priority order, and a map of
    # the Python files not shown whole (see :mod:`zerog.focus`).
    focus: tuple[str, ...] = ()
    symbols: str = ""
    used: dict[str, int] = Field(default_factory=dict)  # characters of file text per part


def _looks_binary(data: bytes) -> bool:
    return b"\x00" in data[:4096]


def _listing(top: Dir, rel_dir: str) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of a directory's entries, sorted; reached from ``top`` without
    following links (one swapped in by a command still running is skipped)."""
    found = []
    try:
        with (
            top.sub(rel_dir.split("/") if rel_dir else ()) as directory,
            os.scandir(directory.fd) as it,
        ):
            for entry in it:
                with contextlib.suppress(OSError):
                    found.append((entry.name, entry.stat(follow_symlinks=False)))
    except (OSError, PathEscape):
        return []
    return sorted(found)


def _small_file(top: Dir, rel: str, limit: int) -> bytes:
    """The bytes of a small regular file (a NUL when it cannot be read as one)."""
    try:
        data = read_below(top, rel, limit)
    except (OSError, PathEscape):
        return b"\x00"
    return b"\x00" if data is None or len(data) > limit else data


class Index(Frozen):
    """The workspace as the index saw it: the files listed (the text of small ones), how
    many more there are, every regular file's path up to ``max_known``, and how many
    text files' contents were left out for their size or the budget."""

    files: tuple[FileEntry, ...]
    omitted: int
    known: tuple[str, ...]
    unloaded: int


def scan(root: Path, limits: IndexLimits, redact: Callable[[str], str] = redact_text) -> Index:
    """List files breadth-first (shallow files first), with the text of small ones
    (secrets removed by ``redact``)."""
    files: list[FileEntry] = []
    known: list[str] = []
    omitted = unloaded = 0
    budget = limits.max_content_bytes
    queue = [""]
    try:
        top = Dir.open(root)
    except OSError:
        return Index(files=(), omitted=0, known=(), unloaded=0)
    with top:
        while queue:
            rel_dir = queue.pop(0)
            for name, st in _listing(top, rel_dir):
                rel = f"{rel_dir}/{name}" if rel_dir else name
                if stat.S_ISDIR(st.st_mode):
                    if name not in SKIPPED_DIRS:
                        queue.append(rel)
                    continue
                if not stat.S_ISREG(st.st_mode):
                    continue
                if len(known) < limits.max_known:
                    known.append(rel)
                if len(files) >= limits.max_files:
                    omitted += 1
                    continue
                content = None
                limit = min(limits.max_file_bytes, budget)
                secret = is_secret_file(rel)
                if st.st_size <= limit and not secret:
                    data = _small_file(top, rel, limit)
                    if not _looks_binary(data):
                        content = redact(sanitize(data.decode("utf-8", errors="replace")))
                        budget -= len(data)
                elif not secret:
                    unloaded += 1
                files.append(FileEntry(path=rel, size=st.st_size, content=content))
    return Index(files=tuple(files), omitted=omitted, known=tuple(known), unloaded=unloaded)


def index_workspace(
    root: Path, limits: IndexLimits, redact: Callable[[str], str] = redact_text
) -> tuple[list[FileEntry], int]:
    """The files :func:`scan` lists, and how many more there are."""
    index = scan(root, limits, redact)
    return list(index.files), index.omitted


def _reader(root: Path, limit: int, redact: Callable[[str], str]) -> Callable[[str], str | None]:
    """A file's text below ``root`` (no link followed; secrets removed), or None when it
    is not a readable regular text file of at most ``limit`` bytes or names a secret."""

    def read(rel: str) -> str | None:
        if is_secret_file(rel):
            return None
        try:
            data = read_beneath(root, rel, limit)
        except (OSError, PathEscape):
            return None
        if data is None or len(data) > limit or _looks_binary(data):
            return None
        return redact(sanitize(data.decode("utf-8", errors="replace")))

    return read


def _focused(
    index: Index,
    goal: Goal,
    failures: Sequence[str],
    budget: ContextBudget,
    redact: Callable[[str], str],
) -> tuple[tuple[FileEntry, ...], tuple[str, ...], str, dict[str, int]]:
    """The index's files with the text :func:`zerog.focus.choose` gives them, the paths
    shown first, the symbol map and the characters each part used."""
    small = [(f.path, f.content) for f in index.files if f.content is not None]
    choice = choose(
        index.known,
        small,
        _reader(goal.workspace, budget.max_read, redact),
        redact(sanitize(goal.text)),
        failures,
        str(goal.workspace),
        budget,
    )
    shown = {s.path: s for s in choice.shown}
    entries: list[FileEntry] = []
    for entry in index.files:
        got = shown.pop(entry.path, None)
        entries.append(_entry(entry.path, entry.size, got))
    entries += [_entry(s.path, len(s.text.encode()), s) for s in shown.values()]
    focus = tuple(s.path for s in choice.shown if s.part != "other")
    return tuple(entries), focus, choice.symbols, choice.used


def _entry(path: str, size: int, shown: Shown | None) -> FileEntry:
    if shown is None:
        return FileEntry(path=path, size=size)
    if shown.excerpt:
        return FileEntry(path=path, size=size, excerpt=shown.text, reason=shown.reason)
    return FileEntry(path=path, size=size, content=shown.text, reason=shown.reason)


def build(
    goal: Goal,
    environ: Mapping[str, str],
    history: Sequence[Attempt] = (),
    history_omitted: int = 0,
    notice: str = "",
    limits: IndexLimits | None = None,
    redactor: Redactor | None = None,
    preflight: str = "",
    budget: ContextBudget | None = None,
) -> Context:
    """``redactor`` removes known secret values besides secret-shaped text (see
    :class:`zerog.redact.Redactor`); ``preflight`` is the feedback of the checks run on
    the untouched workspace (already bounded and redacted), which a plan sees when no
    attempt came before it.

    When the index holds every file's whole text the prompt shows them in its order;
    when it does not, ``budget`` (see :mod:`zerog.focus`) picks the text shown: files
    the goal names, then those the failing checks name, their imports and a map of the
    repository's symbols, then the other small files."""
    redact = (redactor or Redactor()).text
    limits = limits or IndexLimits()
    index = scan(goal.workspace, limits, redact)
    files, symbols = index.files, ""
    focus: tuple[str, ...] = ()
    used: dict[str, int] = {}
    if index.omitted or index.unloaded:
        failures = [a.failure for a in reversed(history)] + ([preflight] if preflight else [])
        budget = budget or ContextBudget(total=limits.max_content_bytes)
        files, focus, symbols, used = _focused(index, goal, failures, budget, redact)
    names = tuple(dict.fromkeys((*DEFAULT_ENV_ALLOW, *goal.env_allow)))
    return Context(
        goal=redact(sanitize(goal.text)),
        checks=tuple(redact(sanitize(c.label)) for c in goal.checks),
        env={k: redact(sanitize(v)) for k, v in redact_env(environ, names).items()},
        files=files,
        files_omitted=index.omitted,
        history=tuple(history),
        history_omitted=history_omitted,
        notice=notice,
        preflight=preflight,
        focus=focus,
        symbols=symbols,
        used=used,
    )


def render(context: Context) -> str:
    """The context as prompt text. Untrusted content is fenced and labelled as data."""
    parts = ["# Goal", context.goal, "", "# Checks that must pass (run in the workspace)"]
    parts += [f"- `{check}`" for check in context.checks]
    if context.env:
        parts += ["", "# Environment"]
        parts += [f"{k}={v}" for k, v in sorted(context.env.items())]
    parts += ["", f"# Workspace files ({len(context.files)} listed)"]
    for entry in context.files:
        parts.append(f"- {entry.path} ({entry.size} bytes)")
    if context.files_omitted:
        parts.append(f"- ... and {context.files_omitted} more files not listed")
    by_path = {entry.path: entry for entry in context.files}
    first = [by_path[p] for p in context.focus if p in by_path]
    for entry in [*first, *(e for e in context.files if e.path not in context.focus)]:
        parts += _file_section(entry)
    if context.symbols:
        parts += ["", "# Repository map (Python files not shown whole: classes, functions)"]
        parts += ["```", context.symbols, "```"]
    if context.preflight and not context.history:
        parts += ["", "# How the checks fail now (before any change)"]
        parts += ["```", sanitize(context.preflight), "```"]
    if context.history:
        parts += ["", "# Earlier attempts in this run (all rolled back)"]
        if context.history_omitted:
            parts.append(f"({context.history_omitted} older attempts not shown)")
        for attempt in context.history:
            parts += [f"## Attempt {attempt.iteration}", "Plan:"]
            parts += [f"  {i}. {sanitize(intent)}" for i, intent in enumerate(attempt.plan, 1)]
            parts += ["What failed:", "```", sanitize(attempt.failure), "```"]
    if context.notice:
        parts += ["", "# Notice", context.notice]
    return "\n".join(parts)


def _file_section(entry: FileEntry) -> list[str]:
    why = f" ({entry.reason})" if entry.reason else ""
    if entry.content is not None:
        return ["", f"## File {entry.path}{why}", "```", entry.content.rstrip("\n"), "```"]
    if entry.excerpt is not None:
        head = f"## File {entry.path} ({entry.reason + '; ' if entry.reason else ''}"
        head += f"the relevant lines of {entry.size} bytes: change it by edits, never rewrite it)"
        return ["", head, "```", entry.excerpt.rstrip("\n"), "```"]
    return []


def summarize_history(
    attempts: Sequence[Attempt], keep_full: int = 2, keep_total: int = 6
) -> tuple[tuple[Attempt, ...], int]:
    """Bound the history: the latest attempts in full, a few older ones shortened, the rest
    only counted. Returns (attempts to show, number omitted)."""
    shown = attempts[-keep_total:]
    cut = max(len(shown) - keep_full, 0)
    older = tuple(a.model_copy(update={"failure": elide(a.failure, 300)}) for a in shown[:cut])
    return (*older, *shown[cut:]), len(attempts) - len(shown)
