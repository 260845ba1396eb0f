"""`zerog serve`: the HTTP API and the web dashboard (needs the ``serve`` extra)."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from zerog.cli.errors import fail
from zerog.cli.options import (
    StoreOption,
    max_cost_option,
    max_input_tokens_option,
    max_iterations_option,
    max_output_tokens_option,
    max_seconds_option,
)
from zerog.errors import ConfigError, ZerogError
from zerog.store import Store, default_store_path


def serve(
    host: Annotated[
        str,
        typer.Option(help="Address to bind (a TLS proxy in front for anything but loopback)."),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.", min=0, max=65535)] = 8321,
    workspaces: Annotated[
        Path | None,
        typer.Option(
            help="The root directory runs may use: a run's workspace must be a directory "
            "under it, and scripted model files too (default: $ZEROG_WORKSPACES, else the "
            "current directory).",
            show_default=False,
        ),
    ] = None,
    store: StoreOption = None,
    workers: Annotated[int, typer.Option(help="Runs executing at once.", min=1)] = 2,
    spares: Annotated[
        int,
        typer.Option(
            help="Worker processes kept started (zerog imported) and waiting, so a run "
            "does not wait for an interpreter; each run still has a process of its own. "
            "0: start one per run.",
            min=0,
            max=64,
        ),
    ] = 1,
    queue: Annotated[
        int, typer.Option(help="Runs waiting for a worker; beyond that, 429.", min=0)
    ] = 16,
    token_file: Annotated[
        Path | None,
        typer.Option(
            help="Where the bearer token every API request needs is kept (default: "
            "$XDG_CONFIG_HOME/zerog/serve-token or ~/.config/zerog/serve-token).",
            show_default=False,
        ),
    ] = None,
    max_iterations: Annotated[
        int, max_iterations_option("The most iterations a run may ask for.", most=1000)
    ] = 20,
    max_seconds: Annotated[
        float, max_seconds_option("The most wall time a run may ask for, s.")
    ] = 3600.0,
    max_input_tokens: Annotated[
        int | None,
        max_input_tokens_option(
            "The most input tokens a run may ask for (default: no ceiling).", show_default=False
        ),
    ] = None,
    max_output_tokens: Annotated[
        int | None,
        max_output_tokens_option(
            "The most output tokens a run may ask for (default: no ceiling).", show_default=False
        ),
    ] = None,
    max_cost: Annotated[
        float | None,
        max_cost_option(
            "The most USD a run may ask to spend (default: no ceiling).", show_default=False
        ),
    ] = None,
    allow_local_sandbox: Annotated[
        bool,
        typer.Option(
            "--allow-local-sandbox",
            help="Accept runs with sandbox=local (commands run without isolation).",
        ),
    ] = False,
    allow_model_urls: Annotated[
        bool,
        typer.Option(
            "--allow-model-urls",
            help="Accept openai-compatible:URL models (the server will call that URL).",
        ),
    ] = False,
    openapi: Annotated[
        bool, typer.Option("--openapi", help="Print the OpenAPI spec as JSON and exit.")
    ] = False,
) -> None:
    """Serve the HTTP API and the live dashboard of runs.

    Runs execute in worker processes (--workers at once, --queue waiting), in the
    sandbox, on workspaces under --workspaces, within the --max-* ceilings. Every API
    request needs the bearer token; open the printed http://HOST:PORT/#token=... URL
    in a browser.
    """
    try:
        import uvicorn

        from zerog.serve.auth import default_token_path, is_loopback, load_or_create_token
        from zerog.serve.build import build_app
        from zerog.serve.service import Ceilings
    except ImportError as exc:
        fail(
            f"zerog serve needs the serve extra ({exc.name} is missing): pip install 'zerog[serve]'"
        )

    def say(line: str) -> None:  # plain lines: a token must never be wrapped
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    environ = dict(os.environ)
    root = (workspaces or Path(environ.get("ZEROG_WORKSPACES") or ".")).resolve()
    if not root.is_dir():
        fail(f"--workspaces {root} is not a directory")
    if openapi:
        sys.stdout.write(json.dumps(build_openapi(), indent=2) + "\n")
        return
    path = token_file or default_token_path(environ)
    try:
        token, created = load_or_create_token(path)
    except ConfigError as exc:
        fail(str(exc))
    ceilings = Ceilings(
        max_iterations=max_iterations,
        max_input_tokens=max_input_tokens,
        max_output_tokens=max_output_tokens,
        max_cost=max_cost,
        max_seconds=max_seconds,
    )
    try:
        opened = Store(store or default_store_path(environ))
    except ZerogError as exc:
        fail(str(exc))

    with opened:
        built = build_app(
            opened,
            root,
            token=token,
            workers=workers,
            queue=queue,
            spares=spares,
            allow_local_sandbox=allow_local_sandbox,
            allow_model_urls=allow_model_urls,
            loopback_only=is_loopback(host),
            ceilings=ceilings,
            environ=environ,
            wall_clock=time.time,
        )
        shown = f"[{host}]" if ":" in host else host
        say(f"zerog serve: http://{shown}:{port}/  workspaces {root}  store {opened.path}")
        say(f"bearer token: {'new, ' if created else ''}kept in {path} (mode 600)")
        # The token in a URL's fragment, which browsers never send to the server. Shown
        # when it is new, or to a person at a terminal, not into every service log.
        if created or sys.stderr.isatty():
            say(f"open: http://{shown}:{port}/#token={token}")
        try:
            uvicorn.run(
                built.app,
                host=host,
                port=port,
                log_level="warning",
                timeout_graceful_shutdown=3,
            )
        finally:
            built.close()


def build_openapi() -> dict[str, object]:
    """The API's OpenAPI document (the same for every server: no state is needed)."""
    from zerog.serve.build import openapi_spec

    return openapi_spec()
