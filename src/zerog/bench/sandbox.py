"""`zerog bench sandbox`: what each backend costs to start, and what snapshots cost.

Startup: p50/p95 wall time of a trivial command (`true`) on every available backend,
against bare ``subprocess.run(["/bin/sh", "-c", "true"])`` measured in the same run. For
bwrap: the default (one sandbox reused per workspace, its init starts each command), one
bubblewrap per command, and the same profile run by bare ``subprocess.run``, to separate
bubblewrap's own cost from zerog's (cgroups, rlimits, the handshake). For WASM,
`python3 -c 'print(1)'` through the sandbox, and a warm instance (module already loaded,
fresh instance, in this process, no fork) running `python -c 'print(1)'`; then the
sidecar's pre-initialized interpreter component (:mod:`zerog.sandbox.wasm_component`):
`print(1)` in a fresh instance in a forked child, the way a check runs, and in a fresh
instance in this process.

Snapshots: a workspace of ``files`` files and ``megabytes`` MB in all; the first snapshot
(copies every object), a second one with nothing changed, restoring after a small change,
restoring after everything was deleted, against ``shutil.copytree`` of the same tree.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from zerog.sandbox.wasm_component import Component

from zerog.sandbox.base import Limits, Sandbox, SandboxUnavailable
from zerog.sandbox.wasm import WasmSandbox, default_data_dir
from zerog.sandbox.workspace import Workspace
from zerog.types import ShellAction

ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LC_ALL": "C.UTF-8"}


@dataclass(frozen=True)
class Timing:
    name: str
    samples: list[float]  # seconds

    @property
    def p50_ms(self) -> float:
        return statistics.median(self.samples) * 1000

    @property
    def p95_ms(self) -> float:
        ordered = sorted(self.samples)
        return ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))] * 1000


@dataclass
class SandboxReport:
    runs: int
    files: int
    megabytes: int
    startup: list[Timing] = field(default_factory=list)
    snapshot: list[Timing] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)

    def _baseline(self, timings: list[Timing]) -> float:
        return timings[0].p50_ms if timings else 0.0

    def as_dict(self) -> dict[str, object]:
        def rows(timings: list[Timing]) -> list[dict[str, object]]:
            base = self._baseline(timings)
            return [
                {
                    "name": t.name,
                    "p50_ms": round(t.p50_ms, 2),
                    "p95_ms": round(t.p95_ms, 2),
                    "over_baseline_ms": round(t.p50_ms - base, 2),
                    "ratio": round(t.p50_ms / base, 2) if base else None,
                }
                for t in timings
            ]

        return {
            "runs": self.runs,
            "files": self.files,
            "megabytes": self.megabytes,
            "startup": rows(self.startup),
            "snapshot": rows(self.snapshot),
            "skipped": self.skipped,
        }

    def tables(self) -> list[Table]:
        out = []
        for title, timings in (
            (f"startup of a trivial command ({self.runs} runs)", self.startup),
            (f"workspace of {self.files} files / {self.megabytes} MB", self.snapshot),
        ):
            table = Table(title=title)
            for column in ("measure", "p50 ms", "p95 ms", "+ms vs first", "ratio"):
                table.add_column(column, justify="left" if column == "measure" else "right")
            base = self._baseline(timings)
            for t in timings:
                table.add_row(
                    t.name,
                    f"{t.p50_ms:.2f}",
                    f"{t.p95_ms:.2f}",
                    f"{t.p50_ms - base:+.2f}",
                    f"{t.p50_ms / base:.2f}x" if base else "-",
                )
            out.append(table)
        if self.skipped:
            table = Table(title="skipped")
            table.add_column("backend")
            table.add_column("why")
            for name, why in self.skipped.items():
                table.add_row(name, why)
            out.append(table)
        return out


def _time(runs: int, fn: Callable[[], object], warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return samples


def _sandbox_run(sandbox: Sandbox, root: Path, command: str) -> Callable[[], object]:
    action = ShellAction(command=command)
    limits = Limits(timeout=30)

    def go() -> object:
        observation = sandbox.run(action, root, limits)
        if not observation.ok:
            raise RuntimeError(f"{sandbox.name}: {command} failed: {observation.stderr[-300:]}")
        return observation

    return go


def _startup(report: SandboxReport, root: Path, data_dir: Path | None, runs: int) -> None:
    def bare() -> object:
        return subprocess.run(["/bin/sh", "-c", "true"], cwd=root, env=ENV, check=True)

    report.startup.append(Timing("bare subprocess.run(sh -c true)", _time(runs, bare)))
    from zerog.sandbox.local import LocalSandbox

    local = LocalSandbox(ENV)
    report.startup.append(
        Timing("local sandbox: true", _time(runs, _sandbox_run(local, root, "true")))
    )
    try:
        from zerog.sandbox.bwrap import BwrapSandbox

        with BwrapSandbox(ENV) as bwrap, BwrapSandbox(ENV, reuse=False) as once:
            argv = [*once._argv(root, Limits(), None), "/bin/sh", "-c", "true"]

            def bare_bwrap() -> object:
                return subprocess.run(argv, env={}, check=True, stdin=subprocess.DEVNULL)

            report.startup.append(
                Timing("bare subprocess.run(bwrap profile, true)", _time(runs, bare_bwrap))
            )
            report.startup.append(
                Timing(
                    "bwrap sandbox, one bwrap per command: true",
                    _time(runs, _sandbox_run(once, root, "true")),
                )
            )
            report.startup.append(
                Timing(
                    "bwrap sandbox (default, reused): true",
                    _time(runs, _sandbox_run(bwrap, root, "true")),
                )
            )
    except SandboxUnavailable as exc:
        report.skipped["bwrap"] = str(exc)
    try:
        wasm = WasmSandbox(ENV, data_dir=data_dir or default_data_dir(os.environ))
        report.startup.append(
            Timing("wasm sandbox: true", _time(runs, _sandbox_run(wasm, root, "true")))
        )
        print1 = _sandbox_run(wasm, root, "python3 -c 'print(1)'")
        report.startup.append(Timing("wasm sandbox: python3 -c 'print(1)'", _time(runs, print1)))
    except SandboxUnavailable as exc:
        report.skipped["wasm"] = str(exc)
        return
    try:
        from zerog.sandbox import wasm_component

        component = wasm_component.load(data_dir or default_data_dir(os.environ))
        report.startup.append(
            Timing(
                "wasm sidecar component, forked child: print(1)",
                _time(runs, _component_run(wasm, component, root)),
            )
        )
    except SandboxUnavailable as exc:
        component = None
        report.skipped["wasm sidecar component"] = str(exc)
    # In this process, last: wasmtime's runtime then lives here, and it must not fork after.
    report.startup.append(
        Timing("warm wasm instance: python -c 'print(1)'", _warm_wasm(wasm, root, runs))
    )
    if component is not None:
        report.startup.append(
            Timing("warm component instance: print(1)", _warm_component(component, root, runs))
        )


def _component_run(sandbox: WasmSandbox, component: Component, root: Path) -> Callable[[], object]:
    """print(1) in a fresh instance of the sidecar component, the way a check runs: in a
    forked child under the sandbox's limits, output through its pipes."""
    from zerog.sandbox.wasm_component import run_component

    limits = Limits(timeout=30)
    env = sandbox.variables(root, None)

    def go() -> object:
        observation = sandbox.run_guest(
            lambda: run_component(component, ["print(1)"], root, env, limits.memory_bytes),
            root,
            limits,
        )
        if not observation.ok or observation.stdout != "1\n":
            raise RuntimeError(f"component print(1) failed: {observation.stderr[-300:]}")
        return observation

    return go


