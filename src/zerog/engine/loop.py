"""The engine: the only module that orchestrates. Plan, act, validate, roll back, re-plan.

Every arrow of the loop is an event; budgets are enforced by the meter before each model
call, action and iteration; failures of the model or of the budget end the run with a
status and a reason, never a traceback. With a store, events are committed at the points
``journal.py`` names (before an action runs, after each result), and an interrupted run
can be resumed from what was committed (see ``journal.py`` and docs/journal.md).
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zerog import coder, planner, worker
from zerog import context as ctx
from zerog.beneath import read_beneath
from zerog.budget import BudgetExhausted, Meter
from zerog.changes import compare, file_changes
from zerog.engine.session import Session, open_session
from zerog.errors import ConfigError, ModelError, ModelOutputError
from zerog.events import EventSink
from zerog.focus import ContextBudget
from zerog.gitcommit import commit
from zerog.hostpaths import PathMask
from zerog.journal import FINAL, Journal, read_journal
from zerog.models.base import Model, Response
from zerog.models.confidence import Confidence
from zerog.models.metered import MeteredModel
from zerog.protect import Protection, protection_of, restore_target
from zerog.redact import Redactor
from zerog.router.base import Router
from zerog.router.gate import RouteGate
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.factory import default_sandbox_name
from zerog.sandbox.files import PathEscape, target
from zerog.sandbox.workspace import Snapshot
from zerog.store import Store, StoreError
from zerog.text import sanitize
from zerog.types import (
    MAX_ACTIONS_PER_STEP,
    Action,
    CannotRun,
    CheckResult,
    EditAction,
    FailedTest,
    FileChanges,
    GitOutcome,
    Goal,
    Observation,
    Plan,
    RunResult,
    RunStatus,
    Status,
    Step,
    Usage,
    Verdict,
    WriteFileAction,
    describe_action,
)
from zerog.validate.feedback import summarize
from zerog.validate.preflight import cannot_run
from zerog.validate.preflight import describe as describe_cannot_run
from zerog.validate.sidecar import SIDECARS
from zerog.validate.sweep import run_one, sweep

if TYPE_CHECKING:
    from zerog.cache.semantic import PlanCache, Reuse
    from zerog.cache.tools import ToolCache

STUCK_NOTICE = (
    "The last attempt failed in exactly the same way as the one before it. That approach "
    "does not work: change strategy (different files, different fix, smaller steps)."
)
_VOLATILE = re.compile(r"\d+\.\d+|0x[0-9a-fA-F]+")

StepFailure = tuple[str, str, Observation]
PREFLIGHT = 0  # the "iteration" the preflight's sweep is recorded under
NOTHING_TO_DO = "nothing to do: the checks already pass"


@dataclass(frozen=True)
class Preflight:
    """What the preflight found: its verdict, the checks that cannot run, and the feedback
    the first plan gets (empty unless the checks ran and failed)."""

    verdict: Verdict
    cannot_run: tuple[CannotRun, ...]
    feedback: str

    @property
    def outcome(self) -> str:
        return "passed" if self.verdict.passed else "cannot_run" if self.cannot_run else "failed"

    @property
    def ended(self) -> tuple[RunStatus, str] | None:
        """The run's status and reason when the preflight ends it, else None."""
        if self.verdict.passed:
            return RunStatus.SUCCESS, NOTHING_TO_DO
        if self.cannot_run:
            return RunStatus.CANNOT_RUN, describe_cannot_run(self.cannot_run)
        return None

    @classmethod
    def recorded(cls, verdict: Verdict, data: Mapping[str, object]) -> Preflight:
        """The preflight a resumed run recorded (its event), with its replayed verdict."""
        listed = data.get("cannot_run")
        return cls(
            verdict,
            tuple(
                CannotRun.model_validate(c) for c in (listed if isinstance(listed, list) else [])
            ),
            str(data.get("feedback", "")),
        )


def _fingerprint(actions: Sequence[Action], feedback: str) -> str:
    """What makes two failed attempts 'the same': their actions and normalized output."""
    digest = hashlib.sha256()
    for action in actions:
        digest.update(action.model_dump_json().encode())
    digest.update(_VOLATILE.sub("#", feedback).encode())
    return digest.hexdigest()


def _observation_event(observation: Observation) -> dict[str, object]:
    return observation.model_dump(mode="json")


def _check_event(result: CheckResult) -> dict[str, object]:
    return {
        "name": result.name,
        "passed": result.passed,
        "flaky": result.flaky,
        "failed_tests": [t.model_dump(mode="json") for t in result.failed_tests],
        "observation": _observation_event(result.observation),
    }


