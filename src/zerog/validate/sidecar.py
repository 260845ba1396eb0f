"""The validation sidecar: where predicate and schema checks run, never in the host process.

A check of those kinds becomes a *guest program* (standard library only: the source of a
module in :mod:`zerog.validate.guest` followed by one call of its ``main``) that a
:class:`PythonRunner` runs with the workspace as its working directory. The exit status
carries the verdict (0 pass, 1 fail, 2 could not decide); the output carries the reasons.

Runners:

- :class:`WasmPython`: CPython compiled to WASI, under wasmtime (the ``wasm`` sandbox).
- :class:`SandboxPython`: an interpreter started through a command sandbox (``local``,
  ``bwrap``). Used where the WASM runtime is not installed, and as the baseline that
  ``zerog bench sweep`` measures the WASM sidecar against.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import shlex
from pathlib import Path
from typing import Protocol

from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Observation, ShellAction

GUEST_DIR = Path(__file__).parent / "guest"
PROGRAM_DIR = Path(".zerog") / "sidecar"


class PythonRunner(Protocol):
    """Runs a self-contained Python program with ``workspace`` as its working directory."""

    @property
    def name(self) -> str: ...

    def run_python(self, source: str, workspace: Path, limits: Limits) -> Observation: ...


def guest_source(module: str) -> str:
    """The source of a guest module (read when checks are compiled, once per goal)."""
    return (GUEST_DIR / f"{module}.py").read_text(encoding="utf-8")


_SYMBOLS: dict[type[ast.cmpop], str] = {
    ast.Eq: "==",
    ast.NotEq: "!=",
    ast.Lt: "<",
    ast.LtE: "<=",
    ast.Gt: ">",
    ast.GtE: ">=",
    ast.In: "in",
    ast.NotIn: "not in",
    ast.Is: "is",
    ast.IsNot: "is not",
}
_HELPERS = frozenset({"Path", "json", "re"})


def _segment(source: str, node: ast.expr) -> str:
    return ast.get_source_segment(source, node) or ast.unparse(node)


def split_predicate(python: str) -> tuple[str, list[str], list[str]]:
    """(body, final, helpers) for the predicate guest: the statements before a final
    expression (original text, so line numbers hold), the final expression or a
    comparison's (left, operator, right), and the helper modules it names."""
    tree = ast.parse(python, "<predicate>")
    helpers = sorted({n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} & _HELPERS)
    last = tree.body[-1] if tree.body else None
    if not isinstance(last, ast.Expr):
        return python, [], helpers
    lines = python.splitlines()
    if last.col_offset == 0:
        body = "\n".join(lines[: last.lineno - 1])
    else:  # `x = f(); x > 1` on one line: the rest is rebuilt
        body = ast.unparse(ast.Module(body=tree.body[:-1], type_ignores=[]))
    expr = last.value
    if isinstance(expr, ast.Compare) and len(expr.ops) == 1 and type(expr.ops[0]) in _SYMBOLS:
        left, right = expr.left, expr.comparators[0]
        final = [_segment(python, left), _SYMBOLS[type(expr.ops[0])], _segment(python, right)]
        return body, final, helpers
    return body, [_segment(python, expr)], helpers


def predicate_program(python: str) -> str:
    body, final, helpers = split_predicate(python)
    call = f"main({body!r}, {final!r}, {helpers!r})"
    return guest_source("predicate") + f"\n\nraise SystemExit({call})\n"


def schema_program(schema: object, path: str, fmt: str) -> str:
    schema_text = json.dumps(schema, separators=(",", ":"))
    return (
        guest_source("schema") + f"\n\nraise SystemExit(main({schema_text!r}, {path!r}, {fmt!r}))\n"
    )


def _store_program(workspace: Path, source: str) -> str:
    """Write ``source`` under the workspace's state directory, content-addressed; return
    its path relative to the workspace (the path every sandbox sees)."""
    digest = hashlib.sha256(source.encode()).hexdigest()[:24]
    relative = PROGRAM_DIR / f"{digest}.py"
    target = workspace / relative
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        temp = target.with_name(f".{digest}.{os.getpid()}.{id(source)}.tmp")
        temp.write_text(source, encoding="utf-8")
        os.replace(temp, target)
    return relative.as_posix()


# Runs the stored program without runpy (slow to load under WASI); its exit status is
# the program's. Works for CPython on the host and for the wasm sandbox's guest shell.
LOADER = (
    "import sys; p = sys.argv[1]; "
    "exec(compile(open(p, encoding='utf-8').read(), p, 'exec'), {'__name__': '__main__'})"
)


class SandboxPython:
    """Guest programs through a sandbox's shell: ``python3 -I -c LOADER .zerog/sidecar/<hash>.py``.

    The program file is written once per distinct program (content-addressed) and reused.
    ``python`` is the interpreter the sandbox starts (``python`` in the wasm sandbox's
    guest shell); YAML schema checks need PyYAML importable there.
    """

    def __init__(self, sandbox: Sandbox, python: str = "python3") -> None:
        self._sandbox = sandbox
        self._python = python

    @property
    def name(self) -> str:
        return f"{self._sandbox.name}-python"

    def run_python(self, source: str, workspace: Path, limits: Limits) -> Observation:
        relative = _store_program(workspace, source)
        command = f"{shlex.quote(self._python)} -I -c {shlex.quote(LOADER)} {shlex.quote(relative)}"
        return self._sandbox.run(ShellAction(command=command), workspace, limits)
