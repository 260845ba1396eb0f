"""Tests for zerog.changes and zerog.diff: what a run changed, on real snapshots."""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from zerog.changes import compare, file_changes, shown_path
from zerog.diff import (
    FileDiff,
    Live,
    RunDiff,
    Stored,
    diff_states,
    quoted,
    render,
    render_stat,
)
from zerog.linediff import hunks
from zerog.sandbox.workspace import Snapshot, SnapshotTampered, Workspace
from zerog.text import visible


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("def answer():\n    return 41\n\n\nprint(answer())\n")
    (ws / "keep.txt").write_text("unchanged\n")
    (ws / "gone.txt").write_text("bye\n")
    (ws / "pkg").mkdir()
    (ws / "pkg" / "mod.py").write_text("x = 1\n")
    return ws


def snap(ws: Path) -> tuple[Workspace, Snapshot]:
    workspace = Workspace(ws, ws / ".zerog" / "snapshots")
    return workspace, workspace.snapshot()


def diff_of(ws: Path, before: Snapshot, after: Snapshot, **kw: int) -> list[FileDiff]:
    stored = Stored(Workspace(ws, ws / ".zerog" / "snapshots"))
    return diff_states(before.entries, after.entries, stored, stored, **kw)


def test_compare_lists_added_changed_removed_in_path_order(root: Path) -> None:
    workspace, before = snap(root)
    (root / "app.py").write_text("def answer():\n    return 42\n\n\nprint(answer())\n")
    (root / "gone.txt").unlink()
    (root / "new").mkdir()
    (root / "new" / "a.txt").write_text("a\n")
    (root / "empty").mkdir()
    os.chmod(root / "keep.txt", 0o755)
    after = workspace.snapshot()
    changes = compare(before.entries, after.entries)
    assert [(c.path, c.status) for c in changes] == [
        ("app.py", "changed"),
        ("empty", "added"),  # an empty directory: nothing below it is listed
        ("gone.txt", "removed"),
        ("keep.txt", "changed"),  # mode only
        ("new/a.txt", "added"),  # its directory is not listed, the file is
    ]
    files = file_changes(changes)
    assert files.changed == ("app.py", "keep.txt")
    assert files.added == ("empty", "new/a.txt")
    assert files.removed == ("gone.txt",)
    assert (files.added_total, files.changed_total, files.removed_total) == (2, 2, 1)
    assert files.total == 5


def test_file_changes_are_bounded_with_totals(root: Path) -> None:
    workspace, before = snap(root)
    for n in range(250):
        (root / f"f{n:03}.txt").write_text(f"{n}\n")
    files = file_changes(compare(before.entries, workspace.snapshot().entries))
    assert len(files.added) == files.LISTED == 100
    assert files.added[0] == "f000.txt"
    assert files.added_total == 250


