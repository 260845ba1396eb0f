"""The focused context in real runs (scripted model, real sandbox, real pytest), and
`zerog bench context`'s measure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builders import plan, scripted, step, write
from zerog import Budget, Engine, Goal, RunStatus
from zerog.bench.context import VARIANTS, measure
from zerog.bench.context_repos import RepoTask, deep_traceback
from zerog.focus import ContextBudget
from zerog.types import CommandCheck

pytestmark = pytest.mark.slow  # runs the context benchmark


def small_task() -> RepoTask:
    """The deep traceback task, small: its unit tests run in a blink; notes at the top
    take the index's whole budget (16 KB, shallow files first)."""
    note = "Prose about the project.\n" * 160  # 4,000 bytes
    files = {
        **{f"NOTES_{n}.md": note for n in range(4)},
        "app/__init__.py": "",
        "app/clock.py": "".join(
            f"def tick_{n}(now: int) -> int:\n    return now + {n}\n\n" for n in range(200)
        ),
        "app/util/__init__.py": "",
        "app/util/durations.py": deep_traceback().files["app/util/durations.py"],
        "app/schedule.py": deep_traceback().files["app/schedule.py"],
        "tests/__init__.py": "",
        "tests/test_schedule.py": (
            "import unittest\n\nfrom app.schedule import next_run\n\n\n"
            "class NextRun(unittest.TestCase):\n"
            "    def test_minutes(self):\n"
            "        self.assertEqual(next_run(100, '5m'), 400)\n"
        ),
    }
    return RepoTask(
        name="small",
        goal="The test suite fails. Make it pass without changing the tests.",
        check="python3 -m unittest -q",
        bug_path="app/util/durations.py",
        bug_line="return int(number) * UNITS[unit.upper()]",
        files=files,
    )


FIXED = '''"""Durations written as text: "90s", "5m", "2h"."""

UNITS = {"s": 1, "m": 60, "h": 3600}


def parse_duration(text: str) -> int:
    """The number of seconds ``text`` stands for."""
    number, unit = text[:-1], text[-1]
    return int(number) * UNITS[unit.lower()]
'''


def _run(workspace: Path, budget: ContextBudget | None) -> tuple[RunStatus, str]:
    task = small_task()
    task.write(workspace)
    model = scripted(plan(step("fix the unit", write("app/util/durations.py", FIXED))))
    engine = Engine(model, environ=dict(os.environ), sandbox_name="local", context_budget=budget)
    goal = Goal(
        text=task.goal,
        workspace=workspace,
        checks=(CommandCheck(command=task.check),),
        budget=Budget(max_iterations=1),
    )
    result = engine.run(goal)
    return result.status, model.requests[0].messages[-1].content


def test_a_run_plans_with_the_file_its_failing_checks_name(tmp_path: Path) -> None:
    status, prompt = _run(tmp_path / "focused", None)
    assert status is RunStatus.SUCCESS
    assert "## File app/util/durations.py (named in the failing checks)" in prompt
    assert "UNITS[unit.upper()]" in prompt.split("# How the checks fail now")[0]
    off = ContextBudget(goal=0, failing=0, imports=0, symbols=0)
    status, prompt = _run(tmp_path / "before", off)
    assert status is RunStatus.SUCCESS  # the scripted fix does not need to see it
    assert "## File app/util/durations.py" not in prompt


def test_bench_context_reports_each_part() -> None:
    report = measure(sandbox="local", rounds=1, environ=os.environ, repos=[small_task()])
    rows = {row.variant: row for row in report.rows}
    assert list(rows) == [name for name, _ in VARIANTS]
    assert not rows["before"].bug_in_prompt
    assert not rows["+goal"].bug_in_prompt  # the goal names no file
    assert rows["+failing"].bug_in_prompt
    assert rows["+failing"].parts["failing"] > 0
    assert rows["before"].parts["failing"] == 0
    assert rows["+imports"].parts["symbols"] == 0
    assert rows["+map"].parts["symbols"] > 0  # app/clock.py, too large for the index
    assert rows["+failing"].tokens == -(-rows["+failing"].prompt_chars // 4)
    assert report.solves == []
    assert report.as_dict()["rows"]
    assert len(report.tables()) == 1
