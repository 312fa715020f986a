# Two commands do all setup on a fresh machine: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
VENV := .venv
BIN := $(VENV)/bin
# Any DAGSTER_HOME works (`make run DAGSTER_HOME=/elsewhere`): the CLI gives it the project's
# instance config. Everything else comes from CHURN_* settings (churn_assets/settings.py).
export DAGSTER_HOME ?= $(CURDIR)/.state/dagster
export MLFLOW_DISABLE_TELEMETRY := true
MLFLOW_TRACKING_URI ?= sqlite:///$(CURDIR)/.state/mlflow/mlflow.db
PORT ?= 3000
MLFLOW_PORT ?= 5000
# Reports (quality, drift, executive reports, customer lists) are served from here, so the links
# in the UI's metadata open in a browser: a static file server on loopback only.
REPORTS_PORT ?= 8765
REPORTS_DIR ?= $(or $(CHURN_REPORTS_DIR),$(CURDIR)/data/reports)
export CHURN_REPORTS_URL ?= http://127.0.0.1:$(REPORTS_PORT)
DUCKDB_FILE := $(or $(CHURN_DUCKDB_PATH),$(CURDIR)/data/churn.duckdb)

.PHONY: install system-deps state redis redis-stop serve bench-serve run evaluate test test-fast ui reports demo mlflow-ui dbt-docs lint typecheck bench bench-models replay-next replay-status clean parity-spark bench-feast

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null || $(PYTHON) -m uv --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet uv
	$(UV) sync --frozen
	@touch $@

# Debian packages the tests start for real: headless Chromium (browser test), redis-server (online
# store, API, stream worker) and a Java 17 runtime (Spark). Browser downloads do not work here.
DEBIAN_PACKAGES := chromium:/usr/bin/chromium redis-server:/usr/bin/redis-server openjdk-17-jre-headless:/usr/bin/java
system-deps:
	@missing=""; for entry in $(DEBIAN_PACKAGES); do \
		[ -x "$${entry#*:}" ] || missing="$$missing $${entry%%:*}"; \
	done; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else echo "missing Debian packages:$$missing (sudo apt-get install$$missing)"; exit 1; fi; \
	fi

state: install
	@$(BIN)/python -m churn_assets.cli prepare

# The online store: a project-local Redis on its own port, data under .state/redis, started when
# needed (skipped when CHURN_REDIS_URL points elsewhere).
REDIS_PORT ?= 6390
redis:
	@if [ -n "$$CHURN_REDIS_URL" ]; then exit 0; fi; \
	if ! command -v redis-server >/dev/null; then \
		echo "redis-server is missing: sudo apt-get install redis-server (Debian), or set CHURN_REDIS_URL to a running Redis"; exit 1; \
	fi; \
	if ! redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
		mkdir -p .state/redis; \
		redis-server --port $(REDIS_PORT) --bind 127.0.0.1 --dir $(CURDIR)/.state/redis \
			--daemonize yes --pidfile $(CURDIR)/.state/redis/redis.pid --logfile $(CURDIR)/.state/redis/redis.log \
			&& echo "started Redis on 127.0.0.1:$(REDIS_PORT) (data in .state/redis; make redis-stop stops it)"; \
	fi

redis-stop:
	@redis-cli -p $(REDIS_PORT) shutdown 2>/dev/null && echo "stopped Redis on 127.0.0.1:$(REDIS_PORT)" || true

# `make run DATASET=retail` runs one declared dataset's graph only.
run: install redis
	$(BIN)/python -m churn_assets.cli run $(if $(DATASET),--dataset $(DATASET))

# Resampled evaluation of every candidate recipe (group `evaluation`, never in `make run`: each
# round tunes every candidate again): 10 seeded splits for a snapshot dataset, rolling-origin
# months out of time. Needs the training sets of a `make run`; `DATASET=telco` for one dataset.
evaluate: install
	$(BIN)/python -m churn_assets.cli run --group evaluation $(if $(DATASET),--dataset $(DATASET))

# The scoring API on 127.0.0.1:8000 (docs at /docs) over Redis and the MLflow champions. Its key
# comes from CHURN_API_KEYS, else one generated once into .state/api_key (never in the repo).
API_KEY_FILE := .state/api_key
serve: install redis
	@mkdir -p .state && test -s $(API_KEY_FILE) || $(BIN)/python -c "import secrets; print(secrets.token_urlsafe(24))" > $(API_KEY_FILE)
	@echo "API at http://127.0.0.1:8000 (docs: /docs); X-API-Key: $${CHURN_API_KEYS:-$$(cat $(API_KEY_FILE))}"
	CHURN_API_KEYS="$${CHURN_API_KEYS:-$$(cat $(API_KEY_FILE))}" \
	CHURN_SERVING_DATASETS="$${CHURN_SERVING_DATASETS:-$$($(BIN)/python -c 'from churn_assets.lib.datasets import load_declarations as d; print(",".join(d()))')}" \
		$(BIN)/python -m churn_assets.serving

# Latency and throughput of the API against `mlflow models serve` and batch scoring (after
# `make run`; loopback only, bounded request counts).
bench-serve: install redis
	$(BIN)/python -m benchmarks.serve

