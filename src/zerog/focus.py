"""Which file text goes into the prompt, within a budget, when not all of it fits.

The parts, in priority order, each within its own budget and all within a total:

1. ``goal``: the files the goal names, and the files defining the functions it names;
2. ``failing``: the files the failing checks' output names (tracebacks, test ids,
   ``file:line`` locations), files under test before test files;
3. ``imports``: the workspace modules those files import (their import closure);
4. ``symbols``: a map of the Python files not shown whole (classes, functions, methods,
   signatures), so the model knows what exists;
5. ``other``: the rest of the small files, whole, in the index's order, as before.

A file of parts 1-3 is shown whole when it fits what is left of its part's budget, else
as the regions that matter (the functions around the named lines, the named functions)
with elision markers between them.
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from pydantic import Field

from zerog import mentions, repomap
from zerog.types import Frozen

PARTS = ("goal", "failing", "imports")
MIN_EXCERPT = 160  # characters: less than this is not worth a file's section
MAX_DEFINERS = 2  # a named function defined in more files than this names none of them
MAX_IMPORTED = 12  # files of the import closure considered
MAX_SCANNED = 400  # Python files read to find a named function, or to map
RADII = (repomap.WINDOW, 6, 3, 1)


class ContextBudget(Frozen):
    """Characters of file text (and of the symbol map) a prompt carries: a total, and a
    cap for each part (about four characters make a token)."""

    total: int = Field(default=16_000, ge=0)
    goal: int = Field(default=8_000, ge=0)
    failing: int = Field(default=8_000, ge=0)
    imports: int = Field(default=4_000, ge=0)
    symbols: int = Field(default=3_000, ge=0)
    max_read: int = Field(default=256_000, ge=0)  # bytes of one file read to show part of it


@dataclass(frozen=True)
class Shown:
    """A file's text in the prompt: whole, or regions of it (``excerpt``)."""

    path: str
    text: str
    part: str
    reason: str
    excerpt: bool


@dataclass
class Choice:
    shown: list[Shown] = field(default_factory=list)
    symbols: str = ""
    used: dict[str, int] = field(default_factory=dict)  # characters per part


@dataclass
class _Source:
    text: str
    tree: ast.Module | None


class _Sources:
    """Each file read and parsed at most once per choice."""

    def __init__(self, read: Callable[[str], str | None]) -> None:
        self._read = read
        self._seen: dict[str, _Source | None] = {}

    def get(self, path: str) -> _Source | None:
        if path not in self._seen:
            text = self._read(path)
            tree = repomap.parse(text) if text is not None and path.endswith(".py") else None
            self._seen[path] = None if text is None else _Source(text, tree)
        return self._seen[path]


def _render(lines: Sequence[str], spans: Sequence[tuple[int, int]]) -> str:
    out: list[str] = []
    at = 1
    for first, last in spans:
        if first > at:
            out.append(f"[... lines {at}-{first - 1} not shown ...]")
        out += lines[first - 1 : last]
        at = last + 1
    if at <= len(lines):
        out.append(f"[... lines {at}-{len(lines)} not shown ...]")
    return "\n".join(out)


