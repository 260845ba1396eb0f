"""zerog: a production engine for LLM reasoning loops.

A goal goes in; a planner splits it into a checklist; a worker turns each step into
actions; the actions run in a sandbox; a validation sweep proves the result; on failure
the workspace is rolled back and the planner tries again, within a budget.
"""

from __future__ import annotations

from zerog.engine.loop import Engine
from zerog.errors import ConfigError, ModelError, ModelOutputError, ZerogError
from zerog.models.base import Message, Model, Request, Response
from zerog.models.scripted import ScriptedModel
from zerog.runspec import RunSpec
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.local import LocalSandbox
from zerog.strategies import StrategyOptions
from zerog.types import (
    AssertsCheck,
    Budget,
    CommandCheck,
    Goal,
    Observation,
    Plan,
    RunResult,
    RunStatus,
    Step,
    Usage,
    Verdict,
)

__all__ = [
    "AssertsCheck",
    "Budget",
    "CommandCheck",
    "ConfigError",
    "Engine",
    "Goal",
    "Limits",
    "LocalSandbox",
    "Message",
    "Model",
    "ModelError",
    "ModelOutputError",
    "Observation",
    "Plan",
    "Request",
    "Response",
    "RunResult",
    "RunSpec",
    "RunStatus",
    "Sandbox",
    "ScriptedModel",
    "Step",
    "StrategyOptions",
    "Usage",
    "Verdict",
    "ZerogError",
    "run",
]

__version__ = "0.1.0"


def run(goal: Goal, model: Model, sandbox: Sandbox | None = None) -> RunResult:
    """Run ``goal`` with ``model`` on the default sandbox; see :class:`Engine` for more."""
    return Engine(model, sandbox).run(goal)
