"""Shared fixtures: real temporary workspaces."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n", encoding="utf-8")
    return root
