"""A deterministic model that replays responses from a script.

Used for offline runs, demos, replays and tests. A script is a JSONL file; each line is one
response::

    {"purpose": "plan", "json": {"steps": [...]}}
    {"text": "raw text, returned as is"}
    {"json": {...}, "usage": {"input_tokens": 120, "output_tokens": 40}, "cost": 0.002}
    {"text": "...", "confidence": {"tokens": 80, "mean_logprob": -0.4, "min_prob": 0.1,
     "low_tokens": 9}}
    {"text": "print(1)\nprint(1)\n", "finish": "degenerate"}   # an answer that looped
    {"json": {...}, "latency_ms": 300}   # answered after 300 ms, as a remote provider would

A line with ``purpose`` answers only requests of that purpose (``plan`` or ``act``); a line
without one answers any request. Within each queue, lines are used in file order.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from pydantic import Field, ValidationError

from zerog.errors import ConfigError, ModelError
from zerog.models.base import Finish, Request, Response, estimate_tokens
from zerog.models.confidence import Confidence
from zerog.types import Frozen, Usage

MAX_SCRIPT_BYTES = 64 * 1024 * 1024


class ScriptLine(Frozen):
    purpose: str = ""
    text: str | None = None
    json_value: object = None
    usage: Usage | None = None
    cost: float = 0.0
    confidence: Confidence | None = None  # what a local model would report
    finish: Finish = "stop"  # "degenerate": an answer that looped and was cut
    latency_ms: float = Field(default=0.0, ge=0.0, le=600_000.0)  # wait before answering

    def render(self) -> str:
        if self.text is not None:
            return self.text
        return json.dumps(self.json_value)


def parse_line(raw: Mapping[str, object], where: str) -> ScriptLine:
    data = dict(raw)
    if "json" in data:
        data["json_value"] = data.pop("json")
    if ("text" in data) == ("json_value" in data):
        raise ConfigError(f"{where}: each script line needs exactly one of 'text' or 'json'")
    try:
        return ScriptLine.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{where}: {exc.errors()[0]['msg']}") from None


class ScriptedModel:
    """Replays scripted responses. Raises :class:`ModelError` when the script runs out."""

    def __init__(
        self,
        lines: Iterable[ScriptLine],
        name: str = "scripted",
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._name = name
        self._sleep = sleep
        self._queues: dict[str, deque[ScriptLine]] = {}
        for line in lines:
            self._queues.setdefault(line.purpose, deque()).append(line)
        self.requests: list[Request] = []

    @classmethod
    def from_file(cls, path: Path) -> ScriptedModel:
        try:
            if path.stat().st_size > MAX_SCRIPT_BYTES:
                raise ConfigError(f"script {path} is larger than {MAX_SCRIPT_BYTES} bytes")
            content = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read script {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"script {path} is not UTF-8 text") from None
        lines = []
        for number, raw in enumerate(content.splitlines(), start=1):
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            where = f"{path}:{number}"
            try:
                value = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{where}: not JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: each script line must be a JSON object")
            lines.append(parse_line(value, where))
        return cls(lines, name=f"scripted:{path.name}")

    @property
    def name(self) -> str:
        return self._name

    def remaining(self) -> int:
        return sum(len(queue) for queue in self._queues.values())

    def _next(self, request: Request) -> ScriptLine:
        queue = self._queues.get(request.purpose)
        if not queue:
            queue = self._queues.get("")
        if not queue:
            raise ModelError(
                f"the script has no response left for a '{request.purpose or 'any'}' request"
            )
        return queue.popleft()

    def skip(self, request: Request) -> None:
        """Advance past the line that would answer ``request`` (see models.base.Stateful)."""
        self._next(request)

    def complete(self, request: Request) -> Response:
        line = self._next(request)
        self.requests.append(request)
        if line.latency_ms:
            self._sleep(line.latency_ms / 1000)
        text = line.render()
        usage = line.usage or Usage(
            input_tokens=sum(estimate_tokens(m.content) for m in request.messages),
            output_tokens=estimate_tokens(text),
        )
        return Response(
            text=text,
            usage=usage,
            cost=line.cost,
            model=self._name,
            confidence=line.confidence,
            finish=line.finish,
        )
