"""Tests for zerog.sandbox.local: the plain subprocess backend."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.local import LocalSandbox
from zerog.types import EditAction, ShellAction, Status, WriteFileAction

CANARY = "ZEROG_LOCAL_TEST_CANARY"
BASE_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "GIVEN": "yes", "LC_ALL": "C"}
# Variables a POSIX shell adds on its own (dash exports PWD; others may add these).
SHELL_ADDED = {"PWD", "OLDPWD", "SHLVL", "_"}


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def canary() -> Iterator[str]:
    os.environ[CANARY] = "leaked-from-parent"
    yield CANARY
    del os.environ[CANARY]


def parse_env(text: str) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line)
    return {name: value for name, value in pairs if name not in SHELL_ADDED}


def test_name_and_protocol() -> None:
    sandbox: Sandbox = LocalSandbox(BASE_ENV)
    assert sandbox.name == "local"


def test_shell_runs_in_the_workspace(ws: Path) -> None:
    (ws / "marker.txt").write_text("here")
    obs = LocalSandbox(BASE_ENV).run(ShellAction(command="pwd; cat marker.txt"), ws, Limits())
    assert obs.status is Status.SUCCESS
    assert obs.stdout == f"{ws.resolve()}\nhere"


def test_shell_env_is_exactly_what_was_given(ws: Path, canary: str) -> None:
    obs = LocalSandbox(BASE_ENV).run(ShellAction(command="env"), ws, Limits())
    assert obs.status is Status.SUCCESS
    assert canary not in obs.stdout
    assert "leaked-from-parent" not in obs.stdout
    assert parse_env(obs.stdout) == BASE_ENV


def test_shell_env_from_sandbox_env_hides_parent_secrets(ws: Path, canary: str) -> None:
    environ = dict(os.environ)
    environ["OPENAI_API_KEY"] = "sk-" + "x" * 30
    env = sandbox_env(environ, ["LC_ALL"], home=str(ws))
    obs = LocalSandbox(env).run(ShellAction(command="env"), ws, Limits())
    seen = parse_env(obs.stdout)
    assert seen == env
    assert canary not in seen
    assert "OPENAI_API_KEY" not in seen
    assert seen["HOME"] == str(ws)


def test_env_is_copied_at_construction(ws: Path) -> None:
    env = dict(BASE_ENV)
    sandbox = LocalSandbox(env)
    env["LATE"] = "added"
    obs = sandbox.run(ShellAction(command='echo "late=${LATE:-unset}"'), ws, Limits())
    assert obs.stdout == "late=unset\n"


def test_shell_failure_is_an_observation(ws: Path) -> None:
    obs = LocalSandbox(BASE_ENV).run(ShellAction(command="echo bad >&2; exit 7"), ws, Limits())
    assert obs.status is Status.ERROR
    assert obs.exit_code == 7
    assert obs.stderr == "bad\n"


def test_shell_honours_limits(ws: Path) -> None:
    sandbox = LocalSandbox(BASE_ENV)
    started = time.monotonic()
    slow = sandbox.run(ShellAction(command="sleep 30"), ws, Limits(timeout=0.5))
    assert slow.status is Status.TIMEOUT
    assert time.monotonic() - started < 5
    flood = sandbox.run(
        ShellAction(command="yes"),
        ws,
        Limits(timeout=10, max_output_bytes=256, kill_output_bytes=10_000),
    )
    assert flood.status is Status.OUTPUT_LIMIT
    assert flood.truncated
    assert len(flood.stdout) < 400
    big = sandbox.run(
        ShellAction(command="head -c 5000 /dev/zero | tr '\\0' z"),
        ws,
        Limits(max_output_bytes=256),
    )
    assert big.status is Status.SUCCESS
    assert big.truncated
    assert "4744 bytes elided" in big.stdout


def test_shell_uses_the_injected_clock_for_duration(ws: Path) -> None:
    calls: list[float] = []

    def clock() -> float:
        calls.append(100.0 + 0.5 * len(calls))
        return calls[-1]

    sandbox = LocalSandbox(BASE_ENV, clock=clock)
    obs = sandbox.run(ShellAction(command="true"), ws, Limits(timeout=1000))
    assert obs.status is Status.SUCCESS
    # The duration is the difference between the first and the last reading of the clock.
    assert obs.duration == calls[-1] - calls[0]
    assert obs.duration >= 0.5


def test_write_action_goes_through_files_and_has_a_duration(ws: Path) -> None:
    times = iter([10.0, 12.5])
    sandbox = LocalSandbox(BASE_ENV, clock=lambda: next(times))
    obs = sandbox.run(WriteFileAction(path="pkg/mod.py", content="x = 1\n"), ws, Limits())
    assert obs.status is Status.SUCCESS
    assert obs.stdout == "wrote pkg/mod.py"
    assert obs.duration == 2.5
    assert (ws / "pkg" / "mod.py").read_text() == "x = 1\n"


def test_edit_action_goes_through_files_and_has_a_duration(ws: Path) -> None:
    (ws / "mod.py").write_text("x = 1\n")
    times = iter([3.0, 3.25])
    sandbox = LocalSandbox(BASE_ENV, clock=lambda: next(times))
    obs = sandbox.run(EditAction(path="mod.py", search="1", replace="2"), ws, Limits())
    assert obs.status is Status.SUCCESS
    assert obs.stdout == "edited mod.py"
    assert obs.duration == 0.25
    assert (ws / "mod.py").read_text() == "x = 2\n"


def test_file_actions_are_confined(ws: Path, tmp_path: Path) -> None:
    sandbox = LocalSandbox(BASE_ENV)
    write = sandbox.run(WriteFileAction(path="../escape.txt", content="x"), ws, Limits())
    assert write.status is Status.ERROR
    assert "leaves the workspace" in write.stderr
    assert write.duration >= 0
    assert not (tmp_path / "escape.txt").exists()
    edit = sandbox.run(EditAction(path="missing.py", search="a", replace="b"), ws, Limits())
    assert edit.status is Status.ERROR
    assert edit.stderr == "missing.py does not exist"


def test_real_clock_duration_is_measured_for_file_actions(ws: Path) -> None:
    obs = LocalSandbox(BASE_ENV).run(WriteFileAction(path="f.txt", content="x"), ws, Limits())
    assert obs.status is Status.SUCCESS
    assert 0 < obs.duration < 5
