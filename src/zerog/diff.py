"""A unified diff of what a run changed, from its first snapshot to its final state.

The run's events name its snapshots: the base (the untouched workspace) and the final
state recorded when the run ended. A run without a final snapshot (still going, killed,
or recorded by an older zerog) is compared with the workspace as it is now, and the
diff says so.

Everything shown comes from the workspace and is untrusted: control characters and
escape sequences in paths and lines are shown as escapes (``\\x1b``), never passed to
a terminal, and never stripped (a reviewer must see what is really there). Binary and
large files get a one-line note instead of their content. Nothing here writes to the
workspace or follows a link in it.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from zerog.beneath import Dir, PathEscape, split
from zerog.changes import Change, ChangeStatus, compare, shown_path
from zerog.errors import ZerogError
from zerog.event_catalog import SnapshotTaken, parse
from zerog.events import Event
from zerog.linediff import hunks
from zerog.sandbox.workspace import Entry, Workspace
from zerog.statedir import STATE_DIR
from zerog.store import RunRow, Store

MAX_FILE_BYTES = 1 << 20  # a side larger than this is noted, not shown
_SNIFF = 8192  # a NUL byte in this many first bytes: binary

Final = Literal["snapshot", "live"]


class DiffError(ZerogError):
    """The run's changes cannot be shown (no snapshot recorded, snapshots gone)."""


class Contents(Protocol):
    def read(self, path: str, entry: Entry, limit: int) -> tuple[int, bytes | None]:
        """The size of a file entry and its bytes (``None`` past ``limit``)."""
        ...


@dataclass(frozen=True)
class Stored:
    """File contents from the snapshot object store (checked against their digests)."""

    workspace: Workspace

    def read(self, path: str, entry: Entry, limit: int) -> tuple[int, bytes | None]:
        return self.workspace.read_object(entry.digest, limit)


@dataclass(frozen=True)
class Live:
    """File contents from the live workspace, opened below its root without following a
    link at any component (a path swapped for a link is an error, not followed)."""

    root: Path

    def read(self, path: str, entry: Entry, limit: int) -> tuple[int, bytes | None]:
        fd = _open_below(self.root, path)
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise DiffError(f"{shown_path(path)} is no longer a regular file")
            if info.st_size > limit:
                return info.st_size, None
            data = handle.read(limit + 1)
        return (len(data), None) if len(data) > limit else (len(data), data)


def _open_below(root: Path, path: str) -> int:
    try:
        parts = split(path)
        with Dir.open(root) as top, top.sub(parts[:-1]) as parent:
            return parent.open_file(parts[-1], os.O_RDONLY | os.O_NONBLOCK)
    except PathEscape as exc:
        raise DiffError(f"cannot read {shown_path(path)}: {exc}") from None
    except OSError as exc:
        raise DiffError(f"cannot read {shown_path(path)}: {exc.strerror}") from None


@dataclass(frozen=True)
class FileDiff:
    """One path's part of the diff: status, modes, and its hunk lines (or a note)."""

    path: str  # as in the workspace (untrusted); shown through shown_path()
    status: ChangeStatus
    kind: str  # file, link, dir or special (the newer side's)
    old_mode: int | None  # git-style: 100644, 100755, 120000 (a link), None when absent
    new_mode: int | None
    lines: tuple[str, ...] = ()  # "@@ ... @@", " ctx", "-old", "+new", "\\ No newline..."
    note: str = ""  # instead of lines: binary, too large, a directory, a special file
    added: int = 0
    removed: int = 0


@dataclass(frozen=True)
class RunDiff:
    run_id: str
    final: Final
    files: tuple[FileDiff, ...]
    note: str = ""  # e.g. compared with the live workspace
    truncated: int = 0  # files whose lines were left out to keep the answer bounded


def _git_mode(entry: Entry | None) -> int | None:
    if entry is None:
        return None
    if entry.kind == "link":
        return 0o120000
    if entry.kind == "dir":
        return 0o040000 | entry.mode
    return 0o100000 | (entry.mode & 0o777)


