# One entry point for people and CI. `make run` starts the platform, `make test` runs every test.
PYTHON ?= python3.11
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)

$(STAMP): $(BIN)/python requirements/dev.txt requirements/ansible.txt requirements/constraints.txt kernel/pyproject.toml hub/pyproject.toml hub/package.json labextension/pyproject.toml singleuser/pyproject.toml labextension/opuhub_lab/labextension/package.json
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c requirements/constraints.txt -r requirements/dev.txt
	$(BIN)/pip install -q -c requirements/constraints.txt --no-deps -e kernel -e hub -e labextension -e singleuser
	$(BIN)/python -m opu_kernel.install --sys-prefix
	$(BIN)/python -m opuhub_lab.install --sys-prefix  # JupyterLab status bar, no news prompt
	$(BIN)/python -m opuhub.proxy  # configurable-http-proxy from npm into hub/node_modules
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/python -m opuhub.run

test: install
	scripts/run-tests

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python benchmarks/bench_simulator.py

clean:
	rm -rf $(VENV) state

# Container images (Docker engine needed: scripts/ensure-docker starts one); see images/build.
.PHONY: images
images: install
	images/build
