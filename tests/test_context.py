from __future__ import annotations

from pathlib import Path

from zerog.context import Attempt, IndexLimits, build, index_workspace, render, summarize_history
from zerog.types import Goal


def test_index_is_bounded_and_skips_noise(tmp_path: Path) -> None:
    for i in range(30):
        (tmp_path / f"f{i:02}.txt").write_text("x" * 100)
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01" * 10)
    files, omitted = index_workspace(tmp_path, IndexLimits(max_files=10, max_content_bytes=350))
    assert len(files) == 10
    assert omitted == 21
    assert not any(f.path.startswith(".git") for f in files)
    assert sum(1 for f in files if f.content is not None) == 3


def test_binary_and_secret_files_are_listed_without_content(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(b"\x00\x01")
    (tmp_path / ".env").write_text("PASSWORD=hunter2")
    (tmp_path / "id_rsa").write_text("-----BEGIN OPENSSH PRIVATE KEY-----")
    files, _ = index_workspace(tmp_path, IndexLimits())
    assert {f.path: f.content for f in files} == {".env": None, "blob.bin": None, "id_rsa": None}


def test_render_fences_files_and_redacts(tmp_path: Path) -> None:
    (tmp_path / "conf.py").write_text("TOKEN = 'ghp_abcdefghijklmnopqrstuvwxyz01234'\n\x1b[2J")
    goal = Goal(text="do it", workspace=tmp_path, checks=["true"], env_allow=("MY_SECRET",))
    context = build(goal, {"MY_SECRET": "x", "LANG": "C"})
    text = render(context)
    assert "ghp_" not in text
    assert "\x1b" not in text
    assert "MY_SECRET=[redacted]" in text
    assert "LANG=C" in text
    assert "## File conf.py" in text


def test_history_is_bounded() -> None:
    attempts = [Attempt(iteration=i, plan=("p",), failure="f" * 1000) for i in range(10)]
    shown, omitted = summarize_history(attempts, keep_full=2, keep_total=4)
    assert omitted == 6
    assert [a.iteration for a in shown] == [6, 7, 8, 9]
    assert len(shown[0].failure) <= 300
    assert len(shown[-1].failure) == 1000