def _side(
    contents: Contents, path: str, entry: Entry | None, limit: int
) -> tuple[int, bytes | None]:
    if entry is None:
        return 0, b""
    if entry.kind == "link":  # a link's content is its target, as git shows it
        target = entry.digest.encode("utf-8", "surrogateescape")
        return len(target), target
    return contents.read(path, entry, limit)


def _text(data: bytes) -> str | None:
    if b"\0" in data[:_SNIFF]:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _size(n: int) -> str:
    if n < 1024:
        return f"{n} bytes"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1 << 20):.1f} MiB"


def file_diff(
    change: Change, old_side: Contents, new_side: Contents, max_bytes: int = MAX_FILE_BYTES
) -> FileDiff:
    """The diff of one changed path, its old side read from ``old_side``, its new side
    from ``new_side``."""
    old, new = change.before, change.after
    kind = (new or old or Entry("file", 0, "")).kind
    shown = FileDiff(change.path, change.status, kind, _git_mode(old), _git_mode(new))
    if change.inside:
        return replace(
            shown,
            note=f"git's own directory: {change.inside} paths inside it changed (git commands "
            "the run ran): not shown",
        )
    kinds = {e.kind for e in (old, new) if e is not None}
    if kinds & {"dir", "special"}:
        what = "a directory" if "dir" in kinds else "a special file (fifo, socket or device)"
        return replace(shown, note=f"{what}: no content shown")
    old_size, old_data = _side(old_side, change.path, old, max_bytes)
    new_size, new_data = _side(new_side, change.path, new, max_bytes)
    if old_data is None or new_data is None:
        sizes = (
            f"{_size(old_size)} -> {_size(new_size)}"
            if old and new
            else _size(old_size if old else new_size)
        )
        return replace(shown, note=f"large file ({sizes}): not shown")
    if old_data == new_data:
        return shown  # a mode change only
    old_text, new_text = _text(old_data), _text(new_data)
    if old_text is None or new_text is None:
        return replace(shown, note="binary file: not shown")
    lines, added, removed = hunks(old_text, new_text)
    return replace(shown, lines=lines, added=added, removed=removed)


def diff_states(
    before: Mapping[str, Entry],
    after: Mapping[str, Entry],
    old: Contents,
    new: Contents,
    *,
    max_bytes: int = MAX_FILE_BYTES,
) -> list[FileDiff]:
    """The diff of every changed path between two states, in path order."""
    return [file_diff(change, old, new, max_bytes) for change in compare(before, after)]


# ---------------------------------------------------------------------- a recorded run


def _snapshot_ids(events: Sequence[Event]) -> tuple[str | None, str | None]:
    base = final = None
    for event in events:
        match parse(event):
            case SnapshotTaken(role="base", snapshot=snapshot) if base is None:
                base = snapshot
            case SnapshotTaken(role="final", snapshot=snapshot):
                final = snapshot
            case _:
                pass
    return base, final


def run_diff(
    store: Store,
    run_id: str,
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_total: int | None = None,
) -> RunDiff:
    """The diff of a recorded run (``run_id`` may be a unique prefix)."""
    row = store.find(run_id)
    return diff_of_run(row, store.events(row.id), max_bytes=max_bytes, max_total=max_total)


def diff_of_run(
    row: RunRow,
    events: Sequence[Event],
    *,
    max_bytes: int = MAX_FILE_BYTES,
    max_total: int | None = None,
) -> RunDiff:
    """The diff of a run from its row and events; ``max_total`` bounds the characters of
    all hunk lines together (files past it get a note instead)."""
    base_id, final_id = _snapshot_ids(events)
    if not base_id:
        raise DiffError(f"run {row.id} recorded no starting snapshot: it changed nothing")
    root = Path(row.workspace)
    workspace = Workspace(root, root / STATE_DIR / "snapshots")
    try:
        base = workspace.load(base_id)
        final = workspace.load(final_id) if final_id else None
    except (OSError, ValueError):
        raise DiffError(
            f"the snapshots of run {row.id} are gone from {root / STATE_DIR} (the workspace "
            "was moved or its .zerog/ removed): its changes cannot be shown"
        ) from None
    stored = Stored(workspace)
    if final is not None:
        files = diff_states(base.entries, final.entries, stored, stored, max_bytes=max_bytes)
        return _bounded(RunDiff(row.id, "snapshot", tuple(files)), max_total)
    if not root.is_dir():
        raise DiffError(f"the workspace of run {row.id} is gone: {root}")
    files = diff_states(
        base.entries, workspace.scan(), stored, Live(workspace.root), max_bytes=max_bytes
    )
    note = (
        f"run {row.id} recorded no final state (it is still going, was killed, or was "
        "recorded by an older zerog): compared with the workspace as it is now"
    )
    return _bounded(RunDiff(row.id, "live", tuple(files), note), max_total)


