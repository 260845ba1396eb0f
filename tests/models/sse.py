"""An OpenAI-compatible server on 127.0.0.1 that streams its answer (server-sent events)
piece by piece, and notes how many pieces it sent before the client hung up."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType


def _chunk(content: str | None, finish: str | None) -> bytes:
    delta = {} if content is None else {"content": content}
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "served-model",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body)}\n\n".encode()


class StreamingServer:
    """Streams ``pieces`` (then a final chunk and ``[DONE]``) to every chat request, one
    piece every ``pause`` seconds; ``sent`` is how many pieces the last request got before
    the client closed the connection (or all of them)."""

    def __init__(self, pieces: Sequence[str], pause: float = 0.002, finish: str = "length") -> None:
        self.pieces = list(pieces)
        self.finish = finish
        self.pause = pause
        self.sent = 0
        self.bodies: list[dict[str, object]] = []
        self.done = threading.Event()
        self._stop = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def __enter__(self) -> StreamingServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # the body ends when the connection closes

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                owner.bodies.append(json.loads(self.rfile.read(length) or b"{}"))
                owner.sent = 0
                owner.done.clear()
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    for piece in owner.pieces:
                        if owner._stop.is_set():
                            return
                        self.wfile.write(_chunk(piece, None))
                        self.wfile.flush()
                        owner.sent += 1
                        owner._stop.wait(owner.pause)
                    self.wfile.write(_chunk(None, owner.finish))
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client stopped reading: what a guard should do
                finally:
                    owner.done.set()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return _Handler
