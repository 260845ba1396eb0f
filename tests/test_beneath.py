"""Tests for zerog.beneath: paths below a directory, never through a symbolic link."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from zerog.beneath import Dir, PathEscape, normalized, read_beneath, split


def test_split_is_lexical_and_refuses_escapes() -> None:
    assert split("a/./b//c") == ("a", "b", "c")
    assert split("a/../b") == ("b",)
    for bad in ("/abs", "..", "a/../..", "", ".", "a\x00b"):
        with pytest.raises(PathEscape):
            split(bad)


def test_normalized_accepts_only_what_a_walk_produces() -> None:
    assert normalized("a/b") == ("a", "b")
    for bad in ("a//b", "./a", "a/..", "/a", "a/", ""):
        with pytest.raises(PathEscape):
            normalized(bad)


def test_sub_creates_and_refuses_links_on_the_way(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to("real", target_is_directory=True)
    with Dir.open(tmp_path) as top:
        with top.sub(("new", "deeper"), create=True, mode=0o750) as made:
            assert made.label == "new/deeper"
        assert stat.S_IMODE((tmp_path / "new" / "deeper").stat().st_mode) & 0o700 == 0o700
        with pytest.raises(PathEscape, match="link is a symbolic link"):
            top.sub(("link", "x"), create=True)
        with pytest.raises(FileNotFoundError):
            top.sub(("missing",))
    assert list((tmp_path / "real").iterdir()) == []


def test_open_file_refuses_a_final_link(tmp_path: Path) -> None:
    (tmp_path / "target").write_text("t")
    (tmp_path / "alias").symlink_to("target")
    with Dir.open(tmp_path) as top, pytest.raises(PathEscape):
        top.open_file("alias", os.O_RDONLY)


def test_read_regular_does_not_hang_on_a_fifo(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "f.txt").write_text("0123456789")
    with Dir.open(tmp_path) as top:
        assert top.read_regular("pipe", 10) is None
        assert top.read_regular("f.txt", 4) == b"01234"  # limit + 1: the caller sees "more"
    assert read_beneath(tmp_path, "f.txt", 100) == b"0123456789"


def test_replace_file_replaces_a_link_instead_of_writing_through_it(tmp_path: Path) -> None:
    (tmp_path / "outside.txt").write_text("precious")
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "name").symlink_to(tmp_path / "outside.txt")
    with Dir.open(tmp_path) as top, top.sub(("d",)) as d:
        d.replace_file("name", b"new", 0o640)
    assert (tmp_path / "outside.txt").read_text() == "precious"
    assert not (tmp_path / "d" / "name").is_symlink()
    assert stat.S_IMODE((tmp_path / "d" / "name").stat().st_mode) == 0o640
    assert [p.name for p in (tmp_path / "d").iterdir()] == ["name"]


def test_chmod_works_without_read_permission_and_refuses_links(tmp_path: Path) -> None:
    (tmp_path / "locked").mkdir(mode=0o000)
    (tmp_path / "target").write_text("t")
    (tmp_path / "alias").symlink_to("target")
    with Dir.open(tmp_path) as top:
        top.chmod("locked", 0o755)
        with pytest.raises(PathEscape):
            top.chmod("alias", 0o777)
    assert stat.S_IMODE((tmp_path / "locked").stat().st_mode) == 0o755
    assert stat.S_IMODE((tmp_path / "target").stat().st_mode) != 0o777
