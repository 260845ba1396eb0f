"""The SQLite run store: schema, durability settings, damage handling, concurrency."""

from __future__ import annotations

import multiprocessing
import sqlite3
from pathlib import Path

import pytest

from zerog.events import Event
from zerog.store import MIGRATIONS, GroupCommit, Store, StoreError, default_store_path


def _event(run_id: str, seq: int, kind: str = "note", **data: object) -> Event:
    return Event(run_id, seq, 1000.0 + seq, kind, data)


def test_store_is_wal_normal_sync_and_migrated(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        assert store.query("PRAGMA synchronous") == [(1,)]  # NORMAL
        store.create_run("r1", "goal", "/ws", {"model": "scripted:x"}, 1.0)
        store.emit(_event("r1", 1, "model_call", input_tokens=10, output_tokens=2, cost=0.5))
        store.emit(_event("r1", 2, "iteration_started", iteration=1))
        store.emit(
            _event(
                "r1", 3, "run_finished", status="success", reason="ok", duration=2.5, iterations=1
            )
        )
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
    raw.close()
    assert path.stat().st_mode & 0o777 == 0o600
    with Store(path) as store:  # reopening migrates nothing and keeps everything
        row = store.find("r")
        assert (row.status, row.input_tokens, row.output_tokens, row.cost) == (
            "success",
            10,
            2,
            0.5,
        )
        assert [e.kind for e in store.events("r1")] == [
            "model_call",
            "iteration_started",
            "run_finished",
        ]
        assert store.events("r1")[0].data["input_tokens"] == 10


def _durable(path: Path) -> list[int]:
    """The event numbers another connection to the store file sees."""
    raw = sqlite3.connect(path)
    try:
        return [int(r[0]) for r in raw.execute("SELECT seq FROM events ORDER BY seq")]
    finally:
        raw.close()


def test_append_is_one_transaction_and_full_fsyncs_each(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.create_run("r1", "g", "/ws", {}, 1.0)
        store.append([_event("r1", 1), _event("r1", 2), _event("r1", 3)])
        assert (store.commits, store.syncs) == (1, 0)
        with pytest.raises(StoreError, match="conflicting write"):
            store.append([_event("r1", 4), _event("r1", 2)])  # all or nothing
        assert _durable(path) == [1, 2, 3]
        store.append([])
        assert store.commits == 1
    with Store(path, synchronous="full") as store:
        assert store.query("PRAGMA synchronous") == [(2,)]
        store.emit(_event("r1", 4))
        assert (store.commits, store.syncs) == (1, 1)
    with pytest.raises(ValueError, match="synchronous"):
        Store(path, synchronous="off")  # type: ignore[arg-type]


def test_group_commit_holds_events_until_a_commit_kind(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.create_run("r1", "g", "/ws", {}, 1.0)
        group = GroupCommit(store, {"action", "run_finished"}, limit=4)
        group.emit(_event("r1", 1, "step_started"))
        group.emit(_event("r1", 2, "note"))
        assert (_durable(path), group.pending) == ([], 2)
        group.emit(_event("r1", 3, "action"))  # committed with everything before it
        assert (_durable(path), group.pending, store.commits) == ([1, 2, 3], 0, 1)
        for seq in range(4, 8):  # the limit: four waiting events are written
            group.emit(_event("r1", seq, "note"))
        assert (_durable(path), store.commits) == ([1, 2, 3, 4, 5, 6, 7], 2)
        group.emit(_event("r1", 8, "note"))
        group.emit(_event("r1", 9, "run_finished", status="success"))
        assert (_durable(path), store.commits, store.syncs) == (list(range(1, 10)), 3, 0)
        assert store.find("r1").status == "success"  # the summary row follows
        group.emit(_event("r1", 9, "note"))  # a conflicting event: the commit fails ...
        with pytest.raises(StoreError, match="conflicting write"):
            group.commit()
        assert group.pending == 1  # ... and the event is still held, not dropped


def test_duplicate_run_and_event_are_refused(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        store.create_run("r1", "g", "/ws", {}, 1.0)
        with pytest.raises(StoreError, match="already exists"):
            store.create_run("r1", "g", "/ws", {}, 1.0)
        store.emit(_event("r1", 1))
        with pytest.raises(StoreError, match="conflicting write"):
            store.emit(_event("r1", 1))
        assert len(store.events("r1")) == 1


def test_find_by_prefix_and_ambiguity(tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        store.create_run("abc123", "g", "/ws", {}, 1.0)
        store.create_run("abd456", "g", "/ws", {}, 2.0)
        assert store.find("abc").id == "abc123"
        with pytest.raises(StoreError, match="several runs"):
            store.find("ab")
        with pytest.raises(StoreError, match="no run"):
            store.find("zzz")
        with pytest.raises(StoreError, match="no run"):
            store.find("a%")  # LIKE wildcards are taken literally
        assert [r.id for r in store.runs()] == ["abd456", "abc123"]


def test_a_file_that_is_not_a_store_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    path.write_bytes(b"this is my thesis, not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StoreError, match="not a zerog store"):
        Store(path)
    assert path.read_bytes() == before


def test_a_truncated_store_gives_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with Store(path) as store:
        store.create_run("r1", "g", "/ws", {}, 1.0)
        for seq in range(1, 400):
            store.emit(_event("r1", seq, text="x" * 200))
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"damaged|truncated"):
        _read_then_write(path)
    assert path.read_bytes() == before


def _read_then_write(path: Path) -> None:
    with Store(path) as store:
        store.events("r1")
        store.emit(_event("r1", 999))


def test_a_store_from_a_newer_zerog_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    raw.commit()
    raw.close()
    with pytest.raises(StoreError, match="newer zerog"):
        Store(path)


def test_default_location_follows_the_environment(tmp_path: Path) -> None:
    assert default_store_path({"ZEROG_STORE": "/x/y.db"}) == Path("/x/y.db")
    assert default_store_path({"XDG_DATA_HOME": "/data"}) == Path("/data/zerog/runs.db")
    assert default_store_path({"HOME": "/home/u"}) == Path("/home/u/.local/share/zerog/runs.db")


def _writer(path: str, run_id: str, count: int) -> None:
    with Store(Path(path)) as store:
        store.create_run(run_id, "g", "/ws", {}, 1.0)
        for seq in range(1, count + 1):
            store.emit(_event(run_id, seq, "model_call", input_tokens=1))


@pytest.mark.slow
def test_several_processes_write_one_store(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    Store(path).close()
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_writer, args=(str(path), f"run{n}", 150)) for n in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0, 0, 0, 0]
    with Store(path) as store:
        for n in range(4):
            assert [e.seq for e in store.events(f"run{n}")] == list(range(1, 151))
            assert store.find(f"run{n}").input_tokens == 150
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    raw.close()
