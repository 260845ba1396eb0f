"""Bounded retries with exponential backoff and jitter, for transient transport failures.

Adapters translate their client's exceptions: a transient failure (HTTP 429, 5xx, a
connection error or a timeout) becomes :class:`Transient`; anything else is final and is
raised as it is. The clock and the randomness are parameters, so tests do not wait.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from pydantic import Field

from zerog.errors import ModelError
from zerog.redact import redact_text
from zerog.text import one_line
from zerog.types import Frozen

T = TypeVar("T")


class RetryPolicy(Frozen):
    """``max_retries`` retries after the first attempt; the n-th waits between half and all
    of ``min(max_delay, base_delay * 2**n)`` seconds, or what the server asked for
    (Retry-After), capped at ``max_delay``."""

    max_retries: int = Field(default=4, ge=0, le=20)
    base_delay: float = Field(default=0.5, ge=0)
    max_delay: float = Field(default=30.0, ge=0)

    def delay(self, attempt: int, jitter: float, retry_after: float | None = None) -> float:
        if retry_after is not None and retry_after >= 0:
            return min(retry_after, self.max_delay)
        ceiling = min(self.max_delay, self.base_delay * (2.0**attempt))
        return ceiling / 2 + ceiling / 2 * jitter


class Transient(Exception):
    """A failure worth retrying. ``retry_after`` is the server's hint in seconds, if any."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def parse_retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds (the HTTP-date form is ignored)."""
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def server_detail(text: str, limit: int = 300) -> str:
    """A server's error text, fit for a message: one line, bounded, secrets redacted."""
    return redact_text(one_line(text, limit))


def with_retries(
    call: Callable[[], T],
    policy: RetryPolicy,
    *,
    sleep: Callable[[float], None],
    random: Callable[[], float],
    what: str = "the model call",
    on_retry: Callable[[int, float, str], None] | None = None,
) -> T:
    """Run ``call``; on :class:`Transient`, wait and try again, up to the policy's bound.

    When the retries are spent, raises :class:`ModelError` naming the last failure.
    """
    attempt = 0
    while True:
        try:
            return call()
        except Transient as exc:
            if attempt >= policy.max_retries:
                tries = attempt + 1
                raise ModelError(
                    f"{what} failed {tries} time{'s' if tries != 1 else ''} in a row; "
                    f"last error: {exc}"
                ) from None
            wait = policy.delay(attempt, random(), exc.retry_after)
            if on_retry is not None:
                on_retry(attempt + 1, wait, str(exc))
            sleep(wait)
            attempt += 1
