"""The preflight's judgement: which failing checks cannot run at all in the sandbox.

Before its first model call a run sweeps its checks once on the untouched workspace. A
check that fails there usually fails for the reason the goal is about: its output is the
first plan's feedback. But some fail because they cannot run at all, and no change to the
workspace will make them pass: a command the sandbox does not have, a Python module its
interpreter cannot import, a shell construct the wasm sandbox does not support. Such a
run would spend tokens and end ``stuck``; the preflight ends it at once instead, naming
the check, the line of output that shows the cause, and the fix.

The judgement is conservative: a check counts as unable to run only on one of these
signs, read from its output, and anything else is left to the loop.

- The shell could not find or execute a command: exit status 126 or 127 with the shell's
  message (``sh: 1: foo: not found``, ``bash: foo: command not found``, ``/usr/bin/env:
  'python': No such file or directory``, the wasm shell's ``command not found``, whose
  127 arrives as 125), for a command looked up on the ``PATH`` or outside the workspace,
  which the goal's text does not name. A script of the workspace that is missing or not
  executable is left alone: the goal may be to create it.
- Python could not import a module: ``PYTHON: No module named X`` (the interpreter's own
  message: ``python3 -m X`` found no X), or ``ModuleNotFoundError: No module named 'X'``
  in a pytest collection error (``ERROR collecting``, ``ImportError while importing test
  module``, ``ImportError while loading conftest``), in a unittest loader error
  (``Failed to import test module``), or as the error the process died of (the last line
  of its stderr). It counts when X (its top-level name) is a test runner (pytest, nose,
  ...) or neither a module or package of the workspace (a file ``X.py``, a directory
  ``X`` anywhere in it, outside virtual environments and caches) nor named in the goal's
  text: a goal "create module foo" may well fail with "No module named foo".
- The wasm shell refused the check's command line (``wasm shell: '|' is not supported``):
  exit status 2 and its message, in the wasm sandbox.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from zerog.sandbox.wasm_shell import MAX_EXIT as WASI_MAX_EXIT
from zerog.text import one_line
from zerog.types import (
    AssertsCheck,
    CannotRun,
    Check,
    CheckResult,
    CommandCheck,
    OutputCheck,
    TestsCheck,
)

RUNNERS = frozenset({"pytest", "_pytest", "nose", "nose2", "coverage", "tox", "nox"})
"""Modules that are the test runner itself: missing, they are never what the goal is about."""

# Directories whose modules are not the workspace's own (an environment the sandbox may not
# use, caches, version control).
FOREIGN_DIRS = frozenset(
    {
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "site-packages",
        "dist-packages",
        "node_modules",
        "__pycache__",
        ".git",
        ".zerog",
        ".hg",
        ".svn",
        ".mypy_cache",
        ".pytest_cache",
        ".ruff_cache",
    }
)
MAX_CAUSE_CHARS = 300

_INTERPRETER = re.compile(r"(?:.*/)?python(?:\d+(?:\.\d+)?)?")
_NO_MODULE_M = re.compile(r"^(?P<python>\S+): No module named (?P<module>[\w.]+)\s*$")
_NO_MODULE_FINDING = re.compile(
    r"^(?P<python>\S+): Error while finding module specification for .*"
    r"No module named '(?P<module>[\w.]+)'"
)
_NO_MODULE = re.compile(
    r"(?:ModuleNotFoundError|ImportError): No module named '?(?P<module>[\w.]+)'?"
)
_IMPORT_CONTEXT = re.compile(
    r"ERROR collecting|ImportError while importing test module|ImportError while loading "
    r"conftest|Failed to import test module"
)
_ENV_MISSING = re.compile(
    r"^\S*env: [\'‘\"]?(?P<command>[^\'’\":]+)[\'’\"]?: No such file or directory\s*$"
)


@dataclass(frozen=True)
class Missing:
    """What a check's output says is missing, and the line that says it."""

    kind: str  # "command", "module" or "shell"
    name: str  # the command, the module, or the refused construct
    line: str
    interpreter: str = ""  # for a module: the python that said so, when it said


