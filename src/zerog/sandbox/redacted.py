"""A sandbox whose observations have their secrets removed before anyone sees them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from zerog.redact import Redactor
from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Action, Observation


class RedactedSandbox:
    """Runs actions in ``sandbox`` and hands back their output through ``redactor``, so
    that a command printing a secret (``cat .env``) reaches neither the model, the store,
    a trace, the terminal nor a cache with it."""

    def __init__(self, sandbox: Sandbox, redactor: Redactor) -> None:
        self._sandbox = sandbox
        self._redactor = redactor

    @property
    def name(self) -> str:
        return self._sandbox.name

    def run(
        self,
        action: Action,
        workspace: Path,
        limits: Limits,
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> Observation:
        observed = self._sandbox.run(action, workspace, limits, stdin=stdin, env=env)
        return self._redactor.observation(observed)
