"""Wiring: a store, a pool of worker processes and a policy into a running app."""

from __future__ import annotations

import secrets
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from zerog.serve.app import Settings, create_app
from zerog.serve.jobs import Pool, WarmLauncher
from zerog.serve.service import Ceilings, Policy, Service
from zerog.store import Store


@dataclass
class Built:
    app: FastAPI
    service: Service
    launcher: WarmLauncher

    def close(self, *, kill: bool = True) -> None:
        """Stop the pool: running jobs are killed and stay resumable (see docs/serve.md);
        then the spare worker processes end."""
        self.service.pool.close(kill=kill)
        self.launcher.close()


def build_app(
    store: Store,
    workspaces: Path,
    *,
    token: str,
    workers: int,
    queue: int,
    environ: Mapping[str, str],
    wall_clock: Callable[[], float] = time.time,
    allow_local_sandbox: bool = False,
    allow_model_urls: bool = False,
    loopback_only: bool = True,
    ceilings: Ceilings | None = None,
    python: str = sys.executable,
    poll_seconds: float = 0.25,
    grace: float = 10.0,
    spares: int = 1,
) -> Built:
    """``spares``: worker processes kept started and waiting for a run (zerog imported),
    so that a run does not wait for an interpreter; 0 starts one per run."""
    launcher = WarmLauncher(python, dict(environ), spares=spares)
    launcher.fill()
    pool = Pool(launcher, workers=workers, queue_size=queue, grace=grace)
    policy = Policy(
        workspaces=workspaces.resolve(),
        allow_local_sandbox=allow_local_sandbox,
        allow_model_urls=allow_model_urls,
        ceilings=ceilings or Ceilings(),
    )
    service = Service(store, pool, policy, wall_clock=wall_clock, home=environ.get("HOME"))
    settings = Settings(token=token, loopback_only=loopback_only, poll_seconds=poll_seconds)
    app = create_app(service, settings)
    return Built(app, service, launcher)


@contextmanager
def in_thread(app: FastAPI, host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of ``host`` from a thread (tests and
    benchmarks); yields its base URL and stops it on exit."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = int(sock.getsockname()[1])
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=3)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def openapi_spec() -> dict[str, object]:
    """The OpenAPI document, from an app over a throwaway store (nothing is started)."""
    with tempfile.TemporaryDirectory() as scratch, Store(Path(scratch) / "runs.db") as store:
        never_served = secrets.token_urlsafe(32)
        built = build_app(store, Path(scratch), token=never_served, workers=1, queue=0, environ={})
        try:
            return built.app.openapi()
        finally:
            built.close()
