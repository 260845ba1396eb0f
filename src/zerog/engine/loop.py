"""The engine: the only module that orchestrates. Plan, act, validate, roll back, re-plan.

Every arrow of the loop is an event; budgets are enforced by the meter before each model
call, action and iteration; failures of the model or of the budget end the run with a
status and a reason, never a traceback. The flow is by exceptions (engine/exceptions.py):
a failed step raises ``StepFailed``, caught by its iteration; every end of the run is a
``RunEnded``, caught once in :meth:`_Run.execute`, where the result is built. With a
store, events are committed at the points ``journal.py`` names (before an action runs,
after each result), and an interrupted run can be resumed from what was committed (see
engine/replayer.py, ``journal.py`` and docs/journal.md).
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from zerog import coder, planner, worker
from zerog import context as ctx
from zerog.budget import Meter
from zerog.changes import compare, file_changes
from zerog.engine.coding import StepCoder
from zerog.engine.effects import Effects
from zerog.engine.exceptions import (
    Cancelled,
    ModelFailed,
    PreflightEnded,
    RunEnded,
    StepFailed,
    Stuck,
    Succeeded,
)
from zerog.engine.planning import CachingPlanner
from zerog.engine.preflight import Preflight
from zerog.engine.replayer import Replayer
from zerog.engine.session import Session, open_session
from zerog.engine.stuck import StuckDetector
from zerog.errors import ConfigError, ModelError, ModelOutputError
from zerog.events import EventSink
from zerog.focus import ContextBudget
from zerog.hostpaths import PathMask
from zerog.journal import Journal, read_journal
from zerog.models.base import Model
from zerog.models.metered import MeteredModel
from zerog.redact import Redactor
from zerog.router.base import Router
from zerog.router.gate import RouteGate
from zerog.runspec import RunSpec
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.factory import default_sandbox_name
from zerog.sandbox.workspace import Snapshot
from zerog.store import Store, StoreError
from zerog.types import (
    Action,
    CheckResult,
    FileChanges,
    Goal,
    Observation,
    Plan,
    RunResult,
    RunStatus,
    Step,
    Verdict,
    describe_action,
)
from zerog.validate.feedback import summarize
from zerog.validate.sidecar import SIDECARS

if TYPE_CHECKING:
    from zerog.cache.semantic import PlanCache
    from zerog.cache.tools import ToolCache


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

    def run(self, goal: Goal, spec: RunSpec | None = None, run_id: str | None = None) -> RunResult:
        """Run ``goal`` from the start. ``spec`` (what the front end asked for: model,
        strategy, router) is stored with the run, completed with the goal, limits and
        sandbox the engine runs it with (for resume and replay)."""
        return self._start(goal, run_id or self.new_id(), None, spec or RunSpec())

    def resume(self, run_id: str) -> RunResult:
        """Continue an interrupted run from its last durable event (needs a store)."""
        if self.store is None:
            raise ConfigError("resuming a run needs the store it was recorded in")
        row = self.store.find(run_id)
        events = self.store.events(row.id)
        journal = read_journal(events)
        if journal.finished:
            raise StoreError(f"run {row.id} already finished ({journal.finished})")
        spec = RunSpec.from_recorded(row.spec)
        return self._start(spec.recorded_goal(), row.id, journal, spec)

    def _start(self, goal: Goal, run_id: str, journal: Journal | None, spec: RunSpec) -> RunResult:
        with open_session(self, goal, run_id, journal, spec) as session:
            run = _Run(self, session, journal)
            result = run.execute()
            # Finished: nothing can resume it; a replay needs its base snapshot
            # and ``zerog diff`` its final one.
            kept = (run.effects.base_id, run.effects.final_id)
            session.workspace.collect(keep={i for i in kept if i})
            return result


class _Run:
    """The state of one run; lives for one call of :meth:`Engine.run` or ``resume``."""

    def __init__(self, engine: Engine, session: Session, journal: Journal | None) -> None:
        self.e = engine
        self.goal = goal = session.goal
        self.session = session
        self.rec = session.recorder
        home = engine.environ.get("HOME")
        self.paths = PathMask(goal.workspace, {home: "~"} if home else {})
        self.meter = Meter(goal.budget, engine.clock)
        self.replayer = Replayer(journal, self.rec, self.meter)
        self.model = MeteredModel(
            engine.model,
            self.meter,
            self.rec,
            engine.clock,
            replayed=self.replayer.response if journal else None,
        )
        self.effects = Effects(
            session,
            self.replayer,
            self.meter,
            engine.limits,
            environ=engine.environ,
            durable=engine.store is not None,
            paths=self.paths,
        )
        self.coder = StepCoder(self.model, self.effects, whole_chars=engine.whole_chars)
        self.planner = CachingPlanner(
            engine.plan_with,
            engine.plan_cache,
            goal,
            self.rec,
            self.meter,
            resumed=journal is not None,
        )
        self.stuck = StuckDetector(engine.stuck_after)
        self.gate = (
            RouteGate(engine.router, self.replayer, self.rec, session.workspace, goal)
            if engine.router is not None
            else None
        )
        self.history: list[ctx.Attempt] = []  # the failed iterations, for the next plan
        self.resolved: list[Step] = []  # the executed plan's steps with their actions
        self.preflight: Preflight | None = None
        self.verdict: Verdict | None = None  # the last verdict (the preflight's at first)
        self.kept: tuple[int, Snapshot, Verdict] | None = None  # a doubted passing answer

    def execute(self) -> RunResult:
        self.rec.emit(
            "run_started",
            goal=self.goal.text,
            workspace=str(self.goal.workspace),
            checks=[c.label for c in self.goal.checks],
            budget=self.goal.budget.model_dump(mode="json"),
            model=self.model.name,
            sandbox=self.session.sandbox.name,
        )
        if self.session.tools:
            self.rec.emit("sandbox_binds", **self.session.tools.event())
        try:
            self.loop()
        except RunEnded as end:
            ended = end
        except (ModelOutputError, ModelError) as exc:
            ended = ModelFailed(str(exc))
        except KeyboardInterrupt:
            ended = Cancelled()
        return self.finish(ended)

    def loop(self) -> NoReturn:
        """Preflight, then iterations until the run ends (every end raises)."""
        self.effects.prepare_git()
        good = self.effects.base_snapshot()
        self.preflight = self.effects.preflight(good)
        if self.preflight is not None:
            self.verdict = self.preflight.verdict
            self.preflight.end()  # its checks pass already, or some cannot run
        while True:
            self.iterate(good)

    def iterate(self, good: Snapshot) -> None:
        """One iteration: plan, act, validate; a failure is rolled back and fed back."""
        iteration = self.meter.start_iteration()
        self.rec.emit("iteration_started", iteration=iteration)
        shown, omitted = ctx.summarize_history(self.history)
        context = ctx.build(
            self.goal,
            self.e.environ,
            shown,
            omitted,
            notice=self.stuck.notice,
            redactor=self.session.redactor,
            preflight=self.preflight.feedback if self.preflight is not None else "",
            budget=self.e.context_budget,
        )
        plan = self.planner.plan(self.model, context, first=not self.history)
        self.rec.emit(
            "plan", iteration=iteration, steps=[s.model_dump(mode="json") for s in plan.steps]
        )
        taken: list[Action] = []
        failed: StepFailed | None = None
        try:
            self.execute_plan(iteration, plan, context, taken)
        except StepFailed as exc:
            failed = exc
        failures: tuple[CheckResult, ...] = ()
        doubt = ""
        if failed is None or not failed.check:  # a bad step is rolled back without a sweep
            self.verdict = verdict = self.effects.validate(iteration)
            if verdict.passed:
                doubt = self.doubted(iteration)
                if not doubt:
                    self.planner.worked(self.resolved, replaying=self.replayer.replaying)
                    raise Succeeded(f"all checks passed (iteration {iteration})")
                self.kept = (iteration, self.effects.keep(iteration), verdict)
            failures = verdict.failures
        self.planner.failed()  # a reused plan that failed: re-plan
        self.effects.rollback(good, iteration)
        # Paths relative to the workspace: shorter, the same in every copy of it, and
        # they tell the model nothing of the host outside it.
        feedback = doubt or self.paths.text(summarize(failed.failure if failed else None, failures))
        repeats = self.stuck.observe(taken, feedback)
        self.rec.emit(
            "feedback",
            iteration=iteration,
            text=feedback,
            no_progress=repeats,
            **({"doubt": True} if doubt else {}),
        )
        if self.stuck.stuck:
            raise Stuck(repeats)
        self.history.append(
            ctx.Attempt(
                iteration=iteration, plan=tuple(s.intent for s in plan.steps), failure=feedback
            )
        )

    def doubted(self, iteration: int) -> str:
        """Why an answer that passed its checks gets a second opinion ("" if it does not)."""
        if self.e.doubt is None or iteration >= self.goal.budget.max_iterations:
            return ""
        reason = self.e.doubt()
        if reason:
            self.rec.emit("doubt", iteration=iteration, reason=reason)
        return reason or ""

    def execute_plan(
        self, iteration: int, plan: Plan, context: ctx.Context, taken: list[Action]
    ) -> None:
        """Run each step's actions and step check; the first failure raises
        :class:`StepFailed` (``check`` set when the step's own check failed: the step is
        known bad, and the iteration rolls back without running the final sweep)."""
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
                failure = ""
                if routed.actions:  # empty when a resumed run replays a demotion
                    try:
                        self.run_step(iteration, step, index, routed.actions, taken)
                    except StepFailed as exc:
                        failure = exc.what
                    else:
                        self.resolved.append(step.model_copy(update={"actions": routed.actions}))
                        continue
                first = self.gate.demote(iteration, index, routed, failure)
            if step.files:  # the code of the step's files, asked file by file
                coded = self.coder.code(iteration, context, plan, index)
                if isinstance(coded, Observation):
                    self.rec.emit("step_failed", iteration=iteration, step=index)
                    raise StepFailed(
                        step.intent, "write the code of " + ", ".join(step.files), coded
                    )
                actions: Sequence[Action] = (*coded, *step.actions)
            else:
                actions = step.actions or worker.act(self.model, context, plan, index)
            self.resolved.append(step.model_copy(update={"actions": tuple(actions), "files": ()}))
            self.run_step(iteration, step, index, actions, taken, first)

    def run_step(
        self,
        iteration: int,
        step: Step,
        index: int,
        actions: Sequence[Action],
        taken: list[Action],
        first: int = 0,
    ) -> None:
        """One step's actions (numbered from ``first``) and its check; a failure raises
        :class:`StepFailed` (see :meth:`execute_plan`)."""
        for number, action in enumerate(actions, start=first):
            observation = self.effects.run_action((iteration, index, number), action)
            taken.append(action)
            if not observation.ok:
                self.rec.emit("step_failed", iteration=iteration, step=index)
                raise StepFailed(step.intent, describe_action(action), observation)
        if step.check:
            passed, observation = self.effects.run_step_check(iteration, index, step.check)
            if not passed:
                self.rec.emit("step_failed", iteration=iteration, step=index, check=True)
                raise StepFailed(step.intent, f"step check: {step.check}", observation, check=True)
        self.rec.emit("step_done", iteration=iteration, step=index)

    def finish(self, ended: RunEnded) -> RunResult:
        """The run's result from how it ended: a doubted answer that passed is kept, any
        other failure is rolled back (unless the preflight ended it), and the final state
        is snapshotted, compared and (with ``--git``) committed."""
        status, reason, verdict = ended.status, ended.reason, self.verdict
        ended_early = ended.reason if isinstance(ended, PreflightEnded) else ""
        good = self.effects.base
        if (
            status is not RunStatus.SUCCESS
            and self.kept is not None
            and status is not RunStatus.INTERRUPTED
        ):
            # The second opinion did not pass the checks: the doubted answer did. Keep it.
            passed_at, snapshot, verdict = self.kept
            self.effects.rollback(snapshot, self.meter.iterations, final=True)
            status = RunStatus.SUCCESS
            reason = (
                f"all checks passed (iteration {passed_at}; the second opinion after it did "
                f"not: {reason})"
            )
        elif status is not RunStatus.SUCCESS and good is not None and not ended_early:
            self.effects.rollback(good, self.meter.iterations, final=True)
        final = self.effects.final_snapshot() if good is not None else None
        files: FileChanges | None = None
        if good is not None and final is not None:
            files = file_changes(compare(good.entries, final.entries))
        git = self.effects.commit_git(status, good, final, skip=ended_early)
        self.replayer.go_live("finish")
        trace = self.session.trace
        result = RunResult(
            run_id=self.rec.run_id,
            status=status,
            reason=reason,
            iterations=self.meter.iterations,
            usage=self.meter.usage,
            cost=self.meter.cost,
            duration=self.meter.elapsed(),
            verdict=verdict,
            trace_path=trace.path if trace else None,
            phases=dict(self.meter.phases),
            models=dict(self.meter.models),
            cache_hits=dict(self.meter.cache_hits),
            files=files,
            git=git,
            cannot_run=self.preflight.cannot_run if self.preflight is not None else (),
        )
        self.rec.emit("run_finished", **_finished_event(result))
        return result


def _finished_event(result: RunResult) -> dict[str, object]:
    """What the ``run_finished`` event says of a run's result."""
    return {
        "status": result.status.value,
        "reason": result.reason,
        "iterations": result.iterations,
        "input_tokens": result.usage.input_tokens,
        "output_tokens": result.usage.output_tokens,
        "cost": result.cost,
        "duration": round(result.duration, 6),
        "phases": {k: v.model_dump(mode="json") for k, v in result.phases.items()},
        "models": {k: v.model_dump(mode="json") for k, v in result.models.items()},
        "cache_hits": result.cache_hits,
        "files": result.files.model_dump(mode="json") if result.files else None,
        "git": result.git.model_dump(mode="json") if result.git else None,
        **(
            {"cannot_run": [c.model_dump(mode="json") for c in result.cannot_run]}
            if result.cannot_run
            else {}
        ),
    }
