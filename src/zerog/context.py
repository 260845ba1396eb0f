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

from zerog.beneath import Dir, PathEscape, read_below
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


class FileEntry(Frozen):
    path: str
    size: int
    content: str | None = None


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


def index_workspace(
    root: Path, limits: IndexLimits, redact: Callable[[str], str] = redact_text
) -> tuple[list[FileEntry], int]:
    """List files breadth-first (shallow files first), with the text of small ones
    (secrets removed by ``redact``)."""
    files: list[FileEntry] = []
    omitted = 0
    budget = limits.max_content_bytes
    queue = [""]
    try:
        top = Dir.open(root)
    except OSError:
        return files, omitted
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
                if len(files) >= limits.max_files:
                    omitted += 1
                    continue
                content = None
                limit = min(limits.max_file_bytes, budget)
                if st.st_size <= limit and not is_secret_file(rel):
                    data = _small_file(top, rel, limit)
                    if not _looks_binary(data):
                        content = redact(sanitize(data.decode("utf-8", errors="replace")))
                        budget -= len(data)
                files.append(FileEntry(path=rel, size=st.st_size, content=content))
    return files, omitted


def build(
    goal: Goal,
    environ: Mapping[str, str],
    history: Sequence[Attempt] = (),
    history_omitted: int = 0,
    notice: str = "",
    limits: IndexLimits | None = None,
    redactor: Redactor | None = None,
    preflight: str = "",
) -> Context:
    """``redactor`` removes known secret values besides secret-shaped text (see
    :class:`zerog.redact.Redactor`); ``preflight`` is the feedback of the checks run on
    the untouched workspace (already bounded and redacted), which a plan sees when no
    attempt came before it."""
    redact = (redactor or Redactor()).text
    files, omitted = index_workspace(goal.workspace, limits or IndexLimits(), redact)
    names = tuple(dict.fromkeys((*DEFAULT_ENV_ALLOW, *goal.env_allow)))
    return Context(
        goal=redact(sanitize(goal.text)),
        checks=tuple(redact(sanitize(c.label)) for c in goal.checks),
        env={k: redact(sanitize(v)) for k, v in redact_env(environ, names).items()},
        files=tuple(files),
        files_omitted=omitted,
        history=tuple(history),
        history_omitted=history_omitted,
        notice=notice,
        preflight=preflight,
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
    for entry in context.files:
        if entry.content is not None:
            parts += ["", f"## File {entry.path}", "```", entry.content.rstrip("\n"), "```"]
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


def summarize_history(
    attempts: Sequence[Attempt], keep_full: int = 2, keep_total: int = 6
) -> tuple[tuple[Attempt, ...], int]:
    """Bound the history: the latest attempts in full, a few older ones shortened, the rest
    only counted. Returns (attempts to show, number omitted)."""
    shown = attempts[-keep_total:]
    cut = max(len(shown) - keep_full, 0)
    older = tuple(a.model_copy(update={"failure": elide(a.failure, 300)}) for a in shown[:cut])
    return (*older, *shown[cut:]), len(attempts) - len(shown)
