"""Escalation: a cheap model first, a stronger one once the cheap one has failed.

:class:`Escalating` is a model wrapper and an event sink at once. Given to the engine as
its model and as one of its sinks, it answers with the first model and moves one model up
the list when the current one has failed, which is any of:

- ``after`` failed iterations (the loop's ``feedback`` events; default 1);
- a degenerate answer (it looped and was cut, ``finish="degenerate"`` in its
  ``model_call`` event): the next call, whatever it is, goes to the next model;
- an invalid answer: the re-ask of a question the current model already answered
  (a request with ``attempt > 0``, see :func:`zerog.models.base.reask`) goes to the next
  model instead of back to the one that got it wrong.

The stronger models are built only when first needed, so a run the small model finishes
never loads them. Level changes follow the events, so a resumed run whose recorded calls
are replayed (not sent) climbs the same way.

With ``unsure_tokens`` it also doubts an answer that passed its checks: when the code of
the current model's last plan answer had at least that many tokens chosen with probability
below one half (:mod:`zerog.models.confidence`; the local models and OpenAI-compatible
servers report this), the engine's ``doubt`` hook (:meth:`doubt`) asks for a second
opinion from the next model at once, whatever ``after`` is. The engine keeps the doubted
answer and falls back to it if the second opinion fails.

:attr:`fresh` says whether the model answering now has not answered yet in this run (it
was just escalated to): a planner can then ask it the fresh question instead of showing
the failures of the models below it.

It keeps per-run state (how many iterations failed): make one per run.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from zerog.errors import ConfigError
from zerog.event_catalog import FeedbackGiven, ModelCalled, parse
from zerog.events import Event
from zerog.models.base import Model, Request, Response
from zerog.models.confidence import LOW, Confidence
from zerog.models.degenerate import DEGENERATE

ModelFactory = Callable[[], Model]


class Escalating:
    """Answers with ``first``, then with each of ``then`` after ``after`` more failed
    iterations (``after=1``: every failed iteration moves one model up)."""

    follows_replay = True  # a resumed run's replayed failures move it up as they did

    def __init__(
        self,
        first: Model,
        then: Sequence[ModelFactory],
        *,
        after: int = 1,
        unsure_tokens: int | None = None,
    ) -> None:
        if after < 1:
            raise ConfigError("escalation needs at least one failed iteration (after >= 1)")
        if unsure_tokens is not None and unsure_tokens < 1:
            raise ConfigError("unsure_tokens must be at least 1")
        self._unsure_tokens = unsure_tokens
        self.last_confidence: Confidence | None = None  # of the last plan answer
        self._models: list[Model] = [first]
        self._factories = list(then)
        self._after = after
        self._failures = 0
        self._answers = 0  # plan answers of the current model
        self._calls = 0  # answers of the current model, of any purpose
        self.level = 0  # index of the model that answers now

    @property
    def name(self) -> str:
        first = self._models[0].name
        return f"{first}>escalating" if self._factories else first

    def current(self) -> Model:
        while len(self._models) <= self.level:
            self._models.append(self._factories[len(self._models) - 1]())
        return self._models[self.level]

    def escalate(self) -> bool:
        """Move one model up now; false when already at the strongest."""
        if self.level >= len(self._factories):
            return False
        self.level += 1
        self._failures = 0
        self._answers = 0
        self._calls = 0
        return True

    @property
    def fresh(self) -> bool:
        """True when an escalated model is about to give its first answer."""
        return self.level > 0 and self._answers == 0

    def complete(self, request: Request) -> Response:
        if request.attempt > 0 and self._calls > 0:
            self.escalate()  # the current model answered this question wrongly
        return self.current().complete(request)

    def doubt(self) -> str | None:
        """Why the last plan answer, though it passed its checks, needs a second opinion
        from the next model (None: it does not, or there is no stronger model)."""
        confidence = self.last_confidence
        if (
            self._unsure_tokens is None
            or confidence is None
            or self.level >= len(self._factories)
            or confidence.low_tokens < self._unsure_tokens
        ):
            return None
        return (
            f"The answer passed its checks, but {self.current().name} was unsure of "
            f"{confidence.low_tokens} of its {confidence.tokens} code tokens (probability "
            f"below {LOW}); asking a stronger model for a second opinion."
        )

    def emit(self, event: Event) -> None:
        match parse(event):
            case ModelCalled() as call:
                self._answered(call)
            case FeedbackGiven(doubt=True):  # a second opinion is asked for now
                self.escalate()
            case FeedbackGiven():
                self._failures += 1
                if self._failures >= self._after:
                    self.escalate()
            case _:
                pass

    def _answered(self, call: ModelCalled) -> None:
        """Follow one answer: from its event, not the call, so that a resumed run whose
        recorded answers are replayed (never sent through :meth:`complete`) climbs alike."""
        if call.attempt > 0 and self._calls > 0:
            self.escalate()  # a replayed re-ask: complete() did not see it
        self._calls += 1
        if call.purpose == "plan":
            self.last_confidence = call.confidence
            self._answers += 1
        if call.finish == DEGENERATE:
            self.escalate()
