"""Every side effect of a run but the model's calls, each replayed when the journal has it.

Snapshots (the base, a passing answer's, the final one), rollbacks, the validation sweep
and the preflight, the actions and the steps' own checks, the protected files, and a
``--git`` run's plan and commit. Each asks the :class:`~zerog.engine.replayer.Replayer`
first and records its result as an event when it runs live (the store commits the events
``journal.py`` names before the next operation starts).
"""

from __future__ import annotations

from collections.abc import Mapping

from zerog.budget import Meter
from zerog.engine.preflight import PREFLIGHT, Preflight
from zerog.engine.replayer import (
    Replayer,
    check_event,
    decode_preflight,
    observation_event,
)
from zerog.engine.session import Session
from zerog.gitcommit import commit
from zerog.hostpaths import PathMask
from zerog.journal import FINAL, ActionKey
from zerog.protect import Protection, protection_of, restore_target
from zerog.sandbox.base import Limits
from zerog.sandbox.files import PathEscape, target
from zerog.sandbox.workspace import Snapshot
from zerog.types import (
    Action,
    CannotRun,
    CheckResult,
    EditAction,
    GitOutcome,
    Observation,
    RunStatus,
    Status,
    Verdict,
    WriteFileAction,
)
from zerog.validate.feedback import summarize
from zerog.validate.preflight import cannot_run
from zerog.validate.sweep import run_one, sweep


def _notes(snap: Snapshot) -> dict[str, object]:
    """What a snapshot event says beyond its id: setuid/setgid/sticky bits it dropped."""
    if not snap.neutralized:
        return {}
    return {
        "neutralized": list(snap.neutralized[:50]),
        "note": "setuid, setgid and sticky bits are never kept: these paths come back without",
    }


