"""Property-based pass over the published OpenAPI schema: no input makes the service 5xx.

Schemathesis generates valid (positive) and invalid (negative) requests for every operation
from ``/openapi.json``, with a valid key so the bodies reach the handlers. The number of
examples is bounded and the generation derandomized, so the pass is quick and repeatable.
"""

from __future__ import annotations

import json

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode

from churn_assets_tests.serving.conftest import DATASET, ServingEnv
from churn_assets_tests.serving.fixtures import API_KEY, LiveServer

pytestmark = pytest.mark.xdist_group("serving")

EXAMPLES_PER_OPERATION = 25
SCORE = f"/v1/{DATASET}/score"


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_no_generated_request_gets_a_server_error(
    service: LiveServer, mode: GenerationMode
) -> None:
    schema = schemathesis.openapi.from_url(f"{service.base_url}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {"/v1/{dataset}/score", "/v1/{dataset}/score/batch"}
    if mode is GenerationMode.NEGATIVE:  # only inputs can be invalid
        operations = [op for op in operations if len(op.query) or len(op.body) or "{" in op.path]
    for operation in operations:
        # Valid requests target the served dataset, so bodies are checked against its model.
        dataset = {"dataset": DATASET} if mode is GenerationMode.POSITIVE else None
        strategy = operation.as_strategy(
            mode,
            headers={"X-API-Key": API_KEY},
            path_parameters=dataset if "{dataset}" in operation.path else None,
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(base_url=service.base_url, timeout=30)
            assert response.status_code < 500, (
                f"{case.method} {case.formatted_path} -> {response.status_code}: "
                f"{response.text[:500]}"
            )

        no_server_error()


def test_inline_rows_of_any_json_values_never_fail(
    service: LiveServer, serving_env: ServingEnv
) -> None:
    """Schemathesis rarely builds a row with every model feature; this property does, with
    every JSON scalar (and NaN/Infinity tokens) as values, next to stored and unknown ids."""
    values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12))
    row = st.fixed_dictionaries(
        {"customer_id": st.text(min_size=1, max_size=8)}
        | {feature: values for feature in serving_env.training_set.features}
    )
    stored = serving_env.store_frame["customer_id"].head(50).to_list()
    ids = st.lists(st.sampled_from([*stored, "ghost"]), max_size=4)
    answered: list[int] = []

    @given(rows=st.lists(row, min_size=1, max_size=4), customer_ids=ids)
    @settings(max_examples=60, deadline=None, derandomize=True, database=None)
    def never_a_server_error(rows: list[dict], customer_ids: list[str]) -> None:
        with service.client() as client:
            body = json.dumps({"customer_ids": customer_ids, "rows": rows})  # NaN, Infinity too
            response = client.post(
                SCORE, content=body, headers={"Content-Type": "application/json"}
            )
        assert response.status_code in (200, 404, 422), response.text
        answered.append(response.status_code)
        if response.status_code == 200:
            results = response.json()["results"]
            assert len(results) == len(customer_ids) + len(rows)
            assert all(0 <= r["probability"] <= 1 and 1 <= r["risk_decile"] <= 10 for r in results)
            assert all(len(r["reasons"]) == 3 for r in results)

    never_a_server_error()
    assert answered.count(200) >= 5 and answered.count(422) >= 5
