"""A real `zerog serve` app on a loopback port, in a thread of the test process; its runs
execute in real worker processes with the real store and the bwrap sandbox."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from zerog.serve.build import Built, build_app, in_thread
from zerog.serve.service import Ceilings
from zerog.store import Store

DEMO = Path(__file__).resolve().parent.parent / "examples" / "demo"


@dataclass
class Server:
    url: str
    root: Path
    built: Built
    token: str

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token or self.token}"}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)

    def demo_workspace(self, name: str) -> Path:
        target = self.root / name
        shutil.copytree(DEMO / "workspace", target)
        return target


@contextmanager
def serving(
    root: Path,
    store_path: Path,
    *,
    token: str | None = None,
    workers: int = 2,
    queue: int = 8,
    grace: float = 10.0,
    ceilings: Ceilings | None = None,
    poll_seconds: float = 0.05,
    spares: int = 1,
) -> Iterator[Server]:
    """The server needs a token, as `zerog serve` always does (a fresh one by default)."""
    root.mkdir(parents=True, exist_ok=True)
    token = token or secrets.token_urlsafe(32)
    with Store(store_path) as store:
        built = build_app(
            store,
            root,
            token=token,
            workers=workers,
            queue=queue,
            environ=os.environ,
            poll_seconds=poll_seconds,
            grace=grace,
            ceilings=ceilings,
            spares=spares,
        )
        with in_thread(built.app) as url:
            try:
                yield Server(url, root, built, token)
            finally:
                built.close()


def write_script(path: Path, *lines: Mapping[str, object]) -> str:
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8")
    return path.name


def demo_goal(workspace: str, model: str = "scripted:script.jsonl") -> dict[str, object]:
    return {
        "text": "Fix restock() so the inventory tests pass",
        "workspace": workspace,
        "checks": [{"kind": "command", "command": "python3 -m unittest -q"}],
        "model": model,
        "budget": {"max_iterations": 4, "max_seconds": 120},
    }


def marker_model(root: Path, command: str, name: str = "slow.jsonl") -> str:
    """A scripted model (its file ``name`` under ``root``) with one plan of one step: write
    marker.txt, then run ``command`` (e.g. a long ``sleep`` that keeps the run busy)."""
    plan = {
        "purpose": "plan",
        "json": {
            "steps": [
                {
                    "intent": "Write a marker, then run a command",
                    "actions": [
                        {"kind": "write_file", "path": "marker.txt", "content": "here\n"},
                        {"kind": "shell", "command": command},
                    ],
                }
            ]
        },
    }
    return "scripted:" + write_script(root / name, plan)


def marker_goal(workspace: str, model: str) -> dict[str, object]:
    """The request that runs ``model`` (a :func:`marker_model`) on ``workspace`` until
    marker.txt exists: one iteration."""
    return {
        "text": "Write a marker",
        "workspace": workspace,
        "checks": [{"kind": "file", "path": "marker.txt"}],
        "model": model,
        "budget": {"max_iterations": 1, "max_seconds": 120},
        "timeout": 60,
    }


Record = dict[str, Any]


def follow(client: httpx.Client, run_id: str, after: int = 0) -> tuple[list[Record], Record]:
    """Read a run's server-sent events to the end: the events and the end message."""
    events: list[Record] = []
    end: Record = {}
    with client.stream("GET", f"/api/runs/{run_id}/events", params={"after": after}) as response:
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        kind, data = "message", ""
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                data += line[6:]
            elif line == "" and data:
                if kind == "end":
                    end = json.loads(data)
                    break
                events.append(json.loads(data))
                kind, data = "message", ""
    return events, end


def wait_for(client: httpx.Client, run_id: str, kind: str, timeout: float = 30) -> None:
    """Until the run has recorded an event of ``kind``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = client.get(f"/api/runs/{run_id}").json()["events"]
        if any(e["kind"] == kind for e in events):
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} recorded no {kind} event in {timeout} s")
