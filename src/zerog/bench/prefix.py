"""`zerog bench prefix`: what reusing the prompt's prefix saves over a real run.

A real 5-iteration run of the engine with the embedded local model on a workspace of real
source files, whose check can never pass (and the run is never ended as stuck, so every
run has the same number of iterations), done twice in the same process with the same model object:

- **baseline**: llama.cpp's tokens are cleared before every call, so each call evaluates
  its whole prompt (what a fresh model per call, or a server without a prefix cache, does);
- **reuse**: the model as zerog runs it, one ``Llama`` kept across the run's calls, so a
  call evaluates only what follows the longest prefix it shares with the previous one.

Per call: the prompt tokens sent, the tokens reused (the response's ``cached_tokens``)
and the tokens evaluated; per iteration: its wall time. The ratio of the two runs' times
is the saving (answers differ a little between the runs only if their output differs,
which greedy decoding of the same prompts does not).
"""

from __future__ import annotations

import itertools
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from zerog.bench.models import machine
from zerog.event_catalog import IterationStarted, ModelCalled, parse
from zerog.events import Event
from zerog.models.base import Request, Response
from zerog.models.llamacpp import LlamaCppModel

# Real source files of zerog (under the context's per-file limit): their text is the
# stable part of every prompt, as a repository's files are. ``--files 2`` adds the second.
PACKAGE = Path(__file__).resolve().parents[1]
SOURCES = (PACKAGE / "text.py", PACKAGE / "validate" / "junit.py")
GOAL = (
    "Add a function shout(text) to text.py that returns the text upper-cased with one "
    "exclamation mark at the end, using the helpers already in the file."
)
UNBOUNDED = 10**6  # iterations: never "stuck" (the check fails the same way every time)
MAX_SECONDS = 24 * 3600.0
NEVER = "python3 -c \"import sys; sys.exit('this benchmark check never passes')\""


@dataclass(frozen=True)
class Call:
    iteration: int
    purpose: str
    sent: int  # prompt tokens
    reused: int  # of them taken from llama.cpp's kept tokens
    output: int
    seconds: float

    @property
    def evaluated(self) -> int:
        return self.sent - self.reused


@dataclass(frozen=True)
class RunFigures:
    label: str
    calls: tuple[Call, ...]
    iteration_seconds: tuple[float, ...]
    seconds: float

    @property
    def sent(self) -> int:
        return sum(c.sent for c in self.calls)

    @property
    def evaluated(self) -> int:
        return sum(c.evaluated for c in self.calls)

    def as_dict(self) -> dict[str, object]:
        return {
            "label": self.label,
            "calls": [{**asdict(c), "evaluated": c.evaluated} for c in self.calls],
            "iteration_seconds": list(self.iteration_seconds),
            "seconds": self.seconds,
            "sent": self.sent,
            "evaluated": self.evaluated,
        }


@dataclass(frozen=True)
class PrefixReport:
    machine: str
    model: str
    baseline: RunFigures
    reuse: RunFigures

    @property
    def ratio(self) -> float:
        """The reuse run's time over the baseline's (below 1: faster)."""
        return self.reuse.seconds / self.baseline.seconds

    @property
    def later_ratio(self) -> float:
        """The same for the iterations after the first (where the reuse can happen)."""
        base = sum(self.baseline.iteration_seconds[1:])
        return sum(self.reuse.iteration_seconds[1:]) / base if base else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {
            "machine": self.machine,
            "model": self.model,
            "baseline": self.baseline.as_dict(),
            "reuse": self.reuse.as_dict(),
            "ratio": self.ratio,
            "later_iterations_ratio": self.later_ratio,
        }

    def tables(self) -> list[Table]:
        calls = Table(title=f"prompt tokens per call, {self.model} · {self.machine}")
        for column in ("run", "iter", "purpose", "sent", "reused", "evaluated", "out", "s"):
            calls.add_column(column, justify="left" if column in ("run", "purpose") else "right")
        for run in (self.baseline, self.reuse):
            for c in run.calls:
                calls.add_row(
                    run.label,
                    str(c.iteration),
                    c.purpose,
                    str(c.sent),
                    str(c.reused),
                    str(c.evaluated),
                    str(c.output),
                    f"{c.seconds:.1f}",
                )
        times = Table(title="wall time per iteration (s)")
        times.add_column("run")
        iterations = max(len(self.baseline.iteration_seconds), len(self.reuse.iteration_seconds))
        for number in range(1, iterations + 1):
            times.add_column(str(number), justify="right")
        for column in ("total", "evaluated / sent"):
            times.add_column(column, justify="right")
        for run in (self.baseline, self.reuse):
            shown = [f"{s:.1f}" for s in run.iteration_seconds]
            times.add_row(
                run.label,
                *shown,
                *("" for _ in range(iterations - len(shown))),
                f"{run.seconds:.1f}",
                f"{run.evaluated} / {run.sent}",
            )
        times.add_row(
            "reuse / baseline",
            *("" for _ in range(iterations)),
            f"{self.ratio:.2f}x (iterations 2+: {self.later_ratio:.2f}x)",
            "",
        )
        return [calls, times]


