# Vobiz Endpoints Admin. `make run` and `make test` set up everything on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
# Locked dependencies with hashes (make lock): runtime for the image, runtime + dev for the rest.
LOCK_BASE := requirements/base.txt
LOCK_DEV := requirements/dev.txt
PIP_COMPILE := CUSTOM_COMPILE_COMMAND="make lock" $(VENV)/bin/pip-compile --quiet \
	--generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links
HOST ?= 127.0.0.1
PORT ?= 8000
SANDBOX_ADDR ?= 127.0.0.1:8765
DEMO_ENDPOINTS ?= 500
DEMO_APPLICATIONS ?= 8
DEMO_SUB_ACCOUNTS ?= 4

.PHONY: run test lint lock bench loadtest screenshots browser-deps sandbox clean

# Every package from the lock, hash-checked; then the project itself (no dependencies of its
# own to resolve; built with the locked setuptools). Rebuilt when the lock changes.
$(STAMP): $(LOCK_DEV) pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r $(LOCK_DEV)
	$(PY) -m pip install --quiet --no-deps --no-build-isolation -e .
	@touch $(STAMP)

# After editing the dependencies in pyproject.toml: re-resolve both lock files (existing pins
# are kept; LOCK_ARGS=--upgrade moves everything to the newest allowed version). Commit both.
lock: $(STAMP)
	$(PIP_COMPILE) $(LOCK_ARGS) --output-file $(LOCK_BASE) pyproject.toml
	$(PIP_COMPILE) $(LOCK_ARGS) --extra dev --constraint $(LOCK_BASE) --output-file $(LOCK_DEV) pyproject.toml

# Local run: DEBUG on, SQLite, and the embedded Vobiz sandbox unless credentials are configured
# (in the environment or in .env); a task worker (db_worker) beside the server runs the syncs
# and bulk jobs. Ctrl-C stops the server, the worker and the sandbox. `migrate` also
# creates the database cache table (createcachetable).
run: $(STAMP)
	@export DJANGO_DEBUG=$${DJANGO_DEBUG:-true}; set -e; \
	$(PY) manage.py migrate --noinput -v0; \
	if [ -z "$$VOBIZ_AUTH_ID" ] && ! grep -qsE '^VOBIZ_AUTH_ID=.+' .env; then \
	  export VOBIZ_API_URL=http://$(SANDBOX_ADDR)/api/v1 VOBIZ_AUTH_ID=MA_SANDBOX01 VOBIZ_AUTH_TOKEN=sandbox-token; \
	  $(PY) manage.py runsandbox $(SANDBOX_ADDR) --endpoints $(DEMO_ENDPOINTS) --applications $(DEMO_APPLICATIONS) --sub-accounts $(DEMO_SUB_ACCOUNTS) & SANDBOX_PID=$$!; \
	  trap 'kill $$SANDBOX_PID 2>/dev/null; wait $$SANDBOX_PID 2>/dev/null' EXIT; \
	  for i in $$(seq 100); do (exec 3<>/dev/tcp/$(subst :,/,$(SANDBOX_ADDR))) 2>/dev/null && break; sleep 0.1; done; \
	fi; \
	$(PY) manage.py sync_endpoints || echo "First sync failed; the dashboard starts with what it has."; \
	$(PY) manage.py ensure_demo_users; \
	$(PY) manage.py db_worker --interval 0.5 -v0 & WORKER_PID=$$!; \
	trap 'kill $$WORKER_PID $${SANDBOX_PID:-} 2>/dev/null; wait $$WORKER_PID $${SANDBOX_PID:-} 2>/dev/null' EXIT; \
	$(PY) manage.py start_periodic; \
	echo; echo "  Vobiz Endpoints Admin: http://$(HOST):$(PORT)/  (a task worker runs beside it)"; echo; \
	$(PY) manage.py runserver $(HOST):$(PORT) --skip-checks

# Every test. Browser tests need Debian's Chromium; it is installed here when missing.
test: $(STAMP) browser-deps
	@$(PY) -m pytest -q --ignore=tests/load $(PYTEST_ARGS); status=$$?; [ $$status -eq 5 ] && exit 1 || exit $$status

# Concurrent logged-in users browsing, filtering and editing while syncs run (loopback only,
# bounded in count and time); prints the figures and writes load-results.json.
loadtest: $(STAMP)
	@$(PY) -m pytest tests/load -q -s -p no:cacheprovider

# The README's screenshots (docs/screenshots/): the browser tests that take one (they use the
# screenshot fixture); a plain test run writes its screenshots to test-results/ instead.
screenshots: $(STAMP) browser-deps
	SCREENSHOTS_DIR=$(CURDIR)/docs/screenshots $(PY) -m pytest -q tests/browser

browser-deps:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "Install Chromium (sudo apt-get install chromium) for the browser tests"; exit 1; fi; \
	fi

lint: $(STAMP)
	$(VENV)/bin/ruff check .

# Sync and browse 1,000 / 10,000 / 100,000 endpoints on SQLite and PostgreSQL; one table, and
# bench-results.json. E.g. BENCH_ARGS="--sizes 1000,10000 --databases sqlite --runs 5".
bench: $(STAMP)
	$(PY) -m tests.bench $(BENCH_ARGS)

sandbox: $(STAMP)
	DJANGO_DEBUG=$${DJANGO_DEBUG:-true} $(PY) manage.py runsandbox $(SANDBOX_ADDR) --endpoints $(DEMO_ENDPOINTS) --applications $(DEMO_APPLICATIONS)

clean:
	rm -rf $(VENV) staticfiles .pytest_cache db.sqlite3 db.sqlite3-wal db.sqlite3-shm
