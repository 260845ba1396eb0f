"""Run part of the test suite as a dedicated unprivileged user, from a root `make test`.

CI and containers run zerog as root, and the sandboxes take other paths there (a pids
cgroup, an unprivileged uid for bwrap). The hostile suite must hold for both, so when
`make test` runs as root it runs the hostile suite a second time as the user
``zerog-ci`` (created on first use: a system user without a home or a login shell).

That user cannot read the checkout when it sits under a private directory (``mktemp -d``
makes 0700 directories, and ``/root`` is 0700), nor the interpreter when it lives under
``/root/.pyenv``. Nothing on the host is chmod-ed for it: the run happens in a private
mount namespace (``unshare --mount``) in which every directory on the way to the checkout
and to the interpreter that the user cannot cross is covered by a small tmpfs holding
only the one entry it needs, bound back in at the same path. Paths stay the same, so the
venv and its editable install work unchanged; the user can read but not write the
checkout. The namespace ends with the run and leaves nothing behind.

Usage (as root, from the checkout): ``python tests/unprivileged/run.py [pytest arguments]``;
as another user it says so and exits 0, since the main run was already unprivileged.
``python tests/unprivileged/run.py --exec PROGRAM [ARGUMENT...]`` runs any program the same
way instead of pytest (e.g. ``--exec .venv/bin/zerog bench sandbox --runs 50``).
"""

from __future__ import annotations

import os
import pwd
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

USER = "zerog-ci"
REPO = Path.cwd().resolve()  # make runs it from the checkout
DEFAULT_ARGS = ("tests/hostile",)


def ensure_user(name: str) -> tuple[int, int]:
    """The uid and gid of ``name``, created as a system user if it does not exist."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def crossable(path: Path, uid: int, gid: int) -> bool:
    """Whether ``uid``/``gid`` may search (execute) the directory ``path``."""
    info = path.stat()
    if info.st_uid == uid:
        return bool(info.st_mode & stat.S_IXUSR)
    if info.st_gid == gid:
        return bool(info.st_mode & stat.S_IXGRP)
    return bool(info.st_mode & stat.S_IXOTH)


def blocked(targets: list[Path], uid: int, gid: int) -> dict[Path, set[str]]:
    """Directories the user cannot cross on the way to ``targets``, each with the names of
    the entries below it that the run needs."""
    found: dict[Path, set[str]] = {}
    for target in targets:
        for parent, child in zip(target.parents, (target, *target.parents), strict=False):
            if not crossable(parent, uid, gid):
                found.setdefault(parent, set()).add(child.name)
        if not crossable(target, uid, gid):  # e.g. a clone made right into `mktemp -d`
            found.setdefault(target, set()).update(entry.name for entry in target.iterdir())
    return found


def cover_script(hold: Path, covers: dict[Path, set[str]]) -> list[str]:
    """Shell lines that replace each blocked directory by a tmpfs holding only what is
    needed, deepest first (an outer cover then carries the inner ones along)."""
    q = shlex.quote
    lines = ["set -eu", f"mount -t tmpfs -o mode=0755,size=1m zerog-hold {q(str(hold))}"]
    number = 0
    for directory in sorted(covers, key=lambda p: len(p.parts), reverse=True):
        held = []
        for name in sorted(covers[directory]):
            number += 1
            slot = hold / str(number)
            make = "mkdir" if (directory / name).is_dir() else "touch"
            lines.append(f"{make} {q(str(slot))}")
            lines.append(f"mount --rbind {q(str(directory / name))} {q(str(slot))}")
            held.append((name, slot, make))
        lines.append(f"mount -t tmpfs -o mode=0755,size=1m zerog-cover {q(str(directory))}")
        for name, slot, make in held:
            lines.append(f"{make} {q(str(directory / name))}")
            lines.append(f"mount --move {q(str(slot))} {q(str(directory / name))}")
    return lines


def private_copy(source: Path, target: Path, uid: int, gid: int) -> None:
    """Copy the compiled WASI interpreter (and what else zerog cached, but the model weights)
    for the user: zerog only loads native code from files the current user owns."""
    if not source.is_dir():
        return
    # Not the model weights (hundreds of MB): the suite run this way needs none.
    shutil.copytree(
        source, target, symlinks=False, dirs_exist_ok=True, ignore=shutil.ignore_patterns("models")
    )
    for path in (target, *target.rglob("*")):
        os.chown(path, uid, gid, follow_symlinks=False)


def main(argv: list[str]) -> int:
    if argv == ["--exec"]:
        print("tests/unprivileged: --exec needs a program to run", file=sys.stderr)
        return 2
    if os.geteuid() != 0:
        print("tests/unprivileged: not root, so the main run was already unprivileged")
        return 0
    if shutil.which("unshare") is None or shutil.which("setpriv") is None:
        print("tests/unprivileged: needs unshare and setpriv (util-linux)", file=sys.stderr)
        return 2
    uid, gid = ensure_user(os.environ.get("ZEROG_TEST_USER", USER))
    python = REPO / ".venv" / "bin" / "python"
    interpreter = Path(os.path.realpath(python))
    covers = blocked([REPO, interpreter.parent], uid, gid)
    scratch = Path(tempfile.mkdtemp(prefix="zerog-unprivileged-"))
    try:
        os.chmod(scratch, 0o755)
        hold = scratch / "hold"
        hold.mkdir()
        home = scratch / "home"
        home.mkdir(mode=0o700)
        os.chown(home, uid, gid)
        data = home / "zerog-data"
        source = Path(os.environ.get("ZEROG_DATA_DIR") or Path.home() / ".cache" / "zerog")
        private_copy(source, data, uid, gid)
        env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "HOME": str(home),
            "LANG": "C.UTF-8",
            "ZEROG_DATA_DIR": str(data),
            "PYTHONDONTWRITEBYTECODE": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
        }
        if argv[:1] == ["--exec"]:
            program = argv[1:]
        else:
            program = [
                str(python),
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "--basetemp",
                str(home / "pytest"),
                *(argv or DEFAULT_ARGS),
            ]
        run_as = [
            "setpriv",
            f"--reuid={uid}",
            f"--regid={gid}",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            "env",
            "-i",
            *(f"{k}={v}" for k, v in env.items()),
            *program,
        ]
        script = [
            *cover_script(hold, covers),
            f"cd {shlex.quote(str(REPO))}",
            "exec " + shlex.join(run_as),
        ]
        print(f"tests/unprivileged: running {shlex.join(program)} as uid {uid}", flush=True)
        done = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", "\n".join(script)],
            check=False,
        )
        return done.returncode
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
