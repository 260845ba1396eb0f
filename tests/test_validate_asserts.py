"""Test-script checks that explain a failing assert: run for real in the local and bwrap
sandboxes, through the engine with the code planner, and from `zerog run`."""

from __future__ import annotations

import functools
import json
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from builders import scripted, write_script, zerog_cli
from zerog import Budget, Engine, Goal, RunStatus
from zerog.codeplan import CodePlanner
from zerog.errors import ConfigError
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.bwrap import BwrapSandbox
from zerog.sandbox.local import LocalSandbox
from zerog.types import ShellAction
from zerog.validate.asserts import assert_command, assert_script_check

ENV = {"PATH": "/usr/bin:/bin"}
WRONG = "def dedupe(xs):\n    return sorted(set(xs))\n"
RIGHT = "def dedupe(xs):\n    return [x for x in xs if xs.count(x) == 1]\n"
TESTS = """\
from solution import *


def check(candidate):
    assert candidate([]) == []
    assert len(candidate([1, 2, 3, 2, 4])) == 3, "three numbers occur once"
    assert candidate([1, 2, 3, 2, 4]) == [1, 3, 4]


check(dedupe)
"""


def run(sandbox: Sandbox, workspace: Path, code: str, tests: str = TESTS) -> tuple[bool, str]:
    (workspace / "solution.py").write_text(code, encoding="utf-8")
    (workspace / "tests.py").write_text(tests, encoding="utf-8")
    command = assert_command("tests.py", explain_seconds=1)
    seen = sandbox.run(ShellAction(command=command), workspace, Limits(timeout=30))
    return seen.ok, seen.stdout + seen.stderr


@pytest.mark.parametrize("backend", ["local", "bwrap"])
def test_a_failing_assert_is_explained_with_the_values_of_its_parts(
    tmp_path: Path, backend: str
) -> None:
    env = {**ENV, "HOME": str(tmp_path)}
    sandbox: Sandbox = LocalSandbox(env) if backend == "local" else BwrapSandbox(env)
    ok, out = run(sandbox, tmp_path, WRONG)
    assert not ok
    assert 'File "tests.py", line 6, in check' in out
    assert "AssertionError: three numbers occur once" in out
    header = "The failing assert (line 6), its parts evaluated again: "
    assert header + "len(candidate([1, 2, 3, 2, 4])) == 3" in out
    assert "left side: 4" in out
    assert "right side: 3" in out
    assert "candidate([1, 2, 3, 2, 4]): [1, 2, 3, 4]" in out  # the call inside len()
    assert "<frozen runpy>" not in out
    assert '"<string>"' not in out
    ok, out = run(sandbox, tmp_path, RIGHT)
    assert ok, out


def test_other_errors_keep_their_traceback_and_a_slow_side_is_cut_short(tmp_path: Path) -> None:
    sandbox = LocalSandbox({**ENV, "HOME": str(tmp_path)})
    ok, out = run(sandbox, tmp_path, "def dedupe(xs):\n    return xs[10]\n")
    assert not ok
    assert "IndexError: list index out of range" in out
    assert "The failing assert" not in out
    slow = "def dedupe(xs, seen=[]):\n    seen.append(1)\n    while len(seen) > 1:\n        pass\n"
    started = time.monotonic()
    ok, out = run(sandbox, tmp_path, slow + "    return [0]\n")
    assert not ok
    assert "left side: raised TimeoutError" in out  # re-evaluating it hangs: cut at 1 s
    assert time.monotonic() - started < 20
    ok, out = run(sandbox, tmp_path, RIGHT, tests="import sys\nsys.exit(3)\n")
    assert not ok  # the script's own exit status is the verdict
    ok, out = run(sandbox, tmp_path, RIGHT, tests="def broken(:\n")
    assert not ok
    assert "SyntaxError" in out


@pytest.mark.parametrize("bad", ["tests.txt", "/abs/tests.py", "../tests.py", ".py"])
def test_a_test_script_must_be_a_python_file_inside_the_workspace(bad: str) -> None:
    with pytest.raises(ConfigError, match="inside the workspace"):
        assert_script_check(bad)


def test_the_values_reach_the_next_attempt_of_the_code_planner(tmp_path: Path) -> None:
    (tmp_path / "solution.py").write_text("def dedupe(xs):\n    pass\n", encoding="utf-8")
    (tmp_path / "tests.py").write_text(TESTS, encoding="utf-8")
    model = scripted(
        {"text": f"```python\n{WRONG}```"},
        {"text": f"```python\n{RIGHT}```"},
    )
    engine = Engine(
        model,
        LocalSandbox({**ENV, "HOME": str(tmp_path)}),
        environ=ENV,
        write_trace=False,
        plan_with=CodePlanner("solution.py"),
    )
    goal = Goal(
        text="Implement dedupe()",
        workspace=tmp_path,
        checks=(assert_script_check("tests.py"),),
        budget=Budget(max_iterations=2),
    )
    result = engine.run(goal)
    assert result.status is RunStatus.SUCCESS, result.reason
    retry = model.requests[1].messages[-1].content
    assert "left side: 4" in retry
    assert "candidate([1, 2, 3, 2, 4]): [1, 2, 3, 4]" in retry


def test_cli_run_takes_assert_scripts(tmp_path: Path) -> None:
    zerog = functools.partial(zerog_cli, columns=200)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "solution.py").write_text("def dedupe(xs):\n    pass\n", encoding="utf-8")
    (ws / "tests.py").write_text(TESTS, encoding="utf-8")
    script = write_script(
        tmp_path / "m.jsonl",
        {"text": f"```python\n{WRONG}```"},
        {"text": f"```python\n{RIGHT}```"},
    )
    args = ["run", "Implement dedupe()", "-w", str(ws), "--answer-file", "solution.py"]
    done = zerog(
        *args,
        "--assert-script",
        "tests.py",
        "-m",
        f"scripted:{script}",
        "--sandbox",
        "local",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (json.loads(done.stdout)["status"], json.loads(done.stdout)["iterations"]) == (
        "success",
        2,
    )
    bad = zerog(*args, "--assert-script", "tests.txt", cwd=tmp_path)
    assert bad.returncode == 2
    assert "a test script must be a .py file" in bad.stderr
    assert "Traceback" not in bad.stderr
    missing = zerog(*args, "--assert-script", "test.py", cwd=tmp_path)  # a typo
    assert missing.returncode == 2
    assert "there is no test.py in" in missing.stderr


def test_asserts_is_a_check_kind_of_goal_files(tmp_path: Path) -> None:
    goal = Goal.model_validate(
        {"text": "t", "workspace": tmp_path, "checks": [{"kind": "asserts", "path": "t.py"}]}
    )
    (check,) = goal.checks
    assert check.label == "python3 t.py"
    for bad in ("../t.py", "t.txt"):
        with pytest.raises(ValidationError):
            Goal.model_validate(
                {"text": "t", "workspace": tmp_path, "checks": [{"kind": "asserts", "path": bad}]}
            )
