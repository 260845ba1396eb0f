"""Recognising secrets, so that they never reach a prompt, a sandbox, a trace or a log."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from zerog.errors import ConfigError

REDACTED = "[redacted]"

_SECRET_NAME = re.compile(
    r"KEY|TOKEN|SECRET|PASS|PWD|CREDENTIAL|AUTH|PRIVATE|SESSION|COOKIE|SIGNATURE|DSN",
    re.IGNORECASE,
)
_SECRET_VALUE = re.compile(
    r"sk-[A-Za-z0-9_-]{16,}"
    r"|sk-ant-[A-Za-z0-9_-]{16,}"
    r"|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|github_pat_[A-Za-z0-9_]{20,}"
    r"|AKIA[0-9A-Z]{16}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,}"
    r"|-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"
    r"|eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}"
    r"|[a-z][a-z0-9+.-]*://[^/\s:@]+:\S+@"
)
_SECRET_FILE = re.compile(
    r"(^|/)(\.env(\..*)?|.*\.pem|.*\.key|id_rsa.*|id_ed25519.*|\.netrc|\.pgpass"
    r"|credentials(\.json)?|\.npmrc|\.pypirc)$",
    re.IGNORECASE,
)


def is_secret_name(name: str) -> bool:
    return bool(_SECRET_NAME.search(name))


def is_secret_file(path: str) -> bool:
    return bool(_SECRET_FILE.search(path))


def redact_text(text: str) -> str:
    """Replace anything that looks like a credential inside free text."""
    return _SECRET_VALUE.sub(REDACTED, text)


def redact_env(environ: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    """The allow-listed variables that are set, with secret-looking values redacted."""
    shown: dict[str, str] = {}
    for name in names:
        if name not in environ:
            continue
        value = environ[name]
        shown[name] = REDACTED if is_secret_name(name) else redact_text(value)
    return shown


def sandbox_env(environ: Mapping[str, str], allow: Iterable[str], home: str) -> dict[str, str]:
    """The environment a sandboxed command gets: a minimal base plus allow-listed names.

    Secret-looking names are refused outright: secrets never enter the sandbox.
    """
    env = {
        "PATH": environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
        "HOME": home,
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    for name in allow:
        if is_secret_name(name):
            raise ConfigError(f"refusing to pass '{name}' into the sandbox: it looks like a secret")
        if name in environ:
            env[name] = environ[name]
    return env
