"""The cache file: one SQLite database beside the run store, bounded by LRU.

Every entry carries the sha256 of its payload; an entry whose payload does not parse or
does not match its digest is dropped when it is read and reported as a miss, never
trusted. Eviction keeps each kind of entry under a count and a byte bound, least recently
used first. The cache is its own file (``cache.db`` next to ``runs.db``) so that its
writes never contend with the event log and its schema evolves on its own.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from zerog.errors import ZerogError
from zerog.private import private_dir, private_file, tighten

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    payload TEXT NOT NULL,
    digest TEXT NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (kind, key)
);
CREATE INDEX IF NOT EXISTS entries_by_use ON entries (kind, used);
CREATE TABLE IF NOT EXISTS plans (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    checks_key TEXT NOT NULL,
    goal TEXT NOT NULL,
    payload TEXT NOT NULL,
    digest TEXT NOT NULL,
    vector BLOB NOT NULL,
    size INTEGER NOT NULL,
    created REAL NOT NULL,
    used REAL NOT NULL,
    hits INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS plans_by_use ON plans (used);
CREATE TABLE IF NOT EXISTS stats (
    kind TEXT NOT NULL,
    outcome TEXT NOT NULL,
    count INTEGER NOT NULL,
    PRIMARY KEY (kind, outcome)
);
"""
KINDS = ("model", "tool", "plan")


