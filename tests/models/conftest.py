"""Session fixtures for the model backends: the embedded weights, the in-process local
model, and a real llama.cpp OpenAI-compatible server on loopback. Each is built once."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from zerog.models.llamacpp import LlamaCppModel
from zerog.models.weights import WEIGHTS, default_model_dir, ensure_weights

SERVER_START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def weights_path() -> Path:
    """The embedded 0.5B GGUF, assembled and verified from the installed part packages
    into the user's model cache (as `zerog run --model local` does)."""
    return ensure_weights(WEIGHTS["0.5b"], default_model_dir(os.environ))


@pytest.fixture(scope="session")
def local_model(weights_path: Path) -> LlamaCppModel:
    return LlamaCppModel(weights_path, n_ctx=8192, n_threads=2, seed=0)


def _wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()[-2000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.25)
    raise RuntimeError(f"llama_cpp.server was not ready after {SERVER_START_TIMEOUT:g} s")


@pytest.fixture(scope="session")
def llama_server(weights_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m llama_cpp.server` with the embedded model on a free loopback port; yields
    its OpenAI-compatible base URL and kills it at the end of the session."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(weights_path),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--n_threads",
        "2",
        "--n_ctx",
        "8192",
    ]
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, stdout=sink, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_ready(process, url, log)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
