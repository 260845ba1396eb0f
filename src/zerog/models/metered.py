"""A model wrapper that enforces the run's budget and records every call as an event."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable

from zerog.budget import Meter
from zerog.events import Recorder
from zerog.models.base import Model, Request, Response, Stateful

Replayed = Callable[[int], Response | None]


_VOLATILE = re.compile(r"\d+\.\d+")


def _new_fields_unset(request: Request) -> set[str] | None:
    unset = {name for name in ("confidence", "attempt") if not getattr(request, name)}
    return unset or None


def request_digest(request: Request) -> str:
    """A short fingerprint of what was asked (to spot divergence on replay); decimal
    numbers such as timings are masked so that they alone do not count as a change."""
    # A field at its default is left out, so runs recorded before it existed still match.
    text = _VOLATILE.sub("#", request.model_dump_json(exclude=_new_fields_unset(request)))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _saved(response: Response) -> dict[str, int | float]:
    """What a cache hit's original call spent (nothing for other calls)."""
    if response.saved is None:
        return {}
    return {
        "saved_input_tokens": response.saved.input_tokens,
        "saved_output_tokens": response.saved.output_tokens,
        "saved_seconds": round(response.saved_seconds, 6),
    }


class MeteredModel:
    """Checks the budget before each call, clamps ``max_tokens``, then counts the usage.

    ``replayed(n)`` may return the recorded response of the n-th call of a resumed run, in
    which case the backend is not called at all.
    """

    def __init__(
        self,
        model: Model,
        meter: Meter,
        recorder: Recorder,
        clock: Callable[[], float],
        replayed: Replayed | None = None,
    ) -> None:
        self._model = model
        self._meter = meter
        self._recorder = recorder
        self._clock = clock
        self._replayed = replayed
        self.calls = 0

    @property
    def name(self) -> str:
        return self._model.name

    def complete(self, request: Request) -> Response:
        self._meter.check()
        allowance = self._meter.output_allowance(request.max_tokens)
        if allowance != request.max_tokens:
            request = request.model_copy(update={"max_tokens": allowance})
        self.calls += 1
        started = self._clock()
        response = self._replayed(self.calls) if self._replayed else None
        if response is None:
            response = self._model.complete(request)
        elif isinstance(self._model, Stateful) and not response.cache_hit:
            self._model.skip(request)  # a recorded cache hit never reached the backend
        name = response.model or self._model.name
        self._meter.record(response.usage, response.cost, request.purpose, name)
        if response.cache_hit:
            self._meter.cache_hits["model"] = self._meter.cache_hits.get("model", 0) + 1
        self._recorder.emit(
            "model_call",
            call=self.calls,
            purpose=request.purpose,
            model=name,
            request=request_digest(request),
            text=response.text,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cached_tokens=response.usage.cached_tokens,
            cost=response.cost,
            cache_hit=response.cache_hit,
            finish=response.finish,
            attempt=request.attempt,
            confidence=(
                response.confidence.model_dump() if response.confidence is not None else None
            ),
            **_saved(response),
            duration=round(self._clock() - started, 6),
        )
        return response
