"""What a goal's commands need from the host, found without running anything.

The bwrap sandbox shows a command the system's ``/usr`` and the workspace. A project's
interpreter, test runner and dependencies usually live elsewhere: a venv in the
repository whose ``bin/python`` links to an interpreter outside it, a pyenv version, a
venv the user activated, ``/opt/...``, ``~/.local``. :func:`resolve` finds them and says
what to bind read-only (at the same paths) and which directories to put on ``PATH``:

- a **venv in the workspace** (``.venv``, ``venv``, or ``$VIRTUAL_ENV`` when it lies
  inside): its ``bin`` comes first on ``PATH`` and it is ``VIRTUAL_ENV``, as an activated
  venv would be; its base interpreter's prefix is bound. The base is read from
  ``pyvenv.cfg`` (``executable``, ``home``) and from the targets of ``bin/python3`` and
  ``bin/python`` (``os.path.realpath``): workspace content is never executed, and a
  base is only bound when it is a Python interpreter in a ``bin/`` beside a
  ``lib/pythonX.Y`` (a planted ``pyvenv.cfg`` cannot point the sandbox at other files);
- a **venv outside the workspace** (``$VIRTUAL_ENV``): bound with its base, its ``bin``
  next on ``PATH``;
- each **command word** of the checks (``python3``, ``pytest``, ``node``, ``make``...),
  looked up like the shell would (the venvs above, then the host's ``PATH``): when it
  lies outside ``/usr``, its directory's *prefix* is bound (the directory above
  ``bin/``, which holds ``lib/``; else the directory itself) and the directory goes on
  ``PATH``. A link is followed to its target, whose prefix is bound too; a script's
  ``#!`` interpreter is looked up the same way (one level). A **pyenv shim**
  (``$PYENV_ROOT/shims``) is resolved as pyenv does, from files only:
  ``$PYENV_VERSION``, else the first ``.python-version`` in the workspace or a directory
  above it, else ``$PYENV_ROOT/version``; ``system`` means the next match on ``PATH``.

A prefix that :class:`~zerog.mount_policy.Exposure` refuses (a home directory, one
holding credentials or zerog's files, a system directory such as ``/opt``) is not bound
whole: its ``bin`` directory and its ``lib/python*`` and ``lib/node_modules`` are tried
instead, and what still cannot be bound is reported (``skipped``, with the reason) for
the user to ``--mount`` what they judge safe. The user's own mounts (``--mount``,
``mounts``) are checked by the same rules and a refused one stops the run.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from os.path import exists, isdir, isfile, islink  # False on any error, unlike Path's
from pathlib import Path

from zerog.errors import ConfigError
from zerog.mount_policy import Exposure, dest_refusal, real
from zerog.redact import FIXED_PATH
from zerog.sandbox.launch import Bind
from zerog.types import AssertsCheck, Check, CommandCheck, Goal, Mount, OutputCheck, TestsCheck
from zerog.workspace_policy import SYSTEM_DIRS

VISIBLE = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # bwrap binds them
VENV_NAMES = (".venv", "venv")
PYTHON_NAME = re.compile(r"(python|pypy)[0-9.]*")
VERSION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,99}")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=.*", re.DOTALL)
DURATION = re.compile(r"[0-9.]+[smhd]?")


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


SHELL_WORDS = _words("if then else elif fi for while until do done case esac in ! { } [[ ]]")
BUILTINS = _words(
    ". : [ alias break cd continue echo eval exit export false hash let local printf pwd "
    "read return set shift source test trap true type ulimit umask unset wait function select"
)
WRAPPERS = _words("command env exec nice nohup stdbuf time timeout xargs")
MAX_CFG_BYTES = 64 * 1024


@dataclass(frozen=True)
class Bound:
    """A host path the sandbox sees: ``source`` (resolved) at ``dest``."""

    source: Path
    dest: Path
    mode: str  # "ro" or "rw"
    why: str

    def bind(self) -> Bind:
        rw = self.mode == "rw"
        return Bind(self.source, self.dest, readonly=not rw, idmap=rw)

    def record(self) -> dict[str, str]:
        return {
            "source": str(self.source),
            "dest": str(self.dest),
            "mode": self.mode,
            "why": self.why,
        }


@dataclass(frozen=True)
class Skipped:
    """A toolchain path that was not bound, and why."""

    path: str
    why: str
    reason: str

    def record(self) -> dict[str, str]:
        return {"path": self.path, "why": self.why, "reason": self.reason}


@dataclass(frozen=True)
class Toolchain:
    """What a run's sandbox is shown besides the workspace, and its ``PATH`` and
    ``VIRTUAL_ENV``."""

    binds: tuple[Bound, ...] = ()
    path: tuple[str, ...] = ()  # before the fixed PATH
    env: Mapping[str, str] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = ()

    def sandbox_binds(self) -> list[Bind]:
        return [b.bind() for b in self.binds]

    def event(self) -> dict[str, object]:
        """The ``sandbox_binds`` event's data."""
        return {
            "binds": [b.record() for b in self.binds],
            "path": list(self.path),
            "env": dict(self.env),
            "skipped": [s.record() for s in self.skipped],
        }

    def __bool__(self) -> bool:
        return bool(self.binds or self.path or self.env or self.skipped)


