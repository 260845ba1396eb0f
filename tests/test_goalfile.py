"""Goal files: loading every check kind, overrides, and a clear error for each bad definition;
and `zerog run --goal FILE` end to end with a scripted model and real checks."""

from __future__ import annotations

import functools
import json
from pathlib import Path

import pytest

from builders import plan, step, write, write_script, zerog_cli
from zerog.errors import ConfigError
from zerog.goalfile import load_goal
from zerog.types import (
    CommandCheck,
    FileCheck,
    OutputCheck,
    PredicateCheck,
    SchemaCheck,
    TestsCheck,
)

FULL_TOML = """\
text = "make answer() return 42 and describe it in config.json"
workspace = "ws"
env = ["LANG"]

[budget]
max_iterations = 3
max_seconds = 60

[[checks]]
name = "unit tests"
kind = "tests"
command = "python3 -m pytest -q -p no:cacheprovider"

[[checks]]
kind = "output"
command = "python3 -c 'import app; print(app.answer())'"
matches = '^42$'

[[checks]]
kind = "file"
path = "config.json"
contains = "answer"

[[checks]]
kind = "schema"
path = "config.json"
schema_file = "config.schema.json"
after = ["unit tests"]

[[checks]]
kind = "predicate"
python = '''
import app
app.answer() == 42
'''

[[checks]]
kind = "command"
command = "true"

[[checks]]
name = "plain string"
command = "test -f app.py"
"""

SCHEMA = {
    "type": "object",
    "required": ["answer"],
    "properties": {"answer": {"type": "integer", "minimum": 0}},
    "additionalProperties": False,
}


def project(tmp_path: Path, toml: str = FULL_TOML, name: str = "zerog.toml") -> Path:
    ws = tmp_path / "ws"
    ws.mkdir(exist_ok=True)
    (ws / "app.py").write_text("def answer():\n    return 41\n")
    (ws / "test_app.py").write_text(
        "import app\n\ndef test_answer():\n    assert app.answer() == 42\n"
    )
    (tmp_path / "config.schema.json").write_text(json.dumps(SCHEMA))
    goal = tmp_path / name
    goal.write_text(toml)
    return goal


def test_a_toml_goal_with_every_kind_loads_and_compiles(tmp_path: Path) -> None:
    goal, plan_ = load_goal(project(tmp_path))
    assert goal.text.startswith("make answer()")
    assert goal.workspace == (tmp_path / "ws").resolve()
    assert goal.env_allow == ("LANG",)
    assert goal.budget.max_iterations == 3
    assert goal.budget.max_seconds == 60
    kinds = [type(c) for c in goal.checks]
    assert kinds == [
        TestsCheck,
        OutputCheck,
        FileCheck,
        SchemaCheck,
        PredicateCheck,
        CommandCheck,
        CommandCheck,
    ]
    schema = goal.checks[3]
    assert isinstance(schema, SchemaCheck)
    assert schema.schema_ == SCHEMA  # read from schema_file, relative to the goal file
    assert len(plan_) == 7
    assert plan_.checks[3].after == (0,)
    assert plan_.checks[6].label == "plain string"


def test_a_yaml_goal_is_the_same_goal(tmp_path: Path) -> None:
    toml_goal, _ = load_goal(project(tmp_path))
    yaml_text = """
text: "make answer() return 42 and describe it in config.json"
workspace: ws
env: [LANG]
budget: {max_iterations: 3, max_seconds: 60}
checks:
  - {name: unit tests, kind: tests, command: "python3 -m pytest -q -p no:cacheprovider"}
  - kind: output
    command: "python3 -c 'import app; print(app.answer())'"
    matches: '^42$'
  - {kind: file, path: config.json, contains: answer}
  - {kind: schema, path: config.json, schema_file: config.schema.json, after: [unit tests]}
  - kind: predicate
    python: |
      import app
      app.answer() == 42
  - {kind: command, command: "true"}
  - {name: plain string, command: test -f app.py}
"""
    yaml_goal, _ = load_goal(project(tmp_path, yaml_text, "goal.yaml"))
    assert yaml_goal == toml_goal


