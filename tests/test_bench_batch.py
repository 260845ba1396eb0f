"""`zerog bench batch` on a small scale: both workloads (the model answering at once and
after a delay), the store's commit ceiling, and the scripted model's latency it uses."""

from __future__ import annotations

import pytest

from zerog.bench.batch import measure
from zerog.errors import ConfigError
from zerog.models.base import Message, Request
from zerog.models.scripted import ScriptedModel, parse_line


def test_a_scripted_answer_waits_its_latency() -> None:
    waits: list[float] = []
    lines = [
        parse_line({"text": "late", "latency_ms": 250}, "t:1"),
        parse_line({"text": "now"}, "t:2"),
    ]
    model = ScriptedModel(lines, sleep=waits.append)
    request = Request(messages=(Message(role="user", content="hi"),))
    assert model.complete(request).text == "late"
    assert model.complete(request).text == "now"
    assert waits == [0.25]


@pytest.mark.parametrize("latency", [-1, "soon", 10_000_000])
def test_a_bad_latency_is_refused(latency: object) -> None:
    with pytest.raises(ConfigError, match="t:3"):
        parse_line({"text": "x", "latency_ms": latency}, "t:3")


@pytest.mark.slow  # runs worker pools
def test_the_batch_bench_measures_both_workloads_and_the_commit_ceiling() -> None:
    report = measure(
        goals=4, workers=(1, 2), executors=("local",), bare_tasks=10, latencies=(0.0, 120.0)
    )
    assert [(r.latency_ms, r.workers) for r in report.rows] == [
        (0.0, 1),
        (0.0, 2),
        (120.0, 1),
        (120.0, 2),
    ]
    for row in report.rows:
        assert row.goals == 4
        assert row.rate > 0
        # A goal whose model answers after 120 ms spends at least that long in its worker.
        assert row.in_worker >= row.latency_ms / 1000
    assert report.commits_per_goal > 1
    assert report.commit_ceiling > 0
    assert report.goals_ceiling == report.commit_ceiling / report.commits_per_goal
    data = report.as_dict()
    assert data["commits_per_goal"] == round(report.commits_per_goal, 2)
    throughput = data["throughput"]
    assert isinstance(throughput, list)
    assert {t["model_latency_ms"] for t in throughput} == {0.0, 120.0}
    assert report.overhead("local") is not None
