"""The salient tokens of a goal: what must be equal for two goals to share a plan.

Embeddings see "set the limit to 10 in a.py" and "set the limit to 100 in b.py" as almost
the same sentence; they are different goals. Before a cached plan is reused, the numbers,
file names, identifiers, quoted strings and rare words (words the embedding model's
vocabulary does not know as a whole word: ``restock``, ``frobnicate``) of the new goal
must equal the cached goal's, category by category and in order.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from zerog.types import Frozen

_QUOTED = re.compile(r"'([^'\n]{1,200})'|\"([^\"\n]{1,200})\"|`([^`\n]{1,200})`")
_FILE = re.compile(
    r"(?<![\w/.-])((?:[\w-]+/)*[\w-]*\.[A-Za-z][A-Za-z0-9]{0,9}|(?:[\w.-]+/)+[\w.-]+)"
)
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d+(?:[.,]\d+)*(?![\w])")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\(\))?")
_CAMEL = re.compile(r"[a-z][A-Z]|[A-Z]{2,}[a-z]")

IsCommon = Callable[[str], bool]


class Salient(Frozen):
    quoted: tuple[str, ...] = ()
    files: tuple[str, ...] = ()
    numbers: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()


def _identifier(word: str, is_common: IsCommon) -> bool:
    if word.endswith("()") or "_" in word or any(c.isdigit() for c in word):
        return True
    if _CAMEL.search(word):
        return True
    return len(word) >= 3 and not is_common(word.lower())


def extract(text: str, is_common: IsCommon) -> Salient:
    """The salient tokens of ``text``; ``is_common`` says whether a lowercase word is an
    ordinary word (in the embedding model's vocabulary)."""
    quoted = tuple(next(g for g in m.groups() if g is not None) for m in _QUOTED.finditer(text))
    rest = _QUOTED.sub(" ", text)
    files = tuple(
        m.group(1).rstrip(".") for m in _FILE.finditer(rest) if not m.group(1)[0].isdigit()
    )
    rest = _FILE.sub(" ", rest)
    numbers = tuple(m.group(0).lstrip("+") for m in _NUMBER.finditer(rest))
    words = (w for w in _WORD.findall(rest))
    identifiers = tuple(w.removesuffix("()") for w in words if _identifier(w, is_common))
    return Salient(quoted=quoted, files=files, numbers=numbers, identifiers=identifiers)
