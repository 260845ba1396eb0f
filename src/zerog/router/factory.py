"""Build the router a run asked for: off, builtin, or compiled (built-in routes first)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from zerog.errors import ConfigError
from zerog.router.base import Decision, Router, StepView
from zerog.router.builtin import BuiltinRouter, fix_memory
from zerog.router.compiled import CompiledRouter
from zerog.router.history import store_steps
from zerog.store import Store

ROUTERS = ("off", "builtin", "compiled")
MEMORY_RUNS = 200  # repeat_fix looks at the steps of this many newest runs


class ChainRouter:
    """Asks each router in turn; the first routed decision wins. When none routes, the
    decision of the last router that matched a route is reported (for the event log)."""

    def __init__(self, *routers: Router) -> None:
        self.routers = routers

    @property
    def name(self) -> str:
        return "+".join(r.name for r in self.routers)

    def decide(self, view: StepView) -> Decision:
        best = Decision(reason="no route matched")
        for router in self.routers:
            decision = router.decide(view)
            if decision.routed:
                return decision
            if decision.route:
                best = decision
        return best

    def demote(self, route: str) -> None:
        for router in self.routers:
            router.demote(route)


def make_router(
    name: str,
    *,
    router_file: Path | None = None,
    store: Store | None = None,
    warn: Callable[[str], None] | None = None,
) -> Router | None:
    """The router ``name`` (None for off). A compiled router needs ``router_file``; a bad
    file is refused (:class:`RouterFileError`), never half used."""
    if name not in ROUTERS:
        raise ConfigError(f"unknown router {name!r}: choose one of {', '.join(ROUTERS)}")
    if router_file is not None and name != "compiled":
        raise ConfigError("--router-file is read only with --router compiled")
    if name == "off":
        return None
    opened = store
    builtin = BuiltinRouter(
        (lambda: fix_memory(store_steps(opened, MEMORY_RUNS))) if opened is not None else None
    )
    if name == "builtin":
        return builtin
    if router_file is None:
        raise ConfigError("--router compiled needs --router-file FILE (zerog routes compile)")
    return ChainRouter(builtin, CompiledRouter.from_file(router_file, warn=warn))
