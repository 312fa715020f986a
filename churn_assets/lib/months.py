"""Calendar-month arithmetic on observation dates, which are always the first of a month."""

from __future__ import annotations

from datetime import date


def shift_months(day: date, months: int) -> date:
    """The first day of the month ``months`` after (or, negative, before) ``day``'s month."""
    index = day.year * 12 + day.month - 1 + months
    return date(index // 12, index % 12 + 1, 1)


def month_after(day: date) -> date:
    return shift_months(day, 1)


def months_between(earlier: date, later: date) -> int:
    """Whole calendar months from ``earlier``'s month to ``later``'s (negative if reversed)."""
    return (later.year - earlier.year) * 12 + later.month - earlier.month
