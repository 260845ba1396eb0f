"""Features of a step for the compiled router, and action templates.

A step becomes a bag of short feature names (words of its intent with its target taken
out, its op, whether it has a check and a target, the target's file extension, the words of
the goal's checks, its place in the plan), each hashed to an index with BLAKE2b, so the
classifier is the same in every process. Actions become a template: their canonical JSON
with the step's target replaced by a placeholder, so one route serves every target.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError

from zerog.types import Action, Step

FEATURE_VERSION = 1
DIM = 1 << 20
PLACEHOLDER = "{{target}}"
_WORD = re.compile(r"[a-z0-9_]+")
_SAFE_TARGET = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_./-]{0,199}")
_NEAR = "A-Za-z0-9_./-"
_ACTIONS: TypeAdapter[list[Action]] = TypeAdapter(list[Action])


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def step_features(step: Step, checks: Sequence[str], index: int, n_steps: int) -> list[str]:
    """The feature names of step ``index`` of ``n_steps`` in a goal with ``checks``."""
    intent = step.intent
    if step.target:
        intent = intent.replace(step.target, " ")
    words = _words(intent)
    names = [f"w:{w}" for w in words]
    names += [f"b:{a}_{b}" for a, b in itertools.pairwise(words)]
    names.append(f"op:{step.op or '-'}")
    names.append("target:yes" if step.target else "target:no")
    if step.target and "." in step.target.rsplit("/", 1)[-1]:
        names.append(f"ext:{step.target.rsplit('.', 1)[-1].lower()}")
    names.append("check:yes" if step.check else "check:no")
    names += [f"c:{w}" for w in _words(step.check or "")]
    names += [f"g:{w}" for c in checks for w in _words(c)]
    names.append(f"pos:{min(index, 5)}")
    names.append("last:yes" if index == n_steps - 1 else "last:no")
    return sorted(set(names))


def feature_index(name: str) -> int:
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % DIM


def hashed(names: Sequence[str]) -> tuple[int, ...]:
    return tuple(sorted({feature_index(n) for n in names}))


def _safe(target: str | None) -> bool:
    return target is not None and _SAFE_TARGET.fullmatch(target) is not None


def template(actions: Sequence[Action], target: str | None) -> str:
    """The canonical JSON of ``actions``, the step's target (when it is a plain path or name)
    replaced by the placeholder wherever it stands as a whole word."""
    text = json.dumps([a.model_dump(mode="json") for a in actions], sort_keys=True)
    if target is not None and _safe(target) and len(target) >= 2:
        pattern = f"(?<![{_NEAR}]){re.escape(target)}(?![{_NEAR}])"
        text = re.sub(pattern, PLACEHOLDER.replace("\\", "\\\\"), text)
    return text


def fill(label: str, target: str | None) -> tuple[Action, ...] | None:
    """The actions of a template for a step with ``target``; None when they cannot be made
    (a placeholder without a plain target, or a template that is not valid actions)."""
    if PLACEHOLDER in label:
        if target is None or not _safe(target):
            return None
        label = label.replace(PLACEHOLDER, target)
    try:
        return tuple(_ACTIONS.validate_json(label))
    except ValidationError:
        return None
