"""A kept bwrap sandbox without cgroups (the usual unprivileged user's case).

Before, such a user got a bubblewrap (and a Python launcher) per command, because nothing
could kill what a command left running in a kept sandbox: it lived into the next command
and raced zerog's own file actions (finding 6). Now the sandbox's init empties its pid
namespace after each command, before it reports the exit, and a command stopped by a
limit ends its sandbox. These tests hold as root (then a sandbox without cgroups is
built with a factory that finds none, and ``uid`` says "not root", which root itself
requires the pids cgroup for) and as an unprivileged user (then the real factory finds
none). A fork bomb needs RLIMIT_NPROC, which does not bound root: that test runs only
unprivileged; as root, the pids cgroup bounds bombs (see test_hostile.py).
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.sandbox.base import MIB, Limits
from zerog.sandbox.bwrap import BwrapSandbox
from zerog.sandbox.limits import CgroupFactory
from zerog.types import EditAction, ShellAction, Status, WriteFileAction

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
ROOT = os.geteuid() == 0
# The payload marker (4242, see conftest) made unique to this test process.
MARK = f"4242{os.getpid()}"


def marked() -> list[int]:
    """Host processes whose command line carries this test process's marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARK.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def no_cgroups(tmp_path: Path) -> CgroupFactory:
    proc = tmp_path / "fake-proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text("")
    (proc / "self" / "cgroup").write_text("")
    return CgroupFactory(proc=proc)


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[BwrapSandbox]:
    """A bwrap sandbox with no cgroup to hold its processes."""
    uid = os.getuid() or 4242
    with BwrapSandbox(ENV, cgroups=no_cgroups(tmp_path), uid=uid, sweep_seconds=1.0) as box:
        yield box


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def run(sandbox: BwrapSandbox, ws: Path, command: str, **limits: float) -> tuple[Status, str]:
    obs = sandbox.run(ShellAction(command=command), ws, Limits(**limits))
    return obs.status, obs.stdout + obs.stderr


def same_sandbox(sandbox: BwrapSandbox, ws: Path, **limits: float) -> bool:
    """Whether the next command runs in the sandbox that ran ``remember`` (with the same
    size of /tmp): its private /tmp still holds the note."""
    return run(sandbox, ws, "cat /tmp/zerog-note 2>/dev/null", **limits)[1] == "kept\n"


def remember(sandbox: BwrapSandbox, ws: Path, **limits: float) -> None:
    assert run(sandbox, ws, "echo kept > /tmp/zerog-note", **limits) == (Status.SUCCESS, "")


def test_a_sandbox_is_kept_without_cgroups(sandbox: BwrapSandbox, ws: Path) -> None:
    """The reuse itself: one bubblewrap and one init serve command after command."""
    assert sandbox.reuses
    remember(sandbox, ws)
    (session,) = sandbox._sessions
    for _ in range(5):
        assert same_sandbox(sandbox, ws)
    assert sandbox._sessions == [session]
    assert session.proc.poll() is None


LEFTOVERS = (
    # a new session, its output closed, as a daemon would
    "setsid sh -c 'sleep {mark}1' >/dev/null 2>&1 </dev/null &"
    # a double fork: re-parented to the init at once
    " (sh -c 'sleep {mark}2' >/dev/null 2>&1 &) ;"
    # ignores the polite signals
    " sh -c \"trap '' TERM HUP INT; sleep {mark}3\" >/dev/null 2>&1 &"
    # stopped (SIGKILL still works on it)
    " sleep {mark}4 >/dev/null 2>&1 & kill -STOP $! ;"
    # a process group of its own
    " python3 -c 'import os, time; os.setpgid(0, 0); time.sleep(99)' {mark}5 >/dev/null 2>&1 &"
    # a zombie nobody reaps: the child exits, its parent (now sleep) never waits
    " sh -c 'true & exec sleep {mark}6' >/dev/null 2>&1 &"
    # a subreaper that adopts what its children leave
    " python3 -c 'import ctypes, os, time; ctypes.CDLL(None).prctl(36, 1, 0, 0, 0);"
    ' os.system("sleep {mark}7 &"); time.sleep(99)\' {mark}8 >/dev/null 2>&1 &'
    # still holding the command's stdout
    " sleep {mark}9 &"
    " sleep 0.3; echo started"
)


def test_nothing_a_command_left_survives_its_return(sandbox: BwrapSandbox, ws: Path) -> None:
    """Finding 6 in a kept sandbox: daemons, double forks, stopped processes, other
    process groups and sessions, zombies, a subreaper, a process holding the output:
    all gone when the command's result comes back (no waiting), and the sandbox is kept."""
    remember(sandbox, ws)
    status, out = run(sandbox, ws, LEFTOVERS.format(mark=MARK))
    assert (status, out) == (Status.SUCCESS, "started\n")
    assert marked() == [], "a process of the command outlived its result"
    # Inside, the next command sees no process but the init and itself.
    status, out = run(sandbox, ws, 'cd /proc && for p in [0-9]*; do echo "$p"; done; echo "$$"')
    assert status is Status.SUCCESS
    *pids, own = out.split()
    assert sorted(pids) == sorted(["1", own]), out
    assert same_sandbox(sandbox, ws)


def test_the_next_command_starts_clean_many_times(sandbox: BwrapSandbox, ws: Path) -> None:
    """Leftovers of every command are gone before the next one, time after time."""
    for i in range(20):
        status, out = run(
            sandbox,
            ws,
            f"setsid sleep {MARK}{i} >/dev/null 2>&1 </dev/null & ls /proc | grep -cE '^[0-9]+$'",
        )
        assert status is Status.SUCCESS
        # the init, this shell, ls, grep (and the sleep just started): never a leftover
        assert int(out) <= 5, out
        assert marked() == []


SWAPPER = """
import ctypes, os, sys
ws, outside = sys.argv[1], sys.argv[2]
sub, alt = (os.path.join(ws, n).encode() for n in ("sub", "sub.alt"))
libc = ctypes.CDLL(None, use_errno=True)
os.symlink(outside, alt)
swaps = 0
while True:
    # RENAME_EXCHANGE: the directory and the link trade places atomically
    if libc.renameat2(-100, sub, -100, alt, 2) == 0:
        swaps += 1
        if swaps % 1000 == 0:
            with open(os.path.join(ws, "swaps.new"), "w") as f:
                f.write(str(swaps))
            os.replace(os.path.join(ws, "swaps.new"), os.path.join(ws, "swaps"))
"""


