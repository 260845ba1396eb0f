"""The preflight's judgement of which failing checks cannot run at all: shells' messages,
Python's import errors (from real pytest and unittest runs), the wasm shell's refusals,
and the cases it must leave to the loop."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from zerog.types import (
    AssertsCheck,
    Check,
    CheckResult,
    CommandCheck,
    FileCheck,
    Observation,
    Status,
    TestsCheck,
)
from zerog.validate.preflight import cannot_run, describe, workspace_modules

WS = "/work/repo"


def failed(check: Check, *, stdout: str = "", stderr: str = "", exit_code: int = 1) -> CheckResult:
    return CheckResult(
        name=check.label,
        passed=False,
        observation=Observation(
            status=Status.ERROR, exit_code=exit_code, stdout=stdout, stderr=stderr
        ),
    )


def judge(
    check: Check,
    result: CheckResult,
    *,
    goal: str = "make the tests pass",
    paths: tuple[str, ...] = ("app.py", "tests", "tests/test_app.py"),
    sandbox: str = "bwrap",
) -> list[tuple[str, str, str]]:
    found = cannot_run(
        [check],
        [result],
        goal_text=goal,
        workspace_paths=paths,
        workspace=WS,
        sandbox=sandbox,
    )
    return [(r.check, r.cause, r.fix) for r in found]


# ---------------------------------------------------------------- commands


@pytest.mark.parametrize(
    "line",
    [
        "sh: 1: rg: not found",
        "/bin/sh: 1: rg: not found",
        "bash: rg: command not found",
        "bash: line 1: rg: command not found",
        "/usr/bin/env: 'rg': No such file or directory",
        "/usr/bin/env: ‘rg’: No such file or directory",
    ],
)
def test_a_command_the_shell_cannot_find_cannot_run(line: str) -> None:
    check = CommandCheck(command="rg -q TODO src")
    [(name, cause, fix)] = judge(check, failed(check, stderr=line + "\n", exit_code=127))
    assert name == "rg -q TODO src"
    assert cause == line
    assert "rg is not visible inside the bwrap sandbox" in fix
    assert "--sandbox local" in fix
    assert "--no-preflight" in fix


def test_a_command_outside_the_workspace_that_is_not_executable_cannot_run() -> None:
    check = CommandCheck(command="/opt/tools/lint")
    line = "sh: 1: /opt/tools/lint: Permission denied"
    [(_, cause, _)] = judge(check, failed(check, stderr=line, exit_code=126))
    assert cause == line


@pytest.mark.parametrize(
    ("line", "code"),
    [
        ("sh: 1: ./run.sh: not found", 127),
        ("bash: ./run.sh: No such file or directory", 127),
        ("sh: 1: ./run.sh: Permission denied", 126),
        (f"sh: 1: {WS}/bin/run: not found", 127),
    ],
)
def test_a_missing_or_unexecutable_script_of_the_workspace_is_left_to_the_loop(
    line: str, code: int
) -> None:
    """The goal may be to write the script, or to make it executable."""
    check = CommandCheck(command="./run.sh")
    assert judge(check, failed(check, stderr=line, exit_code=code)) == []


def test_a_command_the_goal_names_is_left_to_the_loop() -> None:
    check = CommandCheck(command="greet world")
    result = failed(check, stderr="sh: 1: greet: not found", exit_code=127)
    assert judge(check, result, goal="Install a `greet` command") == []
    assert judge(check, result) != []


def test_not_found_without_exit_127_is_output_of_the_code_under_test() -> None:
    """A test suite can print a shell's message (a test that runs a command) and fail."""
    check = CommandCheck(command="python3 -m unittest -q")
    result = failed(check, stderr="/bin/sh: 1: mytool: not found\nFAILED (failures=1)")
    assert judge(check, result) == []


def test_exit_127_without_a_shell_message_is_left_to_the_loop() -> None:
    check = CommandCheck(command="./check")
    assert judge(check, failed(check, stderr="bad input", exit_code=127)) == []


def test_the_local_backend_points_at_the_path_zerog_runs_with() -> None:
    check = CommandCheck(command="rg x")
    result = failed(check, stderr="sh: 1: rg: not found", exit_code=127)
    [(_, _, fix)] = judge(check, result, sandbox="local")
    assert "PATH" in fix
    assert "--no-preflight" in fix


