"""Turning a failing tool's output into what a model needs to fix it, within a budget.

Output that fits the budget (after noise is dropped and repeated lines are collapsed) is
kept whole: nothing is lost. Output that does not fit is taken apart into items, each with
a priority, and the items are packed by priority:

0. the tool's own headline (``6 failed, 6 passed``, ``Found 12 errors in 2 files``) and
   the names of the failing tests;
1. per failing test: the failing source line, the assertion and its diff (pytest's ``E``
   lines), the last frames' locations; compiler and linter errors with ``file:line``
   (gcc, clang, mypy, ruff, tsc, terraform), the same message at several places folded
   into one; the last frames and the exception of a Python traceback;
2. other lines that say error, failed, fatal, panic or exception;
3. warnings;
4. the head and tail of everything else.

What is left out is counted in a closing line, so the reader knows it exists.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from zerog.text import elide, sanitize
from zerog.types import FailedTest

MIN_ITEM_CHARS = 120
MAX_E_LINES = 14
MAX_CONTEXT_LINES = 3
MAX_CASES_LISTED = 3  # failing cases of one parametrized test listed one per line
MAX_IDS_CHARS = 1_200  # the line that lists the ids of more cases

_NOISE = re.compile(
    r"^(?:=+ test session starts =+|platform \w+ -- Python .*|rootdir: .*|configfile: .*"
    r"|cachedir: .*|plugins: .*|collected \d+ items?.*|collecting \.\.\..*"
    r"|\S+\.py [.FEsxX]+\s*(?:\[\s*\d+%\])?|[.FEsxX]+\s+\[\s*\d+%\]"  # pytest progress
    r"|.*note: each undeclared identifier is reported only once.*)$"
)
_GUTTER = re.compile(r"^[│╷╵](?: |$)")
_PYTEST_HEADLINE = re.compile(r"^=+ (.*\b(?:failed|passed|error|errors|no tests ran)\b.*) =+$")
_HEADLINES = re.compile(
    r"^(?:Found \d+ errors? in \d+ files?.*|\d+ (?:errors?|warnings?)(?: and \d+ warnings?)? "
    r"generated\.?|error: could not compile .*|make: \*\*\* .*|FAILED \(.*\)|Ran \d+ tests? in .*)$"
)
_TEST_ID = re.compile(r"^(FAILED|ERROR) (\S+(?:\[[^\]]*\])?)(?: - (.*))?$")
_SECTION = re.compile(r"^=+ (FAILURES|ERRORS|short test summary info|warnings summary) =+$")
_CASE = re.compile(r"^_{3,} (.+?) _{3,}$")
_LOCATION = re.compile(r"^(\S+?\.\w+:\d+):(?: (\w+(?:\.\w+)*)| in \S+)?\s*$")
_DIAGNOSTIC = re.compile(
    r"^(?P<loc>[^\s:()][^:\n()]*?(?::\d+){1,2}|[^\s:()][^:\n()]*?\(\d+,\d+\)):\s*"
    r"(?P<sev>fatal error|error|warning|note|Error|Warning|[A-Z]{1,4}\d{2,5}(?: \[\*\])?)"
    r"(?::|\b)\s*(?P<msg>.*)$"
)
_CONTEXT = re.compile(r"^\s*\d*\s+\|")
_TF_BLOCK = re.compile(r"^(Error|Warning): (.+)$")
_TF_WHERE = re.compile(r"^\s+on (\S+) line (\d+)")
_TRACEBACK = "Traceback (most recent call last):"
_FRAME = re.compile(r'^\s+File "(.+)", line (\d+)(?:, in (.+))?$')
_ERRORISH = re.compile(
    r"\b(?:error|failed|failure|fatal|panic|exception|segmentation fault|abort(?:ed)?"
    r"|denied|not found|cannot|undefined)\b",
    re.IGNORECASE,
)
_WARNINGISH = re.compile(r"\bwarning\b", re.IGNORECASE)
_NUMBERS = re.compile(r"\b0x[0-9a-f]+\b|\b\d+(?:\.\d+)?\b", re.IGNORECASE)


@dataclass(frozen=True)
class Item:
    priority: int
    position: int  # the line it came from, to keep the output's order
    text: str
    kind: str  # what it is, for the "omitted" line: "failing test", "error", ...
    group: int = 1  # output order: 0 headline and test names, 1 errors, 2 warnings


def clean(text: str) -> list[str]:
    """Sanitized lines without tool noise (pytest's session header and progress dots,
    terraform's box gutters)."""
    lines = []
    for raw in sanitize(text).splitlines():
        line = raw.rstrip()
        if _GUTTER.match(line):
            line = line[2:] if len(line) > 1 else ""
        if line in ("╷", "╵") or _NOISE.match(line):
            continue
        lines.append(line)
    return lines


def squeeze_lines(lines: Sequence[str], similar_run: int = 0) -> list[str]:
    """Collapse runs of identical lines and of blank lines. With ``similar_run``, a run of
    at least that many lines that differ only in numbers (progress counters, addresses,
    timings) keeps its first and last line and says how many it hides."""
    out: list[str] = []
    run: list[str] = []  # lines equal to each other after numbers are masked

    def flush() -> None:
        if not run:
            return
        distinct = [line for i, line in enumerate(run) if i == 0 or line != run[i - 1]]
        if len(distinct) == 1:
            out.append(distinct[0])
            if len(run) > 1 and distinct[0].strip():
                times = "once more" if len(run) == 2 else f"{len(run) - 1} more times"
                out.append(f"[the line above repeated {times}]")
        elif similar_run and len(run) >= similar_run:
            out.extend([run[0], f"[... {len(run) - 2} similar lines ...]", run[-1]])
        else:
            exact: list[str] = []
            for line in run:
                if exact and line == exact[-1]:
                    continue
                exact.append(line)
            out.extend(exact)
        run.clear()

    for line in lines:
        if run and _NUMBERS.sub("#", line) != _NUMBERS.sub("#", run[-1]):
            flush()
        run.append(line)
    flush()
    while out and not out[0].strip():
        out.pop(0)
    while out and not out[-1].strip():
        out.pop()
    return out


# ------------------------------------------------------------------ extractors


def _pytest_cases(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    """Items for the failing tests of pytest's FAILURES/ERRORS sections."""
    items: list[Item] = []
    section: str | None = None
    cases: list[tuple[int, str, list[str]]] = []
    for i, line in enumerate(lines):
        marker = _SECTION.match(line)
        if marker:
            section = marker.group(1)
            consumed.add(i)
            continue
        if section not in ("FAILURES", "ERRORS"):
            continue
        consumed.add(i)
        case = _CASE.match(line)
        if case:
            cases.append((i, case.group(1), []))
        elif cases:
            cases[-1][2].append(line)
    same: dict[str, tuple[int, list[str]]] = {}  # detail -> (position, test names)
    for position, name, body in cases:
        same.setdefault(_case_detail(body), (position, []))[1].append(name)
    for detail, (position, names) in same.items():
        head = names[0]
        others = names[1:]
        if len(others) == 1:
            head += f" (and {others[0]}, the same way)"
        elif others:
            base = head.split("[", 1)[0]
            short = [n[len(base) :] if n.startswith(base + "[") else n for n in others[:3]]
            shown = ", ".join(short) + (", ..." if len(others) > 3 else "")
            head += f" (and {len(others)} more the same way: {shown})"
        priority = 1 if len(items) < 3 else 2
        items.append(Item(priority, position, f"{head}:\n{detail}", "failing test detail"))
    return items


def _case_detail(body: Sequence[str]) -> str:
    """A failing test in a few lines: failing source line, E lines, last locations."""
    source = [ln for ln in body if ln.startswith(">")]
    errors = [ln for ln in body if ln.startswith("E ") or ln == "E"]
    locations = [m.group(1) for m in map(_LOCATION.match, body) if m]
    parts: list[str] = []
    if source:
        parts.append("  > " + source[-1][1:].strip())
    squeezed = squeeze_lines(textwrap.dedent("\n".join(ln[1:] for ln in errors)).splitlines())
    squeezed = [ln.rstrip() for ln in squeezed if ln.strip()]
    if len(squeezed) > MAX_E_LINES:
        hidden = len(squeezed) - MAX_E_LINES
        squeezed = [*squeezed[: MAX_E_LINES - 1], f"  [... {hidden} more lines]", squeezed[-1]]
    parts += ["  E " + ln for ln in squeezed]
    if locations:
        shown = locations[-MAX_CONTEXT_LINES:]
        parts.append("  at " + " <- ".join(reversed(shown)))
    if not parts:  # not pytest's long format: keep the last lines
        parts = ["  " + ln for ln in squeeze_lines(body)[-6:]]
    return "\n".join(parts)


def _test_names(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    """pytest's ``FAILED``/``ERROR`` lines; more than :data:`MAX_CASES_LISTED` failing
    cases of one parametrized test become one line that lists their ids."""
    groups: dict[tuple[str, str], list[tuple[int, re.Match[str]]]] = {}
    for i, line in enumerate(lines):
        match = _TEST_ID.match(line)
        if match:
            consumed.add(i)
            base = match.group(2).split("[", 1)[0]
            groups.setdefault((match.group(1), base), []).append((i, match))
    items = []
    for (verb, base), found in groups.items():
        if len(found) <= MAX_CASES_LISTED:
            items += [Item(0, i, m.group(0), "failing test", group=0) for i, m in found]
            continue
        ids = [m.group(2)[len(base) :].strip("[]") for _, m in found]
        first = found[0][1].group(3)
        text = f"{verb} {base}[...] in {len(ids)} cases: {', '.join(ids)}"
        text = one_line(text, MAX_IDS_CHARS) + (f" - first: {first}" if first else "")
        items.append(Item(0, found[0][0], text, "failing test", group=0))
    return items


def _headlines(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    items = []
    for i, line in enumerate(lines):
        pytest_line = _PYTEST_HEADLINE.match(line)
        if pytest_line or _HEADLINES.match(line):
            consumed.add(i)
            text = pytest_line.group(1) if pytest_line else line
            items.append(Item(0, i - len(lines), text, "summary", group=0))  # first
    return items


def _diagnostics(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    """Compiler/linter lines with file:line, their source context, notes folded in, and the
    same message at several places reported once with the other places listed."""
    found: list[tuple[int, str, str, str, list[str]]] = []  # position, loc, sev, msg, extra
    for i, line in enumerate(lines):
        if i in consumed:
            continue
        match = _DIAGNOSTIC.match(line)
        if match:
            consumed.add(i)
            loc, sev, msg = match.group("loc"), match.group("sev"), match.group("msg")
            if sev == "note" and found:
                found[-1][4].append(f"note: {msg}")
                continue
            found.append((i, loc, sev, msg, []))
        elif found and _CONTEXT.match(line) and found[-1][0] < i:
            consumed.add(i)  # source context of the diagnostic above: the first lines kept
            if sum(1 for x in found[-1][4] if not x.startswith("note:")) < MAX_CONTEXT_LINES:
                found[-1][4].append(line.rstrip())
        elif re.match(r"^\S.*: (?:In|At) (?:function|top level|member function)", line):
            consumed.add(i)
    items: list[Item] = []
    by_message: dict[tuple[str, str], int] = {}
    for position, loc, sev, msg, extra in found:
        key = (sev.lower(), msg)
        if key in by_message:
            index = by_message[key]
            first = items[index]
            text = first.text
            if "(also at " in text.splitlines()[0]:
                head, _, rest = text.partition("\n")
                text = head[:-1] + f", {loc})" + ("\n" + rest if rest else "")
            else:
                head, _, rest = text.partition("\n")
                text = f"{head} (also at {loc})" + ("\n" + rest if rest else "")
            items[index] = replace(first, text=text)
            continue
        severity = sev.lower()
        warning = severity == "warning"
        body = "\n".join([lines[position].strip(), *extra])
        by_message[key] = len(items)
        items.append(
            Item(3, position, body, "warning", group=2)
            if warning
            else Item(1, position, body, "error")
        )
    return items


def _terraform(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    """Terraform's ``Error: title`` blocks, as ``file:line: Error: title: message``."""
    items: list[Item] = []
    i = 0
    while i < len(lines):
        start = _TF_BLOCK.match(lines[i])
        if not start or i in consumed:
            i += 1
            continue
        j = i + 1
        where = ""
        code = ""
        message: list[str] = []
        while j < len(lines) and not _TF_BLOCK.match(lines[j]):
            line = lines[j]
            place = _TF_WHERE.match(line)
            if place:
                where = f"{place.group(1)}:{place.group(2)}: "
            elif re.match(r"^\s+\d+:", line) and not code:
                code = line.strip()
            elif line.strip():
                message.append(line.strip())
            j += 1
        consumed.update(range(i, j))
        text = f"{where}{start.group(1)}: {start.group(2)}: {' '.join(message)}".rstrip(": ")
        if code:
            text += f"\n  {code}"
        warning = start.group(1) == "Warning"
        items.append(Item(3, i, text, "warning", 2) if warning else Item(1, i, text, "error"))
        i = j
    return items


def _tracebacks(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    """A Python traceback as its last frames and the exception."""
    items: list[Item] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != _TRACEBACK or i in consumed:
            i += 1
            continue
        j = i + 1
        frames: list[str] = []
        while j < len(lines) and (lines[j].startswith((" ", "\t")) or not lines[j].strip()):
            frame = _FRAME.match(lines[j])
            if frame:
                code = lines[j + 1].strip() if j + 1 < len(lines) else ""
                where = f"{frame.group(1)}:{frame.group(2)} in {frame.group(3) or '?'}"
                frames.append(f"  {where}: {code}" if code else f"  {where}")
            j += 1
        exception: list[str] = []
        while j < len(lines) and lines[j].strip() and len(exception) < 4:
            exception.append(lines[j])
            j += 1
        consumed.update(range(i, j))
        shown = frames[-MAX_CONTEXT_LINES:]
        hidden = len(frames) - len(shown)
        head = f"Traceback (last {len(shown)} of {len(frames)} frames)" if hidden else _TRACEBACK
        items.append(Item(1, i, "\n".join([head, *shown, *exception]), "traceback"))
        i = j
    return items


def _loose(lines: Sequence[str], consumed: set[int]) -> list[Item]:
    """Lines that say error or warning that no extractor claimed, deduplicated."""
    items: list[Item] = []
    seen: set[str] = set()
    for i, line in enumerate(lines):
        if i in consumed or not line.strip():
            continue
        key = _NUMBERS.sub("#", line.strip())
        if _ERRORISH.search(line):
            priority, kind = 2, "error line"
        elif _WARNINGISH.search(line):
            priority, kind = 3, "warning"
        else:
            continue
        consumed.add(i)
        if key in seen:
            continue
        seen.add(key)
        items.append(Item(priority, i, line.strip(), kind, group=2 if priority == 3 else 1))
    return items


def extract(
    lines: Sequence[str], failed_tests: Sequence[FailedTest] = ()
) -> tuple[list[Item], set[int]]:
    """The items found in ``lines``, and the indexes of the lines they account for."""
    consumed: set[int] = set()
    items = _headlines(lines, consumed)
    names = _test_names(lines, consumed)
    items += names
    cases = _pytest_cases(lines, consumed)
    items += cases
    if failed_tests:
        known = {m.group(2) for m in (_TEST_ID.match(i.text) for i in names) if m}
        shown_names = " ".join(known)
        for n, test in enumerate(failed_tests):
            short = test.name.rsplit(".", 1)[-1]
            if short not in shown_names:
                verb = "FAILED" if test.outcome == "failed" else "ERROR"
                message = f" - {one_line(test.message)}" if test.message else ""
                items.append(
                    Item(
                        0,
                        -len(failed_tests) + n,
                        f"{verb} {test.name}{message}",
                        "failing test",
                        group=0,
                    )
                )
            if not cases and test.details:
                detail = _case_detail(test.details.splitlines())
                items.append(
                    Item(
                        1 if n < 3 else 2,
                        n - len(failed_tests),
                        f"{test.name}:\n{detail}",
                        "failing test detail",
                    )
                )
    items += _terraform(lines, consumed)
    items += _tracebacks(lines, consumed)
    items += _diagnostics(lines, consumed)
    items += _loose(lines, consumed)
    return items, consumed


def one_line(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


# ------------------------------------------------------------------ packing


def _omitted(items: Iterable[Item]) -> str:
    counts: dict[str, int] = {}
    for item in items:
        counts[item.kind] = counts.get(item.kind, 0) + 1
    if not counts:
        return ""
    parts = [f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in counts.items()]
    return f"[omitted to fit the budget: {', '.join(parts)}]"


def pack(items: Sequence[Item], budget: int, rest: Sequence[str] = ()) -> str:
    """The highest-priority items that fit in ``budget`` characters, in a readable order,
    then the head and tail of ``rest`` if room is left, then what was omitted."""
    everything = sorted(items, key=lambda it: (it.group, it.position))
    whole = "\n".join([*(it.text for it in everything), *rest])
    if len(whole) <= budget:  # all of it fits: no room to keep for an omitted line
        return whole
    reserve = 90  # the omitted line
    chosen: list[Item] = []
    left_out: list[Item] = []
    used = 0
    for item in sorted(items, key=lambda it: (it.priority, it.position)):
        cost = len(item.text) + 1
        if used + cost <= budget - reserve:
            chosen.append(item)
            used += cost
        elif budget - reserve - used >= MIN_ITEM_CHARS and item.priority <= 1:
            room = budget - reserve - used - 1
            chosen.append(replace(item, text=elide(item.text, room)))
            used = budget - reserve
        else:
            left_out.append(item)
    chosen.sort(key=lambda it: (it.group, it.position))
    out = [it.text for it in chosen]
    room = budget - reserve - used - 1
    if rest and room >= MIN_ITEM_CHARS:
        tail = "\n".join(rest)
        out.append(elide(tail, room) if len(tail) > room else tail)
    elif rest:
        left_out.append(Item(4, 0, "", "other output line"))
    note = _omitted(left_out)
    if note:
        out.append(note)
    text = "\n".join(out)
    return text if len(text) <= budget else elide(text, budget)


def summarize_text(text: str, budget: int, failed_tests: Sequence[FailedTest] = ()) -> str:
    """What a model should read of ``text`` (a failing tool's output), in ``budget`` chars.

    When the output has structure (failing tests, diagnostics with file:line, tracebacks)
    the summary is made of it, however large the budget; otherwise the output is kept
    whole when it fits, and packed (error lines first, then head and tail) when it does not.
    """
    lines = squeeze_lines(clean(text))
    items, consumed = extract(lines, failed_tests)
    if not any(item.priority <= 1 for item in items):
        for similar_run in (0, 4):  # fold lines that differ only in numbers if need be
            whole = "\n".join(squeeze_lines(lines, similar_run=similar_run))
            if len(whole) <= budget:
                return whole
        if not items:
            return elide(whole, budget)
    rest = [ln for i, ln in enumerate(lines) if i not in consumed and ln.strip()]
    return pack(items, budget, squeeze_lines(rest, similar_run=4))
