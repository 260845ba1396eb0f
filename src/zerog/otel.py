"""OpenTelemetry spans from the run's events: run, iteration, model call, action, check.

Off by default and never imported unless asked for (``pip install 'zerog[otel]'``, then
``--otlp-endpoint URL`` or ``OTEL_EXPORTER_OTLP_ENDPOINT``). Model calls carry the
``gen_ai.*`` attributes of the OpenTelemetry semantic conventions. Commands, file contents
and model text are not put on spans: they may be large, and they are in the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from zerog.errors import ConfigError
from zerog.events import Event

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span, Tracer

_NS = 1_000_000_000


def _ns(seconds: float) -> int:
    return int(seconds * _NS)


def _num(data: Mapping[str, object], key: str) -> float:
    try:
        return float(str(data.get(key, 0)))
    except ValueError:
        return 0.0


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
        d, ts, kind = event.data, event.ts, event.kind
        if kind == "run_started":
            self._run = self._child("zerog.run", ts, None)
            self._run.set_attribute("zerog.run_id", event.run_id)
            self._run.set_attribute("zerog.sandbox", str(d.get("sandbox", "")))
            self._run.set_attribute("gen_ai.request.model", str(d.get("model", "")))
        elif kind == "resumed" and self._run is None:
            self._run = self._child("zerog.run", ts, None)
            self._run.set_attribute("zerog.run_id", event.run_id)
            self._run.set_attribute("zerog.resumed", True)
        elif kind == "iteration_started":
            self._close_iteration(ts)
            self._iteration = self._child("zerog.iteration", ts, self._run)
            self._iteration.set_attribute("zerog.iteration", int(_num(d, "iteration")))
        elif kind == "model_call":
            span = self._child(
                f"chat {d.get('model', '')}", ts - _num(d, "duration"), self._iteration or self._run
            )
            span.set_attribute("gen_ai.operation.name", "chat")
            span.set_attribute("gen_ai.request.model", str(d.get("model", "")))
            span.set_attribute("gen_ai.usage.input_tokens", int(_num(d, "input_tokens")))
            span.set_attribute("gen_ai.usage.output_tokens", int(_num(d, "output_tokens")))
            span.set_attribute("zerog.purpose", str(d.get("purpose", "")))
            span.set_attribute("zerog.cost", _num(d, "cost"))
            span.end(end_time=_ns(ts))
        elif kind == "action":
            action = d.get("action")
            self._action = self._child("zerog.action", ts, self._iteration or self._run)
            if isinstance(action, Mapping):
                self._action.set_attribute("zerog.action.kind", str(action.get("kind", "")))
        elif kind == "observation" and self._action is not None:
            self._action.set_attribute("zerog.status", str(d.get("status", "")))
            if d.get("exit_code") is not None:
                self._action.set_attribute("zerog.exit_code", int(_num(d, "exit_code")))
            self._action.end(end_time=_ns(ts))
            self._action = None
        elif kind in ("check", "step_check"):
            observation = d.get("observation")
            took = _num(observation, "duration") if isinstance(observation, Mapping) else 0.0
            span = self._child("zerog.check", ts - took, self._iteration or self._run)
            span.set_attribute("zerog.check.passed", bool(d.get("passed")))
            span.end(end_time=_ns(ts))
        elif kind == "run_finished" and self._run is not None:
            self._close_iteration(ts)
            self._run.set_attribute("zerog.status", str(d.get("status", "")))
            self._run.set_attribute("gen_ai.usage.input_tokens", int(_num(d, "input_tokens")))
            self._run.set_attribute("gen_ai.usage.output_tokens", int(_num(d, "output_tokens")))
            self._run.set_attribute("zerog.cost", _num(d, "cost"))
            self._run.end(end_time=_ns(ts))
            self._run = None


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
