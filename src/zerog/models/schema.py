"""The JSON schema a backend hands to constrained decoding, derived from a pydantic schema.

Pydantic's schemas are right for validation but awkward for decoders: a ``maxLength`` of a
million characters becomes a grammar of tens of megabytes in llama.cpp, a tag field with a
default (``"kind": "shell"``) is optional although the discriminated union needs it, and
``discriminator`` is a pydantic/OpenAPI keyword decoders reject or ignore. The decoding
schema keeps the shape and drops or fixes those. Validation still runs against the full
pydantic model in :mod:`zerog.structured`; this schema only steers generation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")
MAX_DECODED_LENGTH = 256
MAX_DECODED_ITEMS = 32
_DROPPED = frozenset({"discriminator"})


def _bounded(key: str, value: object) -> bool:
    """Whether a size bound is small enough to keep."""
    if not isinstance(value, int):
        return False
    if key == "maxLength":
        return value <= MAX_DECODED_LENGTH
    if key == "maxItems":
        return value <= MAX_DECODED_ITEMS
    return True


def _convert(value: object) -> object:
    if isinstance(value, Mapping):
        return decoding_schema(value)
    if isinstance(value, list | tuple):
        return [_convert(v) for v in value]
    return value


def decoding_schema(schema: Mapping[str, object]) -> dict[str, object]:
    """A copy of ``schema`` fit for constrained decoding (see the module docstring)."""
    out: dict[str, object] = {}
    for key, value in schema.items():
        if key in _DROPPED:
            continue
        if key in ("maxLength", "maxItems") and not _bounded(key, value):
            continue
        if key == "properties" and isinstance(value, Mapping):
            out[key] = {str(name): _convert(sub) for name, sub in value.items()}
            continue
        out[key] = _convert(value)
    properties = out.get("properties")
    if isinstance(properties, dict):
        listed = out.get("required")
        required = [r for r in listed if isinstance(r, str)] if isinstance(listed, list) else []
        tags = [
            name
            for name, sub in properties.items()
            if isinstance(sub, Mapping) and "const" in sub and name not in required
        ]
        if tags:
            # Keep the order of ``properties``: a decoder then writes the tag first.
            wanted = set(required) | set(tags)
            out["required"] = [name for name in properties if name in wanted]
    return out


class SchemaMemo(Generic[T]):
    """Remembers ``build(schema)`` by the identity of the schema: request schemas are built
    once per class (:func:`zerog.structured.schema_of`) and never changed, so a backend
    converts each one once, not on every call. Holds the schema, so its id is not reused."""

    def __init__(self, build: Callable[[Mapping[str, object]], T], limit: int = 64) -> None:
        self._build = build
        self._limit = limit
        self._memo: dict[int, tuple[Mapping[str, object], T]] = {}

    def __call__(self, schema: Mapping[str, object]) -> T:
        hit = self._memo.get(id(schema))
        if hit is not None and hit[0] is schema:
            return hit[1]
        value = self._build(schema)
        if len(self._memo) >= self._limit:
            self._memo.clear()
        self._memo[id(schema)] = (schema, value)
        return value
