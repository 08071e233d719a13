# Everything a newcomer needs: `make run` (demo pipeline) and `make test` (test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/credit_default.yaml
DEMO   := data/demo/credit_default.csv
BATCH  := data/demo/credit_default_new_batch.csv
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev
LOCK   := requirements/runtime.lock
DEVLOCK := requirements/dev.lock

.PHONY: install lock run test test-fast demo-data benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` installs what the pipeline needs; `make test` adds the test tools (pytest, moto's server)
# and the Dask runner. Both install the locked versions, checked against their hashes.
$(STAMP): pyproject.toml $(LOCK) | $(BIN)/python
	$(BIN)/python -m pip install --quiet --require-hashes -r $(LOCK)
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

$(DEV): $(STAMP) $(DEVLOCK)
	$(BIN)/python -m pip install --quiet --require-hashes -r $(DEVLOCK)
	touch $(DEV)

# Re-resolve the lock files from pyproject.toml (after changing a dependency); commit both.
lock: | $(BIN)/python
	$(BIN)/python -m pip install --quiet "uv>=0.5,<1"
	$(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --upgrade -q -o $(LOCK)
	$(BIN)/uv pip compile pyproject.toml --universal --generate-hashes --python-version 3.11 --upgrade --extra dev -q -o $(DEVLOCK)

install: $(STAMP)

$(DEMO): | $(STAMP)
	$(BIN)/pipeline-cli demo-data credit-default --rows 30000 --seed 42 --out $(DEMO)

$(BATCH): | $(STAMP)
	$(BIN)/pipeline-cli demo-data credit-default --rows 5000 --seed 7 --out $(BATCH)

demo-data: $(DEMO) $(BATCH)

run: $(STAMP) $(DEMO) $(BATCH)
	$(BIN)/pipeline-cli run --config $(CONFIG) --predict $(BATCH) results/predictions/new_batch.parquet

test: $(DEV)
	$(BIN)/python -m pytest

# The pure core alone: no Prefect, no MLflow, no servers (seconds).
test-fast: $(DEV)
	$(BIN)/python -m pytest tests/unit

benchmark: $(STAMP)
	$(BIN)/python benchmarks/layers_benchmark.py --rows 1000000

clean:
	rm -rf data/store results .pytest_cache
