"""Realised performance: metrics computed from labelled predictions, per time window and per
slice, each with a confidence interval, on the prediction log or any frame of predictions.

Every cell (window x slice value) is computed in the same vectorised pass: counts by
``bincount``, AUC by one sort, confusion-matrix intervals by a bootstrap of the counts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.inputs import (
    classification_data,
    infer_task,
    metric_names,
    regression_data,
)
from loopwise.monitoring.performance.intervals import z_value
from loopwise.monitoring.performance.metrics import (
    METRICS,
    CellValues,
    ClassificationData,
    RegressionData,
    Task,
    classification_cells,
    regression_cells,
)
from loopwise.monitoring.performance.report import COLUMNS, PerformanceReport
from loopwise.monitoring.performance.scores import scored_rows
from loopwise.monitoring.performance.slices import SliceSpec, build_slices
from loopwise.monitoring.windows import split_windows

__all__ = ["performance"]

LABEL = "outcome"
PREDICTION = "output.predict"
SCORES = "output.predict_proba"
TIME = "timestamp_ms"


def performance(
    frame: pd.DataFrame | Mapping[str, Any],
    *,
    metrics: Sequence[str] | str | None = None,
    window: str | int | None = None,
    slices: SliceSpec | None = None,
    min_slice_rows: int = 30,
    confidence: float = 0.95,
    task: Task | None = None,
    label: str = LABEL,
    prediction: str = PREDICTION,
    scores: str | None = SCORES,
    time: str = TIME,
    positive: Any = None,
    classes: Sequence[Any] | None = None,
    bins: int = 5,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> PerformanceReport:
    """Metrics of the labelled rows of ``frame`` per window and slice, with intervals.

    ``frame`` is a monitoring frame (the prediction log joined with outcomes) or any frame
    with a label and predictions; rows whose ``label`` is null are not labelled yet: they are
    counted (``rows``) but not scored (``labelled``). ``window``: a pandas offset alias over
    ``time`` ("1h", "1D", "7D", "MS"), a number of rows, or None for one window. ``slices``:
    column names (categories, or ``bins`` quantile bins for numeric columns with many values)
    or a dict of name -> boolean mask or ``frame -> mask`` function. Cells with fewer than
    ``min_slice_rows`` labelled rows, the whole window's included, get NaN and a reason.
    ``task`` is inferred when None: classification with scores, or labels that are strings,
    booleans or at most 20 integer values; regression otherwise. ``classes`` defaults to the
    sorted labels and predictions and must be the scores' column order (the model's
    ``classes_``); ``positive`` (binary) defaults to the last class.
    """
    frame = _as_frame(frame)
    _check_settings(min_slice_rows, confidence, bins, n_bootstrap, seed)
    for name, value in (("label", label), ("prediction", prediction), ("time", time)):
        if not isinstance(value, str):
            raise InvalidArgumentError(
                f"{name}: expected a column name, got {value!r}.", parameter=name
            )
    if label not in frame.columns:
        raise InvalidArgumentError(
            f"label={label!r}: no such column; the frame has {list(map(str, frame.columns))}. "
            "Pass label=<the column with the true outcome>.",
            parameter="label",
        )
    has_scores = scores is not None and scores in frame.columns
    if scores is not None and scores != SCORES and not has_scores:
        raise InvalidArgumentError(
            f"scores={scores!r}: no such column; the frame has {list(map(str, frame.columns))}.",
            parameter="scores",
        )
    has_prediction = prediction in frame.columns
    if not has_prediction and (prediction != PREDICTION or not has_scores):
        raise InvalidArgumentError(
            f"prediction={prediction!r}: no such column; the frame has "
            f"{list(map(str, frame.columns))}. Pass prediction=<the predicted label or value>.",
            parameter="prediction",
        )
    labelled = frame[label].notna().to_numpy()
    rows_labelled = frame[labelled]
    scored = scored_rows(rows_labelled, scores) if has_scores and scores is not None else None
    if scored is not None and not scored.any():  # e.g. a log of routes that computed predict only
        has_scores, scored = False, None
    task = infer_task(
        task, frame, labelled, label, prediction if has_prediction else None, has_scores
    )
    names = metric_names(metrics, task, has_scores, scores)
    windows = split_windows(frame, window, time)
    cuts = build_slices(frame, slices, bins)
    z = z_value(confidence)
    partial = scored is not None and not scored.all() and task == "classification"
    data, scored_data, class_list, positive_class = _task_data(
        task, rows_labelled, label, prediction if has_prediction else None,
        scores if has_scores else None, scored if partial else None, classes, positive, names,
    )  # fmt: skip
    parts: list[pd.DataFrame] = []
    methods: dict[str, str] = {}
    for order, cut in enumerate(cuts):
        n_values = len(cut.values)
        n_cells = len(windows.start) * n_values
        in_slice = cut.code >= 0
        cell_all = windows.code * n_values + cut.code
        rows = np.bincount(cell_all[in_slice], minlength=n_cells)
        keep = in_slice[labelled]
        cell = cell_all[labelled][keep]
        subset = data if keep.all() else data.take(keep)
        counts = np.bincount(cell, minlength=n_cells)
        eligible = counts >= min_slice_rows
        by_metric = dict.fromkeys(names, counts)
        if isinstance(subset, ClassificationData):
            found = classification_cells(
                subset, cell, n_cells, _label_metrics(names) if partial else names,
                eligible=eligible, z=z, confidence=confidence, n_bootstrap=n_bootstrap, seed=seed,
            )  # fmt: skip
            if scored_data is not None and scored is not None:
                in_slice_scored, cells_scored = keep[scored], cell_all[labelled][scored]
                scored_counts = np.bincount(cells_scored[in_slice_scored], minlength=n_cells)
                by_metric |= dict.fromkeys(_score_metrics(names), scored_counts)
                found |= classification_cells(
                    scored_data if in_slice_scored.all() else scored_data.take(in_slice_scored),
                    cells_scored[in_slice_scored], n_cells, _score_metrics(names),
                    eligible=scored_counts >= min_slice_rows, z=z, confidence=confidence,
                    n_bootstrap=n_bootstrap, seed=seed,
                )  # fmt: skip
        else:
            found = regression_cells(subset, cell, n_cells, names, z=z)
        for metric_order, name in enumerate(names):
            values = found[name]
            methods[name] = values.method
            _blank_small(values, rows, by_metric[name], min_slice_rows)
            if by_metric[name] is not counts:
                _say_unscored(values, counts, by_metric[name], min_slice_rows)
            parts.append(
                pd.DataFrame(
                    {
                        "window": np.arange(n_cells) // n_values,
                        "slice": cut.name,
                        "slice_value": np.tile(
                            np.array(cut.values, dtype=object), n_cells // n_values
                        ),
                        "metric": name,
                        "value": values.value,
                        "lower": values.lower,
                        "upper": values.upper,
                        "rows": rows,
                        "labelled": by_metric[name],
                        "reason": values.reason,
                        "_order": order * 1000 + metric_order,
                        "_value": np.arange(n_cells) % n_values,
                    }
                )
            )
    results = pd.concat(parts, ignore_index=True)
    results = results.sort_values(["window", "_order", "_value"], kind="stable")
    results["window_start"] = pd.Series(windows.start, dtype=object)[results["window"]].to_numpy()
    results["window_end"] = pd.Series(windows.end, dtype=object)[results["window"]].to_numpy()
    results = results[COLUMNS].reset_index(drop=True)
    reasons = results["reason"].astype(object)
    results["reason"] = reasons.where(reasons.notna(), None)  # None, not NaN, when there is none
    for column in ("window_start", "window_end"):
        results[column] = pd.to_datetime(results[column]) if windows.start else results[column]
    return PerformanceReport(
        results=results, task=task, metrics=names, confidence=confidence,
        min_slice_rows=min_slice_rows, classes=class_list, positive=positive_class,
        methods=methods, unscored=int((~scored).sum()) if partial and scored is not None else 0,
    )  # fmt: skip


def _task_data(
    task: Task,
    rows: pd.DataFrame,
    label: str,
    prediction: str | None,
    scores: str | None,
    scored: npt.NDArray[np.bool_] | None,
    classes: Sequence[Any] | None,
    positive: Any,
    names: list[str],
) -> tuple[ClassificationData | RegressionData, ClassificationData | None, list[Any] | None, Any]:
    """The labelled ``rows`` as arrays: ``(data, scored_data, classes, positive)``.

    With ``scored`` (only some rows hold scores), ``data`` has every row for the label-based
    metrics and ``scored_data`` the scored rows, same classes, for the score-based ones."""
    if task == "regression":
        found = regression_data(rows, label, PREDICTION if prediction is None else prediction)
        return found, None, None, None
    if scored is None:
        data, class_list, positive_class = classification_data(
            rows, label, prediction, scores, classes, positive, names
        )
        return data, None, class_list, positive_class
    assert scores is not None
    if prediction is None:
        raise InvalidArgumentError(
            f"{int((~scored).sum())} labelled rows have neither scores ({scores!r}) nor a "
            "prediction column; expected one of them in every row.",
            parameter="prediction",
        )
    data, class_list, positive_class = classification_data(
        rows, label, prediction, None, classes, positive, _label_metrics(names)
    )
    scored_data = None
    if _score_metrics(names):
        scored_data = classification_data(
            rows[scored], label, prediction, scores, class_list, positive_class,
            _score_metrics(names),
        )[0]  # fmt: skip
    return data, scored_data, class_list, positive_class


def _label_metrics(names: list[str]) -> list[str]:
    return [name for name in names if not METRICS[name].needs_scores]


def _score_metrics(names: list[str]) -> list[str]:
    return [name for name in names if METRICS[name].needs_scores]


def _say_unscored(
    values: CellValues,
    labelled: npt.NDArray[np.int64],
    scored: npt.NDArray[np.int64],
    minimum: int,
) -> None:
    """A score-based cell too small because its rows lack scores says so."""
    for i in np.flatnonzero((scored < minimum) & (labelled > scored)):
        values.reason[i] = (
            f"{scored[i]} of {labelled[i]} labelled rows hold scores, fewer than "
            f"min_slice_rows={minimum}"
        )


def _blank_small(
    values: CellValues, rows: npt.NDArray[np.int64], counts: npt.NDArray[np.int64], minimum: int
) -> None:
    """Size comes first: a cell too small to report says so, whatever else is undefined."""
    small = counts < minimum
    values.value[small] = values.lower[small] = values.upper[small] = np.nan
    for i in np.flatnonzero(small):
        if rows[i] == 0:
            values.reason[i] = "no rows"
        elif counts[i] == 0:
            values.reason[i] = f"none of {rows[i]} rows is labelled yet"
        else:
            values.reason[i] = f"{counts[i]} labelled rows, fewer than min_slice_rows={minimum}"


def _as_frame(frame: pd.DataFrame | Mapping[str, Any]) -> pd.DataFrame:
    if isinstance(frame, Mapping):
        try:
            frame = pd.DataFrame(dict(frame))
        except ValueError as exc:
            lengths = {str(k): len(v) for k, v in frame.items() if hasattr(v, "__len__")}
            raise InvalidArgumentError(
                f"frame: expected columns of equal length, got lengths {lengths}. "
                "Give every column one entry per prediction.",
                parameter="frame",
            ) from exc
    if not isinstance(frame, pd.DataFrame):
        raise InvalidArgumentError(
            f"frame: expected a pandas DataFrame (e.g. from read_predictions) or a dict of "
            f"columns, got {type(frame).__name__}.",
            parameter="frame",
        )
    if frame.empty:
        raise InvalidArgumentError(
            "frame: expected at least one row, got an empty frame. Check the time range read "
            "from the prediction log.",
            parameter="frame",
        )
    return frame.reset_index(drop=True)


def _check_settings(
    min_slice_rows: int, confidence: float, bins: int, n_bootstrap: int, seed: int
) -> None:
    checks: list[tuple[str, Any, bool, str]] = [
        ("min_slice_rows", min_slice_rows, _is_int(min_slice_rows) and min_slice_rows >= 1,
         "an integer >= 1"),
        ("confidence", confidence, isinstance(confidence, float | int)
         and not isinstance(confidence, bool) and 0 < confidence < 1, "a number in (0, 1)"),
        ("bins", bins, _is_int(bins) and bins >= 2, "an integer >= 2"),
        ("n_bootstrap", n_bootstrap, _is_int(n_bootstrap) and n_bootstrap >= 10,
         "an integer >= 10"),
        ("seed", seed, _is_int(seed) and seed >= 0, "an integer >= 0"),
    ]  # fmt: skip
    for name, value, ok, expected in checks:
        if not ok:
            raise InvalidArgumentError(
                f"{name}: expected {expected}, got {value!r}.", parameter=name
            )


def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)
