"""`zerog serve`'s API against the real app on a loopback port: real worker processes, the
real store, the bwrap sandbox, the scripted model."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from serve_server import (
    DEMO,
    Server,
    demo_goal,
    follow,
    marker_goal,
    marker_model,
    serving,
    wait_for,
    write_script,
)
from zerog.errors import ConfigError
from zerog.serve.auth import is_loopback, load_or_create_token
from zerog.serve.build import openapi_spec
from zerog.serve.job import JobSpec
from zerog.types import Goal

pytestmark = pytest.mark.slow  # starts the service, whose runs execute in worker processes

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the tests that only get refusals (nothing runs)."""
    base = tmp_path_factory.mktemp("shared")
    with serving(base / "root", base / "runs.db") as server:
        (server.root / "ws").mkdir()
        (server.root / "escape").symlink_to(base)
        yield server


def test_submit_stream_list_and_get(tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        workspace = server.demo_workspace("demo")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        response = client.post("/api/runs", json=demo_goal("demo"))
        assert response.status_code == 202, response.text
        run = response.json()
        assert run["status"] in ("queued", "starting", "running")
        assert run["active"] is True

        events, end = follow(client, run["id"])
        assert end["status"] == "success"
        kinds = [e["kind"] for e in events]
        assert kinds[0] == "run_started"
        assert kinds[-1] == "run_finished"
        assert "rollback" in kinds
        assert "verdict" in kinds
        assert [e["seq"] for e in events] == sorted({e["seq"] for e in events})

        detail = client.get(f"/api/runs/{run['id']}").json()
        assert detail["run"]["status"] == "success"
        assert detail["run"]["iterations"] == 2
        assert detail["run"]["input_tokens"] > 0
        assert [e["seq"] for e in detail["events"]] == [e["seq"] for e in events]
        later = client.get(f"/api/runs/{run['id']}", params={"after": events[-2]["seq"]}).json()
        assert [e["kind"] for e in later["events"]] == ["run_finished"]
        # A stream opened after the end replays from Last-Event-ID and ends at once.
        tail, end2 = follow(client, run["id"], after=events[-3]["seq"])
        assert [e["seq"] for e in tail] == [e["seq"] for e in events[-2:]]
        assert end2["status"] == "success"

        listed = client.get("/api/runs").json()["runs"]
        assert [r["id"] for r in listed] == [run["id"]]
        assert listed[0]["goal"] == "Fix restock() so the inventory tests pass"
        assert "updated.get(item, 0) + count" in (workspace / "inventory.py").read_text()
        assert client.post(f"/api/runs/{run['id']}/resume").status_code == 409


def test_a_run_with_a_cascade_strategy(tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        workspace = server.root / "calc"
        workspace.mkdir()
        (workspace / "calc.py").write_text('def double(x):\n    """Twice x."""\n')
        wrong = {"text": "```python\ndef double(x):\n    return x\n```"}
        right = {"text": "```python\ndef double(x):\n    return 2 * x\n```"}
        body = {
            "text": "Implement double()",
            "workspace": "calc",
            "checks": ["python3 -c 'import calc; assert calc.double(21) == 42'"],
            "model": "scripted:" + write_script(server.root / "small.jsonl", wrong),
            "budget": {"max_iterations": 3},
            "strategy": {
                "answer_file": "calc.py",
                "escalate": ["scripted:" + write_script(server.root / "big.jsonl", right)],
            },
        }
        response = client.post("/api/runs", json=body)
        assert response.status_code == 202, response.text
        events, end = follow(client, response.json()["id"])
        assert end["status"] == "success"
        calls = [str(e["data"]["model"]) for e in events if e["kind"] == "model_call"]
        assert len(calls) == 2
        assert "small.jsonl" in calls[0]
        assert "big.jsonl" in calls[1]
        assert "2 * x" in (workspace / "calc.py").read_text()


def test_a_predictable_step_is_routed_without_the_model(tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        for name in ("notes", "notes2"):
            (server.root / name).mkdir()
            (server.root / name / "notes.txt").write_text("some notes\n")
        step = {"intent": "Show the notes", "op": "read_file", "target": "notes.txt"}
        script = write_script(
            server.root / "plan.jsonl", {"purpose": "plan", "json": {"steps": [step]}}
        )
        body = {
            "text": "Show the notes",
            "workspace": "notes",
            "checks": ["true"],
            "model": f"scripted:{script}",
            "budget": {"max_iterations": 1},
            "preflight": False,  # the check passes from the start: the step still runs
        }
        response = client.post("/api/runs", json=body)  # the built-in router is the default
        assert response.status_code == 202, response.text
        events, end = follow(client, response.json()["id"])
        assert end["status"] == "success"
        assert [e["data"]["decision"] for e in events if e["kind"] == "route"] == ["routed"]
        off = client.post("/api/runs", json={**body, "workspace": "notes2", "router": "off"})
        assert off.status_code == 202, off.text
        _, end = follow(client, off.json()["id"])
        assert end["status"] == "model_error"  # the script has no answer for the worker


def test_the_preflight_of_a_request(tmp_path: Path) -> None:
    """On by default: checks that pass end the run with no model call; `preflight: false`
    asks the model anyway; checks that cannot run end it with the status cannot_run."""
    look = {
        "purpose": "plan",
        "json": {"steps": [{"intent": "look", "actions": [{"kind": "shell", "command": "true"}]}]},
    }
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        for name in ("ws1", "ws2", "ws3"):  # one each: a finished run's worker may linger
            (server.root / name).mkdir()
            (server.root / name / "done.txt").write_text("ok\n")
        body = {
            "text": "write done.txt",
            "checks": [{"kind": "file", "path": "done.txt"}],
            "model": "scripted:" + write_script(server.root / "look.jsonl", look),
        }
        for extra, iterations in (
            ({"workspace": "ws1"}, 0),
            ({"workspace": "ws2", "preflight": False}, 1),
        ):
            response = client.post("/api/runs", json={**body, **extra})
            assert response.status_code == 202, response.text
            events, end = follow(client, response.json()["id"])
            assert end["status"] == "success"
            detail = client.get(f"/api/runs/{response.json()['id']}").json()
            assert detail["run"]["iterations"] == iterations
            assert ("preflight" in [e["kind"] for e in events]) is (iterations == 0)
        response = client.post(
            "/api/runs", json={**body, "workspace": "ws3", "checks": ["absent-tool-q7"]}
        )
        assert response.status_code == 202, response.text
        events, end = follow(client, response.json()["id"])
        assert end["status"] == "cannot_run"
        [finished] = [e for e in events if e["kind"] == "run_finished"]
        [refusal] = finished["data"]["cannot_run"]
        assert refusal["check"] == "absent-tool-q7"
        assert "not found" in refusal["cause"]
        run = client.get(f"/api/runs/{response.json()['id']}").json()["run"]
        assert (run["status"], run["input_tokens"]) == ("cannot_run", 0)


def test_cancel_stops_a_running_run_and_rolls_back(tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        workspace = server.root / "ws"
        workspace.mkdir()
        model = marker_model(server.root, "sleep 41.5")
        run = client.post("/api/runs", json=marker_goal("ws", model)).json()
        wait_for(client, run["id"], "action")
        deadline = time.monotonic() + 10
        while "sleep 41.5" not in _processes() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "sleep 41.5" in _processes()
        started = time.monotonic()
        cancelled = client.post(f"/api/runs/{run['id']}/cancel")
        assert cancelled.status_code == 202, cancelled.text
        _, end = follow(client, run["id"])
        # Well before the 41.5 s command would have ended on its own (a loaded 2-core
        # machine took 10 s to stop the worker, roll back and close the stream).
        assert time.monotonic() - started < 30
        assert end["status"] == "interrupted"
        assert not (workspace / "marker.txt").exists()  # rolled back to the start
        assert "sleep 41.5" not in _processes()  # the command's process tree is gone
        assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 409


def test_a_cancel_while_the_worker_starts_is_prompt_even_if_sigint_was_ignored(
    tmp_path: Path,
) -> None:
    """A server started by a non-interactive shell in the background ignores SIGINT, and
    its workers inherit that; a worker takes it back first thing, before its imports."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with (
            serving(tmp_path / "root", tmp_path / "runs.db", grace=30.0) as server,
            server.client() as client,
        ):
            model = marker_model(server.root, "sleep 43.5")
            for n in range(3):
                (server.root / f"ws{n}").mkdir()
                run = client.post("/api/runs", json=marker_goal(f"ws{n}", model)).json()
                deadline = time.monotonic() + 10
                while client.get(f"/api/runs/{run['id']}").json()["run"]["status"] == "queued":
                    assert time.monotonic() < deadline
                    time.sleep(0.005)
                started = time.monotonic()
                assert client.post(f"/api/runs/{run['id']}/cancel").status_code == 202
                _, end = follow(client, run["id"])
                # Not the 30 s grace: the worker stopped on the signal itself.
                assert time.monotonic() - started < 15
                assert end["status"] in ("cancelled", "interrupted", "unfinished")
                assert not (server.root / f"ws{n}" / "marker.txt").exists()
    finally:
        signal.signal(signal.SIGINT, previous)


def test_the_end_of_a_run_reaches_its_follower_at_once(tmp_path: Path) -> None:
    """A follower between two polls of the store wakes when the run's worker ends: with a
    poll of 60 s the demo's end still arrives in seconds (it waited for the poll before)."""
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", poll_seconds=60.0) as server,
        server.client() as client,
    ):
        server.demo_workspace("ws")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        started = time.monotonic()
        run = client.post("/api/runs", json=demo_goal("ws")).json()
        events, end = follow(client, run["id"])
        assert end["status"] == "success"
        assert events[-1]["kind"] == "run_finished"
        assert time.monotonic() - started < 40


@pytest.mark.parametrize("spares", [0, 2])
def test_runs_with_and_without_spare_workers(tmp_path: Path, spares: int) -> None:
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", spares=spares) as server,
        server.client() as client,
    ):
        assert len(server.built.launcher.waiting) == spares
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        for n in range(2):
            server.demo_workspace(f"ws{n}")
            run = client.post("/api/runs", json=demo_goal(f"ws{n}")).json()
            _, end = follow(client, run["id"])
            assert end["status"] == "success"
        spare_pids = server.built.launcher.waiting
    assert all(not Path(f"/proc/{pid}").exists() for pid in spare_pids)


def _processes() -> str:
    return subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout


def test_cancel_a_queued_run_and_the_flood_gets_429(tmp_path: Path) -> None:
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", workers=1, queue=2) as server,
        server.client() as client,
    ):
        model = marker_model(server.root, "sleep 42.5")
        for n in range(12):
            (server.root / f"ws{n}").mkdir()

        def submit(n: int) -> httpx.Response:
            with server.client() as own:
                return own.post("/api/runs", json=marker_goal(f"ws{n}", model))

        with ThreadPoolExecutor(max_workers=6) as pool:
            answers = list(pool.map(submit, range(12)))
        accepted = [a.json()["id"] for a in answers if a.status_code == 202]
        refused = [a for a in answers if a.status_code == 429]
        assert len(accepted) == 3  # one running, two waiting
        assert len(refused) == 9
        assert all(int(a.headers["Retry-After"]) > 0 for a in refused)
        assert all("queue is full" in a.json()["error"] for a in refused)

        statuses = {r["id"]: r["status"] for r in client.get("/api/runs").json()["runs"]}
        queued = [i for i in accepted if statuses[i] == "queued"]
        assert len(queued) == 2
        assert client.post(f"/api/runs/{queued[0]}/cancel").json()["status"] == "cancelled"
        for run_id in accepted:
            client.post(f"/api/runs/{run_id}/cancel")
        # Room again once cancelled runs have left the pool.
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if not any(r["active"] for r in client.get("/api/runs").json()["runs"]):
                break
            time.sleep(0.1)
        again = client.post("/api/runs", json=marker_goal("ws11", model))
        assert again.status_code == 202
        client.post(f"/api/runs/{again.json()['id']}/cancel")


def test_resume_after_the_server_stopped_mid_run(tmp_path: Path) -> None:
    root, store = tmp_path / "root", tmp_path / "runs.db"
    with serving(root, store) as first, first.client() as client:
        (root / "ws").mkdir()
        model = marker_model(root, "sleep 1.5")
        run = client.post("/api/runs", json=marker_goal("ws", model)).json()
        wait_for(client, run["id"], "action")
        time.sleep(0.3)  # inside the sleep: the process dies mid-action
    with serving(root, store) as second, second.client() as client:
        assert client.get(f"/api/runs/{run['id']}").json()["run"]["status"] == "unfinished"
        resumed = client.post(f"/api/runs/{run['id']}/resume")
        assert resumed.status_code == 202, resumed.text
        events, end = follow(client, run["id"])
        assert end["status"] == "success"
        kinds = [e["kind"] for e in events]
        assert "resumed" in kinds
        assert "action_retried" in kinds
        assert (root / "ws" / "marker.txt").read_text() == "here\n"
        assert client.post(f"/api/runs/{run['id']}/resume").status_code == 409


@pytest.mark.parametrize(
    ("body", "status", "fragment"),
    [
        ({"text": "x", "workspace": "ws", "checks": []}, 422, "checks"),
        ({"workspace": "ws", "checks": ["true"]}, 422, "text"),
        ({"text": "x", "workspace": "ws", "checks": ["true"], "oops": 1}, 422, "oops"),
        ({"text": "x", "workspace": "../..", "checks": ["true"]}, 422, "under the workspaces root"),
        ({"text": "x", "workspace": "/etc", "checks": ["true"]}, 422, "under the workspaces root"),
        ({"text": "x", "workspace": ".", "checks": ["true"]}, 422, "under the workspaces root"),
        (
            {"text": "x", "workspace": "escape", "checks": ["true"]},
            422,
            "under the workspaces root",
        ),
        ({"text": "x", "workspace": "missing", "checks": ["true"]}, 422, "not a directory"),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "sandbox": "local"},
            422,
            "isolation",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "model": "scripted:/etc/passwd"},
            422,
            "under the workspaces root",
        ),
        (
            {
                "text": "x",
                "workspace": "ws",
                "checks": ["true"],
                "model": "openai-compatible:http://10.0.0.1/v1#m",
            },
            422,
            "allow-model-urls",
        ),
        ({"text": "x", "workspace": "ws", "checks": ["true"], "model": "gpt"}, 422, "expected"),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "env": ["OPENAI_API_KEY"]},
            422,
            "secret",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": [{"kind": "file", "path": "../x"}]},
            422,
            "leaves the workspace",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": [{"kind": "predicate", "python": "1 +"}]},
            422,
            "not valid Python",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "budget": {"max_iterations": 0}},
            422,
            "max_iterations",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "strategy": {"unsure_tokens": 3}},
            422,
            "needs a model to escalate to",
        ),
        (
            {
                "text": "x",
                "workspace": "ws",
                "checks": ["true"],
                "strategy": {"answer_file": "../x.py", "escalate": ["local:1.5b"]},
            },
            422,
            "inside the workspace",
        ),
        (
            {
                "text": "x",
                "workspace": "ws",
                "checks": ["true"],
                "strategy": {"escalate": ["openai-compatible:http://10.0.0.1/v1#m"]},
            },
            422,
            "allow-model-urls",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "router": "compiled"},
            422,
            "needs a router file",
        ),
        (
            {"text": "x", "workspace": "ws", "checks": ["true"], "router_file": "r.json"},
            422,
            "only read with router compiled",
        ),
        (
            {
                "text": "x",
                "workspace": "ws",
                "checks": ["true"],
                "router": "compiled",
                "router_file": "../r.json",
            },
            422,
            "must be under the workspaces root",
        ),
        (
            {
                "text": "x",
                "workspace": "ws",
                "checks": ["true"],
                "router": "compiled",
                "router_file": "ws",
            },
            422,
            "router_file:",
        ),
    ],
)
def test_bad_submissions_get_clear_4xx(
    shared: Server, body: dict[str, object], status: int, fragment: str
) -> None:
    with shared.client() as client:
        response = client.post("/api/runs", json=body)
    assert response.status_code == status, response.text
    assert fragment in json.dumps(response.json())
    assert "Traceback" not in response.text


