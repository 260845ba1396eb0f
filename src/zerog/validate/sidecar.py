"""The validation sidecar: where predicate and schema checks run, never in the host process.

A check of those kinds becomes a :class:`GuestProgram` (standard library only: the source
of a module in :mod:`zerog.validate.guest` followed by a ``run()`` that calls its ``main``,
plus any support files, such as a pure-Python PyYAML for YAML schema checks) that a
:class:`PythonRunner` runs with the workspace as its working directory. The exit status
carries the verdict (0 pass, 1 fail, 2 could not decide); the output carries the reasons.
A pass counts only with the loader's verdict line: the loader reads the sweep's nonce on
its stdin and prints the line when ``run()`` *returned* 0 (see :mod:`zerog.validate.nonce`),
so code under test that ends the process early (``os._exit(0)``, a ``SystemExit`` that
escapes ``main``) fails the check.

Programs reach the guest as files under ``.zerog/sidecar/`` in the workspace (the one
directory every sandbox shares with the host), content-addressed and checked: the host
rewrites a file whose bytes differ, and the guest's loader runs a program only if its
sha256 is the one on its command line, so a planted or edited program is refused.

Runners (:func:`make_sidecar` builds them by name):

- ``wasm``: CPython compiled to WASI under wasmtime (the ``wasm`` sandbox): only the
  workspace visible, no network, no processes. The default. Its fast path is
  :class:`ComponentPython`, a pre-initialized interpreter (:mod:`zerog.sandbox.
  wasm_component`) that skips CPython's start-up; without it (not built by ``zerog sandbox
  setup``) the checks run through the wasm sandbox's shell, and the runner says why.
- ``sandbox``: the interpreter of the run's own command sandbox (``bwrap``, ``local``);
  the baseline ``zerog bench sweep`` measures the WASM sidecar against.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import json
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from zerog.beneath import Dir, PathEscape, split
from zerog.errors import ConfigError
from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Observation, ShellAction
from zerog.validate.nonce import MARK, stdin_for

if TYPE_CHECKING:
    from zerog.sandbox.wasm import WasmSandbox

GUEST_DIR = Path(__file__).parent / "guest"
PROGRAM_DIR = ".zerog/sidecar"
LIB_DIR = f"{PROGRAM_DIR}/lib"
SIDECARS = ("wasm", "sandbox")
RESULT_MARK = "@@zerog-check@@ "  # the same as in guest/schema.py


@dataclass(frozen=True)
class GuestProgram:
    """A program for the sidecar, and the files it needs (paths relative to
    :data:`PROGRAM_DIR`)."""

    source: str
    files: tuple[tuple[str, bytes], ...] = ()


class PythonRunner(Protocol):
    """Runs a guest program with ``workspace`` as its working directory, through
    :data:`LOADER` with ``nonce`` on its stdin, and the variables ``env`` set."""

    @property
    def name(self) -> str: ...

    def run_python(
        self,
        program: GuestProgram,
        workspace: Path,
        limits: Limits,
        *,
        nonce: str,
        env: Mapping[str, str],
    ) -> Observation: ...


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


def _entry(call: str) -> str:
    """The end of every program: the function the loader calls (its result is the status)."""
    return f"\n\ndef run():\n    return {call}\n"


def predicate_program(python: str) -> GuestProgram:
    body, final, helpers = split_predicate(python)
    call = f"main({body!r}, {final!r}, {helpers!r})"
    return GuestProgram(guest_source("predicate") + _entry(call))


def yaml_library() -> tuple[tuple[str, bytes], ...]:
    """The pure-Python modules of the host's PyYAML, for the guest (its C extension cannot
    load there and is not needed: PyYAML falls back to Python)."""
    try:
        import yaml
    except ImportError:
        raise ValueError("YAML schema checks need PyYAML: pip install 'zerog[yaml]'") from None
    package = Path(yaml.__file__).parent
    return tuple(
        (f"lib/yaml/{path.name}", path.read_bytes()) for path in sorted(package.glob("*.py"))
    )


SchemaCall = tuple[str, str, str, str]  # schema (JSON text), path, format, library dir


def schema_call(schema: object, path: str, fmt: str) -> SchemaCall:
    return json.dumps(schema, separators=(",", ":")), path, fmt, LIB_DIR if fmt == "yaml" else ""


def schema_program(schema: object, path: str, fmt: str) -> GuestProgram:
    call = schema_call(schema, path, fmt)
    files = yaml_library() if fmt == "yaml" else ()
    args = ", ".join(repr(a) for a in call)
    return GuestProgram(guest_source("schema") + _entry(f"main({args})"), files)


def schema_batch_program(calls: Sequence[SchemaCall]) -> GuestProgram:
    """One program for several schema checks (see ``main_many`` in the guest)."""
    files = yaml_library() if any(fmt == "yaml" for _, _, fmt, _ in calls) else ()
    source = guest_source("schema") + _entry(f"main_many({list(calls)!r})")
    return GuestProgram(source, files)


def parse_batch(stdout: str, count: int) -> dict[int, tuple[int, str, str]]:
    """The results a batch program printed: index -> (status, stdout, stderr). Lines that
    are not well-formed results are ignored (their checks are then run one by one)."""
    found: dict[int, tuple[int, str, str]] = {}
    for line in stdout.splitlines():
        if not line.startswith(RESULT_MARK):
            continue
        try:
            value = ast.literal_eval(line[len(RESULT_MARK) :])
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            continue
        if (
            isinstance(value, tuple)
            and len(value) == 4
            and isinstance(value[0], int)
            and 0 <= value[0] < count
            and isinstance(value[1], int)
            and isinstance(value[2], str)
            and isinstance(value[3], str)
        ):
            found[value[0]] = (value[1], value[2], value[3])
    return found


def _ensure(workspace: Path, relative: str, data: bytes) -> None:
    """Make the file at ``relative`` hold exactly ``data`` (rewritten atomically when it
    differs), reached without following links: a planted one is refused."""
    parts = split(relative)
    try:
        with Dir.open(workspace) as top, top.sub(parts[:-1], create=True) as parent:
            with contextlib.suppress(FileNotFoundError, PathEscape):
                if parent.read_regular(parts[-1], len(data)) == data:
                    return
            parent.replace_file(parts[-1], data, 0o644)
    except PathEscape as exc:
        raise ConfigError(
            f"refusing to write the sidecar's programs in {workspace}: {exc} (zerog never "
            "follows links in its state); remove it and run again"
        ) from None


def store_program(workspace: Path, program: GuestProgram) -> tuple[str, str]:
    """Write the program and its files under the workspace's state directory; return the
    program's path relative to the workspace (the path every sandbox sees) and its sha256."""
    data = program.source.encode("utf-8")
    digest = hashlib.sha256(data).hexdigest()
    relative = f"{PROGRAM_DIR}/{digest[:24]}.py"
    for name, content in program.files:
        _ensure(workspace, f"{PROGRAM_DIR}/{name}", content)
    _ensure(workspace, relative, data)
    return relative, digest


