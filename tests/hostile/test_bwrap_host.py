"""The bwrap sandbox as the host sees it: whose processes they are, which keys they can
reach, which signals end them, and what is left after a command.

Each test holds whether the suite runs as root (as CI does: then every process of the
sandbox must run as the dedicated unprivileged id) or as an unprivileged user; the few
that need root's cgroups say so. tests/hostile/test_kept_sandbox.py covers a kept
sandbox without cgroups.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hostile.conftest import KEY_DESCRIPTION, KEYCTL, SECRET, session_key
from zerog.sandbox.base import Limits
from zerog.sandbox.bwrap import BwrapSandbox
from zerog.sandbox.launch import HOST_ID, SOURCE, Launcher
from zerog.sandbox.limits import CgroupFactory
from zerog.types import ShellAction

ENV = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8"}
ROOT = os.geteuid() == 0


# The payload marker (4242, see conftest) made unique to this test process: other test
# runs on the same machine use 4242 too.
MARK = f"4242{os.getpid()}"


def marked() -> list[int]:
    """Processes whose command line carries this test process's marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if MARK.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def wait_for(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out waiting")


def status_ids(pid: int) -> tuple[list[int], list[int], int]:
    """(Uid line, Gid line, parent pid) of a process, as the host sees them."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.split()
    return (
        [int(v) for v in fields["Uid"]],
        [int(v) for v in fields["Gid"]],
        int(fields["PPid"][0]),
    )


def chain_up_to_us(pid: int) -> list[int]:
    """``pid`` and its ancestors, up to (not including) this test process."""
    chain = []
    while pid not in (os.getpid(), 0, 1):
        chain.append(pid)
        pid = status_ids(pid)[2]
    assert pid == os.getpid(), "the sandbox is not below the test process"
    return chain


def deepest_chain() -> list[int]:
    """The chain of the marked process furthest from this one (the command itself, not
    the bubblewrap whose command line also names it)."""
    return max((chain_up_to_us(pid) for pid in marked()), key=len, default=[])


def command_started() -> bool:
    """The command runs: the marked chain reaches from bubblewrap down to a sleep."""
    try:
        chain = deepest_chain()
    except OSError:  # a process of the chain went away while it was read
        return False
    return len(chain) >= 3 and Path(f"/proc/{chain[0]}/comm").read_text().strip() == "sleep"


@pytest.fixture(params=[True, False], ids=["kept", "per-command"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[BwrapSandbox]:
    with BwrapSandbox(ENV, reuse=bool(request.param)) as sandbox:
        yield sandbox


def run_in_thread(sandbox: BwrapSandbox, ws: Path, command: str, **limits: float) -> list[object]:
    done: list[object] = []
    thread = threading.Thread(
        target=lambda: done.append(sandbox.run(ShellAction(command=command), ws, Limits(**limits))),
        daemon=True,
    )
    thread.start()
    done.append(thread)
    return done


def test_no_process_of_the_sandbox_is_host_root(sandbox: BwrapSandbox, tmp_path: Path) -> None:
    """Finding 1: as root, bubblewrap's user namespace mapped the sandbox user to host
    uid 0. Every process between zerog and the command (bubblewrap, the kept init, the
    shell, the command) must run as the unprivileged id, with no group of root."""
    ws = tmp_path / "ws"
    ws.mkdir()
    expected = HOST_ID if ROOT else os.getuid()
    expected_gid = HOST_ID if ROOT else os.getgid()
    started = run_in_thread(sandbox, ws, f"sleep {MARK}", timeout=3.0)
    wait_for(command_started)
    try:
        chain = deepest_chain()
        assert len(chain) >= 3  # the command, a shell or init, bubblewrap
        for pid in chain:
            uids, gids, _ = status_ids(pid)
            assert uids == [expected] * 4, (pid, uids)
            assert gids == [expected_gid] * 4, (pid, gids)
            groups = Path(f"/proc/{pid}/status").read_text().split("Groups:")[1].split("\n")[0]
            assert "0" not in groups.split(), (pid, groups)
    finally:
        thread = started[0]
        assert isinstance(thread, threading.Thread)
        thread.join(timeout=10)


def test_the_sandbox_has_no_terminal_session_of_zerogs(
    sandbox: BwrapSandbox, tmp_path: Path
) -> None:
    """Low finding: a kept sandbox shared zerog's session (and so its terminal). Every
    process of the sandbox is in a session of its own, so no Ctrl-C, hang-up or job
    control signal of zerog's terminal can reach it."""
    ws = tmp_path / "ws"
    ws.mkdir()
    started = run_in_thread(sandbox, ws, f"sleep {MARK}", timeout=3.0)
    wait_for(command_started)
    try:
        ours = os.getsid(0)
        for pid in deepest_chain():
            assert os.getsid(pid) != ours, pid
    finally:
        thread = started[0]
        assert isinstance(thread, threading.Thread)
        thread.join(timeout=10)


