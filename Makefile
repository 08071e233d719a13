# Everything a newcomer needs: `make run` (demo pipeline) and `make test` (test suite).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
CONFIG ?= configs/credit_default.yaml
DEMO   := data/demo/credit_default.csv
BATCH  := data/demo/credit_default_new_batch.csv
STAMP  := $(VENV)/.installed
DEV    := $(VENV)/.installed-dev

.PHONY: install run test test-fast demo-data benchmark clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make run` installs what the pipeline needs; `make test` adds the test tools (pytest, moto's server).
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $(STAMP)

$(DEV): $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(DEV)

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
