"""`zerog bench models`: speed of the local models, and what each adapter adds per call.

Local speed: for each installed local model, the prompt-processing rate (a call that
generates one token, KV cache cleared) and the generation rate (a call that generates up
to ``tokens`` tokens, minus the prompt time), free text and grammar-constrained JSON, the
latter both with llama.cpp's grammar over the whole vocabulary at every step and with the
lazy check the engine uses (models/lazy_grammar.py), whose answers must be the same.

Adapter overhead: each adapter's ``complete()`` timed around the raw client call it makes,
on the same calls: the client method is wrapped in a stopwatch, so the overhead is the
adapter's time minus the raw call's time, free of the noise of the call itself (which a
comparison of two separate runs drowns in on a busy machine). The OpenAI and Anthropic
SDKs talk to a loopback server that answers instantly with a canned wire-format reply (so
the raw time is the client's and the socket's, not a provider's); llama-cpp-python's
``create_chat_completion`` generates one grammar-constrained token from a cached prompt.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from contextlib import closing, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.table import Table

from zerog.bench.loopback import HttpReply, HttpRequest, LoopbackServer
from zerog.models.base import Message, Request
from zerog.structured import schema_of
from zerog.types import Plan

PLAN = {"steps": [{"intent": "say hi", "actions": [{"kind": "shell", "command": "echo hi"}]}]}
MESSAGES = (
    Message(role="system", content="You are a planner. Reply with one JSON object."),
    Message(role="user", content="Plan one step: print hello with a shell command."),
)
FREE_PROMPT = (
    Message(
        role="user",
        content="Write a Python module implementing a binary search tree with insert, "
        "delete, search and in-order traversal. Add docstrings and type hints.",
    ),
)
JSON_PROMPT = (
    Message(role="system", content="You are a planner. Reply with one JSON object."),
    Message(
        role="user",
        content="Plan five steps to build a binary search tree module in Python; every "
        "step writes one file with its complete code.",
    ),
)
FAKE_KEY = "bench-key-not-a-secret"


@dataclass(frozen=True)
class LocalSpeed:
    model: str
    prompt_tokens: int
    prompt_tokens_per_s: float
    generated_tokens: int
    generation_tokens_per_s: float
    json_tokens: int
    json_tokens_per_s: float  # greedy, grammar checked lazily (the engine's path)
    json_full_tokens_per_s: float  # greedy, grammar over the whole vocabulary
    json_vs_free: float  # lazy constrained rate over free text's, median of the rounds
    json_vs_free_cpu: float  # the same ratio of rates in the process's CPU time
    json_same: bool  # both ways wrote the same answer in every round
    load_s: float
    best_prompt_tokens_per_s: float
    best_generation_tokens_per_s: float
    best_json_tokens_per_s: float
    best_json_full_tokens_per_s: float


@dataclass(frozen=True)
class _Call:
    """One timed call of a local model."""

    input: int
    output: int
    wall: float
    cpu: float  # this process's CPU time (all its threads)
    text: str

    def rate(self, prompt: _Call, *, cpu: bool = False) -> float:
        """Generated tokens per second, less the time of a one-token call on the same
        prompt (the prompt's evaluation and the first token)."""
        spent = self.cpu - prompt.cpu if cpu else self.wall - prompt.wall
        return (self.output - 1) / max(spent, 1e-9)


@dataclass(frozen=True)
class Overhead:
    adapter: str
    calls: int
    raw_ms: float
    adapter_ms: float

    @property
    def overhead_ms(self) -> float:
        return self.adapter_ms - self.raw_ms

    @property
    def ratio(self) -> float:
        return self.adapter_ms / self.raw_ms if self.raw_ms else float("nan")


@dataclass(frozen=True)
class ModelsReport:
    machine: str
    rounds: int
    local: tuple[LocalSpeed, ...]
    overheads: tuple[Overhead, ...]
    skipped: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "machine": self.machine,
            "rounds": self.rounds,
            "local": [asdict(s) for s in self.local],
            "overheads": [
                {**asdict(o), "overhead_ms": o.overhead_ms, "ratio": o.ratio}
                for o in self.overheads
            ],
            "skipped": list(self.skipped),
        }

    def tables(self) -> list[Table]:
        speed = Table(
            title=f"local models, tokens/s, median of {self.rounds} rounds · {self.machine}"
        )
        columns = (
            "model",
            "prompt tok/s",
            "generation tok/s",
            "JSON, full grammar",
            "JSON, lazy grammar",
            "lazy / free",
            "in CPU time",
            "same JSON",
        )
        for column in columns:
            speed.add_column(column, justify="left" if column == "model" else "right")
        for s in self.local:
            speed.add_row(
                s.model,
                f"{s.prompt_tokens_per_s:.1f} (best {s.best_prompt_tokens_per_s:.1f})",
                f"{s.generation_tokens_per_s:.1f} (best {s.best_generation_tokens_per_s:.1f})",
                f"{s.json_full_tokens_per_s:.1f} (best {s.best_json_full_tokens_per_s:.1f})",
                f"{s.json_tokens_per_s:.1f} (best {s.best_json_tokens_per_s:.1f})",
                f"{s.json_vs_free:.2f}x",  # median of the rounds
                f"{s.json_vs_free_cpu:.2f}x",
                "yes" if s.json_same else "NO",
            )
        over = Table(title="adapter overhead per call (median)")
        for column in ("adapter", "raw client call", "adapter call", "overhead", "ratio"):
            over.add_column(column, justify="left" if column == "adapter" else "right")
        for o in self.overheads:
            over.add_row(
                o.adapter,
                f"{o.raw_ms:.3f} ms",
                f"{o.adapter_ms:.3f} ms",
                f"{o.overhead_ms:+.3f} ms",
                f"{o.ratio:.3f}x",
            )
        return [speed, over]


