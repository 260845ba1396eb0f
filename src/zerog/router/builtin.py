"""Built-in routes: deterministic handlers for a step's structured ``op``.

Each handler reads only structured data (the step's ``op`` and ``target``, the goal's
checks, the names of files at the top of the workspace) and either returns the actions it
would take or declines with a reason. Nothing here parses the step's free text.
"""

from __future__ import annotations

import hashlib
import json
import shlex
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

from zerog.router.base import Decision, StepView
from zerog.router.history import RecordedStep
from zerog.types import Action, CommandCheck, OutputCheck, ShellAction, Step, TestsCheck

Handler = Callable[["BuiltinRouter", StepView], "tuple[Action, ...] | str"]

# Manifest file -> the command that installs what it lists (first match wins).
INSTALLERS: tuple[tuple[str, str], ...] = (
    ("requirements.txt", "python3 -m pip install -r requirements.txt"),
    ("pyproject.toml", "python3 -m pip install -e ."),
    ("setup.py", "python3 -m pip install -e ."),
    ("package-lock.json", "npm ci"),
    ("package.json", "npm install"),
    ("Cargo.toml", "cargo fetch"),
    ("go.mod", "go mod download"),
)
# Manifest file -> the formatter of that ecosystem, applied to a path.
FORMATTERS: tuple[tuple[str, str], ...] = (
    ("go.mod", "gofmt -w {path}"),
    ("Cargo.toml", "cargo fmt"),
    ("package.json", "npx --no-install prettier --write {path}"),
    ("pyproject.toml", "python3 -m ruff format {path}"),
    ("setup.py", "python3 -m ruff format {path}"),
)


def step_key(step: Step) -> str:
    """What makes two steps 'identical' for repeat_fix: intent, target and check."""
    body = json.dumps([step.intent, step.target, step.check], ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()[:24]


def fix_memory(steps: Sequence[RecordedStep]) -> dict[str, tuple[Action, ...]]:
    """Step key -> the actions of the last successful occurrence of that step."""
    memory: dict[str, tuple[Action, ...]] = {}
    for recorded in steps:
        if recorded.done and recorded.actions:
            memory[step_key(recorded.step)] = recorded.actions
    return memory


def _inside(root: Path, target: str) -> Path | None:
    """``target`` as a file inside the workspace ``root``, or None."""
    pure = PurePosixPath(target)
    if "\x00" in target or pure.is_absolute() or ".." in pure.parts or str(pure) in ("", "."):
        return None
    path = (root / pure).resolve()
    return path if path.is_relative_to(root.resolve()) else None


def _shell(command: str) -> tuple[Action, ...]:
    return (ShellAction(command=command),)


def _shell_checks(view: StepView) -> list[tuple[str, str]]:
    """(label, command) of the goal's checks that are plain shell commands."""
    return [
        (c.label, c.command)
        for c in view.goal.checks
        if isinstance(c, CommandCheck | TestsCheck | OutputCheck)
    ]


def _read_file(router: BuiltinRouter, view: StepView) -> tuple[Action, ...] | str:
    target = view.step.target
    if not target:
        return "read_file needs a target file"
    path = _inside(view.goal.workspace, target)
    if path is None or not path.is_file():
        return f"no file {target!r} in the workspace"
    return _shell(f"cat -- {shlex.quote(target)}")


def _run_tests(router: BuiltinRouter, view: StepView) -> tuple[Action, ...] | str:
    target = view.step.target
    if target:
        for label, command in _shell_checks(view):
            if target in (label, command):
                return _shell(command)
        return f"no goal check named {target!r}"
    for check in view.goal.checks:
        if isinstance(check, TestsCheck):
            return _shell(check.command)
    return "the goal has no test-suite check"


def _rerun_check(router: BuiltinRouter, view: StepView) -> tuple[Action, ...] | str:
    target = view.step.target
    candidates = _shell_checks(view)
    if target:
        for label, command in candidates:
            if target in (label, command):
                return _shell(command)
        return f"no goal check named {target!r}"
    if len(candidates) == 1:
        return _shell(candidates[0][1])
    return "rerun_check needs a target when the goal has several shell checks"


def _manifest(view: StepView, table: Sequence[tuple[str, str]]) -> tuple[str, str] | None:
    target = view.step.target
    for name, command in table:
        if target and target != name:
            continue
        if (view.goal.workspace / name).is_file():
            return name, command
    return None


def _install_deps(router: BuiltinRouter, view: StepView) -> tuple[Action, ...] | str:
    found = _manifest(view, INSTALLERS)
    return _shell(found[1]) if found else "no dependency manifest at the workspace top"


def _format(router: BuiltinRouter, view: StepView) -> tuple[Action, ...] | str:
    target = view.step.target
    path = "."
    if target:
        if _inside(view.goal.workspace, target) is None:
            return f"{target!r} is not a workspace path"
        path = shlex.quote(target)
    for name, command in FORMATTERS:
        if (view.goal.workspace / name).is_file():
            return _shell(command.format(path=path))
    return "no formatter known for this workspace"


def _repeat_fix(router: BuiltinRouter, view: StepView) -> tuple[Action, ...] | str:
    actions = router.memory.get(step_key(view.step))
    return actions if actions else "no earlier successful run of this exact step"


HANDLERS: Mapping[str, Handler] = {
    "read_file": _read_file,
    "run_tests": _run_tests,
    "rerun_check": _rerun_check,
    "install_deps": _install_deps,
    "format": _format,
    "repeat_fix": _repeat_fix,
}


class BuiltinRouter:
    """Routes steps whose ``op`` has a handler that can act; a failed route is demoted for
    the rest of this router's life (its op is no longer routed, the worker is asked)."""

    def __init__(
        self,
        memory: Mapping[str, tuple[Action, ...]]
        | Callable[[], Mapping[str, tuple[Action, ...]]]
        | None = None,
    ) -> None:
        self._memory = memory
        self._loaded: Mapping[str, tuple[Action, ...]] | None = None
        self.demoted: set[str] = set()

    @property
    def memory(self) -> Mapping[str, tuple[Action, ...]]:
        """Earlier successful steps (read from the store on first use only)."""
        if self._loaded is None:
            source = self._memory
            self._loaded = dict((source() if callable(source) else source) or {})
        return self._loaded

    @property
    def name(self) -> str:
        return "builtin"

    def decide(self, view: StepView) -> Decision:
        op = view.step.op
        if op is None:
            return Decision(reason="the step names no op")
        route = f"builtin:{op}"
        if route in self.demoted:
            return Decision(route=route, source="builtin", reason="demoted after a failure")
        answer = HANDLERS[op](self, view)
        if isinstance(answer, str):
            return Decision(route=route, source="builtin", reason=answer)
        return Decision(route=route, confidence=1.0, routed=True, actions=answer, source="builtin")

    def demote(self, route: str) -> None:
        self.demoted.add(route)