def check_commands(checks: Iterable[Check]) -> list[str]:
    """The shell commands the goal's checks run (an asserts check runs ``python3``)."""
    commands: list[str] = []
    for check in checks:
        if isinstance(check, CommandCheck | TestsCheck | OutputCheck):
            commands.append(check.command)
        elif isinstance(check, AssertsCheck):
            commands.append("python3")
    return commands


def command_words(command: str) -> list[str]:
    """The programs a shell command starts (the first word of each simple command,
    after variable assignments and wrappers like ``env`` or ``timeout``)."""
    words: list[str] = []
    for line in command.splitlines():
        try:
            lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
            lexer.whitespace_split = True
            tokens = list(lexer)
        except ValueError:
            continue
        start, skip, wrapped = True, False, False
        for token in tokens:
            if skip:
                skip = False
            elif token and all(c in "();<>|&" for c in token):
                skip = "<" in token or ">" in token  # a redirection's target follows
                start = start or not skip
                wrapped = False
            elif not start or ASSIGNMENT.fullmatch(token) or token in SHELL_WORDS:
                continue
            elif token in WRAPPERS:
                wrapped = True
            elif wrapped and (token.startswith("-") or DURATION.fullmatch(token)):
                continue
            elif token in BUILTINS or token.isdigit():
                start = token.isdigit()  # "2>&1": a descriptor before a redirection
            else:
                words.append(token)
                start, wrapped = False, False
    return words


def resolve(
    workspace: Path,
    commands: Sequence[str],
    mounts: Sequence[Mount],
    environ: Mapping[str, str],
    *,
    backend: str,
    exposure: Exposure,
) -> Toolchain:
    """What the sandbox ``backend`` must show a run in ``workspace`` (resolved) whose
    checks run ``commands``, with the user's ``mounts``; ``environ`` is zerog's own
    environment (``PATH``, ``VIRTUAL_ENV``, ``PYENV_VERSION``). Refused mounts raise
    :class:`ConfigError`."""
    if backend == "local":  # it sees the host as it is, PATH included
        return Toolchain()
    if backend != "bwrap":
        if mounts:
            raise ConfigError(
                f"mounts need the bwrap sandbox: the {backend} sandbox sees only the workspace "
                "(see docs/sandboxes.md, 'Toolchains and mounts')"
            )
        return Toolchain()
    finder = _Finder(workspace, environ, exposure)
    for mount in mounts:
        finder.mount(mount)
    finder.venvs()
    for word in dict.fromkeys(w for c in commands for w in command_words(c)):
        finder.word(word)
    return finder.result()


def _visible(path: Path) -> bool:
    return any(path.is_relative_to(top) for top in VISIBLE)


def _read_small(path: Path, limit: int) -> str | None:
    """The start of a file, never through a link at its last component, never blocking."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, limit).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


def _real_dir(path: Path) -> bool:
    """A directory that is not a link."""
    return isdir(path) and not islink(path)


def pyvenv_cfg(venv: Path) -> dict[str, str]:
    """The ``key = value`` lines of a venv's ``pyvenv.cfg``."""
    text = _read_small(venv / "pyvenv.cfg", MAX_CFG_BYTES) or ""
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values[key.strip().lower()] = value.strip()
    return values


