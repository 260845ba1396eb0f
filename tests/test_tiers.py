"""The test tiers (tests/conftest.py): each mark goes where its test needs it, checked on
real collections of this suite by pytest itself, as `make test-fast` selects them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # collects parts of the suite in subprocesses

ROOT = Path(__file__).resolve().parents[1]
PYTEST = (sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider")
FAST = "not (model or browser or ray or isolation or slow)"  # the Makefile's FAST_TIER


def collect(expression: str, *paths: str) -> list[str]:
    """The ids of the tests under ``paths`` that ``-m expression`` selects."""
    done = subprocess.run(
        [*PYTEST, "-m", expression, *paths],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode in (0, 5), done.stdout + done.stderr  # 5: nothing selected
    return [line for line in done.stdout.splitlines() if "::" in line]


def test_the_fast_tier_is_named_the_same_in_the_makefile() -> None:
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert f"FAST_TIER := {FAST}\n" in makefile


def test_the_loop_runs_on_every_backend_and_the_fast_tier_keeps_the_local_one() -> None:
    everything = set(collect("", "tests/test_loop.py"))
    local = {test for test in everything if "[local" in test}
    fast = set(collect(FAST, "tests/test_loop.py"))
    assert fast
    assert fast <= local
    assert not [test for test in fast if "bwrap" in test or "wasm" in test]
    isolating = set(collect("isolation", "tests/test_loop.py"))
    assert everything - local <= isolating  # every bwrap and wasm variant
    # The WASM sidecar is isolation too, even on the local backend.
    assert "tests/test_loop.py::test_predicate_and_schema_checks_decide_the_run[local-wasm]" in (
        isolating
    )


@pytest.mark.parametrize(
    ("mark", "path"),
    [
        ("model", "tests/models/test_llama_server.py"),  # the llama_server fixture
        ("browser", "tests/test_serve_browser.py"),  # imports playwright
        ("isolation", "tests/hostile/test_mounts.py"),  # the hostile suite
        ("isolation", "tests/test_sandbox_seccomp.py"),  # imports zerog.sandbox.seccomp
        ("slow", "tests/test_durable.py"),  # an explicit module mark
    ],
)
def test_a_module_lands_in_its_tier_by_what_it_uses(mark: str, path: str) -> None:
    everything = collect("", path)
    assert everything
    assert collect(mark, path) == everything
    assert collect(FAST, path) == []


def test_a_fixture_puts_one_test_in_its_tier() -> None:
    assert collect("ray", "tests/test_batch.py") == [
        "tests/test_batch.py::test_ray_tasks_survive_killed_workers_without_duplicating"
    ]
    local = collect("model", "tests/models/test_local_backend.py")
    assert "tests/models/test_local_backend.py::test_a_real_loop_solves_a_coding_goal" in local
    assert "tests/models/test_local_backend.py::test_shell_action_shape_is_the_validated_type" in (
        collect(FAST, "tests/models/test_local_backend.py")
    )
