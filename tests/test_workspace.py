"""Tests for zerog.sandbox.workspace: snapshots, restores and the state hash."""

from __future__ import annotations

import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from zerog.sandbox.workspace import Entry, RestoreStats, Workspace

Tree = dict[str, tuple[str, int, bytes]]


def tree(root: Path) -> Tree:
    """Everything under root except the top-level .zerog/: kind, mode, bytes or target."""
    found: Tree = {}
    for dirpath, dirnames, filenames in os.walk(root):
        base = Path(dirpath)
        if base == root and ".zerog" in dirnames:
            dirnames.remove(".zerog")
        for name in [*dirnames, *filenames]:
            path = base / name
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            mode = stat.S_IMODE(st.st_mode)
            if stat.S_ISLNK(st.st_mode):
                found[rel] = ("link", mode, os.readlink(path).encode())
            elif stat.S_ISDIR(st.st_mode):
                found[rel] = ("dir", mode, b"")
            elif stat.S_ISREG(st.st_mode):
                found[rel] = ("file", mode, path.read_bytes())
            else:  # fifo, socket, device: never read (a fifo would block)
                found[rel] = ("other", mode, b"")
    return found


def zerog_tree(root: Path) -> dict[str, bytes]:
    state = root / ".zerog"
    return {
        p.relative_to(state).as_posix(): p.read_bytes() if p.is_file() else b"<dir>"
        for p in sorted(state.rglob("*"))
    }


@pytest.fixture
def root(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "a.txt").write_text("alpha\n")
    (ws / "keep.txt").write_text("unchanged\n")
    (ws / "exec.sh").write_text("#!/bin/sh\necho hi\n")
    (ws / "exec.sh").chmod(0o755)
    (ws / "to_delete.txt").write_text("delete me\n")
    (ws / "to_link.txt").write_text("becomes a link\n")
    (ws / "pkg").mkdir()
    (ws / "pkg" / "__init__.py").write_text("")
    (ws / "pkg" / "mod.py").write_text("def f():\n    return 1\n")
    (ws / "pkg" / "sub").mkdir()
    (ws / "pkg" / "sub" / "data.bin").write_bytes(bytes(range(256)))
    (ws / "private").mkdir()
    (ws / "private").chmod(0o700)
    (ws / "private" / "notes.txt").write_text("notes\n")
    (ws / "empty").mkdir()
    (ws / "link").symlink_to("a.txt")
    (ws / "readonly.txt").write_text("ro\n")
    (ws / "readonly.txt").chmod(0o444)
    (ws / ".zerog").mkdir()
    (ws / ".zerog" / "run.json").write_text('{"run": 1}')
    return ws


@pytest.fixture
def workspace(root: Path) -> Workspace:
    return Workspace(root, root / ".zerog" / "snapshots")


def mess_up(root: Path) -> None:
    """Every kind of change an action could make."""
    (root / "a.txt").write_text("ALPHA, changed\n")  # change a file
    (root / "new.txt").write_text("added\n")  # add a file
    (root / "nested" / "deep" / "er").mkdir(parents=True)  # add a nested dir
    (root / "nested" / "deep" / "er" / "x.py").write_text("x = 1\n")
    (root / "to_delete.txt").unlink()  # delete a file
    (root / "exec.sh").chmod(0o600)  # chmod a file
    (root / "to_link.txt").unlink()  # replace a file by a symlink
    (root / "to_link.txt").symlink_to("/etc/hostname")
    shutil.rmtree(root / "pkg")  # replace a dir by a file
    (root / "pkg").write_text("not a package any more\n")
    shutil.rmtree(root / "private")  # replace a 0700 dir by a 0700 file
    (root / "private").write_text("now a file\n")
    (root / "private").chmod(0o700)
    (root / "empty").rmdir()  # replace an empty dir by a link
    (root / "empty").symlink_to("pkg")
    (root / "link").unlink()  # retarget a link
    (root / "link").symlink_to("keep.txt")
    (root / "readonly.txt").chmod(0o644)
    (root / "readonly.txt").write_text("rw\n")


