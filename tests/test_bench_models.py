"""A small run of `zerog bench models` on the embedded model: both ways of constraining
JSON give the same answer, and the report holds the figures it prints."""

from __future__ import annotations

import os

import pytest

from zerog.bench.models import measure

pytestmark = pytest.mark.model  # loads the embedded weights itself


def test_bench_models_measures_both_grammar_checks_on_the_embedded_model() -> None:
    env = {**os.environ, "OMP_WAIT_POLICY": "passive"}
    report = measure(local=("0.5b",), tokens=12, calls=3, local_calls=2, rounds=1, environ=env)
    assert [s.model for s in report.local] == ["local:0.5b"]
    speed = report.local[0]
    assert speed.json_same
    assert speed.json_tokens > 1
    assert speed.json_tokens_per_s > 0
    assert speed.json_full_tokens_per_s > 0
    # One round: the ratio is that round's two rates.
    assert speed.json_vs_free == speed.json_tokens_per_s / speed.generation_tokens_per_s
    assert speed.json_vs_free_cpu > 0
    assert {o.adapter.split(" ")[0] for o in report.overheads} >= {"openai", "anthropic"}
    data = report.as_dict()
    local = data["local"]
    assert isinstance(local, list)
    assert local[0]["json_same"] is True
