"""The preflight through the real `zerog` command: the flag, goal files, exit codes, the
summary, `zerog show`, `zerog replay` and `zerog batch`."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from builders import plan, shell, step, write, write_script, zerog_cli
from zerog.store import Store

pytestmark = pytest.mark.slow  # runs the zerog command line in subprocesses

CHECK = "python3 -c 'import app; assert app.answer() == 42'"
FIX = write("app.py", "def answer():\n    return 42\n")


def _calls(store: Path) -> int:
    with Store(store) as opened:
        return sum(
            1 for row in opened.runs() for e in opened.events(row.id) if e.kind == "model_call"
        )


def test_no_preflight_asks_the_model_even_when_the_checks_pass(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    write_script(tmp_path / "s.jsonl", plan(step("look", shell("true"))))
    args = ("run", "answer 42", "-w", str(workspace), "-m", "scripted:s.jsonl", "-c", CHECK)
    done = zerog_cli(*args, "--no-preflight", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "preflight" not in done.stdout
    assert "iterations  1" in done.stdout
    assert _calls(tmp_path / "runs.db") == 1
    done = zerog_cli(*args, cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "── preflight" in done.stdout
    assert "✓ nothing to do: the checks already pass" in done.stdout
    assert "iterations  0" in done.stdout
    assert _calls(tmp_path / "runs.db") == 1, "the second run asked no model"


def test_a_goal_file_turns_the_preflight_off_and_the_flag_back_on(
    workspace: Path, tmp_path: Path
) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    (workspace / "zerog.toml").write_text(
        f'text = "answer 42"\npreflight = false\nchecks = ["{CHECK}"]\n'
    )
    write_script(tmp_path / "s.jsonl", plan(step("look", shell("true"))))
    goal = str(workspace / "zerog.toml")
    done = zerog_cli("run", "--goal", goal, "-m", "scripted:s.jsonl", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout)["iterations"] == 1
    done = zerog_cli(
        "run", "--goal", goal, "-m", "scripted:s.jsonl", "--preflight", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert (result["iterations"], result["reason"]) == (0, "nothing to do: the checks already pass")


def test_cannot_run_exits_2_and_show_tells_why(workspace: Path, tmp_path: Path) -> None:
    write_script(tmp_path / "s.jsonl", plan(step("fix", FIX)))
    done = zerog_cli(
        "run",
        "answer 42",
        "-w",
        str(workspace),
        "-m",
        "scripted:s.jsonl",
        "-c",
        "absent-tool-q7 --check",
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    out = " ".join(done.stdout.split())
    assert "✗ cannot run at all: absent-tool-q7 --check" in out
    assert "cause sh: 1: absent-tool-q7: not found" in out
    assert "fix absent-tool-q7 is not visible inside the bwrap sandbox" in out
    assert "tokens 0 in / 0 out" in out
    with Store(tmp_path / "runs.db") as store:
        [row] = store.runs()
    shown = zerog_cli("show", row.id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    story = " ".join(shown.stdout.split())
    assert f"{row.id}: cannot_run · 0 iterations · 0 in / 0 out tokens" in story
    assert "── preflight" in story
    assert "cause sh: 1: absent-tool-q7: not found" in story
    replayed = zerog_cli("replay", row.id, cwd=tmp_path)
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "0 recorded model answers" in replayed.stdout
    assert "0 divergences" in replayed.stdout


def test_git_makes_no_branch_when_there_is_nothing_to_do(workspace: Path, tmp_path: Path) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")

    def git(*args: str) -> str:
        env = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null", "HOME": str(tmp_path)}
        done = subprocess.run(
            ["git", *args], cwd=workspace, env=env, capture_output=True, text=True, check=True
        )
        return done.stdout

    git("init", "-q", "-b", "main")
    git("add", "-A")
    git("-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-qm", "init")
    write_script(tmp_path / "s.jsonl", plan(step("look", shell("true"))))
    done = zerog_cli(
        "run",
        "answer 42",
        "-w",
        str(workspace),
        "-m",
        "scripted:s.jsonl",
        "-c",
        CHECK,
        "--git",
        "--json",
        cwd=tmp_path,
        env={"GIT_CONFIG_NOSYSTEM": "1", "GIT_CONFIG_GLOBAL": "/dev/null"},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    outcome = json.loads(done.stdout)["git"]
    assert outcome["status"] == "skipped"
    assert outcome["message"] == "nothing to do: the checks already pass: no commit, no branch"
    assert git("branch", "--list").split() == ["*", "main"]
    assert git("status", "--porcelain") == ""


def test_batch_goals_with_and_without_the_preflight(workspace: Path, tmp_path: Path) -> None:
    (workspace / "app.py").write_text("def answer():\n    return 42\n")
    write_script(tmp_path / "s.jsonl", plan(step("look", shell("true"))))
    goals = tmp_path / "goals.jsonl"
    line = {"text": "answer 42", "workspace": str(workspace), "checks": [CHECK]}
    goals.write_text(
        "\n".join(
            json.dumps(g)
            for g in (
                line,
                {**line, "preflight": False},
                {**line, "checks": ["absent-tool-q7"]},
            )
        )
        + "\n"
    )
    done = zerog_cli(
        "batch",
        str(goals),
        "-m",
        "scripted:s.jsonl",
        "--out",
        str(tmp_path / "out"),
        "--jobs",
        "1",
        "--json",
        cwd=tmp_path,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert json.loads(done.stdout)["counts"] == {"success": 2, "cannot_run": 1}
    with Store(tmp_path / "runs.db") as store:
        iterations = sorted(r.iterations for r in store.runs())
    assert iterations == [0, 0, 1], "only the goal without a preflight asked the model"
    assert _calls(tmp_path / "runs.db") == 1
    # --no-preflight: the default for lines that do not say
    again = zerog_cli(
        "batch",
        str(goals),
        "-m",
        "scripted:s.jsonl",
        "--out",
        str(tmp_path / "out2"),
        "--batch-id",
        "second",
        "--jobs",
        "1",
        "--no-preflight",
        "--json",
        cwd=tmp_path,
    )
    assert again.returncode == 1, again.stdout + again.stderr
    counts = json.loads(again.stdout)["counts"]
    assert counts.get("cannot_run") is None


def test_bench_preflight_smoke(tmp_path: Path) -> None:
    done = zerog_cli(
        "bench", "preflight", "--rounds", "1", "--sandbox", "local", "--json", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["rounds"] == 1
    assert report["bare_sweep_ms"] > 0
    assert report["run_with_preflight_ms"] > 0