# Reads the nonce, then runs a stored program if its sha256 is the expected one, without
# runpy (slow to load under WASI): the status is what the program's run() returns, and
# only a run() that returned 0 gets the verdict line. Started with -I, so the working
# directory is not on sys.path: hashlib is the standard library's. No bytecode is written
# into the workspace. Works with CPython on the host and in the wasm sandbox's guest shell.
LOADER = f"""\
import sys
sys.dont_write_bytecode = True
def load(nonce):
    import hashlib
    p, h = sys.argv[1:3]
    s = open(p, 'rb').read()
    if hashlib.sha256(s).hexdigest() != h:
        return 'zerog: the sidecar program ' + p + ' was modified in the workspace: not run'
    program = {{'__name__': '__main__'}}
    exec(compile(s, p, 'exec'), program)
    status = program['run']()
    if type(status) is int and status == 0:
        print({MARK!r}, nonce, 'passed', flush=True)
    return status
sys.exit(load(sys.stdin.readline().strip()))
"""


class SandboxPython:
    """Guest programs through a sandbox's shell: ``python3 -I -c LOADER PROGRAM SHA256``,
    the nonce on its stdin.

    ``python`` is the interpreter the sandbox starts (``python`` in the wasm sandbox's
    guest shell, which runs it in CPython/WASI).
    """

    def __init__(
        self, sandbox: Sandbox, python: str = "python3", *, fallback: str | None = None
    ) -> None:
        self._sandbox = sandbox
        self._python = python
        self.fallback = fallback  # why a faster runner was not used, if one was wanted

    @property
    def name(self) -> str:
        return f"{self._sandbox.name}-python"

    def run_python(
        self,
        program: GuestProgram,
        workspace: Path,
        limits: Limits,
        *,
        nonce: str,
        env: Mapping[str, str],
    ) -> Observation:
        relative, digest = store_program(workspace, program)
        command = " ".join(
            shlex.quote(word) for word in (self._python, "-I", "-c", LOADER, relative, digest)
        )
        action = ShellAction(command=command)
        return self._sandbox.run(action, workspace, limits, stdin=stdin_for(nonce), env=env)


