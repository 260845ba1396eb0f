"""The run store: every event of every run in one SQLite file (WAL).

Writes are short ``BEGIN IMMEDIATE`` transactions, so several processes can append to
the same store at once; a busy database is waited for (and retried) rather than reported.
The schema is versioned with ``PRAGMA user_version`` and migrated forward on open.

Durability: with ``synchronous="normal"`` (the default) a committed transaction is in the
operating system's hands when the commit returns, so it survives the death of the process
(kill -9, a crash, the OOM killer); it reaches the disk when the kernel writes it back or
SQLite checkpoints the log. ``synchronous="full"`` forces every commit to disk (fsync).
A run's events reach the store through :class:`GroupCommit`, which writes them in one
transaction per commit point instead of one per event (docs/journal.md).
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Callable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from zerog.errors import ZerogError
from zerog.event_catalog import IterationStarted, ModelCalled, Resumed, RunFinished, parse
from zerog.events import Event
from zerog.private import private_dir, private_file, tighten

SQLITE_MAGIC = b"SQLite format 3\x00"
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        status TEXT NOT NULL,
        goal TEXT NOT NULL,
        workspace TEXT NOT NULL,
        spec TEXT NOT NULL,
        iterations INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        duration REAL NOT NULL DEFAULT 0,
        reason TEXT NOT NULL DEFAULT ''
    );
    CREATE INDEX runs_by_created ON runs (created);
    CREATE TABLE events (
        run_id TEXT NOT NULL REFERENCES runs (id),
        seq INTEGER NOT NULL,
        ts REAL NOT NULL,
        kind TEXT NOT NULL,
        data TEXT NOT NULL,
        PRIMARY KEY (run_id, seq)
    ) WITHOUT ROWID;
    """,
    # Batches (zerog.batch): a batch, its goals and their outcome, the spend shared by its
    # goals, and the output tokens reserved by the model call each goal has in flight.
    """
    CREATE TABLE IF NOT EXISTS batches (
        id TEXT PRIMARY KEY,
        created REAL NOT NULL,
        spec TEXT NOT NULL,
        max_input_tokens INTEGER,
        max_output_tokens INTEGER,
        max_cost REAL,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cost REAL NOT NULL DEFAULT 0,
        calls INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE IF NOT EXISTS batch_goals (
        batch_id TEXT NOT NULL REFERENCES batches (id),
        idx INTEGER NOT NULL,
        run_id TEXT NOT NULL,
        state TEXT NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        result TEXT,
        updated REAL NOT NULL,
        PRIMARY KEY (batch_id, idx)
    ) WITHOUT ROWID;
    CREATE TABLE IF NOT EXISTS batch_reservations (
        batch_id TEXT NOT NULL REFERENCES batches (id),
        run_id TEXT NOT NULL,
        output_tokens INTEGER NOT NULL,
        PRIMARY KEY (batch_id, run_id)
    ) WITHOUT ROWID;
    """,
)
RUNNING = "running"
Synchronous = Literal["normal", "full"]


class StoreError(ZerogError):
    """The store cannot be used: corrupted, from a newer zerog, or not writable."""


@dataclass(frozen=True, slots=True)
class RunRow:
    id: str
    created: float
    updated: float
    status: str
    goal: str
    workspace: str
    spec: dict[str, object]
    iterations: int
    input_tokens: int
    output_tokens: int
    cost: float
    duration: float
    reason: str


def default_store_path(environ: Mapping[str, str]) -> Path:
    """``$ZEROG_STORE``, else ``$XDG_DATA_HOME/zerog/runs.db``, else ``~/.local/share``."""
    if environ.get("ZEROG_STORE"):
        return Path(environ["ZEROG_STORE"]).expanduser()
    base = environ.get("XDG_DATA_HOME") or str(Path(environ.get("HOME", "~")) / ".local/share")
    return Path(base).expanduser() / "zerog" / "runs.db"


