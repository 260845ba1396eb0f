"""The HumanEval harness: task loading, the run through the engine, judging, resume and
the report, on a tiny task file with the scripted model; and a smoke run of two real tasks
with the real embedded 0.5B model."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import scripted
from zerog.bench.humaneval import (
    Config,
    ModelSpend,
    TaskResult,
    auroc,
    compare,
    default_data_file,
    load_tasks,
    markdown,
    read_results,
    run_bench,
    select,
    signal_study,
    summarize,
)
from zerog.config import Config as ZerogConfig
from zerog.config import LocalSettings
from zerog.errors import ConfigError
from zerog.models.base import Model
from zerog.models.scripted import ScriptedModel, parse_line
from zerog.models.spec import load_model
from zerog.sandbox.local import LocalSandbox

pytestmark = pytest.mark.slow  # runs benchmark tasks end to end

TASKS = [
    {
        "task_id": "Tiny/0",
        "prompt": 'def add(a, b):\n    """Add.\n    >>> add(1, 2)\n    3\n    """\n',
        "entry_point": "add",
        "test": "def check(candidate):\n    assert candidate(2, 2) == 4\n",
    },
    {
        "task_id": "Tiny/1",
        "prompt": 'def neg(a):\n    """Negate.\n    >>> neg(1)\n    -1\n    """\n',
        "entry_point": "neg",
        "test": "def check(candidate):\n    assert candidate(0) == 0\n"
        "    assert candidate(5) == -5\n",
    },
]
ADD = {"text": "```python\ndef add(a, b):\n    return a + b\n```"}
NEG_WRONG = {"text": "```python\ndef neg(a):\n    return -1\n```"}  # passes its example only
NEG_BAD = {"text": "```python\ndef neg(a):\n    return a\n```"}
NEG = {"text": "```python\ndef neg(a):\n    return -a\n```"}


def data_file(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.jsonl"
    path.write_text("\n".join(json.dumps(t) for t in TASKS) + "\n", encoding="utf-8")
    return path


def loader(**models: ScriptedModel) -> tuple[list[str], Callable[[str], Model]]:
    asked: list[str] = []

    def load(spec: str) -> Model:
        asked.append(spec)
        return models[spec.replace(":", "_").replace(".", "")]

    return asked, load


def test_single_shot_judges_with_the_official_tests_and_resumes(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))
    out = tmp_path / "out"
    config = Config(model="small", sandbox="local")
    _, load = loader(small=scripted(ADD))
    summary, results = run_bench(tasks[:1], config, out, load)
    assert (summary.tasks, summary.passed) == (1, 1)
    # Resume: Tiny/0 is done and not asked again (the script has only Tiny/1's answer).
    _, load = loader(small=scripted(NEG_WRONG))
    seen: list[int] = []
    summary, results = run_bench(
        tasks,
        config,
        out,
        load,
        on_result=lambda done, total: seen.append(len(done)),
    )
    assert seen == [1, 2]
    assert [r.task_id for r in results] == ["Tiny/0", "Tiny/1"]
    neg = results[1]
    assert neg.checks_passed_first  # its own example passes...
    assert not neg.passed  # ...the hidden tests do not
    assert (summary.passed, summary.signal["check_pass_wrong"]) == (1, 1)
    assert len(read_results(out / "results.jsonl")) == 2
    assert "| small | hidden | single | 1 | 2 | 1/2 = 50.0% |" in (out / "summary.md").read_text()
    table = compare([out, out])
    assert "Over the 2 tasks finished in every directory." in table
    assert table.count("| small | hidden | single | 1 | 1/2 = 50.0% | 1/2 |") == 2
    assert "| n/a |" in table  # scripted answers take no model time to compare
    with pytest.raises(ConfigError, match="not a humaneval results directory"):
        compare([tmp_path])
    with pytest.raises(ConfigError, match="another configuration"):
        run_bench(tasks, Config(model="other", sandbox="local"), out, load)


def test_cascade_escalates_when_the_examples_fail(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))
    config = Config(
        model="small", strategy="cascade", max_iterations=2, escalate="big", sandbox="local"
    )
    big = ScriptedModel([parse_line(NEG, "big")], name="big")
    asked, load = loader(small=scripted(ADD, NEG_BAD), big=big)
    summary, results = run_bench(tasks, config, tmp_path / "out", load)
    assert asked == ["small", "big"]  # the big model is loaded only when needed
    assert [r.passed for r in results] == [True, True]
    assert [r.first_passed for r in results] == [True, False]
    assert [r.escalated for r in results] == [False, True]
    assert summary.solved_by == {"scripted": 1, "big": 1}
    assert (results[1].first_by, results[1].answered_by) == ("scripted", "big")
    assert summary.first_passed == 1
    assert results[1].iterations == 2


def test_track_given_uses_the_official_tests_as_the_goal(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))[1:]
    config = Config(
        model="small", track="given", strategy="loop", max_iterations=3, sandbox="local"
    )
    _, load = loader(small=scripted(NEG_WRONG, NEG))
    _, results = run_bench(tasks, config, tmp_path / "out", load)
    assert results[0].passed
    assert results[0].iterations == 2  # the example-passing answer failed the real tests
    assert not results[0].checks_passed_first


def test_aggregation_per_task_and_per_solved() -> None:
    def result(task: str, passed: bool, by: str, tokens: int) -> TaskResult:
        return TaskResult(
            task_id=task,
            passed=passed,
            first_passed=passed,
            status="success",
            iterations=1,
            input_tokens=tokens,
            output_tokens=tokens // 2,
            wall_seconds=2.0,
            model_seconds=1.5,
            answered_by=by,
            first_by="local",
            checks_passed_first=passed,
            escalated=by != "local",
            models={
                by: ModelSpend(calls=1, input_tokens=tokens, output_tokens=tokens // 2, seconds=1.5)
            },
        )

    results = [
        result("a", True, "local", 100),
        result("b", True, "local:1.5b", 300),
        result("c", False, "local", 200),
    ]
    summary = summarize(results)
    assert (summary.tasks, summary.passed, summary.escalated) == (3, 2, 1)
    assert summary.per_task(summary.input_tokens) == 200
    assert summary.per_solved(summary.input_tokens) == 300
    assert summary.solved_by == {"local": 1, "local:1.5b": 1}
    assert summary.models["local"].seconds == 3.0
    table = markdown(Config(), summary)
    assert "2/3 = 66.7%" in table
    assert "local:1.5b 1 (33.3% of tasks)" in table
    assert TaskResult.from_json(results[1].to_json()) == results[1]


def test_bad_selections_and_configurations_are_refused(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))
    assert [t.task_id for t in select(tasks, 1, [])] == ["Tiny/0"]
    with pytest.raises(ConfigError, match="unknown task ids: Nope/1"):
        select(tasks, None, ["Nope/1"])
    with pytest.raises(ConfigError, match="unknown strategy"):
        Config(strategy="magic").validate()
    with pytest.raises(ConfigError, match="at least 2 iterations"):
        Config(strategy="cascade", max_iterations=1).validate()
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "x"}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="without 'prompt'"):
        load_tasks(bad)


@pytest.mark.model
def test_smoke_two_real_tasks_with_the_embedded_model_in_bwrap(tmp_path: Path) -> None:
    """The real thing, CI-sized: the package's data, the 0.5B model, the bwrap sandbox."""
    tasks = select(load_tasks(default_data_file()), None, ["HumanEval/23", "HumanEval/53"])
    assert len(tasks) == 2
    settings = ZerogConfig(local=LocalSettings(n_threads=1))  # robust on a busy machine
    summary, results = run_bench(
        tasks,
        Config(model="local", sandbox="bwrap"),
        tmp_path / "out",
        lambda spec: load_model(spec, tmp_path, config=settings, environ=os.environ),
    )
    assert summary.tasks == 2
    assert summary.passed >= 1  # strlen and add: the 0.5B solves both when healthy
    assert all(r.input_tokens > 50 and r.output_tokens > 5 for r in results)
    assert summary.models["local"].calls == 2


