"""File actions confined to the workspace: no absolute paths, no escapes via .. or links.

A path is taken lexically (``..`` never goes through the file system and may not climb
above the workspace), then walked from the workspace's open directory one component at a
time without following links (:mod:`zerog.beneath`): a symbolic link anywhere on the way,
even one a background process swaps in while the action runs, is refused, so a write
can only land inside the workspace. The file is written to a new temporary file in its
directory and renamed over the old entry (a hard link elsewhere keeps its old bytes).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from zerog.beneath import Dir, PathEscape, split
from zerog.types import EditAction, Observation, Status, WriteFileAction

__all__ = ["MAX_EDIT_FILE_BYTES", "RESERVED", "PathEscape", "edit_file", "target", "write_file"]

RESERVED = ".zerog"
MAX_EDIT_FILE_BYTES = 4 * 1024 * 1024
_LINKS = "file actions never follow symbolic links (use the path the link points to)"


def target(relative: str) -> tuple[str, ...]:
    """The components of the file ``relative`` names in the workspace, or
    :class:`PathEscape` (absolute, climbing out, not a file, or under ``.zerog/``)."""
    parts = split(relative)
    if parts[0] == RESERVED:
        raise PathEscape(f"{RESERVED}/ is reserved for zerog's own state")
    return parts


def _atomic_write(parent: Dir, name: str, data: bytes) -> None:
    st = parent.lstat(name)
    if st is not None and stat.S_ISLNK(st.st_mode):
        raise PathEscape(f"refusing to write through a symbolic link: {parent.shown(name)}")
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(name)
    regular = st is not None and stat.S_ISREG(st.st_mode)
    mode = stat.S_IMODE(st.st_mode) & 0o777 if st is not None and regular else 0o644
    parent.replace_file(name, data, mode)


def _fail(message: str) -> Observation:
    return Observation(status=Status.ERROR, exit_code=1, stderr=message)


def write_file(workspace: Path, action: WriteFileAction) -> Observation:
    try:
        parts = target(action.path)
        data = action.content.encode("utf-8", errors="replace")
        with Dir.open(workspace) as root, root.sub(parts[:-1], create=True) as parent:
            _atomic_write(parent, parts[-1], data)
    except PathEscape as exc:
        return _fail(f"{exc}: {_LINKS}" if "symbolic link" in str(exc) else str(exc))
    except IsADirectoryError:
        return _fail(f"{action.path} is a directory")
    except OSError as exc:
        return _fail(f"cannot write {action.path}: {exc.strerror}")
    return Observation(status=Status.SUCCESS, exit_code=0, stdout=f"wrote {action.path}")


def _read_text(parent: Dir, name: str, shown: str) -> str | Observation:
    try:
        fd = parent.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return _fail(f"{shown} does not exist")
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return _fail(f"{shown} is not a regular file")
        if st.st_size > MAX_EDIT_FILE_BYTES:
            return _fail(f"{shown} is too large to edit")
        data = handle.read(MAX_EDIT_FILE_BYTES + 1)
    if len(data) > MAX_EDIT_FILE_BYTES:
        return _fail(f"{shown} is too large to edit")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return _fail(f"{shown} is not UTF-8 text")


def edit_file(workspace: Path, action: EditAction) -> Observation:
    try:
        parts = target(action.path)
        with Dir.open(workspace) as root, root.sub(parts[:-1]) as parent:
            text = _read_text(parent, parts[-1], action.path)
            if isinstance(text, Observation):
                return text
            count = text.count(action.search)
            if count == 0:
                return _fail(f"the search text was not found in {action.path}")
            if count > 1:
                return _fail(
                    f"the search text occurs {count} times in {action.path}; "
                    "include more context so it matches exactly once"
                )
            new = text.replace(action.search, action.replace, 1).encode("utf-8")
            _atomic_write(parent, parts[-1], new)
    except PathEscape as exc:
        return _fail(f"{exc}: {_LINKS}" if "symbolic link" in str(exc) else str(exc))
    except FileNotFoundError:
        return _fail(f"{action.path} does not exist")
    except IsADirectoryError:
        return _fail(f"{action.path} is a directory")
    except OSError as exc:
        return _fail(f"cannot edit {action.path}: {exc.strerror}")
    return Observation(status=Status.SUCCESS, exit_code=0, stdout=f"edited {action.path}")