def _check_header(path: Path) -> None:
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StoreError(f"cannot read the store {path}: {exc.strerror}") from None
    if header and header != SQLITE_MAGIC:
        raise StoreError(
            f"{path} is not a zerog store (not an SQLite database); it was left untouched. "
            "Move it aside or choose another file with --store."
        )
    if len(header) < len(SQLITE_MAGIC) and path.stat().st_size:
        raise StoreError(f"{path} is truncated; it was left untouched. Move it aside.")


class Store:
    """An append-only event log of runs. Use as a context manager or call :meth:`close`."""

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float = 30.0,
        sleep: Callable[[float], None] = time.sleep,
        synchronous: Synchronous = "normal",
    ) -> None:
        if synchronous not in ("normal", "full"):
            raise ValueError(f"synchronous must be 'normal' or 'full', not {synchronous!r}")
        self.path = path
        self.synchronous: Synchronous = synchronous
        self._sleep = sleep
        self.commits = 0  # transactions that appended events
        self.syncs = 0  # of those, the ones forced to disk (fsync) as they committed
        private_dir(path.parent)
        _check_header(path)
        private_file(path)  # before SQLite creates it (and its -wal and -shm) as 0644
        try:
            self._db = sqlite3.connect(
                path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            self._db.execute("PRAGMA foreign_keys=ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"the store {path} is damaged or unreadable ({exc}); it was left untouched. "
                "Move it aside or choose another file with --store."
            ) from None
        tighten(path, Path(f"{path}-wal"), Path(f"{path}-shm"))  # those of an older zerog

    # ---------------------------------------------------------------- plumbing

    @contextmanager
    def _guard(self) -> Iterator[None]:
        """Turn a damaged database into a clear error instead of a traceback."""
        try:
            yield
        except sqlite3.IntegrityError as exc:
            raise StoreError(f"conflicting write to the store {self.path}: {exc}") from None
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
                raise
            raise StoreError(
                f"the store {self.path} is damaged ({exc}); stopped before changing it "
                "further. Move it aside or choose another file with --store."
            ) from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, retried while another process holds the lock."""
        with self._guard():
            yield from self._transaction()

    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The body of :meth:`_write` (a generator it delegates to)."""
        for attempt in range(50):
            try:
                self._db.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                self._sleep(min(0.01 * 2**attempt, 0.5) * (0.5 + random.random()))  # noqa: S311
        else:
            raise StoreError(f"the store {self.path} stayed locked; is a process hung?")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A short ``BEGIN IMMEDIATE`` transaction for the modules that keep their own
        tables here (batches): atomic across every process using this store."""
        with self._write() as db:
            yield db

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        """Rows of one read-only statement on those tables (takes no write lock)."""
        with self._guard():
            return list(self._db.execute(sql, params).fetchall())

    def _migrate(self) -> None:
        with self._write() as db:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > len(MIGRATIONS):
                raise StoreError(
                    f"the store {self.path} was written by a newer zerog (schema {version})"
                )
            for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {number:d}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- writing

    def create_run(
        self, run_id: str, goal: str, workspace: str, spec: Mapping[str, object], created: float
    ) -> None:
        with self._write() as db:
            if db.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone():
                raise StoreError(f"a run with id {run_id} already exists in {self.path}")
            db.execute(
                "INSERT INTO runs (id, created, updated, status, goal, workspace, spec) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (run_id, created, created, RUNNING, goal, workspace, json.dumps(spec)),
            )

    def emit(self, event: Event) -> None:
        """Append one event in a transaction of its own (see :meth:`append`)."""
        self.append((event,))

    def append(self, events: Sequence[Event]) -> None:
        """Append events (and keep their runs' summary rows current) in one transaction:
        all of them or none."""
        if not events:
            return
        rows = [
            (
                e.run_id,
                e.seq,
                e.ts,
                e.kind,
                json.dumps(e.data, ensure_ascii=False, separators=(",", ":")),
            )
            for e in events
        ]
        with self._write() as db:
            db.executemany(
                "INSERT INTO events (run_id, seq, ts, kind, data) VALUES (?, ?, ?, ?, ?)", rows
            )
            for event in events:
                self._summarize(db, event)
        self.commits += 1
        self.syncs += 1 if self.synchronous == "full" else 0

    @staticmethod
    def _summarize(db: sqlite3.Connection, event: Event) -> None:
        match parse(event):
            case ModelCalled() as call:
                db.execute(
                    "UPDATE runs SET input_tokens = input_tokens + ?, "
                    "output_tokens = output_tokens + ?, cost = cost + ?, updated = ? WHERE id = ?",
                    (call.input_tokens, call.output_tokens, call.cost, event.ts, event.run_id),
                )
            case IterationStarted(iteration=iteration):
                db.execute(
                    "UPDATE runs SET iterations = ?, updated = ? WHERE id = ?",
                    (iteration, event.ts, event.run_id),
                )
            case Resumed():
                db.execute(
                    "UPDATE runs SET status = ?, updated = ? WHERE id = ?",
                    (RUNNING, event.ts, event.run_id),
                )
            case RunFinished() as finished:
                db.execute(
                    "UPDATE runs SET status = ?, reason = ?, duration = ?, iterations = ?, "
                    "updated = ? WHERE id = ?",
                    (
                        finished.status,
                        finished.reason,
                        finished.duration,
                        finished.iterations,
                        event.ts,
                        event.run_id,
                    ),
                )
            case _:
                pass  # other kinds leave the summary as it is; so does an unknown event

    # ---------------------------------------------------------------- reading

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        """The run's events in order; with ``after``, only those numbered above it."""
        with self._guard():
            rows = self._db.execute(
                "SELECT run_id, seq, ts, kind, data FROM events WHERE run_id = ? AND seq > ? "
                "ORDER BY seq",
                (run_id, after),
            ).fetchall()
        return [Event(r[0], int(r[1]), float(r[2]), str(r[3]), json.loads(r[4])) for r in rows]

    def runs(self, limit: int = 50) -> list[RunRow]:
        with self._guard():
            rows = self._db.execute(
                "SELECT * FROM runs ORDER BY created DESC LIMIT ?", (limit,)
            ).fetchall()
        return [self._row(r) for r in rows]

    def find(self, run_id: str) -> RunRow:
        """The run whose id is ``run_id`` or starts with it (a unique prefix)."""
        with self._guard():
            rows = self._find(run_id)
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return self._row(exact[0])
        if not rows:
            raise StoreError(f"no run '{run_id}' in {self.path}")
        if len(rows) > 1:
            raise StoreError(f"'{run_id}' matches several runs; give more of the id")
        return self._row(rows[0])

    def _find(self, run_id: str) -> list[tuple[object, ...]]:
        return self._db.execute(
            "SELECT * FROM runs WHERE id = ? OR id LIKE ? ESCAPE '\\' LIMIT 2",
            (run_id, run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"),
        ).fetchall()

    @staticmethod
    def _row(r: tuple[object, ...]) -> RunRow:
        spec = json.loads(str(r[6]))
        return RunRow(
            id=str(r[0]),
            created=float(str(r[1])),
            updated=float(str(r[2])),
            status=str(r[3]),
            goal=str(r[4]),
            workspace=str(r[5]),
            spec=spec if isinstance(spec, dict) else {},
            iterations=int(str(r[7])),
            input_tokens=int(str(r[8])),
            output_tokens=int(str(r[9])),
            cost=float(str(r[10])),
            duration=float(str(r[11])),
            reason=str(r[12]),
        )


class GroupCommit:
    """The event sink of one run on a store: holds its events and appends all it holds in
    one transaction when an event of a kind in ``commit_on`` arrives, at :meth:`commit`,
    or when ``limit`` events are waiting.

    What reaches the store is always a prefix of what was emitted, in order.
    """

    def __init__(
        self,
        store: Store,
        commit_on: Set[str],
        limit: int = 256,
    ) -> None:
        self.store = store
        self._commit_on = commit_on
        self._limit = limit
        self._pending: list[Event] = []

    @property
    def pending(self) -> int:
        """How many events are held, not yet in the store."""
        return len(self._pending)

    def emit(self, event: Event) -> None:
        self._pending.append(event)
        if event.kind in self._commit_on or len(self._pending) >= self._limit:
            self.commit()

    def commit(self) -> None:
        """Append what is held (kept, should the store refuse it)."""
        self.store.append(self._pending)
        self._pending.clear()
