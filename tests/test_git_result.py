"""`zerog run --git` and `zerog diff` on real git repositories, through the real CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from builders import plan, shell, step, write, write_script

pytestmark = pytest.mark.slow  # runs the zerog command line, with git, in subprocesses

CHECK = "python3 -c 'import app; assert app.answer() == 42'"
FIXED = "def answer():\n    return 42\n"


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        ["git", *args],
        cwd=repo,
        env=env or isolated_env(repo.parent),
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def isolated_env(home: Path, **extra: str) -> dict[str, str]:
    """No global or system git configuration: git knows no identity unless told."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("GIT_") and k not in ("EMAIL", "ZEROG_STORE")
    }
    env.update(
        HOME=str(home),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_CONFIG_GLOBAL=str(home / "no-gitconfig"),
        COLUMNS="200",
        NO_COLOR="1",
        ZEROG_STORE=str(home / "runs.db"),
    )
    env.update(extra)
    return env


def zerog(
    home: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zerog", *args],
        cwd=home,
        env=env or isolated_env(home),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A committed repository on branch main: app.py, a .gitignore, a tracked subdir."""
    root = tmp_path / "repo"
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n")
    (root / ".gitignore").write_text("*.log\n__pycache__/\n")
    (root / "docs").mkdir()
    (root / "docs" / "readme.txt").write_text("docs\n")
    git(root, "init", "-q", "-b", "main")
    git(root, "add", "-A")
    git(root, "-c", "user.name=Ada", "-c", "user.email=ada@example.com", "commit", "-qm", "init")
    return root


def script(home: Path, *actions: dict[str, object]) -> str:
    path = write_script(home / "script.jsonl", plan(step("fix it", *actions)))
    return f"scripted:{path}"


def run_git(
    home: Path,
    repo: Path,
    model: str,
    *extra: str,
    check: str = CHECK,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    return zerog(
        home,
        "run", "make answer() return 42", "-w", str(repo), "-m", model, "-c", check,
        "--sandbox", "local", "--git", "--json", *extra,
        env=env,
    )  # fmt: skip


def state(repo: Path) -> dict[str, str]:
    """What the user has: branch, HEAD, index, work tree status, every ref."""
    return {
        "branch": git(repo, "symbolic-ref", "HEAD"),
        "head": git(repo, "rev-parse", "HEAD"),
        "index": (repo / ".git" / "index").read_bytes().hex(),
        "status": git(repo, "status", "--porcelain", "--untracked-files=all"),
        "config": (repo / ".git" / "config").read_text(),
    }


def test_git_commits_the_result_on_a_new_branch_and_leaves_the_checkout(
    tmp_path: Path, repo: Path
) -> None:
    before = state(repo)
    refs_before = git(repo, "for-each-ref", "--format=%(refname)")
    model = script(
        tmp_path,
        write("app.py", FIXED),
        write("notes/added.md", "why\n"),
        write("debug.log", "ignored by .gitignore\n"),
        shell("rm docs/readme.txt && python3 -c 'import app'"),
    )
    done = run_git(tmp_path, repo, model, "--run-id", "r1")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "success"
    outcome = result["git"]
    assert outcome["status"] == "committed"
    assert outcome["branch"] == "zerog/r1"
    assert outcome["user_branch"] == "main"
    assert outcome["base"] == before["head"]
    commit = outcome["commit"]
    # The branch: one commit on top of the user's, the goal as message, the final tree.
    assert git(repo, "rev-parse", "zerog/r1") == commit
    assert git(repo, "rev-parse", "zerog/r1^") == before["head"]
    assert git(repo, "log", "-1", "--format=%B", "zerog/r1") == (
        "make answer() return 42\n\nZerog-Run: r1"
    )
    assert git(repo, "show", "zerog/r1:app.py") + "\n" == FIXED
    assert git(repo, "show", "zerog/r1:notes/added.md") == "why"
    files = git(repo, "ls-tree", "-r", "--name-only", "zerog/r1").splitlines()
    assert files == [".gitignore", "app.py", "notes/added.md"]  # no .zerog, no *.log
    # zerog's identity, since git has none here; the user's config is untouched.
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "zerog/r1") == (
        "zerog <zerog@localhost>|zerog <zerog@localhost>"
    )
    # The user's checkout: same branch, same commit, same index, same files, same config.
    assert state(repo) == before
    assert (repo / "app.py").read_text() == "def answer():\n    return 41\n"
    assert (repo / "docs" / "readme.txt").exists()
    assert not (repo / "debug.log").exists()
    refs_after = git(repo, "for-each-ref", "--format=%(refname)")
    assert refs_after.splitlines() == sorted([*refs_before.splitlines(), "refs/heads/zerog/r1"])
    # The files the run changed, in the result and its event.
    assert result["files"]["changed"] == ["app.py"]
    assert result["files"]["added"] == ["debug.log", "notes/added.md"]
    assert result["files"]["removed"] == ["docs/readme.txt"]
    # The summary says where the result is and how to look at it.
    shown = zerog(tmp_path, "show", "r1")
    assert "committed" in shown.stdout
    assert "zerog/r1" in shown.stdout
    assert "review: git log -p main..zerog/r1" in shown.stdout
    assert "changed  app.py" in shown.stdout


def test_git_uses_the_identity_git_knows(tmp_path: Path, repo: Path) -> None:
    git(repo, "config", "user.name", "Grace")
    git(repo, "config", "user.email", "grace@example.com")
    config = (repo / ".git" / "config").read_text()
    done = run_git(tmp_path, repo, script(tmp_path, write("app.py", FIXED)), "--run-id", "r2")
    assert done.returncode == 0, done.stderr
    assert git(repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>", "zerog/r2") == (
        "Grace <grace@example.com>|Grace <grace@example.com>"
    )
    assert (repo / ".git" / "config").read_text() == config


def test_diff_of_a_git_run_and_of_a_plain_run(tmp_path: Path, repo: Path) -> None:
    done = run_git(tmp_path, repo, script(tmp_path, write("app.py", FIXED)), "--run-id", "r3")
    assert done.returncode == 0, done.stderr
    # The diff is of the run's snapshots: the work tree is back at the start, the diff is not.
    diff = zerog(tmp_path, "diff", "r3")
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines() == [
        "diff --git a/app.py b/app.py",
        "--- a/app.py",
        "+++ b/app.py",
        "@@ -1,2 +1,2 @@",
        " def answer():",
        "-    return 41",
        "+    return 42",
    ]
    # ... and it is the same as git's view of the commit.
    assert (
        git(repo, "diff", "main", "zerog/r3", "--", "app.py").splitlines()[-3:]
        == (diff.stdout.splitlines()[-3:])
    )
    stat = zerog(tmp_path, "diff", "r3", "--stat")
    assert stat.stdout.splitlines() == [
        " changed  app.py | +1 -1",
        " 1 file changed, 1 insertion(+), 1 deletion(-)",
    ]
    coloured = zerog(tmp_path, "show", "r3", "--diff", "--color")
    assert "\x1b[32m+    return 42\x1b[0m" in coloured.stdout
    plain = zerog(tmp_path, "show", "r3", "--diff")
    assert "+    return 42" in plain.stdout
    assert "\x1b" not in plain.stdout
    unknown = zerog(tmp_path, "diff", "nope")
    assert unknown.returncode == 2
    assert "no run 'nope'" in unknown.stderr


def test_dirty_tree_is_refused_and_nothing_changes(tmp_path: Path, repo: Path) -> None:
    (repo / "app.py").write_text("# my work in progress\n")
    before = state(repo)
    model = script(tmp_path, write("app.py", FIXED))
    done = run_git(tmp_path, repo, model)
    assert done.returncode == 2
    assert "uncommitted changes (1, e.g. app.py)" in done.stderr
    assert "--allow-dirty" in done.stderr
    assert state(repo) == before
    assert not (repo / ".zerog").exists()
    assert git(repo, "branch", "--list", "zerog/*") == ""
    assert zerog(tmp_path, "runs", "--json").stdout.strip() == "[]"
    # An untracked file is uncommitted work too; an ignored one is not.
    git(repo, "checkout", "-q", "app.py")
    (repo / "draft.txt").write_text("mine\n")
    assert run_git(tmp_path, repo, model).returncode == 2
    (repo / "draft.txt").unlink()
    (repo / "trace.log").write_text("ignored\n")
    assert run_git(tmp_path, repo, model, "--run-id", "ok").returncode == 0


def test_allow_dirty_keeps_the_users_changes_in_a_commit_of_their_own(
    tmp_path: Path, repo: Path
) -> None:
    (repo / "docs" / "readme.txt").write_text("docs, edited by me\n")
    (repo / "mine.txt").write_text("my new file\n")
    before = state(repo)
    model = script(tmp_path, write("app.py", FIXED))
    done = run_git(tmp_path, repo, model, "--allow-dirty", "--run-id", "r4")
    assert done.returncode == 0, done.stderr
    # zerog/r4~1 holds the user's uncommitted work, zerog/r4 the run's change on top.
    assert git(repo, "rev-parse", "zerog/r4~2") == before["head"]
    assert git(repo, "show", "zerog/r4~1:mine.txt") == "my new file"
    assert git(repo, "diff", "--name-only", "zerog/r4~1", "zerog/r4") == "app.py"
    # The user's work is still there, uncommitted, exactly as it was.
    assert state(repo) == before
    assert (repo / "docs" / "readme.txt").read_text() == "docs, edited by me\n"
    assert (repo / "app.py").read_text() == "def answer():\n    return 41\n"
    refused = zerog(
        tmp_path, "run", "x", "-w", str(repo), "-m", model, "-c", "true", "--allow-dirty"
    )
    assert refused.returncode == 2
    assert "--allow-dirty only applies with --git" in refused.stderr


@pytest.mark.parametrize("case", ["not a repo", "detached", "no commit", "branch exists", "no git"])
def test_preflight_refusals_change_nothing(tmp_path: Path, repo: Path, case: str) -> None:
    model = script(tmp_path, write("app.py", FIXED))
    workspace = repo
    env = None
    expected = ""
    if case == "not a repo":
        workspace = tmp_path / "plain"
        workspace.mkdir()
        expected = "is not in a git work tree"
    elif case == "detached":
        git(repo, "checkout", "-q", "--detach")
        expected = "HEAD is detached"
    elif case == "no commit":
        workspace = tmp_path / "fresh"
        workspace.mkdir()
        git(workspace, "init", "-q", "-b", "main")
        expected = "branch main has no commit yet"
    elif case == "branch exists":
        git(repo, "branch", "zerog/taken")
        expected = "branch zerog/taken exists already"
    else:
        bare_path = tmp_path / "bin"
        bare_path.mkdir()
        os.symlink(shutil.which("python3") or sys.executable, bare_path / "python3")
        env = isolated_env(tmp_path, PATH=str(bare_path))
        expected = "--git needs the git executable"
    listing = sorted(p.name for p in workspace.iterdir())
    done = run_git(tmp_path, workspace, model, "--run-id", "taken", env=env)
    assert done.returncode == 2, done.stdout
    assert expected in done.stderr.replace("\n", " ")
    assert sorted(p.name for p in workspace.iterdir()) == listing  # no .zerog/ either
    if case != "not a repo" and case != "no commit":
        assert git(repo, "branch", "--list", "zerog/*").strip() in ("", "zerog/taken")


def test_a_failed_run_makes_no_branch(tmp_path: Path, repo: Path) -> None:
    model = script(tmp_path, write("app.py", "def answer():\n    return 0\n"))
    before = state(repo)
    done = run_git(tmp_path, repo, model, "--max-iterations", "1", "--run-id", "r5")
    assert done.returncode == 1
    outcome = json.loads(done.stdout)["git"]
    assert outcome["status"] == "skipped"
    assert "did not succeed" in outcome["message"]
    assert git(repo, "branch", "--list", "zerog/*") == ""
    assert state(repo) == before


def test_workspace_below_the_top_commits_only_its_part(tmp_path: Path, repo: Path) -> None:
    (repo / "svc").mkdir()
    (repo / "svc" / "app.py").write_text("def answer():\n    return 41\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=Ada", "-c", "user.email=a@b", "commit", "-qm", "svc")
    head = git(repo, "rev-parse", "HEAD")
    (repo / "elsewhere.txt").write_text("dirty outside the workspace: not the run's business\n")
    model = script(tmp_path, write("app.py", FIXED), write("new.txt", "n\n"))
    done = run_git(tmp_path, repo / "svc", model, "--run-id", "r6")
    assert done.returncode == 0, done.stderr
    assert git(repo, "rev-parse", "zerog/r6^") == head
    assert git(repo, "diff", "--name-only", head, "zerog/r6").splitlines() == [
        "svc/app.py",
        "svc/new.txt",
    ]
    assert git(repo, "show", "zerog/r6:app.py") == "def answer():\n    return 41"
    assert (repo / "elsewhere.txt").exists()


RUNNER = """
import os, signal, sys
from pathlib import Path
from zerog.engine.loop import Engine
from zerog.models.scripted import ScriptedModel
from zerog.store import Store

class Killing(Store):  # events reach the store in commits (store.GroupCommit)
    def append(self, events):
        hit = any(
            e.kind == sys.argv[3] and e.data.get("role", sys.argv[4]) == sys.argv[4]
            for e in events
        )
        if hit and sys.argv[5] == "during":
            os.kill(os.getpid(), signal.SIGKILL)
        super().append(events)
        if hit:
            os.kill(os.getpid(), signal.SIGKILL)

from zerog.runspec import RunSpec
from zerog.types import CommandCheck, Goal
store = Killing(Path(sys.argv[1]))
engine = Engine(ScriptedModel.from_file(Path(sys.argv[2])), store=store, sandbox_name="local",
                write_trace=False, new_id=lambda: "crashed", git=True)
goal = Goal(text="make answer() return 42", workspace=Path(sys.argv[6]),
            checks=(CommandCheck(command=sys.argv[7]),))
engine.run(goal, spec=RunSpec(model="scripted:" + sys.argv[2]))
"""


@pytest.mark.parametrize(
    ("kind", "role", "mode", "below"),
    [
        ("observation", "-", "after", False),  # in the middle of the run
        ("snapshot", "final", "after", False),  # the result recorded, not committed
        ("git_commit", "-", "during", False),  # the branch made, its event never recorded
        ("git_commit", "-", "during", True),  # the same, .git outside the workspace
        ("git_commit", "-", "after", False),  # committed, the run not finished
    ],
)
def test_resume_of_an_interrupted_git_run_commits_once(
    tmp_path: Path, repo: Path, kind: str, role: str, mode: str, below: bool
) -> None:
    if below:
        (repo / "svc").mkdir()
        shutil.move(repo / "app.py", repo / "svc" / "app.py")
        git(repo, "add", "-A")
        git(repo, "-c", "user.name=Ada", "-c", "user.email=a@b", "commit", "-qm", "move")
    workspace = repo / "svc" if below else repo
    before = state(repo)
    model = script(tmp_path, write("app.py", FIXED), write("extra.txt", "e\n"))
    env = isolated_env(tmp_path)
    killed = subprocess.run(
        [sys.executable, "-c", RUNNER, str(tmp_path / "runs.db"), model.split(":", 1)[1],
         kind, role, mode, str(workspace), CHECK],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    resumed = zerog(tmp_path, "resume", "crashed", "--json")
    assert resumed.returncode == 0, resumed.stderr
    outcome = json.loads(resumed.stdout)["git"]
    assert outcome["status"] == "committed", outcome
    assert git(repo, "rev-parse", "zerog/crashed") == outcome["commit"]
    assert git(repo, "rev-parse", "zerog/crashed^") == before["head"]
    assert git(repo, "show", f"zerog/crashed:{'svc/' if below else ''}extra.txt") == "e"
    assert git(repo, "rev-list", "--count", "main..zerog/crashed") == "1"
    assert state(repo) == before


def test_zerog_state_is_never_committed(tmp_path: Path, repo: Path) -> None:
    """Even when the run removed the .gitignore that keeps git out of .zerog/ (the local
    sandbox lets it), the commit holds none of zerog's state."""
    model = script(tmp_path, write("app.py", FIXED), shell("rm -f .zerog/.gitignore"))
    done = run_git(tmp_path, repo, model, "--run-id", "r7")
    assert done.returncode == 0, done.stderr
    files = git(repo, "ls-tree", "-r", "--name-only", "zerog/r7").splitlines()
    assert files == [".gitignore", "app.py", "docs/readme.txt"]
