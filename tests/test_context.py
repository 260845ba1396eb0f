from __future__ import annotations

from pathlib import Path

import pytest

from zerog.bench.context_repos import big_module, cross_file, deep_traceback
from zerog.context import (
    Attempt,
    Context,
    IndexLimits,
    build,
    index_workspace,
    render,
    summarize_history,
)
from zerog.focus import ContextBudget
from zerog.types import Goal


def test_index_is_bounded_and_skips_noise(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i:02}.txt").write_text("x" * 100)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 10)
    files, omitted = index_workspace(tmp_path, IndexLimits(max_files=10, max_content_bytes=350))
    assert len(files) == 10
    assert omitted == 21
    assert not any(f.path.startswith(".git") for f in files)
    assert sum(1 for f in files if f.content is not None) == 3


def test_binary_and_secret_files_are_listed_without_content(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    (tmp_path / ".env").write_text("PASSWORD=hunter2")
    (tmp_path / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    files, _ = index_workspace(tmp_path, IndexLimits())
    assert {f.path: f.content for f in files} == {".env": None, "blob.bin": None, "id_rsa": None}


def test_render_fences_files_and_redacts(tmp_path: Path) -> None:
    (tmp_path / "conf.py").write_text("TOKEN = 'ghp_abcdefghijklmnopqrstuvwxyz01234'\n\x1b[2J")
    goal = Goal(text="do it", workspace=tmp_path, checks=["true"], env_allow=("MY_SECRET",))
    context = build(goal, {"MY_SECRET": "x", "LANG": "C"})
    text = render(context)
    assert "ghp_" not in text
    assert "\x1b" not in text
    assert "MY_SECRET=[redacted]" in text
    assert "LANG=C" in text
    assert "## File conf.py" in text


def test_history_is_bounded() -> None:
    attempts = [Attempt(iteration=i, plan=("p",), failure="f" * 1000) for i in range(10)]
    shown, omitted = summarize_history(attempts, keep_full=2, keep_total=4)
    assert omitted == 6
    assert [a.iteration for a in shown] == [6, 7, 8, 9]
    assert len(shown[0].failure) <= 300
    assert len(shown[-1].failure) == 1000


# ------------------------------------------------------------ what a crowded prompt shows

CART_FAILURE = """FAILED tests/test_cart.py::test_total_without_discount - assert 0.0 == 10.0
test_total_without_discount:
  > assert cart.total() == 10.0
  E assert 0.0 == 10.0
  at tests/test_cart.py:7
1 failed, 14 passed in 2.46s"""

DEEP_FAILURE = """FAILED tests/test_schedule.py::test_next_run_minutes - KeyError: 'M'
  > return int(number) * UNITS[unit.upper()]
  E KeyError: 'M'
  at app/util/durations.py:9 <- app/schedule.py:8 <- tests/test_schedule.py:5"""


def _text_shown(context: Context) -> int:
    texts = [f.content or f.excerpt or "" for f in context.files]
    return sum(len(t) for t in texts) + len(context.symbols)


def test_a_tiny_workspace_keeps_the_index_order_and_no_map(tmp_path: Path) -> None:
    (tmp_path / "stats.py").write_text("def median(values):\n    raise NotImplementedError\n")
    (tmp_path / "test_stats.py").write_text("from stats import median\n")
    goal = Goal(text="Implement median() in stats.py", workspace=tmp_path, checks=["true"])
    context = build(goal, {}, preflight='File "stats.py", line 2, in median')
    assert context.focus == ()
    assert context.symbols == ""
    assert all(not f.reason and f.excerpt is None for f in context.files)
    text = render(context)
    assert text.index("## File stats.py\n") < text.index("## File test_stats.py\n")
    assert "Repository map" not in text


def test_the_buggy_file_reached_through_imports_is_shown_first(tmp_path: Path) -> None:
    task = cross_file()
    task.write(tmp_path)
    goal = Goal(text=task.goal, workspace=tmp_path, checks=[task.check])
    context = build(goal, {}, preflight=CART_FAILURE)
    assert context.focus == ("src/shop/cart.py", "tests/test_cart.py", "src/shop/pricing.py")
    text = render(context)
    assert task.bug_line in text
    assert "## File src/shop/cart.py (named in the goal)" in text
    assert "## File src/shop/pricing.py (imported by src/shop/cart.py)" in text
    assert text.index("## File src/shop/pricing.py") < text.index("## File README.md")
    assert "# Repository map" in text
    # Without the failing checks' names and the goal's, the index's order misses it.
    blind = build(goal.model_copy(update={"text": "fix it"}), {})
    assert task.bug_line not in render(blind)


def test_a_traceback_leads_to_the_bug_when_the_goal_names_nothing(tmp_path: Path) -> None:
    task = deep_traceback()
    task.write(tmp_path)
    goal = Goal(text=task.goal, workspace=tmp_path, checks=[task.check])
    fresh = build(goal, {}, preflight=DEEP_FAILURE)
    assert fresh.focus[0] == "app/util/durations.py"
    assert task.bug_line in render(fresh)
    # A later iteration: the latest attempt's failure is read (the preflight is not shown).
    later = build(goal, {}, [Attempt(iteration=1, plan=("p",), failure=DEEP_FAILURE)])
    assert later.focus[0] == "app/util/durations.py"


def test_a_large_file_is_shown_as_its_relevant_region(tmp_path: Path) -> None:
    task = big_module()
    task.write(tmp_path)
    goal = Goal(text=task.goal, workspace=tmp_path, checks=[task.check])
    context = build(goal, {})
    entry = next(f for f in context.files if f.path == "textkit/fmt.py")
    assert entry.content is None
    assert entry.excerpt is not None
    assert task.bug_line in entry.excerpt
    assert "[... lines 1-" in entry.excerpt
    assert "not shown ...]" in entry.excerpt.splitlines()[-1]
    assert "the relevant lines of" in render(context)


@pytest.mark.slow
def test_the_budget_is_never_exceeded_and_its_order_is_kept(tmp_path: Path) -> None:
    task = cross_file()
    task.write(tmp_path)
    goal = Goal(text=task.goal, workspace=tmp_path, checks=[task.check])
    for total in (0, 50, 200, 500, 1_000, 3_000, 8_000, 16_000, 40_000):
        for cap in (0, 100, 400, 2_000):
            budget = ContextBudget(total=total, goal=cap, failing=cap, imports=cap, symbols=cap)
            context = build(goal, {}, preflight=CART_FAILURE, budget=budget)
            assert _text_shown(context) <= total
            assert sum(context.used.values()) == _text_shown(context)
            for part in ("goal", "failing", "imports", "symbols"):
                assert context.used[part] <= cap
    # Room for the goal's file only: what the failing checks name comes after it.
    budget = ContextBudget(total=450, goal=450, failing=450, imports=450, symbols=0)
    context = build(goal, {}, preflight=CART_FAILURE, budget=budget)
    assert context.focus == ("src/shop/cart.py",)
    assert context.used["failing"] == context.used["imports"] == 0


def test_the_symbol_map_survives_a_file_that_does_not_parse(tmp_path: Path) -> None:
    task = deep_traceback()
    task.write(tmp_path)
    (tmp_path / "app" / "helpers_03.py").write_text("def broken(:\n" + "x = 1\n" * 2_000)
    goal = Goal(text=task.goal, workspace=tmp_path, checks=[task.check])
    context = build(goal, {}, preflight=DEEP_FAILURE)
    assert "app/helpers_03.py (not parsed" in context.symbols
    assert "def combine_11_0(" in context.symbols
    assert task.bug_line in render(context)


def test_named_files_outside_the_workspace_or_secret_are_not_shown(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "leak.py").write_text("SECRET_MARKER = 1\n")
    ws = tmp_path / "ws"
    task = deep_traceback()
    task.write(ws)
    (ws / "app" / "leak.py").symlink_to(outside / "leak.py")
    (ws / "linked").symlink_to(outside)
    (ws / ".env").write_text("TOKEN_MARKER=1\n")
    failure = "\n".join(
        [
            'File "app/leak.py", line 1, in <module>',
            'File "linked/leak.py", line 1, in <module>',
            f'File "{outside}/leak.py", line 1, in <module>',
            'File "../outside/leak.py", line 1, in <module>',
            ".env:1: error",
            DEEP_FAILURE,
        ]
    )
    goal = Goal(text="fix app/leak.py and .env", workspace=ws, checks=[task.check])
    text = render(build(goal, {}, preflight=failure))
    assert "SECRET_MARKER" not in text.replace(failure, "")
    assert "TOKEN_MARKER" not in text
    assert task.bug_line in text
