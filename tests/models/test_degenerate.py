"""The degenerate-output guard: the loop detector, answers stopped where they start to
loop (a streaming OpenAI-compatible server on loopback), non-streamed answers cut, and
re-asks that are never the same greedy request again."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.sse import StreamingServer
from models.wire import KEY, Script, anthropic_message, chat_completion
from zerog.bench.loopback import LoopbackServer
from zerog.models.anthropic import AnthropicModel
from zerog.models.base import REASK_TEMPERATURE, Message, Request, reask
from zerog.models.degenerate import DEGENERATE, LoopGuard, LoopRule, find_loop, trim_loop
from zerog.models.openai import OpenAIModel
from zerog.models.retry import RetryPolicy
from zerog.structured import ask
from zerog.types import Plan

SOURCE = Path(__file__).resolve().parents[2] / "src" / "zerog" / "engine" / "loop.py"
LINE = "print('all work and no play')\n"
PLAN = {"steps": [{"intent": "say hi", "actions": [{"kind": "shell", "command": "echo hi"}]}]}
MESSAGES = (Message(role="user", content="Plan it."),)


def test_a_repeated_line_is_a_loop_cut_after_its_first_copy() -> None:
    text = "def main():\n" + LINE * 20
    # The loop starts at the first newline that repeats: one copy of it is kept.
    assert trim_loop(text) == ("def main():\n" + LINE.rstrip("\n"), True)
    assert trim_loop("x = 1" + "ab" * 200) == ("x = 1ab", True)


def test_short_repeats_and_real_code_are_not_loops() -> None:
    assert find_loop("x = [\n" + "    0,\n" * 30) is None  # 180 characters: under the floor
    assert find_loop("=" * 255) is None
    assert find_loop("=" * 256) == 1
    source = SOURCE.read_text(encoding="utf-8")
    guard = LoopGuard()
    assert not any(guard.feed(source[i : i + 7]) for i in range(0, len(source), 7))
    assert trim_loop(source) == (source, False)


def test_the_guard_trips_on_a_loop_fed_piece_by_piece_and_stays_tripped() -> None:
    guard = LoopGuard(LoopRule(repeats=3, min_chars=60, every=8))
    pieces = ["Sure:\n", *("line\n" for _ in range(30))]
    tripped_at = next(i for i, piece in enumerate(pieces) if guard.feed(piece))
    assert 12 <= tripped_at <= 16  # 60 characters of "line\n" are 12 copies
    assert guard.feed("something else")


def test_a_reask_is_sampled_with_a_seed_of_its_own() -> None:
    greedy = Request(messages=MESSAGES, purpose="plan")
    again = reask(greedy, (*MESSAGES, Message(role="user", content="invalid")))
    third = reask(again, again.messages)
    assert (greedy.temperature, greedy.attempt) == (0.0, 0)
    assert (again.temperature, again.attempt, third.attempt) == (REASK_TEMPERATURE, 1, 2)
    assert len({greedy.seed, again.seed, third.seed}) == 3
    assert again.messages[-1].content == "invalid"
    sampled = Request(messages=MESSAGES, temperature=0.3, seed=5)
    assert reask(sampled, MESSAGES).temperature == 0.3  # already sampled: kept


@pytest.fixture
def looping() -> Iterator[StreamingServer]:
    with StreamingServer(["Here it is:\n", *(LINE for _ in range(5000))]) as server:
        yield server


def compatible(url: str, **kw: object) -> OpenAIModel:
    return OpenAIModel(
        "served",
        api_key=None,
        base_url=url,
        compatible=True,
        retry=RetryPolicy(max_retries=0),
        **kw,  # type: ignore[arg-type]
    )


def test_a_streamed_looping_answer_is_stopped_early(looping: StreamingServer) -> None:
    started = time.monotonic()
    response = compatible(looping.url).complete(Request(messages=MESSAGES, max_tokens=8000))
    assert response.finish == DEGENERATE
    assert response.text == "Here it is:\n" + LINE.rstrip("\n")
    assert looping.done.wait(5)
    assert looping.sent < 100  # of 5000: the adapter hung up, the server stopped
    assert time.monotonic() - started < 5  # the whole stream takes 10 s at least
    assert looping.bodies[0]["stream"] is True
    assert response.usage.output_tokens >= 9  # one per streamed piece: no usage was sent


def test_without_the_guard_the_whole_stream_is_read() -> None:
    with StreamingServer(["a", "b"] * 200, pause=0.0) as server:
        response = compatible(server.url, loop_rule=None).complete(Request(messages=MESSAGES))
    assert response.text == "ab" * 200
    assert response.finish == "length"
    assert server.sent == 400


def test_an_unstreamed_looping_answer_is_cut_and_the_reask_is_sampled() -> None:
    script = Script(chat_completion("{\n" + "\n" * 600), chat_completion(json.dumps(PLAN)))
    with LoopbackServer(script) as server:
        model = OpenAIModel(
            "gpt-4.1-mini",
            api_key=KEY,
            base_url=f"{server.url}/v1",
            retry=RetryPolicy(max_retries=0),
        )
        plan = ask(model, MESSAGES, Plan, purpose="plan")
        first, second = (r.json() for r in server.requests)
    assert plan.steps[0].intent == "say hi"
    assert not first.get("stream")
    assert first["temperature"] == 0.0
    assert "seed" not in first
    assert second["temperature"] == REASK_TEMPERATURE
    assert isinstance(second["seed"], int)
    reasked = second["messages"]
    assert isinstance(reasked, list)
    assert "repeated itself in a loop" in str(reasked[-1])


def test_a_looping_anthropic_answer_is_cut() -> None:
    text: dict[str, object] = {"type": "text", "text": "Steps:\n" + "- do it again\n" * 100}
    with LoopbackServer(Script(anthropic_message([text]))) as server:
        model = AnthropicModel(
            "claude-test", api_key=KEY, base_url=server.url, retry=RetryPolicy(max_retries=0)
        )
        response = model.complete(Request(messages=MESSAGES))
    assert response.finish == DEGENERATE
    assert response.text == "Steps:\n- do it again"
