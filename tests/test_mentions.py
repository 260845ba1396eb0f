from __future__ import annotations

import time

from zerog.mentions import MAX_MENTIONS, in_failures, in_goal, to_workspace

KNOWN = {
    "src/shop/pricing.py",
    "src/shop/cart.py",
    "tests/test_cart.py",
    "app/util/durations.py",
    "app/schedule.py",
    "calc.py",
    "pkg/a/util.py",
    "pkg/b/util.py",
}


def test_a_traceback_gives_its_frames_innermost_first_and_files_under_test_first() -> None:
    text = """Traceback (most recent call last):
  File "tests/test_cart.py", line 7, in test_total
    assert cart.total() == 10.0
  File "src/shop/cart.py", line 16, in total
    return apply_discount(x, y)
  File "src/shop/pricing.py", line 6, in apply_discount
    return price * percent / 100
ZeroDivisionError: division by zero
"""
    found = in_failures(text, KNOWN)
    assert [m.path for m in found] == [
        "src/shop/pricing.py",
        "src/shop/cart.py",
        "tests/test_cart.py",
    ]
    assert found[0].lines == [6]
    assert found[0].names == ["apply_discount"]
    assert found[2].names == ["test_total"]


def test_pytest_ids_and_locations() -> None:
    text = (
        "FAILED tests/test_cart.py::TestCart::test_total[10-20] - assert 0 == 1\n"
        "src/shop/pricing.py:6: AssertionError\n"
        "src/shop/cart.py:16: in total\n"
        "  at app/util/durations.py:9 <- app/schedule.py:8 <- tests/test_cart.py:5\n"
    )
    found = {m.path: m for m in in_failures(text, KNOWN)}
    assert found["tests/test_cart.py"].names == ["test_total"]
    assert found["tests/test_cart.py"].lines == [5]
    assert found["src/shop/pricing.py"].lines == [6]
    assert found["src/shop/cart.py"].names == ["total"]
    assert found["app/util/durations.py"].lines == [9]
    assert found["app/schedule.py"].lines == [8]


def test_paths_outside_the_workspace_are_never_taken() -> None:
    text = "\n".join(
        [
            'File "/usr/lib/python3.11/unittest/case.py", line 57, in testPartExecutor',
            'File "/etc/passwd", line 1',
            'File "../outside/calc.py", line 3, in f',
            'File "src/../../calc.py", line 3, in f',
            'File "/ws/../etc/calc.py", line 3, in f',
            "../../calc.py:3: AssertionError",
            "/tmp/other/calc.py:3: AssertionError",
            "missing/module.py:3: AssertionError",
        ]
    )
    assert in_failures(text, KNOWN, root="/ws") == []


def test_absolute_paths_under_the_root_and_dotted_paths_map_into_the_workspace() -> None:
    text = 'File "/ws/src/shop/cart.py", line 16, in total\n./src/shop/x/../pricing.py:6: E'
    found = [m.path for m in in_failures(text, KNOWN, root="/ws")]
    assert found == ["src/shop/cart.py", "src/shop/pricing.py"]
    assert to_workspace("/ws", KNOWN, "/ws") is None
    assert to_workspace("/wsx/calc.py", KNOWN, "/ws") is None
    assert to_workspace("calc.py\x00", KNOWN) is None


def test_a_bare_file_name_is_taken_only_when_unique() -> None:
    found = in_failures("cart.py:16: in total\nutil.py:3: in f\n", KNOWN)
    assert [m.path for m in found] == ["src/shop/cart.py"]


def test_huge_and_hostile_output_is_bounded_and_quick() -> None:
    many = "\n".join(f"tests/test_cart.py::test_{i} FAILED" for i in range(50_000))
    junk = ("a" * 5_000 + ".py:" + "9" * 50 + "\n") * 200
    slashes = ("a/" * 3_000 + "b.py::x\n") * 50
    started = time.perf_counter()
    found = in_failures(many + junk + slashes, KNOWN)
    assert time.perf_counter() - started < 10
    assert [m.path for m in found] == ["tests/test_cart.py"]
    assert len(found[0].names) <= 50_000
    known = {f"m{i}.py" for i in range(500)}
    text = "\n".join(f"m{i}.py:1: E" for i in range(500))
    assert len(in_failures(text, known)) == MAX_MENTIONS


def test_a_goal_names_files_and_functions() -> None:
    files, names = in_goal(
        "median() in calc.py is wrong; see `Cart.total` and src/shop/cart.py, not /etc/x.py",
        KNOWN,
    )
    assert [m.path for m in files] == ["calc.py", "src/shop/cart.py"]
    assert names == ["median", "Cart.total"]


def test_zerog_summaries_of_a_traceback_name_the_function() -> None:
    text = (
        "Traceback (last 2 of 4 frames)\n"
        "  src/shop/cart.py:16 in total: return apply_discount(x)\n"
        "  src/shop/pricing.py:6 in apply_discount: return price * percent / 100\n"
    )
    found = {m.path: m for m in in_failures(text, KNOWN)}
    assert found["src/shop/cart.py"].names == ["total"]
    assert found["src/shop/pricing.py"].names == ["apply_discount"]
    assert found["src/shop/pricing.py"].lines == [6]
