"""The exact model-call cache, its file (digests, LRU) and its marks in the run's events."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from builders import plan, scripted, step, write
from zerog.cache.db import Bounds, CacheDB
from zerog.cache.exact import CachedModel, request_key
from zerog.engine.loop import Engine
from zerog.models.base import Message, Request
from zerog.types import Goal

from .conftest import small_db


def _request(text: str = "hello", **fields: object) -> Request:
    return Request(messages=(Message(role="user", content=text),), **fields)


def test_deterministic_request_is_served_from_cache_with_no_tokens(db: CacheDB) -> None:
    inner = scripted({"text": "first"}, {"text": "second"})
    model = CachedModel(inner, db)
    first = model.complete(_request())
    again = model.complete(_request())
    assert (first.text, first.cache_hit) == ("first", False)
    assert (again.text, again.cache_hit) == ("first", True)
    assert again.usage.input_tokens == again.usage.output_tokens == 0
    assert again.cost == 0.0
    assert len(inner.requests) == 1
    assert model.complete(_request("other")).text == "second"  # another request: a miss


def test_a_hit_says_what_the_original_call_spent_and_keeps_its_confidence(db: CacheDB) -> None:
    confidence = {"tokens": 12, "mean_logprob": -0.2, "min_prob": 0.3, "low_tokens": 2}
    usage = {"input_tokens": 120, "output_tokens": 40}
    inner = scripted({"text": "x", "usage": usage, "confidence": confidence})
    ticks = iter([10.0, 12.5])
    model = CachedModel(inner, db, clock=lambda: next(ticks))
    first = model.complete(_request())
    again = model.complete(_request())
    assert first.saved is None
    assert again.saved is not None
    assert (again.saved.input_tokens, again.saved.output_tokens) == (120, 40)
    assert again.saved_seconds == 2.5
    assert again.confidence == first.confidence
    assert again.confidence is not None
    assert again.confidence.low_tokens == 2


def test_an_answer_cached_without_its_confidence_is_asked_again_when_it_is_wanted(
    db: CacheDB,
) -> None:
    confidence = {"tokens": 12, "mean_logprob": -0.2, "min_prob": 0.3, "low_tokens": 2}
    inner = scripted({"text": "plain"}, {"text": "measured", "confidence": confidence})
    model = CachedModel(inner, db)
    assert model.complete(_request()).confidence is None
    wanted = model.complete(_request(confidence=True))  # the same question, same key
    assert (wanted.text, wanted.cache_hit) == ("measured", False)
    assert wanted.confidence is not None
    again = model.complete(_request(confidence=True))
    assert (again.cache_hit, again.confidence) == (True, wanted.confidence)
    assert model.complete(_request()).cache_hit  # an answer with its confidence serves both
    assert len(inner.requests) == 2


def test_sampled_requests_are_never_cached(db: CacheDB) -> None:
    inner = scripted({"text": "a"}, {"text": "b"}, {"text": "c"}, {"text": "d"})
    model = CachedModel(inner, db)
    hot = _request(temperature=0.7)
    assert [model.complete(hot).text for _ in range(2)] == ["a", "b"]
    seeded = _request(temperature=0.7, seed=1)
    assert [model.complete(seeded).text for _ in range(2)] == ["c", "c"]
    assert db.stats()["model"]["uncacheable"] == 2


def test_a_degenerate_answer_is_not_cached(db: CacheDB) -> None:
    inner = scripted({"text": "x\nx\nx\n", "finish": "degenerate"}, {"text": "fine"})
    model = CachedModel(inner, db)
    assert model.complete(_request()).finish == "degenerate"
    again = model.complete(_request())
    assert (again.text, again.cache_hit) == ("fine", False)
    assert model.complete(_request()).cache_hit  # the good answer is


def test_key_covers_every_field_that_changes_the_answer() -> None:
    base = request_key("m", _request())
    assert request_key("other-model", _request()) != base
    assert request_key("m", _request(max_tokens=10)) != base
    assert request_key("m", _request(seed=3)) != base
    assert request_key("m", _request(json_schema={"type": "object"})) != base
    assert request_key("m", _request(purpose="plan")) == base  # a label, not the question


def test_corrupted_entry_is_dropped_not_trusted(tmp_path: Path) -> None:
    path = tmp_path / "cache.db"
    with CacheDB(path) as db:
        CachedModel(scripted({"text": "good"}), db).complete(_request())
    raw = sqlite3.connect(path)
    raw.execute("UPDATE entries SET payload = replace(payload, 'good', 'evil')")
    raw.commit()
    raw.close()
    with CacheDB(path) as db:
        inner = scripted({"text": "fresh"})
        answer = CachedModel(inner, db).complete(_request())
        assert (answer.text, answer.cache_hit) == ("fresh", False)
        assert db.stats()["model"]["corrupt"] == 1
    # valid digest over something that is not a JSON object: also ignored
    raw = sqlite3.connect(path)
    from zerog.cache.db import digest_of

    raw.execute("UPDATE entries SET payload = ?, digest = ?", ("[1, 2", digest_of("[1, 2")))
    raw.commit()
    raw.close()
    with CacheDB(path) as db:
        answer = CachedModel(scripted({"text": "again"}), db).complete(_request())
        assert answer.text == "again"


def test_lru_bound_keeps_the_recently_used(tmp_path: Path) -> None:
    clock = iter(range(100))
    db = CacheDB(
        tmp_path / "c.db",
        bounds={"model": Bounds(max_entries=3)},
        clock=lambda: float(next(clock)),
    )
    for key in "abc":
        db.put("model", key, {"v": key})
    assert db.get("model", "a") == {"v": "a"}  # a is now the most recently used
    db.put("model", "d", {"v": "d"})
    db.put("model", "e", {"v": "e"})
    kept = {k for k in "abcde" if db.get("model", k) is not None}
    assert kept == {"a", "d", "e"}
    assert db.stats()["model"]["evicted"] == 2
    byte_bound = CacheDB(tmp_path / "b.db", bounds={"model": Bounds(max_bytes=100)})
    for key in "abcdef":
        byte_bound.put("model", key, {"v": key * 30})
    assert byte_bound.stats()["model"]["bytes"] <= 100


@pytest.mark.slow
def test_hits_show_in_events_and_the_result(workspace: Path, tmp_path: Path) -> None:
    events: list[tuple[str, dict[str, object]]] = []

    class Sink:
        def emit(self, event: object) -> None:
            events.append((event.kind, dict(event.data)))  # type: ignore[attr-defined]

    db = small_db(tmp_path / "c.db", 50)
    script = plan(step("fix", write("app.py", "def answer():\n    return 42\n")))
    goal = Goal(
        text="make answer return 42",
        workspace=workspace,
        checks=["python3 -c 'import app; assert app.answer() == 42'"],
    )
    original = (workspace / "app.py").read_text()
    first = Engine(CachedModel(scripted(script), db), sandbox_name="local", write_trace=False).run(
        goal
    )
    (workspace / "app.py").write_text(original)
    second = Engine(
        CachedModel(scripted(), db), sandbox_name="local", sinks=[Sink()], write_trace=False
    ).run(goal)
    assert first.ok
    assert second.ok
    assert first.cache_hits == {}
    assert second.cache_hits == {"model": 1}
    assert second.usage.input_tokens == 0 < first.usage.input_tokens
    calls = [data for kind, data in events if kind == "model_call"]
    assert [c["cache_hit"] for c in calls] == [True]
    finished = next(data for kind, data in events if kind == "run_finished")
    assert finished["cache_hits"] == {"model": 1}
