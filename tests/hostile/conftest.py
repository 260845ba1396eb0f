"""The host the hostile payloads try to damage: canaries, listeners, and a leftover check."""

from __future__ import annotations

import contextlib
import ctypes
import errno
import io
import os
import signal
import socket
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

MARKERS = (b"4242", b"zerog-hostile")
CANARY_ENV = "ZEROG_HOSTILE_CANARY"
SECRET = "canary-secret-7f3a9c"
KEY_DESCRIPTION = "zerog-hostile-key"
KEYCTL = {"x86_64": 250, "aarch64": 219}
ADD_KEY = {"x86_64": 248, "aarch64": 217}


@contextlib.contextmanager
def session_key(secret: str) -> Iterator[int | None]:
    """This process joins a new session keyring holding a "user" key with ``secret``
    (what a CI job's or a user's login session may hold); the key's id, or None where the
    kernel has no keys. The key is revoked afterwards."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    machine = os.uname().machine
    keyctl, add_key = ctypes.c_long(KEYCTL[machine]), ctypes.c_long(ADD_KEY[machine])
    if libc.syscall(keyctl, ctypes.c_long(1), None) < 0:  # KEYCTL_JOIN_SESSION_KEYRING
        if ctypes.get_errno() == errno.ENOSYS:
            yield None
            return
        raise OSError(ctypes.get_errno(), "cannot join a session keyring")
    payload = secret.encode()
    key = int(
        libc.syscall(
            add_key,
            b"user",
            KEY_DESCRIPTION.encode(),
            payload,
            ctypes.c_long(len(payload)),
            ctypes.c_long(-3),  # KEY_SPEC_SESSION_KEYRING
        )
    )
    if key < 0:
        raise OSError(ctypes.get_errno(), "cannot add a key to the session keyring")
    try:
        yield key
    finally:
        libc.syscall(keyctl, ctypes.c_long(3), ctypes.c_long(key))  # KEYCTL_REVOKE


@dataclass
class Host:
    root: Path
    ws: Path
    home: Path
    outside: Path
    tcp: socket.socket
    udp: socket.socket
    unix: socket.socket
    abstract: str

    def placeholders(self) -> dict[str, str]:
        return {
            "{home}": str(self.home),
            "{outside}": str(self.outside),
            "{port}": str(self.tcp.getsockname()[1]),
            "{udp}": str(self.udp.getsockname()[1]),
            "{abstract}": self.abstract,
            "{pid}": str(os.getpid()),
        }

    def fill(self, text: str) -> str:
        for key, value in self.placeholders().items():
            text = text.replace(key, value)
        return text

    def state(self) -> dict[str, bytes]:
        """Every file and link outside the workspace under the test's root, with content."""
        found: dict[str, bytes] = {}
        for path in sorted(self.root.rglob("*")):
            if path == self.ws or self.ws in path.parents:
                continue
            rel = str(path.relative_to(self.root))
            if path.is_symlink():
                found[rel] = b"link:" + os.readlink(path).encode()
            elif path.is_file():
                found[rel] = path.read_bytes()
            else:
                found[rel] = b"dir"
        return found

    def setid_files(self) -> list[str]:
        """Files in the workspace with the set-user-ID or set-group-ID bit (not followed
        through links)."""
        found = []
        for top, dirs, files in os.walk(self.ws):
            for name in dirs + files:
                path = os.path.join(top, name)
                with contextlib.suppress(OSError):
                    if os.lstat(path).st_mode & 0o6000:
                        found.append(os.path.relpath(path, self.ws))
        return found

    def contacted(self) -> list[str]:
        """Anything that reached the listeners."""
        seen = []
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.tcp.accept()
            seen.append("tcp")
            conn.close()
        with contextlib.suppress(BlockingIOError):
            self.udp.recvfrom(100)
            seen.append("udp")
        with contextlib.suppress(BlockingIOError):
            conn, _ = self.unix.accept()
            seen.append("unix")
            conn.close()
        return seen


SANDBOX_NAMES = {"PATH", "HOME", "LANG", "LC_ALL", "TERM", "NO_COLOR", "PYTHONDONTWRITEBYTECODE"}


def parent_environ() -> list[str]:
    """Entries of this process's initial environment (what /proc/<pid>/environ shows) that
    the sandbox's own environment does not have: seeing one in the output is a leak."""
    raw = Path(f"/proc/{os.getpid()}/environ").read_bytes().decode("utf-8", "replace")
    entries = [e for e in raw.split("\0") if "=" in e]
    return [e for e in entries if e.split("=", 1)[0] not in SANDBOX_NAMES and len(e) >= 12]


def survivors() -> list[tuple[int, bytes]]:
    """Processes whose command line carries a payload marker."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(marker in cmdline for marker in MARKERS):
            found.append((int(entry.name), cmdline[:200]))
    return found


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bombs: Path) -> Iterator[Host]:
    ws = tmp_path / "ws"
    ws.mkdir()
    (ws / "app.py").write_text("print('hello')\n")
    (ws / ".zerog").mkdir()
    (ws / ".zerog" / "state.txt").write_text("zerog's own state\n")
    os.symlink(tmp_path / "outside", ws / "planted")
    for bomb in bombs.iterdir():
        os.link(bomb, ws / bomb.name)
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_rsa").write_text(f"-----BEGIN {SECRET}-----\n")
    (home / "secret.txt").write_text(SECRET)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "canary.txt").write_text("untouched\n")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv(CANARY_ENV, SECRET)
    tcp = socket.create_server(("127.0.0.1", 0))
    tcp.setblocking(False)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    udp.setblocking(False)
    abstract = f"zerog-test-{os.getpid()}-{time.monotonic_ns()}"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind("\0" + abstract)
    unix.listen()
    unix.setblocking(False)
    try:
        with session_key(SECRET):
            yield Host(tmp_path, ws, home, outside, tcp, udp, unix, abstract)
    finally:
        for sock in (tcp, udp, unix):
            sock.close()


@pytest.fixture(autouse=True)
def nothing_survives() -> Iterator[None]:
    """No process a payload started may outlive its test; any that does is killed and the
    test fails."""
    before = {pid for pid, _ in survivors()}
    yield
    deadline = time.monotonic() + 3.0
    left = [s for s in survivors() if s[0] not in before]
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = [s for s in survivors() if s[0] not in before]
    for pid, _ in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes survived the payload: {left}"


@pytest.fixture(scope="session")
def bombs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A zip whose one member is 64 MB of zeros, and a tar.gz of 100 files of 1 MB (the
    hostile limits allow 8 MB per file and 32 MB in all)."""
    root = tmp_path_factory.mktemp("bombs")
    with (
        zipfile.ZipFile(root / "bomb.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=9) as z,
        z.open("zeros.bin", "w", force_zip64=True) as member,
    ):
        block = bytes(1 << 20)
        for _ in range(64):
            member.write(block)
    with tarfile.open(root / "bomb.tar.gz", "w:gz") as tar:
        block = bytes(1 << 20)
        for i in range(100):
            info = tarfile.TarInfo(f"bomb/{i:03d}.bin")
            info.size = len(block)
            tar.addfile(info, io.BytesIO(block))
    return root
