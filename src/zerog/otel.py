"""OpenTelemetry spans from the run's events: run, iteration, model call, action, check.

Off by default and never imported unless asked for (``pip install 'zerog[otel]'``, then
``--otlp-endpoint URL`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``). Model calls carry the
``gen_ai.*`` attributes of the OpenTelemetry semantic conventions. Commands, file contents
and model text are not put on spans: they may be large, and they are in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from zerog.errors import ConfigError
from zerog.event_catalog import (
    ActionStarted,
    CheckDone,
    IterationStarted,
    ModelCalled,
    ObservationMade,
    Resumed,
    RunFinished,
    RunStarted,
    StepChecked,
    parse,
)
from zerog.events import Event

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

_NS = 1_000_000_000


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


class OtelSink:
    """An event sink that turns a run's events into a tree of spans."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._run: Span | None = None
        self._iteration: Span | None = None
        self._action: Span | None = None

    def _child(self, name: str, start: float, parent: Span | None) -> Span:
        from opentelemetry import trace

        context = trace.set_span_in_context(parent) if parent is not None else None
        return self._tracer.start_span(name, context=context, start_time=_ns(start))

    def _close_iteration(self, ts: float) -> None:
        if self._iteration is not None:
            self._iteration.end(end_time=_ns(ts))
            self._iteration = None

    def emit(self, event: Event) -> None:
        ts = event.ts
        match parse(event):
            case RunStarted() as started:
                self._run = self._child("zerog.run", ts, None)
                self._run.set_attribute("zerog.run_id", event.run_id)
                self._run.set_attribute("zerog.sandbox", started.sandbox)
                self._run.set_attribute("gen_ai.request.model", started.model)
            case Resumed() if self._run is None:
                self._run = self._child("zerog.run", ts, None)
                self._run.set_attribute("zerog.run_id", event.run_id)
                self._run.set_attribute("zerog.resumed", True)
            case IterationStarted(iteration=iteration):
                self._close_iteration(ts)
                self._iteration = self._child("zerog.iteration", ts, self._run)
                self._iteration.set_attribute("zerog.iteration", iteration)
            case ModelCalled() as call:
                span = self._child(
                    f"chat {call.model}", ts - call.duration, self._iteration or self._run
                )
                span.set_attribute("gen_ai.operation.name", "chat")
                span.set_attribute("gen_ai.request.model", call.model)
                span.set_attribute("gen_ai.usage.input_tokens", call.input_tokens)
                span.set_attribute("gen_ai.usage.output_tokens", call.output_tokens)
                span.set_attribute("zerog.purpose", call.purpose)
                span.set_attribute("zerog.cost", call.cost)
                span.end(end_time=_ns(ts))
            case ActionStarted(action=action):
                self._action = self._child("zerog.action", ts, self._iteration or self._run)
                if action is not None:
                    self._action.set_attribute("zerog.action.kind", action.kind)
            case ObservationMade() as observed if self._action is not None:
                self._action.set_attribute("zerog.status", observed.status)
                if observed.exit_code is not None:
                    self._action.set_attribute("zerog.exit_code", observed.exit_code)
                self._action.end(end_time=_ns(ts))
                self._action = None
            case CheckDone() | StepChecked() as check:
                took = check.observation.duration
                span = self._child("zerog.check", ts - took, self._iteration or self._run)
                span.set_attribute("zerog.check.passed", check.passed)
                span.end(end_time=_ns(ts))
            case RunFinished() as finished if self._run is not None:
                self._close_iteration(ts)
                self._run.set_attribute("zerog.status", finished.status)
                self._run.set_attribute("gen_ai.usage.input_tokens", finished.input_tokens)
                self._run.set_attribute("gen_ai.usage.output_tokens", finished.output_tokens)
                self._run.set_attribute("zerog.cost", finished.cost)
                self._run.end(end_time=_ns(ts))
                self._run = None
            case _:
                pass  # other kinds make no span; an unknown event is skipped


def otlp_provider(endpoint: str) -> TracerProvider:
    """A tracer provider that batches spans to an OTLP/HTTP collector at ``endpoint``."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise ConfigError(
            "OpenTelemetry export needs the otel extra: pip install 'zerog[otel]'"
        ) from None
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider = TracerProvider(resource=Resource.create({"service.name": "zerog"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider
