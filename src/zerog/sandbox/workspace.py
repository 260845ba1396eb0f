"""Workspace snapshots: a content-addressed copy to roll back to, and a state hash.

A snapshot is a manifest (path -> kind, mode, digest) plus file contents stored once by
digest under the state directory. Restoring compares the live tree with the manifest and
rewrites only what differs, so rolling back a small change to a big tree is cheap. Stat
data lets unchanged files skip re-hashing, with the usual guard against files modified
within the same timestamp tick as the last hash ("racy" entries are hashed again).

The tree is written by untrusted commands, some of which may still be running, so:

- every path, in the workspace and in the state directory, is opened below a directory
  zerog holds, one component at a time, never following a symbolic link
  (:mod:`zerog.beneath`): a directory swapped for a link is refused, not followed;
- holes stay holes: zero blocks are skipped when an object or a restored file is
  written, and a tree holding more than ``max_hole_bytes`` of holes (sparse files: a
  large apparent size on a few disk blocks) is not snapshotted at all;
- setuid, setgid and sticky bits are never stored and never restored; a live file that
  has one gets the snapshot's plain mode back on restore;
- a manifest read back (resume) must hash to its own id and hold only normalized
  relative paths outside ``.zerog/``; stored objects must match their digests;
- :meth:`Workspace.collect` removes the manifests a finished run wrote and no longer
  needs, then every object no remaining manifest refers to.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shutil
import stat
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from zerog.beneath import Dir, PathEscape, listing, normalized, walk
from zerog.errors import SandboxError

EXCLUDED = frozenset({".zerog"})
KINDS = frozenset({"file", "link", "dir", "special"})
SPECIAL_BITS = 0o7000  # setuid, setgid, sticky: never stored, never restored
MAX_HOLE_BYTES = 256 * 1024 * 1024
MAX_MANIFEST_BYTES = 256 * 1024 * 1024
_RACY_NS = 50_000_000  # stat data younger than this (relative to the hash) is not trusted
_CHUNK = 128 * 1024
_INLINE_BYTES = 1 << 20  # files up to this size are read once, into memory
_ZEROS = bytes(_CHUNK)
_DIGEST = re.compile(r"[0-9a-f]{64}")
_CHANGED_KIND = (errno.EINVAL, errno.ELOOP)  # readlink of a non-link, open of a link
_UNHASHED = "unhashed:"  # the digest of a file the hole budget kept from being read


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # "file", "link", "dir" or "special" (fifo, socket, device: not restored)
    mode: int
    digest: str  # sha256 of a file's bytes, a link's target, "" for a directory


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    entries: dict[str, Entry]
    neutralized: tuple[str, ...] = ()  # paths whose setuid/setgid/sticky bits were dropped


@dataclass(frozen=True, slots=True)
class RestoreStats:
    written: int
    removed: int


@dataclass(frozen=True, slots=True)
class Collected:
    manifests: int
    objects: int


@dataclass(frozen=True, slots=True)
class _StatKey:
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


class SnapshotTampered(SandboxError):
    """A stored object no longer has the content its digest names, or a manifest is not
    one zerog wrote: something rewrote zerog's state (a backend that lets commands write
    ``.zerog/``, a planted directory, or another process)."""


class SnapshotRefused(SandboxError):
    """The tree cannot be snapshotted safely (too many holes in sparse files)."""


def _hash(fd: int) -> str:
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    for block in iter(lambda: os.read(fd, 1 << 20), b""):
        digest.update(block)
    return digest.hexdigest()


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _blocks(source: int) -> Iterator[bytes]:
    os.lseek(source, 0, os.SEEK_SET)
    return iter(lambda: os.read(source, _CHUNK), b"")


def _write_sparse(target: int, blocks: Iterable[bytes]) -> str:
    """Write ``blocks`` into the empty file ``target``, leaving a hole wherever a block is
    all zeros; the sha256 of the bytes written."""
    digest = hashlib.sha256()
    size = 0
    hole_at_end = False
    for block in blocks:
        digest.update(block)
        size += len(block)
        hole_at_end = block == (_ZEROS if len(block) == _CHUNK else bytes(len(block)))
        if hole_at_end:
            os.lseek(target, len(block), os.SEEK_CUR)
        else:
            _write_all(target, block)
    if hole_at_end:
        os.ftruncate(target, size)  # a hole at the end still counts in the size
    return digest.hexdigest()


def _copy(source: int, target: int) -> str:
    """Copy ``source`` from its start into the empty ``target`` (holes kept); its sha256."""
    return _write_sparse(target, _blocks(source))


def _read_small(fd: int) -> bytes | None:
    """The whole file if it holds at most ``_INLINE_BYTES`` (None if it holds more)."""
    chunks: list[bytes] = []
    size = 0
    for block in _blocks(fd):
        size += len(block)
        if size > _INLINE_BYTES:
            return None
        chunks.append(block)
    return b"".join(chunks)


def _locate(root: Path, state: Path) -> tuple[Path, tuple[str, ...]]:
    """The state directory as (trusted top, components below it): inside the workspace,
    the top is the workspace and no component may be a link."""
    absolute = Path(os.path.abspath(state))
    for base in (Path(os.path.abspath(root)), root.resolve()):
        if absolute != base and absolute.is_relative_to(base):
            return base, absolute.relative_to(base).parts
    return absolute, ()


@dataclass
class _Scan:
    """What one walk of the tree found."""

    entries: dict[str, Entry] = field(default_factory=dict)
    holes: int = 0
    largest_hole: tuple[int, str] = (0, "")


class _Objects:
    """The object store of one snapshot: its directory and buckets held open, each
    bucket's names listed once (a lookup per file would cost more than the snapshot)."""

    def __init__(self, objects: Dir) -> None:
        self._dir = objects
        self._names: dict[str, set[str]] = {}
        self._open: dict[str, Dir] = {}

    def close(self) -> None:
        for bucket in self._open.values():
            bucket.close()
        self._open.clear()

    def _bucket(self, prefix: str) -> set[str]:
        names = self._names.get(prefix)
        if names is None:
            try:
                with self._dir.child(prefix) as bucket:
                    names = {n for n, st in listing(bucket) if stat.S_ISREG(st.st_mode)}
            except FileNotFoundError:
                names = set()
            self._names[prefix] = names
        return names

    def _handle(self, prefix: str) -> Dir:
        bucket = self._open.get(prefix)
        if bucket is None:
            bucket = self._open[prefix] = self._dir.child(prefix, create=True, mode=0o700)
        return bucket

    def has(self, digest: str) -> bool:
        return digest in self._bucket(digest[:2])

    def put(self, expected: str, source: int | None = None, data: bytes = b"") -> str:
        """Store the open file ``source`` (or ``data``) with its holes; its digest, which is
        ``expected`` unless the file changed since it was hashed."""
        bucket = self._handle(expected[:2])
        tmp = f"tmp-{secrets.token_hex(8)}"
        fd = bucket.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        stored = False
        try:
            try:
                if source is None:
                    chunks = (data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK))
                    digest = _write_sparse(fd, chunks)
                else:
                    digest = _copy(source, fd)
            finally:
                os.close(fd)
            names = self._bucket(digest[:2])
            if digest not in names:
                final = self._handle(digest[:2])
                os.replace(tmp, digest, src_dir_fd=bucket.fd, dst_dir_fd=final.fd)
                names.add(digest)
                stored = True
        finally:
            if not stored:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp, dir_fd=bucket.fd)
        return digest


