"""Retention playbooks: which action answers which churn reason, what it costs, what it may achieve.

A playbook is a human-edited YAML file per dataset (``defs/datasets/<ds>/playbook.yaml``), owned
by the business, versioned (bump ``version`` on every edit: the campaign id includes it, so a
new version is a new campaign with its own holdout). The loader validates the whole file and
reports *every* problem as "<file>: action '<name>': field '<field>': <problem>", so a typo is
fixed in one round trip instead of failing at campaign time.

Decision rule, per customer and scenario s in (low, mid, high), over the actions whose
``families`` contain the customer's main reason family:

    net_s(action) = p × uplift_s × value × margin
                    - (cost_per_contact + acceptance_s × offer_cost)

* p: predicted churn probability; value: expected revenue over the value horizon (before
  margin); margin: the playbook's ``margin_rate`` (gross margin on revenue).
* uplift_s: the share of would-be churners the action retains (relative risk reduction), so
  p × uplift_s is the absolute drop in churn probability.
* Every contacted customer costs ``cost_per_contact``; the offer is only paid when accepted
  (probability ``acceptance_s``), the realistic convention for vouchers and discounts.

The action with the highest net_s is chosen (ties: the first in file order); when no action has
a strictly positive net value the customer gets "no action". The mid-scenario action is the one a
campaign executes; the ``plan_*`` columns evaluate that same action under the low and high
assumptions, which is the range a budget holder should read.

All acceptance and uplift figures are assumptions until an experiment measures them: nothing
here is estimated from observational data.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import yaml  # type: ignore[import-untyped]

from churn_assets.lib.business.cohorts import NO_REASON, REASON_FAMILIES
from churn_assets.settings import PACKAGE_DIR

SCENARIOS = ("low", "mid", "high")
NO_ACTION = "no action"
PLAYBOOK_FILE = "playbook.yaml"
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_TOP_FIELDS = {
    "dataset",
    "version",
    "owner",
    "currency",
    "margin_rate",
    "campaign",
    "value",
    "actions",
}
_ACTION_FIELDS = {
    "name",
    "description",
    "families",
    "channel",
    "cost_per_contact",
    "offer_cost",
    "acceptance",
    "uplift",
}


class PlaybookError(ValueError):
    """Every validation problem of one playbook file, one per line."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__("\n".join(errors))


@dataclass(frozen=True)
class ScenarioRange:
    """A low / mid / high assumption (probabilities in [0, 1], low <= mid <= high)."""

    low: float
    mid: float
    high: float

    def __getitem__(self, scenario: str) -> float:
        return float(getattr(self, scenario))


@dataclass(frozen=True)
class Action:
    name: str
    description: str
    families: tuple[str, ...]
    cost_per_contact: float
    offer_cost: float
    acceptance: ScenarioRange
    uplift: ScenarioRange
    channel: str = ""

    def expected_cost(self, scenario: str) -> float:
        """cost_per_contact + acceptance_s × offer_cost (the offer is paid on acceptance)."""
        return self.cost_per_contact + self.acceptance[scenario] * self.offer_cost

    @property
    def committed_cost(self) -> float:
        """The most one contact can cost: the offer accepted for sure."""
        return self.cost_per_contact + self.offer_cost


@dataclass(frozen=True)
class CampaignDefaults:
    """Campaign knobs the playbook owner sets next to the assumptions they belong with."""

    budget: float = 0.0
    control_share: float = 0.10
    srm_p_threshold: float = 0.001
    alpha: float = 0.05
    power: float = 0.80
    readout_days: float = 0.0
    """Days after the campaign its effect on churn can be read; 0 = the dataset's label
    horizon (an events dataset's labels say exactly that)."""


@dataclass(frozen=True)
class ValueSettings:
    """How the business values a customer, next to the margin it is multiplied by.

    ``horizon_months``: how far ahead value counts (events: expected purchase revenue over
    that many months; snapshot: charge × expected remaining months within it).
    ``annual_discount_rate`` discounts future purchases (events). A snapshot dataset names the
    columns of its feature table holding the monthly charge, the tenure in months and the
    group a churn hazard is fitted per (e.g. the contract type).
    """

    horizon_months: float = 12.0
    annual_discount_rate: float = 0.0
    charge_column: str = ""
    tenure_column: str = ""
    group_column: str = ""

    @property
    def horizon_days(self) -> int:
        return round(self.horizon_months * 365 / 12)


