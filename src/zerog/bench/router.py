"""`zerog bench router`: how many steps a compiled router takes from the model, and how
often it is right, on a repetitive workload it was not compiled on.

The workload is small Python projects that each need one function fixed. The scripted
model plans 5-7 steps per run without inline actions, so the worker is asked for each:
routine steps (read the module, list the files, byte-compile it, run the unit tests) take
the same actions in every run; fix steps and notes are unique to their run; an 'inspect'
step takes one of three commands at random (same words, different actions: the router
must not trust it).

1. ``train`` runs go through the real Engine with the router off into a fresh store.
2. ``zerog routes compile`` logic learns a router from that store (its own held-out split
   calibrates the threshold).
3. ``heldout`` new runs (other seeds, never in the store) run twice: with the router off
   (baseline) and with ``--router compiled``. The routed run's scripted model answers only
   the steps the router declines; a routed step that fails would reach the model, find no
   answer and end the run, which is counted.

Routed-step accuracy compares each routed step's actions with the model's actions for that
step and its outcome with the baseline's. Decision latency is the router's own time per
step (``route`` events), plus a tight loop of decisions in process.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import TypeAdapter
from rich.table import Table

from zerog.engine.loop import Engine
from zerog.event_catalog import RouteDecided, parse
from zerog.models.scripted import ScriptedModel, parse_line
from zerog.router.artifact import dumps
from zerog.router.base import StepView
from zerog.router.builtin import BuiltinRouter
from zerog.router.compiled import CompiledRouter
from zerog.router.factory import ChainRouter
from zerog.router.history import recorded_steps, store_steps
from zerog.router.learn import compile_router
from zerog.store import Store
from zerog.types import Action, Budget, CommandCheck, Goal, Plan, RunResult

MODULES = (
    ("calc.py", "total"),
    ("stats.py", "mean"),
    ("geometry.py", "area"),
    ("words.py", "count"),
)
INSPECT = ("ls", "pwd", "du -s .")
ROUTINE = ("Read ", "List the files", "Check that", "Run the unit tests")
_ACTION: TypeAdapter[Action] = TypeAdapter(Action)


@dataclass(frozen=True)
class Job:
    """One run of the workload: files, goal and the plan with the worker's actions."""

    files: dict[str, str]
    text: str
    steps: list[dict[str, object]]
    actions: list[list[dict[str, str]]]
    routine: list[bool]  # the same actions in every run (what a router should take)


def shell(command: str) -> dict[str, str]:
    return {"kind": "shell", "command": command}


def make_job(seed: int) -> Job:
    rng = random.Random(seed)  # noqa: S311 - a workload, not a secret
    module, func = MODULES[rng.randrange(len(MODULES))]
    stem = module.removesuffix(".py")
    value = rng.randrange(10, 1000)
    files = {
        module: f"def {func}():\n    return {value - 1}\n",
        f"test_{stem}.py": (
            f"import unittest\n\nfrom {stem} import {func}\n\n\n"
            f"class T(unittest.TestCase):\n    def test_it(self):\n"
            f"        self.assertEqual({func}(), {value})\n"
        ),
        "README.md": f"# {stem}\n",
    }
    with_target = rng.random() < 0.5
    steps: list[tuple[dict[str, object], list[dict[str, str]]]] = [
        (
            {"intent": f"Read {module}", **({"target": module} if with_target else {})},
            [shell(f"cat {module}")],
        ),
        ({"intent": "List the files of the project"}, [shell("ls -la")]),
        (
            {"intent": f"Fix {func}() in {module} so it returns {value}"},
            [
                {
                    "kind": "write_file",
                    "path": module,
                    "content": f"def {func}():\n    return {value}\n",
                }
            ],
        ),
    ]
    if rng.random() < 0.4:
        steps.append(
            (
                {"intent": f"Note the change of {func} in README.md"},
                [
                    {
                        "kind": "write_file",
                        "path": "README.md",
                        "content": f"# {stem}\n\n{func}() returns {value}.\n",
                    }
                ],
            )
        )
    steps.append(
        (
            {
                "intent": f"Check that {module} compiles",
                **({"target": module} if with_target else {}),
            },
            [shell(f"python3 -m py_compile {module}")],
        )
    )
    steps.append(({"intent": "Run the unit tests"}, [shell("python3 -m unittest -q")]))
    if rng.random() < 0.3:
        steps.append(({"intent": "Inspect the workspace"}, [shell(rng.choice(INSPECT))]))
    return Job(
        files,
        f"make {func}() in {module} return {value}",
        [s for s, _ in steps],
        [a for _, a in steps],
        [str(s["intent"]).startswith(ROUTINE) for s, _ in steps],
    )


