"""The salient tokens of a goal: what must be equal for two goals to share a plan.

Embeddings see "set the limit to 10 in a.py" and "set the limit to 100 in b.py" as almost
the same sentence; they are different goals. Before a cached plan is reused, the numbers,
file names, identifiers, quoted strings and rare words (words the embedding model's
vocabulary does not know as a whole word: ``restock``, ``frobnicate``) of the new goal
must match the cached goal's:

- quoted strings, file names, numbers and code identifiers (``snake_case``,
  ``camelCase``, with digits) must be equal, category by category and in order (so that
  "from 8000 to 9000" and "from 9000 to 8000" differ);
- rare words are looser, since a paraphrase may add or drop one ("rename" against
  "change the name"): two goals are incompatible only when *each* has a rare word that
  the other goal's text does not contain at all, which is what a swapped target looks
  like ("fix restock" against "fix reorder").
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
    rare: frozenset[str] = frozenset()  # lowercase words the vocabulary does not know
    words: frozenset[str] = frozenset()  # every lowercase word of the text

    def matches(self, other: Salient) -> bool:
        """Whether two goals may share a plan as far as their salient tokens go."""
        if (self.quoted, self.files, self.numbers, self.identifiers) != (
            other.quoted,
            other.files,
            other.numbers,
            other.identifiers,
        ):
            return False
        return not (self.rare - other.words and other.rare - self.words)


def _code(word: str) -> bool:
    return "_" in word or any(c.isdigit() for c in word) or bool(_CAMEL.search(word))


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
    words = [w.removesuffix("()") for w in _WORD.findall(rest)]
    identifiers = tuple(w for w in words if _code(w))
    plain = {w.lower() for w in words if not _code(w)}
    rare = frozenset(w for w in plain if len(w) >= 3 and not is_common(w))
    return Salient(
        quoted=quoted,
        files=files,
        numbers=numbers,
        identifiers=identifiers,
        rare=rare,
        words=frozenset(plain),
    )
