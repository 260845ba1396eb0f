"""Shared fixtures (real temporary workspaces, an engine on every sandbox backend) and the
test tiers: each test is marked from what it uses (see ``pytest_collection_modifyitems``),
so that ``make test-fast`` can leave out what needs model weights, Chromium, Ray or an
isolating sandbox."""

from __future__ import annotations

import functools
from pathlib import Path
from types import ModuleType

import pytest

from builders import EngineFactory, engine
from zerog.sandbox.factory import SANDBOXES


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    root.mkdir()
    (root / "app.py").write_text("def answer():\n    return 41\n", encoding="utf-8")
    return root


@pytest.fixture(params=SANDBOXES)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of a sandbox backend: a test that uses it runs once on each backend."""
    return str(request.param)


@pytest.fixture(name="engine")
def engine_on_backend(backend: str) -> EngineFactory:
    """``builders.engine`` on the test's ``backend``: ``engine(model, **options)``."""
    return functools.partial(engine, sandbox=backend)


# ------------------------------------------------------------------ test tiers

# What puts a test in a tier (the markers are registered in pyproject.toml; `make
# test-fast` runs the tests that have none of them). A test that needs a tier for another
# reason says so with an explicit mark (e.g. `pytestmark = pytest.mark.model`).
MODEL_FIXTURES = frozenset({"weights_path", "local_model", "llama_server", "embedder"})
RAY_FIXTURES = frozenset({"ray_session"})
# The isolating sandbox backends (and the WASM sidecar): a test parametrized with one of
# these names, or using a fixture of that name, runs in one.
ISOLATING = frozenset({"bwrap", "wasm"})
# Modules whose subject is isolation: a test module that imports from one tests it.
ISOLATION_MODULES = frozenset(
    {
        "zerog.sandbox.bwrap",
        "zerog.sandbox.limits",
        "zerog.sandbox.seccomp",
        "zerog.sandbox.wasm",
        "zerog.sandbox.wasm_component",
    }
)
BROWSER_MODULES = ("playwright",)
HOSTILE = Path(__file__).parent / "hostile"  # the hostile suite: isolation is its subject


def imported_from(module: ModuleType) -> set[str]:
    """The modules a test module imported names (or modules) from."""
    found = set()
    for value in vars(module).values():
        if isinstance(value, ModuleType):
            found.add(value.__name__)
        else:
            found.add(str(getattr(value, "__module__", "")))
    return found


def tiers(item: pytest.Item) -> set[str]:
    """The tier markers ``item`` earns by what it uses."""
    found = set()
    fixtures = set(getattr(item, "fixturenames", ()))
    callspec = getattr(item, "callspec", None)
    params = list(callspec.params.values()) if callspec is not None else []
    if fixtures & MODEL_FIXTURES:
        found.add("model")
    if fixtures & RAY_FIXTURES:
        found.add("ray")
    if fixtures & ISOLATING or any(isinstance(p, str) and p in ISOLATING for p in params):
        found.add("isolation")
    if HOSTILE in item.path.parents:
        found.add("isolation")
    module = getattr(item, "module", None)
    if module is not None:
        sources = imported_from(module)
        if sources & ISOLATION_MODULES:
            found.add("isolation")
        if any(s.startswith(BROWSER_MODULES) for s in sources):
            found.add("browser")
    return found


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by them
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for marker in sorted(tiers(item)):
            item.add_marker(marker)
