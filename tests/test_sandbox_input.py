"""A command's input and its own variables, on every backend: what the validation sweep
uses to hand a runner its nonce (on stdin, never on the command line) and to give a check
its private HOME."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.bwrap import BwrapSandbox
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.process import MAX_STDIN_BYTES
from zerog.sandbox.wasm import default_data_dir
from zerog.types import ShellAction, Status, WriteFileAction

ENV = {"PATH": "/usr/bin:/bin", "HOME": "/home/of-actions", "LANG": "C.UTF-8"}
LIMITS = Limits(timeout=30)
READ = "python3 -I -c 'import os, sys; print(repr(sys.stdin.read()), os.environ[\"HOME\"])'"


@pytest.fixture(params=["local", "bwrap", "bwrap-once", "wasm"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    name = str(request.param)
    if name == "bwrap-once":  # a bubblewrap per command, not the kept sandbox
        with BwrapSandbox(ENV, reuse=False) as once:
            yield once
        return
    built = make_sandbox(name, ENV, environ=os.environ, data_dir=default_data_dir(os.environ))
    yield built
    close = getattr(built, "close", None)
    if close is not None:
        close()


def test_a_command_reads_its_input_then_end_of_file(sandbox: Sandbox, workspace: Path) -> None:
    seen = sandbox.run(ShellAction(command=READ), workspace, LIMITS, stdin=b"n0nce\n")
    assert seen.ok, seen
    assert seen.stdout == "'n0nce\\n' /home/of-actions\n"
    nothing = sandbox.run(ShellAction(command=READ), workspace, LIMITS)
    assert nothing.stdout == "'' /home/of-actions\n"


def test_variables_for_one_command_only(sandbox: Sandbox, workspace: Path) -> None:
    action = ShellAction(command=READ)
    seen = sandbox.run(action, workspace, LIMITS, env={"HOME": "/elsewhere"})
    assert seen.stdout == "'' /elsewhere\n"
    after = sandbox.run(action, workspace, LIMITS)
    assert after.stdout == "'' /home/of-actions\n"


def test_an_input_larger_than_a_pipe_takes_is_refused(sandbox: Sandbox, workspace: Path) -> None:
    big = b"x" * (MAX_STDIN_BYTES + 1)
    seen = sandbox.run(ShellAction(command="true"), workspace, LIMITS, stdin=big)
    assert seen.status is Status.EXCEPTION
    assert "limited to" in seen.stderr


def test_file_actions_ignore_both(sandbox: Sandbox, workspace: Path) -> None:
    action = WriteFileAction(path="out.txt", content="hi\n")
    seen = sandbox.run(action, workspace, LIMITS, stdin=b"x", env={"HOME": "/x"})
    assert seen.ok
    assert (workspace / "out.txt").read_text() == "hi\n"