class Workspace:
    """Snapshots and restores one directory tree, excluding zerog's own ``.zerog/``."""

    def __init__(
        self,
        root: Path,
        state_dir: Path,
        clock_ns: Callable[[], int] = time.time_ns,
        max_hole_bytes: int = MAX_HOLE_BYTES,
    ) -> None:
        self.root = root.resolve()
        self._state_top, self._state_parts = _locate(root, state_dir)
        self._clock_ns = clock_ns
        self._max_holes = max_hole_bytes
        self._known: dict[str, tuple[_StatKey, str, int]] = {}  # path -> (stat, digest, at)
        self._written: set[str] = set()  # manifests this object created

    # ------------------------------------------------------------------ state directory

    def _state(self, *below: str, create: bool = False) -> Dir:
        """A directory of zerog's state, reached without following any link below its
        trusted top (the workspace, or a state directory of the caller's choice)."""
        if create and not self._state_parts:
            self._state_top.mkdir(parents=True, exist_ok=True, mode=0o700)
        with Dir.open(self._state_top, str(self._state_top)) as top:
            try:
                return top.sub((*self._state_parts, *below), create=create, mode=0o700)
            except PathEscape as exc:
                raise SnapshotTampered(
                    f"refusing zerog's snapshots: {exc} (zerog never follows a link in its "
                    "state); remove it and run again"
                ) from None

    # ------------------------------------------------------------------ reading

    def _file(
        self,
        directory: Dir,
        name: str,
        rel: str,
        st: os.stat_result,
        objects: _Objects | None,
        over_budget: bool,
    ) -> Entry:
        """The entry of a regular file: hashed (or its digest known from its stat data),
        copied into ``objects`` when given and not there yet. Past the hole budget a file
        whose digest is not known is not read at all."""
        key = _StatKey(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(rel)
        mode = stat.S_IMODE(st.st_mode)
        trusted = known is not None and known[0] == key and key.ctime_ns + _RACY_NS < known[2]
        if known is not None and trusted and (objects is None or objects.has(known[1])):
            return Entry("file", mode, known[1])
        if over_budget and not trusted:
            return Entry("file", mode, f"{_UNHASHED}{st.st_ino}:{st.st_size}")
        fd = directory.open_file(name, os.O_RDONLY | os.O_NONBLOCK)
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                return Entry("special", stat.S_IMODE(opened.st_mode), "")
            now = self._clock_ns()
            small = objects is not None and opened.st_size <= _INLINE_BYTES
            data = _read_small(fd) if small else None
            if objects is not None and data is not None:  # a small file: read once
                digest = hashlib.sha256(data).hexdigest()
                if not objects.has(digest):
                    objects.put(digest, data=data)
            else:
                digest = _hash(fd)
                if objects is not None and not objects.has(digest):
                    digest = objects.put(digest, fd)  # changed since hashed: what was copied
        finally:
            os.close(fd)
        key = _StatKey(opened.st_ino, opened.st_size, opened.st_mtime_ns, opened.st_ctime_ns)
        self._known[rel] = (key, digest, now)
        return Entry("file", stat.S_IMODE(opened.st_mode), digest)

    def _scan(self, objects: _Objects | None = None) -> _Scan:
        found = _Scan()
        with Dir.open(self.root) as top:
            for directory, name, rel, st in walk(top, EXCLUDED):
                mode = stat.S_IMODE(st.st_mode)
                try:
                    if stat.S_ISREG(st.st_mode):
                        holes = st.st_size - st.st_blocks * 512
                        if holes > 0:
                            found.holes += holes
                            found.largest_hole = max(found.largest_hole, (holes, rel))
                        over = found.holes > self._max_holes
                        entry = self._file(directory, name, rel, st, objects, over)
                    elif stat.S_ISLNK(st.st_mode):
                        entry = Entry("link", mode, os.readlink(name, dir_fd=directory.fd))
                    elif stat.S_ISDIR(st.st_mode):
                        entry = Entry("dir", mode, "")
                    else:  # fifo, socket, device: part of the state, never copied
                        entry = Entry("special", mode, "")
                except (FileNotFoundError, NotADirectoryError, PathEscape):
                    continue  # gone, or swapped for a link, while the walk went on
                except OSError as exc:
                    if exc.errno not in _CHANGED_KIND:
                        raise
                    continue  # a link that became a directory (or back) meanwhile
                found.entries[rel] = entry
        return found

    def scan(self) -> dict[str, Entry]:
        return self._scan().entries

    @staticmethod
    def _state_id(entries: dict[str, Entry]) -> str:
        digest = hashlib.sha256()
        for rel in sorted(entries):
            e = entries[rel]
            # A name need not be UTF-8: its undecodable bytes hash as the bytes they are.
            line = f"{rel}\0{e.kind}\0{e.mode:o}\0{e.digest}\n"
            digest.update(line.encode("utf-8", "surrogateescape"))
        return digest.hexdigest()

    def state_hash(self) -> str:
        """A hash of the tree's content (paths, kinds, modes, bytes): a cache key."""
        return self._state_id(self.scan())

    # ------------------------------------------------------------------ snapshot

    def snapshot(self) -> Snapshot:
        with self._state("objects", create=True) as objects:
            store = _Objects(objects)
            try:
                found = self._scan(store)
            finally:
                store.close()
        if found.holes > self._max_holes:
            size, where = found.largest_hole
            raise SnapshotRefused(
                f"the workspace holds {found.holes} bytes of holes in sparse files (the "
                f"largest, {where}, has {size}); zerog snapshots at most {self._max_holes}: "
                "delete or shrink the sparse files"
            )
        entries: dict[str, Entry] = {}
        neutralized: list[str] = []
        for rel, entry in found.entries.items():
            if entry.mode & SPECIAL_BITS:
                neutralized.append(rel)
                entry = Entry(entry.kind, entry.mode & ~SPECIAL_BITS, entry.digest)
            entries[rel] = entry
        snap = Snapshot(self._state_id(entries), entries, tuple(sorted(neutralized)))
        with self._state("manifests", create=True) as manifests:
            name = f"{snap.id}.json"
            if manifests.lstat(name) is None:
                body = {rel: [e.kind, e.mode, e.digest] for rel, e in entries.items()}
                tmp = f"{snap.id}.{secrets.token_hex(4)}.tmp"
                fd = manifests.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "wb") as handle:
                    handle.write(json.dumps(body, sort_keys=True).encode("utf-8"))
                os.replace(tmp, name, src_dir_fd=manifests.fd, dst_dir_fd=manifests.fd)
                self._written.add(snap.id)
        return snap

    def load(self, snapshot_id: str) -> Snapshot:
        """Load a snapshot saved by an earlier process (for resume), checked: its entries
        must hash to its id and name only normalized paths outside ``.zerog/``."""
        if not _DIGEST.fullmatch(snapshot_id):
            raise SnapshotTampered(f"{snapshot_id[:80]!r} is not a snapshot id")
        try:
            with self._state("manifests") as manifests:
                data = manifests.read_regular(f"{snapshot_id}.json", MAX_MANIFEST_BYTES)
        except FileNotFoundError:
            raise FileNotFoundError(f"no snapshot {snapshot_id} in {self._state_top}") from None
        if data is None or len(data) > MAX_MANIFEST_BYTES:
            raise SnapshotTampered(f"the manifest of snapshot {snapshot_id[:12]} is not a file")
        entries = _entries(snapshot_id, data)
        if self._state_id(entries) != snapshot_id:
            raise SnapshotTampered(
                f"the manifest of snapshot {snapshot_id[:12]} does not hash to its id: "
                "refusing to restore from tampered state"
            )
        plain = {rel: Entry(e.kind, e.mode & ~SPECIAL_BITS, e.digest) for rel, e in entries.items()}
        neutralized = tuple(sorted(rel for rel, e in entries.items() if e.mode & SPECIAL_BITS))
        return Snapshot(snapshot_id, plain, neutralized)

    def read_object(self, digest: str, limit: int) -> tuple[int, bytes | None]:
        """The size and stored bytes of a file entry (``None`` past ``limit`` bytes), checked
        against its digest; :class:`SnapshotTampered` if it is missing or altered."""
        try:
            with self._state("objects", digest[:2]) as bucket:
                fd = bucket.open_file(digest, os.O_RDONLY | os.O_NONBLOCK)
        except (OSError, PathEscape):
            raise SnapshotTampered(f"snapshot object {digest[:12]}... is missing") from None
        with os.fdopen(fd, "rb") as handle:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise SnapshotTampered(f"snapshot object {digest[:12]}... is not a file")
            if info.st_size > limit:
                return info.st_size, None
            data = handle.read(limit + 1)
        if hashlib.sha256(data).hexdigest() != digest:
            raise SnapshotTampered(
                f"snapshot object {digest[:12]}... does not match its digest: refusing to "
                "show tampered state"
            )
        return len(data), data

    # ------------------------------------------------------------------ restore

    def _remove(self, top: Dir, rel: str, kind: str) -> None:
        parts = rel.split("/")
        try:
            with top.sub(parts[:-1]) as parent:
                if kind == "dir":
                    shutil.rmtree(parts[-1], dir_fd=parent.fd, ignore_errors=True)
                else:
                    os.unlink(parts[-1], dir_fd=parent.fd)
        except (FileNotFoundError, NotADirectoryError):
            pass  # already gone with its directory

    def _write_file(self, parent: Dir, name: str, want: Entry) -> None:
        """Replace ``name`` with the stored object of ``want``, checked against its digest."""
        try:
            with self._state("objects", want.digest[:2]) as bucket:
                source = bucket.open_file(want.digest, os.O_RDONLY | os.O_NONBLOCK)
        except (FileNotFoundError, PathEscape):
            raise SnapshotTampered(
                f"snapshot object {want.digest[:12]}... is missing: cannot restore"
            ) from None
        tmp = f".zerog-restore-{secrets.token_hex(8)}"
        try:
            target = parent.open_file(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                if not stat.S_ISREG(os.fstat(source).st_mode) or _copy(source, target) != (
                    want.digest
                ):
                    raise SnapshotTampered(
                        f"snapshot object {want.digest[:12]}... does not match its digest: "
                        "refusing to restore from tampered state"
                    )
                os.fchmod(target, want.mode & 0o777)
            finally:
                os.close(target)
            os.replace(tmp, name, src_dir_fd=parent.fd, dst_dir_fd=parent.fd)
        finally:
            os.close(source)
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp, dir_fd=parent.fd)

    def _put(self, top: Dir, rel: str, want: Entry, have: Entry | None) -> None:
        parts = rel.split("/")
        with top.sub(parts[:-1], create=True, mode=0o700) as parent:
            name = parts[-1]
            if want.kind == "dir":
                if have is None or have.kind != "dir":
                    parent.child(name, create=True, mode=0o700).close()
                    parent.chmod(name, 0o700)  # writable while its content is restored
            elif (
                have is not None
                and have.kind == "file" == want.kind
                and (have.digest == want.digest)
            ):
                parent.chmod(name, want.mode & 0o777)
            elif want.kind == "link":
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=parent.fd)
                os.symlink(want.digest, name, dir_fd=parent.fd)
            else:  # checked copy first; the rename swaps a file or a link atomically
                self._write_file(parent, name, want)

    def restore(self, snap: Snapshot) -> RestoreStats:
        """Make the tree identical to ``snap``; return how many entries changed."""
        current = self.scan()
        removed = 0
        written = 0
        dir_modes: list[tuple[str, int]] = []
        with Dir.open(self.root) as top:
            # Remove what should not be there (deepest first), or whose kind changed.
            for rel in sorted(current, key=lambda p: p.count("/"), reverse=True):
                kept = snap.entries.get(rel)
                existing = current[rel]
                if kept is not None and kept.kind == existing.kind:
                    continue
                self._remove(top, rel, existing.kind)
                removed += 1
            for rel in sorted(snap.entries, key=lambda p: p.count("/")):
                want = snap.entries[rel]
                have = current.get(rel)
                if want.kind == "special" or have == want:
                    continue
                same_kind = have is not None and have.kind == want.kind
                self._put(top, rel, want, have if same_kind else None)
                if want.kind == "dir":
                    dir_modes.append((rel, want.mode))
                written += 1
            for rel, mode in reversed(dir_modes):  # deepest first, after their content
                parts = rel.split("/")
                with top.sub(parts[:-1]) as parent:
                    parent.chmod(parts[-1], mode & 0o777)
        return RestoreStats(written=written, removed=removed)

    # ------------------------------------------------------------------ garbage

    def collect(self, keep: Collection[str] = ()) -> Collected:
        """Remove the manifests this object wrote, except ``keep``, then every stored
        object that no remaining manifest names (and leftovers of interrupted writes).
        Manifests written by other processes (an interrupted run that may be resumed) are
        never removed; if one cannot be read, no object is removed."""
        manifests_removed = objects_removed = 0
        try:
            manifests = self._state("manifests")
        except (FileNotFoundError, SnapshotTampered):
            return Collected(0, 0)
        with manifests:
            for snapshot_id in sorted(self._written - set(keep)):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(f"{snapshot_id}.json", dir_fd=manifests.fd)
                    manifests_removed += 1
                self._written.discard(snapshot_id)
            referenced: set[str] = set()
            for name, st in listing(manifests):
                if not name.endswith(".json") or not stat.S_ISREG(st.st_mode):
                    continue
                try:
                    snap = self.load(name.removesuffix(".json"))
                except (SnapshotTampered, OSError):
                    return Collected(manifests_removed, 0)
                referenced.update(e.digest for e in snap.entries.values() if e.kind == "file")
        try:
            objects = self._state("objects")
        except (FileNotFoundError, SnapshotTampered):
            return Collected(manifests_removed, 0)
        with objects:
            for bucket_name, st in listing(objects):
                if not stat.S_ISDIR(st.st_mode):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(bucket_name, dir_fd=objects.fd)  # an interrupted copy
                    continue
                with objects.child(bucket_name) as bucket:
                    for name, entry_st in listing(bucket):
                        if name in referenced or stat.S_ISDIR(entry_st.st_mode):
                            continue
                        with contextlib.suppress(FileNotFoundError):
                            os.unlink(name, dir_fd=bucket.fd)
                            objects_removed += 1
        return Collected(manifests_removed, objects_removed)