def workspace_modules(paths: Iterable[str]) -> frozenset[str]:
    """Every name a workspace path could be imported by: each directory name and each file
    name's stem, outside virtual environments and caches (``paths`` are relative,
    ``/``-separated: a snapshot's entries)."""
    names: set[str] = set()
    for rel in paths:
        parts = rel.split("/")
        if not FOREIGN_DIRS.isdisjoint(parts):
            continue
        names.update(parts[:-1])
        last = parts[-1]
        names.add(last.split(".", 1)[0] if "." in last[1:] else last)
    return frozenset(names)


def _named(name: str, text: str) -> bool:
    """Whether ``text`` names ``name`` as a word (case-insensitively)."""
    return re.search(rf"(?<![\w.]){re.escape(name)}(?!\w)", text, re.IGNORECASE) is not None


def _lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _shell_command(line: str) -> str | None:
    """The command a shell's "not found" / "Permission denied" line names, or None."""
    match = _ENV_MISSING.match(line)
    if match:
        return match["command"]
    parts = line.split(": ")
    for index in range(1, len(parts)):
        tail = parts[index]
        if tail.startswith("command not found") or tail in (
            "not found",
            "Permission denied",
            "No such file or directory",
        ):
            name = parts[index - 1].strip()
            return name or None
    return None


def _command(
    observation_lines: Sequence[str], exit_code: int | None, sandbox: str
) -> Missing | None:
    # WASI exit statuses stop at 125: the wasm shell's 127 arrives as 125.
    if exit_code not in (126, 127) and not (sandbox == "wasm" and exit_code == WASI_MAX_EXIT):
        return None
    for line in observation_lines:
        name = _shell_command(line)
        if name is not None:
            return Missing("command", name, line)
    return None


def _module(stdout: str, stderr: str) -> Missing | None:
    lines = _lines(stderr) + _lines(stdout)
    for line in lines:
        match = _NO_MODULE_M.match(line) or _NO_MODULE_FINDING.match(line)
        if match and _INTERPRETER.fullmatch(match["python"]):
            return Missing("module", match["module"], line, interpreter=match["python"])
    text = f"{stdout}\n{stderr}"
    died = _lines(stderr)[-1:] if stderr.strip() else []
    for line in lines:
        match = _NO_MODULE.search(line)
        if match is None:
            continue
        if _IMPORT_CONTEXT.search(text) or line in died:
            return Missing("module", match["module"], line)
    return None


def _shell_refusal(stderr: str, exit_code: int | None, sandbox: str) -> Missing | None:
    if sandbox != "wasm" or exit_code != 2:
        return None
    for line in _lines(stderr):
        if line.startswith("wasm shell: ") and "usage" not in line:
            return Missing("shell", line.removeprefix("wasm shell: "), line)
    return None


def _missing(result: CheckResult, sandbox: str) -> Missing | None:
    o = result.observation
    return (
        _shell_refusal(o.stderr, o.exit_code, sandbox)
        or _command(_lines(o.stderr) + _lines(o.stdout), o.exit_code, sandbox)
        or _module(o.stdout, o.stderr)
    )


def _in_workspace(command: str, workspace: str) -> bool:
    """Whether a command named by a path is the workspace's (relative, or below it)."""
    if not command.startswith("/"):
        return True
    return command == workspace or command.startswith(workspace.rstrip("/") + "/")


def _unrunnable(missing: Missing, goal_text: str, modules: frozenset[str], workspace: str) -> bool:
    if missing.kind == "shell":
        return True
    if missing.kind == "command":
        if "/" in missing.name and _in_workspace(missing.name, workspace):
            return False  # a script of the workspace: the goal may create it, or chmod it
        return not _named(missing.name.rsplit("/", 1)[-1], goal_text)
    top = missing.name.split(".", 1)[0]
    if top in modules:
        return False
    return top in RUNNERS or not _named(top, goal_text)


