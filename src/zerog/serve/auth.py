"""Who may call the API: loopback binds need no token; any other bind requires a bearer
token, generated on first start and kept in a 0600 file in the user's config directory."""

from __future__ import annotations

import ipaddress
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from zerog.errors import ConfigError

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1", "[::1]")


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def default_token_path(environ: Mapping[str, str]) -> Path:
    """``$XDG_CONFIG_HOME/zerog/serve-token``, else ``~/.config/zerog/serve-token``."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME", "~")) / ".config")
    return Path(base).expanduser() / "zerog" / "serve-token"


def load_or_create_token(path: Path) -> tuple[str, bool]:
    """The token in ``path`` (refused if others may read it), or a new one written there
    with mode 0600. The flag says whether it was just created."""
    try:
        info = path.stat()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        token = secrets.token_urlsafe(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise ConfigError(f"cannot create the token file {path}: {exc.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(token + "\n")
        return token, True
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"the token file {path} may be read by other users; chmod 600 it or remove it"
        )
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the token file {path}: {exc}") from None
    if len(token) < 16:
        raise ConfigError(f"the token in {path} is shorter than 16 characters")
    return token, False
