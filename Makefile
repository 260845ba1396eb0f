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

test: lint typecheck
	$(BIN)/pytest -q

bench: $(STAMP)
	$(BIN)/zerog bench overhead

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
