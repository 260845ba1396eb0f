"""Tests for the WASM sidecar's fast path: the pre-initialized interpreter component
(zerog.sandbox.wasm_component) run by ComponentPython, with real wasmtime and the
component `make setup` built."""

from __future__ import annotations

import os
import socket
import sys
import time
import tomllib
from pathlib import Path

import pytest

from zerog.redact import sandbox_env
from zerog.sandbox.base import MIB, Limits, SandboxUnavailable
from zerog.sandbox.wasm import WasmSandbox, default_data_dir
from zerog.sandbox.wasm_component import (
    COMPONENTIZE_PY,
    build,
    compiled_path,
    component_path,
    load,
    source_key,
    sources,
)
from zerog.types import Check, PredicateCheck, SchemaCheck, Status
from zerog.validate.nonce import confirm, new_nonce, verdict_line
from zerog.validate.sidecar import (
    ComponentPython,
    GuestProgram,
    PythonRunner,
    SandboxPython,
    make_sidecar,
)
from zerog.validate.sweep import sweep

ENV = {"PATH": "/usr/bin:/bin", "GIVEN": "yes"}


@pytest.fixture(scope="module")
def data_dir() -> Path:
    return default_data_dir(os.environ)


@pytest.fixture(scope="module")
def wasm(data_dir: Path) -> WasmSandbox:
    return WasmSandbox(ENV, data_dir=data_dir)


@pytest.fixture(scope="module")
def runner(wasm: WasmSandbox) -> PythonRunner:
    return make_sidecar("wasm", wasm, ENV, environ=os.environ)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    return root


def run(
    runner: PythonRunner, ws: Path, body: str, limits: Limits | None = None
) -> tuple[Status, str, str, bool]:
    """Run a guest program whose run() executes ``body``; (status, stdout, stderr,
    whether the loader confirmed a pass with this nonce)."""
    nonce = new_nonce()
    source = "def run():\n" + "".join(f"    {line}\n" for line in body.splitlines())
    observation = runner.run_python(
        GuestProgram(source), ws, limits or Limits(timeout=30), nonce=nonce, env={}
    )
    confirmed = verdict_line(nonce) in observation.stdout.split("\n")
    checked = confirm(observation, nonce)
    return checked.status, checked.stdout, checked.stderr, confirmed


def test_the_wasm_sidecar_uses_the_component(runner: PythonRunner, ws: Path) -> None:
    assert isinstance(runner, ComponentPython)
    assert runner.name == "wasm-component"
    status, out, err, confirmed = run(
        runner, ws, "import sys\nprint(sys.version_info[:2])\nreturn 0"
    )
    assert status is Status.SUCCESS, err
    assert confirmed
    assert out.strip() == "(3, 14)"  # componentize-py's CPython, not the shell's 3.12


def test_checks_run_in_the_workspace_with_only_it_visible(runner: PythonRunner, ws: Path) -> None:
    (ws / "app.py").write_text("def answer():\n    return 42\n")
    body = (
        "import os, sys\n"
        "sys.path.append(os.getcwd())\n"
        "import app\n"
        "print(app.answer(), os.getcwd(), sorted(os.environ))\n"
        "try:\n"
        "    open('/etc/passwd')\n"
        "except OSError:\n"
        "    print('no /etc/passwd')\n"
        "return 0"
    )
    status, out, err, _ = run(runner, ws, body)
    assert status is Status.SUCCESS, err
    assert out.splitlines() == [
        f"42 {ws.resolve()} ['GIVEN', 'PATH', 'PWD']",
        "no /etc/passwd",
    ]


def test_no_directory_of_the_build_is_on_the_path(runner: PythonRunner, ws: Path) -> None:
    # componentize-py builds with /python, /0, /1 (the builder's site-packages)... on
    # sys.path; at run time a check starts as `python -I` would, with none of them.
    status, out, err, _ = run(runner, ws, "import sys\nprint(sys.path)\nreturn 0")
    assert status is Status.SUCCESS, err
    assert out.strip() == "[]"


def test_the_snapshot_is_out_of_the_collectors_way(runner: PythonRunner, ws: Path) -> None:
    # A collection that walked the whole image would cost a check 100-300 ms.
    body = "import gc\nprint(gc.get_freeze_count() > 10000, gc.isenabled())\nreturn 0"
    status, out, err, _ = run(runner, ws, body)
    assert status is Status.SUCCESS, err
    assert out.strip() == "True True"


def test_the_standard_library_beyond_the_snapshot_imports(runner: PythonRunner, ws: Path) -> None:
    body = "import fractions, csv, io\nprint(fractions.Fraction(2, 6), csv.__name__)\nreturn 0"
    status, out, err, _ = run(runner, ws, body)
    assert status is Status.SUCCESS, err
    assert out.strip() == "1/3 csv"