def test_other_bad_requests(shared: Server) -> None:
    with shared.client() as client:
        assert client.get("/api/runs/nope").status_code == 404
        assert client.get("/api/runs/nope/events").status_code == 404
        assert client.post("/api/runs/nope/cancel").status_code == 404
        assert client.post("/api/runs/nope/resume").status_code == 404
        assert client.get("/api/runs/a%20b").status_code == 422
        assert client.get("/api/runs", params={"limit": 0}).status_code == 422
        assert client.get("/api/runs", params={"limt": 5}).status_code == 422
        not_json = client.post(
            "/api/runs", content=b"text=x", headers={"content-type": "text/plain"}
        )
        assert not_json.status_code == 422
        broken = client.post(
            "/api/runs", content=b"{", headers={"content-type": "application/json"}
        )
        assert broken.status_code == 422
        assert broken.json()["error"] == "invalid request"
        latin = client.post(
            "/api/runs", content=b"\xff\xfe", headers={"content-type": "application/json"}
        )
        assert latin.status_code == 422
        rebinding = client.get("/api/runs", headers={"host": "attacker.example"})
        assert rebinding.status_code == 421
        page = client.get("/")
        assert page.status_code == 200
        assert "script-src 'self'" in page.headers["content-security-policy"]
        assert (
            "access-control-allow-origin"
            not in client.options(
                "/api/runs",
                headers={"origin": "http://evil.example", "access-control-request-method": "POST"},
            ).headers
        )
        assert client.get("/docs").status_code == 404  # the CDN-loading docs are not served
        assert client.get("/static/../app.py").status_code == 404


