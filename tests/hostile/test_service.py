"""`zerog serve` against hostile clients and hostile runs: the real app on a loopback port
(and the real `zerog serve` command), real worker processes, bwrap, the scripted model.

- every API request needs the token, loopback binds too (any local user could otherwise
  run code as the server's user);
- a browser's state-changing request for another site's page is refused, and so is a
  body above the cap, before it is read;
- a run cannot ask for more than the server's budget ceilings;
- a run's workspace cannot escape the root: not by being nested in (or around) another
  active run's workspace, which could swap it for a link; not by a link swapped in while
  it waits (the worker checks the path again, link by link);
- the worker process does not import modules from the server's working directory;
- answers do not reveal host paths outside the workspaces root.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
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
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A directory beside the workspaces root that no run may touch."""
    path = tmp_path / "outside"
    path.mkdir()
    (path / "canary.txt").write_text("untouched\n")
    return path


def _untouched(outside: Path) -> None:
    assert sorted(p.name for p in outside.iterdir()) == ["canary.txt"]
    assert (outside / "canary.txt").read_text() == "untouched\n"


# ---------------------------------------------------------------- the token


@pytest.fixture
def cli_server(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    """`zerog serve` as a user starts it: loopback, no options about tokens. Yields its
    URL, the token in its token file and the file its standard error goes to."""
    root = tmp_path / "root"
    root.mkdir()
    port = _free_port()
    env = {**os.environ, "XDG_CONFIG_HOME": str(tmp_path / "config")}
    stderr = tmp_path / "stderr.txt"
    with stderr.open("w") as err:  # the child writes to its own copy
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "zerog", "serve", "--port", str(port)),
                *("--workspaces", str(root), "--store", str(tmp_path / "runs.db")),
            ],
            stderr=err,
            env=env,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{url}/")
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        token_file = tmp_path / "config" / "zerog" / "serve-token"
        token = token_file.read_text().strip() if token_file.exists() else ""
        yield url, token, stderr
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=15)


def test_a_loopback_server_needs_the_token(cli_server: tuple[str, str, Path]) -> None:
    url, token, stderr = cli_server
    anonymous = httpx.get(f"{url}/api/runs")
    assert anonymous.status_code == 401
    body = {"text": "x", "workspace": "ws", "checks": ["true"]}
    assert httpx.post(f"{url}/api/runs", json=body).status_code == 401
    assert httpx.post(f"{url}/api/runs/abc/cancel").status_code == 401
    assert len(token) >= 32
    # Printed once, as a URL whose fragment (never sent to a server) hands it to the page.
    assert f"open: {url}/#token={token}\n" in stderr.read_text()
    allowed = httpx.get(f"{url}/api/runs", headers={"Authorization": f"Bearer {token}"})
    assert allowed.status_code == 200
    assert httpx.get(f"{url}/").status_code == 200  # the page itself holds no data


