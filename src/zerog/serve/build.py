"""Wiring: a store, a pool of worker processes and a policy into a running app."""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI

from zerog.serve.app import Settings, create_app
from zerog.serve.jobs import Pool, launch_worker
from zerog.serve.service import Policy, Service
from zerog.store import Store


@dataclass
class Built:
    app: FastAPI
    service: Service

    def close(self, *, kill: bool = True) -> None:
        """Stop the pool: running jobs are killed and stay resumable (see docs/serve.md)."""
        self.service.pool.close(kill=kill)


def build_app(
    store: Store,
    workspaces: Path,
    *,
    token: str | None,
    workers: int,
    queue: int,
    environ: Mapping[str, str],
    wall_clock: Callable[[], float] = time.time,
    allow_local_sandbox: bool = False,
    allow_model_urls: bool = False,
    python: str = sys.executable,
    poll_seconds: float = 0.25,
    grace: float = 10.0,
) -> Built:
    pool = Pool(
        launch_worker(python, dict(environ)), workers=workers, queue_size=queue, grace=grace
    )
    policy = Policy(
        workspaces=workspaces.resolve(),
        allow_local_sandbox=allow_local_sandbox,
        allow_model_urls=allow_model_urls,
    )
    service = Service(store, pool, policy, wall_clock=wall_clock)
    app = create_app(service, Settings(token=token, poll_seconds=poll_seconds))
    return Built(app, service)


def openapi_spec() -> dict[str, object]:
    """The OpenAPI document, from an app over a throwaway store (nothing is started)."""
    with tempfile.TemporaryDirectory() as scratch, Store(Path(scratch) / "runs.db") as store:
        built = build_app(store, Path(scratch), token=None, workers=1, queue=0, environ={})
        try:
            return built.app.openapi()
        finally:
            built.close()
