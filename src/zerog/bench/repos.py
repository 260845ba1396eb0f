"""`zerog bench repos`: zerog and peer agents on bug-fix tasks of real libraries.

Every agent gets a fresh copy of each task's workspace (the library's sdist with one bug),
the goal (a bug report) and the task's test command, and a time limit. Afterwards the
runner, not the agent, judges: it puts the task's test files (and the files that configure
pytest) back as they were built, then runs the test command with the test venv's Python;
exit 0 is solved. Agents:

- ``zerog:<strategy>``: ``zerog run`` (the CLI, as installed) with the goal, the check and
  the model; strategies ``planner`` (the default planner), ``answer-file`` (the model answers
  with the buggy file's code: told the file) and ``cascade`` (answer-file, escalating to a
  stronger model). Calls and tokens come from its ``--json`` result, model seconds from
  the model calls its run store recorded.
- ``aider-whole``, ``aider-diff``: Aider with that edit format, ``--auto-test`` with the
  test command, on the same weights served by ``llama_cpp.server``.
- ``mini``: mini-swe-agent with its text-based config on the same server.

The peers' calls, tokens and model seconds are what the recording proxy in front of the
server saw (:mod:`zerog.bench.repos_proxy`). Each failure gets a cause: timeout,
max_tokens (an answer cut by the token limit), model error, no edit, wrong edit.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from zerog.bench.repos_proxy import Usage
from zerog.bench.repos_tasks import BuiltTask, run_tests
from zerog.errors import ConfigError

STRATEGIES = ("planner", "answer-file", "cascade")
PEERS = ("aider-whole", "aider-diff", "mini")
CONFIG_FILES = (
    "conftest.py",
    "pytest.ini",
    ".pytest.ini",
    "setup.cfg",
    "tox.ini",
    "pyproject.toml",
)
IGNORED = frozenset({".git", "__pycache__", ".zerog", ".pytest_cache", ".aider.tags.cache.v4"})
JUDGE_TIMEOUT = 300.0
SETTLE_TIMEOUT = 1800.0
# The max_tokens zerog's planners ask for on main (Request's default, the code planner's):
# an answer exactly this long was cut.
ZEROG_TOKEN_LIMITS = frozenset({1536, 2048})


@dataclass(frozen=True)
class AgentRun:
    """What an agent's run left: its exit, whether the limit stopped it, what it spent."""

    returncode: int
    timed_out: bool
    calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model_seconds: float = 0.0
    finish_reasons: tuple[str, ...] = ()
    detail: str = ""
    acted: bool | None = None  # None: judged by the workspace's changed files


@dataclass(frozen=True)
class Context:
    """What every agent of a run shares."""

    python: Path  # the test venv's interpreter: the check command runs with it
    time_limit: float
    scratch: Path  # a directory for the agent's own files (stores, logs, HOME)
    model_url: str = ""  # the recording proxy in front of llama_cpp.server ("" without)
    model_alias: str = ""
    # The proxy's answers to requests made since a time.monotonic() value, and a wait
    # until the server is free (after an agent killed mid-request).
    usage: Callable[[float], list[Usage]] = field(default=lambda since: [])
    settle: Callable[[float], bool] = field(default=lambda timeout: True)


class Agent(Protocol):
    @property
    def name(self) -> str: ...

    def run(self, task: BuiltTask, workspace: Path, context: Context) -> AgentRun: ...


@dataclass(frozen=True)
class Result:
    task: str
    level: str
    agent: str
    solved: bool
    cause: str
    calls: int
    prompt_tokens: int
    completion_tokens: int
    model_seconds: float
    wall_seconds: float
    detail: str


def _run(
    argv: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float, log: Path
) -> tuple[int, bool, str]:
    """Run an agent's process (its own session, killed whole on timeout); exit code,
    whether it timed out, its stdout (stderr goes to ``log`` beside it)."""
    with log.open("wb") as err:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=err,
            start_new_session=True,
        )
        try:
            out, _ = process.communicate(timeout=timeout)
            return process.returncode, False, out.decode("utf-8", "replace")
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            out, _ = process.communicate()
            return -9, True, out.decode("utf-8", "replace")
        except BaseException:  # interrupted: the agent's session does not outlive the bench
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise


def _base_env(scratch: Path) -> dict[str, str]:
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(scratch / "home"),
        "LANG": "C.UTF-8",
        "OMP_WAIT_POLICY": "passive",
    }


