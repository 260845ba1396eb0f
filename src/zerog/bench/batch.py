"""`zerog bench batch`: goals per second through the local pool and Ray, and dispatch cost.

The workload is a batch of trivial goals: the scripted model answers one plan (write a
file, append a tag to a log outside the workspace) and a one-command check proves it.
Throughput is measured at several worker counts on each executor, in the steady state
(from the first goal's end to the last's: the workers' start-up is reported apart). The
dispatch overhead per goal is, at one worker, the time between two goals' ends minus the
time the goal spent inside its worker (measured there, on the same goals, so the
machine's load weighs on both alike), set beside the round trip of a bare no-op task
through a warm process pool and through Ray. The same goals run directly in this process
are reported too.

The same workload, with some goals whose worker kills itself mid-goal (once), is what the
tests use to prove that a killed worker's goal is retried without duplicating its side
effects: :func:`check_side_effects` counts every goal's tags in the log against the
retries recorded in the store.
"""

from __future__ import annotations

import collections
import json
import multiprocessing
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.table import Table

from zerog.batch.goals import read_goals
from zerog.batch.ledger import SharedBudget, Spend
from zerog.batch.runner import BatchOptions, BatchProgress, BatchReport, run_batch
from zerog.batch.worker import GoalOutcome, WorkerState, run_goal
from zerog.bench.retries import retried_actions
from zerog.events import Event
from zerog.store import Store

LOG_VAR = "ZEROG_BATCH_LOG"
TAGS = ("i1s1a2", "i1s1a4")  # the marking actions of the plan (iteration, step, action)
CHECK = "test -f done.txt"


def _mark(tag: str) -> dict[str, object]:
    return {"kind": "shell", "command": f'echo "$(basename "$PWD") {tag}" >> "${LOG_VAR}"'}


# Kills the process running the goal (the sandbox shell's parent: the pool or Ray worker)
# the first time it runs in a workspace that holds a KILL file; mkdir makes it once only.
KILL_ONCE = (
    f'if [ -f KILL ] && mkdir "${LOG_VAR}.kills/$(basename "$PWD")" 2>/dev/null; '
    "then kill -9 $PPID; sleep 1; fi"
)


def script_lines(
    usage: dict[str, int] | None = None, latency_ms: float = 0.0
) -> list[dict[str, object]]:
    plan: dict[str, object] = {
        "purpose": "plan",
        "json": {
            "steps": [
                {
                    "intent": "do the work",
                    "actions": [
                        {"kind": "write_file", "path": "a.txt", "content": "one\n"},
                        _mark(TAGS[0]),
                        {"kind": "shell", "command": KILL_ONCE},
                        _mark(TAGS[1]),
                        {"kind": "write_file", "path": "done.txt", "content": "ok\n"},
                    ],
                }
            ]
        },
    }
    if usage is not None:
        plan["usage"] = usage
    if latency_ms:
        plan["latency_ms"] = latency_ms
    return [plan]


@dataclass(frozen=True)
class Workload:
    root: Path
    goals_file: Path
    script: Path
    log: Path
    killed: frozenset[int]  # goals whose worker is killed once

    def model(self) -> str:
        return f"scripted:{self.script}"


def prepare(
    root: Path,
    goals: int,
    kill_every: int = 0,
    usage: dict[str, int] | None = None,
    latency_ms: float = 0.0,
) -> Workload:
    """``goals`` goals in ``root``; with ``kill_every`` = k, every k-th goal's worker is
    killed once in the middle of the goal; with ``latency_ms``, the model answers after
    that long (a remote provider's latency: the goal waits, its CPU is free)."""
    for name in ("plain", "kill"):
        source = root / "src" / name
        source.mkdir(parents=True)
        (source / "README.md").write_text("batch workload\n", encoding="utf-8")
    (root / "src" / "kill" / "KILL").write_text("", encoding="utf-8")
    script = root / "script.jsonl"
    lines_out = script_lines(usage, latency_ms)
    script.write_text("\n".join(json.dumps(x) for x in lines_out) + "\n")
    log = root / "side-effects.log"
    log.write_text("")
    (root / "side-effects.log.kills").mkdir()
    killed = set()
    lines = []
    for index in range(1, goals + 1):
        kill = kill_every > 0 and index % kill_every == 0
        if kill:
            killed.add(index)
        lines.append(
            {
                "text": f"goal {index}: create done.txt",
                "workspace": "src/kill" if kill else "src/plain",
                "checks": [CHECK],
                "env": [LOG_VAR],
                "budget": {"max_iterations": 2, "max_seconds": 120},
            }
        )
    goals_file = root / "goals.jsonl"
    goals_file.write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    return Workload(root, goals_file, script, log, frozenset(killed))


