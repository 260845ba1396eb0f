"""Anthropic's Messages API through the official ``anthropic`` SDK.

Structured output is a forced tool call: one tool, ``answer``, whose ``input_schema`` is
the request's schema, and ``tool_choice`` naming it. The tool input is returned as JSON
text and validated in one place, :func:`zerog.structured.ask`. A reply without the tool
call falls back to its text, which the same path parses or re-asks.

Usage counts every input token: Anthropic reports uncached input, cache reads and cache
writes apart; zerog's ``input_tokens`` is their sum and ``cached_tokens`` the cache reads.
The SDK's own retries are off (see :mod:`zerog.models.retry`). No temperature or seed is
sent: the Messages API of the SDK this is built on (2.x) takes neither. ``anthropic`` is imported
when a model is built, never when zerog is imported.

Answers are not streamed: a text answer that ends in a loop (the same span repeated, see
:mod:`zerog.models.degenerate`) is cut where the loop began and reported with
``finish="degenerate"``; ``max_tokens`` reached is ``finish="length"``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from zerog.errors import ConfigError, ModelError
from zerog.models.base import Finish, Message, Request, Response
from zerog.models.degenerate import DEGENERATE, trim_loop
from zerog.models.pricing import FREE, Price
from zerog.models.retry import (
    RetryPolicy,
    Transient,
    parse_retry_after,
    server_detail,
    with_retries,
)
from zerog.models.schema import SchemaMemo, decoding_schema
from zerog.types import Usage

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import Message as AnthropicMessage
    from anthropic.types import MessageParam

ANTHROPIC_URL = "https://api.anthropic.com"
INSTALL_HINT = "pip install 'zerog[anthropic]'"
TOOL_NAME = "answer"
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})


def split_messages(messages: Sequence[Message]) -> tuple[str, list[MessageParam]]:
    """The system prompt, and the turns with consecutive same-role turns merged."""
    system = "\n\n".join(m.content for m in messages if m.role == "system")
    merged: list[tuple[bool, str]] = []  # (is_assistant, content)
    for message in messages:
        if message.role == "system":
            continue
        assistant = message.role == "assistant"
        if merged and merged[-1][0] == assistant:
            merged[-1] = (assistant, f"{merged[-1][1]}\n\n{message.content}")
        else:
            merged.append((assistant, message.content))
    if not merged or merged[0][0]:
        merged.insert(0, (False, "Continue."))
    turns: list[MessageParam] = [
        {"role": "assistant", "content": content}
        if assistant
        else {"role": "user", "content": content}
        for assistant, content in merged
    ]
    return system, turns


class AnthropicModel:
    """Claude models through the Messages API."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str = ANTHROPIC_URL,
        name: str | None = None,
        price: Price = FREE,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        key_source: str = "$ANTHROPIC_API_KEY",
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        try:
            import anthropic
        except ImportError:
            raise ConfigError(
                f"the Anthropic backend needs the anthropic SDK; install it with: {INSTALL_HINT}"
            ) from None
        if not api_key:
            raise ConfigError(f"no Anthropic API key: set {key_source}")
        self._anthropic = anthropic
        self._model = model
        self._name = name or f"anthropic:{model}"
        self._price = price
        self._retry = retry or RetryPolicy()
        self._key_source = key_source
        self._sleep = sleep
        self._jitter = jitter
        self._schemas = SchemaMemo(decoding_schema)
        self._client = anthropic.Anthropic(
            api_key=api_key, base_url=base_url, timeout=timeout, max_retries=0
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> anthropic.Anthropic:
        """The underlying SDK client (for benchmarks against the raw call)."""
        return self._client

    def complete(self, request: Request) -> Response:
        system, turns = split_messages(request.messages)
        return with_retries(
            lambda: self._attempt(request, system, turns),
            self._retry,
            sleep=self._sleep,
            random=self._jitter,
            what=f"the call to {self._name}",
        )

    def _attempt(self, request: Request, system: str, turns: list[MessageParam]) -> Response:
        omit = self._anthropic.omit
        schema = request.json_schema
        try:
            if schema is None:
                message = self._client.messages.create(
                    model=self._model,
                    max_tokens=request.max_tokens,
                    messages=turns,
                    system=system or omit,
                )
            else:
                message = self._client.messages.create(
                    model=self._model,
                    max_tokens=request.max_tokens,
                    messages=turns,
                    system=system or omit,
                    tools=[
                        {
                            "name": TOOL_NAME,
                            "description": "Give your answer by calling this tool with the "
                            "requested JSON object as its input.",
                            "input_schema": self._schemas(schema),
                        }
                    ],
                    tool_choice={"type": "tool", "name": TOOL_NAME},
                )
        except self._anthropic.AnthropicError as exc:
            raise self._translate(exc) from None
        return self._response(message)

    def _response(self, message: AnthropicMessage) -> Response:
        text = ""
        for block in message.content:
            if block.type == "tool_use" and block.name == TOOL_NAME:
                text = json.dumps(block.input)
                break
        else:
            text = "".join(block.text for block in message.content if block.type == "text")
        usage = message.usage
        read = usage.cache_read_input_tokens or 0
        written = usage.cache_creation_input_tokens or 0
        total_input = usage.input_tokens + read + written
        counted = Usage(
            input_tokens=total_input, output_tokens=usage.output_tokens, cached_tokens=read
        )
        cost = self._price.cost(
            input_tokens=total_input,
            output_tokens=usage.output_tokens,
            cached_tokens=read,
            written=written,
        )
        finish: Finish = "length" if message.stop_reason == "max_tokens" else "stop"
        text, looped = trim_loop(text)
        return Response(
            text=text,
            usage=counted,
            cost=cost,
            model=self._name,
            finish=DEGENERATE if looped else finish,
        )

    def _translate(self, exc: anthropic.AnthropicError) -> Exception:
        """Transient (to retry) or a final :class:`ModelError`."""
        anthropic = self._anthropic
        if isinstance(exc, anthropic.AuthenticationError | anthropic.PermissionDeniedError):
            return ModelError(
                f"{self._name} refused the API key (HTTP {exc.status_code}): check "
                f"{self._key_source}"
            )
        if isinstance(exc, anthropic.APIConnectionError):
            kind = (
                "timed out" if isinstance(exc, anthropic.APITimeoutError) else "connection failed"
            )
            return Transient(f"{kind}: {server_detail(str(exc))}")
        if isinstance(exc, anthropic.APIStatusError):
            status = exc.status_code
            if status in _RETRYABLE_STATUS or status >= 500:
                retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
                return Transient(
                    f"HTTP {status}: {server_detail(exc.message)}", retry_after=retry_after
                )
            return ModelError(f"{self._name} answered HTTP {status}: {server_detail(exc.message)}")
        return ModelError(f"{self._name} failed: {server_detail(str(exc))}")
