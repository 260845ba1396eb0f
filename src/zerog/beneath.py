"""Paths below a directory, opened without ever following a symbolic link.

A workspace is written by untrusted commands, and a process left running in the
background can swap any of its directories for a symbolic link at any moment, between
zerog's check of a path and its use. So zerog never resolves a workspace path by name:
it opens the top directory once (:meth:`Dir.open`) and every component below it with
``openat(..., O_NOFOLLOW)`` relative to the directory opened before. A link met on the
way is refused (:class:`PathEscape`); a directory renamed or replaced while zerog holds
it changes nothing about where zerog's next open lands, since that open is relative to
the directory zerog already holds, not to a name.

The same walk guards zerog's own state (``.zerog/``): a planted link there is refused
instead of followed.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import TracebackType

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_LINK_ERRNOS = (errno.ELOOP, errno.ENOTDIR, errno.EMLINK)  # what O_NOFOLLOW gives on a link


class PathEscape(ValueError):
    """A path that leaves its tree, passes through a symbolic link, or names something
    zerog must not touch."""


def split(relative: str) -> tuple[str, ...]:
    """The components of ``relative``, ``.`` and empty ones dropped and ``..`` taken
    lexically (never through the file system); :class:`PathEscape` if it is absolute,
    has a NUL byte, climbs above its top or names no file at all."""
    if "\x00" in relative:
        raise PathEscape("path contains a NUL byte")
    if relative.startswith("/"):
        raise PathEscape(f"absolute paths are not allowed: {relative}")
    parts: list[str] = []
    for part in relative.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise PathEscape(f"path leaves the workspace: {relative}")
            parts.pop()
            continue
        parts.append(part)
    if not parts:
        raise PathEscape(f"not a file path: {relative}")
    return tuple(parts)


def normalized(relative: str) -> tuple[str, ...]:
    """The components of ``relative`` if it is already a normalized relative path (what a
    tree walk produces: no ``.``, ``..``, empty component, leading or trailing slash)."""
    parts = tuple(relative.split("/"))
    if "\x00" in relative or any(p in ("", ".", "..") for p in parts):
        raise PathEscape(f"not a normalized relative path: {relative!r}")
    return parts


class Dir:
    """An open directory. Every name is taken relative to it and never followed when it
    is a symbolic link. Close it (or use it as a context manager)."""

    def __init__(self, fd: int, label: str) -> None:
        self._fd = fd
        self.label = label  # where it is, for messages only

    @classmethod
    def open(cls, path: Path, label: str = "") -> Dir:
        """Open ``path`` itself, the trusted top of a tree (links in it are followed: it is
        the path the user gave). ``label`` prefixes the names in messages."""
        return cls(os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC), label)

    @property
    def fd(self) -> int:
        return self._fd

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> Dir:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def shown(self, name: str) -> str:
        """``name`` in this directory, as messages show it."""
        return f"{self.label}/{name}" if self.label else name

    def lstat(self, name: str) -> os.stat_result | None:
        """The entry ``name`` itself (a link is not followed), or None when there is none."""
        try:
            return os.stat(name, dir_fd=self._fd, follow_symlinks=False)
        except FileNotFoundError:
            return None

    def _refuse_link(self, name: str, exc: OSError) -> None:
        """Turn an open that failed on a link into :class:`PathEscape`; other errors stay."""
        if exc.errno in _LINK_ERRNOS:
            st = self.lstat(name)
            if st is not None and stat.S_ISLNK(st.st_mode):
                raise PathEscape(f"{self.shown(name)} is a symbolic link") from None

    def child(self, name: str, *, create: bool = False, mode: int = 0o777) -> Dir:
        """The directory ``name`` in this one (made with ``mode`` if ``create``)."""
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, mode, dir_fd=self._fd)
        try:
            fd = os.open(name, _DIR_FLAGS, dir_fd=self._fd)
        except OSError as exc:
            self._refuse_link(name, exc)
            raise
        return Dir(fd, self.shown(name))

    def sub(self, parts: Sequence[str], *, create: bool = False, mode: int = 0o777) -> Dir:
        """The directory at ``parts`` below this one, walked one component at a time
        (missing ones made with ``mode`` if ``create``). An empty ``parts`` is a new handle
        on this directory."""
        current = Dir(os.dup(self._fd), self.label)
        try:
            for name in parts:
                nxt = current.child(name, create=create, mode=mode)
                current.close()
                current = nxt
        except BaseException:
            current.close()
            raise
        return current

    def open_file(self, name: str, flags: int, mode: int = 0o600) -> int:
        """``os.open`` of ``name`` in this directory with ``O_NOFOLLOW``: a link is refused."""
        try:
            return os.open(name, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self._fd)
        except OSError as exc:
            self._refuse_link(name, exc)
            raise

    def replace_file(self, name: str, data: bytes, mode: int = 0o600) -> None:
        """Make ``name`` a new file holding ``data``: written to a temporary name, then
        renamed over the entry (which replaces a link or a file; it never writes through
        one)."""
        tmp = f".zerog-tmp-{secrets.token_hex(8)}"
        fd = self.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                os.fchmod(handle.fileno(), mode)
            os.replace(tmp, name, src_dir_fd=self._fd, dst_dir_fd=self._fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=self._fd)
            raise

    def read_regular(self, name: str, limit: int) -> bytes | None:
        """Up to ``limit`` + 1 bytes of the regular file ``name`` (None if it is another
        kind of file). Opened non-blocking, so a FIFO planted in its place cannot hang."""
        fd = self.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
            return handle.read(limit + 1)

    def chmod(self, name: str, mode: int) -> None:
        """Set the mode of the file or directory ``name`` (never of what a link points to)."""
        path_flag = getattr(os, "O_PATH", 0)
        if path_flag:  # no read permission needed (a directory of mode 000 still works)
            fd = self.open_file(name, path_flag)
            try:
                if stat.S_ISLNK(os.fstat(fd).st_mode):  # O_PATH|O_NOFOLLOW opens a link
                    raise PathEscape(f"{self.shown(name)} is a symbolic link")
                os.chmod(f"/proc/self/fd/{fd}", mode)
                return
            except FileNotFoundError:  # no /proc mounted: open it for reading instead
                pass
            finally:
                os.close(fd)
        fd = self.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            os.fchmod(fd, mode)
        finally:
            os.close(fd)


def read_below(top: Dir, relative: str, limit: int) -> bytes | None:
    """Up to ``limit`` + 1 bytes of the regular file at ``relative`` below ``top``, no
    link followed on the way (:class:`PathEscape`); None if it is not a regular file."""
    parts = split(relative)
    with top.sub(parts[:-1]) as parent:
        return parent.read_regular(parts[-1], limit)


def read_beneath(path: Path, relative: str, limit: int) -> bytes | None:
    """:func:`read_below` the directory at ``path``."""
    with Dir.open(path) as top:
        return read_below(top, relative, limit)


MAX_OPEN_DEPTH = 64  # directories a walk holds open at once


def listing(directory: Dir) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of each entry of ``directory``; entries that vanish are left out."""
    found = []
    with os.scandir(directory.fd) as it:
        for entry in it:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return found


