"""The failure summarizer on real tool output: captured pytest, mypy, gcc and terraform
failures (tests/fixtures/failures, see capture.py there), and live runs of pytest and gcc."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from zerog.bench.failures import run_gcc, run_pytest
from zerog.bench.sweep import compression, key_facts
from zerog.sandbox.base import Limits
from zerog.sandbox.local import LocalSandbox
from zerog.types import CheckResult, FailedTest, Observation, Status, TestsCheck
from zerog.validate.checks import run_check
from zerog.validate.feedback import summarize
from zerog.validate.summarize import summarize_text

FIXTURES = Path(__file__).parent / "fixtures" / "failures"
PYTEST_NAMES = [
    "test_restock_increases_quantity",
    "test_report",
    "test_parse_line[plum, 2, 1.25, organic-expected2]",
    "test_parse_line[fig, two, 3.0-expected3]",
    "test_load_many",
    "test_load_then_restock",
]


def raw(tool: str) -> str:
    data = json.loads((FIXTURES / f"{tool}.json").read_text())
    return str(data["stdout"]) + str(data["stderr"])


def test_pytest_failures_keep_names_diffs_and_locations() -> None:
    text = raw("pytest")
    summary = summarize_text(text, 3000)
    assert len(summary) < len(text) * 0.5
    for name in PYTEST_NAMES:
        assert name in summary
    assert summary.splitlines()[0] == "6 failed, 6 passed in 0.24s"
    assert "E AssertionError: assert -2 == 10" in summary
    assert "{'pear': {'qty': 4, 'value': 3.0}} != {'pear': {'qty': 4, 'price': 0.75" in summary
    assert "at inventory.py:37 <- test_inventory.py:50" in summary
    assert "E KeyError: 'banana'" in summary
    assert "platform linux" not in summary, "session header noise kept"
    assert "stock = <inventory.Inventory" not in summary


def test_pytest_under_a_tight_budget_keeps_every_failing_name() -> None:
    summary = summarize_text(raw("pytest"), 900)
    assert len(summary) <= 900
    for name in PYTEST_NAMES:
        assert name in summary
    assert "omitted to fit the budget" in summary


def test_sixty_cases_failing_the_same_way_fold_into_one() -> None:
    text = raw("pytest-many")
    summary = summarize_text(text, 3000)
    assert len(summary) * 40 < len(text)
    assert (
        "FAILED test_many.py::test_parse_line_with_a_note[...] in 60 cases: sku0, sku1" in summary
    )
    assert all(f"sku{i}," in summary or f"sku{i} " in summary for i in range(60))
    assert "(and 59 more the same way: [sku1], [sku2], [sku3], ...)" in summary
    assert summary.count("E ValueError: too many values to unpack (expected 3)") == 1
    assert "FFFF" not in summary, "progress dots kept"


def test_mypy_keeps_every_error_location_and_folds_repeats() -> None:
    text = raw("mypy")
    locations = [line.split(": error")[0] for line in text.splitlines() if ": error:" in line]
    assert len(locations) == 12
    summary = summarize_text(text, 3000)
    for location in locations:
        assert location in summary
    assert summary.splitlines()[0] == "Found 12 errors in 2 files (checked 2 source files)"
    assert "(also at service.py:21)" in summary  # the same message at two places, once
    tight = summarize_text(text, 700)
    assert len(tight) <= 700
    assert tight.startswith("Found 12 errors")
    assert "omitted to fit the budget:" in tight


def test_gcc_errors_come_first_with_their_source_lines() -> None:
    summary = summarize_text(raw("gcc"), 3000)
    lines = summary.splitlines()
    errors = [i for i, line in enumerate(lines) if ": error:" in line]
    warnings = [i for i, line in enumerate(lines) if ": warning:" in line]
    assert len(errors) == 3
    assert max(errors) < min(warnings), "a warning came before an error"
    assert "geometry.c:10:20: error: ‘heigth’ undeclared" in summary
    assert "geometry.c:30:12: error: ‘heigth’ undeclared" in summary
    assert "   24 |     strcpy(buffer, argv[1])" in summary
    assert "reported only once" not in summary, "boilerplate note kept"
    tight = summarize_text(raw("gcc"), 600)
    assert tight.count(": error:") == 3
    assert "warning" in tight.splitlines()[-1]  # what was dropped is said


def test_terraform_blocks_become_file_line_errors() -> None:
    text = raw("terraform")
    assert "\x1b[" in text  # the raw capture is colored
    assert "│" in text  # and boxed
    summary = summarize_text(text, 3000)
    assert "\x1b" not in summary
    assert "│" not in summary
    for where in ("main.tf:12", "main.tf:17", "main.tf:26", "modules/net/main.tf:7"):
        assert f"{where}: Error: Reference to undeclared" in summary
    assert summary.count("modules/net/main.tf:8: Error") == 2
    assert 'Did you mean "region"?' in summary
    assert len(summary) < len(text) * 0.6


@pytest.mark.parametrize("tool", ["pytest", "pytest-many", "mypy", "gcc", "terraform"])
def test_every_budget_is_respected(tool: str) -> None:
    text = raw(tool)
    for budget in range(150, 4000, 170):
        assert len(summarize_text(text, budget)) <= budget


def test_repeated_and_similar_lines_are_folded() -> None:
    text = "\n".join(
        ["starting"]
        + ["retrying connection"] * 100
        + [f"progress {i}/500 ({i * 0.2:.1f}%)" for i in range(500)]
        + ["done: fatal error in step 3"]
    )
    summary = summarize_text(text, 400)
    assert "[the line above repeated 99 more times]" in summary
    assert "fatal error in step 3" in summary
    assert len(summary) <= 400


def test_plain_output_keeps_head_and_tail() -> None:
    words = ["alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    text = "\n".join(f"{words[i % 7]} {words[i % 5]} {words[i % 3]}" for i in range(2000))
    summary = summarize_text(text, 500)
    assert summary.startswith("alpha alpha alpha\nbravo bravo bravo")
    assert summary.endswith(text[-40:])
    assert "elided" in summary
    numbered = "\n".join(f"line {i} of a long log" for i in range(2000))
    folded = summarize_text(numbered, 500)
    assert folded == "line 0 of a long log\n[... 1998 similar lines ...]\nline 1999 of a long log"
    assert summarize_text("a 1\na 2\na 3\na 4", 500) == "a 1\na 2\na 3\na 4"  # it fits


def test_a_python_traceback_keeps_its_last_frames() -> None:
    frames = "".join(
        f'  File "/app/mod{i}.py", line {i + 10}, in f{i}\n    return f{i + 1}()\n'
        for i in range(30)
    )
    text = "Traceback (most recent call last):\n" + frames + "ZeroDivisionError: division by zero\n"
    summary = summarize_text(text, 600)
    assert "ZeroDivisionError: division by zero" in summary
    assert "/app/mod29.py:39 in f29: return f30()" in summary
    assert "mod5.py" not in summary
    assert "last 3 of 30 frames" in summary


def observation(text: str, code: int = 1) -> Observation:
    return Observation(status=Status.ERROR, exit_code=code, stdout=text)


def test_feedback_shares_the_budget_between_failures() -> None:
    small = CheckResult(name="ruff", passed=False, observation=observation("x.py:1:1: F401 unused"))
    big = CheckResult(name="pytest", passed=False, observation=observation(raw("pytest")))
    text = summarize(None, [small, big], max_chars=1500)
    assert len(text) <= 1500
    assert "Check `ruff` exited 1.\nx.py:1:1: F401 unused" in text
    assert "Check `pytest` exited 1." in text
    assert "test_load_then_restock" in text
    by_tokens = summarize(None, [small, big], max_tokens=200)
    assert len(by_tokens) <= 800


def test_feedback_that_fits_is_not_cut_to_make_room_for_an_omitted_line() -> None:
    # A part gets exactly the length it needs; packing it again must not elide it.
    text = (
        'Traceback (most recent call last):\n  File "t.py", line 4, in check\n'
        "    assert candidate([1, 2, 3, 2, 4, 3, 5]) == [1, 4, 5]\nAssertionError\n"
        "explained: candidate([1, 2, 3, 2, 4, 3, 5]) returned [1, 2, 3, 4, 5]\n"
    )
    check = CheckResult(name="python3 t.py", passed=False, observation=observation(text))
    summary = summarize(None, [check])
    assert "t.py:4 in check: assert candidate([1, 2, 3, 2, 4, 3, 5]) == [1, 4, 5]" in summary
    assert "returned [1, 2, 3, 4, 5]" in summary
    assert "elided" not in summary
    assert "omitted" not in summary
    full = summarize_text(text, 3000)
    assert summarize_text(text, len(full)) == full


def test_feedback_of_a_content_failure_says_failed() -> None:
    ok_exit = Observation(status=Status.SUCCESS, exit_code=0, stderr="[zerog: output: no match]")
    text = summarize(None, [CheckResult(name="out", passed=False, observation=ok_exit)])
    assert "Check `out` failed." in text
    step = ("write the file", "$ make", observation("make: *** [all] Error 2"))
    assert summarize(step, []).startswith("Step 'write the file' failed: `$ make` exited 1.")


@pytest.mark.slow
def test_feedback_names_failing_tests_from_the_junit_report(workspace: Path) -> None:
    (workspace / "test_app.py").write_text(
        "import app\n\ndef test_answer_is_42():\n    assert app.answer() == 42\n"
    )
    quiet = f"{sys.executable} -m pytest -q --tb=no -rN -p no:cacheprovider"
    sandbox = LocalSandbox({"PATH": os.environ["PATH"]})
    result = run_check(TestsCheck(command=quiet), workspace, sandbox, Limits(timeout=60))
    assert "test_answer_is_42" not in result.observation.stdout  # the output has no names
    text = summarize(None, [result])
    assert "FAILED test_app.test_answer_is_42 - assert 41 == 42" in text
    assert "assert 41 == 42" in text


@pytest.mark.slow
def test_live_pytest_and_gcc_failures(tmp_path: Path) -> None:
    (tmp_path / "py").mkdir()
    (tmp_path / "c").mkdir()
    failures = [run_pytest(tmp_path / "py"), run_gcc(tmp_path / "c")]
    for failure in failures:
        assert failure.exit_code != 0
        summary = summarize_text(failure.raw, 2000)
        assert len(summary) <= 2000
        assert len(summary) < len(failure.raw)
    assert "test_load_then_restock" in summarize_text(failures[0].raw, 2000)
    assert "geometry.c:24:28: error: expected ‘;’" in summarize_text(failures[1].raw, 2000)


def test_failed_tests_without_output_get_their_details_summarized() -> None:
    details = "\n".join(
        [
            "def test_x():",
            ">       assert f() == 2",
            "E       assert 1 == 2",
            "",
            "test_m.py:3: Err",
        ]
    )
    tests = (FailedTest(name="test_m.test_x", message="assert 1 == 2", details=details),)
    summary = summarize_text("1 failed in 0.01s" + "\n" * 3 + "." * 5000, 600, tests)
    assert "FAILED test_m.test_x - assert 1 == 2" in summary
    assert "E assert 1 == 2" in summary
    assert "at test_m.py:3" in summary


@pytest.mark.parametrize("tool", ["pytest", "pytest-many", "mypy", "gcc", "terraform"])
def test_the_default_budget_names_every_failing_test_and_error_location(tool: str) -> None:
    text = raw(tool)
    facts = key_facts(text)
    assert len(facts) >= 3
    measured = compression(tool, tool, text)
    assert measured.recall[3000] == 1.0
    assert measured.summary_tokens[3000] <= 750
    assert measured.summary_tokens[1000] < measured.raw_tokens