def test_the_wasm_shell_has_few_commands() -> None:
    check = CommandCheck(command="make test")
    line = "make: command not found (the wasm sandbox runs python and a few shell builtins)"
    result = failed(check, stderr=line, exit_code=125)  # WASI statuses stop at 125
    [(_, cause, fix)] = judge(check, result, goal="fix the build", sandbox="wasm")
    assert cause == line
    assert "--sandbox bwrap" in fix
    # A goal that names the command as a word is given the benefit of the doubt.
    assert judge(check, result, goal="make the tests pass", sandbox="wasm") == []


def test_a_wasm_shell_refusal_cannot_run() -> None:
    check = CommandCheck(command="python3 -m unittest 2>&1 | tail -1")
    line = "wasm shell: '|' is not supported (no pipes or background jobs)"
    result = failed(check, stderr=line, exit_code=2)
    [(_, cause, fix)] = judge(check, result, sandbox="wasm")
    assert cause == line
    assert "rewrite the check" in fix
    assert judge(check, result, sandbox="bwrap") == [], "only the wasm shell says this"


# ---------------------------------------------------------------- python modules


def test_the_interpreters_own_message_names_it_and_the_runner() -> None:
    """The finding: `python3 -m pytest -q` in bwrap, whose python3 has no pytest."""
    check = CommandCheck(command="python3 -m pytest -q")
    line = "/usr/bin/python3: No module named pytest"
    [(_, cause, fix)] = judge(check, failed(check, stderr=line + "\n"))
    assert cause == line
    assert fix.startswith("/usr/bin/python3 (the python the check ran in the bwrap sandbox)")
    assert "cannot import pytest: install pytest for /usr/bin/python3" in fix
    assert "--sandbox local" in fix


def test_the_runner_is_refused_even_when_the_goal_names_it() -> None:
    check = CommandCheck(command="python3 -m pytest -q")
    result = failed(check, stderr="/usr/bin/python3: No module named pytest")
    assert judge(check, result, goal="Make the pytest suite pass") != []
    # ... but not when the workspace is pytest's own source tree
    assert judge(check, result, paths=("src/pytest/__init__.py", "src/_pytest")) == []


def test_a_missing_parent_package_of_a_m_module() -> None:
    check = CommandCheck(command="python3 -m attr.validators")
    line = (
        "/usr/bin/python3: Error while finding module specification for 'attr.validators' "
        "(ModuleNotFoundError: No module named 'attr')"
    )
    [(_, _, fix)] = judge(check, failed(check, stderr=line))
    assert "cannot import attr" in fix


def test_a_m_module_the_goal_creates_is_left_to_the_loop() -> None:
    check = CommandCheck(command="python3 -m wordcount README.md")
    result = failed(check, stderr="/usr/bin/python3: No module named wordcount")
    assert judge(check, result, goal="Create a module wordcount that counts words") == []
    assert judge(check, result, paths=("wordcount/__init__.py",)) == []
    assert judge(check, result) != []


