"""Tests for zerog.sandbox.process: real processes, process groups, bounded output."""

from __future__ import annotations

import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.sandbox.process import BoundedBuffer, run_process
from zerog.types import Observation, Status

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C"}
MARKER = re.compile(r"\n\[\.\.\. (\d+) bytes elided \.\.\.\]\n")


def sh(
    command: str,
    cwd: Path,
    *,
    timeout: float = 10.0,
    max_output_bytes: int = 64 * 1024,
    kill_output_bytes: int = 32 * 1024 * 1024,
    env: dict[str, str] | None = None,
) -> Observation:
    return run_process(
        ["/bin/sh", "-c", command],
        cwd=cwd,
        env=ENV if env is None else env,
        timeout=timeout,
        max_output_bytes=max_output_bytes,
        kill_output_bytes=kill_output_bytes,
    )


def alive(pid: int) -> bool:
    """True if ``pid`` runs (a zombie waiting for a reaper counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def dead_soon(pid: int, within: float = 3.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return not alive(pid)


def read_pid(path: Path) -> int:
    deadline = time.monotonic() + 3.0
    while time.monotonic() < deadline:
        text = path.read_text() if path.exists() else ""
        if text.strip():
            return int(text)
        time.sleep(0.02)
    raise AssertionError(f"no pid written to {path}")


@pytest.fixture
def reap() -> Iterator[list[int]]:
    """Pids a test expects to be dead; any survivor is killed so the suite never leaks."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        if alive(pid):
            os.kill(pid, 9)


# ---------------------------------------------------------------- ordinary runs


def test_success_captures_stdout_stderr_and_exit_code(tmp_path: Path) -> None:
    obs = sh("echo out; echo err >&2", tmp_path)
    assert obs.status is Status.SUCCESS
    assert obs.ok
    assert obs.exit_code == 0
    assert obs.stdout == "out\n"
    assert obs.stderr == "err\n"
    assert not obs.truncated
    assert 0 < obs.duration < 5


def test_non_zero_exit_is_an_error_with_the_exit_code(tmp_path: Path) -> None:
    obs = sh("echo failing >&2; exit 3", tmp_path)
    assert obs.status is Status.ERROR
    assert not obs.ok
    assert obs.exit_code == 3
    assert obs.stderr == "failing\n"


def test_death_by_signal_is_reported(tmp_path: Path) -> None:
    obs = sh("kill -TERM $$", tmp_path)
    assert obs.status is Status.ERROR
    assert obs.exit_code == -15
    assert "killed by signal 15" in obs.stderr


def test_runs_in_cwd_with_exactly_the_given_env(tmp_path: Path) -> None:
    os.environ["ZEROG_TEST_CANARY"] = "leaked"
    try:
        obs = sh(
            'pwd; echo "canary=${ZEROG_TEST_CANARY:-absent} mine=$MINE"',
            tmp_path,
            env={"PATH": ENV["PATH"], "MINE": "given"},
        )
    finally:
        del os.environ["ZEROG_TEST_CANARY"]
    assert obs.stdout == f"{tmp_path.resolve()}\ncanary=absent mine=given\n"


def test_runs_in_its_own_process_group(tmp_path: Path) -> None:
    code = (
        "import os; print(os.getpgid(0) == os.getpid(), os.getpgid(0) != os.getpgid(os.getppid()))"
    )
    obs = run_process(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=ENV,
        timeout=10,
        max_output_bytes=1024,
        kill_output_bytes=4096,
    )
    assert obs.status is Status.SUCCESS, obs.stderr
    assert obs.stdout == "True True\n"


def test_stdin_is_dev_null(tmp_path: Path) -> None:
    started = time.monotonic()
    obs = sh("cat; readlink /proc/self/fd/0", tmp_path, timeout=5)
    assert time.monotonic() - started < 3
    assert obs.status is Status.SUCCESS
    assert obs.stdout == "/dev/null\n"


# ---------------------------------------------------------------- deadlines and groups


def test_timeout_kills_the_whole_process_group(tmp_path: Path, reap: list[int]) -> None:
    pid_file = tmp_path / "child.pid"
    started = time.monotonic()
    obs = sh(f"sleep 30 & echo $! > {pid_file}; sleep 30", tmp_path, timeout=0.5)
    elapsed = time.monotonic() - started
    child = read_pid(pid_file)
    reap.append(child)
    assert obs.status is Status.TIMEOUT
    assert obs.exit_code is None
    assert 0.4 < obs.duration < 5
    assert elapsed < 5
    assert obs.stderr == "[zerog: killed after 0.5 s timeout]"
    assert dead_soon(child)


def test_timeout_keeps_output_written_before_the_kill(tmp_path: Path) -> None:
    obs = sh("echo started; echo warn >&2; sleep 30", tmp_path, timeout=0.5)
    assert obs.status is Status.TIMEOUT
    assert obs.stdout == "started\n"
    assert obs.stderr == "warn\n\n[zerog: killed after 0.5 s timeout]"


