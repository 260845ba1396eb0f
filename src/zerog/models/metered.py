"""A model wrapper that enforces the run's budget and records every call as an event."""

from __future__ import annotations

from collections.abc import Callable

from zerog.budget import Meter
from zerog.events import Recorder
from zerog.models.base import Model, Request, Response


class MeteredModel:
    """Checks the budget before each call, clamps ``max_tokens``, then counts the usage."""

    def __init__(
        self, model: Model, meter: Meter, recorder: Recorder, clock: Callable[[], float]
    ) -> None:
        self._model = model
        self._meter = meter
        self._recorder = recorder
        self._clock = clock

    @property
    def name(self) -> str:
        return self._model.name

    def complete(self, request: Request) -> Response:
        self._meter.check()
        allowance = self._meter.output_allowance(request.max_tokens)
        if allowance != request.max_tokens:
            request = request.model_copy(update={"max_tokens": allowance})
        started = self._clock()
        response = self._model.complete(request)
        self._meter.record(response.usage, response.cost, request.purpose)
        self._recorder.emit(
            "model_call",
            purpose=request.purpose,
            model=response.model or self._model.name,
            input_tokens=response.usage.input_tokens,
            output_tokens=response.usage.output_tokens,
            cached_tokens=response.usage.cached_tokens,
            cost=response.cost,
            duration=round(self._clock() - started, 6),
        )
        return response
