"""A batch in the run store: its goals, their outcomes, and the budget its goals share.

Every change is one short ``BEGIN IMMEDIATE`` transaction on the store, so the
coordinator and any number of worker processes (a process pool, Ray workers on the same
machine) can use the same file at once and see one consistent account.

The shared budget works call by call. Before a model call, :meth:`BatchLedger.reserve`
checks the batch's spend against its limits and reserves the output tokens the call may
produce (at most what is left); after the call, :meth:`BatchLedger.charge` adds what it
really cost and drops the reservation. Each goal has at most one call in flight, so a
reservation is keyed by the goal's run id: a retried goal replaces the reservation its
killed worker left behind.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass

from zerog.budget import BudgetExhausted
from zerog.errors import ConfigError
from zerog.store import Store
from zerog.types import Frozen, RunStatus, Usage

PENDING, DONE = "pending", "done"


class SharedBudget(Frozen):
    """Limits on what all the goals of a batch spend together (``None``: no limit)."""

    max_input_tokens: int | None = None
    max_output_tokens: int | None = None
    max_cost: float | None = None

    @property
    def limited(self) -> bool:
        return any(
            v is not None for v in (self.max_input_tokens, self.max_output_tokens, self.max_cost)
        )


@dataclass(frozen=True, slots=True)
class Spend:
    input_tokens: int
    output_tokens: int
    cost: float
    calls: int
    reserved_output: int


@dataclass(frozen=True, slots=True)
class GoalRow:
    index: int
    run_id: str
    state: str
    attempts: int
    result: dict[str, object] | None


class BatchLedger:
    """One batch's rows in a :class:`~zerog.store.Store`."""

    def __init__(self, store: Store, batch_id: str) -> None:
        self.store = store
        self.batch_id = batch_id

    # ------------------------------------------------------------ the coordinator

    def open(
        self,
        spec: Mapping[str, object],
        budget: SharedBudget,
        run_ids: Mapping[int, str],
        now: float,
    ) -> bool:
        """Create the batch, or take up the one recorded under this id. Returns true when
        it already existed. A recorded batch must come from the same goals (its digest);
        the shared budget given now replaces the recorded one (so a batch stopped by its
        budget can go on with a larger one). Reservations left by killed workers are
        dropped: no worker of this batch runs while it is opened."""
        with self.store.transaction() as db:
            row = db.execute("SELECT spec FROM batches WHERE id = ?", (self.batch_id,)).fetchone()
            if row is not None:
                recorded = json.loads(str(row[0]))
                if recorded.get("digest") != spec.get("digest"):
                    raise ConfigError(
                        f"batch {self.batch_id} in {self.store.path} was started from other "
                        f"goals ({recorded.get('goals', '?')}); give another --batch-id"
                    )
                db.execute(
                    "UPDATE batches SET max_input_tokens = ?, max_output_tokens = ?, "
                    "max_cost = ? WHERE id = ?",
                    (
                        budget.max_input_tokens,
                        budget.max_output_tokens,
                        budget.max_cost,
                        self.batch_id,
                    ),
                )
                db.execute("DELETE FROM batch_reservations WHERE batch_id = ?", (self.batch_id,))
                return True
            db.execute(
                "INSERT INTO batches (id, created, spec, max_input_tokens, max_output_tokens, "
                "max_cost) VALUES (?, ?, ?, ?, ?, ?)",
                (
                    self.batch_id,
                    now,
                    json.dumps(spec),
                    budget.max_input_tokens,
                    budget.max_output_tokens,
                    budget.max_cost,
                ),
            )
            db.executemany(
                "INSERT INTO batch_goals (batch_id, idx, run_id, state, updated) "
                "VALUES (?, ?, ?, ?, ?)",
                [(self.batch_id, i, r, PENDING, now) for i, r in sorted(run_ids.items())],
            )
            return False

    def goals(self) -> list[GoalRow]:
        rows = self.store.query(
            "SELECT idx, run_id, state, attempts, result FROM batch_goals "
            "WHERE batch_id = ? ORDER BY idx",
            (self.batch_id,),
        )
        return [
            GoalRow(
                index=int(str(r[0])),
                run_id=str(r[1]),
                state=str(r[2]),
                attempts=int(str(r[3])),
                result=json.loads(str(r[4])) if r[4] is not None else None,
            )
            for r in rows
        ]

    def spend(self) -> Spend:
        rows = self.store.query(
            "SELECT b.input_tokens, b.output_tokens, b.cost, b.calls, "
            "(SELECT COALESCE(SUM(r.output_tokens), 0) FROM batch_reservations r "
            "WHERE r.batch_id = b.id) FROM batches b WHERE b.id = ?",
            (self.batch_id,),
        )
        if not rows:
            return Spend(0, 0, 0.0, 0, 0)
        i, o, cost, calls, reserved = (str(v) for v in rows[0])
        return Spend(int(i), int(o), float(cost), int(calls), int(reserved))

    # ------------------------------------------------------------ the workers

    def start_attempt(self, index: int, now: float) -> int:
        """Count one more attempt at goal ``index``; returns the attempt's number."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE batch_goals SET attempts = attempts + 1, updated = ? "
                "WHERE batch_id = ? AND idx = ?",
                (now, self.batch_id, index),
            )
            row = db.execute(
                "SELECT attempts, run_id FROM batch_goals WHERE batch_id = ? AND idx = ?",
                (self.batch_id, index),
            ).fetchone()
            if row is None:
                raise ConfigError(f"batch {self.batch_id} has no goal {index}")
            self._release(db, str(row[1]))  # whatever a dead worker of this goal held
        return int(row[0])

    def finish(self, index: int, result: Mapping[str, object], now: float) -> None:
        """Record goal ``index``'s outcome; from now on the batch does not run it again."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE batch_goals SET state = ?, result = ?, updated = ? "
                "WHERE batch_id = ? AND idx = ?",
                (DONE, json.dumps(result), now, self.batch_id, index),
            )
            self._release(db, str(result.get("run_id", "")))

    def run_status(self, run_id: str) -> str | None:
        """The status of run ``run_id`` (exactly that id), or ``None`` if it does not exist."""
        rows = self.store.query("SELECT status FROM runs WHERE id = ?", (run_id,))
        return str(rows[0][0]) if rows else None

    def reserve(self, run_id: str, wanted_output: int) -> int:
        """Let one model call of ``run_id`` start, or raise :class:`BudgetExhausted`.

        Returns how many output tokens the call may produce: ``wanted_output``, or less
        when the shared output budget has less left after the other calls in flight, or
        0 when those calls hold all that is left (ask again once they are done)."""
        with self.store.transaction() as db:
            row = db.execute(
                "SELECT max_input_tokens, max_output_tokens, max_cost, input_tokens, "
                "output_tokens, cost FROM batches WHERE id = ?",
                (self.batch_id,),
            ).fetchone()
            if row is None:
                raise ConfigError(f"no batch {self.batch_id} in {self.store.path}")
            max_in, max_out, max_cost, spent_in, spent_out, cost = row
            if max_in is not None and spent_in >= max_in:
                raise BudgetExhausted(
                    RunStatus.MAX_INPUT_TOKENS,
                    f"the batch's shared budget of {max_in} input tokens is spent ({spent_in})",
                )
            if max_cost is not None and cost >= max_cost:
                raise BudgetExhausted(
                    RunStatus.MAX_COST,
                    f"the batch's shared budget of ${max_cost} is spent (${cost:.4f})",
                )
            granted = wanted_output
            if max_out is not None:
                others = db.execute(
                    "SELECT COALESCE(SUM(output_tokens), 0) FROM batch_reservations "
                    "WHERE batch_id = ? AND run_id != ?",
                    (self.batch_id, run_id),
                ).fetchone()[0]
                if spent_out >= max_out:
                    raise BudgetExhausted(
                        RunStatus.MAX_OUTPUT_TOKENS,
                        f"the batch's shared budget of {max_out} output tokens is spent "
                        f"({spent_out})",
                    )
                room = int(max_out) - int(spent_out) - int(others)
                if room <= 0:
                    return 0  # what is left is reserved by calls in flight: wait for them
                granted = min(wanted_output, room)
            db.execute(
                "INSERT OR REPLACE INTO batch_reservations (batch_id, run_id, output_tokens) "
                "VALUES (?, ?, ?)",
                (self.batch_id, run_id, granted),
            )
        return granted

    def charge(self, run_id: str, usage: Usage, cost: float) -> None:
        """Add what a call of ``run_id`` spent and drop its reservation."""
        with self.store.transaction() as db:
            db.execute(
                "UPDATE batches SET input_tokens = input_tokens + ?, "
                "output_tokens = output_tokens + ?, cost = cost + ?, calls = calls + 1 "
                "WHERE id = ?",
                (usage.input_tokens, usage.output_tokens, cost, self.batch_id),
            )
            self._release(db, run_id)

    def release(self, run_id: str) -> None:
        """Drop the reservation of a call that failed without an answer."""
        with self.store.transaction() as db:
            self._release(db, run_id)

    def _release(self, db: sqlite3.Connection, run_id: str) -> None:
        db.execute(
            "DELETE FROM batch_reservations WHERE batch_id = ? AND run_id = ?",
            (self.batch_id, run_id),
        )
