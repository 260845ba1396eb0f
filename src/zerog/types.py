"""Plain data that flows through the loop: goals, budgets, plans, actions, observations.

Everything here is a frozen pydantic model, so the same classes validate model output
at the edge, serialize into traces, and stay immutable while the loop passes them on.
"""

from __future__ import annotations

import ast
import enum
import re
from pathlib import Path, PurePosixPath
from typing import Annotated, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    field_validator,
    model_validator,
)

MAX_COMMAND_CHARS = 8_000
MAX_FILE_CHARS = 1_000_000
MAX_STEPS = 20
MAX_ACTIONS_PER_STEP = 10
MAX_FILES_PER_STEP = 10


class Frozen(BaseModel):
    """Base for every record: immutable, and unknown fields are an error, not ignored."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class Budget(Frozen):
    """Upper bounds for one run. ``None`` means unbounded (wall time is always bounded)."""

    max_iterations: int = Field(default=5, ge=1, le=1000)
    max_input_tokens: int | None = Field(default=None, ge=1)
    max_output_tokens: int | None = Field(default=None, ge=1)
    max_cost: float | None = Field(default=None, ge=0)
    max_seconds: float = Field(default=900.0, gt=0)


def _workspace_path(value: str) -> str:
    """A relative path that stays inside the workspace (checked again, resolved, at run time)."""
    if "\x00" in value:
        raise ValueError("a path may not contain NUL")
    path = PurePosixPath(value)
    if path.is_absolute() or ".." in path.parts:
        raise ValueError(f"'{value}' leaves the workspace: use a path relative to it, no '..'")
    if str(path) in ("", "."):
        raise ValueError("the path names the workspace itself, not a file in it")
    return str(path)


WorkspacePath = Annotated[
    str, Field(min_length=1, max_length=1_000), AfterValidator(_workspace_path)
]


def _optional_workspace_path(value: str | None) -> str | None:
    return None if value is None else _workspace_path(value)


def _regex(value: str | None) -> str | None:
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value


class CheckBase(Frozen):
    """Fields every check kind has. ``after`` names checks that must finish first (the
    sweep runs everything else in parallel)."""

    name: str = Field(default="", max_length=200)
    timeout: float = Field(default=120.0, gt=0)
    after: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.describe()

    def describe(self) -> str:
        raise NotImplementedError


class CommandCheck(CheckBase):
    """A shell command that must exit 0 inside the workspace."""

    kind: Literal["command"] = "command"
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)

    def describe(self) -> str:
        return self.command


class TestsCheck(CheckBase):
    """A test suite that must pass, its failures known by name from a junit XML report.

    Without ``junit`` the command must accept ``--junitxml=PATH`` (pytest does): the sweep
    appends it. With ``junit`` the command writes that report itself (a workspace path).
    """

    __test__ = False  # not a pytest test class, whatever its name says

    kind: Literal["tests"] = "tests"
    command: str = Field(default="python3 -m pytest -q", min_length=1, max_length=MAX_COMMAND_CHARS)
    junit: str | None = Field(default=None, max_length=1_000)

    _junit_path = field_validator("junit")(_optional_workspace_path)

    def describe(self) -> str:
        return self.command


class AssertsCheck(CheckBase):
    """A workspace test script of plain ``assert`` statements, run as ``python3 path``
    would be; a failing assert is explained with the values of its parts
    (:mod:`zerog.validate.asserts`)."""

    kind: Literal["asserts"] = "asserts"
    path: str = Field(min_length=1, max_length=1_000)

    _path = field_validator("path")(_workspace_path)

    @field_validator("path")
    @classmethod
    def _python(cls, value: str) -> str:
        if PurePosixPath(value).suffix != ".py":
            raise ValueError(f"a test script must be a .py file, not {value!r}")
        return value

    def describe(self) -> str:
        return f"python3 {self.path}"


class OutputCheck(CheckBase):
    """A command whose output (``stream``) matches ``matches`` and/or does not match
    ``not_matches`` (searched like grep: ``^`` and ``$`` match at each line). Its exit
    status counts only when ``exit_code`` is given."""

    kind: Literal["output"] = "output"
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)
    matches: str | None = Field(default=None, max_length=10_000)
    not_matches: str | None = Field(default=None, max_length=10_000)
    stream: Literal["stdout", "stderr", "both"] = "both"
    exit_code: int | None = None

    _patterns = field_validator("matches", "not_matches")(_regex)

    @model_validator(mode="after")
    def _one_pattern(self) -> OutputCheck:
        if self.matches is None and self.not_matches is None:
            raise ValueError("give 'matches' or 'not_matches' (or both)")
        return self

    def describe(self) -> str:
        parts = [self.command]
        if self.matches is not None:
            parts.append(f"~ /{self.matches}/")
        if self.not_matches is not None:
            parts.append(f"!~ /{self.not_matches}/")
        return " ".join(parts)


class FileCheck(CheckBase):
    """A workspace file that exists (or, with ``exists = false``, does not), optionally
    containing the text ``contains`` and/or a match of the regex ``matches``."""

    kind: Literal["file"] = "file"
    path: str = Field(min_length=1, max_length=1_000)
    exists: bool = True
    contains: str | None = Field(default=None, max_length=100_000)
    matches: str | None = Field(default=None, max_length=10_000)

    _path = field_validator("path")(_workspace_path)
    _pattern = field_validator("matches")(_regex)

    @model_validator(mode="after")
    def _consistent(self) -> FileCheck:
        if not self.exists and (self.contains is not None or self.matches is not None):
            raise ValueError("'contains' and 'matches' need 'exists = true'")
        return self

    def describe(self) -> str:
        if not self.exists:
            return f"{self.path} does not exist"
        if self.contains is not None:
            return f"{self.path} contains {self.contains!r}"
        if self.matches is not None:
            return f"{self.path} matches /{self.matches}/"
        return f"{self.path} exists"


class SchemaCheck(CheckBase):
    """A JSON or YAML workspace file that validates against a JSON schema. ``format``
    defaults to YAML for ``.yaml``/``.yml`` files and JSON otherwise."""

    kind: Literal["schema"] = "schema"
    path: str = Field(min_length=1, max_length=1_000)
    schema_: dict[str, JsonValue] = Field(alias="schema")
    format: Literal["json", "yaml"] | None = None

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)

    _path = field_validator("path")(_workspace_path)

    @property
    def file_format(self) -> Literal["json", "yaml"]:
        if self.format is not None:
            return self.format
        return "yaml" if self.path.endswith((".yaml", ".yml")) else "json"

    def describe(self) -> str:
        return f"{self.path} matches its schema"


class PredicateCheck(CheckBase):
    """Python over the workspace files (the workspace is the working directory), run in
    the validation sidecar. It passes when it runs without an exception and its last
    expression, if it ends with one, is true: ``Path("out.txt").read_text() == "42"``."""

    kind: Literal["predicate"] = "predicate"
    python: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)

    @field_validator("python")
    @classmethod
    def _parses(cls, value: str) -> str:
        try:
            ast.parse(value, "<predicate>")
        except SyntaxError as exc:
            raise ValueError(f"not valid Python: line {exc.lineno}: {exc.msg}") from None
        return value

    def describe(self) -> str:
        return "; ".join(line.strip() for line in self.python.splitlines() if line.strip())


Check = Annotated[
    CommandCheck
    | TestsCheck
    | AssertsCheck
    | OutputCheck
    | FileCheck
    | SchemaCheck
    | PredicateCheck,
    Field(discriminator="kind"),
]


def protected_pattern(pattern: str) -> str:
    """``pattern`` if it is a usable protected-file pattern (see :mod:`zerog.protect`),
    else a ValueError saying why."""
    if not pattern.strip() or "\x00" in pattern:
        raise ValueError("a protected pattern must be a non-empty path pattern")
    if pattern.startswith("!"):
        raise ValueError(f"{pattern!r}: negated patterns are not supported")
    parts = pattern.strip("/").split("/")
    if ".." in parts or "" in parts:
        raise ValueError(f"{pattern!r}: a pattern may not contain '..' or '//'")
    return pattern


def _mount_path(value: Path | None) -> Path | None:
    if value is None:
        return None
    text = str(value)
    if not text.startswith("/") or ":" in text or "\x00" in text:
        raise ValueError(f"{text!r}: a mount path must be absolute, without ':'")
    return value


class Mount(Frozen):
    """A host path the bwrap sandbox also sees: ``source`` at ``dest`` (by default the
    same path), read-only unless ``mode`` is ``rw``. What may be mounted is checked when a
    run starts (:mod:`zerog.mount_policy`)."""

    source: Path
    dest: Path | None = None
    mode: Literal["ro", "rw"] = "ro"

    _paths = field_validator("source", "dest")(_mount_path)


class Goal(Frozen):
    """What the user wants, where, how success is proven, and what it may cost.

    ``protected`` adds gitignore-style patterns of workspace files the run may not change
    to the default ones (the test files and what configures them: see
    :mod:`zerog.protect`), which ``protect_defaults=False`` turns off (a goal that is to
    write the tests). ``mounts``: host paths the bwrap sandbox also shows, besides the
    toolchain it finds itself (:mod:`zerog.toolchain`).

    ``preflight`` runs the checks once on the untouched workspace before the first model
    call: a run whose checks already pass ends at once (nothing to do), one whose checks
    cannot run at all ends with ``cannot_run`` (see :mod:`zerog.validate.preflight`), and
    otherwise their failure is the first plan's feedback."""

    text: str = Field(min_length=1, max_length=100_000)
    workspace: Path
    checks: tuple[Check, ...] = Field(min_length=1)
    budget: Budget = Budget()
    env_allow: tuple[str, ...] = ()
    protected: tuple[Annotated[str, Field(max_length=1_000)], ...] = Field(
        default=(), max_length=200
    )
    protect_defaults: bool = True
    preflight: bool = True
    mounts: tuple[Mount, ...] = Field(default=(), max_length=50)

    @field_validator("protected")
    @classmethod
    def _patterns(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(protected_pattern(p) for p in value)

    @field_validator("checks", mode="before")
    @classmethod
    def _commands_as_checks(cls, value: object) -> object:
        """Accept plain strings as command checks: ``checks=["pytest -q"]``."""
        if isinstance(value, list | tuple):
            return tuple(
                CommandCheck(command=v)
                if isinstance(v, str)
                else {**v, "kind": "command"}
                if isinstance(v, dict) and "kind" not in v
                else v
                for v in value
            )
        return value


# ---------------------------------------------------------------- actions and plans


class ShellAction(Frozen):
    """Run a shell command with the workspace as working directory."""

    kind: Literal["shell"] = "shell"
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)