def machine() -> str:
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{os.cpu_count()} cores, {platform.machine()}, Python {platform.python_version()}, "
        f"load {load:.2f} at start"
    )


def _timed(call: Callable[[], object], count: int) -> float:
    """Milliseconds per call over ``count`` calls."""
    started = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - started) * 1000 / count


class _Stopwatch:
    """Wraps a client method and adds up the time spent inside it (and, when it returns a
    stream, inside the stream's steps: the local model streams its answers)."""

    def __init__(self, call: Callable[..., object]) -> None:
        self._call = call
        self.inside = 0.0

    def __call__(self, *args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        try:
            result = self._call(*args, **kwargs)
        finally:
            self.inside += time.perf_counter() - started
        if isinstance(result, Iterator):
            return self._timed(result)
        return result

    def _timed(self, stream: Iterator[object]) -> Generator[object]:
        with closing(stream) if isinstance(stream, Generator) else nullcontext():
            while True:
                started = time.perf_counter()
                try:
                    item = next(stream)
                except StopIteration:
                    return
                finally:
                    self.inside += time.perf_counter() - started
                yield item


def _paired(
    name: str,
    owner: object,
    method: str,
    adapted: Callable[[], object],
    calls: int,
    rounds: int,
    progress: Callable[[str], None] | None,
) -> Overhead:
    """Time ``adapted`` and, on the same calls, the ``owner.method`` client call inside it."""
    watch = _Stopwatch(getattr(owner, method))
    setattr(owner, method, watch)
    try:
        adapted()  # warm: connections, caches, lazy imports
        raw_times: list[float] = []
        adapter_times: list[float] = []
        for number in range(1, rounds + 1):
            watch.inside = 0.0
            started = time.perf_counter()
            for _ in range(calls):
                adapted()
            outer = time.perf_counter() - started
            raw_times.append(watch.inside * 1000 / calls)
            adapter_times.append(outer * 1000 / calls)
            if progress is not None:
                progress(
                    f"{name} round {number}/{rounds}: raw call {raw_times[-1]:.3f} ms, "
                    f"adapter {adapter_times[-1]:.3f} ms per call"
                )
    finally:
        delattr(owner, method)  # the instance attribute shadowed the class's method
    overheads = [a - r for a, r in zip(adapter_times, raw_times, strict=True)]
    return Overhead(
        adapter=name,
        calls=calls,
        raw_ms=statistics.median(raw_times),
        adapter_ms=statistics.median(raw_times) + statistics.median(overheads),
    )


def _chat_completion(_: HttpRequest) -> HttpReply:
    return HttpReply(
        200,
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 0,
            "model": "bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": json.dumps(PLAN)},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 40, "completion_tokens": 20, "total_tokens": 60},
        },
    )


