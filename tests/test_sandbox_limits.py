"""Tests for zerog.sandbox.limits and zerog.sandbox.factory, and the limits of the plain
local backend."""

from __future__ import annotations

import os
import resource
import signal
import threading
import time
from pathlib import Path

import pytest

from zerog.errors import ConfigError
from zerog.sandbox.base import MIB, Limits
from zerog.sandbox.factory import SANDBOXES, default_sandbox_name, make_sandbox
from zerog.sandbox.limits import (
    CgroupFactory,
    DiskWatch,
    new_holes,
    rlimits,
    settle,
    signal_status,
    tree_usage,
    ulimit_lines,
)
from zerog.sandbox.local import LocalSandbox
from zerog.types import Observation, ShellAction, Status

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}


def test_limits_defaults_and_old_names() -> None:
    limits = Limits(timeout=5, max_output_bytes=1000, kill_output_bytes=5000)
    assert limits.timeout == 5
    assert limits.cpu_seconds > 0
    assert limits.memory_bytes >= 16 * MIB
    assert limits.max_processes >= 1
    with pytest.raises(ValueError, match="max_processes"):
        Limits(max_processes=0)


def test_rlimits_and_shell_lines() -> None:
    values = rlimits(Limits(cpu_seconds=2.5, max_file_bytes=8192), data=False)
    assert values[resource.RLIMIT_CPU] == 3
    assert values[resource.RLIMIT_FSIZE] == 8192
    assert resource.RLIMIT_DATA not in values
    lines = ulimit_lines(values)
    assert "ulimit -S -t 3 && ulimit -H -t 4 || exit 125" in lines
    assert "ulimit -S -f 16 && ulimit -H -f 16 || exit 125" in lines
    with_data = rlimits(Limits(memory_bytes=64 * MIB), data=True)
    assert with_data[resource.RLIMIT_DATA] == 64 * MIB
    assert "ulimit -S -d 65536 && ulimit -H -d 65536 || exit 125" in ulimit_lines(with_data)


@pytest.mark.parametrize(
    ("code", "status"),
    [
        (-signal.SIGXCPU, Status.CPU_LIMIT),
        (128 + signal.SIGXCPU, Status.CPU_LIMIT),
        (-signal.SIGXFSZ, Status.FILE_LIMIT),
        (128 + signal.SIGXFSZ, Status.FILE_LIMIT),
        (1, None),
        (-9, None),
        (None, None),
    ],
)
def test_signal_status(code: int | None, status: Status | None) -> None:
    assert signal_status(code) is status


def test_settle_reads_what_the_process_printed() -> None:
    limits = Limits()
    efbig = Observation(status=Status.ERROR, exit_code=1, stderr="OSError: File too large")
    assert settle(efbig, limits).status is Status.FILE_LIMIT
    oom = Observation(status=Status.ERROR, exit_code=1, stderr="...\nMemoryError\n")
    marked = settle(oom, limits)
    assert marked.status is Status.MEMORY_LIMIT
    assert marked.exit_code is None
    assert "[zerog: killed:" in marked.stderr
    ok = Observation(status=Status.SUCCESS, exit_code=0, stderr="MemoryError")
    assert settle(ok, limits) is ok


def test_disk_watch_counts_bytes_and_inodes(tmp_path: Path) -> None:
    watch = DiskWatch(tmp_path, Limits(max_disk_bytes=MIB))
    assert watch() is None
    big = tmp_path / "big"
    with big.open("wb") as handle:
        handle.write(os.urandom(3 * MIB))
        handle.flush()
        os.fsync(handle.fileno())
    assert watch.consumed() >= 2 * MIB
    assert watch() is Status.DISK_LIMIT


def _fake_proc(root: Path, mountinfo: str, cgroup: str) -> Path:
    proc = root / "proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text(mountinfo)
    (proc / "self" / "cgroup").write_text(cgroup)
    return proc


