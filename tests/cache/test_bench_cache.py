"""A small run of `zerog bench cache` (the full run is a benchmark, not a test)."""

from __future__ import annotations

import os

from zerog.bench.cache import measure
from zerog.bench.cache_workload import build
from zerog.sandbox.wasm import default_data_dir


def test_workload_has_held_out_paraphrases_and_unstored_near_misses() -> None:
    workload = build()
    assert workload.size >= 200
    stored = {t.identity for t in workload.stored}
    assert all(t.identity in stored and t.phrasing > 0 for t in workload.paraphrases)
    assert all(t.identity not in stored for t in workload.near_misses)


def test_small_bench_run() -> None:
    report = measure(
        default_data_dir(os.environ),
        per_family=2,
        thresholds=(0.8,),
        sizes=(2_000,),
        queries=20,
        exact_calls=50,
        repeat_goals=2,
    )
    gated = next(r for r in report.gate if r.salient_gate)
    assert gated.paraphrase_hits > 0
    assert gated.wrong_hits == 0
    assert report.scale[2_000]["agreement"] > 0.9
    assert report.runs_ok == {"off": "6/6", "on": "6/6"}
    assert report.tokens["on_input"] < report.tokens["off_input"]
    assert report.exact["model_hit_p50_ms"] < 5
    assert len(report.tables()) == 4