test: state system-deps
	$(BIN)/pytest -n 2 --dist loadgroup

test-fast: state
	$(BIN)/pytest -n 2 --dist loadgroup -m "not e2e and not browser"

# The UI and, in the background for as long as it runs, the reports server.
ui: state
	@mkdir -p $(REPORTS_DIR)
	@$(BIN)/python -m http.server $(REPORTS_PORT) --bind 127.0.0.1 --directory $(REPORTS_DIR) >/dev/null 2>&1 & \
	server=$$!; trap 'kill $$server 2>/dev/null' EXIT INT TERM; \
	echo "reports: $(CHURN_REPORTS_URL) (serving $(REPORTS_DIR))"; \
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p $(PORT)

# The reports server alone (when the UI runs elsewhere).
reports:
	@mkdir -p $(REPORTS_DIR)
	$(BIN)/python -m http.server $(REPORTS_PORT) --bind 127.0.0.1 --directory $(REPORTS_DIR)

# The stakeholder demo of docs/demo.md: the whole graph on a fresh clone (business included),
# else a fresh business group on top of the existing build; then the UI and the reports server.
demo: install
	@if [ -f "$(DUCKDB_FILE)" ]; then \
		$(BIN)/python -m churn_assets.cli run --group business; \
	else \
		$(MAKE) --no-print-directory run; \
	fi
	@echo "Demo ready: follow docs/demo.md. UI http://127.0.0.1:$(PORT), reports $(CHURN_REPORTS_URL)"
	@$(MAKE) --no-print-directory ui

mlflow-ui: install
	$(BIN)/mlflow ui --backend-store-uri $(MLFLOW_TRACKING_URI) -h 127.0.0.1 -p $(MLFLOW_PORT)

# dbt's catalogue and lineage docs of one dataset's feature models (`make run` first for the
# catalog): `make dbt-docs DATASET=telco`, the first declared dataset by default.
dbt-docs: install
	cd dbt && vars="$$(../$(BIN)/python -m churn_assets.cli dbt-vars $(if $(DATASET),--dataset $(DATASET)))" && \
		../$(BIN)/dbt docs generate --profiles-dir . --vars "$$vars" && \
		../$(BIN)/dbt docs serve --profiles-dir . --vars "$$vars" --host 127.0.0.1 --port 8080

lint: install
	$(BIN)/ruff check churn_assets churn_assets_tests benchmarks
	$(BIN)/ruff format --check churn_assets churn_assets_tests benchmarks

typecheck: install
	$(BIN)/mypy

bench: install
	$(BIN)/python benchmarks/feature_windows.py

# Optuna budget vs test ROC-AUC on the training sets `make run` wrote (about 10 minutes).
bench-models: install
	$(BIN)/python -m benchmarks.model_budget

replay-next: install
	$(BIN)/python -m churn_assets.replay next

replay-status: install
	$(BIN)/python -m churn_assets.replay status

clean: redis-stop
	rm -rf .state data/*.duckdb data/*.duckdb.wal data/*.duckdb.lock data/processed data/reports data/landing data/spark dbt/target

# Streaming (docs/streaming.md): a worker of an events dataset's Redis stream keeps online tiles
# equal to the batch store's and scores customers as events arrive (`make stream DATASET=retail`
# picks the dataset; the first declared events dataset by default). Publish a month of real
# events with `.venv/bin/python -m churn_assets.replay stream --month 2011-11`.
.PHONY: stream bench-stream parity-stream
stream: install redis
	$(BIN)/python -m churn_assets.streaming $(if $(DATASET),--dataset $(DATASET))

# Worker throughput (one and two workers), event-to-score lag at 1,000 events/s and the November
# 2011 parity run with five worker SIGKILLs, on a loopback Redis of its own (about 3 minutes).
bench-stream: install system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.stream

# Only the fault-run parity: online features and scores against the batch at 2011-12-01.
parity-stream: install system-deps
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks.stream --parity

# The feature models on Spark against DuckDB on the real retail data (every observation month),
# and a one-month landing built incrementally against a full rebuild, on both engines: prints the
# row mismatch counts (all must be 0) and the build times (about 10 minutes on 2 cores).
parity-spark: install system-deps
	$(BIN)/python -m benchmarks.spark_parity

# The project's window build against Feast's offline point-in-time join on the same 10M
# synthetic events (outputs asserted equal; about 10 minutes). Feast lives in its own venv,
# created here from benchmarks/feast/requirements.txt: it never enters the project's lock.
FEAST_VENV := .state/feast-venv
$(FEAST_VENV)/.installed: benchmarks/feast/requirements.txt
	@command -v uv >/dev/null || $(PYTHON) -m pip install --quiet uv
	$(UV) venv --quiet --clear --python 3.11 $(FEAST_VENV)
	$(UV) pip install --quiet --python $(FEAST_VENV)/bin/python -r $<
	@touch $@

bench-feast: install $(FEAST_VENV)/.installed
	$(BIN)/python -m benchmarks.feast.bench --feast-python $(FEAST_VENV)/bin/python
