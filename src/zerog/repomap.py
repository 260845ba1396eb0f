"""What a Python file defines and imports, read with :mod:`ast` (never run).

Three uses: a compact map of the repository's symbols (per file its top-level classes and
functions with their signatures, and the methods of its classes), so a model knows what
exists without the files' whole text; the workspace modules a file imports; and the
region of a file worth showing around a line or a named function. A file that does not
parse gives no symbols and no imports, and its regions are plain windows of lines.
"""

from __future__ import annotations

import ast
import posixpath
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

MAX_PARSE = 400_000  # characters of source parsed at most (a larger file is mapped as such)
MAX_SYMBOLS = 40  # per file
MAX_SIGNATURE = 120
WINDOW = 12  # lines around a line when no function encloses it (or the function is long)
MAX_REGION = 80  # lines of an enclosing function shown whole

_DEF = (ast.FunctionDef, ast.AsyncFunctionDef)
_SCOPE = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)


def parse(source: str) -> ast.Module | None:
    """The module's tree, or None when it does not parse (or is too large to)."""
    if len(source) > MAX_PARSE:
        return None
    try:
        return ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None


def _signature(node: ast.FunctionDef | ast.AsyncFunctionDef) -> str:
    try:
        text = ast.unparse(node.args)
    except (ValueError, RecursionError):
        text = "..."
    prefix = "async def" if isinstance(node, ast.AsyncFunctionDef) else "def"
    returns = ""
    if node.returns is not None:
        try:
            returns = f" -> {ast.unparse(node.returns)}"
        except (ValueError, RecursionError):
            returns = ""
    line = f"{prefix} {node.name}({text}){returns}"
    return line if len(line) <= MAX_SIGNATURE else line[: MAX_SIGNATURE - 4] + "...)"


def _class_line(node: ast.ClassDef) -> str:
    try:
        bases = ", ".join(ast.unparse(b) for b in node.bases)
    except (ValueError, RecursionError):
        bases = "..."
    line = f"class {node.name}({bases})" if bases else f"class {node.name}"
    return line if len(line) <= MAX_SIGNATURE else line[: MAX_SIGNATURE - 3] + "..."


def outline(tree: ast.Module) -> list[str]:
    """The module's top-level classes (with their methods, indented) and functions, at
    most :data:`MAX_SYMBOLS` lines (a last line counts the rest)."""
    lines: list[str] = []
    total = 0
    for node in tree.body:
        entries: list[str] = []
        if isinstance(node, _DEF):
            entries.append(_signature(node))
        elif isinstance(node, ast.ClassDef):
            entries.append(_class_line(node))
            entries += [f"  {_signature(n)}" for n in node.body if isinstance(n, _DEF)]
        for entry in entries:
            total += 1
            if len(lines) < MAX_SYMBOLS:
                lines.append(entry)
    if total > len(lines):
        lines.append(f"... {total - len(lines)} more")
    return lines


def defines(tree: ast.Module, name: str) -> int | None:
    """The line where ``name`` (``f``, ``C`` or ``C.m``) is defined at the top level of
    the module (or as a method of its class), else None."""
    head, _, method = name.partition(".")
    for node in tree.body:
        if isinstance(node, _SCOPE) and node.name == head:
            if not method:
                return _start(node)
            if isinstance(node, ast.ClassDef):
                for inner in node.body:
                    if isinstance(inner, _DEF) and inner.name == method:
                        return _start(inner)
    if not method:  # a bare name may be a method: the first class that has it
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                for inner in node.body:
                    if isinstance(inner, _DEF) and inner.name == head:
                        return _start(inner)
    return None


def _start(node: ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) -> int:
    return min([node.lineno, *(d.lineno for d in node.decorator_list)])


@dataclass(frozen=True)
class Imported:
    """A workspace module a file imports, and the names it takes from it."""

    path: str
    names: tuple[str, ...]


def _candidates(module: str, roots: Iterable[str]) -> list[str]:
    rel = module.replace(".", "/")
    out = []
    for root in roots:
        base = posixpath.join(root, rel) if root else rel
        out += [f"{base}.py", f"{base}/__init__.py"]
    return out


def imports(tree: ast.Module, path: str, known: Collection[str]) -> list[Imported]:
    """The workspace modules (paths of ``known``) the module at ``path`` imports, in the
    order of its import statements. Absolute imports are looked up from the workspace's
    top, ``src/`` and the file's own directory; relative ones from its package."""
    here = posixpath.dirname(path)
    roots = list(dict.fromkeys(["", "src", here]))
    found: dict[str, list[str]] = {}

    def take(candidates: Sequence[str], names: Sequence[str]) -> bool:
        for candidate in candidates:
            if candidate in known and candidate != path:
                listed = found.setdefault(candidate, [])
                listed += [n for n in names if n not in listed]
                return True
        return False

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                take(_candidates(alias.name, roots), ())
        elif isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names if a.name != "*"]
            if node.level:
                base = here
                for _ in range(node.level - 1):
                    base = posixpath.dirname(base)
                module_roots: list[str] = [base]
            else:
                module_roots = roots
            module = node.module or ""
            for name in names:  # `from pkg import mod` names a module
                dotted = f"{module}.{name}" if module else name
                take(_candidates(dotted, module_roots), ())
            if module:
                take(_candidates(module, module_roots), names)
    return [Imported(p, tuple(n)) for p, n in found.items()]


def regions(tree: ast.Module | None, lines: Sequence[int], names: Sequence[str]) -> list[int]:
    """The anchor lines for ``lines`` and ``names`` (a name's definition), in order."""
    anchors = [n for n in lines if n > 0]
    if tree is not None:
        for name in names:
            where = defines(tree, name)
            if where is not None and where not in anchors:
                anchors.append(where)
    return anchors


def span(tree: ast.Module | None, line: int, total: int) -> tuple[int, int]:
    """The lines (first, last; 1-based, inclusive) worth showing around ``line``: the
    innermost function or class that holds it if it is short, else a window."""
    best: tuple[int, int] | None = None
    if tree is not None:
        for node in ast.walk(tree):
            if isinstance(node, _SCOPE) and node.end_lineno is not None:
                first, last = _start(node), node.end_lineno
                inside = first <= line <= last and last - first < MAX_REGION
                if inside and (best is None or last - first < best[1] - best[0]):
                    best = (first, last)
    if best is None:
        best = (max(1, line - WINDOW), min(total, line + WINDOW))
    return best[0], min(best[1], total)
