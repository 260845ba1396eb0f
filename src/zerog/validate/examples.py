"""Checks generated from a goal's own text: the ``>>>`` examples in a Python file's docstrings.

A function stub that documents itself with examples (``>>> add(2, 3)`` then ``5``) already
says how it must behave. :func:`examples_check` turns those examples into a command check
that imports the file in the sandbox, evaluates each example and compares the value with
the documented one (as Python values when the documented text is a literal, as text
otherwise), printing one line per mismatch. The examples are read once, from the file as
it is when the goal is made, so an answer that rewrites the docstring cannot weaken its
own check.

The command is one of zerog's runners (:func:`is_examples_command`): it starts with
``python3 -I``, imports what it needs before the workspace is on ``sys.path`` (appended
last), and confirms a pass with the sweep's nonce (:mod:`zerog.validate.nonce`), so code
under test that ends the process early, or a workspace ``json.py``, cannot pass it.
"""

from __future__ import annotations

import ast
import doctest
import json
import shlex
from dataclasses import dataclass
from pathlib import PurePosixPath

from zerog.errors import ConfigError
from zerog.types import MAX_COMMAND_CHARS, CommandCheck
from zerog.validate.nonce import MARK

EXAMPLE_TIMEOUT = 5.0


@dataclass(frozen=True)
class Example:
    """One documented call: the source after ``>>>`` and the text shown as its result."""

    source: str
    want: str


def extract_examples(source: str) -> tuple[Example, ...]:
    """The ``>>>`` examples of every docstring in ``source`` (a Python module), in order.

    Examples whose expected output is empty (statements such as imports or assignments)
    are kept: they set up the names later examples use. Unparseable sources give none.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return ()
    parser = doctest.DocTestParser()
    found: list[Example] = []
    nodes = [tree, *ast.walk(tree)]
    seen: set[int] = set()
    for node in nodes:
        if not isinstance(node, ast.Module | ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            continue
        if id(node) in seen:
            continue
        seen.add(id(node))
        doc = ast.get_docstring(node, clean=True)
        if not doc:
            continue
        try:
            parsed = parser.get_examples(doc)
        except ValueError:  # inconsistent indentation and the like: no usable examples
            continue
        for ex in parsed:
            found.append(Example(source=ex.source.strip(), want=ex.want.strip()))
    return tuple(found)


_EMPTY: dict[type, object] = {list: [], str: "", int: 0, float: 0.0, tuple: (), dict: {}}


def edge_call(examples: tuple[Example, ...]) -> str | None:
    """A generated test: the first documented call again with every argument replaced by
    the empty value of its type (``[]``, ``""``, ``0``...), or None when the call's
    arguments are not plain literals. Only that it returns (no exception, no hang) is
    checked: a small model's wrong answer often breaks on the edge the examples skip."""
    for example in examples:
        if not example.want:
            continue
        try:
            call = ast.parse(example.source, mode="eval").body
        except SyntaxError:
            continue
        if not isinstance(call, ast.Call) or not isinstance(call.func, ast.Name) or call.keywords:
            continue
        args: list[str] = []
        for arg in call.args:
            try:
                value = ast.literal_eval(arg)
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                return None
            empty = _EMPTY.get(type(value), value)
            args.append(repr(empty))
        if not args:
            return None
        return f"{call.func.id}({', '.join(args)})"
    return None


# The script the check runs: stdlib only, output bounded, one line per failed example.
# Its first line names it (is_examples_command); it reads the nonce before anything else.
RUNNER_MARK = "# zerog: docstring examples"
_RUNNER = """\
import ast, importlib, json, os, signal, sys
def alarm(signum, frame):
    raise TimeoutError(f"took longer than {LIMIT} s")
def main(nonce):
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path.extend([os.getcwd(), *extra])
    cases = json.loads(CASES)
    ns = {}
    try:
        module = importlib.import_module(MODULE)
    except BaseException as exc:
        print(f"cannot import {MODULE}: {type(exc).__name__}: {exc}"[:500])
        return 1
    ns.update(vars(module))
    signal.signal(signal.SIGALRM, alarm)
    failed = 0
    for source, want in cases:
        signal.alarm(LIMIT)
        try:
            if not want:
                exec(source, ns)
                continue
            got = eval(source, ns)
            try:
                ok = bool(got == ast.literal_eval(want))
            except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
                ok = repr(got) == want or str(got) == want
            if not ok:
                failed += 1
                print(f"{source} returned {got!r:.200}, expected {want:.200}")
        except BaseException as exc:
            failed += 1
            print(f"{source[:200]} raised {type(exc).__name__}: {str(exc)[:200]}")
        finally:
            signal.alarm(0)
    for source in EDGE:
        signal.alarm(LIMIT)
        try:
            eval(source, ns)
        except BaseException as exc:
            failed += 1
            name = type(exc).__name__
            print(f"{source[:200]} (a generated edge case) raised {name}: {str(exc)[:200]}")
        finally:
            signal.alarm(0)
    print(f"{len(cases) - failed + len(EDGE)} of {len(cases) + len(EDGE)} examples pass")
    if failed:
        return 1
    print(MARK, nonce, "passed", flush=True)
    return 0
sys.exit(main(sys.stdin.readline().strip()))
"""


def examples_script(module: str, examples: tuple[Example, ...], edge: tuple[str, ...] = ()) -> str:
    """The Python program that checks ``examples`` against ``module`` (importable name),
    then that each ``edge`` call returns at all."""
    cases = json.dumps([[e.source, e.want] for e in examples])
    return (
        f"{RUNNER_MARK}\nCASES = {cases!r}\nEDGE = {list(edge)!r}\nMODULE = {module!r}\n"
        f"LIMIT = {int(EXAMPLE_TIMEOUT)}\nMARK = {MARK!r}\n" + _RUNNER
    )


def is_examples_command(command: str) -> bool:
    """Whether ``command`` is the command of an examples check (a runner of zerog's that
    confirms its verdict with the sweep's nonce)."""
    try:
        words = shlex.split(command)
    except ValueError:
        return False
    return (
        len(words) == 4
        and words[:3] == ["python3", "-I", "-c"]
        and words[3].startswith(RUNNER_MARK + "\n")
    )


def examples_check(path: str, source: str, *, name: str = "", edge: bool = False) -> CommandCheck:
    """A command check running the docstring examples of ``source`` against the module at
    workspace path ``path`` (a ``.py`` file at the workspace root or in a package dir).

    A file without examples still gets a check: that the module imports cleanly. When
    the examples would make the command too long, the last ones are left out. With
    ``edge`` the check also makes the :func:`edge_call` of the examples.
    """
    rel = PurePosixPath(path)
    if rel.suffix != ".py" or rel.is_absolute() or ".." in rel.parts:
        raise ConfigError(f"examples need a .py file inside the workspace, not {path!r}")
    module = ".".join(rel.with_suffix("").parts)
    examples = extract_examples(source)
    extra = edge_call(examples) if edge else None
    edges = (extra,) if extra else ()
    while True:
        command = f"python3 -I -c {shlex.quote(examples_script(module, examples, edges))}"
        if len(command) <= MAX_COMMAND_CHARS or not examples:
            break
        examples = examples[:-1]
    return CommandCheck(command=command, name=name or f"docstring examples of {path}", timeout=60.0)