@dataclass
class SideEffects:
    lost: list[str] = field(default_factory=list)  # goal:tag never run
    duplicated: list[str] = field(default_factory=list)  # run more than once + retries
    retries: int = 0  # interrupted actions retried (recorded in the store)


def check_side_effects(workload: Workload, report: BatchReport, store_path: Path) -> SideEffects:
    """Every goal's tags in the log, against the action retries its run recorded."""
    ran = collections.Counter(
        tuple(line.split()) for line in workload.log.read_text().splitlines() if line.strip()
    )
    result = SideEffects()
    with Store(store_path) as store:
        for outcome in report.outcomes:
            name = Path(outcome.workspace).name
            retried = retried_actions(store.events(outcome.run_id))
            result.retries += sum(retried.values())
            for tag in TAGS:
                count = ran[(name, tag)]
                if count == 0:
                    result.lost.append(f"{name}:{tag}")
                elif count > 1 + retried[tag]:
                    result.duplicated.append(f"{name}:{tag} x{count}")
    return result


def environ_for(workload: Workload) -> dict[str, str]:
    return {**os.environ, LOG_VAR: str(workload.log)}


def run_workload(
    workload: Workload,
    *,
    executor: str,
    jobs: int,
    store_path: Path,
    shared: SharedBudget | None = None,
    batch_id: str = "bench",
    progress: BatchProgress | None = None,
) -> BatchReport:
    """Run the workload's batch (the log's variable must be in this process's
    environment: workers inherit it)."""
    options = _options(workload, executor, jobs, batch_id, shared)
    return run_batch(read_goals(workload.goals_file), options, store_path, progress)


def _options(
    workload: Workload,
    executor: str,
    jobs: int,
    batch_id: str,
    shared: SharedBudget | None = None,
) -> BatchOptions:
    return BatchOptions(
        model=workload.model(),
        out_dir=workload.root / "out",
        batch_id=batch_id,
        jobs=jobs,
        executor=executor,
        shared=shared or SharedBudget(),
        sandbox="local",
        base_dir=workload.root,
    )


# ---------------------------------------------------------------- the benchmark


def _noop(value: str) -> str:
    return value


def _bare_pool(tasks: int) -> float:
    """Seconds per no-op task through a warm one-process spawn pool, one at a time."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        pool.submit(_noop, "warm").result()
        started = time.perf_counter()
        for n in range(tasks):
            pool.submit(_noop, str(n)).result()
        return (time.perf_counter() - started) / tasks


def _bare_ray(tasks: int) -> float:
    import ray

    remote = ray.remote(_noop).options(num_cpus=1)
    ray.get(remote.remote("warm"))
    started = time.perf_counter()
    for n in range(tasks):
        ray.get(remote.remote(str(n)))
    return (time.perf_counter() - started) / tasks


def _direct(root: Path, goals: int) -> tuple[float, float]:
    """Seconds per goal run directly in this process (the same batch, its goals handed
    to :func:`run_goal` here instead of to an executor), and the store transactions that
    appended events per goal."""
    workload = prepare(root, goals)
    state = WorkerState()

    def inline(
        tasks: Mapping[int, str],
        attempts: Callable[[int], int],
        on_done: Callable[[str], None],
        on_lost: Callable[[int, str], None],
    ) -> None:
        for task in tasks.values():
            on_done(run_goal(task, state))

    options = _options(workload, "local", 1, "direct")
    timer = _Timer()
    run_batch(read_goals(workload.goals_file), options, root / "runs.db", timer, execute=inline)
    return timer.steady(), state.commits() / goals


def _append_events(path: str, run_id: str, count: int) -> float:
    """Append ``count`` events to the store at ``path``, one transaction each; returns
    the seconds it took (run in a worker process)."""
    store = Store(Path(path))
    try:
        started = time.perf_counter()
        for seq in range(1, count + 1):
            store.append((Event(run_id, seq, time.time(), "note", {"n": seq}),))
        return time.perf_counter() - started
    finally:
        store.close()


def _commit_ceiling(root: Path, writers: int, count: int) -> float:
    """Transactions per second that ``writers`` processes get from one shared store,
    each appending ``count`` one-event transactions at once: the most any batch can
    commit, whatever its goals do."""
    path = root / "ceiling.db"
    root.mkdir(parents=True, exist_ok=True)
    with Store(path) as store:
        for n in range(writers):
            store.create_run(f"writer-{n}", "commit ceiling", str(root), {}, time.time())
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(writers, mp_context=context) as pool:
        pool.submit(_noop, "warm").result()
        started = time.perf_counter()
        futures = [
            pool.submit(_append_events, str(path), f"writer-{n}", count) for n in range(writers)
        ]
        for future in futures:
            future.result()
        return writers * count / (time.perf_counter() - started)


class _Timer(BatchProgress):
    """When each goal finished: the steady rate leaves out the workers' start-up."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.in_worker: list[float] = []

    def goal_done(self, outcome: GoalOutcome, spend: Spend) -> None:
        self.times.append(time.perf_counter())
        self.in_worker.append(outcome.seconds)

    def steady(self) -> float:
        """Seconds per goal from the first goal's end to the last's."""
        if len(self.times) < 2:
            raise RuntimeError("the benchmark needs at least 2 goals")
        return (self.times[-1] - self.times[0]) / (len(self.times) - 1)