def _command_of(check: Check) -> str:
    if isinstance(check, CommandCheck | TestsCheck | OutputCheck):
        return check.command
    if isinstance(check, AssertsCheck):
        return f"python3 {check.path}"
    return ""


def _where(sandbox: str) -> str:
    return f"the {sandbox} sandbox" if sandbox in ("bwrap", "wasm") else f"the {sandbox} backend"


ANYWAY = "If the goal is to provide it, run with --no-preflight."


def _command_fix(name: str, sandbox: str) -> str:
    if sandbox == "wasm":
        return (
            f"The wasm sandbox has no {name}: it runs python and a few shell builtins. "
            "Run with --sandbox bwrap, or rewrite the check in Python."
        )
    if sandbox == "local":
        return (
            f"Install {name} or put its directory on the PATH zerog is started with "
            f"(the local backend runs commands with it). {ANYWAY}"
        )
    return (
        f"{name} is not visible inside {_where(sandbox)}: install it system-wide (under "
        f"/usr) so that the sandbox sees it, or run with --sandbox local (no isolation). "
        f"{ANYWAY}"
    )


def _module_fix(missing: Missing, check: Check, sandbox: str) -> str:
    """Names the interpreter that could not import the module when it said which it was,
    else the check's command's."""
    module = missing.name.split(".", 1)[0]
    if missing.interpreter:
        python = f"{missing.interpreter} (the python the check ran in {_where(sandbox)})"
        target = missing.interpreter
    else:
        first = _command_of(check).split(maxsplit=1)
        runs = first[0] if first and _INTERPRETER.fullmatch(first[0]) else "python"
        python = f"the check's {runs} (in {_where(sandbox)})"
        target = "that interpreter"
    if sandbox == "wasm":
        return (
            f"{python} cannot import {module}: the wasm sandbox's python has the standard "
            f"library only. Run with --sandbox bwrap or --sandbox local. {ANYWAY}"
        )
    if sandbox == "local":
        other = "or start zerog from the environment that has it (e.g. the project's venv)"
    else:
        other = "or run with --sandbox local to use the environment zerog is started from"
    return f"{python} cannot import {module}: install {module} for {target}, {other}. {ANYWAY}"


def _fix(missing: Missing, check: Check, sandbox: str) -> str:
    if missing.kind == "shell":
        return (
            "The wasm sandbox runs python and a few shell builtins, without pipes, "
            "background jobs or command substitution: rewrite the check (a python3 -c "
            "command, or a predicate check) or run with --sandbox bwrap."
        )
    if missing.kind == "command":
        return _command_fix(missing.name, sandbox)
    return _module_fix(missing, check, sandbox)


def cannot_run(
    checks: Iterable[Check],
    results: Iterable[CheckResult],
    *,
    goal_text: str,
    workspace_paths: Iterable[str],
    workspace: str,
    sandbox: str,
) -> tuple[CannotRun, ...]:
    """The checks among ``results`` (the preflight's results of ``checks``, known by
    their labels) that cannot run at all, each with the line of output that shows why and
    the fix.

    ``workspace_paths`` are the untouched workspace's relative paths, ``workspace`` its
    absolute path, ``sandbox`` the backend's name (``bwrap``, ``wasm``, ``local``)."""
    modules = workspace_modules(workspace_paths)
    by_label = {c.label: c for c in checks}
    found: list[CannotRun] = []
    for result in results:
        check = by_label.get(result.name)
        if result.passed or check is None or not _command_of(check):
            continue
        missing = _missing(result, sandbox)
        if missing is None or not _unrunnable(missing, goal_text, modules, workspace):
            continue
        found.append(
            CannotRun(
                check=result.name,
                cause=one_line(missing.line, MAX_CAUSE_CHARS),
                fix=_fix(missing, check, sandbox),
            )
        )
    return tuple(found)


def describe(refusals: Sequence[CannotRun]) -> str:
    """The run's one-line reason: the first check that cannot run and its cause."""
    first = refusals[0]
    more = f" (and {len(refusals) - 1} more)" if len(refusals) > 1 else ""
    return f"the checks cannot run: `{first.check}`: {first.cause}{more}"
