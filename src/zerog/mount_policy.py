"""Which host paths a sandbox may be shown, besides its workspace.

The bwrap sandbox binds a goal's toolchain read-only (found by :mod:`zerog.toolchain`) and
what the user asks for with ``--mount`` / ``mounts``. Neither may expose what a command
must never read or write (:class:`Exposure`):

- the file system's root, kernel and device state (``/proc``, ``/sys``, ``/dev``) and the
  host's sockets (``/run``);
- a home directory (the caller's, root's, every login account's) or one holding it;
- credentials: ``~/.ssh``, ``~/.gnupg``, cloud and registry credentials, keyrings, the
  system's password hashes and SSH host keys (:data:`SECRETS`, :data:`SYSTEM_SECRETS`);
- zerog's own files: its configuration, its run store, its data cache, files the caller
  names (``protected``), directories no run may see (``off_limits``: the server's other
  workspaces), and the workspace's own ``.zerog/``;
- the workspace itself or a directory holding it (the workspace is bound on its own,
  writable; a bind over it or beside it would hide or duplicate it).

A path is refused when it is, holds or lies under any of these (compared after resolving
links, so an alias is refused too). The checks read nothing but link targets.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from zerog.errors import ConfigError
from zerog.types import Mount

# Below each home directory: credentials of every kind a developer machine keeps.
SECRETS = (
    ".ssh",
    ".gnupg",
    ".aws",
    ".azure",
    ".config/gcloud",
    ".kube",
    ".docker",
    ".netrc",
    ".git-credentials",
    ".pypirc",
    ".npmrc",
    ".cargo/credentials",
    ".cargo/credentials.toml",
    ".config/gh",
    ".password-store",
    ".local/share/keyrings",
    ".pki",
    ".vault-token",
    ".terraform.d",
    ".config/zerog",
)
SYSTEM_SECRETS = ("/etc/shadow", "/etc/gshadow", "/etc/ssh", "/etc/sudoers", "/etc/sudoers.d")
KERNEL = ("/proc", "/sys", "/dev", "/run")
# Where a mount may not land: the sandbox's own file system (bound or made by bubblewrap).
SANDBOX_OWN = (
    *("/usr", "/etc", "/proc", "/dev", "/sys", "/tmp"),
    *("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"),
)
SANDBOX_FIXED = ("/usr", "/etc", "/proc", "/dev", "/sys")  # read-only: nothing lands below


STORE = "zerog's run store"


def _store_files(path: Path) -> list[Path]:
    """The run store (a file) and what sits beside it: its journal files and the cache,
    or its whole directory when that is zerog's own (``~/.local/share/zerog``)."""
    if path.parent.name == "zerog":
        return [path.parent]
    return [path.parent / n for n in (path.name, f"{path.name}-wal", f"{path.name}-shm")] + [
        path.parent / "cache.db"
    ]


def real(path: Path) -> Path:
    """``path`` with every link in its existing part resolved."""
    return Path(os.path.realpath(path))


def related(a: Path, b: Path) -> bool:
    """Whether one of the two paths is, holds or lies under the other."""
    return a == b or a.is_relative_to(b) or b.is_relative_to(a)


def login_homes() -> list[Path]:
    """Home directories of root and of the login accounts (uid 1000 and above)."""
    homes = []
    for entry in pwd.getpwall():
        login = entry.pw_uid == 0 or 1000 <= entry.pw_uid < 65534
        if login and entry.pw_dir.startswith("/") and entry.pw_dir not in ("/", "/nonexistent"):
            homes.append(Path(entry.pw_dir))
    return homes


