"""One goal of a batch, run inside a worker process (a pool process or a Ray worker).

A task crosses the process boundary as JSON (:class:`GoalTask`), and so does its outcome
(:class:`GoalOutcome`): nothing is pickled but a string. The goal's run id is fixed by the
batch, so a goal whose worker died is *resumed* from the store by the next worker that
gets it (:meth:`Engine.resume`): finished actions are not run again, an interrupted one
is rolled back and retried once, visibly. A goal whose run already finished is not run at
all: its recorded result is returned.

A worker process builds its model once and keeps it for every goal it runs, except a
stateful one (a script has a position): that is built afresh for each goal.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import Field

from zerog.batch.ledger import BatchLedger
from zerog.batch.shared import SharedBudgetModel
from zerog.engine.loop import Engine
from zerog.errors import ZerogError
from zerog.models.base import Model, Stateful
from zerog.models.spec import load_model, with_cascade
from zerog.router.factory import make_router
from zerog.runspec import RunSpec
from zerog.sandbox.base import Limits
from zerog.statedir import STATE_DIR
from zerog.store import RUNNING, Store
from zerog.strategies import StrategyOptions
from zerog.text import one_line
from zerog.types import Frozen, Goal, RunResult

PR_SET_PDEATHSIG = 1
ERROR = "error"  # the status of a goal that could not run (bad workspace, worker deaths)


class GoalTask(Frozen):
    batch_id: str
    index: int
    run_id: str
    goal: dict[str, object]  # the goal as JSON, its workspace the source to copy
    workspace: str  # where this goal's copy lives
    store: str
    model: str
    base_dir: str  # relative model paths (scripted:FILE) resolve against it
    sandbox: str | None = None
    sidecar: str = "wasm"
    network: bool = False
    timeout: float = 120.0
    stuck_after: int = 2
    strategy: StrategyOptions = Field(default_factory=StrategyOptions)
    router: str = "off"
    router_file: str | None = None  # absolute, as the coordinator resolved it
    env: dict[str, str] = Field(
        default_factory=dict
    )  # the goal's allowed variables, as the coordinator saw them


class GoalOutcome(Frozen):
    index: int
    run_id: str
    status: str
    reason: str
    iterations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    duration: float = 0.0
    attempts: int = 1
    resumed: bool = False
    workspace: str = ""
    pid: int = 0
    seconds: float = 0.0  # this attempt's time in the worker, from task to recorded outcome


class WorkerState:
    """What one worker process keeps between goals: its models and its store connections."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self._models: dict[tuple[str, str], Model] = {}
        self._stores: dict[str, Store] = {}

    def model(self, spec: str, base_dir: str) -> Model:
        key = (spec, base_dir)
        cached = self._models.get(key)
        if cached is not None:
            return cached
        model = load_model(spec, base_dir=Path(base_dir), environ=self.environ)
        if not isinstance(model, Stateful):
            self._models[key] = model
        return model

    def store(self, path: str) -> Store:
        if path not in self._stores:
            self._stores[path] = Store(Path(path))
        return self._stores[path]

    def commits(self) -> int:
        """Transactions that appended events, over this worker's stores."""
        return sum(store.commits for store in self._stores.values())


