"""The live progress sink: what a terminal user sees for each kind of event."""

from __future__ import annotations

import io

from rich.console import Console

from zerog.events import Event
from zerog.progress import ConsoleProgress


def shown(*events: tuple[str, dict[str, object]]) -> str:
    out = io.StringIO()
    progress = ConsoleProgress(Console(file=out, width=160, color_system=None), live=False)
    for seq, (kind, data) in enumerate(events, start=1):
        progress.emit(Event("r1", seq, 0.0, kind, data))
    progress.close()
    return out.getvalue()


def test_a_flaky_check_is_marked_as_such() -> None:
    text = shown(
        ("check", {"name": "pytest -q", "passed": True, "flaky": True, "observation": {}}),
        ("check", {"name": "ruff check", "passed": True, "flaky": False, "observation": {}}),
    )
    lines = text.splitlines()
    assert "✓ check pytest -q  (flaky: passed on its re-run)" in lines[0]
    assert "flaky" not in lines[1]


def test_a_failed_check_shows_its_last_output_lines_as_plain_text() -> None:
    observation = {"stderr": "line one\n[bold]AssertionError[/bold]: 1 != 2\n", "stdout": ""}
    text = shown(("check", {"name": "pytest -q", "passed": False, "observation": observation}))
    assert "✗ check pytest -q" in text
    assert "[bold]AssertionError[/bold]: 1 != 2" in text  # markup in output is not interpreted


def test_a_step_check_shows_its_command_and_flakiness() -> None:
    text = shown(("step_check", {"command": "test -f x", "passed": True, "flaky": True}))
    assert "✓ step check test -f x  (flaky: passed on its re-run)" in text


def test_a_cascade_moving_up_and_a_doubt_are_shown() -> None:
    call = {"purpose": "plan", "input_tokens": 10, "output_tokens": 5, "duration": 0.5}
    text = shown(
        ("model_call", {**call, "model": "local"}),
        ("feedback", {"iteration": 1, "text": "unsure", "no_progress": 0, "doubt": True}),
        ("model_call", {**call, "model": "local:1.5b"}),
        ("model_call", {**call, "model": "local:1.5b"}),
    )
    assert "? the checks passed, but the model was unsure: a second opinion" in text
    assert text.count("↑ local:1.5b answers from now on") == 1