def _warm_component(component: Component, root: Path, runs: int) -> list[float]:
    """A fresh instance of the loaded component per run, in this process, no fork."""
    from zerog.sandbox.wasm_component import run_component

    out, err = root / ".bench-out", root / ".bench-err"

    def go() -> object:
        code = run_component(component, ["print(1)"], root, {}, None, stdio=(out, err))
        if code != 0 or out.read_text() != "1\n":
            raise RuntimeError(f"warm component print(1) failed: {err.read_text()[-300:]}")
        return code

    return _time(runs, go)


def _warm_wasm(sandbox: object, root: Path, runs: int) -> list[float]:
    """A fresh instance of the loaded module per run, in this process (so run it last:
    wasmtime's runtime then lives in this process, which must not fork afterwards)."""
    from zerog.sandbox.wasm import WasmSandbox, _run_guest

    if not isinstance(sandbox, WasmSandbox):  # pragma: no cover - typed narrowing
        raise TypeError("not a wasm sandbox")
    out, err = root / ".bench-out", root / ".bench-err"

    def go() -> object:
        code = _run_guest(
            sandbox._engine,
            sandbox._module,
            ["python", "-I", "-S", "-c", "print(1)"],
            [(root, str(root), True)],
            {},
            stdio=(out, err),
        )
        if code != 0 or out.read_text() != "1\n":
            raise RuntimeError(f"warm wasm print(1) failed: {err.read_text()[-300:]}")
        return code

    return _time(runs, go)