def _real_output(tmp_path: Path, runner: list[str], test_source: str) -> tuple[str, str, int]:
    """Run a real test runner (this interpreter's) over a workspace with one test file."""
    (tmp_path / "test_app.py").write_text(test_source, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, *runner],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={"PATH": "/usr/bin:/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    )
    return done.stdout, done.stderr, done.returncode


@pytest.mark.slow
def test_a_pytest_collection_error_for_a_missing_third_party_module(tmp_path: Path) -> None:
    stdout, stderr, code = _real_output(
        tmp_path, ["-m", "pytest", "-q", "-p", "no:cacheprovider"], "import absent_dep_q7\n"
    )
    assert "ERROR collecting" in stdout or "ImportError while importing" in stdout
    check = TestsCheck(command="python3 -m pytest -q")
    result = failed(check, stdout=stdout, stderr=stderr, exit_code=code)
    [(_, cause, fix)] = judge(check, result, paths=("test_app.py",))
    assert "No module named 'absent_dep_q7'" in cause
    assert "the check's python3 (in the bwrap sandbox) cannot import absent_dep_q7" in fix
    # A module of the workspace, or one the goal is to create, is the goal's business.
    assert judge(check, result, paths=("test_app.py", "absent_dep_q7.py")) == []
    assert judge(check, result, goal="Write the absent_dep_q7 module") == []


def test_a_unittest_import_failure_for_a_missing_module(tmp_path: Path) -> None:
    stdout, stderr, code = _real_output(
        tmp_path, ["-m", "unittest", "-q"], "import absent_dep_q7\n"
    )
    assert "Failed to import test module" in stderr
    check = CommandCheck(command="python3 -m unittest -q")
    result = failed(check, stdout=stdout, stderr=stderr, exit_code=code)
    assert judge(check, result, paths=("test_app.py",)) != []


def test_a_script_that_dies_of_a_missing_import(tmp_path: Path) -> None:
    (tmp_path / "main.py").write_text("import absent_dep_q7\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "main.py"], cwd=tmp_path, capture_output=True, text=True, check=False
    )
    check = AssertsCheck(path="main.py")
    result = failed(check, stdout=done.stdout, stderr=done.stderr, exit_code=done.returncode)
    assert judge(check, result, paths=("main.py",)) != []


@pytest.mark.slow
def test_a_missing_module_inside_a_failing_test_is_left_to_the_loop(tmp_path: Path) -> None:
    """A test that ran and failed (a lazy import inside the code under test) is not a
    collection error: the code may be meant to stop needing it."""
    source = (
        "def load():\n    import absent_dep_q7\n\n"
        "def test_load():\n    load()\n\ndef test_other():\n    assert True\n"
    )
    stdout, stderr, code = _real_output(
        tmp_path, ["-m", "pytest", "-q", "-p", "no:cacheprovider"], source
    )
    assert "1 failed, 1 passed" in stdout
    check = TestsCheck(command="python3 -m pytest -q")
    assert judge(check, failed(check, stdout=stdout, stderr=stderr, exit_code=code)) == []


def test_an_ordinary_failure_is_left_to_the_loop() -> None:
    check = CommandCheck(command="python3 -m pytest -q")
    out = "F\nFAILED test_app.py::test_answer - assert 41 == 42\n1 failed in 0.01s\n"
    assert judge(check, failed(check, stdout=out)) == []


def test_checks_that_run_no_command_are_never_judged() -> None:
    check = FileCheck(path="done.txt")
    result = failed(check, stderr="sh: 1: rg: not found", exit_code=127)
    assert judge(check, result) == []


def test_passing_checks_are_never_judged() -> None:
    check = CommandCheck(command="rg x")
    result = CheckResult(
        name=check.label,
        passed=True,
        observation=Observation(status=Status.SUCCESS, exit_code=0, stderr="sh: 1: rg: not found"),
    )
    assert judge(check, result) == []


def test_the_cause_is_one_sanitized_line() -> None:
    check = CommandCheck(command="rg x")
    line = "sh: 1: r\x1b]0;pwned\x07g: not found"
    [(_, cause, _)] = judge(check, failed(check, stderr=line, exit_code=127))
    assert not {"\x1b", "\x07", "\n"} & set(cause)


def test_workspace_modules_skip_environments_and_caches() -> None:
    names = workspace_modules(
        [
            "src/mypkg/__init__.py",
            "helpers.py",
            "native.cpython-311-x86_64-linux-gnu.so",
            ".venv/lib/python3.11/site-packages/numpy/__init__.py",
            "env/lib/python3.11/site-packages/requests/__init__.py",
            "__pycache__/stale.cpython-311.pyc",
        ]
    )
    assert {"src", "mypkg", "helpers", "native"} <= names
    assert not {"numpy", "requests", "stale"} & names


def test_describe_names_the_first_and_counts_the_rest() -> None:
    first = CommandCheck(command="rg x")
    second = CommandCheck(command="jq .")
    found = cannot_run(
        [first, second],
        [
            failed(first, stderr="sh: 1: rg: not found", exit_code=127),
            failed(second, stderr="sh: 1: jq: not found", exit_code=127),
        ],
        goal_text="tidy up",
        workspace_paths=(),
        workspace=WS,
        sandbox="bwrap",
    )
    assert describe(found) == "the checks cannot run: `rg x`: sh: 1: rg: not found (and 1 more)"
