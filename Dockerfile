# syntax=docker/dockerfile:1.7
# churn_assets images (see docs/deploy.md):
#   target `serving`  (default): the scoring API, `python -m churn_assets.serving`
#   target `platform`: Dagster webserver/daemon and the MLflow tracking server (PostgreSQL)
# Dependencies come from uv.lock exactly as `make install` does (`uv sync --frozen`).

ARG PYTHON_VERSION=3.11
ARG UV_VERSION=0.13.9

FROM ghcr.io/astral-sh/uv:${UV_VERSION} AS uv

# ---------------------------------------------------------------------------------------------
# build: the locked virtual environment and the project, nothing else reaches the runtime
# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS build
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv
WORKDIR /app
# Third-party dependencies first: this layer is reused until uv.lock changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project
COPY churn_assets ./churn_assets
COPY benchmarks ./benchmarks
COPY dbt ./dbt
COPY data/raw ./data/raw
COPY dagster.yaml workspace.yaml ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev
# The dbt manifest is a pure function of the SQL in the image: build it once here, as
# `make run` / `make ui` do with `python -m churn_assets.cli prepare`.
RUN CHURN_HOME=/tmp/churn /app/.venv/bin/python -m churn_assets.cli prepare

# ---------------------------------------------------------------------------------------------
# runtime: what both images share, non-root; /app is read-only except dbt's artefact folder
# ---------------------------------------------------------------------------------------------
FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
RUN groupadd --system --gid 10001 churn \
    && useradd --system --uid 10001 --gid churn --home-dir /data --no-create-home churn \
    && mkdir -p /data && chown churn:churn /data
COPY --from=build --chown=root:root /app /app
RUN chown -R churn:churn /app/dbt
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    MLFLOW_DISABLE_TELEMETRY=true \
    CHURN_HOME=/data \
    CHURN_RAW_DIR=/app/data/raw
WORKDIR /app
USER churn

# ---------------------------------------------------------------------------------------------
# platform: plus the PostgreSQL drivers of the Dagster instance and the MLflow server. They are
# not in uv.lock yet; pinned here until the lock gains a `deploy` extra, then this step becomes
# `uv sync --frozen --no-dev --extra deploy` in the build stage.
# ---------------------------------------------------------------------------------------------
FROM runtime AS platform
USER root
ARG POSTGRES_DRIVERS="dagster-postgres==0.29.27 psycopg2-binary==2.9.10"
RUN --mount=from=uv,source=/uv,target=/usr/local/bin/uv \
    uv pip install --no-cache --python /app/.venv/bin/python ${POSTGRES_DRIVERS}
ENV DAGSTER_HOME=/opt/dagster/home
RUN mkdir -p "$DAGSTER_HOME" && chown churn:churn "$DAGSTER_HOME"
USER churn
EXPOSE 3000 5000
# Webserver, daemon and MLflow server each declare their own check in compose.yaml.
CMD ["dagster-webserver", "-w", "workspace.yaml", "-h", "0.0.0.0", "-p", "3000"]

# ---------------------------------------------------------------------------------------------
# serving (the default target, last): the scoring API, healthy only when every champion is
# loaded and warm and Redis answers
# ---------------------------------------------------------------------------------------------
FROM runtime AS serving
ENV CHURN_SERVING_HOST=0.0.0.0 \
    CHURN_SERVING_PORT=8000
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request as u; u.urlopen('http://127.0.0.1:' + os.environ.get('CHURN_SERVING_PORT', '8000') + '/health/ready', timeout=2)"]
CMD ["python", "-m", "churn_assets.serving"]
