"""`zerog bench crash`: SIGKILL real `zerog run` / `zerog resume` processes at random moments.

Each chain starts a run of a three-iteration workload whose every action appends its own
tag to a log outside the workspace (rollbacks cannot undo it), kills the process at a
random moment after it opened the store (before that it is importing Python modules,
which can take seconds on a loaded machine), resumes it, kills the resume, and so on
until a resume finishes. Then it
checks the outcome against an uninterrupted run: the same files, every action run
(none lost), and no action run more often than once plus its recorded retries (none
duplicated). It also measures what a durable event costs: the workload's own events
written to a store as a run writes them (group commit, journal.COMMIT_KINDS) against the
old way (an fsync per event) and a flushed JSONL line, in the same process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import multiprocessing
import multiprocessing.context
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zerog.bench.retries import retried_actions
from zerog.engine.loop import Engine
from zerog.events import Event
from zerog.journal import COMMIT_KINDS
from zerog.models.scripted import ScriptedModel
from zerog.store import GroupCommit, Store, Synchronous
from zerog.types import Budget, Goal

LOG_VAR = "ZEROG_CRASH_LOG"
RUN_ID = "crashrun"
CHECK = "test -f done.txt && grep -q final a.txt"


def _mark(tag: str) -> dict[str, object]:
    return {"kind": "shell", "command": f'echo {tag} >> "${LOG_VAR}"'}


def _write(path: str, content: str) -> dict[str, object]:
    return {"kind": "write_file", "path": path, "content": content}


def script_lines() -> list[dict[str, object]]:
    """Three iterations: a failed goal check, a failed step check, then success."""
    return [
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {"intent": "first try", "actions": [_write("a.txt", "one\n"), _mark("i1s1a2")]},
                    {"intent": "worker step"},
                ]
            },
        },
        {"purpose": "act", "json": {"actions": [_mark("i1s2a1"), _write("b.txt", "two\n")]}},
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {
                        "intent": "second try",
                        "actions": [_write("c.txt", "x\n"), _mark("i2s1a2")],
                        "check": "test -f never.txt",
                    },
                ]
            },
        },
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {"intent": "prepare", "actions": [_write("a.txt", "final\n"), _mark("i3s1a2")]},
                    {
                        "intent": "finish",
                        "actions": [_mark("i3s2a1"), _write("done.txt", "ok\n"), _mark("i3s2a3")],
                    },
                ]
            },
        },
    ]


EXPECTED_TAGS = frozenset({"i1s1a2", "i1s2a1", "i2s1a2", "i3s1a2", "i3s2a1", "i3s2a3"})
EXPECTED_FILES = {
    "README.md": "crash test workspace\n",
    "a.txt": "final\n",
    "done.txt": "ok\n",
}


def prepare(root: Path) -> tuple[Path, Path, Path]:
    """A fresh workspace, the script and an empty side-effect log under ``root``."""
    workspace = root / "ws"
    workspace.mkdir(parents=True)
    (workspace / "README.md").write_text(EXPECTED_FILES["README.md"], encoding="utf-8")
    script = root / "script.jsonl"
    script.write_text("\n".join(json.dumps(line) for line in script_lines()) + "\n")
    log = root / "side-effects.log"
    log.write_text("")
    return workspace, script, log


def goal(workspace: Path) -> Goal:
    return Goal(
        text="create done.txt",
        workspace=workspace,
        checks=[CHECK],
        budget=Budget(max_iterations=5, max_seconds=120),
        env_allow=(LOG_VAR,),
    )


def workspace_files(workspace: Path) -> dict[str, str]:
    return {
        str(p.relative_to(workspace)): p.read_text()
        for p in sorted(workspace.rglob("*"))
        if p.is_file() and ".zerog" not in p.parts
    }


@dataclass
class ChainOutcome:
    kills: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    wrong_state: bool = False
    retries: int = 0


def check_chain(root: Path, store_path: Path) -> ChainOutcome:
    """Compare one finished chain with what an uninterrupted run produces."""
    outcome = ChainOutcome()
    with Store(store_path) as store:
        row = store.find(RUN_ID)
        events = store.events(RUN_ID)
    retried = retried_actions(events)
    outcome.retries = sum(retried.values())
    ran = collections.Counter((root / "side-effects.log").read_text().split())
    outcome.lost = sorted(EXPECTED_TAGS - set(ran))
    outcome.duplicated = sorted(t for t, n in ran.items() if n > 1 + retried[t])
    outcome.wrong_state = row.status != "success" or workspace_files(root / "ws") != EXPECTED_FILES
    return outcome


def _env(log: Path) -> dict[str, str]:
    return {**os.environ, LOG_VAR: str(log)}


def _run_state(store: Path) -> str | None:
    if not store.exists():
        return None
    with Store(store) as opened:
        if not opened.runs():
            return None  # a run with a row but no events yet is resumed like any other
        return opened.find(RUN_ID).status


def _has_open(pid: int, path: Path) -> bool:
    """Whether process ``pid`` has the file ``path`` open (Linux ``/proc``)."""
    fds = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(fds)
    except OSError:
        return False
    for name in names:
        try:
            if os.readlink(fds / name) == str(path):
                return True
        except OSError:
            continue
    return False


def _zerog(argv: list[str], environ: dict[str, str], output: str) -> None:
    """A process's body: the ``zerog`` command line with these arguments and environment,
    its output to the file ``output``."""
    os.environ.clear()
    os.environ.update(environ)
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    sys.argv = ["zerog", *argv]
    from zerog.cli import main

    main()


# What multiprocessing reports for a fork server's child whose exit status it could not
# read back from the server (popen_forkserver); seen in CI after a run that had finished.
STATUS_LOST = 255


class Launcher:
    """Starts ``zerog`` processes: fresh interpreters (``python -m zerog``), or forks of a
    fork server that imported zerog once (``fork=True``), which start in milliseconds
    instead of seconds on a loaded machine. Either way a process runs the real command
    line and dies of a real SIGKILL."""

    def __init__(self, fork: bool) -> None:
        self.context: multiprocessing.context.ForkServerContext | None = None
        if fork:
            self.context = multiprocessing.get_context("forkserver")
            self.context.set_forkserver_preload(["zerog.cli"])

    def run(self, argv: list[str], environ: dict[str, str], output: Path) -> _Process:
        if self.context is None:
            with output.open("w") as handle:
                popen = subprocess.Popen(
                    [sys.executable, "-m", "zerog", *argv],
                    env=environ,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                )
            return _Process(popen.pid, popen.wait, popen.kill)
        child = self.context.Process(target=_zerog, args=(argv, environ, str(output)))
        child.start()

        def wait(timeout: float | None = None) -> int:
            child.join(timeout)
            if child.exitcode is None:
                raise subprocess.TimeoutExpired("zerog", timeout or 0.0)
            return child.exitcode

        return _Process(child.pid or 0, wait, child.kill)


@dataclass(frozen=True)
class _Process:
    pid: int
    wait: Callable[..., int]  # (timeout) -> exit status; raises subprocess.TimeoutExpired
    kill: Callable[[], None]  # SIGKILL

    def running(self) -> bool:
        try:
            self.wait(0.0)
        except subprocess.TimeoutExpired:
            return True
        return False


def _at_work(proc: _Process, store: Path, limit: float = 60.0) -> None:
    """Wait until the process has opened the store (or ended, or ``limit`` passed)."""
    deadline = time.monotonic() + limit
    while proc.running() and not _has_open(proc.pid, store):
        if time.monotonic() > deadline:
            return
        time.sleep(0.005)


def kill_chain(
    root: Path, rng: random.Random, launcher: Launcher, max_delay: float = 0.6
) -> ChainOutcome:
    """One run, killed at random moments and resumed until a resume finishes."""
    _, script, log = prepare(root)
    store = (root / "runs.db").resolve()
    output = root / "output.txt"
    argv = [
        "run",
        "create done.txt",
        "-w",
        str(root / "ws"),
        "-c",
        CHECK,
        "-m",
        f"scripted:{script}",
        "--env",
        LOG_VAR,
        "--sandbox",
        "local",
        "--store",
        str(store),
        "--run-id",
        RUN_ID,
        "--quiet",
    ]
    kills = 0
    while True:
        proc = launcher.run(argv, _env(log), output)
        _at_work(proc, store)
        try:
            status = proc.wait(rng.uniform(0.0, max_delay))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(None)
            kills += 1
            state = _run_state(store)
            if state is None:
                continue  # killed before the run existed: start it again
            if state != "running":
                break  # killed after it finished
            argv = ["resume", RUN_ID, "--store", str(store), "--quiet"]
            continue
        if status == STATUS_LOST and _run_state(store) not in (None, "running"):
            break  # finished: the fork server lost its exit status (read from the store)
        if status != 0:
            message = output.read_text(errors="replace")
            raise RuntimeError(f"a run in {root} failed ({status}): {message[-2000:]}")
        break
    outcome = check_chain(root, store)
    outcome.kills = kills
    return outcome


@dataclass(frozen=True)
class EventCost:
    """One way of writing the workload's events: its cost per event, amortized over runs."""

    way: str
    ms_per_event: float  # the median over the runs of (time writing the run) / (its events)
    commits_per_event: float
    syncs_per_event: float


