"""What the API does, without HTTP: validate and confine a submission, queue it, and
describe runs by merging the store (what happened) with the pool (what is queued or
running in this server).

Confinement: a run's workspace must be a directory strictly under the workspaces root
(symlinks resolved), and may not be, hold or lie inside the workspace of another run that
is queued or running here (:func:`zerog.serve.jobs.overlap`; the worker checks the path
again, link by link, when the run starts: :mod:`zerog.serve.confine`); a
``scripted:FILE`` or ``local:FILE.gguf`` model file must be under it too;
``openai-compatible:URL`` models (the server would call any URL) and the unisolated
``local`` sandbox are refused unless the server was started allowing them.

Budgets: a run may not ask for more than the server's ceilings (:class:`Ceilings`); a
limit it leaves out is set to the ceiling.

What the API answers names host paths only as :class:`~zerog.hostpaths.PathMask`
shows them (relative to the root), and shows only runs whose workspace is under the root:
runs of the same store elsewhere on the host (``zerog run`` in a home directory) are not
this server's business.
"""

from __future__ import annotations

import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import get_args

from pydantic import JsonValue, ValidationError

from zerog.changes import shown_path
from zerog.codeplan import CodePlanner
from zerog.diff import FileDiff, diff_of_run
from zerog.errors import ZerogError
from zerog.events import Event
from zerog.hostpaths import PathMask
from zerog.journal import read_journal
from zerog.redact import is_secret_name
from zerog.router.factory import make_router
from zerog.runspec import RunSpec
from zerog.serve.job import JobSpec
from zerog.serve.jobs import Busy, Job, JobState, Pool
from zerog.serve.schema import (
    DiffFile,
    EventOut,
    RunDiff,
    RunRequest,
    RunState,
    RunStrategy,
    RunSummary,
)
from zerog.store import RUNNING, RunRow, Store, StoreError
from zerog.strategies import StrategyOptions
from zerog.types import Budget, Goal
from zerog.validate.compile import compile_checks

MAX_LISTED = 500
MAX_DIFF_CHARS = 2_000_000  # of one run's diff lines; files past it are listed, not shown


