"""Hostile runs against the reviewable result: `--git`, `zerog diff` and the run summary.

The sandbox may write anything in the workspace, `.git/` included, and name files as it
likes. These runs use the default sandbox (bwrap) and the real CLI, and check that what
the run wrote never executes on the host through zerog's own git commands, never rewinds
the user's branch, never reaches the terminal as escape sequences, and never breaks the
run's record.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from builders import plan, shell, step, write, write_script

CHECK = "python3 -c 'import app; assert app.answer() == 42'"
FIXED = "def answer():\n    return 42\n"
RAW_CONTROLS = ("\x1b", "\x07", "\x9b", "\r")


def env_for(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / "no-gitconfig"),
        COLUMNS="200",
        NO_COLOR="1",
        ZEROG_STORE=str(home / "runs.db"),
    )
    return env


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Ada", "-c", "user.email=ada@example.com", *args],
        cwd=repo,
        env=env_for(repo.parent),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def zerog(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerog", *args],
        cwd=home,
        env=env_for(home),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """Two commits on main; the user's branch is at the second."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 40\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "commit", "-qm", "first")
    (root / "app.py").write_text("def answer():\n    return 41\n")
    git(root, "commit", "-qam", "second")
    return root


def planted(repo: Path, workspace: Path, marker: Path) -> list[dict[str, object]]:
    """Actions that turn the repository's own files into host code execution for any
    git command zerog would run on the host, and rewind the user's branch."""
    first = git(repo, "rev-parse", "main~1")
    hook = f"#!/bin/sh\necho ran >> {marker}\ncat\n"
    git_dir = ".git"
    config = (
        "[core]\n\trepositoryformatversion = 0\n\tbare = false\n"
        f"\tfsmonitor = {workspace}/pwn.sh\n\thooksPath = {workspace}/hooks\n"
        f'[filter "pwn"]\n\tclean = {workspace}/pwn.sh\n\tsmudge = {workspace}/pwn.sh\n'
        "\trequired = true\n"
    )
    return [
        write("app.py", FIXED),
        write("pwn.sh", hook),
        write("hooks/reference-transaction", hook),
        write(".gitattributes", "* filter=pwn\n"),
        write(f"{git_dir}/config", config),
        write(f"{git_dir}/hooks/reference-transaction", hook),
        write(f"{git_dir}/hooks/post-commit", hook),
        write(f"{git_dir}/refs/heads/main", first + "\n"),
        shell(f"chmod +x pwn.sh hooks/* {git_dir}/hooks/*; python3 -c 'import app'"),
    ]


