"""One run of `zerog serve`, in its own process: ``python -m zerog.serve.job`` reads a job
(JSON on standard input), runs or resumes it with the store, and exits.

A process per run makes cancellation real: SIGINT stops the loop wherever it is (the
running command's process tree is killed, the workspace rolled back, the run recorded as
interrupted), and SIGKILL of the process group is the last resort. Errors that stop the
run before it starts (a busy workspace, a missing sandbox, a bad model spec) are written
to standard output as one JSON line ``{"error": "..."}`` with exit code 2.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from zerog.engine.loop import Engine
from zerog.errors import ZerogError
from zerog.models.spec import load_model, with_cascade
from zerog.router.factory import make_router
from zerog.runspec import RunSpec
from zerog.sandbox.base import Limits
from zerog.serve.confine import beneath, model_file
from zerog.store import Store
from zerog.strategies import StrategyOptions
from zerog.text import one_line
from zerog.types import Goal, RunResult

EXIT_ERROR = 2


class JobSpec(BaseModel):
    """What the server hands a worker process (already validated and confined)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    action: Literal["run", "resume"]
    run_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    store: Path
    model: str
    base_dir: Path
    goal: Goal | None = None
    sandbox: str | None = None
    sidecar: str = "wasm"
    timeout: float = 120.0
    stuck_after: int = 2
    strategy: StrategyOptions = StrategyOptions()  # model specs confined by the server
    router: str = "off"
    router_file: Path | None = None  # confined by the server


def confine_files(spec: JobSpec) -> None:
    """The files the job reads, confined again now, without following links (see
    :mod:`zerog.serve.confine`): the server checked them when it took the job."""
    files = [model_file(m) for m in (spec.model, *spec.strategy.escalate)]
    for path in (*files, spec.router_file):
        if path is not None:
            beneath(spec.base_dir, path, directory=False)


def execute(spec: JobSpec, environ: Mapping[str, str]) -> RunResult:
    """Build the engine the way ``zerog run`` does and run (or resume) the job."""
    confine_files(spec)
    if spec.goal is not None:
        beneath(spec.base_dir, spec.goal.workspace, directory=True)
    first, escalate = with_cascade(spec.model, spec.strategy.escalate, environ=environ)
    backend = load_model(first, base_dir=spec.base_dir, environ=environ)
    strategy = spec.strategy.model_copy(update={"escalate": escalate}).build(
        backend, lambda model: load_model(model, base_dir=spec.base_dir, environ=environ)
    )
    with Store(spec.store) as store:
        router = make_router(spec.router, router_file=spec.router_file, store=store)
        if spec.action == "resume":
            row = store.find(spec.run_id)
            beneath(spec.base_dir, Path(row.workspace), directory=True)
            recorded = RunSpec.from_recorded(row.spec)
            engine = Engine(
                strategy.model,
                sinks=strategy.sinks,
                plan_with=strategy.plan_with,
                doubt=strategy.doubt,
                router=router,
                store=store,
                environ=environ,
                limits=recorded.limits,
                stuck_after=recorded.stuck_after,
                write_trace=False,
                sandbox_name=recorded.sandbox or None,
                sidecar=recorded.sidecar,
                off_limits=(spec.base_dir,),  # no toolchain bind shows another workspace
            )
            return engine.resume(row.id)
        if spec.goal is None:
            raise ZerogError("a run job needs a goal")
        engine = Engine(
            strategy.model,
            sinks=strategy.sinks,
            plan_with=strategy.plan_with,
            doubt=strategy.doubt,
            router=router,
            store=store,
            environ=environ,
            limits=Limits(timeout=spec.timeout),
            stuck_after=spec.stuck_after,
            write_trace=False,
            sandbox_name=spec.sandbox,
            sidecar=spec.sidecar,
            off_limits=(spec.base_dir,),  # no toolchain bind shows another workspace
        )
        recorded = RunSpec(
            model=spec.model,
            strategy=spec.strategy,
            router=spec.router,
            router_file=str(spec.router_file) if spec.router_file else None,
        )
        return engine.run(spec.goal, spec=recorded, run_id=spec.run_id)


def main(stdin: str, environ: Mapping[str, str]) -> int:
    # Cancelling is SIGINT. A server started in the background by a non-interactive shell
    # (`zerog serve &`, many supervisors) ignores SIGINT, and a worker would inherit that
    # and run on after a cancel: take the signal back.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        spec = JobSpec.model_validate_json(stdin)
        result = execute(spec, environ)
    except (ValidationError, ZerogError) as exc:
        message = str(exc)
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            message = f"invalid {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        sys.stdout.write(json.dumps({"error": one_line(message, 2000)}) + "\n")
        return EXIT_ERROR
    except KeyboardInterrupt:  # cancelled before the loop took over
        sys.stdout.write(json.dumps({"error": "cancelled"}) + "\n")
        return 130
    sys.stdout.write(json.dumps({"status": result.status.value}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.stdin.read(), os.environ))