class WriteFileAction(Frozen):
    """Create or overwrite a file inside the workspace."""

    kind: Literal["write_file"] = "write_file"
    path: str = Field(min_length=1, max_length=1_000)
    content: str = Field(max_length=MAX_FILE_CHARS)


class EditAction(Frozen):
    """Replace exactly one occurrence of ``search`` with ``replace`` in a workspace file."""

    kind: Literal["edit"] = "edit"
    path: str = Field(min_length=1, max_length=1_000)
    search: str = Field(min_length=1, max_length=MAX_FILE_CHARS)
    replace: str = Field(max_length=MAX_FILE_CHARS)


Action = Annotated[ShellAction | WriteFileAction | EditAction, Field(discriminator="kind")]


def describe_action(action: Action) -> str:
    """A one-line human description of an action (not sanitized: callers do that)."""
    if isinstance(action, ShellAction):
        return f"$ {action.command}"
    if isinstance(action, WriteFileAction):
        return f"write {action.path} ({len(action.content)} chars)"
    return f"edit {action.path}"


StepOp = Literal["run_tests", "install_deps", "format", "read_file", "rerun_check", "repeat_fix"]


class Step(Frozen):
    """One checklist item. ``check`` is an optional shell command proving the step is done.

    A planner may inline ``actions`` when they are obvious; the worker is then not asked.
    ``op`` optionally names a routine step (``target``: its file, check or command), which a
    router may carry out without the worker (see ``zerog.router``).
    """

    intent: str = Field(min_length=1, max_length=2_000)
    check: str | None = Field(default=None, max_length=MAX_COMMAND_CHARS)
    actions: tuple[Action, ...] = Field(default=(), max_length=MAX_ACTIONS_PER_STEP)
    op: StepOp | None = None
    target: str | None = Field(default=None, max_length=1_000)
    # Files whose new content the worker asks for as code (zerog.worker.code), file by
    # file, before the step's actions run; empty once the step's actions are resolved.
    files: tuple[WorkspacePath, ...] = Field(default=(), max_length=MAX_FILES_PER_STEP)


