"""Tests for zerog.sandbox.bwrap: the profile, the limits, failing closed."""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.sandbox.base import MIB, Limits, SandboxUnavailable
from zerog.sandbox.bwrap import BwrapSandbox, find_bwrap
from zerog.sandbox.limits import CgroupFactory
from zerog.types import EditAction, ShellAction, Status, WriteFileAction

# The sleeps below carry this run's pid, so that a test run beside this one (another
# clone's suite, say) cannot leave a process that looks like a survivor of this one.
TAG = f"{os.getpid():07d}"

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8", "GIVEN": "yes"}
CGROUPS = bool(CgroupFactory().controllers)  # root here; usually not an unprivileged user


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


@pytest.fixture(params=[True, False], ids=["reused", "per-command"])
def sandbox(request: pytest.FixtureRequest) -> Iterator[BwrapSandbox]:
    """Both ways of running: one sandbox kept per workspace (the default, with or without
    cgroups) and one bubblewrap per command (when the sandbox has no Python to start
    commands with)."""
    with BwrapSandbox(ENV, reuse=bool(request.param)) as sandbox:
        assert sandbox.reuses is request.param
        yield sandbox


def sh(sandbox: BwrapSandbox, ws: Path, command: str, **limits: float) -> tuple[Status, str]:
    obs = sandbox.run(ShellAction(command=command), ws, Limits(**limits))
    return obs.status, obs.stdout + obs.stderr


def test_runs_in_the_workspace_as_an_unprivileged_user(sandbox: BwrapSandbox, ws: Path) -> None:
    (ws / "marker.txt").write_text("here")
    obs = sandbox.run(ShellAction(command="pwd; cat marker.txt; id -u; id -g"), ws, Limits())
    assert obs.status is Status.SUCCESS, obs.stderr
    assert obs.stdout == f"{ws.resolve()}\nhere65534\n65534\n"
    assert sandbox.name == "bwrap"


def test_environment_is_exactly_the_sandbox_env(sandbox: BwrapSandbox, ws: Path) -> None:
    os.environ["ZEROG_BWRAP_CANARY"] = "leaked"
    try:
        obs = sandbox.run(ShellAction(command="env; cat /proc/1/environ"), ws, Limits())
    finally:
        del os.environ["ZEROG_BWRAP_CANARY"]
    seen = dict(line.split("=", 1) for line in obs.stdout.splitlines() if "=" in line)
    seen.pop("PWD", None)
    assert seen == ENV
    assert "leaked" not in obs.stdout


def test_workspace_is_the_only_writable_place(sandbox: BwrapSandbox, ws: Path) -> None:
    status, out = sh(
        sandbox,
        ws,
        "echo ok > inside.txt; for p in /usr/x /etc/x /x /dev/x /proc/x; do "
        "echo x > $p 2>/dev/null && echo WROTE $p; done; echo tmp > /tmp/t && cat /tmp/t",
    )
    assert status is Status.SUCCESS
    assert "WROTE" not in out
    assert out.startswith("tmp\n")
    assert out.count("Read-only file system") == 4
    assert (ws / "inside.txt").read_text() == "ok\n"


def test_host_directories_are_not_visible(sandbox: BwrapSandbox, ws: Path) -> None:
    status, out = sh(sandbox, ws, "ls / ; ls /home /root /var /run /opt /sys 2>&1 | head -3")
    assert status is Status.SUCCESS
    top = set(out.split())
    assert {"usr", "etc", "tmp", "proc", "dev"} <= top
    for hidden in ("home", "root", "var", "opt", "sys", "work"):
        assert hidden not in top


def test_zerog_state_is_read_only(sandbox: BwrapSandbox, ws: Path) -> None:
    (ws / ".zerog").mkdir()
    (ws / ".zerog" / "keep.txt").write_text("state")
    status, out = sh(sandbox, ws, "cat .zerog/keep.txt; echo x > .zerog/keep.txt")
    assert status is Status.ERROR
    assert out.startswith("state")
    assert (ws / ".zerog" / "keep.txt").read_text() == "state"