def _open_below(top: Dir, parent: Dir | None, rel: str, name: str) -> Dir | None:
    """The directory ``rel`` (``name`` in ``parent`` when it is held open, else walked from
    ``top``), or None when it is gone or no longer a directory."""
    try:
        return parent.child(name) if parent is not None else top.sub(rel.split("/"))
    except (FileNotFoundError, NotADirectoryError, PathEscape):
        return None


def walk(
    top: Dir, exclude: frozenset[str] = frozenset()
) -> Iterator[tuple[Dir, str, str, os.stat_result]]:
    """(directory, name, relative path, lstat) of everything below ``top``, depth first,
    names in ``exclude`` at the top left out. Each directory is opened from its parent
    without following links (a link swapped in anywhere is refused, not followed); the
    directories on the current path stay open up to :data:`MAX_OPEN_DEPTH`, deeper ones
    are reached again from the top, one at a time."""
    stack: list[tuple[str, Dir | None, Iterator[str]]] = []
    try:
        directory: Dir | None = top.sub(())
        rel_dir = ""
        while True:
            subdirs: list[str] = []
            if directory is not None:
                for name, st in listing(directory):
                    if not rel_dir and name in exclude:
                        continue
                    rel = f"{rel_dir}/{name}" if rel_dir else name
                    yield directory, name, rel, st
                    if stat.S_ISDIR(st.st_mode):
                        subdirs.append(name)
                if len(stack) >= MAX_OPEN_DEPTH:
                    directory.close()
                    directory = None
            stack.append((rel_dir, directory, iter(subdirs)))
            directory = None
            while stack and directory is None:
                parent_rel, parent, left = stack[-1]
                child = next(left, None)
                if child is None:
                    if parent is not None:
                        parent.close()
                    stack.pop()
                    continue
                rel_dir = f"{parent_rel}/{child}" if parent_rel else child
                directory = _open_below(top, parent, rel_dir, child)
            if directory is None:
                return
    finally:
        for _, held, _ in stack:
            if held is not None:
                held.close()
