"""The init process of a reused bubblewrap sandbox: it runs *inside* the namespaces.

bubblewrap costs about 9 ms to build a set of namespaces, a bare ``sh -c`` about 1 ms.
So that a command does not pay the first, one sandbox is built per workspace and run, and
this small program (run by the sandbox's own ``/usr/bin/python3 -I -S``, as pid 1) starts
each command in it: zerog sends the command, its environment and rlimits, and the two
pipe ends for its stdout and stderr (and, when the command has input, the read end of a
pipe holding it) over a unix socket; this process forks, the child starts a new session,
takes the pipes, the input or /dev/null as stdin, the rlimits and its default
signal dispositions, and executes ``/bin/sh -c``; the exit status goes back on the
socket. No process of one command lives into the next one: where zerog has cgroups for
the sandbox, it kills everything else in them once the command ends; where it has none
(an unprivileged user without a delegated cgroup), the request asks this init to
*sweep*: once the command's main process has exited, and before its exit status is
reported, the init sends SIGKILL to every other process of its pid namespace
(``kill(-1)`` from pid 1 reaches all of them, whatever their session or process group,
stopped or not, and never pid 1 itself), reaps them, and repeats until it has no child
left and the sandbox's own /proc lists no process but pid 1. Every process of the
namespace descends from the init (orphans are re-parented to it), so no child left means
none is left at all. A fork racing the kill cannot outrun it for long: RLIMIT_NPROC
bounds how many there can be, and each round kills them all. The sweep is bounded in
time; when it cannot finish (a process stuck in the kernel), the report says so and zerog
retires the sandbox.

This process is not dumpable (no ptrace, no /proc/1/mem for the commands, which run with
the same uid), and as pid 1 of its namespace it ignores signals the commands send it; it
also ignores the signals of a terminal (SIGINT and the like), which the host could send
it, so only zerog decides when it ends.
It exits when zerog's end of the socket closes (zerog closed the sandbox, exited or died),
even while a command runs; as pid 1, its exit ends every process in the namespace.

zerog never imports this module; it reads its source and hands it to the sandbox.
"""

from __future__ import annotations

import json
import os
import resource
import select
import signal
import socket
import sys
import time

PR_SET_DUMPABLE = 4
# Signals a terminal sends. The init ignores them (only zerog decides when it ends); each
# command gets the default dispositions back.
TERMINAL_SIGNALS = (
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGTSTP,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


def _dumpable(on: bool) -> None:
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_DUMPABLE, int(on), 0, 0, 0)
    except (ImportError, OSError, AttributeError):  # pragma: no cover - best effort
        pass


def _child(request: dict[str, object], fds: list[int]) -> None:
    """In the forked child: become the command. Never returns."""
    try:
        os.setsid()
        out, err = fds[0], fds[1]
        os.dup2(fds[2] if len(fds) == 3 else os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        for sig in (signal.SIGPIPE, signal.SIGXFSZ, signal.SIGTERM, *TERMINAL_SIGNALS):
            signal.signal(sig, signal.SIG_DFL)
        limits, env = request["rlimits"], request["env"]
        if not isinstance(limits, list) or not isinstance(env, dict):
            raise TypeError("malformed request")
        for which, soft, hard in limits:
            resource.setrlimit(which, (soft, hard))
        # zerog protects this init from the OOM killer, not the commands. Undumpable like
        # the init, this process's /proc files belong to host root: dumpable again, they
        # are its own (execve makes it dumpable anyway).
        _dumpable(True)
        try:
            with open("/proc/self/oom_score_adj", "w") as handle:
                handle.write("0")
        except OSError:  # not protected (zerog is not root): nothing to undo
            pass
        os.closerange(3, 65536)
        os.chdir(str(request["cwd"]))
        os.execve("/bin/sh", ["sh", "-c", str(request["command"])], env)  # noqa: S606
    except BaseException as exc:  # report, then exit like a shell would
        os.write(2, f"zerog sandbox: cannot start the command: {exc}\n".encode())
    os._exit(127)


def serve(sock: socket.socket) -> None:
    while True:
        message, fds, _, _ = socket.recv_fds(sock, 1 << 20, 3)
        if not message:
            return
        _reap_all()  # processes of earlier commands that zerog killed (cgroups)
        request = json.loads(message)
        if len(fds) not in (2, 3):
            for fd in fds:
                os.close(fd)
            sock.sendall(b"E expected two or three descriptors\n")
            continue
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in fds:
                os.close(fd)
            sock.sendall(f"E fork failed: {exc}\n".encode())
            continue
        if pid == 0:
            sock.close()
            _child(request, fds)
        for fd in fds:
            os.close(fd)
        _await_exit(pid, sock)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        seconds = request.get("sweep", 0)
        if isinstance(seconds, (int, float)) and seconds > 0 and not sweep(seconds):
            sock.sendall(f"{code} stuck\n".encode())
        else:
            sock.sendall(f"{code}\n".encode())


def sweep(seconds: float) -> bool:
    """Kill every process of this pid namespace but this one (pid 1) and reap them all;
    whether none is left within ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        _kill_all()
        if _reap_all() and _alone():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.0005)


def _kill_all() -> None:
    """SIGKILL to every process of this pid namespace but pid 1, this one (whatever its
    session, process group or state)."""
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:  # ESRCH: nobody was left to signal
        return  # (EPERM cannot be, one uid runs it all; what it left, the sweep reports)


def _reap_all() -> bool:
    """Reap every child that has exited; whether no child is left at all."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return True
        if pid == 0:
            return False


def _alone() -> bool:
    """Whether the sandbox's own /proc shows no process but pid 1."""
    return all(name == "1" or not name.isdigit() for name in os.listdir("/proc"))


def _await_exit(pid: int, sock: socket.socket) -> None:
    """Wait for the command to exit, or for zerog to go away: then exit at once, and the
    kernel kills everything in the namespace with its pid 1."""
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):  # pragma: no cover - Linux < 5.3: wait blindly
        return
    try:
        while True:
            ready, _, _ = select.select([sock.fileno(), pidfd], [], [])
            if sock.fileno() in ready and not sock.recv(1, socket.MSG_PEEK):
                os._exit(0)
            if pidfd in ready:
                return
    finally:
        os.close(pidfd)


def main(argv: list[str]) -> int:
    _dumpable(False)
    for sig in TERMINAL_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    serve(socket.socket(fileno=int(argv[1])))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