@dataclass(frozen=True)
class Exposure:
    """What one run's sandbox must never be shown (see the module's docstring)."""

    workspace: Path
    homes: tuple[Path, ...]
    hidden: tuple[tuple[str, Path], ...]  # (what it is, where)

    @classmethod
    def for_run(
        cls,
        workspace: Path,
        environ: Mapping[str, str],
        *,
        protected: Mapping[str, Path] | None = None,
        off_limits: Sequence[Path] = (),
        homes: Iterable[Path] | None = None,
    ) -> Exposure:
        """The exposure rules of a run in ``workspace`` (resolved) for zerog's
        ``environ``. ``homes``: the home directories to protect besides ``$HOME`` (by
        default those of root and the login accounts)."""
        from zerog.workspace_policy import zerog_files

        found = [Path(h) for h in (login_homes() if homes is None else homes)]
        home = environ.get("HOME", "")
        if home.startswith("/") and home != "/":
            found.append(Path(home))
        resolved = tuple(dict.fromkeys(real(h) for h in found))
        hidden: list[tuple[str, Path]] = []
        for what, path in [*zerog_files(environ), *(protected or {}).items()]:
            hidden += [(what, p) for p in _store_files(path)] if what == STORE else [(what, path)]
        hidden += [("a directory no run may see", path) for path in off_limits]
        hidden.append(("zerog's state in the workspace", workspace / ".zerog"))
        for base in resolved:
            hidden += [(f"credentials ({name})", base / name) for name in SECRETS]
        hidden += [("the system's credentials", Path(p)) for p in SYSTEM_SECRETS]
        absolute = [(what, real(p)) for what, p in hidden if p.is_absolute()]
        return cls(real(workspace), resolved, tuple(absolute))

    def refusal(self, path: Path) -> str | None:
        """Why the host path ``path`` may not be shown to the sandbox (None: it may)."""
        path = real(path)
        if path == Path("/"):
            return "is the file system's root"
        for kernel in KERNEL:
            if related(path, Path(kernel)):
                return f"is kernel or device state ({kernel})"
        for home in self.homes:
            if path == home:
                return f"is the home directory {home}"
            if home.is_relative_to(path):
                return f"holds the home directory {home}"
        if related(path, self.workspace):
            where = (
                "is"
                if path == self.workspace
                else "holds"
                if path in self.workspace.parents
                else "is inside"
            )
            return f"{where} the workspace"
        for what, hidden in self.hidden:
            if path == hidden or path.is_relative_to(hidden):
                return f"is {what} ({hidden})" if path == hidden else f"is inside {what} ({hidden})"
            if hidden.is_relative_to(path):
                return f"holds {what} ({hidden})"
        return None


def dest_refusal(dest: Path, workspace: Path) -> str | None:
    """Why a mount may not land at ``dest`` in the sandbox (None: it may)."""
    if dest == Path("/"):
        return "would cover the sandbox's whole file system"
    for own in SANDBOX_OWN:
        if Path(own).is_relative_to(dest):
            return f"would cover the sandbox's {own}"
    for fixed in SANDBOX_FIXED:
        if dest.is_relative_to(fixed):
            return f"lies under the sandbox's read-only {fixed}"
    if related(dest, workspace) or related(dest, real(workspace)):
        return "would cover the workspace or lie inside it"
    return None


def parse_mount(text: str, *, home: str | None = None, base: Path | None = None) -> Mount:
    """``SRC[:DST][:ro|rw]`` as a :class:`~zerog.types.Mount`. A leading ``~`` is
    ``home``; a relative ``SRC`` is taken from ``base`` (the working directory, or the goal
    file's directory). Paths may not contain ``:``."""
    parts = text.split(":")
    mode = "ro"
    if len(parts) > 1 and parts[-1] in ("ro", "rw"):
        mode = parts.pop()
    if len(parts) not in (1, 2) or not all(parts):
        raise ConfigError(f"mount {text!r}: write SRC[:DST][:ro|rw] (paths without ':')")
    source = _expand(parts[0], home, base, text)
    dest = _expand(parts[1], home, None, text) if len(parts) == 2 else None
    return Mount(source=source, dest=dest, mode="rw" if mode == "rw" else "ro")


def _expand(path: str, home: str | None, base: Path | None, text: str) -> Path:
    if path == "~" or path.startswith("~/"):
        if not home or not home.startswith("/"):
            raise ConfigError(f"mount {text!r}: '~' needs HOME")
        path = home + path[1:]
    if not path.startswith("/"):
        if base is None:
            raise ConfigError(f"mount {text!r}: the destination must be an absolute path")
        path = str(base / path)
    return Path(os.path.normpath(PurePosixPath(path)))
