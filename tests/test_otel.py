"""OpenTelemetry spans from a real run: in memory, and over OTLP/HTTP to a loopback server."""

from __future__ import annotations

import http.server
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from builders import acts, plan, scripted, step, write, write_script
from zerog import Engine, Goal
from zerog.otel import OtelSink

CHECK = "python3 -c 'import app; assert app.answer() == 42'"


def test_spans_form_a_tree_with_gen_ai_attributes(workspace: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    model = scripted(
        plan(step("wrong", write("app.py", "def answer():\n    return 1\n"))),
        plan(step("right")),
        acts(write("app.py", "def answer():\n    return 42\n")),
    )
    engine = Engine(
        model,
        sinks=[OtelSink(provider.get_tracer("test"))],
        environ={"PATH": "/usr/bin:/bin"},
        sandbox_name="local",
    )
    result = engine.run(Goal(text="answer 42", workspace=workspace, checks=[CHECK]))
    assert result.ok
    spans = exporter.get_finished_spans()
    by_name: dict[str, list[object]] = {}
    for span in spans:
        by_name.setdefault(span.name.split(" ")[0], []).append(span)
    assert len(by_name["zerog.run"]) == 1
    assert len(by_name["zerog.iteration"]) == 2
    assert len(by_name["chat"]) == 3
    assert len(by_name["zerog.action"]) == 2
    assert len(by_name["zerog.check"]) == 3  # the preflight's, then one per iteration
    run = next(s for s in spans if s.name == "zerog.run")
    iterations = [s for s in spans if s.name == "zerog.iteration"]
    assert all(s.parent is not None and s.parent.span_id == run.context.span_id for s in iterations)
    chat = next(s for s in spans if s.name.startswith("chat"))
    attributes = dict(chat.attributes or {})
    assert attributes["gen_ai.operation.name"] == "chat"
    assert int(str(attributes["gen_ai.usage.input_tokens"])) > 0
    assert chat.parent is not None
    assert chat.parent.span_id == iterations[0].context.span_id
    assert dict(run.attributes or {})["zerog.status"] == "success"
    for span in spans:
        assert span.end_time is not None
        assert span.start_time is not None
        assert span.end_time >= span.start_time


@pytest.mark.slow
def test_cli_exports_over_otlp_http(workspace: Path, tmp_path: Path) -> None:
    received: list[tuple[str, str, int]] = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            self.rfile.read(length)
            received.append((self.path, self.headers.get("Content-Type", ""), length))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        script = write_script(
            tmp_path / "s.jsonl",
            plan(step("fix", write("app.py", "def answer():\n    return 42\n"))),
        )
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "zerog",
                "run",
                "answer 42",
                "-w",
                str(workspace),
                "-c",
                CHECK,
                "-m",
                f"scripted:{script}",
                "--sandbox",
                "local",
                "--quiet",
                "--store",
                str(tmp_path / "runs.db"),
                "--otlp-endpoint",
                endpoint,
            ],
            env={**os.environ},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    assert received, "no spans reached the collector"
    path, content_type, length = received[0]
    assert path == "/v1/traces"
    assert content_type == "application/x-protobuf"
    assert length > 100
