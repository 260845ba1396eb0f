"""Routers: carry out predictable steps without asking the worker model.

``builtin`` routes act on a step's structured ``op`` field; ``compiled`` routes are learned
from recorded runs (``zerog routes compile``). The loop asks a :class:`RouteGate`, which
records every decision as a ``route`` event and demotes a route whose step fails.
"""

from zerog.router.base import Decision, Router, StepView

__all__ = ["Decision", "Router", "StepView"]