def _check_result(data: Mapping[str, object]) -> CheckResult:
    tests = data.get("failed_tests") or []
    return CheckResult(
        name=str(data["name"]),
        passed=bool(data["passed"]),
        flaky=bool(data.get("flaky", False)),
        failed_tests=tuple(
            FailedTest.model_validate(t) for t in (tests if isinstance(tests, list) else [])
        ),
        observation=_observation(data["observation"]),
    )


def _confidence(data: object) -> Confidence | None:
    return Confidence.model_validate(data) if isinstance(data, Mapping) else None


def _notes(snap: Snapshot) -> dict[str, object]:
    """What a snapshot event says beyond its id: setuid/setgid/sticky bits it dropped."""
    if not snap.neutralized:
        return {}
    return {
        "neutralized": list(snap.neutralized[:50]),
        "note": "setuid, setgid and sticky bits are never kept: these paths come back without",
    }


def _observation(data: object) -> Observation:
    """An observation back from its event form (extra event fields ignored)."""
    if not isinstance(data, Mapping):
        raise StoreError("a recorded observation is malformed")
    fields = {k: data[k] for k in Observation.model_fields if k in data}
    return Observation.model_validate(fields)


class Engine:
    """Runs goals to success or budget. Dependencies come in; nothing is read globally."""

    def __init__(
        self,
        model: Model,
        sandbox: Sandbox | None = None,
        *,
        sandbox_name: str | None = None,
        network: bool = False,
        sidecar: str = "wasm",
        sinks: Sequence[EventSink] = (),
        store: Store | None = None,
        environ: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        stuck_after: int = 2,
        trace_dir: Path | None = None,
        write_trace: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        router: Router | None = None,
        plan_cache: PlanCache | None = None,
        tool_cache: ToolCache | None = None,
        plan_with: Callable[[Model, ctx.Context], Plan] | None = None,
        doubt: Callable[[], str | None] | None = None,
        redactor: Redactor | None = None,
        force_workspace: bool = False,
        git: bool = False,
        allow_dirty: bool = False,
        off_limits: Sequence[Path] = (),
        context_budget: ContextBudget | None = None,
        whole_chars: int = coder.WHOLE_FILE_CHARS,
    ) -> None:
        if stuck_after < 1:
            raise ConfigError("stuck_after must be at least 1")
        if sidecar not in SIDECARS:
            raise ConfigError(f"unknown sidecar {sidecar!r}: choose one of {', '.join(SIDECARS)}")
        self.model = model
        self.environ = dict(os.environ if environ is None else environ)
        self.sandbox = sandbox
        self.sandbox_name = sandbox_name or default_sandbox_name()
        self.network = network
        self.sidecar_name = sidecar
        self.sinks = tuple(sinks)
        self.store = store
        self.limits = limits or Limits()
        self.stuck_after = stuck_after
        self.trace_dir = trace_dir
        self.write_trace = write_trace
        self.clock = clock
        self.wall_clock = wall_clock
        self.new_id = new_id
        self.router = router  # None: every step without inline actions asks the worker
        self.plan_cache = plan_cache  # reuse verified plans (cache/semantic.py); off: None
        self.tool_cache = tool_cache  # serve deterministic actions (cache/tools.py)
        self.plan_with = plan_with or planner.plan  # e.g. codeplan.CodePlanner for one file
        # Files up to this many characters are asked for whole, larger ones by SEARCH/REPLACE.
        self.whole_chars = whole_chars
        # Asked when the checks pass: a reason to get a second opinion, or None to finish.
        # A doubted answer is kept; the next iteration (usually a stronger model, see
        # models/cascade.py) replaces it only if its own answer passes the checks.
        self.doubt = doubt
        # What command output is cleaned of before the model, the store, a trace or the
        # terminal sees it; None: the secrets of ``environ`` and of its config file.
        self.redactor = redactor
        # Accept a workspace that holds the system, the home directory or zerog's files.
        self.force_workspace = force_workspace
        # Commit a successful run's result on a new branch (gitcommit.py); resumed runs
        # take this from their spec.
        self.git = git
        self.allow_dirty = allow_dirty
        # Directories no toolchain bind may show (the server's other workspaces).
        self.off_limits = tuple(off_limits)
        # The file text a prompt carries when the workspace's does not all fit (focus.py).
        self.context_budget = context_budget

    def run(
        self, goal: Goal, spec: Mapping[str, object] | None = None, run_id: str | None = None
    ) -> RunResult:
        """Run ``goal`` from the start. ``spec`` is stored with the run (for resume)."""
        return self._start(goal, run_id or self.new_id(), None, spec or {})

    def resume(self, run_id: str) -> RunResult:
        """Continue an interrupted run from its last durable event (needs a store)."""
        if self.store is None:
            raise ConfigError("resuming a run needs the store it was recorded in")
        row = self.store.find(run_id)
        events = self.store.events(row.id)
        journal = read_journal(events)
        if journal.finished:
            raise StoreError(f"run {row.id} already finished ({journal.finished})")
        goal = Goal.model_validate(row.spec.get("goal", {}))
        return self._start(goal, row.id, journal, row.spec)

    def _start(
        self, goal: Goal, run_id: str, journal: Journal | None, spec: Mapping[str, object]
    ) -> RunResult:
        with open_session(self, goal, run_id, journal, spec) as session:
            run = _Run(self, session, journal)
            result = run.execute()
            # Finished: nothing can resume it; a replay needs its base snapshot
            # and ``zerog diff`` its final one.
            session.workspace.collect(keep={i for i in (run.base_id, run.final_id) if i})
            return result