def test_git_directory_is_one_entry(root: Path) -> None:
    (root / ".git").mkdir()
    (root / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    workspace, before = snap(root)
    (root / ".git" / "HEAD").write_text("ref: refs/heads/other\n")
    (root / ".git" / "index").write_bytes(b"DIRC")
    changes = compare(before.entries, workspace.snapshot().entries)
    assert [(c.path, c.status, c.inside) for c in changes] == [(".git", "changed", 2)]
    (item,) = diff_of(root, before, workspace.snapshot())
    assert "git's own directory: 2 paths inside it changed" in item.note
    assert item.lines == ()


def test_unified_diff_of_text_files(root: Path) -> None:
    workspace, before = snap(root)
    (root / "app.py").write_text("def answer():\n    return 42\n\n\nprint(answer())\n")
    (root / "gone.txt").unlink()
    (root / "pkg" / "new.py").write_text("y = 2\nz = 3")  # no newline at the end
    items = {d.path: d for d in diff_of(root, before, workspace.snapshot())}
    assert items["app.py"].lines == (
        "@@ -1,5 +1,5 @@",
        " def answer():",
        "-    return 41",
        "+    return 42",
        " ",
        " ",
        " print(answer())",
    )
    assert (items["app.py"].added, items["app.py"].removed) == (1, 1)
    assert items["gone.txt"].lines == ("@@ -1 +0,0 @@", "-bye")
    assert items["gone.txt"].new_mode is None
    assert items["gone.txt"].old_mode == 0o100644
    assert items["pkg/new.py"].lines == (
        "@@ -0,0 +1,2 @@",
        "+y = 2",
        "+z = 3",
        "\\ No newline at end of file",
    )


def test_rendered_diff_applies_with_patch(root: Path, tmp_path: Path) -> None:
    """The text is a real unified diff: patch -p1 turns a copy of the start into the end."""
    start = tmp_path / "start"
    shutil.copytree(root, start)
    workspace, before = snap(root)
    (root / "app.py").write_text("def answer():\n    return 42\n\n\nprint(answer())\n# done\n")
    (root / "gone.txt").unlink()
    (root / "pkg" / "new.py").write_text("y = 2\nz = 3")
    (root / "keep.txt").write_text("unchanged\r\nnow with CRLF\r\n")
    after = workspace.snapshot()
    text = "\n".join(render(RunDiff("r", "snapshot", tuple(diff_of(root, before, after))))) + "\n"
    assert "\x1b" not in text
    applied = subprocess.run(
        ["patch", "-p1", "--batch", "--binary"],
        input=text.replace("\\x0d", "\r").encode(),
        cwd=start,
        capture_output=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for name in ("app.py", "pkg/new.py", "keep.txt"):
        assert (start / name).read_bytes() == (root / name).read_bytes(), name
    assert not (start / "gone.txt").exists()


def test_binary_large_link_and_mode_changes_get_notes(root: Path) -> None:
    (root / "blob.bin").write_bytes(b"\x00\x01\x02")
    (root / "latin1.txt").write_bytes(b"caf\xe9\n")
    workspace, before = snap(root)
    (root / "blob.bin").write_bytes(b"\x00\x01\x03")
    (root / "latin1.txt").write_bytes(b"caf\xe8\n")
    (root / "big.txt").write_text("x" * 5000 + "\n")
    os.symlink("/etc/passwd", root / "link")
    os.chmod(root / "keep.txt", 0o755)
    items = {d.path: d for d in diff_of(root, before, workspace.snapshot(), max_bytes=4096)}
    assert items["blob.bin"].note == "binary file: not shown"
    assert items["latin1.txt"].note == "binary file: not shown"
    assert items["big.txt"].note == "large file (4.9 KiB): not shown"
    # A link's content is its target, as git shows it; the file it names is never read.
    assert items["link"].new_mode == 0o120000
    assert items["link"].lines == ("@@ -0,0 +1 @@", "+/etc/passwd", "\\ No newline at end of file")
    assert items["keep.txt"].lines == ()
    assert (items["keep.txt"].old_mode, items["keep.txt"].new_mode) == (0o100644, 0o100755)
    text = list(render(RunDiff("r", "snapshot", (items["keep.txt"],))))
    assert text == [
        "diff --git a/keep.txt b/keep.txt",
        "old mode 100644",
        "new mode 100755",
    ]


def test_untrusted_paths_and_lines_are_shown_escaped(root: Path) -> None:
    workspace, before = snap(root)
    name = "evil\x1b[2J\u202e.txt"
    (root / name).write_text("ok\n\x1b]0;pwned\x07 and \x9b31m\r\n")
    (root / os.fsdecode(b"bad\xffname")).write_text("x\n")
    items = {d.path: d for d in diff_of(root, before, workspace.snapshot())}
    evil = items[name]
    assert evil.lines[1:] == ("+ok", "+\\x1b]0;pwned\\x07 and \\x9b31m\\x0d")
    text = "\n".join(render(RunDiff("r", "snapshot", tuple(items.values()))))
    assert '"b/evil\\x1b[2J\\u202e.txt"' in text
    assert '"b/bad\\xffname"' in text
    for raw in ("\x1b", "\x07", "\x9b", "\r", "\u202e"):
        assert raw not in text
    stat = "\n".join(render_stat(RunDiff("r", "snapshot", tuple(items.values()))))
    assert "evil\\x1b[2J\\u202e.txt" in stat
    assert "\x1b" not in stat
    files = file_changes(compare(before.entries, workspace.snapshot().entries))
    assert files.added == ("bad\\xffname", "evil\\x1b[2J\\u202e.txt")
    files.model_dump_json()  # encodable: no lone surrogate left


def test_colour_only_when_asked(root: Path) -> None:
    workspace, before = snap(root)
    (root / "app.py").write_text("changed\n")
    diff = RunDiff("r", "snapshot", tuple(diff_of(root, before, workspace.snapshot())))
    plain = list(render(diff))
    coloured = list(render(diff, color=True))
    assert not any("\x1b" in line for line in plain)
    assert "\x1b[32m+changed\x1b[0m" in coloured
    assert "\x1b[31m-    return 41\x1b[0m" in coloured


def test_quoting_and_visible() -> None:
    assert quoted("a/plain/path.py") == "a/plain/path.py"
    assert quoted('a/with "quote"') == '"a/with \\"quote\\""'
    assert quoted("a/tab\there") == '"a/tab\\there"'
    assert shown_path("new\nline") == "new\\nline"
    assert visible("keep\ttabs\nand newlines\u200b") == "keep\ttabs\nand newlines\\u200b"


def test_stat_summarizes(root: Path) -> None:
    workspace, before = snap(root)
    (root / "app.py").write_text("one\ntwo\n")
    (root / "gone.txt").unlink()
    diff = RunDiff("r", "snapshot", tuple(diff_of(root, before, workspace.snapshot())))
    assert list(render_stat(diff)) == [
        " changed  app.py   | +2 -5",
        " removed  gone.txt | +0 -1",
        " 2 files changed, 2 insertions(+), 6 deletions(-)",
    ]


def test_tampered_or_missing_objects_are_refused(root: Path) -> None:
    workspace, before = snap(root)
    (root / "app.py").write_text("changed\n")
    after = workspace.snapshot()
    digest = before.entries["app.py"].digest
    obj = root / ".zerog" / "snapshots" / "objects" / digest[:2] / digest
    obj.write_bytes(b"forged\n")
    with pytest.raises(SnapshotTampered, match="does not match its digest"):
        diff_of(root, before, after)
    obj.unlink()
    with pytest.raises(SnapshotTampered, match="missing"):
        diff_of(root, before, after)


def test_live_side_never_follows_links(root: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("host secret\n")
    workspace, before = snap(root)
    os.symlink(secret, root / "pkg" / "leak.txt")
    os.symlink(tmp_path, root / "outside")
    live = workspace.scan()
    items = diff_states(before.entries, live, Stored(workspace), Live(workspace.root))
    text = "\n".join(render(RunDiff("r", "live", tuple(items))))
    assert "host secret" not in text
    assert f"+{secret}" in text
    with pytest.raises(Exception, match="cannot read"):
        Live(workspace.root).read("outside/secret.txt", live["pkg/leak.txt"], 1000)


def test_random_edits_apply_back_exactly(tmp_path: Path) -> None:
    """Random texts (many repeated lines, unique ones, no final newline): patch -p1 of
    the rendered diff turns every old text into its new one."""
    rng = random.Random(7)
    old_dir, new_dir = tmp_path / "old", tmp_path / "new"
    before, after = {}, {}
    for n in range(60):
        words = ["}", "", "x = 1", "return x"] + [f"line {rng.random()}" for _ in range(5)]
        lines = [rng.choice(words) for _ in range(rng.randint(0, 60))]
        edited = list(lines)
        for _ in range(rng.randint(1, 12)):
            at = rng.randint(0, len(edited))
            what = rng.random()
            if what < 0.4 and edited:
                del edited[min(at, len(edited) - 1)]
            elif what < 0.8:
                edited.insert(at, rng.choice(words))
            elif edited:
                edited[min(at, len(edited) - 1)] = f"new {rng.random()}"
        end_old = "\n" if rng.random() < 0.8 else ""
        end_new = "\n" if rng.random() < 0.8 else ""
        before[f"f{n}.txt"] = "\n".join(lines) + (end_old if lines else "")
        after[f"f{n}.txt"] = "\n".join(edited) + (end_new if edited else "")
    for folder, texts in ((old_dir, before), (new_dir, after)):
        folder.mkdir()
        for name, text in texts.items():
            (folder / name).write_text(text)
    stored_old, old_snap = snap(old_dir)
    stored_new, new_snap = snap(new_dir)
    items = diff_states(old_snap.entries, new_snap.entries, Stored(stored_old), Stored(stored_new))
    text = "\n".join(render(RunDiff("r", "snapshot", tuple(items)))) + "\n"
    applied = subprocess.run(
        ["patch", "-p1", "--batch", "--binary"],
        input=text.encode(),
        cwd=old_dir,
        capture_output=True,
        check=False,
    )
    assert applied.returncode == 0, applied.stdout + applied.stderr
    for name, text_after in after.items():
        assert (old_dir / name).read_text() == text_after, name


def test_the_diff_time_is_bounded_whatever_the_lines() -> None:
    """Adversarial texts (two repeated values, every other line changed in a large
    file) that take difflib minutes are compared within a bound, and still correctly."""
    for old, new in (
        ("".join("x\n" if i % 2 else "y\n" for i in range(4000)),
         "".join("y\n" if i % 3 else "x\n" for i in range(4000))),
        ("".join(f"{i}\n" for i in range(30000)),
         "".join(f"{i}\n" if i % 2 else "changed\n" for i in range(30000))),
    ):  # fmt: skip
        started = time.monotonic()
        lines, added, removed = hunks(old, new)
        assert time.monotonic() - started < 10
        assert added == sum(1 for line in lines if line.startswith("+"))
        assert removed == sum(1 for line in lines if line.startswith("-"))
