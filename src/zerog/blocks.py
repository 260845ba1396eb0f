"""Code as code: a model's file content and edits come as fenced blocks, parsed strictly.

Two answer forms, one per file:

- a whole file, in one fenced block (```` ```python ```` ... ```` ``` ````, any fence of
  three or more backticks or tildes);
- SEARCH/REPLACE blocks, each quoting lines of the file exactly and giving their new
  text::

      <<<<<<< SEARCH
      old lines
      =======
      new lines
      >>>>>>> REPLACE

The parser never guesses: a block that is not closed, an empty SEARCH text, or a SEARCH
text that does not occur exactly once raise :class:`BlockError` with a message that quotes
the problem, which a re-ask shows the model. Answers are read with ``\\n`` line ends (a
``\\r\\n`` answer is normalized); :func:`crlf` puts a file's own line ends back.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePosixPath

from zerog.text import elide

_OPEN = re.compile(r"^(?P<fence>`{3,}|~{3,})[ \t]*(?P<info>[^`\n]*)$")
_SEARCH = re.compile(r"^<{5,9}[ \t]*SEARCH[ \t]*$")
_DIVIDER = re.compile(r"^={5,9}[ \t]*$")
_REPLACE = re.compile(r"^>{5,9}[ \t]*REPLACE[ \t]*$")
# Files whose content often holds fenced blocks of its own: their whole-file block ends at
# the answer's last closing fence rather than at the first one.
_FENCED_TEXT = frozenset({".md", ".markdown", ".rst", ".txt", ".ipynb", ""})
QUOTE_CHARS = 300


class BlockError(ValueError):
    """The answer's blocks cannot be used; the message says why, quoting the answer."""


@dataclass(frozen=True)
class Edit:
    """One SEARCH/REPLACE block: ``search`` occurs once in the file and becomes ``replace``."""

    search: str
    replace: str


def _lines(text: str) -> list[str]:
    return text.replace("\r\n", "\n").split("\n")


def quote(text: str) -> str:
    """A short, one-piece quotation of answer text for an error message."""
    return elide(text.rstrip("\n"), QUOTE_CHARS)


def fence_for(content: str) -> str:
    """A backtick fence longer than any run of backticks that starts a line of ``content``
    (so the content can sit inside it unchanged)."""
    longest = max((len(m.group()) for m in re.finditer(r"(?m)^[ \t]*(`+)", content)), default=0)
    return "`" * max(3, longest + 1)


def has_edit_blocks(text: str) -> bool:
    return any(_SEARCH.match(line) for line in _lines(text))


def _closes(line: str, fence: str) -> bool:
    bare = line.rstrip()
    return len(bare) >= len(fence) and bare == fence[0] * len(bare)


def whole_file(text: str, path: str, nested: bool = False) -> str:
    """The file content of a whole-file answer: the longest fenced block.

    A block ends at the first closing fence (a line of only the fence's character, at
    least as long as its opening); for text files that may hold fences themselves
    (Markdown, reStructuredText, plain text, or ``nested``) at the answer's last closing
    fence instead."""
    lines = _lines(text)
    nested = nested or PurePosixPath(path).suffix.lower() in _FENCED_TEXT
    blocks: list[str] = []
    index = 0
    while index < len(lines):
        opened = _OPEN.match(lines[index])
        if opened is None:
            index += 1
            continue
        fence = opened.group("fence")
        closing = [n for n in range(index + 1, len(lines)) if _closes(lines[n], fence)]
        if not closing:
            raise BlockError(
                f"the {fence} block of {path} that starts at line {index + 1} of your answer "
                "is not closed (was the answer cut off?); give the whole file, ending the "
                f"block with a line {fence}"
            )
        end = closing[-1] if nested else closing[0]
        blocks.append("\n".join(lines[index + 1 : end]))
        index = end + 1
    if not blocks:
        raise BlockError(
            f"your answer has no fenced block with the content of {path}; it began: {quote(text)!r}"
        )
    content = max(blocks, key=len)
    if not content.strip():
        raise BlockError(f"the block for {path} is empty")
    return content.rstrip("\n") + "\n"


def edit_blocks(text: str, path: str) -> tuple[Edit, ...]:
    """The SEARCH/REPLACE blocks of an answer, in order."""
    edits: list[Edit] = []
    search: list[str] = []
    replace: list[str] = []
    state = "out"
    start = 0
    for number, line in enumerate(_lines(text), start=1):
        if state == "out":
            if _SEARCH.match(line):
                state, start, search, replace = "search", number, [], []
            elif _DIVIDER.match(line) or _REPLACE.match(line):
                raise BlockError(
                    f"line {number} of your answer ({line.strip()!r}) is outside a block: "
                    "each block starts with a line <<<<<<< SEARCH"
                )
        elif state == "search":
            if _DIVIDER.match(line):
                state = "replace"
            elif _SEARCH.match(line) or _REPLACE.match(line):
                raise BlockError(
                    f"the SEARCH block that starts at line {start} of your answer has no "
                    f"======= line before line {number} ({line.strip()!r})"
                )
            else:
                search.append(line)
        elif _REPLACE.match(line):
            if not "".join(search).strip():
                raise BlockError(
                    f"the SEARCH text of the block at line {start} of your answer is empty: "
                    f"quote the lines of {path} to change"
                )
            edits.append(Edit(_joined(search), _joined(replace)))
            state = "out"
        elif _SEARCH.match(line) or _DIVIDER.match(line):
            raise BlockError(
                f"the block that starts at line {start} of your answer is not closed with "
                f">>>>>>> REPLACE before line {number}"
            )
        else:
            replace.append(line)
    if state != "out":
        raise BlockError(
            f"the block that starts at line {start} of your answer is not closed "
            "(was the answer cut off?); end each block with a line >>>>>>> REPLACE"
        )
    if not edits:
        raise BlockError(
            f"your answer has no SEARCH/REPLACE block for {path}; it began: {quote(text)!r}"
        )
    return tuple(edits)


def _joined(lines: list[str]) -> str:
    return "".join(f"{line}\n" for line in lines)


def apply(content: str, edits: tuple[Edit, ...], path: str) -> str:
    """``content`` with each edit applied in turn; every SEARCH text must occur exactly
    once in the content as the earlier edits left it."""
    for number, edit in enumerate(edits, start=1):
        count = content.count(edit.search)
        if count == 1:
            content = content.replace(edit.search, edit.replace, 1)
            continue
        where = f"the SEARCH text of block {number} ({quote(edit.search)!r})"
        if count == 0:
            raise BlockError(
                f"{where} does not occur in {path}: copy the lines exactly as the file has "
                "them, with their indentation"
            )
        raise BlockError(
            f"{where} occurs {count} times in {path}: quote more lines so that it matches "
            "exactly once"
        )
    return content


def crlf(text: str) -> str:
    """``text`` (``\\n`` line ends) with ``\\r\\n`` line ends."""
    return text.replace("\r\n", "\n").replace("\n", "\r\n")
