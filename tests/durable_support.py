"""A multi-iteration workload whose side effects are counted outside the workspace.

Every action appends its own id to a log file outside the workspace (which rollbacks do
not undo), so a test can tell exactly which actions ran and how often.
"""

from __future__ import annotations

import json
from pathlib import Path

from zerog.types import Budget, Goal

LOG_VAR = "ZEROG_CRASH_LOG"


def _mark(tag: str) -> dict[str, object]:
    return {"kind": "shell", "command": f'echo {tag} >> "${LOG_VAR}"'}


def _write(path: str, content: str) -> dict[str, object]:
    return {"kind": "write_file", "path": path, "content": content}


def script_lines() -> list[dict[str, object]]:
    """Three iterations: a failed check, a failed step check, then success."""
    return [
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {"intent": "first try", "actions": [_write("a.txt", "one\n"), _mark("i1s1a2")]},
                    {"intent": "worker step"},
                ]
            },
        },
        {"purpose": "act", "json": {"actions": [_mark("i1s2a1"), _write("b.txt", "two\n")]}},
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {
                        "intent": "second try",
                        "actions": [_write("c.txt", "x\n"), _mark("i2s1a2")],
                        "check": "test -f never.txt",
                    },
                ]
            },
        },
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {"intent": "prepare", "actions": [_write("a.txt", "final\n"), _mark("i3s1a2")]},
                    {
                        "intent": "finish",
                        "actions": [_mark("i3s2a1"), _write("done.txt", "ok\n"), _mark("i3s2a3")],
                    },
                ]
            },
        },
    ]


def prepare(root: Path) -> tuple[Path, Path, Path]:
    """Make a workspace, the script and an empty log under ``root``."""
    workspace = root / "ws"
    workspace.mkdir(parents=True)
    (workspace / "README.md").write_text("crash test workspace\n", encoding="utf-8")
    script = root / "script.jsonl"
    script.write_text("\n".join(json.dumps(line) for line in script_lines()) + "\n")
    log = root / "side-effects.log"
    log.write_text("")
    return workspace, script, log


def goal(workspace: Path) -> Goal:
    return Goal(
        text="create done.txt",
        workspace=workspace,
        checks=["test -f done.txt && grep -q final a.txt"],
        budget=Budget(max_iterations=5, max_seconds=120),
        env_allow=(LOG_VAR,),
    )


def workspace_files(workspace: Path) -> dict[str, str]:
    return {
        str(p.relative_to(workspace)): p.read_text()
        for p in sorted(workspace.rglob("*"))
        if p.is_file() and ".zerog" not in p.parts
    }
