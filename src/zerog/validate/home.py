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

Where that home is depends on what the backend lets a command write outside the
workspace: ``local`` gets a new directory made by zerog on the host and removed after the
sweep; ``bwrap`` a name under its private ``/tmp`` that nobody could guess before the
sweep (commands create it when they need it: Python's tools make their directories);
``wasm`` has no writable directory but the workspace, so its checks' ``HOME`` names a
directory that does not exist there (and its Python never reads a user site).
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def check_variables(sandbox: str, token: str) -> Iterator[dict[str, str]]:
    """The variables the checks of one sweep run with in the sandbox called ``sandbox``;
    ``token`` (random, per sweep) names their home where zerog does not create it."""
    if sandbox != "local":
        yield _variables(f"/tmp/zerog-home-{token}")
        return
    home = tempfile.mkdtemp(prefix="zerog-home-")
    try:
        yield _variables(home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _variables(home: str) -> dict[str, str]:
    return {"HOME": home, "PYTHONNOUSERSITE": "1"}