def _anthropic_message(_: HttpRequest) -> HttpReply:
    return HttpReply(
        200,
        {
            "id": "msg_bench",
            "type": "message",
            "role": "assistant",
            "model": "bench",
            "content": [{"type": "tool_use", "id": "toolu_bench", "name": "answer", "input": PLAN}],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 40, "output_tokens": 20},
        },
    )


def _openai_overhead(calls: int, rounds: int, progress: Callable[[str], None] | None) -> Overhead:
    from zerog.models.openai import OpenAIModel

    request = Request(messages=MESSAGES, json_schema=schema_of(Plan), max_tokens=256)
    with LoopbackServer(_chat_completion) as server:
        model = OpenAIModel("bench", api_key=FAKE_KEY, base_url=f"{server.url}/v1")
        completions = model.client.chat.completions
        return _paired(
            "openai",
            completions,
            "create",
            lambda: model.complete(request),
            calls,
            rounds,
            progress,
        )


def _anthropic_overhead(
    calls: int, rounds: int, progress: Callable[[str], None] | None
) -> Overhead:
    from zerog.models.anthropic import AnthropicModel

    request = Request(messages=MESSAGES, json_schema=schema_of(Plan), max_tokens=256)
    with LoopbackServer(_anthropic_message) as server:
        model = AnthropicModel("bench", api_key=FAKE_KEY, base_url=server.url)
        messages = model.client.messages
        return _paired(
            "anthropic",
            messages,
            "create",
            lambda: model.complete(request),
            calls,
            rounds,
            progress,
        )


