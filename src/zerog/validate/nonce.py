"""The sweep's nonce: how zerog knows that a check's runner reached its end.

An exit status alone proves little: code under test can end its process with status 0
before a single test ran (``sys.exit(0)`` or ``os._exit(0)`` at import). So the runners
zerog puts around a check (the sidecar's loader, the ``asserts`` runner, the pytest
runner, the HumanEval judge) read a nonce from their standard input before they run
anything else, and print a *verdict line* holding it only after their work completed and
passed. Such a check passes only when it exits 0 *and* its output holds that line.

Every sweep draws a fresh nonce (the randomness is injected). It reaches the runner on a
pipe that is its stdin, never on a command line (``/proc/PID/cmdline`` shows that to
every process), in the environment or in a file of the workspace, and the line is taken
out of the output before anything records it. What it cannot stop, written down in
``docs/validation.md``: code that runs inside the runner's own process (a predicate's
imports, the tests themselves) can read that process's memory.
"""

from __future__ import annotations

import secrets

from zerog.types import Observation, Status

MARK = "@@zerog-verdict@@"  # the same in validate/guest, validate/asserts.py, bench/humaneval.py
NONCE_BYTES = 16


def new_nonce() -> str:
    """A fresh nonce (the default source of :func:`zerog.validate.sweep.sweep`)."""
    return secrets.token_hex(NONCE_BYTES)


def stdin_for(nonce: str) -> bytes:
    """What a runner reads on its stdin: the nonce and a newline."""
    return f"{nonce}\n".encode()


def verdict_line(nonce: str) -> str:
    """The line a runner prints once its check passed."""
    return f"{MARK} {nonce} passed"


def confirm(observation: Observation, nonce: str) -> Observation:
    """The observation of a check whose runner confirms its verdict, without the verdict
    line. An exit status of 0 without the line (the process ended before the runner got
    to it) becomes a failure that says so."""
    line = verdict_line(nonce)
    lines = observation.stdout.split("\n")
    found = line in lines
    stdout = "\n".join(text for text in lines if text != line) if found else observation.stdout
    if not observation.ok or found:
        return observation.model_copy(update={"stdout": stdout})
    note = (
        "[zerog: the command exited 0, but the check's runner never confirmed its verdict "
        "(no verdict line with this sweep's nonce): the process ended before the checks "
        "ran to their end, e.g. sys.exit(0) or os._exit(0) in the code under test]"
    )
    stderr = f"{observation.stderr.rstrip()}\n{note}".lstrip("\n")
    return observation.model_copy(update={"status": Status.ERROR, "stderr": stderr})
