"""Issue 17, host side: what zerog itself does to files (its state, file actions, snapshots,
restores, reads of workspace files) cannot be redirected outside the workspace, by links
planted before a run or swapped in by a process that keeps running during one; sparse
files, setuid bits, forged manifests and dangerous workspaces are handled."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from builders import plan, scripted, shell, step, write
from zerog.batch.goals import read_goals
from zerog.context import IndexLimits, index_workspace
from zerog.engine.loop import Engine
from zerog.errors import ConfigError
from zerog.redact import sandbox_env
from zerog.sandbox.base import MIB, Limits
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.files import edit_file, write_file
from zerog.sandbox.local import LocalSandbox
from zerog.sandbox.workspace import SnapshotTampered, Workspace
from zerog.store import Store
from zerog.strategies import examples_for
from zerog.types import (
    Budget,
    CommandCheck,
    EditAction,
    FileCheck,
    Goal,
    ShellAction,
    Status,
    TestsCheck,
    WriteFileAction,
)
from zerog.validate.kinds import CheckEnv, FileRunner
from zerog.validate.sidecar import GuestProgram, SandboxPython, store_program
from zerog.validate.sweep import run_one

ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def state(directory: Path) -> dict[str, tuple[bytes, int]]:
    """Every entry under ``directory``: bytes (or link target) and inode."""
    found = {}
    for path in sorted(directory.rglob("*")):
        st = path.lstat()
        data = os.readlink(path).encode() if path.is_symlink() else b""
        if stat.S_ISREG(st.st_mode):
            data = path.read_bytes()
        found[str(path.relative_to(directory))] = (data, st.st_ino)
    return found


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("x = 1\n")
    return root


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    root = tmp_path / "outside"
    root.mkdir()
    (root / "canary.txt").write_text("untouched\n")
    (root / ".gitignore").write_text("precious\n")
    return root


def engine(**kwargs: object) -> Engine:
    model = scripted(plan(step("edit", write("app.py", "x = 2\n"))))
    return Engine(model, sandbox_name="local", environ=ENV, **kwargs)  # type: ignore[arg-type]


def goal(ws: Path, check: str = "grep -q 'x = 2' app.py") -> Goal:
    return Goal(
        text="make x 2",
        workspace=ws,
        checks=(CommandCheck(command=check),),
        budget=Budget(max_iterations=1),
    )


# ------------------------------------------------------------------ finding 5: .zerog links


def test_a_planted_state_directory_link_is_refused(ws: Path, outside: Path) -> None:
    before = state(outside)
    os.symlink(outside, ws / ".zerog")
    with pytest.raises(ConfigError, match=r"\.zerog is a symbolic link"):
        engine().run(goal(ws))
    assert state(outside) == before
    assert (ws / "app.py").read_text() == "x = 1\n"


@pytest.mark.parametrize(
    ("planted", "target"),
    [
        (".gitignore", ".gitignore"),  # the file zerog writes first
        ("lock", "canary.txt"),
        ("runs", ""),  # the trace directory
        ("snapshots", ""),
    ],
)
def test_planted_links_inside_the_state_directory_are_refused(
    ws: Path, outside: Path, planted: str, target: str
) -> None:
    (ws / ".zerog").mkdir()
    os.symlink(outside / target if target else outside, ws / ".zerog" / planted)
    before = state(outside)
    with pytest.raises((ConfigError, SnapshotTampered), match="symbolic link"):
        engine(write_trace=True).run(goal(ws))
    assert state(outside) == before


def test_a_planted_hard_link_in_the_state_directory_is_not_written_through(
    ws: Path, outside: Path
) -> None:
    (ws / ".zerog").mkdir()
    os.link(outside / ".gitignore", ws / ".zerog" / ".gitignore")
    result = engine().run(goal(ws))
    assert result.ok, result.reason
    assert (outside / ".gitignore").read_text() == "precious\n"
    assert (ws / ".zerog" / ".gitignore").read_text() == "*\n"


def test_a_planted_sidecar_directory_link_is_refused(ws: Path, outside: Path) -> None:
    (ws / ".zerog").mkdir()
    os.symlink(outside, ws / ".zerog" / "sidecar")
    before = state(outside)
    with pytest.raises(ConfigError, match="symbolic link"):
        store_program(ws, GuestProgram(source="print(1)\n"))
    assert state(outside) == before


# ------------------------------------------------------------------ finding 6: the race

SWAPPER = """
import ctypes, os, signal, sys
sub, alt = (os.path.join(sys.argv[1], n).encode() for n in ("sub", "sub.alt"))
libc = ctypes.CDLL(None, use_errno=True)
swaps = 0
def done(*_):
    print(swaps, flush=True)
    os._exit(0)
