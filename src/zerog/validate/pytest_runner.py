"""The runner zerog puts around a ``tests`` check that runs pytest: ``PYTHON -m pytest ARGS``.

``python3 -m pytest`` puts the working directory first on ``sys.path``, so a workspace
``pytest.py`` (or ``_pytest/``) is imported instead of pytest, and its exit status, 0,
would be the check's. The runner starts the same interpreter with ``-I`` (nothing of the
workspace on the path, no user site-packages), imports pytest from where it is installed,
only then appends the working directory (and the entries of ``PYTHONPATH``, which ``-I``
ignores) to the path, and calls ``pytest.main(ARGS)``; bytecode is read and written as
``PYTHONDONTWRITEBYTECODE`` says (``-I`` ignores it too). It
reads the sweep's nonce on its stdin first and prints the verdict line only when pytest
returned 0 (:mod:`zerog.validate.nonce`): tests that end the process early fail.

Only a plain command is wrapped: the interpreter, ``-m pytest`` and arguments, without
anything the shell would expand or chain (``$``, globs, ``;``, ``&&``, pipes, ...). Any
other command (``pytest -q``, ``make test``, ``tox``) runs as written, and its exit
status and junit report decide, as for any command zerog does not wrap.
"""

from __future__ import annotations

import re
import shlex

from zerog.validate.nonce import MARK

_PYTHON = re.compile(r"(?:.*/)?python(?:3(?:\.\d+)?)?")
_SHELL_SYNTAX = frozenset("$`*?[]{}~;&|<>()\\\n#")

_RUNNER = f"""\
import sys
def main(nonce):
    import os
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    import pytest
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path.extend([os.getcwd(), *extra])
    status = pytest.main(sys.argv[1:])
    if type(status) is not int:
        status = int(status)
    if status == 0:
        print({MARK!r}, nonce, "passed", flush=True)
    return status
sys.exit(main(sys.stdin.readline().strip()))
"""


def wrap_pytest(command: str) -> str | None:
    """The command that runs ``command`` (``PYTHON -m pytest ARGS``) through the runner,
    or None when ``command`` is anything else (it then runs as written)."""
    if not _plain(command):
        return None
    words = shlex.split(command)
    if len(words) < 3 or not _PYTHON.fullmatch(words[0]) or words[1:3] != ["-m", "pytest"]:
        return None
    return shlex.join([words[0], "-I", "-c", _RUNNER, *words[3:]])


def _plain(command: str) -> bool:
    """Whether the shell would take ``command`` as words only: no character it expands or
    treats as syntax outside quotes, no ``$``, backquote or backslash in double quotes."""
    quote = ""
    for char in command:
        if quote == "'":
            quote = "" if char == "'" else quote
        elif quote == '"':
            if char in "$`\\":
                return False
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
        elif char in _SHELL_SYNTAX:
            return False
    return not quote