def _local(
    key: str,
    path: Path,
    tokens: int,
    calls: int,
    rounds: int,
    progress: Callable[[str], None] | None,
) -> tuple[LocalSpeed, Overhead]:
    from zerog.models.llamacpp import LlamaCppModel

    started = time.perf_counter()
    model = LlamaCppModel(path, name=f"local:{key}", n_ctx=4096, n_threads=2)
    load_s = time.perf_counter() - started
    llama = model.llama
    plan_schema = schema_of(Plan)

    def run(messages: Sequence[Message], max_tokens: int, schema: bool, lazy: bool = True) -> _Call:
        llama.reset()  # type: ignore[no-untyped-call]  # no prompt reuse: every call processes its whole prompt
        model.lazy_grammar = lazy
        request = Request(
            messages=tuple(messages),
            max_tokens=max_tokens,
            json_schema=plan_schema if schema else None,
        )
        wall, cpu = time.perf_counter(), time.process_time()
        response = model.complete(request)
        model.lazy_grammar = True
        return _Call(
            response.usage.input_tokens,
            response.usage.output_tokens,
            time.perf_counter() - wall,
            time.process_time() - cpu,
            response.text,
        )

    prompt_rates: list[float] = []
    gen_rates: list[float] = []
    json_rates: list[float] = []
    full_rates: list[float] = []
    ratios: list[float] = []  # constrained (lazy) over free, round by round, wall time
    cpu_ratios: list[float] = []  # the same in CPU time (what the load does not change)
    same = True
    counts = (0, 0, 0)
    for number in range(1, rounds + 1):
        free_prompt = run(FREE_PROMPT, 1, schema=False)
        json_prompt = run(JSON_PROMPT, 1, schema=True)
        full = run(JSON_PROMPT, tokens, schema=True, lazy=False)
        # Free text and the engine's constrained path back to back in every round, so
        # that the load weighs alike on the two rates whose ratio is the figure.
        free = run(FREE_PROMPT, tokens, schema=False)
        lazy = run(JSON_PROMPT, tokens, schema=True)
        same = same and full.text == lazy.text
        prompt_rates.append(free_prompt.input / free_prompt.wall)
        gen_rates.append(free.rate(free_prompt))
        full_rates.append(full.rate(json_prompt))
        json_rates.append(lazy.rate(json_prompt))
        ratios.append(json_rates[-1] / gen_rates[-1])
        cpu_ratios.append(lazy.rate(json_prompt, cpu=True) / free.rate(free_prompt, cpu=True))
        counts = (free_prompt.input, free.output, lazy.output)
        if progress is not None:
            progress(
                f"local:{key} round {number}/{rounds}: prompt {prompt_rates[-1]:.1f} tok/s, "
                f"generation {gen_rates[-1]:.1f} tok/s, JSON full grammar "
                f"{full_rates[-1]:.1f} tok/s, lazy {json_rates[-1]:.1f} tok/s "
                f"(lazy/free {ratios[-1]:.2f}x, in CPU time {cpu_ratios[-1]:.2f}x)"
                + ("" if full.text == lazy.text else " (the two answers DIFFER)")
            )
    speed = LocalSpeed(
        model=f"local:{key}",
        prompt_tokens=counts[0],
        prompt_tokens_per_s=statistics.median(prompt_rates),
        generated_tokens=counts[1],
        generation_tokens_per_s=statistics.median(gen_rates),
        json_tokens=counts[2],
        json_tokens_per_s=statistics.median(json_rates),
        json_full_tokens_per_s=statistics.median(full_rates),
        json_vs_free=statistics.median(ratios),
        json_vs_free_cpu=statistics.median(cpu_ratios),
        json_same=same,
        load_s=load_s,
        best_prompt_tokens_per_s=max(prompt_rates),
        best_generation_tokens_per_s=max(gen_rates),
        best_json_tokens_per_s=max(json_rates),
        best_json_full_tokens_per_s=max(full_rates),
    )

    # Overhead: one generated token from a cached prompt, with the grammar.
    request = Request(messages=MESSAGES, max_tokens=1, json_schema=plan_schema)
    overhead = _paired(
        f"local:{key} (llama-cpp-python)",
        llama,
        "create_chat_completion",
        lambda: model.complete(request),
        calls,
        rounds,
        progress,
    )
    return speed, overhead


def measure(
    *,
    local: Sequence[str] = ("0.5b", "1.5b"),
    tokens: int = 128,
    calls: int = 200,
    local_calls: int = 20,
    rounds: int = 5,
    environ: dict[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
) -> ModelsReport:
    """Run every measurement; local models whose weights are not installed are skipped."""
    from zerog.errors import ConfigError
    from zerog.models.weights import WEIGHTS, default_model_dir, ensure_weights

    env = dict(os.environ if environ is None else environ)
    speeds: list[LocalSpeed] = []
    overheads: list[Overhead] = []
    skipped: list[str] = []
    for key in local:
        if key not in WEIGHTS:
            raise ConfigError(f"unknown local model '{key}': expected {', '.join(WEIGHTS)}")
        try:
            path = ensure_weights(WEIGHTS[key], default_model_dir(env), on_progress=progress)
            speed, overhead = _local(key, path, tokens, local_calls, rounds, progress)
        except ConfigError as exc:
            skipped.append(f"local:{key}: {exc}")
            continue
        speeds.append(speed)
        overheads.append(overhead)
    for name, bench in (("openai", _openai_overhead), ("anthropic", _anthropic_overhead)):
        try:
            overheads.append(bench(calls, rounds, progress))
        except ConfigError as exc:
            skipped.append(f"{name}: {exc}")
    return ModelsReport(
        machine=machine(),
        rounds=rounds,
        local=tuple(speeds),
        overheads=tuple(overheads),
        skipped=tuple(skipped),
    )
