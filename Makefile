# Two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
export PORT

.PHONY: run test test-fast lint format install clean bench

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo "Installing dependencies into $(VENV) …"
	@$(PY) -m pip install --quiet --upgrade pip
	@$(PY) -m pip install --quiet -e '.[dev]'
	@touch $@

install: $(VENV)/.installed

## make run: set up, load the demo, start demo server + web server + workers (Ctrl-C stops all)
run: install
	@$(PY) -m aggregator.localenv --port $(PORT)
	@DEBUG=1 FETCH_ALLOWED_NETWORKS=127.0.0.0/8,::1/128 $(PY) manage.py rundemo --port $(PORT)

## make test: set up and run the whole suite
test: install
	@$(PY) -m pytest $(PYTEST_ARGS)

## make test-fast: the suite without the 2,107-feed corpus
test-fast: install
	@$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

lint: install
	@$(VENV)/bin/ruff check .
	@$(VENV)/bin/ruff format --check .

format: install
	@$(VENV)/bin/ruff check --fix .
	@$(VENV)/bin/ruff format .

## make bench: ingest (project vs a naive loop) and serving (pages vs a static file)
bench: install
	@$(PY) -m pip install --quiet -e '.[bench]'
	@$(PY) bench/ingest.py
	@$(PY) bench/serve.py

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache *.egg-info
