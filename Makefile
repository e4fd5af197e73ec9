# werkplaats — the two commands of the README, and the checks behind them.
PY ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test setup lint typecheck bench bench-quick screenshots clean

$(BIN)/werkplaats: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "werkplaats needs Python 3.11 ($(PY) not found)"; exit 1; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

setup: $(BIN)/werkplaats  ## create .venv with werkplaats and its pinned dependencies

demo: setup  ## the main job: a whole workspace (hub, 3 engines, 4 datastations) and one analysis through it
	$(BIN)/werkplaats demo

test: setup  ## ruff, mypy, then the whole test suite (MPC included)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools
	$(BIN)/mypy
	HYPOTHESIS_PROFILE=ci $(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: setup
	$(BIN)/mypy

bench: setup  ## W1 at n = 10K, 100K, 1M (takes several minutes)
	$(BIN)/werkplaats bench --sizes 10000,100000,1000000

bench-quick: setup
	$(BIN)/werkplaats bench --sizes 10000,100000

screenshots: setup  ## docs/img/web-*.png: the browser story's main pages (needs /usr/bin/chromium)
	WERKPLAATS_SCREENSHOTS=1 WERKPLAATS_REQUIRE_BROWSER=1 $(BIN)/python -m pytest -q tests/web/test_browser.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis bench/results
