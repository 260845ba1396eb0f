"""The sidecar's pre-initialized interpreter: CPython as a WASM component, snapshotted.

The wasm sandbox starts CPython for WASI for every command, and CPython's own start-up is
most of its cost. For the validation sidecar, ``zerog sandbox setup`` builds instead a
WASM component with componentize-py, offline, from the guest module
``component/zerog_sidecar.py`` (a name no workspace module is likely to have: the
guest's own modules are in ``sys.modules`` before any check's) and the world
``component/sidecar.wit``. componentize-py runs the module's top level at build time and
keeps the interpreter's memory as the component's initial image, so an instance starts
with CPython ready and the modules the checks need already imported. The component is
compiled once and cached on disk, keyed by the hashes of its sources, the componentize-py
version and the wasmtime version, like the sandbox's ``.cwasm``; a run only deserializes
it, never builds it.

Each check still gets a fresh instance (a copy-on-write copy of that image) in a forked
child of its own (:meth:`zerog.sandbox.wasm.WasmSandbox.run_guest`): nothing carries over
from one check to the next, and every limit of the wasm sandbox holds (the deadline kills
the child, memory is the store's limit, rlimits, output bounds). The instance sees the
workspace only, through WASI preview 2; wasmtime's WASI grants no socket address and no
name lookup unless asked to, and zerog never asks, so there is no network.

wasmtime is imported lazily, so ``import zerog`` stays light.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from zerog.pinned import write_atomic
from zerog.sandbox.base import SandboxUnavailable

if TYPE_CHECKING:
    import wasmtime
    from wasmtime import component as wasm_component

SOURCE_DIR = Path(__file__).parent / "component"
COMPONENTIZE_PY = "componentize-py==0.25.1"  # the same pin as the wasm extra in pyproject.toml
WORLD = "sidecar"
APP = "zerog_sidecar"
SETUP_HINT = "run `zerog sandbox setup` (or `make setup`) to build it"
BUILD_TIMEOUT = 900.0
_CACHE_FORMAT = "1"
_EXITED = re.compile(r"Exited with i32 exit status (\d+)")


@dataclass(frozen=True)
class Component:
    """The compiled sidecar component and the engine it was loaded into."""

    engine: wasmtime.Engine
    component: wasm_component.Component


def sources() -> dict[str, bytes]:
    """What the component is built from: the guest module and the world, by file name."""
    return {name: (SOURCE_DIR / name).read_bytes() for name in (f"{APP}.py", "sidecar.wit")}


def source_key(files: Mapping[str, bytes] | None = None) -> str:
    """The hash of the sources and the builder's pin."""
    digest = hashlib.sha256(COMPONENTIZE_PY.encode())
    for name, data in sorted((files or sources()).items()):
        digest.update(name.encode() + b"\0" + hashlib.sha256(data).digest())
    return digest.hexdigest()[:16]


def component_path(data_dir: Path, key: str | None = None) -> Path:
    return data_dir / f"sidecar-{key or source_key()}.wasm"


def compiled_path(data_dir: Path, key: str | None = None) -> Path:
    from zerog.sandbox.wasm import wasmtime_version

    version = wasmtime_version()
    return data_dir / f"sidecar-{key or source_key()}-wasmtime-{version}-{_CACHE_FORMAT}.cwasm"


def engine() -> wasmtime.Engine:
    """An engine for components (the same configuration for building and loading)."""
    from zerog.sandbox.wasm import new_engine

    return new_engine()


def _componentize_py(python: str) -> list[str]:
    """The builder's command line, or SandboxUnavailable when it is not installed."""
    probe = subprocess.run(
        [python, "-c", "import componentize_py"], capture_output=True, check=False
    )
    if probe.returncode != 0:
        raise SandboxUnavailable(
            f"the sidecar component needs {COMPONENTIZE_PY} to be built: "
            "pip install 'zerog[wasm]', then run `zerog sandbox setup`"
        )
    script = Path(python).parent / "componentize-py"
    return [str(script)] if script.is_file() else [python, "-m", "componentize_py"]


