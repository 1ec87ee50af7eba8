# The two commands of the README: `make run` and `make test`. Each creates or refreshes
# the virtual environment from pyproject.toml first; nothing else needs installing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
LINT_STAMP := tests/cypher_lint/node_modules/.installed-stamp

.PHONY: run test venv lint-deps bench bench-peer clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(LINT_STAMP): tests/cypher_lint/package.json tests/cypher_lint/package-lock.json
	npm ci --prefix tests/cypher_lint --no-audit --no-fund --loglevel=error
	touch $(LINT_STAMP)

venv: $(STAMP)

lint-deps: $(LINT_STAMP)

## Run the GraphQL server on http://127.0.0.1:8000/graphql with 10,000 demo members.
run: $(STAMP)
	$(VENV)/bin/quanzi serve

## Run the whole test suite.
test: $(STAMP) $(LINT_STAMP)
	$(PY) -m pytest

## Run the benchmarks (each writes its table to benchmarks/results/).
bench: $(STAMP)
	$(PY) benchmarks/http_bench.py
	$(PY) benchmarks/pagerank_bench.py
	$(PY) benchmarks/growth_bench.py
	$(PY) benchmarks/kol_scale_bench.py
	$(PY) benchmarks/subscription_bench.py
	$(PY) benchmarks/id_lookup_bench.py
	$(PY) benchmarks/failure_bench.py
	$(PY) benchmarks/health_bench.py
	$(PY) benchmarks/import_bench.py
	$(PY) benchmarks/edge_ceiling_bench.py
	$(PY) benchmarks/demo_scale_bench.py

## Side-by-side benchmark against @neo4j/graphql (issue 7): make bench-peer [PEER_MEMBERS=100000] [PEER_ARGS=...]
PEER_MEMBERS ?= 10000
BENCH_STAMP := $(VENV)/.bench-stamp

$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench-peer: $(BENCH_STAMP)
	$(PY) benchmarks/peer/bench.py --members $(PEER_MEMBERS) $(PEER_ARGS)

clean:
	rm -rf $(VENV) tests/cypher_lint/node_modules .pytest_cache