@dataclass
class Row:
    executor: str
    workers: int
    latency_ms: float  # the model's answer delay (0: the goals are all engine work)
    goals: int
    per_goal: float  # steady state: seconds between goal completions
    total: float  # the whole batch, with the workers' start-up
    in_worker: float  # mean seconds a goal spent inside its worker (the goal's own work)

    @property
    def rate(self) -> float:
        return 1 / self.per_goal


@dataclass
class BatchBenchReport:
    goals: int
    cores: int
    direct_per_goal: float
    bare_pool: float
    bare_ray: float | None
    rows: list[Row]
    commits_per_goal: float  # store transactions that appended a goal's events
    commit_ceiling: float  # transactions/s of two processes on one store

    def _one_worker(self, executor: str) -> Row | None:
        """The dispatch measurement: one worker, the model answering at once."""
        ones = [
            r for r in self.rows if r.executor == executor and r.workers == 1 and not r.latency_ms
        ]
        return ones[0] if ones else None

    def per_goal(self, executor: str) -> float | None:
        one = self._one_worker(executor)
        return one.per_goal if one else None

    def overhead(self, executor: str) -> float | None:
        """Time per goal at one worker beyond the goal's own work in the worker, measured
        on the same goals (so the machine's load weighs on both alike)."""
        one = self._one_worker(executor)
        return one.per_goal - one.in_worker if one else None

    @property
    def goals_ceiling(self) -> float:
        """Goals/s the shared store's commits allow, if goals did nothing else."""
        return self.commit_ceiling / self.commits_per_goal if self.commits_per_goal else 0.0

    def as_dict(self) -> dict[str, object]:
        return {
            "goals": self.goals,
            "cores": self.cores,
            "direct_ms_per_goal": round(self.direct_per_goal * 1000, 3),
            "bare_pool_task_ms": round(self.bare_pool * 1000, 3),
            "bare_ray_task_ms": None if self.bare_ray is None else round(self.bare_ray * 1000, 3),
            "commits_per_goal": round(self.commits_per_goal, 2),
            "commit_ceiling_per_s": round(self.commit_ceiling, 1),
            "goals_ceiling_per_s": round(self.goals_ceiling, 1),
            "dispatch_overhead_ms": {
                e: round(o * 1000, 3)
                for e in ("local", "ray")
                if (o := self.overhead(e)) is not None
            },
            "throughput": [
                {
                    "executor": r.executor,
                    "workers": r.workers,
                    "model_latency_ms": r.latency_ms,
                    "goals_per_s": round(r.rate, 2),
                    "wall_s": round(r.total, 3),
                    "speedup": round(r.rate / self._base(r), 2),
                }
                for r in self.rows
            ],
        }

    def _base(self, row: Row) -> float:
        """The one-worker rate of ``row``'s executor and workload."""
        ones = [
            r.rate
            for r in self.rows
            if r.executor == row.executor and r.latency_ms == row.latency_ms and r.workers == 1
        ]
        return ones[0] if ones else statistics.mean(r.rate for r in self.rows)

    def tables(self) -> list[Table]:
        rates = Table(
            title=f"batch throughput: {self.goals} goals, {self.cores} cores; the store "
            f"commits {self.commit_ceiling:.0f}/s from 2 processes, a goal "
            f"{self.commits_per_goal:.1f}: at most {self.goals_ceiling:.0f} goals/s"
        )
        columns = ("executor", "model answers", "workers", "goals/s", "vs 1 worker", "wall")
        for column in columns:
            rates.add_column(column, justify="left" if column == "executor" else "right")
        for r in self.rows:
            rates.add_row(
                r.executor,
                f"after {r.latency_ms:.0f} ms" if r.latency_ms else "at once",
                str(r.workers),
                f"{r.rate:.1f}",
                f"{r.rate / self._base(r):.2f}x",
                f"{r.total:.1f} s",
            )
        cost = Table(title="dispatch overhead per goal (1 worker)")
        columns = ("executor", "ms per goal", "in the worker", "overhead", "bare task", "direct")
        for column in columns:
            cost.add_column(column, justify="right" if column != "executor" else "left")
        for executor, bare in (("local", self.bare_pool), ("ray", self.bare_ray)):
            per_goal, overhead = self.per_goal(executor), self.overhead(executor)
            if per_goal is None or overhead is None:
                continue
            cost.add_row(
                executor,
                f"{per_goal * 1000:.1f}",
                f"{(per_goal - overhead) * 1000:.1f}",
                f"{overhead * 1000:.2f}",
                "-" if bare is None else f"{bare * 1000:.2f}",
                f"{self.direct_per_goal * 1000:.1f}",
            )
        return [rates, cost]


