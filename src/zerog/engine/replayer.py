"""A resumed run's past: the journal's results decoded back, and the moment it goes live.

A resumed run executes the loop again from the start (``journal.py`` says why that is
safe). While it replays, every side-effecting operation asks the :class:`Replayer` first:
a recorded result comes back decoded (a model's response, an action's observation, a step
check, a verdict, the preflight, a snapshot's id, a route decision), the recorder stays
muted and the meter does not check time. The first operation without a recorded result
calls :meth:`Replayer.go_live`, and from there on the run is live again. The router's gate
(router/gate.py) reads recorded decisions through it, and ``zerog replay`` (replay.py)
reads a recorded run's model calls with :func:`recorded_calls`.

The event forms of observations and check results are written here too
(:func:`observation_event`, :func:`check_event`), beside the decoders that read them back.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from zerog.budget import Meter
from zerog.engine.preflight import Preflight
from zerog.event_catalog import (
    ActionStarted,
    CheckDone,
    EventModel,
    GitCommitted,
    ModelCalled,
    ObservationData,
    ObservationMade,
    PreflightDone,
    StepChecked,
    UnknownEvent,
    VerdictReached,
    kind_of,
    parse_data,
)
from zerog.events import Recorder
from zerog.journal import ActionKey, Journal
from zerog.models.base import Response
from zerog.store import StoreError
from zerog.types import (
    CheckResult,
    GitOutcome,
    Observation,
    Verdict,
)
from zerog.validate.compile import SweepPlan

E = TypeVar("E", bound=EventModel)


def observation_event(observation: Observation) -> dict[str, object]:
    return observation.model_dump(mode="json")


def check_event(result: CheckResult) -> dict[str, object]:
    return {
        "name": result.name,
        "passed": result.passed,
        "flaky": result.flaky,
        "failed_tests": [t.model_dump(mode="json") for t in result.failed_tests],
        "observation": observation_event(result.observation),
    }


def _typed(model: type[E], data: object) -> E:
    """``data`` read as an event of ``model``'s kind (:mod:`zerog.event_catalog`); a
    record that does not fit it is a damaged store, not something to guess around."""
    event = parse_data(kind_of(model), data)
    if not isinstance(event, model):
        problem = event.problem if isinstance(event, UnknownEvent) else "another kind"
        raise StoreError(f"a recorded {kind_of(model)} event is malformed ({problem})")
    return event


def _whole(observation: ObservationData) -> Observation:
    whole = observation.to_observation()
    if whole is None:
        raise StoreError("a recorded observation is malformed")
    return whole


def decode_observation(data: object) -> Observation:
    """An action's observation back from its ``observation`` event."""
    return _whole(_typed(ObservationMade, data))


def decode_check(data: object) -> CheckResult:
    """A check's result back from its ``check`` event."""
    result = _typed(CheckDone, data).to_result()
    if result is None:
        raise StoreError("a recorded check's observation is malformed")
    return result


def decode_response(data: object) -> Response:
    """A model's response back from its ``model_call`` event."""
    return _typed(ModelCalled, data).to_response()


def decode_preflight(verdict: Verdict, data: object) -> Preflight:
    """The preflight a resumed run recorded (its event), with its replayed verdict."""
    done = _typed(PreflightDone, data)
    return Preflight(verdict, done.cannot_run, done.feedback)


def recorded_calls(journal: Journal) -> list[Mapping[str, object]]:
    """The model calls a run recorded, in the order it made them."""
    return [journal.responses[n] for n in sorted(journal.responses)]


def had_preflight(journal: Journal) -> bool:
    """Whether the run ran a preflight (runs recorded before zerog had one did not)."""
    return journal.preflight is not None or 0 in journal.verdicts


class Replayer:
    """The replay state of one run: its journal (None for a new run) and whether the run
    still replays it. Mutes ``recorder`` and stops ``meter`` checking time while it does."""

    def __init__(self, journal: Journal | None, recorder: Recorder, meter: Meter) -> None:
        self.journal = journal
        self.rec = recorder
        self.meter = meter
        self.replaying = journal is not None
        meter.replaying = self.replaying
        recorder.muted = self.replaying

    @property
    def past(self) -> Journal | None:
        """The journal while the run still replays it; None once it is live."""
        return self.journal if self.replaying else None

    def go_live(self, where: str) -> None:
        """The first operation the journal has no result for: the run is live again."""
        if not self.replaying or self.journal is None:
            return
        self.replaying = False
        self.rec.muted = False
        self.meter.resume(self.journal.elapsed)
        self.rec.emit("resumed", at=where, iteration=self.meter.iterations)

    def response(self, call: int) -> Response | None:
        """The recorded response of model call ``call``; None (live from here): call it."""
        past = self.past
        data = past.responses.get(call) if past is not None else None
        if data is not None:
            return decode_response(data)
        self.go_live(f"model call {call}")
        return None

    def base_snapshot(self) -> str | None:
        past = self.past
        return past.base_snapshot if past is not None else None

    def final_snapshot(self) -> str | None:
        past = self.past
        return past.final_snapshot if past is not None else None

    def kept(self, iteration: int) -> str | None:
        """The snapshot of iteration ``iteration``'s passing (doubted) answer, if recorded."""
        past = self.past
        return past.kept.get(iteration) if past is not None else None

    def rolled_back(self, key: int) -> bool:
        past = self.past
        return past is not None and key in past.rollbacks

    def git_prepared(self) -> bool:
        return self.journal is not None and self.journal.git_prepared is not None

    def git_commit(self) -> GitOutcome | None:
        past = self.past
        if past is None or past.git_commit is None:
            return None
        outcome = _typed(GitCommitted, past.git_commit).outcome()
        if outcome is None:
            raise StoreError("a recorded git_commit event is malformed")
        return outcome

    def verdict(self, iteration: int, checks: SweepPlan) -> Verdict | None:
        """The recorded verdict of iteration ``iteration``'s sweep, its check results in
        declaration order (they were recorded as each check finished)."""
        past = self.past
        if past is None or iteration not in past.verdicts:
            return None
        order = {c.label: c.index for c in reversed(checks.checks)}
        recorded = [decode_check(c) for c in past.checks.get(iteration, [])]
        recorded.sort(key=lambda r: order.get(r.name, len(order)))
        passed = _typed(VerdictReached, past.verdicts[iteration]).passed
        return Verdict(passed=passed, results=tuple(recorded))

    def observation(self, key: ActionKey) -> Observation | None:
        past = self.past
        done = past.observations.get(key) if past is not None else None
        return decode_observation(done) if done is not None else None

    def interrupted(self, key: ActionKey) -> str | None:
        """The snapshot an action that started but did not finish was recorded with."""
        past = self.past
        started = past.started.get(key) if past is not None else None
        if started is None:
            return None
        snapshot = _typed(ActionStarted, started).snapshot
        if snapshot is None:
            raise StoreError("an interrupted action was recorded without the snapshot before it")
        return snapshot

    def step_check(self, iteration: int, step: int) -> tuple[bool, Observation] | None:
        past = self.past
        done = past.step_checks.get((iteration, step)) if past is not None else None
        if done is None:
            return None
        checked = _typed(StepChecked, done)
        return checked.passed, _whole(checked.observation)

    def routes(self, iteration: int, step: int) -> list[Mapping[str, object]]:
        """The route decisions recorded for step ``step`` of iteration ``iteration``."""
        return self.journal.routes.get((iteration, step), []) if self.journal else []
