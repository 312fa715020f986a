"""Time is the axis: one partition per observation month (the first day of the month)."""

from __future__ import annotations

from datetime import date

import dagster as dg

from churn_assets.settings import get_settings


def _month_after(day: date) -> date:
    return date(day.year + day.month // 12, day.month % 12 + 1, 1)


_settings = get_settings()

observation_months = dg.MonthlyPartitionsDefinition(
    start_date=_settings.observation_start.isoformat(),
    end_date=_month_after(_settings.observation_end).isoformat(),
    fmt="%Y-%m-%d",
)