def test_signal_study_replays_escalation_policies_on_recorded_runs(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))
    _, load_small = loader(small=scripted(ADD, NEG_WRONG))
    run_bench(tasks, Config(model="small", sandbox="local"), tmp_path / "s", load_small)
    _, load_big = loader(big=scripted(ADD, NEG))
    run_bench(tasks, Config(model="big", sandbox="local"), tmp_path / "b", load_big)
    sandbox = LocalSandbox({"PATH": "/usr/bin:/bin"})
    table = signal_study(tasks, tmp_path / "s", tmp_path / "b", sandbox)
    assert "Over the 2 tasks finished in both directories; 2 have a generated edge call." in table
    # The wrong neg() passes its example and survives neg(0): no signal catches it.
    assert "| examples fail | 0 | - | 0% | 1/2 = 50.0% |" in table
    assert "| generated edge call fails | 0 | - | 0% | 1/2 = 50.0% |" in table
    assert "| oracle (small answer wrong) | 1 | 100% | 100% | 2/2 = 100.0% |" in table
    assert "| always (big model single shot) | 2 | 50% | 100% | 2/2 = 100.0% |" in table
    crashing = {"text": "```python\ndef neg(a):\n    return -(a // a) * a\n```"}
    _, load_crash = loader(small=scripted(ADD, crashing))
    run_bench(tasks, Config(model="small", sandbox="local"), tmp_path / "c", load_crash)
    table = signal_study(tasks, tmp_path / "c", tmp_path / "b", sandbox)
    # Right but for 0: the example passes, the generated neg(0) raises, so it escalates.
    assert "| examples fail | 0 | - | 0% | 1/2 = 50.0% |" in table
    assert "| generated edge call fails | 1 | 100% | 100% | 2/2 = 100.0% |" in table


