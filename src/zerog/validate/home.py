"""The environment a check runs in: a private, empty ``HOME`` and no user site-packages.

Actions run with ``HOME`` set to the workspace, so whatever an attempt wrote there is in
the home of every later command: ``~/.local/lib/python3.X/site-packages/x.pth`` runs its
code at the start of every Python that reads the user site-packages (an ``import os;
os._exit(0)`` there passes any ``python3`` check), and ``~/.gitconfig``, ``~/.npmrc``
or ``~/.config/...`` change how tools behave. A check gets instead a ``HOME`` nobody
wrote to, and ``PYTHONNOUSERSITE=1``. (Bytecode planted in the workspace, a ``.pyc``
whose header matches a test file's size and time, is a protected file instead: see
:mod:`zerog.protect`. A ``PYTHONPYCACHEPREFIX`` would stop Python from reading it, but
also from reading the standard library's bytecode: every check would compile the modules
it imports again.)

The home is a directory named with a random token drawn for the sweep, in the temporary
directory the command sees: the host's on ``local`` (zerog removes it after the sweep if
a check created it), the sandbox's private ``/tmp`` on ``bwrap``; on ``wasm``, which has
no writable directory but the workspace, it names a place that does not exist (and the
guest's Python reads no user site). It does not exist when the sweep starts: nobody could
have written to it, since nobody knew its name; tools that need it create it (making a
directory for every sweep cost more, 1-3 ms on this machine's disk, than most checks).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def check_variables(sandbox: str, token: str) -> Iterator[dict[str, str]]:
    """The variables the checks of one sweep run with in the sandbox called ``sandbox``;
    ``token`` (random, drawn for the sweep) names their home."""
    if sandbox != "local":
        yield _variables(f"/tmp/zerog-home-{token}")
        return
    home = os.path.join(tempfile.gettempdir(), f"zerog-home-{token}")
    try:
        yield _variables(home)
    finally:
        if os.path.lexists(home):
            shutil.rmtree(home, ignore_errors=True)


def _variables(home: str) -> dict[str, str]:
    return {"HOME": home, "PYTHONNOUSERSITE": "1"}
