"""The tool-call cache: keyed on the workspace state and environment, never serving a
command that writes or whose result varies."""

from __future__ import annotations

from pathlib import Path

from zerog.cache.db import CacheDB
from zerog.cache.tools import CachingSandbox, ToolCache
from zerog.sandbox.base import Limits
from zerog.sandbox.local import LocalSandbox
from zerog.sandbox.workspace import Workspace
from zerog.types import ShellAction

ENV = {"PATH": "/usr/bin:/bin"}


def _sandbox(tools: ToolCache, root: Path, env: dict[str, str] = ENV) -> CachingSandbox:
    workspace = Workspace(root, root / ".zerog" / "snapshots")
    return tools.wrap(LocalSandbox(env), env, lambda _: workspace.state_hash())


def test_declared_command_hits_until_the_workspace_changes(workspace: Path, db: CacheDB) -> None:
    (workspace / "data.txt").write_text("one two\n")
    action = ShellAction(command="wc -w data.txt")
    tools = ToolCache(db, commands=[action.command])
    box = _sandbox(tools, workspace)
    first = box.run(action, workspace, Limits())
    second = box.run(action, workspace, Limits(timeout=5))  # the deadline is not in the key
    assert not first.cached
    assert second.cached
    assert second.stdout == first.stdout
    assert second.exit_code == 0
    (workspace / "data.txt").write_text("one two three\n")
    third = box.run(action, workspace, Limits())
    assert not third.cached
    assert third.stdout.startswith("3")
    assert box.run(action, workspace, Limits()).cached


def test_environment_and_limits_are_part_of_the_key(workspace: Path, db: CacheDB) -> None:
    action = ShellAction(command="echo $GREETING")
    tools = ToolCache(db, commands=[action.command])
    hello = _sandbox(tools, workspace, {**ENV, "GREETING": "hello"})
    hello.run(action, workspace, Limits())
    assert hello.run(action, workspace, Limits()).cached
    bye = _sandbox(tools, workspace, {**ENV, "GREETING": "bye"})
    answer = bye.run(action, workspace, Limits())
    assert not answer.cached
    assert answer.stdout.strip() == "bye"
    assert not hello.run(action, workspace, Limits(max_output_bytes=4096)).cached


def test_undeclared_commands_run_every_time(workspace: Path, db: CacheDB) -> None:
    box = _sandbox(ToolCache(db, commands=["true"]), workspace)
    action = ShellAction(command="ls")
    assert not any(box.run(action, workspace, Limits()).cached for _ in range(3))


def test_a_command_that_writes_is_never_served(workspace: Path, db: CacheDB) -> None:
    action = ShellAction(command="echo x >> log.txt")
    box = _sandbox(ToolCache(db, commands=[action.command]), workspace)
    for _ in range(3):
        assert not box.run(action, workspace, Limits()).cached
    assert (workspace / "log.txt").read_text() == "x\nx\nx\n"


def test_learned_commands_need_two_equal_results(workspace: Path, db: CacheDB) -> None:
    action = ShellAction(command="cat app.py")
    box = _sandbox(ToolCache(db, learn=True), workspace)
    assert [box.run(action, workspace, Limits()).cached for _ in range(3)] == [
        False,
        False,
        True,
    ]


def test_a_varying_result_marks_the_command_nondeterministic(
    workspace: Path, tmp_path: Path, db: CacheDB
) -> None:
    outside = tmp_path / "counter"
    outside.write_text("1")
    action = ShellAction(command=f"cat {outside}")
    box = _sandbox(ToolCache(db, learn=True), workspace)
    box.run(action, workspace, Limits())
    outside.write_text("2")  # same workspace, different answer
    box.run(action, workspace, Limits())
    results = [box.run(action, workspace, Limits()) for _ in range(3)]
    assert not any(r.cached for r in results)
    assert db.stats()["tool"]["varied"] == 1
    declared = _sandbox(ToolCache(db, commands=[action.command]), workspace)
    assert not declared.run(action, workspace, Limits()).cached  # the mark holds