class CacheError(ZerogError):
    """The cache file cannot be used (not SQLite, from a newer zerog, not writable)."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """LRU bounds for one kind of entry."""

    max_entries: int = 10_000
    max_bytes: int = 256 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class PlanRow:
    id: int
    checks_key: str
    goal: str
    payload: dict[str, object]
    vector: bytes


def digest_of(payload: str) -> str:
    return hashlib.sha256(payload.encode()).hexdigest()


def default_cache_path(store_path: Path) -> Path:
    """The cache file that goes with a run store: ``cache.db`` in the same directory."""
    return store_path.with_name("cache.db")


class CacheDB:
    """Entries by (kind, key), plans with their vectors, and hit/miss counters.

    Safe to share between the threads of one process (one connection behind a lock).
    """

    def __init__(
        self,
        path: Path,
        *,
        bounds: Mapping[str, Bounds] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = path
        self.bounds = {kind: Bounds() for kind in KINDS} | dict(bounds or {})
        self._clock = clock
        self._lock = threading.Lock()
        private_dir(path.parent)
        private_file(path)  # before SQLite creates it (and its -wal and -shm) as 0644
        try:
            self._db = sqlite3.connect(
                path, timeout=30.0, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            version = int(self._db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise CacheError(f"the cache {path} was written by a newer zerog")
            self._db.executescript(SCHEMA)
            self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION:d}")
        except sqlite3.DatabaseError as exc:
            raise CacheError(
                f"the cache {path} is damaged or not a cache ({exc}); remove it or "
                "run `zerog cache clear`"
            ) from None
        tighten(path, Path(f"{path}-wal"), Path(f"{path}-shm"))  # those of an older zerog

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> CacheDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _run(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.DatabaseError as exc:
                raise CacheError(f"the cache {self.path} failed: {exc}") from None

    def count(self, kind: str, outcome: str) -> None:
        """Count a lookup outcome (hit, miss, corrupt, store, invalidated, ...)."""
        self._run(
            "INSERT INTO stats (kind, outcome, count) VALUES (?, ?, 1) "
            "ON CONFLICT (kind, outcome) DO UPDATE SET count = count + 1",
            (kind, outcome),
        )

    # ------------------------------------------------------------ keyed entries

    def get(self, kind: str, key: str) -> dict[str, object] | None:
        """The payload under (kind, key), or None; a corrupted entry is dropped."""
        rows = self._run(
            "SELECT payload, digest FROM entries WHERE kind = ? AND key = ?", (kind, key)
        )
        if not rows:
            return None
        payload, digest = str(rows[0][0]), str(rows[0][1])
        value = _parse(payload, digest)
        if value is None:
            self.delete(kind, key)
            self.count(kind, "corrupt")
            return None
        self._run(
            "UPDATE entries SET used = ?, hits = hits + 1 WHERE kind = ? AND key = ?",
            (self._clock(), kind, key),
        )
        return value

    def put(self, kind: str, key: str, value: Mapping[str, object]) -> None:
        payload = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        now = self._clock()
        self._run(
            "INSERT INTO entries (kind, key, payload, digest, size, created, used) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (kind, key) DO UPDATE SET "
            "payload = excluded.payload, digest = excluded.digest, size = excluded.size, "
            "used = excluded.used",
            (kind, key, payload, digest_of(payload), len(payload), now, now),
        )
        self._evict(kind)

    def delete(self, kind: str, key: str) -> None:
        self._run("DELETE FROM entries WHERE kind = ? AND key = ?", (kind, key))

    def _evict(self, kind: str) -> None:
        bound = self.bounds.get(kind, Bounds())
        count, size = self._run(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries WHERE kind = ?", (kind,)
        )[0]
        count, size = int(str(count)), int(str(size))
        if count <= bound.max_entries and size <= bound.max_bytes:
            return
        rows = self._run(
            "SELECT key, size FROM entries WHERE kind = ? ORDER BY used ASC, rowid ASC", (kind,)
        )
        doomed: list[str] = []
        for key, entry_size in rows:
            if count <= bound.max_entries and size <= bound.max_bytes:
                break
            doomed.append(str(key))
            count -= 1
            size -= int(str(entry_size))
        for key in doomed:
            self.delete(kind, key)
            self.count(kind, "evicted")

    # ------------------------------------------------------------ plans

    def add_plan(
        self, checks_key: str, goal: str, value: Mapping[str, object], vector: bytes
    ) -> int:
        payload = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        now = self._clock()
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO plans (checks_key, goal, payload, digest, vector, size, created, "
                "used) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (checks_key, goal, payload, digest_of(payload), vector, len(payload), now, now),
            )
            row_id = int(cursor.lastrowid or 0)
        self._evict_plans()
        return row_id

    def plans(self) -> Iterator[PlanRow]:
        """Every plan whose payload is intact (a corrupted one is dropped on the way)."""
        rows = self._run("SELECT id, checks_key, goal, payload, digest, vector FROM plans")
        for row_id, checks_key, goal, payload, digest, vector in rows:
            value = _parse(str(payload), str(digest))
            if value is None or not isinstance(vector, bytes):
                self.drop_plan(int(str(row_id)))
                self.count("plan", "corrupt")
                continue
            yield PlanRow(int(str(row_id)), str(checks_key), str(goal), value, vector)

    def plan(self, row_id: int) -> PlanRow | None:
        rows = self._run(
            "SELECT id, checks_key, goal, payload, digest, vector FROM plans WHERE id = ?",
            (row_id,),
        )
        if not rows:
            return None
        _, checks_key, goal, payload, digest, vector = rows[0]
        value = _parse(str(payload), str(digest))
        if value is None or not isinstance(vector, bytes):
            self.drop_plan(row_id)
            self.count("plan", "corrupt")
            return None
        return PlanRow(row_id, str(checks_key), str(goal), value, vector)

    def touch_plan(self, row_id: int) -> None:
        self._run(
            "UPDATE plans SET used = ?, hits = hits + 1 WHERE id = ?", (self._clock(), row_id)
        )

    def drop_plan(self, row_id: int) -> None:
        self._run("DELETE FROM plans WHERE id = ?", (row_id,))

    def plan_ids(self) -> list[int]:
        return [int(str(r[0])) for r in self._run("SELECT id FROM plans ORDER BY id")]

    def _evict_plans(self) -> None:
        bound = self.bounds.get("plan", Bounds())
        count, size = self._run("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM plans")[0]
        count, size = int(str(count)), int(str(size))
        if count <= bound.max_entries and size <= bound.max_bytes:
            return
        for row_id, entry_size in self._run("SELECT id, size FROM plans ORDER BY used, id"):
            if count <= bound.max_entries and size <= bound.max_bytes:
                break
            self.drop_plan(int(str(row_id)))
            self.count("plan", "evicted")
            count -= 1
            size -= int(str(entry_size))

    # ------------------------------------------------------------ admin

    def stats(self) -> dict[str, dict[str, int]]:
        """Per kind: entries, bytes, hits served, and the lookup counters."""
        out: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
        for kind, n, size, hits in self._run(
            "SELECT kind, COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(hits), 0) "
            "FROM entries GROUP BY kind"
        ):
            out.setdefault(str(kind), {}).update(
                entries=int(str(n)), bytes=int(str(size)), served=int(str(hits))
            )
        n, size, hits = self._run(
            "SELECT COUNT(*), COALESCE(SUM(size), 0), COALESCE(SUM(hits), 0) FROM plans"
        )[0]
        out["plan"].update(entries=int(str(n)), bytes=int(str(size)), served=int(str(hits)))
        for kind, outcome, count in self._run("SELECT kind, outcome, count FROM stats"):
            out.setdefault(str(kind), {})[str(outcome)] = int(str(count))
        return out

    def clear(self, kind: str | None = None) -> int:
        """Remove every entry (of one kind); returns how many were removed."""
        kinds = KINDS if kind is None else (kind,)
        removed = 0
        for name in kinds:
            if name == "plan":
                removed += int(str(self._run("SELECT COUNT(*) FROM plans")[0][0]))
                self._run("DELETE FROM plans")
            else:
                removed += int(
                    str(self._run("SELECT COUNT(*) FROM entries WHERE kind = ?", (name,))[0][0])
                )
                self._run("DELETE FROM entries WHERE kind = ?", (name,))
            self._run("DELETE FROM stats WHERE kind = ?", (name,))
        return removed

    def export(self) -> Iterator[dict[str, object]]:
        """Every intact entry as plain data (plans without their vectors)."""
        rows = self._run(
            "SELECT kind, key, payload, digest, created, used, hits FROM entries ORDER BY kind"
        )
        for kind, key, payload, digest, created, used, hits in rows:
            value = _parse(str(payload), str(digest))
            if value is not None:
                yield {
                    "kind": kind,
                    "key": key,
                    "created": created,
                    "used": used,
                    "hits": hits,
                    "value": value,
                }
        for row in self.plans():
            yield {"kind": "plan", "key": str(row.id), "goal": row.goal, "value": row.payload}


def _parse(payload: str, digest: str) -> dict[str, object] | None:
    if digest_of(payload) != digest:
        return None
    try:
        value = json.loads(payload)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
