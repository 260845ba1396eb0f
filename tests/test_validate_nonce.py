"""The sweep's nonce: drawn fresh for every sweep, handed to zerog's runners on stdin, and
required in their output for a pass; and the pytest runner it is handed to."""

from __future__ import annotations

import itertools
import os
import shlex
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from zerog.sandbox.base import Limits
from zerog.sandbox.local import LocalSandbox
from zerog.types import Action, AssertsCheck, Observation, PredicateCheck, Status, TestsCheck
from zerog.validate.nonce import MARK, confirm, new_nonce, stdin_for, verdict_line
from zerog.validate.pytest_runner import wrap_pytest
from zerog.validate.sidecar import GuestProgram, SandboxPython
from zerog.validate.sweep import sweep

ENV = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
LOCAL = LocalSandbox(ENV)
LIMITS = Limits(timeout=60)


def passed(stdout: str) -> Observation:
    return Observation(status=Status.SUCCESS, exit_code=0, stdout=stdout)


def test_a_pass_needs_the_verdict_line_with_this_nonce() -> None:
    nonce = new_nonce()
    assert len(nonce) == 32
    assert nonce != new_nonce()
    assert stdin_for(nonce) == f"{nonce}\n".encode()
    good = confirm(passed(f"1 passed\n{verdict_line(nonce)}\n"), nonce)
    assert good.ok
    assert good.stdout == "1 passed\n"  # the line is taken out
    for stdout in ["1 passed\n", f"{MARK} {new_nonce()} passed\n", f"x{verdict_line(nonce)}\n"]:
        forged = confirm(passed(stdout), nonce)
        assert not forged.ok
        assert forged.status is Status.ERROR
        assert "never confirmed its verdict" in forged.stderr
    failed = Observation(status=Status.ERROR, exit_code=1, stdout=verdict_line(nonce))
    assert confirm(failed, nonce) == failed.model_copy(update={"stdout": ""})


class NonceRecorder:
    """A real sidecar that notes the nonce each program was given."""

    name = "recording"

    def __init__(self) -> None:
        self.inner = SandboxPython(LOCAL, sys.executable)
        self.nonces: list[str] = []

    def run_python(
        self,
        program: GuestProgram,
        workspace: Path,
        limits: Limits,
        *,
        nonce: str,
        env: Mapping[str, str],
    ) -> Observation:
        self.nonces.append(nonce)
        return self.inner.run_python(program, workspace, limits, nonce=nonce, env=env)


def test_every_sweep_draws_a_fresh_nonce_from_its_source(workspace: Path) -> None:
    counter = itertools.count()
    source = lambda: f"nonce{next(counter)}"  # noqa: E731 - the injected randomness
    recorder = NonceRecorder()
    checks = [PredicateCheck(python="1 == 1"), PredicateCheck(python="2 == 2")]
    for _ in range(2):
        verdict = sweep(checks, workspace, LOCAL, LIMITS, sidecar=recorder, jobs=1, nonce=source)
        assert verdict.passed
        assert all(MARK not in r.observation.stdout for r in verdict.results)
    # Each sweep: a token for its checks' home, then the nonce all its checks share.
    assert recorder.nonces == ["nonce1", "nonce1", "nonce3", "nonce3"]


def test_a_runner_given_another_nonce_does_not_pass(workspace: Path) -> None:
    (workspace / "tests.py").write_text("assert True\n")
    verdict = sweep([AssertsCheck(path="tests.py")], workspace, LOCAL, LIMITS)
    assert verdict.passed

    class Liar(LocalSandbox):
        """Gives every command another nonce than the sweep's."""

        def run(
            self,
            action: Action,
            workspace: Path,
            limits: Limits,
            *,
            stdin: bytes = b"",
            env: Mapping[str, str] | None = None,
        ) -> Observation:
            other = stdin_for(new_nonce())
            return super().run(action, workspace, limits, stdin=other, env=env)

    lied = sweep([AssertsCheck(path="tests.py")], workspace, Liar(ENV), LIMITS)
    assert not lied.passed
    assert "never confirmed its verdict" in lied.results[0].observation.stderr


@pytest.mark.parametrize(
    "command",
    [
        "python3 -m pytest -q",
        "python -m pytest -x -k 'a and b' tests/test_a.py",
        '/opt/venv/bin/python3.12 -m pytest -q -k "not slow"',
    ],
)
def test_plain_pytest_commands_are_wrapped(command: str) -> None:
    wrapped = wrap_pytest(command)
    assert wrapped is not None
    words, given = shlex.split(wrapped), shlex.split(command)
    assert words[:3] == [given[0], "-I", "-c"]
    assert MARK in words[3]
    assert words[4:] == given[3:]


@pytest.mark.parametrize(
    "command",
    [
        "pytest -q",
        "python3 -B -m pytest",
        "python3 -m unittest",
        "python3 -m pytest tests/*.py",
        'python3 -m pytest "$ARGS"',
        "python3 -m pytest; true",
        "python3 -m pytest && echo ok",
        "python3 -m pytest | tee log",
        "make test",
    ],
)
def test_other_commands_run_as_written(command: str) -> None:
    assert wrap_pytest(command) is None


@pytest.mark.slow
def test_the_wrapped_pytest_runs_the_installed_pytest(workspace: Path) -> None:
    (workspace / "test_app.py").write_text(
        "import app\n\ndef test_answer():\n    assert app.answer() == 42\n"
    )
    suite = TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider")
    failing = sweep([suite], workspace, LOCAL, LIMITS, rerun_failures=False)
    assert not failing.passed
    assert [t.name for t in failing.results[0].failed_tests] == ["test_app.test_answer"]
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    passing = sweep([suite], workspace, LOCAL, LIMITS)
    assert passing.passed
    assert MARK not in passing.results[0].observation.stdout
