"""The sandbox seam: ``run(action, workspace, limits) -> Observation``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from pydantic import Field

from zerog.errors import SandboxError
from zerog.types import Action, Frozen, Observation

MIB = 1024 * 1024


class Limits(Frozen):
    """Bounds on one action. Every backend takes the same names; each limit that is hit
    ends the action with its own :class:`~zerog.types.Status`.

    What each backend actually enforces is listed in ``docs/sandboxes.md``: the isolating
    backends enforce all of them, the plain ``local`` backend only some.
    """

    timeout: float = Field(default=60.0, gt=0)
    """Wall seconds; the whole process tree is killed at the deadline (Status.TIMEOUT)."""
    max_output_bytes: int = Field(default=64 * 1024, ge=256)
    """Output kept per stream: head and tail, the middle elided with a marker."""
    kill_output_bytes: int = Field(default=32 * MIB, ge=1024)
    """Output (both streams) after which the command is killed (Status.OUTPUT_LIMIT)."""
    cpu_seconds: float = Field(default=120.0, gt=0)
    """CPU seconds of any one process (RLIMIT_CPU; Status.CPU_LIMIT)."""
    memory_bytes: int = Field(default=2048 * MIB, ge=16 * MIB)
    """Memory of the whole command (a memory cgroup, WASM linear memory; Status.MEMORY_LIMIT)."""
    max_processes: int = Field(default=256, ge=1)
    """Processes and threads alive at once (a pids cgroup; Status.PROCESS_LIMIT)."""
    max_file_bytes: int = Field(default=512 * MIB, ge=4096)
    """Size of any one file written (RLIMIT_FSIZE; Status.FILE_LIMIT)."""
    max_disk_bytes: int = Field(default=2048 * MIB, ge=MIB)
    """Disk space the command may consume in all (Status.DISK_LIMIT); also the size of the
    private /tmp of the isolating backends."""


class SandboxUnavailable(SandboxError):
    """The chosen backend cannot run here (a tool is missing): fail closed, say how to fix."""


class Sandbox(Protocol):
    """Runs one action against a workspace and reports what happened, never raising for
    a failing command: failures are observations.

    For a shell command, ``stdin`` is what it reads on its standard input (at most
    :data:`~zerog.sandbox.process.MAX_STDIN_BYTES`; by default nothing), and ``env``
    holds variables set for this command only, over the sandbox's own environment (the
    validation sweep gives its checks a private ``HOME`` this way). File actions ignore
    both."""

    @property
    def name(self) -> str: ...

    def run(
        self,
        action: Action,
        workspace: Path,
        limits: Limits,
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> Observation: ...
