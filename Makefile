# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch/torchvision builds that lie on this machine's disk (see pyproject's train extra)
RUN_STAMP := $(VENV)/.stamp-run
DEV_STAMP := $(VENV)/.stamp-dev

.PHONY: demo test lint bench install clean schema

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip

$(RUN_STAMP): pyproject.toml | $(VENV)/bin/python
	$(PIP) install -q -e ".[edge,server]"
	touch $@

$(DEV_STAMP): pyproject.toml $(RUN_STAMP)
	$(PIP) install -q -e ".[edge,server,train,dev]"
	touch $@

install: $(DEV_STAMP)

demo: $(RUN_STAMP)
	$(VENV)/bin/trivue demo

test: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .

bench: $(DEV_STAMP)
	$(PY) bench/detector.py

schema: $(RUN_STAMP)
	$(VENV)/bin/trivue schema > docs/lift-event.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
