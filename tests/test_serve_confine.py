"""The worker's second look at a path, link by link (zerog.serve.confine), on real files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from zerog.serve.confine import Escape, beneath, model_file


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "root" / "a" / "b").mkdir(parents=True)
    (tmp_path / "root" / "a" / "f.txt").write_text("x")
    (tmp_path / "outside").mkdir()
    return tmp_path / "root"


def test_a_plain_path_below_the_root_is_accepted(root: Path) -> None:
    assert beneath(root, root / "a" / "b", directory=True) == root / "a" / "b"
    assert beneath(root, root / "a" / "f.txt", directory=False) == root / "a" / "f.txt"


@pytest.mark.parametrize("where", ["a", "a/b"])
def test_a_link_anywhere_on_the_way_is_refused(root: Path, where: str) -> None:
    target = root / where
    target.rename(target.with_name(target.name + ".real"))
    target.symlink_to(root.parent / "outside")
    with pytest.raises(Escape, match="symbolic link"):
        beneath(root, root / "a" / "b", directory=True)


def test_a_link_inside_the_root_is_refused_too(root: Path) -> None:
    (root / "c").symlink_to(root / "a")
    with pytest.raises(Escape, match="symbolic link"):
        beneath(root, root / "c" / "b", directory=True)


def test_a_linked_file_is_refused(root: Path) -> None:
    (root / "a" / "g.txt").symlink_to(root / "a" / "f.txt")
    with pytest.raises(Escape, match="symbolic link"):
        beneath(root, root / "a" / "g.txt", directory=False)


@pytest.mark.parametrize(
    ("path", "directory", "message"),
    [
        ("/etc", True, "not under the workspaces root"),
        ("", True, "not a path below"),
        ("a/../a/b", True, "not a path below"),
        ("a/f.txt", True, "not a directory"),
        ("a/b", False, "not a regular file"),
        ("a/missing", True, "cannot be opened"),
        ("a/f.txt/x", True, "cannot be opened"),
    ],
)
def test_other_paths_are_refused(root: Path, path: str, directory: bool, message: str) -> None:
    candidate = Path(path) if path.startswith("/") else root / path if path else root
    with pytest.raises(Escape, match=message) as caught:
        beneath(root, candidate, directory=directory)
    assert str(root) not in str(caught.value)  # the message names paths relative to it


def test_no_descriptor_is_left_open(root: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    for _ in range(20):
        beneath(root, root / "a" / "b", directory=True)
        with pytest.raises(Escape):
            beneath(root, root / "a" / "missing", directory=True)
    assert len(os.listdir("/proc/self/fd")) == before


def test_model_files() -> None:
    assert model_file("scripted:/r/s.jsonl") == Path("/r/s.jsonl")
    assert model_file("local:/r/m.gguf") == Path("/r/m.gguf")
    assert model_file("local") is None
    assert model_file("local:1.5b") is None
    assert model_file("openai:gpt-4.1-mini") is None
