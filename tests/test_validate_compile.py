"""Compiling checks: bad definitions caught up front; the sidecar's schema validator agrees
with the jsonschema library."""

from __future__ import annotations

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from pydantic import ValidationError

from zerog.errors import ConfigError
from zerog.types import (
    CommandCheck,
    FileCheck,
    Goal,
    OutputCheck,
    PredicateCheck,
    SchemaCheck,
    TestsCheck,
)
from zerog.validate.compile import check_schema, compile_checks
from zerog.validate.guest.schema import loads, validate
from zerog.validate.kinds import OutputRunner, SidecarRunner


def test_compiling_builds_one_runner_per_check() -> None:
    plan = compile_checks(
        [
            "pytest -q",
            OutputCheck(command="x", matches="^ok$"),
            SchemaCheck.model_validate({"path": "a.json", "schema": {"type": "object"}}),
            PredicateCheck(python="True"),
        ]
    )
    assert [c.index for c in plan.checks] == [0, 1, 2, 3]
    runner = plan.checks[1].runner
    assert isinstance(runner, OutputRunner)
    assert runner.matches is not None
    assert runner.matches.search("a\nok\nb")  # compiled once, per line
    sidecar = plan.checks[2].runner
    assert isinstance(sidecar, SidecarRunner)
    assert "def run():\n    return main(" in sidecar.program.source
    assert sidecar.program.files == ()  # JSON needs no PyYAML
    yaml = compile_checks([SchemaCheck.model_validate({"path": "a.yml", "schema": {}})])
    files = dict(yaml.checks[0].runner.program.files)  # type: ignore[attr-defined]
    assert "lib/yaml/__init__.py" in files


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda: FileCheck(path="/abs"), "leaves the workspace"),
        (lambda: FileCheck(path="."), "workspace itself"),
        (lambda: FileCheck(path="a\x00b"), "NUL"),
        (lambda: FileCheck(path="x", exists=False, contains="y"), "exists = true"),
        (lambda: TestsCheck(junit="../report.xml"), "leaves the workspace"),
        (lambda: OutputCheck(command="x", not_matches="[z-a]"), "regular expression"),
        (lambda: PredicateCheck(python="def f(:"), "not valid Python"),
        (lambda: CommandCheck(command=""), "at least 1 character"),
        (lambda: Goal(text="x", workspace=".", checks=[{"kind": "nope"}]), "tag"),
    ],
)
def test_shapes_are_checked_when_built(make: object, words: str) -> None:
    with pytest.raises(ValidationError, match=words):
        make()  # type: ignore[operator]