def test_overrides_replace_what_the_file_says(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    goal, compiled = load_goal(
        project(tmp_path),
        {
            "text": "something else",
            "workspace": other,
            "checks": ["false"],
            "max_iterations": 9,
            "env": ["TZ"],
        },
    )
    assert goal.text == "something else"
    assert goal.workspace == other
    assert goal.checks == (CommandCheck(command="false"),)
    assert goal.budget.max_iterations == 9
    assert goal.budget.max_seconds == 60  # not overridden: from the file
    assert goal.env_allow == ("TZ",)
    assert len(compiled) == 1


def test_protected_patterns_from_the_file_and_the_command_line(tmp_path: Path) -> None:
    body = FULL_TOML.replace(
        'env = ["LANG"]\n',
        'env = ["LANG"]\nprotected = ["config.schema.json", "data/"]\nprotect_defaults = false\n',
    )
    goal, _ = load_goal(project(tmp_path, body))
    assert goal.protected == ("config.schema.json", "data/")
    assert not goal.protect_defaults
    goal, _ = load_goal(
        project(tmp_path, body), {"protected": ["more.txt"], "protect_defaults": True}
    )
    assert goal.protected == ("config.schema.json", "data/", "more.txt")
    assert goal.protect_defaults
    default, _ = load_goal(project(tmp_path))
    assert default.protected == ()
    assert default.protect_defaults


def test_preflight_from_the_file_and_the_command_line(tmp_path: Path) -> None:
    body = FULL_TOML.replace('env = ["LANG"]\n', 'env = ["LANG"]\npreflight = false\n')
    goal, _ = load_goal(project(tmp_path, body))
    assert not goal.preflight
    goal, _ = load_goal(project(tmp_path, body), {"preflight": True})
    assert goal.preflight
    default, _ = load_goal(project(tmp_path))
    assert default.preflight


BAD = [
    # (goal file body, words the error must contain)
    ("text = 'x'\nchecks = ['true']\npreflight = [1]\n", ["preflight", "boolean"]),
    ("text = 'x'\nchecks = ['true']\nprotected = 'tests/'\n", ["protected", "must be a list"]),
    (
        "text = 'x'\nchecks = ['true']\nprotected = ['../up']\n",
        ["protected:", "may not contain '..'"],
    ),
    ("text = 'x'\nchecks = ['true']\nbogus = 1\n", ["bogus", "not a known field"]),
    ("text = 'x'\n[[checks]]\nkind = 'teleport'\ncommand = 'x'\n", ["check 1", "kind", "one of"]),
    ("text = 'x'\n[[checks]]\nkind = 'file'\n", ["check 1", "path", "Field required"]),
    (
        "text = 'x'\n[[checks]]\nkind = 'file'\npath = '/etc/passwd'\n",
        ["check 1", "path", "leaves"],
    ),
    (
        "text = 'x'\n[[checks]]\nkind = 'file'\npath = 'a/../../b'\n",
        ["path", "leaves the workspace"],
    ),
    (
        "text = 'x'\nchecks = ['true']\n[[checks]]\n",
        ["not valid TOML"],
    ),
    (
        "text = 'x'\n[[checks]]\ncommand = 'true'\n[[checks]]\nkind = 'output'\n"
        "command = 'echo'\nmatches = '(oops'\n",
        ["check 2", "'echo'", "matches", "regular expression"],
    ),
    ("text = 'x'\n[[checks]]\nkind = 'output'\ncommand = 'echo'\n", ["check 1", "matches"]),
    (
        "text = 'x'\n[[checks]]\nkind = 'predicate'\npython = 'x ==== 1'\n",
        ["check 1", "python", "not valid Python", "line 1"],
    ),
    (
        "text = 'x'\n[[checks]]\nkind = 'schema'\npath = 'a.json'\nschema = { type = 'strnig' }\n",
        ["check 1", "schema", "not a valid JSON schema", "type"],
    ),
    (
        "text = 'x'\n[[checks]]\nkind = 'schema'\npath = 'a.json'\n"
        "schema = { unevaluatedProperties = false }\n",
        ["schema", "does not support", "unevaluatedProperties"],
    ),
    (
        "text = 'x'\n[[checks]]\nkind = 'schema'\npath = 'a.json'\n"
        "schema = { '$ref' = 'https://example.com/s.json' }\n",
        ["schema", "remote $ref"],
    ),
    (
        "text = 'x'\n[[checks]]\nkind = 'schema'\npath = 'a.json'\nschema_file = 'nope.json'\n",
        ["cannot read schema file", "nope.json"],
    ),
    (
        "text = 'x'\n[[checks]]\ncommand = 'true'\nafter = ['ghost']\n",
        ["check 1", "after", "no check is named 'ghost'"],
    ),
    (
        "text = 'x'\n[[checks]]\nname = 'a'\ncommand = 'true'\nafter = ['b']\n"
        "[[checks]]\nname = 'b'\ncommand = 'true'\nafter = ['a']\n",
        ["after", "cycle"],
    ),
    (
        "text = 'x'\n[[checks]]\nname = 'a'\ncommand = 'true'\n"
        "[[checks]]\nname = 'a'\ncommand = 'false'\n",
        ["check 2", "name", "used twice"],
    ),
    ("text = 'x'\n[[checks]]\ncommand = 'true'\ntimeout = -1\n", ["check 1", "timeout"]),
    ("text = 'x'\n[[checks]]\ncommand = 'true'\ncolour = 'red'\n", ["colour", "not a known"]),
    ("text = 'x'\nchecks = ['true']\n[budget]\nmax_iterations = 0\n", ["budget.max_iterations"]),
    ("text = 'x'\nchecks = []\n", ["checks", "at least one"]),
    ("checks = ['true']\n", ["text", "missing"]),
    ("text = 'x'\nchecks = [3]\n", ["check 1", "table or a command string"]),
]


@pytest.mark.parametrize(("body", "words"), BAD)
def test_every_bad_definition_is_a_clear_config_error(
    tmp_path: Path, body: str, words: list[str]
) -> None:
    path = tmp_path / "zerog.toml"
    path.write_text(body)
    with pytest.raises(ConfigError) as caught:
        load_goal(path)
    message = str(caught.value)
    assert message.startswith(str(path)), message
    for word in words:
        assert word in message, message


def test_a_huge_or_binary_goal_file_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("text = '" + "x" * (1 << 20) + "'\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_goal(big)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"text = '\xff\xfe'\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_goal(binary)


def test_bad_yaml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "goal.yml"
    path.write_text("text: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_goal(path)
    path.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="must be a table"):
        load_goal(path)


# ------------------------------------------------------------------ the command line


zerog = functools.partial(zerog_cli, columns=150)


@pytest.mark.slow
def test_run_with_a_goal_file_of_several_kinds_succeeds(tmp_path: Path) -> None:
    goal = project(tmp_path)
    fix = write("app.py", "def answer():\n    return 42\n")
    config = write("config.json", '{"answer": 42}\n')
    wrong = write("config.json", '{"answer": "42", "extra": true}\n')
    script = write_script(
        tmp_path / "script.jsonl",
        plan(step("fix, with a bad config", fix, wrong)),
        plan(step("fix, with a good config", fix, config)),
    )
    done = zerog(
        "run", "--goal", str(goal), "-m", f"scripted:{script}", "--sandbox", "local", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    assert result["iterations"] == 2
    names = [r["name"] for r in result["verdict"]["results"]]
    assert names[0] == "unit tests"
    assert "config.json matches its schema" in names
    assert all(r["passed"] for r in result["verdict"]["results"])
    assert json.loads((tmp_path / "ws" / "config.json").read_text()) == {"answer": 42}


@pytest.mark.slow
def test_run_flags_override_the_goal_file(tmp_path: Path) -> None:
    goal = project(tmp_path)
    script = write_script(tmp_path / "script.jsonl", plan(step("nothing", write("x.txt", ""))))
    done = zerog(
        "run", "--goal", str(goal), "-m", f"scripted:{script}", "--sandbox", "local",
        "--check", "test -f x.txt", "--max-iterations", "1", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert [r["name"] for r in result["verdict"]["results"]] == ["test -f x.txt"]


def test_run_with_a_bad_goal_file_fails_before_any_model_call(tmp_path: Path) -> None:
    goal = project(tmp_path, "text = 'x'\n[[checks]]\nkind = 'file'\npath = '../x'\n")
    done = zerog("run", "--goal", str(goal), "-m", "scripted:/nonexistent.jsonl", cwd=tmp_path)
    assert done.returncode == 2
    assert "check 1" in done.stderr
    assert "leaves the workspace" in done.stderr


def test_run_needs_a_goal_text_or_a_goal_file(tmp_path: Path) -> None:
    done = zerog("run", "-c", "true", cwd=tmp_path)
    assert done.returncode == 2
    assert "--goal FILE" in done.stderr


@pytest.mark.slow
def test_protected_files_from_the_command_line_and_in_zerog_show(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "test_app.py").write_text("import app\nassert app.answer() == 42\n")
    (ws / "data.txt").write_text("keep\n")
    fix = write("app.py", "def answer():\n    return 42\n")

    def run(name: str, answer: dict[str, object], *flags: str) -> dict[str, object]:
        # (each goal text its own: the exact cache would answer a repeated request)
        (ws / "app.py").write_text("def answer():\n    return 41\n")
        script = write_script(tmp_path / f"{name}.jsonl", answer)
        done = zerog(
            "run", name, "--check", "python3 test_app.py", "--max-iterations", "1", *flags,
            "-m", f"scripted:{script}", "--sandbox", "local", "-w", str(ws), "--json",
            cwd=tmp_path,
        )  # fmt: skip
        result: dict[str, object] = json.loads(done.stdout)
        return result

    # A shell command changes a test: put back before the sweep; the fix passes.
    changed = run(
        "fix", plan(step("fix", {"kind": "shell", "command": "echo x >> test_app.py"}, fix))
    )
    assert changed["status"] == "success"
    assert (ws / "test_app.py").read_text() == "import app\nassert app.answer() == 42\n"
    shown = zerog("show", str(changed["run_id"]), cwd=tmp_path)
    assert "protected files put back before the checks: test_app.py" in shown.stdout
    # --protect data.txt: a file action on it is refused before it runs.
    refused = run(
        "fix it", plan(step("fix", write("data.txt", "changed\n"), fix)), "--protect", "data.txt"
    )
    assert refused["status"] == "max_iterations"
    assert (ws / "data.txt").read_text() == "keep\n"
    # --no-protect-defaults: the test file may be written (a goal that writes tests).
    written = run(
        "tests", plan(step("write the test", write("test_app.py", "assert True\n"))),
        "--no-protect-defaults",
    )  # fmt: skip
    assert written["status"] == "success"
    assert (ws / "test_app.py").read_text() == "assert True\n"
