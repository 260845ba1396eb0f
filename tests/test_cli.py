"""The real `zerog` command, run as a subprocess the way users run it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from builders import acts, plan, step, write, write_script, zerog_cli

pytestmark = pytest.mark.slow  # runs the zerog command line in subprocesses

ROOT = Path(__file__).resolve().parents[1]


def test_help_explains_commands(tmp_path: Path) -> None:
    top = zerog_cli("--help", cwd=tmp_path, columns=120)
    assert top.returncode == 0
    assert "run" in top.stdout
    assert "bench" in top.stdout
    sub = zerog_cli("run", "--help", cwd=tmp_path, columns=120)
    assert sub.returncode == 0
    for flag in ("--check", "--workspace", "--model", "--max-iterations", "--max-cost"):
        assert flag in sub.stdout


def test_run_with_backtrack_succeeds_and_traces(workspace: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.jsonl",
        plan(step("wrong", write("app.py", "def answer():\n    return 0\n"), write("junk", ""))),
        plan(step("right")),
        acts(write("app.py", "def answer():\n    return 42\n")),
    )
    done = zerog_cli(
        "run",
        "make answer 42",
        "-w",
        str(workspace),
        "-m",
        f"scripted:{script}",
        "-c",
        "python3 -c 'import app; assert app.answer() == 42'",
        cwd=tmp_path,
        columns=120,
    )
    assert done.returncode == 0, done.stderr
    assert "iteration 2" in done.stdout
    assert "rolled back" in done.stdout
    assert "success" in done.stdout
    assert not (workspace / "junk").exists()
    run_id = done.stdout.split("run id")[-1].split()[0]
    exported = zerog_cli("export", run_id, cwd=tmp_path, columns=120)
    kinds = [json.loads(line)["kind"] for line in exported.stdout.splitlines()]
    assert kinds.index("rollback") < kinds.index("run_finished")
    assert not (workspace / ".zerog" / "runs").exists(), "the CLI writes JSONL only on request"


def test_json_output_and_failure_exit_code(workspace: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.jsonl", plan(step("noop", {"kind": "shell", "command": "true"}))
    )
    done = zerog_cli(
        "run",
        "goal",
        "-w",
        str(workspace),
        "-m",
        f"scripted:{script}",
        "-c",
        "false",
        "--max-iterations",
        "1",
        "--json",
        cwd=tmp_path,
        columns=120,
    )
    assert done.returncode == 1
    result = json.loads(done.stdout)
    assert result["status"] == "max_iterations"
    assert result["iterations"] == 1


def test_bad_inputs_give_clear_errors(workspace: Path, tmp_path: Path) -> None:
    no_check = zerog_cli(
        "run", "goal", "-w", str(workspace), "-m", "scripted:x", cwd=tmp_path, columns=120
    )
    assert no_check.returncode == 2
    assert "--check" in no_check.stderr
    bad_spec = zerog_cli(
        "run",
        "goal",
        "-w",
        str(workspace),
        "-m",
        "nonsense",
        "-c",
        "true",
        cwd=tmp_path,
        columns=120,
    )
    assert bad_spec.returncode == 2
    assert "unknown model spec" in bad_spec.stderr
    missing = zerog_cli(
        "run",
        "goal",
        "-w",
        str(workspace),
        "-m",
        "scripted:nope.jsonl",
        "-c",
        "true",
        cwd=tmp_path,
        columns=120,
    )
    assert missing.returncode == 2
    assert "cannot read script" in missing.stderr
    (tmp_path / "broken.jsonl").write_text("{not json\n")
    broken = zerog_cli(
        "run",
        "goal",
        "-w",
        str(workspace),
        "-m",
        "scripted:broken.jsonl",
        "-c",
        "true",
        cwd=tmp_path,
        columns=120,
    )
    assert broken.returncode == 2
    assert "broken.jsonl:1" in broken.stderr
    nodir = zerog_cli(
        "run",
        "goal",
        "-w",
        str(tmp_path / "nodir"),
        "-m",
        "scripted:broken.jsonl",
        "-c",
        "true",
        cwd=tmp_path,
        columns=120,
    )
    assert nodir.returncode == 2
    for result in (no_check, bad_spec, missing, broken, nodir):
        assert "Traceback" not in result.stderr


def test_model_error_exit_code(workspace: Path, tmp_path: Path) -> None:
    script = write_script(tmp_path / "s.jsonl", {"purpose": "plan", "text": "nope"})
    done = zerog_cli(
        "run",
        "goal",
        "-w",
        str(workspace),
        "-m",
        f"scripted:{script}",
        "-c",
        "false",
        cwd=tmp_path,
        columns=120,
    )
    assert done.returncode == 3
    assert "model_error" in done.stdout


def test_demo_example_runs(tmp_path: Path) -> None:
    demo = ROOT / "examples" / "demo"
    work = tmp_path / "demo"
    shutil.copytree(demo / "workspace", work)
    done = zerog_cli(
        "run",
        "Fix restock()",
        "-w",
        str(work),
        "-c",
        "python3 -m unittest -q",
        "-m",
        f"scripted:{demo / 'script.jsonl'}",
        cwd=tmp_path,
        columns=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert not (work / "NOTES.md").exists()


def test_bench_overhead_smoke(tmp_path: Path) -> None:
    done = zerog_cli(
        "bench",
        "overhead",
        "--iterations",
        "5",
        "--rounds",
        "1",
        "--json",
        cwd=tmp_path,
        columns=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["iterations"] == 5
    engine, bare = report["engine_per_iteration_ms"], report["bare_per_iteration_ms"]
    assert engine > 0  # which one is larger is the benchmark's finding, not a test's
    assert bare > 0
    assert abs(report["ratio"] - engine / bare) <= 0.01 * engine / bare
    assert abs(report["overhead_per_iteration_ms"] - (engine - bare)) <= 0.002