def _goal(job: Job, root: Path) -> Goal:
    root.mkdir(parents=True)
    for name, content in job.files.items():
        (root / name).write_text(content, encoding="utf-8")
    return Goal(
        text=job.text,
        workspace=root,
        checks=[CommandCheck(command="python3 -m unittest -q")],
        budget=Budget(max_iterations=1, max_seconds=120),
    )


def _model(job: Job, skip: set[int]) -> ScriptedModel:
    lines = [parse_line({"purpose": "plan", "json": {"steps": job.steps}}, "plan")]
    lines += [
        parse_line({"purpose": "act", "json": {"actions": actions}}, f"act {i}")
        for i, actions in enumerate(job.actions)
        if i not in skip
    ]
    return ScriptedModel(lines)


def _engine(model: ScriptedModel, store: Store | None, sandbox: str, **kw: object) -> Engine:
    return Engine(
        model,
        sandbox_name=sandbox,
        store=store,
        environ={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        write_trace=False,
        **kw,  # type: ignore[arg-type]
    )


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


@dataclass
class RouterReport:
    train_runs: int
    heldout_runs: int
    sandbox: str
    routes: int = 0
    threshold: float = 0.0
    artifact_bytes: int = 0
    compile_seconds: float = 0.0
    steps: int = 0
    routine_steps: int = 0
    routed: int = 0
    routed_routine: int = 0
    routed_same_actions: int = 0
    routed_same_outcome: int = 0
    demoted: int = 0
    baseline_ok: int = 0
    routed_ok: int = 0
    baseline_calls: int = 0
    routed_calls: int = 0
    baseline_tokens: int = 0
    routed_tokens: int = 0
    baseline_seconds: float = 0.0
    routed_seconds: float = 0.0
    decision_ms: list[float] = field(default_factory=list)
    loop_decision_ms: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, float | int | str]:
        return {
            "train_runs": self.train_runs,
            "heldout_runs": self.heldout_runs,
            "sandbox": self.sandbox,
            "routes": self.routes,
            "threshold": round(self.threshold, 4),
            "artifact_bytes": self.artifact_bytes,
            "compile_seconds": round(self.compile_seconds, 3),
            "steps": self.steps,
            "routine_steps": self.routine_steps,
            "routed": self.routed,
            "routed_routine": self.routed_routine,
            "routed_other": self.routed - self.routed_routine,
            "routed_share": round(self.routed / max(self.steps, 1), 4),
            "routed_same_actions": self.routed_same_actions,
            "routed_same_outcome": self.routed_same_outcome,
            "routed_accuracy": round(self.routed_same_outcome / max(self.routed, 1), 4),
            "demoted": self.demoted,
            "baseline_runs_ok": self.baseline_ok,
            "routed_runs_ok": self.routed_ok,
            "baseline_model_calls": self.baseline_calls,
            "routed_model_calls": self.routed_calls,
            "baseline_tokens": self.baseline_tokens,
            "routed_tokens": self.routed_tokens,
            "tokens_saved_share": round(1 - self.routed_tokens / max(self.baseline_tokens, 1), 4),
            "baseline_seconds": round(self.baseline_seconds, 3),
            "routed_seconds": round(self.routed_seconds, 3),
            "decision_p50_ms": round(_percentile(self.decision_ms, 0.5), 4),
            "decision_p95_ms": round(_percentile(self.decision_ms, 0.95), 4),
            "loop_decision_p50_ms": round(_percentile(self.loop_decision_ms, 0.5), 4),
            "loop_decision_p95_ms": round(_percentile(self.loop_decision_ms, 0.95), 4),
        }

    def table(self) -> Table:
        table = Table(title=f"router on {self.heldout_runs} held-out runs ({self.sandbox} sandbox)")
        table.add_column("measure")
        table.add_column("value", justify="right")
        for key, value in self.as_dict().items():
            table.add_row(key, str(value))
        return table