@dataclass(frozen=True)
class ZerogAgent:
    """``zerog run`` with one strategy; ``model`` may hold ``{task}`` (a scripted model
    file per task)."""

    strategy: str
    model: str
    zerog: tuple[str, ...]  # the command that starts zerog: (python, "-m", "zerog")
    sandbox: str = "bwrap"
    escalate: str = "local:1.5b"
    max_iterations: int = 5

    @property
    def name(self) -> str:
        return f"zerog:{self.strategy}"

    def argv(self, task: BuiltTask, workspace: Path, context: Context, store: Path) -> list[str]:
        argv = [
            *self.zerog,
            "run",
            task.goal,
            "--workspace",
            str(workspace),
            "--check",
            task.check_command(context.python),
            "--model",
            self.model.replace("{task}", task.id),
            "--max-iterations",
            str(self.max_iterations),
            "--max-time",
            str(context.time_limit),
            "--sandbox",
            self.sandbox,
            "--store",
            str(store),
            "--no-cache",
            "--json",
        ]
        if self.strategy in ("answer-file", "cascade"):
            argv += ["--answer-file", task.files[0]]
        if self.strategy == "cascade":
            argv += ["--escalate", self.escalate]
        return argv

    def run(self, task: BuiltTask, workspace: Path, context: Context) -> AgentRun:
        store = context.scratch / "runs.db"
        env = {**_base_env(context.scratch), "ZEROG_STORE": str(store)}
        for name in ("ZEROG_MODEL_DIR", "XDG_CACHE_HOME"):
            if name in os.environ:
                env[name] = os.environ[name]
        env["HOME"] = os.environ.get("HOME", env["HOME"])  # the local model's weights cache
        code, timed_out, out = _run(
            self.argv(task, workspace, context, store),
            workspace,
            env,
            context.time_limit + 120,
            context.scratch / "zerog.stderr",
        )
        try:
            result = json.loads(out)
        except ValueError:
            result = {}
        if not isinstance(result, dict):
            result = {}
        calls = prompt = completion = 0
        models = result.get("models")
        for usage in (models or {}).values() if isinstance(models, dict) else ():
            calls += int(usage.get("calls", 0))
            prompt += int(usage.get("usage", {}).get("input_tokens", 0))
            completion += int(usage.get("usage", {}).get("output_tokens", 0))
        detail = f"{result.get('status', 'no result')}: {result.get('reason', '')}".strip()
        if not result:
            tail = (context.scratch / "zerog.stderr").read_text("utf-8", "replace")[-300:]
            detail = f"exit {code}: {tail.strip()}"
        seconds, undone, reasons = _store_facts(store)
        return AgentRun(
            returncode=code,
            timed_out=timed_out,
            calls=calls,
            prompt_tokens=prompt,
            completion_tokens=completion,
            model_seconds=seconds,
            finish_reasons=reasons,
            detail=detail,
            acted=undone > 0 or bool(result.get("files", {}).get("changed")),
        )


def _store_facts(store: Path) -> tuple[float, int, tuple[str, ...]]:
    """The summed duration of the model calls a zerog run store recorded, how many files
    its rollbacks put back (zerog rolls a failed iteration back: its edits are gone from
    the workspace, but the store's rollback events count them), and each call's finish
    reason as far as the store tells it: ``length`` for an answer exactly as long as one
    of zerog's token limits (the store does not record the reason itself)."""
    if not store.is_file():
        return 0.0, 0, ()
    connection = sqlite3.connect(f"file:{store}?mode=ro", uri=True)
    try:
        seconds, undone, reasons = 0.0, 0, []
        rows = connection.execute(
            "SELECT kind, data FROM events WHERE kind IN (?, ?)", ("model_call", "rollback")
        )
        for kind, data in rows:
            event = json.loads(data)
            if kind == "model_call":
                duration = event.get("duration")
                seconds += float(duration) if isinstance(duration, (int, float)) else 0.0
                cut = event.get("output_tokens") in ZEROG_TOKEN_LIMITS
                reasons.append("length" if cut else "stop")
            elif kind == "rollback":
                undone += int(event.get("written") or 0) + int(event.get("removed") or 0)
        return seconds, undone, tuple(reasons)
    except (sqlite3.Error, ValueError, TypeError):
        return 0.0, 0, ()
    finally:
        connection.close()


def _peer_usage(code: int, timed_out: bool, usage: Sequence[Usage], detail: str = "") -> AgentRun:
    return AgentRun(
        returncode=code,
        timed_out=timed_out,
        calls=len(usage),
        prompt_tokens=sum(u.prompt_tokens for u in usage),
        completion_tokens=sum(u.completion_tokens for u in usage),
        model_seconds=sum(u.seconds for u in usage),
        finish_reasons=tuple(u.finish_reason for u in usage),
        detail=detail,
    )


