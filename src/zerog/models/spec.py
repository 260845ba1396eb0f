"""Model spec strings to backends.

=====================================  ===================================================
``local``                              the embedded Qwen2.5-Coder-0.5B-Instruct (default),
                                       escalating to the 1.5B when that is installed
``local:0.5b``                         the 0.5B alone, never escalating
``local:1.5b`` (or ``local-1.5b``)     its 1.5B sibling (``pip install 'zerog[local-1-5b]'``)
``local:/path/model.gguf``             any GGUF file (relative paths: from ``base_dir``)
``openai:MODEL``                       OpenAI; key from $OPENAI_API_KEY or the config file
``openai-compatible:URL#MODEL``        vLLM, Ollama, llama.cpp server, LM Studio...
``anthropic:MODEL``                    Anthropic; key from $ANTHROPIC_API_KEY or the config
``scripted:FILE``                      replays a JSONL script (offline runs, demos, tests)
``cascade:NAME``                       the models of ``[cascades] NAME = [...]`` in the
                                       config file, the first answering first
=====================================  ===================================================

A spec can stand for several models, cheapest first (:func:`model_chain`): ``local`` is the
0.5B and then the 1.5B when the 1.5B's weights are installed (else the 0.5B alone), and
``cascade:NAME`` the list the config names. The first answers; the others take over, in
order, when it fails (:class:`~zerog.models.cascade.Escalating`, built by the run's
strategy). :func:`load_model` builds one model, so it takes the single specs only.

Heavy client libraries are imported only when their backend is built.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from zerog.config import Config, default_config_path, load_config
from zerog.errors import ConfigError
from zerog.models.base import Model
from zerog.models.pricing import FREE, Price, find_price
from zerog.models.retry import RetryPolicy
from zerog.models.scripted import ScriptedModel
from zerog.models.weights import (
    DEFAULT_WEIGHTS,
    WEIGHTS,
    PartLocator,
    available,
    default_model_dir,
    ensure_weights,
    installed_part,
)

COMPATIBLE_KEY_ENV = "ZEROG_OPENAI_COMPATIBLE_API_KEY"
EXPECTED = (
    "expected local, local:1.5b, local:/path/model.gguf, openai:MODEL, "
    "openai-compatible:URL#MODEL, anthropic:MODEL, scripted:FILE or cascade:NAME"
)
STRONGER_LOCAL = "1.5b"  # what ``local`` escalates to when it is installed


class _Parts:
    """What building a backend needs besides the spec: passed in, never read globally."""

    def __init__(
        self,
        base_dir: Path,
        config: Config | None,
        environ: Mapping[str, str],
        on_progress: Callable[[str], None] | None,
        sleep: Callable[[float], None],
        jitter: Callable[[], float],
    ) -> None:
        self.base_dir = base_dir
        self._config = config
        self.environ = environ
        self.on_progress = on_progress
        self.sleep = sleep
        self.jitter = jitter

    @property
    def config(self) -> Config:
        if self._config is None:
            self._config = load_config(None, self.environ)
        return self._config

    def config_name(self) -> str:
        source = self.config.source or default_config_path(self.environ)
        return str(source)

    def key(self, env_name: str, configured: str | None, field: str) -> tuple[str | None, str]:
        """The API key, and a phrase telling where it comes from (never the key itself)."""
        source = f"${env_name} or keys.{field} in {self.config_name()}"
        return self.environ.get(env_name) or configured, source

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_retries=self.config.http.max_retries)

    def price(self, key: str, default: Price | None) -> Price:
        found = find_price(key, self.config.prices)
        if found is not None:
            return found
        if default is not None:
            return default
        raise ConfigError(
            f"no price is known for '{key}', so a cost budget could not be enforced; add it "
            f'to {self.config_name()}: [prices."{key}"] input = ..., output = ... '
            "(USD per million tokens)"
        )


def _local(rest: str, parts: _Parts) -> Model:
    from zerog.models.llamacpp import LlamaCppModel

    settings = parts.config.local
    key = rest.lower() or DEFAULT_WEIGHTS
    if key in WEIGHTS:
        spec = WEIGHTS[key]
        directory = default_model_dir(parts.environ, settings.model_dir)
        path = ensure_weights(spec, directory, on_progress=parts.on_progress)
        name = "local" if key == DEFAULT_WEIGHTS else f"local:{key}"
    elif rest.endswith(".gguf") or "/" in rest:
        given = Path(rest).expanduser()
        path = given if given.is_absolute() else parts.base_dir / given
        name = f"local:{path.name}"
    else:
        known = ", ".join(f"local:{k}" for k in WEIGHTS)
        raise ConfigError(f"unknown local model '{rest}': expected {known} or local:PATH.gguf")
    return LlamaCppModel(
        path, name=name, n_ctx=settings.n_ctx, n_threads=settings.n_threads, seed=0
    )


def _openai(model: str, parts: _Parts) -> Model:
    from zerog.models.openai import OPENAI_URL, OpenAIModel

    if not model:
        raise ConfigError("model spec 'openai:' needs a model name, e.g. openai:gpt-4.1-mini")
    configured = parts.config.keys.openai
    api_key, source = parts.key(
        "OPENAI_API_KEY", configured.get_secret_value() if configured else None, "openai"
    )
    if not api_key:
        raise ConfigError(f"no OpenAI API key: set {source}")
    return OpenAIModel(
        model,
        api_key=api_key,
        base_url=parts.environ.get("OPENAI_BASE_URL") or OPENAI_URL,
        price=parts.price(f"openai:{model}", None),
        timeout=parts.config.http.timeout,
        retry=parts.retry(),
        key_source=source,
        sleep=parts.sleep,
        jitter=parts.jitter,
    )


def _compatible(rest: str, parts: _Parts) -> Model:
    from zerog.models.openai import OpenAIModel

    url, _, model = rest.partition("#")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(
            "model spec 'openai-compatible:' needs the server's base URL, e.g. "
            "openai-compatible:http://127.0.0.1:8080/v1#my-model"
        )
    model = model or "default"
    configured = parts.config.keys.openai_compatible
    api_key, source = parts.key(
        COMPATIBLE_KEY_ENV,
        configured.get_secret_value() if configured else None,
        "openai_compatible",
    )
    return OpenAIModel(
        model,
        api_key=api_key,
        base_url=url,
        name=f"openai-compatible:{model}",
        compatible=True,
        price=parts.price(f"openai-compatible:{model}", FREE),
        timeout=parts.config.http.timeout,
        retry=parts.retry(),
        key_source=source,
        sleep=parts.sleep,
        jitter=parts.jitter,
    )


def _anthropic(model: str, parts: _Parts) -> Model:
    from zerog.models.anthropic import ANTHROPIC_URL, AnthropicModel

    if not model:
        raise ConfigError(
            "model spec 'anthropic:' needs a model name, e.g. anthropic:claude-sonnet-4-5"
        )
    configured = parts.config.keys.anthropic
    api_key, source = parts.key(
        "ANTHROPIC_API_KEY", configured.get_secret_value() if configured else None, "anthropic"
    )
    if not api_key:
        raise ConfigError(f"no Anthropic API key: set {source}")
    return AnthropicModel(
        model,
        api_key=api_key,
        base_url=parts.environ.get("ANTHROPIC_BASE_URL") or ANTHROPIC_URL,
        price=parts.price(f"anthropic:{model}", None),
        timeout=parts.config.http.timeout,
        retry=parts.retry(),
        key_source=source,
        sleep=parts.sleep,
        jitter=parts.jitter,
    )


def model_chain(
    spec: str,
    *,
    config: Config | None = None,
    environ: Mapping[str, str] | None = None,
    locate: PartLocator = installed_part,
) -> tuple[str, ...]:
    """The single model specs ``spec`` stands for, first to strongest (see the module's
    doc). ``config`` defaults to the user's config file, read only when needed."""
    kind, _, rest = spec.partition(":")
    env = os.environ if environ is None else environ
    if kind == "local" and not rest:
        settings = (config or load_config(None, env)).local
        stronger = WEIGHTS[STRONGER_LOCAL]
        if available(stronger, default_model_dir(env, settings.model_dir), locate):
            return (f"local:{DEFAULT_WEIGHTS}", f"local:{STRONGER_LOCAL}")
        return (spec,)
    if kind != "cascade":
        return (spec,)
    loaded = config or load_config(None, env)
    chain = loaded.cascades.get(rest)
    where = loaded.source or default_config_path(env)
    if chain is None:
        raise ConfigError(
            f"no cascade named '{rest}': add it to {where}, e.g. [cascades] {rest or 'api'} = "
            '["openai:gpt-4.1-mini", "openai:gpt-4.1"]'
        )
    nested = [s for s in chain if s.partition(":")[0] == "cascade"]
    if nested:
        raise ConfigError(f"cascade '{rest}' in {where} names another cascade: {nested[0]}")
    return tuple(chain)


