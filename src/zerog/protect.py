"""Protected files: the parts of a workspace its checks rely on, which a run may not change.

A check proves nothing if the attempt it judges may rewrite it: edit the tests, add a
``conftest.py`` hook that turns failures into passes, drop a ``.pth`` file that ends every
Python with status 0. So a goal names the files its checks rely on, as gitignore-style
patterns relative to the workspace; by default :data:`DEFAULT_PROTECTED` (the test files,
``conftest.py``, pytest's and tox's configuration, ``.pth`` files and Python's
``sitecustomize``/``usercustomize`` anywhere, every ``tests/`` and ``test/`` directory,
bytecode: a planted ``.pyc`` whose header matches a source file's size and time runs
instead of it; and ``.git/``: a hook or a config a run left there would run on the host at
the user's next git command) and the test files its checks name. The loop
refuses a file action on a protected path before it runs, and puts every protected path
back as it was when the run started before each sweep (shell commands can change them
too).

Patterns: ``*``, ``?`` and ``[...]`` match within one path component, ``**`` any number
of components; a pattern without a ``/`` (other than a trailing one) matches a name at any
depth (``conftest.py``, ``*.pth``), one with a ``/`` is anchored at the workspace's top
(``tests/**``, ``/setup.cfg``); a path is protected when it or a directory above it
matches (``tests/`` protects everything in every directory called ``tests``). Negated
patterns (``!``) are not supported.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from pathlib import PurePosixPath

from zerog.sandbox.workspace import Entry
from zerog.types import AssertsCheck, Check, Goal, TestsCheck

DEFAULT_PROTECTED: tuple[str, ...] = (
    "test_*.py",
    "*_test.py",
    "tests/",
    "test/",
    "conftest.py",
    "pytest.ini",
    "tox.ini",
    "setup.cfg",
    "*.pth",
    "sitecustomize.py",
    "usercustomize.py",
    "__pycache__/",
    "*.pyc",
    ".git/",
)
_SCRIPT = re.compile(r"(?:\./)?[\w.+-]+(?:/[\w.+-]+)*\.py")


def _glob(segment: str) -> str:
    """A regex for one path component's glob: ``*`` and ``?`` never match a ``/``."""
    out, i = [], 0
    while i < len(segment):
        char = segment[i]
        close = segment.find("]", i + 2) if char == "[" else -1
        if char == "*":
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif close > 0:
            body = segment[i + 1 : close]
            negated = body.startswith(("!", "^"))
            body = re.escape(body[1:] if negated else body).replace("\\-", "-")
            out.append(f"[^/{body}]" if negated else f"(?!/)[{body}]")
            i = close
        else:
            out.append(re.escape(char))
        i += 1
    return "".join(out)


def _regex(pattern: str) -> re.Pattern[str]:
    """A regex matching the paths ``pattern`` protects: the ones it matches, and
    everything below them."""
    body = pattern.strip("/")
    if "/" not in body and not pattern.startswith("/"):
        return re.compile(f"(?:.*/)?{_glob(body)}(?:/.*)?", re.DOTALL)
    out, slash = "", ""  # slash: what separates the next component from the last one
    segments = body.split("/")
    for index, segment in enumerate(segments):
        if segment != "**":
            out, slash = out + slash + _glob(segment), "/"
        elif index == len(segments) - 1:
            out += "(?:/[^/]+)*" if slash else ".*"
        else:
            out, slash = out + slash + "(?:[^/]+/)*", ""
    return re.compile(out + "(?:/.*)?", re.DOTALL)


class Protection:
    """The protected patterns of one goal, compiled once."""

    def __init__(self, patterns: Sequence[str]) -> None:
        self.patterns = tuple(patterns)
        self._compiled = tuple((pattern, _regex(pattern)) for pattern in self.patterns)

    def reason(self, path: str) -> str | None:
        """The pattern that protects ``path`` (relative, ``/``-separated), or None."""
        for pattern, regex in self._compiled:
            if regex.fullmatch(path):
                return pattern
        return None

    def covers(self, path: str) -> bool:
        return self.reason(path) is not None


def check_scripts(checks: Iterable[Check]) -> tuple[str, ...]:
    """The test files the checks name, as patterns anchored at the workspace's top: an
    ``asserts`` check's script, and the ``.py`` files a ``tests`` check's command gives
    pytest (``python3 -m pytest checks.py``). A ``command`` check's files are not taken:
    ``python3 app.py`` may well run the very file the goal is about."""
    found: list[str] = []
    for check in checks:
        if isinstance(check, AssertsCheck):
            found.append(check.path)
        elif isinstance(check, TestsCheck):
            found += _pytest_files(check.command)
    return tuple(dict.fromkeys(f"/{path}" for path in found))


def _pytest_files(command: str) -> list[str]:
    try:
        words = shlex.split(command)
    except ValueError:
        return []
    after = [i for i, word in enumerate(words) if PurePosixPath(word).name == "pytest"]
    if not after:
        return []
    return [
        word.removeprefix("./")
        for word in words[after[0] + 1 :]
        if _SCRIPT.fullmatch(word) and ".." not in word.split("/")
    ]


def protection_of(goal: Goal) -> Protection:
    """What ``goal`` protects: the defaults (unless turned off), its own patterns and the
    scripts its checks name."""
    defaults = DEFAULT_PROTECTED if goal.protect_defaults else ()
    patterns = (*defaults, *goal.protected, *check_scripts(goal.checks))
    return Protection(tuple(dict.fromkeys(patterns)))


def restore_target(
    base: Mapping[str, Entry], current: Mapping[str, Entry], protection: Protection
) -> dict[str, Entry]:
    """The tree to restore before a sweep: ``current`` with every protected path as it is
    in ``base`` (the run's start), protected paths that ``base`` lacks removed, and the
    directories above a protected path of ``base`` made directories again."""
    target = {path: entry for path, entry in current.items() if not protection.covers(path)}
    for path, entry in base.items():
        if not protection.covers(path):
            continue
        target[path] = entry
        for parent in PurePosixPath(path).parents:
            above = str(parent)
            if above == ".":
                break
            have = target.get(above)
            if have is None or have.kind != "dir":
                target[above] = base[above]
    return target