def test_a_link_swapper_a_command_left_cannot_race_file_actions(
    sandbox: BwrapSandbox, ws: Path, tmp_path: Path
) -> None:
    """The race of finding 6: a command leaves a process swapping a directory of the
    workspace with a link to a directory outside it, then returns; zerog's own file
    actions follow (3000 writes and edits). The swapper was killed before the command's
    result came back: everything lands in the workspace, nothing outside changes."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "e.txt").write_text("n = \n")
    (ws / "sub").mkdir()
    (ws / "sub" / "e.txt").write_text("n = \n")
    before = {p.name: p.read_bytes() for p in outside.iterdir()}
    remember(sandbox, ws)
    script = ws / "swapper.py"
    script.write_text(SWAPPER)
    status, out = run(
        sandbox,
        ws,
        f"python3 swapper.py {ws} {outside} {MARK} >/dev/null 2>&1 </dev/null & "
        "while [ ! -s swaps ] || [ $(cat swaps) -lt 2000 ]; do sleep 0.01; done; echo swapping",
        timeout=30,
    )
    assert (status, out) == (Status.SUCCESS, "swapping\n"), "the swapper did not run"
    assert marked() == []
    # Whichever way the last swap left them, put the directory back for the writes.
    if (ws / "sub").is_symlink():
        os.rename(ws / "sub.alt", ws / "sub.tmp")
        os.rename(ws / "sub", ws / "sub.alt")
        os.rename(ws / "sub.tmp", ws / "sub")
    swaps = (ws / "swaps").read_text()
    for i in range(3000):
        wrote = sandbox.run(WriteFileAction(path=f"sub/w{i}.txt", content=f"{i}\n"), ws, Limits())
        assert wrote.status is Status.SUCCESS, wrote.stderr
        edit = EditAction(path="sub/e.txt", search="n = ", replace="n = x")
        assert sandbox.run(edit, ws, Limits()).status is Status.SUCCESS
    assert {p.name: p.read_bytes() for p in outside.iterdir()} == before
    assert len(list((ws / "sub").glob("w*.txt"))) == 3000
    assert stat.S_ISDIR((ws / "sub").lstat().st_mode)
    assert (ws / "swaps").read_text() == swaps  # it never swapped again
    assert same_sandbox(sandbox, ws)


@pytest.mark.parametrize(
    ("command", "limits", "status"),
    [
        ("sleep {mark} & sleep 30", {"timeout": 0.5}, Status.TIMEOUT),
        ("sleep {mark} & yes", {"kill_output_bytes": 10_000}, Status.OUTPUT_LIMIT),
        (
            "sleep {mark} & for i in $(seq 40); do head -c 1000000 /dev/zero > f$i; done; sleep 5",
            {"max_disk_bytes": 4 * MIB},
            Status.DISK_LIMIT,
        ),
    ],
)
def test_a_command_stopped_by_a_limit_ends_its_sandbox(
    sandbox: BwrapSandbox, ws: Path, command: str, limits: dict[str, float], status: Status
) -> None:
    """Without cgroups, zerog stops a command by ending its sandbox: its init is killed
    and, as pid 1, takes every process of the namespace with it; zerog returns once the
    namespace is gone. The next command gets a new sandbox."""
    remember(sandbox, ws, **limits)
    (first,) = sandbox._sessions
    started = time.monotonic()
    obs = sandbox.run(ShellAction(command=command.format(mark=MARK)), ws, Limits(**limits))
    assert obs.status is status, obs.stderr
    assert obs.exit_code is None
    assert "[zerog: killed" in obs.stderr
    assert time.monotonic() - started < 10
    assert marked() == []
    assert first.proc.poll() is not None, "the sandbox was not ended"
    assert not same_sandbox(sandbox, ws, **limits)
    assert first not in sandbox._sessions
    assert run(sandbox, ws, "echo fresh") == (Status.SUCCESS, "fresh\n")


@pytest.mark.skipif(ROOT, reason="RLIMIT_NPROC does not bound root; root has a pids cgroup")
def test_a_fork_bomb_left_behind_is_killed(sandbox: BwrapSandbox, ws: Path) -> None:
    """A fork bomb racing the sweep: RLIMIT_NPROC (per user namespace) bounds it, and the
    init's kill of the whole namespace, repeated until it is empty, ends it."""
    bomb = (
        "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    (ws / "bomb.py").write_text(bomb)
    remember(sandbox, ws)
    status, out = run(
        sandbox,
        ws,
        # The shell forks nothing after the bomb (which takes every process it may).
        f"setsid python3 bomb.py {MARK} >/dev/null 2>&1 </dev/null & "
        "exec python3 -c 'import time; time.sleep(1); print(\"started\")'",
        max_processes=64,
    )
    assert (status, out) == (Status.SUCCESS, "started\n")
    assert marked() == []
    assert same_sandbox(sandbox, ws)


def v1_freezer() -> Path | None:
    """The mount point of a cgroup v1 freezer hierarchy this process may write, if any."""
    if not ROOT:
        return None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(tail) >= 3 and tail[0] == "cgroup" and "freezer" in tail[2].split(","):
            mount = Path(fields[4])
            if os.access(mount, os.W_OK):
                return mount
    return None


@pytest.mark.skipif(v1_freezer() is None, reason="needs root and a cgroup v1 freezer")
def test_a_leftover_that_cannot_be_killed_retires_the_sandbox(
    sandbox: BwrapSandbox, ws: Path
) -> None:
    """The init's sweep is bounded: a leftover that cannot die in time (the test freezes
    it in a freezer cgroup of its own, as a process stuck in the kernel would be) is
    reported, and the sandbox is never handed another command."""
    mount = v1_freezer()
    assert mount is not None
    icebox = mount / f"zerog-test-icebox-{os.getpid()}"
    icebox.mkdir()
    thawed = threading.Event()

    def the_sleep() -> list[int]:  # not the shell, whose command line names it too
        found = []
        for pid in marked():
            try:
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"sleep\0"):
                    found.append(pid)
            except OSError:
                continue
        return found

    def freeze_the_leftover() -> None:
        deadline = time.monotonic() + 10
        while not the_sleep() and time.monotonic() < deadline:
            time.sleep(0.01)
        for pid in the_sleep():
            (icebox / "cgroup.procs").write_text(str(pid))
        (icebox / "freezer.state").write_text("FROZEN")
        thawed.wait(timeout=15.0)  # never leave it frozen, whatever happens in the test
        (icebox / "freezer.state").write_text("THAWED")

    helper = threading.Thread(target=freeze_the_leftover, daemon=True)
    helper.start()
    try:
        remember(sandbox, ws)
        status, out = run(sandbox, ws, f"sleep {MARK} & sleep 1; echo done")
        assert status is Status.SUCCESS  # the command itself did end
        assert "could not be killed within 1 s" in out, out
        assert "its sandbox was retired" in out
        assert sandbox._sessions == []
        thawed.set()
        helper.join(timeout=10)
        deadline = time.monotonic() + 10
        while marked() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert marked() == []
        assert not same_sandbox(sandbox, ws)
    finally:
        thawed.set()
        helper.join(timeout=10)
        for _ in range(100):
            try:
                icebox.rmdir()
                break
            except OSError:
                time.sleep(0.05)