def with_cascade(
    spec: str,
    escalate: Sequence[str],
    *,
    config: Config | None = None,
    environ: Mapping[str, str] | None = None,
    locate: PartLocator = installed_part,
) -> tuple[str, tuple[str, ...]]:
    """The model that answers first and the ones to escalate to, in order: the models
    ``spec`` stands for, then the explicit ``escalate`` ones."""
    chain = model_chain(spec, config=config, environ=environ, locate=locate)
    return chain[0], (*chain[1:], *escalate)


def load_model(
    spec: str,
    base_dir: Path,
    *,
    config: Config | None = None,
    environ: Mapping[str, str] | None = None,
    on_progress: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    jitter: Callable[[], float] = random.random,
) -> Model:
    """Build the backend a spec names. Relative paths resolve against ``base_dir``.

    ``config`` defaults to the user's config file (read only for backends that need it),
    ``environ`` to the process environment; ``on_progress`` hears about slow first-use
    work (assembling local weights).
    """
    kind, _, rest = spec.partition(":")
    parts = _Parts(
        base_dir, config, os.environ if environ is None else environ, on_progress, sleep, jitter
    )
    if kind == "scripted":
        if not rest:
            raise ConfigError("model spec 'scripted:' needs a file: scripted:path/to/script.jsonl")
        path = Path(rest).expanduser()
        return ScriptedModel.from_file(path if path.is_absolute() else base_dir / path)
    if kind == "local":
        return _local(rest, parts)
    if kind.startswith("local-") and not rest:
        return _local(kind.removeprefix("local-"), parts)
    if kind == "openai":
        return _openai(rest, parts)
    if kind == "openai-compatible":
        return _compatible(rest, parts)
    if kind == "anthropic":
        return _anthropic(rest, parts)
    if kind == "cascade":
        raise ConfigError(
            f"'{spec}' names several models; give it as the run's model (zerog run --model) "
            "or name one of its models here"
        )
    raise ConfigError(f"unknown model spec '{spec}': {EXPECTED}")
