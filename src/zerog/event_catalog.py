"""The event catalog: one typed model per kind of event a run records.

An :class:`~zerog.events.Event` carries its kind as a string and its data as plain JSON
(that is what the store, the trace and the API hold, byte for byte). :func:`parse` reads
one back as the model of its kind, so that readers (the progress, OpenTelemetry, the
store's summary, the router's history, the dashboard...) match on types instead of
picking at dictionaries::

    match parse(event):
        case RunFinished(status=status):
            ...
        case UnknownEvent():
            ...  # skip it, or show it raw

Events are untrusted input (the store is a file, and may be older or newer than this
code), so :func:`parse` never raises: a kind this catalog does not know, or data that
does not fit its kind's model, comes back as an explicit :class:`UnknownEvent`. A field
an older zerog did not write takes its default, and :meth:`EventModel.to_data` gives
back exactly the fields that were there (a test holds every event a real run writes to
that round trip). ``docs/events.md`` lists the kinds and their fields; a test checks it
against this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, JsonValue, TypeAdapter, ValidationError

from zerog.events import Event
from zerog.models.base import Response
from zerog.models.confidence import Confidence
from zerog.types import (
    Action,
    Budget,
    CannotRun,
    CheckResult,
    FailedTest,
    FileChanges,
    GitOutcome,
    Observation,
    PhaseSpend,
    Step,
    Usage,
)


class EventModel(BaseModel):
    """Base of every event's model: immutable, and a field it does not know makes the
    event unknown (not silently dropped: a round trip would lose it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_data(self) -> dict[str, JsonValue]:
        """The event's data as it was recorded: the fields it was given, as JSON."""
        data: dict[str, JsonValue] = self.model_dump(
            mode="json", exclude_unset=True, exclude={"kind"}
        )
        return data


# ---------------------------------------------------------------------- parts of events


class ObservationData(EventModel):
    """What an action or a check's command did (an :class:`~zerog.types.Observation` in
    its recorded form)."""

    status: str = ""  # a :class:`~zerog.types.Status` value
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    truncated: bool = False
    cached: bool = False

    def to_observation(self) -> Observation | None:
        """The observation itself, or None when the record is not a whole one."""
        try:
            return Observation.model_validate(
                {k: v for k, v in self.model_dump().items() if k in Observation.model_fields}
            )
        except ValidationError:
            return None


class BindRecord(EventModel):
    """A host path the sandbox is shown (``sandbox_binds``)."""

    source: str = ""
    dest: str = ""
    mode: str = "ro"
    why: str = ""


class SkippedRecord(EventModel):
    """A toolchain path that was not shown to the sandbox, and why (``sandbox_binds``)."""

    path: str = ""
    why: str = ""
    reason: str = ""


# ---------------------------------------------------------------------- the run


class RunStarted(EventModel):
    """The run begins: its goal, checks (their labels), budget, model and sandbox."""

    kind: Literal["run_started"] = "run_started"
    goal: str = ""
    workspace: str = ""
    checks: tuple[str, ...] = ()
    budget: Budget | None = None
    model: str = ""
    sandbox: str = ""


class SandboxBinds(EventModel):
    """What the sandbox sees besides the workspace (toolchains), and what it could not."""

    kind: Literal["sandbox_binds"] = "sandbox_binds"
    binds: tuple[BindRecord, ...] = ()
    path: tuple[str, ...] = ()
    env: dict[str, str] = Field(default_factory=dict)
    skipped: tuple[SkippedRecord, ...] = ()


class Resumed(EventModel):
    """A resumed run is live again: ``at`` is the first operation it had no record of."""

    kind: Literal["resumed"] = "resumed"
    at: str = ""
    iteration: int = 0


class SnapshotTaken(EventModel):
    """A snapshot of the workspace: the ``base`` one, a ``passing`` answer that was
    doubted, or the ``final`` one. ``neutralized`` lists paths whose setuid, setgid or
    sticky bits were dropped."""

    kind: Literal["snapshot"] = "snapshot"
    role: str = ""  # "base", "passing" or "final"
    iteration: int | None = None  # role "passing" only
    snapshot: str = ""
    files: int | None = None
    neutralized: tuple[str, ...] = ()
    note: str = ""


class GitPrepared(EventModel):
    """What a ``--git`` run pinned before it started (a ``GitPlan``)."""

    kind: Literal["git_prepared"] = "git_prepared"
    top: str = ""
    git_dir: str = ""
    prefix: str = ""
    user_branch: str = ""
    head: str = ""
    branch: str = ""
    dirty: bool = False


class GitCommitted(EventModel):
    """What a ``--git`` run did with its result (a :class:`~zerog.types.GitOutcome`)."""

    kind: Literal["git_commit"] = "git_commit"
    status: str = ""  # "committed", "skipped" or "failed"
    branch: str = ""
    base: str = ""
    user_branch: str = ""
    commit: str | None = None
    message: str = ""

    def outcome(self) -> GitOutcome | None:
        """The outcome itself, or None when the record is not a whole one."""
        try:
            return GitOutcome.model_validate(self.to_data())
        except ValidationError:
            return None


class RunFinished(EventModel):
    """The run ends: its status and reason, and what it spent."""

    kind: Literal["run_finished"] = "run_finished"
    status: str = ""  # a :class:`~zerog.types.RunStatus` value
    reason: str = ""
    iterations: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    duration: float = 0.0
    phases: dict[str, PhaseSpend] = Field(default_factory=dict)
    models: dict[str, PhaseSpend] = Field(default_factory=dict)
    cache_hits: dict[str, int] = Field(default_factory=dict)
    files: FileChanges | None = None
    git: GitOutcome | None = None
    cannot_run: tuple[CannotRun, ...] = ()  # written only when a check cannot run


# ---------------------------------------------------------------------- an iteration


class IterationStarted(EventModel):
    """An iteration (plan, act, validate) begins."""

    kind: Literal["iteration_started"] = "iteration_started"
    iteration: int = 0


class PlanMade(EventModel):
    """The plan of an iteration: its steps."""

    kind: Literal["plan"] = "plan"
    iteration: int = 0
    steps: tuple[Step, ...] = ()


class PlanCacheUsed(EventModel):
    """The plan cache was looked up (``hit``/``miss``), ``stored`` to, or an entry was
    ``invalidated``."""

    kind: Literal["plan_cache"] = "plan_cache"
    outcome: str = ""
    entry: int | None = None
    similarity: float | None = None


class Doubted(EventModel):
    """An answer that passed its checks gets a second opinion, and why."""

    kind: Literal["doubt"] = "doubt"
    iteration: int = 0
    reason: str = ""


class RolledBack(EventModel):
    """The workspace was restored to a snapshot (``final``: at the end of the run;
    iteration 0: what the preflight's checks wrote)."""

    kind: Literal["rollback"] = "rollback"
    iteration: int = 0
    final: bool = False
    snapshot: str = ""
    written: int = 0
    removed: int = 0


class FeedbackGiven(EventModel):
    """What the next plan is told of the failure, and how many times in a row it was
    the same (``doubt``: the failure is a second opinion asked for)."""

    kind: Literal["feedback"] = "feedback"
    iteration: int = 0
    text: str = ""
    no_progress: int = 0
    doubt: bool = False  # written only when true


# ---------------------------------------------------------------------- steps and actions


class StepStarted(EventModel):
    """A step of the plan begins."""

    kind: Literal["step_started"] = "step_started"
    iteration: int = 0
    step: int = 0
    intent: str = ""


class RouteDecided(EventModel):
    """The router's decision for a step: ``model`` (ask the worker), ``routed`` (its
    actions, no model call) or ``demoted`` (a routed step failed: undone, the worker is
    asked)."""

    kind: Literal["route"] = "route"
    decision: str = ""
    source: str | None = None  # routed
    actions: int | None = None  # routed: how many
    action_list: tuple[Action, ...] | None = None  # routed
    snapshot: str | None = None  # routed: the workspace before its actions
    reason: str = ""  # model, demoted
    iteration: int | None = None
    step: int | None = None
    router: str = ""
    route: str = ""
    confidence: float = 0.0
    ms: float | None = None  # model, routed
    written: int | None = None  # demoted
    removed: int | None = None  # demoted


class CodeSkipped(EventModel):
    """No code was asked for a file of the step: no action may write it."""

    kind: Literal["code_skipped"] = "code_skipped"
    iteration: int = 0
    step: int = 0
    path: str = ""
    reason: str = ""


class CodeFailed(EventModel):
    """The code of a step's files stayed unusable (or every file was protected)."""

    kind: Literal["code_failed"] = "code_failed"
    iteration: int = 0
    step: int = 0
    reason: str = ""


class ActionRetried(EventModel):
    """A resumed run rolled back an action that was interrupted, to run it again."""

    kind: Literal["action_retried"] = "action_retried"
    iteration: int = 0
    step: int = 0
    index: int = 0
    snapshot: str = ""
    written: int = 0
    removed: int = 0


class ActionStarted(EventModel):
    """An action is about to run (``snapshot``: the workspace before it, durable runs)."""

    kind: Literal["action"] = "action"
    iteration: int = 0
    step: int = 0
    index: int = 0
    action: Action | None = None
    snapshot: str | None = None


class ObservationMade(ObservationData):
    """What an action did (the observation's fields, beside where it ran)."""

    kind: Literal["observation"] = "observation"
    iteration: int = 0
    step: int = 0
    index: int = 0


class StepChecked(EventModel):
    """A step's own check ran."""

    kind: Literal["step_check"] = "step_check"
    iteration: int = 0
    step: int = 0
    command: str = ""
    passed: bool = False
    flaky: bool = False
    observation: ObservationData = ObservationData()


class StepFailed(EventModel):
    """A step failed (``check``: its own check did, written only when true)."""

    kind: Literal["step_failed"] = "step_failed"
    iteration: int = 0
    step: int = 0
    check: bool = False


class StepDone(EventModel):
    """A step's actions and check succeeded."""

    kind: Literal["step_done"] = "step_done"
    iteration: int = 0
    step: int = 0


class ModelCalled(EventModel):
    """One model call: what it was for, what it answered and spent (``saved_*``: what
    a cache hit's original call spent)."""

    kind: Literal["model_call"] = "model_call"
    call: int = 0
    purpose: str = ""
    model: str = ""
    request: str = ""  # a fingerprint of what was asked
    text: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    cost: float = 0.0
    cache_hit: bool = False
    finish: str = "stop"
    attempt: int = 0
    confidence: Confidence | None = None
    saved_input_tokens: int | None = None
    saved_output_tokens: int | None = None
    saved_seconds: float | None = None
    duration: float = 0.0

    def to_response(self) -> Response:
        """The answer as a resumed run replays it: text, usage, cost, model, cache hit and
        confidence (not ``finish`` nor the ``saved_*`` figures)."""
        return Response(
            text=self.text,
            usage=Usage(
                input_tokens=self.input_tokens,
                output_tokens=self.output_tokens,
                cached_tokens=self.cached_tokens,
            ),
            cost=self.cost,
            model=self.model,
            cache_hit=self.cache_hit,
            confidence=self.confidence,
        )


# ---------------------------------------------------------------------- validation


class PreflightDone(EventModel):
    """What the checks on the untouched workspace concluded: ``passed``, ``failed``
    (``feedback`` goes to the first plan) or ``cannot_run``."""

    kind: Literal["preflight"] = "preflight"
    outcome: str = ""
    cannot_run: tuple[CannotRun, ...] = ()
    feedback: str = ""


class ValidationStarted(EventModel):
    """A validation sweep begins (iteration 0: the preflight)."""

    kind: Literal["validation_started"] = "validation_started"
    iteration: int = 0


class ProtectedRestored(EventModel):
    """Protected paths were put back before the checks (the first 50, and how many)."""

    kind: Literal["protected_restored"] = "protected_restored"
    iteration: int = 0
    paths: tuple[str, ...] = ()
    count: int = 0


class CheckDone(EventModel):
    """One of the goal's checks finished (redacted)."""

    kind: Literal["check"] = "check"
    iteration: int = 0
    name: str = ""
    passed: bool = False
    flaky: bool = False
    failed_tests: tuple[FailedTest, ...] = ()
    observation: ObservationData = ObservationData()

    def to_result(self) -> CheckResult | None:
        """The check's result (as a resumed run replays it), or None when the record is
        not a whole one (its observation has no status)."""
        observation = self.observation.to_observation()
        if observation is None:
            return None
        return CheckResult(
            name=self.name,
            passed=self.passed,
            flaky=self.flaky,
            failed_tests=self.failed_tests,
            observation=observation,
        )


class VerdictReached(EventModel):
    """The sweep's verdict: the names of the checks that failed, and of the flaky ones."""

    kind: Literal["verdict"] = "verdict"
    iteration: int = 0
    passed: bool = False
    failures: tuple[str, ...] = ()
    flaky: tuple[str, ...] = ()


AnyEvent = Annotated[
    RunStarted
    | SandboxBinds
    | Resumed
    | SnapshotTaken
    | GitPrepared
    | GitCommitted
    | RunFinished
    | IterationStarted
    | PlanMade
    | PlanCacheUsed
    | Doubted
    | RolledBack
    | FeedbackGiven
    | StepStarted
    | RouteDecided
    | CodeSkipped
    | CodeFailed
    | ActionRetried
    | ActionStarted
    | ObservationMade
    | StepChecked
    | StepFailed
    | StepDone
    | ModelCalled
    | PreflightDone
    | ValidationStarted
    | ProtectedRestored
    | CheckDone
    | VerdictReached,
    Field(discriminator="kind"),
]

_ANY: TypeAdapter[AnyEvent] = TypeAdapter(AnyEvent)


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """An event this catalog cannot read: its kind is not known here, or its data does
    not fit the kind's model. Readers skip it or show it raw; they never guess."""

    kind: str
    data: object  # as recorded
    problem: str  # why it is unknown, in one line


def event_models() -> tuple[type[EventModel], ...]:
    """The model of every kind, in the catalog's order."""
    union = get_args(AnyEvent)[0]
    models: tuple[type[EventModel], ...] = get_args(union)
    return models


def kind_of(model: type[EventModel]) -> str:
    """The kind string of an event model (``kind_of(RunFinished) == "run_finished"``)."""
    return str(model.model_fields["kind"].default)


def parse_data(kind: str, data: object) -> AnyEvent | UnknownEvent:
    """The typed form of one event's kind and data; never raises."""
    if not isinstance(data, Mapping):
        return UnknownEvent(kind, data, "its data is not an object")
    if "kind" in data:
        return UnknownEvent(kind, data, "its data has a field named kind")
    try:
        return _ANY.validate_python({**data, "kind": kind})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        if first["type"] == "union_tag_invalid":
            return UnknownEvent(kind, data, f"no event kind {kind!r} in this zerog")
        return UnknownEvent(kind, data, f"{where}: {first['msg']}")


def parse(event: Event) -> AnyEvent | UnknownEvent:
    """The typed form of ``event`` (see :func:`parse_data`)."""
    return parse_data(event.kind, event.data)
