"""Budgets: what a run has spent, and the one place that decides it must stop."""

from __future__ import annotations

from collections.abc import Callable

from zerog.engine.exceptions import RunEnded
from zerog.types import Budget, PhaseSpend, RunStatus, Usage


class BudgetExhausted(RunEnded):
    """Raised when a budget is spent: one of the ways a run ends (engine/exceptions.py),
    its status says which budget."""


class Meter:
    """Counts iterations, tokens, money and time against a :class:`Budget`."""

    def __init__(self, budget: Budget, clock: Callable[[], float]) -> None:
        self.budget = budget
        self._clock = clock
        self._start = clock()
        self.usage = Usage()
        self.cost = 0.0
        self.iterations = 0
        self.phases: dict[str, PhaseSpend] = {}
        self.models: dict[str, PhaseSpend] = {}  # by the model that answered (a cascade)
        self.cache_hits: dict[str, int] = {}  # kind (model, tool, plan) -> hits this run
        self.replaying = False  # a resumed run re-walks its past: time is not checked

    def resume(self, already_elapsed: float) -> None:
        """Continue the clock of an earlier, interrupted process from now."""
        self._start = self._clock() - already_elapsed
        self.replaying = False

    def elapsed(self) -> float:
        return self._clock() - self._start

    def remaining_seconds(self) -> float:
        return max(self.budget.max_seconds - self.elapsed(), 0.0)

    def record(self, usage: Usage, cost: float, phase: str = "", model: str = "") -> None:
        self.usage = self.usage + usage
        self.cost += cost
        for table, key in ((self.phases, phase or "other"), (self.models, model or "model")):
            spent = table.get(key, PhaseSpend())
            table[key] = PhaseSpend(
                calls=spent.calls + 1, usage=spent.usage + usage, cost=spent.cost + cost
            )

    def start_iteration(self) -> int:
        if self.iterations >= self.budget.max_iterations:
            raise BudgetExhausted(
                RunStatus.MAX_ITERATIONS,
                f"used all {self.budget.max_iterations} iterations without passing the checks",
            )
        self.check()
        self.iterations += 1
        return self.iterations

    def check(self) -> None:
        """Raise :class:`BudgetExhausted` if tokens, money or time are spent."""
        b = self.budget
        if b.max_input_tokens is not None and self.usage.input_tokens >= b.max_input_tokens:
            raise BudgetExhausted(
                RunStatus.MAX_INPUT_TOKENS,
                f"input tokens {self.usage.input_tokens} reached the budget of "
                f"{b.max_input_tokens}",
            )
        if b.max_output_tokens is not None and self.usage.output_tokens >= b.max_output_tokens:
            raise BudgetExhausted(
                RunStatus.MAX_OUTPUT_TOKENS,
                f"output tokens {self.usage.output_tokens} reached the budget of "
                f"{b.max_output_tokens}",
            )
        if b.max_cost is not None and self.cost >= b.max_cost:
            raise BudgetExhausted(
                RunStatus.MAX_COST, f"cost ${self.cost:.4f} reached the budget of ${b.max_cost}"
            )
        if not self.replaying and self.elapsed() >= b.max_seconds:
            raise BudgetExhausted(
                RunStatus.MAX_TIME, f"wall time reached the budget of {b.max_seconds:g} s"
            )

    def output_allowance(self, wanted: int) -> int:
        """The largest ``max_tokens`` a call may ask for without overrunning the budget."""
        cap = self.budget.max_output_tokens
        if cap is None:
            return wanted
        return max(min(wanted, cap - self.usage.output_tokens), 1)