@dataclass(frozen=True)
class Way:
    """How events are written: a store's ``synchronous`` (None: a JSONL file instead), and
    grouped at the commit points or one transaction each."""

    label: str
    synchronous: Synchronous | None
    grouped: bool = True


# The first is the baseline (zerog up to 2026-11: a transaction and an fsync per event),
# the second what a run does now.
WAYS = (
    Way("fsync per event (before)", "full", grouped=False),
    Way("group commit (now)", "normal"),
    Way("group commit, fsync at every commit", "full"),
    Way("flushed JSONL line, no store", None, grouped=False),
)


@dataclass
class CrashReport:
    kills: int
    chains: int
    lost: int
    duplicated: int
    wrong_state: int
    retries: int
    seconds: float
    processes: str = "fork server"
    events_per_run: int = 0
    iterations_per_run: int = 0
    costs: list[EventCost] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in self.__dict__.items()
            if k != "costs"
        }
        out["costs"] = [
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in c.__dict__.items()}
            for c in self.costs
        ]
        return out

    def rows(self) -> list[tuple[str, str]]:
        """The report as label and value, for a table."""
        rows = [
            ("actions lost", str(self.lost)),
            ("actions duplicated", str(self.duplicated)),
            ("runs ending in a different state", str(self.wrong_state)),
            ("interrupted actions retried (visible)", str(self.retries)),
            ("processes killed", self.processes),
            ("events per run (iterations)", f"{self.events_per_run} ({self.iterations_per_run})"),
        ]
        base = self.costs[0].ms_per_event if self.costs else 0.0
        for cost in self.costs:
            ratio = f", {base / cost.ms_per_event:.1f}x faster" if cost.ms_per_event else ""
            rows.append(
                (
                    f"event: {cost.way}",
                    f"{cost.ms_per_event:.3f} ms ({cost.commits_per_event:.2f} commits, "
                    f"{cost.syncs_per_event:.2f} fsyncs per event{ratio})",
                )
            )
        rows.append(("wall time", f"{self.seconds:.1f} s"))
        return rows


