"""Whole-file Python answers made whole: a model that rewrites only the function it fixed
still leaves a complete module (:func:`merge` for one-file goals, :func:`splice` for the
files of a repository)."""

from __future__ import annotations

import ast

_DEFS = ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef
_IMPORTS = ast.Import | ast.ImportFrom


def _defined(tree: ast.Module) -> set[str]:
    return {node.name for node in tree.body if isinstance(node, _DEFS)}


def merge(original: str, answer: str) -> str:
    """``answer`` with the top-level parts of ``original`` it does not redefine put first.

    When either side does not parse the answer is returned unchanged (the checks will say
    what is wrong with it)."""
    try:
        old, new = ast.parse(original), ast.parse(answer)
    except SyntaxError:
        return answer
    replaced = _defined(new)
    lines = original.splitlines(keepends=True)
    kept: list[str] = []
    for node in old.body:
        if isinstance(node, _DEFS) and node.name in replaced:
            continue
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # a module docstring or stray string: the answer may keep its own
        start = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
        end = node.end_lineno or node.lineno
        kept.append("".join(lines[start - 1 : end]).rstrip("\n") + "\n")
    if not kept:
        return answer
    return "\n".join(kept) + "\n\n" + _without_imports(answer, new, old)


def _without_imports(answer: str, new: ast.Module, old: ast.Module) -> str:
    """``answer`` without the top-level imports ``old`` already has (kept first, so the
    names are bound before anything of the answer runs)."""
    have = {ast.dump(node) for node in old.body if isinstance(node, _IMPORTS)}
    shared: dict[int, int] = {}  # line -> how many top-level statements touch it
    for node in new.body:
        for line in range(node.lineno, (node.end_lineno or node.lineno) + 1):
            shared[line] = shared.get(line, 0) + 1
    drop: set[int] = set()
    for node in new.body:
        span = range(node.lineno, (node.end_lineno or node.lineno) + 1)
        alone = all(shared[line] == 1 for line in span)  # not `import x; y = 1`
        if isinstance(node, _IMPORTS) and ast.dump(node) in have and alone:
            drop.update(span)
    if not drop:
        return answer
    lines = answer.splitlines(keepends=True)
    return "".join(line for n, line in enumerate(lines, start=1) if n not in drop).lstrip("\n")


def splice(original: str, answer: str) -> str:
    """A whole-file answer for a file of a repository, made whole where it is partial.

    An answer that defines every top-level function and class ``original`` has is the
    file. One that leaves some out (small models often give only the function they
    fixed) is spliced into ``original`` in place: each definition it gives replaces the
    file's one where it stands, its new imports go before the file's first statement, and
    its other new top-level statements follow at the end, so the file keeps its order.
    When either side does not parse the answer is returned unchanged."""
    try:
        old, new = ast.parse(original), ast.parse(answer)
    except SyntaxError:
        return answer
    if not _defined(old) - _defined(new):
        return answer
    lines = original.splitlines(keepends=True)
    got = answer.splitlines(keepends=True)
    mine = {node.name: node for node in new.body if isinstance(node, _DEFS)}
    have = {ast.dump(node) for node in old.body}
    head = [_text(got, n) for n in new.body if isinstance(n, _IMPORTS) and ast.dump(n) not in have]
    tail = [
        _text(got, n)
        for n in new.body
        if not isinstance(n, _IMPORTS)
        and ast.dump(n) not in have
        and not (isinstance(n, _DEFS) and n.name in _defined(old))
    ]
    out: list[str] = []
    at = 0  # the next line of ``original`` not yet copied
    first = _first_statement(old)
    for node in old.body:
        start = _start(node)
        if node is first and head:
            out += [*lines[at : start - 1], *head]
            at = start - 1
        if isinstance(node, _DEFS) and node.name in mine:
            out += [*lines[at : start - 1], _text(got, mine[node.name])]
            at = node.end_lineno or node.lineno
    out += lines[at:]
    if first is None:
        out = [*head, *out]
    body = "".join(out).rstrip("\n") + "\n"
    return body if not tail else body + "\n\n" + "\n\n".join(t.rstrip("\n") for t in tail) + "\n"


def _start(node: ast.stmt) -> int:
    """The first line of a statement, its decorators included."""
    decorators: list[ast.expr] = getattr(node, "decorator_list", [])
    return min([node.lineno, *(d.lineno for d in decorators)])


def _text(lines: list[str], node: ast.stmt) -> str:
    return "".join(lines[_start(node) - 1 : node.end_lineno or node.lineno]).rstrip("\n") + "\n"


def _first_statement(tree: ast.Module) -> ast.stmt | None:
    """The module's first statement after its docstring."""
    for node in tree.body:
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and node is tree.body[0]
        ):
            continue
        return node
    return None
