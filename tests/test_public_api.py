from __future__ import annotations

import subprocess
import sys

import zerog


def test_public_surface_is_declared() -> None:
    for name in ("Goal", "Budget", "Engine", "run", "RunResult", "ScriptedModel"):
        assert name in zerog.__all__
    assert all(hasattr(zerog, name) for name in zerog.__all__)


def test_import_is_light_and_side_effect_free() -> None:
    code = "import sys, zerog; print(sorted(m for m in ('typer', 'rich') if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
