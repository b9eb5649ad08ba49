# lambdalake: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: setup demo test test-unit lint bench kafka-start kafka-stop clean pyfiles

# Idempotent: creates .venv, installs pinned packages, fetches the pinned JVM artifacts once.
setup: $(STAMP)
	@$(BIN)/lambdalake setup

$(STAMP): pyproject.toml
	@$(PYTHON) scripts/check_python.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --upgrade pip
	@$(BIN)/python -m pip install --quiet -e '.[dev,bench,notebooks]'
	@touch $(STAMP)

# README command 1: the whole tolls pipeline end to end on the embedded defaults.
demo: setup
	@$(BIN)/lambdalake demo

# README command 2 (what .ci/run calls): unit and integration tests on real components, on two
# workers (each with its own SparkSession and broker); the tests marked `long` start first.
test: setup
	@$(BIN)/ruff check .
	@$(BIN)/python -m pytest -n 2 --dist load

test-unit: setup
	@$(BIN)/python -m pytest -m "not integration"

lint: setup
	@$(BIN)/ruff check .

bench: setup
	@$(BIN)/python -m bench.speed_throughput
	@$(BIN)/python -m bench.freshness
	@$(BIN)/python -m bench.batch_recompute

kafka-start: setup
	@$(BIN)/lambdalake kafka start

kafka-stop: setup
	@$(BIN)/lambdalake kafka stop

# The zip to pass to spark-submit --py-files on a cluster.
pyfiles: setup
	@$(BIN)/lambdalake pyfiles dist/lambdalake-jobs.zip

clean:
	rm -rf $(VENV) .lambdalake dist build *.egg-info