def test_no_network_unless_granted(ws: Path) -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    probe = (
        'python3 -c \'import socket; socket.create_connection(("127.0.0.1", '
        f'{port}), timeout=2); print("connected")\''
    )
    try:
        closed = BwrapSandbox(ENV).run(ShellAction(command=probe), ws, Limits())
        assert closed.status is Status.ERROR
        assert "connected" not in closed.stdout
        granted = BwrapSandbox(ENV, network=True)
        assert granted.network
        opened = granted.run(ShellAction(command=probe), ws, Limits())
        assert opened.stdout == "connected\n", opened.stderr
    finally:
        server.close()


def test_file_actions_are_confined_and_timed(sandbox: BwrapSandbox, ws: Path) -> None:
    wrote = sandbox.run(WriteFileAction(path="a/b.txt", content="x = 1\n"), ws, Limits())
    assert wrote.status is Status.SUCCESS
    edited = sandbox.run(EditAction(path="a/b.txt", search="1", replace="2"), ws, Limits())
    assert edited.status is Status.SUCCESS
    assert (ws / "a" / "b.txt").read_text() == "x = 2\n"
    escaped = sandbox.run(WriteFileAction(path="../x.txt", content="x"), ws, Limits())
    assert escaped.status is Status.ERROR
    assert wrote.duration >= 0


@pytest.mark.parametrize(
    ("command", "limits", "status"),
    [
        ("sleep 30", {"timeout": 0.5}, Status.TIMEOUT),
        ("yes", {"kill_output_bytes": 10_000}, Status.OUTPUT_LIMIT),
        ("python3 -c 'while True: pass'", {"cpu_seconds": 0.5}, Status.CPU_LIMIT),
        (
            "python3 -c 'x = bytearray(200_000_000); x[::4096] = b\"1\" * len(x[::4096])'",
            {"memory_bytes": 64 * MIB},
            Status.MEMORY_LIMIT,
        ),
        (
            "for i in $(seq 40); do sleep 5 & done; wait",
            {"max_processes": 10},
            Status.PROCESS_LIMIT,
        ),
        ("head -c 2000000 /dev/zero > big", {"max_file_bytes": 100_000}, Status.FILE_LIMIT),
        (
            "for i in $(seq 40); do head -c 1000000 /dev/zero > f$i; done; sleep 1",
            {"max_disk_bytes": 4 * MIB},
            Status.DISK_LIMIT,
        ),
    ],
)
def test_each_limit_has_its_status(
    sandbox: BwrapSandbox, ws: Path, command: str, limits: dict[str, float], status: Status
) -> None:
    obs = sandbox.run(ShellAction(command=command), ws, Limits(**limits))
    assert obs.status is status, obs.stderr
    assert obs.exit_code is None
    assert "[zerog: killed" in obs.stderr


def test_tmp_is_sized(sandbox: BwrapSandbox, ws: Path) -> None:
    status, out = sh(
        sandbox,
        ws,
        "head -c 3000000 /dev/zero > /tmp/fill; df -k /tmp | tail -1",
        max_disk_bytes=MIB,
    )
    assert "No space left" in out
    assert status is Status.SUCCESS  # df ran last


def test_nothing_survives_the_command(sandbox: BwrapSandbox, ws: Path) -> None:
    obs = sandbox.run(
        ShellAction(command=f"setsid sleep 3217.{TAG} >/dev/null 2>&1 < /dev/null & echo started"),
        ws,
        Limits(),
    )
    assert obs.stdout == "started\n"
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                assert f"3217.{TAG}".encode() not in (entry / "cmdline").read_bytes()
            except OSError:
                continue


