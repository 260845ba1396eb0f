"""`zerog bench sweep`: the validation sweep's speed and the failure feedback's size.

1. Sweep time for 10 sidecar checks (5 Python predicates, 5 JSON-schema checks, all
   passing) in a small workspace: the WASM sidecar (a fresh instance of the
   pre-initialized interpreter component per predicate and one for the 5 schema checks
   together; also without that batch; and the same checks through the wasm sandbox's
   guest shell, CPython/WASI started per check, the path the component replaced) against
   the same guest programs run as subprocesses (``python3`` through the
   ``local`` sandbox, and through ``bwrap`` when it is installed), each one check at a time
   and two at a time. Median of ``rounds`` sweeps, after one warm-up; the rounds are
   interleaved (one sweep of every sidecar in turn), so load that changes during the
   bench weighs on every row alike.
2. Feedback compression on real failures: small projects that fail under pytest, mypy,
   gcc and terraform (:mod:`zerog.bench.failures`) are run for real; their raw output is
   measured against the summary the planner gets (estimated tokens, 4 characters a
   token), and the summary's *recall* is checked: the share of failing test names and
   error locations (file:line) of the raw output that the summary still names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from zerog.bench.failures import RUNNERS, available
from zerog.errors import ZerogError
from zerog.models.base import estimate_tokens
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.local import LocalSandbox
from zerog.types import Check, PredicateCheck, SchemaCheck
from zerog.validate.compile import SweepPlan, compile_checks
from zerog.validate.sidecar import PythonRunner, SandboxPython, make_sidecar
from zerog.validate.summarize import summarize_text
from zerog.validate.sweep import sweep

BUDGETS = (3000, 1000)  # characters: the feedback default (~750 tokens), and a tight one
_FAILED = re.compile(r"^FAILED \S+::(\S+(?:\[[^\]]*\])?)", re.MULTILINE)
_ERROR_AT = re.compile(r"^([^\s:]+):(\d+)(?::\d+)?: (?:fatal )?error", re.MULTILINE)
_TF_AT = re.compile(r"on (\S+) line (\d+)")


class BenchCheckFailed(Exception):
    """A check of the bench failed: that sidecar cannot be measured here."""


@dataclass(frozen=True)
class SweepTiming:
    sidecar: str
    jobs: int
    ms_per_sweep: float

    @property
    def ms_per_check(self) -> float:
        return self.ms_per_sweep / 10


@dataclass(frozen=True)
class Compression:
    tool: str
    command: str
    raw_tokens: int
    summary_tokens: dict[int, int]  # budget (chars) -> tokens
    facts: int
    recall: dict[int, float]  # budget (chars) -> share of the facts the summary names


@dataclass(frozen=True)
class SweepReport:
    rounds: int
    timings: tuple[SweepTiming, ...]
    unavailable: dict[str, str]
    compression: tuple[Compression, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "rounds": self.rounds,
            "timings": [
                {**asdict(t), "ms_per_check": round(t.ms_per_check, 2)} for t in self.timings
            ],
            "unavailable": self.unavailable,
            "compression": [asdict(c) for c in self.compression],
        }

    def tables(self) -> list[Table]:
        timing = Table(title=f"sweep of 10 sidecar checks (median of {self.rounds})")
        for column in ("sidecar", "jobs", "ms / sweep", "ms / check", "vs subprocess"):
            timing.add_column(column, justify="left" if column == "sidecar" else "right")
        base = {t.jobs: t.ms_per_sweep for t in self.timings if t.sidecar == "subprocess (local)"}
        for t in self.timings:
            ratio = f"{t.ms_per_sweep / base[t.jobs]:.2f}x" if t.jobs in base else "-"
            timing.add_row(
                t.sidecar, str(t.jobs), f"{t.ms_per_sweep:.1f}", f"{t.ms_per_check:.1f}", ratio
            )
        for name, why in self.unavailable.items():
            timing.add_row(name, "-", "unavailable", why[:60], "-")
        feedback = Table(title="failure feedback: raw output vs summary (tokens = chars / 4)")
        for column in ("tool", "raw tokens", *(f"summary @{b}" for b in BUDGETS), "facts"):
            feedback.add_column(column, justify="left" if column == "tool" else "right")
        for c in self.compression:
            cells = [
                f"{c.summary_tokens[b]} ({c.raw_tokens / max(c.summary_tokens[b], 1):.1f}x, "
                f"recall {c.recall[b]:.0%})"
                for b in BUDGETS
            ]
            feedback.add_row(c.tool, str(c.raw_tokens), *cells, str(c.facts))
        return [timing, feedback]


# ------------------------------------------------------------------ sweep timing


def bench_workspace(root: Path) -> tuple[Path, list[Check]]:
    """A small workspace and 10 passing sidecar checks over it."""
    ws = root / "ws"
    (ws / "config").mkdir(parents=True)
    (ws / "app.py").write_text("def answer():\n    return 42\n", encoding="utf-8")
    (ws / "notes.txt").write_text("status: green\n" * 20, encoding="utf-8")
    schema: dict[str, object] = {
        "type": "object",
        "required": ["name", "port", "tags"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "port": {"type": "integer", "minimum": 1, "maximum": 65535},
            "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
        },
        "additionalProperties": False,
    }
    checks: list[Check] = []
    for i in range(5):
        body = {"name": f"service-{i}", "port": 8000 + i, "tags": ["a", "b"]}
        (ws / "config" / f"s{i}.json").write_text(json.dumps(body), encoding="utf-8")
        checks.append(SchemaCheck.model_validate({"path": f"config/s{i}.json", "schema": schema}))
    checks += [
        PredicateCheck(python="import app\napp.answer() == 42"),
        PredicateCheck(python="read('notes.txt').count('green') == 20"),
        PredicateCheck(python="len(os.listdir('config')) == 5"),
        PredicateCheck(python="load_json('config/s0.json')['port'] == 8000"),
        PredicateCheck(python="all(line.startswith('status') for line in open('notes.txt'))"),
    ]
    return ws, checks


def _one_sweep(
    ws: Path, plan: SweepPlan, sandbox: Sandbox, sidecar: PythonRunner, jobs: int
) -> float:
    """The wall time of one sweep, in ms; BenchCheckFailed when a check fails."""
    started = time.perf_counter()
    verdict = sweep(plan, ws, sandbox, Limits(timeout=60), jobs=jobs, sidecar=sidecar)
    elapsed = time.perf_counter() - started
    if not verdict.passed:
        failed = verdict.failures[0]
        reason = " ".join((failed.observation.stderr or failed.observation.status).split())
        raise BenchCheckFailed(f"a check failed: {failed.name}: {reason[-300:]}")
    return elapsed * 1000


def _time_sweeps(
    ws: Path,
    checks: list[Check],
    runs: list[tuple[str, Sandbox, PythonRunner, bool]],
    rounds: int,
    missing: dict[str, str],
    say: Callable[[str], None],
) -> list[SweepTiming]:
    """Median ms per sweep of every (sidecar, jobs), the rounds interleaved (each round
    runs every sidecar once, in turn), so that a machine whose load changes during the
    bench weighs on every sidecar alike; the first round warms caches up."""
    full = compile_checks(checks)
    plans = {True: full, False: dataclasses.replace(full, batch=None)}
    cases = [(run, jobs) for run in runs for jobs in (1, 2)]
    samples: dict[tuple[str, int], list[float]] = {(run[0], jobs): [] for run, jobs in cases}
    for number in range(rounds + 1):
        for (name, sandbox, sidecar, batch), jobs in cases:
            if name in missing:
                continue
            try:
                ms = _one_sweep(ws, plans[batch], sandbox, sidecar, jobs)
            except BenchCheckFailed as exc:
                missing[name] = str(exc)
                say(f"{name}: {exc}")
                continue
            if number:
                samples[(name, jobs)].append(ms)
    timings = []
    for (name, jobs), values in samples.items():
        if name not in missing and values:
            timings.append(SweepTiming(name, jobs, statistics.median(values)))
            say(f"{name}, {jobs} at a time: {timings[-1].ms_per_sweep:.1f} ms per sweep")
    return timings


def _sidecars(
    local: Sandbox, env: Mapping[str, str], environ: Mapping[str, str]
) -> tuple[list[tuple[str, Sandbox, PythonRunner]], dict[str, str]]:
    found: list[tuple[str, Sandbox, PythonRunner]] = []
    missing: dict[str, str] = {}
    try:
        wasm = make_sidecar("wasm", local, env, environ=environ)
        found.append(("wasm", local, wasm))
        if isinstance(wasm, SandboxPython) and wasm.fallback:
            missing["wasm component"] = wasm.fallback
        else:  # the path the component replaced, for the ratio
            from zerog.sandbox.factory import make_sandbox

            shell = make_sandbox("wasm", env, environ=environ)
            found.append(("wasm through the guest shell", local, SandboxPython(shell, "python")))
    except ZerogError as exc:
        missing["wasm"] = str(exc)
    found.append(("subprocess (local)", local, SandboxPython(local, sys.executable)))
    try:
        from zerog.sandbox.factory import make_sandbox

        bwrap = make_sandbox("bwrap", env, environ=environ)
        found.append(("subprocess (bwrap)", bwrap, SandboxPython(bwrap, "python3")))
    except ZerogError as exc:
        missing["subprocess (bwrap)"] = str(exc)
    return found, missing


# ------------------------------------------------------------------ feedback compression


def key_facts(raw: str) -> set[str]:
    """What a fix needs named: failing tests, and the file:line of every error."""
    facts = set(_FAILED.findall(raw))
    facts |= {f"{m[0]}:{m[1]}" for m in _ERROR_AT.findall(raw)}
    facts |= {f"{m[0]}:{m[1]}" for m in _TF_AT.findall(raw)}
    return facts


def named(fact: str, summary: str) -> bool:
    """Whether the summary names ``fact``: verbatim, or a parametrized test's case as its
    id in the folded line of its test (``test_x[...] in 60 cases: a, b, ...``)."""
    if fact in summary:
        return True
    base, _, case = fact.partition("[")
    return bool(case) and f"{base}[...]" in summary and case.rstrip("]") in summary


def compression(tool: str, command: str, raw: str) -> Compression:
    facts = key_facts(raw)
    tokens: dict[int, int] = {}
    recall: dict[int, float] = {}
    for budget in BUDGETS:
        summary = summarize_text(raw, budget)
        tokens[budget] = estimate_tokens(summary)
        found = sum(1 for fact in facts if named(fact, summary))
        recall[budget] = found / len(facts) if facts else 1.0
    return Compression(tool, command, estimate_tokens(raw), tokens, len(facts), recall)


def measure(
    rounds: int = 5,
    environ: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> SweepReport:
    say = progress or (lambda _: None)
    environ = dict(os.environ if environ is None else environ)
    env = {"PATH": environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    local = LocalSandbox({**env, "PYTHONDONTWRITEBYTECODE": "1"})
    with tempfile.TemporaryDirectory(prefix="zerog-bench-sweep-") as tmp:
        ws, checks = bench_workspace(Path(tmp))
        sidecars, missing = _sidecars(local, env, environ)
        runs = [(n, sb, sc, True) for n, sb, sc in sidecars]
        if sidecars and sidecars[0][0] == "wasm":
            runs.insert(1, ("wasm, no schema batch", *sidecars[0][1:], False))
        timings = _time_sweeps(ws, checks, runs, rounds, missing, say)
    results: list[Compression] = []
    for tool, runner in RUNNERS.items():
        if not available(tool):
            missing[tool] = "not installed"
            continue
        with tempfile.TemporaryDirectory(prefix=f"zerog-bench-{tool}-") as tmp:
            failure = runner(Path(tmp))
        results.append(compression(tool, failure.command, failure.raw))
        say(f"{tool}: {results[-1].raw_tokens} raw tokens")
    return SweepReport(rounds, tuple(timings), missing, tuple(results))
