"""Asking until an answer can be used: the re-ask loop the planner and the code call share.

An answer the caller's parser rejects, or one cut off as a loop, is asked again with the
rejected answer and the reason in the conversation; the re-ask is sampled with a seed of
its own (:func:`zerog.models.base.reask`), never the same greedy request again, and an
escalating model moves up for it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from zerog.models.base import Message, Model, Request, reask
from zerog.models.degenerate import DEGENERATE
from zerog.text import elide, sanitize

R = TypeVar("R")


class Unusable(Exception):
    """Every answer was rejected: the last reason and the last answer."""

    def __init__(self, problem: str, answer: str) -> None:
        super().__init__(problem)
        self.problem = problem
        self.answer = answer


def ask_until_usable(
    model: Model,
    request: Request,
    parse: Callable[[str], R],
    *,
    rejected: type[ValueError],
    reasks: int,
    follow_up: Callable[[str], str],
) -> R:
    """``parse`` of the first answer it accepts (it raises ``rejected`` for the others);
    up to ``reasks`` re-asks, each with ``follow_up(reason)`` as the next user message;
    then :class:`Unusable`."""
    problem = answer = ""
    for _ in range(reasks + 1):
        response = model.complete(request)
        answer = response.text
        try:
            if response.finish == DEGENERATE:
                raise rejected("it repeated itself in a loop and was cut off")
            return parse(answer)
        except rejected as exc:
            problem = str(exc)
        request = reask(
            request,
            (
                *request.messages,
                Message(role="assistant", content=elide(sanitize(answer), 2_000)),
                Message(role="user", content=follow_up(problem)),
            ),
        )
    raise Unusable(problem, answer)
