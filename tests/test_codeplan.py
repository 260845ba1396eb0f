"""The code planner and the escalating model, through the real engine (local sandbox)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from builders import scripted
from zerog import Budget, Engine, Goal, RunStatus
from zerog.codeplan import CodePlanner, extract_code
from zerog.errors import ConfigError
from zerog.events import Event
from zerog.models.base import Model
from zerog.models.cascade import Escalating
from zerog.models.scripted import ScriptedModel, parse_line
from zerog.pymerge import merge, splice
from zerog.sandbox.local import LocalSandbox
from zerog.store import Store
from zerog.strategies import StrategyOptions
from zerog.types import CommandCheck

STUB = (
    "import math\n\n\ndef helper(x):\n    return x * 2\n\n\n"
    "def area(r):\n    '''Area of a circle of radius r, doubled.'''\n"
)


def test_code_is_taken_from_the_longest_fenced_block_or_the_whole_answer() -> None:
    answer = "Sure!\n```python\ndef f():\n    return 1\n```\nand\n```\nx\n```"
    assert extract_code(answer) == "def f():\n    return 1\n"
    assert extract_code("def g():\n    pass\n\n") == "def g():\n    pass\n"
    assert extract_code("```py\nunclosed = 1\n") == "unclosed = 1\n"


def test_merge_keeps_imports_and_helpers_the_answer_does_not_redefine() -> None:
    merged = merge(STUB, "def area(r):\n    return helper(math.pi * r * r)\n")
    namespace: dict[str, object] = {}
    exec(compile(merged, "merged", "exec"), namespace)
    area = namespace["area"]
    assert callable(area)
    assert round(area(1), 4) == round(2 * 3.14159265, 4)
    assert merged.count("def area") == 1
    assert merge(STUB, "def broken(:\n") == "def broken(:\n"
    again = merge(STUB, "import math\n\ndef area(r):\n    return 1\n")
    assert again.count("import math") == 1  # an import both sides have is kept once
    assert again.index("import math") < again.index("def helper") < again.index("def area")
    both = merge("import os\nX = os.sep\n", "import os; Y = 1\nimport os\nZ = 2\n")
    assert both == "import os\n\nX = os.sep\n\n\nimport os; Y = 1\nZ = 2\n"


def goal(root: Path, iterations: int) -> Goal:
    (root / "calc.py").write_text(STUB, encoding="utf-8")
    check = CommandCheck(
        command="python3 -c 'import calc; assert round(calc.area(1), 2) == 6.28'", name="area"
    )
    return Goal(
        text="Implement area()",
        workspace=root,
        checks=(check,),
        budget=Budget(max_iterations=iterations),
    )


def engine(model: Model, *sinks: Escalating, planner: CodePlanner | None = None) -> Engine:
    return Engine(
        model,
        LocalSandbox({"PATH": "/usr/bin:/bin"}),
        sinks=sinks,
        write_trace=False,
        plan_with=planner or CodePlanner("calc.py"),
    )


WRONG = {"text": "```python\ndef area(r):\n    return r\n```"}
RIGHT = {"text": "```python\ndef area(r):\n    return helper(math.pi * r * r)\n```"}


def test_a_code_answer_is_written_merged_and_validated(tmp_path: Path) -> None:
    model = scripted(WRONG, RIGHT)
    result = engine(model).run(goal(tmp_path, 3))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 2
    assert "return helper(math.pi * r * r)" in (tmp_path / "calc.py").read_text()
    first, retry = model.requests
    assert first.temperature == 0.0
    assert retry.temperature == 0.7  # a retry is sampled, and sees the failure
    assert "Earlier attempts failed" in retry.messages[-1].content
    assert "Earlier attempts" not in first.messages[-1].content


def test_escalation_hands_the_same_fresh_question_to_the_stronger_model(tmp_path: Path) -> None:
    small = scripted(WRONG)
    built: list[ScriptedModel] = []

    def big() -> ScriptedModel:
        built.append(scripted(RIGHT))
        return built[-1]

    cascade = Escalating(small, [big])
    planner = CodePlanner("calc.py", fresh=lambda: cascade.fresh)
    result = engine(cascade, cascade, planner=planner).run(goal(tmp_path, 2))
    assert result.status is RunStatus.SUCCESS
    assert cascade.level == 1
    assert len(built) == 1
    assert built[0].requests[0].messages == small.requests[0].messages
    assert built[0].requests[0].temperature == 0.0


def test_after_the_fresh_retries_the_failures_are_shown(tmp_path: Path) -> None:
    small, big = scripted(WRONG), scripted(WRONG, RIGHT)
    cascade = Escalating(small, [lambda: big])
    planner = CodePlanner("calc.py", fresh=lambda: cascade.fresh)
    result = engine(cascade, cascade, planner=planner).run(goal(tmp_path, 3))
    assert result.ok
    fresh, informed = big.requests
    assert (fresh.temperature, informed.temperature) == (0.0, 0.7)
    assert "Earlier attempts failed" in informed.messages[-1].content
    assert "Earlier attempts" not in fresh.messages[-1].content


def test_escalate_after_two_gives_the_first_model_one_informed_retry(tmp_path: Path) -> None:
    small = ScriptedModel([parse_line(WRONG, "1"), parse_line(WRONG, "2")], name="small")
    big = ScriptedModel([parse_line(RIGHT, "1")], name="big")
    cascade = Escalating(small, [lambda: big], after=2)
    planner = CodePlanner("calc.py", fresh=lambda: cascade.fresh)
    result = engine(cascade, cascade, planner=planner).run(goal(tmp_path, 3))
    assert (result.status, result.iterations, cascade.level) == (RunStatus.SUCCESS, 3, 1)
    # What each model of the cascade spent, in the order they answered.
    assert [(name, spent.calls) for name, spent in result.models.items()] == [
        ("small", 2),
        ("big", 1),
    ]
    assert sum(s.usage.input_tokens for s in result.models.values()) == (result.usage.input_tokens)
    first, retry = small.requests
    assert (first.temperature, retry.temperature) == (0.0, 0.7)
    assert "Earlier attempts failed" in retry.messages[-1].content
    [fresh] = big.requests  # the stronger model's first answer: the fresh question, greedy
    assert fresh.messages == first.messages
    assert fresh.temperature == 0.0


def test_the_stronger_model_is_never_built_when_the_first_succeeds(tmp_path: Path) -> None:
    def big() -> ScriptedModel:
        raise AssertionError("the stronger model was built")

    cascade = Escalating(scripted(RIGHT), [big])
    result = engine(cascade, cascade).run(goal(tmp_path, 2))
    assert result.ok
    assert cascade.level == 0
    assert cascade.escalate() is True  # escalating by hand moves one model up
    assert cascade.level == 1
    assert cascade.escalate() is False  # there is nothing above


UNSURE = {"tokens": 40, "mean_logprob": -0.3, "min_prob": 0.2, "low_tokens": 6}
SURE = {"tokens": 40, "mean_logprob": -0.01, "min_prob": 0.7, "low_tokens": 0}
OTHER_RIGHT = {"text": "```python\ndef area(r):\n    return 2 * math.pi * r ** 2\n```"}


def doubting(
    small: Model, big: Callable[[], Model], unsure_tokens: int = 3, after: int = 1
) -> tuple[Engine, Escalating]:
    cascade = Escalating(small, [big], unsure_tokens=unsure_tokens, after=after)
    built = Engine(
        cascade,
        LocalSandbox({"PATH": "/usr/bin:/bin"}),
        sinks=[cascade],
        write_trace=False,
        plan_with=CodePlanner("calc.py", fresh=lambda: cascade.fresh),
        doubt=cascade.doubt,
    )
    return built, cascade


@pytest.mark.parametrize("after", [1, 2])
def test_an_unsure_passing_answer_gets_a_second_opinion_that_replaces_it(
    tmp_path: Path, after: int
) -> None:
    small = scripted({**RIGHT, "confidence": UNSURE})
    big = scripted({**OTHER_RIGHT, "confidence": UNSURE})  # unsure too, but nothing is above it
    built, cascade = doubting(small, lambda: big, after=after)  # a doubt escalates at once
    events: list[str] = []
    built.sinks = (*built.sinks, _Kinds(events))
    result = built.run(goal(tmp_path, 3))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 2
    assert cascade.level == 1
    assert "2 * math.pi" in (tmp_path / "calc.py").read_text()  # the stronger model's answer
    assert events.count("doubt") == 1
    assert big.requests[0].messages == small.requests[0].messages  # the same fresh question


def test_a_failed_second_opinion_keeps_the_answer_that_passed(tmp_path: Path) -> None:
    small = scripted({**RIGHT, "confidence": UNSURE})
    big = scripted(WRONG, WRONG)
    built, _ = doubting(small, lambda: big)
    result = built.run(goal(tmp_path, 3))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 3
    assert "the second opinion after it did not" in result.reason
    assert "return helper(math.pi * r * r)" in (tmp_path / "calc.py").read_text()
    assert result.verdict is not None
    assert result.verdict.passed


def test_no_doubt_when_sure_below_the_bar_or_out_of_iterations(tmp_path: Path) -> None:
    def never() -> Model:
        raise AssertionError("the stronger model was asked")

    for confidence, unsure_tokens, iterations in ((SURE, 3, 3), (UNSURE, 7, 3), (UNSURE, 3, 1)):
        workspace = tmp_path / f"w{unsure_tokens}{iterations}{confidence['low_tokens']}"
        workspace.mkdir()
        small = scripted({**RIGHT, "confidence": confidence})
        built, cascade = doubting(small, never, unsure_tokens)
        result = built.run(goal(workspace, iterations))
        assert (result.status, result.iterations, cascade.level) == (RunStatus.SUCCESS, 1, 0)


class _Kinds:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def emit(self, event: Event) -> None:
        self.into.append(event.kind)


class _Crash(BaseException):
    """Stands for the process dying: nothing in the engine catches it."""


class _CrashAt:
    def __init__(self, kind: str, nth: int) -> None:
        self.kind, self.left = kind, nth

    def emit(self, event: Event) -> None:
        if event.kind == self.kind and event.seq:
            self.left -= 1
            if self.left == 0:
                raise _Crash


def test_a_resumed_cascade_is_where_it_was_when_the_run_stopped(tmp_path: Path) -> None:
    """Killed after the doubt moved the cascade up: the resumed run asks the stronger model
    (the replayed failure moves a fresh cascade up again), not the first one."""
    ws = tmp_path / "ws"  # a workspace may not hold the store
    ws.mkdir()
    with Store(tmp_path / "runs.db") as store:
        small = scripted({**RIGHT, "confidence": UNSURE})
        built, _ = doubting(small, lambda: scripted(OTHER_RIGHT))
        built.store = store
        built.sinks = (*built.sinks, _CrashAt("iteration_started", 2))
        with pytest.raises(_Crash):
            built.run(goal(ws, 3), run_id="r1")
        fresh_small = scripted({**RIGHT, "confidence": UNSURE})
        big = scripted(OTHER_RIGHT)
        resumed, cascade = doubting(fresh_small, lambda: big)
        resumed.store = store
        result = resumed.resume("r1")
    assert result.status is RunStatus.SUCCESS
    assert cascade.level == 1
    assert fresh_small.requests == []  # its recorded answer was replayed
    assert len(big.requests) == 1
    assert "2 * math.pi" in (ws / "calc.py").read_text()


def test_strategy_options_round_trip_through_a_run_spec_and_refuse_what_cannot_run() -> None:
    options = StrategyOptions(
        answer_file="calc.py", escalate=("local:1.5b",), escalate_after=2, unsure_tokens=5
    )
    spec = {"model": "local", **options.model_dump(mode="json")}
    assert StrategyOptions.from_spec(spec) == options
    assert StrategyOptions.from_spec({"model": "local"}) == StrategyOptions()  # older runs
    junk = {"escalate": "local:1.5b", "escalate_after": -1, "unsure_tokens": "5"}
    assert StrategyOptions.from_spec(junk) == StrategyOptions()  # a bad store row: defaults
    with pytest.raises(ConfigError, match="needs a model to escalate to"):
        StrategyOptions(unsure_tokens=5).check()
    with pytest.raises(ConfigError, match="needs a model to escalate to"):
        StrategyOptions(escalate_after=2).check()
    built = options.build(scripted(RIGHT), lambda spec: scripted(RIGHT))
    assert isinstance(built.model, Escalating)
    assert built.doubt is not None
    assert isinstance(built.plan_with, CodePlanner)
    assert built.plan_with.confidence  # second opinions read token probabilities: ask
    plain = options.model_copy(update={"unsure_tokens": None}).build(
        scripted(RIGHT), lambda spec: scripted(RIGHT)
    )
    assert isinstance(plain.plan_with, CodePlanner)
    assert not plain.plan_with.confidence  # nobody reads them: not asked (they cost)


def test_a_strategy_built_from_options_runs_as_the_docs_show(tmp_path: Path) -> None:
    """docs/strategies.md's Python example, with scripted models in place of local ones."""
    (tmp_path / "calc.py").write_text(STUB, encoding="utf-8")
    scripts = {"small": [WRONG, WRONG], "big": [RIGHT]}

    def load(spec: str) -> Model:
        return ScriptedModel([parse_line(line, spec) for line in scripts[spec]], name=spec)

    options = StrategyOptions(answer_file="calc.py", escalate=("big",), escalate_after=2)
    built = options.build(load("small"), load)
    engine = Engine(
        built.model,
        LocalSandbox({"PATH": "/usr/bin:/bin"}),
        sinks=built.sinks,
        plan_with=built.plan_with,
        doubt=built.doubt,
        write_trace=False,
    )
    result = engine.run(goal(tmp_path, 5))
    assert (result.status, result.iterations) == (RunStatus.SUCCESS, 3)
    assert {name: spent.calls for name, spent in result.models.items()} == {"small": 2, "big": 1}


