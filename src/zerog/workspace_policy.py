"""Which directories zerog accepts as a workspace.

A run may rewrite or delete anything in its workspace: commands run there, and a
rollback makes the tree identical to a snapshot, removing whatever the snapshot did not
have. So some directories are refused unless the caller forces them
(``zerog run --force-workspace``, ``Engine(force_workspace=True)``):

- the file system's root and the system's own top directories (``/etc``, ``/usr``,
  ``/tmp``...);
- the home directory, or a directory holding it;
- a directory holding zerog's own files: its configuration (API keys, the serve token),
  its run store, its data cache (the compiled sandbox runtime), or any file the caller
  names (``protected``: a store or token file given on the command line).

The check is lexical on resolved paths: links are resolved first, so an alias of a
refused directory is refused too.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from zerog.errors import ConfigError

FORCE_FLAG = "--force-workspace"
SYSTEM_DIRS = (
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/var",
    "/var/tmp",
)


class DangerousWorkspace(ConfigError):
    """The workspace would put the system, the home directory or zerog's own files at
    the mercy of a run."""


def _real(path: Path) -> Path:
    """``path`` with every link in its existing part resolved (what it really names)."""
    return Path(os.path.realpath(path))


def zerog_files(environ: Mapping[str, str]) -> list[tuple[str, Path]]:
    """(what, where) of zerog's own files for this environment."""
    from zerog.config import default_config_path
    from zerog.sandbox.wasm import default_data_dir
    from zerog.store import default_store_path

    found = [
        ("zerog's configuration (API keys, the serve token)", default_config_path(environ).parent),
        ("zerog's run store", default_store_path(environ)),
    ]
    if environ.get("HOME") or environ.get("ZEROG_DATA_DIR") or environ.get("XDG_CACHE_HOME"):
        found.append(("zerog's data cache (the sandbox runtime)", default_data_dir(environ)))
    return found


def dangers(
    workspace: Path, environ: Mapping[str, str], protected: Mapping[str, Path] | None = None
) -> list[str]:
    """Why ``workspace`` must not be one (empty when it may)."""
    root = _real(workspace)
    reasons: list[str] = []
    if str(root) in SYSTEM_DIRS:
        reasons.append("is the file system's root" if str(root) == "/" else "is a system directory")
    home = environ.get("HOME")
    if home and Path(home).is_absolute() and str(root) != "/":
        real_home = _real(Path(home))
        if real_home == root:
            reasons.append("is the home directory")
        elif real_home.is_relative_to(root):
            reasons.append(f"holds the home directory {real_home}")
    if reasons:
        return reasons  # what else it holds adds nothing
    for what, path in [*zerog_files(environ), *(protected or {}).items()]:
        if not path.is_absolute():
            continue
        real = _real(path)
        if real.is_relative_to(root):
            reasons.append(f"holds {what} ({real})")
    return reasons


def check_workspace(
    workspace: Path,
    environ: Mapping[str, str],
    *,
    protected: Mapping[str, Path] | None = None,
    force: bool = False,
) -> Path:
    """The resolved ``workspace``, or :class:`DangerousWorkspace` saying why it is refused
    and how to go on. ``protected`` names more files a run must not reach, by what they
    are (``{"zerog's run store": path}``, ``{"the serve token": path}``: files given
    explicitly); ``force`` accepts any directory."""
    resolved = _real(workspace)
    if force:
        return resolved
    reasons = dangers(resolved, environ, protected)
    if reasons:
        raise DangerousWorkspace(
            f"refusing the workspace {resolved} (pass {FORCE_FLAG} to accept it): it "
            f"{'; it '.join(reasons)}. A run may rewrite or delete anything in its "
            "workspace (a rollback removes what its snapshot did not have): give the work "
            "a directory of its own"
        )
    return resolved
