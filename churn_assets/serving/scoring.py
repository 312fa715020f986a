"""The scoring core: probabilities, risk deciles and signed reasons from a ChurnClassifier.

``ChurnClassifier.predict_proba`` goes through pandas and sklearn's ColumnTransformer, which
costs milliseconds per call even for one row. For the XGBoost pipeline the service instead
encodes rows with numpy (numerics pass through, one-hot columns set by a sorted-category
lookup) and calls the booster directly. That fast path is only used after it reproduced
``predict_proba`` exactly on the model's own training rows plus edge rows (all missing,
unseen categories); any other model, or a mismatch, uses the model's own methods.

Reasons are exact: for XGBoost the booster's TreeSHAP (``pred_contribs``) on the encoded
matrix, with one-hot columns summed back to their raw feature (the same numbers as
``shap.TreeExplainer``); large batches read the same numbers from per-tree tables of split
patterns (:class:`_SplitPatterns`), verified at load against ``pred_contribs``. Other models
explain themselves through ``model.contributions(x)``.

XGBoost runs on one thread per call here: requests are scored concurrently, and an OpenMP
team for a small matrix costs more than the work on a busy machine.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import xgboost as xgb
from sklearn.compose import ColumnTransformer
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder

from churn_assets.lib.modeling import MISSING_CATEGORY, ChurnClassifier
from churn_assets.lib.online_store import StoredRows
from churn_assets.lib.scoring import decile_edges, risk_deciles

log = logging.getLogger(__name__)

N_REASONS = 3
VERIFY_ROWS = 2000
CONTRIBUTION_TOLERANCE = 1e-5
"""Log-odds; float32 sums over a few hundred trees differ by about 1e-6 with the order."""
UNSEEN_CATEGORY = "\x00unseen"


class FeatureTypeError(ValueError):
    """A feature column cannot be read as the type the model needs (names the column)."""

    def __init__(self, column: str, expected: str) -> None:
        super().__init__(f"feature {column!r} must be {expected}")
        self.column = column


def _casts_to_float(series: pl.Series) -> bool:
    try:
        series.cast(pl.Float64)
    except pl.exceptions.PolarsError:
        return False
    return True


@dataclass(frozen=True)
class FeatureRows:
    """Raw feature rows typed like :func:`churn_assets.lib.modeling.feature_frame`.

    ``numeric`` is float64 with NaN for missing; ``categorical`` holds strings with
    ``MISSING_CATEGORY`` for missing. Columns follow the model's ``features`` order.
    """

    numeric: np.ndarray
    categorical: np.ndarray

    def __len__(self) -> int:
        return int(self.numeric.shape[0])

    @classmethod
    def from_frame(
        cls, frame: pl.DataFrame, numeric: Sequence[str], categorical: Sequence[str]
    ) -> FeatureRows:
        """Cast like ``feature_frame`` (numbers → Float64, others → String), without pandas."""
        try:
            numeric_values = frame[list(numeric)].cast(pl.Float64).to_numpy()
        except pl.exceptions.PolarsError as exc:
            failing = next(n for n in numeric if not _casts_to_float(frame[n]))
            raise FeatureTypeError(failing, "numeric") from exc
        categorical_values = frame[list(categorical)].cast(pl.String).to_numpy().astype(object)
        categorical_values[categorical_values == None] = MISSING_CATEGORY  # noqa: E711
        return cls(
            numeric=numeric_values.reshape(len(frame), len(numeric)).astype(np.float64),
            categorical=categorical_values.reshape(len(frame), len(categorical)),
        )

    @classmethod
    def from_stored(
        cls, stored: StoredRows, numeric: Sequence[str], categorical: Sequence[str]
    ) -> FeatureRows:
        """Straight from the online store's packed rows: the per-request hot path, without
        building a frame. Raises ``FeatureMismatch`` if the snapshot cannot feed the model."""
        texts = stored.texts(categorical)
        texts[texts == None] = MISSING_CATEGORY  # noqa: E711
        return cls(numeric=stored.numbers(numeric), categorical=texts)

    @classmethod
    def concat(cls, parts: Sequence[FeatureRows]) -> FeatureRows:
        return cls(
            numeric=np.concatenate([p.numeric for p in parts]),
            categorical=np.concatenate([p.categorical for p in parts]),
        )

    def slice(self, start: int, stop: int) -> FeatureRows:
        return FeatureRows(self.numeric[start:stop], self.categorical[start:stop])

    def to_pandas(self, numeric: Sequence[str], categorical: Sequence[str]) -> pd.DataFrame:
        """Exactly the frame ``feature_frame`` builds (the input of the model's own methods)."""
        columns: dict[str, Any] = {name: self.numeric[:, j] for j, name in enumerate(numeric)}
        columns.update({name: self.categorical[:, j] for j, name in enumerate(categorical)})
        return pd.DataFrame(columns)

    def value(self, row: int, feature: int) -> float | str | None:
        """One raw value for a reason: ``None`` where the model saw a missing value, and
        infinities as text (strict JSON has no number for them)."""
        n_numeric = self.numeric.shape[1]
        if feature < n_numeric:
            number = float(self.numeric[row, feature])
            if np.isnan(number):
                return None
            return number if np.isfinite(number) else str(number)
        text = str(self.categorical[row, feature - n_numeric])
        return None if text == MISSING_CATEGORY else text

    def texts(self, features: np.ndarray) -> np.ndarray:
        """Per row, the raw value of feature ``features[row]`` as text (None where missing)."""
        n_numeric = self.numeric.shape[1]
        rows = np.arange(len(self))
        out = np.full(len(self), None, dtype=object)
        is_number = features < n_numeric
        if is_number.any():
            numbers = self.numeric[rows[is_number], features[is_number]]
            out[is_number] = pl.Series(numbers).fill_nan(None).cast(pl.String).to_numpy()
        if not is_number.all():
            labels = self.categorical[rows[~is_number], features[~is_number] - n_numeric]
            out[~is_number] = np.where(labels == MISSING_CATEGORY, None, labels)
        return out


@dataclass(frozen=True)
class Scores:
    """Per row: calibrated churn probability, risk decile (10 = riskiest) and, if asked,
    signed log-odds contributions of every raw feature (positive raises churn risk)."""

    probability: np.ndarray
    decile: np.ndarray
    contributions: np.ndarray | None

    def top_reasons(self, k: int = N_REASONS) -> np.ndarray:
        """Indices of the ``k`` features with the largest |contribution|, largest first."""
        if self.contributions is None:
            raise ValueError("these scores were computed without reasons")
        order = np.argsort(-np.abs(self.contributions), axis=1, kind="stable")
        return order[:, :k]


def _finite32(encoded: np.ndarray) -> np.ndarray:
    """float32 as the booster sees it, with infinities at the largest finite float32."""
    limit = np.finfo(np.float32).max
    return np.clip(encoded.astype(np.float32), -limit, limit)


class _BoosterPath:
    """numpy one-hot encoding plus direct booster calls for the XGBoost ChurnClassifier."""

    def __init__(self, model: ChurnClassifier, features: ColumnTransformer, booster: Any) -> None:
        encoder: OneHotEncoder = features.named_transformers_["cat"]
        self.model = model
        self.classifier = booster
        self.booster: xgb.Booster = booster.get_booster()
        # One thread per call: requests are scored concurrently, and on a busy machine an
        # OpenMP team for a one-row matrix costs more than the work (0.05 ms -> 0.9 ms).
        self.booster.set_param({"nthread": 1})
        self.n_numeric = len(model.numeric_features)
        self.lookups: list[tuple[np.ndarray, np.ndarray]] = []
        group_starts = list(range(self.n_numeric))
        offset = self.n_numeric
        for categories in getattr(encoder, "categories_", []):
            names = np.asarray(categories).astype(str)
            order = np.argsort(names, kind="stable")
            self.lookups.append((names[order], offset + order))
            group_starts.append(offset)
            offset += len(names)
        self.n_encoded = offset
        self.group_starts = np.asarray(group_starts)
        try:
            self.iteration_range = (0, int(booster.best_iteration) + 1)
        except AttributeError:  # no early stopping in the final fit: every tree
            self.iteration_range = (0, 0)
        self.patterns: _SplitPatterns | None = None

    @staticmethod
    def supports(model: ChurnClassifier) -> bool:
        """Only the exact pipeline shape of ``modeling.xgboost_pipeline`` is re-implemented."""
        steps = model.pipeline.named_steps
        features, booster = steps.get("features"), steps.get("model")
        if len(steps) != 2 or not isinstance(features, ColumnTransformer):
            return False
        if not isinstance(booster, xgb.XGBClassifier) or booster.objective != "binary:logistic":
            return False
        transformers = [t for t in features.transformers_ if t[0] != "remainder" or t[1] != "drop"]
        if [t[0] for t in transformers] != ["num", "cat"]:
            return False
        (_, numeric, numeric_columns), (_, encoder, categorical_columns) = transformers
        # A fitted ColumnTransformer stores "passthrough" as an identity FunctionTransformer.
        identity = numeric == "passthrough" or (
            isinstance(numeric, FunctionTransformer) and numeric.func is None
        )
        return (
            identity
            and list(numeric_columns) == list(model.numeric_features)
            and list(categorical_columns) == list(model.categorical_features)
            and isinstance(encoder, OneHotEncoder)
            and encoder.drop is None
            and encoder.handle_unknown == "ignore"
            and not getattr(encoder, "_infrequent_enabled", False)
        )

    def encode(self, rows: FeatureRows) -> np.ndarray:
        encoded = np.zeros((len(rows), self.n_encoded))
        encoded[:, : self.n_numeric] = rows.numeric
        for j, (sorted_names, columns) in enumerate(self.lookups):
            values = rows.categorical[:, j].astype(str)
            position = np.minimum(np.searchsorted(sorted_names, values), len(sorted_names) - 1)
            known = np.flatnonzero(sorted_names[position] == values)
            encoded[known, columns[position[known]]] = 1.0
        return encoded

    def raw_scores(self, encoded: np.ndarray) -> np.ndarray:
        """``XGBClassifier.predict_proba(encoded)[:, 1]`` without the wrapper's checks."""
        return self.booster.inplace_predict(
            encoded,
            iteration_range=self.iteration_range,
            missing=self.classifier.missing,
            validate_features=False,
        )

    def contributions(self, encoded: np.ndarray, *, by_pattern: bool = True) -> np.ndarray:
        """TreeSHAP of the booster, summed per raw feature.

        The booster compares in float32. A DMatrix refuses infinities (and float64 values
        beyond float32's range, which become infinities) although prediction accepts them and
        sends them past every split; clipping to the largest finite float32 takes exactly the
        same branches, so the contributions stay those of the prediction. Large batches go
        through :class:`_SplitPatterns` when that pays off (``by_pattern``).
        """
        finite = _finite32(encoded)
        values = (
            self.patterns.contributions(finite)
            if by_pattern and self.patterns is not None
            else None
        )
        if values is None:
            matrix = xgb.DMatrix(finite, missing=self.classifier.missing, nthread=1)
            values = self.booster.predict(
                matrix,
                pred_contribs=True,
                iteration_range=self.iteration_range,
                validate_features=False,
            )[:, :-1]  # the last column is the bias
        # Dummy columns of a categorical are contiguous.
        return np.add.reduceat(values.astype(np.float64), self.group_starts, axis=1)

    def learn_patterns(self, reference: np.ndarray) -> None:
        """Tabulate the split patterns of ``reference`` (encoded rows) for batch explanations."""
        self.patterns = (
            _SplitPatterns.learn(self.booster, self.iteration_range, _finite32(reference))
            if np.isnan(self.classifier.missing)
            else None
        )


@dataclass(frozen=True)
class _TreeTable:
    """One tree: its one-tree booster, its splits, and the contributions of known patterns.

    A row's pattern is the state at every split, 0 (not below the threshold), 1 (below) or 2
    (missing), read as a base-3 number: ``lookup`` maps it to a row of ``values``, or -1.
    Trees with too many splits for a dense lookup have none: every row goes to the booster.
    """

    booster: xgb.Booster
    features: np.ndarray  # encoded column read by every split
    thresholds: np.ndarray  # float32 as the booster compares, shape (splits, 1)
    powers: np.ndarray  # 3**split, float64 (exact: 3**MAX_SPLITS < 2**53)
    used: np.ndarray  # distinct encoded columns split on; every other column gets exactly 0
    lookup: np.ndarray | None
    values: np.ndarray  # (len(used), patterns): contributions of each known pattern

    def pattern_codes(self, columns: np.ndarray) -> np.ndarray:
        """Codes of rows given as encoded columns (``columns[j]`` is column j of every row)."""
        values = columns[self.features]
        states = (values < self.thresholds) + 2.0 * np.isnan(values)
        return (self.powers @ states).astype(np.int64)

    def explain(self, rows: np.ndarray) -> np.ndarray:
        """This tree's contributions to ``used`` for float32 rows, from the booster."""
        matrix = xgb.DMatrix(rows, nthread=1)
        explained = self.booster.predict(matrix, pred_contribs=True, validate_features=False)
        return explained[:, self.used].T


class _SplitPatterns:
    """Exact TreeSHAP of large batches from per-tree tables of split patterns.

    Path-dependent TreeSHAP of one tree depends on a row only through the branch it takes at
    every split of that tree, so rows that agree on all splits of a tree get identical
    contributions from it. Shallow trees show a few dozen such patterns, and a month of
    customers shows those of the training set: at load, a one-tree slice of the booster
    explains one representative row per pattern; a batch then costs a table lookup per tree,
    and only rows with an unseen pattern are explained by the booster. The numbers are the
    booster's own (summed in float64 instead of float32), several times faster than
    explaining every row. Thresholds come from the booster's JSON, which keeps float32 values
    exactly; the Scorer checks the result against ``pred_contribs`` before using it.
    """

    MIN_ROWS = 64  # below this, one pred_contribs call is cheaper than a lookup per tree
    MAX_SPLITS = 12  # a dense lookup of 3**12 int32 entries (2 MB) per tree at most
    MAX_LOOKUP_ENTRIES = 1 << 25  # 128 MB for all trees; the rest go to the booster

    def __init__(self, trees: list[_TreeTable]) -> None:
        self.trees = trees

    @classmethod
    def learn(
        cls, booster: xgb.Booster, iteration_range: tuple[int, int], reference: np.ndarray
    ) -> _SplitPatterns | None:
        """Tables from ``reference`` (finite float32 rows), or None where the premise fails
        (not a plain binary gbtree, or categorical splits)."""
        gbtree = json.loads(booster.save_raw(raw_format="json"))["learner"]["gradient_booster"]
        if gbtree["name"] != "gbtree":
            return None
        if gbtree["model"]["gbtree_model_param"]["num_parallel_tree"] != "1":
            return None
        columns = np.ascontiguousarray(reference.T)
        start, stop = iteration_range
        trees, budget = [], cls.MAX_LOOKUP_ENTRIES
        for index in range(start, stop or len(gbtree["model"]["trees"])):
            tree = gbtree["model"]["trees"][index]
            if any(tree["split_type"]):
                return None
            internal = np.asarray(tree["left_children"]) != -1
            features = np.asarray(tree["split_indices"])[internal]
            single = booster[index : index + 1]
            single.set_param({"nthread": 1})
            table = _TreeTable(
                booster=single,
                features=features,
                thresholds=np.asarray(tree["split_conditions"], dtype=np.float32)[internal, None],
                powers=3.0 ** np.arange(len(features)),
                used=np.unique(features),
                lookup=None,
                values=np.empty((0, 0)),
            )
            if len(features) <= cls.MAX_SPLITS and 3 ** len(features) <= budget:
                budget -= 3 ** len(features)
                codes, first = np.unique(table.pattern_codes(columns), return_index=True)
                lookup = np.full(3 ** len(features), -1, dtype=np.int32)
                lookup[codes] = np.arange(len(codes), dtype=np.int32)
                table = replace(table, lookup=lookup, values=table.explain(reference[first]))
            trees.append(table)
        return cls(trees)

    def contributions(self, finite: np.ndarray) -> np.ndarray | None:
        """Per encoded column (no bias) for ``finite`` rows, or None for small batches."""
        if len(finite) < self.MIN_ROWS:
            return None
        columns = np.ascontiguousarray(finite.T)
        out = np.zeros(columns.shape)  # column-major: each add below is one contiguous row
        for tree in self.trees:
            if tree.lookup is None:
                values = tree.explain(finite)
            else:
                index = tree.lookup[tree.pattern_codes(columns)]
                values = tree.values[:, index]
                unseen = np.flatnonzero(index < 0)
                if len(unseen):
                    values[:, unseen] = tree.explain(finite[unseen])
            for column, contribution in zip(tree.used, values, strict=True):
                out[column] += contribution
        return out.T


class Scorer:
    """One model, ready to score: verified fast path, explainer and decile edges.

    Built once per loaded model version (the constructor is the warm-up): scoring the
    training set gives the model's own score distribution, whose deciles rank every later
    score, and exercises every code path before the model takes traffic.
    """

    def __init__(self, model: ChurnClassifier, reference: pl.DataFrame) -> None:
        self.model = model
        self.numeric = list(model.numeric_features)
        self.categorical = list(model.categorical_features)
        self.features = [*self.numeric, *self.categorical]
        missing = [f for f in self.features if f not in reference.columns]
        if missing:
            raise ValueError(f"the model's training set lacks its features {missing}")
        rows = FeatureRows.from_frame(reference, self.numeric, self.categorical)
        self._booster = (
            _BoosterPath(model, model.pipeline.named_steps["features"], model.pipeline[-1])
            if _BoosterPath.supports(model)
            else None
        )
        if self._booster is not None and not self._fast_path_is_exact(rows):
            log.warning("fast path disagrees with predict_proba; scoring through the pipeline")
            self._booster = None
        if self._booster is not None:
            self._booster.learn_patterns(self._booster.encode(rows))
            if not self._patterns_agree(rows):
                log.warning("split patterns disagree with pred_contribs; explaining row by row")
                self._booster.patterns = None
        if self._booster is not None:
            self.explainer: str | None = "xgboost_pred_contribs"
        elif callable(getattr(model, "contributions", None)):
            self.explainer = "model_contributions"
        else:
            self.explainer = None
        self.decile_edges = decile_edges(self.probabilities(rows))
        self.score(rows.slice(0, 2), reasons=self.explainer is not None)

    @property
    def fast_path(self) -> bool:
        return self._booster is not None

    def _fast_path_is_exact(self, reference: FeatureRows) -> bool:
        """Compare with ``predict_proba`` on training rows plus an all-missing, all-unseen row."""
        sample = reference.slice(0, VERIFY_ROWS)
        edge = FeatureRows(
            numeric=np.full((1, len(self.numeric)), np.nan),
            categorical=np.full((1, len(self.categorical)), UNSEEN_CATEGORY, dtype=object),
        )
        rows = FeatureRows.concat([sample, edge])
        x = rows.to_pandas(self.numeric, self.categorical)
        assert self._booster is not None
        encoded = self._booster.encode(rows)
        reference_encoded = self.model.pipeline[:-1].transform(x)
        return bool(
            np.array_equal(encoded, reference_encoded, equal_nan=True)
            and np.array_equal(self.probabilities(rows), self.model.predict_proba(x)[:, 1])
        )

    def _patterns_agree(self, reference: FeatureRows) -> bool:
        """Batch explanations by split pattern equal the booster's row-by-row ones, on
        training rows and on shifted copies whose patterns the tables have not seen."""
        assert self._booster is not None
        sample = reference.slice(0, VERIFY_ROWS)
        shifted = FeatureRows(sample.numeric * 1.37 + 0.5, sample.categorical)
        encoded = self._booster.encode(FeatureRows.concat([sample, shifted]))
        return np.allclose(
            self._booster.contributions(encoded, by_pattern=True),
            self._booster.contributions(encoded, by_pattern=False),
            rtol=0,
            atol=CONTRIBUTION_TOLERANCE,
        )

    def probabilities(self, rows: FeatureRows) -> np.ndarray:
        return self._predict(rows, reasons=False)[0]

    def deciles(self, probability: np.ndarray) -> np.ndarray:
        """1..10 against the training-set deciles, as the monthly batch scores rank them."""
        return risk_deciles(probability, self.decile_edges)

    def score(self, rows: FeatureRows, *, reasons: bool) -> Scores:
        if reasons and self.explainer is None:
            raise ValueError("this model has no explainer: score without reasons")
        probability, contributions = self._predict(rows, reasons=reasons)
        probability = np.asarray(probability, dtype=np.float64)
        return Scores(probability, self.deciles(probability), contributions)

    def _predict(self, rows: FeatureRows, *, reasons: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """Probabilities as ``predict_proba`` returns them, plus contributions if asked."""
        if self._booster is None:
            x = rows.to_pandas(self.numeric, self.categorical)
            contributions = (
                np.asarray(self.model.contributions(x), dtype=np.float64)  # type: ignore[attr-defined]
                if reasons
                else None
            )
            return self.model.predict_proba(x)[:, 1], contributions
        encoded = self._booster.encode(rows)
        raw = self._booster.raw_scores(encoded)
        prior = self.model.prior
        if prior is not None:  # the season's base rate, from the row's own calendar month
            raw = prior.apply(raw, rows.numeric[:, self.numeric.index(prior.month_feature)])
        calibrator = self.model.calibrator
        probability = calibrator.transform(raw) if calibrator is not None else raw
        return probability, self._booster.contributions(encoded) if reasons else None
