"""`zerog bench cache`: does the cache save tokens, quickly, without wrong answers?

Four measurements, each against a baseline taken in the same process:

1. The plan cache's gate on the template workload (``cache_workload.py``): stored goals,
   held-out paraphrases (should hit, with the right plan) and near misses (must not hit).
   Hit rate and wrong-hit rate at several similarity thresholds, with the salient-token
   gate and without it (the baseline: similarity alone, as plain semantic caches do).
2. Exact hits: a model-call hit against the call of an instant (scripted) model, and a
   tool-call hit against running the command.
3. Semantic lookup at scale: the binary-prefiltered index over 10k and 100k synthetic
   unit vectors (queries are perturbed stored vectors) against numpy brute force; and
   the time to embed one goal with the real model.
4. Tokens: the same repeated workload (each goal run, run again, then run paraphrased)
   through the real Engine with a scripted model, without and with the caches.
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

from zerog.bench.cache_workload import CHECK, Task, Workload, build, make_task, same_plan
from zerog.cache.db import CacheDB
from zerog.cache.embed import Embedder
from zerog.cache.exact import CachedModel
from zerog.cache.index import VectorIndex
from zerog.cache.semantic import PlanCache
from zerog.cache.tools import ToolCache
from zerog.engine.loop import Engine
from zerog.models.base import Message, Model, Request
from zerog.models.scripted import ScriptedModel, parse_line
from zerog.sandbox.base import Limits
from zerog.sandbox.local import LocalSandbox
from zerog.sandbox.workspace import Workspace
from zerog.types import Goal, ShellAction

if TYPE_CHECKING:
    from zerog.cache.embed import Vectors

Say = Callable[[str], None]


def _pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


class _Memo:
    """Embeds each text once (the bench looks the same texts up many times)."""

    def __init__(self, embedder: Embedder) -> None:
        self._embedder = embedder
        self._seen: dict[str, Vectors] = {}

    def is_common(self, word: str) -> bool:
        return self._embedder.is_common(word)

    def embed(self, texts: Sequence[str]) -> Vectors:
        import numpy as np

        missing = [t for t in texts if t not in self._seen]
        if missing:
            for text, vector in zip(missing, self._embedder.embed(missing), strict=True):
                self._seen[text] = vector
        return np.stack([self._seen[t] for t in texts])


@dataclass
class GateRow:
    threshold: float
    salient_gate: bool
    paraphrase_hits: int
    paraphrases: int
    wrong_hits: int
    hits: int
    near_miss_hits: int
    near_misses: int

    @property
    def hit_rate(self) -> float:
        return self.paraphrase_hits / max(self.paraphrases, 1)

    @property
    def wrong_rate(self) -> float:
        return self.wrong_hits / max(self.hits, 1)


@dataclass
class CacheReport:
    goals: int = 0
    gate: list[GateRow] = field(default_factory=list)
    exact: dict[str, float] = field(default_factory=dict)
    scale: dict[int, dict[str, float]] = field(default_factory=dict)
    embed_ms: dict[str, float] = field(default_factory=dict)
    tokens: dict[str, int] = field(default_factory=dict)
    hits: dict[str, int] = field(default_factory=dict)
    runs_ok: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "goals": self.goals,
            "gate": [
                {**vars(r), "hit_rate": round(r.hit_rate, 4), "wrong_rate": round(r.wrong_rate, 4)}
                for r in self.gate
            ],
            "exact": {k: round(v, 4) for k, v in self.exact.items()},
            "scale": {
                str(n): {k: round(v, 4) for k, v in d.items()} for n, d in self.scale.items()
            },
            "embed_ms": {k: round(v, 3) for k, v in self.embed_ms.items()},
            "tokens": self.tokens,
            "hits": self.hits,
            "runs": self.runs_ok,
        }

    def tables(self) -> list[Table]:
        gate = Table(title=f"plan cache gate on {self.goals} goals (paraphrases should hit)")
        for column in ("threshold", "salient gate", "paraphrase hit rate", "wrong hits / hits"):
            gate.add_column(column, justify="right")
        gate.add_column("near misses hit", justify="right")
        for r in self.gate:
            gate.add_row(
                f"{r.threshold:.2f}",
                "on" if r.salient_gate else "off (baseline)",
                f"{r.hit_rate:.1%} ({r.paraphrase_hits}/{r.paraphrases})",
                f"{r.wrong_rate:.1%} ({r.wrong_hits}/{r.hits})",
                f"{r.near_miss_hits}/{r.near_misses}",
            )
        exact = Table(title="exact hits (p50 / p95)")
        exact.add_column("what")
        exact.add_column("cache hit", justify="right")
        exact.add_column("baseline", justify="right")
        e = self.exact
        exact.add_row(
            "model call (baseline: an instant scripted model)",
            f"{e['model_hit_p50_ms']:.3f} / {e['model_hit_p95_ms']:.3f} ms",
            f"{e['model_call_p50_ms']:.3f} / {e['model_call_p95_ms']:.3f} ms",
        )
        exact.add_row(
            "tool call (baseline: running the command)",
            f"{e['tool_hit_p50_ms']:.3f} / {e['tool_hit_p95_ms']:.3f} ms",
            f"{e['tool_run_p50_ms']:.3f} / {e['tool_run_p95_ms']:.3f} ms",
        )
        scale = Table(title="semantic lookup (index search; p50 / p95)")
        for column in ("entries", "binary prefilter + rerank", "numpy brute force", "same top-1"):
            scale.add_column(column, justify="right")
        for n, d in sorted(self.scale.items()):
            scale.add_row(
                f"{n:,}",
                f"{d['index_p50_ms']:.2f} / {d['index_p95_ms']:.2f} ms",
                f"{d['brute_p50_ms']:.2f} / {d['brute_p95_ms']:.2f} ms",
                f"{d['agreement']:.1%}",
            )
        scale.caption = (
            f"embedding one goal with MiniLM int8: {self.embed_ms.get('p50', 0):.1f} / "
            f"{self.embed_ms.get('p95', 0):.1f} ms (p50 / p95), on top of the search"
        )
        tokens = Table(title="tokens on the repeated workload (real Engine, scripted model)")
        for column in ("caches", "input", "output", "total", "runs succeeded"):
            tokens.add_column(column, justify="right")
        t = self.tokens
        for label in ("off", "on"):
            tokens.add_row(
                label,
                f"{t[f'{label}_input']:,}",
                f"{t[f'{label}_output']:,}",
                f"{t[f'{label}_input'] + t[f'{label}_output']:,}",
                self.runs_ok.get(label, ""),
            )
        off = t["off_input"] + t["off_output"]
        on = t["on_input"] + t["on_output"]
        tokens.caption = f"with caches: {on / max(off, 1):.1%} of the tokens; hits: " + ", ".join(
            f"{k} {v}" for k, v in sorted(self.hits.items())
        )
        return [gate, exact, scale, tokens]


# ---------------------------------------------------------------- 1. the gate


def _materialize(root: Path, task: Task) -> Path:
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    for rel, content in task.workspace_files().items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def _goal(task: Task, root: Path) -> Goal:
    return Goal(text=task.text, workspace=root, checks=(CHECK,))


def measure_gate(
    workload: Workload,
    embedder: _Memo,
    tmp: Path,
    thresholds: Sequence[float],
    say: Say,
) -> list[GateRow]:
    from zerog.types import Plan

    queries = [(t, True) for t in workload.paraphrases] + [(t, False) for t in workload.near_misses]
    roots = {}
    for number, (task, _) in enumerate(queries):
        roots[number] = _materialize(tmp / "gate" / f"q{number}", task)
    say(f"embedding {workload.size} goals")
    embedder.embed([t.text for t in workload.stored] + [t.text for t, _ in queries])
    rows: list[GateRow] = []
    for gate in (True, False):
        for threshold in thresholds:
            db = CacheDB(tmp / f"gate-{gate}-{threshold}.db")
            cache = PlanCache(db, embedder, threshold=threshold, salient_gate=gate)
            for task in workload.stored:
                cache.store(_goal(task, tmp), Plan.model_validate(task.plan))
            row = GateRow(threshold, gate, 0, len(workload.paraphrases), 0, 0, 0, 0)
            row.near_misses = len(workload.near_misses)
            for number, (task, should_hit) in enumerate(queries):
                reuse = cache.lookup(_goal(task, roots[number]))
                if reuse is None:
                    continue
                row.hits += 1
                right = same_plan(task, reuse.plan.model_dump(mode="json"))
                if not right:
                    row.wrong_hits += 1
                if should_hit and right:
                    row.paraphrase_hits += 1
                if not should_hit:
                    row.near_miss_hits += 1
            db.close()
            rows.append(row)
            say(
                f"threshold {threshold:.2f} gate {'on' if gate else 'off'}: "
                f"hit rate {row.hit_rate:.1%}, wrong {row.wrong_hits}/{row.hits}"
            )
    return rows


# ---------------------------------------------------------------- 2. exact hits


def measure_exact(tmp: Path, calls: int) -> dict[str, float]:
    prompt = "# Goal\nmake the failing tests pass\n" + "x = 1\n" * 400
    request = Request(messages=(Message(role="user", content=prompt),), purpose="plan")
    lines = [parse_line({"text": '{"steps": []}'}, "bench") for _ in range(calls + 1)]
    bare = ScriptedModel(lines)
    base: list[float] = []
    for _ in range(calls):
        started = time.perf_counter()
        bare.complete(request)
        base.append(time.perf_counter() - started)
    with CacheDB(tmp / "exact.db") as db:
        model = CachedModel(ScriptedModel(lines[:1]), db)
        model.complete(request)  # the miss that stores it
        hits: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            response = model.complete(request)
            hits.append(time.perf_counter() - started)
            if not response.cache_hit:
                raise RuntimeError("expected a cache hit")
        root = tmp / "tool-ws"
        root.mkdir()
        (root / "data.txt").write_text("1 2 3\n", encoding="utf-8")
        sandbox = LocalSandbox({"PATH": "/usr/bin:/bin"})
        command = "wc -w data.txt"
        workspace = Workspace(root, root / ".zerog" / "snapshots")
        tools = ToolCache(db, commands=[command])
        cached = tools.wrap(sandbox, {"PATH": "/usr/bin:/bin"}, lambda _: workspace.state_hash())
        action = ShellAction(command=command)
        limits = Limits()
        runs: list[float] = []
        for _ in range(max(calls // 20, 10)):
            started = time.perf_counter()
            sandbox.run(action, root, limits)
            runs.append(time.perf_counter() - started)
        cached.run(action, root, limits)
        tool_hits: list[float] = []
        for _ in range(calls):
            started = time.perf_counter()
            observation = cached.run(action, root, limits)
            tool_hits.append(time.perf_counter() - started)
            if not observation.cached:
                raise RuntimeError("expected a tool cache hit")
    ms = 1000.0
    return {
        "model_hit_p50_ms": statistics.median(hits) * ms,
        "model_hit_p95_ms": _pct(hits, 0.95) * ms,
        "model_call_p50_ms": statistics.median(base) * ms,
        "model_call_p95_ms": _pct(base, 0.95) * ms,
        "tool_hit_p50_ms": statistics.median(tool_hits) * ms,
        "tool_hit_p95_ms": _pct(tool_hits, 0.95) * ms,
        "tool_run_p50_ms": statistics.median(runs) * ms,
        "tool_run_p95_ms": _pct(runs, 0.95) * ms,
    }


# ---------------------------------------------------------------- 3. scale


def measure_scale(sizes: Sequence[int], queries: int, say: Say) -> dict[int, dict[str, float]]:
    import numpy as np

    rng = np.random.default_rng(8)
    out: dict[int, dict[str, float]] = {}
    for n in sizes:
        say(f"index of {n:,} synthetic vectors")
        vectors = rng.standard_normal((n, 384), dtype=np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        index = VectorIndex()
        index.add_many(np.arange(n, dtype=np.int64), vectors)
        fast: list[float] = []
        brute: list[float] = []
        agree = 0
        for _ in range(queries):
            origin = int(rng.integers(n))
            query = vectors[origin] + 0.025 * rng.standard_normal(384, dtype=np.float32)
            query /= np.linalg.norm(query)
            started = time.perf_counter()
            found = index.search(query, 0.8)
            fast.append(time.perf_counter() - started)
            started = time.perf_counter()
            scores = vectors @ query
            top = np.argpartition(scores, -5)[-5:]
            best = int(top[np.argmax(scores[top])])
            brute.append(time.perf_counter() - started)
            agree += bool(found) and found[0][0] == best
        out[n] = {
            "index_p50_ms": statistics.median(fast) * 1000,
            "index_p95_ms": _pct(fast, 0.95) * 1000,
            "brute_p50_ms": statistics.median(brute) * 1000,
            "brute_p95_ms": _pct(brute, 0.95) * 1000,
            "agreement": agree / queries,
        }
    return out


def measure_embedding(embedder: Embedder, texts: Sequence[str]) -> dict[str, float]:
    times: list[float] = []
    for text in texts:
        started = time.perf_counter()
        embedder.embed([text])
        times.append(time.perf_counter() - started)
    return {"p50": statistics.median(times) * 1000, "p95": _pct(times, 0.95) * 1000}


# ---------------------------------------------------------------- 4. tokens


def _scripted(task: Task) -> ScriptedModel:
    return ScriptedModel([parse_line({"purpose": "plan", "json": task.plan}, "bench")])


def measure_tokens(
    workload: Workload, embedder: _Memo, tmp: Path, goals: int, say: Say
) -> tuple[dict[str, int], dict[str, int], dict[str, str]]:
    step = max(len(workload.stored) // goals, 1)
    chosen = workload.stored[::step][:goals]
    runs: list[Task] = []
    for task in chosen:
        again = make_task(task.family, dict(task.slots), 1)
        runs += [task, task, again]  # run, the same again, then paraphrased
    tokens: dict[str, int] = {}
    hits: dict[str, int] = {}
    ok: dict[str, str] = {}
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp)}
    for label in ("off", "on"):
        db = CacheDB(tmp / f"tokens-{label}.db")
        plans = PlanCache(db, embedder) if label == "on" else None
        total_in = total_out = succeeded = 0
        for number, task in enumerate(runs):
            root = _materialize(tmp / "runs" / f"goal{number // 3}", task)  # same path: repeats
            model: Model = _scripted(task)
            if label == "on":
                model = CachedModel(model, db)
            engine = Engine(
                model,
                sandbox_name="local",
                environ=environ,
                write_trace=False,
                plan_cache=plans,
            )
            result = engine.run(_goal(task, root))
            total_in += result.usage.input_tokens
            total_out += result.usage.output_tokens
            succeeded += result.ok
            if label == "on":
                for kind, count in result.cache_hits.items():
                    hits[kind] = hits.get(kind, 0) + count
        db.close()
        tokens[f"{label}_input"] = total_in
        tokens[f"{label}_output"] = total_out
        ok[label] = f"{succeeded}/{len(runs)}"
        say(f"caches {label}: {total_in + total_out:,} tokens, {succeeded}/{len(runs)} succeeded")
    return tokens, hits, ok


def measure(
    data_dir: Path,
    *,
    per_family: int = 15,
    thresholds: Sequence[float] = (0.7, 0.8, 0.85, 0.9),
    sizes: Sequence[int] = (10_000, 100_000),
    queries: int = 200,
    exact_calls: int = 1000,
    repeat_goals: int = 16,
    progress: Say | None = None,
) -> CacheReport:
    say = progress or (lambda _: None)
    report = CacheReport()
    workload = build(per_family=per_family)
    report.goals = workload.size
    model = Embedder.installed(data_dir)
    embedder = _Memo(model)
    with tempfile.TemporaryDirectory(prefix="zerog-bench-cache-") as name:
        tmp = Path(name)
        report.gate = measure_gate(workload, embedder, tmp, thresholds, say)
        say("exact hits")
        report.exact = measure_exact(tmp, exact_calls)
        report.scale = measure_scale(sizes, queries, say)
        report.embed_ms = measure_embedding(model, [t.text for t in workload.paraphrases][:100])
        say("repeated workload through the Engine")
        report.tokens, report.hits, report.runs_ok = measure_tokens(
            workload, embedder, tmp, repeat_goals, say
        )
    return report
