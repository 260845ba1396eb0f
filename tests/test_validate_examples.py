"""Checks generated from docstring examples, run for real in the local sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerog.errors import ConfigError
from zerog.sandbox.base import Limits
from zerog.sandbox.local import LocalSandbox
from zerog.types import MAX_COMMAND_CHARS, ShellAction
from zerog.validate.examples import Example, edge_call, examples_check, extract_examples

pytestmark = pytest.mark.slow  # each check runs generated code in a subprocess, seconds each

STUB = '''\
from typing import List


def below_zero(operations: List[int]) -> bool:
    """ Detect whether the balance ever falls below zero.
    >>> below_zero([1, 2, 3])
    False
    >>> below_zero([1, 2, -4, 5])
    True
    """


def greet(name: str) -> str:
    """
    >>> greet('Ann')
    'hello Ann'
    >>> x = greet('Bo')
    >>> len(x)
    8
    """
'''

RIGHT = (
    STUB.replace(
        '    """\n\n\ndef greet',
        '    """\n    total = 0\n    for op in operations:\n        total += op\n'
        "        if total < 0:\n            return True\n    return False\n\n\ndef greet",
    ).rstrip("\n")
    + "\n    return 'hello ' + name\n"
)


def run(workspace: Path, source: str, code: str) -> tuple[bool, str]:
    (workspace / "solution.py").write_text(code, encoding="utf-8")
    check = examples_check("solution.py", source)
    sandbox = LocalSandbox({"PATH": "/usr/bin:/bin", "HOME": str(workspace)})
    seen = sandbox.run(ShellAction(command=check.command), workspace, Limits(timeout=30))
    return seen.ok, seen.stdout + seen.stderr


def test_examples_are_extracted_in_order_with_their_expected_text() -> None:
    assert extract_examples(STUB) == (
        Example("below_zero([1, 2, 3])", "False"),
        Example("below_zero([1, 2, -4, 5])", "True"),
        Example("greet('Ann')", "'hello Ann'"),
        Example("x = greet('Bo')", ""),
        Example("len(x)", "8"),
    )
    assert extract_examples("def broken(:\n") == ()


def test_a_right_answer_passes_and_a_wrong_one_is_told_what_differs(tmp_path: Path) -> None:
    ok, out = run(tmp_path, STUB, RIGHT)
    assert ok, out
    assert "5 of 5 examples pass" in out
    wrong = RIGHT.replace("total < 0", "total < -100")
    ok, out = run(tmp_path, STUB, wrong)
    assert not ok
    assert "below_zero([1, 2, -4, 5]) returned False, expected True" in out
    assert "4 of 5 examples pass" in out


def test_exceptions_import_errors_and_hangs_fail_the_check(tmp_path: Path) -> None:
    ok, out = run(tmp_path, STUB, RIGHT.replace("return 'hello ' + name", "return 1 / 0"))
    assert not ok
    assert "greet('Ann') raised ZeroDivisionError" in out
    ok, out = run(tmp_path, STUB, "def below_zero(:\n")
    assert not ok
    assert "cannot import solution: SyntaxError" in out
    hang = RIGHT.replace("    total = 0\n", "    while True:\n        pass\n")
    ok, out = run(tmp_path, STUB, hang)
    assert not ok
    assert "TimeoutError" in out


def test_a_file_without_examples_only_has_to_import(tmp_path: Path) -> None:
    source = "def f():\n    '''No examples here.'''\n"
    ok, out = run(tmp_path, source, "def f():\n    return 1\n")
    assert ok, out
    assert "0 of 0 examples pass" in out


def test_bad_paths_are_refused_and_long_example_lists_are_cut() -> None:
    with pytest.raises(ConfigError, match="inside the workspace"):
        examples_check("../x.py", STUB)
    with pytest.raises(ConfigError, match=r"\.py file"):
        examples_check("notes.txt", STUB)
    many = (
        "def f(x):\n    '''\n"
        + "".join(f"    >>> f({'x' * 40}{i})\n    {i}\n" for i in range(400))
        + "    '''\n"
    )
    check = examples_check("pkg/mod.py", many)
    assert len(check.command) <= MAX_COMMAND_CHARS
    assert "pkg.mod" in check.command
    assert check.label == "docstring examples of pkg/mod.py"


def test_the_generated_edge_call_catches_an_answer_that_breaks_on_empty_input(
    tmp_path: Path,
) -> None:
    assert edge_call(extract_examples(STUB)) == "below_zero([])"
    assert edge_call((Example("f(x)", "1"),)) is None  # not a literal: no guess
    fragile = RIGHT.replace("    total = 0\n", "    total = operations[0] - operations[0]\n")
    (tmp_path / "solution.py").write_text(fragile, encoding="utf-8")
    sandbox = LocalSandbox({"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    for edge, passes in ((False, True), (True, False)):
        check = examples_check("solution.py", STUB, edge=edge)
        seen = sandbox.run(ShellAction(command=check.command), tmp_path, Limits(timeout=30))
        assert seen.ok is passes, seen.stdout
    assert "below_zero([]) (a generated edge case) raised IndexError" in seen.stdout
