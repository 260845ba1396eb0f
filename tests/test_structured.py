from __future__ import annotations

import pytest

from zerog.structured import InvalidAnswer, extract_json, parse_answer
from zerog.types import Plan, ShellAction


@pytest.mark.parametrize(
    "text",
    [
        '{"steps": [{"intent": "a"}]}',
        '  \n{"steps": [{"intent": "a"}]}\n',
        'Sure!\n```json\n{"steps": [{"intent": "a"}]}\n```\nDone.',
        '```\n{"steps": [{"intent": "a"}]}\n```',
        'The plan is {"steps": [{"intent": "a"}]} as requested.',
    ],
)
def test_plans_are_found_in_common_wrappings(text: str) -> None:
    result = parse_answer(text, Plan)
    assert result.steps[0].intent == "a"


def test_extract_leaves_plain_text_alone() -> None:
    assert extract_json("no braces") == "no braces"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"steps": []}', "steps"),
        ('{"steps": [{"intent": "a", "extra": 1}]}', "extra"),
        ('{"steps": [{"intent": "a", "actions": [{"kind": "shell"}]}]}', "command"),
        ("{" + " " * 500_000 + "}", "characters long"),
    ],
)
def test_invalid_answers_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidAnswer, match=message):
        parse_answer(text, Plan)


def test_actions_are_discriminated_by_kind() -> None:
    plan = parse_answer(
        '{"steps": [{"intent": "a", "actions": [{"kind": "shell", "command": "ls"}]}]}', Plan
    )
    assert isinstance(plan.steps[0].actions[0], ShellAction)
