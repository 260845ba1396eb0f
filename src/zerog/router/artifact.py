"""The compiled router file: versioned JSON with a content digest, checked before use.

    {"format": "zerog-router", "version": 1, "digest": "sha256:<hex>", "router": {...}}

The digest covers the canonical JSON of ``router`` (sorted keys, no spaces). A file whose
format, version or digest is wrong, or whose body does not validate, is refused with a
:class:`RouterFileError`; it is never partly trusted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import os
import tempfile
from array import array
from collections.abc import Mapping, Sequence
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from zerog.errors import ConfigError
from zerog.router.features import DIM, FEATURE_VERSION, fill
from zerog.types import Frozen

FORMAT = "zerog-router"
VERSION = 1
MAX_FILE_BYTES = 4 * 1024 * 1024


class RouterFileError(ConfigError):
    """A router file that cannot be used: unreadable, corrupt, or of another version."""


class RouteClass(Frozen):
    """One learned route: an action template and the evidence behind it."""

    name: str = Field(min_length=1, max_length=200)
    actions: str = Field(min_length=2, max_length=200_000)  # a template (features.template)
    support: int = Field(ge=1)  # successful steps that took these actions
    runs: int = Field(ge=1)  # distinct runs among them
    demotions: int = Field(default=0, ge=0)  # failed routed steps since compile


class Calibration(Frozen):
    """How the threshold was chosen (see docs/routing.md)."""

    target_precision: float = Field(ge=0, le=1)
    heldout_runs: int = Field(ge=0)
    heldout_steps: int = Field(ge=0)
    routed: int = Field(ge=0)  # held-out steps at or above the threshold
    correct: int = Field(ge=0)  # of those, the ones whose route was right
    note: str = ""


class RouterModel(Frozen):
    """A multinomial logistic regression over hashed features. Row 0 is 'ask the model'."""

    feature_version: int
    dim: int
    classes: tuple[RouteClass, ...]
    bias: tuple[float, ...]
    scale: float = Field(gt=0)  # a weight is its int8 value times this
    weights: dict[str, str]  # feature index (decimal) -> base64 of one int8 per row
    threshold: float = Field(ge=0, le=1.01)
    demotion_factor: float = Field(default=0.5, gt=0, lt=1)
    max_demotions: int = Field(default=3, ge=1)
    calibration: Calibration
    trained_runs: int = Field(ge=0)
    trained_steps: int = Field(ge=0)

    @model_validator(mode="after")
    def _consistent(self) -> RouterModel:
        rows = len(self.classes) + 1
        if self.feature_version != FEATURE_VERSION or self.dim != DIM:
            raise ValueError(
                f"features v{self.feature_version}/{self.dim} do not match this zerog "
                f"(v{FEATURE_VERSION}/{DIM}): compile the router again"
            )
        if len(self.bias) != rows:
            raise ValueError(f"bias has {len(self.bias)} rows, expected {rows}")
        for key, row in self.weights.items():
            if not key.isdigit() or int(key) >= self.dim or len(_bytes(row)) != rows:
                raise ValueError(f"weight row {key[:20]!r} is malformed")
        if not all(math.isfinite(b) for b in (*self.bias, self.scale)):
            raise ValueError("bias is not finite")
        if len({c.name for c in self.classes}) != len(self.classes):
            raise ValueError("route names repeat")
        for route in self.classes:
            # A template must make valid actions (with a placeholder target if it has one).
            if fill(route.actions, "placeholder.txt") is None:
                raise ValueError(f"route {route.name!r} has invalid actions")
        return self

    def table(self) -> dict[int, tuple[float, ...]]:
        """The weights decoded: feature index -> one float per row."""
        return {
            int(key): tuple(v * self.scale for v in _bytes(row))
            for key, row in self.weights.items()
        }


def _bytes(row: str) -> array[int]:
    try:
        raw = base64.b64decode(row, validate=True)
    except binascii.Error:
        raise ValueError("a weight row is not base64") from None
    return array("b", raw)


def quantize(
    bias: Sequence[float], weights: Mapping[int, Sequence[float]]
) -> tuple[tuple[float, ...], float, dict[str, str]]:
    """Bias rounded, weights as int8 rows with one shared scale: a file of a few KB."""
    largest = max((abs(w) for row in weights.values() for w in row), default=1.0)
    scale = max(largest, 1e-6) / 127
    rows = {
        str(f): base64.b64encode(
            array("b", (max(-127, min(127, round(w / scale))) for w in row)).tobytes()
        ).decode()
        for f, row in sorted(weights.items())
    }
    return tuple(round(b, 4) for b in bias), scale, rows


def _canonical(body: object) -> bytes:
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def digest_of(model: RouterModel) -> str:
    return "sha256:" + hashlib.sha256(_canonical(model.model_dump(mode="json"))).hexdigest()


def dumps(model: RouterModel) -> str:
    body = model.model_dump(mode="json")
    envelope = {"format": FORMAT, "version": VERSION, "digest": digest_of(model), "router": body}
    return json.dumps(envelope, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"


def save(model: RouterModel, path: Path) -> None:
    """Write atomically: a reader sees the old file or the new one, never half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(dumps(model))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def loads(text: str, where: str) -> RouterModel:
    try:
        envelope = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RouterFileError(f"{where} is not JSON ({exc.msg}): not a router file") from None
    if not isinstance(envelope, dict) or envelope.get("format") != FORMAT:
        raise RouterFileError(f"{where} is not a zerog router file")
    if envelope.get("version") != VERSION:
        raise RouterFileError(
            f"{where} is a router file of version {envelope.get('version')!r}; this zerog "
            f"reads version {VERSION}: compile the router again"
        )
    body = envelope.get("router")
    expected = "sha256:" + hashlib.sha256(_canonical(body)).hexdigest()
    if envelope.get("digest") != expected:
        raise RouterFileError(f"{where} fails its digest check (edited or corrupted)")
    try:
        return RouterModel.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "router"
        raise RouterFileError(f"{where} is invalid at {loc}: {first['msg']}") from None


def load(path: Path) -> RouterModel:
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise RouterFileError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RouterFileError(f"cannot read router file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise RouterFileError(f"{path} is not UTF-8 text: not a router file") from None
    return loads(text, str(path))
