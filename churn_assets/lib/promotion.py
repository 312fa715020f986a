"""The champion/challenger gate as a pure function, so every rule is unit-testable.

A new model version always becomes ``challenger``. It becomes ``champion`` only if it passes
the sanity checks and, when a champion exists, beats it on the *same* evaluation rows by at
least ``margin`` ROC-AUC. The first model passing the sanity checks is promoted directly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class PromotionDecision:
    promote: bool
    checks: tuple[Check, ...]

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {'ok' if c.passed else 'FAILED'} ({c.detail})" for c in self.checks]

    def markdown(self) -> str:
        lines = ["| check | result | detail |", "|---|---|---|"]
        lines += [
            f"| {c.name} | {'✅ pass' if c.passed else '❌ fail'} | {c.detail} |"
            for c in self.checks
        ]
        verdict = "**promote to champion**" if self.promote else "**stay challenger**"
        return f"Decision: {verdict}\n\n" + "\n".join(lines)


def decide_promotion(
    *,
    challenger_predictions: np.ndarray,
    challenger_auc: float,
    challenger_ece: float,
    challenger_features: list[str],
    expected_features: list[str],
    champion_auc: float | None,
    margin: float,
    max_calibration_error: float,
    no_champion_reason: str = "no champion yet: first model",
) -> PromotionDecision:
    """Apply the sanity checks, then the comparison against the champion (if any).

    ``champion_auc`` must come from scoring the champion on the challenger's evaluation rows;
    ``None`` when there is no comparable champion (why: ``no_champion_reason``), in which
    case a sane challenger is promoted.
    """
    n_nan = int(np.isnan(np.asarray(challenger_predictions, dtype=float)).sum())
    checks = [
        Check("no_nan_predictions", n_nan == 0, f"{n_nan} NaN predictions"),
        Check(
            "calibration_error",
            challenger_ece <= max_calibration_error,
            f"ECE {challenger_ece:.4f} (max {max_calibration_error})",
        ),
        Check(
            "feature_list",
            list(challenger_features) == list(expected_features),
            "matches the TrainingSet"
            if list(challenger_features) == list(expected_features)
            else f"model {sorted(set(challenger_features) ^ set(expected_features))} differ",
        ),
    ]
    if champion_auc is None:
        checks.append(Check("beats_champion", True, no_champion_reason))
    else:
        gain = challenger_auc - champion_auc
        checks.append(
            Check(
                "beats_champion",
                gain >= margin,
                f"AUC {challenger_auc:.4f} vs champion {champion_auc:.4f} "
                f"(gain {gain:+.4f}, margin {margin})",
            )
        )
    return PromotionDecision(promote=all(c.passed for c in checks), checks=tuple(checks))
