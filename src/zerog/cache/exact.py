"""The exact model-call cache: a Model wrapper keyed on the normalized request.

Only deterministic requests are cached (temperature 0, or a fixed seed): a sampled answer
is not "the" answer to its request. A hit returns the stored text with no usage and no
cost, marked ``cache_hit`` so that the meter, the trace and the run summary show it, and
says what the original call spent (``saved``: its tokens and seconds).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable

from zerog.cache.db import CacheDB
from zerog.models.base import Model, Request, Response
from zerog.models.confidence import Confidence
from zerog.models.degenerate import DEGENERATE
from zerog.types import Usage

KIND = "model"


def deterministic(request: Request) -> bool:
    return request.temperature == 0.0 or request.seed is not None


def request_key(model: str, request: Request) -> str:
    """sha256 of what decides the answer: model, messages, schema, sampling, max_tokens."""
    body = {
        "model": model,
        "messages": [[m.role, m.content] for m in request.messages],
        "schema": request.json_schema,
        "temperature": request.temperature,
        "seed": request.seed,
        "max_tokens": request.max_tokens,
    }
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class CachedModel:
    """Answers a deterministic request it has seen before from the cache."""

    def __init__(
        self, model: Model, cache: CacheDB, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._model = model
        self._cache = cache
        self._clock = clock

    @property
    def name(self) -> str:
        return self._model.name

    def complete(self, request: Request) -> Response:
        if not deterministic(request):
            self._cache.count(KIND, "uncacheable")
            return self._model.complete(request)
        key = request_key(self._model.name, request)
        stored = self._cache.get(KIND, key)
        if (
            stored is not None
            and request.confidence
            and not isinstance(stored.get("confidence"), dict)
        ):
            stored = None  # answered before without its confidence: ask again, store that
        if stored is not None and isinstance(stored.get("text"), str):
            self._cache.count(KIND, "hit")
            confidence = stored.get("confidence")
            return Response(
                text=str(stored["text"]),
                model=str(stored.get("model", "")),
                cache_hit=True,
                confidence=(
                    Confidence.model_validate(confidence) if isinstance(confidence, dict) else None
                ),
                saved=Usage(
                    input_tokens=_int(stored.get("input_tokens")),
                    output_tokens=_int(stored.get("output_tokens")),
                ),
                saved_seconds=_float(stored.get("seconds")),
            )
        self._cache.count(KIND, "miss")
        started = self._clock()
        response = self._model.complete(request)
        seconds = self._clock() - started
        if response.finish == DEGENERATE:
            return response  # a failed answer (it looped): never served again
        self._cache.put(
            KIND,
            key,
            {
                "text": response.text,
                "model": response.model,
                "input_tokens": response.usage.input_tokens,
                "output_tokens": response.usage.output_tokens,
                "cost": response.cost,
                "seconds": round(seconds, 6),
                "confidence": (
                    response.confidence.model_dump() if response.confidence is not None else None
                ),
            },
        )
        return response


def _int(value: object) -> int:
    return value if isinstance(value, int) and value >= 0 else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and value >= 0 else 0.0
