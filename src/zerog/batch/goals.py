"""A batch's goals file: JSONL, one goal per line, each line a goal file's table::

    {"text": "Fix restock()", "workspace": "repos/shop", "checks": ["python3 -m pytest -q"]}
    {"text": "Add a README", "workspace": "repos/docs", "budget": {"max_iterations": 2},
     "checks": [{"kind": "file", "path": "README.md"}]}

The keys are those of a goal file (``text``, ``workspace``, ``env``, ``budget``,
``checks``, ``preflight``, ... see ``goalfile.py``); ``workspace`` is required (each goal
works on its own copy of it) and relative paths resolve against the goals file's
directory. Blank lines
and lines starting with ``#`` are skipped. Every line is validated before any goal runs.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from zerog.errors import ConfigError
from zerog.goalfile import goal_from_table
from zerog.types import Goal
from zerog.workspace_policy import check_workspace

MAX_GOALS_FILE_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class BatchGoal:
    index: int  # 1, 2, ... in file order
    line: int  # where it is in the file
    goal: Goal  # its workspace is the source, which the batch copies


@dataclass(frozen=True, slots=True)
class GoalsFile:
    path: Path
    digest: str  # sha256 of the file's bytes
    goals: tuple[BatchGoal, ...]


def read_goals(
    path: Path,
    budget_defaults: Mapping[str, object] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    force_workspace: bool = False,
    preflight: bool = True,
) -> GoalsFile:
    """Read and validate every goal of ``path``. ``budget_defaults`` fill in the budget
    fields a line does not set, ``preflight`` its ``preflight`` if it does not say. A
    workspace the batch would copy is checked against
    ``environ`` (see :mod:`zerog.workspace_policy`: the root, the home directory, zerog's
    own files are refused unless ``force_workspace``)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_GOALS_FILE_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read the goals file {path}: {exc.strerror}") from None
    if len(data) > MAX_GOALS_FILE_BYTES:
        raise ConfigError(f"the goals file {path} is larger than {MAX_GOALS_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the goals file {path} is not UTF-8: {exc}") from None
    goals: list[BatchGoal] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        # Errors name the line; relative paths still resolve against the file's directory.
        where = path.parent / f"{path.name}:{number}"
        try:
            table = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(table, dict):
            raise ConfigError(f"{where}: each line must be a JSON object (a goal)")
        if "workspace" not in table:
            raise ConfigError(
                f"{where}: workspace: missing: each goal of a batch names the directory "
                "it works on (the batch works on a copy of it)"
            )
        budget = table.get("budget", {})
        if not isinstance(budget, dict):
            raise ConfigError(f"{where}: budget: must be an object")
        table["budget"] = {**(budget_defaults or {}), **budget}
        table.setdefault("preflight", preflight)
        goal, _ = goal_from_table(table, where)
        if not goal.workspace.is_dir():
            raise ConfigError(f"{where}: workspace: {goal.workspace} is not a directory")
        try:
            check_workspace(goal.workspace, environ or {}, force=force_workspace)
        except ConfigError as exc:
            raise ConfigError(f"{where}: workspace: {exc}") from None
        goals.append(BatchGoal(index=len(goals) + 1, line=number, goal=goal))
    if not goals:
        raise ConfigError(f"the goals file {path} has no goals (one JSON object per line)")
    return GoalsFile(path=path, digest=hashlib.sha256(data).hexdigest(), goals=tuple(goals))
