from __future__ import annotations

import textwrap
from pathlib import Path

from zerog.repomap import MAX_SYMBOLS, defines, imports, outline, parse, span

SOURCE = textwrap.dedent(
    '''\
    """A module."""

    import os
    from dataclasses import dataclass


    class Parser(Base, metaclass=Meta):
        """Parses."""

        def parse(self, text: str, *, strict: bool = False) -> Node:
            return Node(text)

        async def stream(self, chunks):
            yield chunks

        class Inner:
            def hidden(self): ...


    @dataclass
    def helper(a, b=1, *args, **kwargs):
        return a


    async def fetch(url: str) -> bytes:
        return b""


    VALUE = 3
    '''
)


def test_outline_lists_classes_methods_and_functions_with_signatures() -> None:
    tree = parse(SOURCE)
    assert tree is not None
    assert outline(tree) == [
        "class Parser(Base)",
        "  def parse(self, text: str, *, strict: bool=False) -> Node",
        "  async def stream(self, chunks)",
        "def helper(a, b=1, *args, **kwargs)",
        "async def fetch(url: str) -> bytes",
    ]


def test_outline_is_bounded() -> None:
    tree = parse("\n".join(f"def f{i}(x): pass" for i in range(100)))
    assert tree is not None
    lines = outline(tree)
    assert len(lines) == MAX_SYMBOLS + 1
    assert lines[-1] == f"... {100 - MAX_SYMBOLS} more"
    long = parse(f"def g({', '.join(f'a{i}' for i in range(200))}): pass")
    assert long is not None
    assert len(outline(long)[0]) <= 120


def test_a_syntax_error_or_a_huge_file_gives_no_tree() -> None:
    assert parse("def broken(:\n") is None
    assert parse("x = 1\n" * 100_000) is None
    assert parse("(" * 10_000) is None  # too deeply nested for the parser


def test_defines_finds_functions_classes_and_methods() -> None:
    tree = parse(SOURCE)
    assert tree is not None
    assert defines(tree, "helper") == 20  # its decorator's line
    assert defines(tree, "Parser") == 7
    assert defines(tree, "Parser.parse") == 10
    assert defines(tree, "stream") == 13  # a bare name: the method of a class
    assert defines(tree, "hidden") is None  # only top-level classes' methods
    assert defines(tree, "VALUE") is None


def test_imports_are_found_in_the_workspace_only() -> None:
    known = {
        "src/shop/__init__.py",
        "src/shop/pricing.py",
        "src/shop/cart.py",
        "src/shop/tax/__init__.py",
        "src/shop/tax/rates.py",
        "util.py",
        "tests/helpers.py",
        "tests/test_cart.py",
    }
    cart = textwrap.dedent(
        """\
        import os
        import util
        from shop.pricing import apply_discount, with_tax
        from . import tax
        from .tax.rates import RATE
        from .. import outside
        """
    )
    tree = parse(cart)
    assert tree is not None
    found = {i.path: i.names for i in imports(tree, "src/shop/cart.py", known)}
    assert found == {
        "util.py": (),
        "src/shop/pricing.py": ("apply_discount", "with_tax"),
        "src/shop/tax/__init__.py": (),
        "src/shop/tax/rates.py": ("RATE",),
    }  # `from .. import outside` is src/outside.py: not in the workspace
    test = parse("from helpers import make\nimport shop.cart\n")
    assert test is not None
    found = {i.path: i.names for i in imports(test, "tests/test_cart.py", known)}
    assert found == {"tests/helpers.py": ("make",), "src/shop/cart.py": ()}


def test_imports_never_run_the_code(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"import os\nopen({str(marker)!r}, 'w').write('x')\nimport util\n"
    tree = parse(source)
    assert tree is not None
    assert [i.path for i in imports(tree, "m.py", {"util.py", "m.py"})] == ["util.py"]
    assert not marker.exists()


def test_span_is_the_enclosing_function_or_a_window() -> None:
    tree = parse(SOURCE)
    assert tree is not None
    assert span(tree, 11, 30) == (10, 11)  # inside Parser.parse
    assert span(tree, 28, 30) == (16, 30)  # VALUE: no function holds it: a window
    long = "def f():\n" + "    x = 1\n" * 200
    assert span(parse(long), 100, 201) == (88, 112)
    assert span(None, 3, 5) == (1, 5)