def test_cgroup_v1_under_our_own_cgroup(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    memory = tmp_path / "memory" / "mine"
    pids.mkdir()
    memory.mkdir(parents=True)
    proc = _fake_proc(
        tmp_path,
        f"30 25 0:26 / {pids} rw - cgroup cgroup rw,pids\n"
        f"31 25 0:27 / {tmp_path / 'memory'} rw - cgroup cgroup rw,memory\n",
        "8:pids:/\n4:memory:/mine\n",
    )
    factory = CgroupFactory(proc=proc, new_id=lambda: "cmd1")
    assert factory.controllers == {"pids", "memory"}
    groups = factory.create(Limits(max_processes=7, memory_bytes=32 * MIB), reserve=1)
    assert (pids / "cmd1" / "pids.max").read_text() == "8"
    assert (memory / "cmd1" / "memory.limit_in_bytes").read_text() == str(32 * MIB)
    assert not groups.process_limit_hit()
    (pids / "cmd1" / "pids.events").write_text("max 3\n")
    (memory / "cmd1" / "memory.oom_control").write_text("oom_kill_disable 0\noom_kill 1\n")
    assert groups.process_limit_hit()
    assert groups.memory_limit_hit()
    for directory in groups.directories.values():  # a real cgroup has no files to unlink
        for child in directory.iterdir():
            child.unlink()
    groups.remove()
    assert not (pids / "cmd1").exists()


def test_stale_cgroups_of_dead_zerogs_are_removed(tmp_path: Path) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    proc = _fake_proc(tmp_path, f"30 25 0:26 / {pids} rw - cgroup cgroup rw,pids\n", "8:pids:/\n")
    (proc / "4242").mkdir()  # a zerog that still runs
    for name in ("zerog-4242-aaaa", "zerog-99999999-bbbb", "other-1-cccc"):
        (pids / name).mkdir()
    assert CgroupFactory(proc=proc).remove_stale() == 1
    assert sorted(p.name for p in pids.iterdir()) == ["other-1-cccc", "zerog-4242-aaaa"]


def test_cgroup_v2_needs_the_controller_delegated(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    (unified / "me").mkdir(parents=True)
    (unified / "me" / "cgroup.subtree_control").write_text("memory\n")
    proc = _fake_proc(tmp_path, f"40 25 0:30 / {unified} rw - cgroup2 cgroup2 rw\n", "0::/me\n")
    factory = CgroupFactory(proc=proc)
    assert factory.controllers == {"memory"}


def test_no_cgroups_at_all(tmp_path: Path) -> None:
    assert CgroupFactory(proc=_fake_proc(tmp_path, "", "")).controllers == frozenset()


@pytest.mark.parametrize(
    ("command", "limits", "status"),
    [
        ("python3 -c 'while True: pass'", {"cpu_seconds": 0.5}, Status.CPU_LIMIT),
        (
            "python3 -c 'x = bytearray(400_000_000)'",
            {"memory_bytes": 128 * MIB},
            Status.MEMORY_LIMIT,
        ),
        ("head -c 2000000 /dev/zero > big", {"max_file_bytes": 100_000}, Status.FILE_LIMIT),
        (
            "for i in $(seq 40); do head -c 1000000 /dev/zero > f$i; done; sleep 1",
            {"max_disk_bytes": 4 * MIB},
            Status.DISK_LIMIT,
        ),
    ],
)
def test_local_enforces_the_per_process_limits(
    tmp_path: Path, command: str, limits: dict[str, float], status: Status
) -> None:
    obs = LocalSandbox(ENV).run(ShellAction(command=command), tmp_path, Limits(**limits))
    assert obs.status is status, obs.stderr


def test_factory_builds_each_backend_by_name(tmp_path: Path) -> None:
    assert SANDBOXES == ("bwrap", "wasm", "local")
    for name in SANDBOXES:
        assert make_sandbox(name, ENV, environ=os.environ).name == name
    with pytest.raises(ConfigError, match="unknown sandbox"):
        make_sandbox("docker", ENV, environ=os.environ)
    with pytest.raises(ConfigError, match="no network"):
        make_sandbox("wasm", ENV, environ=os.environ, network=True)


def test_default_is_bwrap_on_linux_and_never_local() -> None:
    assert default_sandbox_name("linux") == "bwrap"
    assert default_sandbox_name("darwin") == "wasm"


def test_another_writer_on_the_same_file_system_does_not_count(tmp_path: Path) -> None:
    workspace = tmp_path / "ws"
    workspace.mkdir()
    other = tmp_path / "other-writer.bin"

    def write_elsewhere() -> None:
        time.sleep(0.3)  # after the watch's first reading, while the command runs
        with other.open("wb") as handle:
            handle.write(os.urandom(12 * MIB))
            handle.flush()
            os.fsync(handle.fileno())

    writer = threading.Thread(target=write_elsewhere)
    writer.start()
    try:
        obs = LocalSandbox(ENV).run(
            ShellAction(command="head -c 1000000 /dev/zero > mine; sleep 1.5"),
            workspace,
            Limits(max_disk_bytes=4 * MIB),
        )
    finally:
        writer.join()
    assert other.stat().st_size == 12 * MIB
    assert obs.status is Status.SUCCESS, obs.stderr


def test_tree_usage_counts_blocks_and_entries(tmp_path: Path) -> None:
    empty = tree_usage(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_bytes(os.urandom(MIB))
    (tmp_path / "link").symlink_to("/usr")  # not followed
    grown = tree_usage(tmp_path) - empty
    assert MIB + 3 * 4096 <= grown < MIB + 64 * 4096


def test_cgroup_v2_with_both_controllers_is_one_cgroup(tmp_path: Path) -> None:
    unified = tmp_path / "unified"
    (unified / "me").mkdir(parents=True)
    (unified / "me" / "cgroup.subtree_control").write_text("cpu memory pids\n")
    proc = _fake_proc(tmp_path, f"40 25 0:30 / {unified} rw - cgroup2 cgroup2 rw\n", "0::/me\n")
    factory = CgroupFactory(proc=proc, new_id=lambda: "cmd1")
    assert factory.controllers == {"pids", "memory"}
    groups = factory.create(Limits(max_processes=7, memory_bytes=32 * MIB), reserve=1)
    assert set(groups.directories.values()) == {unified / "me" / "cmd1"}
    assert (unified / "me" / "cmd1" / "pids.max").read_text() == "8"
    assert (unified / "me" / "cmd1" / "memory.max").read_text() == str(32 * MIB)


def test_a_v1_freezer_is_used_where_writable(tmp_path: Path) -> None:
    pids, freezer = tmp_path / "pids", tmp_path / "freezer"
    pids.mkdir()
    freezer.mkdir()
    proc = _fake_proc(
        tmp_path,
        f"30 25 0:26 / {pids} rw - cgroup cgroup rw,pids\n"
        f"32 25 0:28 / {freezer} rw - cgroup cgroup rw,freezer\n",
        "8:pids:/\n6:freezer:/\n",
    )
    factory = CgroupFactory(proc=proc, new_id=lambda: "cmd1")
    assert factory.controllers == {"pids", "freezer"}
    groups = factory.create(Limits(max_processes=7), reserve=1)
    assert groups.directories["freezer"] == freezer / "cmd1"
    assert not (freezer / "cmd1" / "pids.max").exists()  # limits go to pids and memory only
    assert groups.kill_all(wait=0.1)  # nothing in it: nothing to freeze or kill


def test_new_holes_counts_only_sparse_files_changed_since(tmp_path: Path) -> None:
    with (tmp_path / "old.img").open("wb") as handle:
        handle.truncate(8 * MIB)
    time.sleep(0.2)
    since = time.time_ns() - 20_000_000  # ctimes come from a coarser clock
    fresh = tmp_path / "d" / "fresh.img"
    fresh.parent.mkdir()
    with fresh.open("wb") as handle:
        handle.write(b"x" * 4096)
        handle.truncate(16 * MIB)
    (tmp_path / "link").symlink_to("/usr")  # never followed
    assert new_holes(tmp_path, since) == 16 * MIB - fresh.stat().st_blocks * 512
