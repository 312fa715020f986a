"""Static checks of the deployment assets (no container engine needed).

Compose files are only read by Docker at deploy time, so a typo in a service name, a
variable or a build target would surface in production; these tests resolve every reference
the way ``docker compose config`` would, and keep docs/deploy.md in step with the settings the
service actually reads.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from churn_assets.settings import REPO_ROOT

pytestmark = pytest.mark.xdist_group("serving")

COMPOSE = REPO_ROOT / "compose.yaml"
DOCKERFILE = REPO_ROOT / "Dockerfile"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
SERVING_CONFIG = REPO_ROOT / "churn_assets" / "serving" / "config.py"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
SAMPLE_ENV = {
    "POSTGRES_PASSWORD": "s3cret",
    "CHURN_SERVING_DATASETS": "retail,telco",
    "CHURN_API_KEYS": "a-key-of-sixteen-chars",
}
_VARIABLE = re.compile(r"\$\$|\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?:(?P<op>:-|:\?)(?P<arg>[^}]*))?\}")


class MissingVariable(KeyError):
    pass


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's interpolation: ``${X}``, ``${X:-default}``, ``${X:?error}``, ``$$``."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name, op, arg = match.group("name", "op", "arg")
        if env.get(name):
            return env[name]
        if op == ":?":
            raise MissingVariable(f"{name}: {arg}")
        return arg if op == ":-" else ""

    return _VARIABLE.sub(substitute, value)


def _compose(env: dict[str, str]) -> dict[str, Any]:
    return interpolate(yaml.safe_load(COMPOSE.read_text()), env)


def _stages() -> set[str]:
    return set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", DOCKERFILE.read_text(), re.MULTILINE))


def test_required_settings_fail_loudly_when_missing() -> None:
    for name in SAMPLE_ENV:
        env = {k: v for k, v in SAMPLE_ENV.items() if k != name}
        with pytest.raises(MissingVariable, match=name):
            _compose(env)


def test_every_reference_in_compose_resolves() -> None:
    compose = _compose(SAMPLE_ENV)
    services = compose["services"]
    assert {"postgres", "redis", "mlflow", "dagster-webserver", "dagster-daemon", "api"} <= set(
        services
    )
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for config in service.get("configs", []):
            assert config["source"] in compose["configs"], f"{name}: config {config}"
        for volume in service.get("volumes", []):
            assert volume.split(":")[0] in compose["volumes"], f"{name}: volume {volume}"
        if "build" in service:
            assert service["build"]["target"] in _stages(), f"{name}: build target"
        command = service.get("command")
        if isinstance(command, list) and service.get("build"):
            assert command[0] == "sh" or (VENV_BIN / command[0]).exists(), f"{name}: {command}"
    # The interpolated password reaches both the Dagster instance and the MLflow URI.
    platform_env = services["mlflow"]["environment"]
    assert platform_env["DAGSTER_PG_PASSWORD"] == "s3cret"
    assert platform_env["MLFLOW_BACKEND_STORE_URI"].endswith("s3cret@postgres:5432/mlflow")
    instance = yaml.safe_load(compose["configs"]["dagster-instance"]["content"])
    assert instance["storage"]["postgres"]["postgres_db"]["password"] == {
        "env": "DAGSTER_PG_PASSWORD"
    }
    api = services["api"]
    assert api["environment"]["CHURN_API_KEYS"] == SAMPLE_ENV["CHURN_API_KEYS"]
    assert api["environment"]["CHURN_REDIS_URL"] == "redis://redis:6379/0"


def test_dockerfile_builds_from_the_lock_and_runs_unprivileged() -> None:
    text = DOCKERFILE.read_text()
    assert {"build", "runtime", "serving", "platform"} <= _stages()
    assert len(re.findall(r"^\s+uv sync --frozen --no-dev\b", text, re.MULTILINE)) == 2
    assert text.rstrip().endswith('CMD ["python", "-m", "churn_assets.serving"]')  # default
    for source in re.findall(r"^COPY (?!--from)(?:--\S+ )*(.+?) \./\S*$", text, re.MULTILINE):
        for path in source.split():
            assert (REPO_ROOT / path).exists(), f"COPY source {path} missing"
    runtime = text[text.index("AS runtime") : text.index("AS platform")]
    platform = text[text.index("AS platform") : text.index("AS serving")]
    serving = text[text.index("AS serving") :]
    assert "/health/ready" in serving
    assert 'CMD ["python", "-m", "churn_assets.serving"]' in serving
    for stage in (runtime, platform):  # serving inherits runtime's user
        assert re.findall(r"^USER (\S+)", stage, re.MULTILINE)[-1] == "churn"
    assert "USER" not in serving


def test_every_setting_of_the_service_is_documented() -> None:
    names = set(re.findall(r'"(CHURN_[A-Z_]+)"', SERVING_CONFIG.read_text()))
    assert len(names) >= 15
    documented = DEPLOY_DOC.read_text()
    assert [n for n in sorted(names) if f"`{n}`" not in documented] == []
