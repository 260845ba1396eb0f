"""`zerog replay` of a run made with each strategy: the default JSON planner (router off
and on), the code planner (--answer-file) and a cascade (--escalate). Each run uses the
scripted model and the local sandbox; its replay must end as the run did, with no
divergence."""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

import pytest

from builders import plan, step, write, write_script, zerog_cli
from zerog.replay import replay_run
from zerog.store import Store

pytestmark = pytest.mark.slow  # runs the zerog command line in subprocesses

STUB = 'def double(x):\n    """Twice x.\n    >>> double(2)\n    4\n    """\n'
RIGHT = {"text": "```python\ndef double(x):\n    return 2 * x\n```"}
WRONG = {"text": "```python\ndef double(x):\n    return x\n```"}

zerog = functools.partial(zerog_cli, columns=200)


def run_then_replay(tmp_path: Path, *args: str) -> None:
    """`zerog run ARGS` in a fresh workspace holding calc.py, then its replay: same
    outcome, every outcome compared, no divergence, every recorded answer used."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text(STUB, encoding="utf-8")
    done = zerog(
        "run",
        "Implement double()",
        "-w",
        str(ws),
        *args,
        "--sandbox",
        "local",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    with Store(tmp_path / "runs.db") as store:
        report = replay_run(store, str(result["run_id"]), environ=os.environ, workdir=tmp_path)
        assert report.divergences == []
        assert report.compared > 0
        assert (report.replay.status, report.replay.iterations) == (
            result["status"],
            result["iterations"],
        )
    shown = zerog("replay", str(result["run_id"]), cwd=tmp_path)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert " 0 divergences" in shown.stdout


@pytest.mark.parametrize("router", ["off", "builtin"])
def test_replay_of_the_json_planner(tmp_path: Path, router: str) -> None:
    model = write_script(
        tmp_path / "m.jsonl",
        plan(step("write", write("calc.py", "def double(x):\n    return 2 * x\n"))),
    )
    run_then_replay(
        tmp_path,
        "-m",
        f"scripted:{model}",
        "--check",
        "python3 -c 'import calc; assert calc.double(2) == 4'",
        "--router",
        router,
    )


def test_replay_of_the_code_planner(tmp_path: Path) -> None:
    model = write_script(tmp_path / "m.jsonl", WRONG, RIGHT)
    run_then_replay(
        tmp_path, "-m", f"scripted:{model}", "--answer-file", "calc.py", "--examples", "calc.py"
    )


def test_replay_of_a_cascade(tmp_path: Path) -> None:
    small = write_script(tmp_path / "small.jsonl", WRONG)
    big = write_script(tmp_path / "big.jsonl", RIGHT)
    run_then_replay(
        tmp_path,
        "-m",
        f"scripted:{small}",
        "--escalate",
        f"scripted:{big}",
        "--answer-file",
        "calc.py",
        "--examples",
        "calc.py",
    )
