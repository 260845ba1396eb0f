"""The validation sweep: run every goal check and return one verdict.

Checks run in parallel on a bounded thread pool (each check is its own sandboxed process,
or a bounded read of one file), except that a check waits for the checks its ``after``
names; a check whose prerequisite failed is not run and fails. Results come back in
declaration order; ``on_result`` is called from the caller's thread as each final result
is known.

A failed check is run once more, at once, on its own (no timeouts: a re-run would cost the
whole timeout again). If it then passes and the workspace's state hash did not change
across the re-run, it is *flaky*: it counts as passed, with ``flaky=True``, and the verdict
lists it. Tool caches (``.pytest_cache``, ``__pycache__``, ...) are left out of that hash:
pytest rewrites its record of the last failures on every run, which is no change of the
workspace a check depends on.

Each sweep draws a fresh nonce for the runners that confirm their verdict
(:mod:`zerog.validate.nonce`), and gives its checks a private ``HOME`` and no user
site-packages (:mod:`zerog.validate.home`).
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any

from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.workspace import Workspace
from zerog.types import Check, CheckResult, Observation, Status, Verdict
from zerog.validate.compile import CompiledCheck, SweepPlan, compile_checks
from zerog.validate.home import check_variables
from zerog.validate.kinds import CheckEnv
from zerog.validate.nonce import new_nonce
from zerog.validate.sidecar import PythonRunner, SandboxPython

MAX_JOBS = 8


def default_jobs(count: int) -> int:
    return max(1, min(count, os.cpu_count() or 1, MAX_JOBS))


CACHE_DIRS = frozenset(
    {".pytest_cache", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis", ".tox"}
)


def flaky_state_hash(workspace: Workspace) -> Callable[[], str]:
    """The state hash flaky detection compares: the workspace's content (as
    :meth:`Workspace.scan` sees it, with its stat cache) without tool caches."""

    def state() -> str:
        digest = hashlib.sha256()
        for rel, entry in sorted(workspace.scan().items()):
            if CACHE_DIRS.isdisjoint(rel.split("/")):
                digest.update(f"{rel}\0{entry.kind}\0{entry.mode:o}\0{entry.digest}\n".encode())
        return digest.hexdigest()

    return state


def _state_hasher(workspace: Path) -> Callable[[], str]:
    return flaky_state_hash(Workspace(workspace, workspace / ".zerog" / "snapshots"))


def _skipped(compiled: CompiledCheck, blocker: str) -> CheckResult:
    return CheckResult(
        name=compiled.label,
        passed=False,
        observation=Observation(
            status=Status.EXCEPTION, stderr=f"[zerog: not run: check {blocker!r} failed first]"
        ),
    )


def _rerun(
    compiled: CompiledCheck, first: CheckResult, env: CheckEnv, state_hash: Callable[[], str]
) -> CheckResult:
    """Run a failed check again; flaky if it passes and the workspace did not change."""
    if first.observation.status is Status.TIMEOUT:
        return first
    before = state_hash()
    second = compiled.runner.run(env, compiled.label)
    if second.passed and state_hash() == before:
        return second.model_copy(update={"flaky": True})
    return first


def _schedule(
    plan: SweepPlan,
    env: CheckEnv,
    jobs: int,
    finished: Callable[[int, CheckResult], None],
    results: dict[int, CheckResult],
    todo: set[int],
) -> set[int]:
    """Run the checks in ``todo`` once, respecting ``after`` (``results`` holds what is
    known, and receives the new results); report each result as it is known, except the
    checks skipped because a prerequisite failed: their indexes are returned.

    The plan's schema batch runs as one task when all checks are to run; a member it
    brings no result for runs on its own afterwards. With ``jobs == 1`` everything runs in
    the caller's thread."""
    skipped: set[int] = set()
    everything = len(todo) == len(plan.checks)
    batched = set(plan.batch.members) if plan.batch is not None and everything else set()
    waiting = [c for c in plan.checks if c.index in todo and c.index not in batched]

    def ready() -> list[CompiledCheck]:
        """The checks whose prerequisites passed; those with a failed one are skipped
        (which may unblock more: hence the loop)."""
        nonlocal waiting
        runnable: list[CompiledCheck] = []
        progressed = True
        while progressed:
            progressed = False
            still: list[CompiledCheck] = []
            for compiled in waiting:
                if not all(dep in results for dep in compiled.after):
                    still.append(compiled)
                    continue
                failed = [plan.checks[d].label for d in compiled.after if not results[d].passed]
                if not failed:
                    runnable.append(compiled)
                    continue
                results[compiled.index] = _skipped(compiled, failed[0])
                skipped.add(compiled.index)
                progressed = True
            waiting = still
        return runnable

    def batch_done(got: dict[int, CheckResult]) -> None:
        for index in sorted(batched):
            if index in got:
                results[index] = got[index]
                finished(index, got[index])
            else:
                waiting.append(plan.checks[index])

    if jobs == 1:
        if plan.batch is not None and batched:
            batch_done(plan.batch.run_many(env))
        while runnable := ready():
            for compiled in runnable:
                results[compiled.index] = compiled.runner.run(env, compiled.label)
                finished(compiled.index, results[compiled.index])
        return skipped
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="zerog-check") as pool:
        running: dict[Future[CheckResult], int] = {}
        batch = None
        if plan.batch is not None and batched:
            batch = pool.submit(plan.batch.run_many, env)
        try:
            while True:
                for compiled in ready():
                    running[pool.submit(compiled.runner.run, env, compiled.label)] = compiled.index
                if not running and batch is None:
                    break  # nothing left that can run (compile_checks refuses cycles)
                pending: set[Future[Any]] = set(running)  # checks, and the batch's dict
                if batch is not None:
                    pending.add(batch)
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                if batch is not None and batch in done:
                    batch_done(batch.result())
                    batch = None
                for future in [f for f in running if f in done]:
                    index = running.pop(future)
                    results[index] = future.result()
                    finished(index, results[index])
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
    return skipped


