"""The actions a resumed run retried, from its events: what the crash and batch
benchmarks set beside the side effects each action left."""

from __future__ import annotations

import collections
from collections.abc import Iterable

from zerog.event_catalog import ActionRetried, parse
from zerog.events import Event


def retried_actions(events: Iterable[Event]) -> collections.Counter[str]:
    """How many times each action was retried, by its tag ``i<iteration>s<step>a<action>``
    (step and action counted from 1, as the benchmarks' plans mark them)."""
    tags: collections.Counter[str] = collections.Counter()
    for event in events:
        retried = parse(event)
        if isinstance(retried, ActionRetried):
            tags[f"i{retried.iteration}s{retried.step + 1}a{retried.index + 1}"] += 1
    return tags
