"""Finding a goal's toolchain on the host (zerog.toolchain) and checking mounts
(zerog.mount_policy), from files only: nothing here is executed, so the interpreters are
stand-ins laid out like real ones (bin/python3.11 beside lib/python3.11)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerog.errors import ConfigError
from zerog.goalfile import load_goal
from zerog.mount_policy import Exposure, dest_refusal, parse_mount
from zerog.toolchain import Toolchain, check_commands, command_words, for_goal, resolve
from zerog.types import AssertsCheck, CommandCheck, FileCheck, Goal, Mount, TestsCheck


def prefix(root: Path, version: str = "3.11") -> Path:
    """A directory laid out like an installed Python (never run)."""
    (root / "bin").mkdir(parents=True)
    program = root / "bin" / f"python{version}"
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    (root / "bin" / "python3").symlink_to(program.name)
    (root / "lib" / f"python{version}" / "site-packages").mkdir(parents=True)
    return root


def venv(where: Path, base: Path) -> Path:
    """A venv made from ``base`` (its links and pyvenv.cfg, as `python -m venv` writes)."""
    (where / "bin").mkdir(parents=True)
    (where / "bin" / "python3").symlink_to(base / "bin" / "python3")
    (where / "bin" / "python").symlink_to("python3")
    (where / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (where / "pyvenv.cfg").write_text(
        f"home = {base}/bin\ninclude-system-site-packages = false\nversion = 3.11.7\n"
        f"executable = {base}/bin/python3.11\n"
    )
    return where


def tool(directory: Path, name: str, text: str = "#!/bin/sh\nexit 0\n") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(text)
    path.chmod(0o755)
    return path


def find(
    tmp_path: Path,
    commands: list[str],
    environ: dict[str, str],
    mounts: tuple[Mount, ...] = (),
    backend: str = "bwrap",
) -> Toolchain:
    ws = (tmp_path / "ws").resolve()
    ws.mkdir(exist_ok=True)
    exposure = Exposure.for_run(ws, environ, homes=[])
    return resolve(ws, commands, mounts, environ, backend=backend, exposure=exposure)


def sources(tools: Toolchain) -> dict[str, str]:
    return {str(b.source): b.why for b in tools.binds}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("secret")
    return home


def test_command_words() -> None:
    assert command_words("python3 -m pytest -q") == ["python3"]
    assert command_words("FOO=1 env BAR=2 timeout 5 node x.js 2>&1 | tee out && make test") == [
        "node",
        "tee",
        "make",
    ]
    assert command_words("cd sub; ./run.sh > log.txt\nnpm test") == ["./run.sh", "npm"]
    assert command_words("if true; then cargo test; fi") == ["cargo"]
    assert command_words("echo 'unterminated") == []
    checks = (
        CommandCheck(command="make check"),
        TestsCheck(),
        AssertsCheck(path="t.py"),
        FileCheck(path="x"),
    )
    assert check_commands(checks) == ["make check", "python3 -m pytest -q", "python3"]


def test_workspace_venv_is_first_on_path_and_its_base_is_bound(tmp_path: Path) -> None:
    base = prefix(tmp_path / "pyenv" / "versions" / "3.11.7")
    ws = tmp_path / "ws"
    venv(ws / ".venv", base)
    tools = find(tmp_path, ["python3 -m pytest -q"], {"PATH": "/usr/bin:/bin"})
    assert tools.path[0] == str(ws.resolve() / ".venv" / "bin")
    assert tools.env == {"VIRTUAL_ENV": str(ws.resolve() / ".venv")}
    assert sources(tools) == {str(base.resolve()): "the base interpreter of the workspace's .venv"}
    assert all(b.mode == "ro" and b.source == b.dest for b in tools.binds)
    assert not tools.skipped


def test_host_virtual_env_is_bound_and_on_path(tmp_path: Path) -> None:
    base = prefix(tmp_path / "opt" / "python")
    outside = venv(tmp_path / "envs" / "tools", base)
    tools = find(tmp_path, ["python3 -c pass"], {"PATH": "/usr/bin", "VIRTUAL_ENV": str(outside)})
    assert set(sources(tools)) == {str(outside.resolve()), str(base.resolve())}
    assert tools.path == (str(outside.resolve() / "bin"),)
    assert tools.env["VIRTUAL_ENV"] == str(outside.resolve())


def test_the_workspace_venv_comes_before_an_activated_one(tmp_path: Path) -> None:
    base = prefix(tmp_path / "base")
    outside = venv(tmp_path / "envs" / "tools", base)
    venv(tmp_path / "ws" / "venv", base)
    tools = find(tmp_path, [], {"PATH": "/usr/bin", "VIRTUAL_ENV": str(outside)})
    ws = (tmp_path / "ws").resolve()
    assert tools.path == (str(ws / "venv" / "bin"), str(outside.resolve() / "bin"))
    assert tools.env["VIRTUAL_ENV"] == str(ws / "venv")


def test_a_planted_pyvenv_cfg_binds_only_a_real_interpreter(tmp_path: Path, home: Path) -> None:
    ws = tmp_path / "ws"
    (ws / ".venv" / "bin").mkdir(parents=True)
    fake = tool(tmp_path / "data" / "bin", "python3")  # no lib/pythonX.Y beside it
    (ws / ".venv" / "pyvenv.cfg").write_text(f"home = /etc\nexecutable = {home}/.ssh/id_ed25519\n")
    (ws / ".venv" / "bin" / "python").symlink_to(fake)
    tools = find(tmp_path, ["python3"], {"PATH": "/usr/bin", "HOME": str(home)})
    assert tools.binds == ()
    reasons = {s.path: s.reason for s in tools.skipped}
    assert reasons[f"{home}/.ssh/id_ed25519"] == "is not a Python interpreter"
    assert reasons[str(fake.resolve())] == "is not in a bin/ beside a lib/pythonX.Y"


def test_a_venv_that_is_a_link_is_not_followed(tmp_path: Path) -> None:
    base = prefix(tmp_path / "base")
    elsewhere = venv(tmp_path / "elsewhere", base)
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / ".venv").symlink_to(elsewhere)
    tools = find(tmp_path, [], {"PATH": "/usr/bin"})
    assert tools == Toolchain()


def test_a_venv_base_inside_credentials_is_refused(tmp_path: Path, home: Path) -> None:
    hidden = prefix(home / ".ssh" / "py")
    venv(tmp_path / "ws" / ".venv", hidden)
    tools = find(tmp_path, [], {"PATH": "/usr/bin", "HOME": str(home)})
    assert tools.binds == ()
    assert "is inside credentials (.ssh)" in tools.skipped[0].reason


def test_a_prefix_that_is_a_home_directory_is_never_bound(tmp_path: Path, home: Path) -> None:
    tool(home / "bin", "mytool")
    tools = find(tmp_path, ["mytool --check"], {"PATH": f"{home}/bin:/usr/bin", "HOME": str(home)})
    assert sources(tools) == {str(home.resolve() / "bin"): "mytool"}
    assert tools.path == (str(home.resolve() / "bin"),)
    assert "is the home directory" in tools.skipped[0].reason


def test_a_prefix_holding_secrets_binds_only_its_bin_and_libraries(
    tmp_path: Path, home: Path
) -> None:
    local = home / ".local"
    tool(local / "bin", "pytest", "#!/usr/bin/python3\nimport pytest\n")
    (local / "lib" / "python3.11" / "site-packages").mkdir(parents=True)
    (local / "share" / "keyrings").mkdir(parents=True)
    (local / "share" / "zerog").mkdir(parents=True)
    environ = {"PATH": f"{local}/bin:/usr/bin", "HOME": str(home)}
    tools = find(tmp_path, ["pytest -q"], environ)
    real = local.resolve()
    assert set(sources(tools)) == {str(real / "bin"), str(real / "lib" / "python3.11")}
    assert tools.skipped[0].path == str(real)
    assert tools.skipped[0].reason.startswith("holds zerog's run store")


def test_a_scripts_interpreter_and_a_links_target_are_bound(tmp_path: Path) -> None:
    python = prefix(tmp_path / "opt" / "python3.12", "3.12")
    tool(tmp_path / "opt" / "tool" / "bin", "tool", f"#!{python}/bin/python3\nprint(1)\n")
    node = tool(tmp_path / "opt" / "node" / "lib" / "node_modules" / "npm" / "bin", "npm-cli.js")
    (tmp_path / "opt" / "node" / "bin").mkdir()
    (tmp_path / "opt" / "node" / "bin" / "npm").symlink_to(node)
    environ = {"PATH": f"{tmp_path}/opt/node/bin:{tmp_path}/opt/tool/bin:/usr/bin"}
    tools = find(tmp_path, ["tool && npm test"], environ)
    opt = (tmp_path / "opt").resolve()
    assert sources(tools) == {
        str(opt / "tool"): "tool",
        str(python.resolve()): "tool (its interpreter)",
        str(opt / "node"): "npm",
    }
    assert tools.path == (str(opt / "node" / "bin"), str(opt / "tool" / "bin"))


def pyenv_root(tmp_path: Path) -> Path:
    root = tmp_path / "pyenv"
    tool(root / "shims", "python3", "#!/usr/bin/env bash\nexit 99\n")  # never run
    prefix(root / "versions" / "3.11.7")
    prefix(root / "versions" / "3.12.1", "3.12")
    (root / "version").write_text("3.12.1\n")
    return root


def test_a_pyenv_shim_is_resolved_from_pyenvs_files(tmp_path: Path) -> None:
    root = pyenv_root(tmp_path)
    environ = {"PATH": f"{root}/shims:/usr/bin:/bin"}
    versions = root.resolve() / "versions"
    chosen = find(tmp_path, ["python3 -m pytest"], environ)  # the global version file
    assert sources(chosen) == {str(versions / "3.12.1"): "python3 (pyenv 3.12.1)"}
    assert chosen.path == (str(versions / "3.12.1" / "bin"),)
    (tmp_path / "ws" / ".python-version").write_text("# pinned\n3.11.7\n")
    assert set(sources(find(tmp_path, ["python3"], environ))) == {str(versions / "3.11.7")}
    (tmp_path / "ws" / ".python-version").write_text("3.11\n")  # a prefix: the newest 3.11.*
    assert set(sources(find(tmp_path, ["python3"], environ))) == {str(versions / "3.11.7")}
    by_env = find(tmp_path, ["python3"], {**environ, "PYENV_VERSION": "3.12.1"})
    assert set(sources(by_env)) == {str(versions / "3.12.1")}


def test_pyenv_system_and_bad_version_names(tmp_path: Path) -> None:
    root = pyenv_root(tmp_path)
    other = prefix(tmp_path / "other")
    environ = {"PATH": f"{root}/shims:{other}/bin:/usr/bin"}
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / ".python-version").write_text("../../../../etc system\n")
    tools = find(tmp_path, ["python3"], environ)
    assert set(sources(tools)) == {str(other.resolve())}  # 'system': the next on PATH
    (tmp_path / "ws" / ".python-version").write_text("9.9.9\n")
    missing = find(tmp_path, ["python3"], environ)
    assert missing.binds == ()
    assert missing.skipped[0].reason == "no pyenv version provides it (9.9.9)"


def test_system_programs_need_nothing(tmp_path: Path) -> None:
    tools = find(tmp_path, ["sh -c true", "/usr/bin/env true", "./run.sh"], {"PATH": "/usr/bin"})
    assert tools == Toolchain()


def test_local_sees_everything_and_wasm_takes_no_mounts(tmp_path: Path) -> None:
    mount = Mount(source=tmp_path)
    assert find(tmp_path, ["python3"], {"PATH": "/usr/bin"}, (mount,), "local") == Toolchain()
    with pytest.raises(ConfigError, match="mounts need the bwrap sandbox"):
        find(tmp_path, [], {"PATH": "/usr/bin"}, (mount,), "wasm")


def test_user_mounts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    mounts = (Mount(source=data), Mount(source=data, dest=Path("/srv/data"), mode="rw"))
    tools = find(tmp_path, [], {"PATH": "/usr/bin"}, mounts)
    records = [b.record() for b in tools.binds]
    assert {"source": str(data.resolve()), "dest": "/srv/data", "mode": "rw", "why": "--mount"} in (
        records
    )
    binds = tools.sandbox_binds()
    assert [(b.readonly, b.idmap) for b in binds] == [(False, True), (True, False)]
    with pytest.raises(ConfigError, match="something is mounted there"):
        find(tmp_path, [], {"PATH": "/usr/bin"}, (Mount(source=data), Mount(source=data)))
    with pytest.raises(ConfigError, match="does not exist"):
        find(tmp_path, [], {"PATH": "/usr/bin"}, (Mount(source=tmp_path / "nope"),))


def test_parse_mount() -> None:
    assert parse_mount("/a") == Mount(source=Path("/a"))
    assert parse_mount("/a:rw") == Mount(source=Path("/a"), mode="rw")
    assert parse_mount("/a:/b") == Mount(source=Path("/a"), dest=Path("/b"))
    assert parse_mount("~/x/../y:/b:ro", home="/h") == Mount(source=Path("/h/y"), dest=Path("/b"))
    assert parse_mount("rel", base=Path("/w")) == Mount(source=Path("/w/rel"))
    for bad in ("", "/a:/b:/c", "/a::rw", "rel"):
        with pytest.raises(ConfigError, match="mount"):
            parse_mount(bad)
    with pytest.raises(ConfigError, match="absolute"):
        parse_mount("/a:b", base=Path("/w"))
    with pytest.raises(ConfigError, match="needs HOME"):
        parse_mount("~/a")


def test_mount_destinations() -> None:
    ws = Path("/w/ws")
    for bad in ("/", "/usr", "/usr/local/x", "/etc/x", "/proc/1", "/tmp", "/w", "/w/ws/sub"):
        assert dest_refusal(Path(bad), ws) is not None, bad
    for good in ("/data", "/tmp/data", "/opt/tool", "/w/other"):
        assert dest_refusal(Path(good), ws) is None, good


def test_goal_file_mounts(tmp_path: Path) -> None:
    (tmp_path / "ws").mkdir()
    (tmp_path / "goal.toml").write_text(
        'text = "t"\nworkspace = "ws"\nchecks = ["true"]\n'
        'mounts = ["data", "/opt/x:/x:rw", {source = "/s", dest = "/d"}]\n'
    )
    goal, _ = load_goal(tmp_path / "goal.toml")
    assert goal.mounts == (
        Mount(source=tmp_path.resolve() / "data"),
        Mount(source=Path("/opt/x"), dest=Path("/x"), mode="rw"),
        Mount(source=Path("/s"), dest=Path("/d")),
    )
    (tmp_path / "goal.toml").write_text('text = "t"\nchecks = ["true"]\nmounts = [1]\n')
    with pytest.raises(ConfigError, match=r"mounts\[0\]"):
        load_goal(tmp_path / "goal.toml")


def test_an_engine_given_its_sandbox_takes_no_mounts(tmp_path: Path) -> None:
    goal = Goal(text="t", workspace=tmp_path, checks=["true"], mounts=(Mount(source=tmp_path),))
    with pytest.raises(ConfigError, match="sandbox zerog builds"):
        for_goal(goal, {}, backend=None)
    assert for_goal(goal.model_copy(update={"mounts": ()}), {}, backend=None) == Toolchain()


def test_a_venv_on_path_brings_its_base(tmp_path: Path) -> None:
    base = prefix(tmp_path / "base")
    env = venv(tmp_path / "pyenv" / "versions" / "tools", base)
    tools = find(tmp_path, ["python3"], {"PATH": f"{env}/bin:/usr/bin"})
    assert set(sources(tools)) == {str(env.resolve()), str(base.resolve())}