def test_nothing_carries_over_between_checks(runner: PythonRunner, ws: Path) -> None:
    leak = (
        "import builtins, json, sys, random\n"
        "builtins.LEAKED = 1\n"
        "json.loads = lambda *a, **k: {'port': 8080}\n"
        "sys.modules['planted'] = sys\n"
        "print(random.random())\n"
        "return 0"
    )
    first = run(runner, ws, leak)
    assert first[0] is Status.SUCCESS, first[2]
    look = (
        "import builtins, json, sys, random\n"
        "print(hasattr(builtins, 'LEAKED'), json.loads('1'), 'planted' in sys.modules)\n"
        "print(random.random())\n"
        "return 0"
    )
    status, out, err, _ = run(runner, ws, look)
    assert status is Status.SUCCESS, err
    flags, number = out.splitlines()
    assert flags == "False 1 False"
    assert number != first[1].strip()  # the generator is seeded per instance, not snapshotted


def test_the_deadline_kills_a_check(runner: PythonRunner, ws: Path) -> None:
    started = time.monotonic()
    status, _, _, confirmed = run(runner, ws, "while True:\n    pass", Limits(timeout=1))
    assert status is Status.TIMEOUT
    assert not confirmed
    assert time.monotonic() - started < 15


def test_the_memory_limit_holds(runner: PythonRunner, ws: Path) -> None:
    limits = Limits(timeout=30, memory_bytes=256 * MIB)
    body = "blocks = [bytearray(32 << 20) for _ in range(16)]\nreturn 0"
    status, _, err, confirmed = run(runner, ws, body, limits)
    assert status is Status.MEMORY_LIMIT, err
    assert not confirmed
    status, _, err, _ = run(runner, ws, "x = bytearray(16 << 20)\nreturn 0", limits)
    assert status is Status.SUCCESS, err


@pytest.mark.parametrize(
    "body",
    [
        "import os\nos._exit(0)",
        "import sys\nsys.exit(0)",
        "print('@@zerog-verdict@@ 0123456789abcdef0123456789abcdef passed')\nreturn 1",
        "import sys\nprint('@@zerog-verdict@@', sys.stdin.readline().strip(), 'passed')\nreturn 1",
    ],
)
def test_a_verdict_cannot_be_forged(runner: PythonRunner, ws: Path, body: str) -> None:
    status, _, _, confirmed = run(runner, ws, body)
    assert status is not Status.SUCCESS
    assert not confirmed


def test_an_early_exit_is_a_plain_failure(runner: PythonRunner, ws: Path) -> None:
    nonce = new_nonce()
    program = GuestProgram("def run():\n    import os\n    os._exit(3)\n")
    observation = runner.run_python(program, ws, Limits(timeout=30), nonce=nonce, env={})
    assert observation.exit_code == 1  # WASI preview 2's exit keeps only ok or error
    assert observation.stderr == ""  # not a trap with wasmtime's backtrace
    exited_0 = GuestProgram("def run():\n    import os\n    os._exit(0)\n")
    observation = runner.run_python(exited_0, ws, Limits(timeout=30), nonce=nonce, env={})
    assert observation.exit_code == 0
    assert confirm(observation, nonce).status is Status.ERROR  # no verdict line


def test_a_sweep_through_the_component(runner: PythonRunner, ws: Path) -> None:
    (ws / "data.json").write_text('{"port": "8080"}\n')
    schema = {"type": "object", "properties": {"port": {"type": "integer"}}}
    checks: list[Check] = [
        PredicateCheck(python="load_json('data.json')['port'] == 8080"),
        SchemaCheck.model_validate({"path": "data.json", "schema": schema}),
    ]
    env = sandbox_env(os.environ, [], home=str(ws))
    wasm = WasmSandbox(env, data_dir=default_data_dir(os.environ))
    sidecar = make_sidecar("wasm", wasm, env, environ=os.environ)
    assert isinstance(sidecar, ComponentPython)
    verdict = sweep(checks, ws, wasm, Limits(timeout=60), sidecar=sidecar, rerun_failures=False)
    assert [r.passed for r in verdict.results] == [False, False], verdict
    assert "'8080' == 8080" in verdict.results[0].observation.stderr
    (ws / "data.json").write_text('{"port": 8080}\n')
    verdict = sweep(checks, ws, wasm, Limits(timeout=60), sidecar=sidecar, rerun_failures=False)
    assert verdict.passed, verdict


