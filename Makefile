# Two entry points for a fresh machine: `make demo` and `make test`. Both build .venv first.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
# torch/torchvision builds that lie on this machine's disk (see pyproject's train extra)
RUN_STAMP := $(VENV)/.stamp-run
DEV_STAMP := $(VENV)/.stamp-dev

.PHONY: demo test lint bench install clean schema dashboard-assets chaos

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

# Dashboard browser libraries (Leaflet, Chart.js, pmtiles, Konva, Swagger UI for /docs) come from the npm registry
# at build time, pinned
# by server/static/package-lock.json; npm installs them under build/ and the files the pages load
# are copied to server/static/vendor/ (git-ignored), from where the server serves them. Nothing
# is fetched at run time (--ignore-scripts: none of them needs an install script, and swagger-ui-dist's
# dependency @scarf/scarf would report the install over the network). axe-core (a devDependency) stays under build/: only the accessibility
# tests inject it into the pages (tests/dashboard/test_accessibility.py), the server never serves it.
STATIC := server/static
NPM_DIR := build/dashboard-npm
ASSETS_STAMP := $(STATIC)/vendor/.stamp
$(ASSETS_STAMP): $(STATIC)/package.json $(STATIC)/package-lock.json
	mkdir -p $(NPM_DIR)
	cp $(STATIC)/package.json $(STATIC)/package-lock.json $(NPM_DIR)/
	cd $(NPM_DIR) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	rm -rf $(STATIC)/vendor && mkdir -p $(STATIC)/vendor/leaflet $(STATIC)/vendor/chartjs $(STATIC)/vendor/pmtiles \
		$(STATIC)/vendor/konva $(STATIC)/vendor/swagger-ui
	cp -r $(NPM_DIR)/node_modules/leaflet/dist/leaflet.js $(NPM_DIR)/node_modules/leaflet/dist/leaflet.css \
		$(NPM_DIR)/node_modules/leaflet/dist/images $(NPM_DIR)/node_modules/leaflet/LICENSE $(STATIC)/vendor/leaflet/
	cp $(NPM_DIR)/node_modules/chart.js/dist/chart.umd.js $(NPM_DIR)/node_modules/chart.js/LICENSE.md \
		$(STATIC)/vendor/chartjs/
	cp $(NPM_DIR)/node_modules/pmtiles/dist/pmtiles.js $(NPM_DIR)/node_modules/pmtiles/package.json \
		$(STATIC)/vendor/pmtiles/
	cp $(NPM_DIR)/node_modules/konva/konva.min.js $(NPM_DIR)/node_modules/konva/LICENSE $(STATIC)/vendor/konva/
	cp $(NPM_DIR)/node_modules/swagger-ui-dist/swagger-ui-bundle.js $(NPM_DIR)/node_modules/swagger-ui-dist/swagger-ui.css \
		$(NPM_DIR)/node_modules/swagger-ui-dist/favicon-32x32.png $(NPM_DIR)/node_modules/swagger-ui-dist/LICENSE \
		$(NPM_DIR)/node_modules/swagger-ui-dist/NOTICE $(STATIC)/vendor/swagger-ui/
	touch $@

dashboard-assets: $(ASSETS_STAMP)

# The dashboard tests drive Debian's Chromium through Playwright (never `playwright install`).
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	apt-get install -y -q chromium || (apt-get update -q && apt-get install -y -q chromium) \
		|| echo "warning: could not install chromium: the browser tests will be skipped"

demo: $(RUN_STAMP) $(ASSETS_STAMP)
	$(VENV)/bin/trivue demo

# One test worker more than the cores (at most 4): a worker spends about a third of its time waiting
# on a broker, a database, a browser or a subprocess. On 2 cores, two workers kept the CPUs 63 % busy
# (21-22 min); three, 17 min 40 s, same tests passing (2026-12-06).
TEST_WORKERS ?= $(shell n=$$(nproc); echo $$(( n + 1 < 4 ? n + 1 : 4 )))

# The import-linter contracts (pyproject.toml): layers, no cycles; tests/test_layers.py runs them too.
test: $(DEV_STAMP) $(ASSETS_STAMP) $(CHROMIUM)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache

# Server benches (docs/performance.md "Server"): Mosquitto on 127.0.0.1:1883; queries.py also runs
# on PostgreSQL when 127.0.0.1:5432 answers. Smaller than the documented figures so that the whole
# target stays within ~15 minutes: the documented sizes are `bench/queries.py` (10 million lifts on
# both, 30 million on PostgreSQL, cached under build/bench and in PostgreSQL after a first run), `bench/streets.py` (300,000 addresses)
# and `bench/opendata.py` (2,500 streets over 3 years, ~16 minutes the first time; 500 streets over a year here, a few minutes, cached
# the same way). login_throttle.py times SQLite only here: its PostgreSQL run empties the throttle tables of the
# database it is given (`--postgres-url`, a scratch one), which no make target should pick for you.
bench: $(DEV_STAMP)
	$(PY) bench/detector.py
	$(PY) bench/edge.py
	$(PY) bench/recorder.py
	$(PY) bench/outbox.py
	$(PY) bench/ingest.py
	$(PY) bench/streets.py --addresses 100000
	$(PY) bench/street_ends.py
	$(PY) bench/queries.py --runs sqlite:1M,postgresql:1M
	$(PY) bench/audit_log.py
	$(PY) bench/opendata.py --streets 500 --years 1 --repeat 1
	$(PY) bench/login_throttle.py

# Long fault scenarios (minutes): offline round, broker/server/edge kills, PostgreSQL restarts.
chaos: $(DEV_STAMP)
	$(PY) bench/chaos.py

schema: $(RUN_STAMP)
	$(VENV)/bin/trivue schema > docs/lift-event.schema.json

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache build *.egg-info
