"""Plain data that flows through the loop: goals, budgets, plans, actions, observations.

Everything here is a frozen pydantic model, so the same classes validate model output
at the edge, serialize into traces, and stay immutable while the loop passes them on.
"""

from __future__ import annotations

import enum
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_COMMAND_CHARS = 8_000
MAX_FILE_CHARS = 1_000_000
MAX_STEPS = 20
MAX_ACTIONS_PER_STEP = 10


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


class CommandCheck(Frozen):
    """A shell command that must exit 0 inside the workspace."""

    kind: Literal["command"] = "command"
    command: str = Field(min_length=1, max_length=MAX_COMMAND_CHARS)
    name: str = ""
    timeout: float = Field(default=120.0, gt=0)

    @property
    def label(self) -> str:
        return self.name or self.command


Check = CommandCheck


class Goal(Frozen):
    """What the user wants, where, how success is proven, and what it may cost."""

    text: str = Field(min_length=1, max_length=100_000)
    workspace: Path
    checks: tuple[Check, ...] = Field(min_length=1)
    budget: Budget = Budget()
    env_allow: tuple[str, ...] = ()

    @field_validator("checks", mode="before")
    @classmethod
    def _commands_as_checks(cls, value: object) -> object:
        """Accept plain strings as command checks: ``checks=["pytest -q"]``."""
        if isinstance(value, list | tuple):
            return tuple(CommandCheck(command=v) if isinstance(v, str) else v for v in value)
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


class Step(Frozen):
    """One checklist item. ``check`` is an optional shell command proving the step is done.

    A planner may inline ``actions`` when they are obvious; the worker is then not asked.
    """

    intent: str = Field(min_length=1, max_length=2_000)
    check: str | None = Field(default=None, max_length=MAX_COMMAND_CHARS)
    actions: tuple[Action, ...] = Field(default=(), max_length=MAX_ACTIONS_PER_STEP)


class Plan(Frozen):
    """The planner's checklist."""

    steps: tuple[Step, ...] = Field(min_length=1, max_length=MAX_STEPS)


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

    @property
    def ok(self) -> bool:
        return self.status is Status.SUCCESS


class CheckResult(Frozen):
    name: str
    passed: bool
    observation: Observation


class Verdict(Frozen):
    passed: bool
    results: tuple[CheckResult, ...]

    @property
    def failures(self) -> tuple[CheckResult, ...]:
        return tuple(r for r in self.results if not r.passed)


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

    @property
    def ok(self) -> bool:
        return self.status is RunStatus.SUCCESS
