"""What a run changed: the paths added, changed and removed between two workspace states.

The states are snapshot manifests (:class:`zerog.sandbox.workspace.Entry` by path), so
comparing them reads no file. Paths come from the workspace and are untrusted: the lists
meant for people and events show them with every control character escaped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from zerog.sandbox.workspace import Entry
from zerog.text import visible
from zerog.types import FileChanges

ChangeStatus = Literal["added", "changed", "removed"]


GIT_DIR = ".git"  # at the top of the workspace: listed as one entry, never file by file


@dataclass(frozen=True, slots=True)
class Change:
    path: str
    status: ChangeStatus
    before: Entry | None
    after: Entry | None
    inside: int = 0  # for .git: how many paths inside it changed


def _is_dir(entry: Entry | None) -> bool:
    return entry is None or entry.kind == "dir"


def _status(old: Entry | None, new: Entry | None) -> ChangeStatus:
    return "added" if old is None else "removed" if new is None else "changed"


def compare(before: Mapping[str, Entry], after: Mapping[str, Entry]) -> list[Change]:
    """Every path whose entry differs, in path order. A directory (on both sides, or on
    the one side it is on) is listed only when no path below it is. Git's own ``.git``
    at the top is one entry, however many paths inside it changed (git commands the run
    ran: objects, index, logs)."""
    found: list[Change] = []
    inside_git = 0
    for path in sorted(before.keys() | after.keys()):
        old, new = before.get(path), after.get(path)
        if old == new:
            continue
        if path.startswith(f"{GIT_DIR}/"):
            inside_git += 1
            continue
        found.append(Change(path, _status(old, new), old, new))
    if inside_git:
        old, new = before.get(GIT_DIR), after.get(GIT_DIR)
        found = [c for c in found if c.path != GIT_DIR]
        found.append(Change(GIT_DIR, _status(old, new), old, new, inside_git))
        found.sort(key=lambda c: c.path)
    below: set[str] = set()
    for change in found:
        if not (_is_dir(change.before) and _is_dir(change.after)):
            parts = change.path.split("/")
            below.update("/".join(parts[:n]) for n in range(1, len(parts)))
    return [c for c in found if not (_is_dir(c.before) and _is_dir(c.after) and c.path in below)]


def shown_path(path: str) -> str:
    """A workspace path as one line of plain text: control characters, newlines, tabs
    and undecodable bytes escaped (``\\x1b``, ``\\n``, ``\\xff``)."""
    return visible(path).replace("\n", "\\n").replace("\t", "\\t")


def file_changes(changes: Iterable[Change]) -> FileChanges:
    """The bounded lists of a run's summary (``FileChanges.LISTED`` paths of each kind)."""
    by: dict[ChangeStatus, list[str]] = {"added": [], "changed": [], "removed": []}
    for change in changes:
        by[change.status].append(shown_path(change.path))
    limit = FileChanges.LISTED
    return FileChanges(
        added=tuple(by["added"][:limit]),
        changed=tuple(by["changed"][:limit]),
        removed=tuple(by["removed"][:limit]),
        added_total=len(by["added"]),
        changed_total=len(by["changed"]),
        removed_total=len(by["removed"]),
    )
