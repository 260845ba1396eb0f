"""The set-up the README's two commands rely on stays consistent with the package."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_makefile_builds_the_llama_cpp_version_the_package_pins() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    built = re.search(r"^LLAMA_CPP := (\S+)$", makefile, re.MULTILINE)
    assert built is not None, "the Makefile no longer names the llama-cpp-python it builds"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"][
        "optional-dependencies"
    ]
    assert built.group(1) in extras["local"]
    assert built.group(1) in extras["local-1-5b"]
