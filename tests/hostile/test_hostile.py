"""Each hostile payload against every backend that claims to stop it: the host stays as it
was (files, home, environment, network listeners, processes), and what comes back is
bounded, sanitized text with the status the limit calls for."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from hostile.conftest import SECRET, Host, parent_environ
from hostile.payloads import PAYLOADS, Payload
from zerog.redact import sandbox_env
from zerog.sandbox.base import MIB, Limits, Sandbox
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.wasm import default_data_dir
from zerog.types import Observation, ShellAction, Status, WriteFileAction

BASE_LIMITS = {
    "timeout": 2.0,
    "cpu_seconds": 1.0,
    "memory_bytes": 256 * MIB,
    "max_processes": 64,
    "max_file_bytes": 8 * MIB,
    "max_disk_bytes": 32 * MIB,
    "max_output_bytes": 4096,
    "kill_output_bytes": 1 * MIB,
}
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
CASES = [
    pytest.param(payload, backend, id=f"{payload.name}-{backend}")
    for payload in PAYLOADS
    for backend in ("bwrap", "wasm", "local")
    if backend in payload.stops
]


def shadow_line() -> str:
    try:
        return Path("/etc/shadow").read_text().splitlines()[0]
    except (OSError, IndexError):
        return "\0no shadow\0"


@pytest.fixture(scope="session")
def wasm_data_dir() -> Path:
    """Where `make setup` installed CPython for WASI (read before HOME is replaced)."""
    return default_data_dir(os.environ)


@pytest.fixture
def sandbox_for(host: Host, wasm_data_dir: Path) -> Callable[[str], Sandbox]:
    """Build a backend the way the engine does: the standard sandbox environment."""
    env = sandbox_env(os.environ, [], home=str(host.ws))
    return lambda name: make_sandbox(name, env, environ=os.environ, data_dir=wasm_data_dir)


def run(payload: Payload, backend: str, host: Host, sandbox: Sandbox) -> Observation:
    limits = Limits(**{**BASE_LIMITS, **payload.limits})
    if payload.write is not None:
        path, content = payload.write
        action: ShellAction | WriteFileAction = WriteFileAction(
            path=host.fill(path), content=content
        )
    else:
        action = ShellAction(command=host.fill(payload.command(backend)))
    return sandbox.run(action, host.ws, limits)


@pytest.mark.parametrize(("payload", "backend"), CASES)
def test_payload_leaves_the_host_untouched(
    payload: Payload, backend: str, host: Host, sandbox_for: Callable[[str], Sandbox]
) -> None:
    before = host.state()
    zerog_state = (host.ws / ".zerog" / "state.txt").read_bytes()
    home_before = sorted(str(p) for p in host.home.rglob("*"))

    observation = run(payload, backend, host, sandbox_for(backend))

    # The host: files beside the workspace, the home directory, zerog's own state.
    assert host.state() == before, "a file outside the workspace changed"
    assert sorted(str(p) for p in host.home.rglob("*")) == home_before
    assert (host.ws / ".zerog" / "state.txt").read_bytes() == zerog_state
    assert (host.outside / "canary.txt").read_text() == "untouched\n"
    assert host.setid_files() == [], "a set-user-ID or set-group-ID file was left behind"
    assert not (Path("/etc") / "pwned").exists()
    assert not (Path("/usr") / "pwned").exists()
    # The network: nothing reached the listeners the test opened on the host.
    assert host.contacted() == []
    # Secrets: nothing of the parent's environment, the home directory or /etc/shadow.
    text = observation.stdout + observation.stderr
    assert SECRET not in text
    leaked = [entry for entry in parent_environ() if entry in text]
    assert not leaked, "the parent's environment reached the sandbox"
    assert shadow_line() not in text
    assert "injected" not in observation.stdout
    assert "escaped" not in observation.stdout
    # What comes back is bounded, decoded, sanitized text.
    limits = Limits(**{**BASE_LIMITS, **payload.limits})
    for stream in (observation.stdout, observation.stderr):
        assert len(stream.encode()) <= 2 * limits.max_output_bytes + 1024
        assert "\x1b" not in stream
        assert not CONTROL.search(stream)
    if payload.expect is not None:
        assert observation.status in payload.expect, (observation.status, observation.stderr)
    if payload.write is not None:
        assert observation.status is Status.ERROR
        assert not (host.outside / "pwned.txt").exists()
    assert os.getppid() > 1  # the test process and its parent are alive


def test_there_are_at_least_forty_payloads() -> None:
    assert len(PAYLOADS) >= 40
    assert len({p.name for p in PAYLOADS}) == len(PAYLOADS)
    for payload in PAYLOADS:
        assert payload.stops, payload.name
        if payload.stops != frozenset({"bwrap", "wasm", "local"}):
            assert payload.note, f"{payload.name}: say why a backend does not stop it"


def test_docs_table_matches_the_suite() -> None:
    """docs/sandboxes.md shows, payload by payload, the same claims the suite tests."""
    docs = Path(__file__).resolve().parents[2] / "docs" / "sandboxes.md"
    rows = {}
    for line in docs.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) >= 5 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2:5]
    for payload in PAYLOADS:
        assert payload.name in rows, f"{payload.name} missing from docs/sandboxes.md"
        marks = ["yes" if b in payload.stops else "no" for b in ("bwrap", "wasm", "local")]
        assert [c.strip("*") for c in rows[payload.name]] == marks, payload.name


# Controls: the same detectors see the escapes the local backend documents it does not stop
# (only payloads that are safe to let through on this machine).
Detector = Callable[[Host, Observation], bool]
ESCAPES_ON_LOCAL: dict[str, Detector] = {
    "write-parent": lambda h, o: "pwned.txt" in h.state(),
    "read-home-canary": lambda h, o: SECRET in o.stdout,
    "tcp-loopback": lambda h, o: h.contacted() == ["tcp"],
    "proc-parent-environ": lambda h, o: any(e in o.stdout for e in parent_environ()),
    "symlink-escape": lambda h, o: (h.outside / "pwned.txt").exists(),
    "keyring-read": lambda h, o: SECRET in o.stdout,
    "set-id-files": lambda h, o: h.setid_files() != [],
    "denied-system-calls": lambda h, o: "escaped keyctl" in o.stdout,
    "proc-kernel-files": lambda h, o: "escaped: readable /proc/keys" in o.stdout,
}


@pytest.mark.parametrize("name", sorted(ESCAPES_ON_LOCAL))
def test_detectors_see_what_local_lets_through(
    name: str, host: Host, sandbox_for: Callable[[str], Sandbox]
) -> None:
    payload = next(p for p in PAYLOADS if p.name == name)
    assert "local" not in payload.stops
    observation = run(payload, "local", host, sandbox_for("local"))
    assert ESCAPES_ON_LOCAL[name](host, observation), observation
