"""Shared fixtures (real temporary workspaces, an engine on every sandbox backend) and the
test tiers: each test is marked from what it uses (see ``pytest_collection_modifyitems``),
so that ``make test-fast`` can leave out what needs model weights, Chromium, Ray or an
isolating sandbox."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest

from builders import EngineFactory, engine
from zerog.sandbox.factory import SANDBOXES


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n", encoding="utf-8")
    return root


@pytest.fixture(params=SANDBOXES)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a sandbox backend: a test that uses it runs once on each backend."""
    return str(request.param)


@pytest.fixture(name="engine")
def engine_on_backend(backend: str) -> EngineFactory:
    """``builders.engine`` on the test's ``backend``: ``engine(model, **options)``."""
    return functools.partial(engine, sandbox=backend)
