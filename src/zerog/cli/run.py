"""`zerog run` and `zerog resume`: build the engine, run or resume with live progress,
print the summary, exit with the run's exit code."""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

from zerog.cli.cache import Caching, caching
from zerog.cli.errors import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_MODEL,
    EXIT_OK,
    EXIT_USAGE,
    fail,
)
from zerog.cli.options import (
    AnswerFileOption,
    EscalateAfterOption,
    EscalateOption,
    ForceWorkspaceOption,
    JsonOption,
    MountOption,
    OtlpOption,
    PreflightOption,
    QuietOption,
    RouterFileOption,
    RouterOption,
    StoreOption,
    UnsureTokensOption,
    VerboseOption,
    max_cost_option,
    max_input_tokens_option,
    max_iterations_option,
    max_output_tokens_option,
    max_time_option,
    model_option,
    stuck_after_option,
    timeout_option,
)
from zerog.cli.store import open_store
from zerog.cli.summary import print_summary
from zerog.engine.loop import Engine
from zerog.errors import ConfigError, ZerogError
from zerog.events import EventSink
from zerog.models.base import Model
from zerog.models.spec import load_model, with_cascade
from zerog.progress import ConsoleProgress
from zerog.router.factory import make_router
from zerog.runspec import RunSpec
from zerog.sandbox.base import Limits
from zerog.strategies import StrategyOptions
from zerog.types import (
    AssertsCheck,
    Budget,
    CommandCheck,
    Goal,
    Mount,
    RunResult,
    RunStatus,
)


def exit_code(result: RunResult) -> int:
    """The exit code a run's result ends `zerog run`/`zerog resume` with (see `run`'s help)."""
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
        model_option(
            "Model spec: scripted:FILE, local, openai:MODEL, "
            "openai-compatible:URL#MODEL, anthropic:MODEL."
        ),
    ] = "local",
    max_iterations: Annotated[
        int, max_iterations_option("Stop after this many plan-act-validate iterations.")
    ] = 5,
    max_input_tokens: Annotated[
        int | None, max_input_tokens_option("Stop once this many input tokens are spent.")
    ] = None,
    max_output_tokens: Annotated[
        int | None, max_output_tokens_option("Stop once this many output tokens are spent.")
    ] = None,
    max_cost: Annotated[
        float | None, max_cost_option("Stop once this much money (USD) is spent.")
    ] = None,
    max_time: Annotated[
        float, max_time_option("Stop after this many seconds of wall time.")
    ] = 900.0,
    timeout: Annotated[
        float,
        timeout_option("Seconds one action or check may run before its process tree is killed."),
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
        stuck_after_option("Stop after this many iterations in a row that fail the same way."),
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
        fail(ConfigError("--allow-dirty only applies with --git"))
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
            fail(exc)
    else:
        if not goal:
            fail(ConfigError("say what to achieve (GOAL), or give a goal file with --goal FILE"))
        if not check and not examples and not assert_script:
            fail(ConfigError("give at least one --check command that proves the goal"))
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
            fail(exc)
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
        fail(ConfigError("--run-id takes 1-64 letters, digits, '-' or '_'"))
    _drive(
        lambda engine: engine.run(
            the_goal,
            spec=RunSpec(
                model=model,
                strategy=strategy,
                router=routing["router"],
                router_file=routing["router_file"],
            ),
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
        fail(exc)


def _scripts(workspace: Path, paths: Sequence[str]) -> tuple[AssertsCheck, ...]:
    from zerog.validate.asserts import assert_script_check

    try:
        checks = tuple(assert_script_check(p) for p in paths)
    except ZerogError as exc:
        fail(exc)
    for path in paths:
        if not (workspace / path).is_file():
            fail(ConfigError(f"--assert-script: there is no {path} in {workspace}"))
    return checks


def _examples(workspace: Path, path: str | None) -> tuple[CommandCheck, ...]:
    from zerog.strategies import examples_for

    try:
        return (examples_for(workspace, path),) if path else ()
    except ZerogError as exc:
        fail(exc)


def _note(message: str) -> None:
    """A progress note on stderr (first-use work that takes a while)."""
    Console(stderr=True, highlight=False).print(message, markup=False, style="dim")


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
            open_store(store_path) as store,
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
        fail(exc)
    if as_json:
        sys.stdout.write(result.model_dump_json(indent=2) + "\n")
    else:
        print_summary(console, result)
        console.print(f"run id      {result.run_id}  (zerog show {result.run_id})", markup=False)
    raise typer.Exit(exit_code(result))


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


def resume(
    run_id: Annotated[str, typer.Argument(help="The run to continue (an id or a prefix).")],
    model: Annotated[
        str | None,
        model_option("Use this model spec instead of the recorded one."),
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
    with open_store(store) as opened:
        try:
            row = opened.find(run_id)
        except ZerogError as exc:
            fail(exc)
        try:
            recorded = RunSpec.from_recorded(row.spec)
        except ZerogError as exc:
            fail(exc)
    _drive(
        lambda engine: engine.resume(row.id),
        model=model or recorded.model,
        store_path=store,
        limits=recorded.limits,
        stuck_after=recorded.stuck_after,
        trace_dir=None,
        otlp_endpoint=otlp_endpoint,
        sandbox=recorded.sandbox or None,
        network=recorded.network,
        sidecar=recorded.sidecar,
        routing={"router": recorded.router or None, "router_file": recorded.router_file or None},
        strategy=recorded.strategy,
        force_workspace=force_workspace,
        verbose=verbose,
        quiet=quiet,
        as_json=as_json,
    )
