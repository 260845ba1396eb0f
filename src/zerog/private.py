"""Files only their owner may read: zerog's run store, caches, traces and token.

They hold command output, model text and goals, so they are created with mode 0600
(their directories 0700) whatever the umask, and a file left readable by an older zerog
is tightened when it is opened again.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """``path`` and its missing parents; the ones created here get mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)


def private_file(path: Path) -> None:
    """Create ``path`` empty with mode 0600 if it is missing; make it 0600 if it exists
    and is ours. (SQLite gives a database's ``-wal`` and ``-shm`` files the mode of the
    database file, so a store created this way keeps all three private.)"""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE))
    tighten(path)


def tighten(*paths: Path) -> None:
    """Make each existing file of ``paths`` that this user owns mode 0600."""
    for path in paths:
        with contextlib.suppress(OSError):  # missing, or someone else's: left alone
            if path.stat().st_uid == os.geteuid():
                path.chmod(FILE_MODE)
