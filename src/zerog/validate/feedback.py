"""Failure feedback: the short, exact account of what failed that goes to the planner.

One part per failure (the failing step, then each failing check): a headline, then what
:func:`zerog.validate.summarize.summarize_text` keeps of its output. The budget is shared
out so that a part needing little leaves the rest to the others.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from zerog.models.base import estimate_tokens
from zerog.text import elide, sanitize
from zerog.types import CheckResult, FailedTest, Observation, Status
from zerog.validate.summarize import squeeze_lines, summarize_text

DEFAULT_MAX_CHARS = 3_000
CHARS_PER_TOKEN = 4
MIN_PART_CHARS = 200


def squeeze(text: str) -> str:
    """Collapse runs of identical lines and blank-line runs."""
    return "\n".join(squeeze_lines([line.rstrip() for line in text.splitlines()]))


def describe(observation: Observation) -> str:
    if observation.status is Status.ERROR:
        return f"exited {observation.exit_code}"
    if observation.status is Status.TIMEOUT:
        return "timed out"
    if observation.status is Status.OUTPUT_LIMIT:
        return "was killed for flooding its output"
    if observation.status is Status.EXCEPTION:
        return "could not run"
    if observation.status is Status.SUCCESS:
        return "succeeded"
    return f"was stopped ({observation.status.value.replace('_', ' ')})"


def _check_verdict(result: CheckResult) -> str:
    if result.observation.status is Status.SUCCESS:
        return "failed"  # it ran fine, but what it found did not satisfy the check
    return describe(result.observation)


def observation_text(observation: Observation, limit: int) -> str:
    """Both streams, squeezed and elided to ``limit`` (the plain form, no extraction)."""
    streams = []
    if observation.stdout.strip():
        streams.append("stdout:\n" + squeeze(observation.stdout))
    if observation.stderr.strip():
        streams.append("stderr:\n" + squeeze(observation.stderr))
    return elide("\n".join(streams) or "(no output)", limit)


def _output(observation: Observation) -> str:
    joined = "\n".join(s for s in (observation.stdout, observation.stderr) if s.strip())
    return joined or "(no output)"


def _parts(
    step_failure: tuple[str, str, Observation] | None, failures: Sequence[CheckResult]
) -> list[tuple[str, str, tuple[FailedTest, ...]]]:
    """(headline, output, failed tests) for each part of the feedback."""
    parts: list[tuple[str, str, tuple[FailedTest, ...]]] = []
    if step_failure is not None:
        intent, action, observation = step_failure
        headline = f"Step '{elide(intent, 300)}' failed: `{elide(action, 200)}` " + (
            f"{describe(observation)}."
        )
        parts.append((headline, _output(observation), ()))
    for result in failures:
        headline = f"Check `{elide(result.name, 200)}` {_check_verdict(result)}."
        parts.append((headline, _output(result.observation), result.failed_tests))
    return parts


def _share(needs: Sequence[int], budget: int) -> list[int]:
    """Split ``budget`` so that parts needing less than an even share leave the rest."""
    shares = [0] * len(needs)
    left = budget
    order = sorted(range(len(needs)), key=lambda i: needs[i])
    for rank, i in enumerate(order):
        even = left // (len(needs) - rank)
        shares[i] = min(needs[i], even)
        left -= shares[i]
    return shares


def summarize(
    step_failure: tuple[str, str, Observation] | None,
    check_failures: Iterable[CheckResult],
    max_chars: int = DEFAULT_MAX_CHARS,
    *,
    max_tokens: int | None = None,
) -> str:
    """A bounded account: the failing step (intent, action, output) then failing checks.

    ``max_tokens`` (estimated at 4 characters a token), when given, sets the budget
    instead of ``max_chars``.
    """
    if max_tokens is not None:
        max_chars = max_tokens * CHARS_PER_TOKEN
    parts = _parts(step_failure, list(check_failures))
    if not parts:
        return ""
    heads = [len(sanitize(head)) + 1 for head, _, _ in parts]
    body_budget = max(max_chars - sum(heads) - 2 * (len(parts) - 1), MIN_PART_CHARS)
    # What each part would take with the whole budget to itself; then an even split.
    natural = [len(summarize_text(out, body_budget, tests)) for _, out, tests in parts]
    shares = _share(natural, body_budget)
    texts = []
    for (head, out, tests), share in zip(parts, shares, strict=True):
        body = summarize_text(out, max(share, MIN_PART_CHARS), tests)
        texts.append(f"{sanitize(head)}\n{body}")
    return elide("\n\n".join(texts), max_chars)


def feedback_tokens(text: str) -> int:
    """The estimated token count of a feedback text (the same estimate the budget uses)."""
    return estimate_tokens(text)
