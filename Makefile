# Two commands for a new user: `make sweep` and `make test`. Both create .venv when missing.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install sweep test test-fast bench browser clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit("sweep needs Python >= 3.11") if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

## The tutorial's grid on digits (lr x L2 x dropout x 5 folds), then the ranked results table.
sweep: $(STAMP)
	$(BIN)/sweep -m experiment=tutorial_grid

## The whole suite, slow end-to-end tests included, on every core (at most 4 workers: each test's subprocesses train too).
test: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4

## The suite without the slow end-to-end tests.
test-fast: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses 4 -m "not slow"

## Debian's Chromium and its chromedriver, for the test that opens the HTML report in a real browser
## (without them that test skips, saying why). Needs root and apt-get; .ci/run calls it.
browser:
	command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver; }

## sweep against a hand-written Keras loop and keras-tuner; appends to benchmarks/results.csv.
bench: $(VENV)/.installed-bench
	$(BIN)/python -m benchmarks

$(VENV)/.installed-bench: $(STAMP) pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	# W5 compares the current Optuna with Optuna 2.10 (hydra-optuna-sweeper's pin), installed apart for its child process.
	$(BIN)/python -m pip install --quiet --no-deps --target $(VENV)/optuna2 "optuna==2.10.1" "sqlalchemy<2" "alembic<1.14"
	touch $@

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