def _bounded(diff: RunDiff, max_total: int | None) -> RunDiff:
    if max_total is None:
        return diff
    spent = 0
    kept: list[FileDiff] = []
    cut = 0
    for item in diff.files:
        size = sum(len(line) + 1 for line in item.lines)
        if spent + size > max_total and item.lines:
            kept.append(replace(item, lines=(), note="not shown: the diff is too long"))
            cut += 1
            continue
        spent += size
        kept.append(item)
    return replace(diff, files=tuple(kept), truncated=cut)


# ---------------------------------------------------------------------- rendering


def quoted(path: str) -> str:
    """A path for a diff header, quoted git-style when it holds anything unusual."""
    shown = shown_path(path)
    if shown == path and '"' not in path and " " not in path and "\\" not in path:
        return path
    return '"' + shown.replace('"', '\\"') + '"'


_STYLES = {"meta": "1", "hunk": "36", "-": "31", "+": "32", "note": "33"}


def _paint(text: str, style: str, color: bool) -> str:
    return f"\x1b[{_STYLES[style]}m{text}\x1b[0m" if color else text


def render(diff: RunDiff, *, color: bool = False) -> Iterator[str]:
    """The diff as text lines (no newlines), git-style headers, coloured on request."""
    if diff.note:
        yield _paint(f"# {diff.note}", "note", color)
    for item in diff.files:
        a = quoted(f"a/{item.path}")
        b = quoted(f"b/{item.path}")
        yield _paint(f"diff --git {a} {b}", "meta", color)
        if item.old_mode is None and item.new_mode is not None:
            yield _paint(f"new file mode {item.new_mode:06o}", "meta", color)
        elif item.new_mode is None and item.old_mode is not None:
            yield _paint(f"deleted file mode {item.old_mode:06o}", "meta", color)
        elif item.old_mode != item.new_mode and item.old_mode and item.new_mode:
            yield _paint(f"old mode {item.old_mode:06o}", "meta", color)
            yield _paint(f"new mode {item.new_mode:06o}", "meta", color)
        if item.note:
            yield _paint(f"# {item.note}", "note", color)
            continue
        if not item.lines:
            continue
        yield _paint(f"--- {a if item.old_mode is not None else '/dev/null'}", "meta", color)
        yield _paint(f"+++ {b if item.new_mode is not None else '/dev/null'}", "meta", color)
        for line in item.lines:
            style = "hunk" if line.startswith("@@") else line[:1]
            yield _paint(line, style, color) if style in _STYLES else line


def render_stat(diff: RunDiff) -> Iterator[str]:
    """One line per file (lines added and removed, or what it is), then the totals."""
    if diff.note:
        yield f"# {diff.note}"
    names = [shown_path(item.path) for item in diff.files]
    width = min(max((len(n) for n in names), default=0), 60)
    for name, item in zip(names, diff.files, strict=True):
        what = item.note.split(":")[0] if item.note else f"+{item.added} -{item.removed}"
        yield f" {item.status:<8} {name:<{width}} | {what}"
    added = sum(item.added for item in diff.files)
    removed = sum(item.removed for item in diff.files)
    count = len(diff.files)
    yield (
        f" {count} file{'s' if count != 1 else ''} changed, {added} insertion"
        f"{'s' if added != 1 else ''}(+), {removed} deletion{'s' if removed != 1 else ''}(-)"
    )
