"""Tests for zerog.sandbox.launch: where binds are staged, what the launcher is told."""

from __future__ import annotations

from pathlib import Path

from zerog.sandbox.launch import Bind, Launcher, stage_for


def test_stage_is_the_first_directory_holding_nothing_bubblewrap_needs(tmp_path: Path) -> None:
    tmp, var_tmp, shm = tmp_path / "tmp", tmp_path / "var-tmp", tmp_path / "shm"
    for directory in (tmp, var_tmp, shm):
        directory.mkdir()
    candidates = (tmp_path / "missing", tmp, var_tmp, shm)
    assert stage_for([Path("/usr/bin/bwrap")], candidates) == tmp
    assert stage_for([tmp / "bin" / "bwrap"], candidates) == var_tmp
    assert stage_for([tmp / "bwrap", var_tmp], candidates) == shm
    assert stage_for([tmp / "a", var_tmp / "b", shm], candidates) is None
    assert stage_for([tmp_path], candidates) == tmp  # covering /tmp hides nothing above it
    (tmp_path / "link").symlink_to(shm)
    assert stage_for([tmp, var_tmp], (tmp_path / "link",)) is None  # never through a link


def test_as_root_every_bind_is_staged_and_described() -> None:
    binds = [
        Bind(Path("/w"), Path("/w"), idmap=True),
        Bind(Path("/w/.zerog"), Path("/w/.zerog"), readonly=True, idmap=True),
        Bind(Path("/opt/a tool"), Path("/opt/a tool"), readonly=True),
    ]
    launcher = Launcher("/py", "SOURCE", 1990000, Path("/tmp"))
    assert launcher.sources(binds) == ["/tmp/0", "/tmp/1", "/tmp/2"]
    argv = launcher.argv(["bwrap", "--x"], binds, ignore_signals=True, rlimits=[(0, 1, 2)])
    assert argv == [
        *("/py", "-I", "-S", "-c", "SOURCE"),
        *("stage", "/tmp", "drop", "1990000", "1990000"),
        *("bind", "/w", "0", "1"),
        *("bind", "/w/.zerog", "1", "1"),
        *("bind", "/opt/a tool", "1", "0"),
        *("rlimit", "0", "1", "2", "ignore-signals", "--", "bwrap", "--x"),
    ]


def test_as_another_user_binds_are_their_own_paths() -> None:
    binds = [Bind(Path("/w"), Path("/w"), idmap=True)]
    launcher = Launcher("/py", "SOURCE", None, Path("/tmp"))
    assert launcher.sources(binds) == ["/w"]
    argv = launcher.argv(["bwrap"], binds, ignore_signals=False)
    assert argv[5:] == ["stage", "/tmp", "--", "bwrap"]