def _copy_workspace(source: Path, dest: Path) -> None:
    """A fresh copy of ``source`` at ``dest`` (a leftover partial copy is replaced)."""
    if dest.exists():
        shutil.rmtree(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(source, dest, symlinks=True, ignore=shutil.ignore_patterns(STATE_DIR))


def _outcome(task: GoalTask, result: RunResult, attempts: int, resumed: bool) -> GoalOutcome:
    return GoalOutcome(
        index=task.index,
        run_id=task.run_id,
        status=result.status.value,
        reason=result.reason,
        iterations=result.iterations,
        input_tokens=result.usage.input_tokens,
        output_tokens=result.usage.output_tokens,
        cost=result.cost,
        duration=result.duration,
        attempts=attempts,
        resumed=resumed,
        workspace=task.workspace,
        pid=os.getpid(),
    )


def _run(task: GoalTask, state: WorkerState, ledger: BatchLedger, attempts: int) -> GoalOutcome:
    store = ledger.store
    status = ledger.run_status(task.run_id)
    if status is not None and status != RUNNING:
        row = store.find(task.run_id)  # finished before its outcome was recorded
        return GoalOutcome(
            index=task.index,
            run_id=task.run_id,
            status=row.status,
            reason=row.reason,
            iterations=row.iterations,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost=row.cost,
            duration=row.duration,
            attempts=attempts,
            resumed=True,
            workspace=task.workspace,
            pid=os.getpid(),
        )

    # Every live call is counted in the batch's account (and held to its shared budget),
    # an escalated model's too.
    def counted(spec: str) -> Model:
        return SharedBudgetModel(state.model(spec, task.base_dir), ledger, task.run_id)

    first, escalate = with_cascade(task.model, task.strategy.escalate, environ=state.environ)
    options = task.strategy.model_copy(update={"escalate": escalate})
    strategy = options.build(counted(first), counted)
    router_file = Path(task.router_file) if task.router_file else None
    engine = Engine(
        strategy.model,
        router=make_router(task.router, router_file=router_file, store=store),
        sinks=strategy.sinks,
        plan_with=strategy.plan_with,
        doubt=strategy.doubt,
        store=store,
        environ={**state.environ, **task.env},
        limits=Limits(timeout=task.timeout),
        stuck_after=task.stuck_after,
        write_trace=False,
        sandbox_name=task.sandbox,
        network=task.network,
        sidecar=task.sidecar,
    )
    if status == RUNNING:
        return _outcome(task, engine.resume(task.run_id), attempts, resumed=True)
    source = Goal.model_validate(task.goal)
    copy = Path(task.workspace)
    _copy_workspace(source.workspace, copy)
    goal = source.model_copy(update={"workspace": copy})
    spec = RunSpec(
        model=task.model,
        batch=task.batch_id,
        source=str(source.workspace),
        strategy=task.strategy,
        router=task.router,
        router_file=task.router_file,
    )
    return _outcome(task, engine.run(goal, spec=spec, run_id=task.run_id), attempts, False)


def run_goal(task_json: str, state: WorkerState, clock: Callable[[], float] = time.time) -> str:
    """Run (or resume) one goal; record and return its outcome as JSON. Never raises for
    a goal's own failure: a bad goal is an outcome with status ``error``."""
    started = time.perf_counter()
    task = GoalTask.model_validate_json(task_json)
    ledger = BatchLedger(state.store(task.store), task.batch_id)
    attempts = ledger.start_attempt(task.index, clock())
    try:
        outcome = _run(task, state, ledger, attempts)
    except Exception as exc:  # one failing goal never stops the batch
        outcome = GoalOutcome(
            index=task.index,
            run_id=task.run_id,
            status=ERROR,
            reason=f"{type(exc).__name__}: {exc}",
            attempts=attempts,
            workspace=task.workspace,
            pid=os.getpid(),
        )
    ledger.finish(task.index, outcome.model_dump(mode="json"), clock())
    return outcome.model_copy(update={"seconds": time.perf_counter() - started}).model_dump_json()


# ---------------------------------------------------------------- process entry points
#
# A pool's initializer and the functions it runs can share nothing but the process they
# run in: the worker's state lives here, one per process, filled by ``init_process`` (the
# local pool) or on first use (Ray reuses a worker process for many tasks).

_PROCESS: dict[str, WorkerState] = {}


def init_process(model: str, base_dir: str) -> None:
    """Pool initializer: leave Ctrl-C to the coordinator, and load the model once."""
    os.setsid()  # the terminal's Ctrl-C reaches the coordinator only; it stops the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _die_with_parent()
    state = WorkerState()
    try:
        state.model(model, base_dir)
    except ZerogError as exc:  # said once, plainly; the coordinator stops the batch
        sys.stderr.write(f"error: a worker cannot load the model: {one_line(str(exc), 500)}\n")
        sys.stderr.flush()
        os._exit(2)
    _PROCESS["state"] = state


def _die_with_parent() -> None:
    """On Linux, end this worker when the coordinator dies (even by SIGKILL), so that a
    resumed batch never races a stray worker of the old one for the same goal."""
    if sys.platform != "linux":
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the coordinator died before the line above
        os._exit(1)


def goal_in_process(task_json: str) -> str:
    """The function a pool or Ray worker runs for one goal."""
    state = _PROCESS.get("state")
    if state is None:
        state = _PROCESS["state"] = WorkerState()
    return run_goal(task_json, state)