def test_a_planted_git_config_never_runs_on_the_host(tmp_path: Path, repo: Path) -> None:
    """Regression: zerog's own git commands read the repository's .git/config; a run
    could plant a clean filter, an fsmonitor or a hook there, and rewind the user's
    branch. Before the host's git runs, .git is put back as it was at the start."""
    marker = tmp_path / "outside" / "ran-on-host"
    marker.parent.mkdir()
    head = git(repo, "rev-parse", "main")
    config = (repo / ".git" / "config").read_text()
    model = write_script(tmp_path / "s.jsonl", plan(step("fix", *planted(repo, repo, marker))))
    done = zerog(
        tmp_path, "run", "fix answer", "-w", str(repo), "-m", f"scripted:{model}",
        "-c", CHECK, "--git", "--run-id", "h1", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outcome = json.loads(done.stdout)["git"]
    assert outcome["status"] == "committed", outcome
    assert not marker.exists(), "a command planted in .git ran on the host"
    assert git(repo, "rev-parse", "main") == head  # the rewind was undone
    assert (repo / ".git" / "config").read_text() == config
    assert not (repo / ".git" / "hooks" / "reference-transaction").exists()
    assert git(repo, "rev-parse", "zerog/h1^") == head
    assert git(repo, "show", "zerog/h1:app.py") + "\n" == FIXED  # no filter rewrote it
    # The planted files outside .git are the run's output: committed, for review.
    assert ".gitattributes" in git(repo, "ls-tree", "--name-only", "zerog/h1").splitlines()
    assert not marker.exists()


def test_a_git_directory_planted_below_the_top_is_never_used(tmp_path: Path, repo: Path) -> None:
    """A workspace below the top of its repository: the run creates svc/.git as a
    repository of its own (with the planted configuration); the commit goes to the
    repository found before the run, and nothing planted runs."""
    (repo / "svc").mkdir()
    (repo / "svc" / "app.py").write_text("def answer():\n    return 41\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "svc")
    head = git(repo, "rev-parse", "main")
    workspace = repo / "svc"
    marker = tmp_path / "outside" / "ran-on-host"
    marker.parent.mkdir()
    actions = [a for a in planted(repo, workspace, marker) if "refs/heads" not in str(a)]
    fake_repo = [
        write(".git/HEAD", "ref: refs/heads/main\n"),
        write(".git/refs/heads/.keep", ""),
        shell("mkdir -p .git/objects && python3 -c 'import app'"),
    ]
    model = write_script(
        tmp_path / "s.jsonl", plan(step("fix", *actions), step("plant a repository", *fake_repo))
    )
    done = zerog(
        tmp_path, "run", "fix answer", "-w", str(workspace), "-m", f"scripted:{model}",
        "-c", CHECK, "--git", "--run-id", "h2", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["git"]["status"] == "committed"
    assert not marker.exists()
    assert git(repo, "rev-parse", "zerog/h2^") == head
    assert git(repo, "show", "zerog/h2:svc/app.py") + "\n" == FIXED
    assert not (workspace / ".git").exists()


def test_escape_sequences_in_names_and_content_reach_no_terminal(tmp_path: Path) -> None:
    """Names and lines a run wrote are shown with their control characters escaped in
    the summary, `zerog diff`, `--stat` and `zerog show --diff`."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("def answer():\n    return 41\n")
    payload = (
        "printf 'x\\033]52;c;cHduZWQ=\\007 \\033[2J\\r\\302\\233 31m\\n' > "
        "\"$(printf 'name\\033[31m\\007.txt')\" && "
        "printf 'same\\n' > \"$(printf 'bad\\377bytes')\""
    )
    model = write_script(
        tmp_path / "s.jsonl", plan(step("fix", write("app.py", FIXED), shell(payload)))
    )
    done = zerog(
        tmp_path, "run", "fix answer", "-w", str(ws), "-m", f"scripted:{model}", "-c", CHECK,
        "--run-id", "esc",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    outputs = {
        "summary": done.stdout,
        "diff": zerog(tmp_path, "diff", "esc").stdout,
        "stat": zerog(tmp_path, "diff", "esc", "--stat").stdout,
        "show": zerog(tmp_path, "show", "esc", "--diff").stdout,
    }
    for where, text in outputs.items():
        for raw in RAW_CONTROLS:
            assert raw not in text, (where, raw)
        assert "name\\x1b[31m\\x07.txt" in text, where
        assert "bad\\xffbytes" in text, where
    assert "+x\\x1b]52;c;cHduZWQ=\\x07 \\x1b[2J\\x0d\\x9b 31m" in outputs["diff"]


def test_a_file_name_that_is_not_utf8_does_not_break_the_run(tmp_path: Path) -> None:
    """Regression: the snapshot hash encoded names as strict UTF-8, so a run that made
    a file named with an undecodable byte crashed at its next snapshot (a traceback,
    no run_finished)."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("def answer():\n    return 41\n")
    model = write_script(
        tmp_path / "s.jsonl",
        plan(
            step(
                "fix",
                shell("printf 'x\\n' > \"$(printf 'caf\\351.txt')\""),
                write("app.py", FIXED),
            )
        ),
    )
    done = zerog(
        tmp_path, "run", "fix", "-w", str(ws), "-m", f"scripted:{model}", "-c", CHECK,
        "--run-id", "utf", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["files"]["added"] == ["caf\\xe9.txt"]
    exported = zerog(tmp_path, "export", "utf").stdout.splitlines()
    assert json.loads(exported[-1])["kind"] == "run_finished"
    assert "caf\\xe9.txt" in zerog(tmp_path, "diff", "utf").stdout


RUNNER = """
import os, signal, sys
from pathlib import Path
from zerog.engine.loop import Engine
from zerog.models.scripted import ScriptedModel
from zerog.store import Store
from zerog.types import CommandCheck, Goal

class Killing(Store):  # events reach the store in commits (store.GroupCommit)
    def append(self, events):
        super().append(events)
        if any(e.kind == "observation" for e in events):
            os.kill(os.getpid(), signal.SIGKILL)

engine = Engine(ScriptedModel.from_file(Path(sys.argv[2])), store=Killing(Path(sys.argv[1])),
                write_trace=False, new_id=lambda: "killed")
# The check passes from the start: no preflight, or the run would end before any action.
engine.run(Goal(text="x", workspace=Path(sys.argv[3]), checks=(CommandCheck(command="true"),),
                preflight=False))
"""


def test_the_diff_of_a_killed_run_never_reads_through_a_link(tmp_path: Path) -> None:
    """A run without a final state is compared with the live workspace: a link the run
    made to a host file is shown as a link, its target file never read."""
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("print('hi')\n")
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("canary-secret-7f3a9c\n")
    model = write_script(
        tmp_path / "s.jsonl", plan(step("link", shell(f"ln -s {secret} leak && ln -s / root")))
    )
    killed = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "runs.db"), str(model), str(ws)],
        env=env_for(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    diff = zerog(tmp_path, "diff", "killed")
    assert diff.returncode == 0, diff.stderr
    assert "recorded no final state" in diff.stdout
    assert f"+{secret}" in diff.stdout
    assert "canary-secret" not in diff.stdout


def test_a_run_without_git_leaves_no_hook_or_config_in_git(tmp_path: Path, repo: Path) -> None:
    """Regression: without --git, what a command wrote under .git/ (a hook, a config with
    an fsmonitor) stayed there and ran at the user's next git command on the host. .git/
    is protected by default: put back before every sweep, so the run ends without it."""
    marker = tmp_path / "outside" / "ran-on-host"
    marker.parent.mkdir()
    config = (repo / ".git" / "config").read_text()
    hook = f"#!/bin/sh\\necho ran >> {marker}\\n"
    plant = (
        f"printf '{hook}' > .git/hooks/pre-commit && chmod +x .git/hooks/pre-commit && "
        f"printf '[core]\\n\\tfsmonitor = {repo}/pwn.sh\\n' >> .git/config"
    )
    model = write_script(
        tmp_path / "s.jsonl", plan(step("fix", write("app.py", FIXED), shell(plant)))
    )
    done = zerog(
        tmp_path, "run", "fix answer", "-w", str(repo), "-m", f"scripted:{model}",
        "-c", CHECK, "--run-id", "nogit",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert (repo / "app.py").read_text() == FIXED  # the run's work is kept
    assert not (repo / ".git" / "hooks" / "pre-commit").exists()
    assert (repo / ".git" / "config").read_text() == config
    git(repo, "commit", "-qam", "the user commits the result")
    assert not marker.exists()