@dataclass(frozen=True)
class Playbook:
    dataset: str
    version: str
    owner: str
    currency: str
    margin_rate: float
    actions: tuple[Action, ...]
    campaign: CampaignDefaults = field(default_factory=CampaignDefaults)
    value: ValueSettings = field(default_factory=ValueSettings)
    source: str = ""

    def action(self, name: str) -> Action:
        for action in self.actions:
            if action.name == name:
                return action
        raise KeyError(f"{self.source}: no action named {name!r}")

    def table(self) -> pl.DataFrame:
        """The assumptions as one row per action (the report's playbook table)."""
        return pl.DataFrame(
            [
                {
                    "action": a.name,
                    "families": ", ".join(a.families),
                    "channel": a.channel,
                    "cost_per_contact": a.cost_per_contact,
                    "offer_cost": a.offer_cost,
                    **{f"acceptance_{s}": a.acceptance[s] for s in SCENARIOS},
                    **{f"uplift_{s}": a.uplift[s] for s in SCENARIOS},
                    "description": a.description,
                }
                for a in self.actions
            ]
        )


def playbook_path(dataset: str) -> Path:
    """Where a dataset's playbook lives, next to its declaration."""
    return PACKAGE_DIR / "defs" / "datasets" / dataset / PLAYBOOK_FILE


class _Checker:
    """Collects errors with their location instead of stopping at the first one."""

    def __init__(self, source: str):
        self.source = source
        self.errors: list[str] = []

    def fail(self, where: str, field_name: str, problem: str) -> None:
        self.errors.append(f"{self.source}: {where}: field '{field_name}': {problem}")

    def number(
        self,
        where: str,
        data: Mapping[str, Any],
        key: str,
        low: float,
        high: float | None,
        label: str | None = None,
    ) -> float:
        label = label or key
        if key not in data:
            self.fail(where, label, "is required")
            return float("nan")
        value = data[key]
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(where, label, f"must be a number (got {value!r})")
            return float("nan")
        if not np.isfinite(value) or value < low or (high is not None and value > high):
            bound = f"between {low:g} and {high:g}" if high is not None else f">= {low:g}"
            self.fail(where, label, f"must be {bound} (got {value!r})")
        return float(value)

    def text(self, where: str, data: Mapping[str, Any], key: str, required: bool = True) -> str:
        value = data.get(key)
        if value is None:
            if required:
                self.fail(where, key, "is required")
            return ""
        if not isinstance(value, str | int | float) or isinstance(value, bool) or str(value) == "":
            self.fail(where, key, f"must be a non-empty string (got {value!r})")
            return ""
        return str(value)

    def unknown(self, where: str, data: Mapping[str, Any], allowed: set[str]) -> None:
        for key in sorted(set(data) - allowed):
            self.fail(where, key, f"unknown field (allowed: {', '.join(sorted(allowed))})")

    def scenario_range(self, where: str, data: Mapping[str, Any], key: str) -> ScenarioRange:
        value = data.get(key)
        if not isinstance(value, Mapping):
            self.fail(where, key, f"must be a mapping with low, mid, high (got {value!r})")
            return ScenarioRange(float("nan"), float("nan"), float("nan"))
        for extra in sorted(set(value) - set(SCENARIOS)):
            self.fail(where, f"{key}.{extra}", "unknown field (allowed: low, mid, high)")
        numbers = [self.number(where, value, s, 0.0, 1.0, f"{key}.{s}") for s in SCENARIOS]
        valid = all(np.isfinite(n) and 0.0 <= n <= 1.0 for n in numbers)
        if valid and not numbers[0] <= numbers[1] <= numbers[2]:
            self.fail(where, key, f"must satisfy low <= mid <= high (got {numbers})")
        return ScenarioRange(*numbers)


