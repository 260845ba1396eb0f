"""Confinement checked again where a path is used: in the worker process, right before
the run starts, without following any symbolic link.

The server resolves a submitted path when it accepts the run; the worker starts later. In
between, a directory on the way could have been replaced by a symbolic link to anywhere
(by another run whose workspace holds it: the server refuses overlapping active
workspaces, and this is the second line). So the worker walks the path from the root
one component at a time, each opened relative to its parent with ``O_NOFOLLOW``: a link
anywhere below the root, a ``..``, or a path that is not below the root is refused.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from zerog.errors import ConfigError


class Escape(ConfigError):
    """A path that leaves the workspaces root, or reaches it through a symbolic link."""


def beneath(root: Path, path: Path, *, directory: bool) -> Path:
    """``path`` if it is strictly below ``root`` with no symbolic link on the way and is
    a directory (``directory``) or a regular file; else :class:`Escape`, whose message
    names the path relative to the root only."""
    try:
        parts = path.relative_to(root).parts
    except ValueError:
        raise Escape("the path is not under the workspaces root") from None
    shown = "/".join(parts) or "."
    if not parts or any(part in (".", "..") for part in parts):
        raise Escape(f"{shown}: not a path below the workspaces root")
    base = os.O_PATH | os.O_CLOEXEC
    fd = os.open(root, base | os.O_DIRECTORY)
    try:
        for part in parts:
            try:
                child = os.open(part, base | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                raise Escape(f"{shown}: cannot be opened ({exc.strerror})") from None
            os.close(fd)
            fd = child
            mode = os.fstat(fd).st_mode
            if stat.S_ISLNK(mode):
                raise Escape(f"{shown}: a symbolic link is on the way ({part})")
        wanted = stat.S_ISDIR(mode) if directory else stat.S_ISREG(mode)
        if not wanted:
            raise Escape(f"{shown}: not a {'directory' if directory else 'regular file'}")
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)
    return path


def model_file(spec: str) -> Path | None:
    """The file a model spec reads (``scripted:FILE``, ``local:FILE.gguf``), if any."""
    kind, _, rest = spec.partition(":")
    if kind == "scripted" or (kind == "local" and rest.endswith(".gguf")):
        return Path(rest)
    return None
