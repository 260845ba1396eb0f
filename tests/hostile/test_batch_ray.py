"""`zerog batch --executor ray` starts its own Ray with token authentication.

Ray binds its servers to every interface (a loopback node address is turned into a
reachable one), so without a token anyone who reaches the machine could run code in the
cluster. The Ray that `run_ray` starts gets a fresh token, held only in the environment
of its processes (no token file a local user could read), whatever `RAY_AUTH_MODE` the
caller had; and the caller's environment is as it was afterwards. The batch runs in a
child process, so that its Ray and its environment are its own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerog.errors import ConfigError

pytestmark = pytest.mark.ray  # starts a Ray cluster (in a subprocess)

PROBE = """
import json, os, sys
from pathlib import Path
from zerog.batch.executors import run_ray

seen = {}

def environ_of(name):
    for proc in Path("/proc").iterdir():
        try:
            parent = int((proc / "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent == os.getpid() and name in (proc / "cmdline").read_bytes().decode():
                raw = (proc / "environ").read_bytes().decode()
                return dict(e.split("=", 1) for e in raw.split("\\0") if "=" in e)
        except (OSError, ValueError, IndexError):
            continue
    return {}

def lost(index, reason):  # the task cannot be parsed: called while Ray is still up
    gcs = environ_of("gcs_server")
    seen["gcs"] = {k: gcs.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}

run_ray({1: "not a task"}, jobs=1, address=None, retries=0, on_done=print, on_lost=lost)
seen["after"] = {k: os.environ.get(k) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN")}
print(json.dumps(seen))
"""


def test_a_local_ray_runs_with_a_fresh_token_and_writes_no_token_file(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")},
        "HOME": str(home),
        "RAY_AUTH_MODE": "disabled",  # the caller's setting does not weaken zerog's Ray
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    done = subprocess.run(
        [sys.executable, "-c", PROBE],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=110,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["gcs"]["RAY_AUTH_MODE"] == "token"
    token = seen["gcs"]["RAY_AUTH_TOKEN"] or ""
    assert len(token) == 64
    assert int(token, 16) >= 0  # hex, as Ray makes its own
    assert not (home / ".ray").exists()  # no token file for other users to read
    assert seen["after"] == {"RAY_AUTH_MODE": "disabled", "RAY_AUTH_TOKEN": None}
    assert token not in done.stderr  # Ray logged nothing of it


def test_a_ray_without_token_authentication_is_refused() -> None:
    from zerog.batch.executors import token_auth

    environ = {"RAY_AUTH_MODE": "disabled"}
    reloads: list[dict[str, str]] = []
    with (
        pytest.raises(ConfigError, match=r"ray>=2\.52"),
        token_auth(environ, "2.51.0", lambda: reloads.append(dict(environ))),
    ):
        raise AssertionError("a Ray without token authentication was accepted")
    assert environ == {"RAY_AUTH_MODE": "disabled"}
    assert reloads == []
    with token_auth(environ, "2.60.0", lambda: reloads.append(dict(environ))) as token:
        assert environ == {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}
    assert environ == {"RAY_AUTH_MODE": "disabled"}
    assert reloads == [{"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token}, environ]
