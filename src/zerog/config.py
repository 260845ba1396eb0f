"""The user's config file: API keys, price overrides, transport and local-model settings.

A TOML file, by default ``$XDG_CONFIG_HOME/zerog/config.toml`` (``~/.config/zerog/...``),
or the path in ``$ZEROG_CONFIG``. Every section is optional::

    [keys]                      # used when the environment variable is not set
    openai = "sk-..."           # else $OPENAI_API_KEY
    anthropic = "sk-ant-..."    # else $ANTHROPIC_API_KEY
    openai_compatible = "..."   # else $ZEROG_OPENAI_COMPATIBLE_API_KEY (never OpenAI's key)

    [prices."openai:gpt-4.1-mini"]   # USD per million tokens
    input = 0.40
    output = 1.60
    cached_input = 0.10

    [http]
    timeout = 120               # seconds per request
    max_retries = 4             # on 429, 5xx and connection errors

    [local]
    model_dir = "~/models/zerog"     # else $ZEROG_MODEL_DIR, else the user cache dir
    n_ctx = 8192
    n_threads = 2

    [cascades]                  # --model cascade:NAME: the first answers, the next ones
    api = ["openai:gpt-4.1-mini", "openai:gpt-4.1"]    # take over when it fails

A file that holds keys must not be readable by other users. Keys are kept as secrets: they
never appear in a repr, a log, a trace or an error message.
"""

from __future__ import annotations

import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, SecretStr, ValidationError

from zerog.errors import ConfigError
from zerog.models.pricing import Price
from zerog.types import Frozen

CONFIG_ENV = "ZEROG_CONFIG"
MAX_CONFIG_BYTES = 1 << 20


class Keys(Frozen):
    openai: SecretStr | None = None
    anthropic: SecretStr | None = None
    openai_compatible: SecretStr | None = None


class HttpSettings(Frozen):
    timeout: float = Field(default=120.0, gt=0)
    max_retries: int = Field(default=4, ge=0, le=20)


class LocalSettings(Frozen):
    model_dir: Path | None = None
    n_ctx: int = Field(default=8192, ge=512, le=131_072)
    n_threads: int = Field(default=2, ge=1, le=512)


def _cascade_name(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", name):
        raise ValueError(f"a cascade name takes 1-64 letters, digits, '.', '-' or '_': {name!r}")
    return name


CascadeName = Annotated[str, AfterValidator(_cascade_name)]
CascadeSpecs = Annotated[list[str], Field(min_length=2, max_length=8)]


class Config(Frozen):
    keys: Keys = Keys()
    prices: dict[str, Price] = Field(default_factory=dict)
    http: HttpSettings = HttpSettings()
    local: LocalSettings = LocalSettings()
    # Named model cascades: spec lists, cheapest first (see zerog.models.spec).
    cascades: dict[CascadeName, CascadeSpecs] = Field(default_factory=dict)
    source: Path | None = None


def default_config_path(environ: Mapping[str, str]) -> Path:
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV]).expanduser()
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "zerog" / "config.toml"


def _check_private(path: Path, config: Config) -> None:
    keys = config.keys
    if keys.openai is None and keys.anthropic is None and keys.openai_compatible is None:
        return
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(
            f"{path} holds API keys but other users may read it; run: chmod 600 {path}"
        )


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read the config file. A missing default file is an empty config; a missing file the
    user named (argument or $ZEROG_CONFIG) is an error."""
    env: Mapping[str, str] = {} if environ is None else environ
    named = path is not None or bool(env.get(CONFIG_ENV))
    where = path if path is not None else default_config_path(env)
    try:
        if where.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {where} is larger than {MAX_CONFIG_BYTES} bytes")
        raw = where.read_bytes()
    except FileNotFoundError:
        if named:
            raise ConfigError(f"config file {where} does not exist") from None
        return Config()
    except OSError as exc:
        raise ConfigError(f"cannot read config file {where}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"config file {where} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        # The message names a line and column, never the offending value (it may be a key).
        raise ConfigError(f"config file {where} is not valid TOML: {exc}") from None
    try:
        config = Config.model_validate({**data, "source": where})
    except ValidationError as exc:
        first = exc.errors(include_input=False)[0]
        field = ".".join(str(p) for p in first["loc"])
        raise ConfigError(f"config file {where}: {field}: {first['msg']}") from None
    _check_private(where, config)
    return config
