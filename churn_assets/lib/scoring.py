"""Scoring rules shared by batch scores, the API and the stream: one definition each."""

from __future__ import annotations

import numpy as np


def decile_edges(reference_scores: np.ndarray) -> np.ndarray:
    """The 9 inner decile edges of the model's own scores on its training set.

    Risk deciles are read against the model's distribution, not re-ranked within each batch: a
    month in which more customers look risky has more of them in decile 10, which is the news,
    and one customer asked about alone (the API) gets the same decile as in the monthly batch.
    """
    return np.quantile(np.asarray(reference_scores, dtype=float), np.linspace(0.1, 0.9, 9))


def risk_deciles(probabilities: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """10 = the riskiest tenth of the reference, 1 = the safest (ties go to the lower decile)."""
    return np.searchsorted(edges, np.asarray(probabilities, dtype=float), side="left") + 1
