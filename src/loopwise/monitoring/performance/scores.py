"""Reading a classifier's outputs from a monitoring frame: class probabilities as a rows x classes
matrix, and labels or predictions as indices into the model's classes.

A row may hold no scores at all (None or NaN where the probabilities would be: logged by a route
that computed ``predict`` only); ``scored_rows`` finds the others, so that score-based numbers
leave those rows out instead of refusing the whole log.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError

__all__ = ["ScoreColumns", "class_indices", "score_matrix", "scored_rows"]

ScoreColumns = str | Sequence[str]
SUM_TOLERANCE = 1e-3  # class probabilities of a row must add up to 1 within this


def _column(frame: pd.DataFrame, name: str, parameter: str) -> pd.Series:
    if name not in frame.columns:
        raise InvalidArgumentError(
            f"{parameter}={name!r} is not a column of the frame (columns: "
            f"{list(frame.columns)[:20]}). Pass {parameter}=<the column's name>.",
            parameter=parameter,
        )
    return frame[name]


def _as_matrix(frame: pd.DataFrame, scores: ScoreColumns) -> npt.NDArray[np.float64]:
    if not isinstance(scores, str):
        columns = [_column(frame, name, "scores") for name in scores]
        if len(columns) < 2:
            raise InvalidArgumentError(
                f"scores as a list names one column per class, at least 2; got {list(scores)}.",
                parameter="scores",
            )
        return np.column_stack([c.to_numpy(dtype=np.float64, na_value=np.nan) for c in columns])
    column = _column(frame, scores, "scores")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        positive = column.to_numpy(dtype=np.float64, na_value=np.nan)  # binary: P(positive)
        return np.column_stack([1.0 - positive, positive])
    rows = column.tolist()
    widths = {len(r) if isinstance(r, Sequence | np.ndarray) else -1 for r in rows}
    if len(widths) != 1 or min(widths) < 2:
        raise InvalidArgumentError(
            f"scores={scores!r} must hold, in every row, a list of class probabilities of the "
            f"same length (at least 2), or one number P(positive class); found row lengths "
            f"{sorted(widths)} (-1: not a list, e.g. a missing value).",
            parameter="scores",
        )
    try:
        return np.asarray(rows, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"scores={scores!r} holds values that are not numbers: {exc}.", parameter="scores"
        ) from exc


def _holds_scores(value: Any) -> bool:
    """A value is missing scores when it is None or a scalar NaN (pd.NA included)."""
    if isinstance(value, Sequence | np.ndarray) and not isinstance(value, str):
        return True
    return not bool(pd.isna(value))


def scored_rows(frame: pd.DataFrame, scores: ScoreColumns) -> npt.NDArray[np.bool_]:
    """Which rows hold scores at all (checking them is ``score_matrix``'s job): every column
    not null, for one column per class; not None or NaN, for a column of per-row lists or of
    P(positive class)."""
    if not isinstance(scores, str):
        present = [_column(frame, name, "scores").notna().to_numpy() for name in scores]
        return np.logical_and.reduce(present) if present else np.ones(len(frame), dtype=bool)
    column = _column(frame, scores, "scores")
    if pd.api.types.is_numeric_dtype(column) and not pd.api.types.is_bool_dtype(column):
        return column.notna().to_numpy()
    return np.fromiter((_holds_scores(v) for v in column), dtype=bool, count=len(column))


def score_matrix(frame: pd.DataFrame, scores: ScoreColumns) -> npt.NDArray[np.float64]:
    """Class probabilities, rows x classes, checked: finite, within [0, 1], rows summing to 1.

    ``scores`` names a column of per-row lists (the prediction log's ``output.predict_proba``),
    a numeric column of P(positive class) for a binary model, or one column per class.
    """
    matrix = _as_matrix(frame, scores)
    bad = ~np.isfinite(matrix).all(axis=1)
    if bad.any():
        raise InvalidArgumentError(
            f"scores={scores!r} has {int(bad.sum())} row(s) with NaN, infinite or missing "
            f"probabilities (first at row {int(np.argmax(bad))}). Drop or fix those rows first.",
            parameter="scores",
        )
    outside = ((matrix < 0) | (matrix > 1)).any(axis=1)
    if outside.any():
        row = int(np.argmax(outside))
        raise InvalidArgumentError(
            f"scores={scores!r} must be probabilities in [0, 1]; row {row} holds "
            f"{matrix[row].tolist()} ({int(outside.sum())} such rows). Pass predict_proba "
            "outputs, not decision_function margins or logits.",
            parameter="scores",
        )
    sums = matrix.sum(axis=1)
    off = np.abs(sums - 1.0) > SUM_TOLERANCE
    if off.any():
        row = int(np.argmax(off))
        raise InvalidArgumentError(
            f"scores={scores!r}: each row's class probabilities must add up to 1; row {row} "
            f"adds up to {sums[row]:.4f} ({int(off.sum())} such rows). Normalise them, or pass "
            "the full predict_proba output (one probability per class).",
            parameter="scores",
        )
    return matrix


def class_indices(
    values: pd.Series, classes: Sequence[Any], parameter: str
) -> npt.NDArray[np.int64]:
    """Each value's position in ``classes`` (as the model's ``classes_`` orders them)."""
    lookup = {value: index for index, value in enumerate(classes)}
    mapped = values.astype(object).map(lookup)
    unknown = mapped.isna()
    if unknown.any():
        seen = sorted({repr(v) for v in values[unknown].unique()[:5]})
        raise InvalidArgumentError(
            f"{parameter}={values.name!r} holds values that are not among the model's classes "
            f"{list(classes)}: {', '.join(seen)} ({int(unknown.sum())} rows). Pass classes= in "
            "the order of the model's classes_ if they differ from the reference's labels.",
            parameter=parameter,
        )
    return mapped.to_numpy(dtype=np.int64)
