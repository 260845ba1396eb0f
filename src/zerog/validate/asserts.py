"""A check for a plain Python test script (a file of ``assert`` statements), with sharper
failure output.

The ``asserts`` check kind (:class:`~zerog.types.AssertsCheck`, ``zerog run
--assert-script``) runs the program this module writes. A bare ``AssertionError`` says
which line failed, not what the code returned: the model
reading the feedback sees ``assert f([1, 2, 3, 2]) == [1, 3]`` and has to guess. The
check made by :func:`assert_script_check` runs the script as ``python3 path`` would, and
when an ``assert`` fails it prints, after the usual traceback, the values of the failing
comparison's sides and of the calls in it, evaluated again in the failing frame (the
way pytest explains an assert, without needing pytest in the sandbox). Each value is
re-evaluated under a time limit and shortened; a side that raises is shown as raising.
The script's exit status is the check's verdict, as with ``python3 path``, with two
differences that keep code under test from faking it:

- the runner starts with ``python3 -I`` and imports what it needs before anything of the
  workspace is on ``sys.path``; then the script's directory (and ``PYTHONPATH``, which
  ``-I`` ignores) are appended, after the standard library, so a workspace ``json.py``
  does not replace ``json`` for the script either;
- it reads the sweep's nonce on its stdin and prints the verdict line only when the
  script ran to its end, or ended itself with ``sys.exit(0)``: an exit the code it
  imports makes (``sys.exit(0)`` or ``os._exit(0)`` in the solution, say) fails the
  check (:mod:`zerog.validate.nonce`).
"""

from __future__ import annotations

import shlex

from pydantic import ValidationError

from zerog.errors import ConfigError
from zerog.types import AssertsCheck
from zerog.validate.nonce import MARK

EXPLAIN_SECONDS = 5

# Stdlib only; runs in the sandbox (python3 -I) with the workspace as the working directory.
_RUNNER = """\
import ast, builtins, os, runpy, signal, sys, traceback
sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
sys.path.extend([os.path.dirname(os.path.abspath(PATH)), *extra])
sys.argv = [PATH]
def alarm(signum, frame):
    raise TimeoutError(f"took longer than {LIMIT} s")
def shown(code, frame):
    signal.signal(signal.SIGALRM, alarm)
    signal.alarm(LIMIT)
    try:
        return repr(eval(code, frame.f_globals, frame.f_locals))[:300]
    except BaseException as exc:
        return f"raised {type(exc).__name__}: {str(exc)[:200]}"
    finally:
        signal.alarm(0)
def explain(frame, line):
    try:
        with open(PATH, encoding="utf-8") as handle:
            source = handle.read()
        tree = ast.parse(source)
    except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
        return
    found = [n for n in ast.walk(tree) if isinstance(n, ast.Assert)
             and n.lineno <= line <= (n.end_lineno or n.lineno)]
    if not found:
        return
    test = found[-1].test
    parts = []
    if isinstance(test, ast.Compare) and len(test.ops) == 1:
        parts.append(("left side", test.left))
        parts.append(("right side", test.comparators[0]))
    else:
        inner = test.operand if isinstance(test, ast.UnaryOp) else test
        parts.append(("value", inner))
    seen = {ast.dump(node) for _, node in parts}
    for node in ast.walk(test):
        if len(parts) >= 6:
            break
        if not isinstance(node, ast.Call) or ast.dump(node) in seen:
            continue
        if isinstance(node.func, ast.Name) and hasattr(builtins, node.func.id):
            continue  # abs(...), len(...): the call inside them is what matters
        seen.add(ast.dump(node))
        parts.append((ast.unparse(node)[:200], node))
    where = f"The failing assert (line {line}), its parts evaluated again"
    print(f"{where}: {ast.unparse(test)[:400]}", file=sys.stderr)
    for label, node in parts:
        code = compile(ast.Expression(node), PATH, "eval")
        print(f"  {label}: {shown(code, frame)}", file=sys.stderr)
def report(exc):
    shown = traceback.TracebackException.from_exception(exc)
    stack = list(shown.stack)
    while stack and (stack[0].filename == "<string>" or "runpy" in stack[0].filename):
        stack.pop(0)  # this runner's own frames
    shown.stack = traceback.StackSummary.from_list(stack)
    print("".join(shown.format()), end="", file=sys.stderr)
def own_exit(exc):
    root, last = os.getcwd() + os.sep, None
    tb = exc.__traceback__
    while tb is not None:
        name = os.path.abspath(tb.tb_frame.f_code.co_filename)
        if name.startswith(root):
            last = name
        tb = tb.tb_next
    return last == os.path.abspath(PATH)
def main(nonce):
    try:
        runpy.run_path(PATH, run_name="__main__")
    except SystemExit as exc:
        if exc.code not in (None, 0):
            raise
        if not own_exit(exc):
            report(exc)
            print("zerog: the test script did not run to its end: code it imports ended "
                  "the process with SystemExit(" + repr(exc.code) + ")", file=sys.stderr)
            return 1
    except AssertionError as exc:
        report(exc)
        where = None
        tb = exc.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == PATH:
                where = (tb.tb_frame, tb.tb_lineno)
            tb = tb.tb_next
        if where is not None:
            explain(*where)
        return 1
    except BaseException as exc:
        report(exc)
        return 1
    print(MARK, nonce, "passed", flush=True)
    return 0
sys.exit(main(sys.stdin.readline().strip()))
"""


def assert_script(path: str, explain_seconds: int = EXPLAIN_SECONDS) -> str:
    """The Python program that runs the test script at ``path`` and explains a failed
    assert (each value re-evaluated for at most ``explain_seconds``)."""
    return f"PATH = {path!r}\nLIMIT = {int(explain_seconds)}\nMARK = {MARK!r}\n" + _RUNNER


def assert_command(path: str, explain_seconds: int = EXPLAIN_SECONDS) -> str:
    """The shell command an ``asserts`` check runs in the sandbox."""
    if explain_seconds < 1:
        raise ConfigError("explain_seconds must be at least 1")
    return f"python3 -I -c {shlex.quote(assert_script(path, explain_seconds))}"


def assert_script_check(path: str, *, name: str = "", timeout: float = 120.0) -> AssertsCheck:
    """The ``asserts`` check of the workspace test script ``path`` (a ``.py`` file inside
    the workspace); a bad path is a :class:`ConfigError`."""
    try:
        return AssertsCheck(path=path, name=name, timeout=timeout)
    except ValidationError as exc:
        reason = exc.errors()[0]["msg"].removeprefix("Value error, ")
        raise ConfigError(
            f"a test script must be a .py file inside the workspace: {reason}"
        ) from None
