"""Compiling a goal's checks, once, into a plan the sweep executes.

Compiling is where a bad check is caught, before any model call: regular expressions are
compiled, JSON schemas are checked against their metaschema (and against what the
sidecar's validator supports), paths are confined to the workspace, ``after`` references
are resolved and must not form a cycle, and each check gets the runner of its kind (for
predicate and schema checks, the guest program the sidecar will run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from zerog.errors import ConfigError
from zerog.types import (
    AssertsCheck,
    Check,
    CommandCheck,
    FileCheck,
    OutputCheck,
    SchemaCheck,
    TestsCheck,
)
from zerog.validate import sidecar
from zerog.validate.asserts import assert_command
from zerog.validate.examples import is_examples_command
from zerog.validate.guest.schema import UNSUPPORTED, Validator
from zerog.validate.kinds import (
    CommandRunner,
    FileRunner,
    OutputRunner,
    Runner,
    SchemaBatch,
    SidecarRunner,
    TestsRunner,
)

_SCHEMA_MAPS = frozenset(
    {"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"}
)
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems"})
_SCHEMA_ONE = frozenset(
    {"not", "if", "then", "else", "additionalItems", "additionalProperties", "contains"}
    | {"propertyNames"}
)


@dataclass(frozen=True)
class CompiledCheck:
    index: int
    check: Check
    label: str
    after: tuple[int, ...]  # indexes of the checks that must finish first
    runner: Runner


@dataclass(frozen=True)
class SweepPlan:
    """The compiled checks of one goal, in declaration order, and the schema checks that
    run together in one sidecar program (those that wait for no other check)."""

    checks: tuple[CompiledCheck, ...]
    batch: SchemaBatch | None = None

    def __len__(self) -> int:
        return len(self.checks)


def _fail(where: str, index: int, label: str, field: str, message: str) -> ConfigError:
    short = label if len(label) <= 60 else label[:57] + "..."
    return ConfigError(f"{where}: check {index + 1} ({short!r}): {field}: {message}")


def _schema_nodes(node: object, pointer: str) -> Iterator[tuple[str, dict[str, object]]]:
    """Every subschema (as a dict) with its JSON pointer, the keyword positions only."""
    if not isinstance(node, dict):
        return
    yield pointer, node
    for key, value in node.items():
        here = f"{pointer}/{key}"
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            for name, sub in value.items():
                yield from _schema_nodes(sub, f"{here}/{name}")
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            for i, sub in enumerate(value):
                yield from _schema_nodes(sub, f"{here}/{i}")
        elif key == "items":
            subs = value if isinstance(value, list) else [value]
            for i, sub in enumerate(subs):
                yield from _schema_nodes(sub, f"{here}/{i}" if isinstance(value, list) else here)
        elif key == "dependencies" and isinstance(value, dict):
            for name, sub in value.items():
                yield from _schema_nodes(sub, f"{here}/{name}")
        elif key in _SCHEMA_ONE:
            yield from _schema_nodes(value, here)


def check_schema(schema: Mapping[str, object]) -> None:
    """Raise ValueError unless ``schema`` is a valid JSON schema the sidecar can apply."""
    try:
        from jsonschema import validators
        from jsonschema.exceptions import SchemaError
    except ImportError:
        raise ValueError(
            "schema checks need the jsonschema package: pip install 'zerog[schema]'"
        ) from None
    cls = validators.validator_for(schema, default=validators.Draft202012Validator)
    try:
        cls.check_schema(dict(schema))
    except SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path) or "(top level)"
        raise ValueError(f"not a valid JSON schema at {where}: {exc.message}") from None
    resolver = Validator(schema)
    for pointer, node in _schema_nodes(schema, "#"):
        for keyword in UNSUPPORTED & node.keys():
            raise ValueError(f"{pointer}: the sidecar validator does not support '{keyword}'")
        if "$id" in node and pointer != "#":
            raise ValueError(f"{pointer}: '$id' is only supported at the top of the schema")
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolver.resolve(ref)
            except ValueError as exc:
                raise ValueError(f"{pointer}: {exc}") from None
        patterns = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
        table = node.get("patternProperties")
        patterns += list(table) if isinstance(table, dict) else []
        for pattern in patterns:
            try:
                re.compile(str(pattern))
            except re.error as exc:
                raise ValueError(f"{pointer}: bad pattern {pattern!r}: {exc}") from None


def _lines_regex(pattern: str | None) -> re.Pattern[str] | None:
    """Output and file patterns are searched like grep does: ``^`` and ``$`` match at
    every line's start and end."""
    return None if pattern is None else re.compile(pattern, re.MULTILINE)


