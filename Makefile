# Two commands: `make demo` runs the mock-chain story (`make demo-analysis` its metrics story, `make demo-lane` its lane release), `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Test workers (pytest-xdist); 0 runs the suite in one process. On 2 cores, 3 workers take the
# suite from about 22 to about 11 minutes, but they keep the machine at a load of 5 to 10, under
# which a few end-to-end tests that count requests or writes within a time window fail now and
# then; so the default stays one process, and `make test TEST_WORKERS=3` is the fast run for
# machines with cores to spare. Each worker starts its own control plane (about 1 GB).
TEST_WORKERS ?= 0

.PHONY: demo demo-analysis demo-lane test unit crds docs dashboard bench clean

$(STAMP): pyproject.toml testbed/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]' -e ./testbed
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/kubectl-lane demo

# Two mockb releases decided by Prometheus metrics: one promoted, one rolled back by itself.
demo-analysis: $(STAMP)
	$(BIN)/kubectl-lane demo --story analysis

# mocka, mockb and mockc released as one lane: promoted together, then rolled back together.
demo-lane: $(STAMP)
	$(BIN)/kubectl-lane demo --story lane

# Whole files go to one worker (--dist loadfile), so a module's operator or stack starts once;
# in the order tests/conftest.py gives them.
test: $(STAMP)
	$(BIN)/pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder

unit: $(STAMP)
	$(BIN)/pytest tests/unit

crds: $(STAMP)
	$(BIN)/python -m lanes.api.crds --write crds charts/lanes/crds

# The manual, into site/; --strict fails on a broken link or anchor. The reference pages are
# generated from the code at build time (docs/hooks.py).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The page `kubectl lane dashboard` serves, built from lanes/dashboard/web (Vite, cytoscape.js
# with dagre) into lanes/dashboard/static, which is committed and shipped as package data so
# neither `pip install` nor `make test` needs Node. npm's downloads are cached beside the other
# builds'. Rebuild after changing anything under web/ and commit static/ with it.
NPM_CACHE ?= $(or $(XDG_CACHE_HOME),$(HOME)/.cache)/lanes/npm
dashboard:
	@echo "dashboard: npm ci in lanes/dashboard/web (cache $(NPM_CACHE))"
	cd lanes/dashboard/web && npm ci --cache "$(NPM_CACHE)" --no-audit --no-fund
	@echo "dashboard: vite build into lanes/dashboard/static"
	cd lanes/dashboard/web && npm run build

# Every benchmark; each prints a table. Those needing a cluster start a local control plane.
BENCHES := render dataplane traceaffinity controlplane convergence idle_writes rollout analysis analysis_load lanerelease shadow failover scale
bench: $(STAMP)
	@for b in $(BENCHES); do echo "== bench/$$b.py"; $(BIN)/python bench/$$b.py || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .hypothesis site
