"""Choosing a sandbox backend by name: ``bwrap``, ``wasm`` or ``local``."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from zerog.errors import ConfigError
from zerog.sandbox.base import Sandbox
from zerog.sandbox.launch import Bind

SANDBOXES = ("bwrap", "wasm", "local")


def default_sandbox_name(platform: str = sys.platform) -> str:
    """``bwrap`` on Linux; elsewhere ``wasm``. ``local`` (no isolation) is never a default."""
    return "bwrap" if platform.startswith("linux") else "wasm"


def make_sandbox(
    name: str,
    env: Mapping[str, str],
    *,
    environ: Mapping[str, str],
    network: bool = False,
    data_dir: Path | None = None,
    binds: Sequence[Bind] = (),
) -> Sandbox:
    """Build the backend called ``name``. ``env`` is what commands see (see
    :func:`zerog.redact.sandbox_env`); ``environ`` is zerog's own environment, used to
    find bwrap and the WASM data directory. A missing tool raises
    :class:`~zerog.sandbox.base.SandboxUnavailable` with how to install it: never a
    silent fallback to a weaker backend. ``binds``: what bwrap also shows every command
    (see :mod:`zerog.toolchain`); the other backends take none."""
    if name == "bwrap":
        from zerog.sandbox.bwrap import BwrapSandbox, find_bwrap

        return BwrapSandbox(
            env, network=network, executable=find_bwrap(environ.get("PATH")), binds=binds
        )
    if binds and name != "bwrap":
        raise ConfigError(f"the {name} sandbox cannot bind host paths; choose --sandbox bwrap")
    if name == "wasm":
        if network:
            raise ConfigError("the wasm sandbox has no network; choose --sandbox bwrap")
        from zerog.sandbox.wasm import WasmSandbox, default_data_dir

        return WasmSandbox(env, data_dir=data_dir or default_data_dir(environ))
    if name == "local":
        from zerog.sandbox.local import LocalSandbox

        return LocalSandbox(env)
    raise ConfigError(f"unknown sandbox {name!r}: choose one of {', '.join(SANDBOXES)}")
