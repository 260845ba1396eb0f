"""What a run tells the model about the host: nothing outside its workspace.

The isolating sandboxes get a fixed PATH (the host's names host directories, e.g. a
toolchain under the user's home), and the feedback the model reads shows paths relative
to the workspace, the home directory as ``~``. The ``local`` backend, which isolates
nothing, keeps the caller's PATH so that the caller's tools work.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builders import plan, scripted, shell, step
from zerog.engine.loop import Engine
from zerog.sandbox.wasm import default_data_dir
from zerog.types import Budget, Goal

HOST_ONLY = "/opt/hostonly-toolchain-4242/bin"
SHOW = 'pwd; echo PATH=$PATH; echo HOME=$HOME; ls -d "$PWD"/.zerog'


def _run(tmp_path: Path, sandbox: str) -> tuple[str, Path]:
    """One failed step that prints where it is; returns the prompt that followed it."""
    home = tmp_path / "home" / "someone"
    ws = home / "projects" / "ws"
    ws.mkdir(parents=True)
    (ws / "app.py").write_text("print('hi')\n")
    model = scripted(
        plan(step("Look around", shell(f"{SHOW}; false"))),
        plan(step("Give up", shell("true"))),
    )
    goal = Goal(text="Look around", workspace=ws, checks=["false"], budget=Budget(max_iterations=2))
    environ = {
        "PATH": f"{HOST_ONLY}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "ZEROG_DATA_DIR": str(default_data_dir(os.environ)),  # where `make setup` put CPython
    }
    Engine(model, sandbox_name=sandbox, environ=environ, write_trace=False).run(goal)
    prompt = model.requests[-1].messages[-1].content
    assert "Earlier attempts" in prompt
    return prompt, home


@pytest.mark.parametrize("sandbox", ["bwrap", "wasm"])
def test_the_model_learns_no_host_path_outside_the_workspace(tmp_path: Path, sandbox: str) -> None:
    prompt, home = _run(tmp_path, sandbox)
    failure = prompt[prompt.index("What failed:") :]
    assert "PATH=/usr/local/bin:/usr/bin:/bin\n" in failure
    assert HOST_ONLY not in failure
    assert str(home) not in failure
    assert str(tmp_path) not in failure
    assert "HOME=.\n" in failure  # the sandbox's home is the workspace, shown relative


def test_the_local_backend_keeps_the_callers_path(tmp_path: Path) -> None:
    prompt, home = _run(tmp_path, "local")
    failure = prompt[prompt.index("What failed:") :]
    assert f"PATH={HOST_ONLY}:" in failure  # local is not isolation: the caller's tools
    assert str(home) not in failure
