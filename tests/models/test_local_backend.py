"""The embedded local model, in process: grammar-constrained JSON, repeatable output, and
a real loop (local sandbox, real files) that solves a small coding goal within budget."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from zerog import Budget, Engine, Goal, RunStatus
from zerog.config import Config
from zerog.errors import ConfigError
from zerog.models.base import Message, Request
from zerog.models.degenerate import DEGENERATE
from zerog.models.llamacpp import LlamaCppModel
from zerog.models.spec import load_model
from zerog.structured import ask
from zerog.types import ShellAction, StepActions

DEMO = Path(__file__).resolve().parents[2] / "examples" / "local-demo" / "workspace"


def test_structured_answer_is_constrained_to_the_schema(local_model: LlamaCppModel) -> None:
    messages = (
        Message(role="system", content="Reply with one JSON object."),
        Message(role="user", content="Give one shell action that prints hello."),
    )
    answer = ask(local_model, messages, StepActions, purpose="act", max_tokens=120)
    assert len(answer.actions) >= 1
    assert all(a.kind in {"shell", "write_file", "edit"} for a in answer.actions)


def test_output_is_repeatable_and_usage_is_counted(local_model: LlamaCppModel) -> None:
    request = Request(
        messages=(Message(role="user", content="Name three colours, comma separated."),),
        max_tokens=16,
    )
    first, second = local_model.complete(request), local_model.complete(request)
    assert first.text == second.text
    assert first.text
    assert first.usage.input_tokens > 5
    assert 0 < first.usage.output_tokens <= 16
    assert first.cost == 0.0
    assert first.model == "local"
    assert first.finish == second.finish == "stop"
    # The same Llama kept the prompt's tokens: the second call evaluated only the last one.
    assert second.usage.cached_tokens == second.usage.input_tokens - 1


def test_a_generation_that_loops_is_stopped_early(local_model: LlamaCppModel) -> None:
    request = Request(
        messages=(
            Message(
                role="user",
                content="Print the line 'all work and no play' 500 times, one per line, "
                "nothing else.",
            ),
        ),
        max_tokens=2000,
    )
    response = local_model.complete(request)
    assert response.finish == DEGENERATE
    assert response.usage.output_tokens < 200  # of the 2000 it was allowed
    assert response.text.count("all work and no play") <= 2  # cut where the loop began


def test_a_greedy_answer_reports_how_sure_the_model_was_of_its_code(
    local_model: LlamaCppModel,
) -> None:
    def ask_for(prompt: str, temperature: float = 0.0, confidence: bool = True) -> Request:
        return Request(
            messages=(Message(role="user", content=prompt),),
            max_tokens=80,
            temperature=temperature,
            seed=1,
            confidence=confidence,
        )

    easy = local_model.complete(ask_for("Reply with only this code block:\n```python\nx = 1\n```"))
    assert easy.confidence is not None
    assert 0 < easy.confidence.tokens < 20  # only the block's tokens count, not the prose
    hard = local_model.complete(ask_for("Write a Python haiku generator in one code block."))
    assert hard.confidence is not None
    assert hard.confidence.score < easy.confidence.score
    assert hard.confidence.low_tokens > easy.confidence.low_tokens
    assert 0 < hard.confidence.min_prob < 0.5
    # A sampled answer's tokens are not the most likely ones: no confidence is claimed.
    assert local_model.complete(ask_for("Say hi.", temperature=0.7)).confidence is None
    # Not asked for: not measured (the probe costs a little on every generated token).
    assert local_model.complete(ask_for("Say hi.", confidence=False)).confidence is None


def test_a_gguf_path_spec_and_bad_local_specs(weights_path: Path, tmp_path: Path) -> None:
    base = weights_path.parent
    model = load_model(f"local:{weights_path.name}", base, config=Config(), environ={})
    assert model.name == f"local:{weights_path.name}"
    with pytest.raises(ConfigError, match="does not exist"):
        load_model("local:missing.gguf", tmp_path, config=Config(), environ={})
    (tmp_path / "junk.gguf").write_bytes(b"not a model at all")
    with pytest.raises(ConfigError, match=r"cannot load .* as a GGUF model"):
        load_model("local:junk.gguf", tmp_path, config=Config(), environ={})
    with pytest.raises(ConfigError, match="unknown local model '7b'"):
        load_model("local:7b", tmp_path, config=Config(), environ={})
    with pytest.raises(ConfigError, match="unknown local model '7b'"):
        load_model("local-7b", tmp_path, config=Config(), environ={})


@pytest.mark.timeout(600)
def test_a_real_loop_solves_a_coding_goal(local_model: LlamaCppModel, tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    shutil.copytree(DEMO, workspace)
    goal = Goal(
        text="Implement median() in stats.py so the tests pass",
        workspace=workspace,
        checks=["python3 -m unittest -q"],
        budget=Budget(max_iterations=3, max_output_tokens=6_000, max_seconds=500),
    )
    environ = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    result = Engine(local_model, environ=environ).run(goal)
    assert result.status is RunStatus.SUCCESS, result.reason
    assert "raise NotImplementedError" not in (workspace / "stats.py").read_text()
    assert result.usage.input_tokens > 0
    assert result.usage.output_tokens > 0
    assert result.cost == 0.0


def test_shell_action_shape_is_the_validated_type() -> None:
    # The decoding grammar writes "kind" first; the validated type is still the real one.
    assert ShellAction(command="true").kind == "shell"