SPLICE_SOURCE = '''"""Doc."""
import os

X = 1


@dec
def add(a, b):
    return a - b


class K:
    pass
'''


def test_splice_puts_a_partial_answer_in_place() -> None:
    answer = "import re\nimport os\n\n@dec\ndef add(a, b):\n    return a + b\n\nY = 2\n"
    assert splice(SPLICE_SOURCE, answer) == (
        '"""Doc."""\nimport re\nimport os\n\nX = 1\n\n\n@dec\ndef add(a, b):\n'
        "    return a + b\n\n\nclass K:\n    pass\n\n\nY = 2\n"
    )


def test_splice_takes_a_complete_answer_as_the_file() -> None:
    answer = "import os\n\n\ndef add(a, b):\n    return a + b\n\n\nclass K:\n    x = 1\n"
    assert splice(SPLICE_SOURCE, answer) == answer


def test_splice_leaves_an_answer_that_does_not_parse() -> None:
    assert splice(SPLICE_SOURCE, "def add(:\n") == "def add(:\n"


def test_an_answer_cut_off_is_asked_again_sampled_within_the_iteration(tmp_path: Path) -> None:
    cut = {"text": "```python\ndef area(r):\n    return helper(math.pi * r * r) + area(r) + area("}
    model = scripted(cut, RIGHT)
    result = engine(model).run(goal(tmp_path, 1))
    assert result.status is RunStatus.SUCCESS
    assert result.iterations == 1
    first, again = model.requests
    assert first.temperature == 0.0
    assert again.temperature > 0.0
    assert again.seed is not None
    assert "is not closed" in again.messages[-1].content


def test_after_the_re_ask_the_last_answer_is_written_as_it_is(tmp_path: Path) -> None:
    model = scripted({"text": "no code at all"}, {"text": "def area(r):\n    return r\n"})
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    run = Engine(
        model,
        LocalSandbox({"PATH": "/usr/bin:/bin"}),
        sinks=[Sink()],
        write_trace=False,
        plan_with=CodePlanner("calc.py"),
    ).run(goal(tmp_path, 1))
    assert run.status is RunStatus.MAX_ITERATIONS  # the checks judged the answer
    (written,) = [e.data["action"] for e in events if e.kind == "action"]
    assert isinstance(written, dict)
    assert "def area(r):\n    return r\n" in str(written["content"])
    assert len(model.requests) == 2