def measure(
    goals: int = 40,
    workers: Sequence[int] = (1, 2, 4),
    executors: Sequence[str] = ("local", "ray"),
    bare_tasks: int = 200,
    progress: Callable[[str], None] | None = None,
    latencies: Sequence[float] = (0.0, 200.0),
) -> BatchBenchReport:
    """Run the benchmark in a temporary directory. Each Ray measurement starts its own
    local Ray with as many CPUs as workers, as `zerog batch --executor ray` does (its
    start-up is left out of the steady rate); the bare Ray task runs on a one-CPU Ray.

    Each executor and worker count runs once per model latency in ``latencies``: at 0
    the goals are all engine work (CPU and store commits, which two cores cap); at 200 ms
    each goal mostly waits for its model's answer, as a batch against a remote provider
    does (the CPU-light case, where workers should scale)."""
    say = progress or (lambda _line: None)
    rows: list[Row] = []
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    with tempfile.TemporaryDirectory(prefix="zerog-bench-batch-") as tmp:
        base = Path(tmp)
        say(f"direct: {goals} goals in this process")
        direct, commits_per_goal = _direct(base / "direct", goals)
        say("the store's commit ceiling: 2 processes appending at once")
        ceiling = _commit_ceiling(base / "ceiling", 2, 300)
        bare_pool = _bare_pool(bare_tasks)
        bare_ray: float | None = None
        if "ray" in executors:
            import ray

            say("bare Ray tasks on a local one-CPU Ray")
            ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
            try:
                bare_ray = _bare_ray(bare_tasks)
            finally:
                ray.shutdown()
        for executor, latency, count in (
            (e, lat, c) for e in executors for lat in latencies for c in workers
        ):
            root = base / f"{executor}-{latency:g}-{count}"
            workload = prepare(root, goals, latency_ms=latency)
            os.environ[LOG_VAR] = str(workload.log)
            late = f", the model answering after {latency:g} ms" if latency else ""
            say(f"{executor}, {count} workers{late}: {goals} goals")
            timer = _Timer()
            report = run_workload(
                workload,
                executor=executor,
                jobs=count,
                store_path=root / "runs.db",
                progress=timer,
            )
            if not report.ok:
                raise RuntimeError(f"the benchmark batch failed: {report.counts()}")
            in_worker = statistics.mean(timer.in_worker[1:])
            rows.append(
                Row(executor, count, latency, goals, timer.steady(), report.seconds, in_worker)
            )
    return BatchBenchReport(
        goals=goals,
        cores=os.cpu_count() or 1,
        direct_per_goal=direct,
        bare_pool=bare_pool,
        bare_ray=bare_ray,
        rows=rows,
        commits_per_goal=commits_per_goal,
        commit_ceiling=ceiling,
    )
