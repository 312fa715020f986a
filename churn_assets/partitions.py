"""Time is the axis: one partition per observation month (the first day of the month)."""

from __future__ import annotations

import dagster as dg

from churn_assets.lib.months import month_after
from churn_assets.settings import get_settings

_settings = get_settings()

observation_months = dg.MonthlyPartitionsDefinition(
    start_date=_settings.observation_start.isoformat(),
    end_date=month_after(_settings.observation_end).isoformat(),
    fmt="%Y-%m-%d",
)