def _tokens(result: RunResult) -> int:
    return result.usage.input_tokens + result.usage.output_tokens


def measure(
    *,
    train: int,
    heldout: int,
    sandbox: str = "local",
    seed: int = 1,
    progress: Callable[[str], None] | None = None,
) -> RouterReport:
    report = RouterReport(train_runs=train, heldout_runs=heldout, sandbox=sandbox)
    say = progress or (lambda _: None)
    with tempfile.TemporaryDirectory(prefix="zerog-bench-router-") as tmp:
        base = Path(tmp)
        with Store(base / "train.db") as store:
            for n in range(train):
                job = make_job(seed * 100_000 + n)
                _engine(_model(job, set()), store, sandbox).run(
                    _goal(job, base / f"t{n}"), run_id=f"train-{seed}-{n}"
                )  # fixed ids: the held-out split of the compile, by id, is the same each time
                if progress and (n + 1) % 10 == 0:
                    say(f"recorded {n + 1}/{train} training runs")
            start = time.perf_counter()
            compiled = compile_router(store_steps(store, train + 1))
            report.compile_seconds = time.perf_counter() - start
        model = compiled.model
        report.routes = len(model.classes)
        report.threshold = model.threshold
        report.artifact_bytes = len(dumps(model).encode())
        say(f"compiled {report.routes} routes, threshold {model.threshold:.3f}")
        for n in range(heldout):
            job = make_job(seed * 100_000 + 50_000 + n)
            router = ChainRouter(BuiltinRouter(), CompiledRouter(model))
            plan = Plan.model_validate({"steps": job.steps})
            probe = _goal(job, base / f"p{n}")
            views = [StepView(probe, plan, i) for i in range(len(plan.steps))]
            for _ in range(20):
                for view in views:
                    t0 = time.perf_counter()
                    router.decide(view)
                    report.loop_decision_ms.append((time.perf_counter() - t0) * 1000)
            decisions = [router.decide(view) for view in views]
            skip = {i for i, d in enumerate(decisions) if d.routed}
            with Store(base / f"eval{n}.db") as store:
                base_model = _model(job, set())
                baseline = _engine(base_model, store, sandbox).run(_goal(job, base / f"b{n}"))
                routed_model = _model(job, skip)
                result = _engine(routed_model, store, sandbox, router=router).run(
                    _goal(job, base / f"r{n}")
                )
                base_steps = {
                    s.index: s
                    for s in recorded_steps(baseline.run_id, store.events(baseline.run_id))
                }
                routed_steps = {
                    s.index: s for s in recorded_steps(result.run_id, store.events(result.run_id))
                }
                for event in store.events(result.run_id):
                    route = parse(event)
                    if isinstance(route, RouteDecided):
                        if route.ms is not None:
                            report.decision_ms.append(route.ms)
                        if route.decision == "demoted":
                            report.demoted += 1
            report.steps += len(plan.steps)
            report.routine_steps += sum(job.routine)
            for i in skip:
                report.routed += 1
                report.routed_routine += job.routine[i]
                expected = [_ACTION.validate_python(a) for a in job.actions[i]]
                if list(decisions[i].actions) == expected:
                    report.routed_same_actions += 1
                mine, theirs = routed_steps.get(i), base_steps.get(i)
                if mine is not None and theirs is not None and mine.done == theirs.done:
                    report.routed_same_outcome += 1
            report.baseline_ok += baseline.ok
            report.routed_ok += result.ok
            report.baseline_calls += len(base_model.requests)
            report.routed_calls += len(routed_model.requests)
            report.baseline_tokens += _tokens(baseline)
            report.routed_tokens += _tokens(result)
            report.baseline_seconds += baseline.duration
            report.routed_seconds += result.duration
            if progress and (n + 1) % 10 == 0:
                say(f"evaluated {n + 1}/{heldout} held-out runs")
    return report