class ComponentPython:
    """Guest programs in a fresh instance of the sidecar's pre-initialized interpreter (the
    same loader, arguments and nonce on stdin as :class:`SandboxPython`), each in a child
    process under the wasm sandbox's limits."""

    def __init__(self, sandbox: WasmSandbox, data_dir: Path) -> None:
        from zerog.sandbox import wasm_component

        self._sandbox = sandbox
        self._loaded = wasm_component.load(data_dir)

    @property
    def name(self) -> str:
        return "wasm-component"

    def run_python(
        self,
        program: GuestProgram,
        workspace: Path,
        limits: Limits,
        *,
        nonce: str,
        env: Mapping[str, str],
    ) -> Observation:
        from zerog.sandbox.wasm_component import run_component

        relative, digest = store_program(workspace, program)
        root = workspace.resolve()
        variables = self._sandbox.variables(root, env)

        def guest() -> int:
            argv = [LOADER, relative, digest]
            return run_component(self._loaded, argv, root, variables, limits.memory_bytes)

        return self._sandbox.run_guest(guest, root, limits, stdin_for(nonce))


def _wasm_runner(wasm: Sandbox, data_dir: Path | None, environ: Mapping[str, str]) -> PythonRunner:
    """The component runner when it is installed, else the wasm shell's, saying why."""
    from zerog.sandbox.base import SandboxUnavailable
    from zerog.sandbox.wasm import WasmSandbox, default_data_dir

    if not isinstance(wasm, WasmSandbox):
        return SandboxPython(wasm, "python", fallback=f"{wasm.name} is not the wasm backend")
    try:
        return ComponentPython(wasm, data_dir or default_data_dir(environ))
    except SandboxUnavailable as exc:
        return SandboxPython(wasm, "python", fallback=str(exc))


def make_sidecar(
    name: str,
    sandbox: Sandbox,
    env: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    data_dir: Path | None = None,
) -> PythonRunner:
    """The sidecar called ``name`` (``wasm`` or ``sandbox``) for a run whose command
    sandbox is ``sandbox`` and whose sandboxed environment is ``env``.

    ``wasm`` reuses ``sandbox`` when it is the wasm backend, else builds one, and runs
    checks in the pre-initialized component when it is installed (else through the wasm
    sandbox's shell: the runner's ``fallback`` says why); when the WASM runtime is not
    installed it raises :class:`~zerog.sandbox.base.SandboxUnavailable`
    with how to install it (never a silent fallback)."""
    if name == "wasm":
        if sandbox.name == "wasm":
            return _wasm_runner(sandbox, data_dir, environ)
        from zerog.sandbox.factory import make_sandbox

        wasm = make_sandbox("wasm", env, environ=environ, data_dir=data_dir)
        return _wasm_runner(wasm, data_dir, environ)
    if name == "sandbox":
        return SandboxPython(sandbox, "python" if sandbox.name == "wasm" else "python3")
    raise ConfigError(f"unknown sidecar {name!r}: choose one of {', '.join(SIDECARS)}")
