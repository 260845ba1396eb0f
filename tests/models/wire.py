"""Wire-format answers for the loopback provider servers (OpenAI and Anthropic APIs)."""

from __future__ import annotations

from collections.abc import Mapping

from zerog.bench.loopback import HttpReply, HttpRequest

KEY = "sk-canary-0123456789abcdefghijklmn"


def chat_completion(
    content: str | None,
    prompt: int = 100,
    completion: int = 20,
    cached: int = 0,
    tokens: list[tuple[str, float]] | None = None,
) -> HttpReply:
    """A chat completion; ``tokens`` (piece, log-probability) become its ``logprobs``."""
    logprobs = (
        None
        if tokens is None
        else {
            "content": [
                {"token": t, "logprob": lp, "bytes": list(t.encode()), "top_logprobs": []}
                for t, lp in tokens
            ],
            "refusal": None,
        }
    )
    return HttpReply(
        200,
        {
            "id": "chatcmpl-1",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "served-model",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content, "refusal": None},
                    "finish_reason": "stop",
                    "logprobs": logprobs,
                }
            ],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
                "prompt_tokens_details": {"cached_tokens": cached},
            },
        },
    )


def openai_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> HttpReply:
    body = {"error": {"message": message, "type": "error", "param": None, "code": None}}
    return HttpReply(status, body, headers=dict(headers or {}))


def anthropic_message(
    blocks: list[dict[str, object]],
    input_tokens: int = 100,
    output_tokens: int = 20,
    cache_read: int = 0,
    cache_write: int = 0,
) -> HttpReply:
    return HttpReply(
        200,
        {
            "id": "msg_01",
            "type": "message",
            "role": "assistant",
            "model": "claude-test",
            "content": blocks,
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {
                "input_tokens": input_tokens,
                "output_tokens": output_tokens,
                "cache_read_input_tokens": cache_read,
                "cache_creation_input_tokens": cache_write,
            },
        },
    )


def tool_use(value: object) -> dict[str, object]:
    return {"type": "tool_use", "id": "toolu_01", "name": "answer", "input": value}


def anthropic_error(
    status: int, kind: str, message: str, headers: Mapping[str, str] | None = None
) -> HttpReply:
    body = {"type": "error", "error": {"type": kind, "message": message}}
    return HttpReply(status, body, headers=dict(headers or {}))


class Script:
    """Answers requests with the given replies in order; the last one repeats."""

    def __init__(self, *replies: HttpReply) -> None:
        self.replies = list(replies)

    def __call__(self, request: HttpRequest) -> HttpReply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]
