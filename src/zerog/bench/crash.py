"""`zerog bench crash`: SIGKILL real `zerog run` / `zerog resume` processes at random moments.

Each chain starts a run of a three-iteration workload whose every action appends its own
tag to a log outside the workspace (rollbacks cannot undo it), kills the process at a
random moment, resumes it, kills the resume, and so on until a resume finishes. Then it
checks the outcome against an uninterrupted run: the same files, every action run
(none lost), and no action run more often than once plus its recorded retries (none
duplicated). It also measures the cost of one durable event write.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from zerog.events import Event
from zerog.store import Store
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
    retried = collections.Counter(
        f"i{e.data['iteration']}s{int(str(e.data['step'])) + 1}a{int(str(e.data['index'])) + 1}"
        for e in events
        if e.kind == "action_retried"
    )
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


def kill_chain(root: Path, rng: random.Random, max_delay: float = 1.0) -> ChainOutcome:
    """One run, killed at random moments and resumed until a resume finishes."""
    _, script, log = prepare(root)
    store = root / "runs.db"
    argv = [
        sys.executable,
        "-m",
        "zerog",
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
        proc = subprocess.Popen(
            argv, env=_env(log), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        try:
            proc.wait(timeout=rng.uniform(0.15, max_delay))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
            state = _run_state(store)
            if state is None:
                continue  # killed before the run existed: start it again
            if state != "running":
                break  # killed after it finished
            argv = [
                sys.executable,
                "-m",
                "zerog",
                "resume",
                RUN_ID,
                "--store",
                str(store),
                "--quiet",
            ]
            continue
        if proc.returncode != 0:
            message = proc.stderr.read() if proc.stderr else ""
            raise RuntimeError(f"a run in {root} failed: {message[-2000:]}")
        break
    outcome = check_chain(root, store)
    outcome.kills = kills
    return outcome


@dataclass
class CrashReport:
    kills: int
    chains: int
    lost: int
    duplicated: int
    wrong_state: int
    retries: int
    seconds: float
    event_write_ms: float
    jsonl_write_ms: float

    def as_dict(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in self.__dict__.items()}


def write_cost(events: int = 500) -> tuple[float, float]:
    """Median ms for one durable store append, and for one flushed JSONL line."""
    with tempfile.TemporaryDirectory(prefix="zerog-bench-") as tmp:
        root = Path(tmp)
        data = {"status": "success", "stdout": "x" * 200, "exit_code": 0}
        store_times, jsonl_times = [], []
        with Store(root / "runs.db") as store, (root / "t.jsonl").open("a") as handle:
            store.create_run("bench", "g", "/ws", {}, 0.0)
            for seq in range(1, events + 1):
                started = time.perf_counter()
                store.emit(Event("bench", seq, float(seq), "observation", data))
                store_times.append(time.perf_counter() - started)
                started = time.perf_counter()
                handle.write(json.dumps({"seq": seq, **data}) + "\n")
                handle.flush()
                jsonl_times.append(time.perf_counter() - started)
    return statistics.median(store_times) * 1000, statistics.median(jsonl_times) * 1000


def measure(
    kills: int = 100,
    jobs: int = 2,
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> CrashReport:
    started = time.perf_counter()
    outcomes: list[ChainOutcome] = []
    with tempfile.TemporaryDirectory(prefix="zerog-crash-") as tmp:
        share = [kills // jobs + (1 if n < kills % jobs else 0) for n in range(jobs)]

        def lane(index: int) -> list[ChainOutcome]:
            root = Path(tmp) / f"lane{index}"
            rng = random.Random(seed + index)  # noqa: S311 - timing, not security
            done: list[ChainOutcome] = []
            while sum(o.kills for o in done) < share[index]:
                done.append(kill_chain(root / f"chain{len(done)}", rng))
                if progress is not None:
                    progress(f"lane {index}: {sum(o.kills for o in done)}/{share[index]} kills")
            return done

        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            for lane_outcomes in pool.map(lane, range(jobs)):
                outcomes.extend(lane_outcomes)
    store_ms, jsonl_ms = write_cost()
    return CrashReport(
        kills=sum(o.kills for o in outcomes),
        chains=len(outcomes),
        lost=sum(len(o.lost) for o in outcomes),
        duplicated=sum(len(o.duplicated) for o in outcomes),
        wrong_state=sum(1 for o in outcomes if o.wrong_state),
        retries=sum(o.retries for o in outcomes),
        seconds=time.perf_counter() - started,
        event_write_ms=store_ms,
        jsonl_write_ms=jsonl_ms,
    )
