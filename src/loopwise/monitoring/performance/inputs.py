"""Reading a frame's labels, predictions and scores into arrays for ``performance``: the task,
the classes (indices into the model's ``classes_`` order) and every check on the values."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.metrics import (
    METRICS,
    ClassificationData,
    RegressionData,
    Task,
)

__all__ = [
    "CLASSIFICATION_MAX_CLASSES",
    "DEFAULT_METRICS",
    "classification_data",
    "infer_task",
    "metric_names",
    "regression_data",
]

CLASSIFICATION_MAX_CLASSES = 20  # integer labels with more values are taken as a regression
DEFAULT_METRICS: dict[str, list[str]] = {
    "classification": ["accuracy", "balanced_accuracy", "precision", "recall", "f1"],
    "scores": ["roc_auc", "log_loss", "brier"],  # added when the frame has scores
    "regression": ["rmse", "mae", "mape", "r2"],
}


def _is_number_column(column: pd.Series) -> bool:
    return (
        pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column)
    ) and not isinstance(column.dtype, pd.CategoricalDtype)


def infer_task(
    task: Task | None,
    frame: pd.DataFrame,
    labelled: npt.NDArray[np.bool_],
    label: str,
    prediction: str | None,
    has_scores: bool,
) -> Task:
    if task is not None:
        if task not in ("classification", "regression"):
            raise InvalidArgumentError(
                f"task: expected 'classification', 'regression' or None (inferred), got {task!r}.",
                parameter="task",
            )
        return task
    if has_scores:
        return "classification"
    columns = [frame[label][labelled]] + ([frame[prediction]] if prediction else [])
    if any(not _is_number_column(c) or pd.api.types.is_bool_dtype(c) for c in columns):
        return "classification"
    values = np.concatenate([c.to_numpy(dtype=np.float64, na_value=np.nan) for c in columns])
    values = values[np.isfinite(values)]
    integral = bool(np.all(values == np.round(values)))
    if integral and len(np.unique(values)) <= CLASSIFICATION_MAX_CLASSES:
        return "classification"
    return "regression"


def metric_names(
    metrics: Sequence[str] | str | None, task: Task, has_scores: bool, scores: str | None
) -> list[str]:
    if metrics is None:
        names = list(DEFAULT_METRICS[task])
        return names + (DEFAULT_METRICS["scores"] if has_scores and task != "regression" else [])
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    available = [m.name for m in METRICS.values() if m.task == task]
    if not names:
        raise InvalidArgumentError(
            f"metrics: expected at least one metric name, got none; available for {task}: "
            f"{available}.",
            parameter="metrics",
        )
    for name in names:
        if name not in available:
            other = "" if name not in METRICS else f" ({name} is a {METRICS[name].task} metric)"
            raise InvalidArgumentError(
                f"metrics: unknown metric {name!r} for a {task} task{other}; available: "
                f"{available}.",
                parameter="metrics",
            )
        if METRICS[name].needs_scores and not has_scores:
            raise InvalidArgumentError(
                f"metrics: {name!r} needs predicted probabilities, but the frame has no column "
                f"{scores!r}. Pass scores=<column of class probabilities>.",
                parameter="scores",
            )
    return list(dict.fromkeys(names))


def classification_data(
    rows: pd.DataFrame,
    label: str,
    prediction: str | None,
    scores: str | None,
    classes: Sequence[Any] | None,
    positive: Any,
    names: list[str],
) -> tuple[ClassificationData, list[Any], Any]:
    """Labels and predictions as indices into ``classes``, scores as a (rows, classes) matrix."""
    columns = {"label": rows[label]} | ({"prediction": rows[prediction]} if prediction else {})
    if prediction and rows[prediction].isna().any():
        raise InvalidArgumentError(
            f"prediction={prediction!r}: {int(rows[prediction].isna().sum())} labelled rows "
            "have no prediction; expected one in every row.",
            parameter="prediction",
        )
    numeric = all(_is_number_column(c) for c in columns.values())
    if not numeric and any(_is_number_column(c) for c in columns.values()):
        kinds = {k: ("numbers" if _is_number_column(c) else "text") for k, c in columns.items()}
        raise InvalidArgumentError(
            f"label={label!r} and prediction={prediction!r} hold different types ({kinds}); "
            "expected the same classes in both. Convert one, e.g. with .astype(int).",
            parameter="label",
        )
    values = {k: _class_values(c, k, numeric) for k, c in columns.items()}
    if classes is None:
        found = np.unique(np.concatenate(list(values.values())))
    else:
        found = np.asarray(list(classes), dtype=np.float64 if numeric else object)
        if len(set(found.tolist())) != len(found):
            raise InvalidArgumentError(
                f"classes: expected distinct values, got {list(classes)}.", parameter="classes"
            )
    index = pd.Index(found)
    codes: dict[str, npt.NDArray[np.int64]] = {}
    for key, value in values.items():
        codes[key] = index.get_indexer(value).astype(np.int64)
        if (codes[key] < 0).any():
            unseen = sorted({str(v) for v in value[codes[key] < 0]})
            raise InvalidArgumentError(
                f"{key}: values {unseen[:10]} are not among classes {found.tolist()}. Pass "
                "classes=<every class, in the model's classes_ order>.",
                parameter="classes",
            )
    class_list = [_plain_class(c) for c in found]
    binary = len(found) <= 2
    pos: int | None = None
    if positive is not None and not binary:
        raise InvalidArgumentError(
            f"positive={positive!r} applies to binary tasks; this one has {len(found)} classes "
            f"({class_list}). Leave it out: multiclass metrics are macro averages.",
            parameter="positive",
        )
    if binary:
        wanted = class_list[-1] if positive is None else positive
        where = [i for i, c in enumerate(class_list) if c == wanted]
        if not where:
            raise InvalidArgumentError(
                f"positive={positive!r} is not among the classes {class_list}.",
                parameter="positive",
            )
        pos, positive = where[0], class_list[where[0]]
    matrix = None if scores is None else _score_matrix(rows[scores], scores, len(found), pos, names)
    if prediction is None:
        assert matrix is not None
        codes["prediction"] = np.argmax(matrix, axis=1).astype(np.int64)
    data = ClassificationData(codes["label"], codes["prediction"], matrix, len(found), pos)
    return data, class_list, positive


def _class_values(column: pd.Series, key: str, numeric: bool) -> npt.NDArray[Any]:
    if numeric:
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(values).all():
            raise InvalidArgumentError(
                f"{key} ({column.name!r}): expected finite class labels, got NaN or infinity.",
                parameter=key,
            )
        return values
    values = column.astype(object).to_numpy()
    types = sorted({type(v).__name__ for v in values})
    if len(types) > 1:
        raise InvalidArgumentError(
            f"{key} ({column.name!r}): the column mixes types {types}; expected one type for "
            "all classes (did its type change between windows?). Convert it with .astype(str).",
            parameter=key,
        )
    return values


def _plain_class(value: Any) -> Any:
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return int(value)
    return value.item() if isinstance(value, np.generic) else value


def _score_matrix(
    column: pd.Series, name: str, n_classes: int, positive: int | None, metrics: list[str]
) -> npt.NDArray[np.float64]:
    """(rows, classes) probabilities from a column of lists, or of the positive class's score."""
    if _is_number_column(column):
        if positive is None or n_classes != 2:
            raise InvalidArgumentError(
                f"scores={name!r} holds one number per row, which fits a binary task with two "
                f"classes; found {n_classes}. Pass classes=[negative, positive], or a column of "
                "per-class probability lists.",
                parameter="scores",
            )
        score = column.to_numpy(dtype=np.float64, na_value=np.nan)
        matrix = np.empty((len(score), 2))
        matrix[:, positive], matrix[:, 1 - positive] = score, 1 - score
    else:
        try:
            matrix = np.asarray(column.tolist(), dtype=np.float64)
        except (ValueError, TypeError) as exc:
            raise InvalidArgumentError(
                f"scores={name!r}: expected a list of {n_classes} probabilities in every "
                "labelled row; some rows are missing or of other lengths.",
                parameter="scores",
            ) from exc
        if matrix.ndim != 2 or matrix.shape[1] != n_classes:
            raise InvalidArgumentError(
                f"scores={name!r}: expected {n_classes} probabilities per row (one per class), "
                f"got shape {matrix.shape}. Pass classes=<the model's classes_> if some class "
                "never occurs in this data.",
                parameter="scores",
            )
    if not np.isfinite(matrix).all():
        raise InvalidArgumentError(
            f"scores={name!r}: {int((~np.isfinite(matrix)).any(axis=1).sum())} labelled rows "
            "have NaN or infinite scores; expected finite probabilities.",
            parameter="scores",
        )
    if {"log_loss", "brier"} & set(metrics) and ((matrix < 0) | (matrix > 1)).any():
        raise InvalidArgumentError(
            f"scores={name!r}: log_loss and brier need probabilities in [0, 1]; some scores "
            "lie outside. Use predict_proba's output, or leave those metrics out.",
            parameter="scores",
        )
    return matrix


def regression_data(rows: pd.DataFrame, label: str, prediction: str) -> RegressionData:
    arrays = []
    for key, name in (("label", label), ("prediction", prediction)):
        column = rows[name]
        if not _is_number_column(column):
            raise InvalidArgumentError(
                f"{key}={name!r}: a regression needs numbers, got dtype {column.dtype}. Pass "
                "task='classification' if these are classes.",
                parameter=key,
            )
        values = column.to_numpy(dtype=np.float64, na_value=np.nan)
        if not np.isfinite(values).all():
            raise InvalidArgumentError(
                f"{key}={name!r}: {int((~np.isfinite(values)).sum())} labelled rows are NaN, "
                "null or infinite; expected finite numbers.",
                parameter=key,
            )
        arrays.append(values)
    return RegressionData(arrays[0], arrays[1])
