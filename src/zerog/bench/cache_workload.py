"""The goals of ``zerog bench cache``: task families written from templates, each with a
stored phrasing, held-out paraphrases, and near-miss siblings (the same words with a
different number, file or target) that must never share a plan.

Every task knows its starting workspace, the one right plan, and the final state a
``verify.py`` check accepts, so a reused plan can be judged both ways: by comparison with
the right plan, and by the validation sweep of a real run.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field

CHECK = "python3 verify.py"
VERIFY = """\
import json, pathlib, sys
want = json.loads(pathlib.Path("expected.json").read_text())
for name, content in want.items():
    path = pathlib.Path(name)
    have = path.read_text() if path.is_file() else None
    if have != content:
        sys.exit(f"{name}: expected {content!r}, found {have!r}")
"""


@dataclass(frozen=True)
class Task:
    family: str
    slots: tuple[tuple[str, str], ...]
    phrasing: int
    text: str
    files: dict[str, str] = field(hash=False)
    plan: dict[str, object] = field(hash=False)
    final: dict[str, str | None] = field(hash=False)

    @property
    def identity(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        return self.family, self.slots

    def workspace_files(self) -> dict[str, str]:
        """The starting files, with the checker and what it expects."""
        return {**self.files, "verify.py": VERIFY, "expected.json": json.dumps(self.final)}


def _edit(path: str, search: str, replace_: str) -> dict[str, object]:
    return {"kind": "edit", "path": path, "search": search, "replace": replace_}


def _plan(intent: str, *actions: dict[str, object]) -> dict[str, object]:
    return {"steps": [{"intent": intent, "actions": list(actions)}]}


Slots = dict[str, str]
Builder = Callable[[Slots], tuple[dict[str, str], dict[str, object], dict[str, str | None]]]


def _set_const(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, name, n = s["file"], s["name"], s["n"]
    return (
        {f: f"{name} = 0\n"},
        _plan(f"set {name}", _edit(f, f"{name} = 0", f"{name} = {n}")),
        {f: f"{name} = {n}\n"},
    )


def _rename(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, old, new = s["file"], s["old"], s["new"]
    body = "(x):\n    return x\n"
    return (
        {f: f"def {old}{body}"},
        _plan(f"rename {old}", _edit(f, f"def {old}(", f"def {new}(")),
        {f: f"def {new}{body}"},
    )


def _create(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, n = s["file"], s["n"]
    plan = _plan(f"create {f}", {"kind": "write_file", "path": f, "content": f"{n}\n"})
    return {}, plan, {f: f"{n}\n"}


def _port(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, a, b = s["file"], s["a"], s["b"]
    return (
        {f: f"PORT = {a}\n"},
        _plan("change the port", _edit(f, f"PORT = {a}", f"PORT = {b}")),
        {f: f"PORT = {b}\n"},
    )


def _delete(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f = s["file"]
    plan = _plan(f"delete {f}", {"kind": "shell", "command": f"rm {f}"})
    return {f: "obsolete\n", "keep.txt": "keep\n"}, plan, {f: None, "keep.txt": "keep\n"}


def _returns(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, func, n = s["file"], s["func"], s["n"]
    return (
        {f: f"def {func}():\n    return 0\n"},
        _plan(f"make {func} return {n}", _edit(f, "    return 0", f"    return {n}")),
        {f: f"def {func}():\n    return {n}\n"},
    )


def _append(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, line = s["file"], s["line"]
    content = f"first\n{line}\n"
    plan = _plan("append a line", {"kind": "write_file", "path": f, "content": content})
    return {f: "first\n"}, plan, {f: content}


def _timeout(s: Slots) -> tuple[dict[str, str], dict[str, object], dict[str, str | None]]:
    f, n = s["file"], s["n"]
    return (
        {f: "TIMEOUT_SECONDS = 30\n"},
        _plan("set the timeout", _edit(f, "TIMEOUT_SECONDS = 30", f"TIMEOUT_SECONDS = {n}")),
        {f: f"TIMEOUT_SECONDS = {n}\n"},
    )


# family -> (builder, phrasings (the first is stored, the others are held out), slot pools)
FAMILIES: dict[str, tuple[Builder, tuple[str, ...], dict[str, tuple[str, ...]]]] = {
    "set_const": (
        _set_const,
        (
            "Set {name} in {file} to {n}",
            "Change the value of {name} in {file} to {n}",
            "In {file}, make {name} equal to {n}",
            "Update {file} so that {name} is {n}",
        ),
        {
            "name": ("MAX_RETRIES", "BATCH_SIZE", "POOL_SIZE", "CACHE_TTL", "PAGE_LIMIT"),
            "file": ("config.py", "settings.py", "app/config.py", "conf/limits.py"),
            "n": ("3", "8", "16", "64", "100", "250", "1000", "4096"),
        },
    ),
    "rename": (
        _rename,
        (
            "Rename the function {old} to {new} in {file}",
            "In {file}, rename {old}() to {new}()",
            "Change the name of the function {old} in {file} to {new}",
        ),
        {
            "old": ("load_data", "parse_row", "fetch_user", "compute_total"),
            "new": ("read_data", "parse_line", "get_user", "sum_total", "load_rows"),
            "file": ("utils.py", "helpers.py", "core/io.py", "lib.py"),
        },
    ),
    "create": (
        _create,
        (
            "Create a file {file} that contains the number {n}",
            "Write the number {n} into a new file called {file}",
            "Make a new file {file} with {n} in it",
        ),
        {
            "file": ("answer.txt", "count.txt", "out/result.txt", "VERSION"),
            "n": ("7", "12", "42", "99", "365", "2024"),
        },
    ),
    "port": (
        _port,
        (
            "Change the port in {file} from {a} to {b}",
            "In {file}, switch the port {a} to {b}",
            "Update {file} so the server listens on port {b} instead of {a}",
        ),
        {
            "file": ("server.py", "app.py", "service/main.py"),
            "a": ("8000", "8080", "5000"),
            "b": ("9000", "8443", "3000", "8081"),
        },
    ),
    "delete": (
        _delete,
        (
            "Delete the file {file}",
            "Remove {file} from the workspace",
            "Get rid of the file {file}",
        ),
        {
            "file": (
                "old.log",
                "tmp/scratch.txt",
                "legacy.py",
                "notes.md",
                "build/output.bin",
                "draft.txt",
                "cache.json",
                "backup.sql",
                "debug.log",
                "temp.csv",
                "unused.py",
                "stale/data.txt",
                "report_old.pdf",
                "archive.zip",
                "junk.tmp",
                "dump.rdb",
            ),
        },
    ),
    "returns": (
        _returns,
        (
            "Make {func}() in {file} return {n}",
            "Change {func} in {file} so that it returns {n}",
            "In {file}, the function {func} should return {n}",
        ),
        {
            "func": ("answer", "get_limit", "default_port", "max_items", "retry_count"),
            "file": ("app.py", "limits.py", "core/values.py"),
            "n": ("1", "5", "42", "128", "500"),
        },
    ),
    "append": (
        _append,
        (
            "Append the line '{line}' to {file}",
            "Add '{line}' as a new last line of {file}",
            "At the end of {file}, add a line '{line}'",
        ),
        {
            "file": ("notes.txt", "TODO.md", "docs/log.txt"),
            "line": ("done", "ship it", "review pending", "v2 released", "tests fixed"),
        },
    ),
    "timeout": (
        _timeout,
        (
            "Set the timeout in {file} to {n} seconds",
            "Change the timeout to {n} seconds in {file}",
            "Make the timeout in {file} {n} seconds long",
        ),
        {
            "file": ("client.py", "net/http.py", "fetcher.py"),
            "n": ("5", "10", "45", "60", "120", "300"),
        },
    ),
}


def make_task(family: str, slots: Slots, phrasing: int) -> Task:
    builder, phrasings, _ = FAMILIES[family]
    files, plan, final = builder(slots)
    return Task(
        family=family,
        slots=tuple(sorted(slots.items())),
        phrasing=phrasing,
        text=phrasings[phrasing].format(**slots),
        files=files,
        plan=plan,
        final=final,
    )


def _valid(family: str, slots: Slots) -> bool:
    if family == "rename" and slots["old"] == slots["new"]:
        return False
    return not (family == "port" and slots["a"] == slots["b"])


@dataclass(frozen=True)
class Workload:
    stored: list[Task]
    paraphrases: list[Task]  # held-out phrasings of stored tasks: should hit
    near_misses: list[Task]  # one slot changed, never stored: must not hit

    @property
    def size(self) -> int:
        return len(self.stored) + len(self.paraphrases) + len(self.near_misses)


def build(per_family: int = 15, seed: int = 8) -> Workload:
    """``per_family`` stored tasks per family, all their paraphrases, one near miss each."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    stored: list[Task] = []
    paraphrases: list[Task] = []
    near: list[Task] = []
    for family, (_, phrasings, pools) in FAMILIES.items():
        chosen: list[Slots] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        attempts = 0
        while len(chosen) < per_family and attempts < 10_000:
            attempts += 1
            slots = {k: rng.choice(v) for k, v in pools.items()}
            key = tuple(sorted(slots.items()))
            if key not in seen and _valid(family, slots):
                seen.add(key)
                chosen.append(slots)
        for number, slots in enumerate(chosen):
            stored.append(make_task(family, slots, 0))
            paraphrases += [make_task(family, slots, p) for p in range(1, len(phrasings))]
            names = sorted(pools)
            for shift in range(len(names)):  # change one slot to a value not stored
                name = names[(number + shift) % len(names)]
                options = [v for v in pools[name] if v != slots[name]]
                rng.shuffle(options)
                for value in options:
                    other = {**slots, name: value}
                    if tuple(sorted(other.items())) not in seen and _valid(family, other):
                        phrasing = 0 if number % 2 == 0 else rng.randrange(1, len(phrasings))
                        near.append(make_task(family, other, phrasing))
                        break
                else:
                    continue
                break
    return Workload(stored=stored, paraphrases=paraphrases, near_misses=near)


def same_plan(task: Task, plan: dict[str, object]) -> bool:
    """Whether ``plan`` does what ``task``'s right plan does (intents aside)."""

    def actions(value: dict[str, object]) -> list[object]:
        steps = value.get("steps")
        out: list[object] = []
        for step in steps if isinstance(steps, list) else []:
            if isinstance(step, dict):
                acts = step.get("actions")
                out += [
                    {k: v for k, v in a.items() if v is not None}
                    for a in (acts if isinstance(acts, list) else [])
                    if isinstance(a, dict)
                ]
        return out

    return actions(task.plan) == actions(plan)


__all__ = ["CHECK", "FAMILIES", "Task", "Workload", "build", "make_task", "same_plan"]