def _merge(spans: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(spans):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def excerpt(source: _Source, anchors: Sequence[int], room: int) -> str:
    """The regions of ``source`` around ``anchors`` (in their order of importance) that
    fit in ``room`` characters, with markers where lines are left out; "" if none fits."""
    lines = source.text.splitlines()
    if not lines:
        return ""
    anchors = [a for a in anchors if 1 <= a <= len(lines)] or [1]
    chosen: list[tuple[int, int]] = []
    for anchor in anchors:
        first, last = repomap.span(source.tree, anchor, len(lines))
        tries = [(first, last)]
        tries += [(max(first, anchor - r), min(last, anchor + r)) for r in RADII]
        for attempt in tries:
            candidate = _merge([*chosen, attempt])
            if len(_render(lines, candidate)) <= room:
                chosen = candidate
                break
    text = _render(lines, chosen) if chosen else ""
    return text if len(text) <= room else ""


def _goal_files(
    goal: str, known: Sequence[str], root: str, sources: _Sources
) -> list[mentions.Mention]:
    named, names = mentions.in_goal(goal, set(known), root)
    if not names:
        return named
    found = {m.path: m for m in named}
    definers: dict[str, list[tuple[str, int]]] = {}
    for path in [p for p in known if p.endswith(".py")][:MAX_SCANNED]:
        source = sources.get(path)
        if source is None or source.tree is None:
            continue
        for name in names:
            line = repomap.defines(source.tree, name)
            if line is not None:
                definers.setdefault(name, []).append((path, line))
    for name in names:
        places = definers.get(name, [])
        if not places or len(places) > MAX_DEFINERS:
            continue
        for path, line in places:
            mention = found.get(path)
            if mention is None:
                mention = found[path] = mentions.Mention(path)
                named.append(mention)
            mention.names.append(name)
            mention.lines.append(line)
    return named


def _imported(
    start: Sequence[mentions.Mention], known: Sequence[str], sources: _Sources
) -> list[tuple[mentions.Mention, str]]:
    """The import closure of ``start`` (breadth first), each with the file importing it."""
    known_set = set(known)
    seen = {m.path for m in start}
    queue = [m.path for m in start]
    out: list[tuple[mentions.Mention, str]] = []
    while queue and len(out) < MAX_IMPORTED:
        path = queue.pop(0)
        source = sources.get(path) if path.endswith(".py") else None
        if source is None or source.tree is None:
            continue
        for imported in repomap.imports(source.tree, path, known_set):
            if imported.path in seen or len(out) >= MAX_IMPORTED:
                continue
            seen.add(imported.path)
            queue.append(imported.path)
            out.append((mentions.Mention(imported.path, names=list(imported.names)), path))
    return out


_REASONS = {"goal": "named in the goal", "failing": "named in the failing checks"}


def choose(
    known: Sequence[str],
    small: Sequence[tuple[str, str]],
    read: Callable[[str], str | None],
    goal: str,
    failures: Sequence[str],
    root: str,
    budget: ContextBudget,
) -> Choice:
    """What file text the prompt carries. ``known``: the workspace's files (index order);
    ``small``: (path, text) of the small ones the index read; ``read``: a file's text
    (redacted) or None; ``failures``: the checks' output, the most recent first."""
    sources = _Sources(read)
    choice = Choice()
    left = budget.total
    shown: set[str] = set()
    goal_files = _goal_files(goal, known, root, sources)
    failing: list[mentions.Mention] = []
    for text in failures:
        failing += mentions.in_failures(text, set(known), root)
    parts: dict[str, list[tuple[mentions.Mention, str]]] = {
        "goal": [(m, _REASONS["goal"]) for m in goal_files],
        "failing": [(m, _REASONS["failing"]) for m in failing],
    }
    parts["imports"] = [
        (m, f"imported by {by}") for m, by in _imported([*goal_files, *failing], known, sources)
    ]
    for part in PARTS:
        room = min(getattr(budget, part), left)
        used = 0
        for mention, reason in parts[part]:
            if mention.path in shown:
                continue
            source = sources.get(mention.path)
            if source is None:
                continue
            fits = room - used
            if len(source.text) <= fits:
                text, cut = source.text, False
            elif fits >= MIN_EXCERPT:
                anchors = repomap.regions(source.tree, mention.lines, mention.names)
                text, cut = excerpt(source, anchors, fits), True
            else:
                continue
            if not text:
                continue
            shown.add(mention.path)
            used += len(text)
            choice.shown.append(Shown(mention.path, text, part, reason, cut))
        choice.used[part] = used
        left -= used
    reserve = min(budget.symbols, left)
    used = 0
    for path, text in small:
        if path not in shown and len(text) <= left - reserve - used:
            shown.add(path)
            used += len(text)
            choice.shown.append(Shown(path, text, "other", "", False))
    choice.used["other"] = used
    whole = {s.path for s in choice.shown if not s.excerpt}
    cut_first = [s.path for s in choice.shown if s.excerpt]
    unmapped = [p for p in dict.fromkeys([*cut_first, *known]) if p.endswith(".py")]
    choice.symbols = symbol_map([p for p in unmapped if p not in whole], sources, reserve)
    choice.used["symbols"] = len(choice.symbols)
    return choice


def symbol_map(paths: Sequence[str], sources: _Sources, room: int) -> str:
    """The outline of each of ``paths`` that fits in ``room`` characters, in order; a last
    line counts the files left out."""
    blocks: list[str] = []
    used = 0
    tail = 48  # room kept for the closing line
    for n, path in enumerate(paths[:MAX_SCANNED]):
        source = sources.get(path)
        if source is None:
            continue
        if source.tree is None:
            block = f"{path} (not parsed: a syntax error, or too large)"
        else:
            symbols = repomap.outline(source.tree)
            if not symbols:
                continue
            block = "\n".join([path, *(f"  {s}" for s in symbols)])
        if used + len(block) + 1 > room - tail:
            left_out = len(paths) - n
            note = f"... {left_out} more files not mapped"
            return "\n".join([*blocks, note]) if used + len(note) <= room else "\n".join(blocks)
        blocks.append(block)
        used += len(block) + 1
    if len(paths) > MAX_SCANNED:
        note = f"... {len(paths) - MAX_SCANNED} more files not mapped"
        if used + len(note) <= room:
            blocks.append(note)
    return "\n".join(blocks)