def build(
    data_dir: Path, *, python: str = sys.executable, say: Callable[[str], None] | None = None
) -> Path:
    """Build the component (a minute or so) and compile it into the cache, unless both are
    there. Install time only: never called by a run."""
    from zerog.sandbox.wasm import trusted

    report = say or (lambda _: None)
    files = sources()  # read once: the key names exactly what was built
    key = source_key(files)
    target = component_path(data_dir, key)
    if not (target.is_file() and trusted(target)):
        command = _componentize_py(python)
        report("building the sidecar's pre-initialized interpreter (once; about a minute)")
        with tempfile.TemporaryDirectory(prefix="zerog-component-") as tmp:
            app = Path(tmp) / "app"
            app.mkdir()
            for name, data in files.items():
                (app / name).write_bytes(data)
            out = Path(tmp) / "sidecar.wasm"
            wit = str(app / "sidecar.wit")
            args = ["-q", "-d", wit, "-w", WORLD, "componentize", "-p", str(app), APP]
            result = subprocess.run(
                [*command, *args, "-o", str(out)],
                capture_output=True,
                text=True,
                timeout=BUILD_TIMEOUT,
                check=False,
                cwd=tmp,
            )
            if result.returncode != 0 or not out.is_file():
                raise SandboxUnavailable(
                    f"componentize-py could not build the sidecar: {result.stderr[-800:]}"
                )
            write_atomic(target, out.read_bytes())
    compiled = compiled_path(data_dir, key)
    if not (compiled.is_file() and trusted(compiled)):
        report("compiling the sidecar component for this wasmtime (once; about a minute)")
        from wasmtime import component as wasm_component

        built = wasm_component.Component.from_file(engine(), str(target))
        write_atomic(compiled, bytes(built.serialize()))
    return target


def load(data_dir: Path) -> Component:
    """The compiled component from the cache (milliseconds); SandboxUnavailable, saying
    why, when it is not there: a run never builds or compiles it."""
    from zerog.sandbox.wasm import trusted

    try:
        import wasmtime
        from wasmtime import component as wasm_component
    except ImportError as exc:
        raise SandboxUnavailable(f"the sidecar component needs wasmtime: {exc}") from exc
    cached = compiled_path(data_dir)
    if not cached.is_file():
        raise SandboxUnavailable(f"the sidecar component is not installed: {SETUP_HINT}")
    if not trusted(cached):
        raise SandboxUnavailable(f"{cached} is writable by others: not loaded")
    loaded = engine()
    try:
        return Component(loaded, wasm_component.Component.deserialize_file(loaded, str(cached)))
    except wasmtime.WasmtimeError as exc:
        raise SandboxUnavailable(f"could not load {cached}: {exc}; {SETUP_HINT}") from exc


def run_component(
    loaded: Component,
    argv: list[str],
    workspace: Path,
    env: Mapping[str, str],
    memory_bytes: int | None,
    stdio: tuple[Path, Path] | None = None,
) -> int:
    """In a forked child: one fresh instance, ``python -I -c argv[0] argv[1:]`` in the
    workspace; its exit status. Standard streams are this process's, or stdout and
    stderr go to the files ``stdio`` (the benchmark's in-process runs)."""
    import wasmtime
    from wasmtime import component as wasm_component

    from zerog.sandbox.wasm import TRAP_EXIT

    store = wasmtime.Store(loaded.engine)
    if memory_bytes is not None:
        store.set_limits(memory_size=memory_bytes)
    wasi = wasmtime.WasiConfig()
    wasi.env = list(env.items())
    wasi.preopen_dir(str(workspace), str(workspace), True)
    wasi.inherit_stdin()
    if stdio is None:
        wasi.inherit_stdout()
        wasi.inherit_stderr()
    else:
        wasi.stdout_file, wasi.stderr_file = str(stdio[0]), str(stdio[1])
    store.set_wasi(wasi)
    linker = wasm_component.Linker(loaded.engine)
    linker.add_wasip2()
    try:
        instance = linker.instantiate(store, loaded.component)
        run = instance.get_func(store, "run")
        if run is None:
            raise TypeError("the sidecar component exports no run function")
        status = run(store, argv, str(workspace), list(env.items()))
    except wasmtime.Trap as exc:
        os.write(2, f"zerog wasm sidecar: the guest trapped: {exc.message}\n".encode())
        return TRAP_EXIT
    except wasmtime.WasmtimeError as exc:
        exited = _EXITED.search(str(exc))
        if exited:  # os._exit() in the guest: WASI preview 2 keeps only ok (0) or error (1)
            return int(exited.group(1))
        os.write(2, f"zerog wasm sidecar: {exc}\n".encode())
        return TRAP_EXIT
    if not isinstance(status, int):
        raise TypeError("the sidecar component's run returned no status")
    return status