def _entries(snapshot_id: str, data: bytes) -> dict[str, Entry]:
    """The entries of a manifest, each checked; :class:`SnapshotTampered` if one is bad."""

    def bad(why: str) -> SnapshotTampered:
        return SnapshotTampered(f"the manifest of snapshot {snapshot_id[:12]} {why}")

    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        raise bad("is not JSON") from None
    if not isinstance(body, dict):
        raise bad("is not a JSON object")
    entries: dict[str, Entry] = {}
    for rel, value in body.items():
        try:
            parts = normalized(rel)
        except PathEscape:
            raise bad(f"names a path that is not normalized and relative: {rel[:200]!r}") from None
        if parts[0] in EXCLUDED:
            raise bad(f"names zerog's own state: {rel[:200]!r}")
        if not (isinstance(value, list) and len(value) == 3):
            raise bad(f"has a malformed entry for {rel[:200]!r}")
        kind, mode, digest = value
        if (
            kind not in KINDS
            or not isinstance(mode, int)
            or isinstance(mode, bool)
            or not 0 <= mode <= 0o7777
            or not isinstance(digest, str)
            or (kind == "file" and not _DIGEST.fullmatch(digest))
            or (kind in ("dir", "special") and digest)
            or (kind == "link" and (not digest or "\x00" in digest))
        ):
            raise bad(f"has a malformed entry for {rel[:200]!r}")
        entries[rel] = Entry(kind, mode, digest)
    for rel in entries:
        parent = rel.rpartition("/")[0]
        if parent and (parent not in entries or entries[parent].kind != "dir"):
            raise bad(f"has {rel[:200]!r} without its directory")
    return entries