def _runner(check: Check, index: int) -> Runner:
    if isinstance(check, CommandCheck):
        return CommandRunner(check, confirmed=is_examples_command(check.command))
    if isinstance(check, TestsCheck):
        return TestsRunner(check, index)
    if isinstance(check, AssertsCheck):
        command = CommandCheck(command=assert_command(check.path), timeout=check.timeout)
        return CommandRunner(command, confirmed=True)
    if isinstance(check, OutputCheck):
        return OutputRunner(check, _lines_regex(check.matches), _lines_regex(check.not_matches))
    if isinstance(check, FileCheck):
        return FileRunner(check, _lines_regex(check.matches))
    if isinstance(check, SchemaCheck):
        check_schema(check.schema_)
        program = sidecar.schema_program(check.schema_, check.path, check.file_format)
        return SidecarRunner(program, check.timeout)
    program = sidecar.predicate_program(check.python)
    return SidecarRunner(program, check.timeout)


def _field_of(check: Check) -> str:
    return {"schema": "schema", "predicate": "python"}.get(check.kind, "kind")


def _order(checks: Sequence[Check], where: str) -> list[tuple[int, ...]]:
    names: dict[str, int] = {}
    for i, check in enumerate(checks):
        if check.name:
            if check.name in names:
                raise _fail(where, i, check.label, "name", f"'{check.name}' is used twice")
            names[check.name] = i
    after: list[tuple[int, ...]] = []
    for i, check in enumerate(checks):
        deps = []
        for name in check.after:
            if name not in names:
                raise _fail(where, i, check.label, "after", f"no check is named '{name}'")
            if names[name] == i:
                raise _fail(where, i, check.label, "after", "a check cannot wait for itself")
            deps.append(names[name])
        after.append(tuple(deps))
    state = [0] * len(checks)  # 0 new, 1 on the path, 2 done

    def visit(i: int) -> None:
        state[i] = 1
        for j in after[i]:
            if state[j] == 1:
                raise _fail(
                    where, i, checks[i].label, "after", "the 'after' references form a cycle"
                )
            if state[j] == 0:
                visit(j)
        state[i] = 2

    for i in range(len(checks)):
        if state[i] == 0:
            visit(i)
    return after


def compile_checks(checks: Sequence[Check | str], *, where: str = "goal") -> SweepPlan:
    """Validate and compile ``checks`` (plain strings are command checks).

    Raises :class:`ConfigError` naming ``where`` (a goal file, say), the check and the
    field for the first bad definition.
    """
    if not checks:
        raise ConfigError(f"{where}: no checks: give at least one check that proves the goal")
    typed: list[Check] = []
    for i, given in enumerate(checks):
        if not isinstance(given, str):
            typed.append(given)
            continue
        try:
            typed.append(CommandCheck(command=given))
        except ValidationError as exc:
            raise _fail(where, i, given, "command", exc.errors()[0]["msg"]) from None
    after = _order(typed, where)
    compiled = []
    for i, check in enumerate(typed):
        try:
            runner = _runner(check, i)
        except ValueError as exc:
            raise _fail(where, i, check.label, _field_of(check), str(exc)) from None
        compiled.append(CompiledCheck(i, check, check.label, after[i], runner))
    return SweepPlan(tuple(compiled), _batch(compiled))


def _batch(compiled: Sequence[CompiledCheck]) -> SchemaBatch | None:
    members: list[tuple[CompiledCheck, SchemaCheck]] = []
    for c in compiled:
        check = c.check
        if isinstance(check, SchemaCheck) and not c.after:
            members.append((c, check))
    if len(members) < 2:
        return None
    calls = [sidecar.schema_call(ch.schema_, ch.path, ch.file_format) for _, ch in members]
    return SchemaBatch(
        sidecar.schema_batch_program(calls),
        tuple(c.index for c, _ in members),
        tuple(c.label for c, _ in members),
        max(ch.timeout for _, ch in members),
    )
