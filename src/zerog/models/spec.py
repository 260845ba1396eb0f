"""Model spec strings (``scripted:FILE``, ``local``, ``openai:MODEL``...) to backends."""

from __future__ import annotations

from pathlib import Path

from zerog.errors import ConfigError
from zerog.models.base import Model
from zerog.models.scripted import ScriptedModel

KNOWN_LATER = ("local", "openai", "openai-compatible", "anthropic")


def load_model(spec: str, base_dir: Path) -> Model:
    """Build the backend a spec names. Relative paths resolve against ``base_dir``."""
    kind, _, rest = spec.partition(":")
    if kind == "scripted":
        if not rest:
            raise ConfigError("model spec 'scripted:' needs a file: scripted:path/to/script.jsonl")
        path = Path(rest).expanduser()
        return ScriptedModel.from_file(path if path.is_absolute() else base_dir / path)
    if kind in KNOWN_LATER:
        raise ConfigError(
            f"model backend '{kind}' is not available in this build of zerog; "
            "use --model scripted:FILE"
        )
    raise ConfigError(
        f"unknown model spec '{spec}': expected scripted:FILE, local, openai:MODEL, "
        "openai-compatible:URL#MODEL or anthropic:MODEL"
    )
