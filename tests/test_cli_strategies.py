"""`zerog run --answer-file --examples --escalate` and `zerog bench humaneval`, run as
subprocesses with scripted models and the local sandbox."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from builders import write_script, zerog_cli
from zerog.store import Store

STUB = 'def double(x):\n    """Twice x.\n    >>> double(2)\n    4\n    """\n'


zerog = functools.partial(zerog_cli, columns=200)


def test_run_escalates_to_the_next_model_after_the_examples_fail(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "calc.py").write_text(STUB, encoding="utf-8")
    small = write_script(
        tmp_path / "small.jsonl", {"text": "```python\ndef double(x):\n    return x\n```"}
    )
    big = write_script(
        tmp_path / "big.jsonl", {"text": "```python\ndef double(x):\n    return 2 * x\n```"}
    )
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
        "--sandbox",
        "local",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["iterations"]) == ("success", 2)
    # The answer redefines double(): the stub's version is replaced, not kept beside it.
    assert (ws / "calc.py").read_text() == "def double(x):\n    return 2 * x\n"
    # The strategy is recorded with the run: `zerog resume` rebuilds it.
    with Store(tmp_path / "runs.db") as store:
        spec = store.find(result["run_id"]).spec
    assert spec["answer_file"] == "calc.py"
    assert spec["escalate"] == [f"scripted:{big}"]
    assert spec["unsure_tokens"] is None
    assert spec["escalate_after"] == 1
    # --escalate-after 2: the small model gets one retry that sees its failure first.
    (ws / "calc.py").write_text(STUB, encoding="utf-8")
    small_twice = write_script(
        tmp_path / "small2.jsonl",
        {"text": "```python\ndef double(x):\n    return x\n```"},
        {"text": "```python\ndef double(x):\n    return x + 1\n```"},
    )
    patient = zerog(
        "run",
        "Implement double()",
        "-w",
        str(ws),
        "--answer-file",
        "calc.py",
        "--examples",
        "calc.py",
        "-m",
        f"scripted:{small_twice}",
        "--escalate",
        f"scripted:{big}",
        "--escalate-after",
        "2",
        "--sandbox",
        "local",
        "--json",
        cwd=tmp_path,
    )
    assert patient.returncode == 0, patient.stderr
    assert (json.loads(patient.stdout)["status"], json.loads(patient.stdout)["iterations"]) == (
        "success",
        3,
    )
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
