"""Run strategies a user picks on the command line, built from engine parts.

- ``answer_file``: plan with :class:`~zerog.codeplan.CodePlanner` (the model answers with
  the file's code instead of a JSON plan; for goals about one Python file).
- ``escalate``: the model specs to move up to, one per failed iteration
  (:class:`~zerog.models.cascade.Escalating`); each is loaded only when first needed. With
  an answer file, an escalated model is first asked the same fresh question greedily (a
  small model's failure output does not help a bigger one; see BENCHMARKS.md, HumanEval);
  later retries see the failures.
- ``escalate_after``: failed iterations of a model before the next is asked (default 1;
  2 gives the cheap model one retry that sees its failure first). A second opinion on an
  unsure answer is asked for at once.
- ``unsure_tokens``: with ``escalate``, an answer that passes its checks but whose code
  had at least this many tokens the model chose with probability below one half gets a
  second opinion from the next model (kept if the second opinion fails the checks).
- ``examples``: a check generated from the ``>>>`` examples of a workspace Python file.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from zerog.beneath import PathEscape, read_beneath
from zerog.codeplan import CodePlanner
from zerog.context import Context
from zerog.errors import ConfigError
from zerog.events import EventSink
from zerog.models.base import Model
from zerog.models.cascade import Escalating
from zerog.types import CommandCheck, Frozen, Plan
from zerog.validate.examples import examples_check

MAX_EXAMPLES_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class Strategy:
    """What the engine is built with: its model, planner and extra event sinks."""

    model: Model
    plan_with: Callable[[Model, Context], Plan] | None
    sinks: tuple[EventSink, ...]
    doubt: Callable[[], str | None] | None = None


class StrategyOptions(Frozen):
    """The strategy a run is asked for, as plain data (crosses process boundaries, is
    recorded with a run so that a resume rebuilds it)."""

    answer_file: str | None = None
    escalate: tuple[str, ...] = ()
    escalate_after: int = 1
    unsure_tokens: int | None = None

    def check(self) -> None:
        """Refuse options that need a model to escalate to when there is none."""
        if self.escalate:
            return
        if self.unsure_tokens is not None:
            raise ConfigError("a second opinion on unsure answers needs a model to escalate to")
        if self.escalate_after != 1:
            raise ConfigError("escalate_after needs a model to escalate to")

    @classmethod
    def from_spec(cls, spec: Mapping[str, object]) -> StrategyOptions:
        """The options recorded with a run (its spec), for a resume; absent ones default."""
        escalate = spec.get("escalate")
        after = spec.get("escalate_after")
        unsure = spec.get("unsure_tokens")
        answer = spec.get("answer_file")
        return cls(
            answer_file=str(answer) if answer else None,
            escalate=tuple(str(s) for s in escalate) if isinstance(escalate, list) else (),
            escalate_after=int(after) if isinstance(after, int) and after >= 1 else 1,
            unsure_tokens=int(unsure) if isinstance(unsure, int) and unsure >= 1 else None,
        )

    def build(self, first: Model, load: Callable[[str], Model]) -> Strategy:
        """The engine parts: ``first`` answers first; ``load`` builds an escalated model
        from its spec when it is first needed."""
        self.check()
        if not self.escalate:
            plan_with = CodePlanner(self.answer_file) if self.answer_file is not None else None
            return Strategy(first, plan_with, ())
        wants_confidence = self.unsure_tokens is not None
        cascade = Escalating(
            first,
            [_loader(load, spec) for spec in self.escalate],
            after=self.escalate_after,
            unsure_tokens=self.unsure_tokens,
        )
        plan_with = (
            CodePlanner(self.answer_file, fresh=_fresh(cascade), confidence=wants_confidence)
            if self.answer_file is not None
            else None
        )
        doubt = cascade.doubt if wants_confidence else None
        return Strategy(cascade, plan_with, (cascade,), doubt)


def _fresh(cascade: Escalating) -> Callable[[], bool]:
    return lambda: cascade.fresh


def _loader(load: Callable[[str], Model], spec: str) -> Callable[[], Model]:
    return lambda: load(spec)


def examples_for(workspace: Path, path: str) -> CommandCheck:
    """The docstring-examples check of ``path`` (read now, from the workspace)."""
    try:  # walked without following links: a planted one cannot point it elsewhere
        data = read_beneath(workspace, path, MAX_EXAMPLES_BYTES)
        if data is None or len(data) > MAX_EXAMPLES_BYTES:
            raise ConfigError(f"{path} is not a regular file of at most {MAX_EXAMPLES_BYTES} bytes")
        source = data.decode("utf-8")
    except (OSError, UnicodeDecodeError, PathEscape) as exc:
        raise ConfigError(f"cannot read {path} in {workspace} for its examples: {exc}") from None
    return examples_check(path, source)
