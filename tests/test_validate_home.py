"""The environment of a check: a private, empty HOME (not the workspace, where attempts
write), no user site-packages and no workspace bytecode, on every backend."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.wasm import default_data_dir
from zerog.types import OutputCheck
from zerog.validate.home import check_variables
from zerog.validate.sweep import sweep

SHOW = OutputCheck(
    command='mkdir -p "$HOME/.cache" 2> /dev/null; echo "home=$HOME nousersite=$PYTHONNOUSERSITE"',
    matches="^home=",
)


def test_a_home_nobody_could_know_removed_after_the_sweep() -> None:
    with check_variables("local", "t0k3n") as variables:
        home = Path(variables["HOME"])
        assert home == Path(tempfile.gettempdir()) / "zerog-home-t0k3n"
        assert not home.exists()
        assert variables["PYTHONNOUSERSITE"] == "1"
        (home / ".config").mkdir(parents=True)  # a check's tool made it
    assert not home.exists()
    with check_variables("bwrap", "abc123") as variables:
        assert variables["HOME"] == "/tmp/zerog-home-abc123"


@pytest.mark.parametrize("name", ["local", "bwrap", "wasm"])
def test_checks_do_not_run_in_the_workspace_home(workspace: Path, name: str) -> None:
    env = sandbox_env(os.environ, [], home=str(workspace))  # what actions get
    sandbox = make_sandbox(name, env, environ=os.environ, data_dir=default_data_dir(os.environ))
    tokens = iter(["t0k3n", "n0nc3"])
    verdict = sweep([SHOW], workspace, sandbox, Limits(timeout=30), nonce=lambda: next(tokens))
    assert verdict.passed, verdict
    line = verdict.results[0].observation.stdout.strip()
    home = line.split()[0].removeprefix("home=")
    assert home != str(workspace)
    assert "nousersite=1" in line
    assert home.endswith("/zerog-home-t0k3n")
    assert not Path(home).exists()  # on local, the host's: removed
