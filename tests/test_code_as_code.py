"""Code as code: the plan names files, the code comes as fenced blocks, file by file.

A scripted model stands in for the model; the parser, the worker's code calls, the
engine, the sandbox and the files are real."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from builders import scripted
from zerog import Engine, Goal, RunStatus
from zerog.coder import CodeAnswerError, FileText
from zerog.context import Context
from zerog.errors import ModelOutputError
from zerog.events import Event
from zerog.planner import plan as make_plan
from zerog.replay import replay_run
from zerog.store import Store
from zerog.types import EditAction, Plan, RunResult, ShellAction, Step, WriteFileAction
from zerog.worker import code

CALC = "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"
FIXED = CALC.replace("a - b", "a + b")
TESTS = (
    "import unittest\n\nfrom calc import add, mul\n\n\n"
    "class CalcTest(unittest.TestCase):\n"
    "    def test_add(self):\n        self.assertEqual(add(2, 3), 5)\n\n"
    "    def test_mul(self):\n        self.assertEqual(mul(2, 3), 6)\n"
)
CHECK = "python3 -m unittest -q"


def outline(*steps: dict[str, object]) -> dict[str, object]:
    return {"purpose": "plan", "json": {"steps": list(steps)}}


def answer(text: str) -> dict[str, object]:
    return {"purpose": "code", "text": text}


def fenced(content: str, lang: str = "python") -> str:
    return f"Here it is:\n```{lang}\n{content}```\n"


def sr(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def context() -> Context:
    return Context(goal="fix add()", checks=(CHECK,), env={}, files=(), files_omitted=0, history=())


def one_step(*files: str, actions: tuple[ShellAction, ...] = ()) -> Plan:
    return Plan(steps=(Step(intent="Make add() return the sum", files=files, actions=actions),))


def reader(files: dict[str, FileText]) -> Callable[[str], FileText]:
    return lambda path: files.get(path, FileText(None))


# ---------------------------------------------------------------- the planner


def test_the_plan_names_files_and_commands_and_asks_for_no_code() -> None:
    model = scripted(
        outline({"intent": "fix add", "files": ["calc.py", "calc.py"], "commands": ["ls"]})
    )
    got = make_plan(model, context())
    assert got.steps == (
        Step(intent="fix add", files=("calc.py",), actions=(ShellAction(command="ls"),)),
    )
    schema = json.dumps(model.requests[0].json_schema)
    assert '"files"' in schema
    assert '"actions"' not in schema
    assert "content" not in schema


def test_a_plan_with_actions_is_still_taken_as_it_is() -> None:
    write = {"kind": "write_file", "path": "calc.py", "content": FIXED}
    got = make_plan(scripted(outline({"intent": "fix", "actions": [write]})), context())
    assert got.steps[0].actions == (WriteFileAction(path="calc.py", content=FIXED),)
    assert got.steps[0].files == ()


def test_a_plan_naming_a_path_outside_the_workspace_is_re_asked() -> None:
    bad = outline({"intent": "fix", "files": ["../calc.py"]})
    with pytest.raises(ModelOutputError, match="leaves the workspace"):
        make_plan(scripted(bad, bad), context())


# ---------------------------------------------------------------- the code calls


def test_a_small_file_comes_whole_in_a_fenced_block() -> None:
    model = scripted(answer(fenced(FIXED)))
    actions = code(model, context(), one_step("calc.py"), 0, reader({"calc.py": FileText(CALC)}))
    assert actions == (WriteFileAction(path="calc.py", content=FIXED),)
    (request,) = model.requests
    assert request.purpose == "code"
    assert request.temperature == 0.0
    assert request.json_schema is None
    prompt = request.messages[-1].content
    assert "# calc.py now\n```\ndef add(a, b):" in prompt
    assert "complete new content of calc.py in ONE fenced block" in prompt


def test_a_whole_python_answer_keeps_the_functions_it_did_not_rewrite() -> None:
    model = scripted(answer(fenced("def add(a, b):\n    return a + b\n")))
    actions = code(model, context(), one_step("calc.py"), 0, reader({"calc.py": FileText(CALC)}))
    (write,) = actions
    assert isinstance(write, WriteFileAction)
    assert "return a + b" in write.content
    assert "def mul(a, b):" in write.content


def test_a_new_file_is_written_whole() -> None:
    model = scripted(answer(fenced("# Notes\n\n```sh\nmake\n```\n", "markdown")))
    actions = code(model, context(), one_step("NOTES.md"), 0, reader({}))
    assert actions == (WriteFileAction(path="NOTES.md", content="# Notes\n\n```sh\nmake\n```\n"),)
    assert "NOTES.md does not exist yet" in model.requests[0].messages[-1].content


def test_a_large_file_is_changed_by_search_replace_blocks() -> None:
    model = scripted(answer(sr("    return a - b\n", "    return a + b\n")))
    files = reader({"calc.py": FileText(CALC)})
    actions = code(model, context(), one_step("calc.py"), 0, files, whole_chars=10)
    assert actions == (
        EditAction(path="calc.py", search="    return a - b\n", replace="    return a + b\n"),
    )
    assert "<<<<<<< SEARCH" in model.requests[0].messages[-1].content


def test_edits_of_a_crlf_file_keep_its_line_ends() -> None:
    model = scripted(answer(sr("    return a - b\n", "    return a + b\n")))
    files = reader({"calc.py": FileText(CALC, crlf=True)})
    actions = code(model, context(), one_step("calc.py"), 0, files, whole_chars=10)
    assert actions == (
        EditAction(path="calc.py", search="    return a - b\r\n", replace="    return a + b\r\n"),
    )


def test_search_replace_is_taken_where_a_whole_file_was_asked() -> None:
    model = scripted(answer(sr("    return a - b\n", "    return a + b\n")))
    actions = code(model, context(), one_step("calc.py"), 0, reader({"calc.py": FileText(CALC)}))
    assert isinstance(actions[0], EditAction)


def test_a_malformed_answer_is_re_asked_quoting_the_problem_and_sampled() -> None:
    cut_off = "```python\ndef add(a, b):\n    return a +"
    model = scripted(answer(cut_off), answer(fenced(FIXED)))
    actions = code(model, context(), one_step("calc.py"), 0, reader({"calc.py": FileText(CALC)}))
    assert actions == (WriteFileAction(path="calc.py", content=FIXED),)
    first, second = model.requests
    assert second.temperature > 0.0
    assert second.seed is not None
    assert second.messages[: len(first.messages)] == first.messages
    assert second.messages[-2].content == cut_off
    reask = second.messages[-1].content
    assert reask.startswith("That answer could not be used: the ``` block of calc.py")
    assert "is not closed" in reask
    assert "ONE fenced block" in reask


def test_a_search_text_not_in_the_file_is_re_asked() -> None:
    model = scripted(
        answer(sr("    return a-b\n", "    return a + b\n")),
        answer(sr("def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")),
    )
    files = reader({"calc.py": FileText(CALC)})
    actions = code(model, context(), one_step("calc.py"), 0, files, whole_chars=10)
    assert len(actions) == 1
    assert "does not occur in calc.py" in model.requests[1].messages[-1].content


def test_an_ambiguous_search_text_is_re_asked() -> None:
    model = scripted(
        answer(sr("    return a - b\n", "    return a + b\n")),
        answer(sr("def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n")),
    )
    text = CALC + "\n\ndef sub(a, b):\n    return a - b\n"
    files = reader({"calc.py": FileText(text)})
    code(model, context(), one_step("calc.py"), 0, files, whole_chars=10)
    assert "occurs 2 times in calc.py" in model.requests[1].messages[-1].content


def test_re_asks_are_bounded_then_the_step_fails_with_the_account() -> None:
    model = scripted(answer("no code"), answer("still none"), answer("```python\nx = ("))
    with pytest.raises(CodeAnswerError, match=r"unusable after 3 answers: the ``` block"):
        code(model, context(), one_step("calc.py"), 0, reader({"calc.py": FileText(CALC)}))
    temperatures = [r.temperature for r in model.requests]
    seeds = [r.seed for r in model.requests]
    assert temperatures[0] == 0.0
    assert all(t > 0 for t in temperatures[1:])
    assert len(set(seeds)) == 3


def test_a_file_that_cannot_be_read_fails_the_step_without_a_model_call() -> None:
    model = scripted()
    files = reader({"data.bin": FileText(None, problem="it is not UTF-8 text")})
    with pytest.raises(CodeAnswerError, match=r"cannot change data\.bin: it is not UTF-8"):
        code(model, context(), one_step("data.bin"), 0, files)
    assert model.requests == []


# ---------------------------------------------------------------- end to end


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    (root / "calc.py").write_text(CALC)
    (root / "test_calc.py").write_text(TESTS)
    return root


def run(model: object, root: Path, **kwargs: object) -> RunResult:
    engine = Engine(
        model,  # type: ignore[arg-type]
        environ={"PATH": "/usr/bin:/bin"},
        sandbox_name="local",
        **kwargs,  # type: ignore[arg-type]
    )
    return engine.run(
        Goal(text="add() subtracts; make the tests pass", workspace=root, checks=[CHECK])
    )


def test_a_repo_bug_is_fixed_from_a_plan_and_a_code_block(repo: Path) -> None:
    model = scripted(
        outline({"intent": "Make add() return a + b", "files": ["calc.py"]}),
        answer(fenced("def add(a, b):\n    return a + b\n")),
    )
    result = run(model, repo)
    assert result.status is RunStatus.SUCCESS, result.reason
    assert result.iterations == 1
    assert (repo / "calc.py").read_text() == FIXED  # spliced in place, mul() kept
    assert (repo / "test_calc.py").read_text() == TESTS
    code_prompt = model.requests[1].messages[-1].content
    assert "# calc.py now" in code_prompt
    assert "FAIL: test_add" in code_prompt


def test_an_unusable_code_answer_fails_the_iteration_and_the_next_one_sees_why(
    repo: Path,
) -> None:
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    model = scripted(
        outline({"intent": "fix add", "files": ["calc.py"]}),
        answer("I think add is wrong."),
        answer("add should add."),
        answer("```python\ndef add(a, b):\n    return a +"),
        outline({"intent": "fix add in calc.py", "files": ["calc.py"]}),
        answer(sr("    return a - b\n", "    return a + b\n")),
    )
    result = run(model, repo, sinks=[Sink()])
    assert result.status is RunStatus.SUCCESS, result.reason
    assert result.iterations == 2
    assert [e.kind for e in events].count("code_failed") == 1
    second_plan = model.requests[4].messages[-1].content
    assert "unusable after 3 answers" in second_plan
    assert "is not closed" in second_plan
    assert (repo / "calc.py").read_text() == FIXED


def test_no_code_is_asked_for_a_protected_file_the_plan_names(repo: Path) -> None:
    """The 0.5B's plan for the local demo named the test file too: its code call was
    spent on an answer no action could write. Now it is not asked for."""
    events: list[Event] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append(event)

    model = scripted(
        outline({"intent": "fix add", "files": ["calc.py", "test_calc.py"]}),
        answer(fenced("def add(a, b):\n    return a + b\n")),
    )
    result = run(model, repo, sinks=[Sink()])
    assert result.status is RunStatus.SUCCESS, result.reason
    assert [r.purpose for r in model.requests] == ["plan", "code"]
    assert "# calc.py now" in model.requests[1].messages[-1].content
    skipped = [e.data for e in events if e.kind == "code_skipped"]
    assert [d["path"] for d in skipped] == ["test_calc.py"]
    assert "protected" in str(skipped[0]["reason"])


def test_a_step_naming_only_protected_files_fails_with_why(repo: Path) -> None:
    model = scripted(
        outline({"intent": "change the test", "files": ["test_calc.py"]}),
        outline({"intent": "fix add", "files": ["calc.py"]}),
        answer(fenced(FIXED)),
    )
    result = run(model, repo)
    assert result.status is RunStatus.SUCCESS, result.reason
    assert result.iterations == 2
    assert [r.purpose for r in model.requests] == ["plan", "plan", "code"]
    assert "test_calc.py is protected" in model.requests[1].messages[-1].content
    assert (repo / "test_calc.py").read_text() == TESTS


def test_the_step_commands_run_after_its_code(repo: Path) -> None:
    model = scripted(
        outline(
            {"intent": "fix add", "files": ["calc.py"], "commands": ["grep -q 'a + b' calc.py"]}
        ),
        answer(fenced(FIXED)),
    )
    result = run(model, repo)
    assert result.status is RunStatus.SUCCESS, result.reason


def test_a_run_with_code_blocks_replays(repo: Path, tmp_path: Path) -> None:
    with Store(tmp_path / "runs.db") as store:
        model = scripted(
            outline({"intent": "fix add", "files": ["calc.py"]}),
            answer(sr("    return a - b\n", "    return a + b\n")),
        )
        result = run(model, repo, store=store)
        assert result.status is RunStatus.SUCCESS
        report = replay_run(store, result.run_id, environ={"PATH": "/usr/bin:/bin"})
    assert report.ok, report.divergences
    assert report.replay.status is RunStatus.SUCCESS
    assert report.model_calls == 2