signal.signal(signal.SIGTERM, done)
print("ready", flush=True)
while True:
    # RENAME_EXCHANGE: the directory and the link trade places atomically.
    if libc.renameat2(-100, sub, -100, alt, 2) == 0:
        swaps += 1
        continue
    try:  # heal what a restore removed: one link, one directory
        if not os.path.lexists(alt):
            os.symlink(sys.argv[2], alt)
        if not os.path.lexists(sub):
            os.mkdir(sub)
        if os.path.islink(sub) and os.path.islink(alt):
            os.unlink(sub)
            os.mkdir(sub)
    except OSError:
        pass
"""


@dataclass
class Swapper:
    """A process that keeps swapping ws/sub (a directory) with a link to ``outside``, the
    way a command left running in the background can (the issue: 66 of 3000 writes
    landed outside)."""

    ws: Path
    outside: Path
    proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        os.symlink(self.outside, self.ws / "sub.alt")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", SWAPPER, str(self.ws), str(self.outside)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        """Stop it; how many swaps it made."""
        assert self.proc is not None
        self.proc.terminate()
        return int(self.proc.communicate(timeout=10)[0] or 0)


@pytest.fixture
def swapper(ws: Path, outside: Path) -> Iterator[Swapper]:
    (ws / "sub").mkdir()
    (ws / "sub" / "e.txt").write_text("n = \n")
    (ws / "sub" / "secret.txt").write_text("inside\n")
    (ws / "sub" / "keep.txt").write_text("keep\n")
    (outside / "e.txt").write_text("n = \n")
    (outside / "secret.txt").write_text("OUTSIDE-SECRET\n")
    swapper = Swapper(ws, outside)
    try:
        yield swapper
    finally:
        if swapper.proc is not None:
            swapper.proc.kill()
            swapper.proc.wait()


def test_host_file_work_never_lands_outside_while_a_process_swaps_links(
    ws: Path, outside: Path, swapper: Swapper
) -> None:
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    snap = space.snapshot()
    before = state(outside)
    local = LocalSandbox(ENV)
    env = CheckEnv(ws, local, Limits(), SandboxPython(local, sys.executable))
    reader = FileRunner(FileCheck(path="sub/secret.txt", contains="inside"), None)
    written = leaked = 0
    swapper.start()
    for i in range(3000):
        done = write_file(ws, WriteFileAction(path=f"sub/w{i}.txt", content=f"{i}\n"))
        written += done.status is Status.SUCCESS
        edit_file(ws, EditAction(path="sub/e.txt", search="n = ", replace="n = x"))
        if i % 10 == 0:
            with contextlib.suppress(OSError):
                (ws / "sub" / "keep.txt").unlink()
            for work in (lambda: space.restore(snap), space.snapshot):
                # Refusing (an error) is fine: only landing outside is not.
                with contextlib.suppress(OSError, ValueError, SnapshotTampered):
                    work()
            with contextlib.suppress(OSError):
                files, _ = index_workspace(ws, IndexLimits())
                leaked += sum("OUTSIDE-SECRET" in (f.content or "") for f in files)
                leaked += "OUTSIDE-SECRET" in reader.run(env, "read").observation.stderr
    swaps = swapper.stop()
    assert swaps > 1000, "the swapper did not run: the test would prove nothing"
    assert written > 0, "no write succeeded: the test would prove nothing"
    assert state(outside) == before, "host-side file work landed outside the workspace"
    assert leaked == 0, "a read of a workspace file returned a file outside it"


def test_a_junit_report_through_a_linked_directory_is_refused(ws: Path, outside: Path) -> None:
    (outside / "junit.xml").write_text(
        '<testsuite><testcase name="t"><failure message="OUTSIDE-SECRET"/></testcase></testsuite>'
    )
    os.symlink(outside, ws / "reports")
    check = TestsCheck(command="touch reports/junit.xml", junit="reports/junit.xml")
    result = run_one(check, ws, LocalSandbox(ENV), Limits(timeout=30), rerun_failures=False)
    assert not result.passed
    assert "symbolic link" in result.observation.stderr
    assert "OUTSIDE-SECRET" not in result.model_dump_json()


def test_docstring_examples_through_a_linked_directory_are_refused(ws: Path, outside: Path) -> None:
    (outside / "mod.py").write_text('def f():\n    """\n    >>> f()\n    1\n    """\n')
    os.symlink(outside, ws / "lib")
    with pytest.raises(ConfigError, match="symbolic link"):
        examples_for(ws, "lib/mod.py")


# ------------------------------------------------------------------ sparse files


def sparse(path: Path, size: int) -> None:
    with path.open("wb") as handle:
        handle.write(b"head" * 2048)
        handle.truncate(size)


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


@pytest.mark.parametrize("backend", ["local", "bwrap"])
def test_a_sparse_file_counts_against_the_disk_limit(ws: Path, backend: str) -> None:
    sandbox = make_sandbox(backend, sandbox_env(os.environ, [], home=str(ws)), environ=os.environ)
    limits = Limits(timeout=10, max_disk_bytes=32 * MIB, max_file_bytes=256 * MIB)
    obs = sandbox.run(ShellAction(command="truncate -s 200M sparse.bin"), ws, limits)
    assert allocated(ws / "sparse.bin") < MIB  # it took (almost) no disk blocks
    assert obs.status is Status.DISK_LIMIT, (obs.status, obs.stderr)


def test_snapshots_and_restores_keep_holes(ws: Path) -> None:
    sparse(ws / "disk.img", 64 * MIB)
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    snap = space.snapshot()
    digest = snap.entries["disk.img"].digest
    obj = ws / ".zerog" / "snapshots" / "objects" / digest[:2] / digest
    assert obj.stat().st_size == 64 * MIB
    assert allocated(obj) < 4 * MIB  # was 64 MiB: the holes were copied as zeros
    (ws / "disk.img").unlink()
    space.restore(snap)
    assert (ws / "disk.img").stat().st_size == 64 * MIB
    assert allocated(ws / "disk.img") < 4 * MIB
    assert space.state_hash() == snap.id


def test_a_tree_with_too_many_holes_is_not_snapshotted_and_is_rolled_back(ws: Path) -> None:
    from zerog.sandbox.workspace import SnapshotRefused

    space = Workspace(ws, ws / ".zerog" / "snapshots")
    clean = space.snapshot()
    sparse(ws / "huge.bin", 300 * MIB)
    with pytest.raises(SnapshotRefused, match="holes in sparse files"):
        space.snapshot()
    objects = ws / ".zerog" / "snapshots" / "objects"
    assert sum(allocated(p) for p in objects.rglob("*") if p.is_file()) < MIB
    space.restore(clean)  # a rollback still works, without reading the holes
    assert not (ws / "huge.bin").exists()


# ------------------------------------------------------------------ snapshot objects


def object_count(ws: Path) -> int:
    return sum(1 for p in (ws / ".zerog" / "snapshots" / "objects").rglob("*") if p.is_file())


def test_unreferenced_snapshot_objects_are_collected(ws: Path) -> None:
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    base = space.snapshot()
    for i in range(5):
        (ws / f"step{i}.txt").write_text(f"content {i}\n")
        space.snapshot()
    assert object_count(ws) == 6
    collected = space.collect(keep={base.id})
    assert (collected.manifests, collected.objects) == (5, 5)
    assert object_count(ws) == 1
    space.restore(space.load(base.id))
    assert sorted(p.name for p in ws.iterdir()) == [".zerog", "app.py"]


def test_collection_keeps_what_another_process_wrote(ws: Path) -> None:
    earlier = Workspace(ws, ws / ".zerog" / "snapshots")  # e.g. an interrupted run
    (ws / "wip.txt").write_text("interrupted work\n")
    kept = earlier.snapshot()
    (ws / "wip.txt").unlink()
    later = Workspace(ws, ws / ".zerog" / "snapshots")
    later.snapshot()
    (ws / "later.txt").write_text("later\n")
    later.snapshot()
    later.collect()
    later.restore(later.load(kept.id))  # its objects are still there
    assert (ws / "wip.txt").read_text() == "interrupted work\n"


def test_a_finished_run_keeps_only_its_base_snapshot(ws: Path, tmp_path: Path) -> None:
    model = scripted(
        plan(step("one", write("a.txt", "1\n")), step("two", write("b.txt", "2\n"))),
        plan(step("three", write("c.txt", "3\n"))),
    )
    with Store(tmp_path / "runs.db") as store:
        result = Engine(model, sandbox_name="local", environ=ENV, store=store).run(
            Goal(
                text="never passes",
                workspace=ws,
                checks=(CommandCheck(command="false"),),
                budget=Budget(max_iterations=2),
            )
        )
    assert not result.ok
    manifests = list((ws / ".zerog" / "snapshots" / "manifests").glob("*.json"))
    assert len(manifests) == 1  # durable runs snapshot before every action
    assert object_count(ws) == 1  # app.py: what the base snapshot holds


# ------------------------------------------------------------------ manifests (resume)


def forge(ws: Path, entries: dict[str, list[object]], snapshot_id: str | None = None) -> str:
    """Write a manifest whose id is the hash of its entries, as snapshot() would."""
    digest = hashlib.sha256()
    for rel in sorted(entries):
        kind, mode, value = entries[rel]
        digest.update(f"{rel}\0{kind}\0{int(str(mode)):o}\0{value}\n".encode())
    snapshot_id = snapshot_id or digest.hexdigest()
    manifests = ws / ".zerog" / "snapshots" / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    (manifests / f"{snapshot_id}.json").write_text(json.dumps(entries))
    return snapshot_id


@pytest.mark.parametrize(
    "rel", ["../escaped.txt", "{tmp}/escaped.txt", ".zerog/lock", "a/../../escaped.txt", "./a"]
)
def test_a_manifest_naming_paths_outside_the_tree_is_refused(
    ws: Path, tmp_path: Path, rel: str
) -> None:
    rel = rel.replace("{tmp}", str(tmp_path))
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    obj = space.snapshot().entries["app.py"]
    forged = forge(ws, {"app.py": ["file", 0o644, obj.digest], rel: ["file", 0o644, obj.digest]})
    with pytest.raises(SnapshotTampered, match="manifest"):
        space.restore(space.load(forged))
    assert not (tmp_path / "escaped.txt").exists()


def test_a_manifest_whose_entries_do_not_hash_to_its_id_is_refused(ws: Path) -> None:
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    real = space.snapshot()
    path = ws / ".zerog" / "snapshots" / "manifests" / f"{real.id}.json"
    body = json.loads(path.read_text())
    body["app.py"][1] = 0o777
    path.write_text(json.dumps(body))
    with pytest.raises(SnapshotTampered, match="does not hash to its id"):
        space.load(real.id)


def test_a_snapshot_id_that_is_not_a_digest_is_refused(ws: Path, tmp_path: Path) -> None:
    (tmp_path / "evil.json").write_text("{}")
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    space.snapshot()
    with pytest.raises(SnapshotTampered, match="not a snapshot id"):
        space.load("../../../../evil")


# ------------------------------------------------------------------ setuid, setgid, sticky


def test_snapshots_and_restores_never_carry_setuid_setgid_or_sticky_bits(ws: Path) -> None:
    tool = ws / "tool"
    tool.write_text("#!/bin/sh\n")
    os.chmod(tool, 0o6755)
    (ws / "shared").mkdir()
    os.chmod(ws / "shared", 0o1777)
    assert stat.S_IMODE(tool.stat().st_mode) & 0o7000  # set (the test is meaningful)
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    snap = space.snapshot()
    assert snap.entries["tool"].mode == 0o755
    assert snap.entries["shared"].mode == 0o777
    assert snap.neutralized == ("shared", "tool")
    tool.unlink()
    (ws / "shared").rmdir()
    space.restore(snap)
    assert stat.S_IMODE(tool.stat().st_mode) == 0o755
    assert stat.S_IMODE((ws / "shared").stat().st_mode) == 0o777


def test_a_rollback_removes_a_setuid_bit_a_command_added(ws: Path) -> None:
    space = Workspace(ws, ws / ".zerog" / "snapshots")
    snap = space.snapshot()
    os.chmod(ws / "app.py", 0o4755)
    space.restore(snap)
    assert stat.S_IMODE((ws / "app.py").stat().st_mode) == 0o644


# ------------------------------------------------------------------ dangerous workspaces


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    (path / "notes.txt").write_text("mine\n")
    return path


def test_dangerous_workspaces_are_refused_with_the_reason(home: Path, tmp_path: Path) -> None:
    from zerog.workspace_policy import DangerousWorkspace, check_workspace

    environ = {"HOME": str(home)}
    cases = {
        Path("/"): "file system's root",
        Path("/etc"): "system directory",
        home: "is the home directory",
        tmp_path: "holds the home directory",
        home / ".config": "zerog's configuration",
        home / ".local" / "share": "zerog's run store",
        home / ".cache": "zerog's data cache",
    }
    for path, reason in cases.items():
        path.mkdir(parents=True, exist_ok=True)
        with pytest.raises(DangerousWorkspace, match=reason) as caught:
            check_workspace(path, environ)
        assert "--force-workspace" in str(caught.value)
        assert check_workspace(path, environ, force=True) == path.resolve()
    project = home / "src" / "project"
    project.mkdir(parents=True)
    assert check_workspace(project, environ) == project
    alias = tmp_path / "alias"
    alias.symlink_to(home)
    with pytest.raises(DangerousWorkspace, match="is the home directory"):
        check_workspace(alias, environ)


def test_the_engine_refuses_the_home_directory_unless_forced(home: Path) -> None:
    environ = {**ENV, "HOME": str(home)}
    model = scripted(plan(step("delete", shell("rm notes.txt"))))
    with pytest.raises(ConfigError, match="home directory"):  # a DangerousWorkspace
        Engine(model, sandbox_name="local", environ=environ).run(goal(home, "true"))
    assert (home / "notes.txt").exists()
    assert not (home / ".zerog").exists()
    forced = Engine(model, sandbox_name="local", environ=environ, force_workspace=True)
    assert forced.run(goal(home, "true")).ok


def test_the_engine_refuses_a_workspace_holding_its_store(ws: Path) -> None:
    with Store(ws / "runs.db") as store, pytest.raises(ConfigError, match=r"store .*runs\.db"):
        engine(store=store).run(goal(ws))


def test_the_cli_refuses_a_dangerous_workspace_and_names_the_flag(
    home: Path, tmp_path: Path
) -> None:
    script = tmp_path / "script.jsonl"
    script.write_text(json.dumps(plan(step("noop", shell("true")))) + "\n")
    args = ["run", "noop", "-c", "true", "-m", f"scripted:{script}", "--sandbox", "local"]
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    env_home = {"HOME": str(home)}
    refused = cli_with_env(cwd, env_home, *args, "-w", str(home))
    assert refused.returncode == 2, refused.stderr
    assert "home directory" in refused.stderr
    assert "--force-workspace" in refused.stderr
    forced = cli_with_env(cwd, env_home, *args, "-w", str(home), "--force-workspace")
    assert forced.returncode == 0, forced.stderr


def cli_with_env(cwd: Path, extra: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **extra, "COLUMNS": "400", "NO_COLOR": "1"}
    env["ZEROG_STORE"] = str(cwd / "runs.db")
    return subprocess.run(
        [sys.executable, "-m", "zerog", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_batch_refuses_to_copy_a_dangerous_workspace(home: Path, tmp_path: Path) -> None:
    goals = tmp_path / "goals.jsonl"
    goals.write_text(json.dumps({"text": "t", "workspace": str(home), "checks": ["true"]}) + "\n")
    with pytest.raises(ConfigError, match="home directory"):
        read_goals(goals, environ={"HOME": str(home)})
    assert read_goals(goals, environ={"HOME": str(home)}, force_workspace=True).goals
