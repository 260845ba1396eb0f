"""Forged checks (issue 17, finding 3): an attempt must not be able to make a check pass
while the files are still wrong. Each forgery that was shown to work is played here at
the level where it was shown (the sidecar, the sweep, the engine, `zerog run`, the
HumanEval judge), on every sidecar and sandbox backend it applies to; each of these tests
failed before the fix.

The workspaces are built the way the engine builds them: the sandbox's environment comes
from :func:`zerog.redact.sandbox_env` with ``HOME`` set to the workspace, which is what
lets an attempt plant files in the home of later commands.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from builders import plan, shell, step, write, write_script, zerog_cli
from zerog.bench.humaneval import Task, judge
from zerog.engine.loop import Engine
from zerog.events import Event
from zerog.models.scripted import ScriptedModel, parse_line
from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.factory import make_sandbox
from zerog.sandbox.wasm import default_data_dir
from zerog.types import (
    AssertsCheck,
    Budget,
    Check,
    CommandCheck,
    Goal,
    PredicateCheck,
    RunStatus,
    SchemaCheck,
    TestsCheck,
    Verdict,
)
from zerog.validate.examples import examples_check
from zerog.validate.sidecar import make_sidecar
from zerog.validate.sweep import sweep

LIMITS = Limits(timeout=60)
SCHEMA = {"type": "object", "required": ["port"], "properties": {"port": {"type": "integer"}}}
WRONG_DATA = '{"port": "8080"}\n'
RIGHT_DATA = '{"port": 8080}\n'
PORT_IS_8080 = "load_json('data.json')['port'] == 8080"
EXIT_0 = "import sys\nsys.exit(0)\n"


@pytest.fixture(autouse=True)
def nothing_survives() -> None:
    """These payloads start no background process, so the hostile suite's survivor check
    is left out: it scans the whole machine and would take (and kill) the processes of
    other test runs on it for ours."""


@pytest.fixture(scope="module")
def data_dir() -> Path:
    """Where `make setup` installed CPython for WASI."""
    return default_data_dir(os.environ)


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n")
    return root


Backends = Callable[[str], Sandbox]


@pytest.fixture
def backend(ws: Path, data_dir: Path) -> Iterator[Backends]:
    """Build a backend as the engine does: HOME is the workspace."""
    built: list[Sandbox] = []

    def make(name: str) -> Sandbox:
        env = sandbox_env(os.environ, [], home=str(ws))
        sandbox = make_sandbox(name, env, environ=os.environ, data_dir=data_dir)
        built.append(sandbox)
        return sandbox

    yield make
    for sandbox in built:
        close = getattr(sandbox, "close", None)
        if close is not None:
            close()


def run_sweep(
    checks: list[Check], ws: Path, sandbox: Sandbox, sidecar_name: str | None = None
) -> Verdict:
    env = sandbox_env(os.environ, [], home=str(ws))
    sidecar = (
        make_sidecar(sidecar_name, sandbox, env, environ=os.environ)
        if sidecar_name is not None
        else None
    )
    return sweep(checks, ws, sandbox, LIMITS, sidecar=sidecar, rerun_failures=False)


def sidecar_checks() -> list[Check]:
    return [
        SchemaCheck.model_validate({"path": "data.json", "schema": SCHEMA}),
        PredicateCheck(python=PORT_IS_8080),
        PredicateCheck(python="import app\napp.answer() == 42"),
    ]


# (sidecar, command sandbox): the WASM sidecar whatever the command sandbox, and the
# `sandbox` sidecar where the command sandbox is the WASM one (the same guest shell).
WASM_GUESTS = [("wasm", "local"), ("wasm", "bwrap"), ("sandbox", "wasm")]
EVERY_SIDECAR = [*WASM_GUESTS, ("sandbox", "local"), ("sandbox", "bwrap")]


@pytest.mark.parametrize(("sidecar", "name"), WASM_GUESTS)
def test_a_workspace_hashlib_does_not_pass_sidecar_checks(
    ws: Path, backend: Backends, sidecar: str, name: str
) -> None:
    # The guest shell put the working directory first on sys.path even under -I, so the
    # loader's `import hashlib` ran the workspace's, which exited 0: every check passed.
    (ws / "hashlib.py").write_text(EXIT_0)
    (ws / "data.json").write_text(WRONG_DATA)
    sandbox = backend(name)
    verdict = run_sweep(sidecar_checks(), ws, sandbox, sidecar)
    assert [r.passed for r in verdict.results] == [False, False, False], verdict
    # The same planted module next to right files: the checks pass (the loader works).
    (ws / "data.json").write_text(RIGHT_DATA)
    (ws / "app.py").write_text("def answer():\n    return 42\n")
    assert run_sweep(sidecar_checks(), ws, sandbox, sidecar).passed
    assert not (ws / "__pycache__").exists()  # (a stale app.pyc would have answered 41)


@pytest.mark.parametrize(("sidecar", "name"), EVERY_SIDECAR)
def test_a_workspace_json_does_not_forge_a_predicate(
    ws: Path, backend: Backends, sidecar: str, name: str
) -> None:
    # The predicate guest put the workspace first on sys.path, so `json` (its load_json
    # helper, or the predicate's own import) was the workspace's.
    (ws / "json.py").write_text("def loads(text, **kw):\n    return {'port': 8080}\n")
    (ws / "data.json").write_text(WRONG_DATA)
    checks: list[Check] = [
        PredicateCheck(python=PORT_IS_8080),
        PredicateCheck(python="import json\njson.loads(read('data.json'))['port'] == 8080"),
    ]
    verdict = run_sweep(checks, ws, backend(name), sidecar)
    assert [r.passed for r in verdict.results] == [False, False], verdict
    assert "predicate is false" in verdict.results[0].observation.stderr


def plant_user_site(home: Path, code: str) -> None:
    """A .pth file in the user site-packages of every Python 3 the sandbox may run."""
    for minor in range(8, 16):
        site = home / ".local" / "lib" / f"python3.{minor}" / "site-packages"
        site.mkdir(parents=True)
        (site / "zz_forge.pth").write_text(code)


@pytest.mark.parametrize("name", ["local", "bwrap"])  # the WASM guest reads no user site
def test_a_pth_in_the_home_does_not_pass_python_checks(
    ws: Path, backend: Backends, name: str
) -> None:
    # HOME was the workspace: a .pth in ~/.local/... ran `os._exit(0)` at the start of
    # every python3 that reads the user site-packages, before the check did anything.
    plant_user_site(ws, "import os; os._exit(0)\n")
    (ws / "check.py").write_text("import app\nassert app.answer() == 42, app.answer()\n")
    checks: list[Check] = [
        CommandCheck(command="python3 check.py"),
        CommandCheck(command="python3 -c 'import app; assert app.answer() == 42'"),
        AssertsCheck(path="check.py"),
    ]
    verdict = run_sweep(checks, ws, backend(name))
    assert [r.passed for r in verdict.results] == [False, False, False], verdict
    assert "AssertionError" in verdict.results[0].observation.stderr


@pytest.mark.parametrize(
    ("name", "how"),
    [
        *((name, how) for name in ("local", "bwrap") for how in ("sys.exit(0)", "os._exit(0)")),
        ("wasm", "sys.exit(0)"),  # WASI has no os._exit
    ],
)
def test_code_under_test_ending_the_process_does_not_pass_an_asserts_check(
    ws: Path, backend: Backends, name: str, how: str
) -> None:
    # The asserts runner re-raised a SystemExit, and nothing told an exit 0 before the
    # asserts ran from one after them: a solution that exits at import passed its tests.
    (ws / "app.py").write_text(f"import os, sys\n{how}\ndef answer():\n    return 41\n")
    (ws / "tests.py").write_text("from app import answer\nassert answer() == 42\n")
    verdict = run_sweep([AssertsCheck(path="tests.py")], ws, backend(name))
    assert not verdict.passed, verdict
    # A script that ends itself with sys.exit(0) after its asserts still passes.
    (ws / "app.py").write_text("def answer():\n    return 42\n")
    (ws / "tests.py").write_text(
        "import sys\nfrom app import answer\nassert answer() == 42\nsys.exit(0)\n"
    )
    assert run_sweep([AssertsCheck(path="tests.py")], ws, backend(name)).passed


@pytest.mark.parametrize("name", ["local", "bwrap"])
@pytest.mark.parametrize("planted", ["json.py", "os._exit"])
def test_the_docstring_examples_check_cannot_be_forged(
    ws: Path, backend: Backends, name: str, planted: str
) -> None:
    # The examples runner ran as `python3 -c` (the workspace first on sys.path): a
    # workspace json.py gave it no examples to check; an exit at import passed it too.
    source = 'def answer():\n    """\n    >>> answer()\n    42\n    """\n    return 41\n'
    check = examples_check("app.py", source)
    if planted == "json.py":
        (ws / "app.py").write_text(source)
        (ws / "json.py").write_text("def loads(text, **kw):\n    return []\n")
    else:
        (ws / "app.py").write_text("import os\nos._exit(0)\n" + source)
    verdict = run_sweep([check], ws, backend(name))
    assert not verdict.passed, verdict
    (ws / "app.py").write_text(source.replace("41", "42"))
    assert run_sweep([check], ws, backend(name)).passed


FORGED_JUNIT = (
    '<testsuites><testsuite name="pytest" tests="1" failures="0" errors="0">'
    '<testcase classname="test_app" name="test_answer"/></testsuite></testsuites>'
)


def junit_writer(then: str) -> str:
    """Python that writes a passing junit report where pytest was asked to, then ``then``."""
    return (
        "import os, sys\n"
        "for arg in sys.argv:\n"
        "    if arg.startswith('--junitxml='):\n"
        f"        open(arg.split('=', 1)[1], 'w').write({FORGED_JUNIT!r})\n"
        f"{then}\n"
    )


def test_a_workspace_pytest_module_does_not_pass_a_tests_check(ws: Path, backend: Backends) -> None:
    # `python3 -m pytest` imported the workspace's pytest.py, which wrote a passing
    # report where zerog asked for it and exited 0.
    (ws / "test_app.py").write_text(
        "import app\n\ndef test_answer():\n    assert app.answer() == 42\n"
    )
    (ws / "pytest.py").write_text(junit_writer("sys.exit(0)"))
    suite = TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider")
    verdict = run_sweep([suite], ws, backend("local"))
    assert not verdict.passed, verdict
    assert [t.name for t in verdict.results[0].failed_tests] == ["test_app.test_answer"]


def test_code_under_test_ending_pytest_early_does_not_pass_a_tests_check(
    ws: Path, backend: Backends
) -> None:
    # Imported by the tests, the code wrote a passing report and ended pytest with 0.
    (ws / "app.py").write_text(junit_writer("os._exit(0)") + "def answer():\n    return 41\n")
    (ws / "test_app.py").write_text(
        "import app\n\ndef test_answer():\n    assert app.answer() == 42\n"
    )
    suite = TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider")
    verdict = run_sweep([suite], ws, backend("local"))
    assert not verdict.passed, verdict
    assert "never confirmed its verdict" in verdict.results[0].observation.stderr


# ------------------------------------------------------------------ the engine


def engine_run(
    ws: Path, checks: list[Check], *answers: dict[str, object], sandbox: str = "local"
) -> tuple[RunStatus, list[dict[str, object]]]:
    """Run a goal with a scripted model through the engine; the status and the events."""
    events: list[dict[str, object]] = []

    class Sink:
        def emit(self, event: Event) -> None:
            events.append({"kind": event.kind, **event.data})

    model = ScriptedModel([parse_line(a, f"line {i}") for i, a in enumerate(answers)])
    goal = Goal(
        text="make answer() return 42",
        workspace=ws,
        checks=tuple(checks),
        budget=Budget(max_iterations=len(answers), max_seconds=120),
    )
    engine = Engine(
        model, sandbox_name=sandbox, sidecar="sandbox", sinks=[Sink()], environ=os.environ
    )
    return engine.run(goal).status, events


TEST_APP = "import app\n\n\ndef test_answer():\n    assert app.answer() == 42\n"
PASSING_HOOK = """\
import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    report.outcome = "passed"
    report.longrepr = None
"""


def test_a_conftest_hook_cannot_rewrite_pytest_failures(ws: Path) -> None:
    (ws / "test_app.py").write_text(TEST_APP)
    suite = TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider")
    code = f"open('conftest.py', 'w').write({PASSING_HOOK!r})"
    create = f"python3 -c {shlex.quote(code)}"
    status, events = engine_run(
        ws,
        [suite],
        plan(step("make the failures pass", write("conftest.py", PASSING_HOOK))),
        plan(step("make the failures pass", shell(create))),
    )
    assert status is not RunStatus.SUCCESS
    assert not (ws / "conftest.py").exists()
    refused = [e for e in events if e["kind"] == "observation" and e["status"] == "error"]
    assert "conftest.py is protected by the goal" in str(refused[0]["stderr"])
    restored = [e for e in events if e["kind"] == "protected_restored"]
    assert restored
    assert restored[0]["paths"] == ["conftest.py"]
    checks = [e for e in events if e["kind"] == "check"]
    assert checks
    assert not any(c["passed"] for c in checks)


def test_the_model_may_not_edit_the_tests(ws: Path) -> None:
    (ws / "test_app.py").write_text(TEST_APP)
    suite = TestsCheck(command=f"{sys.executable} -m pytest -q -p no:cacheprovider")
    weaker = "def test_answer():\n    pass\n"
    status, events = engine_run(
        ws,
        [suite],
        plan(step("relax the test", write("test_app.py", weaker))),
        plan(step("relax the test", shell("rm test_app.py"), write("app_test.py", weaker))),
    )
    assert status is not RunStatus.SUCCESS
    assert (ws / "test_app.py").read_text() == TEST_APP
    assert not (ws / "app_test.py").exists()
    feedback = [str(e["text"]) for e in events if e["kind"] == "feedback"]
    assert "test_app.py is protected by the goal" in feedback[0]
    assert "app_test.py is protected by the goal" in feedback[1]


def test_zerog_run_with_a_planted_hashlib_does_not_report_success(tmp_path: Path) -> None:
    # End to end: the model writes hashlib.py instead of fixing app.py; `zerog run`
    # reported success, with app.py still returning 41.
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("def answer():\n    return 41\n")
    goal = tmp_path / "zerog.toml"
    goal.write_text(
        'text = "make answer() return 42"\nworkspace = "ws"\n\n'
        '[[checks]]\nkind = "predicate"\npython = "import app\\napp.answer() == 42"\n'
    )
    script = write_script(
        tmp_path / "script.jsonl", plan(step("pass the check", write("hashlib.py", EXIT_0)))
    )
    done = zerog_cli(
        "run", "--goal", str(goal), "-m", f"scripted:{script}", "--sandbox", "local",
        "--sidecar", "wasm", "--max-iterations", "1", "--json",
        cwd=tmp_path,
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert result["status"] == "max_iterations", result
    assert done.returncode == 1
    assert "return 41" in (ws / "app.py").read_text()


# ------------------------------------------------------------------ the HumanEval judge


TASK = Task(
    task_id="test/0",
    prompt="def add(a, b):\n",
    entry_point="add",
    test="def check(candidate):\n    assert candidate(2, 3) == 5\n",
)


@pytest.mark.parametrize("name", ["local", "bwrap"])
@pytest.mark.parametrize(
    "answer",
    [
        "import sys\nsys.exit(0)\n",
        "import os\nos._exit(0)\n",
        "def add(a, b):\n    raise SystemExit(0)\n",
        "def add(a, b):\n    import os\n    os._exit(0)\n",
    ],
    ids=["exit-at-import", "_exit-at-import", "exit-in-check", "_exit-in-check"],
)
def test_the_judge_does_not_accept_an_early_exit(
    tmp_path: Path, backend: Backends, name: str, answer: str
) -> None:
    sandbox = backend(name)
    assert not judge(TASK, answer, sandbox, tmp_path)
    assert judge(TASK, "def add(a, b):\n    return a + b\n", sandbox, tmp_path)
    assert not judge(TASK, "def add(a, b):\n    return a - b\n", sandbox, tmp_path)
