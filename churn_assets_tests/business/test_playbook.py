"""Playbooks: the shipped files validate, every mistake is named precisely, and the decision
rule is exactly the documented formula."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import yaml  # type: ignore[import-untyped]

from churn_assets.lib.business.playbook import (
    NO_ACTION,
    SCENARIOS,
    PlaybookError,
    load_playbook,
    parse_playbook,
    playbook_path,
    recommend_actions,
)
from churn_assets_tests.business.fixtures import PLAYBOOK_DATA

VALID = PLAYBOOK_DATA


@pytest.mark.parametrize("dataset", ["retail", "telco"])
def test_shipped_playbooks_are_valid(dataset):
    playbook = load_playbook(playbook_path(dataset), dataset)
    assert playbook.dataset == dataset
    assert playbook.version and playbook.owner and playbook.actions
    assert 0 < playbook.margin_rate <= 1
    assert playbook.campaign.budget > 0
    assert playbook.table().height == len(playbook.actions)


def _errors(data: Any, dataset: str | None = None) -> list[str]:
    with pytest.raises(PlaybookError) as caught:
        parse_playbook(data, "defs/datasets/shop/playbook.yaml", dataset)
    return caught.value.errors


def _edit(path: tuple[Any, ...], value: Any = None, delete: bool = False) -> dict[str, Any]:
    data = copy.deepcopy(VALID)
    target: Any = data
    for key in path[:-1]:
        target = target[key]
    if delete:
        del target[path[-1]]
    else:
        target[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "delete", "expected"),
    [
        (
            ("actions", 0, "uplift", "mid"),
            1.5,
            False,
            "action 'voucher': field 'uplift.mid': must be between 0 and 1 (got 1.5)",
        ),
        (
            ("actions", 0, "acceptance", "low"),
            0.5,
            False,
            "action 'voucher': field 'acceptance': must satisfy low <= mid <= high",
        ),
        (
            ("actions", 1, "cost_per_contact"),
            None,
            True,
            "action 'call': field 'cost_per_contact': is required",
        ),
        (
            ("actions", 1, "offer_cost"),
            "ten",
            False,
            "action 'call': field 'offer_cost': must be a number (got 'ten')",
        ),
        (
            ("actions", 0, "families"),
            ["recency", "vibes"],
            False,
            "action 'voucher': field 'families': unknown family 'vibes'",
        ),
        (
            ("actions", 0, "uplift", "middle"),
            0.1,
            False,
            "action 'voucher': field 'uplift.middle': unknown field",
        ),
        (("actions", 1, "costs"), 3, False, "action 'call': field 'costs': unknown field"),
        (("actions", 1, "name"), "voucher", False, "action 'voucher': field 'name': is used by"),
        (("margin_rate",), 0, False, "top level: field 'margin_rate': must be > 0"),
        (("owner",), None, True, "top level: field 'owner': is required"),
        (("campaign", "control_share"), 0.9, False, "campaign: field 'control_share': must be"),
        (("actions",), [], False, "top level: field 'actions': must be a non-empty list"),
    ],
)
def test_loader_names_file_action_and_field(path, value, delete, expected):
    errors = _errors(_edit(path, value, delete))
    assert any(
        e.startswith("defs/datasets/shop/playbook.yaml: ") and expected in e for e in errors
    ), errors


def test_loader_reports_every_problem_at_once_and_checks_the_dataset(tmp_path: Path):
    data = _edit(("actions", 0, "uplift", "mid"), -1)
    data["actions"][1]["offer_cost"] = -5
    errors = _errors(data, dataset="other")
    assert len(errors) == 3
    assert any("is 'shop' but the file belongs to dataset 'other'" in e for e in errors)

    path = tmp_path / "playbook.yaml"
    path.write_text("dataset: [unclosed")
    with pytest.raises(PlaybookError, match=rf"{path}: not valid YAML"):
        load_playbook(path)
    with pytest.raises(PlaybookError, match="file not found"):
        load_playbook(tmp_path / "missing.yaml")
    path.write_text(yaml.safe_dump(VALID))
    assert load_playbook(path).campaign.control_share == 0.2


def _customers() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d", "e"],
            "churn_probability": [0.5, 0.5, 0.9, 0.01, 0.6],
            "value": [1000.0, 1000.0, 50.0, 1000.0, 400.0],
            "reason_family": ["recency", "returns", "frequency", "recency", "season"],
        }
    )


def test_decision_is_the_documented_formula():
    playbook = parse_playbook(VALID, "test")
    out = recommend_actions(_customers(), playbook)
    p, v, m = 0.5, 1000.0, 0.5
    for s in SCENARIOS:
        voucher = p * playbook.action("voucher").uplift[s] * v * m - (
            1.0 + playbook.action("voucher").acceptance[s] * 10.0
        )
        call = p * playbook.action("call").uplift[s] * v * m - 5.0
        a = out.row(0, named=True)
        assert a[f"net_value_{s}"] == pytest.approx(max(voucher, call))
        assert a[f"action_{s}"] == ("voucher" if voucher >= call else "call")
    a, b, c, d, e = out.iter_rows(named=True)
    # a: mid voucher 25 - 3 = 22 < call 37.5 - 5 = 32.5
    assert (a["action_mid"], a["net_value_mid"]) == ("call", pytest.approx(32.5))
    # b (returns): only the call is eligible
    assert b["action_low"] == b["action_mid"] == b["action_high"] == "call"
    # c: 0.9 × 0.10 × 50 × 0.5 - 3 = -0.75 → nothing pays off at mid
    assert (c["action_mid"], c["net_value_mid"]) == (NO_ACTION, 0.0)
    # high: 0.9 × 0.2 × 50 × 0.5 - (1 + 0.3 × 10) = 0.5 > 0
    assert c["action_high"] == "voucher" and c["net_value_high"] == pytest.approx(0.5)
    # d: tiny risk, e: no action covers "season"
    assert d["action_mid"] == NO_ACTION and e["action_mid"] == NO_ACTION
    assert e["committed_cost"] == 0.0 and e["plan_net_value_high"] == 0.0


def test_plan_columns_evaluate_the_mid_action_under_every_scenario():
    playbook = parse_playbook(VALID, "test")
    out = recommend_actions(_customers(), playbook)
    np.testing.assert_allclose(out["plan_net_value_mid"], out["net_value_mid"])
    a = out.row(0, named=True)  # mid action: call (contact 5, no offer)
    assert a["committed_cost"] == 5.0
    assert a["expected_cost_high"] == 5.0
    assert a["expected_saved_revenue_low"] == pytest.approx(0.5 * 0.10 * 1000)
    assert a["plan_net_value_high"] == pytest.approx(0.5 * 0.30 * 1000 * 0.5 - 5.0)
    # The plan's low figure is never above its high one.
    assert (out["plan_net_value_low"] <= out["plan_net_value_high"]).all()
