"""Builders for scripted models and plans from plain data (the script file format)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

from zerog.models.scripted import ScriptedModel, ScriptLine, parse_line

ScriptFactory = Callable[..., ScriptedModel]


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
