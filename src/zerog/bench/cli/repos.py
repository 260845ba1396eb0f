"""`zerog bench repos`: the command over :mod:`zerog.bench.repos`."""

from __future__ import annotations

import dataclasses
import os
import signal
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.text import Text

from zerog.cli.errors import fail
from zerog.cli.options import max_iterations_option, model_option
from zerog.errors import ConfigError, ZerogError

DEFAULT_TASKS = Path(".bench/repos/tasks")
DEFAULT_PYTHON = Path(".bench/repos/venv/bin/python")
DEFAULT_PEERS = Path(".bench/peers")
DEFAULT_OUT = Path(".zerog-bench/repos")

if TYPE_CHECKING:
    from zerog.bench.repos_proxy import Usage

    Taker = Callable[[float], list[Usage]]


def peer_names(peers: str) -> list[str]:
    """``aider`` is both Aider edit formats; ``mini-swe-agent`` is ``mini``."""
    from zerog.bench.repos import PEERS

    names: list[str] = []
    for word in (w.strip() for w in peers.split(",") if w.strip()):
        expanded = {"aider": ["aider-whole", "aider-diff"], "mini-swe-agent": ["mini"]}.get(
            word, [word]
        )
        for name in expanded:
            if name not in PEERS:
                raise ConfigError(f"unknown peer '{word}': expected aider, {', '.join(PEERS)}")
            if name not in names:
                names.append(name)
    return names


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _weights(model: str) -> tuple[Path, str]:
    """The GGUF file of a ``local`` or ``local:KEY`` spec, and the alias it is served as."""
    from zerog.config import load_config
    from zerog.models.weights import DEFAULT_WEIGHTS, WEIGHTS, default_model_dir, ensure_weights

    if model != "local" and not model.startswith("local:"):
        raise ConfigError("the peers run on a local model: --model local or local:1.5b")
    key = model.partition(":")[2].lower() or DEFAULT_WEIGHTS
    if key not in WEIGHTS:
        raise ConfigError(f"unknown local model '{key}': expected {', '.join(WEIGHTS)}")
    settings = load_config(None, os.environ)
    directory = default_model_dir(os.environ, settings.local.model_dir)
    return ensure_weights(WEIGHTS[key], directory), f"qwen2.5-coder-{key}"


