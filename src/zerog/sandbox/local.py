"""The plain subprocess backend: bounded and confined to the workspace, but not isolated.

It stops runaway time, output, CPU, memory of any one process (RLIMIT_DATA),
file size and disk use, and keeps file actions inside the workspace. It does not stop a
shell command from reading or writing elsewhere on the host, seeing the host's processes,
opening network connections, signalling other processes, starting a process in a new
session, or starting many processes: use an isolating backend (``bwrap``, ``wasm``) for
that. ``docs/sandboxes.md`` has the full table, payload by payload.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from zerog.sandbox.base import Limits
from zerog.sandbox.files import edit_file, write_file
from zerog.sandbox.limits import DiskWatch, rlimits, settle, ulimit_lines
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

    def run(
        self,
        action: Action,
        workspace: Path,
        limits: Limits,
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> Observation:
        if isinstance(action, ShellAction):
            # The limits are set by the shell itself before it reads the command, so no
            # part of the command runs without them (and spawning keeps its vfork speed).
            script = ulimit_lines(rlimits(limits, data=True)) + action.command
            disk = DiskWatch(workspace, limits)
            observation = run_process(
                [SHELL, "-c", script],
                cwd=workspace,
                env={**self._env, **(env or {})},
                timeout=limits.timeout,
                max_output_bytes=limits.max_output_bytes,
                kill_output_bytes=limits.kill_output_bytes,
                clock=self._clock,
                watch=disk,
                stdin=stdin,
            )
            return settle(observation, limits, None, disk)
        started = self._clock()
        if isinstance(action, EditAction):
            observation = edit_file(workspace, action)
        else:
            observation = write_file(workspace, action)
        return observation.model_copy(update={"duration": self._clock() - started})
