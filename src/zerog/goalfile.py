"""Goal files: a goal, its workspace, its checks of every kind and its budget, in TOML
(``zerog.toml``, read with the standard library) or YAML (``*.yaml``/``*.yml``, with the
``yaml`` extra)::

    text = "Fix restock() so the inventory tests pass"
    workspace = "."            # relative to this file; default: its directory
    env = ["LANG"]             # environment variables the sandbox and the planner may see
    protected = ["data/*.csv"] # files the run may not change, besides the tests (default)
    protect_defaults = true    # false: the test files are not protected (a goal that writes them)
    preflight = true           # false: no run of the checks before the first model call
    mounts = ["../shared-data:/data"]   # host paths bwrap also shows: SRC[:DST][:ro|rw]

    [budget]
    max_iterations = 4
    max_seconds = 600

    [[checks]]
    kind = "tests"             # command | tests | output | file | schema | predicate
    command = "python3 -m pytest -q"

    [[checks]]
    kind = "schema"
    path = "config.json"
    schema_file = "config.schema.json"   # relative to this file (or `schema = {...}` inline)

A check may also be a plain string: a command that must exit 0. Everything is validated
here, before any model call: a bad definition is a :class:`ConfigError` that names the
file, the check and the field.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationError

from zerog.errors import ConfigError
from zerog.mount_policy import parse_mount
from zerog.types import Goal, Mount
from zerog.validate.compile import SweepPlan, compile_checks

MAX_GOAL_FILE_BYTES = 1 << 20
MAX_SCHEMA_FILE_BYTES = 4 << 20
TOP_LEVEL = (
    "text",
    "workspace",
    "env",
    "budget",
    "checks",
    "protected",
    "protect_defaults",
    "preflight",
    "mounts",
)
KINDS = "command, tests, output, file, schema, predicate"


def _read(path: Path, limit: int, what: str) -> str:
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    if len(data) > limit:
        raise ConfigError(f"{what} {path} is larger than {limit} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} {path} is not UTF-8: {exc}") from None


def _parse(path: Path, text: str) -> object:
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ConfigError(
                f"{path}: YAML goal files need PyYAML: pip install 'zerog[yaml]' "
                "(or write the goal in TOML)"
            ) from None
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _label(check: object) -> str:
    if isinstance(check, str):
        return check
    if isinstance(check, Mapping):
        for key in ("name", "command", "path", "python", "kind"):
            value = check.get(key)
            if isinstance(value, str) and value:
                return value
    return "?"


def _check_error(path: Path, index: int, check: object, field: str, message: str) -> ConfigError:
    label = " ".join(_label(check).split())
    label = label if len(label) <= 60 else label[:57] + "..."
    return ConfigError(f"{path}: check {index + 1} ({label!r}): {field}: {message}")


def _schema_from_file(path: Path, index: int, check: dict[str, object]) -> None:
    """Replace ``schema_file`` (relative to the goal file) by the schema it holds."""
    name = check.pop("schema_file")
    if "schema" in check:
        raise _check_error(path, index, check, "schema_file", "give 'schema' or 'schema_file'")
    if not isinstance(name, str) or not name:
        raise _check_error(path, index, check, "schema_file", "must be a file name")
    source = path.parent / name
    try:
        text = _read(source, MAX_SCHEMA_FILE_BYTES, "schema file")
    except ConfigError as exc:
        raise _check_error(path, index, check, "schema_file", str(exc)) from None
    try:
        if source.suffix.lower() in (".yaml", ".yml"):
            schema = _parse(source, text)
        else:
            schema = json.loads(text)
    except (ValueError, ConfigError) as exc:
        raise _check_error(path, index, check, "schema_file", f"{name}: {exc}") from None
    if schema is True:
        schema = {}
    if not isinstance(schema, dict):
        raise _check_error(path, index, check, "schema_file", f"{name} is not a JSON object")
    check["schema"] = schema


def _raw_checks(path: Path, raw: object) -> list[object]:
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: checks: must be a list ([[checks]] tables in TOML)")
    checks: list[object] = []
    for index, check in enumerate(raw):
        if isinstance(check, Mapping):
            body = dict(check)
            if body.get("kind") == "schema" and "schema_file" in body:
                _schema_from_file(path, index, body)
            checks.append(body)
        elif isinstance(check, str):
            checks.append(check)
        else:
            raise _check_error(path, index, check, "check", "must be a table or a command string")
    return checks


def _raw_mounts(path: Path, raw: object) -> list[Mount]:
    """``mounts``: ``SRC[:DST][:ro|rw]`` strings or ``{source, dest, mode}`` tables; a
    relative source is relative to the goal file."""
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: mounts: must be a list of SRC[:DST][:ro|rw]")
    mounts = []
    for index, entry in enumerate(raw):
        if isinstance(entry, Mapping) and set(entry) <= {"source", "dest", "mode"}:
            words = [entry.get("source"), entry.get("dest"), entry.get("mode", "ro")]
            if not all(isinstance(w, str | None) for w in words) or not words[0]:
                raise ConfigError(f"{path}: mounts[{index}]: needs a source path")
            entry = ":".join(str(w) for w in words if w)
        if not isinstance(entry, str):
            raise ConfigError(f"{path}: mounts[{index}]: write SRC[:DST][:ro|rw]")
        try:
            mounts.append(parse_mount(entry, base=path.parent.resolve()))
        except (ConfigError, ValidationError) as exc:
            raise ConfigError(f"{path}: mounts[{index}]: {exc}") from None
    return mounts


def _validation_error(path: Path, exc: ValidationError, checks: list[object]) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(p) for p in first["loc"]]
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "not a known field"
    if loc and loc[0] == "checks" and len(loc) >= 2 and loc[1].isdigit():
        index = int(loc[1])
        check = checks[index] if index < len(checks) else None
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            return _check_error(path, index, check, "kind", f"must be one of {KINDS}")
        field = ".".join(loc[3:]) if len(loc) > 3 else "check"
        return _check_error(path, index, check, field, message)
    if loc and loc[0] == "env_allow":
        loc[0] = "env"
    return ConfigError(f"{path}: {'.'.join(loc) or 'goal'}: {message}")


def load_goal(path: Path, overrides: Mapping[str, object] | None = None) -> tuple[Goal, SweepPlan]:
    """Read, validate and compile the goal in ``path``.

    ``overrides`` replace what the file says (the command line's explicit flags): keys
    ``text``, ``workspace`` (a path, used as given), ``checks``, ``env``, ``mounts``,
    ``protect_defaults``, ``preflight`` and any :class:`~zerog.types.Budget` field;
    ``protected`` adds patterns to the file's. Returns the goal and its compiled checks.
    """
    data = _parse(path, _read(path, MAX_GOAL_FILE_BYTES, "goal file"))
    return goal_from_table(data, path, overrides)


def goal_from_table(
    data: object, path: Path, overrides: Mapping[str, object] | None = None
) -> tuple[Goal, SweepPlan]:
    """Validate and compile a goal given as parsed data (a goal file's table, or one line
    of a batch's JSONL). Relative paths in it resolve against ``path``'s directory, and
    errors name ``path``."""
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the goal file must be a table of {', '.join(TOP_LEVEL)}")
    for key in data:
        if key not in TOP_LEVEL:
            raise ConfigError(f"{path}: {key}: not a known field (known: {', '.join(TOP_LEVEL)})")
    over = dict(overrides or {})
    budget = data.get("budget", {})
    if not isinstance(budget, dict):
        raise ConfigError(f"{path}: budget: must be a table")
    budget = {**budget, **{k: over.pop(k) for k in list(over) if k.startswith("max_")}}
    workspace = over.pop("workspace", None)
    if workspace is None:
        relative = data.get("workspace", ".")
        if not isinstance(relative, str):
            raise ConfigError(f"{path}: workspace: must be a path")
        workspace = (path.parent / relative).resolve()
    checks = over.pop("checks", None) or _raw_checks(path, data.get("checks", []))
    protected = data.get("protected", [])
    if not isinstance(protected, list):
        raise ConfigError(f"{path}: protected: must be a list of path patterns")
    extra = over.pop("protected", None)
    mounts = over.pop("mounts", None) or _raw_mounts(path, data.get("mounts", []))
    body = {
        "text": over.pop("text", None) or data.get("text", ""),
        "workspace": workspace,
        "checks": checks,
        "budget": budget,
        "env_allow": over.pop("env", None) or data.get("env", ()),
        "protected": [*protected, *(extra if isinstance(extra, list | tuple) else ())],
        "protect_defaults": over.pop("protect_defaults", data.get("protect_defaults", True)),
        "preflight": over.pop("preflight", data.get("preflight", True)),
        "mounts": mounts,
    }
    if over:
        raise ConfigError(f"unknown goal override(s): {', '.join(sorted(over))}")
    if not body["text"]:
        raise ConfigError(f"{path}: text: missing: say what the goal is (or give it as GOAL)")
    if not body["checks"]:
        raise ConfigError(f"{path}: checks: missing: give at least one check that proves the goal")
    try:
        goal = Goal.model_validate(body)
    except ValidationError as exc:
        raise _validation_error(path, exc, checks if isinstance(checks, list) else []) from None
    return goal, compile_checks(goal.checks, where=str(path))
