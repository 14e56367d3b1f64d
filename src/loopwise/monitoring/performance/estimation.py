"""Performance without labels: estimate a classifier's accuracy, precision, recall, F1 or ROC AUC
per window from its calibrated confidence (CBPE), with a sampling-error band, and alert bounds
learned on a labelled reference period. It cannot see concept shift; see docs/monitoring.md."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any, Literal, Self

import numpy as np
import numpy.typing as npt
import pandas as pd

from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.performance.cbpe import (
    METRICS,
    Calibration,
    fit_calibration,
    metric_from_soft_labels,
    one_hot,
    sampling_error_unit,
)
from loopwise.monitoring.performance.scores import (
    ScoreColumns,
    class_indices,
    score_matrix,
    scored_rows,
)
from loopwise.monitoring.windows import split_windows, timestamps

__all__ = ["EstimatedPerformance", "MetricEstimate", "PerformanceEstimator"]

CalibrationMethod = Literal["isotonic", "none", "auto"]
WindowSpec = str | int | None


@dataclass(frozen=True)
class MetricEstimate:
    """One metric in one window (``window``: its index, as `performance` numbers windows).

    ``lower``/``upper``: the band where the realised value should fall (estimate ± z x sampling
    error); ``alert``: the estimate left the reference's bounds ``lower_threshold`` /
    ``upper_threshold``. ``reason`` says why ``value`` is NaN."""

    window: int
    window_start: pd.Timestamp | None
    window_end: pd.Timestamp | None
    metric: str
    value: float
    lower: float
    upper: float
    sampling_error: float
    rows: int
    lower_threshold: float
    upper_threshold: float
    alert: bool
    reason: str | None = None


def _plain(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class EstimatedPerformance:
    """Estimated metrics per window, in window order; ``calibrated`` says whether the scores
    were recalibrated on the reference (``calibration="auto"`` decides per class)."""

    estimates: list[MetricEstimate]
    calibrated: bool
    confidence: float
    unscored: int = 0
    """Rows left out because they hold no scores (None or NaN); ``rows`` counts the others."""

    @property
    def alerts(self) -> list[MetricEstimate]:
        return [e for e in self.estimates if e.alert]

    def to_frame(self) -> pd.DataFrame:
        """Long form, one row per window x metric; the columns it shares with the realised
        ``PerformanceReport.to_frame()`` (window_start … rows) mean the same."""
        columns = [f.name for f in MetricEstimate.__dataclass_fields__.values()]
        return pd.DataFrame([asdict(e) for e in self.estimates], columns=columns)

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibrated": self.calibrated,
            "confidence": self.confidence,
            "unscored": self.unscored,
            "estimates": [{k: _plain(v) for k, v in asdict(e).items()} for e in self.estimates],
        }


def _as_frame(data: Any, parameter: str) -> pd.DataFrame:
    if hasattr(data, "to_pandas") and not isinstance(data, pd.DataFrame):
        data = data.to_pandas()  # a pyarrow Table
    if not isinstance(data, pd.DataFrame):
        raise InvalidArgumentError(
            f"{parameter} must be a pandas DataFrame or a pyarrow Table; got "
            f"{type(data).__name__}. Read the prediction log with read_predictions first.",
            parameter=parameter,
        )
    if data.empty:
        raise InvalidArgumentError(
            f"{parameter} has no rows; estimation needs the model's scores for some rows.",
            parameter=parameter,
        )
    return data.reset_index(drop=True)


def _window_rows(
    frame: pd.DataFrame, window: WindowSpec, time: str | None
) -> list[tuple[pd.Timestamp | None, pd.Timestamp | None, npt.NDArray[np.int64]]]:
    """Each window's bounds and row positions, cut as the realised performance report cuts
    them, so that estimated and realised windows line up."""
    if isinstance(window, str) and not time:
        raise InvalidArgumentError(
            f"window={window!r} cuts by time, but no time column was given (time=None at fit "
            "and at estimate). Pass time=<column>, or a window by row count (an int).",
            parameter="time",
        )
    windows = split_windows(frame, window, time or "")
    order = np.argsort(windows.code, kind="stable")
    counts = np.bincount(windows.code, minlength=len(windows.start))
    parts = np.split(order, np.cumsum(counts)[:-1])
    return [
        (None if pd.isna(s) else s, None if pd.isna(e) else e, p.astype(np.int64))
        for s, e, p in zip(windows.start, windows.end, parts, strict=True)
    ]


class PerformanceEstimator:
    """Confidence-based performance estimation (CBPE) for a classifier.

    ``fit`` learns, on a labelled reference period the model was not trained on, how to
    calibrate its scores, how much each metric varies by chance (the band) and where the metric
    normally lies (alert bounds: mean ± ``alert_sigmas`` standard deviations of the estimate over
    ``reference_chunks`` reference chunks). ``estimate`` then needs no labels.

    Binary and multiclass (one-vs-rest, macro-averaged) models; binary precision, recall and F1
    are for the positive class, the last of ``classes``.
    """

    def __init__(
        self,
        metrics: Sequence[str] = ("accuracy", "roc_auc", "f1"),
        *,
        calibration: CalibrationMethod = "auto",
        confidence: float = 0.95,
        alert_sigmas: float = 3.0,
        reference_chunks: int = 10,
        min_window_rows: int = 100,
        random_state: int = 0,
    ) -> None:
        self.metrics = metrics
        self.calibration = calibration
        self.confidence = confidence
        self.alert_sigmas = alert_sigmas
        self.reference_chunks = reference_chunks
        self.min_window_rows = min_window_rows
        self.random_state = random_state

    def _check_configuration(self) -> list[str]:
        metrics = [self.metrics] if isinstance(self.metrics, str) else list(self.metrics)
        unknown = [m for m in metrics if m not in METRICS]
        if not metrics or unknown or len(set(metrics)) != len(metrics):
            raise InvalidArgumentError(
                f"metrics must be distinct names among {list(METRICS)}; got {metrics!r}.",
                parameter="metrics",
            )
        checks = [
            ("calibration", self.calibration in ("isotonic", "none", "auto"),
             "'isotonic', 'none' or 'auto'"),
            ("confidence", 0 < self.confidence < 1, "a number in (0, 1), e.g. 0.95"),
            ("alert_sigmas", self.alert_sigmas > 0, "a positive number, e.g. 3"),
            ("reference_chunks", self.reference_chunks >= 2, "an int of at least 2"),
            ("min_window_rows", self.min_window_rows >= 1, "a positive int"),
        ]  # fmt: skip
        for name, ok, expected in checks:
            if not ok:
                raise InvalidArgumentError(
                    f"{name} must be {expected}; got {getattr(self, name)!r}.", parameter=name
                )
        return metrics

    def fit(
        self,
        reference: Any,
        *,
        label: str = "outcome",
        scores: ScoreColumns = "output.predict_proba",
        prediction: str | None = "output.predict",
        time: str | None = "timestamp_ms",
        classes: Sequence[Any] | None = None,
    ) -> Self:
        """Learn from reference rows with labels (rows whose label is missing are left out).

        ``prediction=None`` takes the class with the highest score as the prediction;
        ``classes`` is the order of the score columns (the model's ``classes_``), by default
        the reference's labels, sorted. ``time`` (if the column exists) orders the reference
        chunks behind the alert bounds.
        """
        metrics = self._check_configuration()
        frame = _as_frame(reference, "reference")
        if label not in frame.columns:
            raise InvalidArgumentError(
                f"label={label!r} is not a column of the reference frame; fitting needs labels "
                "(the outcomes of a reference period). Pass label=<the label column>.",
                parameter="label",
            )
        frame = frame[frame[label].notna()].reset_index(drop=True)
        if len(frame) < self.min_window_rows:
            raise InvalidArgumentError(
                f"The reference has {len(frame)} labelled rows; fitting needs at least "
                f"min_window_rows={self.min_window_rows}. Use a longer reference period, or wait "
                "for its labels to arrive.",
                parameter="reference",
            )
        matrix = score_matrix(frame, scores)
        self.classes_ = self._classes(frame[label], classes, matrix.shape[1])
        labels = class_indices(frame[label], self.classes_, "label")
        predicted = self._predicted(frame, prediction, matrix)
        rng = np.random.default_rng(self.random_state)
        self.calibration_: Calibration = fit_calibration(matrix, labels, self.calibration, rng)
        targets = one_hot(labels, len(self.classes_))
        self.sampling_error_unit_ = sampling_error_unit(metrics, targets, matrix, predicted, rng)
        self.thresholds_ = self._alert_bounds(frame, time, metrics, matrix, predicted)
        calibrated = self.calibration_.apply(matrix)
        self.reference_estimate_ = {
            m: metric_from_soft_labels(m, calibrated, matrix, predicted)[0] for m in metrics
        }
        self.reference_realised_ = {
            m: metric_from_soft_labels(m, targets, matrix, predicted)[0] for m in metrics
        }
        self.metrics_, self.reference_rows_ = metrics, len(frame)
        self.scores_, self.prediction_, self.time_ = scores, prediction, time
        return self

    @staticmethod
    def _classes(labels: pd.Series, classes: Sequence[Any] | None, width: int) -> list[Any]:
        present = list(pd.unique(labels))
        if classes is None:
            try:
                classes = sorted(present)
            except TypeError as exc:
                raise InvalidArgumentError(
                    "The reference labels mix types that cannot be sorted; pass classes= in the "
                    "order of the model's classes_.",
                    parameter="classes",
                ) from exc
        classes = list(classes)
        if len(present) < 2 or len(classes) < 2:
            raise InvalidArgumentError(
                f"The reference labels hold a single class ({present!r}); calibration and ROC "
                "AUC need rows of every class. Use a reference period with both outcomes.",
                parameter="reference",
            )
        if len(classes) != width:
            raise InvalidArgumentError(
                f"The scores have {width} probabilities per row but there are {len(classes)} "
                f"classes {classes!r}. Pass classes= with one class per score column, in the "
                "order of the model's classes_.",
                parameter="classes",
            )
        missing = [c for c in classes if c not in set(present)]
        if missing:
            raise InvalidArgumentError(
                f"The reference has no rows labelled {missing!r}; calibration needs rows of "
                "every class. Use a longer reference period.",
                parameter="reference",
            )
        return classes

    def _predicted(
        self, frame: pd.DataFrame, prediction: str | None, matrix: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.int64]:
        if prediction is None:
            return np.asarray(np.argmax(matrix, axis=1), dtype=np.int64)
        if prediction not in frame.columns:
            raise InvalidArgumentError(
                f"prediction={prediction!r} is not a column of the frame. Pass the column with "
                "the predicted class, or prediction=None to take the class with the highest "
                "score.",
                parameter="prediction",
            )
        return class_indices(frame[prediction], self.classes_, "prediction")

    def _alert_bounds(
        self,
        frame: pd.DataFrame,
        time: str | None,
        metrics: list[str],
        matrix: npt.NDArray[np.float64],
        predicted: npt.NDArray[np.int64],
    ) -> dict[str, tuple[float, float]]:
        """Mean ± ``alert_sigmas`` standard deviations of each metric's estimate over
        ``reference_chunks`` consecutive chunks of the reference, clipped to [0, 1]."""
        stamps = timestamps(frame, time) if time is not None else None
        order = (
            np.argsort(stamps.to_numpy(), kind="stable")
            if stamps is not None
            else np.arange(len(frame))
        )
        calibrated = self.calibration_.apply(matrix)
        bounds = {}
        for metric in metrics:
            values = [
                metric_from_soft_labels(metric, calibrated[c], matrix[c], predicted[c])[0]
                for c in np.array_split(order, min(self.reference_chunks, len(order)))
            ]
            finite = np.array([v for v in values if math.isfinite(v)])
            if len(finite) < 2:
                bounds[metric] = (math.nan, math.nan)
                continue
            mean, spread = float(finite.mean()), float(finite.std(ddof=1)) * self.alert_sigmas
            bounds[metric] = (max(0.0, mean - spread), min(1.0, mean + spread))
        return bounds

    def estimate(
        self, frame: Any, *, window: WindowSpec = None, time: str | None = None
    ) -> EstimatedPerformance:
        """Estimate each metric per window of ``frame`` (labels not needed); ``time`` defaults
        to the time column given to ``fit``. Windows under ``min_window_rows`` rows get NaN.
        Rows without scores (None or NaN, e.g. logged by a route that computed ``predict``
        only) are left out and counted in ``unscored``; a window's ``rows`` are its others."""
        if not hasattr(self, "calibration_"):
            raise InvalidArgumentError(
                "This PerformanceEstimator is not fitted yet: call "
                ".fit(reference_frame) with a labelled reference period before .estimate().",
                parameter="self",
            )
        data = _as_frame(frame, "frame")
        present = scored_rows(data, self.scores_)
        if not present.any():
            raise InvalidArgumentError(
                f"scores={self.scores_!r} is NaN, infinite or missing in all {len(data)} rows; "
                "estimates need the model's class probabilities (predict_proba) in some rows.",
                parameter="frame",
            )
        unscored = int((~present).sum())
        position = np.cumsum(present) - 1  # a scored row's row in the matrix
        scored = data[present].reset_index(drop=True) if unscored else data
        matrix = score_matrix(scored, self.scores_)
        if matrix.shape[1] != len(self.classes_):
            raise InvalidArgumentError(
                f"The scores have {matrix.shape[1]} probabilities per row; the estimator was "
                f"fitted for {len(self.classes_)} classes {self.classes_!r}. Estimate with the "
                "same model's outputs.",
                parameter="frame",
            )
        predicted = self._predicted(scored, self.prediction_, matrix)
        calibrated = self.calibration_.apply(matrix)
        z = NormalDist().inv_cdf(0.5 + self.confidence / 2)
        estimates = []
        for index, (start, end, rows) in enumerate(_window_rows(data, window, time or self.time_)):
            rows = position[rows[present[rows]]]  # rows without scores are left out
            for metric in self.metrics_:
                low, high = self.thresholds_[metric]
                value, reason = math.nan, None
                if len(rows) < self.min_window_rows:
                    reason = (
                        f"window has {len(rows)} rows; estimates need at least "
                        f"min_window_rows={self.min_window_rows}"
                    )
                else:
                    value, reason = metric_from_soft_labels(
                        metric, calibrated[rows], matrix[rows], predicted[rows]
                    )
                error = (
                    self.sampling_error_unit_[metric] / math.sqrt(len(rows))
                    if len(rows)
                    else math.nan
                )
                estimates.append(
                    MetricEstimate(
                        window=index,
                        window_start=start,
                        window_end=end,
                        metric=metric,
                        value=value,
                        lower=max(0.0, value - z * error) if math.isfinite(value) else math.nan,
                        upper=min(1.0, value + z * error) if math.isfinite(value) else math.nan,
                        sampling_error=error,
                        rows=len(rows),
                        lower_threshold=low,
                        upper_threshold=high,
                        alert=bool(math.isfinite(value) and math.isfinite(low))
                        and not (low <= value <= high),
                        reason=reason,
                    )
                )
        return EstimatedPerformance(
            estimates=estimates,
            calibrated=self.calibration_.calibrated,
            confidence=self.confidence,
            unscored=unscored,
        )
