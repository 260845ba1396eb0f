"""Prices per model, and the arithmetic that turns token counts into money.

Prices are US dollars per million tokens, as published by each provider (checked 2025-08;
providers change them: override any price in the config file, see :mod:`zerog.config`).
A model is found by its spec key (``openai:gpt-4.1-mini``); dated or suffixed model ids
(``anthropic:claude-sonnet-4-20250514``) match the longest known prefix.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from pydantic import Field

from zerog.types import Frozen

PER_TOKENS = 1_000_000


class Price(Frozen):
    """USD per million tokens. Cached reads and cache writes default to the input price."""

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)
    cache_write: float | None = Field(default=None, ge=0)

    def cost(
        self, *, input_tokens: int, output_tokens: int, cached_tokens: int = 0, written: int = 0
    ) -> float:
        """The cost of one call. ``input_tokens`` counts every input token, including the
        ``cached_tokens`` read from a prompt cache and the ``written`` ones put into it."""
        plain = max(input_tokens - cached_tokens - written, 0)
        cached = self.input if self.cached_input is None else self.cached_input
        write = self.input if self.cache_write is None else self.cache_write
        total = (
            plain * self.input
            + cached_tokens * cached
            + written * write
            + output_tokens * self.output
        )
        return total / PER_TOKENS


FREE: Final = Price(input=0.0, output=0.0)


def _p(inp: float, out: float, cached: float | None = None, write: float | None = None) -> Price:
    return Price(input=inp, output=out, cached_input=cached, cache_write=write)


DEFAULT_PRICES: Final[Mapping[str, Price]] = MappingProxyType(
    {
        "openai:gpt-5": _p(1.25, 10.0, 0.125),
        "openai:gpt-5-mini": _p(0.25, 2.0, 0.025),
        "openai:gpt-5-nano": _p(0.05, 0.40, 0.005),
        "openai:gpt-4.1": _p(2.0, 8.0, 0.50),
        "openai:gpt-4.1-mini": _p(0.40, 1.60, 0.10),
        "openai:gpt-4.1-nano": _p(0.10, 0.40, 0.025),
        "openai:gpt-4o": _p(2.50, 10.0, 1.25),
        "openai:gpt-4o-mini": _p(0.15, 0.60, 0.075),
        "openai:o3": _p(2.0, 8.0, 0.50),
        "openai:o3-mini": _p(1.10, 4.40, 0.55),
        "openai:o4-mini": _p(1.10, 4.40, 0.275),
        "anthropic:claude-opus-4-5": _p(5.0, 25.0, 0.50, 6.25),
        "anthropic:claude-opus-4-1": _p(15.0, 75.0, 1.50, 18.75),
        "anthropic:claude-opus-4": _p(15.0, 75.0, 1.50, 18.75),
        "anthropic:claude-sonnet-4-5": _p(3.0, 15.0, 0.30, 3.75),
        "anthropic:claude-sonnet-4": _p(3.0, 15.0, 0.30, 3.75),
        "anthropic:claude-3-7-sonnet": _p(3.0, 15.0, 0.30, 3.75),
        "anthropic:claude-haiku-4-5": _p(1.0, 5.0, 0.10, 1.25),
        "anthropic:claude-3-5-haiku": _p(0.80, 4.0, 0.08, 1.0),
        "anthropic:claude-3-haiku": _p(0.25, 1.25, 0.03, 0.30),
    }
)


def find_price(key: str, overrides: Mapping[str, Price] | None = None) -> Price | None:
    """The price of model ``key`` (``provider:model``): an override first, then the table.

    An exact key wins; otherwise the longest known key that is a prefix of ``key`` and
    ends where ``key`` continues with ``-`` (so ``gpt-4.1`` never prices ``gpt-4.10``).
    """
    for table in (overrides or {}, DEFAULT_PRICES):
        if key in table:
            return table[key]
    for table in (overrides or {}, DEFAULT_PRICES):
        best = ""
        for known in table:
            if key.startswith(known + "-") and len(known) > len(best):
                best = known
        if best:
            return table[best]
    return None