class _Finder:
    """Collects binds, PATH entries and skips for one run."""

    def __init__(self, workspace: Path, environ: Mapping[str, str], exposure: Exposure):
        self.workspace = workspace
        self.environ = environ
        self.exposure = exposure
        self.binds: list[Bound] = []
        self.path: list[tuple[int, str]] = []  # (rank, directory): venvs, then host PATH order
        self.env: dict[str, str] = {}
        self.skipped: list[Skipped] = []
        self.venv_bins: list[Path] = []
        self.host_path = [
            Path(os.path.normpath(p)) for p in environ.get("PATH", "").split(":") if p[:1] == "/"
        ]
        self.depth = 0

    def result(self) -> Toolchain:
        binds = sorted(self.binds, key=lambda b: len(b.dest.parts))  # outer ones first
        path = [d for _, d in sorted(self.path, key=lambda item: item[0])]
        return Toolchain(tuple(binds), tuple(dict.fromkeys(path)), self.env, tuple(self.skipped))

    # ------------------------------------------------------------ recording

    def skip(self, path: Path | str, why: str, reason: str) -> None:
        entry = Skipped(str(path), why, reason)
        if entry not in self.skipped:
            self.skipped.append(entry)

    def add_path(self, directory: Path, rank: int) -> None:
        text = str(directory)
        if ":" not in text and text not in FIXED_PATH.split(":"):
            self.path.append((rank, text))

    def covered(self, path: Path) -> bool:
        """Whether the sandbox sees ``path`` at its own place already."""
        if _visible(path) or path.is_relative_to(self.workspace):
            return True
        return any(b.source == b.dest and path.is_relative_to(b.source) for b in self.binds)

    def bind_dir(self, path: Path, why: str) -> str | None:
        """Bind ``path`` read-only at its place; why not (None: bound or seen already)."""
        if self.covered(path):
            return None
        reason = self.exposure.refusal(path)
        if reason is None and str(path) in SYSTEM_DIRS:
            reason = "is a system directory"
        if reason is None and not os.access(path, os.R_OK | os.X_OK):
            reason = "cannot be read by zerog's user"
        if reason is not None:
            return reason
        self.binds = [  # what the new bind holds (the user's own mounts stay)
            b
            for b in self.binds
            if b.why == "--mount" or not (b.source == b.dest and b.source.is_relative_to(path))
        ]
        self.binds.append(Bound(path, path, "ro", why))
        return None

    # ------------------------------------------------------------ user mounts

    def mount(self, mount: Mount) -> None:
        named = mount.source
        source = real(named)
        if not exists(source):
            raise ConfigError(f"refusing to mount {named}: it does not exist")
        reason = self.exposure.refusal(source)
        if reason is not None:
            raise ConfigError(
                f"refusing to mount {named}: it {reason}. Mount a directory that holds only "
                "what the commands need"
            )
        dest = mount.dest or named
        reason = dest_refusal(dest, self.workspace)
        if reason is not None:
            raise ConfigError(f"refusing to mount {named} at {dest}: it {reason}")
        if any(b.dest == dest for b in self.binds):
            raise ConfigError(f"refusing to mount {named} at {dest}: something is mounted there")
        self.binds.append(Bound(source, dest, mount.mode, "--mount"))

    # ------------------------------------------------------------ venvs

    def venvs(self) -> None:
        inside: Path | None = None
        for name in VENV_NAMES:
            candidate = self.workspace / name
            if self._is_venv(candidate, inside=True):
                inside = candidate
                break
        virtual = self.environ.get("VIRTUAL_ENV", "")
        outside: Path | None = None
        if virtual.startswith("/"):
            resolved = real(Path(virtual))
            if resolved.is_relative_to(self.workspace):
                if inside is None and self._is_venv(resolved, inside=True):
                    inside = resolved
            elif self._is_venv(resolved, inside=False):
                outside = resolved
        if inside is not None:
            label = str(inside.relative_to(self.workspace))
            self.venv_bins.append(inside / "bin")
            self.add_path(inside / "bin", -2)
            self.env["VIRTUAL_ENV"] = str(inside)
            self.base(inside, f"the base interpreter of the workspace's {label}")
        if outside is not None:
            reason = self.bind_dir(outside, "$VIRTUAL_ENV")
            if reason is not None:
                self.skip(outside, "$VIRTUAL_ENV", reason)
                return
            self.venv_bins.append(outside / "bin")
            self.add_path(outside / "bin", -1)
            self.env.setdefault("VIRTUAL_ENV", str(outside))
            self.base(outside, f"the base interpreter of $VIRTUAL_ENV {outside}")

    def _is_venv(self, path: Path, *, inside: bool) -> bool:
        config, bin_dir = path / "pyvenv.cfg", path / "bin"
        if inside:  # the workspace's: no link on the way (it could lead anywhere)
            return _real_dir(path) and _real_dir(bin_dir) and isfile(config) and not islink(config)
        return isdir(path) and isdir(bin_dir) and isfile(config)

    def base(self, venv: Path, why: str) -> None:
        """Bind the prefix of the interpreter ``venv`` was made from."""
        cfg = pyvenv_cfg(venv)
        candidates: list[str] = []
        if cfg.get("executable"):
            candidates.append(cfg["executable"])
        if cfg.get("home"):
            candidates += [os.path.join(cfg["home"], n) for n in ("python3", "python")]
        for name in ("python3", "python"):
            link = venv / "bin" / name
            if islink(link):
                candidates.append(os.path.realpath(link))
        for candidate in dict.fromkeys(candidates):
            if candidate.startswith("/") and exists(candidate):
                self.interpreter(Path(candidate), why)

    def interpreter(self, named: Path, why: str) -> None:
        """Bind the prefix of the Python interpreter ``named`` (a path workspace content
        chose: only a real interpreter's prefix is bound)."""
        found = real(named)
        if self.covered(found):
            return
        if not (PYTHON_NAME.fullmatch(found.name) and isfile(found) and os.access(found, os.X_OK)):
            self.skip(named, why, "is not a Python interpreter")
            return
        prefix = found.parent.parent
        lib = prefix / "lib"
        if found.parent.name != "bin" or not any(
            entry.name.startswith(("python", "pypy")) for entry in _entries(lib)
        ):
            self.skip(named, why, "is not in a bin/ beside a lib/pythonX.Y")
            return
        reason = self.bind_dir(prefix, why)
        if reason is not None:
            self.skip(prefix, why, reason)
            return
        alias = Path(os.path.normpath(named)).parent.parent
        if (
            alias != prefix
            and real(alias) == prefix
            and dest_refusal(alias, self.workspace) is None
        ):
            self.binds.append(Bound(prefix, alias, "ro", why))

    # ------------------------------------------------------------ command words

    def word(self, word: str) -> None:
        if "/" in word:
            if word.startswith("/") and isfile(word):
                self.executable(Path(word), None, word)
            return
        if word in BUILTINS:
            return
        for directory in self.venv_bins:
            if _runnable(directory / word):
                return  # the venv provides it; its base is bound already
        self.search(word, 0, word)

    def search(self, word: str, start: int, why: str) -> None:
        """Look ``word`` up on the host's PATH from entry ``start`` on."""
        for rank, directory in enumerate(self.host_path[start:], start):
            candidate = directory / word
            if not _runnable(candidate):
                continue
            if directory.name == "shims" and isdir(directory.parent / "versions"):
                self.pyenv(word, directory.parent, rank, why)
            else:
                self.executable(candidate, rank, why)
            return

    def executable(self, program: Path, rank: int | None, why: str) -> None:
        """Show ``program`` (found in a PATH directory of that ``rank``) and what it runs."""
        directory = real(program.parent)
        if not self.tool_dir(directory, why):
            return  # refused (and reported): nothing of it is read further
        if rank is not None:
            self.add_path(directory, rank)
        target = real(program)
        if self.covered(target) or self.tool_dir(target.parent, why):
            self.shebang(target, why)

    def tool_dir(self, directory: Path, why: str) -> bool:
        """Bind the prefix of a directory of programs (or the parts of it that may be
        bound); whether the directory is seen in the sandbox."""
        if self.covered(directory):
            return True
        prefix = directory.parent if directory.name in ("bin", "sbin") else directory
        reason = self.bind_dir(prefix, why)
        if reason is None:
            if self._is_venv(prefix, inside=False):  # a venv on PATH (pyenv-virtualenv's)
                self.base(prefix, f"the base interpreter of {prefix}")
            return True
        if prefix != directory and self.bind_dir(directory, why) is None:
            self.skip(prefix, why, f"{reason}: only its {directory.name}/ and libraries are bound")
            for lib in ("lib", "lib64"):
                for entry in _language_dirs(prefix / lib):
                    if self.bind_dir(entry, why) is not None:
                        self.skip(entry, why, "could not be bound")
            return True
        self.skip(prefix, why, reason)
        return False

    def shebang(self, program: Path, why: str) -> None:
        """The interpreter of a host script (its ``#!`` line), one level deep."""
        if self.depth or program.is_relative_to(self.workspace) or not isfile(program):
            return
        head = _read_small(program, 256) or ""
        if not head.startswith("#!"):
            return
        words = head[2:].splitlines()[0].split() if head[2:].strip() else []
        if not words:
            return
        self.depth += 1
        try:
            if words[0].endswith("/env"):
                rest = [w for w in words[1:] if not w.startswith("-") and "=" not in w]
                if rest:
                    self.word(rest[0])
            elif words[0].startswith("/") and isfile(words[0]):
                self.executable(Path(words[0]), None, f"{why} (its interpreter)")
        finally:
            self.depth -= 1

    # ------------------------------------------------------------ pyenv

    def pyenv(self, word: str, root: Path, rank: int, why: str) -> None:
        """A pyenv shim for ``word``: the program of the version pyenv would choose."""
        names = self.pyenv_versions(root)
        for name in names:
            if name == "system":
                self.search(word, rank + 1, why)
                return
            version = _pyenv_version_dir(root, name)
            if version is None:
                continue
            program = version / "bin" / word
            if _runnable(program):
                self.executable(program, rank, f"{why} (pyenv {version.name})")
                return
        self.skip(root / "shims" / word, why, f"no pyenv version provides it ({' '.join(names)})")

    def pyenv_versions(self, root: Path) -> list[str]:
        chosen = self.environ.get("PYENV_VERSION", "")
        if chosen:
            return _version_names(chosen.replace(":", " "))
        directory = self.workspace
        while True:
            name = directory / ".python-version"
            inside = directory.is_relative_to(self.workspace)
            if isfile(name) and not (inside and islink(name)):
                names = _version_names(_read_small(name, 4096) or "")
                if names:
                    return names
            if directory.parent == directory:
                break
            directory = directory.parent
        return _version_names(_read_small(root / "version", 4096) or "") or ["system"]