def _make_tree(root: Path, files: int, megabytes: int) -> None:
    size = megabytes * 1024 * 1024 // files
    for i in range(files):
        path = root / f"d{i % 20:02d}" / f"f{i:04d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(size))


def _snapshots(report: SandboxReport, tmp: Path, runs: int) -> None:
    source = tmp / "tree"
    _make_tree(source, report.files, report.megabytes)
    copies = tmp / "copies"
    counter = iter(range(10**6))

    def copytree() -> object:
        return shutil.copytree(source, copies / str(next(counter)))

    report.snapshot.append(Timing("bare shutil.copytree", _time(max(runs // 10, 3), copytree, 1)))
    shutil.rmtree(copies)
    cold: list[float] = []
    warm: list[float] = []
    small: list[float] = []
    full: list[float] = []
    hashing: list[float] = []
    for i in range(max(runs // 10, 3)):
        state = tmp / f"state{i}"
        space = Workspace(source, state)
        started = time.perf_counter()
        snap = space.snapshot()
        cold.append(time.perf_counter() - started)
        started = time.perf_counter()
        space.snapshot()
        warm.append(time.perf_counter() - started)
        started = time.perf_counter()
        space.state_hash()
        hashing.append(time.perf_counter() - started)
        for j in range(10):
            (source / "d00" / f"f{j * 20:04d}.bin").write_bytes(b"changed")
        (source / "new.txt").write_text("new")
        started = time.perf_counter()
        space.restore(snap)
        small.append(time.perf_counter() - started)
        for child in source.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()
        started = time.perf_counter()
        space.restore(snap)
        full.append(time.perf_counter() - started)
        shutil.rmtree(state)
    report.snapshot += [
        Timing("snapshot, first (copies every file)", cold),
        Timing("snapshot, nothing changed", warm),
        Timing("state hash, nothing changed", hashing),
        Timing("restore after changing 10 files, adding 1", small),
        Timing("restore after deleting everything", full),
    ]


def measure(
    runs: int = 50,
    files: int = 1000,
    megabytes: int = 50,
    data_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
) -> SandboxReport:
    say = progress or (lambda _: None)
    report = SandboxReport(runs=runs, files=files, megabytes=megabytes)
    with tempfile.TemporaryDirectory(prefix="zerog-bench-sandbox-") as tmp:
        root = Path(tmp)
        say("snapshots ...")
        _snapshots(report, root / "snap", runs)
        say("startup ...")
        work = root / "ws"
        work.mkdir()
        _startup(report, work, data_dir, runs)
    return report
