"""Tests for zerog.sandbox.files: file actions confined to the workspace."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zerog.sandbox.files import MAX_EDIT_FILE_BYTES, PathEscape, edit_file, target, write_file
from zerog.types import EditAction, Status, WriteFileAction


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    path = tmp_path / "outside.txt"
    path.write_text("precious\n")
    return path


def write(ws: Path, path: str, content: str) -> tuple[Status, str]:
    obs = write_file(ws, WriteFileAction(path=path, content=content))
    return obs.status, obs.stderr


def edit(ws: Path, path: str, search: str, replace: str) -> tuple[Status, str]:
    obs = edit_file(ws, EditAction(path=path, search=search, replace=replace))
    return obs.status, obs.stderr


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for p in root.rglob("*") if p.name.startswith(".zerog-tmp-"))


# ---------------------------------------------------------------- write_file


def test_write_creates_a_file(ws: Path) -> None:
    obs = write_file(ws, WriteFileAction(path="hello.txt", content="hi\n"))
    assert obs.status is Status.SUCCESS
    assert obs.exit_code == 0
    assert obs.stdout == "wrote hello.txt"
    assert (ws / "hello.txt").read_bytes() == b"hi\n"
    assert stat.S_IMODE((ws / "hello.txt").stat().st_mode) == 0o644


def test_write_creates_nested_directories(ws: Path) -> None:
    assert write(ws, "a/b/c/deep.py", "x = 1\n") == (Status.SUCCESS, "")
    assert (ws / "a" / "b" / "c" / "deep.py").read_text() == "x = 1\n"


def test_write_overwrites_and_keeps_the_mode(ws: Path) -> None:
    script = ws / "run.sh"
    script.write_text("old\n")
    script.chmod(0o750)
    assert write(ws, "run.sh", "new\n")[0] is Status.SUCCESS
    assert script.read_text() == "new\n"
    assert stat.S_IMODE(script.stat().st_mode) == 0o750


def test_write_is_atomic_replace_and_leaves_no_temp_files(ws: Path) -> None:
    target = ws / "data.txt"
    target.write_text("old content\n")
    before = target.stat().st_ino
    # A reader holding the old file keeps seeing the old bytes: the entry was replaced,
    # not truncated and rewritten in place.
    with target.open("rb") as reader:
        assert write(ws, "data.txt", "new content\n")[0] is Status.SUCCESS
        assert reader.read() == b"old content\n"
    assert target.stat().st_ino != before
    assert target.read_text() == "new content\n"
    assert leftovers(ws) == []


def test_write_keeps_unicode_and_empty_content(ws: Path) -> None:
    assert write(ws, "u.txt", "café ✓\n")[0] is Status.SUCCESS
    assert (ws / "u.txt").read_bytes() == "café ✓\n".encode()
    assert write(ws, "empty.txt", "")[0] is Status.SUCCESS
    assert (ws / "empty.txt").read_bytes() == b""


def test_write_with_dot_segments_inside_the_workspace(ws: Path) -> None:
    (ws / "sub").mkdir()
    assert write(ws, "sub/../top.txt", "t")[0] is Status.SUCCESS
    assert (ws / "top.txt").read_text() == "t"
    assert write(ws, "./sub/./x.txt", "x")[0] is Status.SUCCESS
    assert (ws / "sub" / "x.txt").read_text() == "x"


@pytest.mark.parametrize("path", ["/etc/passwd", "/tmp/zerog-abs.txt", "//x"])
def test_write_refuses_absolute_paths(ws: Path, path: str) -> None:
    status, message = write(ws, path, "pwned")
    assert status is Status.ERROR
    assert "absolute paths are not allowed" in message
    assert not Path("/tmp/zerog-abs.txt").exists()


@pytest.mark.parametrize("path", ["../escape.txt", "a/../../escape.txt", "../ws/../escape.txt"])
def test_write_refuses_parent_escapes(ws: Path, path: str) -> None:
    status, message = write(ws, path, "pwned")
    assert status is Status.ERROR
    assert "leaves the workspace" in message
    assert not (ws.parent / "escape.txt").exists()


@pytest.mark.parametrize("path", [".", "..", "sub/..", "./"])
def test_write_refuses_non_file_paths(ws: Path, path: str) -> None:
    (ws / "sub").mkdir()
    status, message = write(ws, path, "x")
    assert status is Status.ERROR
    assert message


def test_write_refuses_a_directory_target(ws: Path) -> None:
    (ws / "pkg").mkdir()
    status, message = write(ws, "pkg", "x")
    assert status is Status.ERROR
    assert "is a directory" in message
    assert (ws / "pkg").is_dir()


def test_write_refuses_a_symlink_to_a_file_outside(ws: Path, outside: Path) -> None:
    (ws / "link.txt").symlink_to(outside)
    status, message = write(ws, "link.txt", "pwned")
    assert status is Status.ERROR
    assert "symbolic link" in message
    assert outside.read_text() == "precious\n"
    assert (ws / "link.txt").is_symlink()


def test_write_refuses_a_symlink_even_to_a_file_inside(ws: Path) -> None:
    (ws / "real.txt").write_text("real")
    (ws / "alias.txt").symlink_to("real.txt")
    assert write(ws, "alias.txt", "new")[0] is Status.ERROR
    assert (ws / "real.txt").read_text() == "real"


def test_write_refuses_a_dangling_symlink(ws: Path, tmp_path: Path) -> None:
    target = tmp_path / "created-outside.txt"
    (ws / "dangling").symlink_to(target)
    assert write(ws, "dangling", "pwned")[0] is Status.ERROR
    assert not target.exists()


def test_write_refuses_a_directory_symlink_pointing_outside(ws: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (ws / "linkdir").symlink_to(elsewhere, target_is_directory=True)
    status, message = write(ws, "linkdir/file.txt", "pwned")
    assert status is Status.ERROR
    assert "linkdir is a symbolic link" in message
    assert "never follow symbolic links" in message
    assert list(elsewhere.iterdir()) == []
    # Also when the directory to create would be below the link.
    assert write(ws, "linkdir/new/file.txt", "pwned")[0] is Status.ERROR
    assert list(elsewhere.iterdir()) == []


@pytest.mark.parametrize(
    "path", [".zerog/state.json", ".zerog", ".zerog/snapshots/x", "a/../.zerog/x", "./.zerog/x"]
)
def test_write_refuses_the_reserved_state_directory(ws: Path, path: str) -> None:
    (ws / "a").mkdir()
    status, message = write(ws, path, "pwned")
    assert status is Status.ERROR
    assert ".zerog/ is reserved" in message
    assert not (ws / ".zerog").exists()


def test_write_refuses_reserved_dir_reached_through_an_inner_symlink(ws: Path) -> None:
    (ws / ".zerog").mkdir()
    (ws / "state").symlink_to(".zerog", target_is_directory=True)
    status, message = write(ws, "state/run.json", "pwned")
    assert status is Status.ERROR
    assert "state is a symbolic link" in message
    assert list((ws / ".zerog").iterdir()) == []


def test_write_refuses_a_directory_link_even_inside_the_workspace(ws: Path) -> None:
    (ws / "src").mkdir()
    (ws / "lib").symlink_to("src", target_is_directory=True)
    status, message = write(ws, "lib/mod.py", "x = 1\n")
    assert status is Status.ERROR
    assert "lib is a symbolic link" in message
    assert list((ws / "src").iterdir()) == []


def test_a_nested_dir_named_zerog_is_allowed(ws: Path) -> None:
    assert write(ws, "docs/.zerog/notes.txt", "ok")[0] is Status.SUCCESS
    assert (ws / "docs" / ".zerog" / "notes.txt").read_text() == "ok"


def test_write_over_a_hard_link_leaves_the_outside_file_alone(ws: Path, outside: Path) -> None:
    os.link(outside, ws / "hard.txt")
    assert outside.stat().st_nlink == 2
    assert write(ws, "hard.txt", "changed\n")[0] is Status.SUCCESS
    assert (ws / "hard.txt").read_text() == "changed\n"
    assert outside.read_text() == "precious\n"
    assert outside.stat().st_nlink == 1


def test_write_with_a_nul_byte_is_refused(ws: Path) -> None:
    status, message = write(ws, "a\x00b", "x")
    assert status is Status.ERROR
    assert "NUL" in message


def test_write_through_a_file_used_as_a_directory_fails_cleanly(ws: Path) -> None:
    (ws / "plain").write_text("x")
    status, message = write(ws, "plain/child.txt", "y")
    assert status is Status.ERROR
    assert "cannot write plain/child.txt" in message
    assert (ws / "plain").read_text() == "x"


# ---------------------------------------------------------------- target


def test_target_gives_the_lexical_components() -> None:
    assert target("a/b.txt") == ("a", "b.txt")
    assert target("./a//b/../c.txt") == ("a", "c.txt")


@pytest.mark.parametrize("path", ["/abs", "../up", ".zerog/x", "a\x00b", "..", "a/../.."])
def test_target_raises_path_escape(path: str) -> None:
    with pytest.raises(PathEscape):
        target(path)


def test_write_works_when_the_workspace_path_is_a_symlink(tmp_path: Path, ws: Path) -> None:
    alias = tmp_path / "alias"
    alias.symlink_to(ws, target_is_directory=True)
    assert write(alias, "x.txt", "via alias")[0] is Status.SUCCESS
    assert (ws / "x.txt").read_text() == "via alias"


# ---------------------------------------------------------------- edit_file


def test_edit_replaces_exactly_one_match(ws: Path) -> None:
    (ws / "app.py").write_text("def answer():\n    return 41\n")
    obs = edit_file(ws, EditAction(path="app.py", search="return 41", replace="return 42"))
    assert obs.status is Status.SUCCESS
    assert obs.exit_code == 0
    assert obs.stdout == "edited app.py"
    assert (ws / "app.py").read_text() == "def answer():\n    return 42\n"
    assert leftovers(ws) == []


def test_edit_with_no_match_is_an_error_and_changes_nothing(ws: Path) -> None:
    (ws / "app.py").write_text("x = 1\n")
    status, message = edit(ws, "app.py", "y = 2", "y = 3")
    assert status is Status.ERROR
    assert message == "the search text was not found in app.py"
    assert (ws / "app.py").read_text() == "x = 1\n"


def test_edit_with_two_matches_is_an_error_and_changes_nothing(ws: Path) -> None:
    (ws / "app.py").write_text("x = 1\nx = 1\n")
    obs = edit_file(ws, EditAction(path="app.py", search="x = 1", replace="x = 2"))
    assert obs.status is Status.ERROR
    assert obs.exit_code == 1
    assert "occurs 2 times in app.py" in obs.stderr
    assert "include more context" in obs.stderr
    assert (ws / "app.py").read_text() == "x = 1\nx = 1\n"


def test_edit_missing_file(ws: Path) -> None:
    status, message = edit(ws, "nope.py", "a", "b")
    assert status is Status.ERROR
    assert message == "nope.py does not exist"
    assert not (ws / "nope.py").exists()


def test_edit_non_utf8_file(ws: Path) -> None:
    data = b"caf\xe9 = 1\n"
    (ws / "latin1.py").write_bytes(data)
    status, message = edit(ws, "latin1.py", "= 1", "= 2")
    assert status is Status.ERROR
    assert message == "latin1.py is not UTF-8 text"
    assert (ws / "latin1.py").read_bytes() == data


def test_edit_too_large_file(ws: Path) -> None:
    big = ws / "big.txt"
    with big.open("wb") as handle:
        handle.truncate(MAX_EDIT_FILE_BYTES + 1)
    status, message = edit(ws, "big.txt", "a", "b")
    assert status is Status.ERROR
    assert "too large" in message


def test_edit_keeps_mode_and_line_endings(ws: Path) -> None:
    path = ws / "tool.sh"
    path.write_bytes(b"#!/bin/sh\r\necho old\r\n")
    path.chmod(0o755)
    assert edit(ws, "tool.sh", "old", "new")[0] is Status.SUCCESS
    assert path.read_bytes() == b"#!/bin/sh\r\necho new\r\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o755


def test_edit_replacement_may_contain_the_search_text(ws: Path) -> None:
    (ws / "f.txt").write_text("a-b")
    assert edit(ws, "f.txt", "a", "aa")[0] is Status.SUCCESS
    assert (ws / "f.txt").read_text() == "aa-b"


def test_edit_refuses_symlinks_escapes_and_reserved(ws: Path, outside: Path) -> None:
    (ws / "link.txt").symlink_to(outside)
    assert edit(ws, "link.txt", "precious", "pwned")[0] is Status.ERROR
    assert edit(ws, "../outside.txt", "precious", "pwned")[0] is Status.ERROR
    assert edit(ws, str(outside), "precious", "pwned")[0] is Status.ERROR
    assert outside.read_text() == "precious\n"
    (ws / ".zerog").mkdir()
    (ws / ".zerog" / "s.json").write_text("{}")
    assert edit(ws, ".zerog/s.json", "{}", "[]")[0] is Status.ERROR
    assert (ws / ".zerog" / "s.json").read_text() == "{}"


def test_edit_over_a_hard_link_leaves_the_outside_file_alone(ws: Path, outside: Path) -> None:
    os.link(outside, ws / "hard.txt")
    assert edit(ws, "hard.txt", "precious", "edited")[0] is Status.SUCCESS
    assert (ws / "hard.txt").read_text() == "edited\n"
    assert outside.read_text() == "precious\n"


def test_edit_a_directory_is_an_error(ws: Path) -> None:
    (ws / "pkg").mkdir()
    status, message = edit(ws, "pkg", "a", "b")
    assert status is Status.ERROR
    assert "pkg" in message