class RequestError(Exception):
    """A request the server refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Ceilings:
    """The most a run may ask of this server (None: no ceiling)."""

    max_iterations: int = 20
    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_cost: float | None = None
    max_seconds: float = 3600.0

    def apply(self, budget: Budget, asked: set[str]) -> Budget:
        """``budget`` within the ceilings: a limit above one is refused if the request
        set it (``asked``; unbounded counts as above), else lowered to the ceiling."""
        lowered: dict[str, float | int] = {}
        for name in Budget.model_fields:
            self._fit(name, budget, asked, lowered)
        return budget.model_copy(update=lowered)

    def _fit(
        self, name: str, budget: Budget, asked: set[str], lowered: dict[str, float | int]
    ) -> None:
        ceiling: float | int | None = getattr(self, name, None)
        value: float | int | None = getattr(budget, name)
        if ceiling is None or (value is not None and value <= ceiling):
            return
        if name in asked:
            shown = "unbounded" if value is None else f"{value:g}"
            raise RequestError(
                422, f"budget.{name}: {shown} is above this server's maximum of {ceiling:g}"
            )
        lowered[name] = ceiling


@dataclass(frozen=True)
class Policy:
    """What submissions may ask for."""

    workspaces: Path  # resolved
    allow_local_sandbox: bool = False
    allow_model_urls: bool = False
    ceilings: Ceilings = field(default_factory=Ceilings)


def _confined(root: Path, relative: str, what: str) -> Path:
    if "\x00" in relative:
        raise RequestError(422, f"{what}: may not contain NUL")
    candidate = Path(relative)
    try:
        path = (candidate if candidate.is_absolute() else root / candidate).resolve()
    except (OSError, RuntimeError):  # a name too long, a symlink loop
        raise RequestError(422, f"{what}: cannot be resolved") from None
    if path == root or not path.is_relative_to(root):
        raise RequestError(422, f"{what}: must be under the workspaces root")
    return path


def _is(test: Callable[[], bool]) -> bool:
    """A file-type test that says no instead of raising (e.g. a name too long)."""
    try:
        return test()
    except OSError:
        return False


def _strategy(request: RunStrategy, root: Path, policy: Policy) -> StrategyOptions:
    """The request's strategy, checked, its models confined as the run's model is."""
    options = StrategyOptions(
        answer_file=request.answer_file,
        escalate=tuple(request.escalate),
        escalate_after=request.escalate_after,
        unsure_tokens=request.unsure_tokens,
    )
    try:
        options.check()
        if options.answer_file is not None:
            CodePlanner(options.answer_file)  # refuses a path outside the workspace
    except ZerogError as exc:
        raise RequestError(422, f"strategy: {exc}") from None
    return _confined_strategy(options, root, policy)


def _router_file(router: str, path: str | None, root: Path) -> Path | None:
    """The router file, confined to ``root`` and readable now (a bad one is a 422)."""
    if path is None:
        if router == "compiled":
            raise RequestError(422, "router_file: the compiled router needs a router file")
        return None
    if router != "compiled":
        raise RequestError(422, "router_file: only read with router compiled")
    confined = _confined(root, path, "router_file")
    try:
        make_router(router, router_file=confined)
    except ZerogError as exc:
        raise RequestError(422, f"router_file: {exc}") from None
    return confined


def _confined_strategy(options: StrategyOptions, root: Path, policy: Policy) -> StrategyOptions:
    escalate = tuple(confine_model(spec, root, policy) for spec in options.escalate)
    return options.model_copy(update={"escalate": escalate})


def confine_model(spec: str, root: Path, policy: Policy) -> str:
    """The model spec with any file it names resolved and confined to ``root``."""
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        path = _confined(root, rest, "model")
        if not _is(path.is_file):
            raise RequestError(422, f"model: script {rest!r} is not a file under the root")
        return f"scripted:{path}"
    if kind == "local" and rest.endswith(".gguf"):
        path = _confined(root, rest, "model")
        return f"local:{path}"
    if kind == "openai-compatible" and not policy.allow_model_urls:
        raise RequestError(
            422, "model: openai-compatible URLs are refused by this server (--allow-model-urls)"
        )
    if kind in ("local", "local-1.5b", "openai", "anthropic", "openai-compatible"):
        return spec
    raise RequestError(
        422,
        "model: expected local, local:1.5b, openai:MODEL, anthropic:MODEL, scripted:FILE "
        "or openai-compatible:URL#MODEL",
    )


def _status(row: RunRow | None, job: Job | None, finished: str | None) -> RunState:
    if job is not None and job.state is JobState.QUEUED:
        return "queued"
    if job is not None and job.state is JobState.CANCELLED:
        return "cancelled"
    if row is None:
        if job is not None and job.state is JobState.FAILED:
            return "failed_to_start"
        if job is not None and job.state is JobState.RUNNING:
            return "starting"
        return "cancelled" if job is not None and job.cancel_requested else "failed_to_start"
    for state in get_args(RunState):
        if finished == state:
            return state  # type: ignore[no-any-return]
    if row.status == RUNNING and job is not None and job.state is JobState.RUNNING:
        return "running"
    return "unfinished"


def _mode(mode: int | None) -> str | None:
    return None if mode is None else f"{mode:06o}"


def _diff_file(item: FileDiff) -> DiffFile:
    return DiffFile(
        path=shown_path(item.path),
        status=item.status,
        kind=item.kind,
        old_mode=_mode(item.old_mode),
        new_mode=_mode(item.new_mode),
        lines=list(item.lines),
        note=item.note,
        added=item.added,
        removed=item.removed,
    )


class Service:
    """The API's operations. The store is shared by threads, so reads hold a lock."""

    def __init__(
        self,
        store: Store,
        pool: Pool,
        policy: Policy,
        *,
        wall_clock: Callable[[], float],
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:12],
        home: str | None = None,
    ) -> None:
        self.store = store
        self.pool = pool
        self.policy = policy
        names = {str(store.path.resolve().parent): "<store>", **({home: "~"} if home else {})}
        self.paths = PathMask(policy.workspaces, names)
        self._clock = wall_clock
        self._new_id = new_id
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- submitting

    def submit(self, request: RunRequest) -> RunSummary:
        root = self.policy.workspaces
        workspace = _confined(root, request.workspace, "workspace")
        if not _is(workspace.is_dir):
            raise RequestError(422, f"workspace: {request.workspace!r} is not a directory")
        if request.sandbox == "local" and not self.policy.allow_local_sandbox:
            raise RequestError(
                422, "sandbox: local runs commands without isolation; this server refuses it"
            )
        model = confine_model(request.model, root, self.policy)
        strategy = _strategy(request.strategy, root, self.policy)
        router_file = _router_file(request.router, request.router_file, root)
        for name in request.env:
            if is_secret_name(name) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,127}", name):
                raise RequestError(422, f"env: {name!r} is refused (not a name, or a secret)")
        budget = self.policy.ceilings.apply(request.budget, request.budget.model_fields_set)
        try:
            goal = Goal.model_validate(
                {
                    "text": request.text,
                    "workspace": workspace,
                    "checks": request.checks,
                    "budget": budget,
                    "env_allow": request.env,
                    "protected": request.protected,
                    "protect_defaults": request.protect_defaults,
                    "preflight": request.preflight,
                }
            )
            compile_checks(goal.checks, where="goal")
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "goal"
            raise RequestError(422, f"{where}: {first['msg']}") from None
        except ZerogError as exc:
            raise RequestError(422, str(exc)) from None
        run_id = self._new_id()
        spec = JobSpec(
            action="run",
            run_id=run_id,
            store=self.store.path,
            model=model,
            base_dir=root,
            goal=goal,
            sandbox=request.sandbox,
            sidecar=request.sidecar,
            timeout=request.timeout,
            stuck_after=request.stuck_after,
            strategy=strategy,
            router=request.router,
            router_file=router_file,
        )
        job = Job(
            id=run_id,
            action="run",
            payload=spec.model_dump_json(),
            workspace=workspace,
            goal=request.text,
            model=request.model,
            created=self._clock(),
        )
        self._submit(job)
        return self.summary(run_id)

    def resume(self, run_id: str) -> RunSummary:
        row = self._find(run_id)
        job = self.pool.get(row.id)
        if job is not None and job.active:
            raise RequestError(409, f"run {row.id} is already {job.state.value}")
        finished = self._journal_finished(row.id)
        if finished:
            raise RequestError(409, f"run {row.id} already finished ({finished})")
        workspace = Path(row.workspace)
        if not workspace.resolve().is_relative_to(self.policy.workspaces):  # now a link out
            raise RequestError(403, "the run's workspace is outside this server's root")
        try:
            recorded = RunSpec.from_recorded(row.spec)
        except StoreError as exc:
            raise RequestError(409, str(exc)) from None
        budget = recorded.goal.budget if recorded.goal is not None else Budget()
        try:
            self.policy.ceilings.apply(budget, set(Budget.model_fields))
        except RequestError as exc:
            raise RequestError(409, f"the run's {exc.message}") from None
        if recorded.sandbox == "local" and not self.policy.allow_local_sandbox:
            raise RequestError(409, "the run used the local sandbox, which this server refuses")
        spec = JobSpec(
            action="resume",
            run_id=row.id,
            store=self.store.path,
            model=confine_model(recorded.model, self.policy.workspaces, self.policy),
            base_dir=self.policy.workspaces,
            strategy=_confined_strategy(recorded.strategy, self.policy.workspaces, self.policy),
            router=recorded.router or "off",
            router_file=_router_file(
                recorded.router or "off", recorded.router_file or None, self.policy.workspaces
            ),
        )
        job = Job(
            id=row.id,
            action="resume",
            payload=spec.model_dump_json(),
            workspace=workspace,
            goal=row.goal,
            model=recorded.model,
            created=row.created,
        )
        self._submit(job)
        return self.summary(row.id)

    def _submit(self, job: Job) -> None:
        try:
            self.pool.submit(job)  # QueueFull: the API answers 429
        except Busy as exc:
            raise RequestError(409, str(exc)) from None

    def cancel(self, run_id: str) -> RunSummary:
        job = self.pool.get(run_id)
        if job is None:
            self._find(run_id)  # 404 for an unknown id
            raise RequestError(409, f"run {run_id} is not queued or running in this server")
        row = self._row(run_id)
        if row is not None and row.status != RUNNING:
            raise RequestError(409, f"run {run_id} already finished ({row.status})")
        if self.pool.cancel(run_id) is None:
            raise RequestError(409, f"run {run_id} is not queued or running")
        return self.summary(run_id)

    # ---------------------------------------------------------------- reading

    def _find(self, run_id: str) -> RunRow:
        row = self._row(run_id)
        if row is None:
            raise RequestError(404, f"no run {run_id!r}")
        return row

    def _row(self, run_id: str) -> RunRow | None:
        """The run with exactly this id (no prefix matching), if the store has it and its
        workspace is under the root."""
        with self._lock:
            try:
                row = self.store.find(run_id)
            except StoreError:
                return None
        return row if row.id == run_id and self._ours(row) else None

    def _ours(self, row: RunRow) -> bool:
        return Path(row.workspace).is_relative_to(self.policy.workspaces)

    def _journal_finished(self, run_id: str) -> str | None:
        return read_journal(self.events(run_id)).finished

    def diff(self, run_id: str) -> RunDiff:
        """What the run changed (read from its snapshots; 409 if they cannot be)."""
        row = self._row(run_id)
        if row is None:
            if self.pool.get(run_id) is not None:
                raise RequestError(409, f"run {run_id} has not started: it changed nothing yet")
            raise RequestError(404, f"no run {run_id!r}")
        events = self.events(row.id)
        try:
            found = diff_of_run(row, events, max_total=MAX_DIFF_CHARS)
        except ZerogError as exc:
            raise RequestError(409, str(exc)) from None
        return RunDiff(
            run=found.run_id,
            final=found.final,
            note=found.note,
            truncated=found.truncated,
            files=[_diff_file(f) for f in found.files],
        )

    def events(self, run_id: str, after: int = 0) -> list[Event]:
        with self._lock:
            return self.store.events(run_id, after=after)

    def over(self, run_id: str) -> bool:
        """Whether this server ran ``run_id`` and its job is over (events all written)."""
        job = self.pool.get(run_id)
        return job is not None and job.over.is_set()

    def summary(self, run_id: str) -> RunSummary:
        job = self.pool.get(run_id)
        row = self._row(run_id)
        if row is None and job is None:
            raise RequestError(404, f"no run {run_id!r}")
        return self._summary(row, job)

    def _summary(self, row: RunRow | None, job: Job | None) -> RunSummary:
        finished = row.status if row is not None and row.status != RUNNING else None
        status = _status(row, job, finished)
        active = job is not None and job.active and finished is None
        if row is None:
            if job is None:
                raise ValueError("a run summary needs the run's row or its job")
            return RunSummary(
                id=job.id,
                status=status,
                goal=job.goal,
                workspace=self.paths.text(str(job.workspace)),
                model=job.model,
                iterations=0,
                input_tokens=0,
                output_tokens=0,
                cost=0.0,
                duration=0.0,
                created=job.created,
                updated=job.created,
                reason=self.paths.text(job.error),
                active=active,
            )
        reason = row.reason or (job.error if job is not None else "")
        return RunSummary(
            id=row.id,
            status=status,
            goal=row.goal,
            workspace=self.paths.text(row.workspace),
            model=self.paths.text(str(row.spec.get("model", ""))),
            iterations=row.iterations,
            input_tokens=row.input_tokens,
            output_tokens=row.output_tokens,
            cost=row.cost,
            duration=row.duration if finished else max(row.updated - row.created, 0.0),
            created=row.created,
            updated=row.updated,
            reason=self.paths.text(reason),
            active=active,
        )

    def runs(self, limit: int) -> list[RunSummary]:
        with self._lock:
            rows = [r for r in self.store.runs(MAX_LISTED) if self._ours(r)][:limit]
        jobs = {j.id: j for j in self.pool.jobs()}
        listed = [self._summary(r, jobs.pop(r.id, None)) for r in rows]
        pending = [
            self._summary(None, j)
            for j in jobs.values()
            if j.action == "run" and j.state is not JobState.DONE and self._row(j.id) is None
        ]
        every = sorted(pending + listed, key=lambda s: s.created, reverse=True)
        return every[:limit]

    def event_out(self, events: list[Event]) -> list[EventOut]:
        return [EventOut(seq=e.seq, ts=e.ts, kind=e.kind, data=self.shown_data(e)) for e in events]

    def shown_data(self, event: Event) -> dict[str, JsonValue]:
        """An event's data as clients see it: host paths shown as :attr:`paths` does."""
        shown = self.paths.json(dict(event.data))  # type: ignore[arg-type]
        return shown if isinstance(shown, dict) else {}