def test_sigint_does_not_end_a_kept_sandbox(tmp_path: Path) -> None:
    """Low finding: SIGINT (what Ctrl-C sends) ended the kept sandbox: its init, a Python,
    turned it into KeyboardInterrupt, and bubblewrap died of it. Only zerog ends it now."""
    ws = tmp_path / "ws"
    ws.mkdir()
    with BwrapSandbox(ENV) as sandbox:
        assert sandbox.reuses
        assert sandbox.run(ShellAction(command="true"), ws, Limits()).ok
        (session,) = sandbox._sessions
        os.kill(session.init_pid, signal.SIGINT)
        os.killpg(session.proc.pid, signal.SIGINT)  # bubblewrap's group
        time.sleep(0.3)
        assert session.proc.poll() is None
        again = sandbox.run(ShellAction(command="echo alive"), ws, Limits())
        assert again.stdout == "alive\n", again.stderr
        assert sandbox._sessions == [session]
        # A command still gets the default disposition: SIGINT ends it.
        interrupted = sandbox.run(ShellAction(command="kill -INT $$; echo survived"), ws, Limits())
        assert "survived" not in interrupted.stdout


def no_cgroups(tmp_path: Path) -> CgroupFactory:
    proc = tmp_path / "fake-proc"
    (proc / "self").mkdir(parents=True)
    (proc / "self" / "mountinfo").write_text("")
    (proc / "self" / "cgroup").write_text("")
    return CgroupFactory(proc=proc)