def sweep(
    checks: Sequence[Check | str] | SweepPlan,
    workspace: Path,
    sandbox: Sandbox,
    limits: Limits,
    on_result: Callable[[CheckResult], None] | None = None,
    *,
    jobs: int | None = None,
    sidecar: PythonRunner | None = None,
    rerun_failures: bool = True,
    state_hash: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    nonce: Callable[[], str] = new_nonce,
) -> Verdict:
    """Run every check (compiling them first unless given a :class:`SweepPlan`).

    ``jobs`` bounds the checks running at once (default: the CPU count, at most 8).
    ``sidecar`` runs predicate and schema checks (default: an interpreter through
    ``sandbox``). ``state_hash`` hashes the workspace for flaky detection (default:
    :func:`flaky_state_hash` of a new :class:`Workspace`; pass
    ``flaky_state_hash(the_loops_workspace)`` to reuse its stat cache). ``nonce`` draws
    the sweep's nonce and the name of its checks' home (random; injected for tests).
    """
    plan = checks if isinstance(checks, SweepPlan) else compile_checks(checks)
    with check_variables(sandbox.name, nonce()) as variables:
        env = CheckEnv(
            workspace,
            sandbox,
            limits,
            sidecar or SandboxPython(sandbox),
            clock,
            nonce=nonce(),
            variables=variables,
        )
        return _sweep(plan, env, jobs, on_result, rerun_failures, state_hash)


def _sweep(
    plan: SweepPlan,
    env: CheckEnv,
    jobs: int | None,
    on_result: Callable[[CheckResult], None] | None,
    rerun_failures: bool,
    state_hash: Callable[[], str] | None,
) -> Verdict:
    hasher = state_hash or _state_hasher(env.workspace)
    results: dict[int, CheckResult] = {}
    failed: list[int] = []

    def finished(index: int, result: CheckResult) -> None:
        results[index] = result
        if result.passed or not rerun_failures or result.observation.status is Status.EXCEPTION:
            if on_result is not None:
                on_result(result)
        else:
            failed.append(index)

    todo = {c.index for c in plan.checks}
    skipped: set[int] = set()
    while todo:
        failed.clear()
        skipped |= _schedule(plan, env, jobs or default_jobs(len(plan)), finished, results, todo)
        for index in sorted(failed):
            results[index] = _rerun(plan.checks[index], results[index], env, hasher)
            if on_result is not None:
                on_result(results[index])
        # A prerequisite that passed on its re-run (flaky) lets the checks it held back run.
        todo = {i for i in skipped if all(results[d].passed for d in plan.checks[i].after)}
        skipped -= todo
        for index in todo:
            del results[index]
    for index in sorted(skipped):
        if on_result is not None:
            on_result(results[index])
    ordered = tuple(results[c.index] for c in plan.checks)
    return Verdict(passed=all(r.passed for r in ordered), results=ordered)


def run_one(
    check: Check | str,
    workspace: Path,
    sandbox: Sandbox,
    limits: Limits,
    *,
    sidecar: PythonRunner | None = None,
    rerun_failures: bool = True,
    state_hash: Callable[[], str] | None = None,
    clock: Callable[[], float] = time.monotonic,
    nonce: Callable[[], str] = new_nonce,
) -> CheckResult:
    """Run one check, e.g. a step's own check, with the same flaky re-run as the sweep."""
    verdict = sweep(
        [check],
        workspace,
        sandbox,
        limits,
        jobs=1,
        sidecar=sidecar,
        rerun_failures=rerun_failures,
        state_hash=state_hash,
        clock=clock,
        nonce=nonce,
    )
    return verdict.results[0]
