"""The model seam: one method, ``complete(request) -> response``."""

from __future__ import annotations

from typing import Literal, Protocol, runtime_checkable

from pydantic import Field

from zerog.models.confidence import Confidence
from zerog.types import Frozen, Usage

Role = Literal["system", "user", "assistant"]


class Message(Frozen):
    role: Role
    content: str


class Request(Frozen):
    """One model call. ``json_schema`` asks for a JSON object that validates against it."""

    messages: tuple[Message, ...] = Field(min_length=1)
    json_schema: dict[str, object] | None = None
    max_tokens: int = Field(default=2048, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    seed: int | None = None
    purpose: str = ""
    # Ask for the probabilities of the answer's tokens (Response.confidence). Backends give
    # them for greedy free-text answers only; costly on some servers, so only on request.
    confidence: bool = False
    # 0 for a question asked the first time; n for its n-th re-ask after an invalid or
    # degenerate answer (see :func:`reask`). A cascade moves up on a re-ask.
    attempt: int = Field(default=0, ge=0)


# The temperature of a re-ask that was greedy: different enough to leave a loop.
REASK_TEMPERATURE = 0.7
REASK_SEED = 1_000_003

Finish = Literal["stop", "length", "degenerate"]


def reask(request: Request, messages: tuple[Message, ...]) -> Request:
    """The request that asks again after an invalid or degenerate answer to ``request``.

    Never the same greedy request again (it would give the same answer token for token):
    the re-ask carries ``messages`` (the question with the rejected answer and the reason),
    counts one more ``attempt``, and is sampled: a greedy request gets
    :data:`REASK_TEMPERATURE`, and every re-ask a seed of its own."""
    attempt = request.attempt + 1
    base = 0 if request.seed is None else request.seed
    return request.model_copy(
        update={
            "messages": messages,
            "attempt": attempt,
            "temperature": request.temperature or REASK_TEMPERATURE,
            "seed": base + attempt * REASK_SEED,
        }
    )


class Response(Frozen):
    text: str
    usage: Usage = Usage()
    cost: float = 0.0
    model: str = ""
    cache_hit: bool = False  # answered from an exact cache: no tokens were spent
    confidence: Confidence | None = None  # token probabilities, from backends that have them
    # A cache hit: what the original call spent (tokens, seconds), which this one did not.
    saved: Usage | None = None
    saved_seconds: float = 0.0
    # Why the answer ended: "stop" (it was complete), "length" (max_tokens reached) or
    # "degenerate" (it was repeating itself and was cut where the loop began).
    finish: Finish = "stop"


class Model(Protocol):
    """Anything that turns a request into a response. Backends are one file each."""

    @property
    def name(self) -> str: ...

    def complete(self, request: Request) -> Response: ...


@runtime_checkable
class Stateful(Protocol):
    """A model whose answers depend on how many calls came before (a script).

    When a resumed run answers a call from its record instead of the backend, it tells a
    stateful backend with ``skip`` so that the backend's position stays in step."""

    def skip(self, request: Request) -> None: ...


def estimate_tokens(text: str) -> int:
    """A rough token count (4 characters a token) for backends that report none."""
    return (len(text) + 3) // 4
