"""Decoding schemas: small enough for a grammar, tags required, still the same shape."""

from __future__ import annotations

import json

import pytest

from zerog.models.llamacpp import json_grammar_text
from zerog.models.schema import decoding_schema
from zerog.structured import parse_answer, schema_of
from zerog.types import Plan, StepActions


def walk(value: object) -> list[dict[str, object]]:
    found: list[dict[str, object]] = []
    if isinstance(value, dict):
        found.append(value)
        for sub in value.values():
            found += walk(sub)
    elif isinstance(value, list):
        for sub in value:
            found += walk(sub)
    return found


def test_plan_schema_is_fit_for_decoding() -> None:
    original = schema_of(Plan)
    schema = decoding_schema(original)
    nodes = walk(schema)
    assert not any("discriminator" in node for node in nodes)
    assert all(int(str(node.get("maxLength", 0))) <= 256 for node in nodes)
    defs = schema["$defs"]
    assert isinstance(defs, dict)
    assert defs["ShellAction"]["required"] == ["kind", "command"]
    assert defs["WriteFileAction"]["required"] == ["kind", "path", "content"]
    assert defs["Step"]["required"] == ["intent"]
    assert "discriminator" in json.dumps(original), "the original must not be changed"


@pytest.mark.model  # llama-cpp-python builds the grammar
def test_grammar_is_small_and_rejects_raw_control_characters() -> None:
    for model in (Plan, StepActions):
        grammar = json_grammar_text(schema_of(model))
        assert len(grammar) < 10_000
        assert 'char ::= [^"\\\\\\x7F\\x00-\\x1F]' in grammar


def test_an_answer_in_the_decoding_shape_validates_against_the_full_model() -> None:
    answer = '{"steps": [{"intent": "fix", "actions": [{"kind": "shell", "command": "true"}]}]}'
    assert parse_answer(answer, Plan).steps[0].actions[0].kind == "shell"


def test_schema_memo_converts_each_schema_object_once() -> None:
    from zerog.models.schema import SchemaMemo

    built: list[object] = []

    def build(schema: object) -> int:
        built.append(schema)
        return len(built)

    memo = SchemaMemo(build, limit=2)
    plan, actions = schema_of(Plan), schema_of(StepActions)
    assert memo(plan) == memo(plan) == 1
    assert memo(actions) == 2
    copy = dict(plan)
    assert memo(copy) == 3, "an equal but distinct dict is converted again"
    assert memo(plan) == 4, "the memo was full and started over"