def workload_events(root: Path) -> tuple[list[Event], int]:
    """The events of one uninterrupted run of the workload, and its iterations."""
    workspace, script, log = prepare(root)
    with Store(root / "runs.db") as store:
        result = Engine(
            ScriptedModel.from_file(script),
            store=store,
            environ={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), LOG_VAR: str(log)},
            write_trace=False,
            sandbox_name="local",
        ).run(goal(workspace), run_id=RUN_ID)
        if not result.ok:
            raise RuntimeError(f"the crash workload failed: {result.reason}")
        return store.events(RUN_ID), result.iterations


def _write_run(
    root: Path, events: list[Event], way: Way, number: int, run: int
) -> tuple[float, int, int]:
    """Seconds to write one run's events the given way, with its commits and fsyncs."""
    synchronous = way.synchronous
    run_id = f"run{run}"
    renamed = [Event(run_id, e.seq, e.ts, e.kind, e.data) for e in events]
    if synchronous is None:
        with (root / f"{run_id}.jsonl").open("a", encoding="utf-8") as handle:
            started = time.perf_counter()
            for event in renamed:
                record = {"run_id": run_id, "seq": event.seq, "kind": event.kind, **event.data}
                handle.write(json.dumps(record, separators=(",", ":")) + "\n")
                handle.flush()
            return time.perf_counter() - started, 0, 0
    with Store(root / f"way{number}.db", synchronous=synchronous) as store:
        store.create_run(run_id, "g", "/ws", {}, 0.0)
        before = (store.commits, store.syncs)
        started = time.perf_counter()
        if way.grouped:
            group = GroupCommit(store, COMMIT_KINDS)
            for event in renamed:
                group.emit(event)
            group.commit()
        else:
            for event in renamed:
                store.emit(event)
        seconds = time.perf_counter() - started
        return seconds, store.commits - before[0], store.syncs - before[1]


