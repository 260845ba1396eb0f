"""zerog's state directory in a workspace (``.zerog/``), made and used without links.

A workspace can come from anywhere (a cloned repository, an archive), and so can a
``.zerog`` in it: a link there, or inside it, would make zerog write its state (the
``.gitignore``, the lock, traces, snapshots) wherever the link points. Every path of
the state is therefore opened below the workspace one component at a time with
``O_NOFOLLOW`` (:mod:`zerog.beneath`), and a link met on the way is refused with a
message saying what to remove.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import IO

from zerog.beneath import Dir, PathEscape
from zerog.errors import ConfigError

STATE_DIR = ".zerog"
GITIGNORE = b"*\n"


def _refused(root: Path, exc: PathEscape) -> ConfigError:
    return ConfigError(
        f"refusing to use zerog's state in {root}: {exc}. zerog never follows links for "
        f"its state; remove the link (or all of {root / STATE_DIR}) and run again"
    )


def _name(name: str) -> str:
    if not name or "/" in name or "\x00" in name or name in (".", ".."):
        raise ConfigError(f"{name!r} cannot name a file of zerog's state")
    return name


def open_state(root: Path) -> Dir:
    """``root/.zerog`` (made when missing; the sandboxes read programs in it) with its
    ``.gitignore`` written, as an open directory the caller closes;
    :class:`ConfigError` if a link is in the way."""
    with Dir.open(root, str(root)) as top:
        try:
            state = top.child(STATE_DIR, create=True)
        except PathEscape as exc:
            raise _refused(root, exc) from None
        except NotADirectoryError:
            raise ConfigError(
                f"{root / STATE_DIR} is not a directory: zerog keeps its state there; "
                "move it aside and run again"
            ) from None
    try:
        st = state.lstat(".gitignore")
        if st is not None and stat.S_ISLNK(st.st_mode):
            raise PathEscape(f"{STATE_DIR}/.gitignore is a symbolic link")
        state.replace_file(".gitignore", GITIGNORE, 0o644)  # a new file: never through a link
    except PathEscape as exc:
        state.close()
        raise _refused(root, exc) from None
    except BaseException:
        state.close()
        raise
    return state


def state_subdir(root: Path, state: Dir, *parts: str) -> Dir:
    """A directory below the state (made 0700 when missing), no link followed."""
    try:
        return state.sub([_name(p) for p in parts], create=True, mode=0o700)
    except PathEscape as exc:
        raise _refused(root, exc) from None


def open_state_file(root: Path, directory: Dir, name: str, flags: int) -> int:
    """``os.open`` of a file of the state (mode 0600 when made), no link followed; a hard
    link (a name shared with a file elsewhere) or a file of another kind is refused."""
    try:
        fd = directory.open_file(_name(name), flags | os.O_NONBLOCK, 0o600)
    except PathEscape as exc:
        raise _refused(root, exc) from None
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode) or st.st_nlink != 1:
        os.close(fd)
        raise ConfigError(
            f"refusing to use {directory.shown(name)} in {root}: it is not a plain file of "
            "zerog's own (a hard link or a special file); remove it and run again"
        )
    return fd


def append_text(root: Path, directory: Dir, name: str) -> IO[str]:
    """A text file of the state opened for appending (a trace)."""
    fd = open_state_file(root, directory, name, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    return os.fdopen(fd, "a", encoding="utf-8")
