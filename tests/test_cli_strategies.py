"""`zerog run --answer-file --examples --escalate` and `zerog bench humaneval`, run as
subprocesses with scripted models and the local sandbox."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from builders import write_script, zerog_cli
from zerog.store import Store

pytestmark = pytest.mark.slow  # runs the zerog command line in subprocesses

STUB = 'def double(x):\n    """Twice x.\n    >>> double(2)\n    4\n    """\n'


zerog = functools.partial(zerog_cli, columns=200)


def cascade_run(ws: Path, small: Path, big: Path, *extra: str) -> dict[str, object]:
    """`zerog run` on calc.py (reset to the stub) with the examples check and a cascade."""
    (ws / "calc.py").write_text(STUB, encoding="utf-8")
    done = zerog(
        "run",
        "Implement double()",
        "-w",
        str(ws),
        "--answer-file",
        "calc.py",
        "--examples",
        "calc.py",
        "-m",
        f"scripted:{small}",
        "--escalate",
        f"scripted:{big}",
        *extra,
        "--sandbox",
        "local",
        "--json",
        cwd=ws.parent,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_run_escalates_to_the_next_model_after_the_examples_fail(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    wrong = {"text": "```python\ndef double(x):\n    return x\n```"}
    small = write_script(tmp_path / "small.jsonl", wrong)
    big = write_script(
        tmp_path / "big.jsonl", {"text": "```python\ndef double(x):\n    return 2 * x\n```"}
    )
    result = cascade_run(ws, small, big)
    assert (result["status"], result["iterations"]) == ("success", 2)
    # The answer redefines double(): the stub's version is replaced, not kept beside it.
    assert (ws / "calc.py").read_text() == "def double(x):\n    return 2 * x\n"
    # The strategy is recorded with the run: `zerog resume` rebuilds it.
    with Store(tmp_path / "runs.db") as store:
        spec = store.find(str(result["run_id"])).spec
    assert spec["answer_file"] == "calc.py"
    assert spec["escalate"] == [f"scripted:{big}"]
    assert spec["unsure_tokens"] is None
    assert spec["escalate_after"] == 1
    shown = zerog("show", str(result["run_id"]), cwd=tmp_path)  # each model's share
    assert shown.returncode == 0, shown.stderr
    assert "by scripted:small.jsonl: 1 call · " in shown.stdout
    assert "by scripted:big.jsonl: 1 call · " in shown.stdout
    # --escalate-after 2: the small model gets one retry that sees its failure first.
    also_wrong = {"text": "```python\ndef double(x):\n    return x + 1\n```"}
    small_twice = write_script(tmp_path / "small2.jsonl", wrong, also_wrong)
    patient = cascade_run(ws, small_twice, big, "--escalate-after", "2")
    assert (patient["status"], patient["iterations"]) == ("success", 3)
    missing = zerog("run", "x", "-w", str(ws), "--examples", "nope.py", cwd=tmp_path)
    assert missing.returncode == 2
    assert "cannot read nope.py" in missing.stderr


def test_bench_humaneval_command_runs_resumes_and_refuses_bad_input(tmp_path: Path) -> None:
    data = tmp_path / "tiny.jsonl"
    task = {
        "task_id": "Tiny/0",
        "prompt": STUB,
        "entry_point": "double",
        "test": "def check(candidate):\n    assert candidate(5) == 10\n",
    }
    data.write_text(json.dumps(task) + "\n", encoding="utf-8")
    script = write_script(
        tmp_path / "m.jsonl", {"text": "```python\ndef double(x):\n    return x + x\n```"}
    )
    args = [
        "bench",
        "humaneval",
        "--data",
        str(data),
        "-m",
        f"scripted:{script}",
        "--sandbox",
        "local",
        "--out",
        str(tmp_path / "out"),
    ]
    done = zerog(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "1/1 = 100.0%" in done.stdout
    assert (tmp_path / "out" / "summary.json").is_file()
    again = zerog(*args, cwd=tmp_path)  # resumed: nothing left to run, the script is not asked
    assert again.returncode == 0, again.stderr
    assert "1/1 = 100.0%" in again.stdout
    bad = zerog("bench", "humaneval", "--strategy", "magic", "--data", str(data), cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown strategy 'magic'" in bad.stderr
    assert "Traceback" not in bad.stderr
