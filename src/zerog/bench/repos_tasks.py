"""The tasks of `zerog bench repos`: bug-fix tasks built from pinned PyPI sdists.

A tasks file (TOML, ``benchmarks/repos/tasks.toml``) names libraries (name, exact version,
sdist file name and sha256, the test command's arguments) and tasks (one injected bug each:
search/replace patches over named files of the unpacked sdist; the goal as a bug report;
the library's own test files that judge it; a level: easy, medium or cross-file). The
builder unpacks each sdist, applies the task's patch, and VERIFIES the task: its tests pass
on the upstream tree and fail on the patched one, both run by the test venv's Python. Each
task is written as ``<out>/<id>/task.json`` and ``<out>/<id>/workspace/``; ``manifest.json``
lists every task with the sha256 of its task file and of its workspace's files, so the
same inputs give byte-identical output (nothing of the machine or the time is written).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tarfile
import tempfile
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path, PurePosixPath
from typing import Literal, cast

from zerog.errors import ConfigError

Level = Literal["easy", "medium", "cross-file"]
LEVELS: tuple[str, ...] = ("easy", "medium", "cross-file")
TEST_TIMEOUT = 300.0


@dataclass(frozen=True)
class Library:
    name: str
    version: str
    sdist: str
    sha256: str
    test_args: tuple[str, ...]
    env: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Patch:
    file: str
    search: str
    replace: str


@dataclass(frozen=True)
class TaskSpec:
    id: str
    library: str
    level: Level
    goal: str
    tests: tuple[str, ...]
    patches: tuple[Patch, ...]


@dataclass(frozen=True)
class TasksFile:
    libraries: Mapping[str, Library]
    tasks: tuple[TaskSpec, ...]
    venv_packages: tuple[str, ...]


@dataclass(frozen=True)
class BuiltTask:
    """A task as the runner reads it from ``task.json``."""

    id: str
    library: str
    version: str
    level: str
    goal: str
    tests: tuple[str, ...]
    test_args: tuple[str, ...]
    env: Mapping[str, str]
    files: tuple[str, ...]
    failing: tuple[str, ...]

    def test_argv(self, python: Path) -> list[str]:
        """The command that judges the task, run in its workspace."""
        return [str(python), *self.test_args, *self.tests]

    def check_command(self, python: Path) -> str:
        """The same command as one shell line (``NAME=value ... python -m pytest ...``)."""
        import shlex

        prefix = [f"{k}={shlex.quote(v)}" for k, v in sorted(self.env.items())]
        return " ".join([*prefix, shlex.join(self.test_argv(python))])


def _text(row: Mapping[str, object], key: str, where: str) -> str:
    value = row.get(key)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}: '{key}' must be a non-empty string")
    return value


def _texts(row: Mapping[str, object], key: str, where: str) -> tuple[str, ...]:
    value = row.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: '{key}' must be a list of strings")
    return tuple(cast(list[str], value))


def _safe_relative(path: str, where: str) -> str:
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise ConfigError(f"{where}: '{path}' must be a relative path inside the sdist")
    return str(pure)


def parse_tasks(text: str, where: str = "tasks file") -> TasksFile:
    """The libraries and tasks of a tasks file (TOML), checked."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    libraries: dict[str, Library] = {}
    for row in data.get("library", []):
        name = _text(row, "name", f"{where}: a library")
        env = row.get("env", {})
        if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
            raise ConfigError(f"{where}: library {name}: 'env' must be a table of strings")
        libraries[name] = Library(
            name=name,
            version=_text(row, "version", name),
            sdist=_safe_relative(_text(row, "sdist", name), name),
            sha256=_text(row, "sha256", name).lower(),
            test_args=_texts(row, "test_args", name) or ("-m", "pytest", "-q"),
            env=dict(env),
        )
    tasks: list[TaskSpec] = []
    seen: set[str] = set()
    for row in data.get("task", []):
        task_id = _text(row, "id", f"{where}: a task")
        if task_id in seen or not task_id.replace("-", "").isalnum():
            raise ConfigError(f"{where}: task id '{task_id}' is repeated or not [a-z0-9-]")
        seen.add(task_id)
        library = _text(row, "library", task_id)
        if library not in libraries:
            raise ConfigError(f"{where}: task {task_id} names an unknown library {library}")
        level = _text(row, "level", task_id)
        if level not in LEVELS:
            raise ConfigError(f"{where}: task {task_id}: level must be one of {LEVELS}")
        patches = tuple(
            Patch(
                file=_safe_relative(_text(p, "file", task_id), task_id),
                search=_text(p, "search", task_id),
                replace=str(p.get("replace", "")),
            )
            for p in row.get("patch", [])
        )
        if not patches:
            raise ConfigError(f"{where}: task {task_id} has no patch")
        tests = tuple(_safe_relative(t, task_id) for t in _texts(row, "tests", task_id))
        if not tests:
            raise ConfigError(f"{where}: task {task_id} names no tests")
        tasks.append(
            TaskSpec(
                id=task_id,
                library=library,
                level=cast(Level, level),
                goal=_text(row, "goal", task_id).strip(),
                tests=tests,
                patches=patches,
            )
        )
    venv = data.get("venv", {})
    return TasksFile(libraries, tuple(tasks), _texts(venv, "packages", "venv"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


Downloader = Callable[[Library, Path], None]


def pip_download(library: Library, directory: Path) -> None:
    """``pip download`` of the library's sdist (exact version, no dependencies)."""
    import sys

    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "-q",
        "--no-deps",
        "--no-binary",
        ":all:",
        "--dest",
        str(directory),
        f"{library.name}=={library.version}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
    if done.returncode != 0:
        raise ConfigError(f"pip download {library.name}: {done.stderr.strip()[-500:]}")


def fetch_sdist(library: Library, directory: Path, download: Downloader) -> Path:
    """The library's sdist in ``directory`` (downloaded when missing), sha256 checked."""
    path = directory / library.sdist
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        download(library, directory)
    if not path.is_file():
        raise ConfigError(f"{library.name}: no {library.sdist} in {directory}")
    actual = sha256_file(path)
    if actual != library.sha256:
        raise ConfigError(f"{library.sdist}: sha256 {actual}, expected {library.sha256}")
    return path


def unpack(sdist: Path, target: Path) -> None:
    """The sdist's single top directory's content into ``target`` (regular files only)."""
    with tarfile.open(sdist, "r:gz") as archive:
        members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
        tops = {PurePosixPath(m.name).parts[0] for m in members if PurePosixPath(m.name).parts}
        if len(tops) != 1:
            raise ConfigError(f"{sdist.name}: expected one top directory, found {sorted(tops)}")
        with tempfile.TemporaryDirectory() as scratch:
            archive.extractall(scratch, members=members, filter="data")
            shutil.copytree(Path(scratch) / tops.pop(), target)


def apply_patches(root: Path, patches: Sequence[Patch], task_id: str) -> None:
    """Each patch's search text, found exactly once in its file, becomes its replacement."""
    for patch in patches:
        path = root / patch.file
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"task {task_id}: cannot read {patch.file}: {exc}") from None
        found = text.count(patch.search)
        if found != 1:
            raise ConfigError(
                f"task {task_id}: the search text occurs {found} times in {patch.file}"
            )
        path.write_text(text.replace(patch.search, patch.replace), encoding="utf-8")


@dataclass(frozen=True)
class TestRun:
    returncode: int
    failing: tuple[str, ...]
    output: str


def run_tests(
    root: Path,
    python: Path,
    test_args: Sequence[str],
    env_extra: Mapping[str, str],
    tests: Sequence[str],
    timeout: float,
) -> TestRun:
    """A library's tests in ``root`` (a scratch copy), by the test venv's Python."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root),
        "PYTHONDONTWRITEBYTECODE": "1",
        **env_extra,
    }
    argv = [str(python), *test_args, "-rf", "--color=no", *tests]
    try:
        done = subprocess.run(
            argv, cwd=root, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return TestRun(-1, (), f"timed out after {timeout:.0f}s")
    output = done.stdout + done.stderr
    failing = tuple(
        sorted(
            line.split()[1]
            for line in output.splitlines()
            if line.startswith("FAILED ") and len(line.split()) > 1
        )
    )
    return TestRun(done.returncode, failing, output)


def tree_digest(root: Path) -> str:
    """sha256 over the sorted relative paths and contents of the files under ``root``."""
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(sha256_file(path).encode() + b"\n")
    return digest.hexdigest()


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


@dataclass(frozen=True)
class BuildReport:
    built: tuple[str, ...]
    rejected: Mapping[str, str]


def build_tasks(
    spec: TasksFile,
    out: Path,
    sdists: Path,
    python: Path,
    *,
    download: Downloader = pip_download,
    only: Sequence[str] = (),
    on_task: Callable[[str, str], None] = lambda task_id, verdict: None,
    timeout: float = TEST_TIMEOUT,
) -> BuildReport:
    """Build and verify the tasks of ``spec`` into ``out`` (replaced); see the module doc.

    A task whose tests fail upstream, or pass with its bug, is rejected (reported, not
    written). ``only`` limits the build to these task ids.
    """
    tasks = [t for t in spec.tasks if not only or t.id in only]
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    built: list[str] = []
    rejected: dict[str, str] = {}
    manifest: list[dict[str, object]] = []
    upstream_ok: dict[str, TestRun] = {}
    with tempfile.TemporaryDirectory(prefix="zerog-repos-build-") as scratch_dir:
        scratch = Path(scratch_dir)
        for task in tasks:
            library = spec.libraries[task.library]
            sdist = fetch_sdist(library, sdists, download)
            upstream = scratch / f"{task.id}-upstream"
            unpack(sdist, upstream)
            key = f"{library.name}:{' '.join(task.tests)}"
            if key not in upstream_ok:
                upstream_ok[key] = run_tests(
                    upstream, python, library.test_args, library.env, task.tests, timeout
                )
            before = upstream_ok[key]
            if before.returncode != 0:
                rejected[task.id] = f"its tests fail upstream: {before.output[-300:]}"
                on_task(task.id, rejected[task.id])
                continue
            buggy = scratch / f"{task.id}-buggy"
            unpack(sdist, buggy)
            apply_patches(buggy, task.patches, task.id)
            after = run_tests(buggy, python, library.test_args, library.env, task.tests, timeout)
            if after.returncode != 1 or not after.failing:
                rejected[task.id] = (
                    f"its tests do not fail cleanly with the bug (exit {after.returncode}): "
                    f"{after.output[-300:]}"
                )
                on_task(task.id, rejected[task.id])
                continue
            fresh = scratch / f"{task.id}-workspace"
            unpack(sdist, fresh)
            apply_patches(fresh, task.patches, task.id)
            target = out / task.id
            target.mkdir()
            shutil.copytree(fresh, target / "workspace")
            record = BuiltTask(
                id=task.id,
                library=library.name,
                version=library.version,
                level=task.level,
                goal=task.goal,
                tests=task.tests,
                test_args=library.test_args,
                env=dict(library.env),
                files=tuple(sorted({p.file for p in task.patches})),
                failing=after.failing,
            )
            task_json = target / "task.json"
            task_json.write_text(_dump(asdict(record)), encoding="utf-8")
            manifest.append(
                {
                    "id": task.id,
                    "level": task.level,
                    "sdist": library.sdist,
                    "sdist_sha256": library.sha256,
                    "task_sha256": sha256_file(task_json),
                    "workspace_sha256": tree_digest(target / "workspace"),
                }
            )
            built.append(task.id)
            on_task(task.id, f"ok ({len(after.failing)} failing tests with the bug)")
    (out / "manifest.json").write_text(
        _dump({"tasks": manifest, "rejected": sorted(rejected)}), encoding="utf-8"
    )
    return BuildReport(tuple(built), rejected)


def load_built(out: Path) -> list[BuiltTask]:
    """The tasks a build wrote, in the manifest's order."""
    try:
        manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
        tasks: list[BuiltTask] = []
        for row in manifest["tasks"]:
            data = json.loads((out / row["id"] / "task.json").read_text(encoding="utf-8"))
            tasks.append(
                BuiltTask(
                    id=str(data["id"]),
                    library=str(data["library"]),
                    version=str(data["version"]),
                    level=str(data["level"]),
                    goal=str(data["goal"]),
                    tests=tuple(data["tests"]),
                    test_args=tuple(data["test_args"]),
                    env=dict(data["env"]),
                    files=tuple(data["files"]),
                    failing=tuple(data["failing"]),
                )
            )
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(
            f"no built tasks in {out} ({exc}); build them: python benchmarks/repos/build.py"
        ) from None
    return tasks


def ensure_test_venv(venv: Path, packages: Sequence[str], base_python: str) -> Path:
    """A venv (from ``base_python``, outside any home directory so the bwrap sandbox can
    bind it) with the packages the tests need; its Python."""
    python = venv / "bin" / "python"
    stamp = venv / ".packages"
    wanted = "\n".join(packages) + "\n"
    if python.is_file() and stamp.is_file() and stamp.read_text(encoding="utf-8") == wanted:
        return python
    subprocess.run([base_python, "-m", "venv", "--clear", str(venv)], check=True, timeout=300)
    if packages:
        subprocess.run(
            [str(python), "-m", "pip", "install", "-q", *packages], check=True, timeout=900
        )
    stamp.write_text(wanted, encoding="utf-8")
    return python