def parse_playbook(data: Any, source: str, dataset: str | None = None) -> Playbook:
    """Validate the parsed YAML of one playbook; raise :class:`PlaybookError` listing all
    problems. ``dataset``, when given, must equal the file's ``dataset``."""
    check = _Checker(source)
    if not isinstance(data, Mapping):
        raise PlaybookError([f"{source}: top level: must be a mapping (got {type(data).__name__})"])
    top = "top level"
    check.unknown(top, data, _TOP_FIELDS)
    name = check.text(top, data, "dataset")
    if name and not _NAME.match(name):
        check.fail(top, "dataset", f"must match {_NAME.pattern} (got {name!r})")
    if dataset is not None and name and name != dataset:
        check.fail(top, "dataset", f"is {name!r} but the file belongs to dataset {dataset!r}")
    version = check.text(top, data, "version")
    owner = check.text(top, data, "owner")
    currency = check.text(top, data, "currency")
    margin = check.number(top, data, "margin_rate", 0.0, 1.0)
    if np.isfinite(margin) and margin == 0:
        check.fail(top, "margin_rate", "must be > 0 (no margin: no action can pay off)")
    campaign = _parse_campaign(check, data.get("campaign", {}))
    value_settings = _parse_value(check, data.get("value", {}))
    actions = _parse_actions(check, data.get("actions"))
    if check.errors:
        raise PlaybookError(check.errors)
    return Playbook(
        dataset=name,
        version=version,
        owner=owner,
        currency=currency,
        margin_rate=margin,
        actions=tuple(actions),
        campaign=campaign,
        value=value_settings,
        source=source,
    )


def _parse_campaign(check: _Checker, data: Any) -> CampaignDefaults:
    where = "campaign"
    if not isinstance(data, Mapping):
        check.fail(where, "campaign", f"must be a mapping (got {data!r})")
        return CampaignDefaults()
    defaults = asdict(CampaignDefaults())
    check.unknown(where, data, set(defaults))
    bounds = {
        "budget": (0.0, None),
        "control_share": (0.0, 0.5),
        "srm_p_threshold": (0.0, 1.0),
        "alpha": (0.0, 1.0),
        "power": (0.0, 1.0),
        "readout_days": (0.0, 3650.0),
    }
    values = {
        key: check.number(where, data, key, *bounds[key]) if key in data else default
        for key, default in defaults.items()
    }
    for key in ("control_share", "alpha", "power", "srm_p_threshold"):
        if key in data and values[key] in (0.0, 1.0):
            check.fail(where, key, f"must be strictly inside its range (got {values[key]})")
    return CampaignDefaults(**values)


def _parse_value(check: _Checker, data: Any) -> ValueSettings:
    where = "value"
    if not isinstance(data, Mapping):
        check.fail(where, "value", f"must be a mapping (got {data!r})")
        return ValueSettings()
    check.unknown(where, data, {f.name for f in fields(ValueSettings)})
    defaults = ValueSettings()
    return ValueSettings(
        horizon_months=check.number(where, data, "horizon_months", 1.0, 120.0)
        if "horizon_months" in data
        else defaults.horizon_months,
        annual_discount_rate=check.number(where, data, "annual_discount_rate", 0.0, 1.0)
        if "annual_discount_rate" in data
        else defaults.annual_discount_rate,
        **{
            key: check.text(where, data, key, required=False)
            for key in ("charge_column", "tenure_column", "group_column")
        },
    )


def _parse_actions(check: _Checker, data: Any) -> list[Action]:
    if not isinstance(data, list) or not data:
        check.fail("top level", "actions", "must be a non-empty list of actions")
        return []
    actions: list[Action] = []
    seen: set[str] = set()
    allowed_families = (*REASON_FAMILIES, NO_REASON)
    for index, item in enumerate(data):
        if not isinstance(item, Mapping):
            check.fail(f"action #{index + 1}", "action", f"must be a mapping (got {item!r})")
            continue
        name = check.text(f"action #{index + 1}", item, "name")
        where = f"action '{name}'" if name else f"action #{index + 1}"
        if name and not _NAME.match(name):
            check.fail(where, "name", f"must match {_NAME.pattern}")
        if name in seen:
            check.fail(where, "name", "is used by another action")
        seen.add(name)
        check.unknown(where, item, _ACTION_FIELDS)
        families = item.get("families")
        if not isinstance(families, list) or not families:
            check.fail(where, "families", "must be a non-empty list of reason families")
            families = []
        for family in families:
            if family not in allowed_families:
                check.fail(
                    where, "families", f"unknown family {family!r} (known: {allowed_families})"
                )
        actions.append(
            Action(
                name=name,
                description=check.text(where, item, "description"),
                families=tuple(str(f) for f in families),
                cost_per_contact=check.number(where, item, "cost_per_contact", 0.0, None),
                offer_cost=check.number(where, item, "offer_cost", 0.0, None),
                acceptance=check.scenario_range(where, item, "acceptance"),
                uplift=check.scenario_range(where, item, "uplift"),
                channel=check.text(where, item, "channel", required=False),
            )
        )
    return actions


