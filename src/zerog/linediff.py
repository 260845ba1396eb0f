"""A line diff of two texts as unified diff hunks, in a bounded time whatever the texts.

Lines found exactly once in each text anchor the comparison (the longest run of them in
the same order in both, as patience diff does); the regions between anchors are compared
exactly (a longest common subsequence) in tables of n x m cells, at most
``MAX_LINE_PAIRS`` for a whole file. A region past that is shown as replaced whole: the
diff stays correct, only coarser. The texts are untrusted (what a run wrote): difflib on
whole files is quadratic or worse, 4,000 lines of two repeated values took it 8 minutes.
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Iterator, Sequence

from zerog.text import visible

CONTEXT_LINES = 3
MAX_LINE_PAIRS = 4_000_000  # table cells for one file: about 2 s on the 2-core machine


def _lines(text: str) -> list[str]:
    """Lines split at newlines only (a CR, form feed or U+2028 is content), each keeping
    its newline; the last one has none when the text does not end with one."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines


Opcode = tuple[str, int, int, int, int]  # equal or replace, a from, a to, b from, b to


def _anchors(a: Sequence[str], b: Sequence[str]) -> list[tuple[int, int]]:
    """Lines that occur once in each text, paired, the longest run in the same order in
    both (patience diff): the texts are compared region by region between them."""
    count_a = Counter(a)
    count_b = Counter(b)
    where_b = {line: j for j, line in enumerate(b) if count_b[line] == 1}
    pairs = [
        (i, where_b[line]) for i, line in enumerate(a) if count_a[line] == 1 and line in where_b
    ]
    tops: list[int] = []  # the smallest last j of an increasing run of each length
    ends: list[int] = []  # the index in pairs of that run's last pair
    before: list[int] = []  # each pair's predecessor in its run (-1: none)
    for k, (_, j) in enumerate(pairs):
        length = bisect.bisect_left(tops, j)
        if length == len(tops):
            tops.append(j)
            ends.append(k)
        else:
            tops[length] = j
            ends[length] = k
        before.append(ends[length - 1] if length else -1)
    run: list[tuple[int, int]] = []
    k = ends[-1] if ends else -1
    while k >= 0:
        run.append(pairs[k])
        k = before[k]
    return run[::-1]


def _matched(a: Sequence[str], b: Sequence[str]) -> Iterator[tuple[str, int, int]]:
    """A longest common subsequence of two short line lists, as steps ("equal",
    "delete" or "insert", i, j) taken at a[i] and b[j]: a table of n x m cells, so a
    bounded time whatever the lines."""
    n, m = len(a), len(b)
    longest = [[0] * (m + 1) for _ in range(n + 1)]  # longest[i][j]: of a[i:] and b[j:]
    for i in range(n - 1, -1, -1):
        row, below, line = longest[i], longest[i + 1], a[i]
        for j in range(m - 1, -1, -1):
            row[j] = below[j + 1] + 1 if line == b[j] else max(below[j], row[j + 1])
    i = j = 0
    while i < n or j < m:
        if i < n and j < m and a[i] == b[j]:
            yield "equal", i, j
            i, j = i + 1, j + 1
        elif i < n and (j == m or longest[i + 1][j] >= longest[i][j + 1]):
            yield "delete", i, j
            i += 1
        else:
            yield "insert", i, j
            j += 1


def _opcodes(a: Sequence[str], b: Sequence[str]) -> list[Opcode]:
    """How ``a`` becomes ``b``: exact between anchor lines (:func:`_anchors`) while the
    comparison tables stay within ``MAX_LINE_PAIRS`` cells in all; a region past that is
    shown as replaced whole (still a correct diff, only coarser)."""
    codes: list[Opcode] = []

    def add(tag: str, i1: int, i2: int, j1: int, j2: int) -> None:
        if i1 == i2 and j1 == j2:
            return
        if codes and (codes[-1][0] == "equal") == (tag == "equal"):
            _, p1, _, q1, _ = codes.pop()  # extend the run (changes merge to one block)
            i1, j1 = p1, q1
        codes.append((tag if tag == "equal" else "replace", i1, i2, j1, j2))

    spent = 0
    pi = pj = 0
    for ai, bj in [*_anchors(a, b), (len(a), len(b))]:
        cells = (ai - pi) * (bj - pj)
        if cells and spent + cells <= MAX_LINE_PAIRS:
            spent += cells
            for step, i, j in _matched(a[pi:ai], b[pj:bj]):
                di, dj = step != "insert", step != "delete"  # what the step consumes
                add(step, pi + i, pi + i + di, pj + j, pj + j + dj)
        else:
            add("replace", pi, ai, pj, bj)
        if ai < len(a):
            add("equal", ai, ai + 1, bj, bj + 1)
        pi, pj = ai + 1, bj + 1
    return codes


def _groups(codes: list[Opcode], context: int) -> Iterator[list[Opcode]]:
    """The hunks: changes with up to ``context`` equal lines around them, changes closer
    than twice that joined into one hunk."""
    group: list[Opcode] = []
    last = len(codes) - 1
    for n, (tag, i1, i2, j1, j2) in enumerate(codes):
        if tag != "equal":
            group.append((tag, i1, i2, j1, j2))
            continue
        if n == 0:  # leading context only
            group.append((tag, max(i1, i2 - context), i2, max(j1, j2 - context), j2))
        elif n == last or i2 - i1 > 2 * context:  # close the hunk, maybe open the next
            group.append((tag, i1, min(i2, i1 + context), j1, min(j2, j1 + context)))
            yield group
            group = (
                [] if n == last else [(tag, max(i1, i2 - context), i2, max(j1, j2 - context), j2)]
            )
        else:
            group.append((tag, i1, i2, j1, j2))
    if any(code[0] != "equal" for code in group):
        yield group


def _range(start: int, stop: int) -> str:
    """A unified diff header's range: 1-based first line, and a length unless it is 1
    (an empty range names the line before it)."""
    length = stop - start
    if length == 1:
        return str(start + 1)
    return f"{start + 1 if length else start},{length}"


def hunks(old: str, new: str) -> tuple[tuple[str, ...], int, int]:
    """Unified diff hunks of two texts (the ---/+++ headers aside), lines shown with
    :func:`visible`; the counts of lines added and removed."""
    a, b = _lines(old), _lines(new)
    out: list[str] = []
    added = removed = 0

    def emit(mark: str, line: str) -> None:
        if line.endswith("\n"):
            out.append(mark + visible(line[:-1]))
        else:
            out.extend((mark + visible(line), "\\ No newline at end of file"))

    for group in _groups(_opcodes(a, b), CONTEXT_LINES):
        first, final = group[0], group[-1]
        out.append(f"@@ -{_range(first[1], final[2])} +{_range(first[3], final[4])} @@")
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for line in a[i1:i2]:
                    emit(" ", line)
                continue
            for line in a[i1:i2]:
                emit("-", line)
            for line in b[j1:j2]:
                emit("+", line)
            removed += i2 - i1
            added += j2 - j1
    return tuple(out), added, removed