class Plan(Frozen):
    """The planner's checklist."""

    steps: tuple[Step, ...] = Field(min_length=1, max_length=MAX_STEPS)


class StepOutline(Frozen):
    """One step as the planner's JSON gives it: intents, commands and file names, no code.
    The code of ``files`` is asked for afterwards, as fenced blocks (zerog.blocks)."""

    intent: str = Field(min_length=1, max_length=2_000)
    files: tuple[WorkspacePath, ...] = Field(default=(), max_length=MAX_FILES_PER_STEP)
    commands: tuple[Annotated[str, Field(min_length=1, max_length=MAX_COMMAND_CHARS)], ...] = Field(
        default=(), max_length=MAX_ACTIONS_PER_STEP
    )
    check: str | None = Field(default=None, max_length=MAX_COMMAND_CHARS)
    op: StepOp | None = None
    target: str | None = Field(default=None, max_length=1_000)


class Outline(Frozen):
    """The JSON the planner's answer is constrained to."""

    steps: tuple[StepOutline, ...] = Field(min_length=1, max_length=MAX_STEPS)


class StepReply(StepOutline):
    """A step of a planner's answer: an outline, or a step that already carries its
    actions (a script's plan, an older recording)."""

    actions: tuple[Action, ...] = Field(default=(), max_length=MAX_ACTIONS_PER_STEP)