def test_busy_workspace_is_a_conflict(tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        (server.root / "ws").mkdir()
        model = marker_model(server.root, "sleep 43.5")
        first = client.post("/api/runs", json=marker_goal("ws", model)).json()
        second = client.post("/api/runs", json=marker_goal("ws", model))
        assert second.status_code == 409
        assert first["id"] in second.json()["error"]
        client.post(f"/api/runs/{first['id']}/cancel")


def test_token_is_required_when_configured(tmp_path: Path) -> None:
    token = "t" * 40
    with serving(tmp_path / "root", tmp_path / "runs.db", token=token) as server:
        with httpx.Client(base_url=server.url) as anonymous:
            denied = anonymous.get("/api/runs")
            assert denied.status_code == 401
            assert denied.headers["www-authenticate"] == "Bearer"
            assert anonymous.post("/api/runs", json={}).status_code == 401
            assert anonymous.get("/").status_code == 200  # the page itself holds no data
        with server.client(token="x" * 40) as wrong:
            assert wrong.get("/api/runs").status_code == 401
        with server.client() as right:
            assert right.get("/api/runs").status_code == 200
            assert right.get("/api/health").json()["auth"] is True


def test_token_file_is_created_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "config" / "zerog" / "serve-token"
    token, created = load_or_create_token(path)
    assert created
    assert len(token) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_token(path) == (token, False)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_token(path)
    assert is_loopback("127.0.0.1")
    assert is_loopback("::1")
    assert is_loopback("localhost")
    assert not is_loopback("0.0.0.0")
    assert not is_loopback("192.168.1.2")


def test_cli_non_loopback_bind_prints_and_requires_a_token(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    port = _free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zerog",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            str(port),
            "--workspaces",
            str(root),
            "--store",
            str(tmp_path / "runs.db"),
        ],
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stderr is not None
        lines = [process.stderr.readline() for _ in range(3)]
        token_file = tmp_path / "config" / "zerog" / "serve-token"
        assert lines[1].strip() == f"bearer token: new, kept in {token_file} (mode 600)"
        assert lines[2].startswith(f"open: http://0.0.0.0:{port}/#token=")
        token = lines[2].strip().rsplit("#token=", 1)[1]
        assert token_file.read_text().strip() == token
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                denied = httpx.get(f"{url}/api/runs")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert denied.status_code == 401
        allowed = httpx.get(f"{url}/api/runs", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_checked_in_openapi_matches_the_app() -> None:
    checked_in = json.loads((REPO / "docs" / "openapi.json").read_text(encoding="utf-8"))
    assert checked_in == openapi_spec(), "regenerate: zerog serve --openapi > docs/openapi.json"


def test_bench_serve_smoke() -> None:
    from zerog.bench.serve import measure

    report = measure(runs=1, poll_seconds=0.05)
    data = report.as_dict()
    assert data["engine_run_ms"] > 0
    assert data["served_run_ms"] > 0
    assert data["cold_run_ms"] > 0  # a worker started per run, measured alongside
    assert data["events"] >= 20  # every event of the demo run came over the stream
    assert 0 <= data["stream_delay_median_ms"] < 5_000


def test_checks_of_every_kind_reach_the_worker_intact(tmp_path: Path) -> None:
    checks: list[dict[str, object]] = [
        {"kind": "command", "command": "true", "name": "plain"},
        {"kind": "tests", "command": "python3 -m pytest -q", "junit": "report.xml"},
        {"kind": "output", "command": "echo hello", "matches": "^hel", "stream": "stdout"},
        {"kind": "file", "path": "out.txt", "contains": "42"},
        {"kind": "schema", "path": "config.json", "schema": {"type": "object"}},
        {"kind": "predicate", "python": "Path('out.txt').read_text() == '42'"},
    ]
    goal = Goal.model_validate(
        {"text": "every kind", "workspace": tmp_path, "checks": checks, "env_allow": ["LANG"]}
    )
    spec = JobSpec(
        action="run",
        run_id="r1",
        store=tmp_path / "s.db",
        model="local",
        base_dir=tmp_path,
        goal=goal,
    )
    assert JobSpec.model_validate_json(spec.model_dump_json()) == spec


def test_a_run_with_file_schema_output_and_predicate_checks(tmp_path: Path) -> None:
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        (server.root / "ws").mkdir()
        plan = {
            "purpose": "plan",
            "json": {
                "steps": [
                    {
                        "intent": "Write the answer and the config",
                        "actions": [
                            {"kind": "write_file", "path": "out.txt", "content": "42"},
                            {"kind": "write_file", "path": "config.json", "content": '{"a": 1}'},
                        ],
                    }
                ]
            },
        }
        model = "scripted:" + write_script(server.root / "kinds.jsonl", plan)
        body = {
            "text": "Write the answer",
            "workspace": "ws",
            "model": model,
            "checks": [
                "test -s out.txt",
                {"kind": "output", "command": "cat out.txt", "matches": "^42$"},
                {"kind": "file", "path": "out.txt", "contains": "42"},
                {
                    "kind": "schema",
                    "path": "config.json",
                    "schema": {"type": "object", "required": ["a"]},
                },
                {"kind": "predicate", "python": "Path('out.txt').read_text() == '42'"},
            ],
            "budget": {"max_iterations": 1},
        }
        run = client.post("/api/runs", json=body)
        assert run.status_code == 202, run.text
        events, end = follow(client, run.json()["id"])
        assert end["status"] == "success", [e for e in events if e["kind"] == "check"]
        assert sum(1 for e in events if e["kind"] == "check" and e["data"]["passed"]) == 5


def test_the_diff_of_a_run(tmp_path: Path) -> None:
    """GET /api/runs/{id}/diff: what the run changed, file by file, from its snapshots;
    paths and lines with control characters escaped; unknown runs 404."""
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        workspace = server.demo_workspace("demo")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        run = client.post("/api/runs", json=demo_goal("demo")).json()
        _, end = follow(client, run["id"])
        assert end["status"] == "success"
        (workspace / "later.txt").write_text("after the run: not its change\n")
        response = client.get(f"/api/runs/{run['id']}/diff")
        assert response.status_code == 200, response.text
        diff = response.json()
        assert diff["run"] == run["id"]
        assert diff["final"] == "snapshot"
        assert diff["truncated"] == 0
        files = {f["path"]: f for f in diff["files"]}
        assert set(files) == {"inventory.py"}, files  # the first attempt's NOTES.md rolled back
        changed = files["inventory.py"]
        assert changed["status"] == "changed"
        assert (changed["old_mode"], changed["new_mode"]) == ("100644", "100644")
        assert changed["lines"][0].startswith("@@ ")
        assert any(line.startswith("+") and "get(item, 0)" in line for line in changed["lines"])
        assert changed["added"] >= 1
        assert changed["removed"] >= 1
        assert client.get("/api/runs/nope/diff").status_code == 404
        assert client.get("/api/runs/a%20b/diff").status_code == 422
        # The run's snapshots gone: a clear conflict, not a crash.
        shutil.rmtree(workspace / ".zerog")
        gone = client.get(f"/api/runs/{run['id']}/diff")
        assert gone.status_code == 409
        assert "snapshots" in gone.json()["error"]
