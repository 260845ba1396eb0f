"""A model wrapper that holds one goal's calls to the budget its batch shares.

The engine wraps every model in its own per-run meter; this wrapper sits under that meter,
right around the backend, so it sees only live calls (a resumed run's replayed answers
never reach it, and are never charged twice). Out of budget, it raises
:class:`~zerog.budget.BudgetExhausted`, which the loop turns into the run's final status
like any other budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from zerog.batch.ledger import BatchLedger
from zerog.models.base import Model, Request, Response, Stateful


class SharedBudgetModel:
    def __init__(
        self,
        model: Model,
        ledger: BatchLedger,
        run_id: str,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._model = model
        self._ledger = ledger
        self._run_id = run_id
        self._sleep = sleep

    @property
    def name(self) -> str:
        return self._model.name

    def skip(self, request: Request) -> None:
        """Keep a scripted backend in step on replay (see models.base.Stateful)."""
        if isinstance(self._model, Stateful):
            self._model.skip(request)

    def complete(self, request: Request) -> Response:
        granted = self._ledger.reserve(self._run_id, request.max_tokens)
        pause = 0.01
        while granted == 0:  # the output budget left is held by calls in flight
            self._sleep(pause)
            pause = min(pause * 2, 0.25)
            granted = self._ledger.reserve(self._run_id, request.max_tokens)
        if granted != request.max_tokens:
            request = request.model_copy(update={"max_tokens": granted})
        try:
            response = self._model.complete(request)
        except BaseException:
            self._ledger.release(self._run_id)
            raise
        self._ledger.charge(self._run_id, response.usage, response.cost)
        return response