def test_a_kept_sandbox_without_a_cgroup_leaves_nothing_behind(tmp_path: Path) -> None:
    """Finding 6: without a writable cgroup (the usual case for an unprivileged user),
    what a command started in a kept sandbox lived on into the next command and could
    race zerog's own file actions. The sandbox is still kept, and its init kills every
    other process of its pid namespace before it reports the command's exit. (``uid``
    says "not root", which is what lets the sandbox be built without a pids cgroup; it
    still runs as HOST_ID under root.)"""
    ws = tmp_path / "ws"
    ws.mkdir()
    with BwrapSandbox(ENV, cgroups=no_cgroups(tmp_path), uid=os.getuid() or 4242) as sandbox:
        assert sandbox.reuses
        first = sandbox.run(
            ShellAction(
                command=f"setsid sh -c 'sleep 1; echo late > late.txt; sleep {MARK}' "
                ">/dev/null 2>&1 </dev/null & echo started"
            ),
            ws,
            Limits(),
        )
        assert first.stdout == "started\n", first.stderr
        assert marked() == [], "a process of the command outlived it"
        time.sleep(1.2)
        assert not (ws / "late.txt").exists()
        assert len(sandbox._sessions) == 1


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
def test_a_sandbox_whose_sweep_fails_is_retired_and_says_so(tmp_path: Path) -> None:
    """Low finding: the sweep after a command gave up silently after 2 s and the kept
    sandbox was handed the next command anyway. Here a process the command left behind
    cannot be killed in time (the test freezes it in a freezer cgroup of its own, as a
    process stuck in uninterruptible sleep would be): the command's result says so, and
    its sandbox is never used again."""
    ws = tmp_path / "ws"
    ws.mkdir()
    mount = v1_freezer()
    assert mount is not None
    icebox = mount / f"zerog-test-icebox-{os.getpid()}"
    icebox.mkdir()
    thawed = threading.Event()

    def freeze_the_leftover() -> None:
        wait_for(command_started)
        (icebox / "cgroup.procs").write_text(str(deepest_chain()[0]))
        (icebox / "freezer.state").write_text("FROZEN")
        thawed.wait(timeout=15.0)  # never leave it frozen, whatever happens in the test
        (icebox / "freezer.state").write_text("THAWED")

    helper = threading.Thread(target=freeze_the_leftover, daemon=True)
    helper.start()
    try:
        with BwrapSandbox(ENV) as sandbox:
            assert sandbox.reuses
            stuck = sandbox.run(
                ShellAction(command=f"sleep {MARK} & sleep 1; echo done"), ws, Limits()
            )
            assert "could not be killed within 2 s" in stuck.stderr, stuck.stderr
            assert "its sandbox was retired" in stuck.stderr
            assert sandbox._sessions == []
            thawed.set()
            helper.join(timeout=10)
            wait_for(lambda: marked() == [])
            after = sandbox.run(ShellAction(command="echo fresh"), ws, Limits())
            assert after.stdout == "fresh\n", after.stderr
    finally:
        thawed.set()
        helper.join(timeout=10)
        wait_for(lambda: marked() == [])
        for _ in range(100):
            try:
                icebox.rmdir()
                break
            except OSError:
                time.sleep(0.05)


KEY_SEARCH = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
key = libc.syscall(L({KEYCTL[os.uname().machine]}), L(10), L(-3), b"user",
                   b"{KEY_DESCRIPTION}", L(0))
print("found" if key > 0 else "absent")
"""


def test_the_launcher_gives_a_fresh_session_keyring() -> None:
    """Finding 2: a command read a key from zerog's session keyring. The launcher joins a
    new, empty session keyring before it becomes bubblewrap (the seccomp filter denies
    keyctl on top of that). Here the launcher runs a key search instead of bubblewrap."""
    probe = ["/usr/bin/python3", "-I", "-S", "-c", KEY_SEARCH]
    drop = HOST_ID if ROOT else None
    launcher = Launcher(sys.executable, SOURCE.read_text("utf-8"), drop, Path("/tmp"))
    with session_key(SECRET) as key:
        assert key is not None
        control = subprocess.run(probe, capture_output=True, text=True, env={}, check=True)
        launched = subprocess.run(
            launcher.argv(probe, [], ignore_signals=False),
            capture_output=True,
            text=True,
            env={},
            check=False,
            cwd="/",
        )
    assert control.stdout == "found\n"  # the search does find the key where it is
    assert launched.returncode == 0, launched.stderr
    assert launched.stdout == "absent\n"


def test_the_launcher_refuses_to_run_anything_as_root() -> None:
    launcher = Launcher(sys.executable, SOURCE.read_text("utf-8"), 0, Path("/tmp"))
    done = subprocess.run(
        launcher.argv(["/usr/bin/id", "-u"], [], ignore_signals=False),
        capture_output=True,
        text=True,
        env={},
        check=False,
    )
    assert done.returncode == 126
    assert "refusing to run the sandbox as uid or gid 0" in done.stderr
    assert done.stdout == ""


def test_launcher_error_is_a_clear_refusal(tmp_path: Path) -> None:
    """A bubblewrap that cannot be executed is a failure to start, with the reason."""
    launcher = Launcher(sys.executable, SOURCE.read_text("utf-8"), None, Path("/tmp"))
    done = subprocess.run(
        launcher.argv([str(tmp_path / "missing-bwrap")], [], ignore_signals=False),
        capture_output=True,
        text=True,
        env={},
        check=False,
    )
    assert done.returncode == 126
    assert done.stderr.startswith("zerog launcher: cannot execute")
