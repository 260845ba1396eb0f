"""The Anthropic adapter against a real HTTP server on loopback that speaks the Messages
API: forced tool use for structured output, usage with cache reads and writes, status
codes, a 429 then success, an overloaded server, a 401."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.wire import KEY, Script, anthropic_error, anthropic_message, tool_use
from zerog.bench.loopback import LoopbackServer
from zerog.config import Config
from zerog.errors import ConfigError, ModelError
from zerog.models.anthropic import AnthropicModel, split_messages
from zerog.models.base import Message, Request
from zerog.models.pricing import DEFAULT_PRICES, Price
from zerog.models.retry import RetryPolicy
from zerog.models.schema import decoding_schema
from zerog.models.spec import load_model
from zerog.structured import ask, schema_of
from zerog.types import Plan

PLAN = {"steps": [{"intent": "say hi", "actions": [{"kind": "shell", "command": "echo hi"}]}]}
PRICE = Price(input=3.0, output=15.0, cached_input=0.3, cache_write=3.75)
MESSAGES = (
    Message(role="system", content="You plan."),
    Message(role="user", content="Plan it."),
)


@pytest.fixture
def script() -> Script:
    return Script(anthropic_message([tool_use(PLAN)]))


@pytest.fixture
def server(script: Script) -> Iterator[LoopbackServer]:
    with LoopbackServer(script) as running:
        yield running


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def adapter(server: LoopbackServer, sleeps: Sleeps | None = None) -> AnthropicModel:
    return AnthropicModel(
        "claude-test",
        api_key=KEY,
        base_url=server.url,
        price=PRICE,
        retry=RetryPolicy(max_retries=2, base_delay=1.0),
        sleep=sleeps if sleeps is not None else Sleeps(),
        jitter=lambda: 1.0,
    )


@pytest.mark.slow
def test_structured_output_is_a_forced_tool_call(server: LoopbackServer) -> None:
    plan = ask(adapter(server), MESSAGES, Plan, purpose="plan", max_tokens=512)
    assert plan.steps[0].actions[0].kind == "shell"
    [sent] = server.requests
    assert sent.path == "/v1/messages"
    # SDKs send the key as x-api-key or, in newer versions, as a bearer token.
    assert KEY in (sent.headers.get("x-api-key"), sent.headers.get("authorization", "")[7:])
    assert "anthropic-version" in sent.headers
    body = sent.json()
    assert body["model"] == "claude-test"
    assert body["max_tokens"] == 512
    assert body["system"] == "You plan."
    assert body["messages"] == [{"role": "user", "content": "Plan it."}]
    assert body["tools"] == [
        {
            "name": "answer",
            "description": "Give your answer by calling this tool with the requested JSON "
            "object as its input.",
            "input_schema": decoding_schema(schema_of(Plan)),
        }
    ]
    assert body["tool_choice"] == {"type": "tool", "name": "answer"}


def test_usage_sums_cache_reads_and_writes_and_prices_each(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [
        anthropic_message(
            [tool_use(PLAN)], input_tokens=100, output_tokens=50, cache_read=1000, cache_write=200
        )
    ]
    response = adapter(server).complete(
        Request(messages=MESSAGES, json_schema=schema_of(Plan), purpose="plan")
    )
    assert json.loads(response.text) == PLAN
    assert response.usage.input_tokens == 1300
    assert response.usage.cached_tokens == 1000
    assert response.usage.output_tokens == 50
    expected = (100 * 3.0 + 1000 * 0.3 + 200 * 3.75 + 50 * 15.0) / 1e6
    assert response.cost == pytest.approx(expected)
    assert response.model == "anthropic:claude-test"


def test_plain_requests_return_the_text_blocks(server: LoopbackServer, script: Script) -> None:
    script.replies = [
        anthropic_message([{"type": "text", "text": "hello "}, {"type": "text", "text": "there"}])
    ]
    assert adapter(server).complete(Request(messages=MESSAGES)).text == "hello there"
    body = server.requests[0].json()
    assert "tools" not in body
    assert "tool_choice" not in body


def test_429_then_success(server: LoopbackServer, script: Script) -> None:
    script.replies = [
        anthropic_error(429, "rate_limit_error", "Number of requests has exceeded your rate limit"),
        anthropic_message([tool_use(PLAN)]),
    ]
    sleeps = Sleeps()
    response = adapter(server, sleeps).complete(Request(messages=MESSAGES))
    assert json.loads(response.text) == PLAN
    assert sleeps == [1.0]
    assert len(server.requests) == 2


def test_overloaded_529_honours_retry_after_then_gives_up(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [
        anthropic_error(529, "overloaded_error", "Overloaded", headers={"retry-after": "4"})
    ]
    sleeps = Sleeps()
    with pytest.raises(ModelError, match="failed 3 times in a row; last error: HTTP 529"):
        adapter(server, sleeps).complete(Request(messages=MESSAGES))
    assert sleeps == [4.0, 4.0]


def test_401_is_final_and_names_the_variable_not_the_key(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [anthropic_error(401, "authentication_error", f"invalid x-api-key {KEY}")]
    with pytest.raises(ModelError) as caught:
        adapter(server).complete(Request(messages=MESSAGES))
    message = str(caught.value)
    assert "HTTP 401" in message
    assert "$ANTHROPIC_API_KEY" in message
    assert KEY not in message
    assert len(server.requests) == 1


def test_400_is_final_with_the_servers_reason(server: LoopbackServer, script: Script) -> None:
    script.replies = [anthropic_error(400, "invalid_request_error", "prompt is too long")]
    with pytest.raises(ModelError, match=r"HTTP 400: .*prompt is too long"):
        adapter(server).complete(Request(messages=MESSAGES))
    assert len(server.requests) == 1


def test_reask_turns_alternate_and_the_system_prompt_is_separate() -> None:
    system, turns = split_messages(
        (
            Message(role="system", content="a"),
            Message(role="user", content="b"),
            Message(role="user", content="c"),
            Message(role="assistant", content="d"),
            Message(role="user", content="e"),
        )
    )
    assert system == "a"
    assert turns == [
        {"role": "user", "content": "b\n\nc"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "e"},
    ]
    _, leading = split_messages((Message(role="assistant", content="x"),))
    assert leading[0] == {"role": "user", "content": "Continue."}


def test_spec_reads_key_and_base_url_from_the_environment(server: LoopbackServer) -> None:
    environ = {"ANTHROPIC_API_KEY": KEY, "ANTHROPIC_BASE_URL": server.url}
    model = load_model("anthropic:claude-haiku-4-5", Path("."), config=Config(), environ=environ)
    response = model.complete(Request(messages=MESSAGES))
    price = DEFAULT_PRICES["anthropic:claude-haiku-4-5"]
    assert response.cost == pytest.approx(price.cost(input_tokens=100, output_tokens=20))
    with pytest.raises(ConfigError, match=r"no Anthropic API key: set \$ANTHROPIC_API_KEY"):
        load_model("anthropic:claude-haiku-4-5", Path("."), config=Config(), environ={})