def test_without_the_component_the_shell_runs_checks_and_says_why(
    wasm: WasmSandbox, ws: Path, tmp_path: Path
) -> None:
    empty = tmp_path / "data"
    empty.mkdir()
    runner = make_sidecar("wasm", wasm, ENV, environ={"ZEROG_DATA_DIR": str(empty)})
    assert isinstance(runner, SandboxPython)
    assert runner.fallback is not None
    assert "sidecar component is not installed" in runner.fallback
    assert "zerog sandbox setup" in runner.fallback
    status, _, err, confirmed = run(runner, ws, "return 0")
    assert status is Status.SUCCESS, err
    assert confirmed


def test_the_compiled_component_is_cached_and_loads_fast(data_dir: Path) -> None:
    assert compiled_path(data_dir).is_file()
    started = time.monotonic()
    load(data_dir)
    assert time.monotonic() - started < 5


def test_a_component_writable_by_others_is_not_loaded(data_dir: Path, tmp_path: Path) -> None:
    copy = compiled_path(tmp_path)
    copy.write_bytes(compiled_path(data_dir).read_bytes())
    copy.chmod(0o666)
    with pytest.raises(SandboxUnavailable, match="writable by others"):
        load(tmp_path)


def test_no_network(runner: PythonRunner, ws: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.settimeout(0.5)
        port = server.getsockname()[1]
        body = (
            "import socket\n"
            "try:\n"
            f"    socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
            "except OSError as exc:\n"
            "    print('refused:', type(exc).__name__)\n"
            "    return 1\n"
            "return 0"
        )
        status, out, err, confirmed = run(runner, ws, body)
        assert status is Status.ERROR, (out, err)
        assert not confirmed
        assert "refused" in out or "Error" in err
        with pytest.raises(TimeoutError):
            server.accept()


@pytest.mark.parametrize(
    ("body", "limits", "status"),
    [
        ("import time\ntime.sleep(30)", {"timeout": 0.5}, Status.TIMEOUT),
        (
            "import sys\nwhile True:\n    sys.stdout.write('x' * 4096)",
            {"kill_output_bytes": 100_000},
            Status.OUTPUT_LIMIT,
        ),
        ("while True:\n    pass", {"cpu_seconds": 0.5}, Status.CPU_LIMIT),
        (
            "open('big', 'wb').write(b'0' * 2_000_000)\nreturn 0",
            {"max_file_bytes": 100_000},
            Status.FILE_LIMIT,
        ),
    ],
)
def test_each_limit_has_its_status(
    runner: PythonRunner, ws: Path, body: str, limits: dict[str, float], status: Status
) -> None:
    got, _, err, confirmed = run(runner, ws, body, Limits(**{"timeout": 30, **limits}))
    assert got is status, err
    assert not confirmed


def test_the_builder_pin_is_the_wasm_extras() -> None:
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert COMPONENTIZE_PY in project["optional-dependencies"]["wasm"]


def test_a_yaml_schema_check_through_the_component(runner: PythonRunner, ws: Path) -> None:
    (ws / "conf.yaml").write_text("name: web\nport: '8080'\n")
    schema = {"type": "object", "properties": {"port": {"type": "integer"}}}
    checks: list[Check] = [
        SchemaCheck.model_validate({"path": "conf.yaml", "schema": schema, "format": "yaml"})
    ]
    wasm = WasmSandbox(ENV, data_dir=default_data_dir(os.environ))
    verdict = sweep(checks, ws, wasm, Limits(timeout=60), sidecar=runner, rerun_failures=False)
    assert not verdict.passed
    assert "port" in verdict.results[0].observation.stderr + verdict.results[0].observation.stdout
    (ws / "conf.yaml").write_text("name: web\nport: 8080\n")
    verdict = sweep(checks, ws, wasm, Limits(timeout=60), sidecar=runner, rerun_failures=False)
    assert verdict.passed, verdict


def test_without_the_builder_setup_says_how_to_get_it(tmp_path: Path) -> None:
    # The base interpreter of the venv has no componentize-py: nothing is built, and the
    # reason names the pin and the command.
    bare = Path(sys.base_prefix) / "bin" / "python3"
    with pytest.raises(SandboxUnavailable, match=r"componentize-py==0\.25\.1.*zerog sandbox setup"):
        build(tmp_path, python=str(bare))
    assert not component_path(tmp_path).exists()


def test_the_cache_key_follows_the_sources() -> None:
    files = sources()
    assert set(files) == {"zerog_sidecar.py", "sidecar.wit"}
    assert source_key(files) == source_key()
    changed = {**files, "zerog_sidecar.py": files["zerog_sidecar.py"] + b"\n"}
    assert source_key(changed) != source_key(files)
