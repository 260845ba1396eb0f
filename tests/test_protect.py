"""Protected files: which paths a goal protects, and putting them back on a real tree."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from zerog.protect import (
    DEFAULT_PROTECTED,
    Protection,
    check_scripts,
    protection_of,
    restore_target,
)
from zerog.sandbox.workspace import Snapshot, Workspace
from zerog.types import AssertsCheck, CommandCheck, Goal, TestsCheck

DEFAULTS = Protection(DEFAULT_PROTECTED)


@pytest.mark.parametrize(
    ("path", "pattern"),
    [
        ("test_app.py", "test_*.py"),
        ("pkg/sub/test_app.py", "test_*.py"),
        ("app_test.py", "*_test.py"),
        ("tests/helpers/data.json", "tests/"),
        ("pkg/tests/fixtures.py", "tests/"),
        ("tests", "tests/"),
        ("test/unit.py", "test/"),
        ("conftest.py", "conftest.py"),
        ("deep/er/conftest.py", "conftest.py"),
        ("pytest.ini", "pytest.ini"),
        ("tox.ini", "tox.ini"),
        ("setup.cfg", "setup.cfg"),
        (".local/lib/python3.11/site-packages/x.pth", "*.pth"),
        ("sitecustomize.py", "sitecustomize.py"),
        ("lib/usercustomize.py", "usercustomize.py"),
        ("tests/__pycache__/test_a.cpython-311.pyc", "tests/"),
        ("__pycache__/app.cpython-311.pyc", "__pycache__/"),
        ("app.pyc", "*.pyc"),
    ],
)
def test_the_default_patterns_protect_tests_and_what_configures_them(
    path: str, pattern: str
) -> None:
    assert DEFAULTS.reason(path) == pattern


@pytest.mark.parametrize(
    "path", ["app.py", "src/app.py", "testing.py", "mytests/a.py", "contest.py", "README.md"]
)
def test_the_default_patterns_leave_the_code_alone(path: str) -> None:
    assert DEFAULTS.reason(path) is None


def test_anchored_patterns_and_double_stars() -> None:
    rules = Protection(("/verify.py", "data/*.csv", "docs/**/*.md", "build/", "gen/**"))
    assert rules.covers("gen")
    assert rules.covers("gen/a/b.py")
    assert not rules.covers("generated.py")
    assert Protection(("**/fixtures",)).covers("a/b/fixtures/x.json")
    assert Protection(("**",)).covers("anything/at/all")
    assert Protection(("f[0-9].txt",)).covers("d/f1.txt")
    assert not Protection(("f[!0-9].txt",)).covers("f1.txt")
    assert Protection(("f[!0-9].txt",)).covers("fx.txt")
    assert not Protection(("a?c",)).covers("a/c")
    assert rules.covers("verify.py")
    assert not rules.covers("sub/verify.py")
    assert rules.covers("data/a.csv")
    assert not rules.covers("data/b/a.csv")
    assert not rules.covers("x/data/a.csv")
    assert rules.covers("docs/a.md")
    assert rules.covers("docs/x/y/a.md")
    assert not rules.covers("docs/a.txt")
    assert rules.covers("src/build/out.o")


def test_bad_patterns_are_refused_by_the_goal(tmp_path: Path) -> None:
    for bad in ["", "!tests/", "../outside", "a//b", "x\x00y"]:
        with pytest.raises(ValidationError):
            Goal(text="g", workspace=tmp_path, checks=["true"], protected=(bad,))


def test_the_scripts_checks_name_are_protected(tmp_path: Path) -> None:
    checks = (
        AssertsCheck(path="checks/tests.py"),
        TestsCheck(command="python3 -m pytest -q verify.py ./more.py -k slow"),
        CommandCheck(command="python3 app.py"),  # may run the very file the goal is about
    )
    assert check_scripts(checks) == ("/checks/tests.py", "/verify.py", "/more.py")
    goal = Goal(text="g", workspace=tmp_path, checks=checks, protected=("data/",))
    rules = protection_of(goal)
    assert rules.covers("verify.py")
    assert rules.covers("data/x.csv")
    assert rules.covers("test_app.py")
    assert not rules.covers("app.py")
    off = protection_of(goal.model_copy(update={"protect_defaults": False}))
    assert not off.covers("test_app.py")
    assert off.covers("checks/tests.py")
    assert off.covers("data/x.csv")


def test_restoring_puts_back_protected_paths_and_keeps_the_rest(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("assert True\n")
    (root / "test_top.py").write_text("assert 1\n")
    (root / "app.py").write_text("x = 1\n")
    os.chmod(root / "test_top.py", 0o644)
    workspace = Workspace(root, tmp_path / "state")
    base = workspace.snapshot()

    (root / "app.py").write_text("x = 2\n")  # the attempt's real work: kept
    (root / "notes.txt").write_text("kept too\n")
    (root / "test_top.py").write_text("assert 0\n")
    os.chmod(root / "test_top.py", 0o755)
    (root / "sub").mkdir()
    (root / "sub" / "conftest.py").write_text("# a hook\n")
    (root / "tests" / "test_a.py").unlink()
    (root / "tests").rmdir()
    (root / "tests").symlink_to(tmp_path)  # a link where the tests were

    current = workspace.scan()
    target = restore_target(base.entries, current, DEFAULTS)
    changed = sorted(p for p in target.keys() | current.keys() if target.get(p) != current.get(p))
    assert changed == ["sub/conftest.py", "test_top.py", "tests", "tests/test_a.py"]
    workspace.restore(Snapshot(base.id, target))

    assert (root / "app.py").read_text() == "x = 2\n"
    assert (root / "notes.txt").read_text() == "kept too\n"
    assert (root / "sub").is_dir()
    assert not (root / "sub" / "conftest.py").exists()
    assert (root / "test_top.py").read_text() == "assert 1\n"
    assert (root / "test_top.py").stat().st_mode & 0o777 == 0o644
    assert not (root / "tests").is_symlink()
    assert (root / "tests" / "test_a.py").read_text() == "assert True\n"
    assert not (tmp_path / "test_a.py").exists()  # nothing written through the link
    again = workspace.scan()
    assert restore_target(base.entries, again, DEFAULTS) == again
