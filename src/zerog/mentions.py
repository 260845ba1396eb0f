"""The workspace files a text names: a goal, or the failing checks' output.

The text is untrusted data. A name is only taken when it is a file of the workspace's own
index: a path that is absolute (unless under the workspace's root), climbs out with ``..``
or is not in the index is dropped, so nothing here ever points outside the workspace, and
a symbolic link is never followed (the index lists regular files only).

Recognized in the checks' output: Python traceback frames (``File "x.py", line 12, in f``),
pytest's test ids (``tests/test_x.py::TestC::test_y``) and locations (``x.py:12: in f``,
``x.py:12: AssertionError``, zerog's own ``at x.py:9 <- y.py:8``), and compiler-style
``x.c:12:3: error``. In a goal: anything
shaped like a file name, and the names of functions (``median()``, `` `Parser.parse` ``).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field

MAX_TEXT = 100_000  # characters of a text looked at (the head: where the failures start)
MAX_LINE = 1_000  # characters of a line looked at
MAX_MENTIONS = 64

_FRAME = re.compile(r'File "([^"\n]{1,500})", line (\d{1,7})(?:, in ([\w<>.]{1,200}))?')
_TEST_ID = re.compile(
    r"(?<![\w/.-])(/?(?:[\w.-]{1,200}/){0,30}[\w.-]{1,200}\.py)((?:::[\w\[\]-]{1,200}){1,4})"
)
_LOCATION = re.compile(
    r"(?<![\w/.-])(/?(?:[\w.-]{1,200}/){0,30}[\w.-]{1,200}\.\w{1,10}):(\d{1,7})(?::\d{1,7})?"
    r"(?=[:\s,)]|$)"
)
_PATH = re.compile(
    r"(?<![\w/.-])((?:\.{0,2}/)?(?:[\w.-]{1,200}/){0,30}[\w-][\w.-]{0,200}\.[A-Za-z]\w{0,9})\b"
)
_IN = re.compile(r":? in ([\w<>.]{1,200})")  # after a location: the function it is in
_CALLED = re.compile(r"\b([A-Za-z_]\w{0,100}(?:\.[A-Za-z_]\w{0,100})?)\(\)")
_QUOTED = re.compile(r"`([A-Za-z_]\w{0,100}(?:\.[A-Za-z_]\w{0,100})?)`")
_TEST_FILE = re.compile(r"(?:^|/)(?:tests?/|test_[^/]*$|[^/]*_test\.py$|conftest\.py$)")


@dataclass
class Mention:
    """A workspace file a text names, with the lines and names it points at."""

    path: str
    lines: list[int] = field(default_factory=list)
    names: list[str] = field(default_factory=list)


def is_test_file(path: str) -> bool:
    return bool(_TEST_FILE.search(path))


def to_workspace(raw: str, known: Collection[str], root: str = "") -> str | None:
    """``raw`` as a path of the workspace index, or None: absolute paths only under
    ``root``; ``..`` taken lexically and refused if it climbs out."""
    raw = raw.strip().strip("'\"")
    if not raw or "\x00" in raw:
        return None
    if raw.startswith("/"):
        top = root.rstrip("/")
        if not top or not raw.startswith(top + "/"):
            return None
        raw = raw[len(top) + 1 :]
    parts: list[str] = []
    for part in raw.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                return None
            parts.pop()
            continue
        parts.append(part)
    path = "/".join(parts)
    return path if path in known else None


def _by_name(known: Collection[str]) -> dict[str, list[str]]:
    names: dict[str, list[str]] = {}
    for path in known:
        names.setdefault(posixpath.basename(path), []).append(path)
    return names


def _resolve(
    raw: str, known: Collection[str], root: str, basenames: Mapping[str, list[str]]
) -> str | None:
    """A path of the index for ``raw``, also by its base name alone when that is unique
    and ``raw`` is a plain relative name (``calc.py``, not ``/x/calc.py`` or ``../calc.py``)."""
    found = to_workspace(raw, known, root)
    if found is not None:
        return found
    if raw.startswith("/") or ".." in raw.split("/"):
        return None
    same = basenames.get(posixpath.basename(raw), [])
    return same[0] if len(same) == 1 else None


class _Collector:
    def __init__(self, known: Collection[str], root: str) -> None:
        self.known = known
        self.root = root
        self.basenames = _by_name(known)
        self.found: dict[str, Mention] = {}

    def add(self, raw: str, line: int | None = None, name: str | None = None) -> None:
        path = _resolve(raw, self.known, self.root, self.basenames)
        if path is None:
            return
        mention = self.found.get(path)
        if mention is None:
            if len(self.found) >= MAX_MENTIONS:
                return
            mention = self.found[path] = Mention(path)
        if line is not None and line > 0 and line not in mention.lines:
            mention.lines.append(line)
        if name and not name.startswith("<") and name not in mention.names:
            mention.names.append(name)


def _lines(text: str) -> Iterable[str]:
    for line in text[:MAX_TEXT].splitlines():
        yield line[:MAX_LINE]


def in_failures(text: str, known: Collection[str], root: str = "") -> list[Mention]:
    """The workspace files the checks' output names, with the lines and functions it
    points at; files under test (not test files) first, each group in the text's order,
    the innermost traceback frame first."""
    found = _Collector(known, root)
    frames: list[tuple[str, int, str | None]] = []
    for line in _lines(text):
        frame = _FRAME.search(line)
        if frame:
            frames.append((frame.group(1), int(frame.group(2)), frame.group(3)))
            continue
        if frames and line[:1] in (" ", "\t"):  # a frame's source line
            continue
        if frames:  # a traceback ended: its innermost frame is what failed
            for raw, number, name in reversed(frames):
                found.add(raw, number, name)
            frames = []
        for test in _TEST_ID.finditer(line):
            found.add(test.group(1), None, test.group(2).split("::")[-1].split("[")[0])
        for where in _LOCATION.finditer(line):
            called = _IN.match(line, where.end())
            found.add(where.group(1), int(where.group(2)), called.group(1) if called else None)
    for raw, number, name in reversed(frames):
        found.add(raw, number, name)
    mentions = list(found.found.values())
    return [m for m in mentions if not is_test_file(m.path)] + [
        m for m in mentions if is_test_file(m.path)
    ]


def in_goal(text: str, known: Collection[str], root: str = "") -> tuple[list[Mention], list[str]]:
    """The workspace files a goal names (in its order), and the function or class names
    it names (``median()``, `` `Parser.parse` ``), to be found in the repository map."""
    found = _Collector(known, root)
    names: list[str] = []
    for line in _lines(text):
        for test in _TEST_ID.finditer(line):
            found.add(test.group(1), None, test.group(2).split("::")[-1].split("[")[0])
        for where in _LOCATION.finditer(line):
            found.add(where.group(1), int(where.group(2)))
        for path in _PATH.finditer(line):
            found.add(path.group(1))
        for pattern in (_CALLED, _QUOTED):
            for called in pattern.finditer(line):
                name = called.group(1)
                if name not in names and len(names) < MAX_MENTIONS:
                    names.append(name)
    return list(found.found.values()), names
