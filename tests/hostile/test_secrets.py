"""Secrets printed by commands (`cat .env`) reach no prompt, store, trace or terminal, and
what zerog writes about runs is private to its user (0600 files, 0700 directories).

The run is real: the scripted model's plan runs `cat` in bwrap, the checks fail and
print the secrets again, the loop re-plans with the failure as feedback; the store is a
real SQLite file, the trace a real JSONL file, the terminal zerog's own progress printer.
"""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

from rich.console import Console

from builders import plan, scripted, shell, step
from zerog.engine.loop import Engine
from zerog.progress import ConsoleProgress
from zerog.store import Store
from zerog.types import Budget, Goal, RunStatus

# Known only by value: zerog's own environment and config file say they are secret.
ENV_SECRET = "Zq9vX7unshapedEnvSecret4411"
CONFIG_KEY = "cfgKeyUnshaped8823abcdefgh"
# Known by shape, wherever they come from.
PASSWORD = "hunter2-correct-horse"
OPENAI = "sk-" + "A1b2C3d4E5f6G7h8I9j0KLmn"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
BEARER = "tok3n-abcdefghijklmnop"
PEM_BODY = "MIIEsecretKeyMaterialZZZ"
NEEDLES = (ENV_SECRET, CONFIG_KEY, PASSWORD, OPENAI, AWS, BEARER, PEM_BODY)
PRINT_ALL = "cat .env key.pem notes.txt"


def _workspace(root: Path) -> Path:
    ws = root / "ws"
    ws.mkdir()
    (ws / ".env").write_text(
        f"PASSWORD={PASSWORD}\nOPENAI_API_KEY={OPENAI}\nexport AWS_ACCESS_KEY_ID={AWS}\n"
    )
    (ws / "key.pem").write_text(
        f"-----BEGIN OPENSSH PRIVATE KEY-----\n{PEM_BODY}\n-----END OPENSSH PRIVATE KEY-----\n"
    )
    # An ordinary file (its text goes into the prompt's file index) with pasted secrets.
    (ws / "notes.txt").write_text(
        f"service token {ENV_SECRET}\nprovider key {CONFIG_KEY}\n"
        f"curl -H 'Authorization: Bearer {BEARER}' http://127.0.0.1/\n"
    )
    return ws


def _environ(root: Path) -> dict[str, str]:
    config = root / "config.toml"
    config.write_text(f'[keys]\nopenai_compatible = "{CONFIG_KEY}"\n')
    config.chmod(0o600)
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(root / "home"),
        "ZEROG_CONFIG": str(config),
        "ZEROG_TEST_SERVICE_TOKEN": ENV_SECRET,
    }


def _leaks(text: str) -> list[str]:
    return [needle for needle in NEEDLES if needle in text]


def test_secrets_printed_by_commands_reach_no_prompt_store_trace_or_terminal(
    tmp_path: Path,
) -> None:
    ws = _workspace(tmp_path)
    model = scripted(
        plan(step("Look at the configuration", shell(PRINT_ALL))),
        plan(step("Look again", shell(PRINT_ALL), check=f"{PRINT_ALL} >&2; false")),
    )
    terminal = io.StringIO()
    progress = ConsoleProgress(Console(file=terminal, width=300), verbose=True)
    goal = Goal(
        text="Show the configuration",
        workspace=ws,
        checks=[f"{PRINT_ALL}; {PRINT_ALL} >&2; false"],
        budget=Budget(max_iterations=2),
    )
    with Store(tmp_path / "runs.db") as store:
        engine = Engine(
            model,
            store=store,
            sinks=[progress],
            environ=_environ(tmp_path),
            trace_dir=tmp_path / "traces",
        )
        result = engine.run(goal)
        events = store.events(result.run_id)
        stored = b"".join(p.read_bytes() for p in tmp_path.glob("runs.db*"))
    prompts = "\n".join(m.content for r in model.requests for m in r.messages)
    trace = (tmp_path / "traces" / f"{result.run_id}.jsonl").read_text()
    assert _leaks(prompts) == []
    assert _leaks(stored.decode("utf-8", "replace")) == []
    assert _leaks(trace) == []
    assert _leaks(terminal.getvalue()) == []

    # The commands did run and print (redacted): the checks above saw their output.
    assert result.status is RunStatus.MAX_ITERATIONS
    outputs = [str(e.data.get("stdout", "")) for e in events if e.kind == "observation"]
    assert len(outputs) == 2
    assert all("PASSWORD=[redacted]" in out and "BEGIN" not in out for out in outputs)
    assert all("service token [redacted]" in out for out in outputs)
    feedback = [str(e.data["text"]) for e in events if e.kind == "feedback"]
    assert feedback
    assert "[redacted]" in feedback[0]
    assert "notes.txt" in prompts  # the file index and the feedback were in the prompts
    assert "service token [redacted]" in prompts
    assert "observation" in trace
    assert "[redacted]" in terminal.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_store_cache_and_trace_files_are_private_whatever_the_umask(tmp_path: Path) -> None:
    from zerog.cache.db import CacheDB
    from zerog.events import Event
    from zerog.trace import JsonlTrace

    previous = os.umask(0o022)
    try:
        with Store(tmp_path / "data" / "runs.db") as store:
            store.create_run("r1", "goal", str(tmp_path), {}, 1.0)
            store.emit(Event("r1", 1, 1.0, "observation", {"stdout": "output"}))
            files = [tmp_path / "data" / name for name in ("runs.db", "runs.db-wal", "runs.db-shm")]
            assert [_mode(f) for f in files] == [0o600] * 3
        assert _mode(tmp_path / "data") == 0o700
        with CacheDB(tmp_path / "cache" / "cache.db"):
            files = [tmp_path / "cache" / n for n in ("cache.db", "cache.db-wal", "cache.db-shm")]
            assert [_mode(f) for f in files if f.exists()] == [0o600] * 3
        with JsonlTrace(tmp_path / "traces" / "r1.jsonl") as trace:
            trace.emit(Event("r1", 1, 1.0, "observation", {"stdout": "output"}))
        assert _mode(tmp_path / "traces" / "r1.jsonl") == 0o600
        assert _mode(tmp_path / "traces") == 0o700
    finally:
        os.umask(previous)


def test_a_store_left_readable_by_an_older_zerog_is_made_private(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "runs.db"
    previous = os.umask(0o022)
    try:
        old = sqlite3.connect(path)
        old.execute("PRAGMA journal_mode=WAL")
        old.execute("CREATE TABLE t (x)")
        files = [path, Path(f"{path}-wal"), Path(f"{path}-shm")]
        assert [_mode(f) for f in files] == [0o644] * 3
        with Store(path):
            assert [_mode(f) for f in files] == [0o600] * 3
        old.close()
    finally:
        os.umask(previous)
