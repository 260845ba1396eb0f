"""Each check kind against real files and real processes: the local sandbox for commands,
and both sidecars (CPython/WASI under wasmtime, and an interpreter through the command
sandbox) for predicates and schemas."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.local import LocalSandbox
from zerog.types import (
    Check,
    CheckResult,
    FileCheck,
    OutputCheck,
    PredicateCheck,
    SchemaCheck,
    Status,
    TestsCheck,
)
from zerog.validate.checks import run_check
from zerog.validate.sidecar import (
    LOADER,
    PROGRAM_DIR,
    PythonRunner,
    SandboxPython,
    make_sidecar,
    predicate_program,
    split_predicate,
    store_program,
)

ENV = {"PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
LOCAL = LocalSandbox(ENV)


@pytest.fixture(scope="module")
def wasm() -> PythonRunner:
    return make_sidecar("wasm", LOCAL, ENV, environ=os.environ)


@pytest.fixture(scope="module")
def bwrap() -> Sandbox:
    return make_sandbox("bwrap", ENV, environ=os.environ)


@pytest.fixture(params=["wasm", "bwrap", "local"])
def sidecar(request: pytest.FixtureRequest, wasm: PythonRunner, bwrap: Sandbox) -> PythonRunner:
    if request.param == "wasm":
        return wasm
    if request.param == "bwrap":  # the system's python3 in the default sandbox: no PyYAML
        return make_sidecar("sandbox", bwrap, ENV, environ=os.environ)
    return SandboxPython(LOCAL, sys.executable)


def check(c: Check | str, ws: Path, sidecar: PythonRunner | None = None) -> CheckResult:
    runner = sidecar or SandboxPython(LOCAL, sys.executable)
    return run_check(c, ws, LOCAL, Limits(timeout=30), sidecar=runner)


# ------------------------------------------------------------------ commands and output


def test_command_passes_and_fails_on_exit_status(workspace: Path) -> None:
    assert check("test -f app.py", workspace).passed
    failed = check("echo nope >&2; exit 3", workspace)
    assert not failed.passed
    assert failed.observation.exit_code == 3
    assert "nope" in failed.observation.stderr


def test_output_matches_per_line_like_grep(workspace: Path) -> None:
    assert check(OutputCheck(command="printf 'a\\n42\\nb\\n'", matches="^42$"), workspace).passed
    missing = check(OutputCheck(command="echo 41", matches="^42$"), workspace)
    assert not missing.passed
    assert "no match for /^42$/ in the output" in missing.observation.stderr


def test_output_not_matches_names_the_line(workspace: Path) -> None:
    found = check(OutputCheck(command="printf 'ok\\nWARNING: x\\n'", not_matches="WARN"), workspace)
    assert not found.passed
    assert "output line 2 matches /WARN/" in found.observation.stderr
    assert check(OutputCheck(command="echo fine", not_matches="WARN"), workspace).passed


def test_output_stream_and_exit_code(workspace: Path) -> None:
    command = "echo out; echo err >&2; exit 1"
    assert check(OutputCheck(command=command, matches="err", stream="stderr"), workspace).passed
    assert not check(OutputCheck(command=command, matches="err", stream="stdout"), workspace).passed
    # The exit status is ignored unless asked for, and then it must be the one given.
    assert not check(OutputCheck(command=command, matches="out", exit_code=0), workspace).passed
    assert check(OutputCheck(command=command, matches="out", exit_code=1), workspace).passed


def test_absence_cannot_be_proven_in_truncated_output(workspace: Path) -> None:
    flood = "python3 -c \"print('x' * 200000)\""
    result = run_check(
        OutputCheck(command=flood, not_matches="ERROR"),
        workspace,
        LOCAL,
        Limits(max_output_bytes=1024),
    )
    assert result.observation.truncated
    assert not result.passed
    assert "cannot be proven" in result.observation.stderr


def test_a_timed_out_output_check_fails(workspace: Path) -> None:
    result = run_check(
        OutputCheck(command="echo ok; sleep 5", matches="ok"), workspace, LOCAL, Limits(timeout=0.5)
    )
    assert not result.passed
    assert result.observation.status is Status.TIMEOUT


# ------------------------------------------------------------------ test suites


FAILING_TESTS = """\
import pytest

import app


def test_answer():
    assert app.answer() == 42


def test_fine():
    assert True


@pytest.mark.skip(reason="later")
def test_later():
    pass


@pytest.fixture
def broken():
    raise RuntimeError("fixture broke")


def test_uses_broken(broken):
    pass
"""


@pytest.mark.slow
def test_tests_check_knows_failures_by_name(workspace: Path) -> None:
    (workspace / "test_app.py").write_text(FAILING_TESTS)
    result = check(
        TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider"), workspace
    )
    assert not result.passed
    by_name = {t.name: t for t in result.failed_tests}
    assert set(by_name) == {"test_app.test_answer", "test_app.test_uses_broken"}
    assert by_name["test_app.test_answer"].outcome == "failed"
    assert "assert 41 == 42" in by_name["test_app.test_answer"].message
    assert by_name["test_app.test_uses_broken"].outcome == "error"
    assert "fixture broke" in by_name["test_app.test_uses_broken"].details
    assert "1 failed, 1 passed, 1 errors, 1 skipped" in result.observation.stderr
    assert not list(workspace.glob(".zerog-junit-*")), "report left behind"


@pytest.mark.slow
def test_tests_check_passes_when_the_suite_passes(workspace: Path) -> None:
    (workspace / "test_ok.py").write_text("def test_ok():\n    assert 1\n")
    result = check(
        TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider"), workspace
    )
    assert result.passed, result.observation.stderr
    assert result.failed_tests == ()


FAKE_RUNNER = """\
report="${1#--junitxml=}"
cat > "$report" <<'XML'
<testsuite tests="2"><testcase classname="t" name="ok"/>
<testcase classname="t" name="bad"><failure message="expected 2">trace</failure></testcase>
</testsuite>
XML
exit 1
"""


def test_tests_check_under_bwrap_where_state_is_read_only(workspace: Path, bwrap: Sandbox) -> None:
    # bwrap mounts .zerog/ read-only: the report zerog asks for must land elsewhere.
    (workspace / "runner.sh").write_text(FAKE_RUNNER)
    result = run_check(TestsCheck(command="sh runner.sh"), workspace, bwrap, Limits(timeout=30))
    assert not result.passed
    assert [t.name for t in result.failed_tests] == ["t.bad"], result.observation.stderr
    assert not list(workspace.glob(".zerog-junit-*"))


JUNIT = """<?xml version="1.0"?>
<testsuite tests="2"><testcase classname="suite" name="a"/>
<testcase classname="suite" name="b"><failure message="boom">trace</failure></testcase>
</testsuite>"""


def test_tests_check_reads_a_report_the_command_writes(workspace: Path) -> None:
    (workspace / "junit.xml.in").write_text(JUNIT)
    (workspace / "out").mkdir()
    result = check(
        TestsCheck(command="cp junit.xml.in out/junit.xml", junit="out/junit.xml"), workspace
    )
    assert not result.passed  # exit 0, but the report has a failure
    assert [t.name for t in result.failed_tests] == ["suite.b"]
    assert "the command exited 0, but the report has failures" in result.observation.stderr


def test_a_stale_or_missing_report_fails_the_check(workspace: Path) -> None:
    (workspace / "junit.xml").write_text(
        JUNIT.replace("<failure", "<skipped").replace("</failure>", "</skipped>")
    )
    stale = check(TestsCheck(command="true", junit="junit.xml"), workspace)
    assert not stale.passed
    assert "was not rewritten" in stale.observation.stderr
    missing = check(TestsCheck(command="true", junit="none.xml"), workspace)
    assert not missing.passed
    assert "no junit report" in missing.observation.stderr


# ------------------------------------------------------------------ files


def test_file_exists_and_not_exists(workspace: Path) -> None:
    assert check(FileCheck(path="app.py"), workspace).passed
    assert not check(FileCheck(path="nope.py"), workspace).passed
    assert check(FileCheck(path="nope.py", exists=False), workspace).passed
    assert not check(FileCheck(path="app.py", exists=False), workspace).passed


def test_file_contains_text_or_regex_and_shows_what_it_found(workspace: Path) -> None:
    assert check(FileCheck(path="app.py", contains="return 41"), workspace).passed
    assert check(FileCheck(path="app.py", matches=r"^\s+return \d+$"), workspace).passed
    wrong = check(FileCheck(path="app.py", contains="return 42"), workspace)
    assert not wrong.passed
    assert "does not contain 'return 42'" in wrong.observation.stderr
    assert "return 41" in wrong.observation.stderr  # the excerpt of what is there


def test_file_check_does_not_follow_links_out_of_the_workspace(
    workspace: Path, tmp_path: Path
) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET\n")
    (workspace / "link.txt").symlink_to(secret)
    result = check(FileCheck(path="link.txt", contains="SECRET"), workspace)
    assert not result.passed
    assert "outside the workspace" in result.observation.stderr
    assert "TOP SECRET" not in result.observation.stderr


def test_file_check_refuses_fifos_and_huge_files(workspace: Path) -> None:
    os.mkfifo(workspace / "pipe")
    fifo = check(FileCheck(path="pipe", contains="x"), workspace)  # must not block
    assert not fifo.passed
    assert "not a regular file" in fifo.observation.stderr
    with (workspace / "big.bin").open("wb") as handle:
        handle.truncate(17 * 1024 * 1024)
    big = check(FileCheck(path="big.bin", contains="x"), workspace)
    assert not big.passed
    assert "larger than" in big.observation.stderr


# ------------------------------------------------------------------ schemas (in the sidecar)

CONFIG_SCHEMA: dict[str, object] = {
    "type": "object",
    "required": ["name", "port"],
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z]+$"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True},
    },
    "additionalProperties": False,
}


def schema_check(path: str) -> SchemaCheck:
    return SchemaCheck.model_validate({"path": path, "schema": CONFIG_SCHEMA})


def test_schema_valid_and_invalid_json(workspace: Path, sidecar: PythonRunner) -> None:
    (workspace / "good.json").write_text(json.dumps({"name": "web", "port": 80, "tags": ["a"]}))
    good = check(schema_check("good.json"), workspace, sidecar)
    assert good.passed, good.observation.stderr
    bad = {"name": "Web", "port": 70000, "tags": ["a", "a"], "extra": 1}
    (workspace / "bad.json").write_text(json.dumps(bad))
    result = check(schema_check("bad.json"), workspace, sidecar)
    assert not result.passed
    err = result.observation.stderr
    assert '$.name: "Web" does not match /^[a-z]+$/' in err
    assert "$.port: 70000 is greater than 65535" in err
    assert "$.tags: item 1" in err
    assert "property 'extra' is not allowed" in err


def test_schema_of_a_yaml_file(workspace: Path, sidecar: PythonRunner) -> None:
    (workspace / "conf.yaml").write_text("name: web\nport: 8080\n")
    assert check(schema_check("conf.yaml"), workspace, sidecar).passed
    (workspace / "conf.yml").write_text("name: web\nport: '8080'\n")
    result = check(schema_check("conf.yml"), workspace, sidecar)
    assert not result.passed
    assert '$.port: "8080" is not of type integer' in result.observation.stderr


def test_schema_of_an_unreadable_file_fails(workspace: Path, sidecar: PythonRunner) -> None:
    (workspace / "broken.json").write_text('{"name": "web",')
    result = check(schema_check("broken.json"), workspace, sidecar)
    assert not result.passed
    assert "cannot be read as JSON" in result.observation.stderr
    missing = check(schema_check("missing.json"), workspace, sidecar)
    assert not missing.passed
    assert "does not exist" in missing.observation.stderr


def test_schema_check_does_not_read_outside_the_workspace(workspace: Path, tmp_path: Path) -> None:
    outside = tmp_path / "host.json"
    outside.write_text('{"name": "SECRET-ON-HOST"}')
    (workspace / "link.json").symlink_to(outside)
    result = check(schema_check("link.json"), workspace)
    assert not result.passed
    assert "outside the workspace" in result.observation.stderr
    assert "SECRET-ON-HOST" not in result.observation.stderr + result.observation.stdout


# ------------------------------------------------------------------ predicates (in the sidecar)


def test_predicate_true_and_false_with_both_sides(workspace: Path, sidecar: PythonRunner) -> None:
    assert check(PredicateCheck(python="len(read('app.py')) > 10"), workspace, sidecar).passed
    false = check(PredicateCheck(python="import app\napp.answer() == 42"), workspace, sidecar)
    assert not false.passed
    assert "predicate is false: 41 == 42" in false.observation.stderr


def test_predicate_statements_and_helpers(workspace: Path, sidecar: PythonRunner) -> None:
    (workspace / "data.json").write_text('{"items": [1, 2, 3]}')
    code = "items = load_json('data.json')['items']\nassert sum(items) == 6\n"
    assert check(PredicateCheck(python=code), workspace, sidecar).passed
    helpers = "Path('data.json').exists() and re.search(r'\\d', read('data.json')) is not None"
    assert check(PredicateCheck(python=helpers), workspace, sidecar).passed


def test_predicate_exception_shows_the_last_frames(workspace: Path, sidecar: PythonRunner) -> None:
    (workspace / "deep.py").write_text(
        "def a():\n    return b()\n\ndef b():\n    return {}['missing']\n"
    )
    result = check(PredicateCheck(python="import deep\ndeep.a() == 1"), workspace, sidecar)
    assert not result.passed
    err = result.observation.stderr
    assert "KeyError: 'missing'" in err
    assert "return {}['missing']" in err
    assert "predicate raised an exception" in err


def test_predicate_runs_in_the_wasm_guest_not_the_host(workspace: Path, wasm: PythonRunner) -> None:
    assert check(
        PredicateCheck(python="import sys\nsys.platform == 'wasi'"), workspace, wasm
    ).passed
    # The host's files are not there: only the workspace is.
    probe = f"os.path.exists({str(Path(sys.executable))!r})"
    result = check(PredicateCheck(python=probe), workspace, wasm)
    assert not result.passed
    assert "its value is False" in result.observation.stderr


def test_split_predicate_keeps_the_source() -> None:
    assert split_predicate("x = 1\nx + 1 == 3") == ("x = 1", ["x + 1", "==", "3"], [])
    assert split_predicate("a = 1; a in [1]") == ("a = 1", ["a", "in", "[1]"], [])
    assert split_predicate("assert Path('x')") == ("assert Path('x')", [], ["Path"])
    assert split_predicate("json.loads('1')") == ("", ["json.loads('1')"], ["json"])


def test_a_tampered_program_is_rewritten_and_a_forged_one_refused(workspace: Path) -> None:
    program = predicate_program("1 == 2")
    relative, digest = store_program(workspace, program)
    (workspace / relative).write_text("raise SystemExit(0)\n")  # a model plants a pass
    result = check(PredicateCheck(python="1 == 2"), workspace)
    assert not result.passed, "the planted program ran"
    assert "1 == 2" in result.observation.stderr
    # The loader refuses a program whose hash is not the expected one.
    forged = workspace / PROGRAM_DIR / "forged.py"
    forged.write_text("raise SystemExit(0)\n")
    command = f'{sys.executable} -I -c "{LOADER}" {forged.relative_to(workspace)} {digest}'
    refused = check(command, workspace)
    assert not refused.passed
    assert "was modified in the workspace: not run" in refused.observation.stderr
