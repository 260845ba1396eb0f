"""The API's request and response bodies (pydantic: validated in, documented in OpenAPI)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from zerog.types import Budget, Check

RunState = Literal[
    "queued",
    "starting",
    "running",
    "unfinished",
    "cancelled",
    "failed_to_start",
    "success",
    "max_iterations",
    "max_input_tokens",
    "max_output_tokens",
    "max_cost",
    "max_time",
    "stuck",
    "model_error",
    "interrupted",
    "cannot_run",
]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RunStrategy(Body):
    """How the model answers, as `zerog run`'s strategy options."""

    answer_file: str | None = Field(
        default=None,
        max_length=1_000,
        description="The goal is about this Python file of the workspace: the model answers "
        "with its code instead of a JSON plan.",
    )
    escalate: list[str] = Field(
        default=[],
        max_length=4,
        description="Models to move up to after failed iterations, in order (model specs, "
        "as for model).",
    )
    escalate_after: int = Field(
        default=1, ge=1, le=20, description="Failed iterations of a model before the next."
    )
    unsure_tokens: int | None = Field(
        default=None,
        ge=1,
        le=10_000,
        description="A second opinion from the next model on a passing answer whose code "
        "had this many tokens chosen with probability below one half.",
    )


class RunRequest(Body):
    """A goal to run: the fields of a goal file, plus how to run it."""

    text: str = Field(min_length=1, max_length=100_000, description="What to achieve.")
    workspace: str = Field(
        min_length=1,
        max_length=1_000,
        description="A directory under the server's workspaces root (relative to it).",
    )
    checks: list[Check | str] = Field(
        min_length=1,
        max_length=100,
        description="How success is proven: check objects of any kind, or command strings.",
    )
    budget: Budget = Budget()
    env: list[str] = Field(
        default=[],
        max_length=50,
        description="Environment variables the sandbox and the planner may see.",
    )
    protected: list[Annotated[str, Field(max_length=1_000)]] = Field(
        default=[],
        max_length=200,
        description="Workspace path patterns (gitignore-style) the run may not change, "
        "besides the default ones: put back before every sweep, file actions refused.",
    )
    protect_defaults: bool = Field(
        default=True,
        description="Protect the test files and what configures them (test_*.py, tests/, "
        "conftest.py, pytest.ini, .pth files, ...); false for a goal that writes tests.",
    )
    preflight: bool = Field(
        default=True,
        description="Run the checks once on the untouched workspace before the first model "
        "call: checks that already pass end the run (success, nothing to do), checks that "
        "cannot run at all in the sandbox end it with cannot_run; a failure is the first "
        "plan's feedback.",
    )
    model: str = Field(
        default="local",
        min_length=1,
        max_length=1_000,
        description="Model spec: local, local:1.5b, openai:MODEL, anthropic:MODEL, "
        "scripted:FILE (FILE under the workspaces root), openai-compatible:URL#MODEL "
        "(only if the server allows model URLs).",
    )
    sandbox: Literal["bwrap", "wasm", "local"] | None = Field(
        default=None,
        description="Where actions run (default: bwrap on Linux). local only if the server "
        "allows it.",
    )
    sidecar: Literal["wasm", "sandbox"] = "wasm"
    timeout: float = Field(
        default=120.0, gt=0, le=86_400, description="Seconds one action or check may run."
    )
    stuck_after: int = Field(default=2, ge=1, le=100)
    strategy: RunStrategy = RunStrategy()
    router: Literal["off", "builtin", "compiled"] = Field(
        default="builtin",
        description="Carry out predictable steps without the model, as `zerog run --router`.",
    )
    router_file: str | None = Field(
        default=None,
        max_length=1_000,
        description="With router compiled: a router file under the workspaces root.",
    )


class RunSummary(Body):
    id: str
    status: RunState
    goal: str
    workspace: str
    model: str
    iterations: int
    input_tokens: int
    output_tokens: int
    cost: float
    duration: float
    created: float
    updated: float
    reason: str
    active: bool = Field(description="Queued or running in this server.")


class EventOut(Body):
    seq: int
    ts: float
    kind: str
    data: dict[str, JsonValue]


class RunDetail(Body):
    run: RunSummary
    events: list[EventOut]


class RunList(Body):
    runs: list[RunSummary]


class ErrorBody(Body):
    error: str
    details: list[str] = []


class Health(Body):
    status: Literal["ok"] = "ok"
    workers: int
    queue: int
    auth: bool


class DiffFile(Body):
    """One changed path of a run's workspace."""

    path: str = Field(
        description="Relative to the workspace; control characters shown as escapes (\\x1b)."
    )
    status: Literal["added", "changed", "removed"]
    kind: Literal["file", "link", "dir", "special"] = Field(
        description="What the path is (after the run; before it, if removed)."
    )
    old_mode: str | None = Field(description="git-style mode before the run, e.g. 100644.")
    new_mode: str | None = Field(description="git-style mode after the run.")
    lines: list[str] = Field(
        description="Unified diff hunks: '@@ ... @@' headers, then ' ', '-' or '+' lines "
        "(control characters shown as escapes). Empty when `note` says why."
    )
    note: str = Field(description="Instead of lines: binary, too large, a directory ...")
    added: int
    removed: int


class RunDiff(Body):
    """What a run changed in its workspace, from its first snapshot to its final state."""

    run: str
    final: Literal["snapshot", "live"] = Field(
        description="snapshot: the state the run left; live: the run recorded none (still "
        "going, or killed), so the workspace as it is now."
    )
    note: str
    truncated: int = Field(description="Files whose lines were left out (the diff is long).")
    files: list[DiffFile]
