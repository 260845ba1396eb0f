"""Workspace snapshots: a content-addressed copy to roll back to, and a state hash.

A snapshot is a manifest (path -> kind, mode, digest) plus file contents stored once by
digest under the state directory. Restoring compares the live tree with the manifest and
rewrites only what differs, so rolling back a small change to a big tree is cheap. Stat
data lets unchanged files skip re-hashing, with the usual guard against files modified
within the same timestamp tick as the last hash ("racy" entries are hashed again).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from zerog.errors import SandboxError

EXCLUDED = frozenset({".zerog"})
_RACY_NS = 50_000_000  # stat data younger than this (relative to the hash) is not trusted


@dataclass(frozen=True, slots=True)
class Entry:
    kind: str  # "file", "link", "dir" or "special" (fifo, socket, device: not restored)
    mode: int
    digest: str  # sha256 of a file's bytes, a link's target, "" for a directory


@dataclass(frozen=True, slots=True)
class Snapshot:
    id: str
    entries: dict[str, Entry]


@dataclass(frozen=True, slots=True)
class RestoreStats:
    written: int
    removed: int


@dataclass(frozen=True, slots=True)
class _StatKey:
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def _walk(root: Path) -> Iterator[tuple[str, os.stat_result]]:
    """Yield (relative posix path, lstat) for everything under root, excluded dirs skipped."""
    stack = [""]
    while stack:
        rel_dir = stack.pop()
        with os.scandir(root / rel_dir if rel_dir else root) as it:
            for entry in it:
                rel = f"{rel_dir}/{entry.name}" if rel_dir else entry.name
                if not rel_dir and entry.name in EXCLUDED:
                    continue
                st = entry.stat(follow_symlinks=False)
                yield rel, st
                if stat.S_ISDIR(st.st_mode):
                    stack.append(rel)


def _hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class SnapshotTampered(SandboxError):
    """A stored object no longer has the content its digest names: something rewrote
    zerog's state (a backend that lets commands write ``.zerog/``, or another process)."""


def _copy_verified(source: Path, target: Path, digest: str) -> None:
    """Copy a stored object, checking its bytes against the digest it is stored under."""
    sha = hashlib.sha256()
    try:
        with source.open("rb") as src, target.open("wb") as dst:
            for block in iter(lambda: src.read(1 << 20), b""):
                sha.update(block)
                dst.write(block)
        if sha.hexdigest() != digest:
            raise SnapshotTampered(
                f"snapshot object {source.name[:12]}... does not match its digest: "
                "refusing to restore from tampered state"
            )
    except BaseException:
        target.unlink(missing_ok=True)
        raise


class Workspace:
    """Snapshots and restores one directory tree, excluding zerog's own ``.zerog/``."""

    def __init__(
        self, root: Path, state_dir: Path, clock_ns: Callable[[], int] = time.time_ns
    ) -> None:
        self.root = root.resolve()
        self._objects = state_dir / "objects"
        self._manifests = state_dir / "manifests"
        self._clock_ns = clock_ns
        self._known: dict[str, tuple[_StatKey, str, int]] = {}  # path -> (stat, digest, at)

    # ------------------------------------------------------------------ reading

    def _digest(self, rel: str, st: os.stat_result) -> str:
        key = _StatKey(st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        known = self._known.get(rel)
        if known and known[0] == key and key.ctime_ns + _RACY_NS < known[2]:
            return known[1]
        now = self._clock_ns()
        digest = _hash_file(self.root / rel)
        self._known[rel] = (key, digest, now)
        return digest

    def scan(self) -> dict[str, Entry]:
        entries: dict[str, Entry] = {}
        for rel, st in _walk(self.root):
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISREG(st.st_mode):
                entries[rel] = Entry("file", mode, self._digest(rel, st))
            elif stat.S_ISLNK(st.st_mode):
                entries[rel] = Entry("link", mode, os.readlink(self.root / rel))
            elif stat.S_ISDIR(st.st_mode):
                entries[rel] = Entry("dir", mode, "")
            else:  # fifo, socket, device: part of the state, never copied
                entries[rel] = Entry("special", mode, "")
        return entries

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

    def _object(self, digest: str) -> Path:
        return self._objects / digest[:2] / digest

    def snapshot(self) -> Snapshot:
        entries = self.scan()
        for rel, entry in entries.items():
            if entry.kind != "file":
                continue
            obj = self._object(entry.digest)
            if not obj.exists():
                obj.parent.mkdir(parents=True, exist_ok=True)
                tmp = obj.with_suffix(".tmp")
                shutil.copyfile(self.root / rel, tmp)
                os.replace(tmp, obj)
        snap = Snapshot(self._state_id(entries), entries)
        self._manifests.mkdir(parents=True, exist_ok=True)
        manifest = self._manifests / f"{snap.id}.json"
        if not manifest.exists():
            body = {rel: [e.kind, e.mode, e.digest] for rel, e in entries.items()}
            tmp = manifest.with_suffix(".tmp")
            tmp.write_text(json.dumps(body, sort_keys=True), encoding="utf-8")
            os.replace(tmp, manifest)
        return snap

    def load(self, snapshot_id: str) -> Snapshot:
        """Load a snapshot saved by an earlier process (for resume)."""
        body = json.loads((self._manifests / f"{snapshot_id}.json").read_text("utf-8"))
        entries = {rel: Entry(k, int(m), str(d)) for rel, (k, m, d) in body.items()}
        return Snapshot(snapshot_id, entries)

    def read_object(self, digest: str, limit: int) -> tuple[int, bytes | None]:
        """The size and stored bytes of a file entry (``None`` past ``limit`` bytes), checked
        against its digest; :class:`SnapshotTampered` if it is missing or altered."""
        try:
            fd = os.open(self._object(digest), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:
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

    def restore(self, snap: Snapshot) -> RestoreStats:
        """Make the tree identical to ``snap``; return how many entries changed."""
        current = self.scan()
        removed = 0
        # Remove what should not be there (deepest first), or whose kind changed.
        for rel in sorted(current, key=lambda p: p.count("/"), reverse=True):
            kept = snap.entries.get(rel)
            existing = current[rel]
            if kept is not None and kept.kind == existing.kind:
                continue
            path = self.root / rel
            if existing.kind == "dir":
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed += 1
        written = 0
        dir_modes: list[tuple[Path, int]] = []
        for rel in sorted(snap.entries, key=lambda p: p.count("/")):
            want = snap.entries[rel]
            have = current.get(rel)
            path = self.root / rel
            if want.kind == "special" or have == want:
                continue
            if want.kind == "dir":
                if have is None or have.kind != "dir":
                    path.mkdir(parents=True, exist_ok=True)
                    os.chmod(path, 0o700)  # writable while its content is restored
                dir_modes.append((path, want.mode))
                written += 1
                continue
            written += 1
            if have is not None and have.kind == want.kind == "file" and have.digest == want.digest:
                os.chmod(path, want.mode)
                continue
            path.parent.mkdir(parents=True, exist_ok=True)
            if want.kind == "link":
                if path.is_symlink() or path.exists():
                    path.unlink()
                os.symlink(want.digest, path)
            else:  # checked copy first; the replace swaps a file or a link atomically
                tmp = path.with_name(f".zerog-restore-{path.name}")
                _copy_verified(self._object(want.digest), tmp, want.digest)
                os.chmod(tmp, want.mode)
                os.replace(tmp, path)
        for path, mode in reversed(dir_modes):  # deepest first, after their content
            os.chmod(path, mode)
        return RestoreStats(written=written, removed=removed)
