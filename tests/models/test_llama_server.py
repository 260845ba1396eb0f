"""The OpenAI-compatible adapter against a real `python -m llama_cpp.server` running the
embedded model on loopback: structured output end to end, and `zerog run` through it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from zerog.config import Config
from zerog.models.base import Message, Request
from zerog.models.openai import OpenAIModel
from zerog.models.spec import load_model
from zerog.structured import ask
from zerog.types import Plan

DEMO = Path(__file__).resolve().parents[2] / "examples" / "local-demo" / "workspace"


@pytest.mark.timeout(300)
def test_a_plan_parsed_from_the_servers_answer(llama_server: str) -> None:
    model = load_model(
        f"openai-compatible:{llama_server}#qwen", Path("."), config=Config(), environ={}
    )
    assert isinstance(model, OpenAIModel)
    messages = (
        Message(role="system", content="You plan work. Reply with one JSON object."),
        Message(
            role="user",
            content="Make a plan with one step, intent 'greet', and one shell action "
            "whose command is 'echo hello'.",
        ),
    )
    plan = ask(model, messages, Plan, purpose="plan", max_tokens=200)
    assert plan.steps
    assert plan.steps[0].intent
    # llama-cpp-python's server takes no json_schema format: the adapter stepped down.
    assert model.response_format == "json_object_schema"


@pytest.mark.timeout(300)
def test_a_code_answer_from_the_server_carries_its_token_confidence(llama_server: str) -> None:
    model = load_model(
        f"openai-compatible:{llama_server}#qwen", Path("."), config=Config(), environ={}
    )
    request = Request(
        messages=(
            Message(role="user", content="Write a Python function add(a, b) in a code block."),
        ),
        max_tokens=80,
        confidence=True,  # logprobs: about ten times slower on this server, so on request
    )
    response = model.complete(request)
    assert "def add" in response.text
    confidence = response.confidence
    assert confidence is not None  # llama.cpp's server answered with logprobs
    assert 5 <= confidence.tokens <= 80
    assert 0.0 < confidence.min_prob <= 1.0
    assert confidence.mean_logprob <= 0.0
    assert 0 <= confidence.low_tokens <= confidence.tokens


@pytest.mark.timeout(600)
def test_zerog_run_through_the_server(llama_server: str, tmp_path: Path) -> None:
    workspace = tmp_path / "demo"
    shutil.copytree(DEMO, workspace)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(tmp_path),
        "LANG": "C.UTF-8",
    }
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "zerog",
            "run",
            "Implement median() in stats.py so the tests pass",
            "--workspace",
            str(workspace),
            "--check",
            "python3 -m unittest -q",
            "--model",
            f"openai-compatible:{llama_server}#qwen",
            "--max-iterations",
            "3",
            "--max-time",
            "500",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=560,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout)
    assert result["status"] == "success"
    assert result["usage"]["input_tokens"] > 0
