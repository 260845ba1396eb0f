"""The replayer reads a real run back from its SQLite store: the recorded results come
back decoded while the run replays, and the first live operation unmutes the recorder."""

from __future__ import annotations

from pathlib import Path

from builders import plan, scripted, shell, step, write
from zerog import Budget, Engine, Goal, RunStatus
from zerog.budget import Meter
from zerog.engine.replayer import Replayer, had_preflight, recorded_calls
from zerog.events import Event, Recorder
from zerog.journal import read_journal
from zerog.store import Store
from zerog.types import Status
from zerog.validate.compile import compile_checks

FIX = write("app.py", "def answer():\n    return 42\n")
CHECK = "python3 -c 'import app; assert app.answer() == 42'"


class Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


def test_a_recorded_run_comes_back_decoded_then_goes_live(workspace: Path) -> None:
    goal = Goal(text="make answer() return 42", workspace=workspace, checks=[CHECK])
    model = scripted(plan(step("try", shell("echo tried; false"))), plan(step("fix", FIX)))
    with Store(workspace.parent / "runs.db") as store:
        result = Engine(
            model, environ={"PATH": "/usr/bin:/bin"}, sandbox_name="local", store=store
        ).run(goal)
        assert result.status is RunStatus.SUCCESS
        events = store.events(result.run_id)
    journal = read_journal(events)
    sink = Sink()
    recorder = Recorder(result.run_id, [sink], lambda: 0.0, start_seq=journal.last_seq)
    meter = Meter(Budget(), lambda: 0.0)
    replayer = Replayer(journal, recorder, meter)
    assert recorder.muted
    assert meter.replaying

    assert had_preflight(journal)
    calls = recorded_calls(journal)
    assert [c["purpose"] for c in calls] == ["plan", "plan"]
    response = replayer.response(1)
    assert response is not None
    assert response.text == calls[0]["text"]
    failed = replayer.observation((1, 0, 0))
    assert failed is not None
    assert failed.status is Status.ERROR
    assert "tried" in failed.stdout
    assert replayer.interrupted((1, 0, 0)) is not None  # its "action" event: a snapshot
    checks = compile_checks(goal.checks, where="goal")
    first, second = replayer.verdict(1, checks), replayer.verdict(2, checks)
    assert first is not None
    assert not first.passed
    assert second is not None
    assert second.passed
    assert [r.name for r in second.results] == [c.label for c in checks.checks]
    assert replayer.base_snapshot() == journal.base_snapshot
    assert replayer.rolled_back(1)
    assert sink.events == []  # nothing recorded while it replays

    assert replayer.response(99) is None  # not recorded: live from here
    assert not replayer.replaying
    assert not recorder.muted
    assert [e.kind for e in sink.events] == ["resumed"]
    assert sink.events[0].data["at"] == "model call 99"
    assert replayer.past is None
    assert replayer.verdict(1, checks) is None  # a live run does its own sweeps


def test_a_new_run_is_live_from_the_start() -> None:
    recorder = Recorder("r", [], lambda: 0.0)
    replayer = Replayer(None, recorder, Meter(Budget(), lambda: 0.0))
    assert not replayer.replaying
    assert not recorder.muted
    assert replayer.response(1) is None
    assert replayer.routes(1, 0) == []
    assert not replayer.git_prepared()
