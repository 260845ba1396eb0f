"""`zerog bench serve`: what running a goal through `zerog serve` costs over running it
with the engine in-process, and how late the event stream delivers events.

The goal is the demo (examples/demo: one failed attempt, a rollback, a second attempt that
passes) with the scripted model and the default sandbox, on a fresh copy of the workspace
each time. The baseline runs it with :class:`~zerog.engine.loop.Engine` in this process; the
service runs it through the real app on a loopback port (one worker process per run),
submitted over HTTP and followed over server-sent events to its end: first with a worker
process started for each run ("cold", ``--spares 0``), then with the default spare worker
started ahead and waiting with zerog imported ("warm"). The stream's delay is the time
from an event's timestamp (written by the worker) to its arrival here (warm runs).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import statistics
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rich.table import Table

from zerog.engine.loop import Engine
from zerog.errors import ZerogError
from zerog.models.spec import load_model
from zerog.store import Store
from zerog.types import Goal

DEMO = Path(__file__).resolve().parents[3] / "examples" / "demo"
GOAL_TEXT = "Fix restock() so the inventory tests pass"
CHECK = "python3 -m unittest -q"


@dataclass(frozen=True)
class ServeReport:
    runs: int
    engine_ms: float
    served_ms: float  # warm: a spare worker process waiting
    cold_ms: float  # a worker process started per run
    delays_ms: tuple[float, ...]
    poll_seconds: float

    @property
    def overhead_ms(self) -> float:
        return self.served_ms - self.engine_ms

    def delay(self, quantile: float) -> float:
        ordered = sorted(self.delays_ms)
        return ordered[min(int(quantile * len(ordered)), len(ordered) - 1)] if ordered else 0.0

    def as_dict(self) -> dict[str, float | int]:
        return {
            "runs": self.runs,
            "engine_run_ms": round(self.engine_ms, 1),
            "served_run_ms": round(self.served_ms, 1),
            "overhead_ms": round(self.overhead_ms, 1),
            "ratio": round(self.served_ms / self.engine_ms, 3),
            "cold_run_ms": round(self.cold_ms, 1),
            "cold_ratio": round(self.cold_ms / self.engine_ms, 3),
            "events": len(self.delays_ms),
            "stream_delay_median_ms": round(self.delay(0.5), 1),
            "stream_delay_p95_ms": round(self.delay(0.95), 1),
            "poll_seconds": self.poll_seconds,
        }

    def table(self) -> Table:
        table = Table(title=f"the demo goal, {self.runs} runs each (medians)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        d = self.as_dict()
        for label, key, unit in (
            ("engine in-process, per run", "engine_run_ms", " ms"),
            ("through zerog serve (submit → end event), per run", "served_run_ms", " ms"),
            ("overhead of the service, per run", "overhead_ms", " ms"),
            ("ratio served / in-process", "ratio", "x"),
            ("served without a spare worker (--spares 0), per run", "cold_run_ms", " ms"),
            ("ratio served without a spare / in-process", "cold_ratio", "x"),
            ("events streamed", "events", ""),
            ("stream delay, median", "stream_delay_median_ms", " ms"),
            ("stream delay, 95th percentile", "stream_delay_p95_ms", " ms"),
            ("store poll interval of the stream", "poll_seconds", " s"),
        ):
            table.add_row(label, f"{d[key]}{unit}")
        return table


def _fresh(scratch: Path, n: int) -> Path:
    target = scratch / f"ws{n}"
    shutil.copytree(DEMO / "workspace", target)
    return target


def _engine_run(scratch: Path, n: int, store: Store) -> float:
    workspace = _fresh(scratch, n)
    model = load_model(f"scripted:{DEMO / 'script.jsonl'}", base_dir=scratch)
    goal = Goal(text=GOAL_TEXT, workspace=workspace, checks=[CHECK])
    started = time.perf_counter()
    result = Engine(model, store=store, write_trace=False).run(goal)
    elapsed = (time.perf_counter() - started) * 1000
    if not result.ok:
        raise ZerogError(f"the demo run did not succeed in-process: {result.reason}")
    return elapsed


def _post(url: str, token: str, body: dict[str, object]) -> dict[str, object]:
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
    request = urllib.request.Request(  # noqa: S310 - a loopback URL built here
        url, data=json.dumps(body).encode(), headers=headers
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
        data: dict[str, object] = json.loads(response.read())
    return data


def _follow(url: str, token: str, delays: list[float]) -> str:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL built here
        url, headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=120) as response:  # noqa: S310
        kind, data = "message", ""
        for raw in response:
            line = raw.decode("utf-8").rstrip("\r\n")
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif not line and data:
                record = json.loads(data)
                if kind == "end":
                    return str(record["status"])
                delays.append((time.time() - float(record["ts"])) * 1000)
                kind, data = "message", ""
    return "no end"


def _new(scratch: Path, n: int) -> str:
    """A fresh copy of the demo workspace under the servers' root; its name there."""
    return _fresh(scratch / "root", n).name


def _served_run(base: str, token: str, workspace: str, delays: list[float]) -> float:
    started = time.perf_counter()
    run = _post(
        f"{base}/api/runs",
        token,
        {
            "text": GOAL_TEXT,
            "workspace": workspace,
            "checks": [CHECK],
            "model": "scripted:script.jsonl",
        },
    )
    status = _follow(f"{base}/api/runs/{run['id']}/events", token, delays)
    elapsed = (time.perf_counter() - started) * 1000
    if status != "success":
        raise ZerogError(f"the demo run did not succeed through the service: {status}")
    return elapsed


def measure(
    *, runs: int = 10, poll_seconds: float = 0.25, progress: Callable[[str], None] | None = None
) -> ServeReport:
    from zerog.serve.build import build_app, in_thread

    say = progress or (lambda _line: None)
    engine: list[float] = []
    served: dict[int, list[float]] = {0: [], 1: []}
    delays: list[float] = []
    token = secrets.token_urlsafe(32)
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="zerog-bench-")))
        (scratch / "root").mkdir()
        shutil.copy(DEMO / "script.jsonl", scratch / "root" / "script.jsonl")
        store = stack.enter_context(Store(scratch / "engine.db"))
        bases: dict[int, str] = {}
        for spares in (0, 1):  # a server each way, both up for the whole measurement
            built = build_app(
                stack.enter_context(Store(scratch / f"served-{spares}.db")),
                scratch / "root",
                token=token,
                workers=1,
                queue=1,
                environ=dict(os.environ),
                poll_seconds=poll_seconds,
                spares=spares,
            )
            stack.callback(built.close)
            bases[spares] = stack.enter_context(in_thread(built.app))
        names = iter(range(10**6))
        # A warm-up each way, then rounds that take turns, so that a change in the
        # machine's load falls on all three alike.
        for n in range(runs + 1):
            ran = _engine_run(scratch, next(names), store)
            cold = _served_run(bases[0], token, _new(scratch, next(names)), [])
            warm = _served_run(bases[1], token, _new(scratch, next(names)), delays if n else [])
            if n:
                engine.append(ran)
                served[0].append(cold)
                served[1].append(warm)
                say(
                    f"round {n}: in-process {ran:.0f} ms, served {cold:.0f} ms cold, "
                    f"{warm:.0f} ms with a spare worker"
                )
    return ServeReport(
        runs=runs,
        engine_ms=statistics.median(engine),
        served_ms=statistics.median(served[1]),
        cold_ms=statistics.median(served[0]),
        delays_ms=tuple(delays),
        poll_seconds=poll_seconds,
    )
