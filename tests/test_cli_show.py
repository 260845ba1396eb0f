"""`zerog show` reads a run's end through the event catalog: a whole record is shown, a
damaged one is named as such and the rest of the story still printed."""

from __future__ import annotations

import time
from pathlib import Path

from builders import zerog_cli
from zerog.events import Event
from zerog.store import Store


def _run(tmp_path: Path, finished: dict[str, object] | None) -> str:
    with Store(tmp_path / "runs.db") as store:
        store.create_run("r1", "a goal", str(tmp_path), {}, time.time())
        events = [Event("r1", 1, time.time(), "iteration_started", {"iteration": 1})]
        if finished is not None:
            events.append(Event("r1", 2, time.time(), "run_finished", finished))
        store.append(events)
    shown = zerog_cli("show", "r1", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    return shown.stdout


def test_a_finished_run_shows_its_status_and_each_models_share(tmp_path: Path) -> None:
    share = {"calls": 2, "usage": {"input_tokens": 10, "output_tokens": 5}, "cost": 0.0}
    out = _run(
        tmp_path,
        {"status": "succeeded", "iterations": 1, "models": {"small": share, "big": share}},
    )
    assert "r1: succeeded" in out
    assert "by small: 2 calls" in out
    assert "by big: 2 calls" in out
    assert "did not finish" not in out


def test_a_damaged_end_record_is_named_not_guessed(tmp_path: Path) -> None:
    out = _run(tmp_path, {"status": ["not", "a", "status"], "models": "nonsense"})
    assert "r1: finished (its record is damaged)" in out
    assert "by " not in out
    assert "did not finish" not in out


def test_an_unfinished_run_says_how_to_go_on(tmp_path: Path) -> None:
    out = _run(tmp_path, None)
    assert "r1: unfinished" in out
    assert "zerog resume r1" in out
