"""The OpenAI adapter against a real HTTP server on loopback that speaks the chat
completions wire format: request shape, usage and cost, retries, auth, format fallback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.conftest import free_port
from models.wire import KEY, Script, chat_completion, openai_error
from zerog import Budget, Engine, Goal, RunStatus
from zerog.bench.loopback import LoopbackServer
from zerog.config import Config, Keys
from zerog.errors import ConfigError, ModelError
from zerog.models.base import Message, Request
from zerog.models.openai import OpenAIModel
from zerog.models.pricing import DEFAULT_PRICES, Price
from zerog.models.retry import RetryPolicy
from zerog.models.schema import decoding_schema
from zerog.models.spec import load_model
from zerog.structured import parse_answer, schema_of
from zerog.types import Plan

PLAN = {"steps": [{"intent": "say hi", "actions": [{"kind": "shell", "command": "echo hi"}]}]}
PRICE = Price(input=2.0, output=8.0, cached_input=0.5)
MESSAGES = (
    Message(role="system", content="You plan."),
    Message(role="user", content="Plan it."),
)


@pytest.fixture
def script() -> Script:
    return Script(chat_completion(json.dumps(PLAN)))


@pytest.fixture
def server(script: Script) -> Iterator[LoopbackServer]:
    with LoopbackServer(script) as running:
        yield running


class Sleeps(list[float]):
    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def adapter(
    server: LoopbackServer, sleeps: Sleeps | None = None, model: str = "gpt-4.1-mini", **kw: object
) -> OpenAIModel:
    return OpenAIModel(
        model,
        api_key=KEY,
        base_url=f"{server.url}/v1",
        price=PRICE,
        retry=RetryPolicy(max_retries=2, base_delay=0.5),
        sleep=sleeps if sleeps is not None else Sleeps(),
        jitter=lambda: 0.0,
        **kw,  # type: ignore[arg-type]
    )


def structured_request() -> Request:
    return Request(messages=MESSAGES, json_schema=schema_of(Plan), purpose="plan")


def test_structured_request_shape_usage_and_cost(server: LoopbackServer, script: Script) -> None:
    script.replies = [chat_completion(json.dumps(PLAN), prompt=1000, completion=100, cached=200)]
    response = adapter(server).complete(structured_request())
    assert parse_answer(response.text, Plan).steps[0].intent == "say hi"
    assert response.usage.input_tokens == 1000
    assert response.usage.output_tokens == 100
    assert response.usage.cached_tokens == 200
    assert response.cost == pytest.approx((800 * 2.0 + 200 * 0.5 + 100 * 8.0) / 1e6)
    assert response.model == "openai:gpt-4.1-mini"
    [sent] = server.requests
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json()
    assert body["model"] == "gpt-4.1-mini"
    assert body["messages"] == [
        {"role": "system", "content": "You plan."},
        {"role": "user", "content": "Plan it."},
    ]
    assert body["max_completion_tokens"] == 2048
    assert "max_tokens" not in body
    assert body["temperature"] == 0.0
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {
            "name": "answer",
            "schema": decoding_schema(schema_of(Plan)),
            "strict": False,
        },
    }


def test_compatible_servers_get_max_tokens_and_reasoning_models_no_temperature(
    server: LoopbackServer,
) -> None:
    adapter(server, compatible=True).complete(Request(messages=MESSAGES, seed=7))
    adapter(server, model="o4-mini").complete(Request(messages=MESSAGES))
    compatible, reasoning = (r.json() for r in server.requests)
    assert compatible["max_tokens"] == 2048
    assert "max_completion_tokens" not in compatible
    assert compatible["seed"] == 7
    assert "response_format" not in compatible
    assert "temperature" not in reasoning


CODE_TOKENS = [  # "```python\nx = 1\n```" with two unsure tokens in the code
    ("Here:\n", -2.0),
    ("```python\n", -0.01),
    ("x", -0.9),
    (" =", -0.01),
    (" 1", -1.2),
    ("\n```", -0.01),
]


def test_greedy_free_text_carries_the_confidence_of_its_code(
    server: LoopbackServer, script: Script
) -> None:
    text = "".join(t for t, _ in CODE_TOKENS)
    script.replies = [chat_completion(text, tokens=CODE_TOKENS)]
    response = adapter(server).complete(Request(messages=MESSAGES, confidence=True))
    confidence = response.confidence
    assert confidence is not None
    assert confidence.tokens == 3  # "x", " =", " 1": the prose and fences do not count
    assert confidence.low_tokens == 2  # p = 0.41 and 0.30
    assert confidence.min_prob == pytest.approx(0.301194, abs=1e-6)
    assert server.requests[-1].json()["logprobs"] is True
    assert server.requests[-1].json()["top_logprobs"] == 1
    # Not wanted, JSON answers, sampled answers and reasoning models do not ask for them.
    adapter(server).complete(Request(messages=MESSAGES))
    adapter(server).complete(structured_request().model_copy(update={"confidence": True}))
    sampled = Request(messages=MESSAGES, temperature=0.7, seed=1, confidence=True)
    adapter(server).complete(sampled)
    reasoning = adapter(server, model="o4-mini").complete(
        Request(messages=MESSAGES, confidence=True)
    )
    assert reasoning.confidence is None
    for sent in server.requests[1:]:
        assert "logprobs" not in sent.json()
        assert "top_logprobs" not in sent.json()


def test_a_server_that_rejects_logprobs_is_asked_again_without(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [
        openai_error(400, "Unrecognized request argument supplied: logprobs"),
        chat_completion("fine"),
    ]
    model = adapter(server, compatible=True, stream=False)
    response = model.complete(Request(messages=MESSAGES, confidence=True))
    assert (response.text, response.confidence) == ("fine", None)
    model.complete(Request(messages=MESSAGES, confidence=True))  # remembered: not asked again
    bodies = [r.json() for r in server.requests]
    assert [("logprobs" in b) for b in bodies] == [True, False, False]


def test_429_then_success_waits_what_the_server_asked(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [
        openai_error(429, "Rate limit reached", {"retry-after": "1.5"}),
        chat_completion("fine"),
    ]
    sleeps = Sleeps()
    assert adapter(server, sleeps).complete(Request(messages=MESSAGES)).text == "fine"
    assert sleeps == [1.5]
    assert len(server.requests) == 2


def test_5xx_is_retried_with_backoff_then_gives_up(server: LoopbackServer, script: Script) -> None:
    script.replies = [openai_error(503, "The server is overloaded")]
    sleeps = Sleeps()
    with pytest.raises(ModelError, match="failed 3 times in a row; last error: HTTP 503"):
        adapter(server, sleeps).complete(Request(messages=MESSAGES))
    assert sleeps == [0.25, 0.5]
    assert len(server.requests) == 3


@pytest.mark.parametrize("status", [401, 403])
def test_auth_failure_is_final_and_names_the_variable_not_the_key(
    server: LoopbackServer, script: Script, status: int
) -> None:
    script.replies = [openai_error(status, f"Incorrect API key provided: {KEY}")]
    with pytest.raises(ModelError) as caught:
        adapter(server).complete(Request(messages=MESSAGES))
    assert f"HTTP {status}" in str(caught.value)
    assert "$OPENAI_API_KEY" in str(caught.value)
    assert KEY not in str(caught.value)
    assert len(server.requests) == 1


def test_other_client_errors_are_final_with_the_servers_reason(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [openai_error(400, "This model's maximum context length is 128000 tokens")]
    with pytest.raises(ModelError, match=r"HTTP 400: .*maximum context length"):
        adapter(server).complete(Request(messages=MESSAGES))
    assert len(server.requests) == 1


def test_a_server_without_json_schema_gets_json_object_with_the_schema(
    server: LoopbackServer, script: Script
) -> None:
    script.replies = [
        openai_error(500, "Input should be 'text' or 'json_object' at body.response_format.type"),
        chat_completion(json.dumps(PLAN)),
    ]
    model = adapter(server, compatible=True, stream=False)
    response = model.complete(structured_request())
    assert parse_answer(response.text, Plan).steps[0].actions[0].kind == "shell"
    assert model.response_format == "json_object_schema"
    model.complete(structured_request())
    bodies = [r.json() for r in server.requests]
    assert [b["response_format"]["type"] for b in bodies] == [  # type: ignore[index]
        "json_schema",
        "json_object",
        "json_object",
    ]
    assert bodies[1]["response_format"] == {
        "type": "json_object",
        "schema": decoding_schema(schema_of(Plan)),
    }


def test_connection_refused_is_retried_then_reported() -> None:
    sleeps = Sleeps()
    model = OpenAIModel(
        "m",
        api_key=None,
        base_url=f"http://127.0.0.1:{free_port()}/v1",
        compatible=True,
        retry=RetryPolicy(max_retries=1),
        sleep=sleeps,
        jitter=lambda: 0.0,
    )
    with pytest.raises(ModelError, match="failed 2 times in a row; last error: connection failed"):
        model.complete(Request(messages=MESSAGES))
    assert len(sleeps) == 1


def test_a_slow_server_times_out_and_is_retried(server: LoopbackServer, script: Script) -> None:
    from zerog.bench.loopback import HttpReply

    script.replies = [HttpReply(200, {}, delay=3.0)]
    started = time.monotonic()
    with pytest.raises(ModelError, match="timed out"):
        adapter(server, timeout=0.3).complete(Request(messages=MESSAGES))
    assert time.monotonic() - started < 2.5
    assert len(server.requests) == 3


def test_spec_builds_the_adapter_from_environment_and_price_table(
    server: LoopbackServer,
) -> None:
    environ = {"OPENAI_API_KEY": KEY, "OPENAI_BASE_URL": f"{server.url}/v1"}
    model = load_model("openai:gpt-4.1-mini", Path("."), config=Config(), environ=environ)
    response = model.complete(Request(messages=MESSAGES))
    price = DEFAULT_PRICES["openai:gpt-4.1-mini"]
    assert response.cost == pytest.approx(price.cost(input_tokens=100, output_tokens=20))
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_spec_takes_the_key_from_the_config_when_the_environment_has_none(
    server: LoopbackServer,
) -> None:
    config = Config.model_validate({"keys": {"openai": KEY}})
    environ = {"OPENAI_BASE_URL": f"{server.url}/v1"}
    load_model("openai:gpt-4.1", Path("."), config=config, environ=environ).complete(
        Request(messages=MESSAGES)
    )
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"


def test_spec_errors_are_clear() -> None:
    with pytest.raises(
        ConfigError, match=r"no OpenAI API key: set \$OPENAI_API_KEY or keys.openai"
    ):
        load_model("openai:gpt-4.1-mini", Path("."), config=Config(), environ={})
    config = Config(keys=Keys.model_validate({"openai": KEY}))
    with pytest.raises(ConfigError, match=r'no price is known .*\[prices."openai:gpt-99"\]'):
        load_model("openai:gpt-99", Path("."), config=config, environ={})
    with pytest.raises(ConfigError, match="needs a model name"):
        load_model("openai:", Path("."), config=config, environ={})
    with pytest.raises(ConfigError, match="needs the server's base URL"):
        load_model("openai-compatible:localhost#m", Path("."), config=Config(), environ={})


def test_openai_key_is_never_sent_to_a_compatible_server(server: LoopbackServer) -> None:
    environ = {"OPENAI_API_KEY": KEY}
    spec = f"openai-compatible:{server.url}/v1#local-model"
    model = load_model(spec, Path("."), config=Config(), environ=environ)
    assert model.complete(Request(messages=MESSAGES)).cost == 0.0
    assert KEY not in server.requests[0].headers["authorization"]
    assert server.requests[0].json()["model"] == "local-model"


def test_a_loop_run_spends_money_and_never_records_the_key(
    server: LoopbackServer, script: Script, workspace: Path
) -> None:
    fix = {"kind": "write_file", "path": "app.py", "content": "def answer():\n    return 42\n"}
    script.replies = [chat_completion(json.dumps({"steps": [{"intent": "fix", "actions": [fix]}]}))]
    environ = {"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": KEY}
    model = load_model(
        "openai:gpt-4.1-mini",
        Path("."),
        config=Config(),
        environ={**environ, "OPENAI_BASE_URL": f"{server.url}/v1"},
    )
    goal = Goal(
        text="make answer() return 42",
        workspace=workspace,
        checks=["python3 -c 'import app; assert app.answer() == 42'"],
        budget=Budget(max_iterations=2, max_cost=1.0),
    )
    result = Engine(model, environ=environ).run(goal)
    assert result.status is RunStatus.SUCCESS
    assert result.cost > 0
    assert result.phases["plan"].cost == result.cost
    assert result.trace_path is not None
    trace = result.trace_path.read_text()
    assert KEY not in trace
    assert '"cost":' in trace
    assert all(KEY not in r.body.decode() for r in server.requests)
