"""The engine: the only module that orchestrates. Plan, act, validate, roll back, re-plan.

Every arrow of the loop is an event; budgets are enforced by the meter before each model
call, action and iteration; failures of the model or of the budget end the run with a
status and a reason, never a traceback.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from zerog import context as ctx
from zerog import planner, worker
from zerog.budget import BudgetExhausted, Meter
from zerog.errors import ConfigError, ModelError, ModelOutputError
from zerog.events import EventSink, Recorder
from zerog.models.base import Model
from zerog.models.metered import MeteredModel
from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.local import LocalSandbox
from zerog.sandbox.workspace import Workspace
from zerog.trace import JsonlTrace
from zerog.types import (
    Action,
    CheckResult,
    Goal,
    Observation,
    Plan,
    RunResult,
    RunStatus,
    ShellAction,
    Verdict,
    describe_action,
)
from zerog.validate.feedback import summarize
from zerog.validate.sweep import sweep

STATE_DIR = ".zerog"
STUCK_NOTICE = (
    "The last attempt failed in exactly the same way as the one before it. That approach "
    "does not work: change strategy (different files, different fix, smaller steps)."
)
_VOLATILE = re.compile(r"\d+\.\d+|0x[0-9a-fA-F]+")

StepFailure = tuple[str, str, Observation]


def _fingerprint(actions: Sequence[Action], feedback: str) -> str:
    """What makes two failed attempts 'the same': their actions and normalized output."""
    digest = hashlib.sha256()
    for action in actions:
        digest.update(action.model_dump_json().encode())
    digest.update(_VOLATILE.sub("#", feedback).encode())
    return digest.hexdigest()


def _observation_event(observation: Observation) -> dict[str, object]:
    return observation.model_dump(mode="json")


class Engine:
    """Runs goals to success or budget. Dependencies come in; nothing is read globally."""

    def __init__(
        self,
        model: Model,
        sandbox: Sandbox | None = None,
        *,
        sinks: Sequence[EventSink] = (),
        environ: Mapping[str, str] | None = None,
        limits: Limits | None = None,
        stuck_after: int = 2,
        trace_dir: Path | None = None,
        write_trace: bool = True,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
    ) -> None:
        if stuck_after < 1:
            raise ConfigError("stuck_after must be at least 1")
        self._model = model
        self._environ = dict(os.environ if environ is None else environ)
        self._sandbox = sandbox
        self._sinks = tuple(sinks)
        self._limits = limits or Limits()
        self._stuck_after = stuck_after
        self._trace_dir = trace_dir
        self._write_trace = write_trace
        self._clock = clock
        self._wall_clock = wall_clock
        self._new_id = new_id

    def run(self, goal: Goal) -> RunResult:
        root = goal.workspace
        if not root.is_dir():
            raise ConfigError(f"workspace {root} is not a directory")
        sandbox = self._sandbox or LocalSandbox(
            sandbox_env(self._environ, goal.env_allow, home=str(root.resolve()))
        )
        state = root / STATE_DIR
        state.mkdir(exist_ok=True)
        (state / ".gitignore").write_text("*\n", encoding="utf-8")
        run_id = self._new_id()
        sinks = list(self._sinks)
        trace: JsonlTrace | None = None
        if self._write_trace:
            trace = JsonlTrace((self._trace_dir or state / "runs") / f"{run_id}.jsonl")
            sinks.insert(0, trace)
        try:
            return _Run(
                self,
                goal,
                sandbox,
                Recorder(run_id, sinks, self._wall_clock),
                Workspace(root, state / "snapshots"),
                trace,
            ).execute()
        finally:
            if trace is not None:
                trace.close()


class _Run:
    """The state of one run; lives for one call of :meth:`Engine.run`."""

    def __init__(
        self,
        engine: Engine,
        goal: Goal,
        sandbox: Sandbox,
        recorder: Recorder,
        workspace: Workspace,
        trace: JsonlTrace | None,
    ) -> None:
        self.e = engine
        self.goal = goal
        self.sandbox = sandbox
        self.rec = recorder
        self.workspace = workspace
        self.trace = trace
        self.meter = Meter(goal.budget, engine._clock)
        self.model = MeteredModel(engine._model, self.meter, recorder, engine._clock)

    def limits(self) -> Limits:
        self.meter.check()
        timeout = min(self.e._limits.timeout, self.meter.remaining_seconds())
        return self.e._limits.model_copy(update={"timeout": max(timeout, 0.001)})

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
        good = self.workspace.snapshot()
        self.rec.emit("snapshot", snapshot=good.id, files=len(good.entries))
        history: list[ctx.Attempt] = []
        last_print = ""
        repeats = 0
        verdict: Verdict | None = None
        status, reason = RunStatus.INTERRUPTED, "interrupted"
        try:
            while True:
                iteration = self.meter.start_iteration()
                self.rec.emit("iteration_started", iteration=iteration)
                shown, omitted = ctx.summarize_history(history)
                context = ctx.build(
                    goal, self.e._environ, shown, omitted, notice=STUCK_NOTICE if repeats else ""
                )
                plan = planner.plan(self.model, context)
                self.rec.emit(
                    "plan",
                    iteration=iteration,
                    steps=[s.model_dump(mode="json") for s in plan.steps],
                )
                taken: list[Action] = []
                step_failure = self.execute_plan(plan, context, taken)
                self.rec.emit("validation_started", iteration=iteration)
                verdict = sweep(
                    goal.checks,
                    goal.workspace,
                    self.sandbox,
                    self.limits(),
                    on_result=self.check_event,
                )
                self.rec.emit(
                    "verdict",
                    iteration=iteration,
                    passed=verdict.passed,
                    failures=[r.name for r in verdict.failures],
                )
                if verdict.passed:
                    status, reason = RunStatus.SUCCESS, f"all checks passed (iteration {iteration})"
                    break
                stats = self.workspace.restore(good)
                self.rec.emit(
                    "rollback",
                    iteration=iteration,
                    snapshot=good.id,
                    written=stats.written,
                    removed=stats.removed,
                )
                feedback = summarize(step_failure, verdict.failures)
                fingerprint = _fingerprint(taken, feedback)
                repeats = repeats + 1 if fingerprint == last_print else 0
                last_print = fingerprint
                self.rec.emit("feedback", iteration=iteration, text=feedback, no_progress=repeats)
                if repeats >= self.e._stuck_after:
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
        if status is not RunStatus.SUCCESS:
            stats = self.workspace.restore(good)
            self.rec.emit(
                "rollback",
                iteration=self.meter.iterations,
                snapshot=good.id,
                written=stats.written,
                removed=stats.removed,
            )
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
        )
        return result

    def check_event(self, result: CheckResult) -> None:
        self.rec.emit(
            "check",
            name=result.name,
            passed=result.passed,
            observation=_observation_event(result.observation),
        )

    def execute_plan(
        self, plan: Plan, context: ctx.Context, taken: list[Action]
    ) -> StepFailure | None:
        """Run each step's actions and step check; stop at the first failure."""
        for index, step in enumerate(plan.steps):
            self.rec.emit("step_started", step=index, intent=step.intent)
            actions = step.actions or worker.act(self.model, context, plan, index)
            for action in actions:
                limits = self.limits()
                self.rec.emit("action", step=index, action=action.model_dump(mode="json"))
                observation = self.sandbox.run(action, self.goal.workspace, limits)
                taken.append(action)
                self.rec.emit("observation", step=index, **_observation_event(observation))
                if not observation.ok:
                    self.rec.emit("step_failed", step=index)
                    return step.intent, describe_action(action), observation
            if step.check:
                check = ShellAction(command=step.check)
                observation = self.sandbox.run(check, self.goal.workspace, self.limits())
                self.rec.emit(
                    "step_check",
                    step=index,
                    command=step.check,
                    passed=observation.ok,
                    observation=_observation_event(observation),
                )
                if not observation.ok:
                    self.rec.emit("step_failed", step=index)
                    return step.intent, f"step check: {step.check}", observation
            self.rec.emit("step_done", step=index)
        return None