class PlanReply(Frozen):
    """What a planner's answer may be: :class:`Outline` steps, or steps with actions."""

    steps: tuple[StepReply, ...] = Field(min_length=1, max_length=MAX_STEPS)


class StepActions(Frozen):
    """The worker's answer for one step."""

    actions: tuple[Action, ...] = Field(min_length=1, max_length=MAX_ACTIONS_PER_STEP)


# ---------------------------------------------------------------- results


class Status(enum.StrEnum):
    """How one sandboxed action ended."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"
    OUTPUT_LIMIT = "output_limit"
    EXCEPTION = "exception"
    CPU_LIMIT = "cpu_limit"
    MEMORY_LIMIT = "memory_limit"
    PROCESS_LIMIT = "process_limit"
    FILE_LIMIT = "file_limit"  # one file grew past Limits.max_file_bytes
    DISK_LIMIT = "disk_limit"  # the command consumed more than Limits.max_disk_bytes


class Observation(Frozen):
    """What the sandbox saw. Text fields are already decoded, bounded and sanitized."""

    status: Status
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    truncated: bool = False
    cached: bool = False  # served from the tool cache: the command did not run again

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS


class FailedTest(Frozen):
    """One failed or errored test case of a test-suite check, known by name."""

    name: str
    outcome: Literal["failed", "error"] = "failed"
    message: str = ""
    details: str = ""


class CheckResult(Frozen):
    name: str
    passed: bool
    observation: Observation
    flaky: bool = False  # failed, then passed on an immediate re-run of an unchanged workspace
    failed_tests: tuple[FailedTest, ...] = ()


class Verdict(Frozen):
    passed: bool
    results: tuple[CheckResult, ...]

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)

    @property
    def flaky(self) -> tuple[CheckResult, ...]:
        """Checks that passed only on a re-run: reported, not counted as failures."""
        return tuple(r for r in self.results if r.flaky)


class Usage(Frozen):
    """Token counts of one or more model calls."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            input_tokens=self.input_tokens + other.input_tokens,
            output_tokens=self.output_tokens + other.output_tokens,
            cached_tokens=self.cached_tokens + other.cached_tokens,
        )


class PhaseSpend(Frozen):
    """What the model calls of one phase (plan, act, ...) cost."""

    calls: int = 0
    usage: Usage = Usage()
    cost: float = 0.0


class RunStatus(enum.StrEnum):
    """How a whole run ended. Only SUCCESS means the goal's checks passed."""

    SUCCESS = "success"
    MAX_ITERATIONS = "max_iterations"
    MAX_INPUT_TOKENS = "max_input_tokens"
    MAX_OUTPUT_TOKENS = "max_output_tokens"
    MAX_COST = "max_cost"
    MAX_TIME = "max_time"
    STUCK = "stuck"
    MODEL_ERROR = "model_error"
    INTERRUPTED = "interrupted"
    CANNOT_RUN = "cannot_run"  # the preflight found checks that cannot run in the sandbox


class CannotRun(Frozen):
    """A check that cannot run at all where the run's checks run (found by the preflight):
    the line of its output that shows why, and what to do about it."""

    check: str  # the check's label
    cause: str  # one line of its output, sanitized
    fix: str


class FileChanges(Frozen):
    """What a run changed in its workspace, start to final state (``.zerog/`` aside).

    Each list holds the first paths of its kind in path order, at most ``LISTED``; the
    totals count them all. Directories are listed only when nothing below them is.
    """

    LISTED: ClassVar[int] = 100

    added: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    added_total: int = 0
    changed_total: int = 0
    removed_total: int = 0

    @property
    def total(self) -> int:
        return self.added_total + self.changed_total + self.removed_total


class GitOutcome(Frozen):
    """What ``--git`` did at the end of a run: the branch it made and the commit on it."""

    status: Literal["committed", "skipped", "failed"]
    branch: str  # the branch made (or that would have been): zerog/<run id>
    base: str  # the commit the user's branch pointed at when the run started
    user_branch: str  # the user's branch, never changed (e.g. main)
    commit: str | None = None  # the run's commit, when one was made
    message: str = ""  # why nothing was committed, or what failed


class RunResult(Frozen):
    run_id: str
    status: RunStatus
    reason: str
    iterations: int
    usage: Usage
    cost: float
    duration: float
    verdict: Verdict | None = None
    trace_path: Path | None = None
    phases: dict[str, PhaseSpend] = Field(default_factory=dict)
    models: dict[str, PhaseSpend] = Field(default_factory=dict)  # by the model that answered
    cache_hits: dict[str, int] = Field(default_factory=dict)  # kind -> answers from a cache
    files: FileChanges | None = None  # None: the run has no final snapshot to compare
    git: GitOutcome | None = None  # with --git
    cannot_run: tuple[CannotRun, ...] = ()  # status cannot_run: the checks and the fixes

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCESS
