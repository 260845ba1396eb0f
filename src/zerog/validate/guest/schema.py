"""A small JSON Schema validator that needs nothing but the standard library.

This file is a *guest program*: the sweep ships its source, followed by a call of
:func:`main`, to the validation sidecar (CPython/WASI, or a sandboxed interpreter), so it
never runs in the host process. It must stay self-contained: standard library only, no
zerog imports.

It covers the assertion keywords of drafts 7 to 2020-12 that goal files use; the host
refuses (when the goal is compiled) any schema with a keyword listed in
:data:`UNSUPPORTED`, so a check never passes because a keyword was silently ignored.
Local ``$ref`` (``#`` and ``#/json/pointer``) is supported; remote references are not.
"""

from __future__ import annotations

import _json
import math
import os
import sys

TYPE_CHECKING = False  # typing and collections.abc cost milliseconds under WASI: not at run time
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_ERRORS = 20
MAX_DEPTH = 200
UNSUPPORTED = frozenset(
    {
        "$dynamicRef",
        "$dynamicAnchor",
        "$recursiveRef",
        "$recursiveAnchor",
        "$anchor",
        "unevaluatedProperties",
        "unevaluatedItems",
    }
)

Json = object


def _type_ok(value: Json, name: str) -> bool:
    if name == "null":
        return value is None
    if name == "boolean":
        return isinstance(value, bool)
    if name == "object":
        return isinstance(value, dict)
    if name == "array":
        return isinstance(value, list)
    if name == "string":
        return isinstance(value, str)
    if isinstance(value, bool):
        return False
    if name == "number":
        return isinstance(value, int | float)
    if name == "integer":
        return isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    return False


def _equal(a: Json, b: Json) -> bool:
    """JSON equality: 1 == 1.0, but true != 1 and lists/objects compare deeply."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


class _Context:
    """What the C scanner of :mod:`_json` reads from its decoder (``json`` itself imports
    ``re``, which costs ~40 ms under WASI; the builtin scanner costs nothing)."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict[str, str] = {}  # noqa: RUF012 - the scanner's string memo, per process

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}[name]


_WHITESPACE = " \t\n\r"


def loads(text: str) -> Json:
    """``json.loads`` on the builtin scanner; ValueError on bad JSON."""
    scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed context
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = scan(text, start)
    except StopIteration as stop:
        raise ValueError(f"invalid JSON at character {stop.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"extra data after the JSON value at character {end}")
    return value


def _dumps(value: Json, budget: int = 80) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return str(_json.encode_basestring(value))
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        parts, used = [], 2
        for item in value:
            if used > budget:
                parts.append("...")
                break
            parts.append(_dumps(item, budget - used))
            used += len(parts[-1]) + 2
        return "[" + ", ".join(parts) + "]"
    if isinstance(value, dict):
        parts, used = [], 2
        for key, item in value.items():
            if used > budget:
                parts.append("...")
                break
            parts.append(f"{_dumps(str(key))}: {_dumps(item, budget - used)}")
            used += len(parts[-1]) + 2
        return "{" + ", ".join(parts) + "}"
    return repr(value)


def _short(value: Json) -> str:
    text = _dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _unquote(text: str) -> str:
    """Percent-decoding of a JSON pointer in a URI fragment (no urllib: it is slow to load)."""
    if "%" not in text:
        return text
    data = bytearray()
    i = 0
    while i < len(text):
        if text[i] == "%" and _is_hex(text[i + 1 : i + 3]):
            data.append(int(text[i + 1 : i + 3], 16))
            i += 3
        else:
            data += text[i].encode()
            i += 1
    return data.decode("utf-8", errors="replace")


def _is_hex(pair: str) -> bool:
    return len(pair) == 2 and all(c in "0123456789abcdefABCDEF" for c in pair)


def _search(pattern: str, text: str) -> bool:
    import re  # only schemas with patterns pay for loading it

    return re.search(pattern, text) is not None


def _where(path: tuple[str | int, ...]) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


class Validator:
    def __init__(self, root: Json) -> None:
        self.root = root

    def resolve(self, ref: str) -> Json:
        if not ref.startswith("#"):
            raise ValueError(f"remote $ref {ref!r} is not supported")
        node = self.root
        for token in ref[1:].lstrip("/").split("/") if ref not in ("#", "#/") else []:
            key = _unquote(token).replace("~1", "/").replace("~0", "~")
            if isinstance(node, dict) and key in node:
                node = node[key]
            elif isinstance(node, list) and key.isdigit() and int(key) < len(node):
                node = node[int(key)]
            else:
                raise ValueError(f"$ref {ref!r} does not resolve")
        return node

    def valid(self, value: Json, schema: Json, depth: int = 0) -> bool:
        return next(self.errors(value, schema, (), depth), None) is None

    def errors(
        self, value: Json, schema: Json, path: tuple[str | int, ...], depth: int = 0
    ) -> Iterator[str]:
        if depth > MAX_DEPTH:
            yield f"{_where(path)}: schema nesting deeper than {MAX_DEPTH} (a $ref loop?)"
            return
        if schema is True:
            return
        if schema is False:
            yield f"{_where(path)}: no value is allowed here"
            return
        if not isinstance(schema, dict):
            return
        at = _where(path)
        if "$ref" in schema:
            yield from self.errors(value, self.resolve(str(schema["$ref"])), path, depth + 1)
        if "type" in schema:
            names = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
            if not any(_type_ok(value, str(n)) for n in names):
                yield f"{at}: {_short(value)} is not of type {' or '.join(map(str, names))}"
        enum = schema.get("enum")
        if isinstance(enum, list) and not any(_equal(value, option) for option in enum):
            yield f"{at}: {_short(value)} is not one of {_short(schema['enum'])}"
        if "const" in schema and not _equal(value, schema["const"]):
            yield f"{at}: {_short(value)} is not {_short(schema['const'])}"
        for keyword in ("allOf", "anyOf", "oneOf"):
            subs = schema.get(keyword)
            if not isinstance(subs, list):
                continue
            if keyword == "allOf":
                for sub in subs:
                    yield from self.errors(value, sub, path, depth + 1)
                continue
            passing = sum(1 for sub in subs if self.valid(value, sub, depth + 1))
            if keyword == "anyOf" and passing == 0:
                yield f"{at}: {_short(value)} matches none of the anyOf schemas"
            if keyword == "oneOf" and passing != 1:
                yield f"{at}: {_short(value)} matches {passing} of the oneOf schemas, not 1"
        if "not" in schema and self.valid(value, schema["not"], depth + 1):
            yield f"{at}: {_short(value)} matches a schema it must not match"
        if "if" in schema:
            branch = "then" if self.valid(value, schema["if"], depth + 1) else "else"
            if branch in schema:
                yield from self.errors(value, schema[branch], path, depth + 1)
        if isinstance(value, str):
            yield from self._string(value, schema, at)
        elif isinstance(value, int | float) and not isinstance(value, bool):
            yield from self._number(value, schema, at)
        elif isinstance(value, list):
            yield from self._array(value, schema, path, depth)
        elif isinstance(value, dict):
            yield from self._object(value, schema, path, depth)

    def _string(self, value: str, schema: dict[str, Json], at: str) -> Iterator[str]:
        length = len(value)
        low, high = schema.get("minLength"), schema.get("maxLength")
        if isinstance(low, int) and length < low:
            yield f"{at}: {_short(value)} is shorter than {low} characters"
        if isinstance(high, int) and length > high:
            yield f"{at}: {_short(value)} is longer than {high} characters"
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and not _search(pattern, value):
            yield f"{at}: {_short(value)} does not match /{pattern}/"

    def _number(self, value: float, schema: dict[str, Json], at: str) -> Iterator[str]:
        bounds: tuple[tuple[str, Callable[[float], bool], str], ...] = (
            ("minimum", lambda b: value < b, "less than"),
            ("maximum", lambda b: value > b, "greater than"),
            ("exclusiveMinimum", lambda b: value <= b, "less than or equal to"),
            ("exclusiveMaximum", lambda b: value >= b, "greater than or equal to"),
        )
        for keyword, broken, words in bounds:
            bound = schema.get(keyword)
            if isinstance(bound, int | float) and not isinstance(bound, bool) and broken(bound):
                yield f"{at}: {_short(value)} is {words} {bound}"
        step = schema.get("multipleOf")
        if isinstance(step, int | float) and not isinstance(step, bool) and step > 0:
            quotient = value / step
            if not (math.isfinite(quotient) and math.isclose(quotient, round(quotient))):
                yield f"{at}: {_short(value)} is not a multiple of {step}"

    def _array(
        self, value: list[Json], schema: dict[str, Json], path: tuple[str | int, ...], depth: int
    ) -> Iterator[str]:
        at = _where(path)
        low, high = schema.get("minItems"), schema.get("maxItems")
        if isinstance(low, int) and len(value) < low:
            yield f"{at}: has {len(value)} items, fewer than {low}"
        if isinstance(high, int) and len(value) > high:
            yield f"{at}: has {len(value)} items, more than {high}"
        if schema.get("uniqueItems") is True:
            for i, item in enumerate(value):
                if any(_equal(item, other) for other in value[:i]):
                    yield f"{at}: item {i} ({_short(item)}) is not unique"
                    break
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        rest: Json = None
        if isinstance(items, list):  # draft 7 tuple form
            prefix, rest = items, schema.get("additionalItems")
        else:
            rest = items
        start = 0
        if isinstance(prefix, list):
            for i, sub in enumerate(prefix[: len(value)]):
                yield from self.errors(value[i], sub, (*path, i), depth + 1)
            start = len(prefix)
        if rest is not None:
            for i in range(start, len(value)):
                yield from self.errors(value[i], rest, (*path, i), depth + 1)
        if "contains" in schema:
            found = sum(1 for item in value if self.valid(item, schema["contains"], depth + 1))
            least = schema.get("minContains", 1)
            most = schema.get("maxContains")
            if isinstance(least, int) and found < least:
                yield f"{at}: {found} items match 'contains', fewer than {least}"
            if isinstance(most, int) and found > most:
                yield f"{at}: {found} items match 'contains', more than {most}"

    def _object(
        self,
        value: dict[str, Json],
        schema: dict[str, Json],
        path: tuple[str | int, ...],
        depth: int,
    ) -> Iterator[str]:
        at = _where(path)
        low, high = schema.get("minProperties"), schema.get("maxProperties")
        if isinstance(low, int) and len(value) < low:
            yield f"{at}: has {len(value)} properties, fewer than {low}"
        if isinstance(high, int) and len(value) > high:
            yield f"{at}: has {len(value)} properties, more than {high}"
        required = schema.get("required")
        if isinstance(required, list):
            for name in required:
                if isinstance(name, str) and name not in value:
                    yield f"{at}: required property {name!r} is missing"
        dependent: dict[str, Json] = {}
        for keyword in ("dependencies", "dependentRequired", "dependentSchemas"):
            table = schema.get(keyword)
            if isinstance(table, dict):
                dependent.update(table)
        for trigger, need in dependent.items():
            if trigger not in value:
                continue
            if isinstance(need, list):
                for name in need:
                    if isinstance(name, str) and name not in value:
                        yield f"{at}: property {name!r} is required when {trigger!r} is present"
            else:
                yield from self.errors(value, need, path, depth + 1)
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        patterns = schema.get("patternProperties")
        patterns = patterns if isinstance(patterns, dict) else {}
        extra = schema.get("additionalProperties")
        names = schema.get("propertyNames")
        for key, item in value.items():
            if names is not None:
                for error in self.errors(key, names, (*path, key), depth + 1):
                    yield f"property name {key!r}: {error}"
            matched = key in properties
            if matched:
                yield from self.errors(item, properties[key], (*path, key), depth + 1)
            for pattern, sub in patterns.items():
                if _search(pattern, key):
                    matched = True
                    yield from self.errors(item, sub, (*path, key), depth + 1)
            if not matched and extra is not None:
                if extra is False:
                    yield f"{at}: property {key!r} is not allowed"
                else:
                    yield from self.errors(item, extra, (*path, key), depth + 1)


def validate(value: Json, schema: Json, limit: int = MAX_ERRORS) -> list[str]:
    """Up to ``limit`` messages, one per violation, each starting with a JSON path."""
    out: list[str] = []
    for error in Validator(schema).errors(value, schema, ()):
        out.append(error)
        if len(out) >= limit:
            break
    return out


def _load(path: str, fmt: str, lib: str) -> Json:
    real, root = os.path.realpath(path), os.path.realpath(os.getcwd())
    if os.path.commonpath([real, root]) != root:
        raise ValueError(f"{path} resolves outside the workspace")
    if not os.path.isfile(real):
        raise ValueError(f"{path} does not exist or is not a regular file")
    with open(real, "rb") as handle:
        data = handle.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise ValueError(f"{path} is larger than {MAX_FILE_BYTES} bytes")
    text = data.decode("utf-8")
    if fmt == "json":
        return loads(text)
    if lib and lib not in sys.path:
        # The pure-Python PyYAML the host put there, last: the modules PyYAML imports come
        # from the standard library, whatever else that directory may hold.
        sys.path.append(lib)
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise ValueError("YAML files need PyYAML in the validation sidecar") from None
    return yaml.safe_load(text)  # type: ignore[no-any-return,unused-ignore]


def main(schema_text: str, path: str, fmt: str, lib: str = "") -> int:
    """Exit status: 0 valid, 1 invalid, 2 the file could not be read or parsed."""
    schema = loads(schema_text)
    try:
        value = _load(path, fmt, lib)
    except (OSError, ValueError) as exc:  # JSON/YAML/Unicode errors are ValueErrors
        print(f"{path}: cannot be read as {fmt.upper()}: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # yaml.YAMLError and the like
        print(f"{path}: cannot be read as {fmt.upper()}: {exc}", file=sys.stderr)
        return 2
    try:
        errors = validate(value, schema)
    except (ValueError, RecursionError) as exc:  # re.error is a ValueError
        print(f"{path}: the schema could not be applied: {exc}", file=sys.stderr)
        return 2
    if not errors:
        print(f"{path}: valid")
        return 0
    print(f"{path} does not match its schema:", file=sys.stderr)
    for error in errors:
        print(f"  {error}", file=sys.stderr)
    if len(errors) >= MAX_ERRORS:
        print(f"  (stopped after {MAX_ERRORS} errors)", file=sys.stderr)
    return 1


RESULT_MARK = "@@zerog-check@@ "


def main_many(calls: list[tuple[str, str, str, str]]) -> int:
    """Several schema checks in one run (they execute no workspace code, so they may share
    an interpreter): one line per check on stdout, ``RESULT_MARK`` then the repr of
    ``(index, status, stdout, stderr)``, which the host reads with ``ast.literal_eval``."""
    import io

    for index, call in enumerate(calls):
        out, err = io.StringIO(), io.StringIO()
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = out, err
        try:
            status = main(*call)
        except (Exception, RecursionError) as exc:
            print(f"the schema check failed: {type(exc).__name__}: {exc}", file=err)
            status = 2
        finally:
            sys.stdout, sys.stderr = saved
        print(RESULT_MARK + repr((index, status, out.getvalue(), err.getvalue())), flush=True)
    return 0