UNSURE = {"tokens": 30, "mean_logprob": -0.4, "min_prob": 0.2, "low_tokens": 5}
SURE = {"tokens": 30, "mean_logprob": -0.01, "min_prob": 0.8, "low_tokens": 0}


def test_a_second_opinion_replaces_an_unsure_answer_only_when_it_passes(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))
    config = Config(
        model="small",
        strategy="cascade",
        max_iterations=2,
        escalate="big",
        sandbox="local",
        unsure_tokens=3,
    )
    # add: sure, kept. neg: passes its example but unsure; the big model's right answer wins.
    small = scripted({**ADD, "confidence": SURE}, {**NEG_WRONG, "confidence": UNSURE})
    big = ScriptedModel([parse_line(NEG, "big")], name="big")
    _, load = loader(small=small, big=big)
    _, results = run_bench(tasks, config, tmp_path / "out", load)
    assert [r.passed for r in results] == [True, True]
    assert [r.escalated for r in results] == [False, True]
    assert results[1].answered_by == "big"
    assert results[1].confidences[0] == {k: float(v) for k, v in UNSURE.items()}
    # The big model's second opinion fails the example: the small model's answer is kept.
    small = scripted({**NEG_WRONG, "confidence": UNSURE})
    big = ScriptedModel([parse_line(NEG_BAD, "big")], name="big")
    _, load = loader(small=small, big=big)
    _, results = run_bench(tasks[1:], config, tmp_path / "kept", load)
    assert (results[0].status, results[0].answered_by) == ("success", "scripted")
    assert "return -1" in results[0].answer
    with pytest.raises(ConfigError, match="cascade option"):
        Config(model="small", unsure_tokens=3).validate()


def test_signal_study_replays_second_opinions_and_rates_confidence(tmp_path: Path) -> None:
    tasks = load_tasks(data_file(tmp_path))
    small = scripted({**ADD, "confidence": SURE}, {**NEG_WRONG, "confidence": UNSURE})
    _, load_small = loader(small=small)
    run_bench(tasks, Config(model="small", sandbox="local"), tmp_path / "s", load_small)
    _, load_big = loader(big=scripted(ADD, NEG))
    run_bench(tasks, Config(model="big", sandbox="local"), tmp_path / "b", load_big)
    table = signal_study(
        tasks, tmp_path / "s", tmp_path / "b", LocalSandbox({"PATH": "/usr/bin:/bin"})
    )
    # The wrong neg() passed its example, but 5 unsure tokens ask the big model, whose
    # answer passes its example and the hidden tests.
    row = "| examples fail; second opinion at 5+ unsure tokens | 1 | 100% | 100% | 2/2 = 100.0% |"
    assert row in table
    row = "| examples fail; second opinion at 6+ unsure tokens | 0 | - | 0% | 1/2 = 50.0% |"
    assert row in table
    assert "| unsure tokens (p < 0.5) | 1.00 | 1.00 |" in table
    assert "| least likely token's probability (negated) | 1.00 | 1.00 |" in table


def test_auroc_counts_ties_as_half() -> None:
    assert auroc([3, 1], [True, False]) == 1.0
    assert auroc([1, 3], [True, False]) == 0.0
    assert auroc([2, 2, 1], [True, False, False]) == 0.75
    assert auroc([1, 2], [True, True]) is None
