"""Failure feedback: the short, exact account of what failed that goes to the planner."""

from __future__ import annotations

from collections.abc import Iterable

from zerog.text import elide, sanitize
from zerog.types import CheckResult, Observation, Status

DEFAULT_MAX_CHARS = 3_000


def squeeze(text: str) -> str:
    """Collapse runs of identical lines and blank-line runs."""
    out: list[str] = []
    previous: str | None = None
    repeats = 0
    for line in text.splitlines():
        if line == previous:
            repeats += 1
            continue
        if repeats:
            out.append(f"[previous line repeated {repeats} more times]")
            repeats = 0
        out.append(line.rstrip())
        previous = line
    if repeats:
        out.append(f"[previous line repeated {repeats} more times]")
    return "\n".join(out).strip("\n")


def describe(observation: Observation) -> str:
    if observation.status is Status.ERROR:
        return f"exited {observation.exit_code}"
    if observation.status is Status.TIMEOUT:
        return "timed out"
    if observation.status is Status.OUTPUT_LIMIT:
        return "was killed for flooding its output"
    if observation.status is Status.EXCEPTION:
        return "could not run"
    return "succeeded"


def observation_text(observation: Observation, limit: int) -> str:
    streams = []
    if observation.stdout.strip():
        streams.append("stdout:\n" + squeeze(observation.stdout))
    if observation.stderr.strip():
        streams.append("stderr:\n" + squeeze(observation.stderr))
    return elide("\n".join(streams) or "(no output)", limit)


def summarize(
    step_failure: tuple[str, str, Observation] | None,
    check_failures: Iterable[CheckResult],
    max_chars: int = DEFAULT_MAX_CHARS,
) -> str:
    """A bounded account: the failing step (intent, action, output) then failing checks."""
    failures = list(check_failures)
    parts = []
    shares = (1 if step_failure else 0) + len(failures)
    each = max(max_chars // max(shares, 1) - 120, 200)
    if step_failure is not None:
        intent, action, observation = step_failure
        parts.append(
            f"Step '{intent}' failed: `{elide(action, 200)}` {describe(observation)}.\n"
            + observation_text(observation, each)
        )
    for result in failures:
        parts.append(
            f"Check `{elide(result.name, 200)}` {describe(result.observation)}.\n"
            + observation_text(result.observation, each)
        )
    return elide(sanitize("\n\n".join(parts)), max_chars)
