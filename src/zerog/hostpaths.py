"""Host paths as less trusted readers see them (the model, clients of `zerog serve`): a
path under a root (the workspace, the server's workspaces root) relative to it, and other
known places by name (the user's home as ``~``, the store's directory as ``<store>``).
Readers learn nothing of the host's layout outside the root: not where the root is, not
where zerog keeps its data, not the user's name."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from pydantic import JsonValue

_BEFORE = r"(?<![\w./~-])"  # a path starts here: not inside a longer name or path
_AFTER = r"(?![\w.-])"  # and the prefix ends at a component boundary


class PathMask:
    """Rewrites host paths in text: ``ROOT/x`` as ``x``, ``ROOT`` alone as ``.``, and
    each prefix of ``names`` as its name (the longest prefix first)."""

    def __init__(self, root: Path, names: Mapping[str, str]) -> None:
        rules = [(str(root), "."), *((p.rstrip("/"), n) for p, n in names.items())]
        self._rules: list[tuple[re.Pattern[str], str]] = []
        for prefix, name in sorted(rules, key=lambda r: len(r[0]), reverse=True):
            if prefix in ("", "/"):
                continue  # the file system root hides nothing and would eat every path
            if name == ".":  # "ROOT/ws/x.py" -> "ws/x.py"
                self._rules.append((re.compile(_BEFORE + re.escape(prefix) + "/"), ""))
            self._rules.append((re.compile(_BEFORE + re.escape(prefix) + _AFTER), name))

    def text(self, text: str) -> str:
        for pattern, replacement in self._rules:
            text = pattern.sub(replacement, text)
        return text

    def json(self, value: JsonValue) -> JsonValue:
        """Every string in a JSON value (keys included), rewritten."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json(v) for v in value]
        if isinstance(value, Mapping):
            return {self.text(str(k)): self.json(v) for k, v in value.items()}
        return value
