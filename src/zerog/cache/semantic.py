"""The semantic plan cache: reuse a plan that already succeeded for the same goal, said
differently, behind a verification gate.

A plan is stored only after its run succeeded, with every step's actions filled in (so a
reuse calls no model at all). It is reused for a new goal only when all of these hold:

1. the goal's checks are identical (the same compiled checks, kind and every field);
2. the goal texts are close: cosine of their MiniLM embeddings >= ``threshold``;
3. their salient tokens are equal (numbers, file names, identifiers, quoted strings, rare
   words; see ``salient.py``): "same words, different numbers/files/targets" is a miss;
4. the plan's preconditions hold in the current workspace: every file it edits or names
   in a command (and does not create itself) exists, and each edit's search text is there.

A reused plan still goes through the validation sweep; the loop invalidates the entry if
it fails and asks the model instead.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from pydantic import ValidationError

from zerog.beneath import Dir, PathEscape, read_below, split
from zerog.cache.db import CacheDB
from zerog.cache.index import VectorIndex
from zerog.cache.salient import Salient, extract
from zerog.sandbox.files import MAX_EDIT_FILE_BYTES
from zerog.types import Check, EditAction, Goal, Plan, ShellAction, WriteFileAction

if TYPE_CHECKING:
    from zerog.cache.embed import Vectors

KIND = "plan"
DEFAULT_THRESHOLD = 0.80
_PATHLIKE = re.compile(r"(?<![\w/.-])((?:[\w-]+/)*[\w-]+\.[A-Za-z][A-Za-z0-9]{0,9})(?![\w/])")


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> Vectors: ...

    def is_common(self, word: str) -> bool: ...


@dataclass(frozen=True, slots=True)
class Reuse:
    entry: int
    plan: Plan
    similarity: float
    goal: str


def checks_key(checks: Sequence[Check]) -> str:
    body = [c.model_dump(mode="json") for c in checks]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def required_files(plan: Plan) -> tuple[list[str], list[tuple[str, str]]]:
    """Files the plan needs before it runs, and the (path, text) each edit searches for."""
    created: set[str] = set()
    needed: list[str] = []
    searches: list[tuple[str, str]] = []
    for step in plan.steps:
        for action in step.actions:
            if isinstance(action, WriteFileAction):
                created.add(action.path)
            elif isinstance(action, EditAction):
                if action.path not in created:
                    needed.append(action.path)
                    searches.append((action.path, action.search))
            elif isinstance(action, ShellAction):
                needed += [p for p in _PATHLIKE.findall(action.command) if p not in created]
    return list(dict.fromkeys(needed)), searches


def _present(top: Dir, rel: str) -> bool:
    """Whether ``rel`` exists below ``top``, reached without following links."""
    try:
        parts = split(rel)
        with top.sub(parts[:-1]) as parent:
            return parent.lstat(parts[-1]) is not None
    except (OSError, PathEscape):
        return False


def _contains(top: Dir, rel: str, text: str) -> bool:
    """Whether the UTF-8 file ``rel`` below ``top`` (no link followed) contains ``text``."""
    try:
        data = read_below(top, rel, MAX_EDIT_FILE_BYTES)
        return data is not None and len(data) <= MAX_EDIT_FILE_BYTES and text in data.decode()
    except (OSError, PathEscape, UnicodeDecodeError):
        return False


def preconditions_hold(plan: Plan, root: Path) -> bool:
    needed, searches = required_files(plan)
    try:
        top = Dir.open(root)
    except OSError:
        return False
    with top:
        return all(_present(top, rel) for rel in needed) and all(
            _contains(top, rel, text) for rel, text in searches
        )


class PlanCache:
    """Lookup, store and invalidate plans; vectors are indexed in memory, per checks key,
    loaded from the cache file on first use."""

    def __init__(
        self,
        db: CacheDB,
        embedder: TextEmbedder,
        *,
        threshold: float = DEFAULT_THRESHOLD,
        salient_gate: bool = True,
    ) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError("the similarity threshold must be in (0, 1]")
        self.db = db
        self.embedder = embedder
        self.threshold = threshold
        self.salient_gate = salient_gate  # off only to measure what it prevents
        self.last_outcome = ""  # why the last lookup missed (or "hit")
        self._index: dict[str, VectorIndex] | None = None
        self._goals: dict[int, str] = {}

    def _indexes(self) -> dict[str, VectorIndex]:
        if self._index is None:
            import numpy as np

            self._index = {}
            for row in self.db.plans():
                vector = np.frombuffer(row.vector, dtype=np.float32)
                self._index.setdefault(row.checks_key, VectorIndex()).add(row.id, vector)
                self._goals[row.id] = row.goal
        return self._index

    def salient(self, text: str) -> Salient:
        return extract(text, self.embedder.is_common)

    def lookup(self, goal: Goal) -> Reuse | None:
        """A verified plan for ``goal`` from the cache, or None (counted as a miss)."""
        key = checks_key(goal.checks)
        index = self._indexes().get(key)
        if index is None:
            self.db.count(KIND, "miss")
            self.last_outcome = "checks"
            return None
        query = self.embedder.embed([goal.text])[0]
        wanted = self.salient(goal.text)
        outcome = "miss"
        for entry, similarity in index.search(query, self.threshold):
            stored_goal = self._goals.get(entry, "")
            if self.salient_gate and not self.salient(stored_goal).matches(wanted):
                outcome = "salient_mismatch"
                continue
            row = self.db.plan(entry)
            if row is None:  # gone or corrupted (dropped by the read)
                index.remove(entry)
                continue
            try:
                plan = Plan.model_validate(row.payload.get("plan"))
            except ValidationError:
                self.invalidate(entry)
                continue
            if not preconditions_hold(plan, goal.workspace):
                outcome = "precondition"
                continue
            self.db.count(KIND, "hit")
            self.last_outcome = "hit"
            self.db.touch_plan(entry)
            return Reuse(entry=entry, plan=plan, similarity=similarity, goal=stored_goal)
        self.db.count(KIND, outcome)
        self.last_outcome = outcome
        return None

    def store(self, goal: Goal, plan: Plan) -> int:
        """Remember the plan that made ``goal``'s checks pass (call only after success)."""
        key = checks_key(goal.checks)
        vector = self.embedder.embed([goal.text])[0]
        payload = {"plan": plan.model_dump(mode="json"), "checks": key}
        entry = self.db.add_plan(key, goal.text, payload, vector.astype("float32").tobytes())
        self._indexes().setdefault(key, VectorIndex()).add(entry, vector)
        self._goals[entry] = goal.text
        self.db.count(KIND, "stored")
        live = (
            set(self.db.plan_ids())
            if len(self._goals) > self.db.bounds["plan"].max_entries
            else None
        )
        if live is not None:  # entries were evicted: forget them here too
            for gone in [i for i in self._goals if i not in live]:
                for index in self._indexes().values():
                    index.remove(gone)
                del self._goals[gone]
        return entry

    def invalidate(self, entry: int) -> None:
        """A reused plan failed the sweep (or is unreadable): never offer it again."""
        self.db.drop_plan(entry)
        self.db.count(KIND, "invalidated")
        for index in self._indexes().values():
            index.remove(entry)
        self._goals.pop(entry, None)
