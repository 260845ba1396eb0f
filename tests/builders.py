"""Builders for tests: scripted models and plans from plain data (the script file format),
the goal the shared ``workspace`` fixture needs (make ``answer()`` return 42), an engine
on a named sandbox, and the ``zerog`` command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from zerog import Engine, Goal
from zerog.models.scripted import ScriptedModel, ScriptLine, parse_line

ScriptFactory = Callable[..., ScriptedModel]
EngineFactory = Callable[..., Engine]

# All a sandboxed command needs to find python3 and the shell tools: nothing else of this
# process's environment reaches the engine.
PATH_ONLY: Mapping[str, str] = {"PATH": "/usr/bin:/bin"}


def plan(*steps: Mapping[str, object]) -> dict[str, object]:
    return {"purpose": "plan", "json": {"steps": list(steps)}}


def step(
    intent: str, *actions: Mapping[str, object], check: str | None = None
) -> dict[str, object]:
    body: dict[str, object] = {"intent": intent, "actions": list(actions)}
    if check is not None:
        body["check"] = check
    return body


def shell(command: str) -> dict[str, object]:
    return {"kind": "shell", "command": command}


def write(path: str, content: str) -> dict[str, object]:
    return {"kind": "write_file", "path": path, "content": content}


# The goal of the ``workspace`` fixture (tests/conftest.py: answer() returns 41) and its fix.
ANSWER_TEXT = "make answer() return 42"
ANSWER_CHECK = "python3 -c 'import app; assert app.answer() == 42'"
ANSWER_FIX = write("app.py", "def answer():\n    return 42\n")


def goal(root: Path, *checks: object, **fields: object) -> Goal:
    """A goal on the workspace ``root``: ``checks`` (plain commands or check objects;
    default ``ANSWER_CHECK``); ``fields`` are Goal's other fields (``text`` defaults to
    ``ANSWER_TEXT``)."""
    return Goal.model_validate(
        {
            "text": ANSWER_TEXT,
            "workspace": root,
            "checks": list(checks or (ANSWER_CHECK,)),
            **fields,
        }
    )


def engine(model: object, sandbox: str = "local", **options: object) -> Engine:
    """An engine with ``model`` on the ``sandbox`` backend (local: no isolation, for tests
    whose subject is not the sandbox) whose commands see only ``PATH_ONLY`` unless
    ``environ`` is given; ``options`` are Engine's other keyword arguments."""
    return Engine(
        model,  # type: ignore[arg-type]
        sandbox_name=sandbox,
        **{"environ": PATH_ONLY, **options},  # type: ignore[arg-type]
    )


def acts(*actions: Mapping[str, object]) -> dict[str, object]:
    return {"purpose": "act", "json": {"actions": list(actions)}}


def scripted(*lines: Mapping[str, object]) -> ScriptedModel:
    parsed: list[ScriptLine] = [parse_line(line, f"line {i}") for i, line in enumerate(lines)]
    return ScriptedModel(parsed)


def write_script(path: Path, *lines: Mapping[str, object]) -> Path:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path


def zerog_cli(
    *args: str, cwd: Path, columns: int = 160, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the `zerog` command line in ``cwd``, with its store in ``cwd/runs.db`` (``env``
    overrides variables of this process's environment)."""
    full = {
        **os.environ,
        "COLUMNS": str(columns),
        "NO_COLOR": "1",
        "ZEROG_STORE": str(cwd / "runs.db"),
        **(env or {}),
    }
    return subprocess.run(
        [sys.executable, "-m", "zerog", *args],
        cwd=cwd,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
