"""The one path from model text to validated data: parse, validate, re-ask once, fail clean."""

from __future__ import annotations

import functools
import json
import re
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from zerog.errors import ModelOutputError
from zerog.models.base import Message, Model, Request
from zerog.models.reasking import Unusable, ask_until_usable
from zerog.text import elide, sanitize

T = TypeVar("T", bound=BaseModel)

MAX_ANSWER_CHARS = 400_000
_FENCE = re.compile(r"```(?:json)?\s*\n(.*?)\n?```", re.DOTALL)


class InvalidAnswer(ValueError):
    """The answer is not a JSON object of the expected shape; the message says why."""


@functools.cache
def schema_of(schema: type[BaseModel]) -> dict[str, object]:
    """The JSON schema of a pydantic model, computed once per class (it is pure)."""
    return schema.model_json_schema()


def extract_json(text: str) -> str:
    """The JSON object inside a model answer: bare, fenced, or surrounded by prose."""
    stripped = text.strip()
    if stripped.startswith("{"):
        return stripped
    fenced = _FENCE.search(stripped)
    if fenced:
        return fenced.group(1).strip()
    start, end = stripped.find("{"), stripped.rfind("}")
    if start != -1 and end > start:
        return stripped[start : end + 1]
    return stripped


def parse_answer(text: str, schema: type[T]) -> T:
    if len(text) > MAX_ANSWER_CHARS:
        raise InvalidAnswer(
            f"the answer is {len(text)} characters long; the limit is {MAX_ANSWER_CHARS}"
        )
    try:
        value = json.loads(extract_json(text))
    except json.JSONDecodeError as exc:
        raise InvalidAnswer(
            f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    if not isinstance(value, dict):
        raise InvalidAnswer("expected a JSON object")
    try:
        return schema.model_validate(value)
    except ValidationError as exc:
        problems = [
            f"{'.'.join(str(p) for p in err['loc']) or '(root)'}: {err['msg']}"
            for err in exc.errors()[:5]
        ]
        raise InvalidAnswer("; ".join(sanitize(p) for p in problems)) from None


def ask(
    model: Model,
    messages: tuple[Message, ...],
    schema: type[T],
    *,
    purpose: str,
    max_tokens: int = 2048,
    temperature: float = 0.0,
    reasks: int = 1,
    grammar: type[BaseModel] | None = None,
) -> T:
    """Ask for a JSON object matching ``schema``; re-ask up to ``reasks`` times with the
    validation error, then raise :class:`ModelOutputError`. ``grammar``: a narrower schema
    the answer is asked for (and constrained to, on backends that decode by a schema)
    when ``schema`` also accepts other shapes."""
    request = Request(
        messages=messages,
        json_schema=schema_of(grammar or schema),
        max_tokens=max_tokens,
        temperature=temperature,
        purpose=purpose,
    )
    try:
        return ask_until_usable(
            model,
            request,
            lambda answer: parse_answer(answer, schema),
            rejected=InvalidAnswer,
            reasks=reasks,
            follow_up=lambda problem: (
                f"That answer was invalid: {elide(problem, 1_000)}. Reply with only one "
                "JSON object that follows the requested format."
            ),
        )
    except Unusable as exc:
        raise ModelOutputError(
            f"the model's {purpose or 'structured'} answer was invalid after {reasks + 1} "
            f"attempts: {elide(exc.problem, 500)}"
        ) from None