def load_playbook(path: Path | str, dataset: str | None = None) -> Playbook:
    """Read and validate a playbook file (see :func:`parse_playbook`)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError as error:
        raise PlaybookError([f"{path}: file not found"]) from error
    except yaml.YAMLError as error:
        raise PlaybookError([f"{path}: not valid YAML: {error}"]) from error
    return parse_playbook(data, str(path), dataset)


def net_value(
    action: Action, scenario: str, p: np.ndarray, value: np.ndarray, margin_rate: float
) -> np.ndarray:
    """p × uplift_s × value × margin - (cost_per_contact + acceptance_s × offer_cost)."""
    saved = p * action.uplift[scenario] * value * margin_rate
    return saved - action.expected_cost(scenario)


def recommend_actions(
    customers: pl.DataFrame, playbook: Playbook, margin_rate: float | None = None
) -> pl.DataFrame:
    """Add the chosen action per scenario and the mid action's plan figures to each customer.

    ``customers`` needs customer_id, churn_probability, value and reason_family (a
    :func:`~churn_assets.lib.business.cohorts.customer_table`). Added columns, for s in low,
    mid, high: ``action_s`` and ``net_value_s`` (best action under s, 0 for "no action");
    for the mid action (the one executed): ``committed_cost`` (contact + offer), and
    ``expected_cost_s``, ``expected_saved_revenue_s`` (p × uplift_s × value, before margin)
    and ``plan_net_value_s`` (that action's net value under s). All 0 for "no action".
    """
    margin = playbook.margin_rate if margin_rate is None else margin_rate
    p = customers["churn_probability"].to_numpy().astype(float)
    value = customers["value"].to_numpy().astype(float)
    family = np.asarray(customers["reason_family"].fill_null(NO_REASON).to_list(), dtype=object)
    names = np.asarray([NO_ACTION] + [a.name for a in playbook.actions], dtype=object)
    out: dict[str, Any] = {}
    mid_index = np.zeros(len(p), dtype=int)
    for scenario in SCENARIOS:
        nets = np.zeros((len(playbook.actions) + 1, len(p)))  # row 0: no action, worth 0
        for i, action in enumerate(playbook.actions, start=1):
            eligible = np.isin(family, action.families)
            nets[i] = np.where(eligible, net_value(action, scenario, p, value, margin), -np.inf)
        # argmax takes the first maximum: "no action" wins ties at 0, earlier actions win ties.
        best = np.argmax(nets, axis=0)
        out[f"action_{scenario}"] = names[best].tolist()
        out[f"net_value_{scenario}"] = nets[best, np.arange(len(p))]
        if scenario == "mid":
            mid_index = best
    actions = [None, *playbook.actions]
    chosen = [actions[i] for i in mid_index]
    out["committed_cost"] = np.array([a.committed_cost if a else 0.0 for a in chosen])
    for scenario in SCENARIOS:
        cost = np.array([a.expected_cost(scenario) if a else 0.0 for a in chosen])
        uplift = np.array([a.uplift[scenario] if a else 0.0 for a in chosen])
        saved = p * uplift * value
        out[f"expected_cost_{scenario}"] = cost
        out[f"expected_saved_revenue_{scenario}"] = saved
        out[f"plan_net_value_{scenario}"] = np.where(mid_index > 0, saved * margin - cost, 0.0)
    return customers.with_columns(
        **{
            k: pl.Series(k, v, dtype=pl.String if k.startswith("action_") else pl.Float64)
            for k, v in out.items()
        }
    )
