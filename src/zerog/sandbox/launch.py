"""How zerog starts bubblewrap: through its launcher, never as host root.

The launcher (:mod:`zerog.sandbox.bwrap_launch`, run from its source, never imported)
gives the sandbox a fresh session keyring and then becomes bubblewrap. When zerog runs
as root it first drops to a dedicated unprivileged uid and gid (``host_id``, by default
:data:`HOST_ID`: an id no account should have; choose another with
``BwrapSandbox(host_id=...)``), so the sandbox user (65534 inside) is that id on the
host, never 0. Then bubblewrap itself cannot reach what only root can (a workspace under
``/root`` or a private temporary directory), and the workspace's files belong to someone
else: so, still as root, the launcher clones each :class:`Bind` source and, when the bind
is ``idmap``, maps its owner to ``host_id`` on that clone (an idmapped mount). Inside,
the workspace's files belong to the sandbox user and are writable; on disk, what the
sandbox writes belongs to the workspace's owner, as before. The clones are handed to
bubblewrap under a private staging directory (``<stage>/<index>``, see :func:`stage_for`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HOST_ID = 1_990_000
# Where the clones are staged, in the launcher's own mount namespace: the first of these
# directories that holds nothing bubblewrap itself needs (its executable, /usr, /etc...).
# The sandbox gets a /tmp of its own, so the host's is free to be covered.
STAGES = (Path("/tmp"), Path("/var/tmp"), Path("/dev/shm"), Path("/mnt"))
SOURCE = Path(__file__).with_name("bwrap_launch.py")


@dataclass(frozen=True)
class Bind:
    """``source`` on the host, seen at ``dest`` in the sandbox.

    ``idmap``: when zerog is root, the sandbox user acts as the owner of ``source`` on it
    (a workspace). A bind without it is still cloned by root, so the unprivileged user
    need not be able to reach the path, but it only gets the access the files' modes give
    everyone (a toolchain)."""

    source: Path
    dest: Path
    readonly: bool = False
    idmap: bool = False


def stage_for(needed: Sequence[Path], candidates: Sequence[Path] = STAGES) -> Path | None:
    """The first candidate directory that is not, nor holds, any of the ``needed`` paths."""
    resolved = [path.resolve() for path in needed]
    for candidate in candidates:
        if not candidate.is_dir() or candidate.is_symlink():
            continue
        if not any(path == candidate or candidate in path.parents for path in resolved):
            return candidate
    return None


@dataclass(frozen=True)
class Launcher:
    """Builds the command line that starts bubblewrap through the launcher."""

    python: str  # the interpreter that runs the launcher on the host (zerog's own)
    source: str  # the launcher's source text
    drop: int | None  # the host uid and gid of the sandbox when zerog is root
    stage: Path  # see stage_for

    def sources(self, binds: Sequence[Bind]) -> list[str]:
        """Where bubblewrap finds each bind's source."""
        if self.drop is None:
            return [str(bind.source) for bind in binds]
        return [str(self.stage / str(index)) for index in range(len(binds))]

    def argv(
        self,
        bwrap: Sequence[str],
        binds: Sequence[Bind],
        *,
        ignore_signals: bool,
        rlimits: Sequence[tuple[int, int, int]] = (),
    ) -> list[str]:
        """The launcher's command line for the bubblewrap command line ``bwrap``, whose
        bind sources come from :meth:`sources`. ``rlimits`` (resource, soft, hard) are set
        on the launcher itself, so bubblewrap and all it starts inherit them."""
        words = ["stage", str(self.stage)]
        if self.drop is not None:
            words += ["drop", str(self.drop), str(self.drop)]
            for bind in binds:
                words += ["bind", str(bind.source), str(int(bind.readonly)), str(int(bind.idmap))]
        for which, soft, hard in rlimits:
            words += ["rlimit", str(which), str(soft), str(hard)]
        if ignore_signals:
            words.append("ignore-signals")
        return [self.python, "-I", "-S", "-c", self.source, *words, "--", *bwrap]
