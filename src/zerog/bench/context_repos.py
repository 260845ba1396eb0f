"""Small generated repositories with one bug, for `zerog bench context` and its tests.

Each repository is a Python project with a pytest suite, a bug in one module and the
failing test in another file, and enough other files (modules, their tests, a README)
that the index cannot hold every file's text: what the context chooses then matters.
Generated, deterministic, no network.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RepoTask:
    name: str
    goal: str
    check: str
    bug_path: str  # the file with the bug
    bug_line: str  # a line of the bug (stripped): in the prompt or not
    files: dict[str, str]

    def write(self, root: Path) -> Path:
        for rel, text in self.files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
        return root


def _filler(package: str, count: int, functions: int = 6) -> dict[str, str]:
    """``count`` unrelated modules of ``package`` (with docstrings, about 1.5 KB each),
    and a test file for each."""
    files: dict[str, str] = {}
    for m in range(count):
        name = f"helpers_{m:02}"
        body = [f'"""Helpers of group {m}: small arithmetic on records."""', ""]
        for f in range(functions):
            body += [
                "",
                f"def combine_{m}_{f}(left: int, right: int, scale: int = {f + 1}) -> int:",
                f'    """Combine two values of group {m} with the scale {f + 1}."""',
                f"    total = left * scale + right * {m + 1}",
                f"    return total - {f}",
                "",
            ]
        files[f"{package}/{name}.py"] = "\n".join(body)
        files[f"tests/test_{name}.py"] = textwrap.dedent(
            f"""\
            from {package.replace("src/", "").replace("/", ".")}.{name} import combine_{m}_0


            def test_combine_{m}():
                assert combine_{m}_0(1, 1) == {1 + m + 1}
            """
        )
    return files


README = "# A small project\n\n" + "Some prose about the project, its aims and its use.\n" * 60


def cross_file() -> RepoTask:
    """A bug in ``pricing.py``; the failing test exercises ``cart.py``, which imports it.
    The goal names the method, not the file."""
    files = _filler("src/shop", 14)
    files["README.md"] = README
    files["pyproject.toml"] = '[project]\nname = "shop"\nversion = "0.1"\n'
    files["tests/conftest.py"] = (
        "import sys\nfrom pathlib import Path\n\n"
        "sys.path.insert(0, str(Path(__file__).resolve().parent.parent / 'src'))\n"
    )
    files["src/shop/__init__.py"] = '"""A shop."""\n'
    files["src/shop/pricing.py"] = textwrap.dedent(
        '''\
        """Prices and discounts."""


        def apply_discount(price: float, percent: float) -> float:
            """The price less ``percent`` per cent of it."""
            return price * percent / 100


        def with_tax(price: float, rate: float = 0.2) -> float:
            """The price with the tax added."""
            return price * (1 + rate)
        '''
    )
    files["src/shop/cart.py"] = textwrap.dedent(
        '''\
        """A shopping cart."""

        from shop.pricing import apply_discount


        class Cart:
            def __init__(self) -> None:
                self.items: list[tuple[str, float]] = []
                self.discount = 0.0

            def add(self, name: str, price: float) -> None:
                self.items.append((name, price))

            def total(self) -> float:
                """The sum of the prices, less the discount."""
                return apply_discount(sum(p for _, p in self.items), self.discount)
        '''
    )
    files["tests/test_cart.py"] = textwrap.dedent(
        """\
        from shop.cart import Cart


        def test_total_without_discount():
            cart = Cart()
            cart.add("pen", 10.0)
            assert cart.total() == 10.0


        def test_total_with_discount():
            cart = Cart()
            cart.add("pen", 10.0)
            cart.add("ink", 30.0)
            cart.discount = 25
            assert cart.total() == 30.0
        """
    )
    return RepoTask(
        name="cross-file",
        goal="Cart.total() returns the wrong amount: with no discount it gives 0. Fix the bug.",
        check="python3 -m pytest -q -p no:cacheprovider",
        bug_path="src/shop/pricing.py",
        bug_line="return price * percent / 100",
        files=files,
    )


def big_module() -> RepoTask:
    """A bug in the middle of a module too large to show whole; the goal names the file
    and the function."""
    files = _filler("textkit", 8)
    files["README.md"] = README
    files["textkit/__init__.py"] = ""
    body = ['"""Text formatting helpers."""', ""]
    for n in range(200):
        body += [
            "",
            f"def pad_{n}(text: str) -> str:",
            f'    """The text padded to {n + 10} characters."""',
            f"    return text.ljust({n + 10})",
            "",
        ]
        if n == 120:
            body += [
                "",
                "def title_case(text: str) -> str:",
                '    """Each word with its first letter upper-case, the rest lower-case."""',
                "    words = text.split(' ')",
                "    return ' '.join(w[:1].upper() + w[1:] for w in words)",
                "",
            ]
    files["textkit/fmt.py"] = "\n".join(body)
    files["tests/test_fmt.py"] = textwrap.dedent(
        """\
        from textkit.fmt import pad_3, title_case


        def test_pad():
            assert pad_3("a") == "a" + " " * 12


        def test_title_case_lowers_the_rest():
            assert title_case("hELLO wORLD") == "Hello World"
        """
    )
    return RepoTask(
        name="big-module",
        goal="title_case() in textkit/fmt.py must lower-case the rest of each word.",
        check="python3 -m pytest -q -p no:cacheprovider",
        bug_path="textkit/fmt.py",
        bug_line="return ' '.join(w[:1].upper() + w[1:] for w in words)",
        files=files,
    )


def deep_traceback() -> RepoTask:
    """The goal names nothing; only the failing checks' traceback leads to the bug, two
    imports below the test."""
    files = _filler("app", 12)
    files["README.md"] = README
    files["app/__init__.py"] = ""
    files["app/util/__init__.py"] = ""
    files["app/util/durations.py"] = textwrap.dedent(
        '''\
        """Durations written as text: "90s", "5m", "2h"."""

        UNITS = {"s": 1, "m": 60, "h": 3600}


        def parse_duration(text: str) -> int:
            """The number of seconds ``text`` stands for."""
            number, unit = text[:-1], text[-1]
            return int(number) * UNITS[unit.upper()]
        '''
    )
    files["app/schedule.py"] = textwrap.dedent(
        '''\
        """When jobs run."""

        from app.util.durations import parse_duration


        def next_run(start: int, every: str) -> int:
            """The time of the next run after ``start``."""
            return start + parse_duration(every)
        '''
    )
    files["tests/test_schedule.py"] = textwrap.dedent(
        """\
        from app.schedule import next_run


        def test_next_run_minutes():
            assert next_run(100, "5m") == 400
        """
    )
    return RepoTask(
        name="deep-traceback",
        goal="The test suite fails. Make it pass without changing the tests.",
        check="python3 -m pytest -q -p no:cacheprovider",
        bug_path="app/util/durations.py",
        bug_line="return int(number) * UNITS[unit.upper()]",
        files=files,
    )


def tasks() -> list[RepoTask]:
    return [cross_file(), big_module(), deep_traceback()]
