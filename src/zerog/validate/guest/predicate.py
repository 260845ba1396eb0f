"""Runs a predicate check: Python over the workspace files, its working directory.

This file is a *guest program*: the sweep ships its source, followed by a call of
:func:`main`, to the validation sidecar (CPython/WASI, or a sandboxed interpreter), so the
predicate never runs in the host process. Standard library only, no zerog imports, and as
few imports as possible: every module imported costs tens of milliseconds under WASI.

The host has already split the predicate (see :func:`zerog.validate.sidecar.
predicate_program`): ``body`` is every statement but a final expression, ``final`` that
expression, or a comparison's two sides and operator, so that a false comparison reports
both sides (``41 == 42``) without the guest importing :mod:`ast`.
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds under WASI: not at run time
if TYPE_CHECKING:
    from collections.abc import Callable

MAX_REPR = 300
MAX_FRAMES = 4
_OPERATORS: dict[str, Callable[..., object]] = {
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
    "is": lambda a, b: a is b,
    "is not": lambda a, b: a is not b,
}


def _repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_REPR else text[: MAX_REPR - 3] + "..."


def read(path: str) -> str:
    """The text of a workspace file (a helper predicates may use)."""
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def load_json(path: str) -> object:
    """A workspace file parsed as JSON (a helper predicates may use)."""
    import json

    return json.loads(read(path))


def _namespace(helpers: list[str]) -> dict[str, object]:
    namespace: dict[str, object] = {
        "__name__": "__predicate__",
        "os": os,
        "read": read,
        "load_json": load_json,
    }
    if "Path" in helpers:
        from pathlib import Path

        namespace["Path"] = Path
    if "json" in helpers:
        import json

        namespace["json"] = json
    if "re" in helpers:
        import re

        namespace["re"] = re
    return namespace


def _line(filename: str, number: int, body: str) -> str:
    try:
        if filename == "<predicate>":
            return body.splitlines()[number - 1].strip()
        with open(filename, encoding="utf-8", errors="replace") as handle:
            for i, line in enumerate(handle, 1):
                if i == number:
                    return line.strip()
    except (OSError, IndexError):
        pass
    return ""


def _report(exc: BaseException, body: str) -> None:
    """A traceback's last frames and the exception, without importing :mod:`traceback`."""
    frames = []
    tb = exc.__traceback__.tb_next if exc.__traceback__ else None  # skip main()'s frame
    while tb is not None:
        code = tb.tb_frame.f_code
        frames.append((code.co_filename, tb.tb_lineno, code.co_name))
        tb = tb.tb_next
    out = ["Traceback (most recent call last):"]
    if len(frames) > MAX_FRAMES:
        out.append(f"  [... {len(frames) - MAX_FRAMES} earlier frames ...]")
    for filename, number, name in frames[-MAX_FRAMES:]:
        out.append(f'  File "{filename}", line {number}, in {name}')
        text = _line(filename, number, body)
        if text:
            out.append(f"    {text}")
    message = str(exc)
    out.append(f"{type(exc).__name__}: {message}" if message else type(exc).__name__)
    print("\n".join(out), file=sys.stderr)


def main(body: str, final: list[str], helpers: list[str]) -> int:
    """Exit status: 0 true, 1 false, 2 the predicate raised.

    ``final`` is ``[]`` (no final expression), ``[expression]``, or ``[left, operator,
    right]`` for a comparison."""
    # Predicates may import workspace modules, but never in place of the standard
    # library's: the workspace comes last on the path (a workspace json.py is not json).
    sys.path.append(os.getcwd())
    namespace = _namespace(helpers)
    try:
        exec(compile(body, "<predicate>", "exec"), namespace)  # noqa: S102
        if not final:
            truth, explanation = True, "the predicate ran to its end"
        elif len(final) == 1:
            value = eval(compile(final[0], "<predicate>", "eval"), namespace)  # noqa: S307
            truth, explanation = bool(value), f"its value is {_repr(value)}"
        else:
            left = eval(compile(final[0], "<predicate>", "eval"), namespace)  # noqa: S307
            right = eval(compile(final[2], "<predicate>", "eval"), namespace)  # noqa: S307
            truth = bool(_OPERATORS[final[1]](left, right))
            explanation = f"{_repr(left)} {final[1]} {_repr(right)}"
    except (Exception, SystemExit) as exc:
        _report(exc, body)
        print("predicate raised an exception (above)", file=sys.stderr)
        return 2
    if truth:
        print(f"predicate is true: {explanation}")
        return 0
    print(f"predicate is false: {explanation}", file=sys.stderr)
    return 1
