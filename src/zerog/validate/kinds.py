"""How each kind of check runs, once compiled. One small class per kind.

Commands, test suites and output checks run through the sandbox; file checks read the
workspace from the host (a bounded read of one confined path); predicate and schema checks
run as guest programs in the validation sidecar, never in the host process.

Every command of a check runs with the sweep's check variables (a private ``HOME``, no
user site-packages: :mod:`zerog.validate.home`). The commands that are runners of zerog's
(the ``asserts`` runner, the pytest runner, the sidecar's loader) get the sweep's nonce on
their stdin and pass only with their verdict line (:mod:`zerog.validate.nonce`).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from zerog.beneath import Dir, PathEscape, split
from zerog.sandbox.base import Limits, Sandbox
from zerog.text import decode, elide
from zerog.types import (
    CheckResult,
    CommandCheck,
    FileCheck,
    Observation,
    OutputCheck,
    ShellAction,
    Status,
    TestsCheck,
)
from zerog.validate.junit import JunitError, read_junit_in
from zerog.validate.nonce import confirm, new_nonce, stdin_for
from zerog.validate.pytest_runner import wrap_pytest
from zerog.validate.sidecar import GuestProgram, PythonRunner, parse_batch

MAX_FILE_BYTES = 16 * 1024 * 1024
EXCERPT_CHARS = 1_200
# The report zerog asks for is written at the workspace's top: the one place every sandbox
# lets a command write (bwrap mounts .zerog/ read-only). It is removed once read.
JUNIT_PREFIX = ".zerog-junit-"


@dataclass(frozen=True)
class CheckEnv:
    """What running a check needs; the same for every check of one sweep: ``nonce`` is the
    sweep's (fresh for each sweep), ``variables`` are set for every command of a check."""

    workspace: Path
    sandbox: Sandbox
    limits: Limits
    sidecar: PythonRunner
    clock: Callable[[], float] = field(default=time.monotonic)
    nonce: str = field(default_factory=new_nonce)
    variables: Mapping[str, str] = field(default_factory=dict)

    def bounded(self, timeout: float) -> Limits:
        return self.limits.model_copy(update={"timeout": min(timeout, self.limits.timeout)})

    def shell(self, command: str, timeout: float, *, confirmed: bool = False) -> Observation:
        """Run a check's command; ``confirmed``: it is a runner of zerog's, which gets the
        nonce and passes only with its verdict line."""
        observation = self.sandbox.run(
            ShellAction(command=command),
            self.workspace,
            self.bounded(timeout),
            stdin=stdin_for(self.nonce) if confirmed else b"",
            env=self.variables,
        )
        return confirm(observation, self.nonce) if confirmed else observation

    def python(self, program: GuestProgram, timeout: float) -> Observation:
        """Run a guest program in the sidecar; it passes only with the loader's verdict line."""
        observation = self.sidecar.run_python(
            program, self.workspace, self.bounded(timeout), nonce=self.nonce, env=self.variables
        )
        return confirm(observation, self.nonce)


class Runner(Protocol):
    def run(self, env: CheckEnv, label: str) -> CheckResult: ...


def _note(observation: Observation, note: str, **update: object) -> Observation:
    """Append a ``[zerog: ...]`` line to stderr (the convention of the sandbox's notes)."""
    stderr = observation.stderr.rstrip("\n")
    stderr = f"{stderr}\n[zerog: {note}]" if stderr else f"[zerog: {note}]"
    return observation.model_copy(update={"stderr": stderr, **update})


@dataclass(frozen=True)
class CommandRunner:
    """A command; ``confirmed`` when it is one of zerog's runners (an ``asserts`` check)."""

    check: CommandCheck
    confirmed: bool = False

    def run(self, env: CheckEnv, label: str) -> CheckResult:
        observation = env.shell(self.check.command, self.check.timeout, confirmed=self.confirmed)
        return CheckResult(name=label, passed=observation.ok, observation=observation)


@dataclass(frozen=True)
class TestsRunner:
    """Runs the suite, then reads its junit report so that failures are known by name."""

    __test__ = False

    check: TestsCheck
    index: int

    def _report(self) -> tuple[str, str]:
        if self.check.junit is not None:
            return self.check.junit, self.check.command
        report = f"{JUNIT_PREFIX}{self.index}-{os.getpid()}.xml"
        return report, f"{self.check.command} --junitxml={shlex.quote(report)}"

    def run(self, env: CheckEnv, label: str) -> CheckResult:
        report, command = self._report()
        wrapped = wrap_pytest(command)
        path = env.workspace / report
        owned = self.check.junit is None
        if owned:
            with contextlib.suppress(OSError):
                path.unlink()
        before = _stat_key(path)
        observation = env.shell(wrapped or command, self.check.timeout, confirmed=bool(wrapped))
        try:
            if not owned and before is not None and _stat_key(path) == before:
                raise JunitError(f"the junit report {report} was not rewritten by this run")
            parsed = read_junit_in(env.workspace, report)
        except JunitError as exc:
            note = f"tests: {exc}"
            return CheckResult(name=label, passed=False, observation=_note(observation, note))
        finally:
            if owned:
                with contextlib.suppress(OSError):
                    path.unlink()
        passed = observation.ok and parsed.ok
        note = f"junit report: {parsed.counts()}"
        if observation.ok and not parsed.ok:
            note += " (the command exited 0, but the report has failures)"
        return CheckResult(
            name=label,
            passed=passed,
            observation=_note(observation, note),
            failed_tests=parsed.failures,
        )


