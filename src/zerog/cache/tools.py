"""The exact tool-call cache: a deterministic command's result, keyed on the state it ran in.

The key is (command, workspace content hash, the sandbox's environment, sandbox name,
limits other than the deadline). Any change of the workspace or environment is a miss.
A command is cacheable when it is declared (``commands``) or, with ``learn``, when it gave
the same result twice for the same state. A command whose result varied for the same
state is marked non-deterministic and never served from the cache again. Only commands
that left the workspace unchanged are stored (a served result cannot reproduce writes),
and only normal exits (success or a non-zero exit code: no timeouts, no limits hit).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection, Mapping
from pathlib import Path

from zerog.cache.db import CacheDB
from zerog.sandbox.base import Limits, Sandbox
from zerog.types import Action, Observation, ShellAction, Status

KIND = "tool"
_CACHEABLE = (Status.SUCCESS, Status.ERROR)

StateHash = Callable[[Path], str]


def _digest(*parts: object) -> str:
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def _result(observation: Observation) -> dict[str, object]:
    return {
        "status": observation.status.value,
        "exit_code": observation.exit_code,
        "stdout": observation.stdout,
        "stderr": observation.stderr,
        "truncated": observation.truncated,
    }


class ToolCache:
    """What is cacheable and where results live; :meth:`wrap` makes a caching sandbox."""

    def __init__(
        self,
        cache: CacheDB,
        *,
        commands: Collection[str] = (),
        learn: bool = False,
    ) -> None:
        self.cache = cache
        self.commands = frozenset(commands)
        self.learn = learn

    def wrap(
        self, sandbox: Sandbox, env: Mapping[str, str], state_hash: StateHash
    ) -> CachingSandbox:
        return CachingSandbox(sandbox, self, env, state_hash)


class CachingSandbox:
    """A Sandbox that serves deterministic shell commands from the tool cache."""

    def __init__(
        self,
        sandbox: Sandbox,
        tools: ToolCache,
        env: Mapping[str, str],
        state_hash: StateHash,
    ) -> None:
        self._sandbox = sandbox
        self._tools = tools
        self._env = sorted(env.items())
        self._state_hash = state_hash

    @property
    def name(self) -> str:
        return self._sandbox.name

    def _command_key(self, command: str, limits: Limits) -> str:
        bounds = limits.model_dump(mode="json", exclude={"timeout"})
        return _digest(command, self._env, self._sandbox.name, bounds)

    def run(
        self,
        action: Action,
        workspace: Path,
        limits: Limits,
        *,
        stdin: bytes = b"",
        env: Mapping[str, str] | None = None,
    ) -> Observation:
        tools = self._tools
        if not isinstance(action, ShellAction) or stdin or env:  # only plain commands
            return self._sandbox.run(action, workspace, limits, stdin=stdin, env=env)
        declared = action.command in tools.commands
        if not declared and not tools.learn:
            return self._sandbox.run(action, workspace, limits)
        db = tools.cache
        command_key = self._command_key(action.command, limits)
        if db.get(KIND, f"nondet:{command_key}") is not None:
            db.count(KIND, "nondeterministic")
            return self._sandbox.run(action, workspace, limits)
        before = self._state_hash(workspace)
        key = _digest(command_key, before)
        stored = db.get(KIND, key)
        seen = int(str(stored.get("seen", 0))) if stored is not None else 0
        result = stored.get("result") if stored is not None else None
        if isinstance(result, dict) and (declared or seen >= 2):
            db.count(KIND, "hit")
            return Observation.model_validate({**result, "cached": True})
        db.count(KIND, "miss")
        observation = self._sandbox.run(action, workspace, limits)
        if observation.status not in _CACHEABLE:
            return observation
        if self._state_hash(workspace) != before:
            db.count(KIND, "writes")
            return observation
        fresh = _result(observation)
        if result is not None and result != fresh:
            db.delete(KIND, key)
            db.put(KIND, f"nondet:{command_key}", {"command": action.command})
            db.count(KIND, "varied")
            return observation
        db.put(KIND, key, {"command": action.command, "result": fresh, "seen": seen + 1})
        return observation