def test_missing_bwrap_fails_closed(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        find_bwrap(str(tmp_path))


def test_root_without_a_pids_cgroup_fails_closed(tmp_path: Path) -> None:
    (tmp_path / "self").mkdir()
    (tmp_path / "self" / "mountinfo").write_text("")
    (tmp_path / "self" / "cgroup").write_text("")
    no_cgroups = CgroupFactory(proc=tmp_path)
    with pytest.raises(SandboxUnavailable, match="RLIMIT_NPROC"):
        BwrapSandbox(ENV, cgroups=no_cgroups, uid=0)


def test_broken_bwrap_fails_closed(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text(
        "#!/bin/sh\necho 'bwrap: No permissions to creating new namespace' >&2\nexit 1\n"
    )
    fake.chmod(0o755)
    with pytest.raises(SandboxUnavailable, match="cannot create its namespaces"):
        BwrapSandbox(ENV, executable=str(fake))


def alive_with(marker: bytes) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_reused_sandbox_runs_each_command_afresh(ws: Path) -> None:
    with BwrapSandbox(ENV) as sandbox:
        first = sandbox.run(
            ShellAction(
                command=f"setsid sleep 3218.{TAG} >/dev/null 2>&1 </dev/null & export X=1; cd /tmp"
            ),
            ws,
            Limits(),
        )
        assert first.status is Status.SUCCESS
        assert alive_with(f"3218.{TAG}".encode()) == []
        second = sandbox.run(ShellAction(command='pwd; echo "x=${X:-unset}"'), ws, Limits())
        assert second.stdout == f"{ws.resolve()}\nx=unset\n"
        # Limits are per command, even in the same sandbox.
        tight = sandbox.run(
            ShellAction(command="for i in $(seq 20); do sleep 5 & done; wait"),
            ws,
            Limits(max_processes=5),
        )
        assert tight.status is Status.PROCESS_LIMIT
        loose = sandbox.run(
            ShellAction(command="for i in $(seq 20); do sleep 0.1 & done; wait; echo ok"),
            ws,
            Limits(max_processes=50),
        )
        assert loose.stdout == "ok\n", loose.stderr


def test_reused_sandbox_init_cannot_be_touched(ws: Path) -> None:
    with BwrapSandbox(ENV) as sandbox:
        attack = sandbox.run(
            ShellAction(command="kill -9 1; kill -STOP 1; cat /proc/1/environ; cat /proc/1/mem"),
            ws,
            Limits(),
        )
        assert attack.stdout == ""
        after = sandbox.run(ShellAction(command="echo alive"), ws, Limits())
        assert after.stdout == "alive\n"


def test_reused_sandbox_recovers_when_its_init_dies(ws: Path) -> None:
    with BwrapSandbox(ENV) as sandbox:
        assert sandbox.run(ShellAction(command="true"), ws, Limits()).ok
        for session in list(sandbox._sessions):
            os.kill(session.init_pid, 9)
            session.proc.wait()
        again = sandbox.run(ShellAction(command="echo back"), ws, Limits())
        assert again.stdout == "back\n"


def test_close_stops_the_sandbox_and_removes_its_cgroups(ws: Path) -> None:
    sandbox = BwrapSandbox(ENV)
    assert sandbox.run(ShellAction(command="true"), ws, Limits()).ok
    (session,) = sandbox._sessions
    directories = list(session.groups.directories.values())
    sandbox.close()
    assert session.proc.poll() is not None
    deadline = time.monotonic() + 2
    while any(d.exists() for d in directories) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not any(d.exists() for d in directories)


def test_reused_sandboxes_serve_threads_at_once(ws: Path) -> None:
    """The validation sweep runs checks in threads: each gets a sandbox of its own, and a
    sandbox started by a thread outlives that thread."""
    from concurrent.futures import ThreadPoolExecutor

    with BwrapSandbox(ENV) as sandbox:

        def check(i: int) -> str:
            command = f"sleep 0.05; echo {i}"
            return sandbox.run(ShellAction(command=command), ws, Limits()).stdout

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert list(pool.map(check, range(16))) == [f"{i}\n" for i in range(16)]
        assert 1 <= len(sandbox._sessions) <= 4
        # The threads that started them have exited; the sandboxes still work.
        assert [check(i) for i in range(3)] == ["0\n", "1\n", "2\n"]


def test_kept_sandbox_ends_when_zerog_dies(ws: Path) -> None:
    """A zerog killed while a command runs leaves nothing behind: its end of the socket
    closes, the sandbox's init exits, and the kernel ends the namespace."""
    import subprocess
    import sys

    script = (
        "import sys\nfrom pathlib import Path\nfrom zerog.sandbox.bwrap import BwrapSandbox\n"
        "from zerog.sandbox.base import Limits\nfrom zerog.types import ShellAction\n"
        f"s = BwrapSandbox({ENV!r})\n"
        # the marker is put together in the script, so its own command line does not hold it
        f"s.run(ShellAction(command='sleep 3219' + '.{TAG}'), Path({str(ws)!r}),"
        " Limits(timeout=60))\n"
    )
    zerog = subprocess.Popen([sys.executable, "-c", script])
    try:
        deadline = time.monotonic() + 10
        while not alive_with(f"3219.{TAG}".encode()) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert alive_with(f"3219.{TAG}".encode()), "the command did not start"
    finally:
        zerog.kill()
        zerog.wait()
    deadline = time.monotonic() + 5
    while alive_with(f"3219.{TAG}".encode()) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert alive_with(f"3219.{TAG}".encode()) == []


NOBODY_SCRIPT = """
import sys
sys.path[:0] = {paths!r}
from pathlib import Path
from zerog.sandbox.bwrap import BwrapSandbox
from zerog.sandbox.base import Limits, MIB
from zerog.types import ShellAction
for reuse in (True, False):
    with BwrapSandbox({{"PATH": "/usr/bin:/bin"}}, reuse=reuse) as sandbox:
        for command, limits in (
            ("id -u", {{}}),
            ("for i in $(seq 40); do sleep 2 & done; wait", {{"max_processes": 10}}),
            ("python3 -c 'x = bytearray(300_000_000)'", {{"memory_bytes": 100 * MIB}}),
        ):
            obs = sandbox.run(ShellAction(command=command), Path({ws!r}), Limits(**limits))
            print(reuse, obs.status.value, obs.stdout.strip())
"""


PACKAGES_OF_ZEROG_CORE = (
    "zerog",
    "pydantic",
    "pydantic_core",
    "annotated_types",
    "typing_extensions",
    "typing_inspection",
)


def test_unprivileged_user_gets_the_limits_from_rlimits() -> None:
    """Not root, no writable cgroup: RLIMIT_NPROC (counted per user namespace) and
    RLIMIT_DATA carry the process and memory limits, with their own statuses."""
    import shutil
    import subprocess
    import sys

    system_python = Path("/usr/bin/python3")
    if os.getuid() != 0 or shutil.which("setpriv") is None or not system_python.exists():
        pytest.skip("needs root (to switch to an unprivileged user), setpriv, /usr/bin/python3")
    version = subprocess.run(
        [str(system_python), "-c", "import sys; print(sys.version_info[:2])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != str(sys.version_info[:2]):
        pytest.skip("the system Python cannot load this venv's compiled packages")
    import tempfile

    with tempfile.TemporaryDirectory(dir="/tmp", prefix="zerog-nobody-") as tmp:
        os.chmod(tmp, 0o755)  # pytest's own temporary directories are private to root
        # The checkout and its venv may sit in a directory only root can read (a private
        # temporary clone): the unprivileged user gets a copy of the packages it imports.
        lib = Path(tmp) / "lib"
        for name in PACKAGES_OF_ZEROG_CORE:
            module = sys.modules.get(name) or __import__(name)
            source = Path(str(module.__file__))
            if source.name == "__init__.py":
                shutil.copytree(source.parent, lib / name, ignore=shutil.ignore_patterns("*.pyc"))
            else:
                lib.mkdir(exist_ok=True)
                shutil.copy2(source, lib / source.name)
        paths = [str(lib)]
        ws = Path(tmp) / "ws"
        ws.mkdir()
        os.chown(ws, 65534, 65534)
        done = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", str(system_python)],
            input=NOBODY_SCRIPT.format(paths=paths, ws=str(ws)),
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ws,
            check=False,
        )
    assert done.returncode == 0, done.stderr
    assert [line.strip() for line in done.stdout.splitlines()] == [
        "True success 65534",
        "True process_limit",
        "True memory_limit",
        "False success 65534",
        "False process_limit",
        "False memory_limit",
    ]


@pytest.mark.skipif(not CGROUPS, reason="only a memory cgroup charges the sandbox's /tmp")
def test_kept_sandbox_that_cannot_take_a_lower_memory_limit_is_replaced(ws: Path) -> None:
    with BwrapSandbox(ENV) as sandbox:
        fill = sandbox.run(
            ShellAction(command="head -c 60000000 /dev/zero > /tmp/fill; echo filled"),
            ws,
            Limits(memory_bytes=256 * MIB),
        )
        assert fill.stdout == "filled\n", fill.stderr
        after = sandbox.run(
            ShellAction(command="ls /tmp; echo ok"), ws, Limits(memory_bytes=32 * MIB)
        )
        assert after.status is Status.SUCCESS, after.stderr
        assert after.stdout.endswith("ok\n")
        assert "fill" not in after.stdout  # a fresh sandbox: the old one's /tmp is gone


def test_workspace_files_belong_to_the_sandbox_user_and_to_their_owner_on_disk(
    sandbox: BwrapSandbox, tmp_path: Path
) -> None:
    """As root the sandbox runs as an unprivileged id on an idmapped view of the
    workspace: it owns the owner's files there, and what it writes belongs to the owner."""
    private = tmp_path / "private"  # an ancestor only its owner may enter
    private.mkdir(mode=0o700)
    ws = private / "ws"
    ws.mkdir(mode=0o700)
    (ws / "secret.txt").write_text("mine\n")
    (ws / "secret.txt").chmod(0o600)
    (ws / ".zerog").mkdir()
    (ws / ".zerog" / "state").write_text("state\n")
    (ws / ".zerog" / "state").chmod(0o600)
    obs = sandbox.run(
        ShellAction(
            command="stat -c '%u %a' secret.txt; cat secret.txt; echo more >> secret.txt; "
            "mkdir made; echo new > made/new.txt; cat .zerog/state; "
            "echo x > .zerog/state 2>/dev/null || echo state-read-only"
        ),
        ws,
        Limits(),
    )
    assert obs.status is Status.SUCCESS, obs.stderr
    assert obs.stdout == "65534 600\nmine\nstate\nstate-read-only\n"
    owner = ws.stat()
    for made in (ws / "made", ws / "made" / "new.txt", ws / "secret.txt"):
        assert (made.stat().st_uid, made.stat().st_gid) == (owner.st_uid, owner.st_gid)
    assert (ws / "secret.txt").read_text() == "mine\nmore\n"


def test_zerog_state_that_is_a_symlink_is_not_bound(sandbox: BwrapSandbox, ws: Path) -> None:
    """A .zerog/ a command replaced by a link is never bound (as root, the launcher would
    otherwise clone whatever it points to): the link is left as it is, dangling inside."""
    target = ws.parent / "elsewhere"
    target.mkdir()
    (target / "hidden.txt").write_text("outside\n")
    (ws / ".zerog").symlink_to(target)
    status, out = sh(sandbox, ws, "cat .zerog/hidden.txt")
    assert status is Status.ERROR
    assert "outside" not in out


@pytest.mark.skipif(os.geteuid() != 0, reason="root's sandbox needs idmapped mounts")
def test_root_refuses_a_workspace_without_idmapped_mounts(tmp_path: Path) -> None:
    """ramfs supports no idmapped mount: as root, a command there is refused with the
    reason and what to do, never run as root or with a workspace it cannot write."""
    ws = tmp_path / "ramfs"
    ws.mkdir()
    subprocess.run(["mount", "-t", "ramfs", "-o", "mode=755", "none", str(ws)], check=True)
    try:
        for reuse in (True, False):
            with BwrapSandbox(ENV, reuse=reuse) as sandbox:
                obs = sandbox.run(ShellAction(command="echo ran"), ws, Limits())
            assert obs.status is Status.EXCEPTION
            assert obs.stdout == ""
            assert "idmapped" in obs.stderr
            assert "run zerog as an unprivileged user" in obs.stderr
    finally:
        subprocess.run(["umount", str(ws)], check=True)


def test_normal_work_runs_under_the_filter(sandbox: BwrapSandbox, ws: Path) -> None:
    """The seccomp filter leaves ordinary work alone: threads, processes, files with
    ordinary modes (the sticky bit too), sockets within the sandbox."""
    script = (
        "import os, socket, subprocess, threading\n"
        "t = threading.Thread(target=print, args=('thread',)); t.start(); t.join()\n"
        "print(subprocess.run(['sh', '-c', 'echo child'], capture_output=True, text=True)"
        ".stdout.strip())\n"
        "fd = os.open('f', os.O_CREAT | os.O_WRONLY, 0o755); os.close(fd)\n"
        "os.chmod('f', 0o1777); os.mkdir('d', 0o755)\n"
        "a, b = socket.socketpair(); a.send(b'sock'); print(b.recv(4).decode())\n"
        "print(oct(os.stat('f').st_mode & 0o7777))\n"
    )
    obs = sandbox.run(ShellAction(command=f"python3 -c {shlex.quote(script)}"), ws, Limits())
    assert obs.stdout == "thread\nchild\nsock\n0o1777\n", obs.stderr
    _, out = sh(sandbox, ws, "grep Seccomp: /proc/self/status; id -u")
    assert out == "Seccomp:\t2\n65534\n"