def _entries(directory: Path) -> list[Path]:
    """What a directory holds (nothing when it cannot be read)."""
    try:
        return list(directory.iterdir())
    except OSError:
        return []


def _runnable(path: Path) -> bool:
    return isfile(path) and os.access(path, os.X_OK)


def _version_names(text: str) -> list[str]:
    names = []
    for line in text.splitlines():
        for word in line.split("#", 1)[0].split():
            if VERSION_NAME.fullmatch(word) and word not in (".", ".."):
                names.append(word)
    return names


def _pyenv_version_dir(root: Path, name: str) -> Path | None:
    """``versions/NAME``, or the newest installed ``NAME.*`` (as pyenv 2.3 resolves
    a prefix like ``3.11``)."""
    versions = root / "versions"
    exact = versions / name
    if isdir(exact):
        return exact
    matches = [p for p in _entries(versions) if p.name.startswith(name + ".") and isdir(p)]
    if not matches:
        return None
    return max(matches, key=lambda p: [int(x) if x.isdigit() else -1 for x in p.name.split(".")])


def _language_dirs(lib: Path) -> list[Path]:
    """A prefix's language libraries: ``lib/pythonX.Y``, ``lib/node_modules``."""
    return [
        e
        for e in sorted(_entries(lib))
        if isdir(e) and e.name.startswith(("python", "pypy", "node_modules"))
    ]


def for_goal(
    goal: Goal,
    environ: Mapping[str, str],
    *,
    backend: str | None,
    protected: Mapping[str, Path] | None = None,
    off_limits: Sequence[Path] = (),
) -> Toolchain:
    """:func:`resolve` for a goal whose workspace is resolved already. ``backend`` None:
    the caller built the sandbox itself, so nothing can be bound (and mounts are refused);
    ``protected`` and ``off_limits`` as in :meth:`Exposure.for_run`."""
    if backend is None:
        if goal.mounts:
            raise ConfigError("mounts need a sandbox zerog builds; this engine was given one")
        return Toolchain()
    exposure = Exposure.for_run(goal.workspace, environ, protected=protected, off_limits=off_limits)
    return resolve(
        goal.workspace,
        check_commands(goal.checks),
        goal.mounts,
        environ,
        backend=backend,
        exposure=exposure,
    )