@contextmanager
def _served(
    model: str, out: Path, threads: int, n_ctx: int
) -> Iterator[tuple[str, str, Taker, Callable[[float], bool]]]:
    from zerog.bench.repos_proxy import LlamaServer, UsageProxy

    path, alias = _weights(model)
    with ExitStack() as stack:
        server = stack.enter_context(
            LlamaServer(
                path,
                alias,
                port=_free_port(),
                n_threads=threads,
                n_ctx=n_ctx,
                log=out / "llama-server.log",
            )
        )
        proxy = stack.enter_context(UsageProxy(server.url))
        yield proxy.url, alias, proxy.take, proxy.settle


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def bench_repos(
    tasks: Annotated[
        str | None,
        typer.Option(help="Only the first N tasks, or these task ids (comma-separated)."),
    ] = None,
    strategy: Annotated[
        list[str],
        typer.Option(help="zerog strategies (repeatable): planner, answer-file, cascade, none."),
    ] = ["planner", "answer-file"],  # noqa: B006 - typer reads the default
    model: Annotated[
        str,
        model_option("local, local:1.5b, or any zerog spec ({task} = task id)."),
    ] = "local",
    peers: Annotated[
        str,
        typer.Option(help="Peers, comma-separated: aider, aider-whole, aider-diff, mini."),
    ] = "",
    escalate: Annotated[str, typer.Option(help="The cascade strategy's stronger model.")] = (
        "local:1.5b"
    ),
    time_limit: Annotated[
        float, typer.Option(help="Seconds each agent may spend on a task.", min=1)
    ] = 600.0,
    max_iterations: Annotated[int, max_iterations_option("zerog's iterations per task.")] = 5,
    sandbox: Annotated[str, typer.Option(help="zerog's sandbox: bwrap or local.")] = "bwrap",
    tasks_dir: Annotated[
        Path, typer.Option(help="The built tasks (python benchmarks/repos/build.py).")
    ] = DEFAULT_TASKS,
    python: Annotated[
        Path, typer.Option(help="The test venv's Python (made by the builder).")
    ] = DEFAULT_PYTHON,
    peers_dir: Annotated[Path, typer.Option(help="The peers' venvs (make bench-peers).")] = (
        DEFAULT_PEERS
    ),
    threads: Annotated[int, typer.Option(help="llama_cpp.server's threads.", min=1)] = 2,
    n_ctx: Annotated[int, typer.Option(help="llama_cpp.server's context size.", min=512)] = 8192,
    out: Annotated[
        Path | None,
        typer.Option(help="Results directory (default .zerog-bench/repos/<time>)."),
    ] = None,
) -> None:
    """zerog's strategies and peer agents on bug-fix tasks of real libraries: solved (judged
    by the tasks' own tests afterwards), model calls, tokens, model seconds, wall time, and
    each failure's cause; Markdown and results.jsonl."""
    from zerog.bench.repos import (
        STRATEGIES,
        Agent,
        AiderAgent,
        Context,
        MiniAgent,
        Result,
        ZerogAgent,
        run_bench,
        select_tasks,
    )
    from zerog.bench.repos_tasks import load_built

    console = Console(highlight=False)
    directory = (out or DEFAULT_OUT / time.strftime("%Y%m%d-%H%M%S")).absolute()
    try:
        chosen = select_tasks(load_built(tasks_dir), tasks)
        zerog = (sys.executable, "-m", "zerog")
        agents: list[Agent] = []
        for name in (s for s in strategy if s != "none"):
            if name not in STRATEGIES:
                raise ConfigError(f"unknown strategy '{name}': expected {', '.join(STRATEGIES)}")
            agents.append(
                ZerogAgent(
                    name,
                    model,
                    zerog,
                    sandbox=sandbox,
                    escalate=escalate,
                    max_iterations=max_iterations,
                )
            )
        for name in peer_names(peers):
            if name.startswith("aider-"):
                binary = peers_dir / "aider" / "bin" / "aider"
                agents.append(AiderAgent(name.removeprefix("aider-"), str(binary.absolute())))
            else:
                binary = peers_dir / "mini" / "bin" / "mini"
                agents.append(MiniAgent(str(binary.absolute())))
            if not binary.is_file():
                raise ConfigError(f"no {binary}: install the peers with `make bench-peers`")
        if not agents:
            raise ConfigError("nothing to run: give a --strategy or --peers")
        if not python.is_file():
            raise ConfigError(f"no test venv at {python}: python benchmarks/repos/build.py")
        directory.mkdir(parents=True, exist_ok=True)

        def show(result: Result) -> None:
            verdict = "solved" if result.solved else f"FAIL ({result.cause})"
            console.print(
                Text(
                    f"{result.task} {result.agent}: {verdict}  calls {result.calls} "
                    f"tokens {result.prompt_tokens}+{result.completion_tokens} "
                    f"model {result.model_seconds:.1f}s wall {result.wall_seconds:.1f}s"
                )
            )

        with ExitStack() as stack:
            # Stopped by SIGTERM, the bench still stops the server and the running agent.
            previous = signal.signal(signal.SIGTERM, _terminate)
            stack.callback(signal.signal, signal.SIGTERM, previous)
            context = Context(python=python.absolute(), time_limit=time_limit, scratch=directory)
            if peer_names(peers):
                url, alias, usage, settle = stack.enter_context(
                    _served(model, directory, threads, n_ctx)
                )
                context = dataclasses.replace(
                    context, model_url=url, model_alias=alias, usage=usage, settle=settle
                )
            results = run_bench(agents, chosen, tasks_dir.absolute(), directory, context, show)
    except ZerogError as exc:
        fail(exc)
    console.print(Text((directory / "summary.md").read_text(encoding="utf-8")))
    console.print(Text(f"results in {directory} ({len(results)} runs)"))
