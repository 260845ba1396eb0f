"""``--git``: a run's result as a commit on a new branch; the user's checkout untouched.

Before the run, :func:`prepare` checks the workspace with the ``git`` executable (a
work tree, a branch checked out and committed to, no uncommitted change in the workspace
unless allowed, the new branch's name free) and pins what the run needs: the git
directory, the top of the work tree, the commit the user's branch points at. Nothing is
changed when a check fails.

At the end of a successful run, :func:`commit` makes the commit without ever switching
the user's checkout: a temporary index (never ``.git/index``) is filled from the pinned
commit and the workspace's final state (``git add -A`` honours ``.gitignore``;
``.zerog/`` is always left out), written as a tree, committed with the goal as message
(``git commit-tree``, no hooks, no signing) and given a new branch
(``git update-ref`` that only creates). Then the work tree is put back exactly as it
was when the run started: the run's result lives on the branch only, ready to review
(``git log -p BRANCH``) and to take (``git merge BRANCH``).

The sandbox may write to the workspace, and a repository at its top keeps its
configuration, hooks and refs in ``.git/`` there: a run could plant a ``core.fsmonitor``
command for the host's git to execute, or commit onto the user's branch from inside the
sandbox. So ``.git`` is zerog's during a ``--git`` run: before the host's git is called,
whatever the run did inside it is undone from the run's first snapshot, and every git
command names the git directory and work tree pinned before the run (no discovery, so
a ``.git`` the run created elsewhere is never read).

Every git command is an argument list (never a shell string) with the user's
environment less the variables that would redirect git (``GIT_DIR`` ...). When git
knows no author or committer, zerog's own identity is set in that one command's
environment; the user's configuration is never written.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from zerog.changes import shown_path
from zerog.errors import ConfigError, ZerogError
from zerog.sandbox.workspace import Entry, Snapshot, Workspace
from zerog.text import one_line
from zerog.types import Frozen, GitOutcome

TIMEOUT = 600.0
BRANCH_PREFIX = "zerog/"
IDENTITY = {"NAME": "zerog", "EMAIL": "zerog@localhost"}
STATE_DIR = ".zerog"
# Variables that would make git look at another repository, index or work tree.
_REDIRECTS = (
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
)


class GitError(ConfigError):
    """``--git`` cannot be used here, or a git command failed; the message says why."""


class GitPlan(Frozen):
    """What a ``--git`` run pinned before it started (recorded as its ``git_prepared``
    event, so that a resumed run commits exactly as the original would have)."""

    top: str  # the top of the work tree
    git_dir: str  # the repository's git directory (absolute)
    prefix: str  # the workspace below the top: "" or "sub/dir/"
    user_branch: str  # the branch checked out, e.g. main (never changed)
    head: str  # the commit it pointed at
    branch: str  # the branch to make: zerog/<run id>
    dirty: bool = False  # the workspace had uncommitted changes (--allow-dirty)


@dataclass(frozen=True)
class Git:
    """The ``git`` executable with a clean environment."""

    executable: str
    environ: Mapping[str, str]

    @classmethod
    def find(cls, environ: Mapping[str, str]) -> Git:
        found = shutil.which("git", path=environ.get("PATH"))
        if found is None:
            raise GitError(
                "--git needs the git executable, and there is none on PATH: install git "
                "(apt-get install git), or run without --git"
            )
        clean = {k: v for k, v in environ.items() if k not in _REDIRECTS}
        clean.update(GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0", LC_ALL="C")
        return cls(found, clean)

    def run(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(  # an argument list: the paths are data
                [self.executable, *args],
                cwd=cwd,
                env={**self.environ, **(env or {})},
                input=stdin if stdin is not None else "",
                capture_output=True,
                text=True,
                encoding="utf-8",
                errors="surrogateescape",
                timeout=TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise GitError(f"git {args[0]} could not run: {exc}") from None

    def out(
        self,
        args: Sequence[str],
        *,
        cwd: Path,
        env: Mapping[str, str] | None = None,
        stdin: str | None = None,
    ) -> str:
        """The output of a git command that must succeed, stripped."""
        done = self.run(args, cwd=cwd, env=env, stdin=stdin)
        if done.returncode != 0:
            raise GitError(f"git {args[0]} failed: {_why(done)}")
        return done.stdout.strip()


def _why(done: subprocess.CompletedProcess[str]) -> str:
    lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
    fatal = [ln for ln in lines if ln.startswith(("fatal:", "error:"))]
    return one_line((fatal or lines or [f"exit status {done.returncode}"])[0], 300)


def _scope(prefix: str) -> list[str]:
    """The pathspecs of the workspace inside the work tree, ``.zerog/`` left out."""
    where = f":(top,literal){prefix}" if prefix else ":(top)"
    return [where, f":(top,exclude,literal){prefix}{STATE_DIR}"]


def prepare(
    workspace: Path, run_id: str, environ: Mapping[str, str], *, allow_dirty: bool
) -> GitPlan:
    """Check that a ``--git`` run can start in ``workspace``; :class:`GitError` if not."""
    git = Git.find(environ)
    inside = git.run(["rev-parse", "--is-inside-work-tree"], cwd=workspace)
    if inside.returncode != 0:
        why = _why(inside)
        if "not a git repository" in why:
            raise GitError(
                f"--git: {workspace} is not in a git work tree (git init, commit, and run "
                "again), or run without --git"
            )
        raise GitError(f"--git: git refuses {workspace}: {why}")
    if inside.stdout.strip() != "true":
        raise GitError(f"--git: {workspace} is inside a git directory, not a work tree")
    top, git_dir, prefix = (
        git.out(
            ["rev-parse", "--show-toplevel", "--absolute-git-dir", "--show-prefix"], cwd=workspace
        )
        + "\n\n"
    ).split("\n")[:3]
    head_ref = git.run(["symbolic-ref", "-q", "HEAD"], cwd=workspace)
    ref = head_ref.stdout.strip()
    if head_ref.returncode != 0 or not ref.startswith("refs/heads/"):
        raise GitError(
            f"--git: HEAD is detached in {top}: check out a branch first (git switch BRANCH)"
        )
    user_branch = ref.removeprefix("refs/heads/")
    head = git.run(["rev-parse", "-q", "--verify", "HEAD^{commit}"], cwd=workspace)
    if head.returncode != 0:
        raise GitError(f"--git: branch {user_branch} has no commit yet: commit once first")
    status = git.run(
        ["status", "--porcelain=v1", "-z", "--untracked-files=all", "--", *_scope(prefix)],
        cwd=Path(top),
    )
    if status.returncode != 0:
        raise GitError(f"--git: git status failed in {top}: {_why(status)}")
    dirty = [entry[3:] for entry in status.stdout.split("\0") if len(entry) > 3]
    if dirty and not allow_dirty:
        raise GitError(
            f"--git: the workspace has uncommitted changes ({len(dirty)}, e.g. "
            f"{shown_path(dirty[0])}): commit or stash them, or pass --allow-dirty"
        )
    branch = f"{BRANCH_PREFIX}{run_id}"
    if git.run(["check-ref-format", "--branch", branch], cwd=workspace).returncode != 0:
        raise GitError(f"--git: {branch!r} is not a valid branch name")
    for taken in (f"refs/heads/{branch}", f"refs/heads/{BRANCH_PREFIX.rstrip('/')}"):
        if git.run(["show-ref", "--verify", "-q", taken], cwd=workspace).returncode == 0:
            raise GitError(
                f"--git: branch {taken.removeprefix('refs/heads/')} exists already: delete it "
                "or choose another --run-id"
            )
    return GitPlan(
        top=top,
        git_dir=git_dir,
        prefix=prefix,
        user_branch=user_branch,
        head=head.stdout.strip(),
        branch=branch,
        dirty=bool(dirty),
    )


# ---------------------------------------------------------------------------- commit


def _owned(plan: GitPlan, root: Path) -> tuple[str, ...]:
    """Workspace paths that are git's, not the run's: ``.git`` at the top of the workspace
    and the git directory when it is inside the workspace."""
    owned = [".git"]
    git_dir = Path(plan.git_dir)
    if git_dir.is_relative_to(root) and git_dir != root:
        owned.append(git_dir.relative_to(root).as_posix())
    return tuple(owned)


def _under(path: str, prefixes: Sequence[str]) -> bool:
    return any(path == p or path.startswith(f"{p}/") for p in prefixes)


def _mixed(
    plan: GitPlan, workspace: Workspace, files: Snapshot, git: Mapping[str, Entry]
) -> Snapshot:
    """A state to restore: the run's files as in ``files``, git's own as in ``git``."""
    owned = _owned(plan, workspace.root)
    entries = {p: e for p, e in files.entries.items() if not _under(p, owned)}
    entries.update({p: e for p, e in git.items() if _under(p, owned)})
    return Snapshot(files.id, entries)


@dataclass(frozen=True)
class _Repo:
    git: Git
    plan: GitPlan

    def __call__(
        self, args: Sequence[str], env: Mapping[str, str] | None = None, stdin: str | None = None
    ) -> str:
        pinned = [f"--git-dir={self.plan.git_dir}", f"--work-tree={self.plan.top}"]
        hardened = ["-c", "core.fsmonitor=false", "-c", "core.hooksPath=/dev/null"]
        return self.git.out(
            [*pinned, *hardened, *args], cwd=Path(self.plan.top), env=env, stdin=stdin
        )

    def tree(self) -> str:
        """The tree of the pinned commit with the workspace as it is now."""
        with tempfile.TemporaryDirectory(prefix="zerog-git-") as scratch:
            index = {"GIT_INDEX_FILE": str(Path(scratch) / "index")}
            self(["read-tree", self.plan.head], env=index)
            self(["add", "-A", "--", *_scope(self.plan.prefix)], env=index)
            return self(["write-tree"], env=index)

    def identity(self) -> dict[str, str]:
        """zerog's name and email for each of author and committer git does not know."""
        found = self.git.run(
            [
                f"--git-dir={self.plan.git_dir}",
                "config",
                "--get-regexp",
                r"^(user|author|committer)\.(name|email)$",
            ],
            cwd=Path(self.plan.top),
        )
        known = {line.split(" ", 1)[0].lower() for line in found.stdout.splitlines() if " " in line}
        env = self.git.environ
        missing: dict[str, str] = {}
        for role in ("author", "committer"):
            for field in ("name", "email"):
                variable = f"GIT_{role.upper()}_{field.upper()}"
                if env.get(variable) or {f"{role}.{field}", f"user.{field}"} & known:
                    continue
                if field == "email" and env.get("EMAIL"):
                    continue
                missing[variable] = IDENTITY[field.upper()]
        return missing

    def commit(self, tree: str, parent: str, message: str) -> str:
        return self(
            ["commit-tree", "--no-gpg-sign", tree, "-p", parent, "-F", "-"],
            env=self.identity(),
            stdin=message,
        )


