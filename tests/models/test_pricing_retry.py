"""Prices and the retry policy: pure arithmetic and control flow, with injected time."""

from __future__ import annotations

import pytest

from zerog.errors import ModelError
from zerog.models.pricing import DEFAULT_PRICES, FREE, Price, find_price
from zerog.models.retry import RetryPolicy, Transient, parse_retry_after, with_retries


def test_cost_counts_cached_and_written_tokens_at_their_own_prices() -> None:
    price = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
    cost = price.cost(
        input_tokens=1_000_000, output_tokens=100_000, cached_tokens=400_000, written=100_000
    )
    assert cost == pytest.approx(500_000 * 3.0e-6 + 0.4 * 0.3 + 0.1 * 3.75 + 0.1 * 15.0)
    assert FREE.cost(input_tokens=10**9, output_tokens=10**9) == 0.0


def test_cached_price_defaults_to_input_price() -> None:
    price = Price(input=2.0, output=8.0)
    assert price.cost(input_tokens=1_000_000, output_tokens=0, cached_tokens=500_000) == 2.0


def test_price_lookup_exact_prefix_override_unknown() -> None:
    assert find_price("openai:gpt-4.1-mini") == DEFAULT_PRICES["openai:gpt-4.1-mini"]
    dated = find_price("anthropic:claude-sonnet-4-5-20250929")
    assert dated == DEFAULT_PRICES["anthropic:claude-sonnet-4-5"]
    assert find_price("openai:gpt-4.10") is None, "a prefix must end at a dash"
    assert find_price("openai:no-such-model") is None
    mine = Price(input=1.0, output=1.0)
    assert find_price("openai:gpt-4.1-mini", {"openai:gpt-4.1-mini": mine}) == mine
    assert find_price("openai:gpt-4.1-mini-2025", {"openai:gpt-4.1-mini": mine}) == mine


def test_backoff_grows_is_jittered_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(max_retries=5, base_delay=1.0, max_delay=6.0)
    assert [policy.delay(n, 0.0) for n in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert [policy.delay(n, 1.0) for n in range(5)] == [1.0, 2.0, 4.0, 6.0, 6.0]
    assert policy.delay(0, 0.5, retry_after=2.5) == 2.5
    assert policy.delay(0, 0.5, retry_after=600) == 6.0
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert parse_retry_after(None) is None


def test_retries_transient_failures_then_succeeds() -> None:
    outcomes: list[Exception | str] = [Transient("HTTP 429"), Transient("HTTP 503"), "ok"]
    slept: list[float] = []

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    policy = RetryPolicy(max_retries=3, base_delay=1.0)
    assert with_retries(call, policy, sleep=slept.append, random=lambda: 0.0) == "ok"
    assert slept == [0.5, 1.0]


def test_gives_up_after_the_bound_with_the_last_error() -> None:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        raise Transient(f"HTTP 500 number {len(calls)}")

    with pytest.raises(ModelError, match=r"failed 3 times in a row; last error: HTTP 500 number 3"):
        with_retries(call, RetryPolicy(max_retries=2), sleep=lambda _: None, random=lambda: 1.0)
    assert len(calls) == 3


def test_final_errors_are_not_retried() -> None:
    calls: list[int] = []

    def call() -> str:
        calls.append(1)
        raise ModelError("HTTP 401")

    with pytest.raises(ModelError, match="401"):
        with_retries(call, RetryPolicy(), sleep=lambda _: None, random=lambda: 1.0)
    assert len(calls) == 1
