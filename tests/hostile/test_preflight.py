"""The preflight (issue 18, point 2). Found on a fresh machine: `zerog run "..." --workspace
REPO --check "python3 -m pytest -q"` failed inside bwrap with "/usr/bin/python3: No module
named pytest" (the sandbox's python3 has no pytest), and zerog spent 4 model calls before
ending as `stuck`. A check that cannot run at all must end the run at once, exit code 2,
no model call, with a message naming the interpreter, what it misses, and the fix.

The interpreter without pytest is made here, so that the tests do not depend on what the
machine's python3 has: a virtual environment without pip and without the system's
site-packages, on the PATH zerog runs with (local backend: the finding's exact command
line), or in the workspace and named by the check (bwrap: it links to /usr/bin/python3,
which the sandbox sees). Each test failed before the preflight: the model was asked.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builders import plan, shell, step, write_script, zerog_cli
from zerog.store import Store

SCRIPT = [plan(step(f"attempt {n}", shell("true"))) for n in range(1, 5)]


@pytest.fixture(autouse=True)
def nothing_survives() -> None:
    """These runs start no background process: the suite's machine-wide survivor scan is
    left out (see test_forged_checks.py)."""


def _venv_without_pytest(where: Path, python: str) -> Path:
    """A python (``where/bin/python3``) that cannot import pytest, whatever is installed."""
    subprocess.run([python, "-m", "venv", "--without-pip", str(where)], check=True)
    done = subprocess.run(
        [str(where / "bin" / "python3"), "-c", "import pytest"], capture_output=True, check=False
    )
    assert done.returncode != 0, "the new environment must not see pytest"
    return where / "bin" / "python3"


def _repo(root: Path) -> Path:
    repo = root / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "tests" / "__init__.py").write_text("")
    (repo / "app.py").write_text("def answer():\n    return 41\n")
    (repo / "tests" / "test_app.py").write_text(
        "from app import answer\n\ndef test_answer():\n    assert answer() == 42\n"
    )
    return repo


def _model_calls(store: Path) -> tuple[int, int, int]:
    """(model_call events, input tokens, output tokens) of the store's only run."""
    with Store(store) as opened:
        [row] = opened.runs()
        calls = sum(1 for e in opened.events(row.id) if e.kind == "model_call")
    return calls, row.input_tokens, row.output_tokens


def test_pytest_missing_from_the_sandbox_python_ends_the_run_at_once(tmp_path: Path) -> None:
    """The finding's command line; the sandbox's python3 (first on the PATH the local
    backend runs with) has no pytest."""
    python = _venv_without_pytest(tmp_path / "nopytest", "/usr/bin/python3")
    repo = _repo(tmp_path)
    write_script(tmp_path / "script.jsonl", *SCRIPT)
    done = zerog_cli(
        "run",
        "Make the tests pass",
        "--workspace",
        str(repo),
        "--check",
        "python3 -m pytest -q",
        "--sandbox",
        "local",
        "--model",
        "scripted:script.jsonl",
        "--max-iterations",
        "4",
        cwd=tmp_path,
        env={"PATH": f"{python.parent}:/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "cannot_run" in out
    assert f"{python}: No module named pytest" in out
    assert f"install pytest for {python}" in out
    assert "or start zerog from the environment that has it" in out
    assert _model_calls(tmp_path / "runs.db") == (0, 0, 0)
    assert not (repo / ".pytest_cache").exists()


def test_pytest_missing_in_bwrap_ends_the_run_at_once(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    python = _venv_without_pytest(repo / ".nopytest", "/usr/bin/python3")
    write_script(tmp_path / "script.jsonl", *SCRIPT)
    done = zerog_cli(
        "run",
        "Make the tests pass",
        "--workspace",
        str(repo),
        "--check",
        ".nopytest/bin/python3 -m pytest -q",
        "--sandbox",
        "bwrap",
        "--model",
        "scripted:script.jsonl",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "cannot_run"
    assert result["iterations"] == 0
    assert result["usage"]["input_tokens"] == 0
    [refusal] = result["cannot_run"]
    assert refusal["check"] == ".nopytest/bin/python3 -m pytest -q"
    assert refusal["cause"] == f"{python}: No module named pytest"
    assert refusal["fix"].startswith(f"{python} (the python the check ran in the bwrap sandbox)")
    assert _model_calls(tmp_path / "runs.db") == (0, 0, 0)


@pytest.mark.parametrize("sandbox", ["bwrap", "local"])
def test_a_dependency_missing_in_the_sandbox_ends_the_run_at_once(
    tmp_path: Path, sandbox: str
) -> None:
    """The tests import a third-party module the sandbox's python does not have (a
    collection error in files the goal does not ask to change)."""
    repo = _repo(tmp_path)
    (repo / "tests" / "test_app.py").write_text(
        "import absent_dependency_q7\n\ndef test_x():\n    assert True\n"
    )
    write_script(tmp_path / "script.jsonl", *SCRIPT)
    done = zerog_cli(
        "run",
        "Make the tests pass",
        "--workspace",
        str(repo),
        "--check",
        "python3 -m unittest -q",
        "--sandbox",
        sandbox,
        "--model",
        "scripted:script.jsonl",
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "No module named 'absent_dependency_q7'" in out
    assert "cannot import absent_dependency_q7" in out
    assert _model_calls(tmp_path / "runs.db") == (0, 0, 0)


def test_a_goal_whose_checks_already_pass_asks_no_model(tmp_path: Path) -> None:
    repo = _repo(tmp_path)
    (repo / "app.py").write_text("def answer():\n    return 42\n")
    write_script(tmp_path / "script.jsonl", *SCRIPT)
    done = zerog_cli(
        "run",
        "Make the tests pass",
        "--workspace",
        str(repo),
        "--check",
        "python3 -m unittest discover -q -s tests -t .",
        "--model",
        "scripted:script.jsonl",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "nothing to do: the checks already pass" in done.stdout
    assert _model_calls(tmp_path / "runs.db") == (0, 0, 0)


@pytest.mark.parametrize(
    ("check", "cause"),
    [
        ("python3 -m pytest -q", "ImportError: No module named pytest"),
        (
            "python3 -m unittest -q 2>&1 | tail -1",
            "wasm shell: '|' is not supported (no pipes or background jobs)",
        ),
        ("make test", "make: command not found (the wasm sandbox runs python and a few"),
    ],
)
def test_what_the_wasm_sandbox_cannot_run_ends_the_run_at_once(
    tmp_path: Path, check: str, cause: str
) -> None:
    """The wasm sandbox's python has the standard library only, and its shell runs python
    and a few builtins, without pipes."""
    repo = _repo(tmp_path)
    write_script(tmp_path / "script.jsonl", *SCRIPT)
    done = zerog_cli(
        "run",
        "Fix the answer",
        "--workspace",
        str(repo),
        "--check",
        check,
        "--sandbox",
        "wasm",
        "--model",
        "scripted:script.jsonl",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    [refusal] = json.loads(done.stdout)["cannot_run"]
    assert refusal["cause"].startswith(cause)
    assert "--sandbox bwrap" in refusal["fix"]
    assert _model_calls(tmp_path / "runs.db") == (0, 0, 0)