# ---------------------------------------------------------------- browsers and bodies


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    base = tmp_path_factory.mktemp("service")
    with serving(base / "root", base / "runs.db") as server:
        (server.root / "ws").mkdir()
        yield server


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is another site's page too
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-origin"},
    ],
)
def test_a_browser_request_for_another_sites_page_changes_nothing(
    shared: Server, headers: dict[str, str]
) -> None:
    with shared.client() as client:
        for path in ("/api/runs", "/api/runs/abc/cancel", "/api/runs/abc/resume"):
            body = {"text": "x", "workspace": "ws", "checks": ["true"]}
            refused = client.post(path, json=body, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "another site" in refused.json()["error"]
        assert client.get("/api/runs", headers=headers).status_code == 200  # reading is fine


def test_the_dashboards_own_requests_pass(shared: Server) -> None:
    host = shared.url.removeprefix("http://")
    headers = {"Origin": shared.url, "Sec-Fetch-Site": "same-origin", "Host": host}
    with shared.client() as client:
        answer = client.post("/api/runs", json={"text": "x"}, headers=headers)
    assert answer.status_code == 422  # reached validation


def test_a_body_above_the_cap_is_refused_unread(shared: Server) -> None:
    big = {"text": "x" * (2 << 20), "workspace": "ws", "checks": ["true"]}
    with shared.client() as client:
        declared = client.post("/api/runs", json=big)
        assert declared.status_code == 413
        assert "larger than" in declared.json()["error"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts what arrives
            yield b'{"text": "'
            for _ in range(64):
                yield b"x" * 65536
            yield b'", "workspace": "ws", "checks": ["true"]}'

        streamed = client.post(
            "/api/runs", content=chunks(), headers={"Content-Type": "application/json"}
        )
        assert streamed.status_code == 413
        assert client.get("/api/health").status_code == 200  # the server is fine
    # A declared length alone is enough: nothing of the body needs to arrive.
    host, port = shared.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as raw:
        raw.sendall(
            b"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            + f"Authorization: Bearer {shared.token}\r\n".encode()
            + b"Content-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{"
        )
        assert raw.recv(100).startswith(b"HTTP/1.1 413 ")


# ---------------------------------------------------------------- budget ceilings


def test_a_run_cannot_ask_for_more_than_the_ceilings(tmp_path: Path) -> None:
    from zerog.serve.service import Ceilings

    ceilings = Ceilings(max_iterations=3, max_cost=0.5, max_seconds=60, max_output_tokens=1000)
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", ceilings=ceilings) as server,
        server.client() as client,
    ):
        server.demo_workspace("demo")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        for budget, field in (
            ({"max_iterations": 4}, "max_iterations"),
            ({"max_cost": 5}, "max_cost"),
            ({"max_cost": None}, "max_cost"),  # unbounded is above any ceiling
            ({"max_seconds": 3600}, "max_seconds"),
            ({"max_output_tokens": 1001}, "max_output_tokens"),
        ):
            answer = client.post("/api/runs", json={**demo_goal("demo"), "budget": budget})
            assert answer.status_code == 422, (budget, answer.text)
            assert f"budget.{field}" in answer.json()["error"]
            assert "maximum" in answer.json()["error"]
        # What a run leaves out is the ceiling; what it asks within them, it gets.
        within = client.post("/api/runs", json={**demo_goal("demo"), "budget": {"max_cost": 0.1}})
        assert within.status_code == 202, within.text
        events, end = follow(client, within.json()["id"])
        assert end["status"] == "success"
        started = next(e for e in events if e["kind"] == "run_started")
        assert started["data"]["budget"] == {
            "max_iterations": 3,
            "max_input_tokens": None,
            "max_output_tokens": 1000,
            "max_cost": 0.1,
            "max_seconds": 60.0,
        }


def test_the_default_ceilings_hold_without_options(shared: Server) -> None:
    with shared.client() as client:
        body = {"text": "x", "workspace": "ws", "checks": ["true"]}
        many = client.post("/api/runs", json={**body, "budget": {"max_iterations": 1000}})
        assert many.status_code == 422
        long = client.post("/api/runs", json={**body, "budget": {"max_seconds": 86400}})
        assert long.status_code == 422


# ---------------------------------------------------------------- workspace escapes


def test_a_workspace_inside_an_active_runs_workspace_is_refused(
    tmp_path: Path, outside: Path
) -> None:
    """The attack: run A may change anything in `victim/`, so it swaps `victim/inner` for a
    link to a directory outside the root; run B, accepted on `victim/inner` while A was
    active, would then write outside. B must be refused while A is queued or running."""
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", workers=1) as server,
        server.client() as client,
    ):
        (server.root / "victim" / "inner").mkdir(parents=True)
        swap = f"mv inner inner.real && ln -s {outside} inner && sleep 43.5"
        first = client.post(
            "/api/runs", json=marker_goal("victim", marker_model(server.root, swap))
        )
        assert first.status_code == 202, first.text
        writer = marker_model(server.root, "true", "writer.jsonl")
        second = client.post("/api/runs", json=marker_goal("victim/inner", writer))
        assert second.status_code == 409, second.text
        assert first.json()["id"] in second.json()["error"]
        assert "inside the workspace" in second.json()["error"]
        client.post(f"/api/runs/{first.json()['id']}/cancel")
        follow(client, first.json()["id"])
    _untouched(outside)


def test_a_workspace_around_an_active_runs_workspace_is_refused(tmp_path: Path) -> None:
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", workers=1) as server,
        server.client() as client,
    ):
        (server.root / "outer" / "inner").mkdir(parents=True)
        (server.root / "other").mkdir()
        model = marker_model(server.root, "sleep 44.5")
        first = client.post("/api/runs", json=marker_goal("outer/inner", model))
        assert first.status_code == 202, first.text
        around = client.post("/api/runs", json=marker_goal("outer", model))
        assert around.status_code == 409
        assert "around the workspace" in around.json()["error"]
        same = client.post("/api/runs", json=marker_goal("outer/inner/", model))
        assert same.status_code == 409
        beside = client.post("/api/runs", json=marker_goal("other", model))
        assert beside.status_code == 202  # queued behind the first: no overlap
        for run in (first, beside):
            client.post(f"/api/runs/{run.json()['id']}/cancel")