# ---------------------------------------------------------------- round trip


def test_snapshot_modify_restore_gives_back_the_exact_tree(
    root: Path, workspace: Workspace
) -> None:
    before = tree(root)
    before_hash = workspace.state_hash()
    snap = workspace.snapshot()
    assert snap.id == before_hash

    mess_up(root)
    assert tree(root) != before
    assert workspace.state_hash() != before_hash

    workspace.restore(snap)
    assert tree(root) == before
    assert workspace.state_hash() == before_hash
    assert not any(".zerog-restore-" in rel for rel in tree(root))


def test_restore_twice_is_a_no_op(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    mess_up(root)
    first = workspace.restore(snap)
    assert first.written > 0
    assert first.removed > 0
    assert workspace.restore(snap) == RestoreStats(written=0, removed=0)


def test_restore_of_an_unchanged_tree_changes_nothing(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    inodes = {p: p.lstat().st_ino for p in root.rglob("*")}
    assert workspace.restore(snap) == RestoreStats(written=0, removed=0)
    assert {p: p.lstat().st_ino for p in root.rglob("*")} == inodes


def test_restore_stats_count_written_and_removed(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    (root / "a.txt").write_text("changed\n")  # written
    (root / "to_delete.txt").unlink()  # written (re-created)
    (root / "extra1.txt").write_text("x")  # removed
    (root / "extra_dir" / "inner").mkdir(parents=True)  # removed x2
    (root / "extra_dir" / "inner" / "f").write_text("f")  # removed
    stats = workspace.restore(snap)
    assert stats == RestoreStats(written=2, removed=4)
    assert (root / "a.txt").read_text() == "alpha\n"
    assert (root / "to_delete.txt").read_text() == "delete me\n"
    assert not (root / "extra1.txt").exists()
    assert not (root / "extra_dir").exists()


def test_restore_a_kind_change_counts_a_removal_and_a_write(
    root: Path, workspace: Workspace
) -> None:
    snap = workspace.snapshot()
    (root / "keep.txt").unlink()
    (root / "keep.txt").mkdir()
    stats = workspace.restore(snap)
    assert stats == RestoreStats(written=1, removed=1)
    assert (root / "keep.txt").read_text() == "unchanged\n"


def test_restore_brings_back_dir_modes_when_a_dir_was_replaced(
    root: Path, workspace: Workspace
) -> None:
    snap = workspace.snapshot()
    shutil.rmtree(root / "private")
    (root / "private").write_text("file with the dir's mode")
    (root / "private").chmod(0o700)
    workspace.restore(snap)
    assert (root / "private").is_dir()
    assert stat.S_IMODE((root / "private").stat().st_mode) == 0o700
    assert (root / "private" / "notes.txt").read_text() == "notes\n"


def test_restore_brings_back_a_changed_dir_mode(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    (root / "pkg").chmod(0o777)
    workspace.restore(snap)
    assert stat.S_IMODE((root / "pkg").stat().st_mode) == 0o755


def test_restore_does_not_follow_a_symlink_that_replaced_a_dir(
    root: Path, workspace: Workspace, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "mod.py").write_text("outside\n")
    snap = workspace.snapshot()
    shutil.rmtree(root / "pkg")
    (root / "pkg").symlink_to(elsewhere, target_is_directory=True)
    workspace.restore(snap)
    assert not (root / "pkg").is_symlink()
    assert (root / "pkg" / "mod.py").read_text() == "def f():\n    return 1\n"
    assert (elsewhere / "mod.py").read_text() == "outside\n"
    assert sorted(p.name for p in elsewhere.iterdir()) == ["mod.py"]


def test_restore_into_an_emptied_workspace(root: Path, workspace: Workspace) -> None:
    before = tree(root)
    snap = workspace.snapshot()
    for child in root.iterdir():
        if child.name == ".zerog":
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
    assert tree(root) == {}
    workspace.restore(snap)
    assert tree(root) == before


# ---------------------------------------------------------------- .zerog/


def test_zerog_dir_is_excluded_from_snapshots(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    assert (root / ".zerog" / "snapshots").is_dir()
    assert not any(rel == ".zerog" or rel.startswith(".zerog/") for rel in snap.entries)
    assert "pkg/sub/data.bin" in snap.entries


def test_zerog_dir_does_not_change_the_state_hash(root: Path, workspace: Workspace) -> None:
    before = workspace.state_hash()
    (root / ".zerog" / "run.json").write_text("different")
    (root / ".zerog" / "more").mkdir()
    assert workspace.state_hash() == before


def test_restore_never_touches_zerog(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    (root / ".zerog" / "run.json").write_text('{"run": 2}')
    (root / ".zerog" / "trace.jsonl").write_text("event\n")
    mess_up(root)
    state_before = zerog_tree(root)
    workspace.restore(snap)
    assert zerog_tree(root) == state_before
    assert (root / ".zerog" / "trace.jsonl").read_text() == "event\n"
    assert (root / ".zerog" / "run.json").read_text() == '{"run": 2}'


def test_only_the_top_level_zerog_is_excluded(root: Path, workspace: Workspace) -> None:
    (root / "pkg" / ".zerog").mkdir()
    (root / "pkg" / ".zerog" / "user.txt").write_text("user data")
    snap = workspace.snapshot()
    assert "pkg/.zerog/user.txt" in snap.entries
    (root / "pkg" / ".zerog" / "user.txt").write_text("changed")
    workspace.restore(snap)
    assert (root / "pkg" / ".zerog" / "user.txt").read_text() == "user data"


# ---------------------------------------------------------------- state hash


def test_state_hash_is_stable(root: Path, workspace: Workspace) -> None:
    first = workspace.state_hash()
    assert workspace.state_hash() == first
    assert Workspace(root, root / ".zerog" / "other").state_hash() == first
    os.utime(root / "a.txt", ns=(1, 1))  # times are not content
    assert workspace.state_hash() == first
    assert len(first) == 64
    int(first, 16)


def test_state_hash_changes_when_one_byte_changes(root: Path, workspace: Workspace) -> None:
    first = workspace.state_hash()
    data = bytearray((root / "pkg" / "sub" / "data.bin").read_bytes())
    data[128] ^= 0x01
    (root / "pkg" / "sub" / "data.bin").write_bytes(bytes(data))
    second = workspace.state_hash()
    assert second != first
    data[128] ^= 0x01
    (root / "pkg" / "sub" / "data.bin").write_bytes(bytes(data))
    assert workspace.state_hash() == first


def _retarget_link(r: Path) -> None:
    (r / "link").unlink()
    (r / "link").symlink_to("keep.txt")


CHANGES: dict[str, Callable[[Path], object]] = {
    "mode": lambda r: (r / "exec.sh").chmod(0o700),
    "dir-mode": lambda r: (r / "empty").chmod(0o700),
    "rename": lambda r: (r / "a.txt").rename(r / "b.txt"),
    "new-dir": lambda r: (r / "empty" / "sub").mkdir(),
    "new-empty-file": lambda r: (r / "empty" / "f").touch(),
    "link-target": _retarget_link,
    "emptied": lambda r: (r / "keep.txt").write_text(""),
}


@pytest.mark.parametrize("change", CHANGES)
def test_state_hash_sees_every_kind_of_change(
    root: Path, workspace: Workspace, change: str
) -> None:
    first = workspace.state_hash()
    CHANGES[change](root)
    assert workspace.state_hash() != first


# ---------------------------------------------------------------- racy stat data


def test_racy_same_size_rewrite_is_restored(root: Path, workspace: Workspace) -> None:
    path = root / "a.txt"
    snap = workspace.snapshot()
    original = path.stat()
    # Same size, same inode, same mtime: only the bytes (and ctime) differ.
    with path.open("r+b") as handle:
        handle.write(b"ALPHA\n")
    os.utime(path, ns=(original.st_atime_ns, original.st_mtime_ns))
    assert path.stat().st_size == original.st_size
    assert path.stat().st_ino == original.st_ino
    assert path.read_bytes() == b"ALPHA\n"
    assert workspace.state_hash() != snap.id
    stats = workspace.restore(snap)
    assert stats.written == 1
    assert path.read_bytes() == b"alpha\n"
    assert workspace.state_hash() == snap.id


def test_trusted_stat_cache_still_sees_an_in_place_rewrite(root: Path) -> None:
    # A clock far in the future makes every cached hash "old", so it is trusted as long
    # as the stat key matches; an in-place rewrite must still change that key.
    workspace = Workspace(root, root / ".zerog" / "snapshots", clock_ns=lambda: 1 << 62)
    path = root / "keep.txt"
    snap = workspace.snapshot()
    assert workspace.state_hash() == snap.id  # served from the cache
    original = path.stat()
    with path.open("r+b") as handle:
        handle.write(b"UNCHANGED\n")
    os.utime(path, ns=(original.st_atime_ns, original.st_mtime_ns))
    assert workspace.state_hash() != snap.id
    workspace.restore(snap)
    assert path.read_bytes() == b"unchanged\n"


def test_always_racy_clock_still_hashes_correctly(root: Path) -> None:
    workspace = Workspace(root, root / ".zerog" / "snapshots", clock_ns=lambda: 0)
    snap = workspace.snapshot()
    (root / "a.txt").write_text("ALPHA\n")
    workspace.restore(snap)
    assert (root / "a.txt").read_text() == "alpha\n"
    assert workspace.state_hash() == snap.id


# ---------------------------------------------------------------- persistence


def test_snapshot_can_be_loaded_by_a_new_workspace_and_restored(
    root: Path, workspace: Workspace
) -> None:
    before = tree(root)
    snap = workspace.snapshot()
    mess_up(root)
    fresh = Workspace(root, root / ".zerog" / "snapshots")
    loaded = fresh.load(snap.id)
    assert loaded.id == snap.id
    assert loaded.entries == snap.entries
    fresh.restore(loaded)
    assert tree(root) == before
    assert fresh.state_hash() == snap.id


def test_load_of_an_unknown_snapshot_raises(workspace: Workspace) -> None:
    with pytest.raises(FileNotFoundError):
        workspace.load("0" * 64)


def test_snapshot_is_deterministic_and_stores_contents_once(
    root: Path, workspace: Workspace
) -> None:
    (root / "copy_of_a.txt").write_text("alpha\n")
    first = workspace.snapshot()
    second = workspace.snapshot()
    assert first == second
    assert first.entries["a.txt"].digest == first.entries["copy_of_a.txt"].digest
    objects = [p for p in (root / ".zerog" / "snapshots" / "objects").rglob("*") if p.is_file()]
    file_digests = {e.digest for e in first.entries.values() if e.kind == "file"}
    assert sorted(p.name for p in objects) == sorted(file_digests)
    manifests = list((root / ".zerog" / "snapshots" / "manifests").iterdir())
    assert [m.name for m in manifests] == [f"{first.id}.json"]


def test_snapshot_records_kinds_and_modes(root: Path, workspace: Workspace) -> None:
    entries = workspace.snapshot().entries
    assert entries["exec.sh"].kind == "file"
    assert entries["exec.sh"].mode == 0o755
    assert entries["readonly.txt"].mode == 0o444
    assert entries["private"] == Entry("dir", 0o700, "")
    assert entries["link"].kind == "link"
    assert entries["link"].digest == "a.txt"
    assert entries["empty"].kind == "dir"


def test_objects_survive_later_changes(root: Path, workspace: Workspace) -> None:
    first = workspace.snapshot()
    (root / "a.txt").write_text("second version\n")
    second = workspace.snapshot()
    assert second.id != first.id
    (root / "a.txt").write_text("third version\n")
    workspace.restore(first)
    assert (root / "a.txt").read_text() == "alpha\n"
    workspace.restore(second)
    assert (root / "a.txt").read_text() == "second version\n"
    workspace.restore(first)
    assert (root / "a.txt").read_text() == "alpha\n"


def test_restore_a_dir_replaced_by_a_fifo(root: Path, workspace: Workspace) -> None:
    before = tree(root)
    snap = workspace.snapshot()
    shutil.rmtree(root / "pkg")
    os.mkfifo(root / "pkg")
    (root / "keep.txt").unlink()
    os.mkfifo(root / "keep.txt")
    workspace.restore(snap)
    assert tree(root) == before
    assert workspace.state_hash() == snap.id


def test_read_only_dir_gets_its_content_back(root: Path, workspace: Workspace) -> None:
    locked = root / "locked"
    locked.mkdir()
    (locked / "f.txt").write_text("keep")
    locked.chmod(0o555)
    snap = workspace.snapshot()
    locked.chmod(0o755)
    shutil.rmtree(locked)
    workspace.restore(snap)
    assert (locked / "f.txt").read_text() == "keep"
    assert stat.S_IMODE(locked.stat().st_mode) == 0o555
    locked.chmod(0o755)


def test_a_fifo_made_after_the_snapshot_is_removed(root: Path, workspace: Workspace) -> None:
    snap = workspace.snapshot()
    os.mkfifo(root / "pipe")
    assert workspace.state_hash() != snap.id
    workspace.restore(snap)
    assert not (root / "pipe").exists()
    assert workspace.state_hash() == snap.id


def test_a_mode_only_change_counts_as_written(root: Path, workspace: Workspace) -> None:
    target = next(p for p in root.rglob("*") if p.is_file() and ".zerog" not in p.parts)
    snap = workspace.snapshot()
    target.chmod(0o600 if stat.S_IMODE(target.stat().st_mode) != 0o600 else 0o644)
    assert workspace.restore(snap).written == 1


def test_restore_refuses_a_tampered_object(tmp_path: Path) -> None:
    """A command that rewrites zerog's stored objects (where a backend lets it write
    .zerog/) cannot smuggle content into a rollback."""
    from zerog.sandbox.workspace import SnapshotTampered

    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("good = True\n")
    space = Workspace(root, root / ".zerog" / "snapshots")
    snap = space.snapshot()
    digest = snap.entries["app.py"].digest
    obj = root / ".zerog" / "snapshots" / "objects" / digest[:2] / digest
    obj.write_text("good = False  # planted\n")
    (root / "app.py").write_text("changed\n")
    with pytest.raises(SnapshotTampered, match="tampered"):
        space.restore(snap)
    assert (root / "app.py").read_text() == "changed\n"
    assert not list(root.glob(".zerog-restore-*"))


def test_a_state_directory_outside_the_tree_is_made_when_missing(tmp_path: Path) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a.txt").write_text("a")
    space = Workspace(source, tmp_path / "elsewhere" / "state")
    snap = space.snapshot()
    (source / "a.txt").unlink()
    space.restore(snap)
    assert (source / "a.txt").read_text() == "a"


def test_a_tree_deeper_than_the_open_directories_is_walked_whole(tmp_path: Path) -> None:
    """Past 64 levels the walk re-opens directories from the top: nothing is missed and
    no descriptor is left open."""
    root = tmp_path / "ws"
    deep = root.joinpath(*["d"] * 150)
    deep.mkdir(parents=True)
    (deep / "leaf.txt").write_text("leaf")
    (root / "d" / "side.txt").write_text("side")
    space = Workspace(root, root / ".zerog" / "snapshots")
    fds = len(os.listdir("/proc/self/fd"))
    snap = space.snapshot()
    assert len(os.listdir("/proc/self/fd")) == fds
    assert len(snap.entries) == 152
    shutil.rmtree(root / "d")
    space.restore(snap)
    assert (deep / "leaf.txt").read_text() == "leaf"
    assert space.state_hash() == snap.id