def test_closed_pipes_do_not_escape_the_timeout(tmp_path: Path, reap: list[int]) -> None:
    pid_file = tmp_path / "main.pid"
    started = time.monotonic()
    obs = sh(f"echo $$ > {pid_file}; exec >&- 2>&-; sleep 30", tmp_path, timeout=0.5)
    elapsed = time.monotonic() - started
    main = read_pid(pid_file)
    reap.append(main)
    assert obs.status is Status.TIMEOUT
    assert obs.exit_code is None
    assert elapsed < 5
    assert dead_soon(main)


def test_background_child_is_killed_when_the_command_exits(tmp_path: Path, reap: list[int]) -> None:
    pid_file = tmp_path / "bg.pid"
    obs = sh(f"sleep 30 >/dev/null 2>&1 & echo $! > {pid_file}; echo done", tmp_path)
    child = read_pid(pid_file)
    reap.append(child)
    assert obs.status is Status.SUCCESS
    assert obs.stdout == "done\n"
    assert dead_soon(child)


def test_background_child_holding_the_pipes_does_not_hold_the_result(
    tmp_path: Path, reap: list[int]
) -> None:
    pid_file = tmp_path / "bg.pid"
    started = time.monotonic()
    obs = sh(f"sleep 30 & echo $! > {pid_file}; echo done; exit 4", tmp_path, timeout=20)
    elapsed = time.monotonic() - started
    child = read_pid(pid_file)
    reap.append(child)
    assert obs.status is Status.ERROR
    assert obs.exit_code == 4
    assert obs.stdout == "done\n"
    assert elapsed < 5
    assert dead_soon(child)


def test_injected_clock_drives_the_deadline(tmp_path: Path) -> None:
    ticks = iter(range(0, 10_000, 100))

    def clock() -> float:
        return float(next(ticks))

    started = time.monotonic()
    obs = run_process(
        ["/bin/sh", "-c", "sleep 30"],
        cwd=tmp_path,
        env=ENV,
        timeout=50,
        max_output_bytes=1024,
        kill_output_bytes=4096,
        clock=clock,
    )
    assert obs.status is Status.TIMEOUT
    assert time.monotonic() - started < 5
    assert obs.duration >= 100


# ---------------------------------------------------------------- output bounds


def test_stdout_flood_is_bounded_keeping_head_and_tail(tmp_path: Path) -> None:
    size = 1_000_000
    code = (
        "import sys; w = sys.stdout.write; w('HEAD-'); "
        f"[w('x' * 1000) for _ in range({size // 1000})]; w('-TAIL')"
    )
    obs = run_process(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=ENV,
        timeout=20,
        max_output_bytes=4096,
        kill_output_bytes=32 * 1024 * 1024,
    )
    assert obs.status is Status.SUCCESS, obs.stderr
    assert obs.truncated
    assert obs.stdout.startswith("HEAD-xxx")
    assert obs.stdout.endswith("xxx-TAIL")
    match = MARKER.search(obs.stdout)
    assert match is not None
    total = size + len("HEAD-") + len("-TAIL")
    assert int(match.group(1)) == total - 4096
    assert len(obs.stdout) == 4096 + len(match.group(0))
    assert obs.stderr == ""


def test_stderr_flood_is_bounded_too(tmp_path: Path) -> None:
    obs = sh("head -c 200000 /dev/zero | tr '\\0' e >&2; echo fine", tmp_path, max_output_bytes=512)
    assert obs.status is Status.SUCCESS
    assert obs.truncated
    assert obs.stdout == "fine\n"
    assert MARKER.search(obs.stderr) is not None
    assert 512 <= len(obs.stderr) < 512 + 64


def test_output_at_the_limit_is_not_truncated(tmp_path: Path) -> None:
    obs = sh("head -c 1024 /dev/zero | tr '\\0' a", tmp_path, max_output_bytes=1024)
    assert obs.status is Status.SUCCESS
    assert not obs.truncated
    assert obs.stdout == "a" * 1024


def test_kill_output_bytes_stops_an_endless_writer(tmp_path: Path) -> None:
    started = time.monotonic()
    obs = sh("yes", tmp_path, timeout=10, max_output_bytes=2048, kill_output_bytes=200_000)
    elapsed = time.monotonic() - started
    assert obs.status is Status.OUTPUT_LIMIT
    assert obs.exit_code is None
    assert obs.truncated
    assert elapsed < 5
    assert "[zerog: killed after writing more than 200000 bytes]" in obs.stderr
    assert obs.stdout.startswith("y\ny\n")
    match = MARKER.search(obs.stdout)
    assert match is not None
    assert set(obs.stdout[: match.start()] + obs.stdout[match.end() :]) == {"y", "\n"}
    assert int(match.group(1)) >= 200_000 - 2048
    assert len(obs.stdout) <= 2048 + len(match.group(0))