def test_a_workspace_swapped_for_a_link_while_queued_is_refused_by_the_worker(
    tmp_path: Path, outside: Path
) -> None:
    with (
        serving(tmp_path / "root", tmp_path / "runs.db", workers=1) as server,
        server.client() as client,
    ):
        (server.root / "busy").mkdir()
        (server.root / "victim" / "inner").mkdir(parents=True)
        blocker = client.post(
            "/api/runs", json=marker_goal("busy", marker_model(server.root, "sleep 45.5"))
        ).json()
        wait_for(client, blocker["id"], "action")
        queued = client.post(
            "/api/runs",
            json=marker_goal("victim/inner", marker_model(server.root, "true", "w.jsonl")),
        )
        assert queued.status_code == 202, queued.text
        assert queued.json()["status"] == "queued"
        # While it waits, a directory on its path becomes a link to outside the root.
        (server.root / "victim" / "inner").rename(server.root / "victim" / "inner.real")
        (server.root / "victim" / "inner").symlink_to(outside)
        client.post(f"/api/runs/{blocker['id']}/cancel")
        _, end = follow(client, queued.json()["id"])
        summary = client.get(f"/api/runs/{queued.json()['id']}").json()["run"]
        assert end["status"] == "failed_to_start", summary
        assert "symbolic link" in summary["reason"]
        assert str(tmp_path) not in json.dumps(summary)
    _untouched(outside)


# ---------------------------------------------------------------- the worker process


def test_the_worker_imports_nothing_from_the_servers_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    planted = tmp_path / "cwd"
    planted.mkdir()
    marker = tmp_path / "imported.txt"
    for module in ("runpy", "json", "pydantic"):
        (planted / f"{module}.py").write_text(
            f"open({str(marker)!r}, 'a').write({module!r} + chr(10))\n"
            f"raise SystemExit('planted {module} was imported')\n"
        )
    monkeypatch.chdir(planted)
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        server.demo_workspace("demo")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        run = client.post("/api/runs", json=demo_goal("demo"))
        assert run.status_code == 202, run.text
        _, end = follow(client, run.json()["id"])
    assert not marker.exists(), marker.read_text()
    assert end["status"] == "success"


# ---------------------------------------------------------------- host paths


def test_answers_do_not_reveal_host_paths_outside_the_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home" / "someone"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    data = tmp_path / "data"
    with (
        serving(tmp_path / "srv" / "root", data / "runs.db") as server,
        server.client() as client,
    ):
        server.demo_workspace("demo")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        (server.root / "broken").mkdir()
        (server.root / "bad.jsonl").write_text("not json\n")
        answers: list[str] = []
        good = client.post("/api/runs", json=demo_goal("demo"))
        bad = client.post("/api/runs", json=demo_goal("broken", "scripted:bad.jsonl"))
        for run in (good, bad):
            assert run.status_code == 202, run.text
            events, end = follow(client, run.json()["id"])
            answers += [run.text, json.dumps(events), json.dumps(end)]
            answers.append(client.get(f"/api/runs/{run.json()['id']}").text)
        answers.append(client.get("/api/runs").text)
        for body in (
            {"text": "x", "workspace": str(tmp_path), "checks": ["true"]},
            {"text": "x", "workspace": "demo", "checks": ["true"], "model": f"scripted:{home}"},
            {"text": "x", "workspace": "x" * 300, "checks": ["true"]},
            {
                "text": "x",
                "workspace": "demo",
                "checks": ["true"],
                "router": "compiled",
                "router_file": "bad.jsonl",
            },
        ):
            refused = client.post("/api/runs", json=body)
            assert refused.status_code == 422
            answers.append(refused.text)
    everything = "\n".join(answers)
    assert "inventory.py" in everything  # the runs did run and were reported
    assert "bad.jsonl" in everything  # the broken script is named, relative to the root
    for secret in (str(tmp_path), str(home), str(data)):
        assert secret not in everything


def test_runs_of_the_same_store_outside_the_root_are_not_shown(tmp_path: Path) -> None:
    """`zerog run` elsewhere on the host writes to the same store: the server does not
    show those runs (their workspace, their output) to its clients."""
    from builders import plan, scripted, shell, step
    from zerog.engine.loop import Engine
    from zerog.store import Store
    from zerog.types import Goal

    elsewhere = tmp_path / "home" / "private-project"
    elsewhere.mkdir(parents=True)
    with Store(tmp_path / "runs.db") as store:
        model = scripted(plan(step("Print", shell("echo private output"))))
        goal = Goal(text="a private goal", workspace=elsewhere, checks=["true"])
        private = Engine(model, store=store, write_trace=False).run(goal).run_id
    with serving(tmp_path / "root", tmp_path / "runs.db") as server, server.client() as client:
        server.demo_workspace("demo")
        shutil.copy(DEMO / "script.jsonl", server.root / "script.jsonl")
        ours = client.post("/api/runs", json=demo_goal("demo")).json()["id"]
        follow(client, ours)
        listed = client.get("/api/runs").json()["runs"]
        assert [r["id"] for r in listed] == [ours]
        for path in (f"/api/runs/{private}", f"/api/runs/{private}/events"):
            assert client.get(path).status_code == 404
        assert client.post(f"/api/runs/{private}/resume").status_code == 404
        assert "private" not in json.dumps(listed)