class _Run:
    """The state of one run; lives for one call of :meth:`Engine.run` or ``resume``."""

    def __init__(self, engine: Engine, session: Session, journal: Journal | None) -> None:
        self.e = engine
        self.goal = session.goal
        self.sandbox = session.sandbox
        self.redactor = session.redactor  # checks' results pass through it (actions: the sandbox)
        home = engine.environ.get("HOME")
        self.paths = PathMask(self.goal.workspace, {home: "~"} if home else {})
        self.action_sandbox = session.action_sandbox
        self.resolved: list[Step] = []  # the executed plan's steps with their actions
        self.rec = session.recorder
        self.workspace = session.workspace
        self.trace = session.trace
        self.journal = journal
        self.durable = engine.store is not None
        self.base_id: str | None = None  # the run's first snapshot (what a replay needs)
        self.checks = session.checks
        self.sidecar = session.sidecar
        self.protection: Protection = protection_of(self.goal)
        self.base: Snapshot | None = None  # the run's start: protected files go back to it
        self.state_hash = session.state_hash
        self.meter = Meter(self.goal.budget, engine.clock)
        self.model = MeteredModel(
            engine.model,
            self.meter,
            self.rec,
            engine.clock,
            replayed=self.replayed_response if journal else None,
        )
        self.replaying = journal is not None
        self.meter.replaying = self.replaying
        self.recorder_muted(self.replaying)
        self.gate = RouteGate(engine.router, self) if engine.router is not None else None
        self.git_plan = session.git_plan  # --git: commit the result (gitcommit.py)
        self.final_id: str | None = None  # the state the run left (what zerog diff shows)
        self.toolchain = session.tools  # what the sandbox sees besides the workspace

    # ------------------------------------------------------------- resume plumbing

    def recorder_muted(self, muted: bool) -> None:
        self.rec.muted = muted

    def go_live(self, where: str) -> None:
        """The first operation the journal has no result for: the run is live again."""
        if not self.replaying or self.journal is None:
            return
        self.replaying = False
        self.recorder_muted(False)
        self.meter.resume(self.journal.elapsed)
        self.rec.emit("resumed", at=where, iteration=self.meter.iterations)

    def replayed_response(self, call: int) -> Response | None:
        if self.replaying and self.journal is not None:
            data = self.journal.responses.get(call)
            if data is not None:
                return Response(
                    text=str(data.get("text", "")),
                    usage=Usage(
                        input_tokens=int(str(data.get("input_tokens", 0))),
                        output_tokens=int(str(data.get("output_tokens", 0))),
                        cached_tokens=int(str(data.get("cached_tokens", 0))),
                    ),
                    cost=float(str(data.get("cost", 0.0))),
                    model=str(data.get("model", "")),
                    cache_hit=bool(data.get("cache_hit", False)),
                    confidence=_confidence(data.get("confidence")),
                )
        self.go_live(f"model call {call}")
        return None

    def limits(self) -> Limits:
        self.meter.check()
        timeout = min(self.e.limits.timeout, self.meter.remaining_seconds())
        return self.e.limits.model_copy(update={"timeout": max(timeout, 0.001)})

    def base_snapshot(self) -> Snapshot:
        if self.replaying and self.journal and self.journal.base_snapshot:
            snap = self.workspace.load(self.journal.base_snapshot)
            self.base_id = snap.id
            return snap
        self.go_live("start")
        snap = self.workspace.snapshot()
        self.base_id = snap.id
        self.rec.emit(
            "snapshot", role="base", snapshot=snap.id, files=len(snap.entries), **_notes(snap)
        )
        return snap

    def prepare_git(self) -> None:
        """Record what a ``--git`` run pinned before it started."""
        if self.git_plan is None or (self.journal and self.journal.git_prepared is not None):
            return
        self.go_live("start")
        self.rec.emit("git_prepared", **self.git_plan.model_dump(mode="json"))

    def final_snapshot(self) -> Snapshot:
        """The workspace as the run leaves it: what ``zerog diff`` compares with the base."""
        if self.replaying and self.journal and self.journal.final_snapshot:
            snap = self.workspace.load(self.journal.final_snapshot)
        else:
            self.go_live("final snapshot")
            snap = self.workspace.snapshot()
            self.rec.emit(
                "snapshot", role="final", snapshot=snap.id, files=len(snap.entries), **_notes(snap)
            )
        self.final_id = snap.id
        return snap

    def commit_git(
        self, status: RunStatus, base: Snapshot | None, final: Snapshot | None, skip: str = ""
    ) -> GitOutcome | None:
        """With ``--git``: the commit of the result on a new branch (replayed if made).
        ``skip`` says why there is nothing to commit (the preflight ended the run)."""
        plan = self.git_plan
        if plan is None:
            return None
        if self.replaying and self.journal and self.journal.git_commit is not None:
            return GitOutcome.model_validate(self.journal.git_commit)
        self.go_live("git commit")
        if base is None or final is None or skip:
            outcome = GitOutcome(
                status="skipped",
                branch=plan.branch,
                base=plan.head,
                user_branch=plan.user_branch,
                message=f"{skip or 'the run did not start'}: no commit, no branch",
            )
        else:
            outcome = commit(
                plan,
                self.workspace,
                base,
                final,
                goal=self.goal.text,
                run_id=self.rec.run_id,
                environ=self.e.environ,
                succeeded=status is RunStatus.SUCCESS,
            )
        self.rec.emit("git_commit", **outcome.model_dump(mode="json"))
        return outcome

    def keep(self, iteration: int) -> Snapshot:
        """A snapshot of the workspace whose checks just passed (a doubted answer)."""
        if self.replaying and self.journal and iteration in self.journal.kept:
            return self.workspace.load(self.journal.kept[iteration])
        self.go_live(f"keeping iteration {iteration}")
        snap = self.workspace.snapshot()
        self.rec.emit(
            "snapshot", role="passing", iteration=iteration, snapshot=snap.id, **_notes(snap)
        )
        return snap

    def doubted(self, iteration: int) -> str:
        """Why an answer that passed its checks gets a second opinion ("" if it does not)."""
        if self.e.doubt is None or iteration >= self.goal.budget.max_iterations:
            return ""
        reason = self.e.doubt()
        if reason:
            self.rec.emit("doubt", iteration=iteration, reason=reason)
        return reason or ""

    def rollback(self, good: Snapshot, iteration: int, final: bool = False) -> None:
        key = FINAL if final else iteration
        if self.replaying and self.journal and key in self.journal.rollbacks:
            return
        self.go_live(f"rollback of iteration {iteration}")
        stats = self.workspace.restore(good)
        self.rec.emit(
            "rollback",
            iteration=iteration,
            final=final,
            snapshot=good.id,
            written=stats.written,
            removed=stats.removed,
        )

    # ------------------------------------------------------------- the loop

    def execute(self) -> RunResult:
        goal = self.goal
        self.rec.emit(
            "run_started",
            goal=goal.text,
            workspace=str(goal.workspace),
            checks=[c.label for c in goal.checks],
            budget=goal.budget.model_dump(mode="json"),
            model=self.model.name,
            sandbox=self.sandbox.name,
        )
        if self.toolchain:
            self.rec.emit("sandbox_binds", **self.toolchain.event())
        history: list[ctx.Attempt] = []
        last_print = ""
        repeats = 0
        verdict: Verdict | None = None
        status, reason = RunStatus.INTERRUPTED, "interrupted"
        good: Snapshot | None = None
        kept: tuple[int, Snapshot, Verdict] | None = None  # a passing answer that was doubted
        first: Preflight | None = None
        try:
            self.prepare_git()
            good = self.base = self.base_snapshot()
            first = self.preflight(good)
            if first is not None:
                verdict = first.verdict  # the last verdict, until an iteration's replaces it
                if first.ended is not None:
                    status, reason = first.ended
            while first is None or first.ended is None:  # unless the preflight ended the run
                iteration = self.meter.start_iteration()
                self.rec.emit("iteration_started", iteration=iteration)
                shown, omitted = ctx.summarize_history(history)
                context = ctx.build(
                    goal,
                    self.e.environ,
                    shown,
                    omitted,
                    notice=STUCK_NOTICE if repeats else "",
                    redactor=self.redactor,
                    preflight=first.feedback if first is not None else "",
                    budget=self.e.context_budget,
                )
                reuse = self.reuse_plan() if not history else None
                plan = reuse.plan if reuse else self.e.plan_with(self.model, context)
                self.rec.emit(
                    "plan",
                    iteration=iteration,
                    steps=[s.model_dump(mode="json") for s in plan.steps],
                )
                taken: list[Action] = []
                step_failure, step_check_failed = self.execute_plan(iteration, plan, context, taken)
                failures: tuple[CheckResult, ...] = ()
                doubt = ""
                if not step_check_failed:  # a bad step is rolled back without a final sweep
                    verdict = self.validate(iteration)
                    if verdict.passed:
                        doubt = self.doubted(iteration)
                        if not doubt:
                            status = RunStatus.SUCCESS
                            reason = f"all checks passed (iteration {iteration})"
                            self.remember_plan(reuse)
                            break
                        kept = (iteration, self.keep(iteration), verdict)
                    failures = verdict.failures
                if reuse is not None and self.e.plan_cache is not None:  # failed: re-plan
                    self.e.plan_cache.invalidate(reuse.entry)
                    self.rec.emit("plan_cache", outcome="invalidated", entry=reuse.entry)
                self.rollback(good, iteration)
                # Paths relative to the workspace: shorter, the same in every copy of it, and
                # they tell the model nothing of the host outside it.
                feedback = doubt or self.paths.text(summarize(step_failure, failures))
                fingerprint = _fingerprint(taken, feedback)
                repeats = repeats + 1 if fingerprint == last_print else 0
                last_print = fingerprint
                self.rec.emit(
                    "feedback",
                    iteration=iteration,
                    text=feedback,
                    no_progress=repeats,
                    **({"doubt": True} if doubt else {}),
                )
                if repeats >= self.e.stuck_after:
                    status = RunStatus.STUCK
                    reason = f"no progress: the same failure {repeats + 1} times in a row"
                    break
                history.append(
                    ctx.Attempt(
                        iteration=iteration,
                        plan=tuple(s.intent for s in plan.steps),
                        failure=feedback,
                    )
                )
        except BudgetExhausted as exc:
            status, reason = exc.status, exc.reason
        except (ModelOutputError, ModelError) as exc:
            status, reason = RunStatus.MODEL_ERROR, str(exc)
        except KeyboardInterrupt:
            status, reason = RunStatus.INTERRUPTED, "interrupted by the user"
        ended_early = first.ended[1] if first is not None and first.ended else ""
        if (
            status is not RunStatus.SUCCESS
            and kept is not None
            and status is not (RunStatus.INTERRUPTED)
        ):
            # The second opinion did not pass the checks: the doubted answer did. Keep it.
            passed_at, snapshot, verdict = kept
            self.rollback(snapshot, self.meter.iterations, final=True)
            status = RunStatus.SUCCESS
            reason = (
                f"all checks passed (iteration {passed_at}; the second opinion after it did "
                f"not: {reason})"
            )
        elif status is not RunStatus.SUCCESS and good is not None and not ended_early:
            self.rollback(good, self.meter.iterations, final=True)
        final = self.final_snapshot() if good is not None else None
        files: FileChanges | None = None
        if good is not None and final is not None:
            files = file_changes(compare(good.entries, final.entries))
        git = self.commit_git(status, good, final, skip=ended_early)
        self.go_live("finish")
        result = RunResult(
            run_id=self.rec.run_id,
            status=status,
            reason=reason,
            iterations=self.meter.iterations,
            usage=self.meter.usage,
            cost=self.meter.cost,
            duration=self.meter.elapsed(),
            verdict=verdict,
            trace_path=self.trace.path if self.trace else None,
            phases=dict(self.meter.phases),
            models=dict(self.meter.models),
            cache_hits=dict(self.meter.cache_hits),
            files=files,
            git=git,
            cannot_run=first.cannot_run if first is not None else (),
        )
        self.rec.emit(
            "run_finished",
            status=status.value,
            reason=reason,
            iterations=result.iterations,
            input_tokens=result.usage.input_tokens,
            output_tokens=result.usage.output_tokens,
            cost=result.cost,
            duration=round(result.duration, 6),
            phases={k: v.model_dump(mode="json") for k, v in result.phases.items()},
            models={k: v.model_dump(mode="json") for k, v in result.models.items()},
            cache_hits=result.cache_hits,
            files=files.model_dump(mode="json") if files else None,
            git=git.model_dump(mode="json") if git else None,
            **(
                {"cannot_run": [c.model_dump(mode="json") for c in result.cannot_run]}
                if result.cannot_run
                else {}
            ),
        )
        return result

    def preflight(self, base: Snapshot) -> Preflight | None:
        """The checks once on the untouched workspace, before any model call (None when
        the goal turns it off); what they wrote is rolled back. A resumed run replays a
        preflight it recorded; one recorded without a preflight (by an earlier zerog)
        goes on without one."""
        if not self.goal.preflight:
            return None
        journal = self.journal if self.replaying else None
        if journal is not None and journal.preflight is None and journal.iterations:
            return None
        verdict = self.validate(PREFLIGHT)
        if journal is not None and journal.preflight is not None:
            return Preflight.recorded(verdict, journal.preflight)
        # Not recorded: no iteration has started, so the workspace is to be the base.
        self.go_live("preflight")
        stats = self.workspace.restore(base)
        if stats.written or stats.removed:
            self.rec.emit(
                "rollback",
                iteration=PREFLIGHT,
                final=False,
                snapshot=base.id,
                written=stats.written,
                removed=stats.removed,
            )
        refusals: tuple[CannotRun, ...] = ()
        feedback = ""
        if not verdict.passed:
            refusals = cannot_run(
                [c.check for c in self.checks.checks],
                verdict.results,
                goal_text=self.goal.text,
                workspace_paths=base.entries.keys(),
                workspace=str(self.goal.workspace),
                sandbox=self.sandbox.name,
            )
            if not refusals:
                feedback = self.paths.text(summarize(None, verdict.failures))
        result = Preflight(verdict, refusals, feedback)
        self.rec.emit(
            "preflight",
            outcome=result.outcome,
            cannot_run=[r.model_dump(mode="json") for r in refusals],
            feedback=feedback,
        )
        return result

    def reuse_plan(self) -> Reuse | None:
        """A verified plan from the plan cache (first iteration of a live run only)."""
        if self.e.plan_cache is None or self.journal is not None:
            return None
        reuse = self.e.plan_cache.lookup(self.goal)
        self.rec.emit(
            "plan_cache",
            outcome="hit" if reuse else "miss",
            entry=reuse.entry if reuse else None,
            similarity=round(reuse.similarity, 4) if reuse else None,
        )
        if reuse is not None:
            self.meter.cache_hits["plan"] = self.meter.cache_hits.get("plan", 0) + 1
        return reuse

    def remember_plan(self, reuse: Reuse | None) -> None:
        """After success: store the plan that worked (a reused one is already stored)."""
        if self.e.plan_cache is None or reuse is not None or self.replaying:
            return
        entry = self.e.plan_cache.store(self.goal, Plan(steps=tuple(self.resolved)))
        self.rec.emit("plan_cache", outcome="stored", entry=entry)

    def validate(self, iteration: int) -> Verdict:
        """The validation sweep of one iteration (replayed from the journal if recorded)."""
        journal = self.journal
        if self.replaying and journal is not None and iteration in journal.verdicts:
            # Recorded as each check finished; the verdict lists them in declaration order.
            order = {c.label: c.index for c in reversed(self.checks.checks)}
            recorded = [_check_result(c) for c in journal.checks.get(iteration, [])]
            recorded.sort(key=lambda r: order.get(r.name, len(order)))
            return Verdict(
                passed=bool(journal.verdicts[iteration]["passed"]), results=tuple(recorded)
            )
        self.go_live(f"validation of iteration {iteration}")
        self.restore_protected(iteration)
        self.rec.emit("validation_started", iteration=iteration)

        def on_result(result: CheckResult) -> None:
            self.rec.emit("check", iteration=iteration, **_check_event(self.redactor.check(result)))

        verdict = sweep(
            self.checks,
            self.goal.workspace,
            self.sandbox,
            self.limits(),
            on_result=on_result,
            sidecar=self.sidecar,
            state_hash=self.state_hash,
        )
        verdict = self.redactor.verdict(verdict)
        self.rec.emit(
            "verdict",
            iteration=iteration,
            passed=verdict.passed,
            failures=[r.name for r in verdict.failures],
            flaky=[r.name for r in verdict.flaky],
        )
        return verdict

    def restore_protected(self, iteration: int) -> None:
        """Put every protected path back as it was at the run's start (a shell command may
        have changed one), and record what was put back."""
        if self.base is None:
            return
        current = self.workspace.scan()
        target = restore_target(self.base.entries, current, self.protection)
        changed = sorted(
            p for p in target.keys() | current.keys() if target.get(p) != current.get(p)
        )
        if not changed:
            return
        self.workspace.restore(Snapshot(self.base.id, target))
        self.rec.emit(
            "protected_restored", iteration=iteration, paths=changed[:50], count=len(changed)
        )

    def refusal(self, action: Action) -> Observation | None:
        """Why a file action may not run (it changes a protected path), or None."""
        if not isinstance(action, WriteFileAction | EditAction):
            return None
        try:
            # Lexical: file actions never follow a link, so the path is the file it names.
            path = "/".join(target(action.path))
        except PathEscape:
            return None  # the sandbox refuses it, saying why
        pattern = self.protection.reason(path)
        if pattern is None:
            return None
        return Observation(
            status=Status.ERROR,
            stderr=(
                f"{path} is protected by the goal (pattern {pattern!r}): the checks rely on "
                "it, so this run may not change it. Change the code it checks instead."
            ),
        )

    def run_action(self, key: tuple[int, int, int], action: Action) -> Observation:
        """Run one action once: replayed if it finished before, rolled back and retried if
        it was interrupted, live otherwise."""
        iteration, step, index = key
        journal = self.journal
        if self.replaying and journal is not None:
            done = journal.observations.get(key)
            if done is not None:
                return _observation(done)
            started = journal.started.get(key)
            if started is not None:
                snap = self.workspace.load(str(started["snapshot"]))
                self.go_live(f"action {index + 1} of step {step + 1} (interrupted)")
                stats = self.workspace.restore(snap)
                self.rec.emit(
                    "action_retried",
                    iteration=iteration,
                    step=step,
                    index=index,
                    snapshot=snap.id,
                    written=stats.written,
                    removed=stats.removed,
                )
        self.go_live(f"action {index + 1} of step {step + 1}")
        limits = self.limits()
        before = self.workspace.snapshot().id if self.durable else None
        self.rec.emit(
            "action",
            iteration=iteration,
            step=step,
            index=index,
            action=action.model_dump(mode="json"),
            snapshot=before,
        )
        refused = self.refusal(action)
        observation = refused or self.action_sandbox.run(action, self.goal.workspace, limits)
        if observation.cached:
            self.meter.cache_hits["tool"] = self.meter.cache_hits.get("tool", 0) + 1
        self.rec.emit(
            "observation",
            iteration=iteration,
            step=step,
            index=index,
            **_observation_event(observation),
        )
        return observation

    def run_step_check(self, iteration: int, step: int, command: str) -> tuple[bool, Observation]:
        """A step's own check, right after the step (a flaky pass counts as a pass)."""
        journal = self.journal
        if self.replaying and journal is not None:
            done = journal.step_checks.get((iteration, step))
            if done is not None:
                return bool(done["passed"]), _observation(done["observation"])
        self.go_live(f"check of step {step + 1}")
        result = run_one(
            command,
            self.goal.workspace,
            self.sandbox,
            self.limits(),
            sidecar=self.sidecar,
            state_hash=self.state_hash,
        )
        result = self.redactor.check(result)
        self.rec.emit(
            "step_check",
            iteration=iteration,
            step=step,
            command=command,
            passed=result.passed,
            flaky=result.flaky,
            observation=_observation_event(result.observation),
        )
        return result.passed, result.observation

    def execute_plan(
        self, iteration: int, plan: Plan, context: ctx.Context, taken: list[Action]
    ) -> tuple[StepFailure | None, bool]:
        """Run each step's actions and step check; stop at the first failure.

        The flag is true when a step's own check failed: the step is known bad, and the
        loop rolls back without running the final sweep.
        """
        self.resolved = []
        for index, step in enumerate(plan.steps):
            self.rec.emit("step_started", iteration=iteration, step=index, intent=step.intent)
            first = 0  # a routed step that failed is retried by the worker, numbered after it
            routed = (
                None
                if step.actions or step.files or not self.gate
                else self.gate.route(iteration, plan, index)
            )
            if routed is not None and self.gate is not None:
                rs = routed.actions  # empty when a resumed run replays a demotion
                failed = self.run_step(iteration, step, index, rs, taken) if rs else None
                if rs and failed is None:
                    self.resolved.append(step.model_copy(update={"actions": tuple(rs)}))
                    continue
                first = self.gate.demote(iteration, index, routed, failed[0][1] if failed else "")
            if step.files:  # the code of the step's files, asked file by file
                coded = self.code(iteration, context, plan, index)
                if isinstance(coded, Observation):
                    self.rec.emit("step_failed", iteration=iteration, step=index)
                    return (step.intent, "write the code of " + ", ".join(step.files), coded), False
                actions: Sequence[Action] = (*coded, *step.actions)
            else:
                actions = step.actions or worker.act(self.model, context, plan, index)
            self.resolved.append(step.model_copy(update={"actions": tuple(actions), "files": ()}))
            bad = self.run_step(iteration, step, index, actions, taken, first)
            if bad is not None:
                return bad
        return None, False

    def code(
        self, iteration: int, context: ctx.Context, plan: Plan, index: int
    ) -> tuple[Action, ...] | Observation:
        """The actions that write step ``index``'s files, or (the model's code stayed
        unusable after its re-asks) an error observation with the account."""
        step = plan.steps[index]
        room = MAX_ACTIONS_PER_STEP - len(step.actions)
        allowed = []
        for path in step.files:  # no code call for a file no action could write
            refused = self.refusal(WriteFileAction(path=path, content=""))
            if refused is None:
                allowed.append(path)
            else:
                self.rec.emit(
                    "code_skipped",
                    iteration=iteration,
                    step=index,
                    path=path,
                    reason=refused.stderr,
                )
        if not allowed:
            if step.actions:
                return ()
            self.rec.emit("code_failed", iteration=iteration, step=index, reason="protected")
            return Observation(
                status=Status.ERROR,
                stderr=" ".join(
                    o.stderr
                    for o in (self.refusal(WriteFileAction(path=p, content="")) for p in step.files)
                    if o is not None
                ),
            )
        if len(allowed) < len(step.files):
            narrowed = step.model_copy(update={"files": tuple(allowed)})
            plan = plan.model_copy(
                update={"steps": (*plan.steps[:index], narrowed, *plan.steps[index + 1 :])}
            )
        try:
            return worker.code(
                self.model,
                context,
                plan,
                index,
                self.read_current,
                whole_chars=self.e.whole_chars,
                room=room,
            )
        except coder.CodeAnswerError as exc:
            self.rec.emit("code_failed", iteration=iteration, step=index, reason=str(exc))
            return Observation(status=Status.ERROR, stderr=str(exc))

    def read_current(self, path: str) -> coder.FileText:
        """A workspace file as it is now, for a code call: sanitized and redacted like
        the context's files."""
        try:
            data = read_beneath(self.goal.workspace, path, coder.MAX_CODE_FILE_BYTES)
        except FileNotFoundError:
            return coder.FileText(None)
        except (OSError, PathEscape) as exc:
            return coder.FileText(None, problem=f"it cannot be read ({exc})")
        if data is None:
            return coder.FileText(None, problem="it is not a regular file")
        if len(data) > coder.MAX_CODE_FILE_BYTES:
            return coder.FileText(None, problem="it is too large to change by a model")
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return coder.FileText(None, problem="it is not UTF-8 text")
        return coder.FileText(self.redactor.text(sanitize(text)), crlf="\r\n" in text)

    def run_step(
        self,
        iteration: int,
        step: Step,
        index: int,
        actions: Sequence[Action],
        taken: list[Action],
        first: int = 0,
    ) -> tuple[StepFailure, bool] | None:
        """One step's actions (numbered from ``first``) and its check; None when it is done.

        The flag is true when the step's own check failed (see :meth:`execute_plan`).
        """
        for number, action in enumerate(actions, start=first):
            observation = self.run_action((iteration, index, number), action)
            taken.append(action)
            if not observation.ok:
                self.rec.emit("step_failed", iteration=iteration, step=index)
                return (step.intent, describe_action(action), observation), False
        if step.check:
            passed, observation = self.run_step_check(iteration, index, step.check)
            if not passed:
                self.rec.emit("step_failed", iteration=iteration, step=index, check=True)
                return (step.intent, f"step check: {step.check}", observation), True
        self.rec.emit("step_done", iteration=iteration, step=index)
        return None
