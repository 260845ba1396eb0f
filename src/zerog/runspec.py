"""What a run is made of, as one typed record: :class:`RunSpec`.

The engine records it with the run (the ``spec`` column of the store's runs table) so that
a resume, a replay, a batch worker or the server rebuild the same run from it. The
recorded JSON keeps its shape: the strategy options sit flat beside the other keys, and
keys a run does not use are left out, so runs recorded before this module stay readable.
"""

from __future__ import annotations

from collections.abc import Mapping

from pydantic import ValidationError

from zerog.sandbox.base import Limits
from zerog.store import StoreError
from zerog.strategies import StrategyOptions
from zerog.types import Frozen, Goal

STRATEGY_KEYS = tuple(StrategyOptions.model_fields)
"""The strategy options, recorded flat beside the other keys."""

OPTIONAL_KEYS = ("batch", "source", "replay_of")
"""Keys recorded only when set (a batch goal's, a replay's)."""


class GitRequest(Frozen):
    """What ``--git`` asked for (the plan it pinned is in the run's journal)."""

    allow_dirty: bool = False


class RunSpec(Frozen):
    """A run's configuration: its goal, model, strategy, router, sandbox and limits.

    Fields an old run did not record take their defaults (those of the command line).
    """

    goal: Goal | None = None
    """None only in a spec given to the engine before it adds the goal it runs."""
    model: str = "local"
    router: str | None = None
    router_file: str | None = None
    strategy: StrategyOptions = StrategyOptions()
    limits: Limits = Limits()
    stuck_after: int = 2
    sandbox: str | None = None
    network: bool = False
    sidecar: str = "wasm"
    git: GitRequest | None = None
    batch: str | None = None
    """The batch a goal of ``zerog batch`` ran in."""
    source: str | None = None
    """The workspace a batch goal was copied from."""
    replay_of: str | None = None
    """The run a ``zerog replay`` replays."""

    @classmethod
    def from_recorded(cls, recorded: Mapping[str, object]) -> RunSpec:
        """The spec recorded with a run, typed (unknown keys are ignored, absent ones
        default); a malformed one is a :class:`StoreError`."""
        fields = {
            k: recorded[k]
            for k in cls.model_fields
            if k != "strategy" and recorded.get(k) is not None
        }
        try:
            return cls.model_validate({**fields, "strategy": StrategyOptions.from_spec(recorded)})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise StoreError(f"the recorded run spec is malformed: {problems}") from None

    def recorded_goal(self) -> Goal:
        """The goal the run was recorded with (a run without one cannot be rebuilt)."""
        if self.goal is None:
            raise StoreError("the run recorded no goal")
        return self.goal

    def to_recorded(self) -> dict[str, object]:
        """The JSON recorded with the run (the shape :meth:`from_recorded` reads)."""
        recorded: dict[str, object] = {
            "model": self.model,
            "router": self.router,
            "router_file": self.router_file,
            **self.strategy.model_dump(mode="json"),
        }
        for key in OPTIONAL_KEYS:
            value = getattr(self, key)
            if value is not None:
                recorded[key] = value
        if self.goal is not None:
            recorded["goal"] = self.goal.model_dump(mode="json")
        recorded |= {
            "limits": self.limits.model_dump(mode="json"),
            "stuck_after": self.stuck_after,
            "sandbox": self.sandbox,
            "network": self.network,
            "sidecar": self.sidecar,
        }
        if self.git is not None:
            recorded["git"] = self.git.model_dump(mode="json")
        return recorded
