"""OpenAI and OpenAI-compatible servers (vLLM, Ollama, llama.cpp server, LM Studio) through
the official ``openai`` SDK.

Structured output asks for ``response_format`` ``json_schema``; a server that rejects it
is asked again with ``json_object`` plus the schema (llama-cpp-python's dialect), then with
plain ``json_object``, and the adapter remembers what the server accepted. Either way the
answer is validated in one place, :func:`zerog.structured.ask`.

A greedy free-text request that asks for its ``confidence`` (second opinions on unsure
answers do) gets the chosen tokens' log-probabilities, so that a code answer carries its
:class:`~zerog.models.confidence.Confidence`, as with the local model. Only on request:
llama-cpp-python's server answers about ten times slower with them (BENCHMARKS.md). A
server that rejects ``logprobs`` is asked again without, and not asked for them again.

Degenerate output: answers from an OpenAI-compatible server are streamed (``stream``
defaults to ``compatible``) and read through a :class:`~zerog.models.degenerate.LoopGuard`;
once the answer repeats itself the adapter stops reading and closes the connection (the
server stops generating), cuts the answer where the loop began and reports
``finish="degenerate"``. Without streaming (OpenAI itself; answers whose confidence was
asked for, which need the non-streamed log-probabilities) the whole answer is checked the
same way. A stream whose server sends no usage counts one output token per streamed piece
and estimates the prompt.

The SDK's own retries are off: :mod:`zerog.models.retry` retries 429, 5xx, timeouts and
connection errors with backoff and jitter, with injectable sleep and randomness. The API
key is handed to the SDK only; it never appears in a message, an event or a trace.
``openai`` is imported when a model is built, never when zerog is imported.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from zerog.errors import ConfigError, ModelError
from zerog.models.base import Finish, Message, Request, Response, estimate_tokens
from zerog.models.confidence import Confidence, measure
from zerog.models.degenerate import DEGENERATE, LOOPS, LoopGuard, LoopRule, trim_loop
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
    import openai
    from openai import Stream
    from openai.types import CompletionUsage
    from openai.types.chat import (
        ChatCompletion,
        ChatCompletionChunk,
        ChatCompletionMessageParam,
        ChatCompletionStreamOptionsParam,
    )

OPENAI_URL = "https://api.openai.com/v1"
INSTALL_HINT = "pip install 'zerog[openai]'"
# Models that take no temperature and count output with max_completion_tokens.
_REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")
_RETRYABLE_STATUS = frozenset({408, 409, 425, 429})

Format = Literal["json_schema", "json_object_schema", "json_object"]
FORMATS: tuple[Format, ...] = ("json_schema", "json_object_schema", "json_object")


def chat_message(message: Message) -> ChatCompletionMessageParam:
    if message.role == "system":
        return {"role": "system", "content": message.content}
    if message.role == "assistant":
        return {"role": "assistant", "content": message.content}
    return {"role": "user", "content": message.content}


class OpenAIModel:
    """Chat completions against OpenAI (``compatible=False``) or any compatible server."""

    def __init__(
        self,
        model: str,
        *,
        api_key: str | None,
        base_url: str = OPENAI_URL,
        name: str | None = None,
        compatible: bool = False,
        price: Price = FREE,
        timeout: float = 120.0,
        retry: RetryPolicy | None = None,
        key_source: str = "$OPENAI_API_KEY",
        sleep: Callable[[float], None] = time.sleep,
        jitter: Callable[[], float] = random.random,
        stream: bool | None = None,
        loop_rule: LoopRule | None = LOOPS,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise ConfigError(
                f"the OpenAI backend needs the openai SDK; install it with: {INSTALL_HINT}"
            ) from None
        self._openai = openai
        self._model = model
        self._name = name or f"{'openai-compatible' if compatible else 'openai'}:{model}"
        self._compatible = compatible
        self._price = price
        self._retry = retry or RetryPolicy()
        self._key_source = key_source
        self._sleep = sleep
        self._jitter = jitter
        self._format = 0
        self._stream = compatible if stream is None else stream
        self._loop_rule = loop_rule  # None: no degenerate-output guard
        self._stream_usage = True  # ask for usage in the stream until the server refuses
        self._schemas = SchemaMemo(decoding_schema)
        self._reasoning = not compatible and model.startswith(_REASONING_PREFIXES)
        self._logprobs = not self._reasoning  # reasoning models give no log-probabilities
        # An OpenAI-compatible server without auth still needs a non-empty key for the SDK.
        self._client = openai.OpenAI(
            api_key=api_key or "unused", base_url=base_url, timeout=timeout, max_retries=0
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def client(self) -> openai.OpenAI:
        """The underlying SDK client (for benchmarks against the raw call)."""
        return self._client

    @property
    def response_format(self) -> Format:
        """The structured-output dialect this server accepted (or will be asked first)."""
        return FORMATS[self._format]

    def complete(self, request: Request) -> Response:
        messages = [chat_message(m) for m in request.messages]
        return with_retries(
            lambda: self._attempt(request, messages),
            self._retry,
            sleep=self._sleep,
            random=self._jitter,
            what=f"the call to {self._name}",
        )

    def _attempt(
        self, request: Request, messages: Sequence[ChatCompletionMessageParam]
    ) -> Response:
        openai = self._openai
        while True:
            try:
                if self._streams(request):
                    return self._streamed(request, messages)
                completion = self._create(request, messages)
            except openai.APIStatusError as exc:
                # Servers reject an unknown response_format with 400, 422 or even 500
                # (llama-cpp-python's server): step down to the next dialect.
                if request.json_schema is not None and self._rejects_format(exc):
                    self._format += 1
                    continue
                if self._wants_logprobs(request) and _rejects(exc, "logprobs"):
                    self._logprobs = False
                    continue
                if (
                    self._streams(request)
                    and self._stream_usage
                    and _rejects(exc, "stream_options")
                ):
                    self._stream_usage = False
                    continue
                raise self._translate(exc) from None
            except openai.OpenAIError as exc:
                raise self._translate(exc) from None
            return self._response(request, completion)

    def _rejects_format(self, exc: openai.APIStatusError) -> bool:
        return self._format + 1 < len(FORMATS) and _rejects(exc, "response_format")

    def _wants_logprobs(self, request: Request) -> bool:
        """Token log-probabilities for greedy free text (code answers), when the server
        takes them."""
        return (
            self._logprobs
            and request.confidence
            and request.json_schema is None
            and request.temperature == 0.0
        )

    def _streams(self, request: Request) -> bool:
        """Whether this answer is streamed (log-probabilities come unstreamed)."""
        return self._stream and not self._wants_logprobs(request)

    def _create(
        self, request: Request, messages: Sequence[ChatCompletionMessageParam]
    ) -> ChatCompletion:
        completion = self._send(request, messages, stream=False)
        if not isinstance(completion, self._openai.types.chat.ChatCompletion):
            raise ModelError(f"{self._name} streamed an answer that was asked for at once")
        return completion

    def _open_stream(
        self, request: Request, messages: Sequence[ChatCompletionMessageParam]
    ) -> Stream[ChatCompletionChunk]:
        stream = self._send(request, messages, stream=True)
        if not isinstance(stream, self._openai.Stream):
            raise ModelError(f"{self._name} answered at once where a stream was asked for")
        return stream

    def _streamed(
        self, request: Request, messages: Sequence[ChatCompletionMessageParam]
    ) -> Response:
        """Read a streamed answer through the loop guard; stop reading once it loops."""
        guard = LoopGuard(self._loop_rule) if self._loop_rule is not None else None
        pieces: list[str] = []
        finish: Finish = "stop"
        usage = None
        with self._open_stream(request, messages) as stream:
            for chunk in stream:
                if chunk.usage is not None:
                    usage = chunk.usage
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                piece = choice.delta.content or ""
                if piece:
                    pieces.append(piece)
                if choice.finish_reason == "length":
                    finish = "length"
                if guard is not None and guard.feed(piece):
                    finish = DEGENERATE
                    break  # leaving the block closes the connection: the server stops
        text = "".join(pieces)
        if finish == DEGENERATE:
            text, _ = trim_loop(text, self._loop_rule or LOOPS)
        if usage is None:
            counted = Usage(
                input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
                output_tokens=len(pieces),
            )
        else:
            counted = _usage(usage)
        return Response(
            text=text, usage=counted, cost=self._cost(counted), model=self._name, finish=finish
        )

    def _send(
        self,
        request: Request,
        messages: Sequence[ChatCompletionMessageParam],
        *,
        stream: bool,
    ) -> ChatCompletion | Stream[ChatCompletionChunk]:
        omit = self._openai.omit
        schema = request.json_schema
        fmt = FORMATS[self._format]
        extra: dict[str, object] | None = None
        if schema is not None and fmt == "json_schema":
            response_format: openai.types.chat.completion_create_params.ResponseFormat | None = {
                "type": "json_schema",
                "json_schema": {
                    "name": "answer",
                    "schema": self._schemas(schema),
                    "strict": False,
                },
            }
        elif schema is not None and fmt == "json_object_schema":
            response_format = None
            extra = {"response_format": {"type": "json_object", "schema": self._schemas(schema)}}
        elif schema is not None:
            response_format = {"type": "json_object"}
        else:
            response_format = None
        logprobs = self._wants_logprobs(request)
        usage: ChatCompletionStreamOptionsParam | None = (
            {"include_usage": True} if stream and self._stream_usage else None
        )
        return self._client.chat.completions.create(
            model=self._model,
            messages=messages,
            max_tokens=request.max_tokens if self._compatible else omit,
            max_completion_tokens=omit if self._compatible else request.max_tokens,
            temperature=omit if self._reasoning else request.temperature,
            seed=omit if request.seed is None else request.seed,
            response_format=omit if response_format is None else response_format,
            logprobs=True if logprobs else omit,
            top_logprobs=1 if logprobs else omit,  # llama.cpp's server needs it with logprobs
            extra_body=extra,
            stream=stream,
            stream_options=omit if usage is None else usage,
        )

    def _response(self, request: Request, completion: ChatCompletion) -> Response:
        if not completion.choices:
            raise ModelError(f"{self._name} returned no answer")
        message = completion.choices[0].message
        text = message.content
        if text is None:
            refusal = getattr(message, "refusal", None)
            if refusal:
                raise ModelError(f"{self._name} refused: {server_detail(str(refusal))}")
            text = ""
        usage = completion.usage
        if usage is None:
            counted = Usage(
                input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
                output_tokens=estimate_tokens(text),
            )
        else:
            counted = _usage(usage)
        finish: Finish = "length" if completion.choices[0].finish_reason == "length" else "stop"
        if self._loop_rule is not None:
            text, looped = trim_loop(text, self._loop_rule)
            finish = DEGENERATE if looped else finish
        confidence = _confidence(completion) if self._wants_logprobs(request) else None
        return Response(
            text=text,
            usage=counted,
            cost=self._cost(counted),
            model=self._name,
            confidence=confidence,
            finish=finish,
        )

    def _cost(self, counted: Usage) -> float:
        return self._price.cost(
            input_tokens=counted.input_tokens,
            output_tokens=counted.output_tokens,
            cached_tokens=counted.cached_tokens,
        )

    def _final(self, exc: openai.APIStatusError) -> ModelError:
        return ModelError(
            f"{self._name} answered HTTP {exc.status_code}: {server_detail(exc.message)}"
        )

    def _translate(self, exc: openai.OpenAIError) -> Exception:
        """Transient (to retry) or a final :class:`ModelError`."""
        openai = self._openai
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ModelError(
                f"{self._name} refused the API key (HTTP {exc.status_code}): check "
                f"{self._key_source}"
            )
        if isinstance(exc, openai.APIConnectionError):
            kind = "timed out" if isinstance(exc, openai.APITimeoutError) else "connection failed"
            return Transient(f"{kind}: {server_detail(str(exc))}")
        if isinstance(exc, openai.APIStatusError):
            status = exc.status_code
            if status in _RETRYABLE_STATUS or status >= 500:
                retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
                return Transient(
                    f"HTTP {status}: {server_detail(exc.message)}", retry_after=retry_after
                )
            return self._final(exc)
        return ModelError(f"{self._name} failed: {server_detail(str(exc))}")


def _rejects(exc: openai.APIStatusError, parameter: str) -> bool:
    """Whether an error answer says the server does not take ``parameter``."""
    if exc.status_code in (401, 403, 429):
        return False
    return parameter in f"{exc.message} {exc.body}".lower()


def _usage(usage: CompletionUsage) -> Usage:
    details = usage.prompt_tokens_details
    cached = (details.cached_tokens or 0) if details is not None else 0
    return Usage(
        input_tokens=usage.prompt_tokens,
        output_tokens=usage.completion_tokens,
        cached_tokens=cached,
    )


def _confidence(completion: ChatCompletion) -> Confidence | None:
    """The confidence of the first choice from its token log-probabilities, if given."""
    logprobs = completion.choices[0].logprobs
    tokens = logprobs.content if logprobs is not None else None
    if not tokens:
        return None
    pieces = [bytes(t.bytes) if t.bytes else t.token.encode("utf-8") for t in tokens]
    probs = [math.exp(min(t.logprob, 0.0)) for t in tokens]
    return measure(pieces, probs)
