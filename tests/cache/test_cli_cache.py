"""`zerog run` with the caches, and `zerog cache stats | export | clear`, as subprocesses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from builders import plan, step, write, write_script, zerog_cli

pytestmark = pytest.mark.slow  # runs the zerog command line in subprocesses


# the plan cache embeds goals with the real MiniLM
@pytest.mark.model
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
    first = zerog_cli(*args, cwd=tmp_path, columns=150)
    assert first.returncode == 0, first.stderr
    assert "cache hits" not in first.stdout
    (workspace / "app.py").write_text(original)
    # The script has one answer: the second run only succeeds because of the cache.
    second = zerog_cli(*args, "--json", cwd=tmp_path, columns=150)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["cache_hits"] == {"plan": 1}
    assert result["usage"]["input_tokens"] == 0
    (workspace / "app.py").write_text(original)
    third = zerog_cli(*args[:-1], cwd=tmp_path, columns=150)  # exact cache alone, default on
    assert third.returncode == 0, third.stderr
    assert "cache hits  model 1" in third.stdout

    stats = zerog_cli("cache", "stats", "--json", cwd=tmp_path, columns=150)
    assert stats.returncode == 0, stats.stderr
    numbers = json.loads(stats.stdout)
    assert numbers["plan"]["entries"] == 1
    assert numbers["plan"]["hit"] == 1
    assert numbers["model"]["entries"] == 1
    assert numbers["model"]["hit"] == 1
    table = zerog_cli("cache", "stats", cwd=tmp_path, columns=150)
    assert "plan" in table.stdout
    assert "model" in table.stdout

    exported = zerog_cli("cache", "export", cwd=tmp_path, columns=150)
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert sorted(line["kind"] for line in lines) == ["model", "plan"]
    assert "steps" in lines[-1]["value"]["plan"]

    bad = zerog_cli("cache", "clear", "--kind", "nope", cwd=tmp_path, columns=150)
    assert bad.returncode == 2
    assert "unknown cache" in bad.stderr
    cleared = zerog_cli("cache", "clear", cwd=tmp_path, columns=150)
    assert cleared.stdout.strip() == "removed 2 entries"
    assert (
        json.loads(zerog_cli("cache", "stats", "--json", cwd=tmp_path, columns=150).stdout)["plan"][
            "entries"
        ]
        == 0
    )


def test_no_cache_calls_the_model_every_time(workspace: Path, tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "s.jsonl", plan(step("fix", write("app.py", "def answer():\n    return 42\n")))
    )
    args = ["run", "make it 42", "-w", str(workspace), "-m", f"scripted:{script}"]
    args += ["-c", "python3 -c 'import app; assert app.answer() == 42'", "--sandbox", "local"]
    for _ in range(2):
        done = zerog_cli(*args, "--no-cache", "--json", cwd=tmp_path, columns=150)
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["cache_hits"] == {}
        assert result["usage"]["input_tokens"] > 0
        (workspace / "app.py").write_text("def answer():\n    return 41\n")
    assert not (tmp_path / "cache.db").exists()


def test_cache_file_that_is_not_sqlite_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "cache.db").write_text("garbage " * 100)
    done = zerog_cli("cache", "stats", cwd=tmp_path, columns=150)
    assert done.returncode == 2
    assert "error:" in done.stderr
    assert "Traceback" not in done.stderr
