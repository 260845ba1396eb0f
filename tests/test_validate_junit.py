"""junit XML: a real pytest report, and hostile reports refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerog.validate.junit import MAX_REPORT_BYTES, JunitError, parse_junit, read_junit

SUITE = """\
import pytest

def test_ok():
    pass

def test_bad():
    assert [1, 2] == [1, 3]

@pytest.mark.skip(reason="no")
def test_skip():
    pass

class TestGroup:
    def test_inner(self):
        raise ValueError("inner \\x1b[31mred\\x1b[0m")
"""


@pytest.mark.slow
def test_a_real_pytest_report(tmp_path: Path) -> None:
    (tmp_path / "test_suite.py").write_text(SUITE)
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    parsed = read_junit(report)
    assert (parsed.tests, parsed.failed, parsed.errors, parsed.skipped) == (4, 2, 0, 1)
    assert not parsed.ok
    names = [f.name for f in parsed.failures]
    assert names == ["test_suite.test_bad", "test_suite.TestGroup.test_inner"]
    assert "assert [1, 2] == [1, 3]" in parsed.failures[0].message
    assert "ValueError" in parsed.failures[1].details
    assert "\x1b" not in parsed.failures[1].details, "escapes reach the feedback"
    assert parsed.counts() == "2 failed, 1 passed, 1 skipped"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;">]>
<testsuite><testcase name="&lol2;"/></testsuite>"""

EXTERNAL = b"""<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<testsuite><testcase name="&x;"/></testsuite>"""


@pytest.mark.parametrize(
    ("data", "words"),
    [
        (BILLION_LAUGHS, "DTD or entities"),
        (EXTERNAL, "DTD or entities"),
        (b"<testsuite><testcase name='a'>", "not well-formed"),
        (b"<html><body/></html>", "not a junit report"),
        (b"<testsuite>" + b" " * MAX_REPORT_BYTES + b"</testsuite>", "larger than"),
    ],
)
def test_hostile_or_broken_reports_are_refused(data: bytes, words: str) -> None:
    with pytest.raises(JunitError, match=words):
        parse_junit(data)


def test_a_symlinked_or_special_report_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "real.xml"
    target.write_text("<testsuite/>")
    link = tmp_path / "link.xml"
    link.symlink_to(target)
    with pytest.raises(JunitError, match="cannot open"):
        read_junit(link)
    with pytest.raises(JunitError, match="no junit report"):
        read_junit(tmp_path / "missing.xml")
    fifo = tmp_path / "fifo.xml"
    os.mkfifo(fifo)
    with pytest.raises(JunitError, match="not a regular file"):
        read_junit(fifo)


def test_testsuites_and_errors_are_counted() -> None:
    data = b"""<testsuites>
      <testsuite><testcase classname="a" name="x"><error message="setup">boom</error>
      </testcase></testsuite>
      <testsuite><testcase name="y"><failure/></testcase><testcase name="z"/></testsuite>
    </testsuites>"""
    parsed = parse_junit(data)
    assert (parsed.tests, parsed.failed, parsed.errors) == (3, 1, 1)
    assert [(f.name, f.outcome) for f in parsed.failures] == [("a.x", "error"), ("y", "failed")]
