"""The project's own toolchain in the bwrap sandbox, for real (issue 18, point 1).

A repository with its own ``.venv`` (made here with ``python -m venv``, pytest installed
into it offline from the wheels `make setup` keeps in ``.venv/wheelhouse``): the README's
``zerog run ... --check "python3 -m pytest -q"`` passes under bwrap without any flag. A
pyenv root whose shim is resolved from pyenv's files, with the chosen version outside
``/usr``, is bound and runs the check. Neither runs anything of the workspace on the host.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from builders import plan, scripted, step, write, write_script, zerog_cli
from zerog.engine.loop import Engine
from zerog.store import Store
from zerog.types import Budget, Goal, RunStatus

pytestmark = pytest.mark.slow  # builds projects with venvs of their own

WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
OFFLINE = ("--no-index", "--find-links", str(WHEELHOUSE), "pytest")
FIXED = "def add(a, b):\n    return a + b\n"
BASE = Path(os.path.realpath(sys.base_prefix))  # the interpreter the project's venv is from


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository whose test fails, with a .venv holding pytest."""
    wheels = sorted(WHEELHOUSE.glob("pytest-*.whl"))
    assert wheels, f"no pytest wheel in {WHEELHOUSE}: run `make setup`"
    repo = tmp_path_factory.mktemp("project") / "repo"
    (repo / "tests").mkdir(parents=True)
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    (repo / "tests" / "test_calc.py").write_text(
        "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n"
    )
    python = repo / ".venv" / "bin" / "python"
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(python.parent.parent)], check=True
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "-q", *OFFLINE],
        check=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    return repo


def test_readme_example_runs_the_projects_pytest_in_bwrap(project: Path, tmp_path: Path) -> None:
    ws = tmp_path / "repo"
    shutil.copytree(project, ws, symlinks=True)
    script = write_script(tmp_path / "fix.jsonl", plan(step("fix add", write("calc.py", FIXED))))
    done = zerog_cli(
        "run",
        "make add() pass its test",
        "--workspace",
        str(ws),
        "--check",
        "python3 -m pytest -q",
        "--model",
        f"scripted:{script}",
        "--max-iterations",
        "1",
        "--verbose",
        cwd=tmp_path,
        columns=400,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "No module named pytest" not in output
    assert f"PATH starts with {ws.resolve()}/.venv/bin" in output
    if not BASE.is_relative_to("/usr"):  # a pyenv, /opt... interpreter: bound read-only
        assert f"sandbox sees ro {BASE}" in output
    run_id = re.search(r"run id\s+(\S+)", done.stdout)
    assert run_id is not None
    shown = zerog_cli("show", run_id.group(1), cwd=tmp_path, columns=400)
    assert f"PATH starts with {ws.resolve()}/.venv/bin" in shown.stdout, shown.stdout


def test_the_venvs_interpreter_and_packages_are_the_ones_that_run(
    project: Path, tmp_path: Path
) -> None:
    ws = tmp_path / "repo"
    shutil.copytree(project, ws, symlinks=True)
    (ws / "calc.py").write_text(FIXED)
    venv = ws.resolve() / ".venv"
    probe = (
        "import sys, pytest; "
        f"assert sys.prefix == {str(venv)!r}, sys.prefix; "
        f"assert sys.base_prefix == {str(BASE)!r}, sys.base_prefix; "
        f"assert pytest.__file__.startswith({str(venv)!r}), pytest.__file__"
    )
    goal = Goal(
        text="the venv runs",
        workspace=ws,
        checks=[
            f'python3 -c "{probe}"',
            'test "$VIRTUAL_ENV" = ' + str(venv),
            "python3 -m pytest -q",
        ],
        budget=Budget(max_iterations=1),
    )
    model = scripted(plan(step("nothing to change", write("notes.txt", "ok\n"))))
    with Store(tmp_path / "runs.db") as store:
        result = Engine(model, store=store, environ=dict(os.environ), write_trace=False).run(goal)
        binds = [e.data for e in store.events(result.run_id) if e.kind == "sandbox_binds"]
    assert result.status is RunStatus.SUCCESS, result.reason
    assert binds
    assert binds[0]["env"] == {"VIRTUAL_ENV": str(venv)}


def test_a_pyenv_interpreter_is_found_and_bound(tmp_path: Path) -> None:
    """pyenv as a user has it: a shim first on PATH, versions/ (here a link to the
    interpreter running the tests), a `.python-version` in the repository."""
    pyenv = tmp_path / "pyenv"
    (pyenv / "shims").mkdir(parents=True)
    shim = pyenv / "shims" / "python3"
    shim.write_text("#!/bin/sh\necho 'a shim must not run' >&2\nexit 97\n")
    shim.chmod(0o755)
    (pyenv / "versions").mkdir()
    (pyenv / "versions" / "zerog-test").symlink_to(BASE)
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / ".python-version").write_text("zerog-test\n")
    environ = {"PATH": f"{pyenv}/shims:/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    probe = f"import sys; assert sys.base_prefix == {str(BASE)!r}, sys.base_prefix"
    goal = Goal(
        text="the pinned interpreter runs",
        workspace=ws,
        checks=[f'python3 -c "{probe}"'],
        budget=Budget(max_iterations=1),
    )
    model = scripted(plan(step("nothing to change", write("notes.txt", "ok\n"))))
    with Store(tmp_path / "runs.db") as store:
        result = Engine(model, store=store, environ=environ, write_trace=False).run(goal)
        binds = [e.data for e in store.events(result.run_id) if e.kind == "sandbox_binds"]
    assert result.status is RunStatus.SUCCESS, result.reason
    if not BASE.is_relative_to("/usr"):
        assert binds[0]["binds"] == [
            {
                "source": str(BASE),
                "dest": str(BASE),
                "mode": "ro",
                "why": "python3 (pyenv zerog-test)",
            }
        ]
        assert binds[0]["path"] == [str(BASE / "bin")]


def test_mounts_on_the_command_line(tmp_path: Path) -> None:
    """--mount: read-only by default, rw when asked (written through to the host), and a
    refused one is a usage error before anything runs."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "input.txt").write_text("42\n")
    (tmp_path / "out").mkdir()
    script = write_script(tmp_path / "s.jsonl", plan(step("note", write("note.txt", "x\n"))))
    checks = [
        "grep -qx 42 /data/input.txt",
        "! touch /data/new 2>/dev/null",  # read-only
        "echo written > /out/result.txt",
    ]
    done = zerog_cli(
        "run",
        "use the data",
        "--workspace",
        str(ws),
        *(word for check in checks for word in ("--check", check)),
        "--mount",
        f"{tmp_path / 'data'}:/data",
        "--mount",
        f"{tmp_path / 'out'}:/out:rw",
        "--model",
        f"scripted:{script}",
        "--max-iterations",
        "1",
        "--verbose",
        cwd=tmp_path,
        columns=400,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"sandbox sees ro {tmp_path.resolve() / 'data'} at /data  (--mount)" in done.stdout
    assert (tmp_path / "out" / "result.txt").read_text() == "written\n"
    assert not (tmp_path / "data" / "new").exists()
    home = os.environ["HOME"]
    for refused, why in (("/", "is the file system's root"), (home, "is the home directory")):
        stopped = zerog_cli(
            "run", "t", "--workspace", str(ws), "--check", "true", "--mount", refused,
            "--model", f"scripted:{script}", cwd=tmp_path,
        )  # fmt: skip
        assert stopped.returncode == 2, stopped.stdout + stopped.stderr
        assert "refusing to mount" in stopped.stderr
        assert why in stopped.stderr
