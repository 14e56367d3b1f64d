"""Delayed labels: record the ground truth of logged predictions when it arrives, and join it.

Outcomes are keyed by the prediction row's id in the prediction log (``<request id>:<row>``).
Recording is idempotent (see ``Store.record_outcomes``), so a job may resend its labels as
often as it likes. An outcome whose prediction is not in the log (yet: it may be in a server's
spool) is kept, and joins as soon as the prediction is read back. See docs/outcomes.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopwise.context import current
from loopwise.errors import InvalidArgumentError
from loopwise.store import Outcome, OutcomeReceipt, Store
from loopwise.store.checks import check_name
from loopwise.store.predictions import read_predictions

__all__ = [
    "OutcomeCoverage",
    "join_outcomes",
    "latest_rows",
    "log_outcomes",
    "monitoring_frame",
    "outcome_coverage",
]


def _as_list(values: object, parameter: str) -> list[Any]:
    if isinstance(values, str | bytes) or values is None:
        raise InvalidArgumentError(
            f"Expected {parameter} as a list, array or Series, got {type(values).__name__}. "
            f"Wrap a single value in a list: [{values!r}].",
            parameter=parameter,
        )
    tolist = getattr(values, "tolist", None)
    if callable(tolist):  # NumPy arrays and pandas Series: their values as Python objects
        values = tolist()
    if not isinstance(values, Sequence):
        raise InvalidArgumentError(
            f"Expected {parameter} as a list, array or Series, got {type(values).__name__}.",
            parameter=parameter,
        )
    return list(values)


def _is_missing(value: object) -> bool:
    if value is None:
        return True
    try:
        return bool(value != value)  # NaN, pd.NA and NaT are not equal to themselves
    except TypeError:  # pd.NA refuses bool()
        return True
    except ValueError:  # an array: not missing, and not a label either (the store says so)
        return False


def log_outcomes(
    deployment: str,
    request_ids: Sequence[str] | Any,
    labels: Sequence[Any] | Any,
    *,
    timestamp_ms: int | Sequence[int] | Any | None = None,
    overwrite: bool = False,
) -> OutcomeReceipt:
    """Record the true label (or target) of logged predictions, in the current project.

    ``request_ids`` are the prediction rows' ids (the ``request_id`` column of
    ``read_predictions``); ``labels`` the outcomes, position by position: numbers, strings or
    bools. A missing label (None or NaN) is refused with its position: leave the row out and
    log it when it arrives. ``timestamp_ms`` says when the outcomes happened (one for all, or
    one per row; default: when recorded). Sending the same outcomes again changes nothing; a
    different value for a recorded id is reported in ``conflicts`` and kept unless
    ``overwrite=True``.
    """
    check_name(deployment, "deployment")
    ids = _as_list(request_ids, "request_ids")
    values = _as_list(labels, "labels")
    if len(ids) != len(values):
        raise InvalidArgumentError(
            f"Expected one label per request id, got {len(ids)} request ids and {len(values)} "
            "labels.",
            parameter="labels",
        )
    if timestamp_ms is None or isinstance(timestamp_ms, int | np.integer):
        times: list[Any] = [timestamp_ms] * len(ids)
    else:
        times = _as_list(timestamp_ms, "timestamp_ms")
        if len(times) != len(ids):
            raise InvalidArgumentError(
                f"Expected timestamp_ms as one integer, or one per request id ({len(ids)}), "
                f"got {len(times)}.",
                parameter="timestamp_ms",
            )
    for position, value in enumerate(values):
        if _is_missing(value):
            raise InvalidArgumentError(
                f"labels[{position}] (request id {ids[position]!r}) is missing ({value!r}); "
                "expected a label. Leave rows without an outcome out, and log them when it "
                "arrives.",
                parameter="labels",
                position=position,
            )
    outcomes = [
        Outcome(rid, value, None if t is None else _timestamp(t, position))
        for position, (rid, value, t) in enumerate(zip(ids, values, times, strict=True))
    ]
    ctx = current()
    return ctx.store.record_outcomes(ctx.project, deployment, outcomes, overwrite=overwrite)


def _timestamp(value: Any, position: int) -> int:
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # a float column of whole milliseconds
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise InvalidArgumentError(
        f"timestamp_ms[{position}]: expected milliseconds since the epoch as an integer, got "
        f"{value!r}.",
        parameter="timestamp_ms",
        position=position,
    )


def join_outcomes(
    predictions: pd.DataFrame,
    deployment: str,
    *,
    store: Store | None = None,
    project: str | None = None,
    request_id: str = "request_id",
) -> pd.DataFrame:
    """``predictions`` with ``outcome`` and ``outcome_timestamp_ms`` columns added.

    Rows whose outcome has not arrived get NaN in both. Numeric outcomes make a float column;
    strings and bools an object column. ``store`` and ``project`` default to the current
    ones. The frame itself is not changed.
    """
    if not isinstance(predictions, pd.DataFrame):
        raise InvalidArgumentError(
            f"Expected predictions as a pandas DataFrame (e.g. read_predictions(...)), got "
            f"{type(predictions).__name__}.",
            parameter="predictions",
        )
    if request_id not in predictions.columns:
        raise InvalidArgumentError(
            f"predictions has no column {request_id!r} to join on (columns: "
            f"{list(predictions.columns)[:20]}). Pass request_id=<the id column>.",
            parameter="request_id",
        )
    check_name(deployment, "deployment")
    if store is None or project is None:
        ctx = current()
        store = store or ctx.store
        project = project or ctx.project
    ids = predictions[request_id]
    if ids.isna().any():
        raise InvalidArgumentError(
            f"predictions[{request_id!r}] has {int(ids.isna().sum())} missing ids; every "
            "prediction row needs its id to be joined. Drop those rows first.",
            parameter="request_id",
        )
    keys = ids.astype(str)
    found = store.get_outcomes(project, deployment, keys.unique().tolist()) if len(keys) else {}
    values = [found[k].value if k in found else None for k in keys]
    times = [found[k].timestamp_ms if k in found else np.nan for k in keys]
    joined = predictions.copy()
    joined["outcome"] = _outcome_column(values, predictions.index)
    joined["outcome_timestamp_ms"] = pd.Series(times, index=predictions.index, dtype="float64")
    return joined


def _outcome_column(values: list[Any], index: pd.Index) -> pd.Series:
    present = [v for v in values if v is not None]
    numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if numeric:
        floats = [np.nan if v is None else float(v) for v in values]
        return pd.Series(floats, index=index, dtype="float64")
    return pd.Series([np.nan if v is None else v for v in values], index=index, dtype=object)


@dataclass(frozen=True)
class OutcomeCoverage:
    """How many predictions of a range have their outcome yet, and how late outcomes came."""

    predictions: int
    labelled: int
    median_delay_ms: float
    """Median of outcome time minus prediction time over labelled rows (NaN: none)."""

    @property
    def share(self) -> float:
        """``labelled / predictions`` (NaN when there are no predictions)."""
        return self.labelled / self.predictions if self.predictions else math.nan

    @classmethod
    def of(cls, frame: pd.DataFrame, *, time: str = "timestamp_ms") -> OutcomeCoverage:
        """The coverage of a joined frame (``join_outcomes`` or ``monitoring_frame``)."""
        for column in ("outcome", "outcome_timestamp_ms"):
            if column not in frame.columns:
                raise InvalidArgumentError(
                    f"Expected a frame joined with its outcomes (a column {column!r}); pass "
                    "it through join_outcomes first.",
                    parameter="frame",
                )
        labelled = frame["outcome"].notna().to_numpy()
        delay = math.nan
        if labelled.any() and time in frame.columns:
            gaps = frame["outcome_timestamp_ms"].to_numpy(dtype=np.float64)[labelled]
            gaps = gaps - frame[time].to_numpy(dtype=np.float64)[labelled]
            delay = float(np.median(gaps))
        return cls(len(frame), int(labelled.sum()), delay)


def monitoring_frame(
    deployment: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
    *,
    shadow: bool | None = False,
) -> pd.DataFrame:
    """A deployment's predictions with ``start_ms <= timestamp_ms < end_ms`` joined with their
    outcomes, in the current project: the frame monitoring functions take.

    Only the answers clients got by default: the rows of shadow versions (``shadow`` in the
    log) are left out. ``shadow=True`` gives only those, ``shadow=None`` every row.
    """
    if shadow is not None and not isinstance(shadow, bool):
        raise InvalidArgumentError(
            f"Expected shadow as False (live rows), True (shadow rows) or None (both), got "
            f"{shadow!r}.",
            parameter="shadow",
        )
    ctx = current()
    predictions = read_predictions(ctx.store, ctx.project, deployment, start_ms, end_ms)
    if shadow is not None:
        keep = predictions["shadow"].to_numpy(dtype=bool) == shadow
        if not keep.all():
            predictions = predictions[keep].reset_index(drop=True)
    predictions = latest_rows(predictions)
    return join_outcomes(predictions, deployment, store=ctx.store, project=ctx.project)


def latest_rows(predictions: pd.DataFrame) -> pd.DataFrame:
    """One row per prediction: where the log holds a row id more than once (a client that sent
    its ``X-Request-Id`` again, a batch written twice), the one that arrived last wins (at the
    same ``timestamp_ms``, the one written last). The log keeps every write; monitoring counts
    each prediction once. A shadow version's row is a prediction of its own (the id of the live
    request, its own version).

    ``predictions`` as ``read_predictions`` returns it: oldest first, in write order where
    times are equal.
    """
    if predictions.empty or predictions["request_id"].is_unique:
        return predictions
    shadow = predictions["shadow"].to_numpy(dtype=bool)
    key = pd.DataFrame(
        {
            "request_id": predictions["request_id"].to_numpy(),
            "version": np.where(shadow, predictions["version"].to_numpy(), -1),
        }
    )
    repeated = key.duplicated(keep="last").to_numpy()
    return predictions[~repeated].reset_index(drop=True) if repeated.any() else predictions


def outcome_coverage(
    deployment: str, start_ms: int | None = None, end_ms: int | None = None
) -> OutcomeCoverage:
    """How many of a deployment's predictions in ``[start_ms, end_ms)`` have outcomes yet."""
    return OutcomeCoverage.of(monitoring_frame(deployment, start_ms, end_ms))