def _message(goal: str, run_id: str) -> str:
    return f"{goal.strip() or 'zerog run'}\n\nZerog-Run: {run_id}\n"


def commit(
    plan: GitPlan,
    workspace: Workspace,
    base: Snapshot,
    final: Snapshot,
    *,
    goal: str,
    run_id: str,
    environ: Mapping[str, str],
    succeeded: bool,
) -> GitOutcome:
    """Commit the run's final state on ``plan.branch`` and put the work tree back as it
    was at the start. A failure leaves the final state in the work tree and says why."""

    def outcome(status: str, message: str, made: str | None = None) -> GitOutcome:
        return GitOutcome.model_validate(
            {
                "status": status,
                "branch": plan.branch,
                "base": plan.head,
                "user_branch": plan.user_branch,
                "commit": made,
                "message": message,
            }
        )

    if not succeeded:
        return outcome("skipped", "the run did not succeed: no commit, no branch")
    repo = _Repo(Git.find(environ), plan)
    try:
        # Whatever the run did inside .git is undone before the host's git reads it.
        workspace.restore(_mixed(plan, workspace, final, base.entries))
        final_tree = repo.tree()
        # Back to the start, except the objects git just wrote.
        workspace.restore(_mixed(plan, workspace, base, workspace.scan()))
        base_tree = repo.tree()
        if final_tree == base_tree:
            return outcome("skipped", "the run changed no file git tracks: no commit, no branch")
        parent = plan.head
        if base_tree != repo(["rev-parse", f"{plan.head}^{{tree}}"]):
            parent = repo.commit(
                base_tree,
                parent,
                f"Uncommitted changes in the workspace when run {run_id} started\n\n"
                f"Zerog-Run: {run_id}\n",
            )
        made = repo.commit(final_tree, parent, _message(goal, run_id))
        made = _create_branch(repo, plan.branch, made, final_tree, run_id)
    except (ZerogError, OSError) as exc:
        workspace.restore(_mixed(plan, workspace, final, workspace.scan()))
        return outcome("failed", f"{exc}; the run's result is left in the work tree")
    return outcome("committed", "", made)


def _create_branch(repo: _Repo, branch: str, made: str, tree: str, run_id: str) -> str:
    """Create the branch (never move one); the commit it points at. A branch that an
    interrupted attempt of this same run created, with the same tree, is kept as it is."""
    ref = f"refs/heads/{branch}"
    try:
        repo(["update-ref", "-m", f"zerog: run {run_id}", ref, made, ""])
        return made
    except GitError:
        pass
    found = repo.git.run(
        [f"--git-dir={repo.plan.git_dir}", "log", "-1", "--format=%H%n%T%n%B", ref, "--"],
        cwd=Path(repo.plan.top),
    )
    lines = found.stdout.splitlines()
    if found.returncode == 0 and lines[1:2] == [tree] and f"Zerog-Run: {run_id}" in lines:
        return lines[0]
    raise GitError(f"branch {branch} appeared during the run: it was not moved")
