"""File actions confined to the workspace: no absolute paths, no escapes via .. or links."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from zerog.types import EditAction, Observation, Status, WriteFileAction

RESERVED = ".zerog"
MAX_EDIT_FILE_BYTES = 4 * 1024 * 1024


class PathEscape(ValueError):
    """A path that points outside the workspace, or at something zerog must not touch."""


def confine(workspace: Path, relative: str) -> Path:
    """Resolve ``relative`` inside ``workspace`` or raise :class:`PathEscape`."""
    if "\x00" in relative:
        raise PathEscape("path contains a NUL byte")
    candidate = Path(relative)
    if candidate.is_absolute():
        raise PathEscape(f"absolute paths are not allowed: {relative}")
    root = workspace.resolve()
    parent = (root / candidate).parent.resolve()
    if not parent.is_relative_to(root):
        raise PathEscape(f"path leaves the workspace: {relative}")
    target = parent / candidate.name
    if target == root or not candidate.name or candidate.name in (".", ".."):
        raise PathEscape(f"not a file path: {relative}")
    inside = target.relative_to(root).parts
    if inside and inside[0] == RESERVED:
        raise PathEscape(f"{RESERVED}/ is reserved for zerog's own state")
    if target.is_symlink():
        raise PathEscape(f"refusing to write through a symbolic link: {relative}")
    return target


def _atomic_write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    mode = target.stat().st_mode & 0o777 if target.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".zerog-tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)  # replaces the entry: a hard link elsewhere is untouched
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _fail(message: str) -> Observation:
    return Observation(status=Status.ERROR, exit_code=1, stderr=message)


def write_file(workspace: Path, action: WriteFileAction) -> Observation:
    try:
        target = confine(workspace, action.path)
        if target.is_dir():
            return _fail(f"{action.path} is a directory")
        data = action.content.encode("utf-8", errors="replace")
        _atomic_write(target, data)
    except PathEscape as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot write {action.path}: {exc.strerror}")
    return Observation(status=Status.SUCCESS, exit_code=0, stdout=f"wrote {action.path}")


def edit_file(workspace: Path, action: EditAction) -> Observation:
    try:
        target = confine(workspace, action.path)
        if not target.is_file():
            return _fail(f"{action.path} does not exist")
        if target.stat().st_size > MAX_EDIT_FILE_BYTES:
            return _fail(f"{action.path} is too large to edit")
        text = target.read_bytes().decode("utf-8")
        count = text.count(action.search)
        if count == 0:
            return _fail(f"the search text was not found in {action.path}")
        if count > 1:
            return _fail(
                f"the search text occurs {count} times in {action.path}; "
                "include more context so it matches exactly once"
            )
        _atomic_write(target, text.replace(action.search, action.replace, 1).encode("utf-8"))
    except PathEscape as exc:
        return _fail(str(exc))
    except UnicodeDecodeError:
        return _fail(f"{action.path} is not UTF-8 text")
    except OSError as exc:
        return _fail(f"cannot edit {action.path}: {exc.strerror}")
    return Observation(status=Status.SUCCESS, exit_code=0, stdout=f"edited {action.path}")
