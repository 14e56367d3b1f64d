"""The loading half of a monitoring pass: everything it reads from the store, in one value.

``load_inputs`` reads the deployment's prediction log with its outcomes, the reference data,
the profile and validation suite of the data each served version was trained on and, when
performance is to be estimated, the calibration data and the latest served model. What it
returns, ``MonitorInputs``, is all that ``compute_report`` needs: no store, no files.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import pandas as pd

from loopwise.context import current
from loopwise.data import (
    DatasetVersion,
    Profile,
    Suite,
    attached_suite,
    dataset_profile,
    load_dataset,
)
from loopwise.data.datasets import get_dataset
from loopwise.errors import InvalidArgumentError
from loopwise.monitoring.outcomes import monitoring_frame
from loopwise.monitoring.windows import split_windows
from loopwise.registry import models
from loopwise.store.prediction_segments import INPUT_PREFIX

__all__ = ["MonitorInputs", "load_inputs", "served_features"]

SEED = 0
HELD_OUT_SPLITS = ("validation", "valid", "holdout", "test")
NO_PREDICTIONS = "no predictions in this range"


@dataclass(frozen=True)
class MonitorInputs:
    """What one monitoring pass reads, loaded; ``compute_report`` turns it into the report.

    ``predictions``: the monitoring frame (``monitoring_frame``: one row per served prediction,
    its inputs as ``input.<feature>`` columns, its ``outcome`` where one arrived). ``window``:
    how to cut it (see ``split_windows``). ``reference``: the data served inputs are compared
    with (None when there are no predictions); ``reference_text`` says what it is in words.
    ``profiles`` and ``suites``: by served model version, the profile and validation suite of
    the data the version was trained on, where it has one. With ``label``, ``calibration``
    (labelled rows, ``label`` among their columns) and ``model`` (the latest served version,
    loaded: ``predict_proba`` and ``classes_``), performance is also estimated without labels.
    """

    project: str
    deployment: str
    start_ms: int | None
    end_ms: int | None
    window: str | int | None
    generated_ms: int
    predictions: pd.DataFrame
    reference: pd.DataFrame | None = None
    reference_text: str = NO_PREDICTIONS
    profiles: Mapping[int, Profile] = field(default_factory=dict)
    suites: Mapping[int, Suite] = field(default_factory=dict)
    label: str | None = None
    calibration: pd.DataFrame | None = None
    model: Any = None


def served_features(predictions: pd.DataFrame) -> list[str]:
    """The model's input features, as the prediction log names them (without the prefix)."""
    return [c[len(INPUT_PREFIX) :] for c in predictions.columns if c.startswith(INPUT_PREFIX)]


def _version_datasets(ctx: Any, model: str, version: int) -> list[DatasetVersion]:
    found = ctx.store.get_model_version(ctx.project, model, version)
    datasets = []
    for ref in found.datasets:
        name, _, number = ref.partition("/")
        datasets.append(ctx.store.get_dataset_version(ctx.project, name, int(number)))
    return datasets


def _training_dataset(datasets: list[DatasetVersion]) -> DatasetVersion | None:
    """The dataset a model version was trained on: its run's ``train`` split, else its first."""
    for candidate in datasets:
        if candidate.split == "train":
            return candidate
    return datasets[0] if datasets else None


def _held_out_dataset(datasets: list[DatasetVersion]) -> DatasetVersion | None:
    """Labelled data the version was not fitted on, to calibrate performance estimates."""
    for split in HELD_OUT_SPLITS:
        for candidate in datasets:
            if candidate.split == split:
                return candidate
    return None


def _sampled(frame: pd.DataFrame, max_rows: int) -> pd.DataFrame:
    return frame.sample(max_rows, random_state=SEED) if len(frame) > max_rows else frame


def load_inputs(
    deployment: str,
    *,
    start_ms: int | None = None,
    end_ms: int | None = None,
    window: str | int | None = "1D",
    reference: str | DatasetVersion | None = None,
    label: str | None = None,
    max_reference_rows: int = 50_000,
    allow_pickle: bool = False,
) -> MonitorInputs:
    """Read what monitoring ``deployment`` over ``[start_ms, end_ms)`` needs (the parameters
    mean what they mean for ``monitor``)."""
    ctx = current()
    frame = monitoring_frame(deployment, start_ms, end_ms)
    generated_ms = int(time.time() * 1000)
    read = MonitorInputs(
        project=ctx.project,
        deployment=deployment,
        start_ms=start_ms,
        end_ms=end_ms,
        window=window,
        generated_ms=generated_ms,
        predictions=frame,
    )
    if frame.empty:
        return read
    features = served_features(frame)
    model = str(frame["model"].iloc[-1])
    versions = sorted(int(v) for v in frame["version"].unique())
    datasets = {v: _version_datasets(ctx, model, v) for v in versions}
    trained_on = {v: _training_dataset(found) for v, found in datasets.items()}
    if reference is None:
        reference = trained_on[versions[-1]]
        if reference is None:
            raise InvalidArgumentError(
                f"{model}/{versions[-1]} records no training dataset to compare served inputs "
                "with; pass reference='<dataset>/<version>'.",
                parameter="reference",
            )
    reference_version = get_dataset(reference)
    reference_frame = _sampled(load_dataset(reference_version), max_reference_rows)
    missing = [f for f in features if f not in reference_frame.columns]
    if missing:
        raise InvalidArgumentError(
            f"The reference {reference_version.ref} lacks served input column(s) {missing}; "
            "pass the dataset the model was trained on as reference=.",
            parameter="reference",
        )
    # An unusable window fails here, before the slow reads below, as it always has.
    split_windows(frame, window, "timestamp_ms")
    profiles = {
        v: dataset_profile(d) for v, d in trained_on.items() if d is not None and d.profile_digest
    }
    suites: dict[int, Suite] = {}
    for version, trained in trained_on.items():
        attached = None if trained is None else attached_suite(trained.name)
        if attached is not None:
            suites[version] = attached[0]
    # Estimates calibrated on the training data itself would be optimistic (the model fits it
    # better than new data): prefer a held-out split the version recorded.
    held_out = _held_out_dataset(datasets[versions[-1]])
    calibration = reference_frame
    if label is not None and held_out is not None:
        calibration = _sampled(load_dataset(held_out), max_reference_rows)
    loaded = None
    if label is not None and "output.predict_proba" in frame.columns:
        if label not in calibration.columns:
            raise InvalidArgumentError(
                f"label={label!r} is not a column of the reference (it has "
                f"{list(calibration.columns)[:20]}).",
                parameter="label",
            )
        loaded = models.load(f"{model}/{versions[-1]}", allow_pickle=allow_pickle)
    text = (
        f"{reference_version.ref}"
        + (" (training data)" if reference_version in trained_on.values() else "")
        + (f"; estimates calibrated on {held_out.ref}" if held_out and label else "")
    )
    return replace(
        read,
        reference=reference_frame,
        reference_text=text,
        profiles=profiles,
        suites=suites,
        label=label,
        calibration=calibration if label is not None else None,
        model=loaded,
    )
