"""The real embedding model (installed by `make test`: the cache extra and `zerog cache
setup`), loaded once for the session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zerog.cache.db import Bounds, CacheDB
from zerog.cache.embed import Embedder
from zerog.sandbox.wasm import default_data_dir


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder.installed(default_data_dir(os.environ))


@pytest.fixture
def db(tmp_path: Path) -> CacheDB:
    return CacheDB(tmp_path / "cache.db")


def small_db(path: Path, entries: int) -> CacheDB:
    bounds = {k: Bounds(max_entries=entries) for k in ("model", "tool", "plan")}
    return CacheDB(path, bounds=bounds)