@pytest.mark.parametrize(
    ("schema", "words"),
    [
        ({"type": "strnig"}, "not a valid JSON schema"),
        ({"minimum": "3"}, "not a valid JSON schema"),
        ({"properties": {"a": {"$dynamicRef": "#x"}}}, "#/properties/a: the sidecar"),
        ({"$ref": "#/$defs/missing"}, "does not resolve"),
        ({"$ref": "other.json#/a"}, "remote \\$ref"),
        ({"items": {"$id": "inner"}}, "'\\$id' is only supported at the top"),
        ({"patternProperties": {"(": {}}}, "is not a 'regex'"),
    ],
)
def test_bad_schemas_are_refused(schema: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_schema(schema)


def test_a_property_named_like_a_keyword_is_not_a_keyword() -> None:
    check_schema({"properties": {"unevaluatedItems": {"type": "string"}}, "enum": [{"$ref": 1}]})


def test_compile_errors_name_the_check_and_field() -> None:
    bad = SchemaCheck.model_validate({"path": "a.json", "schema": {"type": 3}, "name": "cfg"})
    with pytest.raises(ConfigError, match=r"^goal.toml: check 2 \('cfg'\): schema: not a valid"):
        compile_checks(["true", bad], where="goal.toml")
    with pytest.raises(ConfigError, match=r"check 1 .*command"):
        compile_checks([""])
    with pytest.raises(ConfigError, match="no checks"):
        compile_checks([])


CASES: list[tuple[dict[str, object] | bool, object]] = [
    ({"type": "integer"}, 3),
    ({"type": "integer"}, 3.0),
    ({"type": "integer"}, 3.5),
    ({"type": "integer"}, True),
    ({"type": "number"}, False),
    ({"type": ["string", "null"]}, None),
    ({"enum": [1, "a", None]}, 1.0),
    ({"enum": [1, "a"]}, True),
    ({"const": {"a": [1, 2]}}, {"a": [1, 2]}),
    ({"const": False}, 0),
    ({"minLength": 2, "maxLength": 3}, "héé"),
    ({"minLength": 2}, "é"),
    ({"pattern": "^a+$"}, "aaa"),
    ({"pattern": "b"}, "abc"),
    ({"pattern": "^b"}, "abc"),
    ({"minimum": 1, "exclusiveMaximum": 5}, 5),
    ({"exclusiveMinimum": 1}, 1),
    ({"multipleOf": 0.5}, 1.5),
    ({"multipleOf": 0.5}, 1.25),
    ({"multipleOf": 3}, 10),
    ({"minItems": 1, "maxItems": 2}, []),
    ({"uniqueItems": True}, [1, 1.0]),
    ({"uniqueItems": True}, [1, True]),
    ({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, ["a", 1, 2]),
    ({"prefixItems": [{"type": "string"}], "items": {"type": "integer"}}, ["a", "b"]),
    ({"contains": {"type": "string"}, "minContains": 2}, ["a", 1]),
    ({"contains": {"type": "string"}, "maxContains": 1}, ["a", "b"]),
    ({"required": ["a"], "properties": {"a": {"type": "string"}}}, {"a": 1}),
    ({"additionalProperties": False, "properties": {"a": {}}}, {"a": 1, "b": 2}),
    ({"patternProperties": {"^x": {"type": "integer"}}, "additionalProperties": False}, {"xy": 1}),
    ({"patternProperties": {"^x": {"type": "integer"}}}, {"xy": "no"}),
    ({"propertyNames": {"maxLength": 2}}, {"abc": 1}),
    ({"minProperties": 2}, {"a": 1}),
    ({"dependentRequired": {"a": ["b"]}}, {"a": 1}),
    ({"dependentSchemas": {"a": {"required": ["c"]}}}, {"a": 1, "c": 2}),
    ({"allOf": [{"type": "integer"}, {"minimum": 3}]}, 2),
    ({"anyOf": [{"type": "string"}, {"minimum": 3}]}, 2),
    ({"oneOf": [{"type": "integer"}, {"minimum": 3}]}, 5),
    ({"oneOf": [{"type": "integer"}, {"type": "string"}]}, "a"),
    ({"not": {"type": "string"}}, "a"),
    ({"if": {"type": "string"}, "then": {"minLength": 3}, "else": {"minimum": 0}}, "ab"),
    ({"if": {"type": "string"}, "then": {"minLength": 3}, "else": {"minimum": 0}}, -1),
    ({"$defs": {"pos": {"minimum": 0}}, "items": {"$ref": "#/$defs/pos"}}, [1, -1]),
    ({"$defs": {"a/b": {"type": "string"}}, "$ref": "#/$defs/a~1b"}, "x"),
    (
        {"type": "object", "properties": {"next": {"$ref": "#"}}, "additionalProperties": False},
        {"next": {"next": {"oops": 1}}},
    ),
    (False, 1),
    ({"properties": {"a": True, "b": False}}, {"a": 1, "b": 2}),
]


@pytest.mark.parametrize(("schema", "value"), CASES)
def test_the_sidecar_validator_agrees_with_jsonschema(
    schema: dict[str, object] | bool, value: object
) -> None:
    expected = Draft202012Validator(schema).is_valid(value)
    errors = validate(value, schema)
    assert (errors == []) == expected, errors


def test_draft7_tuple_items_agree() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "items": [{"type": "string"}, {"type": "integer"}],
        "additionalItems": False,
    }
    for value in (["a", 1], ["a", 1, 2], [1]):
        assert (validate(value, schema) == []) == Draft7Validator(schema).is_valid(value)


def test_errors_carry_json_paths() -> None:
    schema = {"properties": {"a": {"items": {"type": "integer"}}}}
    assert validate({"a": [1, "x"]}, schema) == ['$.a[1]: "x" is not of type integer']


def test_the_guest_json_reader_matches_json() -> None:
    import json

    text = '{"a": [1, 2.5e3, -0, true, false, null, "\\u00e9\\n"], "b": {}}'
    assert loads(text) == json.loads(text)
    for bad in ("{", "[1,]", "1 2", "", "{'a': 1}"):
        with pytest.raises(ValueError):  # noqa: PT011 - the scanner's own messages vary
            loads(bad)