class Effects:
    """The side effects of one run (``session``), replayed through ``replayer``."""

    def __init__(
        self,
        session: Session,
        replayer: Replayer,
        meter: Meter,
        limits: Limits,
        *,
        environ: Mapping[str, str],
        durable: bool,
        paths: PathMask,
    ) -> None:
        self.session = session
        self.goal = session.goal
        self.workspace = session.workspace
        self.rec = session.recorder
        self.redactor = session.redactor  # checks' results pass through it
        self.replayer = replayer
        self.meter = meter
        self.environ = environ
        self._limits = limits
        self.durable = durable  # with a store: actions snapshot the workspace first
        self.paths = paths
        self.protection: Protection = protection_of(self.goal)
        self.base: Snapshot | None = None  # the run's start: protected files go back to it
        self.base_id: str | None = None  # the run's first snapshot (what a replay needs)
        self.final_id: str | None = None  # the state the run left (what zerog diff shows)

    def limits(self) -> Limits:
        """The limits of one command: the engine's, its timeout cut to the time left."""
        self.meter.check()
        timeout = min(self._limits.timeout, self.meter.remaining_seconds())
        return self._limits.model_copy(update={"timeout": max(timeout, 0.001)})

    # ------------------------------------------------------------- snapshots

    def base_snapshot(self) -> Snapshot:
        """The workspace as the run found it: what it rolls back to."""
        snap = self._recorded_or_taken("base", self.replayer.base_snapshot(), "start")
        self.base_id = snap.id
        self.base = snap
        return snap

    def final_snapshot(self) -> Snapshot:
        """The workspace as the run leaves it: what ``zerog diff`` compares with the base."""
        snap = self._recorded_or_taken("final", self.replayer.final_snapshot(), "final snapshot")
        self.final_id = snap.id
        return snap

    def _recorded_or_taken(self, role: str, recorded: str | None, where: str) -> Snapshot:
        """The snapshot a resumed run recorded in this role, or a new one (live from here)."""
        if recorded:
            return self.workspace.load(recorded)
        self.replayer.go_live(where)
        snap = self.workspace.snapshot()
        self.rec.emit(
            "snapshot", role=role, snapshot=snap.id, files=len(snap.entries), **_notes(snap)
        )
        return snap

    def keep(self, iteration: int) -> Snapshot:
        """A snapshot of the workspace whose checks just passed (a doubted answer)."""
        recorded = self.replayer.kept(iteration)
        if recorded is not None:
            return self.workspace.load(recorded)
        self.replayer.go_live(f"keeping iteration {iteration}")
        snap = self.workspace.snapshot()
        self.rec.emit(
            "snapshot", role="passing", iteration=iteration, snapshot=snap.id, **_notes(snap)
        )
        return snap

    def rollback(self, good: Snapshot, iteration: int, final: bool = False) -> None:
        if self.replayer.rolled_back(FINAL if final else iteration):
            return
        self.replayer.go_live(f"rollback of iteration {iteration}")
        stats = self.workspace.restore(good)
        self.rec.emit(
            "rollback",
            iteration=iteration,
            final=final,
            snapshot=good.id,
            written=stats.written,
            removed=stats.removed,
        )

    # ------------------------------------------------------------- git

    def prepare_git(self) -> None:
        """Record what a ``--git`` run pinned before it started."""
        if self.session.git_plan is None or self.replayer.git_prepared():
            return
        self.replayer.go_live("start")
        self.rec.emit("git_prepared", **self.session.git_plan.model_dump(mode="json"))

    def commit_git(
        self, status: RunStatus, base: Snapshot | None, final: Snapshot | None, skip: str = ""
    ) -> GitOutcome | None:
        """With ``--git``: the commit of the result on a new branch (replayed if made).
        ``skip`` says why there is nothing to commit (the preflight ended the run)."""
        plan = self.session.git_plan
        if plan is None:
            return None
        recorded = self.replayer.git_commit()
        if recorded is not None:
            return recorded
        self.replayer.go_live("git commit")
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
                environ=self.environ,
                succeeded=status is RunStatus.SUCCESS,
            )
        self.rec.emit("git_commit", **outcome.model_dump(mode="json"))
        return outcome

    # ------------------------------------------------------------- checks

    def preflight(self, base: Snapshot) -> Preflight | None:
        """The checks once on the untouched workspace, before any model call (None when
        the goal turns it off); what they wrote is rolled back. A resumed run replays a
        preflight it recorded; one recorded without a preflight (by an earlier zerog)
        goes on without one."""
        if not self.goal.preflight:
            return None
        journal = self.replayer.past
        if journal is not None and journal.preflight is None and journal.iterations:
            return None
        verdict = self.validate(PREFLIGHT)
        if journal is not None and journal.preflight is not None:
            return decode_preflight(verdict, journal.preflight)
        # Not recorded: no iteration has started, so the workspace is to be the base.
        self.replayer.go_live("preflight")
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
                [c.check for c in self.session.checks.checks],
                verdict.results,
                goal_text=self.goal.text,
                workspace_paths=base.entries.keys(),
                workspace=str(self.goal.workspace),
                sandbox=self.session.sandbox.name,
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

    def validate(self, iteration: int) -> Verdict:
        """The validation sweep of one iteration (replayed from the journal if recorded)."""
        recorded = self.replayer.verdict(iteration, self.session.checks)
        if recorded is not None:
            return recorded
        self.replayer.go_live(f"validation of iteration {iteration}")
        self.restore_protected(iteration)
        self.rec.emit("validation_started", iteration=iteration)

        def on_result(result: CheckResult) -> None:
            self.rec.emit("check", iteration=iteration, **check_event(self.redactor.check(result)))

        verdict = sweep(
            self.session.checks,
            self.goal.workspace,
            self.session.sandbox,
            self.limits(),
            on_result=on_result,
            sidecar=self.session.sidecar,
            state_hash=self.session.state_hash,
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

    def run_step_check(self, iteration: int, step: int, command: str) -> tuple[bool, Observation]:
        """A step's own check, right after the step (a flaky pass counts as a pass)."""
        recorded = self.replayer.step_check(iteration, step)
        if recorded is not None:
            return recorded
        self.replayer.go_live(f"check of step {step + 1}")
        result = run_one(
            command,
            self.goal.workspace,
            self.session.sandbox,
            self.limits(),
            sidecar=self.session.sidecar,
            state_hash=self.session.state_hash,
        )
        result = self.redactor.check(result)
        self.rec.emit(
            "step_check",
            iteration=iteration,
            step=step,
            command=command,
            passed=result.passed,
            flaky=result.flaky,
            observation=observation_event(result.observation),
        )
        return result.passed, result.observation

    # ------------------------------------------------------------- protected files

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

    # ------------------------------------------------------------- actions

    def run_action(self, key: ActionKey, action: Action) -> Observation:
        """Run one action once: replayed if it finished before, rolled back and retried if
        it was interrupted, live otherwise."""
        iteration, step, index = key
        done = self.replayer.observation(key)
        if done is not None:
            return done
        started = self.replayer.interrupted(key)
        if started is not None:
            snap = self.workspace.load(started)
            self.replayer.go_live(f"action {index + 1} of step {step + 1} (interrupted)")
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
        self.replayer.go_live(f"action {index + 1} of step {step + 1}")
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
        observation = refused or self.session.action_sandbox.run(
            action, self.goal.workspace, limits
        )
        if observation.cached:
            self.meter.cache_hits["tool"] = self.meter.cache_hits.get("tool", 0) + 1
        self.rec.emit(
            "observation",
            iteration=iteration,
            step=step,
            index=index,
            **observation_event(observation),
        )
        return observation
