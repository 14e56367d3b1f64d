"""Multivariate drift: can a classifier tell reference rows from current rows?

Per-column tests miss changes in how columns move together. A gradient-boosted classifier trained
(with cross-validation) to separate the two samples catches them: a held-out ROC AUC near 0.5
means the samples look alike; shuffling one feature at a time says which columns give them away.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.data.drift.columns import to_table
from loopwise.errors import InvalidArgumentError, require_extra

__all__ = ["DEFAULT_AUC_THRESHOLD", "DomainClassifierDrift", "domain_classifier_drift"]

# Evidently's classifier method (for embeddings) calls AUC above 0.55 drift; a sample no
# classifier can separate scores 0.5.
DEFAULT_AUC_THRESHOLD = 0.55
MAX_NATIVE_CATEGORIES = 250  # HistGradientBoosting handles up to 255 categories per feature


@dataclass(frozen=True)
class DomainClassifierDrift:
    """Held-out ROC AUC of a classifier separating current rows from reference rows.

    ``top_features`` lists the columns whose shuffling costs the most AUC, largest first.
    """

    auc: float
    threshold: float
    drifted: bool
    fold_aucs: list[float]
    top_features: list[tuple[str, float]]
    reference_rows: int
    current_rows: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _encode(
    ref: pd.DataFrame, cur: pd.DataFrame
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.bool_]]:
    """Both samples as one float matrix: numbers as they are (inf as NaN), categories as codes
    over the union of both sides' values."""
    parts, categorical = [], []
    for name in ref.columns:
        both = pd.concat([ref[name], cur[name]], ignore_index=True)
        if pd.api.types.is_numeric_dtype(both) and not pd.api.types.is_bool_dtype(both):
            values = both.to_numpy(dtype=np.float64, na_value=np.nan)
            parts.append(np.where(np.isfinite(values), values, np.nan))
            categorical.append(False)
        else:
            codes = pd.Categorical(both.astype(object)).codes.astype(np.float64)
            codes[codes < 0] = np.nan
            parts.append(codes)
            categorical.append(int(np.nanmax(codes, initial=0)) < MAX_NATIVE_CATEGORIES)
    return np.column_stack(parts), np.array(categorical, dtype=bool)


def domain_classifier_drift(
    reference: Any,
    current: Any,
    *,
    columns: list[str] | None = None,
    threshold: float = DEFAULT_AUC_THRESHOLD,
    max_rows: int = 20_000,
    folds: int = 3,
    top_k: int = 5,
    random_state: int = 0,
) -> DomainClassifierDrift:
    """Train a HistGradientBoosting classifier to tell ``current`` rows from ``reference`` rows.

    Each side is subsampled to at most ``max_rows`` rows; AUC is averaged over ``folds``
    stratified folds; drift when it exceeds ``threshold``. Needs the ``sklearn`` extra.
    """
    ref_table, cur_table = to_table(reference, "reference"), to_table(current, "current")
    names = columns or [c for c in cur_table.column_names if c in ref_table.column_names]
    missing = [
        c for c in names if c not in ref_table.column_names or c not in cur_table.column_names
    ]
    if missing or not names:
        raise InvalidArgumentError(
            f"Expected columns present in both samples; {missing or 'none'} are not.",
            parameter="columns",
        )
    if not 0.5 <= threshold < 1:
        raise InvalidArgumentError(
            f"Expected an AUC threshold in [0.5, 1), got {threshold!r}.", parameter="threshold"
        )
    if folds < 2 or max_rows < folds:
        raise InvalidArgumentError(
            f"Expected folds >= 2 and max_rows >= folds, got folds={folds}, max_rows={max_rows}.",
            parameter="folds",
        )
    require_extra("sklearn", "sklearn")
    # scikit-learn is an optional extra, and heavy: imported only when this test runs.
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import StratifiedKFold

    threadpoolctl = require_extra("threadpoolctl", "sklearn")  # installed with scikit-learn

    rng = np.random.default_rng(random_state)
    frames = []
    for side, table in (("reference", ref_table), ("current", cur_table)):
        if table.num_rows < folds:
            raise InvalidArgumentError(
                f"Expected at least {folds} rows in {side} (one per fold), got {table.num_rows}.",
                parameter=side,
            )
        rows = np.sort(rng.choice(table.num_rows, min(max_rows, table.num_rows), replace=False))
        frames.append(table.select(names).take(rows).to_pandas())
    features, categorical = _encode(frames[0], frames[1])
    labels = np.r_[np.zeros(len(frames[0])), np.ones(len(frames[1]))]

    fold_aucs: list[float] = []
    importance = np.zeros(len(names))
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=random_state)
    # One OpenMP thread: on these sample sizes threads gain little, and on a busy machine their
    # spin-waiting made one fit 50x slower (11 s instead of 0.2 s, measured on 2 cores).
    with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
        for train, test in splitter.split(features, labels):
            # Early stopping on a held-out tenth: samples that look alike stop after a few rounds.
            model = HistGradientBoostingClassifier(
                categorical_features=categorical, early_stopping=True, random_state=random_state
            )
            model.fit(features[train], labels[train])
            held_out = features[test]
            auc = float(roc_auc_score(labels[test], model.predict_proba(held_out)[:, 1]))
            fold_aucs.append(auc)
            for j in range(len(names)):
                shuffled = held_out.copy()
                shuffled[:, j] = rng.permutation(shuffled[:, j])
                drop = auc - roc_auc_score(labels[test], model.predict_proba(shuffled)[:, 1])
                importance[j] += drop / folds
    mean_auc = float(np.mean(fold_aucs))
    order = np.argsort(-importance)[:top_k]
    return DomainClassifierDrift(
        auc=mean_auc,
        threshold=float(threshold),
        drifted=mean_auc > threshold,
        fold_aucs=fold_aucs,
        top_features=[(names[j], float(importance[j])) for j in order],
        reference_rows=len(frames[0]),
        current_rows=len(frames[1]),
    )