def event_costs(runs: int = 20) -> tuple[list[EventCost], int, int]:
    """Each way's cost per event over ``runs`` runs of the workload's events (the ways
    take turns, so they share the machine's load), with the events and iterations of one run."""
    with tempfile.TemporaryDirectory(prefix="zerog-bench-") as tmp:
        root = Path(tmp)
        events, iterations = workload_events(root / "workload")
        per_run: list[list[float]] = [[] for _ in WAYS]
        counts = [(0, 0) for _ in WAYS]
        for run in range(runs):
            for number, way in enumerate(WAYS):
                seconds, commits, syncs = _write_run(root, events, way, number, run)
                per_run[number].append(seconds * 1000 / len(events))
                counts[number] = (commits, syncs)
    costs = [
        EventCost(
            way=way.label,
            ms_per_event=statistics.median(per_run[number]),
            commits_per_event=counts[number][0] / len(events),
            syncs_per_event=counts[number][1] / len(events),
        )
        for number, way in enumerate(WAYS)
    ]
    return costs, len(events), iterations


def measure(
    kills: int = 100,
    jobs: int = 2,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
    cost_runs: int = 20,
    fork: bool = True,
) -> CrashReport:
    started = time.perf_counter()
    outcomes: list[ChainOutcome] = []
    launcher = Launcher(fork)
    with tempfile.TemporaryDirectory(prefix="zerog-crash-") as tmp:
        share = [kills // jobs + (1 if n < kills % jobs else 0) for n in range(jobs)]

        def lane(index: int) -> list[ChainOutcome]:
            root = Path(tmp) / f"lane{index}"
            rng = random.Random(seed + index)  # noqa: S311 - timing, not security
            done: list[ChainOutcome] = []
            while sum(o.kills for o in done) < share[index]:
                done.append(kill_chain(root / f"chain{len(done)}", rng, launcher))
                if progress is not None:
                    progress(f"lane {index}: {sum(o.kills for o in done)}/{share[index]} kills")
            return done

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            for lane_outcomes in pool.map(lane, range(jobs)):
                outcomes.extend(lane_outcomes)
    costs, events, iterations = event_costs(cost_runs)
    return CrashReport(
        kills=sum(o.kills for o in outcomes),
        chains=len(outcomes),
        lost=sum(len(o.lost) for o in outcomes),
        duplicated=sum(len(o.duplicated) for o in outcomes),
        wrong_state=sum(1 for o in outcomes if o.wrong_state),
        processes="fork server" if fork else "fresh interpreters",
        retries=sum(o.retries for o in outcomes),
        seconds=time.perf_counter() - started,
        events_per_run=events,
        iterations_per_run=iterations,
        costs=costs,
    )
