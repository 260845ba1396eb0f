"""The batch coordinator: read the goals, record the batch, hand the unfinished goals to
an executor, collect outcomes, write the results file.

Layout of a batch's output directory::

    OUT/goals/g0001/        goal 1's copy of its workspace (what the run changed)
    OUT/results.jsonl       one line per goal, in goal order (rewritten from the store)

Run ids are ``BATCH-gNNNN``: ``zerog show BATCH-g0001`` tells one goal's whole story.
Running the same batch again (same goals file, same id) skips the goals that finished and
resumes the ones that were interrupted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from zerog.batch.executors import run_local, run_ray
from zerog.batch.goals import GoalsFile
from zerog.batch.ledger import DONE, BatchLedger, SharedBudget, Spend
from zerog.batch.worker import ERROR, GoalOutcome, GoalTask
from zerog.errors import ConfigError
from zerog.router.factory import make_router
from zerog.store import Store
from zerog.strategies import StrategyOptions

Execute = Callable[
    [Mapping[int, str], Callable[[int], int], Callable[[str], None], Callable[[int, str], None]],
    None,
]
BATCH_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")


@dataclass(frozen=True)
class BatchOptions:
    model: str
    out_dir: Path | None = None  # default: ./zerog-batch-BATCH
    batch_id: str | None = None  # default: from the goals file and the model
    jobs: int = 2
    executor: str = "local"
    ray_address: str | None = None
    retries: int = 3
    shared: SharedBudget = field(default_factory=SharedBudget)
    sandbox: str | None = None
    sidecar: str = "wasm"
    network: bool = False
    timeout: float = 120.0
    stuck_after: int = 2
    base_dir: Path = field(default_factory=Path.cwd)
    strategy: StrategyOptions = field(default_factory=StrategyOptions)
    router: str = "off"  # as `zerog run --router`
    router_file: Path | None = None


class BatchProgress:
    """Hears about the batch as it goes (the CLI draws a progress bar from it)."""

    def started(self, batch_id: str, total: int, done_before: int, resumed: bool) -> None:
        """The batch is recorded; ``done_before`` goals finished in earlier runs."""

    def goal_done(self, outcome: GoalOutcome, spend: Spend) -> None:
        """One goal finished (in this run of the batch)."""


@dataclass
class BatchReport:
    batch_id: str
    out_dir: Path
    results_path: Path
    outcomes: list[GoalOutcome]
    spend: Spend
    ran: int  # goals run (or resumed) by this invocation
    skipped: int  # goals finished by an earlier invocation
    resumed: bool
    seconds: float

    @property
    def ok(self) -> bool:
        return all(o.status == "success" for o in self.outcomes)

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return dict(sorted(counts.items()))


def default_batch_id(goals: GoalsFile, model: str, strategy: StrategyOptions | None = None) -> str:
    """Named after what it runs: the same goals and model (and strategy, when it is not
    the plain one) make the same batch, which running again resumes."""
    key = f"{goals.digest}\n{model}"
    if strategy is not None and strategy != StrategyOptions():
        key += "\n" + strategy.model_dump_json()
    return "b" + hashlib.sha256(key.encode()).hexdigest()[:8]


def run_batch(
    goals: GoalsFile,
    options: BatchOptions,
    store_path: Path,
    progress: BatchProgress | None = None,
    clock: Callable[[], float] = time.time,
    execute: Execute | None = None,
    environ: Mapping[str, str] | None = None,
) -> BatchReport:
    """Run (or resume) the batch of ``goals``. ``execute`` replaces the executor that
    ``options.executor`` names (it gets the tasks, ``attempts``, ``on_done``, ``on_lost``).
    The variables each goal allows (its ``env``) are taken from ``environ`` here and sent
    with the goal, so a worker on another machine sees what the coordinator saw."""
    started = time.perf_counter()
    environ = os.environ if environ is None else environ
    options.strategy.check()
    router_file = options.router_file.resolve() if options.router_file else None
    make_router(options.router, router_file=router_file)  # refuse a bad router up front
    batch_id = options.batch_id or default_batch_id(goals, options.model, options.strategy)
    if not BATCH_ID.fullmatch(batch_id):
        raise ConfigError("a batch id takes 1-40 letters, digits, '-' or '_'")
    if options.jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    out_dir = (options.out_dir or options.base_dir / f"zerog-batch-{batch_id}").resolve()
    for goal in goals.goals:
        source = goal.goal.workspace.resolve()
        if out_dir == source or source in out_dir.parents:
            raise ConfigError(
                f"the output directory {out_dir} is inside goal {goal.index}'s workspace "
                f"{source}; choose another --out"
            )
    width = max(4, len(str(len(goals.goals))))
    run_ids = {g.index: f"{batch_id}-g{g.index:0{width}d}" for g in goals.goals}
    spec = {
        "goals": str(goals.path),
        "digest": goals.digest,
        "count": len(goals.goals),
        "model": options.model,
        "out": str(out_dir),
        "strategy": options.strategy.model_dump(mode="json"),
        "router": options.router,
    }
    with Store(store_path) as store:
        ledger = BatchLedger(store, batch_id)
        resumed = ledger.open(spec, options.shared, run_ids, clock())
        rows = {row.index: row for row in ledger.goals()}
        done_before = sum(1 for row in rows.values() if row.state == DONE)
        if progress is not None:
            progress.started(batch_id, len(goals.goals), done_before, resumed)
        tasks: dict[int, str] = {}
        for goal in goals.goals:
            if rows[goal.index].state == DONE:
                continue
            tasks[goal.index] = GoalTask(
                batch_id=batch_id,
                index=goal.index,
                run_id=run_ids[goal.index],
                goal=goal.goal.model_dump(mode="json"),
                workspace=str(out_dir / "goals" / run_ids[goal.index].removeprefix(batch_id + "-")),
                store=str(store_path.resolve()),
                model=options.model,
                base_dir=str(options.base_dir),
                sandbox=options.sandbox,
                sidecar=options.sidecar,
                network=options.network,
                timeout=options.timeout,
                stuck_after=options.stuck_after,
                strategy=options.strategy,
                router=options.router,
                router_file=str(router_file) if router_file else None,
                env={k: environ[k] for k in goal.goal.env_allow if k in environ},
            ).model_dump_json()

        def on_done(outcome_json: str) -> None:
            if progress is not None:
                progress.goal_done(GoalOutcome.model_validate_json(outcome_json), ledger.spend())

        def on_lost(index: int, reason: str) -> None:
            outcome = GoalOutcome(
                index=index,
                run_id=run_ids[index],
                status=ERROR,
                reason=reason,
                attempts=attempts(index),
                workspace=json.loads(tasks[index])["workspace"],
            )
            ledger.finish(index, outcome.model_dump(mode="json"), clock())
            on_done(outcome.model_dump_json())

        def attempts(index: int) -> int:
            return next(r.attempts for r in ledger.goals() if r.index == index)

        if tasks:
            out_dir.mkdir(parents=True, exist_ok=True)
            if execute is None:
                _execute(tasks, options, attempts, on_done, on_lost)
            else:
                execute(tasks, attempts, on_done, on_lost)
        outcomes = _outcomes(ledger, run_ids)
        spend = ledger.spend()
    out_dir.mkdir(parents=True, exist_ok=True)
    results = out_dir / "results.jsonl"
    _write_results(results, outcomes, goals)
    return BatchReport(
        batch_id=batch_id,
        out_dir=out_dir,
        results_path=results,
        outcomes=outcomes,
        spend=spend,
        ran=len(tasks),
        skipped=done_before,
        resumed=resumed,
        seconds=time.perf_counter() - started,
    )


def _execute(
    tasks: Mapping[int, str],
    options: BatchOptions,
    attempts: Callable[[int], int],
    on_done: Callable[[str], None],
    on_lost: Callable[[int, str], None],
) -> None:
    if options.executor == "local":
        run_local(
            tasks,
            jobs=options.jobs,
            model=options.model,
            base_dir=str(options.base_dir),
            retries=options.retries,
            attempts=attempts,
            on_done=on_done,
            on_lost=on_lost,
        )
    elif options.executor == "ray":
        run_ray(
            tasks,
            jobs=options.jobs,
            address=options.ray_address,
            retries=options.retries,
            on_done=on_done,
            on_lost=on_lost,
        )
    else:
        raise ConfigError(f"unknown executor {options.executor!r}: choose local or ray")


def _outcomes(ledger: BatchLedger, run_ids: Mapping[int, str]) -> list[GoalOutcome]:
    outcomes = []
    for row in ledger.goals():
        if row.state == DONE and row.result is not None:
            outcomes.append(GoalOutcome.model_validate(row.result))
        else:
            outcomes.append(
                GoalOutcome(
                    index=row.index,
                    run_id=run_ids.get(row.index, row.run_id),
                    status="unfinished",
                    reason="not run to the end yet: run the batch again to resume it",
                    attempts=row.attempts,
                )
            )
    return outcomes


def _write_results(path: Path, outcomes: list[GoalOutcome], goals: GoalsFile) -> None:
    lines = {g.index: g.line for g in goals.goals}
    texts = {g.index: g.goal.text for g in goals.goals}
    tmp = path.with_suffix(".jsonl.tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for outcome in outcomes:
            record = {
                "goal": outcome.index,
                "line": lines.get(outcome.index),
                "text": texts.get(outcome.index, ""),
                **outcome.model_dump(mode="json", exclude={"index", "pid", "seconds"}),
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")
    tmp.replace(path)