def _git_snapshot(workspace: Path, env: Mapping[str, str]) -> None:
    """Aider works in a git repository: the workspace as one commit."""
    git_env = {
        **env,
        "GIT_AUTHOR_NAME": "bench",
        "GIT_AUTHOR_EMAIL": "bench@127.0.0.1",
        "GIT_COMMITTER_NAME": "bench",
        "GIT_COMMITTER_EMAIL": "bench@127.0.0.1",
    }
    for argv in (
        ["git", "init", "-q"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "task", "--no-gpg-sign"],
    ):
        subprocess.run(argv, cwd=workspace, env=git_env, check=True, timeout=60)


@dataclass(frozen=True)
class AiderAgent:
    edit_format: str  # whole or diff
    aider: str

    @property
    def name(self) -> str:
        return f"aider-{self.edit_format}"

    def run(self, task: BuiltTask, workspace: Path, context: Context) -> AgentRun:
        env = {
            **_base_env(context.scratch),
            "OPENAI_API_KEY": "local",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        _git_snapshot(workspace, env)
        argv = [
            self.aider,
            "--model",
            f"openai/{context.model_alias}",
            "--openai-api-base",
            f"{context.model_url}/v1",
            "--edit-format",
            self.edit_format,
            "--auto-test",
            "--test-cmd",
            task.check_command(context.python),
            "--yes-always",
            "--no-auto-commits",
            "--no-dirty-commits",
            "--no-stream",
            "--no-pretty",
            "--no-fancy-input",
            "--no-check-update",
            "--no-show-model-warnings",
            "--analytics-disable",
            "--no-gitignore",
            "--message",
            task.goal,
        ]
        code, timed_out, out = _run(
            argv, workspace, env, context.time_limit, context.scratch / "aider.stderr"
        )
        (context.scratch / "aider.stdout").write_text(out, encoding="utf-8")
        return _peer_usage(code, timed_out, context.usage(0.0), f"exit {code}")


@dataclass(frozen=True)
class MiniAgent:
    mini: str
    step_limit: int = 30
    name: str = "mini"

    def run(self, task: BuiltTask, workspace: Path, context: Context) -> AgentRun:
        env = {
            **_base_env(context.scratch),
            "MSWEA_CONFIGURED": "true",
            "MSWEA_SILENT_STARTUP": "1",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        goal = f"{task.goal}\n\nThe tests run with: {task.check_command(context.python)}"
        argv = [
            self.mini,
            "--model",
            f"openai/{context.model_alias}",
            "--model-class",
            "litellm_textbased",
            "--task",
            goal,
            "--yolo",
            "--exit-immediately",
            "-c",
            "mini_textbased.yaml",
            "-c",
            f"model.model_kwargs.api_base={context.model_url}/v1",
            "-c",
            "model.model_kwargs.api_key=local",
            "-c",
            "model.cost_tracking=ignore_errors",
            "-c",
            "agent.cost_limit=0",
            "-c",
            f"agent.step_limit={self.step_limit}",
            "-c",
            f"environment.cwd={workspace}",
            "--output",
            str(context.scratch / "trajectory.json"),
        ]
        code, timed_out, out = _run(
            argv, workspace, env, context.time_limit, context.scratch / "mini.stderr"
        )
        (context.scratch / "mini.stdout").write_text(out, encoding="utf-8")
        return _peer_usage(code, timed_out, context.usage(0.0), f"exit {code}")


def _files(root: Path) -> dict[str, bytes]:
    found: dict[str, bytes] = {}
    for path in root.rglob("*"):
        relative = path.relative_to(root)
        if any(part in IGNORED or part.startswith(".aider") for part in relative.parts):
            continue
        if path.is_file() and not path.is_symlink():
            found[relative.as_posix()] = path.read_bytes()
    return found


def changed_files(pristine: Path, workspace: Path) -> list[str]:
    """The files (but caches and agents' own files) that differ between two trees."""
    before, after = _files(pristine), _files(workspace)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def restore_tests(task: BuiltTask, pristine: Path, workspace: Path) -> None:
    """Put the task's test files and pytest's configuration back as they were built."""
    for name in (*task.tests, *CONFIG_FILES):
        source, target = pristine / name, workspace / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        if source.is_dir():
            shutil.copytree(source, target)
        elif source.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def judge(task: BuiltTask, pristine: Path, workspace: Path, python: Path) -> bool:
    """Solved: the task's tests pass in the agent's workspace, its test files restored."""
    restore_tests(task, pristine, workspace)
    done = run_tests(workspace, python, task.test_args, task.env, task.tests, JUDGE_TIMEOUT)
    return done.returncode == 0


def cause_of(run: AgentRun, solved: bool, changed: Sequence[str]) -> str:
    """Why an unsolved task failed, in one word (see the module doc)."""
    if solved:
        return ""
    if run.timed_out or ("time" in run.detail.lower() and "budget" in run.detail.lower()):
        return "timeout"
    if "length" in run.finish_reasons or "max_tokens" in run.detail:
        return "max_tokens"
    if run.returncode == 3:
        return "model error"
    acted = bool(changed) if run.acted is None else run.acted
    return "wrong edit" if acted else "no edit"


def run_task(agent: Agent, task: BuiltTask, tasks_dir: Path, out: Path, context: Context) -> Result:
    """One agent on one task in a fresh copy of its workspace, judged."""
    pristine = tasks_dir / task.id / "workspace"
    place = out / agent.name.replace(":", "-") / task.id
    if place.exists():
        shutil.rmtree(place)
    workspace = place / "workspace"
    shutil.copytree(pristine, workspace)
    scratch = place / "agent"
    (scratch / "home").mkdir(parents=True)
    here = Context(
        python=context.python,
        time_limit=context.time_limit,
        scratch=scratch.absolute(),
        model_url=context.model_url,
        model_alias=context.model_alias,
        usage=lambda since: context.usage(since or window),
    )
    context.settle(SETTLE_TIMEOUT)  # the server finishes what an earlier agent left running
    window = time.monotonic()
    started = time.perf_counter()
    run = agent.run(task, workspace.absolute(), here)
    wall = time.perf_counter() - started
    changed = changed_files(pristine, workspace)
    solved = judge(task, pristine, workspace, context.python)
    return Result(
        task=task.id,
        level=task.level,
        agent=agent.name,
        solved=solved,
        cause=cause_of(run, solved, changed),
        calls=run.calls,
        prompt_tokens=run.prompt_tokens,
        completion_tokens=run.completion_tokens,
        model_seconds=round(run.model_seconds, 3),
        wall_seconds=round(wall, 3),
        detail=run.detail[:300],
    )


def select_tasks(tasks: Sequence[BuiltTask], which: str | None) -> list[BuiltTask]:
    """All tasks, the first N (``which`` a number) or those named (comma-separated)."""
    if not which:
        return list(tasks)
    if which.isdigit():
        return list(tasks[: int(which)])
    names = [n.strip() for n in which.split(",") if n.strip()]
    known = {t.id: t for t in tasks}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ConfigError(f"unknown task(s): {', '.join(unknown)}")
    return [known[n] for n in names]


def run_bench(
    agents: Sequence[Agent],
    tasks: Sequence[BuiltTask],
    tasks_dir: Path,
    out: Path,
    context: Context,
    on_result: Callable[[Result], None] = lambda result: None,
) -> list[Result]:
    """Every agent on every task (task by task, agents side by side); results.jsonl and
    summary.md in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    results: list[Result] = []
    with (out / "results.jsonl").open("w", encoding="utf-8") as log:
        for task in tasks:
            for agent in agents:
                result = run_task(agent, task, tasks_dir, out, context)
                results.append(result)
                log.write(json.dumps(asdict(result), sort_keys=True) + "\n")
                log.flush()
                on_result(result)
    (out / "summary.md").write_text(summary(results, [a.name for a in agents]), encoding="utf-8")
    return results


def summary(results: Sequence[Result], agents: Sequence[str]) -> str:
    """Markdown: one row per task and agent, then the totals per agent."""
    lines = [
        "| task | level | agent | solved | cause | calls | prompt tok | completion tok "
        "| model s | wall s |",
        "|---|---|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r.task} | {r.level} | {r.agent} | {'yes' if r.solved else 'no'} | {r.cause} "
            f"| {r.calls} | {r.prompt_tokens} | {r.completion_tokens} "
            f"| {r.model_seconds:.1f} | {r.wall_seconds:.1f} |"
        )
    lines += [
        "",
        "| agent | solved | calls | prompt tok | completion tok | model s | model s / solved "
        "| wall s | failures |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in agents:
        mine = [r for r in results if r.agent == name]
        solved = sum(r.solved for r in mine)
        seconds = sum(r.model_seconds for r in mine)
        per = f"{seconds / solved:.1f}" if solved else "-"
        causes: dict[str, int] = {}
        for r in mine:
            if r.cause:
                causes[r.cause] = causes.get(r.cause, 0) + 1
        failures = ", ".join(f"{k} {v}" for k, v in sorted(causes.items())) or "-"
        lines.append(
            f"| {name} | {solved}/{len(mine)} | {sum(r.calls for r in mine)} "
            f"| {sum(r.prompt_tokens for r in mine)} | {sum(r.completion_tokens for r in mine)} "
            f"| {seconds:.1f} | {per} | {sum(r.wall_seconds for r in mine):.1f} | {failures} |"
        )
    return "\n".join(lines) + "\n"