class _Fresh:
    """The baseline: the same model, its kept tokens cleared before every call."""

    def __init__(self, model: LlamaCppModel) -> None:
        self._model = model

    @property
    def name(self) -> str:
        return self._model.name

    def complete(self, request: Request) -> Response:
        self._model.llama.reset()  # type: ignore[no-untyped-call]
        return self._model.complete(request)


class _Events:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)


def _figures(label: str, events: list[Event], seconds: float) -> RunFigures:
    calls: list[Call] = []
    starts: list[float] = []
    end = events[-1].ts if events else 0.0
    iteration = 0
    for event in events:
        typed = parse(event)
        if isinstance(typed, IterationStarted):
            iteration = typed.iteration
            starts.append(event.ts)
        elif isinstance(typed, ModelCalled):
            calls.append(
                Call(
                    iteration=iteration,
                    purpose=typed.purpose,
                    sent=typed.input_tokens,
                    reused=typed.cached_tokens,
                    output=typed.output_tokens,
                    seconds=typed.duration,
                )
            )
    bounds = [*starts, end]
    per_iteration = tuple(b - a for a, b in itertools.pairwise(bounds))
    return RunFigures(label, tuple(calls), per_iteration, seconds)


def _run(
    label: str, model: LlamaCppModel | _Fresh, iterations: int, files: int, scratch: Path
) -> RunFigures:
    from zerog import Budget, Engine, Goal
    from zerog.sandbox.local import LocalSandbox
    from zerog.types import CommandCheck

    workspace = scratch / label
    workspace.mkdir()
    for source in SOURCES[:files]:
        shutil.copyfile(source, workspace / source.name)
    sink = _Events()
    engine = Engine(
        model,
        LocalSandbox({"PATH": "/usr/bin:/bin"}),
        sinks=[sink],
        write_trace=False,
        stuck_after=UNBOUNDED,
    )
    goal = Goal(
        text=GOAL,
        workspace=workspace,
        checks=(CommandCheck(command=NEVER),),
        budget=Budget(max_iterations=iterations, max_seconds=MAX_SECONDS),
    )
    started = time.perf_counter()
    engine.run(goal)
    return _figures(label, sink.events, time.perf_counter() - started)


def measure(
    path: Path,
    *,
    name: str = "local",
    iterations: int = 5,
    files: int = 1,
    progress: Callable[[str], None] | None = None,
) -> PrefixReport:
    """Run the baseline, then the reuse run, on the GGUF model at ``path``."""
    model = LlamaCppModel(path, name=name, n_ctx=8192, n_threads=2)
    with tempfile.TemporaryDirectory(prefix="zerog-bench-prefix-") as scratch:
        baseline = _run("baseline", _Fresh(model), iterations, files, Path(scratch))
        if progress is not None:
            progress(
                f"baseline: {baseline.seconds:.1f} s, evaluated {baseline.evaluated} of "
                f"{baseline.sent} prompt tokens"
            )
        model.llama.reset()  # type: ignore[no-untyped-call]  # nothing kept from the baseline
        reuse = _run("reuse", model, iterations, files, Path(scratch))
        if progress is not None:
            progress(
                f"reuse: {reuse.seconds:.1f} s, evaluated {reuse.evaluated} of "
                f"{reuse.sent} prompt tokens"
            )
    return PrefixReport(machine=machine(), model=name, baseline=baseline, reuse=reuse)