def test_kill_output_bytes_counts_both_streams(tmp_path: Path) -> None:
    obs = sh("while :; do echo o; echo e >&2; done", tmp_path, timeout=10, kill_output_bytes=50_000)
    assert obs.status is Status.OUTPUT_LIMIT
    assert "o\n" in obs.stdout
    assert "e\n" in obs.stderr


# ---------------------------------------------------------------- hostile output


def test_invalid_utf8_and_escapes_are_sanitized(tmp_path: Path) -> None:
    command = (
        r"printf '\033[31mred\033[0m \377\376 \033]52;c;cm0gLXJmIH4K\007end\r\n'; "
        r"printf '\033]0;title\033\\err\342\200\256x\n' >&2"
    )
    obs = sh(command, tmp_path)
    assert obs.status is Status.SUCCESS
    assert obs.stdout == "red \ufffd\ufffd end\n"
    assert obs.stderr == "errx\n"


# ---------------------------------------------------------------- cannot start


def test_missing_executable_is_an_exception_observation(tmp_path: Path) -> None:
    obs = run_process(
        [str(tmp_path / "no-such-program")],
        cwd=tmp_path,
        env=ENV,
        timeout=5,
        max_output_bytes=1024,
        kill_output_bytes=4096,
    )
    assert obs.status is Status.EXCEPTION
    assert obs.exit_code is None
    assert "could not start the command" in obs.stderr
    assert "no-such-program" in obs.stderr


def test_nul_byte_in_argv_is_an_exception_observation(tmp_path: Path) -> None:
    obs = sh("echo a\x00b", tmp_path)
    assert obs.status is Status.EXCEPTION
    assert obs.exit_code is None
    assert "could not start the command" in obs.stderr
    assert "\x00" not in obs.stderr


def test_missing_cwd_is_an_exception_observation(tmp_path: Path) -> None:
    obs = sh("true", tmp_path / "missing")
    assert obs.status is Status.EXCEPTION
    assert "could not start the command" in obs.stderr


def test_non_executable_file_is_an_exception_observation(tmp_path: Path) -> None:
    script = tmp_path / "script"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    obs = run_process(
        [str(script)],
        cwd=tmp_path,
        env=ENV,
        timeout=5,
        max_output_bytes=1024,
        kill_output_bytes=4096,
    )
    # Root may execute a 0644 file only if some x bit is set; none is.
    assert obs.status is Status.EXCEPTION
    assert "could not start the command" in obs.stderr


# ---------------------------------------------------------------- BoundedBuffer


def test_bounded_buffer_keeps_everything_under_the_limit() -> None:
    buf = BoundedBuffer(10)
    buf.add(b"abc")
    buf.add(b"defg")
    assert buf.total == 7
    assert not buf.truncated
    assert buf.text() == "abcdefg"


def test_bounded_buffer_exactly_at_the_limit_is_not_truncated() -> None:
    buf = BoundedBuffer(10)
    buf.add(b"0123456789")
    assert not buf.truncated
    assert buf.text() == "0123456789"


def test_bounded_buffer_keeps_head_and_tail_across_chunks() -> None:
    buf = BoundedBuffer(10)
    for chunk in (b"01", b"234567", b"89ab", b"cdefghij", b"KLM"):
        buf.add(chunk)
    assert buf.total == 23
    assert bytes(buf.head) == b"01234"
    assert bytes(buf.tail) == b"hijKLM"[-5:]
    assert buf.truncated
    assert buf.text() == "01234\n[... 13 bytes elided ...]\nijKLM"


def test_bounded_buffer_odd_limit_splits_head_and_tail() -> None:
    buf = BoundedBuffer(7)
    buf.add(b"abcdefghijklmnop")
    assert bytes(buf.head) == b"abc"
    assert bytes(buf.tail) == b"mnop"
    assert buf.text() == "abc\n[... 9 bytes elided ...]\nmnop"


def test_bounded_buffer_text_is_sanitized() -> None:
    buf = BoundedBuffer(100)
    buf.add(b"\x1b[1mbold\x1b[0m\xff\x00")
    assert buf.text() == "bold\ufffd"


@pytest.mark.slow
def test_interrupt_while_running_kills_the_group_and_propagates(
    tmp_path: Path, reap: list[int]
) -> None:
    pid_file = tmp_path / "child.pid"

    def clock() -> float:
        if pid_file.exists() and pid_file.read_text().strip():
            raise KeyboardInterrupt
        return time.monotonic()

    with pytest.raises(KeyboardInterrupt):
        run_process(
            ["/bin/sh", "-c", f"sleep 30 & echo $! > {pid_file}; sleep 30"],
            cwd=tmp_path,
            env=ENV,
            timeout=10,
            max_output_bytes=1024,
            kill_output_bytes=4096,
            clock=clock,
        )
    child = read_pid(pid_file)
    reap.append(child)
    assert dead_soon(child)
