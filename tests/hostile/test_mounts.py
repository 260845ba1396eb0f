"""Mounts and toolchain binds never show a sandbox the user's credentials, zerog's
configuration or its store (issue 18, point 1).

- ``--mount``/``mounts`` of a secret, of a directory holding one, of zerog's files, of a
  home directory, of the system's root or kernel state, or through a link to any of
  them, stops the run before anything runs (no model call, no run recorded);
- what a planted workspace points the toolchain finder at (a ``pyvenv.cfg`` naming an
  "interpreter" inside ``~/.ssh`` or the home directory itself, an activated venv inside
  zerog's configuration) and the host PATH's prefixes that hold secrets are refused or
  narrowed, and a real bwrap sandbox built with what was bound cannot read a secret.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from builders import scripted
from zerog import toolchain
from zerog.engine.loop import Engine
from zerog.errors import ConfigError
from zerog.mount_policy import related
from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits
from zerog.sandbox.bwrap import BwrapSandbox
from zerog.store import Store
from zerog.types import Goal, Mount, ShellAction, Status

SECRET = "mount-canary-5e1d0c"


def _home(root: Path) -> Path:
    """A home directory holding credentials, zerog's configuration and its store."""
    home = root / "home"
    for relative in (
        ".ssh/id_ed25519",
        ".aws/credentials",
        ".config/zerog/config.toml",
        ".local/share/zerog/runs.db",
        ".local/share/keyrings/login.keyring",
        ".netrc",
    ):
        path = home / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{SECRET}\n")
    return home


def _interpreter(prefix: Path) -> Path:
    """Files laid out like an installed Python (what a planted venv could point at)."""
    (prefix / "bin").mkdir(parents=True, exist_ok=True)
    program = prefix / "bin" / "python3"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    (prefix / "lib" / "python3.11").mkdir(parents=True, exist_ok=True)
    return program


REFUSED = [
    ("{home}/.ssh", "is credentials (.ssh)"),
    ("{home}/.ssh/id_ed25519", "is inside credentials (.ssh)"),
    ("{home}/.aws/credentials", "is inside credentials (.aws)"),
    ("{home}/.netrc", "is credentials (.netrc)"),
    ("{home}", "is the home directory"),
    ("{root}", "holds the home directory"),
    ("{home}/.config/zerog", "is zerog's configuration"),
    ("{home}/.config", "holds zerog's configuration"),
    ("{home}/.local/share/zerog/runs.db", "is inside zerog's run store"),
    ("{home}/.local/share", "holds zerog's run store"),
    ("{home}/.local/share/keyrings", "is credentials (.local/share/keyrings)"),
    ("{root}/alias", "is credentials (.ssh)"),  # a link to ~/.ssh
    ("{ws}/.zerog", "is inside the workspace"),
    ("{ws}", "is the workspace"),
    ("/", "is the file system's root"),
    ("/proc", "is kernel or device state"),
    ("/sys/kernel", "is kernel or device state"),
    ("/dev", "is kernel or device state"),
    ("/etc", "holds the system's credentials"),
    ("/etc/ssh", "is the system's credentials"),
]


@pytest.mark.parametrize(("source", "reason"), REFUSED)
def test_a_mount_that_would_expose_secrets_stops_the_run(
    tmp_path: Path, source: str, reason: str
) -> None:
    home = _home(tmp_path)
    ws = tmp_path / "ws"
    (ws / ".zerog").mkdir(parents=True)
    (tmp_path / "alias").symlink_to(home / ".ssh")
    path = source.format(home=home, root=tmp_path, ws=ws)
    if not Path(path).exists():
        pytest.fail(f"{path} is missing on this machine")
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(home)}
    goal = Goal(text="t", workspace=ws, checks=["true"], mounts=(Mount(source=Path(path)),))
    with Store(tmp_path / "runs.db") as store:
        with pytest.raises(ConfigError, match="refusing to mount") as refused:
            Engine(scripted(), store=store, environ=environ).run(goal)
        assert store.runs() == []
    assert reason in str(refused.value)


@pytest.mark.parametrize("dest", ["/", "/usr/lib/x", "/etc/ssh", "/proc/self", "/tmp", "{ws}"])
def test_a_mount_may_not_land_on_the_sandboxs_own_paths(tmp_path: Path, dest: str) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    data = tmp_path / "data"
    data.mkdir()
    mount = Mount(source=data, dest=Path(dest.format(ws=ws)))
    goal = Goal(text="t", workspace=ws, checks=["true"], mounts=(mount,))
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    with pytest.raises(ConfigError, match="refusing to mount"):
        Engine(scripted(), environ=environ, write_trace=False).run(goal)


