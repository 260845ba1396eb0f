"""The run store a command names (--store), opened, or a clear error and exit code 2."""

from __future__ import annotations

import os
from pathlib import Path

from zerog.cli.errors import fail
from zerog.errors import ZerogError
from zerog.store import Store, default_store_path


def open_store(path: Path | None) -> Store:
    """``path``, else $ZEROG_STORE, else the default store, opened."""
    try:
        return Store(path or default_store_path(os.environ))
    except ZerogError as exc:
        fail(exc)
