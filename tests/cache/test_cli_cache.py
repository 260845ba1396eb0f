"""`zerog run` with the caches, and `zerog cache stats | export | clear`, as subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from builders import plan, step, write, write_script

ZEROG = [sys.executable, "-m", "zerog"]


def zerog(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "150", "NO_COLOR": "1", "ZEROG_STORE": str(cwd / "runs.db")}
    return subprocess.run(
        [*ZEROG, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_run_twice_hits_then_stats_export_clear(workspace: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.jsonl", plan(step("fix", write("app.py", "def answer():\n    return 42\n")))
    )
    original = (workspace / "app.py").read_text()
    args = [
        "run",
        "make answer() in app.py return 42",
        "-w",
        str(workspace),
        "-m",
        f"scripted:{script}",
        "-c",
        "python3 -c 'import app; assert app.answer() == 42'",
        "--sandbox",
        "local",
        "--plan-cache",
    ]
    first = zerog(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "cache hits" not in first.stdout
    (workspace / "app.py").write_text(original)
    # The script has one answer: the second run only succeeds because of the cache.
    second = zerog(*args, "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["cache_hits"] == {"plan": 1}
    assert result["usage"]["input_tokens"] == 0
    (workspace / "app.py").write_text(original)
    third = zerog(*args[:-1], cwd=tmp_path)  # exact cache alone, default on
    assert third.returncode == 0, third.stderr
    assert "cache hits  model 1" in third.stdout

    stats = zerog("cache", "stats", "--json", cwd=tmp_path)
    assert stats.returncode == 0, stats.stderr
    numbers = json.loads(stats.stdout)
    assert numbers["plan"]["entries"] == 1
    assert numbers["plan"]["hit"] == 1
    assert numbers["model"]["entries"] == 1
    assert numbers["model"]["hit"] == 1
    table = zerog("cache", "stats", cwd=tmp_path)
    assert "plan" in table.stdout
    assert "model" in table.stdout

    exported = zerog("cache", "export", cwd=tmp_path)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(line["kind"] for line in lines) == ["model", "plan"]
    assert "steps" in lines[-1]["value"]["plan"]

    bad = zerog("cache", "clear", "--kind", "nope", cwd=tmp_path)
    assert bad.returncode == 2
    assert "unknown cache" in bad.stderr
    cleared = zerog("cache", "clear", cwd=tmp_path)
    assert cleared.stdout.strip() == "removed 2 entries"
    assert (
        json.loads(zerog("cache", "stats", "--json", cwd=tmp_path).stdout)["plan"]["entries"] == 0
    )


def test_no_cache_calls_the_model_every_time(workspace: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.jsonl", plan(step("fix", write("app.py", "def answer():\n    return 42\n")))
    )
    args = ["run", "make it 42", "-w", str(workspace), "-m", f"scripted:{script}"]
    args += ["-c", "python3 -c 'import app; assert app.answer() == 42'", "--sandbox", "local"]
    for _ in range(2):
        done = zerog(*args, "--no-cache", "--json", cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["cache_hits"] == {}
        assert result["usage"]["input_tokens"] > 0
        (workspace / "app.py").write_text("def answer():\n    return 41\n")
    assert not (tmp_path / "cache.db").exists()


def test_cache_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cache.db").write_text("garbage " * 100)
    done = zerog("cache", "stats", cwd=tmp_path)
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr
