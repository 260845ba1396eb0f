"""`zerog bench repos`: the task builder (pinned sdist, injected bug, verification,
reproducible output), the judge, the recording proxy, and a 2-task smoke of the runner
with scripted models (no peers, no real model, no network: the sdist is made here)."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest

from builders import write_script, zerog_cli
from zerog.bench.cli.repos import peer_names
from zerog.bench.loopback import HttpReply, HttpRequest, LoopbackServer
from zerog.bench.repos import AgentRun, cause_of, changed_files, judge, summary
from zerog.bench.repos_proxy import UsageProxy
from zerog.bench.repos_tasks import (
    Library,
    build_tasks,
    load_built,
    parse_tasks,
)
from zerog.errors import ConfigError

pytestmark = pytest.mark.slow  # builds and runs benchmark tasks

PYTHON = Path(sys.executable)

LIB = """\
def add(a, b):
    return a + b


def scale(values, factor):
    return [v * factor for v in values]
"""

TESTS = """\
from calclib import add, scale


def test_add():
    assert add(2, 3) == 5


def test_scale():
    assert scale([1, 2], 3) == [3, 6]
"""


def make_sdist(directory: Path) -> tuple[str, str]:
    """calclib-1.0.tar.gz (one module and its tests) in ``directory``; name and sha256."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "calclib-1.0.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        for name, text in (("calclib.py", LIB), ("test_calclib.py", TESTS)):
            data = text.encode()
            info = tarfile.TarInfo(f"calclib-1.0/{name}")
            info.size = len(data)
            info.mtime = 0
            archive.addfile(info, io.BytesIO(data))
    return path.name, hashlib.sha256(path.read_bytes()).hexdigest()


def tasks_toml(sdist: str, sha256: str, extra: str = "") -> str:
    return f'''
[[library]]
name = "calclib"
version = "1.0"
sdist = "{sdist}"
sha256 = "{sha256}"
test_args = ["-m", "pytest", "-q", "-p", "no:cacheprovider"]

[[task]]
id = "calc-add"
library = "calclib"
level = "easy"
goal = "add(2, 3) returns -1 instead of 5."
tests = ["test_calclib.py"]
[[task.patch]]
file = "calclib.py"
search = "    return a + b"
replace = "    return a - b"

[[task]]
id = "calc-scale"
library = "calclib"
level = "medium"
goal = "scale([1, 2], 3) returns [1, 2]: the factor is ignored."
tests = ["test_calclib.py"]
[[task.patch]]
file = "calclib.py"
search = "    return [v * factor for v in values]"
replace = "    return [v for v in values]"
{extra}'''


def no_network(library: Library, directory: Path) -> None:
    raise AssertionError(f"the test must not download {library.name}")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The two tasks, built once for this module (read only by the tests)."""
    tmp_path = tmp_path_factory.mktemp("repos")
    sdist, sha = make_sdist(tmp_path / "sdists")
    spec = parse_tasks(tasks_toml(sdist, sha))
    report = build_tasks(spec, tmp_path / "tasks", tmp_path / "sdists", PYTHON, download=no_network)
    assert report.built == ("calc-add", "calc-scale")
    assert not report.rejected
    return tmp_path / "tasks"


def test_the_builder_injects_verifies_and_is_reproducible(tmp_path: Path, built: Path) -> None:
    sdist = built.parent / "sdists" / "calclib-1.0.tar.gz"
    tasks = load_built(built)
    assert [t.id for t in tasks] == ["calc-add", "calc-scale"]
    add = tasks[0]
    assert add.failing == ("test_calclib.py::test_add",)
    assert add.files == ("calclib.py",)
    assert add.level == "easy"
    assert "return a - b" in (built / "calc-add" / "workspace" / "calclib.py").read_text()
    # Same inputs, same bytes: a second build's manifest and task files are identical.
    again = tmp_path / "again"
    spec = parse_tasks(tasks_toml(sdist.name, hashlib.sha256(sdist.read_bytes()).hexdigest()))
    build_tasks(spec, again, sdist.parent, PYTHON, download=no_network)
    assert (again / "manifest.json").read_bytes() == (built / "manifest.json").read_bytes()
    for task in ("calc-add", "calc-scale"):
        assert (again / task / "task.json").read_bytes() == (
            built / task / "task.json"
        ).read_bytes()


def test_a_bug_the_tests_do_not_see_is_rejected(tmp_path: Path) -> None:
    sdist, sha = make_sdist(tmp_path / "sdists")
    unseen = """
[[task]]
id = "calc-unseen"
library = "calclib"
level = "easy"
goal = "nothing the tests check"
tests = ["test_calclib.py"]
[[task.patch]]
file = "calclib.py"
search = "def add(a, b):"
replace = "def add(a, b):  # a comment"
"""
    spec = parse_tasks(tasks_toml(sdist, sha, unseen))
    report = build_tasks(
        spec,
        tmp_path / "tasks",
        tmp_path / "sdists",
        PYTHON,
        download=no_network,
        only=["calc-add", "calc-unseen"],
    )
    assert report.built == ("calc-add",)
    assert "do not fail" in report.rejected["calc-unseen"]
    assert not (tmp_path / "tasks" / "calc-unseen").exists()


def test_a_wrong_sha256_or_an_ambiguous_patch_is_refused(tmp_path: Path) -> None:
    sdist, sha = make_sdist(tmp_path / "sdists")
    spec = parse_tasks(tasks_toml(sdist, "0" * 64))
    with pytest.raises(ConfigError, match="sha256"):
        build_tasks(spec, tmp_path / "a", tmp_path / "sdists", PYTHON, download=no_network)
    twice = tasks_toml(sdist, sha).replace('search = "    return a + b"', 'search = "return"')
    with pytest.raises(ConfigError, match="occurs 2 times"):
        build_tasks(
            parse_tasks(twice), tmp_path / "b", tmp_path / "sdists", PYTHON, download=no_network
        )
    with pytest.raises(ConfigError, match="relative path"):
        parse_tasks(tasks_toml(sdist, sha).replace('file = "calclib.py"', 'file = "../x.py"'))


def test_the_judge_restores_the_tests_an_agent_changed(tmp_path: Path, built: Path) -> None:
    task = load_built(built)[0]
    pristine = built / task.id / "workspace"
    workspace = tmp_path / "ws"
    workspace.mkdir()
    for path in pristine.iterdir():
        (workspace / path.name).write_bytes(path.read_bytes())
    (workspace / "test_calclib.py").write_text("def test_nothing():\n    pass\n")
    assert changed_files(pristine, workspace) == ["test_calclib.py"]
    assert not judge(task, pristine, workspace, PYTHON)
    fixed = (workspace / "calclib.py").read_text().replace("a - b", "a + b")
    (workspace / "calclib.py").write_text(fixed)
    assert judge(task, pristine, workspace, PYTHON)


def test_causes() -> None:
    assert cause_of(AgentRun(0, False), True, []) == ""
    assert cause_of(AgentRun(-9, True), False, ["a.py"]) == "timeout"
    assert cause_of(AgentRun(0, False, finish_reasons=("stop", "length")), False, []) == (
        "max_tokens"
    )
    assert cause_of(AgentRun(3, False), False, []) == "model error"
    assert cause_of(AgentRun(1, False), False, []) == "no edit"
    assert cause_of(AgentRun(1, False), False, ["a.py"]) == "wrong edit"
    # zerog rolls its failed edits back: what it did comes from its run store.
    assert cause_of(AgentRun(1, False, acted=True), False, []) == "wrong edit"
    assert cause_of(AgentRun(1, False, acted=False), False, []) == "no edit"
    assert peer_names("aider,mini-swe-agent") == ["aider-whole", "aider-diff", "mini"]
    with pytest.raises(ConfigError):
        peer_names("claude")


def test_the_proxy_forwards_and_records_usage() -> None:
    answer = {
        "choices": [{"message": {"content": "hi"}, "finish_reason": "length"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7},
    }

    def handler(request: HttpRequest) -> HttpReply:
        if request.path == "/v1/models":
            return HttpReply(body={"data": []})
        return HttpReply(body=answer)

    with LoopbackServer(handler) as upstream, UsageProxy(upstream.url) as proxy:
        request = urllib.request.Request(
            f"{proxy.url}/v1/chat/completions",
            data=json.dumps({"messages": []}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=10) as reply:
            assert json.loads(reply.read()) == answer
        with urllib.request.urlopen(f"{proxy.url}/v1/models", timeout=10) as reply:
            assert reply.status == 200
        records = proxy.take()
        assert [(r.prompt_tokens, r.completion_tokens, r.finish_reason) for r in records] == [
            (11, 7, "length")
        ]
        assert proxy.take() == []
        # An answer to a request made before the window (an agent killed mid-call) does
        # not count for the next agent.
        with urllib.request.urlopen(request, timeout=10) as reply:
            reply.read()
        window = time.monotonic()
        assert proxy.settle(5)
        assert proxy.take(since=window) == []
        assert upstream.requests[0].path == "/v1/chat/completions"


def test_smoke_two_tasks_through_the_runner(tmp_path: Path, built: Path) -> None:
    """`zerog bench repos` with scripted models: calc-add is fixed, calc-scale gets a
    wrong edit; the runner judges both with the tasks' tests and reports the cause."""
    scripts = tmp_path / "scripts"
    scripts.mkdir()
    write_script(
        scripts / "calc-add.jsonl",
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {
                        "intent": "add instead of subtract",
                        "actions": [
                            {
                                "kind": "edit",
                                "path": "calclib.py",
                                "search": "return a - b",
                                "replace": "return a + b",
                            }
                        ],
                    }
                ]
            },
        },
    )
    write_script(
        scripts / "calc-scale.jsonl",
        {
            "purpose": "plan",
            "json": {
                "steps": [
                    {
                        "intent": "scale the values",
                        "actions": [
                            {
                                "kind": "edit",
                                "path": "calclib.py",
                                "search": "return [v for v in values]",
                                "replace": "return [v + factor for v in values]",
                            }
                        ],
                    }
                ]
            },
        },
    )
    out = tmp_path / "out"
    done = zerog_cli(
        "bench",
        "repos",
        "--tasks",
        "2",
        "--strategy",
        "planner",
        "--model",
        f"scripted:{scripts}/{{task}}.jsonl",
        "--max-iterations",
        "1",
        "--sandbox",
        "local",
        "--tasks-dir",
        str(built),
        "--python",
        sys.executable,
        "--time-limit",
        "60",
        "--out",
        str(out),
        cwd=tmp_path,
        columns=250,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_task = {row["task"]: row for row in rows}
    assert by_task["calc-add"]["solved"] is True
    assert by_task["calc-add"]["cause"] == ""
    assert by_task["calc-scale"]["solved"] is False
    assert by_task["calc-scale"]["cause"] == "wrong edit"
    assert all(row["agent"] == "zerog:planner" and row["calls"] == 1 for row in rows)
    assert all(row["prompt_tokens"] > 0 and row["wall_seconds"] > 0 for row in rows)
    # The judged workspace is the agent's: the fix is there, the wrong edit too.
    fixed = out / "zerog-planner" / "calc-add" / "workspace" / "calclib.py"
    assert "return a + b" in fixed.read_text()
    table = (out / "summary.md").read_text()
    assert "| zerog:planner | 1/2 |" in table
    assert "wrong edit 1" in table
    assert "calc-scale zerog:planner: FAIL (wrong edit)" in done.stdout


def test_summary_totals_per_agent() -> None:
    from zerog.bench.repos import Result

    rows = [
        Result("t1", "easy", "a", True, "", 2, 100, 10, 4.0, 9.0, ""),
        Result("t2", "easy", "a", False, "timeout", 1, 50, 5, 6.0, 60.0, ""),
        Result("t1", "easy", "b", False, "max_tokens", 1, 70, 900, 30.0, 31.0, ""),
    ]
    table = summary(rows, ["a", "b"])
    assert "| a | 1/2 | 3 | 150 | 15 | 10.0 | 10.0 | 69.0 | timeout 1 |" in table
    assert "| b | 0/1 | 1 | 70 | 900 | 30.0 | - | 31.0 | max_tokens 1 |" in table
