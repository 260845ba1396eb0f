"""Cascades: which models a spec stands for (``local`` with and without the 1.5B,
``cascade:NAME`` from the config), and when :class:`Escalating` moves up (an invalid
answer's re-ask, a degenerate answer), in real runs with scripted models and through
`zerog run` against two OpenAI-compatible servers on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import plan, scripted, step, write, zerog_cli
from models.sse import StreamingServer
from zerog import Budget, Engine, Goal, RunStatus
from zerog.config import Config, LocalSettings, load_config
from zerog.errors import ConfigError
from zerog.models.cascade import Escalating
from zerog.models.scripted import ScriptedModel
from zerog.models.spec import load_model, model_chain, with_cascade
from zerog.models.weights import WEIGHTS
from zerog.sandbox.local import LocalSandbox
from zerog.types import CommandCheck

FIX = plan(step("fix", write("app.py", "def answer():\n    return 42\n")))
CHECK = "python3 -c 'import app; assert app.answer() == 42'"


def everything(name: str, index: int) -> Path | None:
    return Path(__file__)  # every part package "installed"


def nothing(name: str, index: int) -> Path | None:
    return None


def test_local_is_the_small_model_escalating_to_the_installed_one(tmp_path: Path) -> None:
    config = Config(local=LocalSettings(model_dir=tmp_path))
    both = ("local:0.5b", "local:1.5b")
    assert model_chain("local", config=config, environ={}, locate=everything) == both
    assert model_chain("local", config=config, environ={}, locate=nothing) == ("local",)
    # Assembled earlier (the part packages since removed): still at hand.
    (tmp_path / WEIGHTS["1.5b"].filename).write_bytes(b"gguf")
    assert model_chain("local", config=config, environ={}, locate=nothing) == both
    for single in ("local:0.5b", "local:1.5b", "local:/m.gguf", "openai:gpt-4.1"):
        assert model_chain(single, config=config, environ={}, locate=everything) == (single,)
    first, then = with_cascade("local", ("openai:gpt-4.1",), config=config, environ={})
    assert (first, then) == ("local:0.5b", ("local:1.5b", "openai:gpt-4.1"))


def test_a_named_cascade_comes_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[cascades]\napi = ["openai:gpt-4.1-mini", "anthropic:claude-x"]\n')
    config = load_config(path)
    chain = model_chain("cascade:api", config=config, environ={})
    assert chain == ("openai:gpt-4.1-mini", "anthropic:claude-x")
    with pytest.raises(ConfigError, match=r"no cascade named 'other'.*\[cascades\] other"):
        model_chain("cascade:other", config=config, environ={})
    nested = Config(cascades={"a": ["cascade:b", "openai:x"]})
    with pytest.raises(ConfigError, match="names another cascade"):
        model_chain("cascade:a", config=nested, environ={})
    with pytest.raises(ConfigError, match="names several models"):
        load_model("cascade:api", tmp_path, config=config, environ={})
    path.write_text('[cascades]\napi = ["openai:gpt-4.1-mini"]\n')
    with pytest.raises(ConfigError, match=r"cascades\.api"):
        load_config(path)  # one model is no cascade


def run(model: Escalating, workspace: Path) -> RunStatus:
    goal = Goal(
        text="make answer() return 42",
        workspace=workspace,
        checks=(CommandCheck(command=CHECK),),
        budget=Budget(max_iterations=2),
    )
    sandbox = LocalSandbox({"PATH": "/usr/bin:/bin"})
    engine = Engine(model, sandbox, sinks=[model], write_trace=False)
    return engine.run(goal).status


def test_the_reask_of_an_invalid_answer_goes_to_the_next_model(workspace: Path) -> None:
    small = scripted({"purpose": "plan", "text": "Sure! I will fix it."})
    big = scripted(FIX)
    cascade = Escalating(small, [lambda: big])
    assert run(cascade, workspace) is RunStatus.SUCCESS
    assert cascade.level == 1
    (asked,) = small.requests
    (reasked,) = big.requests
    assert (asked.attempt, asked.temperature) == (0, 0.0)
    assert (reasked.attempt, reasked.temperature) == (1, 0.7)  # sampled, not greedy again
    assert reasked.seed is not None
    assert "That answer was invalid" in reasked.messages[-1].content


def test_a_degenerate_answer_moves_up_once_even_when_it_parses(workspace: Path) -> None:
    looped = {**FIX, "finish": "degenerate"}
    small = scripted(looped)
    built: list[ScriptedModel] = []

    def load(model: ScriptedModel) -> ScriptedModel:
        built.append(model)
        return model

    cascade = Escalating(small, [lambda: load(scripted(FIX)), lambda: load(scripted(FIX))])
    assert run(cascade, workspace) is RunStatus.SUCCESS
    assert cascade.level == 1  # the degenerate answer moved it up; its re-ask did not again
    assert len(built) == 1
    assert built[0].requests[0].attempt == 1
    assert "repeated itself in a loop" in built[0].requests[0].messages[-1].content


@pytest.mark.slow
def test_zerog_run_with_a_cascade_of_two_compatible_servers(
    tmp_path: Path, workspace: Path
) -> None:
    loop = ["{", *(' "steps": [' for _ in range(400))]
    answer = json.dumps(FIX["json"])
    with (
        StreamingServer(loop) as small,
        StreamingServer(
            [answer[i : i + 7] for i in range(0, len(answer), 7)], finish="stop"
        ) as big,
    ):
        config = tmp_path / "config.toml"
        config.write_text(
            "[cascades]\n"
            f'pair = ["openai-compatible:{small.url}#small", "openai-compatible:{big.url}#big"]\n'
        )
        done = zerog_cli(
            "run",
            "make answer() return 42",
            "-w",
            str(workspace),
            "-m",
            "cascade:pair",
            "-c",
            CHECK,
            "--sandbox",
            "local",
            "--json",
            cwd=tmp_path,
            env={"ZEROG_CONFIG": str(config)},
        )
        assert done.returncode == 0, done.stderr
        assert small.sent < 200  # the looping stream was cut short
        assert len(small.bodies) == 1
        assert len(big.bodies) == 1
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert (workspace / "app.py").read_text() == "def answer():\n    return 42\n"
