# Two commands on a fresh machine: `make serve` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
UV := $(BIN)/uv
# The uv that installs the lock: the version pinned in pyproject.toml's dev extra.
UV_VERSION := $(shell sed -n 's/^ *"uv==\([^"]*\)".*/\1/p' pyproject.toml)
# The typed partner client (docs/federation.md); tests/test_partner_client.py checks it.
PARTNER := examples/partner_client

.PHONY: serve test lint install lock lock-check lock-upgrade schema supergraph gateway \
	partner-client bench bench-quick clean

$(UV):
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "uv==$(UV_VERSION)"

# Exactly what uv.lock says (hashes checked; anything else in the venv is removed). --locked
# refuses a lock that pyproject.toml has moved away from: run `make lock`. Bytecode is compiled
# at install: where PYTHONDONTWRITEBYTECODE is set (containers, CI) Python would otherwise
# compile every module again at every start (~7 s for the app, ~4 s with bytecode).
$(STAMP): pyproject.toml uv.lock | $(UV)
	$(UV) sync --locked --extra dev --compile-bytecode
	$(BIN)/python -m compileall -q src
	@touch $(STAMP)

# Our own sources too (an editable install: uv compiles site-packages only). Stale bytecode is
# never wrong, only slow: Python checks each file's mtime and compiles a changed one again.
install: $(STAMP)
	@$(BIN)/python -m compileall -q src

## Re-resolve uv.lock after editing pyproject.toml's dependencies (keeps other pins as they are)
lock: $(UV)
	$(UV) lock

## Move every pin to the newest version pyproject.toml allows
lock-upgrade: $(UV)
	$(UV) lock --upgrade

## Fail when uv.lock and pyproject.toml disagree
lock-check: $(UV)
	$(UV) lock --check

## Migrate and seed the embedded SQLite database, then serve http://127.0.0.1:8000/graphql
serve: $(STAMP)
	$(BIN)/carbongraph migrate
	$(BIN)/carbongraph seed --demo
	$(BIN)/carbongraph serve

# `make test`: pytest-xdist workers for the parallel phase (the suite mostly waits on databases
# and subprocesses), then the tests marked `serial` alone. JUNIT=DIR writes DIR/parallel.xml
# and DIR/serial.xml (.ci/run checks their union). Exit 5 (no test selected) is not a failure:
# PYTEST_ARGS may name files of one phase only. Both phases record the planner's shadow
# differential in one directory (tests/conftest.py): the second phase's summary is the suite's.
TEST_WORKERS ?= 2
JUNIT ?=

## The whole suite: every database test on SQLite and on PostgreSQL
test: lock-check $(STAMP) gateway/node_modules $(PARTNER)/node_modules
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(eval SHADOW_DIR := $(shell mktemp -d -t carbongraph-shadow-XXXXXX))
	CARBONGRAPH_TEST_SHADOW_DIR=$(SHADOW_DIR) \
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadgroup -m "not serial" $(PYTEST_ARGS) \
		$(if $(JUNIT),--junitxml=$(JUNIT)/parallel.xml) || test $$? -eq 5
	CARBONGRAPH_TEST_SHADOW_DIR=$(SHADOW_DIR) \
	$(BIN)/pytest -m serial $(PYTEST_ARGS) \
		$(if $(JUNIT),--junitxml=$(JUNIT)/serial.xml) || test $$? -eq 5
	rm -rf $(SHADOW_DIR)

gateway/node_modules: gateway/package-lock.json
	cd gateway && npm ci --no-audit --no-fund --loglevel=error
	@touch gateway/node_modules

$(PARTNER)/node_modules: $(PARTNER)/package-lock.json
	cd $(PARTNER) && npm ci --no-audit --no-fund --loglevel=error
	@touch $(PARTNER)/node_modules

## Regenerate the partner client's types and persisted-documents manifest from the supergraph
partner-client: $(PARTNER)/node_modules
	cd $(PARTNER) && npm run --silent codegen

## Benchmarks at city scale (about 20 minutes; needs PostgreSQL, wrk, Node). The importer's
## memory on a file ten times the activity is sampled for BENCH_10X_SECONDS (all of it: about
## 15 minutes more at 20,000 records/s; set it empty to import the whole file)
BENCH_10X_SECONDS ?= 300
bench: $(STAMP) bench/peers/postgraphile/node_modules
	BENCH_10X_SECONDS=$(BENCH_10X_SECONDS) \
	$(BIN)/python -m bench.run --scale city --seconds 20 --iterations 300

## The same scenarios at small scale (CI runs it so the harness never rots)
bench-quick: $(STAMP) bench/peers/postgraphile/node_modules
	$(BIN)/python -m bench.run --scale small --seconds 3 --iterations 60

bench/peers/postgraphile/node_modules: bench/peers/postgraphile/package-lock.json
	cd bench/peers/postgraphile && npm ci --no-audit --no-fund --loglevel=error
	@touch bench/peers/postgraphile/node_modules

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

schema: $(STAMP)
	$(BIN)/carbongraph export-schema

clean:
	rm -rf $(VENV) carbongraph.db carbongraph.db-wal carbongraph.db-shm gateway/node_modules \
		$(PARTNER)/node_modules

## carbongraph, the metro partner subgraph and Hive Gateway (http://127.0.0.1:4000/graphql)
gateway: $(STAMP) gateway/node_modules
	$(BIN)/python scripts/local_federation.py

## Recompose gateway/supergraph.graphql from our SDL (and partners' SDLs, as they are added)
supergraph: $(STAMP) gateway/node_modules $(PARTNER)/node_modules
	$(BIN)/carbongraph export-schema > gateway/subgraphs/carbongraph.graphql
	PYTHONPATH=examples/metro_partner $(BIN)/python -m metro_partner export-schema \
		> gateway/subgraphs/metro.graphql
	node gateway/compose.mjs --out gateway/supergraph.graphql \
		carbongraph=gateway/subgraphs/carbongraph.graphql@http://127.0.0.1:8000/graphql \
		metro=gateway/subgraphs/metro.graphql@http://127.0.0.1:4002/graphql
	cd $(PARTNER) && npm run --silent codegen
