"""The business layer: from churn scores to decisions, money and an executive report.

Pure logic (no Dagster); the ``business`` assets call it once per dataset and observation date.

Flow of one observation date T::

    events / snapshot ──► value.py ──────────────┐  expected revenue per customer
    scores (+ labels) ──► cohorts.py ◄───────────┘  tier, main reason family, cohort map
                          playbook.py               best action per scenario (low/mid/high)
                          campaign.py               budgeted selection, sha256 holdout, SRM
                          experiment.py             power, MDE, verdict
                          (planning.py wires the four above: plan_month)
    matured months ────► backtest.py               reach vs random targeting, ROI range
    all months ────────► kpis.py                   KPI trend, KPI_DEFINITIONS
                          reasons.py                drivers in words
                          report.py                 HTML (+ PDF) and the headline figures

Modules: clv.py (BG/NBD and Gamma-Gamma maths), value.py (per-customer value for events and
snapshot datasets), value_check.py (out-of-time check of the events value model).
"""
