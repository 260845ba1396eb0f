"""The plain subprocess backend: bounded and confined to the workspace, but not isolated.

It stops runaway time and output and keeps file actions inside the workspace. It does not
stop a shell command from reading or writing elsewhere on the host, opening network
connections or starting a process in a new session: use an isolating backend for that.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from zerog.sandbox.base import Limits
from zerog.sandbox.files import edit_file, write_file
from zerog.sandbox.process import run_process
from zerog.types import Action, EditAction, Observation, ShellAction

SHELL = "/bin/sh"


class LocalSandbox:
    def __init__(self, env: Mapping[str, str], clock: Callable[[], float] = time.monotonic) -> None:
        self._env = dict(env)
        self._clock = clock

    @property
    def name(self) -> str:
        return "local"

    def run(self, action: Action, workspace: Path, limits: Limits) -> Observation:
        if isinstance(action, ShellAction):
            return run_process(
                [SHELL, "-c", action.command],
                cwd=workspace,
                env=self._env,
                timeout=limits.timeout,
                max_output_bytes=limits.max_output_bytes,
                kill_output_bytes=limits.kill_output_bytes,
                clock=self._clock,
            )
        started = self._clock()
        if isinstance(action, EditAction):
            observation = edit_file(workspace, action)
        else:
            observation = write_file(workspace, action)
        return observation.model_copy(update={"duration": self._clock() - started})