def _stat_key(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.lstat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


@dataclass(frozen=True)
class OutputRunner:
    check: OutputCheck
    matches: re.Pattern[str] | None
    not_matches: re.Pattern[str] | None

    def _problem(self, observation: Observation) -> str | None:
        check = self.check
        if observation.status not in (Status.SUCCESS, Status.ERROR):
            return None  # a timeout, flood or crash speaks for itself
        if check.exit_code is not None and observation.exit_code != check.exit_code:
            return f"exit status {observation.exit_code}, expected {check.exit_code}"
        text = {
            "stdout": observation.stdout,
            "stderr": observation.stderr,
            "both": observation.stdout + "\n" + observation.stderr,
        }[check.stream]
        stream = "output" if check.stream == "both" else check.stream
        cut = (
            " (the output was truncated: the middle was not seen)" if observation.truncated else ""
        )
        if self.matches is not None and self.matches.search(text) is None:
            return f"no match for /{self.matches.pattern}/ in the {stream}{cut}"
        if self.not_matches is not None:
            found = self.not_matches.search(text)
            if found is not None:
                line = text.count("\n", 0, found.start()) + 1
                return f"{stream} line {line} matches /{self.not_matches.pattern}/"
            if observation.truncated:
                return (
                    f"the output was truncated, so the absence of "
                    f"/{self.not_matches.pattern}/ cannot be proven"
                )
        return ""

    def run(self, env: CheckEnv, label: str) -> CheckResult:
        observation = env.shell(self.check.command, self.check.timeout)
        problem = self._problem(observation)
        if problem is None:
            return CheckResult(name=label, passed=False, observation=observation)
        if problem:
            return CheckResult(
                name=label, passed=False, observation=_note(observation, f"output: {problem}")
            )
        return CheckResult(name=label, passed=True, observation=observation)


_NO_LINKS = "checks never follow symbolic links (one may lead outside the workspace)"


@dataclass(frozen=True)
class FileRunner:
    check: FileCheck
    matches: re.Pattern[str] | None

    def _read(self, workspace: Path) -> tuple[bool, bytes | None] | str:
        """(present, up to MAX_FILE_BYTES + 1 bytes when wanted and a regular file), or why
        it cannot be told. The path is walked without following links (beneath)."""
        check = self.check
        try:
            parts = split(check.path)
            with Dir.open(workspace) as top, top.sub(parts[:-1]) as parent:
                if parent.lstat(parts[-1]) is None:
                    return False, None
                if not check.exists or (check.contains is None and self.matches is None):
                    return True, None
                return True, parent.read_regular(parts[-1], MAX_FILE_BYTES)
        except (FileNotFoundError, NotADirectoryError):
            return False, None
        except PathEscape as exc:
            return f"{check.path} cannot be read: {exc}; {_NO_LINKS}"
        except OSError as exc:
            return f"{check.path} cannot be read: {exc.strerror}"

    def _verdict(self, workspace: Path) -> tuple[bool, str]:
        check = self.check
        found = self._read(workspace)
        if isinstance(found, str):
            return False, found
        present, data = found
        if not check.exists:
            return (not present), (f"{check.path} exists" if present else "")
        if not present:
            return False, f"{check.path} does not exist"
        if check.contains is None and self.matches is None:
            return True, ""
        if data is None:
            return False, f"{check.path} is not a regular file"
        if len(data) > MAX_FILE_BYTES:
            return False, f"{check.path} is larger than {MAX_FILE_BYTES} bytes"
        text = data.decode("utf-8", errors="replace")
        excerpt = elide(decode(data), EXCERPT_CHARS)
        if check.contains is not None and check.contains not in text:
            return False, f"{check.path} does not contain {check.contains!r}; it reads:\n{excerpt}"
        if self.matches is not None and self.matches.search(text) is None:
            return (
                False,
                f"{check.path} has no match for /{self.matches.pattern}/; it reads:\n{excerpt}",
            )
        return True, ""

    def run(self, env: CheckEnv, label: str) -> CheckResult:
        started = env.clock()
        passed, why = self._verdict(env.workspace)
        observation = Observation(
            status=Status.SUCCESS if passed else Status.ERROR,
            exit_code=0 if passed else 1,
            stderr=why,
            duration=env.clock() - started,
        )
        return CheckResult(name=label, passed=passed, observation=observation)


@dataclass(frozen=True)
class SidecarRunner:
    """A predicate or schema check: its guest program, built once when compiled."""

    program: GuestProgram
    timeout: float

    def run(self, env: CheckEnv, label: str) -> CheckResult:
        observation = env.python(self.program, self.timeout)
        return CheckResult(name=label, passed=observation.ok, observation=observation)


@dataclass(frozen=True)
class SchemaBatch:
    """Several independent schema checks run as one guest program: one sidecar start for
    all of them (each WASM instance costs tens of milliseconds before it does anything).
    They may share an interpreter because they run no workspace code: they only read
    JSON or YAML data. A check whose result is missing (a crash, a timeout, output cut
    short) is left out of the answer, and the sweep runs it on its own."""

    program: GuestProgram
    members: tuple[int, ...]  # the plan indexes of the checks, in the program's order
    labels: tuple[str, ...]
    timeout: float

    def run_many(self, env: CheckEnv) -> dict[int, CheckResult]:
        observation = env.python(self.program, self.timeout)
        if observation.status is not Status.SUCCESS:
            return {}
        found = parse_batch(observation.stdout, len(self.members))
        share = observation.duration / len(self.members)
        results = {}
        for position, (status, out, err) in found.items():
            member = Observation(
                status=Status.SUCCESS if status == 0 else Status.ERROR,
                exit_code=status,
                stdout=out,
                stderr=err,
                duration=share,
            )
            index = self.members[position]
            results[index] = CheckResult(
                name=self.labels[position], passed=member.ok, observation=member
            )
        return results
