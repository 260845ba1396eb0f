"""The model server the peer agents of `zerog bench repos` talk to, and what they spend.

:class:`LlamaServer` starts ``python -m llama_cpp.server`` on 127.0.0.1 with a local GGUF
file. :class:`UsageProxy` sits in front of it (or of any OpenAI-compatible server) on a
free loopback port, forwards each request unchanged, and records for every chat or
completion answer its ``usage`` (prompt and completion tokens), its ``finish_reason`` and
how long the server took: the peers' model calls, tokens and model seconds, measured the
same way for every agent. Streamed answers are forwarded as they are and counted as calls
without usage (the runner asks its peers not to stream).
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit

from zerog.errors import ConfigError

MAX_BODY = 32 * 1024 * 1024
HOP_HEADERS = frozenset({"connection", "keep-alive", "transfer-encoding", "host", "content-length"})


@dataclass(frozen=True)
class Usage:
    """One model answer as the proxy saw it."""

    prompt_tokens: int
    completion_tokens: int
    seconds: float
    finish_reason: str
    started: float = 0.0  # time.monotonic() when the request reached the proxy


def parse_usage(body: bytes, seconds: float, started: float = 0.0) -> Usage | None:
    """The usage of a chat/completion answer body; None when it is not one."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict) or "choices" not in data:
        return None
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    choices = data.get("choices")
    reason = ""
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        reason = str(choices[0].get("finish_reason") or "")

    def count(key: str) -> int:
        value = usage.get(key, 0) if isinstance(usage, dict) else 0
        return value if isinstance(value, int) and value >= 0 else 0

    return Usage(count("prompt_tokens"), count("completion_tokens"), seconds, reason, started)


class UsageProxy:
    """``with UsageProxy(upstream) as proxy: ... proxy.url ...; proxy.take()``."""

    def __init__(self, upstream: str, timeout: float = 3600.0) -> None:
        parts = urlsplit(upstream)
        if parts.hostname is None or parts.scheme != "http":
            raise ConfigError(f"the proxy forwards to an http:// URL, not {upstream!r}")
        self._host = parts.hostname
        self._port = parts.port or 80
        self._timeout = timeout
        self._lock = threading.Lock()
        self._records: list[Usage] = []
        self._in_flight = 0
        self._idle = threading.Condition(self._lock)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{int(self._server.server_address[1])}"

    def take(self, since: float = 0.0) -> list[Usage]:
        """The answers to requests that arrived at or after ``since`` (a ``time.monotonic()``
        value) recorded since the last call; all recorded answers are forgotten. An agent
        killed at its time limit leaves its request running on the server: its answer
        arrives later and must not count for the next agent."""
        with self._lock:
            records, self._records = self._records, []
        return [r for r in records if r.started >= since]

    def settle(self, timeout: float) -> bool:
        """Wait until no request is in flight (the server is free again); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._in_flight == 0, timeout=timeout)

    def _begin(self) -> None:
        with self._lock:
            self._in_flight += 1

    def _end(self) -> None:
        with self._idle:
            self._in_flight -= 1
            self._idle.notify_all()

    def __enter__(self) -> UsageProxy:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _record(self, usage: Usage) -> None:
        with self._lock:
            self._records.append(usage)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes, float]:
        connection = http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            return (
                response.status,
                [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_HEADERS],
                payload,
                time.perf_counter() - started,
            )
        finally:
            connection.close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        forward = self._forward
        record = self._record
        begin, end = self._begin, self._end

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _handle(self) -> None:
                length = min(int(self.headers.get("Content-Length") or 0), MAX_BODY)
                body = self.rfile.read(length) if length else b""
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_HEADERS}
                started = time.monotonic()
                begin()
                try:
                    status, reply_headers, payload, seconds = forward(
                        self.command, self.path, headers, body
                    )
                except OSError as exc:
                    status, reply_headers, seconds = 502, [], 0.0
                    payload = json.dumps({"error": f"upstream: {exc}"}).encode()
                finally:
                    end()
                if self.command == "POST":
                    usage = parse_usage(payload, seconds, started)
                    if usage is not None:
                        record(usage)
                    elif b'"stream"' in body and status == 200:
                        record(Usage(0, 0, seconds, "stream", started))
                try:
                    self.send_response(status)
                    for name, value in reply_headers:
                        self.send_header(name, value)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def do_GET(self) -> None:
                self._handle()

            def do_POST(self) -> None:
                self._handle()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return _Handler


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 serving one GGUF file as ``alias``."""

    def __init__(
        self,
        model: Path,
        alias: str,
        *,
        port: int,
        n_ctx: int = 8192,
        n_threads: int = 2,
        log: Path | None = None,
        python: str = sys.executable,
    ) -> None:
        self.alias = alias
        self.url = f"http://127.0.0.1:{port}"
        self._argv = [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            str(model),
            "--model_alias",
            alias,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            str(n_ctx),
            "--n_threads",
            str(n_threads),
        ]
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LlamaServer:
        sink = self._log.open("ab") if self._log else subprocess.DEVNULL
        env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
        self._process = subprocess.Popen(
            self._argv, stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ConfigError(f"llama_cpp.server exited with {self._process.returncode}")
            try:
                url = f"{self.url}/v1/models"  # http://127.0.0.1 only
                with urllib.request.urlopen(url, timeout=2) as reply:  # noqa: S310
                    if reply.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self._stop()
        raise ConfigError("llama_cpp.server did not answer within 300 s")

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=20)