def test_planted_toolchains_never_show_a_secret(tmp_path: Path) -> None:
    home = _home(tmp_path)
    ws = tmp_path / "ws"
    # A workspace venv whose "base interpreters" are inside ~/.ssh and the home itself.
    (ws / ".venv" / "bin").mkdir(parents=True)
    inside_ssh = _interpreter(home / ".ssh" / "py")
    at_home = _interpreter(home)
    (ws / ".venv" / "pyvenv.cfg").write_text(
        f"home = {inside_ssh.parent}\nexecutable = {at_home}\n"
    )
    (ws / ".venv" / "bin" / "python").symlink_to(inside_ssh)
    # An activated venv inside zerog's configuration; a ~/.local/bin tool (~/.local holds
    # the keyrings and zerog's store); a PATH entry inside ~/.aws.
    activated = home / ".config" / "zerog" / "venv"
    _interpreter(activated)
    (activated / "pyvenv.cfg").write_text(f"home = {home}/bin\n")
    tool = home / ".local" / "bin" / "tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho tool ran\n")
    tool.chmod(0o755)
    leaky = home / ".aws" / "bin" / "aws-helper"
    leaky.parent.mkdir(parents=True)
    leaky.write_text("#!/bin/sh\nexit 0\n")
    leaky.chmod(0o755)
    environ = {
        "PATH": f"{home}/.local/bin:{home}/.aws/bin:/usr/bin:/bin",
        "HOME": str(home),
        "VIRTUAL_ENV": str(activated),
    }
    goal = Goal(text="t", workspace=ws.resolve(), checks=["tool && aws-helper && python3 -V"])
    tools = toolchain.for_goal(goal, environ, backend="bwrap")
    secrets = [home / ".ssh", home / ".aws", home / ".config" / "zerog", home / ".local" / "share"]
    for bound in tools.binds:
        assert home.resolve() not in (bound.source, bound.dest)
        assert not any(related(bound.source, s.resolve()) for s in secrets), bound
    assert [b.source for b in tools.binds] == [home.resolve() / ".local" / "bin"]
    assert {s.path for s in tools.skipped} >= {
        str(home.resolve() / ".ssh" / "py"),
        str(home.resolve()),
        str(activated.resolve()),
        str(home.resolve() / ".aws"),
    }
    env = sandbox_env(environ, (), home=str(ws), extra_path=tools.path)
    with BwrapSandbox(env, binds=tools.sandbox_binds()) as sandbox:
        ran = sandbox.run(ShellAction(command="tool"), ws, Limits(timeout=30))
        assert ran.status is Status.SUCCESS, ran
        assert "tool ran" in ran.stdout
        probes = [
            f"cat {home}/.ssh/id_ed25519",
            f"cat {home}/.aws/credentials",
            f"cat {home}/.config/zerog/config.toml",
            f"cat {home}/.local/share/zerog/runs.db",
            f"cat {home}/.local/share/keyrings/login.keyring",
            f"cat {home}/.netrc",
            f"ls -a {home}/.ssh {home}/.config",
        ]
        for probe in probes:
            seen = sandbox.run(ShellAction(command=probe), ws, Limits(timeout=30))
            assert seen.exit_code != 0, (probe, seen)
            assert SECRET not in seen.stdout + seen.stderr


def test_a_served_run_sees_no_other_workspace(tmp_path: Path) -> None:
    """`zerog serve` runs (Engine(off_limits=(root,))): a planted venv pointing at an
    interpreter-like tree in another client's workspace binds nothing of it."""
    root = tmp_path / "workspaces"
    other = _interpreter(root / "other" / "py")
    ws = root / "mine"
    (ws / ".venv" / "bin").mkdir(parents=True)
    (ws / ".venv" / "pyvenv.cfg").write_text(f"home = {other.parent}\n")
    goal = Goal(text="t", workspace=ws.resolve(), checks=["python3 -V"])
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home")}
    served = toolchain.for_goal(goal, environ, backend="bwrap", off_limits=(root,))
    assert served.binds == ()
    assert "is inside a directory no run may see" in served.skipped[0].reason
    alone = toolchain.for_goal(goal, environ, backend="bwrap")  # `zerog run`: the user's own
    assert [b.source for b in alone.binds] == [(root / "other" / "py").resolve()]


def test_the_service_takes_no_mounts() -> None:
    """A `zerog serve` request cannot ask for a mount: the field does not exist."""
    from pydantic import ValidationError

    from zerog.serve.schema import RunRequest

    body = {"text": "t", "workspace": "ws", "checks": ["true"], "model": "scripted:s.jsonl"}
    RunRequest.model_validate(body)
    with pytest.raises(ValidationError, match="mounts"):
        RunRequest.model_validate({**body, "mounts": ["/root/.ssh"]})


def test_unreadable_places_do_not_stop_the_search(tmp_path: Path) -> None:
    """A PATH entry or a pyenv root zerog's user cannot search (as another user: a PATH
    inherited through sudo) is passed over, not an error."""
    closed = tmp_path / "closed"
    _interpreter(closed / "py")
    (closed / "shims").mkdir()
    (closed / "versions").mkdir()
    ws = tmp_path / "ws"
    ws.mkdir()
    environ = {"PATH": f"{closed}/shims:{closed}/py/bin:/usr/bin:/bin", "HOME": str(ws)}
    goal = Goal(text="t", workspace=ws.resolve(), checks=["python3 -V"])
    closed.chmod(0)
    try:
        tools = toolchain.for_goal(goal, environ, backend="bwrap")
    finally:
        closed.chmod(0o755)
    if os.geteuid() != 0:  # root searches anything: it finds and binds the prefix
        assert tools.binds == ()
