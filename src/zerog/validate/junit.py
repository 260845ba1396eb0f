"""Reading junit XML test reports (pytest ``--junitxml``, and most other runners) safely.

The report is written by code under test, so it is untrusted input: its size is capped
before it is read, a document type declaration (the door to entity expansion and external
entities) is refused outright since no junit report needs one, and every name and message
taken from it is bounded and sanitized.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from xml.etree import ElementTree

from zerog.beneath import PathEscape, read_beneath
from zerog.text import elide, sanitize
from zerog.types import FailedTest

MAX_REPORT_BYTES = 16 * 1024 * 1024
MAX_FAILURES = 200
MAX_MESSAGE_CHARS = 2_000
MAX_DETAILS_CHARS = 20_000
_DTD = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


class JunitError(Exception):
    """The report is missing, too big, hostile or not junit XML."""


@dataclass(frozen=True, slots=True)
class JunitReport:
    tests: int
    failures: tuple[FailedTest, ...]  # failed and errored cases, at most MAX_FAILURES
    failed: int  # counts, even past MAX_FAILURES
    errors: int
    skipped: int

    @property
    def ok(self) -> bool:
        return self.failed == 0 and self.errors == 0

    def counts(self) -> str:
        passed = self.tests - self.failed - self.errors - self.skipped
        parts = [f"{self.failed} failed", f"{passed} passed"]
        if self.errors:
            parts.append(f"{self.errors} errors")
        if self.skipped:
            parts.append(f"{self.skipped} skipped")
        return ", ".join(parts)


def _read_capped(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise JunitError(f"no junit report at {path.name}") from None
    except OSError as exc:
        raise JunitError(f"cannot open the junit report: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            raise JunitError("the junit report is not a regular file")
        data = handle.read(MAX_REPORT_BYTES + 1)
    if len(data) > MAX_REPORT_BYTES:
        raise JunitError(f"the junit report is larger than {MAX_REPORT_BYTES} bytes")
    return data


def _text(value: str | None, limit: int) -> str:
    return elide(sanitize(value or "").strip(), limit)


def _case_name(case: ElementTree.Element) -> str:
    name = case.get("name", "?")
    classname = case.get("classname", "")
    return _text(f"{classname}.{name}" if classname else name, 500)


def parse_junit(data: bytes) -> JunitReport:
    """Parse a junit XML document (``<testsuites>`` or a single ``<testsuite>``)."""
    if len(data) > MAX_REPORT_BYTES:
        raise JunitError(f"the junit report is larger than {MAX_REPORT_BYTES} bytes")
    if _DTD.search(data):
        raise JunitError("the junit report declares a DTD or entities: refused")
    try:
        root = ElementTree.fromstring(data)  # noqa: S314 - no DTD (refused above), no entities
    except ElementTree.ParseError as exc:
        raise JunitError(f"the junit report is not well-formed XML: {exc}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise JunitError(f"not a junit report: the root element is <{_text(root.tag, 50)}>")
    tests = failed = errors = skipped = 0
    failures: list[FailedTest] = []
    for case in root.iter("testcase"):
        tests += 1
        outcome: str | None = None
        problem: ElementTree.Element | None = None
        for child in case:
            if child.tag in ("failure", "error"):
                outcome, problem = ("failed" if child.tag == "failure" else "error"), child
                break
            if child.tag == "skipped":
                outcome = "skipped"
        if outcome == "skipped":
            skipped += 1
            continue
        if problem is None:
            continue
        if outcome == "failed":
            failed += 1
        else:
            errors += 1
        if len(failures) < MAX_FAILURES:
            failures.append(
                FailedTest(
                    name=_case_name(case),
                    outcome="failed" if outcome == "failed" else "error",
                    message=_text(problem.get("message"), MAX_MESSAGE_CHARS),
                    details=_text(problem.text, MAX_DETAILS_CHARS),
                )
            )
    return JunitReport(
        tests=tests, failures=tuple(failures), failed=failed, errors=errors, skipped=skipped
    )


def read_junit(path: Path) -> JunitReport:
    """Read and parse the report at ``path`` (a symlink is refused, the size capped)."""
    return parse_junit(_read_capped(path))


def read_junit_in(workspace: Path, relative: str) -> JunitReport:
    """Read and parse the report at ``relative`` in ``workspace``, walked without following
    any link (a directory swapped for one while the tests ran is refused)."""
    try:
        data = read_beneath(workspace, relative, MAX_REPORT_BYTES)
    except FileNotFoundError:
        raise JunitError(f"no junit report at {relative}") from None
    except PathEscape as exc:
        raise JunitError(f"refusing the junit report: {exc}") from None
    except OSError as exc:
        raise JunitError(f"cannot open the junit report: {exc.strerror}") from None
    if data is None:
        raise JunitError("the junit report is not a regular file")
    return parse_junit(data)
