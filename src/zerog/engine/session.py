"""A run's session: what is checked, opened and wired before the loop starts, and closed
after it ends.

Before anything is written: the workspace is checked (``workspace_policy.py``), the goal's
checks are compiled (bad checks fail before any model call, and they are compiled once
for the whole run), the toolchain and the sandbox's environment are worked out, the
sandbox and the checks' sidecar are made, and a ``--git`` run's plan is pinned. Then the
state directory is opened and the workspace locked (one run at a time per workspace), the
sinks are wired (the store's group commit first, then the trace, then the caller's), the
run is created in the store, and the recorder and the snapshot store are ready. On the way
out the store gets what a run that ended in an error still holds, and the trace is closed.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zerog import toolchain
from zerog.beneath import Dir
from zerog.errors import ConfigError
from zerog.events import EventSink, Recorder
from zerog.gitcommit import GitPlan, prepare
from zerog.journal import COMMIT_KINDS, Journal
from zerog.redact import Redactor, sandbox_env
from zerog.runspec import GitRequest, RunSpec
from zerog.sandbox.base import Sandbox
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.redacted import RedactedSandbox
from zerog.sandbox.workspace import Workspace
from zerog.statedir import STATE_DIR, append_text, open_state, open_state_file, state_subdir
from zerog.store import GroupCommit
from zerog.trace import JsonlTrace
from zerog.types import Goal, PredicateCheck, SchemaCheck
from zerog.validate.compile import SweepPlan, compile_checks
from zerog.validate.sidecar import PythonRunner, make_sidecar
from zerog.validate.sweep import flaky_state_hash
from zerog.workspace_policy import check_workspace

if TYPE_CHECKING:
    from zerog.engine.loop import Engine


@dataclass(frozen=True)
class Session:
    """What one run works with; lives for one call of ``Engine.run`` or ``resume``."""

    run_id: str
    goal: Goal  # its workspace resolved (the checked root)
    checks: SweepPlan  # compiled once, before any model call
    tools: toolchain.Toolchain  # what the sandbox sees besides the workspace
    redactor: Redactor  # checks' results pass through it (actions: the action sandbox)
    sandbox: Sandbox  # checks run here
    action_sandbox: Sandbox  # actions run here: redacted, and cached with a tool cache
    sidecar: PythonRunner | None  # runs predicate and schema checks (None: none to run)
    git_plan: GitPlan | None  # --git: commit the result (gitcommit.py)
    recorder: Recorder
    workspace: Workspace
    state_hash: Callable[[], str]  # what flaky detection and the tool cache compare
    trace: JsonlTrace | None


def _needs_sidecar(plan: SweepPlan) -> bool:
    return any(isinstance(c.check, PredicateCheck | SchemaCheck) for c in plan.checks)


@contextmanager
def _workspace_lock(root: Path, state: Dir) -> Iterator[None]:
    """One run at a time per workspace: two loops editing the same tree is chaos."""
    flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
    with os.fdopen(open_state_file(root, state, "lock", flags), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise ConfigError(f"workspace {root} is in use by another zerog run") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _git_plan(
    engine: Engine, root: Path, run_id: str, journal: Journal | None, spec: RunSpec
) -> GitPlan | None:
    """What a ``--git`` run pinned: checked now for a new run (nothing is changed if a
    check fails), read back from the journal for a resumed one."""
    if journal is None:
        if not engine.git:
            return None
        allow_dirty = engine.allow_dirty
    elif journal.git_prepared is not None:
        return GitPlan.model_validate(journal.git_prepared)
    else:  # stopped before it recorded its plan: checked again, as the spec asked
        request = spec.git
        if request is None:
            return None
        allow_dirty = request.allow_dirty
    return prepare(root, run_id, engine.environ, allow_dirty=allow_dirty)


@contextmanager
def open_session(
    engine: Engine, goal: Goal, run_id: str, journal: Journal | None, spec: RunSpec
) -> Iterator[Session]:
    """The session of one run of ``engine``: a new one (``journal`` None) or a resumed one."""
    if not goal.workspace.is_dir():
        raise ConfigError(f"workspace {goal.workspace} is not a directory")
    if engine.allow_dirty and not engine.git:
        raise ConfigError("--allow-dirty only applies to --git runs")
    store = engine.store
    protected = {"zerog's run store": store.path} if store is not None else {}
    root = check_workspace(
        goal.workspace, engine.environ, protected=protected, force=engine.force_workspace
    )
    goal = goal.model_copy(update={"workspace": root})
    checks = compile_checks(goal.checks, where="goal")  # bad checks: before any model call
    name = engine.sandbox.name if engine.sandbox is not None else engine.sandbox_name
    tools = toolchain.for_goal(
        goal,
        engine.environ,
        backend=None if engine.sandbox is not None else name,
        protected=protected,
        off_limits=engine.off_limits,
    )
    # The host's PATH only for the local backend: the isolating ones do not show it.
    env = sandbox_env(
        engine.environ,
        goal.env_allow,
        home=str(root),
        host_path=name == "local",
        extra_path=tools.path,
    )
    env.update(tools.env)
    redactor = engine.redactor or Redactor.for_environment(engine.environ)
    sandbox = engine.sandbox or make_sandbox(
        engine.sandbox_name,
        env,
        environ=engine.environ,
        network=engine.network,
        binds=tools.sandbox_binds(),
    )
    sidecar = (
        make_sidecar(engine.sidecar_name, sandbox, env, environ=engine.environ)
        if _needs_sidecar(checks)
        else None
    )
    git_plan = _git_plan(engine, root, run_id, journal, spec)  # before anything is written
    state_path = root / STATE_DIR
    with open_state(root) as state, _workspace_lock(root, state):
        sinks: list[EventSink] = list(engine.sinks)
        trace: JsonlTrace | None = None
        if engine.trace_dir is not None:
            trace = JsonlTrace(engine.trace_dir / f"{run_id}.jsonl")
        elif engine.write_trace:
            name = f"{run_id}.jsonl"
            with state_subdir(root, state, "runs") as runs:
                trace = JsonlTrace(state_path / "runs" / name, append_text(root, runs, name))
        if trace is not None:
            sinks.insert(0, trace)
        group: GroupCommit | None = None
        if store is not None:
            group = GroupCommit(store, COMMIT_KINDS)
            sinks.insert(0, group)
            if journal is None:
                full_spec = spec.model_copy(
                    update={
                        "goal": goal,
                        "limits": engine.limits,
                        "stuck_after": engine.stuck_after,
                        "sandbox": sandbox.name,
                        "network": engine.network,
                        "sidecar": engine.sidecar_name,
                        "git": GitRequest(allow_dirty=engine.allow_dirty) if git_plan else spec.git,
                    }
                )
                store.create_run(
                    run_id, goal.text, str(root), full_spec.to_recorded(), engine.wall_clock()
                )
        recorder = Recorder(
            run_id, sinks, engine.wall_clock, start_seq=journal.last_seq if journal else 0
        )
        workspace = Workspace(root, state_path / "snapshots")
        try:
            state_hash = flaky_state_hash(workspace)
            action_sandbox: Sandbox = RedactedSandbox(sandbox, redactor)
            if engine.tool_cache is not None:  # actions only: checks always really run
                action_sandbox = engine.tool_cache.wrap(action_sandbox, env, lambda _: state_hash())
            yield Session(
                run_id=run_id,
                goal=goal,
                checks=checks,
                tools=tools,
                redactor=redactor,
                sandbox=sandbox,
                action_sandbox=action_sandbox,
                sidecar=sidecar,
                git_plan=git_plan,
                recorder=recorder,
                workspace=workspace,
                state_hash=state_hash,
                trace=trace,
            )
        except Exception:
            if group is not None:
                group.commit()  # what a run that ended in an error still holds
            raise
        finally:
            if trace is not None:
                trace.close()
